// T5 encoder: transformers' T5EncoderModel (the encoder T5Stack), used as text_encoder_2 by Flux
// and text_encoder_3 by SD3/SD3.5 (T5 v1.1 XXL: d_model 4096, 24 layers, 64 heads, d_kv 64,
// d_ff 10240, gated-gelu, vocab 32128).
//
//   auto t5 = models::T5EncoderModel::load(folder / "text_encoder_2");
//   auto enc = tok.encode_padded(prompt, 512);
//   Tensor h = t5.forward(ids_tensor);            // (B, L, d_model); Flux/SD3 pass no mask
//
// Per block: x += o(attention(q, k, v, scores + position_bias + mask)) on T5LayerNorm(x), then
// x += wo(act(wi_0 n) * wi_1 n) (gated, v1.1) or wo(act(wi n)) (original T5, "relu") on
// T5LayerNorm(x); after the last block final_layer_norm. T5LayerNorm is an RMS norm (no mean,
// no bias); attention scores are NOT scaled by 1/sqrt(d_kv); the relative position bias
// (bidirectional buckets) lives in block 0's attention and is shared by all blocks.
//
// Module tree = transformers' keys: shared.weight, encoder.block.N.layer.0.SelfAttention.{q,k,v,o}
// .weight, encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight,
// encoder.block.N.layer.0.layer_norm.weight, encoder.block.N.layer.1.DenseReluDense.{wi_0,wi_1,wo}
// .weight (or wi), encoder.block.N.layer.1.layer_norm.weight, encoder.final_layer_norm.weight.
// The encoder's embed_tokens is tied to shared: transformers 5.x saves only shared.weight, 4.x
// (and the Flux/SD3 hub folders) both keys with equal values; load() accepts either or both
// (a lone encoder.embed_tokens.weight is taken as shared.weight).
//
// Ref: transformers models/t5/modeling_t5.py (T5LayerNorm, T5DenseActDense, T5DenseGatedActDense,
// T5Attention._relative_position_bucket / compute_bias, T5Block, T5Stack, T5EncoderModel),
// configuration_t5.py (feed_forward_proj parsing).
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "kiln/io/diffusers.hpp"
#include "kiln/pipelines/nn/embeddings.hpp"
#include "kiln/pipelines/nn/layers.hpp"

namespace kiln::pipelines::models {

struct T5Config {
  int64_t vocab_size = 32128;
  int64_t d_model = 512;
  int64_t d_kv = 64;
  int64_t d_ff = 2048;
  int num_layers = 6;
  int num_heads = 8;
  int relative_attention_num_buckets = 32;
  int relative_attention_max_distance = 128;
  float layer_norm_epsilon = 1e-6f;
  // feed_forward_proj "relu" (original T5) / "gated-gelu" (v1.1: gelu_new = tanh GELU) /
  // "[gated-]ACT" with ACT one of relu, gelu, gelu_new, gelu_pytorch_tanh, silu, swish.
  bool gated = false;
  nn::Act act = nn::Act::relu;

  // From a T5Config config.json (transformers' defaults for absent keys); format_error naming
  // the file and key for an unknown feed_forward_proj, a decoder config or bad sizes.
  static T5Config from(const io::ComponentConfig& c);
  void validate(const std::string& context) const;
};

// T5Attention._relative_position_bucket(relative_position, bidirectional=True, ...), with the
// same float32 steps as torch so that the log-spaced bucket edges agree exactly.
int32_t t5_relative_position_bucket(int64_t relative_position, int num_buckets, int max_distance);

struct T5SelfAttention : io::Module {
  int heads = 0;
  int64_t d_model = 0, d_kv = 0;
  int num_buckets = 0;  // > 0: owns relative_attention_bias (block 0)
  nn::Linear q, k, v, o;
  Tensor relative_attention_bias;  // (num_buckets, heads)
  T5SelfAttention() = default;
  T5SelfAttention(const T5Config& c, bool has_relative_bias);
  void visit_params(io::ParamVisitor& vis) override;
  // x (B, L, d_model), bias (1 or B, heads, L, L) additive f32 -> (B, L, d_model)
  Tensor operator()(const Tensor& x, const Tensor& bias) const;
};

struct T5Block : io::Module {
  nn::RMSNorm attn_norm, ff_norm;  // layer.0.layer_norm, layer.1.layer_norm
  T5SelfAttention attn;            // layer.0.SelfAttention
  nn::Linear wi, wi_0, wi_1, wo;   // layer.1.DenseReluDense.*: wi (plain) or wi_0/wi_1 (gated)
  bool gated = false;
  nn::Act act = nn::Act::relu;
  T5Block() = default;
  T5Block(const T5Config& c, bool has_relative_bias);
  void visit_params(io::ParamVisitor& v) override;
  Tensor operator()(const Tensor& x, const Tensor& bias) const;  // (B, L, d_model)
};

class T5EncoderModel : public io::Module {
 public:
  T5EncoderModel() = default;
  explicit T5EncoderModel(const T5Config& cfg);

  // `component_dir`/config.json + open_weights(component_dir) (single file or sharded);
  // f16/bf16 weights become f32; every key must be used (io::bind).
  static T5EncoderModel load(const std::filesystem::path& component_dir);

  void visit_params(io::ParamVisitor& v) override;

  // ids (B, L) i64 or i32, each id < vocab_size. attention_mask optional (B, L), nonzero = keep:
  // padded keys are excluded as transformers does (adding float32's lowest value to their
  // scores). Returns last_hidden_state (B, L, d_model) f32.
  Tensor forward(const Tensor& ids, const Tensor& attention_mask = {}) const;
  // Convenience: sequences of equal length (e.g. T5Tokenizer::encode_padded(...).ids), and their
  // masks when `masks` is not empty.
  Tensor forward(std::span<const std::vector<int32_t>> ids,
                 std::span<const std::vector<int32_t>> masks = {}) const;

  // The relative position bias of block 0 for L query and key positions: (1, heads, L, L).
  Tensor position_bias(int64_t length) const;

  const T5Config& config() const { return cfg_; }

  // Public for inspection and tests; the names mirror the checkpoint.
  Tensor shared;  // (vocab_size, d_model)
  std::vector<T5Block> blocks;
  nn::RMSNorm final_layer_norm;

 private:
  T5Config cfg_;
};

}  // namespace kiln::pipelines::models
