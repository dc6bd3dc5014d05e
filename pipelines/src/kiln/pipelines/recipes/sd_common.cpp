#include "kiln/pipelines/recipes/sd_common.hpp"

#include <cmath>
#include <vector>

#include "kiln/ops/ops.hpp"
#include "kiln/pipelines/recipes/recipe_util.hpp"
#include "kiln/pipelines/samplers/samplers.hpp"
#include "kiln/rng/generator.hpp"

namespace kiln::pipelines::recipes {

namespace {

// (b, ...) -> (batch, ...) by whole copies, as torch.cat([x] * (batch // b)).
// _encode_vae_image / retrieve_latents(sample_mode="sample") * scaling, then repeated to the
// batch: one posterior sample over the image batch, drawn from the request's generator.
Tensor encode_image(const models::AutoencoderKL& vae, const Tensor& image, int64_t batch,
                    rng::Generator& gen) {
  return repeat_batch(vae.to_latent(vae.encode(image).sample(gen)), batch);
}

}  // namespace

int img2img_first_step(int steps, double strength, const char* context) {
  // Python: init_timestep = min(int(num_inference_steps * strength), num_inference_steps).
  const int init = std::min(static_cast<int>(steps * strength), steps);
  KILN_ARG(init >= 1, context, "strength ", strength, " with ", steps,
           " steps leaves no denoising step (int(steps * strength) = 0)");
  return steps - init;
}

SdPlan plan_request(const SdParts& p, const ImageRequest& req) {
  const char* ctx = p.context;
  check_steps_and_batch(req, ctx);
  samplers::sampler_from_name(req.sampler);    // throws listing the names
  samplers::schedule_from_name(req.schedule);  // idem
  SdPlan plan;
  plan.cfg = req.guidance_scale > 1.f;
  plan.img2img = req.init_image.defined();
  plan.inpaint = req.mask.defined();
  const int64_t f = p.vae.downscale_factor();
  plan.width = req.width > 0 ? req.width : p.default_size;
  plan.height = req.height > 0 ? req.height : p.default_size;
  if (plan.img2img) {
    const Tensor& im = req.init_image;
    KILN_ARG(im.dtype() == DType::f32 && im.ndim() == 4 && im.size(1) == 3, ctx,
             "init_image must be f32 (B, 3, H, W) in [-1, 1], got ", im.str());
    KILN_ARG(im.size(0) == 1 || im.size(0) == req.batch, ctx, "init_image batch ", im.size(0),
             " must be 1 or the request's batch ", req.batch);
    KILN_ARG((req.width <= 0 || req.width == im.size(3)) &&
                 (req.height <= 0 || req.height == im.size(2)),
             ctx, "init_image is ", im.size(3), "x", im.size(2), " but the request asks for ",
             req.width, "x", req.height, " (leave width/height 0 to take the image's size)");
    plan.width = im.size(3);
    plan.height = im.size(2);
    KILN_ARG(req.strength > 0.0 && req.strength <= 1.0, ctx, "strength ", req.strength,
             " out of range (0, 1]");
    img2img_first_step(req.steps, req.strength, ctx);
  }
  KILN_ARG(plan.width % f == 0 && plan.height % f == 0 && plan.width > 0 && plan.height > 0, ctx,
           "size ", plan.width, "x", plan.height, " is not a multiple of the VAE factor ", f);
  const int64_t in_ch = p.unet.config().in_channels;
  const int64_t lat_ch = p.vae.config.latent_channels;
  if (plan.inpaint) {
    KILN_ARG(plan.img2img, ctx, "a mask needs an init_image to inpaint");
    const Tensor& m = req.mask;
    KILN_ARG(m.dtype() == DType::f32 && m.ndim() == 4 && m.size(0) == 1 && m.size(1) == 1 &&
                 m.size(2) == plan.height && m.size(3) == plan.width,
             ctx, "mask must be f32 (1, 1, ", plan.height, ", ", plan.width,
             ") like the init image, got ", m.str());
    KILN_ARG(in_ch == lat_ch || in_ch == 2 * lat_ch + 1, ctx, "cannot inpaint with a U-Net of ",
             in_ch, " input channels (", lat_ch, ", or ", 2 * lat_ch + 1,
             " for an inpainting model)");
    const samplers::SamplerKind kind = samplers::sampler_from_name(req.sampler);
    // diffusers re-noises the original outside the mask after every scheduler.step(), i.e.
    // twice per step for the second-order schedulers; kiln's Heun/DPM2 step is one unit.
    KILN_CHECK(in_ch != lat_ch ||
                   (kind != samplers::SamplerKind::heun && kind != samplers::SamplerKind::dpm2),
               Status::unsupported, ctx, "inpainting with a ", lat_ch,
               "-channel (non-inpainting) model and the second-order sampler ", req.sampler,
               " is not supported; use a first-order or multistep sampler");
  } else {
    KILN_ARG(in_ch == lat_ch, ctx, "this is an inpainting model (U-Net with ", in_ch,
             " input channels): it needs an init_image and a mask");
  }
  return plan;
}

Tensor denoise_and_decode(const SdParts& p, const ImageRequest& req, const SdPlan& plan,
                          const SdConditioning& cond) {
  const samplers::SamplerKind kind = samplers::sampler_from_name(req.sampler);
  const samplers::ScheduleKind sched_kind = samplers::schedule_from_name(req.schedule);
  const int64_t B = req.batch, f = p.vae.downscale_factor();
  const int64_t C = p.vae.config.latent_channels;
  const Shape shape{B, C, plan.height / f, plan.width / f};
  const bool inpaint_unet = p.unet.config().in_channels != C;
  const Device dev = p.device;
  const Tensor init_image = plan.img2img ? req.init_image.to(dev) : Tensor();
  const Tensor mask = plan.inpaint ? req.mask.to(dev) : Tensor();

  samplers::Schedule sched =
      samplers::make_schedule(p.schedule_cfg, sched_kind, samplers::timestep_rule(kind), req.steps);
  // img2img/inpaint run the tail of the schedule (get_timesteps + set_begin_index): in
  // k-diffusion form, sigmas[t_start:], the first being the one add_noise uses.
  const int t_start = plan.img2img ? img2img_first_step(req.steps, req.strength, p.context) : 0;
  std::span<const float> sigmas(sched.sigmas);
  sigmas = sigmas.subspan(static_cast<size_t>(t_start));

  // Initial latents; diffusers' generator order. scheduler.add_noise(x0, noise, t) is
  // x0 + sigma * noise in k-diffusion form (sqrt(a) x0 + sqrt(1 - a) noise for VP schedulers).
  rng::Generator gen = rng::Generator::torch_cpu(req.seed);
  Tensor x, noise, image_latents, mask_lat, masked_lat;  // latents (B, C, h, w)
  const bool strength_max = plan.inpaint && req.strength == 1.0;
  if (plan.img2img && !(strength_max && inpaint_unet))  // inpaint: only needed to start from it
    image_latents = encode_image(p.vae, init_image, B, gen);  // or to blend (4 channels)
  noise = rng::randn(shape, gen).to(dev);
  if (!plan.img2img || strength_max)
    x = ops::scale(noise, sched.init_noise_sigma);
  else
    x = ops::add(image_latents, ops::scale(noise, sigmas[0]));
  if (plan.inpaint) {
    // prepare_mask_latents: mask (binarized) resized to the latent grid with nearest; the
    // masked image (init * (mask < 0.5)) encoded with its own posterior sample.
    Tensor masked = ops::mul(init_image, binarize_mask(mask, /*invert=*/true));
    masked_lat = encode_image(p.vae, masked, B, gen);
    mask_lat = latent_mask(mask, shape[2], shape[3], B);
  }

  const float g = req.guidance_scale;
  const bool cfg = plan.cfg;
  const Tensor mask_in =
      plan.inpaint && inpaint_unet ? (cfg ? duplicate_for_cfg(mask_lat) : mask_lat) : Tensor();
  const Tensor masked_in =
      plan.inpaint && inpaint_unet ? (cfg ? duplicate_for_cfg(masked_lat) : masked_lat) : Tensor();
  samplers::ModelFn model = [&](const Tensor& x_in, float t) {
    Tensor in = cfg ? duplicate_for_cfg(x_in) : x_in;
    if (mask_in.defined()) {  // 9 channels: (latents, mask, masked image latents), unscaled
      Tensor parts[] = {in, mask_in, masked_in};
      in = ops::concat(parts, 1);
    }
    Tensor ts = Tensor::full({in.size(0)}, t, in.device());
    Tensor out = p.unet.forward(in, ts, cond.text, cond.added);
    return cfg ? combine_cfg(out, g) : out;
  };
  // LCMScheduler always applies the consistency boundary condition; TCD's intermediate point is
  // a training timestep off the sigma list, so it needs the model's noise table.
  samplers::WrapOptions wrap;
  wrap.lcm_boundary = kind == samplers::SamplerKind::lcm;
  samplers::Denoiser denoiser = samplers::wrap_model(model, p.schedule_cfg, sched, wrap);
  samplers::SamplerContext ctx = sampler_context(req, gen);
  // 4-channel inpainting: after each step but the last, the latents outside the mask are
  // replaced by the original re-noised to the next sigma:
  //   x = (1 - m) * (x0 + sigma_next * noise) + m * x.
  // The samplers hand on_step their running latents; writing into that tensor's storage is what
  // diffusers' in-loop `latents = ...` does. The last blend (un-noised x0) follows
  // final_latents, in the model's own convention as diffusers applies it.
  const bool blend = plan.inpaint && !inpaint_unet;
  const Tensor keep = blend ? ops::scale(mask_lat, -1.f, 1.f) : Tensor();  // 1 - m
  const int total = static_cast<int>(sigmas.size()) - 1;
  if (blend)
    ctx.on_step = [&](int i, const Tensor& xi, const Tensor&) {
      if (i + 1 >= total) return;
      Tensor proper =
          ops::add(image_latents, ops::scale(noise, sigmas[static_cast<size_t>(i) + 1]));
      Tensor running = xi;  // shares xi's storage
      running.copy_from(ops::add(ops::mul(keep, proper), ops::mul(mask_lat, xi)));
    };
  samplers::SamplerOptions opts;
  opts.eta = req.eta;
  // diffusers' clip_sample (DDIM's default is on when the folder's config lacks the key).
  opts.clip_x0 = samplers::x0_clip_range(kind, p.schedule_cfg);
  if (kind == samplers::SamplerKind::tcd)
    opts.tcd.table =
        std::make_shared<const samplers::NoiseTable>(samplers::NoiseTable::make(p.schedule_cfg));
  x = samplers::sample(kind, denoiser, x, sigmas, ctx, opts);
  x = samplers::final_latents(x, sigmas.back(), p.schedule_cfg);
  if (blend) x = ops::add(ops::mul(keep, image_latents), ops::mul(mask_lat, x));
  return p.vae.decode(p.vae.from_latent(x));
}

}  // namespace kiln::pipelines::recipes
