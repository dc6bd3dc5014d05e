// SD3Transformer2DModel (MMDiT) parity with diffusers 0.42.1 on tiny random SD3-like (no qk norm,
// 3 blocks) and SD3.5-like (qk rms_norm, dual attention in block 0, bf16 checkpoint) configs
// and a pos_embed_max_size-null one (f16 checkpoint) (fixtures:
// tests/reference/make_sd3_fixtures.py): batch 2, a non-square 12x20 latent cropped off-centre
// from pos_embed, the full 32x32 grid, skip-layer guidance; the sincos position
// table against the checkpoint's buffer and a checkpoint without it; the real SD3-medium /
// SD3.5-medium / SD3.5-large key trees; the errors a caller or a bad folder can cause.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "kiln/core/error.hpp"
#include "kiln/io/module.hpp"
#include "kiln/io/safetensors.hpp"
#include "kiln/io/weight_source.hpp"
#include "kiln/pipelines/models/sd3_transformer.hpp"
#include "pipeline_test_util.hpp"

namespace kiln::test {
namespace {

namespace fs = std::filesystem;
using pipelines::models::SD3ForwardOptions;
using pipelines::models::SD3Transformer2DModel;
using pipelines::models::SD3TransformerConfig;

// The bar is 1e-4 (f32); kiln and torch differ only in summation order.
constexpr double kRelL2 = 1e-5;

fs::path sd3_dir(const std::string& name) {
  return data_dir() / "sd3" / name;
}

struct Case {
  Tensor x, ctx, pooled, t, out;
};

Case read_case(const std::string& config, const std::string& name) {
  auto io = io::open_weights(sd3_dir(config + ".io.safetensors"));
  auto f32 = [&](const std::string& k) {
    return io->get(name + "." + k).to(DType::f32).contiguous();
  };
  return {f32("hidden_states"), f32("encoder_hidden_states"), f32("pooled_projections"),
          f32("timestep"), f32("out")};
}

void expect_parity(const SD3Transformer2DModel& m, const std::string& config,
                   const std::string& name, const SD3ForwardOptions& opt = {}) {
  SCOPED_TRACE(config + "/" + name);
  const Case c = read_case(config, name);
  const Tensor out = m.forward(c.x, c.ctx, c.pooled, c.t, opt);
  ASSERT_EQ(out.shape(), c.out.shape());
  const Diff d = compare(out, to_doubles(c.out));
  std::printf("[parity] sd3 %-5s %-5s %s: rel L2 %.3g, max abs %.3g\n", config.c_str(),
              name.c_str(), c.x.shape().str().c_str(), d.rel_l2, d.max_abs);
  ::testing::Test::RecordProperty(config + "." + name, str(d.rel_l2));
  EXPECT_EQ(d.nonfinite, 0);
  EXPECT_LE(d.rel_l2, kRelL2);
}

const SD3Transformer2DModel& model(const std::string& name) {
  static std::map<std::string, SD3Transformer2DModel> cache;
  auto it = cache.find(name);
  if (it == cache.end()) it = cache.emplace(name, SD3Transformer2DModel::load(sd3_dir(name))).first;
  return it->second;
}

TEST(SD3Parity, SD3NoQkNorm) {
  const auto& m = model("sd3");
  for (const char* c : {"two", "wide", "big"}) expect_parity(m, "sd3", c);
}

TEST(SD3Parity, SD35QkNormDualAttentionBf16) {
  const auto& m = model("sd35");
  for (const char* c : {"two", "wide", "big"}) expect_parity(m, "sd35", c);
  const int skip[] = {0};
  expect_parity(m, "sd35", "skip", SD3ForwardOptions{.skip_layers = skip});
}

// pos_embed_max_size null: no buffer in the file; the grid is computed for each input size
// (16x16 = the base grid, 12x20 a non-square one). 1 block (context_pre_only), f16 on disk.
TEST(SD3Parity, NoCropF16) {
  const auto& m = model("nocrop");
  EXPECT_EQ(m.config().pos_embed_max_size, 0);
  EXPECT_FALSE(m.pos_embed.pos_embed.defined());
  for (const char* c : {"two", "wide"}) expect_parity(m, "nocrop", c);
}

TEST(SD3Parity, ConfigAndTree) {
  const auto& a = model("sd3");
  EXPECT_EQ(a.config().qk_norm, pipelines::nn::QkNorm::none);
  EXPECT_EQ(a.config().num_layers, 3);
  EXPECT_EQ(a.config().pos_embed_max_size, 16);
  EXPECT_TRUE(a.transformer_blocks.back().context_pre_only);
  EXPECT_FALSE(a.transformer_blocks.front().context_pre_only);
  const auto& b = model("sd35");
  EXPECT_EQ(b.config().qk_norm, pipelines::nn::QkNorm::rms_norm);
  EXPECT_EQ(b.config().dual_attention_layers, std::vector<int>{0});
  EXPECT_TRUE(b.transformer_blocks[0].use_dual_attention);
  EXPECT_EQ(b.transformer_blocks[0].norm1.chunks, 9);
  EXPECT_FALSE(b.transformer_blocks[1].use_dual_attention);
  // bf16 on disk, f32 in memory.
  EXPECT_EQ(b.transformer_blocks[0].attn.add_q_proj.weight.dtype(), DType::f32);
  EXPECT_EQ(b.pos_embed.pos_embed.dtype(), DType::f32);
}

// The computed table equals the buffer diffusers saved (f32 checkpoint): both are f64 sin/cos
// rounded to f32, so at most a rounding step apart.
TEST(SD3Parity, SincosTableMatchesCheckpointBuffer) {
  const auto& m = model("sd3");
  const SD3TransformerConfig& c = m.config();
  const Tensor table = pipelines::models::sd3::sincos_pos_embed_2d(
      c.inner_dim(), c.pos_embed_max_size, c.pos_embed_max_size, c.sample_size / c.patch_size);
  const Tensor want = m.pos_embed.pos_embed;
  ASSERT_EQ(want.shape(), (Shape{1, 256, 16}));
  EXPECT_TRUE(all_close(table.unsqueeze(0), to_doubles(want), 1e-7, 1e-6));
}

// A checkpoint converted without the (deterministic) pos_embed buffer loads and matches.
TEST(SD3Parity, CheckpointWithoutPosEmbedBuffer) {
  TempDir tmp;
  fs::copy_file(sd3_dir("sd3/config.json"), tmp.path / "config.json");
  const auto src = io::open_weights(sd3_dir("sd3"));
  std::map<std::string, Tensor> kept;
  for (const auto& k : src->names())
    if (k != "pos_embed.pos_embed") kept.emplace(k, src->get(k));
  io::save_safetensors(tmp.path / "diffusion_pytorch_model.safetensors", kept);
  const auto m = SD3Transformer2DModel::load(tmp.path);
  for (const char* c : {"two", "wide"}) expect_parity(m, "sd3", c);
}

// kiln's module tree has exactly the state_dict keys and shapes of the real transformers.
TEST(SD3Parity, RealConfigKeyTrees) {
  const auto all = read_json(sd3_dir("real_configs.json"));
  ASSERT_EQ(all.size(), 3u);
  for (const auto& [name, want] : all.items()) {
    SCOPED_TRACE(name);
    SD3Transformer2DModel m(
        SD3TransformerConfig::from_json(io::ComponentConfig(want["config"], name)));
    expect_key_tree(m, want);
  }
}

// ---------------------------------------------------------------- errors

TEST(SD3Errors, BadInputs) {
  const auto& m = model("sd3");
  const Case c = read_case("sd3", "two");  // x (2, 4, 16, 16), ctx (2, 7, 32), pooled (2, 32)
  auto fwd = [&](const Tensor& x, const Tensor& ctx, const Tensor& pooled, const Tensor& t) {
    return [&, x, ctx, pooled, t] { m.forward(x, ctx, pooled, t); };
  };
  EXPECT_TRUE(throws_error(fwd(random_tensor({2, 4, 17, 16}, 1), c.ctx, c.pooled, c.t),
                           Status::invalid_argument, {"17x16", "not a multiple of patch_size 2"}));
  EXPECT_TRUE(throws_error(fwd(random_tensor({2, 4, 16, 34}, 1), c.ctx, c.pooled, c.t),
                           Status::invalid_argument,
                           {"8x17 patches", "pos_embed_max_size 16", "at most 32x32"}));
  EXPECT_TRUE(throws_error(fwd(random_tensor({2, 16, 16, 16}, 1), c.ctx, c.pooled, c.t),
                           Status::invalid_argument, {"16 channels", "expects 4"}));
  EXPECT_TRUE(throws_error(fwd(random_tensor({2, 4, 16}, 1), c.ctx, c.pooled, c.t),
                           Status::invalid_argument, {"hidden_states must be (B, C, H, W)"}));
  EXPECT_TRUE(throws_error(fwd(c.x, random_tensor({2, 7, 24}, 2), c.pooled, c.t),
                           Status::invalid_argument, {"encoder_hidden_states must be (2, S, 32)"}));
  EXPECT_TRUE(throws_error(fwd(c.x, c.ctx, random_tensor({1, 32}, 3), c.t),
                           Status::invalid_argument, {"pooled_projections must be (2, 32)"}));
  EXPECT_TRUE(throws_error(fwd(c.x, c.ctx, c.pooled, Tensor::zeros({3})), Status::invalid_argument,
                           {"timestep must be (2) or (1)"}));
  const int bad[] = {3};
  EXPECT_TRUE(throws_error([&] { m.forward(c.x, c.ctx, c.pooled, c.t, {.skip_layers = bad}); },
                           Status::invalid_argument, {"skip_layers holds 3"}));
  // A (1) timestep broadcasts over the batch, as in diffusers.
  const Tensor one = Tensor::from_f32({1}, {999.f});
  const Tensor both = m.forward(c.x, c.ctx, c.pooled, one);
  EXPECT_EQ(both.shape(), c.x.shape());
}

// Writes `dir`/config.json = the sd3 fixture's config with `edit` applied, next to its weights.
void edited_folder(const fs::path& dir, const std::function<void(nlohmann::json&)>& edit) {
  std::ifstream in(sd3_dir("sd3/config.json"));
  nlohmann::json j = nlohmann::json::parse(in);
  edit(j);
  std::ofstream(dir / "config.json") << j.dump(1);
  fs::copy_file(sd3_dir("sd3/diffusion_pytorch_model.safetensors"),
                dir / "diffusion_pytorch_model.safetensors");
}

TEST(SD3Errors, BadFolders) {
  {
    TempDir tmp;
    edited_folder(tmp.path, [](nlohmann::json& j) { j["caption_projection_dim"] = 24; });
    EXPECT_TRUE(throws_error([&] { SD3Transformer2DModel::load(tmp.path); }, Status::format_error,
                             {"caption_projection_dim 24", "config.json"}));
  }
  {
    TempDir tmp;
    edited_folder(tmp.path, [](nlohmann::json& j) { j["qk_norm"] = "l2"; });
    EXPECT_TRUE(throws_error([&] { SD3Transformer2DModel::load(tmp.path); }, Status::unsupported,
                             {"qk_norm \"l2\""}));
  }
  {
    TempDir tmp;
    edited_folder(tmp.path, [](nlohmann::json& j) { j["dual_attention_layers"] = {5}; });
    EXPECT_TRUE(throws_error([&] { SD3Transformer2DModel::load(tmp.path); }, Status::format_error,
                             {"dual_attention_layers holds 5"}));
  }
  {  // The config asks for dual attention the weights do not have: strict key accounting.
    TempDir tmp;
    edited_folder(tmp.path, [](nlohmann::json& j) { j["dual_attention_layers"] = {0}; });
    EXPECT_TRUE(throws_error([&] { SD3Transformer2DModel::load(tmp.path); }, Status::format_error,
                             {"transformer_blocks.0.attn2.to_q.weight", "norm1.linear.weight"}));
  }
  {
    TempDir tmp;
    edited_folder(tmp.path, [](nlohmann::json& j) { j["_class_name"] = "FluxTransformer2DModel"; });
    EXPECT_TRUE(throws_error([&] { SD3Transformer2DModel::load(tmp.path); },
                             Status::invalid_argument,
                             {"_class_name is \"FluxTransformer2DModel\""}));
  }
  EXPECT_TRUE(throws_error([&] { SD3Transformer2DModel::load(sd3_dir("absent")); },
                           Status::not_found, {"config.json"}));
}

}  // namespace
}  // namespace kiln::test
