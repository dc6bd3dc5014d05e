#include "kiln/pipelines/registry.hpp"

#include "kiln/io/diffusers.hpp"
#include "kiln/pipelines/recipes/stable_diffusion.hpp"
#include "kiln/pipelines/recipes/stable_diffusion_xl.hpp"

namespace kiln::pipelines {

namespace {

class Sd1Pipeline final : public ImagePipeline {
 public:
  explicit Sd1Pipeline(const std::filesystem::path& folder)
      : sd_(recipes::StableDiffusion::load(folder)) {}
  const std::string& family() const override {
    static const std::string name = "sd1";
    return name;
  }
  ImageDefaults defaults() const override {
    ImageDefaults d;
    d.width = d.height = static_cast<int>(sd_.default_size());
    d.size_multiple = static_cast<int>(sd_.vae_scale_factor());
    d.steps = 20;           // kiln's default (diffusers: 50)
    d.guidance_scale = 7.5f;
    d.sampler = "euler";
    return d;
  }
  Tensor generate(const recipes::ImageRequest& req) const override { return sd_.generate(req); }

 private:
  recipes::StableDiffusion sd_;
};

class SdxlPipeline final : public ImagePipeline {
 public:
  explicit SdxlPipeline(const std::filesystem::path& folder)
      : xl_(recipes::StableDiffusionXL::load(folder)) {}
  const std::string& family() const override {
    static const std::string name = "sdxl";
    return name;
  }
  ImageDefaults defaults() const override {
    ImageDefaults d;
    d.width = d.height = static_cast<int>(xl_.default_size());  // 1024 for SDXL base
    d.size_multiple = static_cast<int>(xl_.vae_scale_factor());
    d.steps = 30;  // kiln's default (diffusers: 50)
    d.guidance_scale = 5.0f;
    d.sampler = "euler";
    return d;
  }
  Tensor generate(const recipes::ImageRequest& req) const override { return xl_.generate(req); }

 private:
  recipes::StableDiffusionXL xl_;
};

}  // namespace

const std::vector<FamilyInfo>& families() {
  static const std::vector<FamilyInfo> f = {
      {"sd1", "StableDiffusionPipeline", true},
      {"sdxl", "StableDiffusionXLPipeline", true},
      {"sd3", "StableDiffusion3Pipeline", false},
      {"flux", "FluxPipeline", false},
  };
  return f;
}

const FamilyInfo& detect_family(const std::filesystem::path& folder) {
  io::DiffusersFolder f = io::DiffusersFolder::open(folder);
  for (const auto& fam : families())
    if (fam.pipeline_class == f.class_name()) return fam;
  std::string known;
  for (const auto& fam : families()) known += (known.empty() ? "" : ", ") + fam.pipeline_class;
  fail(Status::unsupported,
       str("pipeline class '", f.class_name(), "' is not supported (kiln knows ", known, ")"),
       folder.string());
}

std::unique_ptr<ImagePipeline> load_image_pipeline(const std::filesystem::path& folder) {
  const FamilyInfo& fam = detect_family(folder);
  if (fam.name == "sd1") return std::make_unique<Sd1Pipeline>(folder);
  if (fam.name == "sdxl") return std::make_unique<SdxlPipeline>(folder);
  fail(Status::unsupported,
       str("generation with ", fam.pipeline_class, " (", fam.name,
           ") is not implemented yet; its components load and run individually"),
       folder.string());
}

}  // namespace kiln::pipelines
