// Ref: transformers models/t5/tokenization_t5.py (T5Tokenizer, 5.x); tokenizers
// src/pre_tokenizers/whitespace.rs (WhitespaceSplit: char::is_whitespace), metaspace.rs
// (prepend "always", split MergedWithNext), src/tokenizer/added_vocabulary.rs; sentencepiece
// src/normalizer.cc (dummy prefix, extra-whitespace removal), src/unigram_model.cc.
#include "kiln/pipelines/text/t5_tokenizer.hpp"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <utility>

#include "kiln/core/error.hpp"

#ifdef KILN_HAVE_SENTENCEPIECE
#include <sentencepiece_processor.h>
#endif

namespace kiln::pipelines::text {

namespace fs = std::filesystem;

namespace {

constexpr const char* kCtx = "T5Tokenizer";
constexpr std::string_view kMetaspace = "\xE2\x96\x81";  // U+2581 "▁"

// What the tokenizer does with a whitespace code point before SentencePiece sees the text.
enum WsAction : int {
  ws_split = 0,   // becomes a word boundary (normalized to a space, or left as is)
  ws_remove = 1,  // the normalizer deletes it: words on both sides join
  ws_keep = 2,    // the normalizer maps it to something else: leave it to SentencePiece
};

// Rust char::is_whitespace, which tokenizers' WhitespaceSplit uses (Unicode White_Space).
constexpr char32_t kWhitespace[] = {0x09,   0x0A,   0x0B,   0x0C,   0x0D,   0x20,   0x85,
                                    0xA0,   0x1680, 0x2000, 0x2001, 0x2002, 0x2003, 0x2004,
                                    0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200A, 0x2028,
                                    0x2029, 0x202F, 0x205F, 0x3000};

[[maybe_unused]] std::string utf8(char32_t c) {
  std::string s;
  if (c < 0x80) {
    s += static_cast<char>(c);
  } else if (c < 0x800) {
    s += static_cast<char>(0xC0 | (c >> 6));
    s += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    s += static_cast<char>(0xE0 | (c >> 12));
    s += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    s += static_cast<char>(0xF0 | (c >> 18));
    s += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    s += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (c & 0x3F));
  }
  return s;
}

// Decodes one code point at `i` (advancing it); invalid bytes decode as themselves (one byte),
// which SentencePiece then treats the same way whatever we do here.
char32_t next_cp(std::string_view s, size_t& i) {
  const auto b = static_cast<unsigned char>(s[i]);
  const int n = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : (b >> 3) == 0x1E ? 4 : 1;
  if (n == 1 || i + n > s.size()) {
    ++i;
    return b;
  }
  char32_t c = b & (0x7F >> n);
  for (int k = 1; k < n; ++k) {
    const auto cb = static_cast<unsigned char>(s[i + k]);
    if ((cb & 0xC0) != 0x80) {
      ++i;
      return b;
    }
    c = (c << 6) | (cb & 0x3F);
  }
  i += n;
  return c;
}

std::string token_name(const nlohmann::json& v, const std::string& fallback) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string())
    return v["content"].get<std::string>();
  return fallback;
}

// "<extra_id_N>" -> N, else -1.
int sentinel_index(std::string_view t) {
  constexpr std::string_view pre = "<extra_id_";
  if (t.size() <= pre.size() + 1 || t.substr(0, pre.size()) != pre || t.back() != '>') return -1;
  int n = 0;
  for (size_t i = pre.size(); i + 1 < t.size(); ++i) {
    if (t[i] < '0' || t[i] > '9' || n > 1'000'000) return -1;
    n = n * 10 + (t[i] - '0');
  }
  return n;
}

}  // namespace

#ifdef KILN_HAVE_SENTENCEPIECE
struct T5Tokenizer::Impl {
  sentencepiece::SentencePieceProcessor sp;
  int pieces = 0;
};
#else
struct T5Tokenizer::Impl {
  int pieces = 0;
};
#endif

T5Tokenizer::T5Tokenizer() : impl_(std::make_unique<Impl>()) {}
T5Tokenizer::T5Tokenizer(T5Tokenizer&&) noexcept = default;
T5Tokenizer& T5Tokenizer::operator=(T5Tokenizer&&) noexcept = default;
T5Tokenizer::~T5Tokenizer() = default;

