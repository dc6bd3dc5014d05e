// Ref: transformers models/clip/tokenization_clip.py; tokenizers src/models/bpe/model.rs,
// src/normalizers, src/pre_tokenizers/{split,byte_level}.rs; openai/CLIP simple_tokenizer.py.
#include "kiln/pipelines/text/clip_tokenizer.hpp"

#include <algorithm>
#include <array>
#include <climits>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>

#include "kiln/core/error.hpp"

namespace kiln::pipelines::text {

namespace fs = std::filesystem;

namespace {

// Unicode classes of CLIP's pre-tokenizer regex and the lowercase map; the tables are at the end
// of this file.
enum class CharClass { other, letter, number };
CharClass char_class(char32_t c);
// Appends the lowercase of `c` (one code point, or two for U+0130).
void append_lower(char32_t c, std::u32string& out);

// onig's \s in the Unicode encoding (what the normalizer's Replace(\s+) and the split regex use).
bool is_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

// UTF-8 -> code points; each byte of an invalid sequence becomes U+FFFD.
std::u32string decode_utf8(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    int len = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : (b >> 3) == 0x1E ? 4 : 0;
    char32_t c = len == 1 ? b : len == 2 ? (b & 0x1F) : len == 3 ? (b & 0x0F) : (b & 0x07);
    bool ok = len > 0 && i + len <= s.size();
    for (int k = 1; ok && k < len; ++k) {
      const auto cb = static_cast<unsigned char>(s[i + k]);
      ok = (cb & 0xC0) == 0x80;
      c = (c << 6) | (cb & 0x3F);
    }
    // Overlong forms, surrogates and values past U+10FFFF are invalid as well.
    static constexpr char32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (ok && (c < kMin[len] || (c >= 0xD800 && c < 0xE000) || c > 0x10FFFF)) ok = false;
    if (!ok) {
      out.push_back(0xFFFD);
      i += 1;
      continue;
    }
    out.push_back(c);
    i += len;
  }
  return out;
}

void append_utf8(char32_t c, std::string& out) {
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xE0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
}

// bytes_to_unicode: the 188 printable bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for
// themselves, the other 68 map to U+0100.. in byte order. Returned as UTF-8 strings.
const std::array<std::string, 256>& byte_symbols() {
  static const std::array<std::string, 256> table = [] {
    std::array<std::string, 256> t;
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable =
          (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      append_utf8(printable ? static_cast<char32_t>(b) : next++, t[b]);
    }
    return t;
  }();
  return table;
}

std::string read_text(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  KILN_CHECK(in.good(), fs::exists(file) ? Status::io_error : Status::not_found, file.string(),
             fs::exists(file) ? "cannot read the file" : "file not found");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

nlohmann::json read_json(const fs::path& file) {
  try {
    return nlohmann::json::parse(read_text(file));
  } catch (const nlohmann::json::exception& e) {
    fail(Status::format_error, str("invalid JSON: ", e.what()), file.string());
  }
}

// A token in tokenizer_config.json / special_tokens_map.json: "<|endoftext|>" or an AddedToken
// object {"content": "<|endoftext|>", ...}; nullopt when absent or null.
std::optional<std::string> token_field(const nlohmann::json& j, const char* key,
                                       const fs::path& file) {
  if (!j.contains(key) || j[key].is_null()) return std::nullopt;
  const auto& v = j[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string())
    return v["content"].get<std::string>();
  fail(Status::format_error, str("\"", key, "\" is neither a string nor {\"content\": ...}"),
       file.string());
}

}  // namespace

struct ClipTokenizer::Cache {
  // tokenizers' BPE cache holds 10,000 words; past that we start over rather than track use.
  static constexpr size_t kCapacity = 10000;
  std::mutex mu;
  std::unordered_map<std::string, std::vector<int32_t>> map;
};

ClipTokenizer::ClipTokenizer() : cache_(std::make_unique<Cache>()) {}
ClipTokenizer::ClipTokenizer(ClipTokenizer&&) noexcept = default;
ClipTokenizer& ClipTokenizer::operator=(ClipTokenizer&&) noexcept = default;
ClipTokenizer::~ClipTokenizer() = default;

ClipTokenizer ClipTokenizer::load(const fs::path& dir) {
  ClipSpecialTokens sp;
  int64_t max_length = 77;
  // tokenizer_config.json wins; special_tokens_map.json fills what it lacks (both optional).
  bool have[4] = {false, false, false, false};
  for (const char* name : {"tokenizer_config.json", "special_tokens_map.json"}) {
    const fs::path file = dir / name;
    if (!fs::exists(file)) continue;
    const nlohmann::json j = read_json(file);
    KILN_CHECK(j.is_object(), Status::format_error, file.string(), "not a JSON object");
    std::string* slots[4] = {&sp.bos, &sp.eos, &sp.unk, &sp.pad};
    const char* keys[4] = {"bos_token", "eos_token", "unk_token", "pad_token"};
    for (int k = 0; k < 4; ++k) {
      if (have[k]) continue;
      if (auto t = token_field(j, keys[k], file)) {
        *slots[k] = *t;
        have[k] = true;
      }
    }
    if (j.contains("model_max_length") && j["model_max_length"].is_number()) {
      // Tokenizers without a limit store 1e30 (VERY_LARGE_INTEGER); CLIP's is 77.
      const double m = j["model_max_length"].get<double>();
      KILN_CHECK(m >= 2, Status::format_error, file.string(), "model_max_length ", m, " < 2");
      if (m < 1e6) max_length = static_cast<int64_t>(m);
    }
    if (j.contains("added_tokens_decoder") && j["added_tokens_decoder"].is_object()) {
      for (const auto& [id, tok] : j["added_tokens_decoder"].items()) {
        const bool special = !tok.contains("special") || tok["special"].get<bool>();
        if (special && tok.contains("content") && tok["content"].is_string())
          sp.extra.push_back(tok["content"].get<std::string>());
      }
    }
  }
  // The slow tokenizer's vocab.json + merges.txt, else the fast tokenizer's tokenizer.json
  // (transformers 5 saves only the latter).
  if (fs::exists(dir / "vocab.json") || !fs::exists(dir / "tokenizer.json"))
    return from_files(dir / "vocab.json", dir / "merges.txt", std::move(sp), max_length);
  return from_tokenizer_json(dir / "tokenizer.json", std::move(sp), max_length);
}

// One merge rule "left right" and where it was read (for errors).
struct ClipTokenizer::MergeRule {
  std::string left, right, where;
};

namespace {
using MergeRule = ClipTokenizer::MergeRule;

// merges.txt: an optional "#version" header, then "left right" per line, rank = order.
std::vector<MergeRule> read_merges_txt(const fs::path& merges_txt) {
  std::vector<MergeRule> rules;
  std::istringstream lines(read_text(merges_txt));
  std::string line;
  int line_no = 0;
  while (std::getline(lines, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || (line_no == 1 && line.rfind("#version", 0) == 0)) continue;
    const size_t sp_pos = line.find(' ');
    const bool two = sp_pos != std::string::npos && sp_pos > 0 && sp_pos + 1 < line.size() &&
                     line.find(' ', sp_pos + 1) == std::string::npos;
    KILN_CHECK(two, Status::format_error, merges_txt.string(), "line ", line_no, " \"", line,
               "\" is not two symbols separated by one space");
    rules.push_back({line.substr(0, sp_pos), line.substr(sp_pos + 1),
                     str(merges_txt.string(), " line ", line_no)});
  }
  return rules;
}

// tokenizer.json's model.merges: "left right" strings (tokenizers < 0.20) or [left, right].
std::vector<MergeRule> read_merges_json(const nlohmann::json& merges, const fs::path& file) {
  KILN_CHECK(merges.is_array(), Status::format_error, file.string(),
             "model.merges is not a list");
  std::vector<MergeRule> rules;
  for (size_t i = 0; i < merges.size(); ++i) {
    const nlohmann::json& m = merges[i];
    std::string where = str(file.string(), " model.merges[", i, "]");
    if (m.is_string()) {
      const std::string line = m.get<std::string>();
      const size_t sp_pos = line.find(' ');
      KILN_CHECK(sp_pos != std::string::npos && sp_pos > 0 && sp_pos + 1 < line.size() &&
                     line.find(' ', sp_pos + 1) == std::string::npos,
                 Status::format_error, where, "\"", line,
                 "\" is not two symbols separated by one space");
      rules.push_back({line.substr(0, sp_pos), line.substr(sp_pos + 1), std::move(where)});
    } else {
      KILN_CHECK(m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string(),
                 Status::format_error, where, "expected \"left right\" or [left, right], got ",
                 m.dump());
      rules.push_back({m[0].get<std::string>(), m[1].get<std::string>(), std::move(where)});
    }
  }
  return rules;
}

}  // namespace

ClipTokenizer ClipTokenizer::from_files(const fs::path& vocab_json, const fs::path& merges_txt,
                                        ClipSpecialTokens sp, int64_t model_max_length) {
  return build(read_json(vocab_json), read_merges_txt(merges_txt), vocab_json.string(),
               std::move(sp), model_max_length);
}

ClipTokenizer ClipTokenizer::from_tokenizer_json(const fs::path& tokenizer_json,
                                                 ClipSpecialTokens sp, int64_t model_max_length) {
  const nlohmann::json j = read_json(tokenizer_json);
  const std::string file = tokenizer_json.string();
  KILN_CHECK(j.is_object() && j.contains("model") && j["model"].is_object(),
             Status::format_error, file, "no \"model\" object");
  const nlohmann::json& m = j["model"];
  const std::string type = m.value("type", std::string("?"));
  KILN_CHECK(type == "BPE", Status::unsupported, file, "model.type \"", type,
             "\": a CLIP tokenizer is BPE");
  const std::string suffix = m.contains("end_of_word_suffix") && m["end_of_word_suffix"].is_string()
                                 ? m["end_of_word_suffix"].get<std::string>()
                                 : std::string();
  KILN_CHECK(suffix == "</w>", Status::unsupported, file, "model.end_of_word_suffix \"", suffix,
             "\": CLIP's BPE marks word ends with \"</w>\"");
  KILN_CHECK(m.contains("vocab") && m.contains("merges"), Status::format_error, file,
             "model lacks \"vocab\" or \"merges\"");
  return build(m["vocab"], read_merges_json(m["merges"], tokenizer_json), file, std::move(sp),
               model_max_length);
}

ClipTokenizer ClipTokenizer::build(const nlohmann::json& vocab, const std::vector<MergeRule>& merges,
                                   const std::string& source, ClipSpecialTokens sp,
                                   int64_t model_max_length) {
  KILN_ARG(model_max_length >= 2, "ClipTokenizer", "model_max_length ", model_max_length, " < 2");
  ClipTokenizer t;
  t.source_ = source;
  t.max_length_ = model_max_length;

  KILN_CHECK(vocab.is_object() && !vocab.empty(), Status::format_error, t.source_,
             "expected a non-empty JSON object {token: id}");
  int64_t max_id = -1;
  for (const auto& [tok, id] : vocab.items()) {
    KILN_CHECK(id.is_number_integer() && id.get<int64_t>() >= 0 && id.get<int64_t>() < INT32_MAX,
               Status::format_error, t.source_, "token \"", tok, "\" has id ", id.dump(),
               ", expected a non-negative integer");
    t.vocab_.emplace(tok, static_cast<int32_t>(id.get<int64_t>()));
    max_id = std::max<int64_t>(max_id, id.get<int64_t>());
  }
  t.id_to_token_.resize(static_cast<size_t>(max_id + 1));
  for (const auto& [tok, id] : t.vocab_) t.id_to_token_[static_cast<size_t>(id)] = tok;

  for (const MergeRule& r : merges) {
    for (const std::string& s : {r.left, r.right, r.left + r.right}) {
      KILN_CHECK(t.vocab_.count(s), Status::format_error, r.where, "\"", s, "\" is not in ",
                 fs::path(t.source_).filename().string());
    }
    t.merge_rank_.emplace(r.left + " " + r.right, static_cast<int32_t>(t.merge_rank_.size()));
  }

  auto special_id = [&](const std::string& name, const char* what) {
    auto it = t.vocab_.find(name);
    KILN_CHECK(it != t.vocab_.end(), Status::format_error, t.source_, what, " token \"", name,
               "\" is not in the vocabulary");
    return it->second;
  };
  t.bos_ = special_id(sp.bos, "bos");
  t.eos_ = special_id(sp.eos, "eos");
  t.unk_ = special_id(sp.unk, "unk");
  t.pad_ = special_id(sp.pad, "pad");
  std::vector<std::string> names = {sp.bos, sp.eos, sp.unk, sp.pad};
  names.insert(names.end(), sp.extra.begin(), sp.extra.end());
  for (const auto& n : names) {
    if (n.empty()) continue;
    const int32_t id = special_id(n, "special");
    if (std::none_of(t.specials_.begin(), t.specials_.end(),
                     [&](const auto& s) { return s.first == n; }))
      t.specials_.emplace_back(n, id);
  }
  // Longest first, so that the first prefix found at a position is the longest match.
  std::sort(t.specials_.begin(), t.specials_.end(),
            [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  return t;
}

std::optional<int32_t> ClipTokenizer::token_to_id(std::string_view token) const {
  auto it = vocab_.find(std::string(token));
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string& ClipTokenizer::id_to_token(int32_t id) const {
  KILN_ARG(id >= 0 && static_cast<size_t>(id) < id_to_token_.size(), "ClipTokenizer", "token id ",
           id, " out of range [0, ", id_to_token_.size(), ")");
  return id_to_token_[static_cast<size_t>(id)];
}

std::vector<int32_t> ClipTokenizer::tokenize(std::string_view text) const {
  std::vector<int32_t> out;
  size_t seg = 0, i = 0;
  while (i < text.size()) {
    const std::pair<std::string, int32_t>* hit = nullptr;
    for (const auto& s : specials_) {
      if (text.compare(i, s.first.size(), s.first) == 0) {
        hit = &s;
        break;
      }
    }
    if (!hit) {
      ++i;
      continue;
    }
    tokenize_segment(text.substr(seg, i - seg), out);
    out.push_back(hit->second);
    i += hit->first.size();
    seg = i;
  }
  tokenize_segment(text.substr(seg), out);
  return out;
}

void ClipTokenizer::tokenize_segment(std::string_view text, std::vector<int32_t>& out) const {
  if (text.empty()) return;
  // Normalizer: whitespace runs -> " ", then per-code-point lowercase.
  std::u32string s;
  s.reserve(text.size());
  bool in_space = false;
  for (char32_t c : decode_utf8(text)) {
    if (is_space(c)) {
      if (!in_space) s.push_back(U' ');
      in_space = true;
      continue;
    }
    in_space = false;
    append_lower(c, s);
  }

  // Pre-tokenizer: CLIP's alternatives in order at each position (see the header).
  std::string piece;
  auto emit = [&](size_t b, size_t e) {
    piece.clear();
    for (size_t k = b; k < e; ++k) append_utf8(s[k], piece);
    bpe_piece(piece, out);
  };
  static const std::u32string kSpecialWords[] = {U"startoftext", U"endoftext"};
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const char32_t c = s[i];
    if (is_space(c)) {
      ++i;
      continue;
    }
    if (c == U'<' && i + 1 < n && s[i + 1] == U'|') {
      bool matched = false;
      for (const auto& w : kSpecialWords) {
        const size_t len = w.size() + 4;  // "<|" word "|>"
        if (i + len <= n && s.compare(i + 2, w.size(), w) == 0 && s[i + 2 + w.size()] == U'|' &&
            s[i + 3 + w.size()] == U'>') {
          // The ByteLevel pre-tokenizer's GPT-2 pattern splits the literal into three pieces.
          emit(i, i + 2);
          emit(i + 2, i + 2 + w.size());
          emit(i + 2 + w.size(), i + len);
          i += len;
          matched = true;
          break;
        }
      }
      if (matched) continue;
    }
    if (c == U'\'' && i + 1 < n) {
      const char32_t a = s[i + 1], b = i + 2 < n ? s[i + 2] : 0;
      size_t len = 0;
      if (a == U's' || a == U't' || a == U'm' || a == U'd')
        len = 2;
      else if ((a == U'r' && b == U'e') || (a == U'v' && b == U'e') || (a == U'l' && b == U'l'))
        len = 3;
      if (len) {
        emit(i, i + len);
        i += len;
        continue;
      }
    }
    const CharClass cls = char_class(c);
    size_t j = i + 1;
    if (cls == CharClass::letter) {
      while (j < n && char_class(s[j]) == CharClass::letter) ++j;
    } else if (cls == CharClass::other) {
      while (j < n && !is_space(s[j]) && char_class(s[j]) == CharClass::other) ++j;
    }  // a number is one code point
    emit(i, j);
    i = j;
  }
}

void ClipTokenizer::bpe_piece(const std::string& piece, std::vector<int32_t>& out) const {
  {
    std::lock_guard<std::mutex> lock(cache_->mu);
    auto it = cache_->map.find(piece);
    if (it != cache_->map.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const auto& bs = byte_symbols();
  std::vector<std::string> sym;
  sym.reserve(piece.size());
  for (unsigned char b : piece) sym.push_back(bs[b]);
  sym.back() += "</w>";

  std::string key;
  while (sym.size() > 1) {
    int32_t best = INT32_MAX;
    size_t best_at = 0;
    for (size_t k = 0; k + 1 < sym.size(); ++k) {
      key.assign(sym[k]).append(" ").append(sym[k + 1]);
      auto it = merge_rank_.find(key);
      if (it != merge_rank_.end() && it->second < best) {
        best = it->second;
        best_at = k;
      }
    }
    if (best == INT32_MAX) break;
    // Merge every non-overlapping occurrence of the best pair, left to right.
    const std::string a = sym[best_at], b = sym[best_at + 1];
    std::vector<std::string> merged;
    merged.reserve(sym.size());
    for (size_t k = 0; k < sym.size();) {
      if (k + 1 < sym.size() && sym[k] == a && sym[k + 1] == b) {
        merged.push_back(a + b);
        k += 2;
      } else {
        merged.push_back(std::move(sym[k]));
        k += 1;
      }
    }
    sym = std::move(merged);
  }

  std::vector<int32_t> ids;
  ids.reserve(sym.size());
  for (const auto& s : sym) {
    auto it = vocab_.find(s);
    ids.push_back(it == vocab_.end() ? unk_ : it->second);
  }
  out.insert(out.end(), ids.begin(), ids.end());
  std::lock_guard<std::mutex> lock(cache_->mu);
  if (cache_->map.size() >= Cache::kCapacity) cache_->map.clear();
  cache_->map.emplace(piece, std::move(ids));
}

std::vector<int32_t> ClipTokenizer::encode(std::string_view text) const {
  std::vector<int32_t> ids{bos_};
  const auto t = tokenize(text);
  ids.insert(ids.end(), t.begin(), t.end());
  ids.push_back(eos_);
  return ids;
}

std::vector<int32_t> ClipTokenizer::wrap(std::span<const int32_t> tokens, int64_t length) const {
  if (length == 0) length = max_length_;
  KILN_ARG(length >= 2 && static_cast<int64_t>(tokens.size()) <= length - 2, "ClipTokenizer",
           tokens.size(), " tokens do not fit a sequence of ", length, " with bos and eos");
  std::vector<int32_t> ids;
  ids.reserve(static_cast<size_t>(length));
  ids.push_back(bos_);
  ids.insert(ids.end(), tokens.begin(), tokens.end());
  ids.push_back(eos_);
  ids.resize(static_cast<size_t>(length), pad_);
  return ids;
}

std::vector<int32_t> ClipTokenizer::encode_padded(std::string_view text, int64_t max_length) const {
  if (max_length == 0) max_length = max_length_;
  KILN_ARG(max_length >= 2, "ClipTokenizer", "max_length ", max_length, " < 2");
  auto t = tokenize(text);
  if (static_cast<int64_t>(t.size()) > max_length - 2)
    t.resize(static_cast<size_t>(max_length - 2));
  return wrap(t, max_length);
}

std::vector<std::vector<int32_t>> ClipTokenizer::encode_chunks(std::string_view text) const {
  const auto t = tokenize(text);
  const size_t per = static_cast<size_t>(max_length_ - 2);
  std::vector<std::vector<int32_t>> chunks;
  for (size_t at = 0; at < std::max<size_t>(t.size(), 1); at += per) {
    const size_t len = std::min(per, t.size() - std::min(at, t.size()));
    chunks.push_back(wrap(std::span<const int32_t>(t).subspan(at, len)));
  }
  return chunks;
}

namespace {

// ------------------------------------------------------------------------------------------------
// Unicode tables, generated by `tests/reference/make_clip_fixtures.py --unicode-tables` from the
// installed `tokenizers` (its onig regex \p{L} / \p{N} and Rust's char::to_lowercase); do not
// edit by hand. kLetterNumber: sorted, disjoint [lo, hi] ranges, class 1 = letter, 2 = number.
// kLowerRuns: code points lo, lo+stride, ..., hi map to c + delta.

struct CharRange {
  char32_t lo, hi;
  int cls;
};
struct LowerRun {
  char32_t lo, hi;
  int32_t delta;
  int32_t stride;
};

const CharRange kLetterNumber[] = {
    {0x30, 0x39, 2},       {0x41, 0x5A, 1},       {0x61, 0x7A, 1},       {0xAA, 0xAA, 1},
    {0xB2, 0xB3, 2},       {0xB5, 0xB5, 1},       {0xB9, 0xB9, 2},       {0xBA, 0xBA, 1},
    {0xBC, 0xBE, 2},       {0xC0, 0xD6, 1},       {0xD8, 0xF6, 1},       {0xF8, 0x2C1, 1},
    {0x2C6, 0x2D1, 1},     {0x2E0, 0x2E4, 1},     {0x2EC, 0x2EC, 1},     {0x2EE, 0x2EE, 1},
    {0x370, 0x374, 1},     {0x376, 0x377, 1},     {0x37A, 0x37D, 1},     {0x37F, 0x37F, 1},
    {0x386, 0x386, 1},     {0x388, 0x38A, 1},     {0x38C, 0x38C, 1},     {0x38E, 0x3A1, 1},
    {0x3A3, 0x3F5, 1},     {0x3F7, 0x481, 1},     {0x48A, 0x52F, 1},     {0x531, 0x556, 1},
    {0x559, 0x559, 1},     {0x560, 0x588, 1},     {0x5D0, 0x5EA, 1},     {0x5EF, 0x5F2, 1},
    {0x620, 0x64A, 1},     {0x660, 0x669, 2},     {0x66E, 0x66F, 1},     {0x671, 0x6D3, 1},
    {0x6D5, 0x6D5, 1},     {0x6E5, 0x6E6, 1},     {0x6EE, 0x6EF, 1},     {0x6F0, 0x6F9, 2},
    {0x6FA, 0x6FC, 1},     {0x6FF, 0x6FF, 1},     {0x710, 0x710, 1},     {0x712, 0x72F, 1},
    {0x74D, 0x7A5, 1},     {0x7B1, 0x7B1, 1},     {0x7C0, 0x7C9, 2},     {0x7CA, 0x7EA, 1},
    {0x7F4, 0x7F5, 1},     {0x7FA, 0x7FA, 1},     {0x800, 0x815, 1},     {0x81A, 0x81A, 1},
    {0x824, 0x824, 1},     {0x828, 0x828, 1},     {0x840, 0x858, 1},     {0x860, 0x86A, 1},
    {0x870, 0x887, 1},     {0x889, 0x88E, 1},     {0x8A0, 0x8C9, 1},     {0x904, 0x939, 1},
    {0x93D, 0x93D, 1},     {0x950, 0x950, 1},     {0x958, 0x961, 1},     {0x966, 0x96F, 2},
    {0x971, 0x980, 1},     {0x985, 0x98C, 1},     {0x98F, 0x990, 1},     {0x993, 0x9A8, 1},
    {0x9AA, 0x9B0, 1},     {0x9B2, 0x9B2, 1},     {0x9B6, 0x9B9, 1},     {0x9BD, 0x9BD, 1},
    {0x9CE, 0x9CE, 1},     {0x9DC, 0x9DD, 1},     {0x9DF, 0x9E1, 1},     {0x9E6, 0x9EF, 2},
    {0x9F0, 0x9F1, 1},     {0x9F4, 0x9F9, 2},     {0x9FC, 0x9FC, 1},     {0xA05, 0xA0A, 1},
    {0xA0F, 0xA10, 1},     {0xA13, 0xA28, 1},     {0xA2A, 0xA30, 1},     {0xA32, 0xA33, 1},
    {0xA35, 0xA36, 1},     {0xA38, 0xA39, 1},     {0xA59, 0xA5C, 1},     {0xA5E, 0xA5E, 1},
    {0xA66, 0xA6F, 2},     {0xA72, 0xA74, 1},     {0xA85, 0xA8D, 1},     {0xA8F, 0xA91, 1},
    {0xA93, 0xAA8, 1},     {0xAAA, 0xAB0, 1},     {0xAB2, 0xAB3, 1},     {0xAB5, 0xAB9, 1},
    {0xABD, 0xABD, 1},     {0xAD0, 0xAD0, 1},     {0xAE0, 0xAE1, 1},     {0xAE6, 0xAEF, 2},
    {0xAF9, 0xAF9, 1},     {0xB05, 0xB0C, 1},     {0xB0F, 0xB10, 1},     {0xB13, 0xB28, 1},
    {0xB2A, 0xB30, 1},     {0xB32, 0xB33, 1},     {0xB35, 0xB39, 1},     {0xB3D, 0xB3D, 1},
    {0xB5C, 0xB5D, 1},     {0xB5F, 0xB61, 1},     {0xB66, 0xB6F, 2},     {0xB71, 0xB71, 1},
    {0xB72, 0xB77, 2},     {0xB83, 0xB83, 1},     {0xB85, 0xB8A, 1},     {0xB8E, 0xB90, 1},
    {0xB92, 0xB95, 1},     {0xB99, 0xB9A, 1},     {0xB9C, 0xB9C, 1},     {0xB9E, 0xB9F, 1},
    {0xBA3, 0xBA4, 1},     {0xBA8, 0xBAA, 1},     {0xBAE, 0xBB9, 1},     {0xBD0, 0xBD0, 1},
    {0xBE6, 0xBF2, 2},     {0xC05, 0xC0C, 1},     {0xC0E, 0xC10, 1},     {0xC12, 0xC28, 1},
    {0xC2A, 0xC39, 1},     {0xC3D, 0xC3D, 1},     {0xC58, 0xC5A, 1},     {0xC5D, 0xC5D, 1},
    {0xC60, 0xC61, 1},     {0xC66, 0xC6F, 2},     {0xC78, 0xC7E, 2},     {0xC80, 0xC80, 1},
    {0xC85, 0xC8C, 1},     {0xC8E, 0xC90, 1},     {0xC92, 0xCA8, 1},     {0xCAA, 0xCB3, 1},
    {0xCB5, 0xCB9, 1},     {0xCBD, 0xCBD, 1},     {0xCDD, 0xCDE, 1},     {0xCE0, 0xCE1, 1},
    {0xCE6, 0xCEF, 2},     {0xCF1, 0xCF2, 1},     {0xD04, 0xD0C, 1},     {0xD0E, 0xD10, 1},
    {0xD12, 0xD3A, 1},     {0xD3D, 0xD3D, 1},     {0xD4E, 0xD4E, 1},     {0xD54, 0xD56, 1},
    {0xD58, 0xD5E, 2},     {0xD5F, 0xD61, 1},     {0xD66, 0xD78, 2},     {0xD7A, 0xD7F, 1},
    {0xD85, 0xD96, 1},     {0xD9A, 0xDB1, 1},     {0xDB3, 0xDBB, 1},     {0xDBD, 0xDBD, 1},
    {0xDC0, 0xDC6, 1},     {0xDE6, 0xDEF, 2},     {0xE01, 0xE30, 1},     {0xE32, 0xE33, 1},
    {0xE40, 0xE46, 1},     {0xE50, 0xE59, 2},     {0xE81, 0xE82, 1},     {0xE84, 0xE84, 1},
    {0xE86, 0xE8A, 1},     {0xE8C, 0xEA3, 1},     {0xEA5, 0xEA5, 1},     {0xEA7, 0xEB0, 1},
    {0xEB2, 0xEB3, 1},     {0xEBD, 0xEBD, 1},     {0xEC0, 0xEC4, 1},     {0xEC6, 0xEC6, 1},
    {0xED0, 0xED9, 2},     {0xEDC, 0xEDF, 1},     {0xF00, 0xF00, 1},     {0xF20, 0xF33, 2},
    {0xF40, 0xF47, 1},     {0xF49, 0xF6C, 1},     {0xF88, 0xF8C, 1},     {0x1000, 0x102A, 1},
    {0x103F, 0x103F, 1},   {0x1040, 0x1049, 2},   {0x1050, 0x1055, 1},   {0x105A, 0x105D, 1},
    {0x1061, 0x1061, 1},   {0x1065, 0x1066, 1},   {0x106E, 0x1070, 1},   {0x1075, 0x1081, 1},
    {0x108E, 0x108E, 1},   {0x1090, 0x1099, 2},   {0x10A0, 0x10C5, 1},   {0x10C7, 0x10C7, 1},
    {0x10CD, 0x10CD, 1},   {0x10D0, 0x10FA, 1},   {0x10FC, 0x1248, 1},   {0x124A, 0x124D, 1},
    {0x1250, 0x1256, 1},   {0x1258, 0x1258, 1},   {0x125A, 0x125D, 1},   {0x1260, 0x1288, 1},
    {0x128A, 0x128D, 1},   {0x1290, 0x12B0, 1},   {0x12B2, 0x12B5, 1},   {0x12B8, 0x12BE, 1},
    {0x12C0, 0x12C0, 1},   {0x12C2, 0x12C5, 1},   {0x12C8, 0x12D6, 1},   {0x12D8, 0x1310, 1},
    {0x1312, 0x1315, 1},   {0x1318, 0x135A, 1},   {0x1369, 0x137C, 2},   {0x1380, 0x138F, 1},
    {0x13A0, 0x13F5, 1},   {0x13F8, 0x13FD, 1},   {0x1401, 0x166C, 1},   {0x166F, 0x167F, 1},
    {0x1681, 0x169A, 1},   {0x16A0, 0x16EA, 1},   {0x16EE, 0x16F0, 2},   {0x16F1, 0x16F8, 1},
    {0x1700, 0x1711, 1},   {0x171F, 0x1731, 1},   {0x1740, 0x1751, 1},   {0x1760, 0x176C, 1},
    {0x176E, 0x1770, 1},   {0x1780, 0x17B3, 1},   {0x17D7, 0x17D7, 1},   {0x17DC, 0x17DC, 1},
    {0x17E0, 0x17E9, 2},   {0x17F0, 0x17F9, 2},   {0x1810, 0x1819, 2},   {0x1820, 0x1878, 1},
    {0x1880, 0x1884, 1},   {0x1887, 0x18A8, 1},   {0x18AA, 0x18AA, 1},   {0x18B0, 0x18F5, 1},
    {0x1900, 0x191E, 1},   {0x1946, 0x194F, 2},   {0x1950, 0x196D, 1},   {0x1970, 0x1974, 1},
    {0x1980, 0x19AB, 1},   {0x19B0, 0x19C9, 1},   {0x19D0, 0x19DA, 2},   {0x1A00, 0x1A16, 1},
    {0x1A20, 0x1A54, 1},   {0x1A80, 0x1A89, 2},   {0x1A90, 0x1A99, 2},   {0x1AA7, 0x1AA7, 1},
    {0x1B05, 0x1B33, 1},   {0x1B45, 0x1B4C, 1},   {0x1B50, 0x1B59, 2},   {0x1B83, 0x1BA0, 1},
    {0x1BAE, 0x1BAF, 1},   {0x1BB0, 0x1BB9, 2},   {0x1BBA, 0x1BE5, 1},   {0x1C00, 0x1C23, 1},
    {0x1C40, 0x1C49, 2},   {0x1C4D, 0x1C4F, 1},   {0x1C50, 0x1C59, 2},   {0x1C5A, 0x1C7D, 1},
    {0x1C80, 0x1C8A, 1},   {0x1C90, 0x1CBA, 1},   {0x1CBD, 0x1CBF, 1},   {0x1CE9, 0x1CEC, 1},
    {0x1CEE, 0x1CF3, 1},   {0x1CF5, 0x1CF6, 1},   {0x1CFA, 0x1CFA, 1},   {0x1D00, 0x1DBF, 1},
    {0x1E00, 0x1F15, 1},   {0x1F18, 0x1F1D, 1},   {0x1F20, 0x1F45, 1},   {0x1F48, 0x1F4D, 1},
    {0x1F50, 0x1F57, 1},   {0x1F59, 0x1F59, 1},   {0x1F5B, 0x1F5B, 1},   {0x1F5D, 0x1F5D, 1},
    {0x1F5F, 0x1F7D, 1},   {0x1F80, 0x1FB4, 1},   {0x1FB6, 0x1FBC, 1},   {0x1FBE, 0x1FBE, 1},
    {0x1FC2, 0x1FC4, 1},   {0x1FC6, 0x1FCC, 1},   {0x1FD0, 0x1FD3, 1},   {0x1FD6, 0x1FDB, 1},
    {0x1FE0, 0x1FEC, 1},   {0x1FF2, 0x1FF4, 1},   {0x1FF6, 0x1FFC, 1},   {0x2070, 0x2070, 2},
    {0x2071, 0x2071, 1},   {0x2074, 0x2079, 2},   {0x207F, 0x207F, 1},   {0x2080, 0x2089, 2},
    {0x2090, 0x209C, 1},   {0x2102, 0x2102, 1},   {0x2107, 0x2107, 1},   {0x210A, 0x2113, 1},
    {0x2115, 0x2115, 1},   {0x2119, 0x211D, 1},   {0x2124, 0x2124, 1},   {0x2126, 0x2126, 1},
    {0x2128, 0x2128, 1},   {0x212A, 0x212D, 1},   {0x212F, 0x2139, 1},   {0x213C, 0x213F, 1},
    {0x2145, 0x2149, 1},   {0x214E, 0x214E, 1},   {0x2150, 0x2182, 2},   {0x2183, 0x2184, 1},
    {0x2185, 0x2189, 2},   {0x2460, 0x249B, 2},   {0x24EA, 0x24FF, 2},   {0x2776, 0x2793, 2},
    {0x2C00, 0x2CE4, 1},   {0x2CEB, 0x2CEE, 1},   {0x2CF2, 0x2CF3, 1},   {0x2CFD, 0x2CFD, 2},
    {0x2D00, 0x2D25, 1},   {0x2D27, 0x2D27, 1},   {0x2D2D, 0x2D2D, 1},   {0x2D30, 0x2D67, 1},
    {0x2D6F, 0x2D6F, 1},   {0x2D80, 0x2D96, 1},   {0x2DA0, 0x2DA6, 1},   {0x2DA8, 0x2DAE, 1},
    {0x2DB0, 0x2DB6, 1},   {0x2DB8, 0x2DBE, 1},   {0x2DC0, 0x2DC6, 1},   {0x2DC8, 0x2DCE, 1},
    {0x2DD0, 0x2DD6, 1},   {0x2DD8, 0x2DDE, 1},   {0x2E2F, 0x2E2F, 1},   {0x3005, 0x3006, 1},
    {0x3007, 0x3007, 2},   {0x3021, 0x3029, 2},   {0x3031, 0x3035, 1},   {0x3038, 0x303A, 2},
    {0x303B, 0x303C, 1},   {0x3041, 0x3096, 1},   {0x309D, 0x309F, 1},   {0x30A1, 0x30FA, 1},
    {0x30FC, 0x30FF, 1},   {0x3105, 0x312F, 1},   {0x3131, 0x318E, 1},   {0x3192, 0x3195, 2},
    {0x31A0, 0x31BF, 1},   {0x31F0, 0x31FF, 1},   {0x3220, 0x3229, 2},   {0x3248, 0x324F, 2},
    {0x3251, 0x325F, 2},   {0x3280, 0x3289, 2},   {0x32B1, 0x32BF, 2},   {0x3400, 0x4DBF, 1},
    {0x4E00, 0xA48C, 1},   {0xA4D0, 0xA4FD, 1},   {0xA500, 0xA60C, 1},   {0xA610, 0xA61F, 1},
    {0xA620, 0xA629, 2},   {0xA62A, 0xA62B, 1},   {0xA640, 0xA66E, 1},   {0xA67F, 0xA69D, 1},
    {0xA6A0, 0xA6E5, 1},   {0xA6E6, 0xA6EF, 2},   {0xA717, 0xA71F, 1},   {0xA722, 0xA788, 1},
    {0xA78B, 0xA7CD, 1},   {0xA7D0, 0xA7D1, 1},   {0xA7D3, 0xA7D3, 1},   {0xA7D5, 0xA7DC, 1},
    {0xA7F2, 0xA801, 1},   {0xA803, 0xA805, 1},   {0xA807, 0xA80A, 1},   {0xA80C, 0xA822, 1},
    {0xA830, 0xA835, 2},   {0xA840, 0xA873, 1},   {0xA882, 0xA8B3, 1},   {0xA8D0, 0xA8D9, 2},
    {0xA8F2, 0xA8F7, 1},   {0xA8FB, 0xA8FB, 1},   {0xA8FD, 0xA8FE, 1},   {0xA900, 0xA909, 2},
    {0xA90A, 0xA925, 1},   {0xA930, 0xA946, 1},   {0xA960, 0xA97C, 1},   {0xA984, 0xA9B2, 1},
    {0xA9CF, 0xA9CF, 1},   {0xA9D0, 0xA9D9, 2},   {0xA9E0, 0xA9E4, 1},   {0xA9E6, 0xA9EF, 1},
    {0xA9F0, 0xA9F9, 2},   {0xA9FA, 0xA9FE, 1},   {0xAA00, 0xAA28, 1},   {0xAA40, 0xAA42, 1},
    {0xAA44, 0xAA4B, 1},   {0xAA50, 0xAA59, 2},   {0xAA60, 0xAA76, 1},   {0xAA7A, 0xAA7A, 1},
    {0xAA7E, 0xAAAF, 1},   {0xAAB1, 0xAAB1, 1},   {0xAAB5, 0xAAB6, 1},   {0xAAB9, 0xAABD, 1},
    {0xAAC0, 0xAAC0, 1},   {0xAAC2, 0xAAC2, 1},   {0xAADB, 0xAADD, 1},   {0xAAE0, 0xAAEA, 1},
    {0xAAF2, 0xAAF4, 1},   {0xAB01, 0xAB06, 1},   {0xAB09, 0xAB0E, 1},   {0xAB11, 0xAB16, 1},
    {0xAB20, 0xAB26, 1},   {0xAB28, 0xAB2E, 1},   {0xAB30, 0xAB5A, 1},   {0xAB5C, 0xAB69, 1},
    {0xAB70, 0xABE2, 1},   {0xABF0, 0xABF9, 2},   {0xAC00, 0xD7A3, 1},   {0xD7B0, 0xD7C6, 1},
    {0xD7CB, 0xD7FB, 1},   {0xF900, 0xFA6D, 1},   {0xFA70, 0xFAD9, 1},   {0xFB00, 0xFB06, 1},
    {0xFB13, 0xFB17, 1},   {0xFB1D, 0xFB1D, 1},   {0xFB1F, 0xFB28, 1},   {0xFB2A, 0xFB36, 1},
    {0xFB38, 0xFB3C, 1},   {0xFB3E, 0xFB3E, 1},   {0xFB40, 0xFB41, 1},   {0xFB43, 0xFB44, 1},
    {0xFB46, 0xFBB1, 1},   {0xFBD3, 0xFD3D, 1},   {0xFD50, 0xFD8F, 1},   {0xFD92, 0xFDC7, 1},
    {0xFDF0, 0xFDFB, 1},   {0xFE70, 0xFE74, 1},   {0xFE76, 0xFEFC, 1},   {0xFF10, 0xFF19, 2},
    {0xFF21, 0xFF3A, 1},   {0xFF41, 0xFF5A, 1},   {0xFF66, 0xFFBE, 1},   {0xFFC2, 0xFFC7, 1},
    {0xFFCA, 0xFFCF, 1},   {0xFFD2, 0xFFD7, 1},   {0xFFDA, 0xFFDC, 1},   {0x10000, 0x1000B, 1},
    {0x1000D, 0x10026, 1}, {0x10028, 0x1003A, 1}, {0x1003C, 0x1003D, 1}, {0x1003F, 0x1004D, 1},
    {0x10050, 0x1005D, 1}, {0x10080, 0x100FA, 1}, {0x10107, 0x10133, 2}, {0x10140, 0x10178, 2},
    {0x1018A, 0x1018B, 2}, {0x10280, 0x1029C, 1}, {0x102A0, 0x102D0, 1}, {0x102E1, 0x102FB, 2},
    {0x10300, 0x1031F, 1}, {0x10320, 0x10323, 2}, {0x1032D, 0x10340, 1}, {0x10341, 0x10341, 2},
    {0x10342, 0x10349, 1}, {0x1034A, 0x1034A, 2}, {0x10350, 0x10375, 1}, {0x10380, 0x1039D, 1},
    {0x103A0, 0x103C3, 1}, {0x103C8, 0x103CF, 1}, {0x103D1, 0x103D5, 2}, {0x10400, 0x1049D, 1},
    {0x104A0, 0x104A9, 2}, {0x104B0, 0x104D3, 1}, {0x104D8, 0x104FB, 1}, {0x10500, 0x10527, 1},
    {0x10530, 0x10563, 1}, {0x10570, 0x1057A, 1}, {0x1057C, 0x1058A, 1}, {0x1058C, 0x10592, 1},
    {0x10594, 0x10595, 1}, {0x10597, 0x105A1, 1}, {0x105A3, 0x105B1, 1}, {0x105B3, 0x105B9, 1},
    {0x105BB, 0x105BC, 1}, {0x105C0, 0x105F3, 1}, {0x10600, 0x10736, 1}, {0x10740, 0x10755, 1},
    {0x10760, 0x10767, 1}, {0x10780, 0x10785, 1}, {0x10787, 0x107B0, 1}, {0x107B2, 0x107BA, 1},
    {0x10800, 0x10805, 1}, {0x10808, 0x10808, 1}, {0x1080A, 0x10835, 1}, {0x10837, 0x10838, 1},
    {0x1083C, 0x1083C, 1}, {0x1083F, 0x10855, 1}, {0x10858, 0x1085F, 2}, {0x10860, 0x10876, 1},
    {0x10879, 0x1087F, 2}, {0x10880, 0x1089E, 1}, {0x108A7, 0x108AF, 2}, {0x108E0, 0x108F2, 1},
    {0x108F4, 0x108F5, 1}, {0x108FB, 0x108FF, 2}, {0x10900, 0x10915, 1}, {0x10916, 0x1091B, 2},
    {0x10920, 0x10939, 1}, {0x10980, 0x109B7, 1}, {0x109BC, 0x109BD, 2}, {0x109BE, 0x109BF, 1},
    {0x109C0, 0x109CF, 2}, {0x109D2, 0x109FF, 2}, {0x10A00, 0x10A00, 1}, {0x10A10, 0x10A13, 1},
    {0x10A15, 0x10A17, 1}, {0x10A19, 0x10A35, 1}, {0x10A40, 0x10A48, 2}, {0x10A60, 0x10A7C, 1},
    {0x10A7D, 0x10A7E, 2}, {0x10A80, 0x10A9C, 1}, {0x10A9D, 0x10A9F, 2}, {0x10AC0, 0x10AC7, 1},
    {0x10AC9, 0x10AE4, 1}, {0x10AEB, 0x10AEF, 2}, {0x10B00, 0x10B35, 1}, {0x10B40, 0x10B55, 1},
    {0x10B58, 0x10B5F, 2}, {0x10B60, 0x10B72, 1}, {0x10B78, 0x10B7F, 2}, {0x10B80, 0x10B91, 1},
    {0x10BA9, 0x10BAF, 2}, {0x10C00, 0x10C48, 1}, {0x10C80, 0x10CB2, 1}, {0x10CC0, 0x10CF2, 1},
    {0x10CFA, 0x10CFF, 2}, {0x10D00, 0x10D23, 1}, {0x10D30, 0x10D39, 2}, {0x10D40, 0x10D49, 2},
    {0x10D4A, 0x10D65, 1}, {0x10D6F, 0x10D85, 1}, {0x10E60, 0x10E7E, 2}, {0x10E80, 0x10EA9, 1},
    {0x10EB0, 0x10EB1, 1}, {0x10EC2, 0x10EC4, 1}, {0x10F00, 0x10F1C, 1}, {0x10F1D, 0x10F26, 2},
    {0x10F27, 0x10F27, 1}, {0x10F30, 0x10F45, 1}, {0x10F51, 0x10F54, 2}, {0x10F70, 0x10F81, 1},
    {0x10FB0, 0x10FC4, 1}, {0x10FC5, 0x10FCB, 2}, {0x10FE0, 0x10FF6, 1}, {0x11003, 0x11037, 1},
    {0x11052, 0x1106F, 2}, {0x11071, 0x11072, 1}, {0x11075, 0x11075, 1}, {0x11083, 0x110AF, 1},
    {0x110D0, 0x110E8, 1}, {0x110F0, 0x110F9, 2}, {0x11103, 0x11126, 1}, {0x11136, 0x1113F, 2},
    {0x11144, 0x11144, 1}, {0x11147, 0x11147, 1}, {0x11150, 0x11172, 1}, {0x11176, 0x11176, 1},
    {0x11183, 0x111B2, 1}, {0x111C1, 0x111C4, 1}, {0x111D0, 0x111D9, 2}, {0x111DA, 0x111DA, 1},
    {0x111DC, 0x111DC, 1}, {0x111E1, 0x111F4, 2}, {0x11200, 0x11211, 1}, {0x11213, 0x1122B, 1},
    {0x1123F, 0x11240, 1}, {0x11280, 0x11286, 1}, {0x11288, 0x11288, 1}, {0x1128A, 0x1128D, 1},
    {0x1128F, 0x1129D, 1}, {0x1129F, 0x112A8, 1}, {0x112B0, 0x112DE, 1}, {0x112F0, 0x112F9, 2},
    {0x11305, 0x1130C, 1}, {0x1130F, 0x11310, 1}, {0x11313, 0x11328, 1}, {0x1132A, 0x11330, 1},
    {0x11332, 0x11333, 1}, {0x11335, 0x11339, 1}, {0x1133D, 0x1133D, 1}, {0x11350, 0x11350, 1},
    {0x1135D, 0x11361, 1}, {0x11380, 0x11389, 1}, {0x1138B, 0x1138B, 1}, {0x1138E, 0x1138E, 1},
    {0x11390, 0x113B5, 1}, {0x113B7, 0x113B7, 1}, {0x113D1, 0x113D1, 1}, {0x113D3, 0x113D3, 1},
    {0x11400, 0x11434, 1}, {0x11447, 0x1144A, 1}, {0x11450, 0x11459, 2}, {0x1145F, 0x11461, 1},
    {0x11480, 0x114AF, 1}, {0x114C4, 0x114C5, 1}, {0x114C7, 0x114C7, 1}, {0x114D0, 0x114D9, 2},
    {0x11580, 0x115AE, 1}, {0x115D8, 0x115DB, 1}, {0x11600, 0x1162F, 1}, {0x11644, 0x11644, 1},
    {0x11650, 0x11659, 2}, {0x11680, 0x116AA, 1}, {0x116B8, 0x116B8, 1}, {0x116C0, 0x116C9, 2},
    {0x116D0, 0x116E3, 2}, {0x11700, 0x1171A, 1}, {0x11730, 0x1173B, 2}, {0x11740, 0x11746, 1},
    {0x11800, 0x1182B, 1}, {0x118A0, 0x118DF, 1}, {0x118E0, 0x118F2, 2}, {0x118FF, 0x11906, 1},
    {0x11909, 0x11909, 1}, {0x1190C, 0x11913, 1}, {0x11915, 0x11916, 1}, {0x11918, 0x1192F, 1},
    {0x1193F, 0x1193F, 1}, {0x11941, 0x11941, 1}, {0x11950, 0x11959, 2}, {0x119A0, 0x119A7, 1},
    {0x119AA, 0x119D0, 1}, {0x119E1, 0x119E1, 1}, {0x119E3, 0x119E3, 1}, {0x11A00, 0x11A00, 1},
    {0x11A0B, 0x11A32, 1}, {0x11A3A, 0x11A3A, 1}, {0x11A50, 0x11A50, 1}, {0x11A5C, 0x11A89, 1},
    {0x11A9D, 0x11A9D, 1}, {0x11AB0, 0x11AF8, 1}, {0x11BC0, 0x11BE0, 1}, {0x11BF0, 0x11BF9, 2},
    {0x11C00, 0x11C08, 1}, {0x11C0A, 0x11C2E, 1}, {0x11C40, 0x11C40, 1}, {0x11C50, 0x11C6C, 2},
    {0x11C72, 0x11C8F, 1}, {0x11D00, 0x11D06, 1}, {0x11D08, 0x11D09, 1}, {0x11D0B, 0x11D30, 1},
    {0x11D46, 0x11D46, 1}, {0x11D50, 0x11D59, 2}, {0x11D60, 0x11D65, 1}, {0x11D67, 0x11D68, 1},
    {0x11D6A, 0x11D89, 1}, {0x11D98, 0x11D98, 1}, {0x11DA0, 0x11DA9, 2}, {0x11EE0, 0x11EF2, 1},
    {0x11F02, 0x11F02, 1}, {0x11F04, 0x11F10, 1}, {0x11F12, 0x11F33, 1}, {0x11F50, 0x11F59, 2},
    {0x11FB0, 0x11FB0, 1}, {0x11FC0, 0x11FD4, 2}, {0x12000, 0x12399, 1}, {0x12400, 0x1246E, 2},
    {0x12480, 0x12543, 1}, {0x12F90, 0x12FF0, 1}, {0x13000, 0x1342F, 1}, {0x13441, 0x13446, 1},
    {0x13460, 0x143FA, 1}, {0x14400, 0x14646, 1}, {0x16100, 0x1611D, 1}, {0x16130, 0x16139, 2},
    {0x16800, 0x16A38, 1}, {0x16A40, 0x16A5E, 1}, {0x16A60, 0x16A69, 2}, {0x16A70, 0x16ABE, 1},
    {0x16AC0, 0x16AC9, 2}, {0x16AD0, 0x16AED, 1}, {0x16B00, 0x16B2F, 1}, {0x16B40, 0x16B43, 1},
    {0x16B50, 0x16B59, 2}, {0x16B5B, 0x16B61, 2}, {0x16B63, 0x16B77, 1}, {0x16B7D, 0x16B8F, 1},
    {0x16D40, 0x16D6C, 1}, {0x16D70, 0x16D79, 2}, {0x16E40, 0x16E7F, 1}, {0x16E80, 0x16E96, 2},
    {0x16F00, 0x16F4A, 1}, {0x16F50, 0x16F50, 1}, {0x16F93, 0x16F9F, 1}, {0x16FE0, 0x16FE1, 1},
    {0x16FE3, 0x16FE3, 1}, {0x17000, 0x187F7, 1}, {0x18800, 0x18CD5, 1}, {0x18CFF, 0x18D08, 1},
    {0x1AFF0, 0x1AFF3, 1}, {0x1AFF5, 0x1AFFB, 1}, {0x1AFFD, 0x1AFFE, 1}, {0x1B000, 0x1B122, 1},
    {0x1B132, 0x1B132, 1}, {0x1B150, 0x1B152, 1}, {0x1B155, 0x1B155, 1}, {0x1B164, 0x1B167, 1},
    {0x1B170, 0x1B2FB, 1}, {0x1BC00, 0x1BC6A, 1}, {0x1BC70, 0x1BC7C, 1}, {0x1BC80, 0x1BC88, 1},
    {0x1BC90, 0x1BC99, 1}, {0x1CCF0, 0x1CCF9, 2}, {0x1D2C0, 0x1D2D3, 2}, {0x1D2E0, 0x1D2F3, 2},
    {0x1D360, 0x1D378, 2}, {0x1D400, 0x1D454, 1}, {0x1D456, 0x1D49C, 1}, {0x1D49E, 0x1D49F, 1},
    {0x1D4A2, 0x1D4A2, 1}, {0x1D4A5, 0x1D4A6, 1}, {0x1D4A9, 0x1D4AC, 1}, {0x1D4AE, 0x1D4B9, 1},
    {0x1D4BB, 0x1D4BB, 1}, {0x1D4BD, 0x1D4C3, 1}, {0x1D4C5, 0x1D505, 1}, {0x1D507, 0x1D50A, 1},
    {0x1D50D, 0x1D514, 1}, {0x1D516, 0x1D51C, 1}, {0x1D51E, 0x1D539, 1}, {0x1D53B, 0x1D53E, 1},
    {0x1D540, 0x1D544, 1}, {0x1D546, 0x1D546, 1}, {0x1D54A, 0x1D550, 1}, {0x1D552, 0x1D6A5, 1},
    {0x1D6A8, 0x1D6C0, 1}, {0x1D6C2, 0x1D6DA, 1}, {0x1D6DC, 0x1D6FA, 1}, {0x1D6FC, 0x1D714, 1},
    {0x1D716, 0x1D734, 1}, {0x1D736, 0x1D74E, 1}, {0x1D750, 0x1D76E, 1}, {0x1D770, 0x1D788, 1},
    {0x1D78A, 0x1D7A8, 1}, {0x1D7AA, 0x1D7C2, 1}, {0x1D7C4, 0x1D7CB, 1}, {0x1D7CE, 0x1D7FF, 2},
    {0x1DF00, 0x1DF1E, 1}, {0x1DF25, 0x1DF2A, 1}, {0x1E030, 0x1E06D, 1}, {0x1E100, 0x1E12C, 1},
    {0x1E137, 0x1E13D, 1}, {0x1E140, 0x1E149, 2}, {0x1E14E, 0x1E14E, 1}, {0x1E290, 0x1E2AD, 1},
    {0x1E2C0, 0x1E2EB, 1}, {0x1E2F0, 0x1E2F9, 2}, {0x1E4D0, 0x1E4EB, 1}, {0x1E4F0, 0x1E4F9, 2},
    {0x1E5D0, 0x1E5ED, 1}, {0x1E5F0, 0x1E5F0, 1}, {0x1E5F1, 0x1E5FA, 2}, {0x1E7E0, 0x1E7E6, 1},
    {0x1E7E8, 0x1E7EB, 1}, {0x1E7ED, 0x1E7EE, 1}, {0x1E7F0, 0x1E7FE, 1}, {0x1E800, 0x1E8C4, 1},
    {0x1E8C7, 0x1E8CF, 2}, {0x1E900, 0x1E943, 1}, {0x1E94B, 0x1E94B, 1}, {0x1E950, 0x1E959, 2},
    {0x1EC71, 0x1ECAB, 2}, {0x1ECAD, 0x1ECAF, 2}, {0x1ECB1, 0x1ECB4, 2}, {0x1ED01, 0x1ED2D, 2},
    {0x1ED2F, 0x1ED3D, 2}, {0x1EE00, 0x1EE03, 1}, {0x1EE05, 0x1EE1F, 1}, {0x1EE21, 0x1EE22, 1},
    {0x1EE24, 0x1EE24, 1}, {0x1EE27, 0x1EE27, 1}, {0x1EE29, 0x1EE32, 1}, {0x1EE34, 0x1EE37, 1},
    {0x1EE39, 0x1EE39, 1}, {0x1EE3B, 0x1EE3B, 1}, {0x1EE42, 0x1EE42, 1}, {0x1EE47, 0x1EE47, 1},
    {0x1EE49, 0x1EE49, 1}, {0x1EE4B, 0x1EE4B, 1}, {0x1EE4D, 0x1EE4F, 1}, {0x1EE51, 0x1EE52, 1},
    {0x1EE54, 0x1EE54, 1}, {0x1EE57, 0x1EE57, 1}, {0x1EE59, 0x1EE59, 1}, {0x1EE5B, 0x1EE5B, 1},
    {0x1EE5D, 0x1EE5D, 1}, {0x1EE5F, 0x1EE5F, 1}, {0x1EE61, 0x1EE62, 1}, {0x1EE64, 0x1EE64, 1},
    {0x1EE67, 0x1EE6A, 1}, {0x1EE6C, 0x1EE72, 1}, {0x1EE74, 0x1EE77, 1}, {0x1EE79, 0x1EE7C, 1},
    {0x1EE7E, 0x1EE7E, 1}, {0x1EE80, 0x1EE89, 1}, {0x1EE8B, 0x1EE9B, 1}, {0x1EEA1, 0x1EEA3, 1},
    {0x1EEA5, 0x1EEA9, 1}, {0x1EEAB, 0x1EEBB, 1}, {0x1F100, 0x1F10C, 2}, {0x1FBF0, 0x1FBF9, 2},
    {0x20000, 0x2A6DF, 1}, {0x2A700, 0x2B739, 1}, {0x2B740, 0x2B81D, 1}, {0x2B820, 0x2CEA1, 1},
    {0x2CEB0, 0x2EBE0, 1}, {0x2EBF0, 0x2EE5D, 1}, {0x2F800, 0x2FA1D, 1}, {0x30000, 0x3134A, 1},
    {0x31350, 0x323AF, 1},
};
const LowerRun kLowerRuns[] = {
    {0x41, 0x5A, 32, 1},         {0xC0, 0xD6, 32, 1},         {0xD8, 0xDE, 32, 1},
    {0x100, 0x12E, 1, 2},        {0x132, 0x136, 1, 2},        {0x139, 0x147, 1, 2},
    {0x14A, 0x176, 1, 2},        {0x178, 0x178, -121, 1},     {0x179, 0x17D, 1, 2},
    {0x181, 0x181, 210, 1},      {0x182, 0x184, 1, 2},        {0x186, 0x186, 206, 1},
    {0x187, 0x187, 1, 1},        {0x189, 0x18A, 205, 1},      {0x18B, 0x18B, 1, 1},
    {0x18E, 0x18E, 79, 1},       {0x18F, 0x18F, 202, 1},      {0x190, 0x190, 203, 1},
    {0x191, 0x191, 1, 1},        {0x193, 0x193, 205, 1},      {0x194, 0x194, 207, 1},
    {0x196, 0x196, 211, 1},      {0x197, 0x197, 209, 1},      {0x198, 0x198, 1, 1},
    {0x19C, 0x19C, 211, 1},      {0x19D, 0x19D, 213, 1},      {0x19F, 0x19F, 214, 1},
    {0x1A0, 0x1A4, 1, 2},        {0x1A6, 0x1A6, 218, 1},      {0x1A7, 0x1A7, 1, 1},
    {0x1A9, 0x1A9, 218, 1},      {0x1AC, 0x1AC, 1, 1},        {0x1AE, 0x1AE, 218, 1},
    {0x1AF, 0x1AF, 1, 1},        {0x1B1, 0x1B2, 217, 1},      {0x1B3, 0x1B5, 1, 2},
    {0x1B7, 0x1B7, 219, 1},      {0x1B8, 0x1B8, 1, 1},        {0x1BC, 0x1BC, 1, 1},
    {0x1C4, 0x1C4, 2, 1},        {0x1C5, 0x1C5, 1, 1},        {0x1C7, 0x1C7, 2, 1},
    {0x1C8, 0x1C8, 1, 1},        {0x1CA, 0x1CA, 2, 1},        {0x1CB, 0x1DB, 1, 2},
    {0x1DE, 0x1EE, 1, 2},        {0x1F1, 0x1F1, 2, 1},        {0x1F2, 0x1F4, 1, 2},
    {0x1F6, 0x1F6, -97, 1},      {0x1F7, 0x1F7, -56, 1},      {0x1F8, 0x21E, 1, 2},
    {0x220, 0x220, -130, 1},     {0x222, 0x232, 1, 2},        {0x23A, 0x23A, 10795, 1},
    {0x23B, 0x23B, 1, 1},        {0x23D, 0x23D, -163, 1},     {0x23E, 0x23E, 10792, 1},
    {0x241, 0x241, 1, 1},        {0x243, 0x243, -195, 1},     {0x244, 0x244, 69, 1},
    {0x245, 0x245, 71, 1},       {0x246, 0x24E, 1, 2},        {0x370, 0x372, 1, 2},
    {0x376, 0x376, 1, 1},        {0x37F, 0x37F, 116, 1},      {0x386, 0x386, 38, 1},
    {0x388, 0x38A, 37, 1},       {0x38C, 0x38C, 64, 1},       {0x38E, 0x38F, 63, 1},
    {0x391, 0x3A1, 32, 1},       {0x3A3, 0x3AB, 32, 1},       {0x3CF, 0x3CF, 8, 1},
    {0x3D8, 0x3EE, 1, 2},        {0x3F4, 0x3F4, -60, 1},      {0x3F7, 0x3F7, 1, 1},
    {0x3F9, 0x3F9, -7, 1},       {0x3FA, 0x3FA, 1, 1},        {0x3FD, 0x3FF, -130, 1},
    {0x400, 0x40F, 80, 1},       {0x410, 0x42F, 32, 1},       {0x460, 0x480, 1, 2},
    {0x48A, 0x4BE, 1, 2},        {0x4C0, 0x4C0, 15, 1},       {0x4C1, 0x4CD, 1, 2},
    {0x4D0, 0x52E, 1, 2},        {0x531, 0x556, 48, 1},       {0x10A0, 0x10C5, 7264, 1},
    {0x10C7, 0x10C7, 7264, 1},   {0x10CD, 0x10CD, 7264, 1},   {0x13A0, 0x13EF, 38864, 1},
    {0x13F0, 0x13F5, 8, 1},      {0x1C89, 0x1C89, 1, 1},      {0x1C90, 0x1CBA, -3008, 1},
    {0x1CBD, 0x1CBF, -3008, 1},  {0x1E00, 0x1E94, 1, 2},      {0x1E9E, 0x1E9E, -7615, 1},
    {0x1EA0, 0x1EFE, 1, 2},      {0x1F08, 0x1F0F, -8, 1},     {0x1F18, 0x1F1D, -8, 1},
    {0x1F28, 0x1F2F, -8, 1},     {0x1F38, 0x1F3F, -8, 1},     {0x1F48, 0x1F4D, -8, 1},
    {0x1F59, 0x1F5F, -8, 2},     {0x1F68, 0x1F6F, -8, 1},     {0x1F88, 0x1F8F, -8, 1},
    {0x1F98, 0x1F9F, -8, 1},     {0x1FA8, 0x1FAF, -8, 1},     {0x1FB8, 0x1FB9, -8, 1},
    {0x1FBA, 0x1FBB, -74, 1},    {0x1FBC, 0x1FBC, -9, 1},     {0x1FC8, 0x1FCB, -86, 1},
    {0x1FCC, 0x1FCC, -9, 1},     {0x1FD8, 0x1FD9, -8, 1},     {0x1FDA, 0x1FDB, -100, 1},
    {0x1FE8, 0x1FE9, -8, 1},     {0x1FEA, 0x1FEB, -112, 1},   {0x1FEC, 0x1FEC, -7, 1},
    {0x1FF8, 0x1FF9, -128, 1},   {0x1FFA, 0x1FFB, -126, 1},   {0x1FFC, 0x1FFC, -9, 1},
    {0x2126, 0x2126, -7517, 1},  {0x212A, 0x212A, -8383, 1},  {0x212B, 0x212B, -8262, 1},
    {0x2132, 0x2132, 28, 1},     {0x2160, 0x216F, 16, 1},     {0x2183, 0x2183, 1, 1},
    {0x24B6, 0x24CF, 26, 1},     {0x2C00, 0x2C2F, 48, 1},     {0x2C60, 0x2C60, 1, 1},
    {0x2C62, 0x2C62, -10743, 1}, {0x2C63, 0x2C63, -3814, 1},  {0x2C64, 0x2C64, -10727, 1},
    {0x2C67, 0x2C6B, 1, 2},      {0x2C6D, 0x2C6D, -10780, 1}, {0x2C6E, 0x2C6E, -10749, 1},
    {0x2C6F, 0x2C6F, -10783, 1}, {0x2C70, 0x2C70, -10782, 1}, {0x2C72, 0x2C72, 1, 1},
    {0x2C75, 0x2C75, 1, 1},      {0x2C7E, 0x2C7F, -10815, 1}, {0x2C80, 0x2CE2, 1, 2},
    {0x2CEB, 0x2CED, 1, 2},      {0x2CF2, 0x2CF2, 1, 1},      {0xA640, 0xA66C, 1, 2},
    {0xA680, 0xA69A, 1, 2},      {0xA722, 0xA72E, 1, 2},      {0xA732, 0xA76E, 1, 2},
    {0xA779, 0xA77B, 1, 2},      {0xA77D, 0xA77D, -35332, 1}, {0xA77E, 0xA786, 1, 2},
    {0xA78B, 0xA78B, 1, 1},      {0xA78D, 0xA78D, -42280, 1}, {0xA790, 0xA792, 1, 2},
    {0xA796, 0xA7A8, 1, 2},      {0xA7AA, 0xA7AA, -42308, 1}, {0xA7AB, 0xA7AB, -42319, 1},
    {0xA7AC, 0xA7AC, -42315, 1}, {0xA7AD, 0xA7AD, -42305, 1}, {0xA7AE, 0xA7AE, -42308, 1},
    {0xA7B0, 0xA7B0, -42258, 1}, {0xA7B1, 0xA7B1, -42282, 1}, {0xA7B2, 0xA7B2, -42261, 1},
    {0xA7B3, 0xA7B3, 928, 1},    {0xA7B4, 0xA7C2, 1, 2},      {0xA7C4, 0xA7C4, -48, 1},
    {0xA7C5, 0xA7C5, -42307, 1}, {0xA7C6, 0xA7C6, -35384, 1}, {0xA7C7, 0xA7C9, 1, 2},
    {0xA7CB, 0xA7CB, -42343, 1}, {0xA7CC, 0xA7DA, 1, 2},      {0xA7DC, 0xA7DC, -42561, 1},
    {0xA7F5, 0xA7F5, 1, 1},      {0xFF21, 0xFF3A, 32, 1},     {0x10400, 0x10427, 40, 1},
    {0x104B0, 0x104D3, 40, 1},   {0x10570, 0x1057A, 39, 1},   {0x1057C, 0x1058A, 39, 1},
    {0x1058C, 0x10592, 39, 1},   {0x10594, 0x10595, 39, 1},   {0x10C80, 0x10CB2, 64, 1},
    {0x10D50, 0x10D65, 32, 1},   {0x118A0, 0x118BF, 32, 1},   {0x16E40, 0x16E5F, 32, 1},
    {0x16EA0, 0x16EB8, 27, 1},   {0x1E900, 0x1E921, 34, 1},
};

CharClass char_class(char32_t c) {
  if (c < 0x80) {  // ASCII fast path
    if ((c | 0x20) >= U'a' && (c | 0x20) <= U'z') return CharClass::letter;
    return c >= U'0' && c <= U'9' ? CharClass::number : CharClass::other;
  }
  const auto* end = std::end(kLetterNumber);
  const auto* it = std::upper_bound(std::begin(kLetterNumber), end, c,
                                    [](char32_t v, const CharRange& r) { return v < r.lo; });
  if (it == std::begin(kLetterNumber)) return CharClass::other;
  --it;
  if (c > it->hi) return CharClass::other;
  return it->cls == 1 ? CharClass::letter : CharClass::number;
}

void append_lower(char32_t c, std::u32string& out) {
  if (c < 0x80) {
    out.push_back(c >= U'A' && c <= U'Z' ? c + 32 : c);
    return;
  }
  if (c == 0x130) {  // LATIN CAPITAL LETTER I WITH DOT ABOVE: the one two-code-point lowercase
    out.push_back(U'i');
    out.push_back(0x307);
    return;
  }
  const auto* it = std::upper_bound(std::begin(kLowerRuns), std::end(kLowerRuns), c,
                                    [](char32_t v, const LowerRun& r) { return v < r.lo; });
  if (it != std::begin(kLowerRuns)) {
    --it;
    if (c <= it->hi && (c - it->lo) % static_cast<char32_t>(it->stride) == 0) {
      out.push_back(static_cast<char32_t>(static_cast<int64_t>(c) + it->delta));
      return;
    }
  }
  out.push_back(c);
}

}  // namespace

}  // namespace kiln::pipelines::text
