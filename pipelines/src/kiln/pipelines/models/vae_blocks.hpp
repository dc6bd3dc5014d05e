// The building blocks of AutoencoderKL's Encoder and Decoder, as diffusers names them:
// ResnetBlock2D without a time embedding, Downsample2D (asymmetric pad), Upsample2D (nearest x2
// then conv), DownEncoderBlock2D, UpDecoderBlock2D and UNetMidBlock2D (resnet, [attention,
// resnet]). They live in their own namespace: the U-Net family has a ResnetBlock2D of its own
// (with time embedding) in models/unet_blocks.*.
//
// Ref: diffusers 0.42 models/resnet.py (ResnetBlock2D), downsampling.py (Downsample2D),
//      upsampling.py (Upsample2D), unets/unet_2d_blocks.py (DownEncoderBlock2D,
//      UpDecoderBlock2D, UNetMidBlock2D), autoencoders/vae.py (Encoder, Decoder).
#pragma once

#include <optional>
#include <vector>

#include "kiln/pipelines/nn/attention.hpp"
#include "kiln/pipelines/nn/layers.hpp"

namespace kiln::pipelines::models::vae {

using io::Module;
using io::ParamVisitor;

// Every norm in the VAE uses eps 1e-6 (vae.py passes resnet_eps=1e-6 everywhere).
constexpr float kNormEps = 1e-6f;

// norm1 -> silu -> conv1 -> norm2 -> silu -> conv2, plus the input (through a 1x1
// conv_shortcut when the channel count changes). output_scale_factor is 1 in the VAE.
struct ResnetBlock2D : Module {
  nn::GroupNorm norm1, norm2;
  nn::Conv conv1, conv2;
  std::optional<nn::Conv> conv_shortcut;

  ResnetBlock2D() = default;
  ResnetBlock2D(int64_t cin, int64_t cout, int groups);
  void visit_params(ParamVisitor& v) override;
  Tensor operator()(const Tensor& x) const;  // (B, cin, H, W) -> (B, cout, H, W)
};

// Conv 3x3 stride 2 after F.pad(x, (0, 1, 0, 1)) (downsample_padding=0 in the encoder); the
// pad is folded into the conv as pad_hi = 1 on both spatial dims, which adds the same zeros.
struct Downsample2D : Module {
  nn::Conv conv;
  Downsample2D() = default;
  explicit Downsample2D(int64_t channels);
  void visit_params(ParamVisitor& v) override;
  Tensor operator()(const Tensor& x) const;  // (B, C, H, W) -> (B, C, floor(H/2), floor(W/2))
};

// F.interpolate(scale_factor=2, mode="nearest") then conv 3x3 padding 1.
struct Upsample2D : Module {
  nn::Conv conv;
  Upsample2D() = default;
  explicit Upsample2D(int64_t channels);
  void visit_params(ParamVisitor& v) override;
  Tensor operator()(const Tensor& x) const;  // (B, C, H, W) -> (B, C, 2H, 2W)
};

struct DownEncoderBlock2D : Module {
  std::vector<ResnetBlock2D> resnets;
  std::optional<Downsample2D> downsampler;  // key "downsamplers.0"
  DownEncoderBlock2D() = default;
  DownEncoderBlock2D(int64_t cin, int64_t cout, int layers, int groups, bool add_downsample);
  void visit_params(ParamVisitor& v) override;
  Tensor operator()(const Tensor& x) const;
};

struct UpDecoderBlock2D : Module {
  std::vector<ResnetBlock2D> resnets;
  std::optional<Upsample2D> upsampler;  // key "upsamplers.0"
  UpDecoderBlock2D() = default;
  UpDecoderBlock2D(int64_t cin, int64_t cout, int layers, int groups, bool add_upsample);
  void visit_params(ParamVisitor& v) override;
  Tensor operator()(const Tensor& x) const;
};

// resnets.0, then (attentions.0, resnets.1): one attention layer (num_layers=1 in vae.py), a
// single head of dim C with a GroupNorm on its input and a residual connection.
struct UNetMidBlock2D : Module {
  std::vector<ResnetBlock2D> resnets;
  std::optional<nn::Attention> attention;  // absent when mid_block_add_attention is false
  UNetMidBlock2D() = default;
  UNetMidBlock2D(int64_t channels, int groups, bool add_attention);
  void visit_params(ParamVisitor& v) override;
  Tensor operator()(const Tensor& x) const;
};

// Shared by Encoder and Decoder: in/out channels are the module's own (the Decoder's input is the
// latent).
struct CoderConfig {
  int64_t in_channels = 3;
  int64_t out_channels = 4;  // Encoder: latent channels (conv_out gives 2x: mean, logvar)
  std::vector<int64_t> block_out_channels{64};
  int layers_per_block = 1;
  int norm_num_groups = 32;
  bool mid_block_add_attention = true;
};

// Ref: vae.py Encoder (double_z=True).
struct Encoder : Module {
  CoderConfig cfg;
  nn::Conv conv_in, conv_out;
  std::vector<DownEncoderBlock2D> down_blocks;
  UNetMidBlock2D mid_block;
  nn::GroupNorm conv_norm_out;

  Encoder() = default;
  explicit Encoder(const CoderConfig& c);
  void visit_params(ParamVisitor& v) override;
  // (B, in_channels, H, W) -> (B, 2*out_channels, H/f, W/f), f = 2^(blocks-1) (floors on
  // sizes that are not multiples; callers validate).
  Tensor operator()(const Tensor& x) const;
};

// Ref: vae.py Decoder (norm_type "group"); up blocks have layers_per_block + 1 resnets.
struct Decoder : Module {
  CoderConfig cfg;
  nn::Conv conv_in, conv_out;
  UNetMidBlock2D mid_block;
  std::vector<UpDecoderBlock2D> up_blocks;
  nn::GroupNorm conv_norm_out;

  Decoder() = default;
  explicit Decoder(const CoderConfig& c);
  void visit_params(ParamVisitor& v) override;
  Tensor operator()(const Tensor& z) const;  // (B, latent, h, w) -> (B, out, h*f, w*f)
};

}  // namespace kiln::pipelines::models::vae
