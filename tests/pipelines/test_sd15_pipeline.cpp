// End to end: kiln's Stable Diffusion 1.x text-to-image against the images diffusers'
// StableDiffusionPipeline produced from the same tiny folder, seed, sampler and steps
// (tests/reference/make_sd15_pipeline_fixtures.py). The bar: PSNR >= 40 dB in f32.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "kiln/io/safetensors.hpp"
#include "kiln/ops/ops.hpp"
#include "kiln/pipelines/recipes/stable_diffusion.hpp"
#include "test_support.hpp"

using namespace kiln;
using kiln::pipelines::recipes::SdRequest;
using kiln::pipelines::recipes::StableDiffusion;

namespace {

// (B, 3, H, W) in [-1, 1] -> (B, H, W, 3) in [0, 1], diffusers' postprocess before uint8.
Tensor postprocess(const Tensor& img) {
  Tensor x = ops::scale(img, 0.5f, 0.5f);
  Tensor hwc = x.permute({0, 2, 3, 1}).contiguous();
  float* p = hwc.mutable_data<float>();
  for (int64_t i = 0; i < hwc.numel(); ++i) p[i] = std::fmin(std::fmax(p[i], 0.f), 1.f);
  return hwc;
}

double psnr(const Tensor& a, const Tensor& b) {
  auto x = test::to_doubles(a), y = test::to_doubles(b);
  double mse = 0;
  for (size_t i = 0; i < x.size(); ++i) mse += (x[i] - y[i]) * (x[i] - y[i]);
  mse /= static_cast<double>(x.size());
  return mse == 0 ? 200.0 : 10.0 * std::log10(1.0 / mse);
}

const char* sampler_for(const std::string& scheduler_class, const nlohmann::json& options,
                        std::string* schedule) {
  *schedule = options.value("use_karras_sigmas", false) ? "karras" : "default";
  if (scheduler_class == "EulerDiscreteScheduler") return "euler";
  if (scheduler_class == "EulerAncestralDiscreteScheduler") return "euler_a";
  if (scheduler_class == "DDIMScheduler") return "ddim";
  if (scheduler_class == "DPMSolverMultistepScheduler") return "dpmpp_2m";
  return "unknown";
}

}  // namespace

TEST(StableDiffusion15, MatchesDiffusersEndToEnd) {
  const auto dir = test::data_dir();
  StableDiffusion sd = StableDiffusion::load(dir / "sd15_pipe");
  auto goldens = io::SafetensorsFile::open(dir / "sd15_pipe.goldens.safetensors");
  auto cases = nlohmann::json::parse(goldens->metadata().at("cases"));
  ASSERT_GE(cases.size(), 5u);
  for (const auto& c : cases) {
    SdRequest req;
    req.prompt = c["prompt"];
    req.negative_prompt = c["negative_prompt"];
    req.width = c["width"];
    req.height = c["height"];
    req.steps = c["steps"];
    req.guidance_scale = c["guidance_scale"];
    req.seed = c["seed"];
    req.batch = c["batch"];
    req.sampler = sampler_for(c["scheduler"], c["options"], &req.schedule);
    int calls = 0;
    req.progress = [&](int, int) { ++calls; };
    Tensor img = postprocess(sd.generate(req));
    Tensor want = goldens->get(std::string(c["name"]) + ".image");
    ASSERT_EQ(img.shape(), want.shape()) << c["name"];
    const double p = psnr(img, want);
    EXPECT_GE(p, 40.0) << c["name"] << " (" << req.sampler << ", " << req.schedule << ")";
    EXPECT_GT(calls, 0);
    std::printf("%-16s %-9s %-8s PSNR %.1f dB\n", std::string(c["name"]).c_str(),
                req.sampler.c_str(), req.schedule.c_str(), p);
  }
}

TEST(StableDiffusion15, BadRequestsAreClearErrors) {
  StableDiffusion sd = StableDiffusion::load(test::data_dir() / "sd15_pipe");
  SdRequest req;
  req.width = 33;
  req.height = 32;
  req.steps = 2;
  test::expect_error([&] { sd.generate(req); }, "multiple of the VAE factor");
  req.width = 32;
  req.sampler = "warp_drive";
  test::expect_error([&] { sd.generate(req); }, "unknown sampler");
  req.sampler = "euler";
  req.steps = 0;
  test::expect_error([&] { sd.generate(req); }, "steps 0");
  std::atomic<bool> cancel{true};
  req.steps = 2;
  req.cancel = &cancel;
  try {
    sd.generate(req);
    FAIL() << "expected cancellation";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Status::cancelled);
  }
}

TEST(StableDiffusion15, MissingComponentNamesIt) {
  test::TempDir tmp;
  std::filesystem::copy(test::data_dir() / "sd15_pipe", tmp.path / "p",
                        std::filesystem::copy_options::recursive);
  std::filesystem::remove_all(tmp.path / "p" / "vae");
  try {
    StableDiffusion::load(tmp.path / "p");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("vae"), std::string::npos) << e.what();
  }
}
