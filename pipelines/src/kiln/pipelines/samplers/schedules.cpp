// Each step below mirrors the precision diffusers computes in (f32 torch tensors, f64 numpy
// arrays, f32 casts), because the sigmas must match to the bit: a sigma one ulp off changes the
// model input, and a timestep one ulp off changes the timestep embedding.
#include "kiln/pipelines/samplers/schedules.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>

#include "kiln/core/error.hpp"
#include "kiln/io/diffusers.hpp"

namespace kiln::pipelines::samplers {
namespace {

constexpr const char* kCtx = "schedule";

// torch.linspace(start, end, steps, dtype=float32) on the CPU: the step is computed in f32 and
// each element as one fused multiply-add from the nearer end (ATen RangeFactoriesKernel.cpp
// linspace_kernel; Vectorized<float>::arange is fmadd-based). Verified against torch 2.15 for
// the beta tables of all three beta schedules: 0 mismatches in 1000.
std::vector<float> torch_linspace_f32(double start_d, double end_d, int64_t steps) {
  std::vector<float> out(static_cast<size_t>(steps));
  const float start = static_cast<float>(start_d), end = static_cast<float>(end_d);
  if (steps == 1) {
    out[0] = start;
    return out;
  }
  const float step = (end - start) / static_cast<float>(steps - 1);
  const int64_t halfway = steps / 2;
  for (int64_t i = 0; i < steps; ++i)
    out[static_cast<size_t>(i)] = i < halfway
                                      ? std::fma(step, static_cast<float>(i), start)
                                      : std::fma(-step, static_cast<float>(steps - i - 1), end);
  return out;
}

// numpy.linspace(start, stop, num) in f64: i * step + start, the last element set to stop.
std::vector<double> np_linspace(double start, double stop, int64_t num, bool endpoint = true) {
  std::vector<double> y(static_cast<size_t>(num));
  const int64_t div = endpoint ? num - 1 : num;
  const double step = div > 0 ? (stop - start) / static_cast<double>(div) : 0.0;
  for (int64_t i = 0; i < num; ++i)
    y[static_cast<size_t>(i)] = div > 0 ? static_cast<double>(i) * step + start
                                        : static_cast<double>(i) * (stop - start) + start;
  if (endpoint && num > 1) y.back() = stop;
  return y;
}

// numpy.arange(start, stop, step) for a negative float step: length ceil((stop - start) / step).
std::vector<double> np_arange_desc(double start, double stop, double step) {
  const auto n = static_cast<int64_t>(std::ceil((stop - start) / step));
  std::vector<double> y;
  for (int64_t i = 0; i < n; ++i) y.push_back(start + static_cast<double>(i) * step);
  return y;
}

double np_round(double v) {
  return std::nearbyint(v);
}  // half to even, as numpy

// numpy.interp over xp = 0..n-1 (the training timesteps) with f32 table values.
double np_interp_table(double x, const std::vector<float>& fp) {
  const auto n = static_cast<int64_t>(fp.size());
  if (x <= 0) return fp.front();
  if (x >= static_cast<double>(n - 1)) return fp.back();
  const auto j = static_cast<int64_t>(std::floor(x));
  if (static_cast<double>(j) == x) return fp[static_cast<size_t>(j)];
  const double slope = static_cast<double>(fp[static_cast<size_t>(j) + 1]) -
                       static_cast<double>(fp[static_cast<size_t>(j)]);
  return slope * (x - static_cast<double>(j)) + static_cast<double>(fp[static_cast<size_t>(j)]);
}

// Regularized incomplete beta I_x(a, b) by its continued fraction (modified Lentz), f64.
// Ref: Numerical Recipes 3rd ed. §6.4 (betacf); converges in < 100 terms for x < (a+1)/(a+b+2).
double betacf(double a, double b, double x) {
  const double tiny = 1e-300;
  double c = 1, d = 1 - (a + b) * x / (a + 1);
  if (std::fabs(d) < tiny) d = tiny;
  d = 1 / d;
  double h = d;
  for (int m = 1; m < 1000; ++m) {
    const double m2 = 2.0 * m;
    double aa = m * (b - m) * x / ((a - 1 + m2) * (a + m2));
    d = 1 + aa * d;
    if (std::fabs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (std::fabs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    aa = -(a + m) * (a + b + m) * x / ((a + m2) * (a + 1 + m2));
    d = 1 + aa * d;
    if (std::fabs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (std::fabs(c) < tiny) c = tiny;
    d = 1 / d;
    const double del = d * c;
    h *= del;
    if (std::fabs(del - 1) < 1e-16) break;
  }
  return h;
}

double incbeta(double a, double b, double x) {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const double lbt =
      std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) + a * std::log(x) + b * std::log1p(-x);
  if (x < (a + 1) / (a + b + 2)) return std::exp(lbt) * betacf(a, b, x) / a;
  return 1 - std::exp(lbt) * betacf(b, a, 1 - x) / b;
}

// scipy.stats.beta.ppf(p, a, b): the inverse of I_x by bisection to the last bit of f64 (I_x is
// monotone, so 200 halvings reach adjacent doubles). Slow-but-sure is fine: it runs per step,
// not per element.
double beta_ppf(double p, double a, double b) {
  if (p <= 0) return 0;
  if (p >= 1) return 1;
  double lo = 0, hi = 1;
  for (int it = 0; it < 200; ++it) {
    const double mid = 0.5 * (lo + hi);
    if (mid <= lo || mid >= hi) break;
    (incbeta(a, b, mid) < p ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

// diffusers _convert_to_karras / _exponential / _beta (f64), from the first and last sigma.
std::vector<double> convert_sigmas(ScheduleKind kind, double sigma_min, double sigma_max, int n) {
  std::vector<double> out(static_cast<size_t>(n));
  if (kind == ScheduleKind::karras) {
    // Karras et al. 2022 eq. 5 with rho = 7.
    const double rho = 7.0;
    const auto ramp = np_linspace(0, 1, n);
    const double min_inv = std::pow(sigma_min, 1 / rho), max_inv = std::pow(sigma_max, 1 / rho);
    for (int i = 0; i < n; ++i)
      out[static_cast<size_t>(i)] =
          std::pow(max_inv + ramp[static_cast<size_t>(i)] * (min_inv - max_inv), rho);
  } else if (kind == ScheduleKind::exponential) {
    const auto l = np_linspace(std::log(sigma_max), std::log(sigma_min), n);
    for (int i = 0; i < n; ++i) out[static_cast<size_t>(i)] = std::exp(l[static_cast<size_t>(i)]);
  } else {  // beta(0.6, 0.6): "Beta Sampling is All You Need" (Lee et al. 2024)
    const auto lin = np_linspace(0, 1, n);
    for (int i = 0; i < n; ++i) {
      const double ppf = beta_ppf(1 - lin[static_cast<size_t>(i)], 0.6, 0.6);
      out[static_cast<size_t>(i)] = sigma_min + ppf * (sigma_max - sigma_min);
    }
  }
  return out;
}

bool is_converted(ScheduleKind k) {
  return k == ScheduleKind::karras || k == ScheduleKind::exponential || k == ScheduleKind::beta;
}

float f32_sqrt_sq_plus_one(float s) {
  return std::sqrt(s * s + 1.f);
}

// Timesteps of a VP schedule as the rule's scheduler spaces them (before sigmas are derived).
std::vector<double> vp_timesteps(const ScheduleConfig& c, TimestepRule rule, int n) {
  const int64_t T = c.num_train_timesteps;
  std::vector<double> ts;
  if (rule == TimestepRule::dpm_solver || rule == TimestepRule::unipc) {
    // DPMSolverMultistepScheduler spaces n + 1 points and drops the last (lambda_min_clipped
    // = -inf keeps last_timestep = T); UniPCMultistepScheduler.set_timesteps does the same.
    if (c.spacing == TimestepSpacing::linspace) {
      auto l = np_linspace(0, static_cast<double>(T - 1), n + 1);
      for (int i = n; i >= 1; --i) ts.push_back(np_round(l[static_cast<size_t>(i)]));
    } else if (c.spacing == TimestepSpacing::leading) {
      const int64_t ratio = T / (n + 1);
      for (int i = n; i >= 1; --i) ts.push_back(static_cast<double>(i * ratio + c.steps_offset));
    } else {
      for (double v : np_arange_desc(static_cast<double>(T), 0, -static_cast<double>(T) / n))
        ts.push_back(np_round(v) - 1);
    }
    return ts;
  }
  const bool integer = rule == TimestepRule::ddim;
  if (c.spacing == TimestepSpacing::linspace) {
    auto l = np_linspace(0, static_cast<double>(T - 1), n);
    for (int i = n - 1; i >= 0; --i) {
      const double v = l[static_cast<size_t>(i)];
      // Euler casts the f64 linspace to f32 (dtype=np.float32); DDIM rounds to int64.
      ts.push_back(integer ? np_round(v) : static_cast<double>(static_cast<float>(v)));
    }
  } else if (c.spacing == TimestepSpacing::leading) {
    const int64_t ratio = T / n;
    for (int i = n - 1; i >= 0; --i) ts.push_back(static_cast<double>(i * ratio + c.steps_offset));
  } else {
    for (double v : np_arange_desc(static_cast<double>(T), 0, -static_cast<double>(T) / n))
      ts.push_back(np_round(v) - 1);
  }
  return ts;
}

Schedule vp_schedule(const ScheduleConfig& c, ScheduleKind kind, TimestepRule rule, int n) {
  const NoiseTable tab = NoiseTable::make(c);
  const int64_t T = c.num_train_timesteps;
  Schedule s;
  if (kind == ScheduleKind::simple || kind == ScheduleKind::sgm_uniform) {
    // ComfyUI comfy/samplers.py. simple_scheduler: every (T / n)-th training sigma from the top.
    // normal_scheduler(sgm=True): n + 1 points evenly spaced in t from t(sigma_max) = T - 1 to
    // t(sigma_min) = 0, the last dropped, mapped through the log-linear sigma(t).
    if (kind == ScheduleKind::simple) {
      const double ss = static_cast<double>(T) / n;
      for (int x = 0; x < n; ++x)
        s.sigmas.push_back(tab.sigmas[static_cast<size_t>(T - 1 - static_cast<int64_t>(x * ss))]);
    } else {
      auto ts = torch_linspace_f32(static_cast<double>(T - 1), 0, n + 1);
      for (int i = 0; i < n; ++i) s.sigmas.push_back(tab.sigma_at(ts[static_cast<size_t>(i)]));
    }
    for (float sg : s.sigmas) {
      double t = tab.sigma_to_t(sg);
      if (rule != TimestepRule::euler) t = np_round(t);
      s.timesteps.push_back(static_cast<float>(t));
    }
    s.sigmas.push_back(0.f);
  } else if (rule == TimestepRule::ddim || rule == TimestepRule::lcm || rule == TimestepRule::tcd) {
    KILN_ARG(kind == ScheduleKind::model_default, kCtx, "schedule '", schedule_name(kind),
             "' is not defined for DDIM/LCM/TCD timesteps; use the default schedule");
    std::vector<double> ts;
    if (rule == TimestepRule::ddim) {
      ts = vp_timesteps(c, rule, n);
    } else {
      // LCMScheduler (and TCDScheduler, same code): the distillation grid k*i - 1 (i = 1..original
      // steps), reversed, sampled at floor(linspace(0, len, n, endpoint=False)).
      const int64_t orig = c.original_inference_steps;
      KILN_ARG(orig >= 1 && orig <= T, kCtx, "original_inference_steps must be in [1, ", T,
               "], got ", orig);
      KILN_ARG(n <= orig, kCtx, "LCM/TCD allow at most original_inference_steps = ", orig,
               " steps, got ", n);
      const int64_t k = T / orig;
      const auto idx = np_linspace(0, static_cast<double>(orig), n, /*endpoint=*/false);
      for (int i = 0; i < n; ++i) {
        const auto j = static_cast<int64_t>(std::floor(idx[static_cast<size_t>(i)]));
        ts.push_back(static_cast<double>((orig - j) * k - 1));
      }
    }
    for (double t : ts) {
      KILN_ARG(t >= 0 && t < static_cast<double>(T), kCtx, "timestep ", t, " out of range");
      s.sigmas.push_back(tab.sigmas[static_cast<size_t>(t)]);
      s.timesteps.push_back(static_cast<float>(t));
    }
    float last = 0.f;
    if (rule == TimestepRule::ddim) {
      // DDIMScheduler.step: prev_timestep = t - T // n, alphas_cumprod[prev] or the final alpha.
      const int64_t prev = static_cast<int64_t>(ts.back()) - T / n;
      const float a = prev >= 0 ? tab.alphas_cumprod[static_cast<size_t>(prev)]
                                : (c.set_alpha_to_one ? 1.f : tab.alphas_cumprod[0]);
      last = NoiseTable::sigma_of_alpha(a);
    } else if (rule == TimestepRule::tcd) {
      // TCDScheduler.step: the last step's prev_timestep is 0 (not -1), so it lands on
      // alphas_cumprod[0], whatever set_alpha_to_one says.
      last = tab.sigmas[0];
    }
    s.sigmas.push_back(last);
  } else {
    const std::vector<double> ts = vp_timesteps(c, rule, n);
    std::vector<double> sig;
    for (double t : ts) sig.push_back(np_interp_table(t, tab.sigmas));
    std::vector<double> tsd = ts;
    if (is_converted(kind)) {
      // Euler/Heun/KDPM2 take the range of the spaced sigmas; DPM-Solver the full training range.
      double smin = sig.back(), smax = sig.front();
      if (rule == TimestepRule::dpm_solver || rule == TimestepRule::unipc) {
        smin = tab.sigmas.front();
        smax = tab.sigmas.back();
      }
      sig = convert_sigmas(kind, smin, smax, n);
      tsd.clear();
      for (double sg : sig) {
        double t = tab.sigma_to_t(sg);
        // UniPC rounds Karras timesteps whatever the beta schedule.
        const bool round = kind == ScheduleKind::karras &&
                           (rule == TimestepRule::unipc ||
                            ((rule == TimestepRule::kdpm2 || rule == TimestepRule::dpm_solver) &&
                             c.beta_schedule != BetaSchedule::squaredcos_cap_v2));
        if (round) t = np_round(t);
        // DPM-Solver and UniPC store int64 timesteps: the cast truncates.
        if (rule == TimestepRule::dpm_solver || rule == TimestepRule::unipc) t = std::trunc(t);
        tsd.push_back(t);
      }
    }
    for (size_t i = 0; i < sig.size(); ++i) {
      s.sigmas.push_back(static_cast<float>(sig[i]));
      s.timesteps.push_back(static_cast<float>(tsd[i]));
    }
    s.sigmas.push_back(0.f);
  }
  // init_noise_sigma: Euler-family schedulers start at sigma_max (linspace/trailing) or
  // sqrt(sigma_max^2 + 1) (leading); VP schedulers (DDIM, DPM-Solver, LCM) start from unit
  // noise in the VP sample x / sqrt(sigma^2 + 1), which is the latter in k-diffusion form.
  const float smax = *std::max_element(s.sigmas.begin(), s.sigmas.end());
  const bool euler_family = rule == TimestepRule::euler || rule == TimestepRule::kdpm2;
  if (euler_family)
    s.init_noise_sigma = c.spacing == TimestepSpacing::leading ? f32_sqrt_sq_plus_one(smax) : smax;
  else
    s.init_noise_sigma = f32_sqrt_sq_plus_one(s.sigmas.front());
  return s;
}

double flow_shift_value(const ScheduleConfig& c, double s, bool dynamic, double mu) {
  if (dynamic) {
    // exponential time shift: e^mu / (e^mu + (1/t - 1)^1)
    const double em = std::exp(mu);
    return em / (em + (1 / s - 1));
  }
  return c.shift * s / (1 + (c.shift - 1) * s);
}

Schedule flow_schedule(const ScheduleConfig& c, ScheduleKind kind, TimestepRule rule, int n,
                       const FlowShift& f) {
  const int64_t T = c.num_train_timesteps;
  const bool dynamic = c.use_dynamic_shifting;
  double mu = 0;
  if (dynamic) {
    KILN_ARG(f.mu || f.image_seq_len, kCtx,
             "the scheduler uses dynamic shifting: pass mu or the image sequence length");
    mu = f.mu ? *f.mu : flow_mu(c, *f.image_seq_len);
  }
  // FlowMatchEulerDiscreteScheduler.__init__: sigma_min is the last training sigma, shifted in
  // f32 when the shift is static (so set_timesteps shifts it a second time, as diffusers does).
  float smin_f = 1.f / static_cast<float>(T);
  if (!dynamic) {
    const auto sh = static_cast<float>(c.shift), shm1 = static_cast<float>(c.shift - 1);
    smin_f = sh * smin_f / (1.f + shm1 * smin_f);
  }
  const double smax = 1.0, smin = smin_f;
  Schedule s;
  std::vector<double> sig;
  if (rule == TimestepRule::flow_unipc && kind == ScheduleKind::model_default) {
    // UniPCMultistepScheduler.set_timesteps with use_flow_sigmas: n of the n + 1 points
    // linspace(1, 1/T), shifted by flow_shift (or the exponential time shift with mu); the first
    // pulled 1e-6 below 1 (log(alpha) would be -inf there); timesteps = int64(sigma * T) in f64.
    sig = np_linspace(1, 1 / static_cast<double>(T), n + 1);
    sig.pop_back();
    for (double& v : sig) v = flow_shift_value(c, v, dynamic, mu);
    if (std::fabs(sig[0] - 1) < 1e-6) sig[0] -= 1e-6;
    for (double v : sig) {
      s.sigmas.push_back(static_cast<float>(v));
      s.timesteps.push_back(static_cast<float>(std::trunc(v * static_cast<double>(T))));
    }
    s.sigmas.push_back(0.f);
    return s;
  }
  if (kind == ScheduleKind::simple || kind == ScheduleKind::sgm_uniform) {
    // ComfyUI ModelSamplingDiscreteFlow: sigma(t) = shift(t / T) over t = 1..T; simple takes
    // every (T / n)-th from the top, sgm_uniform n + 1 points evenly in t from T to 0 (last
    // dropped; sigma(0) clamps to the first table entry).
    auto sig_at = [&](double t) {
      return flow_shift_value(c, t / static_cast<double>(T), dynamic, mu);
    };
    if (kind == ScheduleKind::simple) {
      const double ss = static_cast<double>(T) / n;
      for (int x = 0; x < n; ++x)
        sig.push_back(sig_at(static_cast<double>(T - static_cast<int64_t>(x * ss))));
    } else {
      auto ts = np_linspace(static_cast<double>(T), 0, n + 1);
      for (int i = 0; i < n; ++i) sig.push_back(sig_at(std::max(1.0, ts[static_cast<size_t>(i)])));
    }
  } else {
    const auto ts = np_linspace(smax * static_cast<double>(T), smin * static_cast<double>(T), n);
    for (double t : ts) sig.push_back(flow_shift_value(c, t / static_cast<double>(T), dynamic, mu));
    if (is_converted(kind)) sig = convert_sigmas(kind, sig.back(), sig.front(), n);
  }
  for (double v : sig) {
    const auto sf = static_cast<float>(v);
    s.sigmas.push_back(sf);
    s.timesteps.push_back(sf * static_cast<float>(T));  // timesteps = sigmas * T in f32
  }
  s.sigmas.push_back(0.f);
  s.init_noise_sigma = 1.f;
  return s;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

NoiseTable NoiseTable::make(const ScheduleConfig& c) {
  const int64_t T = c.num_train_timesteps;
  std::vector<float> betas;
  switch (c.beta_schedule) {
    case BetaSchedule::linear:
      betas = torch_linspace_f32(c.beta_start, c.beta_end, T);
      break;
    case BetaSchedule::scaled_linear:
      betas = torch_linspace_f32(std::sqrt(c.beta_start), std::sqrt(c.beta_end), T);
      for (float& b : betas) b = b * b;
      break;
    case BetaSchedule::squaredcos_cap_v2: {
      // betas_for_alpha_bar (cosine, max_beta 0.999), in f64 then cast to f32.
      auto abar = [](double t) {
        const double v = std::cos((t + 0.008) / 1.008 * std::numbers::pi / 2);
        return v * v;
      };
      for (int64_t i = 0; i < T; ++i) {
        const double t1 = static_cast<double>(i) / static_cast<double>(T);
        const double t2 = static_cast<double>(i + 1) / static_cast<double>(T);
        betas.push_back(static_cast<float>(std::min(1 - abar(t2) / abar(t1), 0.999)));
      }
      break;
    }
  }
  NoiseTable tab;
  // torch.cumprod on the CPU accumulates f32 in f64 and rounds each output (verified: 0
  // mismatches in 1000 against torch; a f32 running product differs in 944).
  double acc = 1.0;
  for (float b : betas) {
    acc *= static_cast<double>(1.f - b);
    tab.alphas_cumprod.push_back(static_cast<float>(acc));
  }
  for (float a : tab.alphas_cumprod) {
    const float sg = sigma_of_alpha(a);
    tab.sigmas.push_back(sg);
    tab.log_sigmas.push_back(static_cast<float>(std::log(static_cast<double>(sg))));
  }
  return tab;
}

float NoiseTable::sigma_of_alpha(float a) {
  return std::sqrt((1.f - a) / a);
}

double NoiseTable::sigma_to_t(double sigma) const {
  const double log_sigma = std::log(std::max(sigma, 1e-10));
  const auto n = static_cast<int64_t>(log_sigmas.size());
  // low = the last index whose log sigma is <= log_sigma (0 when none), at most n - 2.
  int64_t low = 0;
  for (int64_t i = 0; i < n; ++i)
    if (log_sigma - static_cast<double>(log_sigmas[static_cast<size_t>(i)]) >= 0) low = i;
  low = std::min(low, n - 2);
  const float lo = log_sigmas[static_cast<size_t>(low)],
              hi = log_sigmas[static_cast<size_t>(low + 1)];
  // (low - high) is an f32 difference in diffusers (both operands f32 arrays).
  double w = (static_cast<double>(lo) - log_sigma) / static_cast<double>(lo - hi);
  w = std::clamp(w, 0.0, 1.0);
  return (1 - w) * static_cast<double>(low) + w * static_cast<double>(low + 1);
}

float NoiseTable::sigma_at(float t) const {
  const auto n = static_cast<float>(log_sigmas.size() - 1);
  t = std::clamp(t, 0.f, n);
  const auto lo = static_cast<size_t>(std::floor(t)), hi = static_cast<size_t>(std::ceil(t));
  const float w = t - std::trunc(t);
  return std::exp((1.f - w) * log_sigmas[lo] + w * log_sigmas[hi]);
}

double flow_mu(const ScheduleConfig& c, int64_t image_seq_len) {
  const double m = (c.max_shift - c.base_shift) /
                   static_cast<double>(c.max_image_seq_len - c.base_image_seq_len);
  const double b = c.base_shift - m * static_cast<double>(c.base_image_seq_len);
  return static_cast<double>(image_seq_len) * m + b;
}

Schedule make_schedule(const ScheduleConfig& c, ScheduleKind kind, TimestepRule rule, int steps,
                       const FlowShift& flow) {
  KILN_ARG(steps >= 1 && steps <= kMaxSteps, kCtx, "steps must be in [1, ", kMaxSteps, "], got ",
           steps);
  KILN_ARG(c.num_train_timesteps >= 2, kCtx, "num_train_timesteps must be >= 2, got ",
           c.num_train_timesteps);
  // DDIM/LCM threshold the x0 estimate in step(), DPM-Solver (data prediction) and UniPC
  // (predict_x0) in convert_model_output; TCDScheduler has the key but never reads it, and the
  // Euler family has no such option.
  const bool thresholding_rule = rule == TimestepRule::ddim || rule == TimestepRule::dpm_solver ||
                                 rule == TimestepRule::unipc || rule == TimestepRule::flow_unipc ||
                                 rule == TimestepRule::lcm;
  KILN_CHECK(!(c.thresholding && thresholding_rule), Status::unsupported,
             c.source.empty() ? std::string(kCtx) : c.source,
             "thresholding=true (dynamic thresholding of the x0 estimate) is not supported; set "
             "\"thresholding\": false or use a sampler of the Euler family");
  if (c.is_flow() || rule == TimestepRule::flow || rule == TimestepRule::flow_unipc) {
    KILN_ARG(c.is_flow(), kCtx,
             "flow-matching samplers need a flow-matching model (the scheduler "
             "config '",
             c.class_name, "' is ", c.prediction == Prediction::epsilon ? "epsilon" : "v",
             "-prediction)");
    KILN_ARG(rule != TimestepRule::tcd, kCtx,
             "TCD needs an eps/v model's training noise table, not a flow-matching model");
    KILN_ARG(rule != TimestepRule::unipc, kCtx,
             "unipc is for eps/v models; use flow_unipc for a flow-matching model");
    return flow_schedule(c, kind, rule, steps, flow);
  }
  KILN_ARG(steps <= c.num_train_timesteps, kCtx, "steps (", steps,
           ") exceed the model's num_train_timesteps (", c.num_train_timesteps, ")");
  return vp_schedule(c, kind, rule, steps);
}

// ---------------------------------------------------------------------------------------------

namespace {
template <typename E>
E parse_enum(const io::ComponentConfig& cfg, const char* key, const std::string& fallback,
             std::initializer_list<std::pair<const char*, E>> values) {
  const std::string v = cfg.get_string_or(key, fallback);
  std::string valid;
  for (const auto& [name, e] : values) {
    if (v == name) return e;
    valid += valid.empty() ? "" : ", ";
    valid += name;
  }
  fail(Status::format_error, str("unsupported ", key, " '", v, "' (supported: ", valid, ")"),
       cfg.file().string());
}
}  // namespace

ScheduleConfig ScheduleConfig::from_config(const io::ComponentConfig& cfg) {
  ScheduleConfig c;
  c.class_name = cfg.get_string_or("_class_name", "");
  c.num_train_timesteps = cfg.get_int_or("num_train_timesteps", 1000);
  c.source = cfg.file().string();
  // Read for every config (UniPC's flow mode thresholds too); absent keys keep their meaning of
  // "the scheduler's own default" (see the header).
  if (cfg.has("clip_sample")) c.clip_sample = cfg.get_bool_or("clip_sample", false);
  c.clip_sample_range = cfg.get_float_or("clip_sample_range", 1.0);
  KILN_CHECK(std::isfinite(c.clip_sample_range) && c.clip_sample_range > 0, Status::format_error,
             cfg.file().string(), "clip_sample_range must be > 0, got ", c.clip_sample_range);
  c.thresholding = cfg.get_bool_or("thresholding", false);
  const bool flow_class = c.class_name.rfind("FlowMatch", 0) == 0;
  const bool flow_keys =
      !cfg.has("beta_schedule") && (cfg.has("shift") || cfg.has("use_dynamic_shifting"));
  // UniPCMultistepScheduler's flow mode (e.g. Wan's configs): flow sigmas shifted by flow_shift.
  const bool flow_sigmas = cfg.get_bool_or("use_flow_sigmas", false) ||
                           cfg.get_string_or("prediction_type", "") == "flow_prediction";
  if (flow_class || flow_keys || flow_sigmas) {
    c.prediction = Prediction::flow;
    c.shift = cfg.get_float_or(flow_sigmas ? "flow_shift" : "shift", 1.0);
    c.use_dynamic_shifting = cfg.get_bool_or("use_dynamic_shifting", false);
    c.base_shift = cfg.get_float_or("base_shift", 0.5);
    c.max_shift = cfg.get_float_or("max_shift", 1.15);
    c.base_image_seq_len = cfg.get_int_or("base_image_seq_len", 256);
    c.max_image_seq_len = cfg.get_int_or("max_image_seq_len", 4096);
    KILN_CHECK(c.shift > 0, Status::format_error, cfg.file().string(), "shift must be > 0, got ",
               c.shift);
    return c;
  }
  c.beta_start = cfg.get_float_or("beta_start", 0.0001);
  c.beta_end = cfg.get_float_or("beta_end", 0.02);
  KILN_CHECK(!cfg.has("trained_betas"), Status::unsupported, cfg.file().string(),
             "trained_betas are not supported");
  c.beta_schedule =
      parse_enum<BetaSchedule>(cfg, "beta_schedule", "linear",
                               {{"linear", BetaSchedule::linear},
                                {"scaled_linear", BetaSchedule::scaled_linear},
                                {"squaredcos_cap_v2", BetaSchedule::squaredcos_cap_v2}});
  c.spacing = parse_enum<TimestepSpacing>(cfg, "timestep_spacing", "leading",
                                          {{"linspace", TimestepSpacing::linspace},
                                           {"leading", TimestepSpacing::leading},
                                           {"trailing", TimestepSpacing::trailing}});
  c.prediction = parse_enum<Prediction>(
      cfg, "prediction_type", "epsilon",
      {{"epsilon", Prediction::epsilon}, {"v_prediction", Prediction::v_prediction}});
  c.steps_offset = cfg.get_int_or("steps_offset", 0);
  c.set_alpha_to_one = cfg.get_bool_or("set_alpha_to_one", true);
  c.original_inference_steps = cfg.get_int_or("original_inference_steps", 50);
  c.timestep_scaling = cfg.get_float_or("timestep_scaling", 10.0);
  KILN_CHECK(!cfg.get_bool_or("rescale_betas_zero_snr", false), Status::unsupported,
             cfg.file().string(), "rescale_betas_zero_snr is not supported yet");
  KILN_CHECK(c.beta_end > 0 && c.beta_start > 0 && c.beta_end < 1, Status::format_error,
             cfg.file().string(), "beta_start/beta_end out of (0, 1)");
  return c;
}

// ---------------------------------------------------------------------------------------------

namespace {
struct ScheduleName {
  const char* name;
  ScheduleKind kind;
};
constexpr ScheduleName kScheduleNames[] = {
    {"default", ScheduleKind::model_default},   {"karras", ScheduleKind::karras},
    {"exponential", ScheduleKind::exponential}, {"sgm_uniform", ScheduleKind::sgm_uniform},
    {"simple", ScheduleKind::simple},           {"beta", ScheduleKind::beta},
};
}  // namespace

const std::vector<std::string>& schedule_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const auto& n : kScheduleNames) v.emplace_back(n.name);
    return v;
  }();
  return names;
}

ScheduleKind schedule_from_name(std::string_view name) {
  for (const auto& n : kScheduleNames)
    if (name == n.name) return n.kind;
  std::string valid;
  for (const auto& n : kScheduleNames) valid += str(valid.empty() ? "" : ", ", n.name);
  fail(Status::invalid_argument, str("unknown schedule '", name, "' (valid: ", valid, ")"), kCtx);
}

const char* schedule_name(ScheduleKind kind) {
  for (const auto& n : kScheduleNames)
    if (n.kind == kind) return n.name;
  return "?";
}

}  // namespace kiln::pipelines::samplers
