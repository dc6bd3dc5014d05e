// T5 SentencePiece tokenizer reading `spiece.model` from the tokenizer_2/ (Flux) or tokenizer_3/
// (SD3/SD3.5) folder of a diffusers pipeline, through libsentencepiece.
//
//   auto tok = text::T5Tokenizer::load(folder / "tokenizer_2");
//   auto enc = tok.encode_padded(prompt, 512);   // Flux-dev: 512; SD3 and Flux-schnell: 256
//   // enc.ids -> T5EncoderModel::forward; enc.attention_mask for encoders that take one
//
// Matches the ids of transformers' T5Tokenizer / T5TokenizerFast as diffusers' Flux and SD3
// pipelines load it (transformers 5.x: a `tokenizers` Unigram model over the same pieces and
// scores, with the model's precompiled normalizer, WhitespaceSplit + Metaspace(prepend "always")
// and "</s>" appended). libsentencepiece does the normalization and the Unigram Viterbi; kiln
// reproduces the parts where plain SentencePiece and the transformers pipeline differ:
//  1. Special tokens — <pad>, </s>, <unk> and the sentinels <extra_id_0..N-1> — are matched
//     verbatim and case-sensitively in the raw text (leftmost, then longest) and map straight to
//     their ids; the text between them is tokenized piece by piece, each piece getting its own
//     "▁" prefix ("a</s>b" -> ▁a </s> ▁b). Plain SentencePiece would spell them out.
//  2. Whitespace that the model's normalizer leaves in place (with nmt_nfkc: U+0085) splits
//     words as transformers' WhitespaceSplit does; whitespace the normalizer deletes (U+000B
//     there) joins them. Which is which is probed from the model once at load.
//  3. A literal "▁" (U+2581) in the text starts a new piece of its own and is never dropped
//     (SentencePiece strips trailing ones and doubles a leading one).
// Ids are SentencePiece's (T5: <pad> 0, </s> 1, <unk> 2); sentinel i is
// piece_count + extra_ids - 1 - i (T5: <extra_id_0> = 32099), or as listed in
// tokenizer_config.json's added_tokens_decoder.
//
// Without libsentencepiece (configured with -DKILN_SENTENCEPIECE=OFF or not installed), load()
// throws Status::unsupported naming the option.
//
// Ref: transformers models/t5/tokenization_t5.py (T5Tokenizer, 5.x),
// tokenization_utils_tokenizers.py
//      (convert_to_native_format), tokenizers src/pre_tokenizers/{whitespace,metaspace}.rs,
//      src/tokenizer/added_vocabulary.rs; sentencepiece src/normalizer.cc, src/unigram_model.cc;
//      diffusers pipelines/flux/pipeline_flux.py and
//      stable_diffusion_3/pipeline_stable_diffusion_3.py
//      (_get_t5_prompt_embeds: padding="max_length", truncation=True).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::pipelines::text {

struct T5Encoding {
  std::vector<int32_t> ids;             // (max_length): tokens, "</s>", then <pad>
  std::vector<int32_t> attention_mask;  // (max_length): 1 for tokens and "</s>", 0 for padding
  size_t length = 0;                    // tokens + "</s>" before padding
  bool truncated = false;               // tokens were dropped to fit max_length
};

class T5Tokenizer {
 public:
  // Reads `dir`/spiece.model, and `dir`/tokenizer_config.json when present (extra_ids,
  // added_tokens_decoder, pad/eos/unk token names). Errors name the file: not_found (no
  // spiece.model), io_error, format_error (not a SentencePiece model, invalid JSON, special
  // tokens missing from the model), unsupported (built without sentencepiece).
  static T5Tokenizer load(const std::filesystem::path& dir);
  // A bare spiece.model with T5's defaults: <pad>, </s>, <unk> and `extra_ids` sentinels.
  static T5Tokenizer from_file(const std::filesystem::path& spiece_model, int extra_ids = 100);

  T5Tokenizer(T5Tokenizer&&) noexcept;
  T5Tokenizer& operator=(T5Tokenizer&&) noexcept;
  ~T5Tokenizer();

  // The tokens of `text` without "</s>" (transformers: add_special_tokens=False).
  std::vector<int32_t> tokenize(std::string_view text) const;
  // tokenizer(text).input_ids: tokens + "</s>", no truncation.
  std::vector<int32_t> encode(std::string_view text) const;
  // tokenizer(text, padding="max_length", max_length=N, truncation=True): the first N-1 tokens,
  // "</s>", then <pad> up to N. max_length must be >= 1.
  T5Encoding encode_padded(std::string_view text, int64_t max_length) const;

  int32_t pad_id() const { return pad_; }
  int32_t eos_id() const { return eos_; }
  int32_t unk_id() const { return unk_; }
  // SentencePiece pieces + sentinels (T5: 32100; the encoder's embedding has 32128 rows).
  size_t vocab_size() const { return vocab_size_; }
  std::optional<int32_t> token_to_id(std::string_view token) const;
  std::string id_to_token(int32_t id) const;             // invalid_argument when out of range
  const std::string& source() const { return source_; }  // the spiece.model path

 private:
  struct Impl;
  struct Special {
    std::string text;
    int32_t id;
  };
  T5Tokenizer();
  void tokenize_segment(std::string_view text, std::vector<int32_t>& out) const;
  void tokenize_word(std::string_view word, std::vector<int32_t>& out) const;
  static T5Tokenizer open(const std::filesystem::path& spiece_model);

  std::unique_ptr<Impl> impl_;
  std::vector<Special> specials_;                     // longest first
  std::vector<std::pair<char32_t, int>> whitespace_;  // code point -> WsAction (see .cpp)
  int32_t pad_ = 0, eos_ = 1, unk_ = 2, space_piece_ = -1;
  size_t vocab_size_ = 0;
  std::string source_;
};

}  // namespace kiln::pipelines::text
