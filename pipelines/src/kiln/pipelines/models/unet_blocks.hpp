// The blocks of diffusers' UNet2DConditionModel, each a Module whose keys are the diffusers ones
// ("resnets.0.norm1.weight", "attentions.0.transformer_blocks.1.attn2.to_q.weight", ...).
// Ref: diffusers 0.42.1 src/diffusers/models/resnet.py (ResnetBlock2D), downsampling.py /
//      upsampling.py (Downsample2D, Upsample2D), transformers/transformer_2d.py
//      (Transformer2DModel, continuous input), attention.py (BasicTransformerBlock, layer_norm),
//      unets/unet_2d_blocks.py (CrossAttnDownBlock2D, DownBlock2D, UNetMidBlock2DCrossAttn,
//      CrossAttnUpBlock2D, UpBlock2D).
// Only what the SD1.x/2.x/SDXL U-Nets use: time_embedding_norm "default", silu, layer_norm
// transformer blocks with GEGLU feed-forward, no only_cross_attention / dual cross attention.
// Forward functions are const; a bound model may serve concurrent requests.
#pragma once

#include <optional>
#include <span>
#include <vector>

#include "kiln/pipelines/nn/attention.hpp"
#include "kiln/pipelines/nn/layers.hpp"

namespace kiln::pipelines::models::unet {

using io::Module;
using io::ParamVisitor;

// ResnetBlock2D with a time embedding: norm1 -> silu -> conv1 -> + time_emb_proj(silu(temb))
// -> norm2 -> silu -> conv2, plus the (1x1 conv_shortcut) input, divided by output_scale_factor.
struct ResnetBlock2D : Module {
  int64_t in_channels = 0, out_channels = 0;
  float output_scale_factor = 1.f;
  nn::GroupNorm norm1, norm2;
  nn::Conv conv1, conv2;
  nn::Linear time_emb_proj;
  std::optional<nn::Conv> conv_shortcut;  // when in_channels != out_channels

  ResnetBlock2D() = default;
  ResnetBlock2D(int64_t in_channels, int64_t out_channels, int64_t temb_channels, int groups,
                float eps, float output_scale_factor = 1.f);
  void visit_params(ParamVisitor& v) override;
  // x (B, in, H, W); temb_act = silu(temb) (B, temb_channels), computed once per U-Net forward
  // (diffusers applies the same silu inside every block) -> (B, out, H, W).
  Tensor operator()(const Tensor& x, const Tensor& temb_act) const;
};

// BasicTransformerBlock, norm_type "layer_norm": self-attention, cross-attention, GEGLU FF,
// each pre-normed and residual.
struct BasicTransformerBlock : Module {
  nn::LayerNorm norm1, norm2, norm3;
  nn::Attention attn1, attn2;
  nn::FeedForward ff;

  BasicTransformerBlock() = default;
  BasicTransformerBlock(int64_t dim, int heads, int64_t head_dim, int64_t cross_attention_dim);
  void visit_params(ParamVisitor& v) override;
  // x (B, L, dim), context (B, S, cross_attention_dim) -> (B, L, dim).
  Tensor operator()(const Tensor& x, const Tensor& context) const;
};

// Transformer2DModel on continuous input: GroupNorm(eps 1e-6) -> proj_in (1x1 conv, or Linear
// with use_linear_projection) -> transformer blocks -> proj_out -> + input.
struct Transformer2DModel : Module {
  int64_t channels = 0, inner_dim = 0;
  bool linear_projection = false;
  nn::GroupNorm norm;
  nn::Linear proj_in_linear, proj_out_linear;
  nn::Conv proj_in_conv, proj_out_conv;
  std::vector<BasicTransformerBlock> transformer_blocks;

