// Pieces the image recipes (SD1.x/2.x, SDXL, SD3, Flux) share verbatim: component loading,
// request checks with the same messages, batch expansion, classifier-free guidance and the
// sampler context. Anything a family does its own way stays in that family's file.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <type_traits>
#include <utility>

#include "kiln/core/tensor.hpp"
#include "kiln/io/diffusers.hpp"
#include "kiln/io/module.hpp"
#include "kiln/pipelines/models/autoencoder_kl.hpp"
#include "kiln/pipelines/recipes/image_request.hpp"
#include "kiln/pipelines/samplers/samplers.hpp"
#include "kiln/rng/generator.hpp"

namespace kiln::pipelines::recipes {

// T::load(<folder>/<name>) behind the shared_ptr<const T> the recipes hold. A model (an
// io::Module) is bound on the CPU (weights mapped, zero-copy) and then moved to `device`;
// tokenizers stay on the host.
template <typename T>
std::shared_ptr<const T> load_component(const io::DiffusersFolder& f, std::string_view name,
                                        Device device = Device::cpu()) {
  T component = T::load(f.component_dir(name));
  if constexpr (std::is_base_of_v<io::Module, T>) {
    if (!device.is_cpu()) io::to_device(component, device);
  }
  return std::make_shared<const T>(std::move(component));
}

// A component listed with a class in model_index.json (absent and [null, null] both mean no).
bool has_present_component(const io::DiffusersFolder& f, std::string_view name);

// steps in [1, kMaxSteps] and batch in [1, 64], invalid_argument naming the field otherwise.
void check_steps_and_batch(const ImageRequest& req, const char* context);
// T5 max_sequence_length in [1, 512] (SD3 and Flux).
void check_max_sequence_length(int max_sequence_length, const char* context);

// Flow-matching samplers (the schedules they take: flow, or UniPC's flow sigmas).
bool is_flow_sampler(samplers::SamplerKind kind);

// (1, ...) -> (batch, ...), contiguous: num_images_per_prompt copies of one prompt's embeddings
// (prompt_embeds.repeat(1, n, 1).view(batch, ...)).
Tensor repeat_batch(const Tensor& t, int64_t batch);
// (B, ...) -> (2B, ...): the model input of a guided step, one copy per half.
Tensor duplicate_for_cfg(const Tensor& t);
// The (2B, ...) output of a guided step, negatives first -> uncond + g * (text - uncond).
Tensor combine_cfg(const Tensor& out, float guidance_scale);

// The sampler context of a request: its generator, progress and cancel callbacks.
samplers::SamplerContext sampler_context(const ImageRequest& req, rng::Generator& gen);

// Flow-matching img2img (SD3/Flux Img2ImgPipeline.get_timesteps, in Python float arithmetic):
//   init_timestep = min(steps * strength, steps); t_start = int(max(steps - init_timestep, 0)).
// Unlike the U-Net pipelines' int(steps * strength), 4 steps at 0.6 start at 1 (int(1.6)), not 2.
// Throws invalid_argument when no step is left.
int flow_img2img_first_step(int steps, double strength, const char* context);
// prepare_latents of the flow img2img/inpaint pipelines (SD3, Flux), in their generator order:
// the posterior sample of the image batch first, (z - shift_factor) * scaling_factor, repeated to
// `batch`, then the noise; the start is scheduler.scale_noise at the first sigma s:
// s * noise + (1 - s) * x0. All three (B, C, h, w), unpacked.
struct FlowImageStart {
  Tensor x0, noise, x;
};
FlowImageStart flow_image_start(const models::AutoencoderKL& vae, const Tensor& init_image,
                                int64_t batch, float first_sigma, rng::Generator& gen);

// The init image against the request: f32 (1 | batch, 3, H, W); the output takes its size, so
// width/height must be 0 or equal; strength in (0, 1].
void check_flow_init_image(const ImageRequest& req, const char* context);

// Flow-matching inpainting with a latent-channel transformer (SD3 16, Flux 64 packed): diffusers'
// StableDiffusion3InpaintPipeline / FluxInpaintPipeline. Ref: diffusers
// pipeline_stable_diffusion_3_inpaint.py, pipeline_flux_inpaint.py (prepare_mask_latents, the
// denoising loop).
//
// The mask against the request (after check_flow_init_image): an init image, f32 (1, 1, H, W)
// of the image's size, and flow_euler. Other samplers are Status::unsupported: diffusers blends
// after every scheduler.step(), i.e. twice per step for FlowMatchHeunDiscreteScheduler (kiln's
// Heun step is one unit), and UniPCMultistepScheduler has no scale_noise (diffusers fails).
void check_flow_mask(const ImageRequest& req, samplers::SamplerKind kind, const char* context);
// mask_processor.preprocess(do_binarize=True): >= 0.5 -> 1, else 0. `invert` gives (mask < 0.5),
// the keep-mask StableDiffusionInpaintPipeline multiplies the image with.
Tensor binarize_mask(const Tensor& mask, bool invert = false);
// The binarized mask interpolated to (lh, lw) (torch's default mode, nearest), repeated to the
// batch: (batch, 1, lh, lw), 0 or 1 — every inpainting pipeline's latent mask.
Tensor latent_mask(const Tensor& mask, int64_t lh, int64_t lw, int64_t batch);
// Installs ctx.on_step: after step i the running latents become
//   (1 - m) * proper + m * x,  proper = s * noise + (1 - s) * x0  (scheduler.scale_noise at
// s = sigmas[i + 1]), and proper = x0 after the last step. x0, noise and mask are in the layout
// the sampler runs in (Flux: packed, the mask repeated over the channels before packing);
// sigmas is the span the sampler runs (it is copied).
void set_flow_inpaint_blend(samplers::SamplerContext& ctx, const Tensor& x0, const Tensor& noise,
                            const Tensor& mask, std::span<const float> sigmas);

}  // namespace kiln::pipelines::recipes