T5Tokenizer T5Tokenizer::open(const fs::path& spiece_model) {
#ifndef KILN_HAVE_SENTENCEPIECE
  fail(Status::unsupported,
       "the T5 tokenizer needs libsentencepiece: this build has none (configure with "
       "-DKILN_SENTENCEPIECE=ON and install libsentencepiece-dev)",
       spiece_model.string());
#else
  const std::string file = spiece_model.string();
  std::error_code ec;
  KILN_CHECK(fs::is_regular_file(spiece_model, ec), Status::not_found, file,
             "SentencePiece model not found (a T5 tokenizer folder holds spiece.model)");
  std::ifstream in(spiece_model, std::ios::binary);
  KILN_CHECK(in.good(), Status::io_error, file, "cannot open for reading");
  std::ostringstream bytes;
  bytes << in.rdbuf();
  KILN_CHECK(!in.bad(), Status::io_error, file, "read failed");
  const std::string blob = bytes.str();
  KILN_CHECK(!blob.empty(), Status::format_error, file, "empty file, not a SentencePiece model");

  T5Tokenizer t;
  t.source_ = file;
  const auto st = t.impl_->sp.LoadFromSerializedProto(blob);
  KILN_CHECK(st.ok(), Status::format_error, file, "not a valid SentencePiece model (",
             st.ToString(), ")");
  auto& sp = t.impl_->sp;
  t.impl_->pieces = sp.GetPieceSize();
  KILN_CHECK(t.impl_->pieces > 0, Status::format_error, file, "the model has no pieces");
  t.unk_ = sp.unk_id();
  // PieceToId answers unk for a missing piece: "▁" then maps to unk, as the Unigram model does.
  t.space_piece_ = sp.PieceToId(std::string(kMetaspace));

  // Probe the normalizer on each whitespace code point: "a<w>a" normalizes to "▁a▁a" (a space),
  // "▁aa" (deleted), or still holds <w> (left alone, but WhitespaceSplit splits there).
  // (Strings built with append(): GCC 12 misreports operator+ chains under -Wrestrict.)
  std::string sp_a(kMetaspace);
  sp_a.append("a");
  const std::string spaced = std::string(sp_a).append(sp_a);
  const std::string deleted = std::string(sp_a).append("a");
  for (char32_t w : kWhitespace) {
    if (w == U' ') continue;
    const std::string ws = utf8(w);
    std::vector<std::string> pieces;
    const auto ps = sp.Encode(std::string("a").append(ws).append("a"), &pieces);
    KILN_CHECK(ps.ok(), Status::format_error, file,
               "SentencePiece failed on a probe: ", ps.ToString());
    std::string joined;
    for (const auto& p : pieces) joined += p;
    int action = ws_keep;
    if (joined == spaced || joined.find(ws) != std::string::npos)
      action = ws_split;
    else if (joined == deleted)
      action = ws_remove;
    t.whitespace_.emplace_back(w, action);
  }
  return t;
#endif
}

T5Tokenizer T5Tokenizer::from_file(const fs::path& spiece_model, int extra_ids) {
  KILN_ARG(extra_ids >= 0, kCtx, "extra_ids ", extra_ids, " < 0");
  T5Tokenizer t = open(spiece_model);
  const auto find = [&](const std::string& name) -> int32_t {
    const auto id = t.token_to_id(name);
    KILN_CHECK(id.has_value(), Status::format_error, t.source_, "special token \"", name,
               "\" is not a piece of the model");
    return *id;
  };
  t.pad_ = find("<pad>");
  t.eos_ = find("</s>");
  t.specials_ = {{"<pad>", t.pad_}, {"</s>", t.eos_}, {"<unk>", find("<unk>")}};
  for (int i = 0; i < extra_ids; ++i)
    t.specials_.push_back({str("<extra_id_", i, ">"), t.impl_->pieces + extra_ids - 1 - i});
  t.vocab_size_ = static_cast<size_t>(t.impl_->pieces + extra_ids);
  std::stable_sort(t.specials_.begin(), t.specials_.end(), [](const Special& a, const Special& b) {
    return a.text.size() > b.text.size();
  });
  return t;
}

