// CLIPTextModel / CLIPTextModelWithProjection parity with transformers on tiny random configs
// (tests/data/clip, written by tests/reference/make_clip_fixtures.py): ids from kiln's tokenizer
// equal the ones transformers fed the model; last_hidden_state, hidden_states[-2], pooled output
// and text_embeds within rel L2 1e-5 (f32 vs torch f32; only summation orders differ); legacy
// (argmax) and first-eos pooling; quick_gelu and gelu; an f16 checkpoint converted on load;
// transformers 4.x key layout ("text_model." prefix + position_ids buffer); A1111 weighting;
// config/weights mismatches.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "kiln/core/error.hpp"
#include "kiln/io/safetensors.hpp"
#include "kiln/pipelines/models/clip_text.hpp"
#include "kiln/pipelines/text/clip_tokenizer.hpp"
#include "kiln/pipelines/text/prompt_weights.hpp"
#include "pipeline_test_util.hpp"

namespace kiln::test {
namespace {

namespace fs = std::filesystem;
using Act = pipelines::nn::Act;
using pipelines::models::ClipTextModel;
using pipelines::models::ClipTextOptions;
using pipelines::models::ClipTextOutput;
using pipelines::text::ClipTokenizer;

constexpr double kRelL2 = 1e-5;

fs::path clip_dir() {
  return data_dir() / "clip";
}

const nlohmann::json& fixture() {
  static const nlohmann::json j = read_json(clip_dir() / "tokens.json");
  return j;
}

const io::SafetensorsFile& goldens() {
  static const auto f = io::SafetensorsFile::open(clip_dir() / "goldens.safetensors");
  return *f;
}

const ClipTokenizer& tokenizer(const std::string& name) {
  static std::map<std::string, ClipTokenizer> cache;
  auto it = cache.find(name);
  if (it == cache.end()) it = cache.emplace(name, ClipTokenizer::load(clip_dir() / name)).first;
  return it->second;
}

::testing::AssertionResult matches(const Tensor& actual, const std::string& name,
                                   double tol = kRelL2) {
  return matches_golden(actual, goldens().get(name), name, tol);
}

// The ids of each golden prompt, made by kiln's tokenizer; weights for the weighted one.
std::vector<std::vector<int32_t>> prompt_ids(const std::string& model,
                                             std::vector<float>* weights = nullptr) {
  const auto& meta = fixture()["encoders"][model];
  const auto& tok = tokenizer(meta["tokenizer"].get<std::string>());
  std::vector<std::vector<int32_t>> rows;
  for (const auto& p : meta["prompts"]) {
    const std::string text = p["text"], kind = p["kind"];
    if (kind == "plain") {
      rows.push_back(tok.encode_padded(text));
    } else if (kind.rfind("chunk", 0) == 0) {
      rows.push_back(tok.encode_chunks(text).at(std::stoul(kind.substr(5))));
    } else {
      auto w = pipelines::text::tokenize_weighted(tok, text);
      rows.push_back(w.ids);
      if (weights) *weights = w.weights;
    }
  }
  return rows;
}

void check_model(const std::string& name, bool projection) {
  const ClipTextModel m = ClipTextModel::load(clip_dir() / name);
  EXPECT_EQ(m.with_projection(), projection);
  const auto rows = prompt_ids(name);
  const Tensor ids = goldens().get(name + ".input_ids");
  ASSERT_EQ(ids.size(0), static_cast<int64_t>(rows.size()));
  for (size_t r = 0; r < rows.size(); ++r) {
    std::vector<int32_t> want;
    for (int64_t l = 0; l < ids.size(1); ++l)
      want.push_back(static_cast<int32_t>(ids.data<int64_t>()[r * ids.size(1) + l]));
    EXPECT_EQ(rows[r], want) << name << " row " << r;
  }
  const ClipTextOutput out = m.forward(ids, ClipTextOptions{.output_hidden_states = true});
  ASSERT_EQ(out.hidden_states.size(), static_cast<size_t>(m.config().num_hidden_layers + 1));
  EXPECT_TRUE(matches(out.last_hidden_state, name + ".last_hidden_state"));
  EXPECT_TRUE(matches(out.hidden_states[out.hidden_states.size() - 2], name + ".penultimate"));
  EXPECT_TRUE(matches(out.pooled, name + ".pooled"));
  if (projection) {
    EXPECT_TRUE(matches(out.text_embeds, name + ".text_embeds"));
  }
  if (goldens().has(name + ".embeddings")) {
    EXPECT_TRUE(matches(out.hidden_states[0], name + ".embeddings"));
  }
  // The batched-vector overload and no hidden states: the same numbers.
  const ClipTextOutput again = m.forward(rows);
  EXPECT_TRUE(again.hidden_states.empty());
  EXPECT_TRUE(matches(again.last_hidden_state, name + ".last_hidden_state"));
}

TEST(ClipText, TextEncoderQuickGeluLegacyPooling) {
  // eos_token_id 2 in config.json: pooled at argmax(ids). Includes the second 75-token chunk of
  // a long prompt and an A1111-weighted prompt's ids.
  check_model("text_encoder", false);
}

TEST(ClipText, WithProjectionGeluFirstEosPooling) {
  check_model("text_encoder_2", true);
}

TEST(ClipText, Float16CheckpointConvertedOnLoad) {
  check_model("text_encoder_f16", false);
  const ClipTextModel m = ClipTextModel::load(clip_dir() / "text_encoder_f16");
  EXPECT_EQ(m.token_embedding.dtype(), DType::f32);
}

TEST(ClipText, ConfigIsRead) {
  const ClipTextModel a = ClipTextModel::load(clip_dir() / "text_encoder");
  EXPECT_EQ(a.config().hidden_act, Act::quick_gelu);
  EXPECT_EQ(a.config().eos_token_id, 2);
  EXPECT_EQ(a.config().num_hidden_layers, 3);
  const ClipTextModel b = ClipTextModel::load(clip_dir() / "text_encoder_2");
  EXPECT_EQ(b.config().hidden_act, Act::gelu);
  EXPECT_EQ(b.config().eos_token_id, fixture()["eos"].get<int64_t>());
}

TEST(ClipText, WeightedPromptA1111) {
  std::vector<float> weights;
  const auto rows = prompt_ids("text_encoder", &weights);
  const Tensor golden_w = goldens().get("text_encoder.weights");
  ASSERT_EQ(static_cast<int64_t>(weights.size()), golden_w.numel());
  for (size_t i = 0; i < weights.size(); ++i)
    EXPECT_FLOAT_EQ(weights[i], golden_w.data<float>()[i]) << i;
  const ClipTextModel m = ClipTextModel::load(clip_dir() / "text_encoder");
  const ClipTextOutput out = m.forward(std::span(&rows.back(), 1));
  const Tensor z = pipelines::text::apply_token_weights(out.last_hidden_state, weights);
  EXPECT_TRUE(matches(z, "text_encoder.weighted"));
  // All-ones weights: unchanged.
  const Tensor same = pipelines::text::apply_token_weights(out.last_hidden_state,
                                                           std::vector<float>(weights.size(), 1.f));
  EXPECT_EQ(to_doubles(same), to_doubles(out.last_hidden_state));
}

// ---------------------------------------------------------------- layouts and bad inputs

struct Folder {
  TempDir tmp;
  fs::path dir;
  explicit Folder(const std::string& from) : dir(tmp.path / from) {
    fs::create_directories(dir);
    for (const auto& e : fs::directory_iterator(clip_dir() / from))
      fs::copy_file(e.path(), dir / e.path().filename());
  }
  nlohmann::json config() const {
    std::ifstream in(dir / "config.json");
    return nlohmann::json::parse(in);
  }
  void set_config(const nlohmann::json& j) const { std::ofstream(dir / "config.json") << j.dump(); }
};

TEST(ClipText, Transformers4KeyLayoutWithPositionIds) {
  // transformers 5 writes CLIPTextModel without "text_model."; SD checkpoints have it, and
  // older ones the position_ids buffer too.
  Folder f("text_encoder");
  const auto src = io::open_weights(f.dir);
  std::map<std::string, Tensor> renamed;
  for (const auto& n : src->names()) {
    ASSERT_NE(n.rfind("text_model.", 0), 0u) << n;
    renamed["text_model." + n] = src->get(n);
  }
  Tensor pos = Tensor::empty({1, 77}, DType::i64);
  for (int64_t i = 0; i < 77; ++i) pos.mutable_data<int64_t>()[i] = i;
  renamed["text_model.embeddings.position_ids"] = pos;
  fs::remove(f.dir / "model.safetensors");
  io::save_safetensors(f.dir / "model.safetensors", renamed);
  const ClipTextModel m = ClipTextModel::load(f.dir);
  const ClipTextOutput out = m.forward(goldens().get("text_encoder.input_ids"));
  EXPECT_TRUE(matches(out.last_hidden_state, "text_encoder.last_hidden_state"));
}

void expect_error(const fs::path& dir, Status code, std::initializer_list<std::string> needles) {
  EXPECT_TRUE(throws_error([&] { ClipTextModel::load(dir); }, code, needles));
}

TEST(ClipText, MissingConfig) {
  Folder f("text_encoder");
  fs::remove(f.dir / "config.json");
  expect_error(f.dir, Status::not_found, {"config.json"});
}

TEST(ClipText, MissingWeights) {
  Folder f("text_encoder");
  fs::remove(f.dir / "model.safetensors");
  expect_error(f.dir, Status::not_found, {f.dir.filename().string()});
}

TEST(ClipText, LayerCountMismatchListsKeys) {
  Folder f("text_encoder");
  auto j = f.config();
  j["num_hidden_layers"] = 2;
  f.set_config(j);
  expect_error(f.dir, Status::format_error,
               {"config.json", "model.safetensors", "text_model.encoder.layers.2"});
}

TEST(ClipText, VocabSizeMismatch) {
  Folder f("text_encoder");
  auto j = f.config();
  j["vocab_size"] = 49408;
  f.set_config(j);
  expect_error(f.dir, Status::format_error, {"config.json", "token_embedding"});
}

TEST(ClipText, ArchitectureMismatch) {
  Folder f("text_encoder");
  auto j = f.config();
  j["architectures"] = {"CLIPTextModelWithProjection"};
  f.set_config(j);
  expect_error(f.dir, Status::format_error, {"config.json", "text_projection.weight"});
}

TEST(ClipText, BadConfigValues) {
  Folder f("text_encoder");
  auto j = f.config();
  j["hidden_act"] = "relu";
  f.set_config(j);
  expect_error(f.dir, Status::format_error, {"config.json", "hidden_act"});
  j["hidden_act"] = "gelu";
  j["num_attention_heads"] = 5;
  f.set_config(j);
  expect_error(f.dir, Status::format_error, {"config.json", "num_attention_heads"});
}

TEST(ClipText, BadIds) {
  const ClipTextModel m = ClipTextModel::load(clip_dir() / "text_encoder_f16");
  Tensor ids = Tensor::zeros({1, 78}, DType::i64);
  EXPECT_THROW(m.forward(ids), Error);  // longer than max_position_embeddings
  Tensor big = Tensor::zeros({1, 3}, DType::i64);
  big.mutable_data<int64_t>()[1] = m.config().vocab_size;
  try {
    m.forward(big);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("outside the vocabulary"), std::string::npos);
  }
  EXPECT_THROW(m.forward(Tensor::zeros({3}, DType::f32)), Error);
}

TEST(ClipText, AttentionMaskAllOnesIsCausalOnly) {
  const ClipTextModel m = ClipTextModel::load(clip_dir() / "text_encoder_f16");
  const Tensor ids = goldens().get("text_encoder_f16.input_ids");
  const Tensor ones = Tensor::full({ids.size(0), ids.size(1)}, 1.f);
  const ClipTextOutput out = m.forward(ids, {}, ones);
  EXPECT_TRUE(matches(out.last_hidden_state, "text_encoder_f16.last_hidden_state"));
}

}  // namespace
}  // namespace kiln::test
