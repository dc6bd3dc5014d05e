// Sampler and schedule parity with diffusers (fixtures: tests/reference/make_sampler_fixtures.py).
//
// Every case re-creates the schedule from the scheduler_config.json, checks the sigmas and
// timesteps against diffusers' (to the bit, or within the ulps stated below), then runs the
// sampler from the same torch.randn noise with the same analytic model and compares the
// latents after step `inter` and at the end.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "kiln/io/diffusers.hpp"
#include "kiln/io/safetensors.hpp"
#include "kiln/ops/ops.hpp"
#include "kiln/pipelines/samplers/samplers.hpp"
#include "kiln/pipelines/samplers/schedules.hpp"
#include "kiln/rng/generator.hpp"
#include "test_support.hpp"

namespace kiln::pipelines::samplers {
namespace {

std::filesystem::path dir() { return test::data_dir() / "samplers"; }

std::shared_ptr<io::SafetensorsFile> fixtures() {
  static auto f = io::SafetensorsFile::open(dir() / "samplers.safetensors");
  return f;
}
nlohmann::json cases() { return nlohmann::json::parse(fixtures()->metadata().at("cases")); }

std::vector<float> floats(const Tensor& t) {
  Tensor c = t.contiguous();
  return {c.data<float>(), c.data<float>() + c.numel()};
}

ScheduleConfig config(const std::string& name) {
  return ScheduleConfig::from_config(
      io::ComponentConfig::load(dir() / "configs" / name / "scheduler_config.json"));
}

// Distance in units in the last place between two finite floats of the same sign.
int64_t ulps(float a, float b) {
  if (a == b) return 0;
  int32_t ia, ib;
  std::memcpy(&ia, &a, 4);
  std::memcpy(&ib, &b, 4);
  if ((ia < 0) != (ib < 0)) return INT64_MAX;
  return std::abs(static_cast<int64_t>(ia) - ib);
}

int64_t max_ulps(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return INT64_MAX;
  int64_t m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, ulps(a[i], b[i]));
  return m;
}

// The analytic model of make_sampler_fixtures.py: tanh(x) * c(t) + 0.1 * x.
Tensor model(const Tensor& x_in, float t) {
  const auto c = static_cast<float>(0.6 + 0.4 * std::cos(0.0031 * static_cast<double>(t)));
  return ops::add(ops::scale(ops::tanh(x_in), c), ops::scale(x_in, 0.1f));
}

// Where kiln's schedule is not bit-exact, and why (see docs/samplers.md):
//  * VP models: diffusers computes the training sigmas as ((1 - a) / a) ** 0.5 on f32 tensors, and
//    torch evaluates ** 0.5 with its vectorized pow (SLEEF, 1-ulp accurate), not sqrt: 190 of the
//    1000 SD sigmas differ by 1 ulp from the correctly rounded sqrt kiln uses. Timesteps are exact.
//  * beta / exponential: scipy's beta.ppf and numpy's SIMD exp agree with ours to ~1e-15 in f64,
//    which can round either way in f32 (covered by the same 1 ulp).
int64_t allowed_sigma_ulps(const ScheduleConfig& cfg) { return cfg.is_flow() ? 0 : 1; }

struct Result {
  std::string name;
  int64_t sigma_ulps = 0, t_ulps = 0;
  test::Diff inter, final;
};

// clip: SamplerOptions.clip_x0 from the config as a pipeline sets it (false: never clip, to show
// that the clip_sample cases depend on it).
Result run_case(const std::string& name, const nlohmann::json& c, bool clip = true) {
  Result r;
  r.name = name;
  const auto f = fixtures();
  const ScheduleConfig cfg = config(c.at("config"));
  const SamplerKind kind = sampler_from_name(c.at("sampler").get<std::string>());
  const ScheduleKind sk = schedule_from_name(c.at("schedule").get<std::string>());
  const int steps = c.at("steps");
  FlowShift fs;
  if (c.contains("image_seq_len")) fs.image_seq_len = c.at("image_seq_len").get<int64_t>();
  const Schedule sched = make_schedule(cfg, sk, timestep_rule(kind), steps, fs);
  r.sigma_ulps = max_ulps(sched.sigmas, floats(f->get(name + "/sigmas")));
  r.t_ulps = max_ulps(sched.timesteps, floats(f->get(name + "/timesteps")));

  rng::Generator gen = rng::Generator::torch_cpu(c.at("seed").get<uint64_t>());
  Tensor noise = rng::randn(Shape{1, 4, 8, 8}, gen);
  EXPECT_EQ(max_ulps(floats(noise), floats(f->get(name + "/noise"))), 0) << name;
  Tensor x = ops::scale(noise, sched.init_noise_sigma);
  WrapOptions wo;
  wo.lcm_boundary = kind == SamplerKind::lcm;
  Denoiser d = wrap_model(model, cfg, sched, wo);
  if (!clip && kind == SamplerKind::lcm) {  // the boundary condition without LCM's clamp
    ScheduleConfig no_clip = cfg;
    no_clip.clip_sample = false;
    d = wrap_model(model, no_clip, sched, wo);
  }
  SamplerContext ctx;
  ctx.gen = &gen;
  const int inter = c.at("inter");
  Tensor inter_x;
  ctx.on_step = [&](int step, const Tensor& xs, const Tensor&) {
    if (step == inter) inter_x = xs.clone();
  };
  int last_progress = 0;
  ctx.progress = [&](int step, int total) {
    EXPECT_EQ(step, last_progress + 1);
    EXPECT_EQ(total, steps);
    last_progress = step;
  };
  SamplerOptions so;
  if (clip && kind != SamplerKind::lcm) so.clip_x0 = x0_clip_range(kind, cfg);  // lcm: in wo
  if (c.contains("eta")) so.eta = c.at("eta").get<float>();
  if (c.contains("gamma")) so.tcd.gamma = c.at("gamma").get<float>();
  if (kind == SamplerKind::tcd) so.tcd.table = std::make_shared<NoiseTable>(NoiseTable::make(cfg));
  if (c.contains("options")) {  // UniPCMultistepScheduler constructor options
    const auto& o = c.at("options");
    if (o.contains("solver_type")) so.unipc.bh1 = o.at("solver_type") == "bh1";
    if (o.contains("solver_order")) so.unipc.order = o.at("solver_order");
    if (o.contains("disable_corrector"))
      so.unipc.disable_corrector = o.at("disable_corrector").get<std::vector<int>>();
  }
  Tensor out = sample(kind, d, x, sched.sigmas, ctx, so);
  out = final_latents(out, sched.sigmas.back(), cfg);
  EXPECT_EQ(last_progress, steps) << name;
  r.inter = test::compare(inter_x, test::to_doubles(f->get(name + "/inter")));
  // A reference that is not finite would compare as a match (NaN differences are not counted):
  // only cases marked as such may have one, and kiln's result must still be finite there.
  if (c.value("final_nonfinite", false)) {
    for (double v : test::to_doubles(out)) EXPECT_TRUE(std::isfinite(v)) << name;
  } else {
    for (double v : test::to_doubles(f->get(name + "/final")))
      EXPECT_TRUE(std::isfinite(v)) << name;
    r.final = test::compare(out, test::to_doubles(f->get(name + "/final")));
  }
  return r;
}

TEST(SamplerParity, AllCasesMatchDiffusers) {
  const auto all = cases();
  double worst_abs = 0, worst_rel = 0;
  int n = 0;
  for (const auto& [name, c] : all.items()) {
    if (c.at("sampler").get<std::string>().empty()) continue;
    SCOPED_TRACE(name);
    const Result r = run_case(name, c);
    ++n;
    EXPECT_LE(r.sigma_ulps, allowed_sigma_ulps(config(c.at("config")))) << name << " sigmas";
    EXPECT_EQ(r.t_ulps, 0) << name << " timesteps";
    // Float error: max abs < 1e-5 or relative L2 < 1e-6 (latents reach |x| ~ 30 with
    // sigma_max ~ 15, where 1e-5 absolute is a few f32 ulps).
    EXPECT_TRUE(r.final.max_abs < 1e-5 || r.final.rel_l2 < 1e-6) << name;
    EXPECT_TRUE(r.inter.max_abs < 1e-5 || r.inter.rel_l2 < 1e-6) << name;
    EXPECT_EQ(r.final.nonfinite, 0) << name;
    worst_abs = std::max(worst_abs, r.final.max_abs);
    worst_rel = std::max(worst_rel, r.final.rel_l2);
    std::printf("%-32s sigma ulps %lld  t ulps %lld  inter max %.2e rel %.2e  final max %.2e rel %.2e\n",
                name.c_str(), static_cast<long long>(r.sigma_ulps), static_cast<long long>(r.t_ulps),
                r.inter.max_abs, r.inter.rel_l2, r.final.max_abs, r.final.rel_l2);
  }
  std::printf("%d cases; worst final max abs %.3e, rel L2 %.3e\n", n, worst_abs, worst_rel);
  EXPECT_GT(n, 60);
}

TEST(ScheduleParity, ComfyUISchedules) {
  const auto all = cases();
  const auto f = fixtures();
  int n = 0;
  for (const auto& [name, c] : all.items()) {
    if (!c.at("sampler").get<std::string>().empty()) continue;
    const Schedule s = make_schedule(config(c.at("config")), schedule_from_name(c.at("schedule").get<std::string>()),
                                     TimestepRule::euler, c.at("steps"));
    // simple picks table sigmas (1 ulp, see above); sgm_uniform adds an f32 log and exp (torch's
    // SLEEF vs libm, 1 ulp each): 2 ulps.
    EXPECT_LE(max_ulps(s.sigmas, floats(f->get(name + "/sigmas"))), c.at("schedule") == "simple" ? 1 : 2)
        << name;
    ++n;
  }
  EXPECT_EQ(n, 6);
}

TEST(ScheduleConfig, ReadsDiffusersConfigs) {
  const ScheduleConfig sd15 = config("sd15");
  EXPECT_EQ(sd15.beta_schedule, BetaSchedule::scaled_linear);
  EXPECT_EQ(sd15.spacing, TimestepSpacing::leading);
  EXPECT_EQ(sd15.steps_offset, 1);
  EXPECT_FALSE(sd15.set_alpha_to_one);
  EXPECT_EQ(config("sd2v").prediction, Prediction::v_prediction);
  const ScheduleConfig flux = config("flux");
  EXPECT_TRUE(flux.is_flow());
  EXPECT_TRUE(flux.use_dynamic_shifting);
  EXPECT_DOUBLE_EQ(config("sd3").shift, 3.0);
  EXPECT_NEAR(flow_mu(flux, 4096), 1.15, 1e-12);
  EXPECT_NEAR(flow_mu(flux, 256), 0.5, 1e-12);
  // UniPCMultistepScheduler in flow mode (as Wan ships it): betas present, flow_shift read.
  io::ComponentConfig unipc_flow(nlohmann::json{{"_class_name", "UniPCMultistepScheduler"},
                                                {"beta_schedule", "linear"},
                                                {"use_flow_sigmas", true},
                                                {"flow_shift", 5.0},
                                                {"prediction_type", "flow_prediction"}},
                                 "x/scheduler_config.json");
  const ScheduleConfig uf = ScheduleConfig::from_config(unipc_flow);
  EXPECT_TRUE(uf.is_flow());
  EXPECT_DOUBLE_EQ(uf.shift, 5.0);

  io::ComponentConfig bad(nlohmann::json{{"beta_schedule", "cubic"}}, "x/scheduler_config.json");
  try {
    ScheduleConfig::from_config(bad);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Status::format_error);
    EXPECT_NE(std::string(e.what()).find("squaredcos_cap_v2"), std::string::npos) << e.what();
  }
}

