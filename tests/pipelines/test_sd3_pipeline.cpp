// End to end: kiln's Stable Diffusion 3 text-to-image, image-to-image and inpainting against the
// images diffusers' StableDiffusion3Pipeline / StableDiffusion3Img2ImgPipeline /
// StableDiffusion3InpaintPipeline produced from the same tiny SD3.5-architecture folder, seed,
// steps, strength, mask and flow-matching scheduler
// (tests/reference/make_sd3_pipeline_fixtures.py). The bar: PSNR >= 40 dB in f32.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "kiln/io/safetensors.hpp"
#include "kiln/pipelines/recipes/stable_diffusion3.hpp"
#include "recipe_test_util.hpp"
#include "pipeline_test_util.hpp"

using namespace kiln;
using kiln::pipelines::recipes::ImageRequest;
using kiln::pipelines::recipes::Sd3Options;
using kiln::pipelines::recipes::StableDiffusion3;

namespace {

// The "no T5" layout: text_encoder_3 / tokenizer_3 listed as [null, null] in model_index.json.
void drop_t5(const std::filesystem::path& dir) {
  const auto index = dir / "model_index.json";
  nlohmann::json j = nlohmann::json::parse(std::ifstream(index));
  j["text_encoder_3"] = {nullptr, nullptr};
  j["tokenizer_3"] = {nullptr, nullptr};
  std::ofstream(index) << j.dump(2);
}

}  // namespace

TEST(StableDiffusion3, MatchesDiffusersEndToEnd) {
  const auto dir = test::data_dir();
  test::TempDir tmp;
  const auto no_t5_dir = test::copy_fixture(tmp, "sd3_pipe");
  drop_t5(no_t5_dir);
  StableDiffusion3 with_t5 = StableDiffusion3::load(dir / "sd3_pipe");
  StableDiffusion3 without_t5 = StableDiffusion3::load(no_t5_dir);
  EXPECT_EQ(with_t5.default_size(), 32);  // sample_size 16 x vae factor 2
  EXPECT_EQ(with_t5.size_multiple(), 4);  // vae factor 2 x patch 2
  EXPECT_TRUE(with_t5.has_t5());
  EXPECT_FALSE(without_t5.has_t5());
  auto goldens = io::SafetensorsFile::open(dir / "sd3_pipe.goldens.safetensors");
  auto cases = nlohmann::json::parse(goldens->metadata().at("cases"));
  ASSERT_GE(cases.size(), 8u);
  for (const auto& c : cases) {
    ImageRequest req = test::request_from_case(c, *goldens);  // img2img: the image's size
    Sd3Options opt;
    opt.max_sequence_length = c["max_sequence_length"];
    const bool img2img = req.init_image.defined(), inpaint = req.mask.defined();
    int calls = 0;
    req.progress = [&](int, int) { ++calls; };
    const StableDiffusion3& sd = c["t5"].get<bool>() ? with_t5 : without_t5;
    const double p =
        test::golden_psnr(sd.generate(req, opt), goldens->get(std::string(c["name"]) + ".image"));
    EXPECT_GE(p, 40.0) << c["name"];
    EXPECT_EQ(calls, c["denoise_steps"].get<int>()) << c["name"];
    std::printf("%-18s %-10s strength %-4s%s PSNR %.1f dB\n", std::string(c["name"]).c_str(),
                req.sampler.c_str(), img2img ? c["strength"].dump().c_str() : "-",
                inpaint ? " mask" : "", p);
  }
}

