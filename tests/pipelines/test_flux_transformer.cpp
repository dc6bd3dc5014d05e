// FluxTransformer2DModel parity with diffusers 0.42.1 on tiny random dev-like (guidance
// embedding, bf16 weights) and schnell-like (f16 weights) configurations (fixtures:
// tests/reference/make_flux_fixtures.py): batch 2, non-square latents, non-zero text ids; the
// real FLUX.1 key trees; FluxPipeline's pack/unpack/ids helpers; and the errors a caller can
// cause.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "kiln/io/module.hpp"
#include "kiln/io/weight_source.hpp"
#include "kiln/pipelines/models/flux_transformer.hpp"
#include "pipeline_test_util.hpp"

namespace kiln::test {
namespace {

using pipelines::models::FluxTransformer2DModel;
using pipelines::models::FluxTransformerConfig;
namespace flux = pipelines::models::flux;

// The bar is 1e-4 (f32); kiln and torch differ only in summation order, so the tiny
// configs are held to 1e-5.
constexpr double kRelL2 = 1e-5;

std::filesystem::path flux_dir(const std::string& name) {
  return data_dir() / "flux" / name;
}

struct Case {
  Tensor hidden, ehs, pooled, timestep, img_ids, txt_ids, guidance, out;
};

Case read_case(const std::string& config, const std::string& name) {
  auto io = io::open_weights(flux_dir(config + ".io.safetensors"));
  const auto get = [&](const std::string& key) {
    return io->get(name + "." + key).to(DType::f32).contiguous();
  };
  Case c;
  c.hidden = get("hidden_states");
  c.ehs = get("encoder_hidden_states");
  c.pooled = get("pooled_projections");
  c.timestep = get("timestep");
  c.img_ids = get("img_ids");
  c.txt_ids = get("txt_ids");
  if (io->has(name + ".guidance")) c.guidance = get("guidance");
  c.out = io->get(name + ".out");
  return c;
}

void expect_parity(const FluxTransformer2DModel& model, const std::string& config,
                   const std::string& name) {
  SCOPED_TRACE(config + "/" + name);
  const Case c = read_case(config, name);
  const Tensor out =
      model.forward(c.hidden, c.ehs, c.pooled, c.timestep, c.img_ids, c.txt_ids, c.guidance);
  ASSERT_EQ(out.shape(), c.out.shape());
  const Diff d = compare(out, to_doubles(c.out));
  std::printf("[parity] flux %-7s %-4s hidden %s text %s: rel L2 %.3g, max abs %.3g\n",
              config.c_str(), name.c_str(), c.hidden.shape().str().c_str(),
              c.ehs.shape().str().c_str(), d.rel_l2, d.max_abs);
  EXPECT_EQ(d.nonfinite, 0);
  EXPECT_LE(d.rel_l2, kRelL2);
}

TEST(FluxParity, DevGuidanceEmbedsBf16) {
  const auto model = FluxTransformer2DModel::load(flux_dir("dev"));
  const auto& cfg = model.config();
  EXPECT_TRUE(cfg.guidance_embeds);
  EXPECT_EQ(cfg.axes_dims_rope, (std::vector<int>{4, 6, 6}));
  EXPECT_EQ(model.single_transformer_blocks.size(), 2u);
  EXPECT_TRUE(model.time_text_embed.guidance_embedder.has_value());
  EXPECT_EQ(model.x_embedder.weight.dtype(), DType::f32);  // stored bf16, converted on load
  expect_parity(model, "dev", "b2");                       // batch 2, 4x4 token grid, 7 text tokens
  expect_parity(model, "dev", "wide");                     // 3x5 token grid (non-square), sigma 1
  expect_parity(model, "dev", "ids");                      // non-zero txt_ids on all three axes
}

TEST(FluxParity, SchnellNoGuidanceF16) {
  const auto model = FluxTransformer2DModel::load(flux_dir("schnell"));
  EXPECT_FALSE(model.config().guidance_embeds);
  EXPECT_FALSE(model.time_text_embed.guidance_embedder.has_value());
  expect_parity(model, "schnell", "b2");   // batch 2, 3x5 grid
  expect_parity(model, "schnell", "one");  // 4x2 grid, 11 text tokens
}

// Scalar timestep / guidance broadcast over the batch, and (1, N, 3) ids (diffusers' deprecated
// layout) give the same result as the per-sample forms.
TEST(FluxParity, BroadcastTimestepAndBatchedIds) {
  const auto model = FluxTransformer2DModel::load(flux_dir("dev"));
  const Case c = read_case("dev", "b2");  // both samples share timestep and guidance
  const Tensor t1 = c.timestep.narrow(0, 0, 1);
  const Tensor g0 = c.guidance.narrow(0, 0, 1).reshape({});
  const Tensor out = model.forward(c.hidden, c.ehs, c.pooled, t1, c.img_ids.unsqueeze(0),
                                   c.txt_ids.unsqueeze(0), g0);
  const Diff d = compare(out, to_doubles(c.out));
  EXPECT_LE(d.rel_l2, kRelL2);
}

// The module trees of the real FLUX.1-dev and FLUX.1-schnell configs have exactly diffusers'
// state_dict keys and shapes (a hash of the sorted "key a,b,c" lines written by
// make_flux_fixtures.py from diffusers on the meta device).
TEST(FluxParity, RealConfigKeyTrees) {
  const auto all = read_json(flux_dir("real_configs.json"));
  ASSERT_EQ(all.size(), 2u);
  for (const auto& [name, want] : all.items()) {
    SCOPED_TRACE(name);
    FluxTransformer2DModel model(
        FluxTransformerConfig::from_json(io::ComponentConfig(want["config"], name)));
    expect_key_tree(model, want);
  }
}

// ---------------------------------------------------------------- pipeline helpers

TEST(FluxPipelineHelpers, PackUnpackIdsMatchDiffusers) {
  auto io = io::open_weights(flux_dir("pipeline.safetensors"));
  const Tensor latents = io->get("latents").contiguous();  // (2, 4, 6, 10)
  const Tensor packed = flux::pack_latents(latents);
  ASSERT_EQ(packed.shape(), io->get("packed").shape());
  EXPECT_EQ(compare(packed, to_doubles(io->get("packed"))).max_abs, 0.0);

  // Pixel 52x80 with vae_scale_factor 8 rounds down to a 6x10 latent, as the pipeline does.
  const Tensor unpacked = flux::unpack_latents(packed, 52, 80, 8);
  ASSERT_EQ(unpacked.shape(), io->get("unpacked").shape());
  EXPECT_EQ(compare(unpacked, to_doubles(io->get("unpacked"))).max_abs, 0.0);
  EXPECT_EQ(compare(unpacked, to_doubles(latents)).max_abs, 0.0);  // round trip

  const Tensor ids = flux::latent_image_ids(3, 5);
  ASSERT_EQ(ids.shape(), io->get("img_ids").shape());
  EXPECT_EQ(compare(ids, to_doubles(io->get("img_ids"))).max_abs, 0.0);

  const Tensor txt = flux::text_ids(7);
  EXPECT_EQ(txt.shape(), (Shape{7, 3}));
  EXPECT_EQ(compare(txt, std::vector<double>(21, 0.0)).max_abs, 0.0);
}

TEST(FluxPipelineHelpers, RoundTripAwkwardSizes) {
  const Tensor lat = random_tensor({3, 16, 14, 22}, 7);  // 7x11 token grid
  const Tensor packed = flux::pack_latents(lat);
  EXPECT_EQ(packed.shape(), (Shape{3, 77, 64}));
  const Tensor back = flux::unpack_latents(packed, 14 * 8, 22 * 8, 8);
  EXPECT_EQ(compare(back, to_doubles(lat)).max_abs, 0.0);
  // Token (r, c) of the grid holds latent[:, :, 2r + dy, 2c + dx] at channel c*4 + dy*2 + dx.
  const auto p = to_doubles(packed), l = to_doubles(lat);
  const int64_t r = 5, col = 9, ch = 11, dy = 1, dx = 0;
  EXPECT_EQ(p[(0 * 77 + r * 11 + col) * 64 + ch * 4 + dy * 2 + dx],
            l[((0 * 16 + ch) * 14 + 2 * r + dy) * 22 + 2 * col + dx]);
}

TEST(FluxPipelineHelpers, BadInputs) {
  expect_error([] { flux::pack_latents(Tensor::zeros({1, 4, 5, 6})); }, "must be even");
  expect_error([] { flux::pack_latents(Tensor::zeros({4, 6, 6})); }, "(B, C, H, W)");
  expect_error([] { flux::unpack_latents(Tensor::zeros({1, 15, 16}), 64, 64, 8); }, "token grid");
  expect_error([] { flux::latent_image_ids(0, 4); }, "positive");
}

// ---------------------------------------------------------------- errors

class FluxErrors : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dev_ = new FluxTransformer2DModel(FluxTransformer2DModel::load(flux_dir("dev")));
    schnell_ = new FluxTransformer2DModel(FluxTransformer2DModel::load(flux_dir("schnell")));
  }
  static void TearDownTestSuite() {
    delete dev_;
    delete schnell_;
  }
  static FluxTransformer2DModel* dev_;
  static FluxTransformer2DModel* schnell_;
};
FluxTransformer2DModel* FluxErrors::dev_ = nullptr;
FluxTransformer2DModel* FluxErrors::schnell_ = nullptr;