// diffusers' clip_sample: each scheduler's own default for a missing key, the range, where it
// applies, and that the clip cases of the fixture really depend on the clamp.
TEST(ClipSample, PerSchedulerDefaults) {
  const ScheduleConfig off = config("sd15"), missing = config("sd15_noclip"),
                       on = config("sd15_clip08");
  EXPECT_EQ(off.clip_sample, std::optional<bool>(false));
  EXPECT_FALSE(missing.clip_sample.has_value());
  EXPECT_EQ(on.clip_sample, std::optional<bool>(true));
  EXPECT_DOUBLE_EQ(on.clip_sample_range, 0.8);
  EXPECT_DOUBLE_EQ(missing.clip_sample_range, 1.0);
  EXPECT_EQ(x0_clip_range(SamplerKind::ddim, off), std::nullopt);
  EXPECT_EQ(x0_clip_range(SamplerKind::ddim, missing), std::optional<float>(1.f));
  EXPECT_EQ(x0_clip_range(SamplerKind::ddim, on), std::optional<float>(0.8f));
  for (SamplerKind k : {SamplerKind::heun, SamplerKind::lcm}) {
    EXPECT_EQ(x0_clip_range(k, missing), std::nullopt) << sampler_name(k);
    EXPECT_EQ(x0_clip_range(k, on), std::optional<float>(0.8f)) << sampler_name(k);
  }
  for (SamplerKind k : {SamplerKind::euler, SamplerKind::euler_a, SamplerKind::dpm2,
                        SamplerKind::dpmpp_2m, SamplerKind::unipc, SamplerKind::tcd})
    EXPECT_EQ(x0_clip_range(k, on), std::nullopt) << sampler_name(k);
  EXPECT_EQ(x0_clip_range(SamplerKind::flow_heun, config("sd3")), std::nullopt);

  const auto all = cases();
  for (const char* name : {"sd15_noclip_ddim_6", "sd2v_noclip_ddim_8", "sd15_clip08_heun_5",
                           "sd15_clip08_lcm_5"}) {
    const Result unclipped = run_case(name, all.at(name), /*clip=*/false);
    EXPECT_GT(unclipped.final.max_abs, 1e-2) << name;
  }

  io::ComponentConfig bad_range(nlohmann::json{{"clip_sample", true}, {"clip_sample_range", 0.0}},
                                "x/scheduler_config.json");
  EXPECT_THROW(ScheduleConfig::from_config(bad_range), Error);
  const Schedule s = make_schedule(on, ScheduleKind::model_default, TimestepRule::euler, 4);
  SamplerContext ctx;
  SamplerOptions o;
  o.clip_x0 = 1.f;
  try {  // Euler has no clip_sample: refused rather than ignored
    sample(SamplerKind::euler, wrap_model(model, on, s), Tensor::zeros({1, 4, 8, 8}), s.sigmas,
           ctx, o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Status::invalid_argument);
    EXPECT_NE(std::string(e.what()).find("clip_x0"), std::string::npos) << e.what();
  }
}

