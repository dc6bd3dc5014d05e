// Stable Diffusion 1.x/2.x text-to-image over a diffusers folder (model_index.json with
// text_encoder, tokenizer, unet, vae, scheduler), equal to diffusers' StableDiffusionPipeline
// for the same seed, sampler and schedule; with ImageRequest.init_image (+ strength) to its
// StableDiffusionImg2ImgPipeline, with a mask too to StableDiffusionInpaintPipeline (9-channel
// inpainting U-Nets, or 4-channel ones with the per-step blend; see sd_common.hpp).
// Ref: diffusers src/diffusers/pipelines/stable_diffusion/pipeline_stable_diffusion.py,
//      pipeline_stable_diffusion_img2img.py, pipeline_stable_diffusion_inpaint.py
#pragma once

#include <atomic>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "kiln/core/tensor.hpp"
#include "kiln/pipelines/models/autoencoder_kl.hpp"
#include "kiln/pipelines/models/clip_text.hpp"
#include "kiln/pipelines/models/unet2d_condition.hpp"
#include "kiln/pipelines/recipes/image_request.hpp"
#include "kiln/pipelines/samplers/samplers.hpp"
#include "kiln/pipelines/text/clip_tokenizer.hpp"

namespace kiln::pipelines::recipes {

using SdRequest = ImageRequest;

class StableDiffusion {
 public:
  // Opens and binds every component of the folder (throws naming the component and file).
  // `device`: where the models' weights live and the denoising runs (tokenizers, schedules and
  // the initial noise stay on the host); generate() returns images on it.
  static StableDiffusion load(const std::filesystem::path& folder, Device device = Device::cpu());

  // Images (batch, 3, H, W) in [-1, 1] (the VAE output, before postprocessing). Bad requests
  // (sizes, strength, mask, a mask-less request to an inpainting model) throw invalid_argument.
  Tensor generate(const SdRequest& req) const;

  // (B, 77, D) text states for `prompts`, as encode_prompt with clip_skip = none.
  Tensor encode_text(const std::string& prompt) const;
  int64_t vae_scale_factor() const { return vae_->downscale_factor(); }
  int64_t default_size() const { return sample_size_ * vae_scale_factor(); }  // pixels
  const models::UNet2DConditionModel& unet() const { return *unet_; }

  Device device() const { return device_; }

 private:
  StableDiffusion() = default;
  Device device_ = Device::cpu();
  // Components are immutable once bound; copies of the pipeline share them.
  std::shared_ptr<const text::ClipTokenizer> tokenizer_;
  std::shared_ptr<const models::ClipTextModel> text_encoder_;
  std::shared_ptr<const models::UNet2DConditionModel> unet_;
  std::shared_ptr<const models::AutoencoderKL> vae_;
  samplers::ScheduleConfig schedule_cfg_;
  int64_t sample_size_ = 64;  // unet config sample_size (latent pixels)
};

}  // namespace kiln::pipelines::recipes
