#include "kiln/pipelines/models/vae_blocks.hpp"

#include <string>

namespace kiln::pipelines::models::vae {

namespace {

void visit_list(ParamVisitor& v, const char* name, auto& modules) {
  for (size_t i = 0; i < modules.size(); ++i)
    v.child(std::string(name) + "." + std::to_string(i), modules[i]);
}

}  // namespace

// ---------------------------------------------------------------- ResnetBlock2D

ResnetBlock2D::ResnetBlock2D(int64_t cin, int64_t cout, int groups)
    : norm1(groups, cin, kNormEps),
      norm2(groups, cout, kNormEps),
      conv1(2, cin, cout, 3, 1, 1),
      conv2(2, cout, cout, 3, 1, 1) {
  if (cin != cout) conv_shortcut.emplace(2, cin, cout, 1, 1, 0);
}

void ResnetBlock2D::visit_params(ParamVisitor& v) {
  v.child("norm1", norm1);
  v.child("conv1", conv1);
  v.child("norm2", norm2);
  v.child("conv2", conv2);
  if (conv_shortcut) v.child("conv_shortcut", *conv_shortcut);
}

Tensor ResnetBlock2D::operator()(const Tensor& x) const {
  Tensor h = conv1(ops::silu(norm1(x)));
  h = conv2(ops::silu(norm2(h)));  // dropout is the identity at inference
  return ops::add(conv_shortcut ? (*conv_shortcut)(x) : x, h);
}

// ---------------------------------------------------------------- Downsample2D / Upsample2D

Downsample2D::Downsample2D(int64_t channels) : conv(2, channels, channels, 3, 2, 0) {
  conv.params.pad_hi = {1, 1, 0};  // == F.pad(x, (0, 1, 0, 1)) before the padding-0 conv
}

void Downsample2D::visit_params(ParamVisitor& v) {
  v.child("conv", conv);
}

Tensor Downsample2D::operator()(const Tensor& x) const {
  return conv(x);
}

Upsample2D::Upsample2D(int64_t channels) : conv(2, channels, channels, 3, 1, 1) {}

void Upsample2D::visit_params(ParamVisitor& v) {
  v.child("conv", conv);
}

Tensor Upsample2D::operator()(const Tensor& x) const {
  const int64_t size[2] = {2 * x.size(2), 2 * x.size(3)};
  return conv(ops::interpolate(x, size, ops::InterpMode::nearest));
}

// ---------------------------------------------------------------- Down / Up / Mid blocks

DownEncoderBlock2D::DownEncoderBlock2D(int64_t cin, int64_t cout, int layers, int groups,
                                       bool add_downsample) {
  for (int i = 0; i < layers; ++i) resnets.emplace_back(i == 0 ? cin : cout, cout, groups);
  if (add_downsample) downsampler.emplace(cout);
}

void DownEncoderBlock2D::visit_params(ParamVisitor& v) {
  visit_list(v, "resnets", resnets);
  if (downsampler) v.child("downsamplers.0", *downsampler);
}

Tensor DownEncoderBlock2D::operator()(const Tensor& x) const {
  Tensor h = x;
  for (const auto& r : resnets) h = r(h);
  return downsampler ? (*downsampler)(h) : h;
}

UpDecoderBlock2D::UpDecoderBlock2D(int64_t cin, int64_t cout, int layers, int groups,
                                   bool add_upsample) {
  for (int i = 0; i < layers; ++i) resnets.emplace_back(i == 0 ? cin : cout, cout, groups);
  if (add_upsample) upsampler.emplace(cout);
}

void UpDecoderBlock2D::visit_params(ParamVisitor& v) {
  visit_list(v, "resnets", resnets);
  if (upsampler) v.child("upsamplers.0", *upsampler);
}

Tensor UpDecoderBlock2D::operator()(const Tensor& x) const {
  Tensor h = x;
  for (const auto& r : resnets) h = r(h);
  return upsampler ? (*upsampler)(h) : h;
}

UNetMidBlock2D::UNetMidBlock2D(int64_t channels, int groups, bool add_attention) {
  resnets.emplace_back(channels, channels, groups);
  resnets.emplace_back(channels, channels, groups);
  if (add_attention) {
    // attention_head_dim = channels -> heads = 1; bias=True on q/k/v; attn_groups =
    // resnet_groups (resnet_time_scale_shift "default"); eps = resnet_eps.
    nn::AttentionConfig ac;
    ac.query_dim = channels;
    ac.heads = 1;
    ac.dim_head = channels;
    ac.bias = true;
    ac.out_bias = true;
    ac.norm_num_groups = groups;
    ac.norm_eps = kNormEps;
    ac.residual_connection = true;
    attention.emplace(ac);
  }
}

void UNetMidBlock2D::visit_params(ParamVisitor& v) {
  if (attention) v.child("attentions.0", *attention);
  visit_list(v, "resnets", resnets);
}

Tensor UNetMidBlock2D::operator()(const Tensor& x) const {
  Tensor h = resnets[0](x);
  if (attention) h = (*attention)(h);  // (B, C, H, W) in and out, residual included
  return resnets[1](h);
}

// ---------------------------------------------------------------- Encoder / Decoder

Encoder::Encoder(const CoderConfig& c)
    : cfg(c),
      conv_in(2, c.in_channels, c.block_out_channels.front(), 3, 1, 1),
      conv_out(2, c.block_out_channels.back(), 2 * c.out_channels, 3, 1, 1),
      mid_block(c.block_out_channels.back(), c.norm_num_groups, c.mid_block_add_attention),
      conv_norm_out(c.norm_num_groups, c.block_out_channels.back(), kNormEps) {
  const size_t n = c.block_out_channels.size();
  int64_t prev = c.block_out_channels.front();
  for (size_t i = 0; i < n; ++i) {
    const int64_t out = c.block_out_channels[i];
    down_blocks.emplace_back(prev, out, c.layers_per_block, c.norm_num_groups, i + 1 < n);
    prev = out;
  }
}

void Encoder::visit_params(ParamVisitor& v) {
  v.child("conv_in", conv_in);
  visit_list(v, "down_blocks", down_blocks);
  v.child("mid_block", mid_block);
  v.child("conv_norm_out", conv_norm_out);
  v.child("conv_out", conv_out);
}

Tensor Encoder::operator()(const Tensor& x) const {
  Tensor h = conv_in(x);                       // (B, boc[0], H, W)
  for (const auto& b : down_blocks) h = b(h);  // (B, boc[-1], H/f, W/f)
  h = mid_block(h);
  return conv_out(ops::silu(conv_norm_out(h)));  // (B, 2*latent, H/f, W/f)
}

Decoder::Decoder(const CoderConfig& c)
    : cfg(c),
      conv_in(2, c.in_channels, c.block_out_channels.back(), 3, 1, 1),
      conv_out(2, c.block_out_channels.front(), c.out_channels, 3, 1, 1),
      mid_block(c.block_out_channels.back(), c.norm_num_groups, c.mid_block_add_attention),
      conv_norm_out(c.norm_num_groups, c.block_out_channels.front(), kNormEps) {
  const size_t n = c.block_out_channels.size();
  int64_t prev = c.block_out_channels.back();
  for (size_t i = 0; i < n; ++i) {
    const int64_t out = c.block_out_channels[n - 1 - i];
    up_blocks.emplace_back(prev, out, c.layers_per_block + 1, c.norm_num_groups, i + 1 < n);
    prev = out;
  }
}

void Decoder::visit_params(ParamVisitor& v) {
  v.child("conv_in", conv_in);
  v.child("mid_block", mid_block);
  visit_list(v, "up_blocks", up_blocks);
  v.child("conv_norm_out", conv_norm_out);
  v.child("conv_out", conv_out);
}

Tensor Decoder::operator()(const Tensor& z) const {
  Tensor h = conv_in(z);  // (B, boc[-1], h, w)
  h = mid_block(h);
  for (const auto& b : up_blocks) h = b(h);      // (B, boc[0], h*f, w*f)
  return conv_out(ops::silu(conv_norm_out(h)));  // (B, out_channels, h*f, w*f)
}

}  // namespace kiln::pipelines::models::vae
