// Single-file checkpoints in their original key layouts, read as diffusers components.
//
//   auto ckpt = loaders::SingleFileCheckpoint::open("v1-5-pruned-emaonly.safetensors");
//   ckpt.family();                              // "sd1"
//   auto unet = loaders::load_unet(ckpt);       // models::UNet2DConditionModel, weights in f32
//   auto vae = loaders::load_vae(ckpt);
//   auto te = loaders::load_clip_text(ckpt, "text_encoder");
//
// Family and config come from tensor names and shapes (rules_sd / rules_flux / rules_sd3, each
// a {detect, build} entry of one registry). What the weights cannot tell is taken from the
// family's released models and can be overridden per component, as diffusers'
// from_single_file(config=...) does:
//   - SD U-Net: attention heads (SD1: 8; SD2/SDXL: channels / 64), norm_num_groups (32),
//     sample_size; SDXL addition_time_embed_dim (256). The prediction type (epsilon vs
//     v_prediction, SD2.x 768-v) is a scheduler setting that is not in the weights at all: it
//     cannot be detected and must be given by the caller.
//   - VAE: norm_num_groups (32), scaling_factor (SD1/SD2 0.18215, SDXL 0.13025), sample_size.
//   - CLIP: num_attention_heads (hidden / 64), hidden_act (CLIP-L quick_gelu, OpenCLIP gelu),
//     eos_token_id (2, transformers' legacy argmax pooling, as the released configs).
//   - Flux: axes_dims_rope (16, 56, 56). SD3: sample_size (128) and, without qk-norm weights,
//     attention_head_dim (64).
// Storage dtypes (f32/f16/bf16/fp8) are converted to f32 by io::bind when a model is built.
//
// Ref: diffusers 0.42.1 loaders/single_file_utils.py (infer_diffusers_model_type,
//      CHECKPOINT_KEY_NAMES, create_unet_diffusers_config_from_ldm, convert_ldm_*_checkpoint,
//      convert_open_clip_checkpoint,
//      convert_sd3_/convert_flux_transformer_checkpoint_to_diffusers).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "kiln/io/diffusers.hpp"
#include "kiln/pipelines/loaders/renamed_weights.hpp"
#include "kiln/pipelines/models/autoencoder_kl.hpp"
#include "kiln/pipelines/models/clip_text.hpp"
#include "kiln/pipelines/models/flux_transformer.hpp"
#include "kiln/pipelines/models/sd3_transformer.hpp"
#include "kiln/pipelines/models/unet2d_condition.hpp"

namespace kiln::pipelines::loaders {

struct SingleFileComponent {
  std::string name;        // diffusers folder name: "unet", "vae", "text_encoder", "transformer"
  std::string class_name;  // "UNet2DConditionModel", "CLIPTextModelWithProjection", ...
  nlohmann::json config;   // the component's config.json as detected (+ overrides)
  std::shared_ptr<RenamedWeights> weights;  // diffusers key names
  // config as an io::ComponentConfig whose error context is "<file> [<name> config]".
  io::ComponentConfig component_config() const;
};

struct SingleFileOptions {
  // Per component name, config.json fields that replace the detected ones (a diffusers
  // folder's config.json can be passed whole: fields that shapes determine are checked
  // against the weights when the model binds).
  std::map<std::string, nlohmann::json> config_overrides;
};

class SingleFileCheckpoint {
 public:
  // Opens a .safetensors file. Throws Status::format_error naming what was looked for when no
  // family recognises the tensor names.
  static SingleFileCheckpoint open(const std::filesystem::path& path,
                                   const SingleFileOptions& options = {});
  static SingleFileCheckpoint from_source(std::shared_ptr<const io::WeightSource> source,
                                          const SingleFileOptions& options = {});

  // "sd1", "sd2", "sdxl", "sdxl_refiner", "flux", "sd3", "sd_vae" (a VAE file alone).
  const std::string& family() const { return family_; }
  // "inpainting" (9 input channels), "dev"/"schnell" (Flux), "sd3"/"sd35" (SD3), or "".
  const std::string& variant() const { return variant_; }
  // What detection assumed or could not know (e.g. the prediction type), one line each.
  const std::vector<std::string>& notes() const { return notes_; }
  const std::vector<SingleFileComponent>& components() const { return components_; }
  bool has(std::string_view component) const;
  const SingleFileComponent& component(std::string_view name) const;  // not_found lists them
  // Source tensors no component reads: EMA copies, LDM schedule buffers (betas,
  // alphas_cumprod, ...), parts kiln has no model for. Not an error.
  std::vector<std::string> unclaimed() const;
  const io::WeightSource& source() const { return *source_; }

 private:
  std::shared_ptr<const io::WeightSource> source_;
  std::string family_, variant_;
  std::vector<std::string> notes_;
  std::vector<SingleFileComponent> components_;
};

// Models built from a component, weights converted to f32 and bound strictly (every diffusers
// key present with its shape, every renamed tensor used). Errors name the file and component.
models::UNet2DConditionModel load_unet(const SingleFileCheckpoint& ckpt);
models::AutoencoderKL load_vae(const SingleFileCheckpoint& ckpt);
models::ClipTextModel load_clip_text(const SingleFileCheckpoint& ckpt,
                                     std::string_view name = "text_encoder");
models::FluxTransformer2DModel load_flux_transformer(const SingleFileCheckpoint& ckpt);
models::SD3Transformer2DModel load_sd3_transformer(const SingleFileCheckpoint& ckpt);

// For `kiln inspect`: what a single file holds.
struct ComponentSummary {
  std::string name, class_name;
  size_t tensors = 0;                    // diffusers tensors after renames and splits
  int64_t parameters = 0;                // their element count
  std::map<std::string, size_t> dtypes;  // stored dtype name -> tensor count
  nlohmann::json config;
};
struct CheckpointDescription {
  std::filesystem::path path;
  std::string family, variant;
  std::vector<ComponentSummary> components;
  size_t unclaimed_tensors = 0;
  std::vector<std::string> notes;
};
CheckpointDescription describe_checkpoint(const std::filesystem::path& path);

}  // namespace kiln::pipelines::loaders
