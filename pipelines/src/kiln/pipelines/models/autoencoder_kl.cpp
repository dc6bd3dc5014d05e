#include "kiln/pipelines/models/autoencoder_kl.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "kiln/io/weight_source.hpp"

// Ref: diffusers 0.42 models/autoencoders/autoencoder_kl.py and autoencoders/vae.py.

namespace kiln::pipelines::models {

namespace {

constexpr const char* kName = "AutoencoderKL";

// A 0-dim f32 tensor on `like`'s device: the scalar operand of a broadcasting op.
Tensor scalar(float v, const Tensor& like) {
  return Tensor::full({}, v, like.device());
}

// latents_mean / latents_std as a (1, C, 1, 1) tensor that broadcasts over (B, C, h, w).
Tensor per_channel(const std::vector<double>& v, const Tensor& like) {
  std::vector<float> f(v.begin(), v.end());
  return Tensor::from_f32({1, static_cast<int64_t>(f.size()), 1, 1}, f).to(like.device());
}

// Ref: AutoencoderKL.blend_v / blend_h. Blends the last `extent` rows (dim 2) or columns
// (dim 3) of `a` into the first ones of `b`, in place:
//   b[.., y, ..] = a[.., n_a - e + y, ..] * (1 - y/e) + b[.., y, ..] * (y/e)
// with e = min(a.size(dim), b.size(dim), extent). The weights are computed in double as
// Python does and rounded to f32 as torch does for a Python scalar times an f32 tensor; the two
// products are rounded before the sum, as the two tensor ops are.
void blend(const Tensor& a, Tensor& b, int64_t extent, int dim) {
  const int64_t e = std::min({a.size(dim), b.size(dim), extent});
  if (e <= 0) return;
  const int other = dim == 2 ? 3 : 2;
  KILN_CHECK(a.size(0) == b.size(0) && a.size(1) == b.size(1) && a.size(other) == b.size(other),
             Status::internal, kName, "blending tiles ", a.shape().str(), " and ", b.shape().str());
  // The ramps are host constants of e entries (scalar math on the index, as diffusers' Python
  // loop), shaped (e, 1) to run down the rows or (e) to run along the columns.
  std::vector<float> wa(static_cast<size_t>(e)), wb(static_cast<size_t>(e));
  for (int64_t t = 0; t < e; ++t) {
    const double r = static_cast<double>(t) / static_cast<double>(e);
    wa[t] = static_cast<float>(1.0 - r);
    wb[t] = static_cast<float>(r);
  }
  const Shape ramp = dim == 2 ? Shape{e, 1} : Shape{e};
  const Tensor tail = a.narrow(dim, a.size(dim) - e, e);  // (B, C, e, W) or (B, C, H, e)
  Tensor head = b.narrow(dim, 0, e);                      // a view into b
  head.copy_from(ops::add(ops::mul(tail, Tensor::from_f32(ramp, wa).to(b.device())),
                          ops::mul(head, Tensor::from_f32(ramp, wb).to(b.device()))));
}

// Ref: AutoencoderKL._tiled_encode / tiled_decode (the same loop with the roles of pixels and
// latents swapped). Tiles of `tile` input pixels start every `overlap`; each goes through `fn`
// and is blended with its already-blended upper and left neighbours, then cropped to
// `row_limit`. Only the previous row of tiles is kept (diffusers keeps all of them); the result
// does not depend on that because a tile's blend reads only its upper and left neighbours.
template <typename Fn>
Tensor run_tiled(const Tensor& x, int64_t tile, int64_t overlap, int64_t blend_extent,
                 int64_t row_limit, Fn fn) {
  const int64_t H = x.size(2), W = x.size(3);
  std::vector<Tensor> prev_row, strips;
  for (int64_t i = 0; i < H; i += overlap) {
    std::vector<Tensor> row, cropped;
    for (int64_t j = 0; j < W; j += overlap) {
      Tensor t = fn(x.slice(2, i, i + tile).slice(3, j, j + tile).contiguous()).contiguous();
      if (i > 0) blend(prev_row[row.size()], t, blend_extent, 2);
      if (j > 0) blend(row.back(), t, blend_extent, 3);
      cropped.push_back(t.slice(2, 0, row_limit).slice(3, 0, row_limit));
      row.push_back(std::move(t));
    }
    strips.push_back(ops::concat(cropped, 3));
    prev_row = std::move(row);
  }
  return ops::concat(strips, 2);
}

}  // namespace

// ---------------------------------------------------------------- config

AutoencoderKLConfig AutoencoderKLConfig::from_json(const io::ComponentConfig& cfg) {
  const std::string ctx = cfg.file().string();
  cfg.expect_class(kName);
  AutoencoderKLConfig c;
  c.in_channels = cfg.get_int_or("in_channels", 3);
  c.out_channels = cfg.get_int_or("out_channels", 3);
  c.latent_channels = cfg.get_int_or("latent_channels", 4);
  if (cfg.has("block_out_channels")) c.block_out_channels = cfg.get_int_list("block_out_channels");
  c.layers_per_block = static_cast<int>(cfg.get_int_or("layers_per_block", 1));
  c.norm_num_groups = static_cast<int>(cfg.get_int_or("norm_num_groups", 32));
  if (cfg.has("sample_size")) {
    // An int, or [h, w] of which diffusers uses the first entry for the latent tile.
    const auto& s = cfg.json().at("sample_size");
    c.sample_size =
        s.is_array() ? cfg.get_int_list("sample_size").at(0) : cfg.get_int("sample_size");
  }
  c.scaling_factor = cfg.get_float_or("scaling_factor", 0.18215);
  if (cfg.has("shift_factor")) c.shift_factor = cfg.get_float("shift_factor");
  if (cfg.has("latents_mean")) c.latents_mean = cfg.get_float_list("latents_mean");
  if (cfg.has("latents_std")) c.latents_std = cfg.get_float_list("latents_std");
  c.use_quant_conv = cfg.get_bool_or("use_quant_conv", true);
  c.use_post_quant_conv = cfg.get_bool_or("use_post_quant_conv", true);
  c.mid_block_add_attention = cfg.get_bool_or("mid_block_add_attention", true);

  const std::string act = cfg.get_string_or("act_fn", "silu");
  KILN_CHECK(act == "silu" || act == "swish", Status::unsupported, ctx, "act_fn '", act,
             "' is not supported (silu only)");
  const size_t nblocks = c.block_out_channels.size();
  auto check_types = [&](const char* key, const char* expected) {
    if (!cfg.has(key)) {
      // diffusers' default is a single block of the expected type.
      KILN_CHECK(nblocks == 1, Status::format_error, ctx, key, " is not set (one ", expected,
                 ") but block_out_channels has ", nblocks, " entries");
      return;
    }
    const auto types = cfg.get_string_list(key);
    KILN_CHECK(types.size() == nblocks, Status::format_error, ctx, key, " has ", types.size(),
               " entries, block_out_channels ", nblocks);
    for (const auto& t : types)
      KILN_CHECK(t == expected, Status::unsupported, ctx, key, " contains '", t, "'; only ",
                 expected, " is supported");
  };
  check_types("down_block_types", "DownEncoderBlock2D");
  check_types("up_block_types", "UpDecoderBlock2D");
  c.validate(ctx.c_str());
  return c;
}

void AutoencoderKLConfig::validate(const char* context) const {
  auto bad = [&](auto&&... parts) { fail(Status::format_error, str(parts...), context); };
  if (in_channels <= 0 || out_channels <= 0 || latent_channels <= 0)
    bad("in_channels, out_channels and latent_channels must be positive (", in_channels, ", ",
        out_channels, ", ", latent_channels, ")");
  if (block_out_channels.empty()) bad("block_out_channels is empty");
  if (layers_per_block < 1) bad("layers_per_block must be >= 1, got ", layers_per_block);
  if (norm_num_groups < 1) bad("norm_num_groups must be >= 1, got ", norm_num_groups);
  for (int64_t ch : block_out_channels)
    if (ch <= 0 || ch % norm_num_groups != 0)
      bad("block_out_channels entry ", ch, " is not a positive multiple of norm_num_groups ",
          norm_num_groups);
  if (!(scaling_factor != 0.0 && std::isfinite(scaling_factor)))
    bad("scaling_factor must be finite and non-zero, got ", scaling_factor);
  if (latents_mean.empty() != latents_std.empty())
    bad("latents_mean and latents_std must be set together");
  if (!latents_mean.empty() && (static_cast<int64_t>(latents_mean.size()) != latent_channels ||
                                static_cast<int64_t>(latents_std.size()) != latent_channels))
    bad("latents_mean/latents_std have ", latents_mean.size(), "/", latents_std.size(),
        " entries, expected latent_channels = ", latent_channels);
  if (sample_size <= 0) bad("sample_size must be positive, got ", sample_size);
}

int64_t AutoencoderKLConfig::downscale_factor() const {
  return int64_t{1} << (block_out_channels.size() - 1);
}

// ---------------------------------------------------------------- LatentDist

LatentDist LatentDist::from_moments(const Tensor& moments) {
  // torch.chunk(moments, 2, dim=1); logvar = clamp(logvar, -30, 20).
  KILN_ARG(moments.ndim() == 4 && moments.size(1) % 2 == 0, kName, "moments ",
           moments.shape().str(), " are not (B, 2*C, h, w)");
  auto parts = ops::chunk(moments, 2, 1);
  LatentDist d;
  d.mean = parts[0].contiguous();
  d.logvar = ops::clamp(parts[1], -30.f, 20.f);
  return d;
}

Tensor LatentDist::std() const {
  return ops::exp(ops::scale(logvar, 0.5f));  // 0.5f * v + 0.f rounds as torch's 0.5 * logvar
}

Tensor LatentDist::sample(rng::Generator& gen) const {
  KILN_ARG(mean.defined() && logvar.defined(), kName, "sample() on an empty distribution");
  Tensor noise = rng::randn(mean.shape(), gen);  // one call over (B, C, h, w), as randn_tensor
  if (noise.device() != mean.device()) noise = noise.to(mean.device());
  return ops::add(mean, ops::mul(std(), noise));  // torch: mean + (std * sample), two roundings
}

// ---------------------------------------------------------------- AutoencoderKL

AutoencoderKL::AutoencoderKL(const AutoencoderKLConfig& cfg) : config(cfg) {
  config.validate();
  vae::CoderConfig enc;
  enc.in_channels = cfg.in_channels;
  enc.out_channels = cfg.latent_channels;
  enc.block_out_channels = cfg.block_out_channels;
  enc.layers_per_block = cfg.layers_per_block;
  enc.norm_num_groups = cfg.norm_num_groups;
  enc.mid_block_add_attention = cfg.mid_block_add_attention;
  vae::CoderConfig dec = enc;
  dec.in_channels = cfg.latent_channels;
  dec.out_channels = cfg.out_channels;
  encoder = vae::Encoder(enc);
  decoder = vae::Decoder(dec);
  const int64_t lc = cfg.latent_channels;
  if (cfg.use_quant_conv) quant_conv.emplace(2, 2 * lc, 2 * lc, 1);
  if (cfg.use_post_quant_conv) post_quant_conv.emplace(2, lc, lc, 1);
}

void AutoencoderKL::visit_params(io::ParamVisitor& v) {
  v.child("encoder", encoder);
  v.child("decoder", decoder);
  if (quant_conv) v.child("quant_conv", *quant_conv);
  if (post_quant_conv) v.child("post_quant_conv", *post_quant_conv);
}

AutoencoderKL AutoencoderKL::from_weights(const AutoencoderKLConfig& cfg,
                                          const io::WeightSource& weights,
                                          const io::KeyMap* key_map) {
  AutoencoderKL m(cfg);
  io::BindOptions opt;
  opt.float_dtype = DType::f32;  // activations are f32; f16/bf16/fp8 checkpoints widen once here
  opt.key_map = key_map;
  io::bind(m, weights, opt);
  return m;
}

AutoencoderKL AutoencoderKL::load(const std::filesystem::path& component_dir) {
  const auto cfg = io::ComponentConfig::load(component_dir / "config.json");
  const auto weights = io::open_weights(component_dir);
  return from_weights(AutoencoderKLConfig::from_json(cfg), *weights);
}

void AutoencoderKL::check_image(const Tensor& image, const char* op) const {
  ops::require_f32(op, "image", image, 4);
  const int64_t f = downscale_factor();
  KILN_ARG(image.size(1) == config.in_channels, op, "image ", image.shape().str(), " has ",
           image.size(1), " channels, expected (B, ", config.in_channels, ", H, W)");
  KILN_ARG(image.size(0) > 0 && image.size(2) > 0 && image.size(3) > 0, op, "image ",
           image.shape().str(), " is empty");
  KILN_ARG(image.size(2) % f == 0 && image.size(3) % f == 0, op, "image size ", image.size(2), "x",
           image.size(3), " is not a multiple of ", f,
           " (the VAE's downscale factor); resize or crop it first");
}

void AutoencoderKL::check_latent(const Tensor& z, const char* op) const {
  ops::require_f32(op, "latents", z, 4);
  KILN_ARG(z.size(1) == config.latent_channels, op, "latents ", z.shape().str(), " have ",
           z.size(1), " channels, expected (B, ", config.latent_channels, ", h, w)");
  KILN_ARG(z.size(0) > 0 && z.size(2) > 0 && z.size(3) > 0, op, "latents ", z.shape().str(),
           " are empty");
}

Tensor AutoencoderKL::encode_moments(const Tensor& image) const {
  Tensor h = encoder(image);                 // (B, 2*latent, H/f, W/f)
  return quant_conv ? (*quant_conv)(h) : h;  // 1x1, same shape
}

Tensor AutoencoderKL::decode_unchecked(const Tensor& z) const {
  return decoder(post_quant_conv ? (*post_quant_conv)(z) : z);  // (B, out, h*f, w*f)
}

LatentDist AutoencoderKL::encode(const Tensor& image) const {
  check_image(image, "AutoencoderKL.encode");
  return LatentDist::from_moments(encode_moments(image));
}

LatentDist AutoencoderKL::encode(const Tensor& image, const VaeTiling& tiling) const {
  const TileGeometry g = geometry(tiling, false);
  if (image.ndim() == 4 && (image.size(2) > g.sample_min || image.size(3) > g.sample_min))
    return tiled_encode(image, tiling);
  return encode(image);
}

Tensor AutoencoderKL::decode(const Tensor& z) const {
  check_latent(z, "AutoencoderKL.decode");
  return decode_unchecked(z);
}

Tensor AutoencoderKL::decode(const Tensor& z, const VaeTiling& tiling) const {
  const TileGeometry g = geometry(tiling, true);
  if (z.ndim() == 4 && (z.size(2) > g.latent_min || z.size(3) > g.latent_min))
    return tiled_decode(z, tiling);
  return decode(z);
}

AutoencoderKL::TileGeometry AutoencoderKL::geometry(const VaeTiling& t, bool for_decode) const {
  constexpr const char* op = "AutoencoderKL tiling";
  KILN_ARG(t.overlap_factor >= 0.0 && t.overlap_factor < 1.0, op, "overlap_factor ",
           t.overlap_factor, " is outside [0, 1)");
  KILN_ARG(t.sample_min_size >= 0 && t.latent_min_size >= 0, op, "negative tile size");
  TileGeometry g{};
  g.sample_min = t.sample_min_size > 0 ? t.sample_min_size : config.sample_size;
  // int(sample_size / 2 ** (len(block_out_channels) - 1)) in diffusers.
  g.latent_min = t.latent_min_size > 0 ? t.latent_min_size : g.sample_min / downscale_factor();
  KILN_ARG(g.latent_min > 0, op, "tile of ", g.sample_min, " pixels is smaller than one latent (",
           downscale_factor(), " pixels)");
  // Python int() truncation of float products, as diffusers computes them.
  const double keep = 1.0 - t.overlap_factor;
  const int64_t in_tile = for_decode ? g.latent_min : g.sample_min;
  const int64_t out_tile = for_decode ? g.sample_min : g.latent_min;
  g.overlap = static_cast<int64_t>(static_cast<double>(in_tile) * keep);
  g.blend_extent = static_cast<int64_t>(static_cast<double>(out_tile) * t.overlap_factor);
  g.row_limit = out_tile - g.blend_extent;
  KILN_ARG(g.overlap > 0, op, "tile of ", in_tile, (for_decode ? " latents" : " pixels"),
           " with overlap_factor ", t.overlap_factor, " advances by 0");
  return g;
}

LatentDist AutoencoderKL::tiled_encode(const Tensor& image, const VaeTiling& tiling) const {
  check_image(image, "AutoencoderKL.tiled_encode");
  const TileGeometry g = geometry(tiling, false);
  // Each tile: (B, 3, <=sample_min, <=sample_min) -> (B, 2*latent, <=latent_min, <=latent_min).
  Tensor moments = run_tiled(image, g.sample_min, g.overlap, g.blend_extent, g.row_limit,
                             [&](const Tensor& tile) { return encode_moments(tile); });
  return LatentDist::from_moments(moments);
}

Tensor AutoencoderKL::tiled_decode(const Tensor& z, const VaeTiling& tiling) const {
  check_latent(z, "AutoencoderKL.tiled_decode");
  const TileGeometry g = geometry(tiling, true);
  // Each tile: (B, latent, <=latent_min, <=latent_min) -> (B, out, <=sample_min, <=sample_min).
  return run_tiled(z, g.latent_min, g.overlap, g.blend_extent, g.row_limit,
                   [&](const Tensor& tile) { return decode_unchecked(tile); });
}

// ---------------------------------------------------------------- latent scaling

// Each step is one rounded f32 tensor op, in diffusers' order; a division stays a division
// (multiplying by 1/sf would round differently).
Tensor AutoencoderKL::to_latent(const Tensor& z) const {
  check_latent(z, "AutoencoderKL.to_latent");
  const float sf = static_cast<float>(config.scaling_factor);
  if (!config.latents_mean.empty()) {
    // (z - mean) * scaling_factor / std
    const Tensor t = ops::scale(ops::sub(z, per_channel(config.latents_mean, z)), sf);
    return ops::div(t, per_channel(config.latents_std, z));
  }
  if (config.shift_factor) {
    const float shift = static_cast<float>(*config.shift_factor);
    return ops::scale(ops::sub(z, scalar(shift, z)), sf);  // (z - shift) * sf
  }
  return ops::scale(z, sf);
}

Tensor AutoencoderKL::from_latent(const Tensor& latents) const {
  check_latent(latents, "AutoencoderKL.from_latent");
  const Tensor sf = scalar(static_cast<float>(config.scaling_factor), latents);
  if (!config.latents_mean.empty()) {
    // latents * std / scaling_factor + mean
    const Tensor t = ops::div(ops::mul(latents, per_channel(config.latents_std, latents)), sf);
    return ops::add(t, per_channel(config.latents_mean, latents));
  }
  if (config.shift_factor)
    return ops::add(ops::div(latents, sf),
                    scalar(static_cast<float>(*config.shift_factor), latents));
  return ops::div(latents, sf);
}

}  // namespace kiln::pipelines::models
