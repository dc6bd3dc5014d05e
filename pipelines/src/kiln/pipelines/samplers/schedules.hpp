// Noise schedules: pure functions from a scheduler config and a step count to the sigmas and
// model timesteps of a sampling run, reproducing diffusers' set_timesteps bit for bit.
//
// Conventions (k-diffusion form): sigmas are VE noise levels (x = x0 + sigma * eps; for flow
// models x = (1 - sigma) x0 + sigma * eps), one per step plus the final one (0, or sigma_min for
// DDIM with set_alpha_to_one=false); timesteps[i] is what the model is called with at sigmas[i].
// Ref: diffusers schedulers/scheduling_euler_discrete.py (set_timesteps, _sigma_to_t,
// _convert_to_karras/_exponential/_beta), scheduling_dpmsolver_multistep.py, scheduling_ddim.py,
// scheduling_lcm.py, scheduling_k_dpm_2_discrete.py, scheduling_flow_match_euler_discrete.py,
// scheduling_unipc_multistep.py, scheduling_tcd.py.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::io {
class ComponentConfig;
}

namespace kiln::pipelines::samplers {

enum class BetaSchedule { linear, scaled_linear, squaredcos_cap_v2 };
enum class TimestepSpacing { linspace, leading, trailing };
enum class Prediction { epsilon, v_prediction, flow };

// The fields of a diffusers scheduler_config.json that decide the schedule and the model's
// parameterization. Defaults are diffusers' EulerDiscreteScheduler defaults.
struct ScheduleConfig {
  std::string class_name;  // "_class_name", informational
  int64_t num_train_timesteps = 1000;
  double beta_start = 0.0001, beta_end = 0.02;
  BetaSchedule beta_schedule = BetaSchedule::linear;
  TimestepSpacing spacing = TimestepSpacing::linspace;
  int64_t steps_offset = 0;
  Prediction prediction = Prediction::epsilon;
  bool set_alpha_to_one = true;  // DDIM/LCM/TCD: final alpha_cumprod = 1 (else alphas_cumprod[0])
  // Flow matching (FlowMatchEulerDiscreteScheduler): static shift or resolution-dependent mu.
  double shift = 1.0;
  bool use_dynamic_shifting = false;
  double base_shift = 0.5, max_shift = 1.15;
  int64_t base_image_seq_len = 256, max_image_seq_len = 4096;
  // LCM / TCD
  int64_t original_inference_steps = 50;
  double timestep_scaling = 10.0;
  // Clamp of the x0 estimate to [-clip_sample_range, clip_sample_range]. nullopt when the file
  // has no "clip_sample": each diffusers scheduler then applies its own default (DDIMScheduler
  // true, HeunDiscreteScheduler and LCMScheduler false), so the value only means something per
  // sampler: x0_clip_range() in samplers.hpp resolves it. Real SD folders (PNDMScheduler configs)
  // say false; a config saved by EulerDiscreteScheduler lacks the key, so DDIM clips there.
  std::optional<bool> clip_sample;
  double clip_sample_range = 1.0;
  // Dynamic thresholding (Imagen): not implemented; make_schedule refuses it for the samplers
  // whose diffusers scheduler would apply it (DDIM, DPM-Solver, UniPC, LCM).
  bool thresholding = false;
  std::string source;  // the config file, for error messages

  bool is_flow() const { return prediction == Prediction::flow; }
  // Reads a scheduler_config.json. Flow schedulers are recognised by class name
  // (FlowMatch*), by "shift"/"use_dynamic_shifting" without betas, or by UniPC's
  // "use_flow_sigmas" / prediction_type "flow_prediction" (shift from "flow_shift"). Unknown enum
  // strings are a format_error naming the key and the accepted values.
  static ScheduleConfig from_config(const io::ComponentConfig& cfg);
};

enum class ScheduleKind { model_default, karras, exponential, sgm_uniform, simple, beta };

// Which diffusers scheduler's timestep rules make the model's default schedule (they differ:
// Euler keeps fractional timesteps, DDIM and DPM-Solver round to integers with different
// spacings, LCM skips over its distillation grid). unipc: DPM-Solver's spacing (Karras timesteps
// always rounded); flow_unipc: UniPC's use_flow_sigmas grid (flow models only). tcd: LCM's
// timesteps, the last step ending at alphas_cumprod[0] instead of 0 (eps/v models only).
enum class TimestepRule { euler, kdpm2, ddim, dpm_solver, lcm, flow, unipc, flow_unipc, tcd };

struct Schedule {
  std::vector<float> sigmas;     // steps + 1
  std::vector<float> timesteps;  // steps
  float init_noise_sigma = 1.f;  // initial latents = noise * init_noise_sigma (k-diffusion form)
};

struct FlowShift {
  std::optional<double> mu;              // explicit mu for dynamic shifting
  std::optional<int64_t> image_seq_len;  // or mu from the latent token count
};

// Steps above this are refused: no sampler needs more, and it catches negative-to-unsigned bugs.
constexpr int kMaxSteps = 10000;

// The schedule for `steps` sampler steps. Throws invalid_argument for steps < 1 or > kMaxSteps
// (or above what the config allows, e.g. LCM's original_inference_steps), and for dynamic
// shifting without mu/image_seq_len; unsupported for a config with thresholding=true under a
// rule whose diffusers scheduler thresholds (ddim, dpm_solver, unipc, flow_unipc, lcm).
Schedule make_schedule(const ScheduleConfig& cfg, ScheduleKind kind, TimestepRule rule, int steps,
                       const FlowShift& flow = {});

// mu for dynamic shifting. Ref: diffusers pipelines/flux/pipeline_flux.py, calculate_shift.
double flow_mu(const ScheduleConfig& cfg, int64_t image_seq_len);

// The model's training noise table (VP models): alphas_cumprod as diffusers computes it in f32,
// sigmas = sqrt((1 - a) / a) (ascending in t) and their logs.
struct NoiseTable {
  std::vector<float> alphas_cumprod, sigmas, log_sigmas;
  static NoiseTable make(const ScheduleConfig& cfg);
  // diffusers _sigma_to_t: piecewise-linear interpolation of t over log sigma, in f64.
  double sigma_to_t(double sigma) const;
  // ComfyUI ModelSamplingDiscrete.sigma: log-linear interpolation of the table at fractional t.
  float sigma_at(float t) const;
  // sqrt((1 - a) / a) for one alpha_cumprod, in f32 as torch does.
  static float sigma_of_alpha(float a);
};

// Name registry. Names are lower-case: "default", "karras", "exponential", "sgm_uniform",
// "simple", "beta". Lookup throws invalid_argument listing the valid names.
const std::vector<std::string>& schedule_names();
ScheduleKind schedule_from_name(std::string_view name);
const char* schedule_name(ScheduleKind kind);

}  // namespace kiln::pipelines::samplers
