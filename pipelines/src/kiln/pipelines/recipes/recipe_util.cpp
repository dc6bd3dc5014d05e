#include "kiln/pipelines/recipes/recipe_util.hpp"

#include "kiln/ops/ops.hpp"

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

}  // namespace kiln::pipelines::recipes
