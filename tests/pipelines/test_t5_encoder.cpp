// T5EncoderModel parity with transformers (tests/data/t5, written by
// tests/reference/make_t5_fixtures.py): a tiny gated-gelu model (f32, and the same weights in
// f16) and a 1-layer "relu" one in bf16 with the duplicated embedding key of transformers 4.x;
// outputs through diffusers' own Flux (64 tokens) and SD3 (256 tokens) _get_t5_prompt_embeds,
// which pass no mask, and with a padding mask; the relative-position buckets of two configs;
// ids from T5Tokenizer end to end; bad configs and weights.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "kiln/core/error.hpp"
#include "kiln/io/safetensors.hpp"
#include "kiln/pipelines/models/t5_encoder.hpp"
#include "kiln/pipelines/text/t5_tokenizer.hpp"
#include "pipeline_test_util.hpp"

namespace kiln::test {
namespace {

using pipelines::models::t5_relative_position_bucket;
using Act = pipelines::nn::Act;
using pipelines::models::T5Config;
using pipelines::models::T5EncoderModel;
namespace fs = std::filesystem;

constexpr double kRelL2 = 1e-5;

fs::path t5_dir(const std::string& name = "") {
  return data_dir() / "t5" / name;
}

const io::SafetensorsFile& goldens() {
  static const auto f = io::SafetensorsFile::open(t5_dir("goldens.safetensors"));
  return *f;
}

Tensor golden(const std::string& name) {
  return goldens().get(name);
}

const nlohmann::json& doc() {
  static const nlohmann::json j = read_json(t5_dir("goldens.json"));
  return j;
}

const T5EncoderModel& model(const std::string& name) {
  static std::map<std::string, T5EncoderModel> cache;
  auto it = cache.find(name);
  if (it == cache.end()) it = cache.emplace(name, T5EncoderModel::load(t5_dir(name))).first;
  return it->second;
}

::testing::AssertionResult matches(const Tensor& actual, const std::string& golden_name) {
  return matches_golden(actual, golden(golden_name), golden_name, kRelL2);
}

TEST(T5Encoder, ConfigFromTransformers) {
  const auto& g = model("text_encoder").config();
  EXPECT_EQ(g.d_model, 32);
  EXPECT_EQ(g.d_kv, 8);
  EXPECT_EQ(g.d_ff, 37);
  EXPECT_EQ(g.num_layers, 2);
  EXPECT_EQ(g.num_heads, 4);
  EXPECT_TRUE(g.gated);
  EXPECT_EQ(g.act, Act::gelu_tanh);  // "gated-gelu" is gelu_new
  EXPECT_EQ(g.relative_attention_num_buckets, 32);
  EXPECT_EQ(g.relative_attention_max_distance, 128);
  const auto& r = model("text_encoder_relu_bf16").config();
  EXPECT_FALSE(r.gated);
  EXPECT_EQ(r.act, Act::relu);
  EXPECT_EQ(r.num_layers, 1);
  EXPECT_EQ(model("text_encoder").blocks[0].attn.relative_attention_bias.shape(), Shape({32, 4}));
  EXPECT_FALSE(model("text_encoder").blocks[1].attn.relative_attention_bias.defined());
}

TEST(T5Encoder, RelativePositionBucketsMatchTorch) {
  for (const auto& c : doc()["buckets"]) {
    const int nb = c["num_buckets"], md = c["max_distance"];
    const int64_t first = c["first"];
    const auto& want = c["buckets"];
    int bad = 0;
    for (size_t i = 0; i < want.size(); ++i) {
      const int64_t r = first + static_cast<int64_t>(i);
      const int32_t got = t5_relative_position_bucket(r, nb, md);
      if (got != want[i].get<int32_t>() && ++bad <= 5)
        ADD_FAILURE() << "buckets " << nb << "/" << md << ": relative position " << r << " -> "
                      << got << ", torch " << want[i].get<int32_t>();
    }
    EXPECT_EQ(bad, 0);
  }
}

TEST(T5Encoder, FluxAndSd3PipelineEmbeddings) {
  // diffusers' _get_t5_prompt_embeds: padded ids, no attention mask.
  EXPECT_TRUE(matches(model("text_encoder").forward(golden("flux_ids")), "flux_out"));
  EXPECT_TRUE(matches(model("text_encoder").forward(golden("sd3_ids")), "sd3_out"));
}

TEST(T5Encoder, TokenizerToEmbeddingsEndToEnd) {
  const auto tok = pipelines::text::T5Tokenizer::load(t5_dir("tokenizer"));
  const std::string prompt = doc()["long_prompt"];
  const auto enc = tok.encode_padded(prompt, 256);
  std::vector<std::vector<int32_t>> ids{enc.ids};
  EXPECT_TRUE(matches(model("text_encoder").forward(ids), "sd3_out"));
}

TEST(T5Encoder, PaddingMask) {
  const Tensor ids = golden("masked_ids"), mask = golden("masked_mask");
  EXPECT_TRUE(matches(model("text_encoder").forward(ids, mask), "masked_out"));
  EXPECT_TRUE(matches(model("text_encoder").forward(ids), "unmasked_out"));
  EXPECT_GT(
      compare(model("text_encoder").forward(ids, mask), to_doubles(golden("unmasked_out"))).rel_l2,
      1e-3)
      << "the mask must matter in this fixture";
  // i32 ids, and the span overload with masks.
  EXPECT_TRUE(matches(model("text_encoder").forward(ids.to(DType::i32), mask), "masked_out"));
}

TEST(T5Encoder, HalfPrecisionCheckpoints) {
  const Tensor ids = golden("masked_ids"), mask = golden("masked_mask");
  EXPECT_TRUE(matches(model("text_encoder_fp16").forward(ids, mask), "text_encoder_fp16_out"));
  // bf16, original T5 "relu" feed-forward, shared.weight + encoder.embed_tokens.weight.
  EXPECT_TRUE(
      matches(model("text_encoder_relu_bf16").forward(ids, mask), "text_encoder_relu_bf16_out"));
  EXPECT_EQ(model("text_encoder_fp16").shared.dtype(), DType::f32);
}

TEST(T5Encoder, LoneEmbedTokensKeyIsShared) {
  // Some single-file exports keep only encoder.embed_tokens.weight.
  TempDir tmp;
  fs::copy_file(t5_dir("text_encoder") / "config.json", tmp.path / "config.json");
  auto src = io::SafetensorsFile::open(t5_dir("text_encoder") / "model.safetensors");
  std::map<std::string, Tensor> tensors;
  for (const auto& name : src->names())
    tensors[name == "shared.weight" ? "encoder.embed_tokens.weight" : name] = src->get(name);
  io::save_safetensors(tmp.path / "model.safetensors", tensors);
  const auto m = T5EncoderModel::load(tmp.path);
  EXPECT_TRUE(matches(m.forward(golden("flux_ids")), "flux_out"));
}

TEST(T5Encoder, BadInputs) {
  const auto& m = model("text_encoder");
  expect_error([&] { (void)m.forward(Tensor::zeros({1, 4}, DType::f32)); }, "ids must be");
  Tensor big = Tensor::zeros({1, 3}, DType::i64);
  big.mutable_data<int64_t>()[1] = m.config().vocab_size;
  expect_error([&] { (void)m.forward(big); }, "outside the vocabulary");
  expect_error(
      [&] {
        (void)m.forward(golden("masked_ids"), Tensor::zeros({1, 2}, DType::i64));
      },
      "attention_mask");

  TempDir tmp;
  // Missing config.json / weights, unknown feed_forward_proj, a missing weight.
  EXPECT_TRUE(throws_error([&] { (void)T5EncoderModel::load(tmp.path); }, Status::not_found,
                           {"config.json"}));
  auto cfg = nlohmann::json::parse(std::ifstream(t5_dir("text_encoder") / "config.json"));
  cfg["feed_forward_proj"] = "gated-mish";
  write_file(tmp.path / "config.json", cfg.dump());
  fs::copy_file(t5_dir("text_encoder") / "model.safetensors", tmp.path / "model.safetensors");
  EXPECT_TRUE(throws_error([&] { (void)T5EncoderModel::load(tmp.path); }, Status::format_error,
                           {"config.json", "feed_forward_proj", "gated-mish"}));
  cfg["feed_forward_proj"] = "relu";  // weights have wi_0/wi_1: missing wi, unexpected wi_0
  write_file(tmp.path / "config.json", cfg.dump());
  EXPECT_TRUE(throws_error([&] { (void)T5EncoderModel::load(tmp.path); }, Status::format_error,
                           {"encoder.block.0.layer.1.DenseReluDense.wi.weight",
                            "encoder.block.0.layer.1.DenseReluDense.wi_0.weight"}));
  cfg["feed_forward_proj"] = "gated-gelu";
  cfg["d_ff"] = 36;
  write_file(tmp.path / "config.json", cfg.dump());
  EXPECT_TRUE(throws_error([&] { (void)T5EncoderModel::load(tmp.path); }, Status::format_error,
                           {"config.json", "wi_0.weight"}));
  // Corrupt weights file.
  cfg["d_ff"] = 37;
  write_file(tmp.path / "config.json", cfg.dump());
  write_file(tmp.path / "model.safetensors", "\x10\x00\x00\x00\x00\x00\x00\x00{broken");
  try {
    (void)T5EncoderModel::load(tmp.path);
    ADD_FAILURE() << "a corrupt model.safetensors loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.safetensors"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace kiln::test
