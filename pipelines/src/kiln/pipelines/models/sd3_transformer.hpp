// SD3Transformer2DModel: the MMDiT denoiser of Stable Diffusion 3 / 3.5 (medium, large, turbo).
// Image tokens and text tokens keep separate weights but attend jointly; SD3.5 adds qk RMS-norm
// and, in SD3.5-medium's first 13 blocks, a second image-only self-attention ("dual attention",
// SD35AdaLayerNormZeroX + attn2). The module tree mirrors the diffusers checkpoint, so parameter
// names are diffusers keys ("transformer_blocks.0.attn.add_q_proj.weight").
// Ref: diffusers 0.42.1 src/diffusers/models/transformers/transformer_sd3.py
//      (SD3Transformer2DModel), attention.py (JointTransformerBlock), attention_processor.py
//      (Attention, JointAttnProcessor2_0), normalization.py (AdaLayerNormZero,
//      SD35AdaLayerNormZeroX, AdaLayerNormContinuous), embeddings.py (PatchEmbed,
//      get_2d_sincos_pos_embed, CombinedTimestepTextProjEmbeddings, PixArtAlphaTextProjection).
//
//   auto mmdit = models::SD3Transformer2DModel::load("sd3.5/transformer");
//   Tensor v = mmdit.forward(latents, text_states, pooled, t);  // flow-matching velocity
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "kiln/io/diffusers.hpp"
#include "kiln/pipelines/nn/attention.hpp"
#include "kiln/pipelines/nn/embeddings.hpp"

namespace kiln::pipelines::models {

struct SD3TransformerConfig {
  int64_t sample_size = 128;  // latent side the base position grid is scaled to
  int64_t patch_size = 2;
  int64_t in_channels = 16;
  int num_layers = 18;
  int64_t attention_head_dim = 64;
  int num_attention_heads = 18;
  int64_t joint_attention_dim = 4096;     // text encoder states (CLIP-L ++ CLIP-G padded, T5)
  int64_t caption_projection_dim = 1152;  // must equal inner_dim (the blocks are square)
  int64_t pooled_projection_dim = 2048;
  int64_t out_channels = 16;
  // Side of the stored sincos grid latents are cropped from; 0 (config null): no cropping, the
  // grid is computed per input size (diffusers' non-persistent buffer).
  int64_t pos_embed_max_size = 96;
  std::vector<int> dual_attention_layers;  // blocks with attn2 (SD3.5-medium: 0..12)
  nn::QkNorm qk_norm = nn::QkNorm::none;   // config "rms_norm" (SD3.5) / "layer_norm" / null

  int64_t inner_dim() const { return attention_head_dim * num_attention_heads; }
  bool dual_attention(int layer) const;
  // diffusers' defaults for absent keys; format_error naming the file and key for an unknown
  // qk_norm, inconsistent sizes or out-of-range dual_attention_layers.
  static SD3TransformerConfig from_json(const io::ComponentConfig& c);
  void validate(const std::string& context) const;
};

// The building blocks, in their own namespace: the Flux family has its own AdaLN variants.
namespace sd3 {

// get_2d_sincos_pos_embed(embed_dim, (grid_h, grid_w), base_size, interpolation_scale 1) as a
// (grid_h * grid_w, embed_dim) f32 tensor: token (i, j) = [sincos(x_j) | sincos(y_i)], positions
// arange(n) / (n / base_size) in f32, frequencies and sin/cos in f64 (as diffusers).
Tensor sincos_pos_embed_2d(int64_t embed_dim, int64_t grid_h, int64_t grid_w, int64_t base_size);

// PatchEmbed with SD3 cropping: proj (Conv2d k = s = patch) + the centre crop of pos_embed.
struct PatchEmbed : io::Module {
  int64_t patch = 2, dim = 0, max_size = 0, base_size = 0;
  nn::Conv proj;
  Tensor pos_embed;  // (1, max_size^2, dim) persistent buffer; computed when a file lacks it
  PatchEmbed() = default;
  explicit PatchEmbed(const SD3TransformerConfig& c);
  void visit_params(io::ParamVisitor& v) override;
  // Position embedding for an h x w token grid: (1, h*w, dim).
  Tensor positions(int64_t h, int64_t w) const;
  // (B, C, H, W) -> (B, H/p * W/p, dim) tokens in row-major patch order.
  Tensor operator()(const Tensor& x) const;
};

// CombinedTimestepTextProjEmbeddings: timestep_embedder(sincos_256(t)) + text_embedder(pooled).
struct TimeTextEmbed : io::Module {
  nn::TimestepEmbedding timestep_embedder;  // 256 -> D -> D, silu
  nn::TimestepEmbedding text_embedder;      // PixArtAlphaTextProjection: pooled -> D -> D, silu
  TimeTextEmbed() = default;
  TimeTextEmbed(int64_t dim, int64_t pooled_dim);
  void visit_params(io::ParamVisitor& v) override;
  Tensor operator()(const Tensor& timestep, const Tensor& pooled) const;  // -> (B, D)
};

// AdaLayerNormZero (6 chunks) and SD35AdaLayerNormZeroX (9 chunks): linear(silu(temb)) split into
// shift/scale/gate triples; LayerNorm without affine, eps 1e-6.
struct AdaNormZero : io::Module {
  int64_t dim = 0;
  int chunks = 6;
  nn::Linear linear;  // (chunks * D, D)
  AdaNormZero() = default;
  AdaNormZero(int64_t dim, int chunks);
  void visit_params(io::ParamVisitor& v) override;
  struct Out {
    Tensor x;   // norm(x) * (1 + scale_msa) + shift_msa
    Tensor x2;  // norm(x) * (1 + scale_msa2) + shift_msa2 (9 chunks only)
    Tensor gate_msa, shift_mlp, scale_mlp, gate_mlp, gate_msa2;  // (B, 1, D) views
  };
  Out operator()(const Tensor& x, const Tensor& temb) const;
};

// AdaLayerNormContinuous(elementwise_affine=False, eps 1e-6): norm(x) * (1 + scale) + shift,
// with (scale, shift) = linear(silu(cond)).chunk(2) in that order.
struct AdaNormContinuous : io::Module {
  int64_t dim = 0;
  nn::Linear linear;  // (2 * D, D)
  AdaNormContinuous() = default;
  explicit AdaNormContinuous(int64_t dim);
  void visit_params(io::ParamVisitor& v) override;
  Tensor operator()(const Tensor& x, const Tensor& cond) const;
};

// diffusers Attention(added_kv_proj_dim=dim) with JointAttnProcessor2_0: the image stream uses
// to_q/to_k/to_v/to_out.0 (+ norm_q/norm_k), the text stream add_{q,k,v}_proj/to_add_out
// (+ norm_added_q/k); one softmax over [image tokens, text tokens]. context_pre_only (the last
// block) has no to_add_out and returns no text output.
struct JointAttention : io::Module {
  nn::Attention image;  // to_q, to_k, to_v, to_out.0, norm_q, norm_k (same key level)
  nn::Linear add_q_proj, add_k_proj, add_v_proj, to_add_out;
  std::optional<nn::LayerNorm> norm_added_q_ln, norm_added_k_ln;
  std::optional<nn::RMSNorm> norm_added_q_rms, norm_added_k_rms;
  bool context_pre_only = false;
  JointAttention() = default;
  JointAttention(const nn::AttentionConfig& c, bool context_pre_only);
  void visit_params(io::ParamVisitor& v) override;
  // x (B, L, D), ctx (B, S, D) -> {(B, L, D), (B, S, D) or undefined when context_pre_only}.
  std::pair<Tensor, Tensor> operator()(const Tensor& x, const Tensor& ctx) const;

