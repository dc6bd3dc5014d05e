// Stable Diffusion 3 / 3.5 text-to-image and image-to-image over a diffusers folder
// (model_index.json with transformer, vae, scheduler, text_encoder + tokenizer and text_encoder_2 +
// tokenizer_2 (CLIP with projection), optionally text_encoder_3 + tokenizer_3 (T5)), equal to
// diffusers' StableDiffusion3Pipeline (StableDiffusion3Img2ImgPipeline with an init image) for the
// same seed and flow-matching sampler, and StableDiffusion3InpaintPipeline with an init image and
// a mask (16-channel transformers). Ref: diffusers
// src/diffusers/pipelines/stable_diffusion_3/pipeline_stable_diffusion_3.py,
//      pipeline_stable_diffusion_3_img2img.py, pipeline_stable_diffusion_3_inpaint.py
//
// Conditioning: both CLIPs' penultimate hidden states concatenated on the channel axis and
// zero-padded to the T5 width, then the T5 states appended on the sequence axis:
// (B, 77 + max_sequence_length, joint_attention_dim); pooled: the two projected CLIP outputs
// concatenated. Without text_encoder_3 (null in model_index.json, as the "no T5" SD3 variant
// ships) the T5 part is zeros, as diffusers does.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "kiln/core/tensor.hpp"
#include "kiln/pipelines/models/autoencoder_kl.hpp"
#include "kiln/pipelines/models/clip_text.hpp"
#include "kiln/pipelines/models/sd3_transformer.hpp"
#include "kiln/pipelines/models/t5_encoder.hpp"
#include "kiln/pipelines/recipes/image_request.hpp"
#include "kiln/pipelines/samplers/samplers.hpp"
#include "kiln/pipelines/text/clip_tokenizer.hpp"
#include "kiln/pipelines/text/t5_tokenizer.hpp"

namespace kiln::pipelines::recipes {

// What StableDiffusion3Pipeline takes besides the shared ImageRequest.
struct Sd3Options {
  int max_sequence_length = 256;  // T5 tokens, [1, 512]
};

class StableDiffusion3 {
 public:
  // Opens and binds every component of the folder (throws naming the component and file).
  // `device`: where the models' weights live and the denoising runs (tokenizers, schedules and
  // the initial noise stay on the host); generate() returns images on it.
  static StableDiffusion3 load(const std::filesystem::path& folder, Device device = Device::cpu());

  // Images (batch, 3, H, W) in about [-1, 1] (the VAE output, before postprocessing).
  // req.prompt / negative_prompt go to all three encoders; width/height must be multiples of
  // size_multiple() (0: default_size()); guidance_scale <= 1 disables classifier-free guidance;
  // the sampler must be a flow-matching one (flow_euler, flow_heun, flow_unipc); schedule
  // "default" is the scheduler config's shift. eta is unused.
  // With req.init_image (img2img): the output takes the image's size; the schedule's first
  // int(steps - steps * strength) steps are skipped and the image latents are noised to the
  // first sigma s left: s * noise + (1 - s) * x0 (the VAE's posterior sample is drawn before the
  // noise, as diffusers).
  // With req.mask as well (inpainting, flow_euler only): the same start; after each step the
  // latents outside the binarized mask (nearest-resized to the latent grid) are replaced by the
  // image latents re-noised to the next sigma (the image latents after the last step), and the
  // result is decoded without shift_factor, as StableDiffusion3InpaintPipeline does.
  Tensor generate(const ImageRequest& req, const Sd3Options& opt = {}) const;

  struct TextEmbeds {
    Tensor states;  // (1, 77 + max_sequence_length, joint_attention_dim)
    Tensor pooled;  // (1, pooled_projection_dim)
  };
  // encode_prompt for one prompt with clip_skip = none.
  TextEmbeds encode_text(const std::string& prompt, int max_sequence_length) const;

  bool has_t5() const { return text_encoder_3_ != nullptr; }
  int64_t vae_scale_factor() const { return vae_->downscale_factor(); }
  // transformer sample_size * vae factor, and vae factor * patch size (pixels).
  int64_t default_size() const;
  int64_t size_multiple() const;
  const models::SD3Transformer2DModel& transformer() const { return *transformer_; }

  Device device() const { return device_; }

 private:
  StableDiffusion3() = default;
  Device device_ = Device::cpu();
  // Components are immutable once bound; copies of the pipeline share them.
  std::shared_ptr<const text::ClipTokenizer> tokenizer_, tokenizer_2_;
  std::shared_ptr<const models::ClipTextModel> text_encoder_, text_encoder_2_;
  std::shared_ptr<const text::T5Tokenizer> tokenizer_3_;          // null without T5
  std::shared_ptr<const models::T5EncoderModel> text_encoder_3_;  // null without T5
  std::shared_ptr<const models::SD3Transformer2DModel> transformer_;
  std::shared_ptr<const models::AutoencoderKL> vae_;
  samplers::ScheduleConfig schedule_cfg_;
};

}  // namespace kiln::pipelines::recipes
