// End to end: kiln's Flux.1 text-to-image, image-to-image and inpainting against the images
// diffusers' FluxPipeline / FluxImg2ImgPipeline / FluxInpaintPipeline produced from the same tiny
// folders, seeds, strengths and masks (tests/reference/make_flux_pipeline_fixtures.py): a
// dev-like transformer (distilled guidance, dynamic shift) and a schnell-like one (no guidance
// embedding, static shift 1). The bar: PSNR >= 40 dB in f32.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "kiln/io/safetensors.hpp"
#include "kiln/pipelines/recipes/flux.hpp"
#include "recipe_test_util.hpp"
#include "pipeline_test_util.hpp"

using namespace kiln;
using kiln::pipelines::recipes::Flux;
using kiln::pipelines::recipes::FluxOptions;
using kiln::pipelines::recipes::ImageRequest;

namespace {

// flux_pipe_schnell/ holds only the schnell transformer and scheduler; the fixture script runs
// diffusers on flux_pipe/ with those two swapped in, and so does this.
std::filesystem::path make_schnell(const test::TempDir& tmp) {
  const auto dst = test::copy_fixture(tmp, "flux_pipe");
  for (const char* c : {"transformer", "scheduler"}) {
    std::filesystem::remove_all(dst / c);
    std::filesystem::copy(test::data_dir() / "flux_pipe_schnell" / c, dst / c,
                          std::filesystem::copy_options::recursive);
  }
  return dst;
}

}  // namespace

TEST(Flux, MatchesDiffusersEndToEnd) {
  const auto dir = test::data_dir();
  test::TempDir tmp;
  Flux dev = Flux::load(dir / "flux_pipe");
  Flux schnell = Flux::load(make_schnell(tmp));
  EXPECT_EQ(dev.default_size(), 256);  // 128 x vae factor 2
  EXPECT_EQ(dev.size_multiple(), 4);   // 2x2 packing x vae factor 2
  EXPECT_TRUE(dev.guidance_distilled());
  EXPECT_FALSE(schnell.guidance_distilled());
  auto goldens = io::SafetensorsFile::open(dir / "flux_pipe.goldens.safetensors");
  auto cases = nlohmann::json::parse(goldens->metadata().at("cases"));
  ASSERT_GE(cases.size(), 6u);
  for (const auto& c : cases) {
    ImageRequest req = test::request_from_case(c, *goldens);  // img2img: the image's size
    FluxOptions opt;
    opt.max_sequence_length = c["max_sequence_length"];
    const bool img2img = req.init_image.defined(), inpaint = req.mask.defined();
    int calls = 0;
    req.progress = [&](int, int) { ++calls; };
    const Flux& flux = c["variant"] == "dev" ? dev : schnell;
    const double p =
        test::golden_psnr(flux.generate(req, opt), goldens->get(std::string(c["name"]) + ".image"));
    EXPECT_GE(p, 40.0) << c["name"];
    EXPECT_EQ(calls, c["denoise_steps"].get<int>()) << c["name"];
    std::printf("%-26s %-10s strength %-4s%s PSNR %.1f dB\n", std::string(c["name"]).c_str(),
                req.sampler.c_str(), img2img ? c["strength"].dump().c_str() : "-",
                inpaint ? " mask" : "", p);
  }
}

TEST(Flux, Img2ImgBadRequestsAreClearErrors) {
  Flux flux = Flux::load(test::data_dir() / "flux_pipe");
  ImageRequest req;
  FluxOptions opt;
  opt.max_sequence_length = 16;
  req.steps = 4;
  req.sampler = "flow_euler";
  req.init_image = Tensor::zeros({1, 3, 32, 40});
  req.height = 40;
  test::expect_error([&] { flux.generate(req, opt); },
                     "init_image is 40x32 but the request asks for 0x40");
  req.height = 0;
  req.init_image = Tensor::zeros({1, 3, 34, 40});  // not a multiple of 2 x factor (4)
  test::expect_error([&] { flux.generate(req, opt); }, "multiple of 2 x the VAE factor");
  req.init_image = Tensor::zeros({1, 3, 32});
  test::expect_error([&] { flux.generate(req, opt); }, "init_image must be f32 (B, 3, H, W)");
  req.batch = 2;
  req.init_image = Tensor::zeros({3, 3, 32, 40});
  test::expect_error([&] { flux.generate(req, opt); }, "init_image batch 3 must be 1 or");
  req.init_image = Tensor::zeros({1, 3, 32, 40});
  for (double s : {0.0, 1.01}) {
    req.strength = s;
    test::expect_error([&] { flux.generate(req, opt); }, "out of range (0, 1]");
  }
}

