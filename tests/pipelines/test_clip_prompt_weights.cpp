// Prompt weighting syntax (A1111 rules, documented in text/prompt_weights.hpp): parser cases,
// when the syntax counts as used, per-token weights in plain and chunked tokenization (BREAK),
// and apply_token_weights' mean restoration.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "kiln/core/error.hpp"
#include "kiln/pipelines/text/prompt_weights.hpp"
#include "test_support.hpp"

namespace kiln::test {
namespace {

using pipelines::text::ClipTokenizer;
using pipelines::text::parse_prompt_weights;
using pipelines::text::PromptRun;
using pipelines::text::uses_weight_syntax;

std::vector<PromptRun> P(std::initializer_list<std::pair<const char*, double>> runs) {
  std::vector<PromptRun> out;
  for (const auto& [t, w] : runs) out.push_back({t, w, false});
  return out;
}

void expect_runs(const std::string& prompt, const std::vector<PromptRun>& want) {
  const auto got = parse_prompt_weights(prompt);
  ASSERT_EQ(got.size(), want.size()) << prompt;
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].text, want[i].text) << prompt << " run " << i;
    EXPECT_NEAR(got[i].weight, want[i].weight, 1e-12) << prompt << " run " << i;
    EXPECT_EQ(got[i].is_break, want[i].is_break) << prompt << " run " << i;
  }
}

TEST(PromptWeights, Parser) {
  expect_runs("a cat", P({{"a cat", 1}}));
  expect_runs("", P({{"", 1}}));
  expect_runs("(cat)", P({{"cat", 1.1}}));
  expect_runs("((cat))", P({{"cat", 1.1 * 1.1}}));
  expect_runs("[cat]", P({{"cat", 1 / 1.1}}));
  expect_runs("[[cat]]", P({{"cat", 1 / 1.1 / 1.1}}));
  expect_runs("a (cat:1.5) b", P({{"a ", 1}, {"cat", 1.5}, {" b", 1}}));
  expect_runs("(cat: 0.25 )", P({{"cat", 0.25}}));
  expect_runs("(cat:-1)", P({{"cat", -1}}));
  expect_runs("((a:1.5) b)", P({{"a", 1.5 * 1.1}, {" b", 1.1}}));
  expect_runs("([a])", P({{"a", 1.1 / 1.1}}));
  expect_runs("a (photograph:1.3) of an [astronaut] riding a ((horse))", P({{"a ", 1},
                                                                            {"photograph", 1.3},
                                                                            {" of an ", 1},
                                                                            {"astronaut", 1 / 1.1},
                                                                            {" riding a ", 1},
                                                                            {"horse", 1.1 * 1.1}}));
  // Escapes: literal brackets and backslash; a lone backslash is dropped.
  expect_runs("\\(cat\\)", P({{"(cat)", 1}}));
  expect_runs("a \\[b\\] \\\\ c\\d", P({{"a [b] \\ cd", 1}}));
  expect_runs("(a \\) b)", P({{"a ) b", 1.1}}));
  // Unmatched closers and colons are text; unclosed openers apply to the end.
  expect_runs("a) b] c:d", P({{"a) b] c:d", 1}}));
  expect_runs("a:1.2) b", P({{"a:1.2) b", 1}}));
  expect_runs("(a", P({{"a", 1.1}}));
  expect_runs("x [a", P({{"x ", 1}, {"a", 1 / 1.1}}));
  // Not a number: ":1.2.3)" is literal and the "(" stays open (A1111 raises an error).
  expect_runs("(a:1.2.3)", P({{"a:1.2.3)", 1.1}}));
  expect_runs("(a:x)", P({{"a:x", 1.1}}));
  // Equal neighbours join.
  expect_runs("(a)(b)", P({{"ab", 1.1}}));
  expect_runs("(a:1)b", P({{"ab", 1}}));
}

TEST(PromptWeights, Break) {
  const auto r = parse_prompt_weights("a cat BREAK (a dog)  BREAK\nend BREAKFAST xBREAK");
  // Empty text runs around a BREAK are kept, as A1111 does (they tokenize to nothing).
  ASSERT_EQ(r.size(), 7u);
  EXPECT_EQ(r[0], (PromptRun{"a cat", 1, false}));
  EXPECT_TRUE(r[1].is_break);
  EXPECT_EQ(r[2], (PromptRun{"", 1, false}));
  EXPECT_EQ(r[3].text, "a dog");
  EXPECT_NEAR(r[3].weight, 1.1, 1e-12);
  EXPECT_EQ(r[4], (PromptRun{"", 1, false}));
  EXPECT_TRUE(r[5].is_break);
  EXPECT_EQ(r[6], (PromptRun{"end BREAKFAST xBREAK", 1, false}));
}

