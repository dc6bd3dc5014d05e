// The samplers in k-diffusion (VE) form. Each cites the diffusers scheduler it reproduces; the
// VP schedulers' updates (written on x_vp = alpha * x) are the same formulas divided by alpha.
// Scalar coefficients are computed in f64 and applied in f32, so results agree with diffusers
// (which computes them as f32 0-d tensors) to float rounding, not to the bit.
#include "kiln/pipelines/samplers/samplers.hpp"

#include <algorithm>
#include <cmath>

#include "kiln/core/error.hpp"
#include "kiln/ops/ops.hpp"

namespace kiln::pipelines::samplers {
namespace {

constexpr const char* kCtx = "sampler";

// a * x + b * y
Tensor lin(double a, const Tensor& x, double b, const Tensor& y) {
  return ops::add(ops::scale(x, static_cast<float>(a)), ops::scale(y, static_cast<float>(b)));
}
Tensor axpy(const Tensor& x, double a, const Tensor& y) {  // x + a * y
  return ops::add(x, ops::scale(y, static_cast<float>(a)));
}

// torch.clamp(x, -r, r), NaN kept.
Tensor clamp_abs(const Tensor& x, float r) {
  return ops::clamp(x, -r, r);
}

struct Loop {
  const Denoiser& denoiser;
  SamplerContext& ctx;
  int total;