 private:
  Tensor norm_added(const Tensor& t, bool is_q) const;  // (B, S, H, Dh), identity without qk norm
};

// JointTransformerBlock: adaLN-zero modulated joint attention and gelu-tanh MLPs per stream.
struct JointTransformerBlock : io::Module {
  int64_t dim = 0;
  bool context_pre_only = false, use_dual_attention = false;
  AdaNormZero norm1, norm1_context;            // norm1_context: 6 chunks unless context_pre_only
  AdaNormContinuous norm1_context_continuous;  // context_pre_only: same key "norm1_context"
  JointAttention attn;
  nn::Attention attn2;  // dual attention only: image self-attention
  nn::FeedForward ff, ff_context;
  JointTransformerBlock() = default;
  JointTransformerBlock(const SD3TransformerConfig& c, int layer);
  void visit_params(io::ParamVisitor& v) override;
  // x (B, L, D), ctx (B, S, D), temb (B, D) -> {x', ctx'} (ctx' undefined when context_pre_only).
  std::pair<Tensor, Tensor> operator()(const Tensor& x, const Tensor& ctx,
                                       const Tensor& temb) const;
};

}  // namespace sd3

struct SD3ForwardOptions {
  // Block indices to bypass (SD3.5 skip-layer guidance, diffusers' skip_layers).
  std::span<const int> skip_layers;
};

class SD3Transformer2DModel : public io::Module {
 public:
  SD3Transformer2DModel() = default;
  explicit SD3Transformer2DModel(const SD3TransformerConfig& cfg);

  // `component_dir`/config.json + open_weights(component_dir); f16/bf16/fp8 weights become f32;
  // every key must be used (io::bind). pos_embed.pos_embed is computed when the file lacks it.
  static SD3Transformer2DModel load(const std::filesystem::path& component_dir);

  void visit_params(io::ParamVisitor& v) override;

  // hidden_states (B, in_channels, H, W) f32 with H, W multiples of patch_size and H/p, W/p <=
  // pos_embed_max_size; encoder_hidden_states (B, S, joint_attention_dim); pooled_projections
  // (B, pooled_projection_dim); timestep (B) or (1) (broadcast), in [0, 1000) for SD3's
  // flow-matching scheduler. -> (B, out_channels, H, W). Bad shapes throw invalid_argument.
  Tensor forward(const Tensor& hidden_states, const Tensor& encoder_hidden_states,
                 const Tensor& pooled_projections, const Tensor& timestep,
                 const SD3ForwardOptions& opt = {}) const;

  const SD3TransformerConfig& config() const { return cfg_; }

  // Public for inspection and tests; the names mirror the checkpoint.
  sd3::PatchEmbed pos_embed;
  sd3::TimeTextEmbed time_text_embed;
  nn::Linear context_embedder;  // joint_attention_dim -> caption_projection_dim
  std::vector<sd3::JointTransformerBlock> transformer_blocks;
  sd3::AdaNormContinuous norm_out;
  nn::Linear proj_out;  // D -> patch^2 * out_channels

 private:
  void check_inputs(const Tensor& x, const Tensor& ctx, const Tensor& pooled,
                    const Tensor& t) const;
  SD3TransformerConfig cfg_;
};

}  // namespace kiln::pipelines::models