TEST(StableDiffusion3, Img2ImgBadRequestsAreClearErrors) {
  StableDiffusion3 sd = StableDiffusion3::load(test::data_dir() / "sd3_pipe");
  ImageRequest req;
  Sd3Options opt;
  opt.max_sequence_length = 16;
  req.steps = 4;
  req.sampler = "flow_euler";
  req.init_image = Tensor::zeros({1, 3, 32, 40});
  req.width = 32;
  test::expect_error([&] { sd.generate(req, opt); },
                     "init_image is 40x32 but the request asks for 32x");
  req.width = 0;
  req.init_image = Tensor::zeros({1, 3, 32, 34});  // not a multiple of factor x patch (4)
  test::expect_error([&] { sd.generate(req, opt); }, "multiple of the VAE factor");
  req.init_image = Tensor::zeros({1, 4, 32, 40});
  test::expect_error([&] { sd.generate(req, opt); }, "init_image must be f32 (B, 3, H, W)");
  req.init_image = Tensor::zeros({2, 3, 32, 40});
  test::expect_error([&] { sd.generate(req, opt); }, "init_image batch 2 must be 1 or");
  req.init_image = Tensor::zeros({1, 3, 32, 40});
  for (double s : {0.0, -0.5, 1.5}) {
    req.strength = s;
    test::expect_error([&] { sd.generate(req, opt); }, "out of range (0, 1]");
  }
}

TEST(StableDiffusion3, InpaintBadRequestsAreClearErrors) {
  StableDiffusion3 sd = StableDiffusion3::load(test::data_dir() / "sd3_pipe");
  Sd3Options opt;
  opt.max_sequence_length = 16;
  test::expect_flow_inpaint_request_errors(
      [&](const ImageRequest& req) { sd.generate(req, opt); });
}

TEST(StableDiffusion3, TextEmbeddingsLayout) {
  StableDiffusion3 sd = StableDiffusion3::load(test::data_dir() / "sd3_pipe");
  auto e = sd.encode_text("a red cube", 20);
  const auto& tc = sd.transformer().config();
  EXPECT_EQ(e.states.shape(), (Shape{1, 77 + 20, tc.joint_attention_dim}));
  EXPECT_EQ(e.pooled.shape(), (Shape{1, tc.pooled_projection_dim}));
  // The CLIP part is zero-padded from 16 + 16 channels to the T5 width (48).
  Tensor pad = e.states.narrow(1, 0, 77).narrow(2, 32, tc.joint_attention_dim - 32).contiguous();
  for (double v : test::to_doubles(pad)) ASSERT_EQ(v, 0.0);
}

TEST(StableDiffusion3, BadRequestsAreClearErrors) {
  StableDiffusion3 sd = StableDiffusion3::load(test::data_dir() / "sd3_pipe");
  ImageRequest req;
  Sd3Options opt;
  req.width = 34;  // a multiple of the VAE factor (2) but not of factor x patch (4)
  req.height = 32;
  req.steps = 2;
  test::expect_error([&] { sd.generate(req, opt); }, "multiple of the VAE factor");
  req.width = 32;
  req.sampler = "warp_drive";
  test::expect_error([&] { sd.generate(req, opt); }, "unknown sampler");
  req.sampler = "dpmpp_2m";
  test::expect_error([&] { sd.generate(req, opt); }, "not a flow-matching sampler");
  req.sampler = "flow_euler";
  req.schedule = "zigzag";
  test::expect_error([&] { sd.generate(req, opt); }, "zigzag");
  req.schedule = "default";
  opt.max_sequence_length = 513;
  test::expect_error([&] { sd.generate(req, opt); }, "max_sequence_length 513");
  opt.max_sequence_length = 16;
  req.steps = 0;
  test::expect_error([&] { sd.generate(req, opt); }, "steps 0");
  std::atomic<bool> cancel{true};
  req.steps = 2;
  req.cancel = &cancel;
  EXPECT_TRUE(test::throws_error([&] { sd.generate(req, opt); }, Status::cancelled, {}));
}

TEST(StableDiffusion3, MissingComponentNamesIt) {
  for (const char* component : {"transformer", "text_encoder_2", "tokenizer_3"}) {
    test::TempDir tmp;
    const auto dir = test::copy_fixture(tmp, "sd3_pipe");
    std::filesystem::remove_all(dir / component);
    EXPECT_TRUE(test::throws_any_error([&] { StableDiffusion3::load(dir); }, {component}))
        << "expected an error without " << component;
  }
}
