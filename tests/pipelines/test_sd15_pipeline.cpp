// End to end: kiln's Stable Diffusion 1.x text-to-image against the images diffusers'
// StableDiffusionPipeline produced from the same tiny folder, seed, sampler and steps
// (tests/reference/make_sd15_pipeline_fixtures.py). The bar: PSNR >= 40 dB in f32.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "kiln/io/safetensors.hpp"
#include "kiln/pipelines/recipes/stable_diffusion.hpp"
#include "pipeline_test_util.hpp"
#include "recipe_test_util.hpp"

using namespace kiln;
using kiln::pipelines::recipes::SdRequest;
using kiln::pipelines::recipes::StableDiffusion;

TEST(StableDiffusion15, MatchesDiffusersEndToEnd) {
  const auto dir = test::data_dir();
  StableDiffusion sd = StableDiffusion::load(dir / "sd15_pipe");
  auto goldens = io::SafetensorsFile::open(dir / "sd15_pipe.goldens.safetensors");
  auto cases = nlohmann::json::parse(goldens->metadata().at("cases"));
  ASSERT_GE(cases.size(), 5u);
  for (const auto& c : cases) {
    SdRequest req = test::request_from_case(c, *goldens);
    req.schedule = c["options"].value("use_karras_sigmas", false) ? "karras" : "default";
    int calls = 0;
    req.progress = [&](int, int) { ++calls; };
    const double p =
        test::golden_psnr(sd.generate(req), goldens->get(std::string(c["name"]) + ".image"));
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
  EXPECT_TRUE(test::throws_error([&] { sd.generate(req); }, Status::cancelled, {}));
}

TEST(StableDiffusion15, MissingComponentNamesIt) {
  test::TempDir tmp;
  const auto dir = test::copy_fixture(tmp, "sd15_pipe", "p");
  std::filesystem::remove_all(dir / "vae");
  EXPECT_TRUE(test::throws_any_error([&] { StableDiffusion::load(dir); }, {"vae"}));
}
