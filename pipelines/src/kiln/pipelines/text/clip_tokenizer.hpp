// CLIP byte-level BPE tokenizer reading the tokenizer/ folder of a diffusers pipeline
// (vocab.json + merges.txt, and tokenizer_config.json / special_tokens_map.json when present).
//
// Matches transformers' CLIPTokenizer of the installed version (5.x: a `tokenizers` BPE model)
// token for token, including on punctuation, digits, emoji, non-Latin scripts and literal special
// tokens in the prompt. The steps, in order:
//  1. Special tokens (bos, eos, unk, pad and any `added_tokens_decoder` entry) are matched
//     verbatim and case-sensitively in the raw text (leftmost, then longest) and map straight to
//     their ids; the text between them is processed separately. SDXL's second tokenizer pads
//     with "!", which is therefore a special token: "hi!" gives [.., "hi", "!"(id of "!")] and
//     not "!</w>" — exactly what transformers does with that folder.
//  2. Normalization: every run of whitespace (onig's \s: U+0009-000D, U+0020, U+0085, U+00A0,
//     U+1680, U+2000-200A, U+2028, U+2029, U+202F, U+205F, U+3000) becomes one space, then each
//     code point is lowercased on its own (Rust char::to_lowercase, so "İ" -> "i̇", Σ -> σ
//     everywhere). transformers also applies Unicode NFC first; kiln does not (no Unicode
//     composition tables here), so a prompt typed in decomposed form (NFD, e.g. "e" + U+0301)
//     or with singleton canonical equivalents (U+2126 OHM SIGN, U+212A KELVIN SIGN, CJK
//     compatibility ideographs) tokenizes differently. Text already in NFC — nearly everything
//     typed or pasted — is unaffected. transformers' CLIPTokenizer no longer has an ftfy path
//     (4.x used ftfy.fix_text when installed); this matches the non-ftfy behaviour.
//  3. Pre-tokenization with CLIP's pattern, implemented by hand:
//       <|startoftext|> | <|endoftext|> | 's|'t|'re|'ve|'m|'ll|'d | \p{L}+ | \p{N} |
//       [^\s\p{L}\p{N}]+
//     tried in that order at each position; whitespace between pieces is dropped. Digits come
//     one at a time. A lowercase special-token literal that reaches this step (e.g. typed as
//     "<|ENDOFTEXT|>") is further split by the ByteLevel pre-tokenizer's GPT-2 pattern into
//     "<|", "endoftext", "|>", as transformers does. \p{L} and \p{N} come from tables probed
//     from the installed `tokenizers` (Unicode 16; tests/reference/make_clip_fixtures.py
//     --unicode-tables).
//  4. Each piece's UTF-8 bytes go through bytes_to_unicode, "</w>" is appended to the last
//     symbol, and the merges of merges.txt are applied lowest rank first (all non-overlapping
//     occurrences of the best pair, left to right, until no pair has a rank). Pieces are cached.
//     A symbol missing from the vocabulary becomes the unk token.
//
// Invalid UTF-8 in the input is read as U+FFFD per bad byte (Python's errors="replace").
// Ref: transformers models/clip/tokenization_clip.py (CLIPTokenizer),
//      tokenizers src/models/bpe/model.rs (BPE with end_of_word_suffix),
//      openai/CLIP clip/simple_tokenizer.py (bytes_to_unicode, bpe).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace kiln::pipelines::text {

// Names of the special tokens; the ids are looked up in the vocabulary.
struct ClipSpecialTokens {
  std::string bos = "<|startoftext|>";
  std::string eos = "<|endoftext|>";
  std::string unk = "<|endoftext|>";
  std::string pad = "<|endoftext|>";  // SDXL's tokenizer_2: "!"
  std::vector<std::string> extra;     // other added special tokens (added_tokens_decoder)
};