TEST(Flux, InpaintBadRequestsAreClearErrors) {
  Flux flux = Flux::load(test::data_dir() / "flux_pipe");
  FluxOptions opt;
  opt.max_sequence_length = 16;
  test::expect_flow_inpaint_request_errors(
      [&](const ImageRequest& req) { flux.generate(req, opt); });
}

TEST(Flux, ScheduleIsFluxPipelines) {
  // scheduler.sigmas after FluxPipeline's retrieve_timesteps on FLUX.1-dev's scheduler config
  // (diffusers 0.42.1): sigmas = linspace(1, 1/n, n), mu = calculate_shift(image_seq_len). Bit
  // exact: 1024 tokens is a 512x512 image, 80 the fixture's 32x40.
  Flux dev = Flux::load(test::data_dir() / "flux_pipe");
  struct Want {
    int steps;
    int64_t seq_len;
    std::vector<float> sigmas;
  };
  const Want wants[] = {
      {4, 1024, {0x1p+0f, 0x1.b2cee8p-1f, 0x1.4e1318p-1f, 0x1.8a2ef4p-2f, 0.f}},
      {7,
       80,
       {0x1p+0f, 0x1.cfb504p-1f, 0x1.999de6p-1f, 0x1.5c9e58p-1f, 0x1.174c78p-1f, 0x1.8fa8ep-2f,
        0x1.af3a46p-3f, 0.f}},
  };
  for (const auto& w : wants) {
    auto s = dev.flux_schedule(w.steps, w.seq_len);
    EXPECT_EQ(s.sigmas, w.sigmas) << w.steps;
    ASSERT_EQ(s.timesteps.size(), static_cast<size_t>(w.steps));
    for (size_t i = 0; i < s.timesteps.size(); ++i)
      EXPECT_EQ(s.timesteps[i], w.sigmas[i] * 1000.f) << i;  // timesteps = sigmas * 1000 in f32
  }
  EXPECT_EQ(dev.flux_schedule(1, 80).sigmas, (std::vector<float>{1.f, 0.f}));
}

TEST(Flux, BadRequestsAreClearErrors) {
  Flux flux = Flux::load(test::data_dir() / "flux_pipe");
  ImageRequest req;
  FluxOptions opt;
  req.width = 34;  // a multiple of the VAE factor (2) but not of 2 x factor (4)
  req.height = 32;
  req.steps = 2;
  opt.max_sequence_length = 16;
  test::expect_error([&] { flux.generate(req, opt); }, "multiple of 2 x the VAE factor");
  req.width = 32;
  req.sampler = "warp_drive";
  test::expect_error([&] { flux.generate(req, opt); }, "unknown sampler");
  req.sampler = "euler_a";
  test::expect_error([&] { flux.generate(req, opt); }, "not a flow-matching sampler");
  req.sampler = "flow_euler";
  opt.max_sequence_length = 0;
  test::expect_error([&] { flux.generate(req, opt); }, "max_sequence_length 0");
  opt.max_sequence_length = 16;
  req.steps = 0;
  test::expect_error([&] { flux.generate(req, opt); }, "steps 0");
  req.steps = 2;
  req.guidance_scale = std::nanf("");
  test::expect_error([&] { flux.generate(req, opt); }, "guidance_scale");
  req.guidance_scale = 3.5f;
  std::atomic<bool> cancel{true};
  req.cancel = &cancel;
  EXPECT_TRUE(test::throws_error([&] { flux.generate(req, opt); }, Status::cancelled, {}));
}

TEST(Flux, MissingComponentNamesIt) {
  for (const char* component : {"vae", "text_encoder_2", "tokenizer"}) {
    test::TempDir tmp;
    const auto dir = test::copy_fixture(tmp, "flux_pipe");
    std::filesystem::remove_all(dir / component);
    EXPECT_TRUE(test::throws_any_error([&] { Flux::load(dir); }, {component}))
        << "expected an error without " << component;
  }
}
