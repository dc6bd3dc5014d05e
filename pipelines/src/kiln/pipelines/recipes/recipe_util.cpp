#include "kiln/pipelines/recipes/recipe_util.hpp"

#include <algorithm>
#include <vector>

#include "kiln/ops/ops.hpp"
#include "kiln/rng/generator.hpp"

namespace kiln::pipelines::recipes {

bool has_present_component(const io::DiffusersFolder& f, std::string_view name) {
  return f.has_component(name) && f.component(name).present();
}

void check_steps_and_batch(const ImageRequest& req, const char* context) {
  KILN_ARG(req.steps >= 1 && req.steps <= samplers::kMaxSteps, context, "steps ", req.steps,
           " out of range [1, ", samplers::kMaxSteps, "]");
  KILN_ARG(req.batch >= 1 && req.batch <= 64, context, "batch ", req.batch,
           " out of range [1, 64]");
}

void check_max_sequence_length(int max_sequence_length, const char* context) {
  KILN_ARG(max_sequence_length >= 1 && max_sequence_length <= 512, context, "max_sequence_length ",
           max_sequence_length, " out of range [1, 512]");
}

bool is_flow_sampler(samplers::SamplerKind kind) {
  const samplers::TimestepRule r = samplers::timestep_rule(kind);
  return r == samplers::TimestepRule::flow || r == samplers::TimestepRule::flow_unipc;
}

Tensor repeat_batch(const Tensor& t, int64_t batch) {
  Shape s = t.shape();
  s[0] = batch;
  return t.expand(s).contiguous();
}

Tensor duplicate_for_cfg(const Tensor& t) {
  Tensor two[] = {t, t};
  return ops::concat(two, 0);
}

Tensor combine_cfg(const Tensor& out, float guidance_scale) {
  auto halves = ops::chunk(out, 2, 0);
  return ops::add(halves[0], ops::scale(ops::sub(halves[1], halves[0]), guidance_scale));
}

samplers::SamplerContext sampler_context(const ImageRequest& req, rng::Generator& gen) {
  samplers::SamplerContext ctx;
  ctx.gen = &gen;
  ctx.progress = req.progress;
  ctx.cancel = req.cancel;
  return ctx;
}

int flow_img2img_first_step(int steps, double strength, const char* context) {
  const double init = std::min(steps * strength, static_cast<double>(steps));
  const int t_start = static_cast<int>(std::max(steps - init, 0.0));
  KILN_ARG(t_start < steps, context, "strength ", strength, " with ", steps,
           " steps leaves no denoising step");
  return t_start;
}

void check_flow_init_image(const ImageRequest& req, const char* context) {
  const Tensor& im = req.init_image;
  KILN_ARG(im.dtype() == DType::f32 && im.ndim() == 4 && im.size(1) == 3, context,
           "init_image must be f32 (B, 3, H, W) in [-1, 1], got ", im.str());
  KILN_ARG(im.size(0) == 1 || im.size(0) == req.batch, context, "init_image batch ", im.size(0),
           " must be 1 or the request's batch ", req.batch);
  KILN_ARG(
      (req.width <= 0 || req.width == im.size(3)) && (req.height <= 0 || req.height == im.size(2)),
      context, "init_image is ", im.size(3), "x", im.size(2), " but the request asks for ",
      req.width, "x", req.height, " (leave width/height 0 to take the image's size)");
  KILN_ARG(req.strength > 0.0 && req.strength <= 1.0, context, "strength ", req.strength,
           " out of range (0, 1]");
}

void check_flow_mask(const ImageRequest& req, samplers::SamplerKind kind, const char* context) {
  KILN_ARG(req.init_image.defined(), context, "a mask needs an init_image to inpaint");
  const Tensor& m = req.mask;
  const Tensor& im = req.init_image;
  KILN_ARG(m.dtype() == DType::f32 && m.ndim() == 4 && m.size(0) == 1 && m.size(1) == 1 &&
               m.size(2) == im.size(2) && m.size(3) == im.size(3),
           context, "mask must be f32 (1, 1, ", im.size(2), ", ", im.size(3),
           ") like the init image, got ", m.str());
  KILN_CHECK(kind == samplers::SamplerKind::flow_euler, Status::unsupported, context,
             "inpainting (a mask) takes the flow_euler sampler only");
}

Tensor binarize_mask(const Tensor& mask, bool invert) {
  // invert is 1 - (m >= 0.5), exact on a 0/1 mask; unlike (m < 0.5) it maps a NaN to 1.
  const Tensor ge = ops::compare(mask, ops::Cmp::ge, 0.5f);
  return invert ? ops::scale(ge, -1.f, 1.f) : ge;
}

Tensor latent_mask(const Tensor& mask, int64_t lh, int64_t lw, int64_t batch) {
  const int64_t hw[] = {lh, lw};
  return repeat_batch(ops::interpolate(binarize_mask(mask), hw, ops::InterpMode::nearest), batch);
}

void set_flow_inpaint_blend(samplers::SamplerContext& ctx, const Tensor& x0, const Tensor& noise,
                            const Tensor& mask, std::span<const float> sigmas) {
  const Tensor keep = ops::scale(mask, -1.f, 1.f);  // 1 - m
  const std::vector<float> s(sigmas.begin(), sigmas.end());
  const int total = static_cast<int>(s.size()) - 1;
  ctx.on_step = [=](int i, const Tensor& xi, const Tensor&) {
    const float sn = s[static_cast<size_t>(i) + 1];
    const Tensor proper =
        i + 1 < total ? ops::add(ops::scale(noise, sn), ops::scale(x0, 1.f - sn)) : x0;
    // The samplers hand on_step their running latents: writing into that storage is diffusers'
    // in-loop `latents = ...`.
    Tensor running = xi;
    running.copy_from(ops::add(ops::mul(keep, proper), ops::mul(mask, xi)));
  };
}

FlowImageStart flow_image_start(const models::AutoencoderKL& vae, const Tensor& init_image,
                                int64_t batch, float first_sigma, rng::Generator& gen) {
  FlowImageStart s;
  s.x0 = vae.to_latent(vae.encode(init_image).sample(gen));
  if (s.x0.size(0) != batch) s.x0 = repeat_batch(s.x0, batch);
  s.noise = rng::randn(s.x0.shape(), gen).to(s.x0.device());  // drawn on the host, bit-exact
  s.x = ops::add(ops::scale(s.noise, first_sigma), ops::scale(s.x0, 1.f - first_sigma));
  return s;
}

}  // namespace kiln::pipelines::recipes
