// CLIP tokenizer parity with transformers' CLIPTokenizer (tests/data/clip/tokens.json, written by
// tests/reference/make_clip_fixtures.py from a BPE vocabulary trained there): plain ids of 40
// strings (punctuation, digits, contractions, whitespace kinds, emoji, CJK, Greek, Cyrillic,
// Arabic, control characters, literal special tokens), padded+truncated ids for both the SD1.x
// tokenizer (pads with <|endoftext|>) and SDXL's second one (pads with "!"), 75-token chunks;
// bad folders and files.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "kiln/core/error.hpp"
#include "kiln/pipelines/text/clip_tokenizer.hpp"
#include "pipeline_test_util.hpp"

namespace kiln::test {
namespace {

using pipelines::text::ClipTokenizer;
namespace fs = std::filesystem;

fs::path clip_dir() {
  return data_dir() / "clip";
}

const nlohmann::json& fixture() {
  static const nlohmann::json j = read_json(clip_dir() / "tokens.json");
  return j;
}

const ClipTokenizer& tok(const std::string& name = "tokenizer") {
  static const ClipTokenizer t1 = ClipTokenizer::load(clip_dir() / "tokenizer");
  static const ClipTokenizer t2 = ClipTokenizer::load(clip_dir() / "tokenizer_2");
  return name == "tokenizer" ? t1 : t2;
}

std::vector<int32_t> ids_of(const nlohmann::json& j) {
  return j.get<std::vector<int32_t>>();
}

TEST(ClipTokenizer, SpecialTokensAndSizes) {
  const auto& f = fixture();
  EXPECT_EQ(tok().vocab_size(), f["vocab_size"].get<size_t>());
  EXPECT_EQ(tok().bos_id(), f["bos"].get<int32_t>());
  EXPECT_EQ(tok().eos_id(), f["eos"].get<int32_t>());
  EXPECT_EQ(tok().pad_id(), tok().eos_id());
  EXPECT_EQ(tok("tokenizer_2").pad_id(), *tok().token_to_id("!"));
  EXPECT_EQ(tok().model_max_length(), 77);
  EXPECT_EQ(tok().id_to_token(tok().bos_id()), "<|startoftext|>");
}

TEST(ClipTokenizer, PlainIdsMatchTransformers) {
  const auto& cases = fixture()["cases"];
  ASSERT_GE(cases.size(), 30u);
  size_t merged = 0, with_bang = 0;
  for (const auto& c : cases) {
    const std::string text = c["text"];
    const auto want = ids_of(c["ids"]);
    EXPECT_EQ(tok().encode(text), want) << "text: \"" << escape_controls(text) << "\"";
    if (c.contains("ids_2")) {
      ++with_bang;
      EXPECT_EQ(tok("tokenizer_2").encode(text), ids_of(c["ids_2"])) << escape_controls(text);
    }
    for (int32_t id : want) merged += id >= 512 && id < tok().bos_id();
  }
  EXPECT_GT(merged, 50u) << "the fixture must exercise merges";
  EXPECT_GE(with_bang, 3u);
}

TEST(ClipTokenizer, PaddedTruncatedAndChunked) {
  size_t n = 0;
  for (const auto& c : fixture()["cases"]) {
    if (!c.contains("padded")) continue;
    ++n;
    const std::string text = c["text"];
    EXPECT_EQ(tok().encode_padded(text), ids_of(c["padded"])) << escape_controls(text);
    EXPECT_EQ(tok("tokenizer_2").encode_padded(text), ids_of(c["padded_2"]))
        << escape_controls(text);
    const auto chunks = tok().encode_chunks(text);
    ASSERT_EQ(chunks.size(), c["chunks"].size()) << escape_controls(text);
    for (size_t i = 0; i < chunks.size(); ++i) EXPECT_EQ(chunks[i], ids_of(c["chunks"][i]));
  }
  EXPECT_GE(n, 10u);
}

TEST(ClipTokenizer, ChunkConvention) {
  std::string text;
  for (int i = 0; i < 20; ++i) text += "hello world ";
  const auto plain = tok().tokenize(text);
  ASSERT_GT(plain.size(), 75u);
  const auto chunks = tok().encode_chunks(text);
  ASSERT_EQ(chunks.size(), (plain.size() + 74) / 75);
  for (const auto& ch : chunks) {
    ASSERT_EQ(ch.size(), 77u);
    EXPECT_EQ(ch.front(), tok().bos_id());
  }
  EXPECT_EQ(chunks[1][1], plain[75]);
  const auto empty = tok().encode_chunks("");
  ASSERT_EQ(empty.size(), 1u);
  EXPECT_EQ(empty[0][1], tok().eos_id());
  EXPECT_EQ(tok().encode_padded(text, 10).size(), 10u);
  EXPECT_THROW(tok().wrap(plain), Error);
}

TEST(ClipTokenizer, ConcurrentUseOfTheCache) {
  std::vector<std::thread> threads;
  std::vector<int> ok(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (const auto& c : fixture()["cases"])
        ok[t] += tok().encode(c["text"].get<std::string>()) == ids_of(c["ids"]);
    });
  }
  for (auto& th : threads) th.join();
  for (int v : ok) EXPECT_EQ(v, static_cast<int>(fixture()["cases"].size()));
}