  Transformer2DModel() = default;
  Transformer2DModel(int heads, int64_t head_dim, int64_t channels, int num_layers,
                     int64_t cross_attention_dim, int norm_groups, bool linear_projection);
  void visit_params(ParamVisitor& v) override;
  // x (B, C, H, W), context (B, S, D) -> (B, C, H, W).
  Tensor operator()(const Tensor& x, const Tensor& context) const;
};

// Downsample2D(use_conv=True, name="op"): 3x3 conv, stride 2. padding 0 pads (0, 1, 0, 1) first.
struct Downsample2D : Module {
  int padding = 1;
  nn::Conv conv;
  Downsample2D() = default;
  Downsample2D(int64_t channels, int padding);
  void visit_params(ParamVisitor& v) override;
  // (B, C, H, W) -> (B, C, ceil(H/2), ceil(W/2)); floor(H/2), floor(W/2) with padding 0.
  Tensor operator()(const Tensor& x) const;
};

// Upsample2D(use_conv=True): nearest x2 (or to `size`, the skip connection's H, W) -> 3x3 conv.
struct Upsample2D : Module {
  nn::Conv conv;
  Upsample2D() = default;
  explicit Upsample2D(int64_t channels);
  void visit_params(ParamVisitor& v) override;
  // x (B, C, H, W) -> (B, C, 2H, 2W), or (B, C, size[0], size[1]) when size is given.
  Tensor operator()(const Tensor& x, std::span<const int64_t> size = {}) const;
};

// Per-block settings the U-Net resolves from its config.
struct BlockSpec {
  bool cross_attention = false;         // CrossAttn*Block2D (else Down/UpBlock2D)
  int num_layers = 1;                   // resnets (up blocks: layers_per_block + 1)
  std::vector<int> transformer_layers;  // per resnet, when cross_attention
  int heads = 1;                        // attention heads (diffusers' num_attention_heads)
  int64_t cross_attention_dim = 0;
  bool linear_projection = false;
  int groups = 32;
  float eps = 1e-5f;
  int64_t temb_channels = 0;
};

// CrossAttnDownBlock2D (cross_attention) or DownBlock2D: [resnet (+ transformer)] x num_layers,
// then an optional downsampler. Every resnet/transformer output and the downsampled result are
// skip connections for the up path.
struct DownBlock : Module {
  BlockSpec spec;
  std::vector<ResnetBlock2D> resnets;
  std::vector<Transformer2DModel> attentions;
  std::optional<Downsample2D> downsampler;

  DownBlock() = default;
  DownBlock(const BlockSpec& spec, int64_t in_channels, int64_t out_channels, bool add_downsample,
            int downsample_padding);
  void visit_params(ParamVisitor& v) override;
  // x (B, in, H, W) -> (B, out, H', W'); appends num_layers (+1) skip tensors to `skips`.
  Tensor operator()(const Tensor& x, const Tensor& temb_act, const Tensor& context,
                    std::vector<Tensor>& skips) const;
};

// UNetMidBlock2DCrossAttn: resnet, then [transformer, resnet] x num_layers (1 in diffusers).
struct MidBlock : Module {
  std::vector<ResnetBlock2D> resnets;
  std::vector<Transformer2DModel> attentions;

  MidBlock() = default;
  MidBlock(const BlockSpec& spec, int64_t channels, float output_scale_factor);
  void visit_params(ParamVisitor& v) override;
  Tensor operator()(const Tensor& x, const Tensor& temb_act, const Tensor& context) const;
};

// CrossAttnUpBlock2D (cross_attention) or UpBlock2D: [concat(skip) -> resnet (+ transformer)]
// x num_layers, then an optional upsampler.
struct UpBlock : Module {
  BlockSpec spec;
  std::vector<ResnetBlock2D> resnets;
  std::vector<Transformer2DModel> attentions;
  std::optional<Upsample2D> upsampler;

  UpBlock() = default;
  // in_channels: the channels of the deepest skip it consumes; prev_channels: of its input.
  UpBlock(const BlockSpec& spec, int64_t in_channels, int64_t prev_channels, int64_t out_channels,
          bool add_upsample);
  void visit_params(ParamVisitor& v) override;
  // Pops num_layers tensors from the back of `skips`. upsample_size: the H, W to upsample to
  // (the next skip's), or empty for x2.
  Tensor operator()(const Tensor& x, const Tensor& temb_act, const Tensor& context,
                    std::vector<Tensor>& skips, std::span<const int64_t> upsample_size) const;
};

}  // namespace kiln::pipelines::models::unet
