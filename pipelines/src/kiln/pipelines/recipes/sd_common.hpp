// The denoising loop shared by the U-Net recipes (SD1.x/2.x, SDXL): txt2img, img2img and
// inpainting with classifier-free guidance, equal to diffusers' StableDiffusion{,Img2Img,Inpaint}
// pipelines and their XL counterparts for the same seed, sampler and schedule. A recipe encodes
// its prompts (the only part that differs between the families) and hands the rest to
// denoise_and_decode().
// Ref: diffusers pipelines/stable_diffusion/pipeline_stable_diffusion{,_img2img,_inpaint}.py,
//      pipelines/stable_diffusion_xl/pipeline_stable_diffusion_xl{,_img2img,_inpaint}.py.
#pragma once

#include <cstdint>

#include "kiln/core/tensor.hpp"
#include "kiln/pipelines/models/autoencoder_kl.hpp"
#include "kiln/pipelines/models/unet2d_condition.hpp"
#include "kiln/pipelines/recipes/image_request.hpp"
#include "kiln/pipelines/samplers/schedules.hpp"

namespace kiln::pipelines::recipes {

struct SdParts {
  const models::UNet2DConditionModel& unet;
  const models::AutoencoderKL& vae;
  const samplers::ScheduleConfig& schedule_cfg;
  int64_t default_size;  // pixels, when the request and the init image set none
  const char* context;   // error context: the recipe's name
  Device device = Device::cpu();  // where the models' weights are; the latents live there too
};

// What the request resolves to once checked against the model.
struct SdPlan {
  int64_t width = 0, height = 0;  // pixels
  bool cfg = false;               // guidance_scale > 1
  bool img2img = false;           // init_image set
  bool inpaint = false;           // mask set
};

// Validates `req` against the model (steps, batch, sampler and schedule names, size, init image,
// strength, mask, inpainting U-Net) with invalid_argument errors naming the field; cheap, so
// recipes call it before encoding prompts.
SdPlan plan_request(const SdParts& parts, const ImageRequest& req);

// diffusers' get_timesteps: the index of the first of `steps` schedule steps that img2img runs,
// steps - min(int(steps * strength), steps). Throws when no step is left.
int img2img_first_step(int steps, double strength, const char* context);

// The text conditioning of one request, batch already expanded: (B, S, D), or (2B, S, D) with
// the negatives first when guiding (diffusers' cat order); `added` (SDXL's pooled text embeds
// and time ids) with the same leading batch, or empty.
struct SdConditioning {
  Tensor text;
  models::UNetAddedConditions added;
};

// Draws the initial latents exactly as diffusers (generator order: init-image posterior sample,
// noise, masked-image posterior sample, then the sampler's own noise), runs the sampler with CFG
// and the inpainting inputs, and decodes: images (batch, 3, H, W) in [-1, 1] on parts.device.
// The noise is drawn on the host (the torch CPU generator, bit-exact) and copied there; the
// request's init image and mask may be on any device.
Tensor denoise_and_decode(const SdParts& parts, const ImageRequest& req, const SdPlan& plan,
                          const SdConditioning& cond);

}  // namespace kiln::pipelines::recipes