  Tensor denoise(const Tensor& x, float sigma) const {
    if (ctx.cancel && ctx.cancel->load(std::memory_order_relaxed))
      fail(Status::cancelled, "sampling cancelled", kCtx);
    return denoiser(x, sigma);
  }
  Tensor noise(const Tensor& like) const {
    KILN_CHECK(ctx.gen != nullptr, Status::invalid_argument, kCtx,
               "this sampler draws noise: SamplerContext.gen must be set");
    Tensor n = rng::randn(like.shape(), *ctx.gen);
    return like.device() == n.device() ? n : n.to(like.device());
  }
  void done(int step, const Tensor& x, const Tensor& den) const {
    if (ctx.on_step) ctx.on_step(step, x, den);
    if (ctx.progress) ctx.progress(step + 1, total);
  }
};

// Ref: diffusers scheduling_euler_discrete.py / scheduling_flow_match_euler_discrete.py step()
// (s_churn = 0): x += (x - D) / sigma * (sigma_next - sigma).
Tensor sample_euler(const Loop& L, Tensor x, std::span<const float> s) {
  for (int i = 0; i < L.total; ++i) {
    Tensor den = L.denoise(x, s[i]);
    Tensor d = ops::scale(ops::sub(x, den), 1.f / s[i]);
    x = axpy(x, static_cast<double>(s[i + 1]) - s[i], d);
    L.done(i, x, den);
  }
  return x;
}

// Ref: diffusers scheduling_euler_ancestral_discrete.py step(). Noise is drawn on every step,
// the last included (sigma_up = 0 there), as diffusers does, so the generator advances alike.
Tensor sample_euler_a(const Loop& L, Tensor x, std::span<const float> s) {
  for (int i = 0; i < L.total; ++i) {
    const double sf = s[i], st = s[i + 1];
    Tensor den = L.denoise(x, s[i]);
    const double up = std::sqrt(st * st * (sf * sf - st * st) / (sf * sf));
    const double down = std::sqrt(st * st - up * up);
    Tensor d = ops::scale(ops::sub(x, den), static_cast<float>(1 / sf));
    x = axpy(x, down - sf, d);
    x = axpy(x, up, L.noise(x));
    L.done(i, x, den);
  }
  return x;
}

// Ref: diffusers scheduling_heun_discrete.py / scheduling_flow_match_heun_discrete.py: Euler to
// sigma_next, a second evaluation there, the average slope from the first point; the step to
// sigma = 0 is plain Euler (diffusers' schedule has no second evaluation at 0).
// clip: HeunDiscreteScheduler's clip_sample, applied to both estimates before their slopes.
Tensor sample_heun(const Loop& L, Tensor x, std::span<const float> s, std::optional<float> clip) {
  auto denoise = [&](const Tensor& xi, float sigma) {
    Tensor den = L.denoise(xi, sigma);
    return clip ? clamp_abs(den, *clip) : den;
  };
  for (int i = 0; i < L.total; ++i) {
    Tensor den = denoise(x, s[i]);
    Tensor d = ops::scale(ops::sub(x, den), 1.f / s[i]);
    const double dt = static_cast<double>(s[i + 1]) - s[i];
    if (s[i + 1] == 0.f) {
      x = axpy(x, dt, d);
    } else {
      Tensor x2 = axpy(x, dt, d);
      Tensor den2 = denoise(x2, s[i + 1]);
      Tensor d2 = ops::scale(ops::sub(x2, den2), 1.f / s[i + 1]);
      x = axpy(x, dt, ops::scale(ops::add(d, d2), 0.5f));
      den = den2;
    }
    L.done(i, x, den);
  }
  return x;
}

// Ref: diffusers scheduling_k_dpm_2_discrete.py: the midpoint sigma is exp(lerp(log sigma_next,
// log sigma, 0.5)) in f32 (sigmas_interpol); Euler to it, then the full step with its slope.
Tensor sample_dpm2(const Loop& L, Tensor x, std::span<const float> s) {
  for (int i = 0; i < L.total; ++i) {
    Tensor den = L.denoise(x, s[i]);
    Tensor d = ops::scale(ops::sub(x, den), 1.f / s[i]);
    if (s[i + 1] == 0.f) {
      x = axpy(x, -static_cast<double>(s[i]), d);
    } else {
      const float ls = std::log(s[i]), ln = std::log(s[i + 1]);
      const float mid = std::exp(ls - (ls - ln) * 0.5f);  // torch.lerp, weight >= 0.5 branch
      Tensor x2 = axpy(x, static_cast<double>(mid) - s[i], d);
      Tensor den2 = L.denoise(x2, mid);
      Tensor d2 = ops::scale(ops::sub(x2, den2), 1.f / mid);
      x = axpy(x, static_cast<double>(s[i + 1]) - s[i], d2);
      den = den2;
    }
    L.done(i, x, den);
  }
  return x;
}

// Ref: diffusers scheduling_ddim.py step(): with a = 1 / (1 + sigma^2),
// x_vp' = sqrt(a') x0 + sqrt(1 - a' - std^2) eps + std * noise, std^2 = eta^2 (1-a')/(1-a)(1-a/a').
// Divided by sqrt(a'): x' = x0 + sqrt((1 - a' - std^2) / a') eps + std / sqrt(a') noise.
// clip (clip_sample): step 4 clamps x0 after pred_epsilon was taken from the model output, so
// eps stays the unclipped one.
Tensor sample_ddim(const Loop& L, Tensor x, std::span<const float> s, float eta,
                   std::optional<float> clip) {
  for (int i = 0; i < L.total; ++i) {
    const double sf = s[i], st = s[i + 1];
    Tensor den = L.denoise(x, s[i]);
    Tensor eps = ops::scale(ops::sub(x, den), static_cast<float>(1 / sf));
    if (clip) den = clamp_abs(den, *clip);
    const double a = 1 / (1 + sf * sf), ap = 1 / (1 + st * st);
    const double var = (1 - ap) / (1 - a) * (1 - a / ap);
    const double sd = eta * std::sqrt(var);
    x = axpy(den, std::sqrt(std::max(0.0, (1 - ap - sd * sd) / ap)), eps);
    if (eta > 0) x = axpy(x, sd / std::sqrt(ap), L.noise(x));
    L.done(i, x, den);
  }
  return x;
}

// Ref: diffusers scheduling_dpmsolver_multistep.py, algorithm_type="dpmsolver++",
// solver_order=2, midpoint, lower_order_final: first order on the first step and into sigma 0.
// In VE form with h = log(sigma / sigma_next): x' = (sigma_next / sigma) x - expm1(-h) D,
// D = D0 + (D0 - D_prev) / (2 r), r = h_prev / h (k-diffusion sample_dpmpp_2m).
Tensor sample_dpmpp_2m(const Loop& L, Tensor x, std::span<const float> s) {
  Tensor old;
  double h_last = 0;
  for (int i = 0; i < L.total; ++i) {
    Tensor den = L.denoise(x, s[i]);
    if (s[i + 1] == 0.f) {
      x = den;
    } else {
      const double h = std::log(static_cast<double>(s[i]) / s[i + 1]);
      Tensor dd = den;
      if (old.defined()) {
        const double r = h_last / h;
        dd = lin(1 + 1 / (2 * r), den, -1 / (2 * r), old);
      }
      x = lin(static_cast<double>(s[i + 1]) / s[i], x, -std::expm1(-h), dd);
      h_last = h;
    }
    old = den;
    L.done(i, x, den);
  }
  return x;
}

// Ref: diffusers scheduling_dpmsolver_multistep.py, algorithm_type="sde-dpmsolver++", order 2,
// midpoint. VE form: x' = e^{-2h} x + (1 - e^{-2h}) (D0 + D1 / 2) + sigma_next sqrt(1 - e^{-2h}) n,
// D1 = (D0 - D_prev) / r. diffusers draws the noise on every step (the last too).
Tensor sample_dpmpp_2m_sde(const Loop& L, Tensor x, std::span<const float> s) {
  Tensor old;
  double h_last = 0;
  for (int i = 0; i < L.total; ++i) {
    Tensor den = L.denoise(x, s[i]);
    Tensor n = L.noise(x);
    if (s[i + 1] == 0.f) {
      x = den;
    } else {
      const double h = std::log(static_cast<double>(s[i]) / s[i + 1]);
      const double one_m = -std::expm1(-2 * h);  // 1 - e^{-2h}
      Tensor dd = den;
      if (old.defined()) {
        const double r = h_last / h;
        dd = lin(1 + 0.5 / r, den, -0.5 / r, old);
      }
      x = lin(std::exp(-2 * h), x, one_m, dd);
      x = axpy(x, static_cast<double>(s[i + 1]) * std::sqrt(one_m), n);
      h_last = h;
    }
    old = den;
    L.done(i, x, den);
  }
  return x;
}

// Ref: k-diffusion sampling.py sample_dpmpp_3m_sde (eta = 1, s_noise = 1), with Gaussian noise
// from ctx.gen (ComfyUI's default noise sampler) instead of k-diffusion's Brownian tree. Not
// diffusers' DPMSolverMultistepScheduler(solver_order=3, "sde-dpmsolver++"): its D2 coefficient
// uses -0.5 where integrating the SDE gives +0.5 (docs/samplers.md).
Tensor sample_dpmpp_3m_sde(const Loop& L, Tensor x, std::span<const float> s) {
  Tensor d1, d2;
  double h1 = 0, h2 = 0;
  bool have1 = false, have2 = false;
  for (int i = 0; i < L.total; ++i) {
    Tensor den = L.denoise(x, s[i]);
    if (s[i + 1] == 0.f) {
      x = den;
    } else {
      const double h = std::log(static_cast<double>(s[i]) / s[i + 1]);
      const double he = 2 * h;
      x = lin(std::exp(-he), x, -std::expm1(-he), den);
      const double phi2 = std::expm1(-he) / he + 1;
      if (have2) {
        const double r0 = h1 / h, r1 = h2 / h;
        Tensor d1_0 = ops::scale(ops::sub(den, d1), static_cast<float>(1 / r0));
        Tensor d1_1 = ops::scale(ops::sub(d1, d2), static_cast<float>(1 / r1));
        Tensor diff = ops::sub(d1_0, d1_1);
        Tensor dd1 = axpy(d1_0, r0 / (r0 + r1), diff);
        Tensor dd2 = ops::scale(diff, static_cast<float>(1 / (r0 + r1)));
        const double phi3 = phi2 / he - 0.5;
        x = axpy(axpy(x, phi2, dd1), -phi3, dd2);
      } else if (have1) {
        const double r = h1 / h;
        x = axpy(x, phi2 / r, ops::sub(den, d1));
      }
      x = axpy(x, static_cast<double>(s[i + 1]) * std::sqrt(-std::expm1(-2 * h)), L.noise(x));
      h2 = h1;
      h1 = h;
      have2 = have1;
      have1 = true;
    }
    d2 = d1;
    d1 = den;
    L.done(i, x, den);
  }
  return x;
}

// Ref: diffusers scheduling_lcm.py step(): the boundary-conditioned estimate, re-noised to the
// next timestep with fresh noise (x_vp' = sqrt(a') D + sqrt(1 - a') n, i.e. x' = D + sigma' n).
Tensor sample_lcm(const Loop& L, Tensor x, std::span<const float> s) {
  for (int i = 0; i < L.total; ++i) {
    Tensor den = L.denoise(x, s[i]);
    x = s[i + 1] > 0.f ? axpy(den, s[i + 1], L.noise(den)) : den;
    L.done(i, x, den);
  }
  return x;
}

// Solves the k x k system a z = b (row-major, k <= 3) by Gaussian elimination with partial
// pivoting, in f64 (diffusers calls torch.linalg.solve in f32).
std::vector<double> solve_small(std::vector<double> a, std::vector<double> b) {
  const size_t k = b.size();
  for (size_t c = 0; c < k; ++c) {
    size_t piv = c;
    for (size_t r = c + 1; r < k; ++r)
      if (std::fabs(a[r * k + c]) > std::fabs(a[piv * k + c])) piv = r;
    KILN_CHECK(a[piv * k + c] != 0, Status::internal, kCtx, "singular UniPC system");
    for (size_t j = 0; j < k; ++j) std::swap(a[c * k + j], a[piv * k + j]);
    std::swap(b[c], b[piv]);
    for (size_t r = c + 1; r < k; ++r) {
      const double f = a[r * k + c] / a[c * k + c];
      for (size_t j = c; j < k; ++j) a[r * k + j] -= f * a[c * k + j];
      b[r] -= f * b[c];
    }
  }
  std::vector<double> z(k);
  for (size_t c = k; c-- > 0;) {
    double v = b[c];
    for (size_t j = c + 1; j < k; ++j) v -= a[c * k + j] * z[j];
    z[c] = v / a[c * k + c];
  }
  return z;
}

// UniPC's B(h) update (Zhao et al. 2023, "UniPC", Algorithms 2/3, data prediction), over the
// latents x = alpha * x0 + sigma * eps with lambda = log(alpha / sigma): alpha = 1, sigma = the
// VE sigma in k-diffusion form (diffusers' VP update divided by alpha, as for DPM-Solver), or
// alpha = 1 - sigma for flow matching.
// Ref: diffusers scheduling_unipc_multistep.py, multistep_uni_p_bh_update (predictor UniP) and
// multistep_uni_c_bh_update (corrector UniC), predict_x0=True.
struct UniPCStep {
  std::span<const float> s;
  bool flow, bh1;