T5Tokenizer T5Tokenizer::load(const fs::path& dir) {
  const fs::path model = dir / "spiece.model";
  const fs::path cfg_file = dir / "tokenizer_config.json";
  std::error_code ec;
  if (!fs::exists(cfg_file, ec)) return from_file(model);

  nlohmann::json cfg;
  {
    std::ifstream in(cfg_file);
    KILN_CHECK(in.good(), Status::io_error, cfg_file.string(), "cannot open for reading");
    try {
      cfg = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
      fail(Status::format_error, str("invalid JSON: ", e.what()), cfg_file.string());
    }
    KILN_CHECK(cfg.is_object(), Status::format_error, cfg_file.string(), "not a JSON object");
  }
  const auto get = [&](const char* key) -> const nlohmann::json& {
    static const nlohmann::json null;
    return cfg.contains(key) ? cfg[key] : null;
  };
  int extra_ids = 100;
  if (get("extra_ids").is_number_integer()) extra_ids = get("extra_ids").get<int>();
  KILN_CHECK(extra_ids >= 0 && extra_ids <= 100000, Status::format_error, cfg_file.string(),
             "\"extra_ids\": ", extra_ids, " out of range");

  T5Tokenizer t = open(model);
  const int32_t pieces = t.impl_->pieces;
  t.vocab_size_ = static_cast<size_t>(pieces + extra_ids);
  const auto piece_id = [&](const std::string& name, const char* key) -> int32_t {
    const auto id = t.token_to_id(name);
    KILN_CHECK(id.has_value(), Status::format_error, cfg_file.string(), "\"", key, "\": \"", name,
               "\" is neither a piece of ", t.source_, " nor a sentinel");
    return *id;
  };
  const auto add = [&](const std::string& text, int32_t id) {
    for (const auto& s : t.specials_)
      if (s.text == text) return;
    t.specials_.push_back({text, id});
  };

  // transformers 4.x writes every added token with its id; 5.x writes the names only.
  if (get("added_tokens_decoder").is_object()) {
    for (const auto& [key, v] : get("added_tokens_decoder").items()) {
      int32_t id = -1;
      try {
        id = std::stoi(key);
      } catch (const std::exception&) {
        fail(Status::format_error, str("\"added_tokens_decoder\": key \"", key, "\" is not an id"),
             cfg_file.string());
      }
      const std::string text = token_name(v, "");
      KILN_CHECK(!text.empty() && id >= 0, Status::format_error, cfg_file.string(),
                 "\"added_tokens_decoder\": entry ", key, " has no content");
      if (id >= pieces) t.vocab_size_ = std::max(t.vocab_size_, static_cast<size_t>(id) + 1);
      add(text, id);
    }
  }
  t.pad_ = piece_id(token_name(get("pad_token"), "<pad>"), "pad_token");
  t.eos_ = piece_id(token_name(get("eos_token"), "</s>"), "eos_token");
  add(token_name(get("pad_token"), "<pad>"), t.pad_);
  add(token_name(get("eos_token"), "</s>"), t.eos_);
  add(token_name(get("unk_token"), "<unk>"),
      piece_id(token_name(get("unk_token"), "<unk>"), "unk_token"));
  for (int i = 0; i < extra_ids; ++i) add(str("<extra_id_", i, ">"), pieces + extra_ids - 1 - i);
  for (const char* key : {"additional_special_tokens", "extra_special_tokens"}) {
    if (!get(key).is_array()) continue;
    for (const auto& v : get(key)) {
      const std::string text = token_name(v, "");
      if (!text.empty()) add(text, piece_id(text, key));
    }
  }
  std::stable_sort(t.specials_.begin(), t.specials_.end(), [](const Special& a, const Special& b) {
    return a.text.size() > b.text.size();
  });
  return t;
}

std::optional<int32_t> T5Tokenizer::token_to_id(std::string_view token) const {
  for (const auto& s : specials_)
    if (s.text == token) return s.id;
  const int idx = sentinel_index(token);
  const auto extra = static_cast<int64_t>(vocab_size_) - impl_->pieces;
  if (idx >= 0 && idx < extra) return static_cast<int32_t>(impl_->pieces + extra - 1 - idx);
#ifdef KILN_HAVE_SENTENCEPIECE
  const int id = impl_->sp.PieceToId(std::string(token));
  if (id != unk_ || impl_->sp.IdToPiece(id) == token) return id;
#endif
  return std::nullopt;
}

