// Stable Diffusion XL text-to-image over a diffusers folder (model_index.json with tokenizer +
// text_encoder (CLIPTextModel), tokenizer_2 + text_encoder_2 (CLIPTextModelWithProjection), unet
// (addition_embed_type "text_time"), vae, scheduler), equal to diffusers'
// StableDiffusionXLPipeline for the same seed, sampler and schedule; with
// ImageRequest.init_image (+ strength) to StableDiffusionXLImg2ImgPipeline, with a mask too to
// StableDiffusionXLInpaintPipeline (base models: requires_aesthetics_score false).
// Ref: diffusers src/diffusers/pipelines/stable_diffusion_xl/pipeline_stable_diffusion_xl.py
//      (encode_prompt, _get_add_time_ids), pipeline_stable_diffusion_xl_img2img.py,
//      pipeline_stable_diffusion_xl_inpaint.py.
//
// Conditioning: the penultimate hidden states of both encoders concatenated on the feature
// axis, (B, 77, D1 + D2) = cross_attention_dim; pooled text_embeds (B, projection_dim) from
// text_encoder_2's projection; time ids (B, 6) = (original_size, crops_coords_top_left,
// target_size) = (H, W, 0, 0, H, W), the same for the negatives. With
// force_zeros_for_empty_prompt (model_index.json, diffusers' default true) an empty negative
// prompt conditions on zeros instead of the encoding of "" (kiln's empty negative_prompt is
// diffusers' negative_prompt=None). A folder whose text_encoder is null (the refiner layout)
// uses text_encoder_2 alone, as diffusers does.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "kiln/core/tensor.hpp"
#include "kiln/pipelines/models/autoencoder_kl.hpp"
#include "kiln/pipelines/models/clip_text.hpp"
#include "kiln/pipelines/models/unet2d_condition.hpp"
#include "kiln/pipelines/recipes/image_request.hpp"
#include "kiln/pipelines/samplers/schedules.hpp"
#include "kiln/pipelines/text/clip_tokenizer.hpp"

namespace kiln::pipelines::recipes {

class StableDiffusionXL {
 public:
  // Opens and binds every component of the folder (throws naming the component and file);
  // format_error when the encoders' widths do not add up to the U-Net's conditioning sizes.
  // `device`: where the models' weights live and the denoising runs (tokenizers, schedules and
  // the initial noise stay on the host); generate() returns images on it.
  static StableDiffusionXL load(const std::filesystem::path& folder, Device device = Device::cpu());

  // Images (batch, 3, H, W) in [-1, 1] (the VAE output, before postprocessing).
  Tensor generate(const ImageRequest& req) const;

  struct TextEmbeds {
    Tensor states;  // (1, 77, D1 + D2): hidden_states[-2] of each encoder, concatenated
    Tensor pooled;  // (1, projection_dim): text_encoder_2's text_embeds
  };
  // encode_prompt for one prompt (prompt_2 = prompt, clip_skip none).
  TextEmbeds encode_text(const std::string& prompt) const;

  int64_t vae_scale_factor() const { return vae_->downscale_factor(); }
  int64_t default_size() const { return sample_size_ * vae_scale_factor(); }  // pixels
  bool force_zeros_for_empty_prompt() const { return force_zeros_; }
  const models::UNet2DConditionModel& unet() const { return *unet_; }

  Device device() const { return device_; }

 private:
  StableDiffusionXL() = default;
  Device device_ = Device::cpu();
  // Components are immutable once bound; copies of the pipeline share them. tokenizer_ and
  // text_encoder_ are null for a folder without the first encoder.
  std::shared_ptr<const text::ClipTokenizer> tokenizer_, tokenizer_2_;
  std::shared_ptr<const models::ClipTextModel> text_encoder_, text_encoder_2_;
  std::shared_ptr<const models::UNet2DConditionModel> unet_;
  std::shared_ptr<const models::AutoencoderKL> vae_;
  samplers::ScheduleConfig schedule_cfg_;
  int64_t sample_size_ = 128;  // unet config sample_size (latent pixels)
  bool force_zeros_ = true;
};

}  // namespace kiln::pipelines::recipes
