// diffusers' Attention module (attention_processor.py, AttnProcessor2_0) for self- and
// cross-attention: to_q/to_k/to_v/to_out.0, optional group norm on the input, optional q/k
// norms (SD3/Flux qk-norm), optional residual connection and output rescale (VAE mid block).
// Joint (MMDiT/Flux double-stream) attention is built from the same pieces in the family files.
#pragma once

#include <optional>

#include "kiln/pipelines/nn/layers.hpp"

namespace kiln::pipelines::nn {

enum class QkNorm { none, layer_norm, rms_norm };

struct AttentionConfig {
  int64_t query_dim = 0;
  int64_t cross_attention_dim = 0;  // 0: self-attention (keys from the query input)
  int heads = 8;
  int64_t dim_head = 64;
  int64_t out_dim = 0;  // 0: query_dim
  bool bias = false;     // q/k/v projections
  bool out_bias = true;
  int norm_num_groups = 0;  // > 0: GroupNorm on the input (VAE mid-block attention)
  float norm_eps = 1e-5f;
  QkNorm qk_norm = QkNorm::none;
  float qk_norm_eps = 1e-6f;
  bool residual_connection = false;
  float rescale_output_factor = 1.f;
};

struct Attention : Module {
  AttentionConfig cfg;
  Linear to_q, to_k, to_v, to_out;
  std::optional<GroupNorm> group_norm;
  std::optional<LayerNorm> norm_q_ln, norm_k_ln;
  std::optional<RMSNorm> norm_q_rms, norm_k_rms;

  Attention() = default;
  explicit Attention(const AttentionConfig& c);
  void visit_params(ParamVisitor& v) override;

  int64_t inner_dim() const { return cfg.dim_head * cfg.heads; }
  // x: (B, L, query_dim) or (B, C, H, W) (flattened to tokens and restored);
  // context: (B, S, cross_attention_dim) or undefined for self-attention;
  // mask: optional, broadcastable to (B, heads, L, S) (bool keep / additive f32).
  Tensor operator()(const Tensor& x, const Tensor& context = {}, const Tensor& mask = {}) const;

  // (B, L, heads*dim_head) -> (B, heads, L, dim_head), and back.
  Tensor split_heads(const Tensor& t) const;
  Tensor merge_heads(const Tensor& t) const;
  Tensor norm_q(const Tensor& q) const;  // identity when qk_norm is none; q is (B, H, L, D)
  Tensor norm_k(const Tensor& k) const;
};

enum class FeedForwardAct { geglu, gelu, gelu_tanh, swiglu };

// diffusers FeedForward: net.0 (GELU/GEGLU with its .proj Linear), net.1 dropout, net.2 Linear.
struct FeedForward : Module {
  int64_t dim = 0, inner = 0, dim_out = 0;
  FeedForwardAct act = FeedForwardAct::geglu;
  Linear proj, out;
  FeedForward() = default;
  FeedForward(int64_t dim, int64_t dim_out, int64_t inner_dim, FeedForwardAct act, bool bias = true);
  void visit_params(ParamVisitor& v) override;
  Tensor operator()(const Tensor& x) const;
};

}  // namespace kiln::pipelines::nn
