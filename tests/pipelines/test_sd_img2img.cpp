// End to end: kiln's Stable Diffusion 1.x image-to-image and inpainting against diffusers'
// StableDiffusionImg2ImgPipeline and StableDiffusionInpaintPipeline on the same tiny folders,
// init images, masks, seeds, samplers and steps (tests/reference/make_sd_img2img_fixtures.py):
// sd15_pipe (4-channel U-Net: the per-step blend outside the mask) and sd15_inpaint_pipe
// (9-channel inpainting U-Net). The bar: PSNR >= 40 dB in f32.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <nlohmann/json.hpp>

#include "kiln/io/safetensors.hpp"
#include "kiln/pipelines/recipes/sd_common.hpp"
#include "kiln/pipelines/recipes/stable_diffusion.hpp"
#include "pipeline_test_util.hpp"
#include "recipe_test_util.hpp"

using namespace kiln;
using kiln::pipelines::recipes::SdRequest;
using kiln::pipelines::recipes::StableDiffusion;

namespace {

SdRequest small_request() {
  SdRequest req;
  req.prompt = "a red hat";
  req.steps = 4;
  req.init_image = Tensor::zeros({1, 3, 32, 40});
  return req;
}

}  // namespace

TEST(StableDiffusionImg2Img, MatchesDiffusersEndToEnd) {
  const auto dir = test::data_dir();
  std::map<std::string, StableDiffusion> pipes;
  auto goldens = io::SafetensorsFile::open(dir / "sd_img2img.goldens.safetensors");
  auto cases = nlohmann::json::parse(goldens->metadata().at("cases"));
  ASSERT_GE(cases.size(), 6u);
  for (const auto& c : cases) {
    const std::string name = c["name"], folder = c["folder"];
    if (!pipes.count(folder)) pipes.emplace(folder, StableDiffusion::load(dir / folder));
    SdRequest req = test::request_from_case(c, *goldens);
    int calls = 0;
    req.progress = [&](int, int) { ++calls; };
    const double p =
        test::golden_psnr(pipes.at(folder).generate(req), goldens->get(name + ".image"));
    EXPECT_GE(p, 40.0) << name << " (" << req.sampler << ")";
    EXPECT_GT(calls, 0);
    std::printf("%-18s %-9s strength %.2f batch %d PSNR %.1f dB\n", name.c_str(),
                req.sampler.c_str(), req.strength, req.batch, p);
  }
}

TEST(StableDiffusionImg2Img, StepsFollowGetTimesteps) {
  using kiln::pipelines::recipes::img2img_first_step;
  EXPECT_EQ(img2img_first_step(10, 0.7, "t"), 3);     // int(7.000000000000001) = 7 kept steps
  EXPECT_EQ(img2img_first_step(100, 0.29, "t"), 72);  // int(28.999999999999996) = 28
  EXPECT_EQ(img2img_first_step(6, 1.0, "t"), 0);
  test::expect_error([] { img2img_first_step(4, 0.2, "t"); }, "leaves no denoising step");
}

TEST(StableDiffusionImg2Img, BadRequestsAreClearErrors) {
  const auto dir = test::data_dir();
  StableDiffusion sd = StableDiffusion::load(dir / "sd15_pipe");
  SdRequest req = small_request();
  req.width = 32;
  test::expect_error([&] { sd.generate(req); }, "init_image is 40x32 but the request asks for 32x");
  req.width = 0;
  req.init_image = Tensor::zeros({1, 3, 33, 40});
  test::expect_error([&] { sd.generate(req); }, "multiple of the VAE factor");
  req.init_image = Tensor::zeros({1, 4, 32, 40});
  test::expect_error([&] { sd.generate(req); }, "init_image must be f32 (B, 3, H, W)");
  req = small_request();
  req.batch = 3;
  req.init_image = Tensor::zeros({2, 3, 32, 40});
  test::expect_error([&] { sd.generate(req); }, "init_image batch 2 must be 1 or");
  req = small_request();
  for (double s : {0.0, -0.5, 1.01, std::nan("")}) {
    req.strength = s;
    test::expect_error([&] { sd.generate(req); }, "out of range (0, 1]");
  }
  req.strength = 0.1;  // int(4 * 0.1) = 0 steps
  test::expect_error([&] { sd.generate(req); }, "leaves no denoising step");
  req = small_request();
  req.mask = Tensor::zeros({1, 1, 32, 32});
  test::expect_error([&] { sd.generate(req); }, "mask must be f32 (1, 1, 32, 40)");
  req.mask = Tensor::zeros({1, 3, 32, 40});
  test::expect_error([&] { sd.generate(req); }, "mask must be f32");
  req.mask = Tensor::zeros({1, 1, 32, 40});
  req.init_image = Tensor();
  test::expect_error([&] { sd.generate(req); }, "a mask needs an init_image");
  req = small_request();
  req.mask = Tensor::zeros({1, 1, 32, 40});
  req.sampler = "heun";
  try {
    sd.generate(req);
    FAIL() << "expected unsupported";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Status::unsupported) << e.what();
  }

  StableDiffusion inpaint = StableDiffusion::load(dir / "sd15_inpaint_pipe");
  req = small_request();  // an init image without a mask
  test::expect_error([&] { inpaint.generate(req); },
                     "inpainting model (U-Net with 9 input channels)");
  req.init_image = Tensor();  // plain txt2img
  test::expect_error([&] { inpaint.generate(req); }, "needs an init_image and a mask");
}
