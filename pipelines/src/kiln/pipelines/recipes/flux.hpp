// Flux.1 text-to-image and image-to-image over a diffusers folder (model_index.json with
// transformer, vae, scheduler, text_encoder + tokenizer (CLIP, pooled output only) and
// text_encoder_2 + tokenizer_2 (T5)), equal to diffusers' FluxPipeline (FluxImg2ImgPipeline with an
// init image, FluxInpaintPipeline with an init image and a mask) for the same seed.
// Ref: diffusers src/diffusers/pipelines/flux/pipeline_flux.py, pipeline_flux_img2img.py,
//      pipeline_flux_inpaint.py
//
// dev-like transformers (guidance_embeds) take guidance_scale as the distilled guidance
// embedding; schnell-like ones ignore it. There is no classifier-free guidance (FluxPipeline's
// true_cfg_scale is not implemented). Latents are 2x2-packed into tokens with RoPE position ids.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "kiln/core/tensor.hpp"
#include "kiln/pipelines/models/autoencoder_kl.hpp"
#include "kiln/pipelines/models/clip_text.hpp"
#include "kiln/pipelines/models/flux_transformer.hpp"
#include "kiln/pipelines/models/t5_encoder.hpp"
#include "kiln/pipelines/recipes/image_request.hpp"
#include "kiln/pipelines/samplers/samplers.hpp"
#include "kiln/pipelines/text/clip_tokenizer.hpp"
#include "kiln/pipelines/text/t5_tokenizer.hpp"

namespace kiln::pipelines::recipes {

// What FluxPipeline takes besides the shared ImageRequest.
struct FluxOptions {
  int max_sequence_length = 512;  // T5 tokens, [1, 512]
};

class Flux {
 public:
  // Opens and binds every component of the folder (throws naming the component and file).
  // `device`: where the models' weights live and the denoising runs (tokenizers, schedules and
  // the initial noise stay on the host); generate() returns images on it.
  static Flux load(const std::filesystem::path& folder, Device device = Device::cpu());

  // Images (batch, 3, H, W) in about [-1, 1] (the VAE output, before postprocessing).
  // req.prompt goes to CLIP and T5; negative_prompt is unused (no CFG, as FluxPipeline with
  // true_cfg_scale 1); guidance_scale is the distilled guidance of guidance_embeds models and
  // unused by the others; width/height must be multiples of size_multiple() (0: default_size();
  // diffusers rounds down with a warning, kiln refuses); the sampler must be a flow-matching one.
  // Schedule "default" with flow_euler/flow_heun is FluxPipeline's (flux_schedule); other
  // schedules, and flow_unipc (diffusers' use_flow_sigmas), come from samplers::make_schedule
  // with mu for the image's token count. eta is unused.
  // With req.init_image (img2img): the output takes the image's size; the schedule's first
  // int(steps - steps * strength) steps are skipped and the image latents are noised to the
  // first sigma s left, s * noise + (1 - s) * x0, then packed (the VAE's posterior sample is
  // drawn before the noise, as diffusers).
  // With req.mask as well (inpainting, flow_euler only): the same start; after each step the
  // tokens outside the binarized mask (nearest-resized to the latent grid) are replaced by the
  // packed image latents re-noised to the next sigma (the image latents after the last step).
  Tensor generate(const ImageRequest& req, const FluxOptions& opt = {}) const;

  struct TextEmbeds {
    Tensor states;  // (1, max_sequence_length, joint_attention_dim): T5 last hidden state
    Tensor pooled;  // (1, pooled_projection_dim): CLIP pooler_output
  };
  TextEmbeds encode_text(const std::string& prompt, int max_sequence_length) const;

  // FluxPipeline's schedule for `steps` at `image_seq_len` packed tokens:
  // sigmas = linspace(1, 1/steps, steps) in f32, then the scheduler's shift (dynamic with
  // mu = calculate_shift(image_seq_len) or static), timesteps = sigmas * 1000, a final 0.
  samplers::Schedule flux_schedule(int steps, int64_t image_seq_len) const;

  bool guidance_distilled() const { return transformer_->config().guidance_embeds; }
  int64_t vae_scale_factor() const { return vae_->downscale_factor(); }
  // 128 * vae factor (FluxPipeline's default_sample_size), and 2 * vae factor (pixels).
  int64_t default_size() const { return 128 * vae_scale_factor(); }
  int64_t size_multiple() const { return 2 * vae_scale_factor(); }
  const models::FluxTransformer2DModel& transformer() const { return *transformer_; }

  Device device() const { return device_; }

 private:
  Flux() = default;
  Device device_ = Device::cpu();
  // Components are immutable once bound; copies of the pipeline share them.
  std::shared_ptr<const text::ClipTokenizer> tokenizer_;
  std::shared_ptr<const models::ClipTextModel> text_encoder_;
  std::shared_ptr<const text::T5Tokenizer> tokenizer_2_;
  std::shared_ptr<const models::T5EncoderModel> text_encoder_2_;
  std::shared_ptr<const models::FluxTransformer2DModel> transformer_;
  std::shared_ptr<const models::AutoencoderKL> vae_;
  samplers::ScheduleConfig schedule_cfg_;
};

}  // namespace kiln::pipelines::recipes