  double alpha(int i) const { return flow ? 1.0 - static_cast<double>(s[i]) : 1.0; }
  double lambda(int i) const { return std::log(alpha(i)) - std::log(static_cast<double>(s[i])); }

  // One step from sigma index s0 to t with the estimates m[k] at sigma index s0 - k (m[0] newest).
  // Predictor: x is the sample at s0, model_t null. Corrector: x is the sample the last predictor
  // started from, model_t the new estimate at t; the result replaces the sample at t.
  Tensor update(const Tensor& x, const std::vector<Tensor>& m, int s0, int t, int order,
                const Tensor* model_t) const {
    // Into sigma 0 the update is x0 itself (order 1; lower_order_final keeps the order there 1,
    // and a higher order would divide by r_k = 0 in diffusers too).
    if (s[t] == 0.f) return m[0];
    const double h = lambda(t) - lambda(s0);
    std::vector<double> rks;
    for (int k = 1; k < order; ++k) rks.push_back((lambda(s0 - k) - lambda(s0)) / h);
    rks.push_back(1.0);
    // b_i = i! hh phi_{i+1}(hh) / B(h), i = 1..order, hh = -h (data prediction).
    const double hh = -h, h_phi_1 = std::expm1(hh);
    const double B_h = bh1 ? hh : std::expm1(hh);
    double h_phi_k = h_phi_1 / hh - 1, fact = 1;
    std::vector<double> b;
    for (int i = 1; i <= order; ++i) {
      b.push_back(h_phi_k * fact / B_h);
      fact *= i + 1;
      h_phi_k = h_phi_k / hh - 1 / fact;
    }
    auto system = [&](int n) {  // R[i][k] = rks[k]^i, the leading n x n block
      std::vector<double> a, rhs(b.begin(), b.begin() + n);
      for (int i = 0; i < n; ++i)
        for (int k = 0; k < n; ++k) a.push_back(std::pow(rks[static_cast<size_t>(k)], i));
      return solve_small(std::move(a), std::move(rhs));
    };
    // diffusers' shortcuts: rho = 0.5 for the order-2 predictor and the order-1 corrector.
    std::vector<double> rhos;
    if (model_t == nullptr)
      rhos = order == 1   ? std::vector<double>{}
             : order == 2 ? std::vector<double>{0.5}
                          : system(order - 1);
    else
      rhos = order == 1 ? std::vector<double>{0.5} : system(order);
    const double at = alpha(t);
    Tensor out = lin(static_cast<double>(s[t]) / s[s0], x, -at * h_phi_1, m[0]);
    for (int k = 1; k < order; ++k)  // D1_k = (m_k - m0) / r_k
      out =
          axpy(out, -at * B_h * rhos[static_cast<size_t>(k - 1)] / rks[static_cast<size_t>(k - 1)],
               ops::sub(m[static_cast<size_t>(k)], m[0]));
    if (model_t != nullptr) out = axpy(out, -at * B_h * rhos.back(), ops::sub(*model_t, m[0]));
    return out;
  }
};

// Ref: diffusers UniPCMultistepScheduler.step: at step i, UniC first corrects the sample at
// sigma_i with the new estimate (unless step i - 1 is in disable_corrector), then UniP predicts
// sigma_{i+1} with order min(order, i + 1, n - i) (warm-up and lower_order_final).
Tensor sample_unipc(const Loop& L, Tensor x, std::span<const float> s,
                    const SamplerOptions::UniPC& o, bool flow) {
  const UniPCStep u{s, flow, o.bh1};
  std::vector<Tensor> m;  // estimates at sigma i, i - 1, ... (newest first), at most `order`
  Tensor last_x;          // the sample the previous predictor started from
  int last_order = 0;
  for (int i = 0; i < L.total; ++i) {
    Tensor den = L.denoise(x, s[i]);
    const bool disabled = std::find(o.disable_corrector.begin(), o.disable_corrector.end(),
                                    i - 1) != o.disable_corrector.end();
    if (i > 0 && !disabled) x = u.update(last_x, m, i - 1, i, last_order, &den);
    m.insert(m.begin(), den);
    if (static_cast<int>(m.size()) > o.order) m.pop_back();
    const int order = std::min({o.order, i + 1, L.total - i});
    last_x = x;
    x = u.update(x, m, i, i + 1, order, nullptr);
    last_order = order;
    L.done(i, x, den);
  }
  return x;
}

// Ref: diffusers scheduling_tcd.py TCDScheduler.step (Zheng et al. 2024, "Trajectory Consistency
// Distillation", strategic stochastic sampling). With s = floor((1 - gamma) t_next) (f32, as
// torch), the estimate is moved to s: x_s = D + sigma_s eps, then re-noised to t_next:
// x_vp' = sqrt(a'/a_s) x_s_vp + sqrt(1 - a'/a_s) n, i.e. x' = x_s + sqrt(sigma'^2 - sigma_s^2) n.
// No noise on the last step (diffusers draws none there).
Tensor sample_tcd(const Loop& L, Tensor x, std::span<const float> s, const SamplerOptions::TCD& o) {
  const NoiseTable& tab = *o.table;
  const auto keep = static_cast<float>(1.0 - static_cast<double>(o.gamma));
  // The training timestep of a sigma: exact for the table's own sigmas (the tcd schedule), else
  // diffusers' continuous _sigma_to_t (sigmas from elsewhere, e.g. a truncated img2img list).
  auto timestep_of = [&](float sigma) -> float {
    if (sigma <= 0.f) return 0.f;
    auto it = std::lower_bound(tab.sigmas.begin(), tab.sigmas.end(), sigma);
    if (it != tab.sigmas.end() && *it == sigma) return static_cast<float>(it - tab.sigmas.begin());
    return static_cast<float>(tab.sigma_to_t(sigma));
  };
  for (int i = 0; i < L.total; ++i) {
    Tensor den = L.denoise(x, s[i]);
    Tensor eps = ops::scale(ops::sub(x, den), 1.f / s[i]);
    const auto ts = static_cast<size_t>(std::floor(keep * timestep_of(s[i + 1])));
    const double sn = s[i + 1];
    const double ss =
        std::min(static_cast<double>(tab.sigmas[std::min(ts, tab.sigmas.size() - 1)]), sn);
    x = axpy(den, ss, eps);
    if (o.gamma > 0.f && i != L.total - 1)
      x = axpy(x, std::sqrt((sn - ss) * (sn + ss)), L.noise(x));
    L.done(i, x, den);
  }
  return x;
}

float vp_input_scale(float sigma) {
  return std::sqrt(sigma * sigma + 1.f);
}

}  // namespace

Denoiser wrap_model(ModelFn model, const ScheduleConfig& cfg, const Schedule& schedule,
                    WrapOptions opts) {
  auto table = std::make_shared<NoiseTable>(cfg.is_flow() ? NoiseTable{} : NoiseTable::make(cfg));
  const std::optional<float> clip =
      opts.lcm_boundary ? x0_clip_range(SamplerKind::lcm, cfg) : std::nullopt;
  return [model = std::move(model), cfg, sigmas = schedule.sigmas, timesteps = schedule.timesteps,
          table, opts, clip](const Tensor& x, float sigma) -> Tensor {
    KILN_ARG(sigma > 0.f, kCtx, "the denoiser needs sigma > 0, got ", sigma);
    float t = -1.f;
    for (size_t i = 0; i < timesteps.size(); ++i)
      if (sigmas[i] == sigma) {
        t = timesteps[i];
        break;
      }
    if (t < 0.f)
      t = cfg.is_flow() ? sigma * static_cast<float>(cfg.num_train_timesteps)
                        : static_cast<float>(table->sigma_to_t(sigma));
    if (cfg.is_flow()) {
      Tensor v = model(x, t);
      return ops::sub(x, ops::scale(v, sigma));
    }
    const float c = vp_input_scale(sigma);  // sqrt(sigma^2 + 1), f32 as diffusers
    Tensor x_in = ops::scale(x, 1.f / c);
    Tensor out = model(x_in, t);
    Tensor den = cfg.prediction == Prediction::epsilon ? ops::sub(x, ops::scale(out, sigma))
                                                       : lin(1.0 / (static_cast<double>(c) * c), x,
                                                             -static_cast<double>(sigma) / c, out);
    if (opts.lcm_boundary) {
      if (clip) den = clamp_abs(den, *clip);  // LCMScheduler.step 5, before the boundary
      // c_skip multiplies the VP sample x_in; t is the integer LCM timestep.
      const double sd = 0.5, st = static_cast<double>(t) * cfg.timestep_scaling;
      const double c_skip = sd * sd / (st * st + sd * sd);
      const double c_out = st / std::sqrt(st * st + sd * sd);
      den = lin(c_out, den, c_skip, x_in);
    }
    return den;
  };
}

Tensor sample(SamplerKind kind, const Denoiser& denoiser, Tensor x, std::span<const float> sigmas,
              SamplerContext& ctx, const SamplerOptions& opts) {
  KILN_ARG(denoiser != nullptr, kCtx, "no denoiser");
  KILN_ARG(x.defined(), kCtx, "no latents");
  KILN_ARG(sigmas.size() >= 2, kCtx, "need at least 2 sigmas (1 step), got ", sigmas.size());
  KILN_ARG(static_cast<int64_t>(sigmas.size()) - 1 <= kMaxSteps, kCtx,
           "too many steps: ", sigmas.size() - 1, " (max ", kMaxSteps, ")");
  for (size_t i = 0; i + 1 < sigmas.size(); ++i)
    KILN_ARG(std::isfinite(sigmas[i]) && sigmas[i] > 0.f && sigmas[i + 1] >= 0.f &&
                 sigmas[i + 1] <= sigmas[i],
             kCtx, "sigmas must be finite, positive and non-increasing (sigmas[", i,
             "] = ", sigmas[i], ", sigmas[", i + 1, "] = ", sigmas[i + 1], ")");
  KILN_ARG(opts.eta >= 0.f && opts.eta <= 1.f, kCtx, "eta must be in [0, 1], got ", opts.eta);
  if (kind == SamplerKind::unipc || kind == SamplerKind::flow_unipc)
    KILN_ARG(opts.unipc.order >= 1 && opts.unipc.order <= 3, kCtx,
             "UniPC order must be in [1, 3], got ", opts.unipc.order);
  if (kind == SamplerKind::tcd) {
    KILN_ARG(opts.tcd.gamma >= 0.f && opts.tcd.gamma <= 1.f, kCtx,
             "TCD gamma must be in [0, 1], got ", opts.tcd.gamma);
    KILN_ARG(
        opts.tcd.table != nullptr && !opts.tcd.table->sigmas.empty(), kCtx,
        "tcd needs SamplerOptions.tcd.table (NoiseTable::make of the model's scheduler config)");
  }
  if (opts.clip_x0) {
    KILN_ARG(kind == SamplerKind::ddim || kind == SamplerKind::heun, kCtx, sampler_name(kind),
             " has no clip_sample (SamplerOptions.clip_x0 is for ddim and heun; lcm clips in "
             "wrap_model)");
    KILN_ARG(std::isfinite(*opts.clip_x0) && *opts.clip_x0 > 0.f, kCtx, "clip_x0 must be > 0, got ",
             *opts.clip_x0);
  }
  if (is_stochastic(kind, opts))
    KILN_ARG(ctx.gen != nullptr, kCtx, sampler_name(kind),
             " draws noise: SamplerContext.gen must be set");
  const Loop L{denoiser, ctx, static_cast<int>(sigmas.size()) - 1};
  switch (kind) {
    case SamplerKind::euler:
    case SamplerKind::flow_euler:
      return sample_euler(L, std::move(x), sigmas);
    case SamplerKind::euler_a:
      return sample_euler_a(L, std::move(x), sigmas);
    case SamplerKind::heun:
    case SamplerKind::flow_heun:
      return sample_heun(L, std::move(x), sigmas, opts.clip_x0);
    case SamplerKind::dpm2:
      return sample_dpm2(L, std::move(x), sigmas);
    case SamplerKind::ddim:
      return sample_ddim(L, std::move(x), sigmas, opts.eta, opts.clip_x0);
    case SamplerKind::dpmpp_2m:
      return sample_dpmpp_2m(L, std::move(x), sigmas);
    case SamplerKind::dpmpp_2m_sde:
      return sample_dpmpp_2m_sde(L, std::move(x), sigmas);
    case SamplerKind::dpmpp_3m_sde:
      return sample_dpmpp_3m_sde(L, std::move(x), sigmas);
    case SamplerKind::lcm:
      return sample_lcm(L, std::move(x), sigmas);
    case SamplerKind::unipc:
      return sample_unipc(L, std::move(x), sigmas, opts.unipc, false);
    case SamplerKind::flow_unipc:
      return sample_unipc(L, std::move(x), sigmas, opts.unipc, true);
    case SamplerKind::tcd:
      return sample_tcd(L, std::move(x), sigmas, opts.tcd);
  }
  fail(Status::internal, "unhandled sampler", kCtx);
}

TimestepRule timestep_rule(SamplerKind kind) {
  switch (kind) {
    case SamplerKind::euler:
    case SamplerKind::euler_a:
    case SamplerKind::heun:
      return TimestepRule::euler;
    case SamplerKind::dpm2:
      return TimestepRule::kdpm2;
    case SamplerKind::ddim:
      return TimestepRule::ddim;
    case SamplerKind::dpmpp_2m:
    case SamplerKind::dpmpp_2m_sde:
    case SamplerKind::dpmpp_3m_sde:
      return TimestepRule::dpm_solver;
    case SamplerKind::lcm:
      return TimestepRule::lcm;
    case SamplerKind::flow_euler:
    case SamplerKind::flow_heun:
      return TimestepRule::flow;
    case SamplerKind::unipc:
      return TimestepRule::unipc;
    case SamplerKind::flow_unipc:
      return TimestepRule::flow_unipc;
    case SamplerKind::tcd:
      return TimestepRule::tcd;
  }
  return TimestepRule::euler;
}

std::optional<float> x0_clip_range(SamplerKind kind, const ScheduleConfig& cfg) {
  if (cfg.is_flow()) return std::nullopt;
  // Ref: diffusers scheduling_ddim.py (clip_sample=True), scheduling_heun_discrete.py and
  // scheduling_lcm.py (clip_sample=False): the __init__ defaults a missing key takes.
  bool on = false;
  switch (kind) {
    case SamplerKind::ddim:
      on = cfg.clip_sample.value_or(true);
      break;
    case SamplerKind::heun:
    case SamplerKind::lcm:
      on = cfg.clip_sample.value_or(false);
      break;
    default:
      return std::nullopt;
  }
  // torch.clamp casts the Python float bound to the tensor's f32.
  return on ? std::optional<float>(static_cast<float>(cfg.clip_sample_range)) : std::nullopt;
}

bool is_stochastic(SamplerKind kind, const SamplerOptions& opts) {
  switch (kind) {
    case SamplerKind::euler_a:
    case SamplerKind::dpmpp_2m_sde:
    case SamplerKind::dpmpp_3m_sde:
    case SamplerKind::lcm:
      return true;
    case SamplerKind::ddim:
      return opts.eta > 0.f;
    case SamplerKind::tcd:
      return opts.tcd.gamma > 0.f;
    default:
      return false;
  }
}

Tensor final_latents(const Tensor& x, float sigma_last, const ScheduleConfig& cfg) {
  if (cfg.is_flow() || sigma_last == 0.f) return x;
  return ops::scale(
      x, static_cast<float>(1 / std::sqrt(static_cast<double>(sigma_last) * sigma_last + 1)));
}

namespace {
struct SamplerName {
  const char* name;
  SamplerKind kind;
};
constexpr SamplerName kSamplerNames[] = {
    {"euler", SamplerKind::euler},
    {"euler_a", SamplerKind::euler_a},
    {"heun", SamplerKind::heun},
    {"dpm2", SamplerKind::dpm2},
    {"ddim", SamplerKind::ddim},
    {"dpmpp_2m", SamplerKind::dpmpp_2m},
    {"dpmpp_2m_sde", SamplerKind::dpmpp_2m_sde},
    {"dpmpp_3m_sde", SamplerKind::dpmpp_3m_sde},
    {"lcm", SamplerKind::lcm},
    {"flow_euler", SamplerKind::flow_euler},
    {"flow_heun", SamplerKind::flow_heun},
    {"unipc", SamplerKind::unipc},
    {"flow_unipc", SamplerKind::flow_unipc},
    {"tcd", SamplerKind::tcd},
};
}  // namespace

const std::vector<std::string>& sampler_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const auto& n : kSamplerNames) v.emplace_back(n.name);
    return v;
  }();
  return names;
}

SamplerKind sampler_from_name(std::string_view name) {
  for (const auto& n : kSamplerNames)
    if (name == n.name) return n.kind;
  std::string valid;
  for (const auto& n : kSamplerNames) valid += str(valid.empty() ? "" : ", ", n.name);
  fail(Status::invalid_argument, str("unknown sampler '", name, "' (valid: ", valid, ")"), kCtx);
}

const char* sampler_name(SamplerKind kind) {
  for (const auto& n : kSamplerNames)
    if (n.kind == kind) return n.name;
  return "?";
}

}  // namespace kiln::pipelines::samplers