std::string T5Tokenizer::id_to_token(int32_t id) const {
  KILN_ARG(id >= 0 && static_cast<size_t>(id) < vocab_size_, kCtx, "id ", id,
           " outside the vocabulary [0, ", vocab_size_, ")");
  for (const auto& s : specials_)
    if (s.id == id) return s.text;
  if (id >= impl_->pieces)
    return str("<extra_id_", static_cast<int64_t>(vocab_size_) - 1 - id, ">");
#ifdef KILN_HAVE_SENTENCEPIECE
  return impl_->sp.IdToPiece(id);
#else
  return {};
#endif
}

void T5Tokenizer::tokenize_word(std::string_view word, std::vector<int32_t>& out) const {
#ifdef KILN_HAVE_SENTENCEPIECE
  const auto encode = [&](std::string_view w) {
    std::vector<int> ids;
    const auto st = impl_->sp.Encode(std::string(w), &ids);
    KILN_CHECK(st.ok(), Status::internal, source_, "SentencePiece Encode failed: ", st.ToString());
    out.insert(out.end(), ids.begin(), ids.end());
  };
  // Metaspace splits before every "▁" (MergedWithNext) after prepending one to the word; each
  // part is then "▁" + rest, which is what SentencePiece makes of the rest alone. A part that is
  // only "▁" is the "▁" piece (SentencePiece would drop it).
  size_t pos = word.find(kMetaspace);
  if (pos == std::string_view::npos) return encode(word);
  if (pos > 0) encode(word.substr(0, pos));
  while (pos != std::string_view::npos) {
    const size_t start = pos + kMetaspace.size();
    pos = word.find(kMetaspace, start);
    const auto part = word.substr(start, pos == std::string_view::npos ? word.npos : pos - start);
    if (part.empty())
      out.push_back(space_piece_);
    else
      encode(part);
  }
#else
  (void)word;
  (void)out;
#endif
}

void T5Tokenizer::tokenize_segment(std::string_view text, std::vector<int32_t>& out) const {
  // WhitespaceSplit after normalization, emulated on the raw text with the probed actions.
  std::string word;
  const auto flush = [&] {
    if (!word.empty()) tokenize_word(word, out);
    word.clear();
  };
  for (size_t i = 0; i < text.size();) {
    const size_t at = i;
    const char32_t c = next_cp(text, i);
    int action = c == U' ' ? ws_split : -1;
    for (const auto& [w, a] : whitespace_)
      if (w == c) action = a;
    if (action == ws_split)
      flush();
    else if (action != ws_remove)
      word.append(text.substr(at, i - at));
  }
  flush();
}

std::vector<int32_t> T5Tokenizer::tokenize(std::string_view text) const {
  std::vector<int32_t> out;
  size_t start = 0;
  for (size_t i = 0; i < text.size();) {
    const Special* hit = nullptr;
    for (const auto& s : specials_) {  // longest first: the first hit is the longest here
      if (text[i] == s.text[0] && text.substr(i, s.text.size()) == s.text) {
        hit = &s;
        break;
      }
    }
    if (!hit) {
      ++i;
      continue;
    }
    tokenize_segment(text.substr(start, i - start), out);
    out.push_back(hit->id);
    i += hit->text.size();
    start = i;
  }
  tokenize_segment(text.substr(start), out);
  return out;
}

std::vector<int32_t> T5Tokenizer::encode(std::string_view text) const {
  auto ids = tokenize(text);
  ids.push_back(eos_);
  return ids;
}

T5Encoding T5Tokenizer::encode_padded(std::string_view text, int64_t max_length) const {
  KILN_ARG(max_length >= 1, kCtx, "max_length ", max_length, " < 1 (room for \"</s>\" needed)");
  T5Encoding e;
  e.ids = tokenize(text);
  const auto keep = static_cast<size_t>(max_length - 1);
  if (e.ids.size() > keep) {
    e.ids.resize(keep);
    e.truncated = true;
  }
  e.ids.push_back(eos_);
  e.length = e.ids.size();
  e.attention_mask.assign(e.length, 1);
  e.ids.resize(static_cast<size_t>(max_length), pad_);
  e.attention_mask.resize(static_cast<size_t>(max_length), 0);
  return e;
}

}  // namespace kiln::pipelines::text
