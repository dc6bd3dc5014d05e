// Samplers: stateless functions sample(denoiser, x, sigmas, ctx) in k-diffusion form.
//
//   auto cfg   = ScheduleConfig::from_config(folder.config("scheduler"));
//   auto kind  = sampler_from_name("dpmpp_2m");
//   auto sched = make_schedule(cfg, schedule_from_name("karras"), timestep_rule(kind), 20);
//   Denoiser d = wrap_model(unet_fn, cfg, sched);              // eps/v/flow -> denoised x0
//   rng::Generator gen = rng::Generator::torch_cpu(seed);
//   Tensor x = ops::scale(rng::randn(shape, gen), sched.init_noise_sigma);
//   SamplerContext ctx{&gen};
//   x = sample(kind, d, x, sched.sigmas, ctx);   // tcd: pass SamplerOptions with tcd.table set
//   x = final_latents(x, sched.sigmas.back());   // only differs for DDIM with sigma_min last
//
// x is the VE latent x0 + sigma * eps (flow: (1 - sigma) x0 + sigma * eps); VP samplers
// (DDIM, DPM-Solver, UniPC, LCM, TCD) are written in this form too, which is the same update
// divided by alpha = 1 / sqrt(1 + sigma^2). All history (previous denoised, step sizes) lives in
// locals, so one Denoiser can serve concurrent requests.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/core/tensor.hpp"
#include "kiln/pipelines/samplers/schedules.hpp"
#include "kiln/rng/generator.hpp"

namespace kiln::pipelines::samplers {

// The denoised estimate D(x; sigma) of the clean latent.
using Denoiser = std::function<Tensor(const Tensor& x, float sigma)>;
// The raw network: model input (already scaled) and timestep -> eps, v or flow velocity.
using ModelFn = std::function<Tensor(const Tensor& x_in, float timestep)>;

struct WrapOptions {
  // LCMScheduler's consistency boundary condition: denoised = c_out * x0 + c_skip * x_vp with
  // c_skip = sd^2 / ((t * scaling)^2 + sd^2), c_out = t * scaling / sqrt((t * scaling)^2 + sd^2),
  // sd = 0.5. Set it for the lcm sampler (LCM-distilled models are trained with it). With it, the
  // x0 estimate is clamped first when x0_clip_range(lcm, cfg) says so (LCMScheduler.step clips
  // before the boundary condition).
  bool lcm_boundary = false;
};

// Wraps a model into a Denoiser with diffusers' input scaling and parameterization:
//   epsilon:  x_in = x / sqrt(sigma^2 + 1), D = x - sigma * eps
//   v:        x_in = x / sqrt(sigma^2 + 1), D = x / (sigma^2 + 1) - sigma / sqrt(sigma^2 + 1) * v
//   flow:     x_in = x,                     D = x - sigma * v
// The timestep is the schedule's entry for that sigma (exact float match), else the
// continuous diffusers _sigma_to_t (VP; used by DPM2's midpoints) or sigma * T (flow).
Denoiser wrap_model(ModelFn model, const ScheduleConfig& cfg, const Schedule& schedule,
                    WrapOptions opts = {});

enum class SamplerKind {
  euler,
  euler_a,
  heun,
  dpm2,
  ddim,
  dpmpp_2m,
  dpmpp_2m_sde,
  dpmpp_3m_sde,
  lcm,
  flow_euler,
  flow_heun,
  unipc,       // UniPC on VP (eps / v) models, latents in k-diffusion form
  flow_unipc,  // UniPC on flow-matching latents (diffusers' use_flow_sigmas)
  tcd,
};

struct SamplerContext {
  rng::Generator* gen = nullptr;  // needed by the stochastic samplers (ancestral, SDE, LCM, eta>0)
  // After each step: (steps done, total). Runs on the sampling thread.
  std::function<void(int step, int total)> progress;
  // After each step, with the latents at sigmas[step] and the last denoised estimate (previews).
  std::function<void(int step, const Tensor& x, const Tensor& denoised)> on_step;
  // Checked before every model call; when set, sampling throws kiln::Error(Status::cancelled).
  const std::atomic<bool>* cancel = nullptr;
};

struct SamplerOptions {
  float eta = 0.f;  // DDIM: 0 = deterministic (the diffusers pipelines' default)