TEST(ClipTokenizer, InvalidUtf8BecomesReplacementCharacter) {
  EXPECT_EQ(tok().tokenize("a\xff"), tok().tokenize("a\xef\xbf\xbd"));
  EXPECT_EQ(tok().tokenize("\xc3"), tok().tokenize("\xef\xbf\xbd"));
}

// ---------------------------------------------------------------- bad inputs

struct BadFolder {
  TempDir tmp;
  BadFolder() {
    for (const char* f : {"vocab.json", "merges.txt", "tokenizer_config.json"})
      fs::copy_file(clip_dir() / "tokenizer" / f, tmp.path / f);
  }
  void write(const char* name, const std::string& text) const {
    std::ofstream(tmp.path / name, std::ios::binary) << text;
  }
};

void expect_error(const fs::path& dir, Status code, const std::string& needle) {
  test::expect_error([&] { ClipTokenizer::load(dir); }, code, needle);
}

TEST(ClipTokenizer, MissingVocabNamesTheFile) {
  BadFolder d;
  fs::remove(d.tmp.path / "vocab.json");
  expect_error(d.tmp.path, Status::not_found, "vocab.json");
}

TEST(ClipTokenizer, MissingMergesNamesTheFile) {
  BadFolder d;
  fs::remove(d.tmp.path / "merges.txt");
  expect_error(d.tmp.path, Status::not_found, "merges.txt");
}

TEST(ClipTokenizer, MalformedMerges) {
  BadFolder d;
  d.write("merges.txt", "#version: 0.2\nt h\nthree symbols here\n");
  expect_error(d.tmp.path, Status::format_error, "merges.txt");
  expect_error(d.tmp.path, Status::format_error, "line 3");
  d.write("merges.txt", "#version: 0.2\nq zz\n");
  expect_error(d.tmp.path, Status::format_error, "not in vocab.json");
}

TEST(ClipTokenizer, MalformedVocabAndConfig) {
  BadFolder d;
  d.write("vocab.json", "{\"a\": 0, ");
  expect_error(d.tmp.path, Status::format_error, "vocab.json");
  BadFolder e;
  e.write("tokenizer_config.json", "{\"pad_token\": \"<|nope|>\"}");
  expect_error(e.tmp.path, Status::format_error, "<|nope|>");
  e.write("tokenizer_config.json", "{\"pad_token\": 3}");
  expect_error(e.tmp.path, Status::format_error, "tokenizer_config.json");
}

}  // namespace
}  // namespace kiln::test
