#include "kiln/pipelines/registry.hpp"

#include <functional>

#include "kiln/io/diffusers.hpp"
#include "kiln/pipelines/recipes/flux.hpp"
#include "kiln/pipelines/recipes/stable_diffusion.hpp"
#include "kiln/pipelines/recipes/stable_diffusion3.hpp"
#include "kiln/pipelines/recipes/stable_diffusion_xl.hpp"

namespace kiln::pipelines {

namespace {

// One adapter for every recipe: the family name, kiln's defaults for it, and generate(). Each
// recipe validates the image inputs (init image, mask) it supports itself.
template <typename Recipe>
class RecipePipeline final : public ImagePipeline {
 public:
  RecipePipeline(std::string family, Recipe recipe, ImageDefaults defaults)
      : family_(std::move(family)), recipe_(std::move(recipe)), defaults_(std::move(defaults)) {}
  const std::string& family() const override { return family_; }
  ImageDefaults defaults() const override { return defaults_; }
  Device device() const override { return recipe_.device(); }
  Tensor generate(const recipes::ImageRequest& req) const override {
    return recipe_.generate(req).to(Device::cpu());
  }

 private:
  std::string family_;
  Recipe recipe_;
  ImageDefaults defaults_;
};

// kiln's defaults per family (diffusers' pipelines default to 50 steps for SD; fewer suffice with
// the samplers kiln defaults to). Sizes come from the model's config.
ImageDefaults make_defaults(int64_t size, int64_t multiple, int steps, float guidance,
                            const char* sampler) {
  ImageDefaults d;
  d.width = d.height = static_cast<int>(size);
  d.size_multiple = static_cast<int>(multiple);
  d.steps = steps;
  d.guidance_scale = guidance;
  d.sampler = sampler;
  return d;
}

using Loader =
    std::function<std::unique_ptr<ImagePipeline>(const std::filesystem::path&, Device)>;

struct Entry {
  FamilyInfo info;
  Loader load;
};

const std::vector<Entry>& entries() {
  static const std::vector<Entry> e = [] {
    auto sd1 = [](const std::filesystem::path& f, Device dev) -> std::unique_ptr<ImagePipeline> {
      auto r = recipes::StableDiffusion::load(f, dev);
      auto d = make_defaults(r.default_size(), r.vae_scale_factor(), 20, 7.5f, "euler");
      return std::make_unique<RecipePipeline<recipes::StableDiffusion>>("sd1", std::move(r), d);
    };
    auto sdxl = [](const std::filesystem::path& f, Device dev) -> std::unique_ptr<ImagePipeline> {
      auto r = recipes::StableDiffusionXL::load(f, dev);
      auto d = make_defaults(r.default_size(), r.vae_scale_factor(), 30, 5.0f, "euler");
      return std::make_unique<RecipePipeline<recipes::StableDiffusionXL>>("sdxl", std::move(r), d);
    };
    auto sd3 = [](const std::filesystem::path& f, Device dev) -> std::unique_ptr<ImagePipeline> {
      auto r = recipes::StableDiffusion3::load(f, dev);
      auto d = make_defaults(r.default_size(), r.size_multiple(), 28, 7.0f, "flow_euler");
      return std::make_unique<RecipePipeline<recipes::StableDiffusion3>>("sd3", std::move(r), d);
    };
    auto flux = [](const std::filesystem::path& f, Device dev) -> std::unique_ptr<ImagePipeline> {
      auto r = recipes::Flux::load(f, dev);
      auto d = make_defaults(r.default_size(), r.size_multiple(), 28, 3.5f, "flow_euler");
      return std::make_unique<RecipePipeline<recipes::Flux>>("flux", std::move(r), d);
    };
    return std::vector<Entry>{
        {{"sd1", "StableDiffusionPipeline"}, sd1},
        {{"sd1", "StableDiffusionImg2ImgPipeline"}, sd1},
        {{"sd1", "StableDiffusionInpaintPipeline"}, sd1},
        {{"sdxl", "StableDiffusionXLPipeline"}, sdxl},
        {{"sdxl", "StableDiffusionXLImg2ImgPipeline"}, sdxl},
        {{"sdxl", "StableDiffusionXLInpaintPipeline"}, sdxl},
        {{"sd3", "StableDiffusion3Pipeline"}, sd3},
        {{"flux", "FluxPipeline"}, flux},
    };
  }();
  return e;
}

const Entry& find_entry(const std::filesystem::path& folder) {
  io::DiffusersFolder f = io::DiffusersFolder::open(folder);
  for (const auto& e : entries())
    if (e.info.pipeline_class == f.class_name()) return e;
  std::string known;
  for (const auto& e : entries()) known += (known.empty() ? "" : ", ") + e.info.pipeline_class;
  fail(Status::unsupported,
       str("pipeline class '", f.class_name(), "' is not supported (kiln knows ", known, ")"),
       folder.string());
}

}  // namespace

const std::vector<FamilyInfo>& families() {
  static const std::vector<FamilyInfo> f = [] {
    std::vector<FamilyInfo> v;
    for (const auto& e : entries()) v.push_back(e.info);
    return v;
  }();
  return f;
}

const FamilyInfo& detect_family(const std::filesystem::path& folder) {
  return find_entry(folder).info;
}

std::unique_ptr<ImagePipeline> load_image_pipeline(const std::filesystem::path& folder,
                                                   const PipelineLoadOptions& options) {
  const Entry& e = find_entry(folder);
  return e.load(folder, options.device);
}

}  // namespace kiln::pipelines
