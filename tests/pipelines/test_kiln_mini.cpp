// End to end on the trained models/kiln-mini (tools/train): kiln's Stable Diffusion XL against
// the images diffusers' StableDiffusionXLPipeline made from the same folder, seed, sampler and
// steps (tests/reference/make_kiln_mini_fixtures.py): three held-out captions with Euler and one
// with DPM++ 2M, 20 steps, cfg 5, 64x64. Unlike the tiny random fixtures this folder has no
// first text encoder, a tokenizer.json-only tokenizer_2 with model_max_length 64, a v-prediction
// "trailing" scheduler, and weights that were trained, so the images have structure.
//
// The bar is 90 dB, not the 40 dB of the tests on random weights: this trained denoiser lands on
// nearly the same image when the recipe is slightly wrong, so 40 dB lets real bugs through.
// Measured (diffusers' own images under the same mistakes score the same on euler_0): kiln
// 132.7-137.3 dB (132.7-140.6 dB across the openblas, onednn and kiln GEMMs); "leading" instead of
// "trailing" spacing 51.7-63.1 dB, 19 steps instead of 20 53.7-57.0 dB, guidance 5.5 instead of
// 5 30.5-47.3 dB, force_zeros_for_empty_prompt off 14.8-19.5 dB, the last 10 BPE merges
// dropped 17.4 dB on the one caption that uses them.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "kiln/io/safetensors.hpp"
#include "kiln/pipelines/recipes/stable_diffusion_xl.hpp"
#include "kiln/pipelines/registry.hpp"
#include "pipeline_test_util.hpp"
#include "recipe_test_util.hpp"

using namespace kiln;
using kiln::pipelines::recipes::ImageRequest;
using kiln::pipelines::recipes::StableDiffusionXL;

namespace {

constexpr double kMinPsnrDb = 90.0;

std::filesystem::path mini_dir() {
  return test::models_dir() / "kiln-mini";
}

}  // namespace

TEST(KilnMini, MatchesDiffusersEndToEnd) {
  StableDiffusionXL xl = StableDiffusionXL::load(mini_dir());
  EXPECT_TRUE(xl.force_zeros_for_empty_prompt());
  EXPECT_EQ(xl.default_size(), 64);
  auto goldens = io::SafetensorsFile::open(test::data_dir() / "kiln_mini" / "goldens.safetensors");
  auto cases = nlohmann::json::parse(goldens->metadata().at("cases"));
  ASSERT_EQ(cases.size(), 4u);
  for (const auto& c : cases) {
    const std::string name = c["name"];
    const ImageRequest req = test::request_from_case(c, *goldens);
    const double p = test::golden_psnr(xl.generate(req), goldens->get(name + ".image"));
    EXPECT_GE(p, kMinPsnrDb) << name << " (" << req.sampler << ")";
    std::printf("%-12s %-9s PSNR %.1f dB\n", name.c_str(), req.sampler.c_str(), p);
  }
}

// kiln render goes through the registry: the folder must be detected as SDXL with its defaults.
TEST(KilnMini, RegistryDetectsSdxl) {
  auto pipe = pipelines::load_image_pipeline(mini_dir());
  EXPECT_EQ(pipe->family(), "sdxl");
  EXPECT_EQ(pipe->defaults().width, 64);  // unet sample_size 16 x vae factor 4
  EXPECT_EQ(pipe->defaults().height, 64);
}