TEST_F(FluxErrors, GuidanceMissingForDevOrGivenToSchnell) {
  const Case c = read_case("dev", "b2");
  expect_error([&] { dev_->forward(c.hidden, c.ehs, c.pooled, c.timestep, c.img_ids, c.txt_ids); },
               "needs guidance");
  const Case s = read_case("schnell", "b2");
  expect_error(
      [&] {
        schnell_->forward(s.hidden, s.ehs, s.pooled, s.timestep, s.img_ids, s.txt_ids,
                          Tensor::full({2}, 3.5f));
      },
      "no guidance embedding");
  expect_error(
      [&] {
        dev_->forward(c.hidden, c.ehs, c.pooled, c.timestep, c.img_ids, c.txt_ids,
                      Tensor::full({3}, 3.5f));
      },
      "guidance must hold 1 or batch (2) values");
}

TEST_F(FluxErrors, IdsLengthMismatch) {
  const Case c = read_case("dev", "b2");  // 16 image tokens, 7 text tokens
  expect_error(
      [&] {
        dev_->forward(c.hidden, c.ehs, c.pooled, c.timestep, flux::latent_image_ids(3, 5),
                      c.txt_ids, c.guidance);
      },
      "img_ids (15, 3) must be (16, 3)");
  expect_error(
      [&] {
        dev_->forward(c.hidden, c.ehs, c.pooled, c.timestep, c.img_ids, flux::text_ids(8),
                      c.guidance);
      },
      "txt_ids (8, 3) must be (7, 3)");
  expect_error(
      [&] {
        dev_->forward(c.hidden, c.ehs, c.pooled, c.timestep, Tensor::zeros({16, 2}), c.txt_ids,
                      c.guidance);
      },
      "must be (16, 3)");
}

