// CLIP tokenizer parity with transformers' CLIPTokenizer (tests/data/clip/tokens.json, written by
// tests/reference/make_clip_fixtures.py from a BPE vocabulary trained there): plain ids of 40
// strings (punctuation, digits, contractions, whitespace kinds, emoji, CJK, Greek, Cyrillic,
// Arabic, control characters, literal special tokens), padded+truncated ids for both the SD1.x
// tokenizer (pads with <|endoftext|>) and SDXL's second one (pads with "!"), 75-token chunks;
// bad folders and files. Then the tokenizer.json reader: the trained models/kiln-mini/tokenizer_2
// (only tokenizer.json, merges as [a, b] pairs) against transformers' ids of the 200 held-out
// captions and awkward strings (tests/data/kiln_mini/tokens.json, written by
// tests/reference/make_kiln_mini_fixtures.py), both merge spellings, and malformed files.
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

// ---------------------------------------------------------------- tokenizer.json

fs::path mini_tokenizer_dir() {
  return models_dir() / "kiln-mini" / "tokenizer_2";
}

const nlohmann::json& mini_fixture() {
  static const nlohmann::json j = read_json(data_dir() / "kiln_mini" / "tokens.json");
  return j;
}

// Every case of the kiln-mini fixture through `t`; returns how many had padded goldens.
size_t expect_mini_ids(const ClipTokenizer& t, const std::string& label) {
  size_t padded = 0;
  for (const auto& c : mini_fixture()["cases"]) {
    const std::string text = c["text"];
    EXPECT_EQ(t.encode(text), ids_of(c["ids"])) << label << ": \"" << escape_controls(text) << "\"";
    if (c.contains("padded")) {
      ++padded;
      EXPECT_EQ(t.encode_padded(text), ids_of(c["padded"]))
          << label << ": " << escape_controls(text);
    }
  }
  return padded;
}

TEST(ClipTokenizerJson, KilnMiniMatchesTransformers) {
  const auto& f = mini_fixture();
  ASSERT_TRUE(fs::exists(mini_tokenizer_dir() / "tokenizer.json")) << mini_tokenizer_dir();
  ASSERT_FALSE(fs::exists(mini_tokenizer_dir() / "vocab.json")) << "must exercise tokenizer.json";
  const ClipTokenizer t = ClipTokenizer::load(mini_tokenizer_dir());
  EXPECT_EQ(fs::path(t.source()).filename(), "tokenizer.json");
  EXPECT_EQ(t.vocab_size(), f["vocab_size"].get<size_t>());
  EXPECT_EQ(t.bos_id(), f["bos"].get<int32_t>());
  EXPECT_EQ(t.eos_id(), f["eos"].get<int32_t>());
  EXPECT_EQ(t.pad_id(), f["pad"].get<int32_t>());
  EXPECT_EQ(t.model_max_length(), f["model_max_length"].get<int64_t>());  // 64, not CLIP's 77

  const auto& cases = f["cases"];
  ASSERT_EQ(cases.size(), f["captions"].get<size_t>() + 20) << "200 captions + 20 awkward strings";
  EXPECT_EQ(expect_mini_ids(t, "kiln-mini"), 20u);
  size_t merged = 0, truncated = 0;
  for (const auto& c : cases) {
    for (int32_t id : ids_of(c["ids"])) merged += id >= 512 && id < t.bos_id();
    truncated += c["ids"].size() > static_cast<size_t>(t.model_max_length());
  }
  EXPECT_GT(merged, 2000u) << "the captions must exercise the merges";
  EXPECT_GE(truncated, 1u) << "one awkward string must be truncated";
}

// A copy of kiln-mini's tokenizer_2 whose tokenizer.json is `j`.
struct JsonFolder {
  TempDir tmp;
  explicit JsonFolder(const nlohmann::json& j) {
    fs::copy_file(mini_tokenizer_dir() / "tokenizer_config.json",
                  tmp.path / "tokenizer_config.json");
    write_file(tmp.path / "tokenizer.json", j.dump());
  }
};

nlohmann::json mini_tokenizer_json() {
  return read_json(mini_tokenizer_dir() / "tokenizer.json");
}