TEST(PromptWeights, UsesSyntax) {
  EXPECT_FALSE(uses_weight_syntax("a photo of a cat, 8k"));
  EXPECT_FALSE(uses_weight_syntax(""));
  EXPECT_FALSE(uses_weight_syntax("smile :) ok]"));  // unmatched closers stay text
  EXPECT_TRUE(uses_weight_syntax("a (cat)"));
  EXPECT_TRUE(uses_weight_syntax("(cat:1)"));  // weight 1, but the brackets are consumed
  EXPECT_TRUE(uses_weight_syntax("\\(cat\\)"));
  EXPECT_TRUE(uses_weight_syntax("a BREAK b"));
}

const ClipTokenizer& tok() {
  static const ClipTokenizer t = ClipTokenizer::load(data_dir() / "clip" / "tokenizer");
  return t;
}

TEST(PromptWeights, TokenWeights) {
  const auto w = pipelines::text::tokenize_weighted(tok(), "a (cat:1.5) [dog]");
  ASSERT_EQ(w.ids.size(), 77u);
  ASSERT_EQ(w.weights.size(), 77u);
  std::vector<int32_t> body = tok().tokenize("a ");
  const auto cat = tok().tokenize("cat"), dog = tok().tokenize("dog");
  body.insert(body.end(), cat.begin(), cat.end());
  body.insert(body.end(), dog.begin(), dog.end());
  EXPECT_EQ(w.ids, tok().wrap(body));
  size_t k = 0;
  EXPECT_EQ(w.weights[k++], 1.f);  // bos
  for (size_t i = 0; i < tok().tokenize("a ").size(); ++i) EXPECT_EQ(w.weights[k++], 1.f);
  for (size_t i = 0; i < cat.size(); ++i) EXPECT_EQ(w.weights[k++], 1.5f);
  for (size_t i = 0; i < dog.size(); ++i) EXPECT_FLOAT_EQ(w.weights[k++], 1 / 1.1f);
  for (; k < 77; ++k) EXPECT_EQ(w.weights[k], 1.f);  // eos, padding
  // Without syntax, the ids are the tokenizer's.
  EXPECT_EQ(pipelines::text::tokenize_weighted(tok(), "a cat, 8k").ids,
            tok().encode_padded("a cat, 8k"));
}

TEST(PromptWeights, ChunksAndBreak) {
  std::string longp, plain;
  for (int i = 0; i < 80; ++i) longp += "(horse) ", plain += "horse ";
  const auto chunks = pipelines::text::tokenize_weighted_chunks(tok(), longp + "BREAK [cat]");
  const auto horse = tok().tokenize(plain);
  ASSERT_GT(horse.size(), 75u);
  ASSERT_EQ(chunks.size(), (horse.size() + 74) / 75 + 1);
  EXPECT_EQ(chunks[0].ids[1], horse[0]);
  EXPECT_NEAR(chunks[0].weights[1], 1.1f, 1e-6);
  const auto& last = chunks.back();
  EXPECT_EQ(last.ids, tok().wrap(tok().tokenize("cat")));
  EXPECT_NEAR(last.weights[1], 1 / 1.1f, 1e-6);
  // BREAK first: an empty chunk, as A1111.
  const auto b = pipelines::text::tokenize_weighted_chunks(tok(), "BREAK a");
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(b[0].ids, tok().wrap({}));
  // Plain tokenization drops BREAK; the runs on either side are tokenized apart.
  std::vector<int32_t> ab = tok().tokenize("a");
  ab.push_back(tok().tokenize("b").at(0));
  EXPECT_EQ(pipelines::text::tokenize_weighted(tok(), "a BREAK b").ids, tok().wrap(ab));
  EXPECT_EQ(pipelines::text::tokenize_weighted_chunks(tok(), "").size(), 1u);
}

TEST(PromptWeights, ApplyKeepsTheMean) {
  const Tensor z = random_tensor({2, 3, 4}, 7, 0.5f, 2.f);
  const std::vector<float> w = {1, 1.5f, 0.5f, 1, 2, 1};
  const Tensor out = pipelines::text::apply_token_weights(z, w);
  const auto a = to_doubles(z), b = to_doubles(out);
  double ma = 0, mb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    ma += a[i];
    mb += b[i];
  }
  EXPECT_NEAR(mb, ma, 1e-4 * std::abs(ma));
  double raw = 0;
  for (size_t i = 0; i < a.size(); ++i) raw += a[i] * w[i / 4];
  const double k = ma / raw;
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(b[i], a[i] * w[i / 4] * k, 1e-5);
  EXPECT_THROW(pipelines::text::apply_token_weights(z, {1, 2}), Error);
}

}  // namespace
}  // namespace kiln::test