TEST_F(FluxErrors, WrongShapes) {
  const Case c = read_case("dev", "b2");
  // Unpacked latents instead of packed tokens.
  expect_error(
      [&] {
        dev_->forward(Tensor::zeros({2, 16, 12}), c.ehs, c.pooled, c.timestep, c.img_ids, c.txt_ids,
                      c.guidance);
      },
      "in_channels is 16");
  expect_error(
      [&] {
        dev_->forward(Tensor::zeros({2, 4, 8, 8}), c.ehs, c.pooled, c.timestep, c.img_ids,
                      c.txt_ids, c.guidance);
      },
      "hidden_states must be f32 (B, L, in_channels)");
  expect_error(
      [&] {
        dev_->forward(c.hidden, Tensor::zeros({2, 7, 24}), c.pooled, c.timestep, c.img_ids,
                      c.txt_ids, c.guidance);
      },
      "encoder_hidden_states (2, 7, 24) must be (2, S, 32)");
  expect_error(
      [&] {
        dev_->forward(c.hidden, c.ehs, Tensor::zeros({1, 32}), c.timestep, c.img_ids, c.txt_ids,
                      c.guidance);
      },
      "pooled_projections must be f32 (2, 32)");
  expect_error(
      [&] {
        dev_->forward(c.hidden, c.ehs, c.pooled, Tensor::zeros({3}), c.img_ids, c.txt_ids,
                      c.guidance);
      },
      "timestep must hold 1 or batch (2) values");
}

// Strict key accounting: a config that disagrees with the weights fails listing the keys.
TEST(FluxLoad, ConfigWeightsMismatchListsKeys) {
  TempDir tmp;
  std::filesystem::copy(flux_dir("schnell"), tmp.path / "as_dev");
  std::filesystem::copy(flux_dir("dev"), tmp.path / "as_schnell");
  for (const auto& [dir, guidance] : {std::pair{"as_dev", true}, std::pair{"as_schnell", false}}) {
    const auto file = tmp.path / dir / "config.json";
    nlohmann::json j;
    std::ifstream(file) >> j;
    j["guidance_embeds"] = guidance;
    std::ofstream(file) << j.dump(1);
  }
  EXPECT_TRUE(throws_error([&] { FluxTransformer2DModel::load(tmp.path / "as_dev"); },
                           Status::format_error,
                           {"missing", "time_text_embed.guidance_embedder.linear_1.weight"}));
  EXPECT_TRUE(throws_error([&] { FluxTransformer2DModel::load(tmp.path / "as_schnell"); },
                           Status::format_error,
                           {"unexpected", "time_text_embed.guidance_embedder.linear_2.bias"}));
}

TEST(FluxLoad, BadConfig) {
  TempDir tmp;
  std::filesystem::copy(flux_dir("schnell"), tmp.path / "m");
  const auto file = tmp.path / "m" / "config.json";
  nlohmann::json j;
  std::ifstream(file) >> j;
  j["axes_dims_rope"] = {4, 6, 8};  // 18 != attention_head_dim 16
  std::ofstream(file) << j.dump(1);
  EXPECT_TRUE(throws_error([&] { FluxTransformer2DModel::load(tmp.path / "m"); },
                           Status::format_error, {"axes_dims_rope", "sums to 18", "16"}));
  j["axes_dims_rope"] = {4, 6, 6};
  j["_class_name"] = "SD3Transformer2DModel";
  std::ofstream(file) << j.dump(1);
  EXPECT_TRUE(throws_error([&] { FluxTransformer2DModel::load(tmp.path / "m"); },
                           Status::invalid_argument, {"FluxTransformer2DModel"}));
  EXPECT_TRUE(throws_error([&] { FluxTransformer2DModel::load(tmp.path / "missing"); },
                           Status::not_found, {"config.json"}));
}

}  // namespace
}  // namespace kiln::test
