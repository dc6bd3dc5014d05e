// End to end: kiln's Stable Diffusion XL against the images diffusers' StableDiffusionXLPipeline
// (and its Img2Img / Inpaint pipelines) produced from the same tiny folder, seed, sampler and
// steps (tests/reference/make_sdxl_pipeline_fixtures.py). The bar: PSNR >= 40 dB in f32.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "kiln/io/safetensors.hpp"
#include "kiln/pipelines/recipes/stable_diffusion_xl.hpp"
#include "kiln/pipelines/registry.hpp"
#include "pipeline_test_util.hpp"
#include "recipe_test_util.hpp"

using namespace kiln;
using kiln::pipelines::recipes::ImageRequest;
using kiln::pipelines::recipes::StableDiffusionXL;

TEST(StableDiffusionXL, MatchesDiffusersEndToEnd) {
  const auto dir = test::data_dir();
  StableDiffusionXL xl = StableDiffusionXL::load(dir / "sdxl_pipe");
  EXPECT_TRUE(xl.force_zeros_for_empty_prompt());
  auto goldens = io::SafetensorsFile::open(dir / "sdxl_pipe.goldens.safetensors");
  auto cases = nlohmann::json::parse(goldens->metadata().at("cases"));
  ASSERT_GE(cases.size(), 5u);
  for (const auto& c : cases) {
    const std::string name = c["name"];
    ImageRequest req = test::request_from_case(c, *goldens);
    int calls = 0;
    req.progress = [&](int, int) { ++calls; };
    const double p = test::golden_psnr(xl.generate(req), goldens->get(name + ".image"));
    EXPECT_GE(p, 40.0) << name << " (" << req.sampler << ")";
    EXPECT_GT(calls, 0);
    std::printf("%-16s %-9s batch %d PSNR %.1f dB\n", name.c_str(), req.sampler.c_str(), req.batch,
                p);
  }
}

TEST(StableDiffusionXL, RegistryLoadsIt) {
  auto pipe = pipelines::load_image_pipeline(test::data_dir() / "sdxl_pipe");
  EXPECT_EQ(pipe->family(), "sdxl");
  const auto d = pipe->defaults();
  EXPECT_EQ(d.width, 32);  // unet sample_size 16 x vae factor 2
  EXPECT_EQ(d.size_multiple, 2);
  ImageRequest req;
  req.steps = 1;
  req.guidance_scale = 1.f;
  Tensor img = pipe->generate(req);
  EXPECT_EQ(img.shape(), Shape({1, 3, 32, 32}));
}

TEST(StableDiffusionXL, BadRequestsAreClearErrors) {
  StableDiffusionXL xl = StableDiffusionXL::load(test::data_dir() / "sdxl_pipe");
  ImageRequest req;
  req.steps = 2;
  req.width = 33;
  req.height = 32;
  test::expect_error([&] { xl.generate(req); }, "multiple of the VAE factor");
  req.width = 32;
  req.init_image = Tensor::zeros({1, 3, 32, 40});
  test::expect_error([&] { xl.generate(req); }, "init_image is 40x32");
  req.width = 0;
  req.height = 0;
  req.strength = 1.5;
  test::expect_error([&] { xl.generate(req); }, "strength 1.5 out of range");
  req.strength = 0.8;
  req.mask = Tensor::zeros({1, 1, 32, 32});
  test::expect_error([&] { xl.generate(req); }, "mask must be f32 (1, 1, 32, 40)");
}

TEST(StableDiffusionXL, MismatchedEncoderIsFormatError) {
  test::TempDir tmp;
  test::copy_fixture(tmp, "sdxl_pipe", "p");
  // text_encoder (32 wide) in place of text_encoder_2 (16): cross_attention_dim no longer adds up.
  std::filesystem::remove_all(tmp.path / "p" / "text_encoder_2");
  std::filesystem::copy(tmp.path / "p" / "text_encoder", tmp.path / "p" / "text_encoder_2");
  try {
    StableDiffusionXL::load(tmp.path / "p");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Status::format_error) << e.what();
  }
}
