// Prompt weighting syntax as AUTOMATIC1111's web UI reads it, and its way of applying weights to
// CLIP outputs. Off unless a prompt uses the syntax (uses_weight_syntax): a plain prompt is
// tokenized as one string, exactly as transformers does.
//
// Rules of parse_prompt_weights (Ref: AUTOMATIC1111/stable-diffusion-webui
// modules/prompt_parser.py, parse_prompt_attention; restated here, not copied):
//  - "(" opens a group that multiplies the weight of everything inside by 1.1 when closed by
//    ")"; "[" opens one that multiplies by 1/1.1 when closed by "]". Groups nest and multiply:
//    "((a))" = 1.21, "[[a]]" = 1/1.21, "([a])" = 1.1/1.1 = 1.
//  - "(text:W)" closes the innermost open "(" with the weight W instead of 1.1. W is
//    [+-]?[0-9.]+ with optional spaces around it: "(a: 1.5 )". A ":W)" with no open "(" is
//    literal text. A W that is not a number (e.g. "1.2.3") is kept as literal text (A1111
//    raises an error there).
//  - A ")" or "]" with no matching opener is literal text; openers still open at the end of
//    the prompt apply their 1.1 (or 1/1.1) to everything after them.
//  - "\(", "\)", "\[", "\]" and "\\" are the literal characters; a "\" before anything else is
//    dropped. A ":" outside the W form is literal text.
//  - "BREAK" as a whole word (with the whitespace around it removed) ends the current 75-token
//    chunk in chunked tokenization; plain (77-token) tokenization drops it.
//  - Neighbouring runs of equal weight are joined; an empty prompt is one empty run of weight 1.
//
// Tokenization (tokenize_weighted*): each run is tokenized on its own (A1111 does the same, so
// "(cat)s" gives the tokens of "cat" and "s", not of "cats") and every token carries its run's
// weight; bos, eos and padding carry 1. Chunking does not backtrack to a comma (A1111's
// comma_padding_backtrack option) and a run longer than a chunk is split at the chunk edge.
//
// apply_token_weights: z' = z * w per token, then z' *= mean(z) / mean(z') over the whole
// tensor, so the overall mean of the hidden states is kept (A1111's
// FrozenCLIPEmbedderWithCustomWordsBase.process_tokens; Ref: modules/sd_hijack_clip.py).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/core/tensor.hpp"
#include "kiln/pipelines/text/clip_tokenizer.hpp"

namespace kiln::pipelines::text {

struct PromptRun {
  std::string text;
  double weight = 1.0;
  bool is_break = false;  // a BREAK marker (text empty)
  bool operator==(const PromptRun&) const = default;
};

std::vector<PromptRun> parse_prompt_weights(std::string_view prompt);

// True when parsing changes anything: a weight other than 1, a BREAK, an escape, or a bracket
// that is consumed as syntax. False for plain text, which is then tokenized as one string.
bool uses_weight_syntax(std::string_view prompt);

struct WeightedTokens {
  std::vector<int32_t> ids;    // bos + tokens + eos + pad
  std::vector<float> weights;  // one per id
};

// diffusers-style: one sequence of max_length (model_max_length when 0), truncated.
WeightedTokens tokenize_weighted(const ClipTokenizer& tok, std::string_view prompt,
                                 int64_t max_length = 0);
// A1111/ComfyUI-style: 75-token chunks (see the header comment), BREAK honoured.
std::vector<WeightedTokens> tokenize_weighted_chunks(const ClipTokenizer& tok,
                                                     std::string_view prompt);

// hidden (B, L, D) f32, weights (B*L) in row order (B = 1: one sequence's weights) -> new tensor.
// Exact identity (a copy) when every weight is 1.
Tensor apply_token_weights(const Tensor& hidden, const std::vector<float>& weights);

}  // namespace kiln::pipelines::text
