#include "kiln/pipelines/models/unet_blocks.hpp"

#include <string>

// Ref: diffusers 0.42.1 — see unet_blocks.hpp for the files each block follows.

namespace kiln::pipelines::models::unet {

namespace {

std::string idx(const char* list, size_t i) {
  return std::string(list) + "." + std::to_string(i);
}

// (B, C, H, W) -> (B, H*W, C) contiguous, and back.
Tensor to_tokens(const Tensor& x) {
  const int64_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  return x.permute({0, 2, 3, 1}).reshape({B, H * W, C});
}

Tensor to_spatial(const Tensor& t, int64_t H, int64_t W) {
  const int64_t B = t.size(0), C = t.size(2);
  return t.view({B, H, W, C}).permute({0, 3, 1, 2}).contiguous();
}

}  // namespace

// ---------------------------------------------------------------- ResnetBlock2D

ResnetBlock2D::ResnetBlock2D(int64_t in_channels, int64_t out_channels, int64_t temb_channels,
                             int groups, float eps, float output_scale_factor)
    : in_channels(in_channels),
      out_channels(out_channels),
      output_scale_factor(output_scale_factor),
      norm1(groups, in_channels, eps),
      norm2(groups, out_channels, eps),
      conv1(2, in_channels, out_channels, 3, 1, 1),
      conv2(2, out_channels, out_channels, 3, 1, 1),
      time_emb_proj(temb_channels, out_channels) {
  KILN_ARG(in_channels % groups == 0 && out_channels % groups == 0, "unet.ResnetBlock2D",
           "norm_num_groups ", groups, " does not divide the channels ", in_channels, " -> ",
           out_channels);
  if (in_channels != out_channels) conv_shortcut.emplace(2, in_channels, out_channels, 1, 1, 0);
}

void ResnetBlock2D::visit_params(ParamVisitor& v) {
  v.child("norm1", norm1);
  v.child("conv1", conv1);
  v.child("time_emb_proj", time_emb_proj);
  v.child("norm2", norm2);
  v.child("conv2", conv2);
  if (conv_shortcut) v.child("conv_shortcut", *conv_shortcut);
}

Tensor ResnetBlock2D::operator()(const Tensor& x, const Tensor& temb_act) const {
  KILN_ARG(x.ndim() == 4 && x.size(1) == in_channels, "unet.ResnetBlock2D", "input ",
           x.shape().str(), " does not have ", in_channels, " channels");
  Tensor h = conv1(ops::silu(norm1(x)));                  // (B, out, H, W)
  Tensor t = time_emb_proj(temb_act);                     // (B, out)
  h = ops::add(h, t.view({t.size(0), t.size(1), 1, 1}));  // broadcast over H, W
  h = conv2(ops::silu(norm2(h)));                         // dropout is identity at inference
  Tensor shortcut = conv_shortcut ? (*conv_shortcut)(x) : x;
  Tensor out = ops::add(shortcut, h);
  if (output_scale_factor != 1.f) out = ops::scale(out, 1.f / output_scale_factor);
  return out;
}

// ---------------------------------------------------------------- BasicTransformerBlock

BasicTransformerBlock::BasicTransformerBlock(int64_t dim, int heads, int64_t head_dim,
                                             int64_t cross_attention_dim)
    : norm1(dim), norm2(dim), norm3(dim) {  // nn.LayerNorm(dim, eps=1e-5), affine
  nn::AttentionConfig a;
  a.query_dim = dim;
  a.heads = heads;
  a.dim_head = head_dim;
  a.bias = false;  // attention_bias=False in Transformer2DModel
  a.out_bias = true;
  attn1 = nn::Attention(a);
  a.cross_attention_dim = cross_attention_dim;
  attn2 = nn::Attention(a);
  ff = nn::FeedForward(dim, dim, 4 * dim, nn::FeedForwardAct::geglu);  // mult 4
}

void BasicTransformerBlock::visit_params(ParamVisitor& v) {
  v.child("norm1", norm1);
  v.child("attn1", attn1);
  v.child("norm2", norm2);
  v.child("attn2", attn2);
  v.child("norm3", norm3);
  v.child("ff", ff);
}

Tensor BasicTransformerBlock::operator()(const Tensor& x_in, const Tensor& context) const {
  Tensor x = ops::add(attn1(norm1(x_in)), x_in);  // self-attention, (B, L, dim)
  x = ops::add(attn2(norm2(x), context), x);      // cross-attention over (B, S, D)
  return ops::add(ff(norm3(x)), x);
}

// ---------------------------------------------------------------- Transformer2DModel

Transformer2DModel::Transformer2DModel(int heads, int64_t head_dim, int64_t channels,
                                       int num_layers, int64_t cross_attention_dim, int norm_groups,
                                       bool linear_projection)
    : channels(channels),
      inner_dim(heads * head_dim),
      linear_projection(linear_projection),
      norm(norm_groups, channels, 1e-6f) {
  if (linear_projection) {
    proj_in_linear = nn::Linear(channels, inner_dim);
    proj_out_linear = nn::Linear(inner_dim, channels);
  } else {
    proj_in_conv = nn::Conv(2, channels, inner_dim, 1);
    proj_out_conv = nn::Conv(2, inner_dim, channels, 1);
  }
  for (int i = 0; i < num_layers; ++i)
    transformer_blocks.emplace_back(inner_dim, heads, head_dim, cross_attention_dim);
}

void Transformer2DModel::visit_params(ParamVisitor& v) {
  v.child("norm", norm);
  if (linear_projection) {
    v.child("proj_in", proj_in_linear);
  } else {
    v.child("proj_in", proj_in_conv);
  }
  for (size_t i = 0; i < transformer_blocks.size(); ++i)
    v.child(idx("transformer_blocks", i), transformer_blocks[i]);
  if (linear_projection) {
    v.child("proj_out", proj_out_linear);
  } else {
    v.child("proj_out", proj_out_conv);
  }
}

Tensor Transformer2DModel::operator()(const Tensor& x, const Tensor& context) const {
  KILN_ARG(x.ndim() == 4 && x.size(1) == channels, "unet.Transformer2DModel", "input ",
           x.shape().str(), " does not have ", channels, " channels");
  const int64_t H = x.size(2), W = x.size(3);
  Tensor h = norm(x);  // (B, C, H, W)
  // proj_in: the 1x1 conv runs before the move to tokens, the Linear after it (as diffusers).
  h = linear_projection ? proj_in_linear(to_tokens(h)) : to_tokens(proj_in_conv(h));
  for (const auto& block : transformer_blocks) h = block(h, context);  // (B, H*W, inner)
  h = linear_projection ? to_spatial(proj_out_linear(h), H, W) : proj_out_conv(to_spatial(h, H, W));
  return ops::add(h, x);  // (B, C, H, W)
}

// ---------------------------------------------------------------- Down/Upsample2D

Downsample2D::Downsample2D(int64_t channels, int padding)
    : padding(padding), conv(2, channels, channels, 3, 2, padding) {}

void Downsample2D::visit_params(ParamVisitor& v) {
  v.child("conv", conv);
}

Tensor Downsample2D::operator()(const Tensor& x) const {
  if (padding == 0) {
    const int64_t pads[] = {0, 1, 0, 1};  // (W lo, W hi, H lo, H hi)
    return conv(ops::pad(x, pads));
  }
  return conv(x);
}

Upsample2D::Upsample2D(int64_t channels) : conv(2, channels, channels, 3, 1, 1) {}

void Upsample2D::visit_params(ParamVisitor& v) {
  v.child("conv", conv);
}

Tensor Upsample2D::operator()(const Tensor& x, std::span<const int64_t> size) const {
  const int64_t twice[] = {2 * x.size(2), 2 * x.size(3)};
  // nearest: F.interpolate(scale_factor=2) picks src = floor(dst / 2), the same as size=2x.
  return conv(ops::interpolate(x, size.empty() ? std::span<const int64_t>(twice) : size,
                               ops::InterpMode::nearest));
}

// ---------------------------------------------------------------- blocks

namespace {

Transformer2DModel make_transformer(const BlockSpec& s, int64_t channels, int layer) {
  KILN_ARG(s.heads > 0 && channels % s.heads == 0, "unet", "attention heads ", s.heads,
           " do not divide the block's ", channels, " channels");
  return Transformer2DModel(s.heads, channels / s.heads, channels, s.transformer_layers.at(layer),
                            s.cross_attention_dim, s.groups, s.linear_projection);
}

}  // namespace

DownBlock::DownBlock(const BlockSpec& s, int64_t in_channels, int64_t out_channels,
                     bool add_downsample, int downsample_padding)
    : spec(s) {
  for (int i = 0; i < s.num_layers; ++i) {
    resnets.emplace_back(i == 0 ? in_channels : out_channels, out_channels, s.temb_channels,
                         s.groups, s.eps);
    if (s.cross_attention) attentions.push_back(make_transformer(s, out_channels, i));
  }
  if (add_downsample) downsampler.emplace(out_channels, downsample_padding);
}

void DownBlock::visit_params(ParamVisitor& v) {
  for (size_t i = 0; i < resnets.size(); ++i) v.child(idx("resnets", i), resnets[i]);
  for (size_t i = 0; i < attentions.size(); ++i) v.child(idx("attentions", i), attentions[i]);
  if (downsampler) v.child("downsamplers.0", *downsampler);
}

Tensor DownBlock::operator()(const Tensor& x_in, const Tensor& temb_act, const Tensor& context,
                             std::vector<Tensor>& skips) const {
  Tensor x = x_in;
  for (size_t i = 0; i < resnets.size(); ++i) {
    x = resnets[i](x, temb_act);
    if (!attentions.empty()) x = attentions[i](x, context);
    skips.push_back(x);
  }
  if (downsampler) {
    x = (*downsampler)(x);
    skips.push_back(x);
  }
  return x;
}

MidBlock::MidBlock(const BlockSpec& s, int64_t channels, float output_scale_factor) {
  resnets.emplace_back(channels, channels, s.temb_channels, s.groups, s.eps, output_scale_factor);
  for (int i = 0; i < s.num_layers; ++i) {
    attentions.push_back(make_transformer(s, channels, i));
    resnets.emplace_back(channels, channels, s.temb_channels, s.groups, s.eps, output_scale_factor);
  }
}

void MidBlock::visit_params(ParamVisitor& v) {
  for (size_t i = 0; i < attentions.size(); ++i) v.child(idx("attentions", i), attentions[i]);
  for (size_t i = 0; i < resnets.size(); ++i) v.child(idx("resnets", i), resnets[i]);
}

Tensor MidBlock::operator()(const Tensor& x_in, const Tensor& temb_act,
                            const Tensor& context) const {
  Tensor x = resnets[0](x_in, temb_act);
  for (size_t i = 0; i < attentions.size(); ++i) {
    x = attentions[i](x, context);
    x = resnets[i + 1](x, temb_act);
  }
  return x;
}

UpBlock::UpBlock(const BlockSpec& s, int64_t in_channels, int64_t prev_channels,
                 int64_t out_channels, bool add_upsample)
    : spec(s) {
  for (int i = 0; i < s.num_layers; ++i) {
    // The last resnet consumes the skip from the level above (in_channels); the others skips
    // of this level (out_channels).
    const int64_t skip = i == s.num_layers - 1 ? in_channels : out_channels;
    const int64_t input = i == 0 ? prev_channels : out_channels;
    resnets.emplace_back(input + skip, out_channels, s.temb_channels, s.groups, s.eps);
    if (s.cross_attention) attentions.push_back(make_transformer(s, out_channels, i));
  }
  if (add_upsample) upsampler.emplace(out_channels);
}

void UpBlock::visit_params(ParamVisitor& v) {
  for (size_t i = 0; i < resnets.size(); ++i) v.child(idx("resnets", i), resnets[i]);
  for (size_t i = 0; i < attentions.size(); ++i) v.child(idx("attentions", i), attentions[i]);
  if (upsampler) v.child("upsamplers.0", *upsampler);
}

Tensor UpBlock::operator()(const Tensor& x_in, const Tensor& temb_act, const Tensor& context,
                           std::vector<Tensor>& skips,
                           std::span<const int64_t> upsample_size) const {
  Tensor x = x_in;
  for (size_t i = 0; i < resnets.size(); ++i) {
    KILN_CHECK(!skips.empty(), Status::internal, "unet.UpBlock", "ran out of skip connections");
    const Tensor skip = std::move(skips.back());
    skips.pop_back();
    const Tensor parts[] = {x, skip};
    x = resnets[i](ops::concat(parts, 1), temb_act);  // (B, C_x + C_skip, H, W) -> (B, out, H, W)
    if (!attentions.empty()) x = attentions[i](x, context);
  }
  if (upsampler) x = (*upsampler)(x, upsample_size);
  return x;
}

}  // namespace kiln::pipelines::models::unet
