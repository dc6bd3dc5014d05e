// Ref: AUTOMATIC1111/stable-diffusion-webui modules/prompt_parser.py (parse_prompt_attention) and
// modules/sd_hijack_clip.py (tokenize_line, process_tokens). The rules are in the header.
#include "kiln/pipelines/text/prompt_weights.hpp"

#include <algorithm>
#include <charconv>
#include <cstdlib>

#include "kiln/core/error.hpp"
#include "kiln/ops/ops.hpp"

namespace kiln::pipelines::text {

namespace {

constexpr double kRound = 1.1;
constexpr double kSquare = 1.0 / 1.1;

bool is_space(char c) {
  return c == ' ' || (c >= '\t' && c <= '\r');
}
// Python's \w for \b: ASCII letters, digits, '_'; any non-ASCII byte counts as a word character
// (letters of other scripts; an approximation for non-letter symbols next to BREAK).
bool is_word(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u >= 0x80 || (u >= '0' && u <= '9') || ((u | 0x20) >= 'a' && (u | 0x20) <= 'z') ||
         u == '_';
}

// Splits a text run on \s*\bBREAK\b\s* into runs and BREAK markers.
void append_text(std::vector<PromptRun>& res, std::string_view text) {
  size_t from = 0, at = 0;
  while ((at = text.find("BREAK", at)) != std::string_view::npos) {
    const size_t end = at + 5;
    const bool left = at == 0 || !is_word(text[at - 1]);
    const bool right = end == text.size() || !is_word(text[end]);
    if (!left || !right) {
      at = end;
      continue;
    }
    size_t lo = at, hi = end;
    while (lo > from && is_space(text[lo - 1])) --lo;
    while (hi < text.size() && is_space(text[hi])) ++hi;
    res.push_back({std::string(text.substr(from, lo - from)), 1.0, false});
    res.push_back({"", 1.0, true});
    from = at = hi;
  }
  res.push_back({std::string(text.substr(from)), 1.0, false});
}

// ":" \s* ([+-]?[.\d]+) \s* ")" at text[i]; returns the length matched (0: no match) and the
// number's text.
size_t match_weight(std::string_view t, size_t i, std::string_view* number) {
  if (t[i] != ':') return 0;
  size_t j = i + 1;
  while (j < t.size() && is_space(t[j])) ++j;
  const size_t num = j;
  if (j < t.size() && (t[j] == '+' || t[j] == '-')) ++j;
  const size_t digits = j;
  while (j < t.size() && (t[j] == '.' || (t[j] >= '0' && t[j] <= '9'))) ++j;
  if (j == digits) return 0;
  *number = t.substr(num, j - num);
  while (j < t.size() && is_space(t[j])) ++j;
  if (j >= t.size() || t[j] != ')') return 0;
  return j + 1 - i;
}

// Python float() of [+-]?[.\d]+: false for "1.2.3", "." and the like.
bool parse_number(std::string_view s, double* out) {
  if (!s.empty() && s[0] == '+') s.remove_prefix(1);
  if (std::count(s.begin(), s.end(), '.') > 1) return false;
  if (s.empty() || s == "." || s == "-" || s == "-.") return false;
  const std::string z(s);
  char* end = nullptr;
  *out = std::strtod(z.c_str(), &end);
  return end == z.c_str() + z.size();
}

}  // namespace

std::vector<PromptRun> parse_prompt_weights(std::string_view t) {
  std::vector<PromptRun> res;
  std::vector<size_t> round, square;
  auto multiply = [&](size_t from, double m) {
    for (size_t p = from; p < res.size(); ++p) res[p].weight *= m;
  };
  size_t i = 0;
  while (i < t.size()) {
    const char c = t[i];
    if (c == '\\') {
      const bool escape =
          i + 1 < t.size() && (t[i + 1] == '(' || t[i + 1] == ')' || t[i + 1] == '[' ||
                               t[i + 1] == ']' || t[i + 1] == '\\');
      res.push_back({escape ? std::string(1, t[i + 1]) : std::string(), 1.0, false});
      i += escape ? 2 : 1;
      continue;
    }
    if (c == '(') {
      round.push_back(res.size());
      ++i;
      continue;
    }
    if (c == '[') {
      square.push_back(res.size());
      ++i;
      continue;
    }
    std::string_view number;
    if (const size_t n = match_weight(t, i, &number)) {
      double w = 0;
      if (!round.empty() && parse_number(number, &w)) {
        multiply(round.back(), w);
        round.pop_back();
      } else {
        append_text(res, t.substr(i, n));
      }
      i += n;
      continue;
    }
    if (c == ')' && !round.empty()) {
      multiply(round.back(), kRound);
      round.pop_back();
      ++i;
      continue;
    }
    if (c == ']' && !square.empty()) {
      multiply(square.back(), kSquare);
      square.pop_back();
      ++i;
      continue;
    }
    if (c == ')' || c == ']' || c == ':') {  // unmatched closer or lone colon: literal
      append_text(res, t.substr(i, 1));
      ++i;
      continue;
    }
    size_t j = i;  // [^\\()\[\]:]+
    while (j < t.size() && t[j] != '\\' && t[j] != '(' && t[j] != ')' && t[j] != '[' &&
           t[j] != ']' && t[j] != ':')
      ++j;
    append_text(res, t.substr(i, j - i));
    i = j;
  }
  for (size_t p : round) multiply(p, kRound);
  for (size_t p : square) multiply(p, kSquare);

  // Join neighbours of equal weight (never across a BREAK); drop empty text runs between.
  std::vector<PromptRun> out;
  for (auto& r : res) {
    if (!r.is_break && !out.empty() && !out.back().is_break && out.back().weight == r.weight) {
      out.back().text += r.text;
      continue;
    }
    out.push_back(std::move(r));
  }
  if (out.empty()) out.push_back({"", 1.0, false});
  return out;
}

bool uses_weight_syntax(std::string_view prompt) {
  const auto runs = parse_prompt_weights(prompt);
  return !(runs.size() == 1 && !runs[0].is_break && runs[0].weight == 1.0 &&
           runs[0].text == prompt);
}

namespace {

struct Token {
  int32_t id;
  float weight;
};

// The prompt's tokens with weights; a BREAK is a token with id -1.
std::vector<Token> weighted_tokens(const ClipTokenizer& tok, std::string_view prompt) {
  std::vector<Token> out;
  for (const auto& run : parse_prompt_weights(prompt)) {
    if (run.is_break) {
      out.push_back({-1, 1.f});
      continue;
    }
    for (int32_t id : tok.tokenize(run.text)) out.push_back({id, static_cast<float>(run.weight)});
  }
  return out;
}

WeightedTokens wrap(const ClipTokenizer& tok, const std::vector<Token>& body, int64_t length) {
  WeightedTokens w;
  std::vector<int32_t> ids;
  w.weights.assign(static_cast<size_t>(length), 1.f);
  for (size_t k = 0; k < body.size(); ++k) {
    ids.push_back(body[k].id);
    w.weights[k + 1] = body[k].weight;
  }
  w.ids = tok.wrap(ids, length);
  return w;
}

}  // namespace

WeightedTokens tokenize_weighted(const ClipTokenizer& tok, std::string_view prompt,
                                 int64_t max_length) {
  if (max_length == 0) max_length = tok.model_max_length();
  KILN_ARG(max_length >= 2, "tokenize_weighted", "max_length ", max_length, " < 2");
  std::vector<Token> body;
  for (const Token& t : weighted_tokens(tok, prompt)) {
    if (t.id >= 0 && static_cast<int64_t>(body.size()) < max_length - 2) body.push_back(t);
  }
  return wrap(tok, body, max_length);
}

std::vector<WeightedTokens> tokenize_weighted_chunks(const ClipTokenizer& tok,
                                                     std::string_view prompt) {
  const int64_t length = tok.model_max_length();
  const auto per = static_cast<size_t>(length - 2);
  std::vector<WeightedTokens> chunks;
  std::vector<Token> cur;
  for (const Token& t : weighted_tokens(tok, prompt)) {
    if (t.id < 0) {  // BREAK: close the current chunk, even an empty one (as A1111)
      chunks.push_back(wrap(tok, cur, length));
      cur.clear();
      continue;
    }
    if (cur.size() == per) {
      chunks.push_back(wrap(tok, cur, length));
      cur.clear();
    }
    cur.push_back(t);
  }
  if (!cur.empty() || chunks.empty()) chunks.push_back(wrap(tok, cur, length));
  return chunks;
}

Tensor apply_token_weights(const Tensor& hidden, const std::vector<float>& weights) {
  KILN_ARG(hidden.defined() && hidden.dtype() == DType::f32 && hidden.ndim() == 3,
           "apply_token_weights", "hidden must be (B, L, D) f32, got ",
           hidden.defined() ? hidden.str() : "undefined");
  const int64_t B = hidden.size(0), L = hidden.size(1);
  KILN_ARG(static_cast<int64_t>(weights.size()) == B * L, "apply_token_weights", weights.size(),
           " weights for ", B, " x ", L, " tokens");
  if (std::all_of(weights.begin(), weights.end(), [](float w) { return w == 1.f; }))
    return hidden.contiguous().clone();
  // z * w per token, then rescaled by mean(z) / mean(z * w): f32 0-dim means and an f32 ratio,
  // as sd_hijack_clip.py computes them in torch (ops::mean accumulates in double first).
  const Tensor zw = ops::mul(hidden, Tensor::from_f32({B, L, 1}, weights).to(hidden.device()));
  return ops::mul(zw, ops::div(ops::mean(hidden, {}), ops::mean(zw, {})));
}

}  // namespace kiln::pipelines::text