// tokenizers >= 0.20 writes model.merges as [left, right] pairs, older ones as "left right".
TEST(ClipTokenizerJson, PairAndStringMergesAgree) {
  nlohmann::json pairs = mini_tokenizer_json();
  ASSERT_TRUE(pairs["model"]["merges"][0].is_array());
  nlohmann::json strings = pairs;
  for (auto& m : strings["model"]["merges"])
    m = m[0].get<std::string>() + " " + m[1].get<std::string>();
  const JsonFolder a(pairs), b(strings);
  const ClipTokenizer ta = ClipTokenizer::load(a.tmp.path);
  const ClipTokenizer tb = ClipTokenizer::load(b.tmp.path);
  EXPECT_EQ(ta.vocab_size(), tb.vocab_size());
  expect_mini_ids(ta, "[a, b] merges");
  expect_mini_ids(tb, "\"a b\" merges");

  // The clip fixture's vocab.json + merges.txt rewritten as a tokenizer.json of either spelling
  // gives transformers' ids too: the two readers build the same model.
  nlohmann::json merges = nlohmann::json::array(), merge_pairs = nlohmann::json::array();
  std::ifstream in(clip_dir() / "tokenizer" / "merges.txt");
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line.starts_with("#version")) continue;
    merges.push_back(line);
    const size_t sp = line.find(' ');
    merge_pairs.push_back({line.substr(0, sp), line.substr(sp + 1)});
  }
  for (const auto& m : {merges, merge_pairs}) {
    TempDir tmp;
    fs::copy_file(clip_dir() / "tokenizer" / "tokenizer_config.json",
                  tmp.path / "tokenizer_config.json");
    const nlohmann::json j = {{"model",
                               {{"type", "BPE"},
                                {"end_of_word_suffix", "</w>"},
                                {"vocab", read_json(clip_dir() / "tokenizer" / "vocab.json")},
                                {"merges", m}}}};
    write_file(tmp.path / "tokenizer.json", j.dump());
    const ClipTokenizer t = ClipTokenizer::load(tmp.path);
    for (const auto& c : fixture()["cases"])
      EXPECT_EQ(t.encode(c["text"].get<std::string>()), ids_of(c["ids"])) << m[0].dump();
  }
}

// Each malformed tokenizer.json fails with `status` and a message naming the file and the field.
void expect_json_error(const nlohmann::json& j, Status status, std::vector<std::string> parts) {
  const JsonFolder d(j);
  parts.insert(parts.begin(), (d.tmp.path / "tokenizer.json").string());
  EXPECT_TRUE(throws_error([&] { ClipTokenizer::load(d.tmp.path); }, status, parts));
}

TEST(ClipTokenizerJson, MalformedFilesNameTheFileAndField) {
  const nlohmann::json good = mini_tokenizer_json();
  nlohmann::json j = good;
  j["model"]["type"] = "WordPiece";
  expect_json_error(j, Status::unsupported, {"model.type \"WordPiece\"", "BPE"});
  j = good;
  j["model"]["end_of_word_suffix"] = "</W>";
  expect_json_error(j, Status::unsupported, {"model.end_of_word_suffix \"</W>\""});
  j["model"].erase("end_of_word_suffix");
  expect_json_error(j, Status::unsupported, {"model.end_of_word_suffix \"\""});
  j = good;
  j["model"]["merges"] = {{"t h", 0}};  // an object
  expect_json_error(j, Status::format_error, {"model.merges is not a list"});
  j = good;
  j["model"]["merges"][5] = {"t", "h", "e"};
  expect_json_error(j, Status::format_error, {"model.merges[5]", "[\"t\",\"h\",\"e\"]"});
  j = good;
  j["model"]["merges"][6] = "t h e";
  expect_json_error(j, Status::format_error, {"model.merges[6]", "\"t h e\" is not two symbols"});
  j = good;
  j["model"]["merges"][7] = {"q", "zz"};
  expect_json_error(j, Status::format_error,
                    {"model.merges[7]", "\"zz\" is not in tokenizer.json"});
  j = good;
  j["model"].erase("vocab");
  expect_json_error(j, Status::format_error, {"lacks \"vocab\""});
  expect_json_error(nlohmann::json::object(), Status::format_error, {"no \"model\" object"});
}

}  // namespace
}  // namespace kiln::test
