// T5 tokenizer parity with transformers' T5Tokenizer as diffusers' Flux/SD3 pipelines load it
// (tests/data/t5/goldens.json, written by tests/reference/make_t5_fixtures.py from a Unigram
// SentencePiece model trained there): plain ids of 40+ strings (whitespace kinds, normalizer
// folds, unknown characters, literal special tokens and sentinels, literal "▁"), the pipelines'
// padded+truncated ids and attention masks at 16, 256 and 512; bad folders and files.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "kiln/core/error.hpp"
#include "kiln/pipelines/text/t5_tokenizer.hpp"
#include "pipeline_test_util.hpp"

namespace kiln::test {
namespace {

using pipelines::text::T5Tokenizer;
namespace fs = std::filesystem;

fs::path t5_dir() {
  return data_dir() / "t5";
}

const nlohmann::json& fixture() {
  static const nlohmann::json j = read_json(t5_dir() / "goldens.json");
  return j;
}

const T5Tokenizer& tok() {
  static const T5Tokenizer t = T5Tokenizer::load(t5_dir() / "tokenizer");
  return t;
}

std::vector<int32_t> ids_of(const nlohmann::json& j) {
  return j.get<std::vector<int32_t>>();
}

TEST(T5Tokenizer, SpecialTokensAndSizes) {
  const auto& f = fixture();
  EXPECT_EQ(tok().vocab_size(), f["vocab_size"].get<size_t>());
  EXPECT_EQ(tok().pad_id(), f["pad"].get<int32_t>());
  EXPECT_EQ(tok().eos_id(), f["eos"].get<int32_t>());
  EXPECT_EQ(tok().unk_id(), f["unk"].get<int32_t>());
  EXPECT_EQ(tok().token_to_id("<extra_id_0>"), f["extra_id_0"].get<int32_t>());
  EXPECT_EQ(tok().token_to_id("<extra_id_99>"), f["spm_pieces"].get<int32_t>());
  EXPECT_EQ(tok().id_to_token(f["extra_id_0"].get<int32_t>()), "<extra_id_0>");
  EXPECT_EQ(tok().id_to_token(1), "</s>");
  EXPECT_FALSE(tok().token_to_id("<extra_id_100>").has_value());
  EXPECT_FALSE(tok().token_to_id("no-such-piece").has_value());
  expect_error([] { (void)tok().id_to_token(static_cast<int32_t>(tok().vocab_size())); },
               "outside the vocabulary");
}

TEST(T5Tokenizer, IdsMatchTransformers) {
  const auto& cases = fixture()["cases"];
  ASSERT_GE(cases.size(), 30u);
  size_t unk = 0, sentinel = 0;
  for (const auto& c : cases) {
    const std::string text = c["text"];
    const auto want = ids_of(c["ids"]);
    EXPECT_EQ(tok().encode(text), want) << "text: \"" << escape_controls(text) << "\"";
    auto plain = want;
    plain.pop_back();
    EXPECT_EQ(tok().tokenize(text), plain) << escape_controls(text);
    for (int32_t id : want) {
      unk += id == tok().unk_id();
      sentinel += id >= fixture()["spm_pieces"].get<int32_t>();
    }
  }
  EXPECT_GE(unk, 5u) << "the fixture must exercise unknown characters";
  EXPECT_GE(sentinel, 4u) << "the fixture must exercise sentinels";
}

TEST(T5Tokenizer, PaddedAndTruncatedLikeThePipelines) {
  for (const auto& c : fixture()["cases"]) {
    const std::string text = c["text"];
    const auto enc = tok().encode_padded(text, 16);
    EXPECT_EQ(enc.ids, ids_of(c["ids_16"])) << escape_controls(text);
    EXPECT_EQ(enc.attention_mask, ids_of(c["mask_16"])) << escape_controls(text);
    EXPECT_EQ(enc.truncated, c["ids"].size() > 16) << escape_controls(text);
  }
  const std::string prompt = fixture()["long_prompt"];
  EXPECT_EQ(tok().encode(prompt), ids_of(fixture()["long_ids"]));
  for (const auto& c : fixture()["long"]) {
    const int64_t n = c["max_length"];
    const auto enc = tok().encode_padded(prompt, n);
    EXPECT_EQ(enc.ids, ids_of(c["ids"])) << "max_length " << n;
    EXPECT_EQ(enc.attention_mask, ids_of(c["attention_mask"])) << "max_length " << n;
    EXPECT_EQ(enc.length, std::min<size_t>(fixture()["long_ids"].size(), static_cast<size_t>(n)));
  }
  const auto one = tok().encode_padded("a cat", 1);
  EXPECT_EQ(one.ids, std::vector<int32_t>{tok().eos_id()});
  EXPECT_TRUE(one.truncated);
  expect_error([] { (void)tok().encode_padded("a", 0); }, "max_length");
}

TEST(T5Tokenizer, ConcurrentUseIsSafe) {
  const auto& cases = fixture()["cases"];
  std::vector<std::thread> threads;
  std::vector<int> bad(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int rep = 0; rep < 5; ++rep)
        for (const auto& c : cases)
          bad[t] += tok().encode(c["text"].get<std::string>()) != ids_of(c["ids"]);
    });
  }
  for (auto& th : threads) th.join();
  for (int b : bad) EXPECT_EQ(b, 0);
}