class ClipTokenizer {
 public:
  // Reads `dir`/vocab.json and `dir`/merges.txt -- or, when there is no vocab.json, the BPE model
  // of `dir`/tokenizer.json (what transformers 5 saves) -- and the special tokens and
  // model_max_length from `dir`/tokenizer_config.json (then special_tokens_map.json for keys it
  // lacks) when present. Errors name the file: not_found (missing vocab/merges), format_error
  // (invalid JSON, a merge that is not two symbols, a merge or special token missing from the
  // vocabulary), unsupported (a tokenizer.json model that is not CLIP's BPE).
  static ClipTokenizer load(const std::filesystem::path& dir);
  static ClipTokenizer from_files(const std::filesystem::path& vocab_json,
                                  const std::filesystem::path& merges_txt,
                                  ClipSpecialTokens specials = {}, int64_t model_max_length = 77);
  static ClipTokenizer from_tokenizer_json(const std::filesystem::path& tokenizer_json,
                                           ClipSpecialTokens specials = {},
                                           int64_t model_max_length = 77);

  ClipTokenizer(ClipTokenizer&&) noexcept;
  ClipTokenizer& operator=(ClipTokenizer&&) noexcept;
  ~ClipTokenizer();

  // The tokens of `text` without bos/eos/padding (transformers: add_special_tokens=False).
  std::vector<int32_t> tokenize(std::string_view text) const;
  // tokenizer(text).input_ids: bos + tokens + eos, no truncation (may exceed max_length).
  std::vector<int32_t> encode(std::string_view text) const;
  // diffusers: tokenizer(text, padding="max_length", max_length=N, truncation=True).input_ids,
  // i.e. bos + the first N-2 tokens + eos, padded with pad to N. max_length 0: model_max_length.
  std::vector<int32_t> encode_padded(std::string_view text, int64_t max_length = 0) const;
  // Long prompts the A1111/ComfyUI way: the tokens in pieces of model_max_length-2 (75), each
  // wrapped in bos/eos and padded to model_max_length; an empty prompt gives one chunk.
  std::vector<std::vector<int32_t>> encode_chunks(std::string_view text) const;
  // bos + tokens + eos + pad up to `length` (model_max_length when 0); tokens.size() must be at
  // most length-2.
  std::vector<int32_t> wrap(std::span<const int32_t> tokens, int64_t length = 0) const;

  int32_t bos_id() const { return bos_; }
  int32_t eos_id() const { return eos_; }
  int32_t pad_id() const { return pad_; }
  int32_t unk_id() const { return unk_; }
  int64_t model_max_length() const { return max_length_; }
  size_t vocab_size() const { return id_to_token_.size(); }
  std::optional<int32_t> token_to_id(std::string_view token) const;
  const std::string& id_to_token(int32_t id) const;      // invalid_argument when out of range
  const std::string& source() const { return source_; }  // vocab.json / tokenizer.json path, for messages

 struct MergeRule;  // one "left right" rule and where it was read (defined in the .cpp)

 private:
  static ClipTokenizer build(const nlohmann::json& vocab, const std::vector<MergeRule>& merges,
                             const std::string& source, ClipSpecialTokens specials,
                             int64_t model_max_length);
  struct Cache;
  ClipTokenizer();
  void tokenize_segment(std::string_view text, std::vector<int32_t>& out) const;
  void bpe_piece(const std::string& piece, std::vector<int32_t>& out) const;

  std::unordered_map<std::string, int32_t> vocab_;
  std::vector<std::string> id_to_token_;
  std::unordered_map<std::string, int32_t> merge_rank_;    // "a b" -> rank
  std::vector<std::pair<std::string, int32_t>> specials_;  // matched in raw text
  int32_t bos_ = 0, eos_ = 0, pad_ = 0, unk_ = 0;
  int64_t max_length_ = 77;
  std::string source_;
  std::unique_ptr<Cache> cache_;  // piece -> ids, guarded by a mutex (const use is thread-safe)
};

}  // namespace kiln::pipelines::text