  // diffusers' clip_sample: the x0 estimate clamped to [-clip_x0, clip_x0] in every step, for
  // ddim (the direction term keeps the unclipped eps, as DDIMScheduler with
  // use_clipped_model_output=False) and heun (both slopes from the clamped x0, as
  // HeunDiscreteScheduler). Set it to x0_clip_range(kind, cfg); the other samplers refuse it
  // (lcm clips inside wrap_model).
  std::optional<float> clip_x0;

  // UniPCMultistepScheduler's options (predict_x0 and lower_order_final are always on: with the
  // final sigma 0, diffusers' order >= 2 last step divides by zero).
  struct UniPC {
    int order = 2;     // solver_order, 1..3 (the corrector adds one order of accuracy)
    bool bh1 = false;  // solver_type "bh1" (B(h) = h) instead of "bh2" (B(h) = e^h - 1)
    // disable_corrector: step indices whose result UniC does not correct (diffusers skips the
    // corrector in step i + 1 when i is listed).
    std::vector<int> disable_corrector;
  } unipc;

  // TCDScheduler's options.
  struct TCD {
    // Stochasticity gamma (diffusers' step(eta=...), default 0.3): each step goes back to the
    // intermediate timestep floor((1 - gamma) t_next), then re-noises to t_next. 0: deterministic.
    // diffusers' pipelines pass their own `eta` argument (default 0), so pass eta=0.3 there.
    float gamma = 0.3f;
    // The model's training noise table (NoiseTable::make(cfg)): the intermediate timestep is an
    // integer training timestep whose sigma is not in the sigma list. Required by tcd.
    std::shared_ptr<const NoiseTable> table;
  } tcd;
};

// Runs `kind` over sigmas (steps + 1 entries, descending, sigmas[0] > 0). Throws
// invalid_argument for a bad sigma list, or a stochastic sampler without a generator.
Tensor sample(SamplerKind kind, const Denoiser& denoiser, Tensor x, std::span<const float> sigmas,
              SamplerContext& ctx, const SamplerOptions& opts = {});

// The diffusers scheduler whose timestep rules give this sampler's default schedule.
TimestepRule timestep_rule(SamplerKind kind);
// The clip_sample range the sampler's diffusers scheduler uses with this config, or nullopt when
// it does not clip: ddim clips unless the config says clip_sample=false (DDIMScheduler's default
// is true), heun and lcm only when it says true; the other schedulers have no clip_sample (TCD
// has the key but its step() never reads it).
std::optional<float> x0_clip_range(SamplerKind kind, const ScheduleConfig& cfg);

// Whether the sampler draws noise from ctx.gen.
bool is_stochastic(SamplerKind kind, const SamplerOptions& opts = {});

// The latents in the model's own convention: x / sqrt(sigma_last^2 + 1) for a VP model when the
// schedule ends above zero (DDIM with set_alpha_to_one=false), else x unchanged.
Tensor final_latents(const Tensor& x, float sigma_last, const ScheduleConfig& cfg);

// Name registry: "euler", "euler_a", "heun", "dpm2", "ddim", "dpmpp_2m", "dpmpp_2m_sde",
// "dpmpp_3m_sde", "lcm", "flow_euler", "flow_heun", "unipc", "flow_unipc", "tcd". Lookup throws
// invalid_argument listing them.
const std::vector<std::string>& sampler_names();
SamplerKind sampler_from_name(std::string_view name);
const char* sampler_name(SamplerKind kind);

}  // namespace kiln::pipelines::samplers