TEST(ClipSample, ThresholdingIsRefusedWhereDiffusersWouldApplyIt) {
  io::ComponentConfig raw(nlohmann::json{{"_class_name", "DDIMScheduler"},
                                         {"beta_schedule", "scaled_linear"},
                                         {"beta_start", 0.00085},
                                         {"beta_end", 0.012},
                                         {"thresholding", true}},
                          "if/scheduler/scheduler_config.json");
  const ScheduleConfig cfg = ScheduleConfig::from_config(raw);
  EXPECT_TRUE(cfg.thresholding);
  for (TimestepRule r : {TimestepRule::ddim, TimestepRule::dpm_solver, TimestepRule::unipc,
                         TimestepRule::lcm}) {
    try {
      make_schedule(cfg, ScheduleKind::model_default, r, 4);
      FAIL();
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Status::unsupported);
      const std::string what = e.what();
      EXPECT_NE(what.find("thresholding"), std::string::npos) << what;
      EXPECT_NE(what.find("if/scheduler/scheduler_config.json"), std::string::npos) << what;
    }
  }
  // The Euler family and TCD have no thresholding in diffusers: the key does not matter there.
  EXPECT_NO_THROW(make_schedule(cfg, ScheduleKind::model_default, TimestepRule::euler, 4));
  EXPECT_NO_THROW(make_schedule(cfg, ScheduleKind::model_default, TimestepRule::tcd, 4));
}

