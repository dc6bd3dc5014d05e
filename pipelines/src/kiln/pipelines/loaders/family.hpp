// Internal to the single-file loader: what a family's rules file provides (one registry entry
// {name, detect, build}), and the name/shape queries the rules use.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/io/weight_source.hpp"
#include "kiln/pipelines/loaders/single_file.hpp"

namespace kiln::pipelines::loaders {

struct FamilyBuild {
  std::string family, variant;
  std::vector<std::string> notes;
  std::vector<SingleFileComponent> components;
};

struct FamilyRules {
  std::string_view name;
  // The names each family looks for, for the "unrecognised checkpoint" message.
  std::string_view signature;
  bool (*detect)(const io::WeightSource& src);
  FamilyBuild (*build)(const std::shared_ptr<const io::WeightSource>& src,
                       const SingleFileOptions& options);
};

// Name/shape queries over one key prefix of a source.
class KeyView {
 public:
  KeyView(const io::WeightSource& src, std::string prefix)
      : src_(src), prefix_(std::move(prefix)) {}
  bool has(std::string_view local) const { return src_.has(prefix_ + std::string(local)); }
  // Shape of prefix + local; format_error naming the key and `why` when absent.
  Shape shape(std::string_view local, std::string_view why) const;
  int64_t dim(std::string_view local, int d, std::string_view why) const {
    const Shape s = shape(local, why);
    return s[d < 0 ? s.size() + d : d];
  }
  // 1 + the largest N among keys "<prefix><head>N." (0 when there is none).
  int count(std::string_view head) const;
  const std::string& prefix() const { return prefix_; }
  const io::WeightSource& source() const { return src_; }

 private:
  const io::WeightSource& src_;
  std::string prefix_;
};

bool has_prefix(const io::WeightSource& src, std::string_view prefix);

// Merges options.config_overrides[name] (an object) over `config`.
void apply_overrides(nlohmann::json& config, const std::string& name,
                     const SingleFileOptions& options);

// The component with its RenamedWeights.
SingleFileComponent make_component(const std::shared_ptr<const io::WeightSource>& src,
                                   std::string name, std::string class_name, nlohmann::json config,
                                   const std::string& prefix, const RenameTable& table,
                                   const SingleFileOptions& options);

// Families (rules_sd.cpp, rules_flux.cpp, rules_sd3.cpp).
const FamilyRules& sd_family();
const FamilyRules& flux_family();
const FamilyRules& sd3_family();
const FamilyRules& sd_vae_family();

// An AutoencoderKL in the LDM layout under `prefix` (SD1/SD2/SDXL/SD3/Flux files all use it);
// `family` picks the scaling/shift factors the weights cannot tell.
SingleFileComponent vae_component(const std::shared_ptr<const io::WeightSource>& src,
                                  const std::string& prefix, const std::string& family,
                                  const SingleFileOptions& options);

// CLIP text encoders as SD files store them (rules_sd.cpp; also usable by other families).
// `prefix` holds "text_model.*" (transformers layout) or OpenCLIP's "transformer.resblocks.*".
// With text_projection.weight under `prefix` it is a CLIPTextModelWithProjection (SD3).
SingleFileComponent clip_l_component(const std::shared_ptr<const io::WeightSource>& src,
                                     const std::string& prefix, std::string name,
                                     const SingleFileOptions& options,
                                     const std::string& hidden_act = "quick_gelu");
// drop_last_layer: SD2 uses the penultimate layer and diffusers' SD2 text_encoder holds 23 of
// OpenCLIP ViT-H's 24 resblocks (convert_open_clip_checkpoint's SD_2_TEXT_ENCODER_KEYS_TO_IGNORE).
SingleFileComponent open_clip_component(const std::shared_ptr<const io::WeightSource>& src,
                                        const std::string& prefix, std::string name,
                                        bool with_projection, bool drop_last_layer,
                                        const SingleFileOptions& options);

}  // namespace kiln::pipelines::loaders