TEST(T5Tokenizer, BareModelAndTransformers4Config) {
  // spiece.model alone (T5 defaults) and a 4.x-style tokenizer_config.json with
  // added_tokens_decoder give the same ids.
  TempDir tmp;
  fs::copy_file(t5_dir() / "tokenizer" / "spiece.model", tmp.path / "spiece.model");
  const auto bare = T5Tokenizer::load(tmp.path);
  const int32_t pieces = fixture()["spm_pieces"];
  nlohmann::json added = nlohmann::json::object();
  added["0"] = {{"content", "<pad>"}, {"special", true}};
  added["1"] = {{"content", "</s>"}, {"special", true}};
  added["2"] = {{"content", "<unk>"}, {"special", true}};
  for (int i = 0; i < 100; ++i)
    added[std::to_string(pieces + 99 - i)] = {{"content", str("<extra_id_", i, ">")}};
  const nlohmann::json cfg = {{"extra_ids", 100},
                              {"legacy", true},
                              {"model_max_length", 512},
                              {"eos_token", "</s>"},
                              {"pad_token", "<pad>"},
                              {"unk_token", "<unk>"},
                              {"added_tokens_decoder", added}};
  write_file(tmp.path / "tokenizer_config.json", cfg.dump());
  const auto v4 = T5Tokenizer::load(tmp.path);
  for (const auto& c : fixture()["cases"]) {
    const std::string text = c["text"];
    EXPECT_EQ(bare.encode(text), ids_of(c["ids"])) << escape_controls(text);
    EXPECT_EQ(v4.encode(text), ids_of(c["ids"])) << escape_controls(text);
  }
  EXPECT_EQ(v4.vocab_size(), tok().vocab_size());
}

TEST(T5Tokenizer, BadFolders) {
  TempDir tmp;
  // No spiece.model: not_found naming the file.
  EXPECT_TRUE(throws_error([&] { (void)T5Tokenizer::load(tmp.path); }, Status::not_found,
                           {(tmp.path / "spiece.model").string()}));
  // Corrupt model: format_error naming the file.
  write_file(tmp.path / "spiece.model", "this is not a protobuf \x01\x02\xff\xfe garbage");
  EXPECT_TRUE(throws_error([&] { (void)T5Tokenizer::load(tmp.path); }, Status::format_error,
                           {(tmp.path / "spiece.model").string(), "SentencePiece"}));
  write_file(tmp.path / "spiece.model", "");
  EXPECT_TRUE(throws_error([&] { (void)T5Tokenizer::load(tmp.path); }, Status::format_error,
                           {(tmp.path / "spiece.model").string()}));
  // Truncated copy of a real model.
  {
    std::ifstream in(t5_dir() / "tokenizer" / "spiece.model", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    write_file(tmp.path / "spiece.model", bytes.substr(0, bytes.size() / 2));
  }
  EXPECT_TRUE(throws_error([&] { (void)T5Tokenizer::load(tmp.path); }, Status::format_error,
                           {(tmp.path / "spiece.model").string()}));
  // A good model with a broken or inconsistent tokenizer_config.json.
  fs::copy_file(t5_dir() / "tokenizer" / "spiece.model", tmp.path / "spiece.model",
                fs::copy_options::overwrite_existing);
  write_file(tmp.path / "tokenizer_config.json", "{ not json");
  EXPECT_TRUE(throws_error([&] { (void)T5Tokenizer::load(tmp.path); }, Status::format_error,
                           {"tokenizer_config.json", "invalid JSON"}));
  write_file(tmp.path / "tokenizer_config.json", R"({"pad_token": "<nothing>"})");
  EXPECT_TRUE(throws_error([&] { (void)T5Tokenizer::load(tmp.path); }, Status::format_error,
                           {"tokenizer_config.json", "pad_token", "<nothing>"}));
}

}  // namespace
}  // namespace kiln::test