TEST(SamplerErrors, NamesStepsCancelAndNoise) {
  EXPECT_EQ(sampler_names().size(), 14u);
  EXPECT_EQ(schedule_names().size(), 6u);
  for (const auto& n : sampler_names()) EXPECT_EQ(sampler_name(sampler_from_name(n)), n);
  for (const auto& n : schedule_names()) EXPECT_EQ(schedule_name(schedule_from_name(n)), n);
  try {
    sampler_from_name("dpmpp_9m");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Status::invalid_argument);
    EXPECT_NE(std::string(e.what()).find("euler_a"), std::string::npos) << e.what();
  }
  try {
    schedule_from_name("cosine");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("sgm_uniform"), std::string::npos) << e.what();
  }
  const ScheduleConfig sd15 = config("sd15");
  for (int bad : {0, -3, kMaxSteps + 1})
    EXPECT_THROW(make_schedule(sd15, ScheduleKind::model_default, TimestepRule::euler, bad), Error);
  EXPECT_THROW(make_schedule(sd15, ScheduleKind::model_default, TimestepRule::euler, 1001), Error);
  EXPECT_THROW(make_schedule(sd15, ScheduleKind::model_default, TimestepRule::lcm, 51), Error);
  EXPECT_THROW(make_schedule(sd15, ScheduleKind::model_default, TimestepRule::flow, 4), Error);
  EXPECT_THROW(make_schedule(config("flux"), ScheduleKind::model_default, TimestepRule::flow, 4),
               Error);  // dynamic shifting needs mu / image_seq_len
  // UniPC's eps/v and flow variants each refuse the other kind of model; TCD needs a VP table
  // and its distillation grid (like LCM).
  EXPECT_THROW(make_schedule(config("sd3"), ScheduleKind::model_default, TimestepRule::unipc, 4),
               Error);
  EXPECT_THROW(make_schedule(sd15, ScheduleKind::model_default, TimestepRule::flow_unipc, 4),
               Error);
  EXPECT_THROW(make_schedule(config("sd3"), ScheduleKind::model_default, TimestepRule::tcd, 4),
               Error);
  EXPECT_THROW(make_schedule(sd15, ScheduleKind::model_default, TimestepRule::tcd, 51), Error);
  EXPECT_THROW(make_schedule(sd15, ScheduleKind::karras, TimestepRule::tcd, 4), Error);

  const Schedule s = make_schedule(sd15, ScheduleKind::karras, TimestepRule::euler, 6);
  Denoiser d = wrap_model(model, sd15, s);
  Tensor x = Tensor::zeros({1, 4, 8, 8});
  SamplerContext no_gen;
  try {
    sample(SamplerKind::euler_a, d, x, s.sigmas, no_gen);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Status::invalid_argument);
  }
  std::atomic<bool> cancel{false};
  SamplerContext ctx;
  ctx.cancel = &cancel;
  ctx.progress = [&](int step, int) {
    if (step == 2) cancel = true;
  };
  int calls = 0;
  Denoiser counting = [&](const Tensor& xx, float sigma) {
    ++calls;
    return d(xx, sigma);
  };
  try {
    sample(SamplerKind::euler, counting, x, s.sigmas, ctx);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Status::cancelled);
  }
  EXPECT_EQ(calls, 2);
  {
    SamplerContext g;
    rng::Generator gen = rng::Generator::torch_cpu(1);
    g.gen = &gen;
    const Schedule ts = make_schedule(sd15, ScheduleKind::model_default, TimestepRule::tcd, 4);
    try {  // no noise table
      sample(SamplerKind::tcd, d, x, ts.sigmas, g);
      FAIL();
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Status::invalid_argument);
      EXPECT_NE(std::string(e.what()).find("tcd.table"), std::string::npos) << e.what();
    }
    SamplerOptions o;
    o.unipc.order = 4;
    EXPECT_THROW(sample(SamplerKind::unipc, d, x, s.sigmas, g, o), Error);
    o = {};
    o.tcd.table = std::make_shared<NoiseTable>(NoiseTable::make(sd15));
    o.tcd.gamma = 1.5f;
    EXPECT_THROW(sample(SamplerKind::tcd, d, x, ts.sigmas, g, o), Error);
    o.tcd.gamma = 0.f;  // deterministic: no generator needed
    EXPECT_FALSE(is_stochastic(SamplerKind::tcd, o));
    SamplerContext none;
    EXPECT_NO_THROW(sample(SamplerKind::tcd, d, x, ts.sigmas, none, o));
    EXPECT_TRUE(is_stochastic(SamplerKind::tcd));
    EXPECT_FALSE(is_stochastic(SamplerKind::unipc));
  }
  const std::vector<float> rising{1.f, 2.f, 0.f};
  SamplerContext plain;
  EXPECT_THROW(sample(SamplerKind::euler, d, x, rising, plain), Error);
  EXPECT_THROW(sample(SamplerKind::euler, d, x, std::vector<float>{1.f}, plain), Error);
}

}  // namespace
}  // namespace kiln::pipelines::samplers
