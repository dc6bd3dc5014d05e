// AutoencoderKL: the image VAE of SD1.x/2.x, SDXL (4 latent channels), SD3/SD3.5 and Flux.1
// (16 latent channels, shift_factor). Module tree and parameter names are diffusers' keys
// (encoder.down_blocks.0.resnets.0.norm1.weight, decoder.mid_block.attentions.0.to_q.weight,
// quant_conv.weight, ...).
//
//   auto vae = AutoencoderKL::load(folder / "vae");         // config.json + weights, f32
//   LatentDist d = vae.encode(image);                       // image (B, 3, H, W) in [-1, 1]
//   Tensor z = vae.to_latent(d.sample(gen));                // what the denoiser sees
//   Tensor img = vae.decode(vae.from_latent(z));            // (B, 3, H, W), about [-1, 1]
//   Tensor big = vae.decode(vae.from_latent(z), VaeTiling{});  // diffusers' enable_tiling()
//
// Ref: diffusers 0.42 models/autoencoders/autoencoder_kl.py (AutoencoderKL: _encode, _decode,
//      blend_v, blend_h, _tiled_encode, tiled_decode), autoencoders/vae.py
//      (DiagonalGaussianDistribution), and the pipelines' latent scaling
//      (pipeline_stable_diffusion.py, pipeline_stable_diffusion_xl.py latents_mean/std,
//      pipeline_stable_diffusion_3.py / pipeline_flux.py shift_factor).
#pragma once

#include <filesystem>
#include <optional>
#include <vector>

#include "kiln/io/diffusers.hpp"
#include "kiln/io/module.hpp"
#include "kiln/pipelines/models/vae_blocks.hpp"
#include "kiln/rng/generator.hpp"

namespace kiln::pipelines::models {

struct AutoencoderKLConfig {
  int64_t in_channels = 3, out_channels = 3;
  int64_t latent_channels = 4;
  std::vector<int64_t> block_out_channels{64};
  int layers_per_block = 1;
  int norm_num_groups = 32;
  int64_t sample_size = 32;  // diffusers' default tile_sample_min_size (first entry of a list)
  double scaling_factor = 0.18215;
  std::optional<double> shift_factor;             // SD3/Flux
  std::vector<double> latents_mean, latents_std;  // SDXL-family variants (per latent channel)
  bool use_quant_conv = true, use_post_quant_conv = true;
  bool mid_block_add_attention = true;

  // Reads a diffusers AutoencoderKL config.json (force_upcast, _class_name etc. are ignored).
  // Refuses what this implementation does not build (act_fn other than silu, block types other
  // than DownEncoderBlock2D/UpDecoderBlock2D) with Status::unsupported, and inconsistent
  // values (channels not divisible by norm_num_groups, ...) with Status::format_error.
  static AutoencoderKLConfig from_json(const io::ComponentConfig& cfg);
  void validate(const char* context = "AutoencoderKL") const;
  // 2^(len(block_out_channels) - 1): 8 for every released VAE.
  int64_t downscale_factor() const;
};

// The posterior of encode(): diffusers' DiagonalGaussianDistribution.
struct LatentDist {
  Tensor mean;    // (B, latent_channels, h, w)
  Tensor logvar;  // same shape, clamped to [-30, 20] as diffusers does
  const Tensor& mode() const { return mean; }
  Tensor std() const;  // exp(0.5 * logvar)
  // mean + std * randn(mean.shape, gen): one randn call over the whole batch, as
  // DiagonalGaussianDistribution.sample(generator) -> randn_tensor(shape, generator).
  Tensor sample(rng::Generator& gen) const;
  // Splits moments (B, 2*C, h, w) into mean and clamped logvar (torch.chunk(2, dim=1)).
  static LatentDist from_moments(const Tensor& moments);
};

// diffusers' enable_tiling(): tile sizes in pixels and latents and the overlap. A size of 0
// takes diffusers' default: sample_min_size = config.sample_size, latent_min_size =
// sample_min_size / downscale_factor. Each tile is encoded/decoded on its own; overlaps are
// blended linearly (blend_v, then blend_h), so the working memory of the network is that of
// one tile.
struct VaeTiling {
  int64_t sample_min_size = 0;
  int64_t latent_min_size = 0;
  double overlap_factor = 0.25;
};

class AutoencoderKL : public io::Module {
 public:
  AutoencoderKLConfig config;
  vae::Encoder encoder;
  vae::Decoder decoder;
  std::optional<nn::Conv> quant_conv, post_quant_conv;  // 1x1

  AutoencoderKL() = default;
  explicit AutoencoderKL(const AutoencoderKLConfig& cfg);  // parameters unbound
  void visit_params(io::ParamVisitor& v) override;

  // `component_dir`/config.json + its weights (io::open_weights), bound strictly; f16/bf16/fp8
  // weights are converted to f32. Errors carry the file in their context.
  static AutoencoderKL load(const std::filesystem::path& component_dir);
  // Builds from a config and binds `weights` (through `key_map` for foreign layouts, e.g. the
  // first_stage_model.* keys of a single-file checkpoint).
  static AutoencoderKL from_weights(const AutoencoderKLConfig& cfg, const io::WeightSource& weights,
                                    const io::KeyMap* key_map = nullptr);

  // image (B, in_channels, H, W) f32 in [-1, 1], H and W multiples of downscale_factor().
  LatentDist encode(const Tensor& image) const;
  // As diffusers with enable_tiling(): tiled when H or W exceeds the tile, plain otherwise.
  LatentDist encode(const Tensor& image, const VaeTiling& tiling) const;
  LatentDist tiled_encode(const Tensor& image, const VaeTiling& tiling = {}) const;  // always tiled

  // z (B, latent_channels, h, w) f32, already unscaled (see from_latent) -> (B, out, h*f, w*f).
  Tensor decode(const Tensor& z) const;
  Tensor decode(const Tensor& z, const VaeTiling& tiling) const;
  // Always tiled. Reproduces diffusers' tiled_decode exactly, including its output size: each
  // tile row/column contributes min(its height/width, sample_min - blend_extent) pixels, which
  // is h*f only when sample_min - blend_extent == overlap * f (true for the config defaults
  // with sample_size a multiple of 4*f, e.g. 512 px / 64 latents; not for every hand-set pair).
  Tensor tiled_decode(const Tensor& z, const VaeTiling& tiling = {}) const;

  // VAE latent -> denoiser latent, as the pipelines scale what encode() gives:
  //   latents_mean/std set: (z - mean) * scaling_factor / std   (SDXL img2img)
  //   shift_factor set:     (z - shift_factor) * scaling_factor (SD3, Flux)
  //   otherwise:            z * scaling_factor                  (SD1.x/2.x, SDXL)
  Tensor to_latent(const Tensor& z) const;
  // The inverse, applied before decode():
  //   latents * std / scaling_factor + mean | latents / scaling_factor + shift_factor |
  //   latents / scaling_factor
  Tensor from_latent(const Tensor& latents) const;

  int64_t downscale_factor() const { return config.downscale_factor(); }

 private:
  struct TileGeometry {
    int64_t sample_min, latent_min, overlap, blend_extent, row_limit;
  };
  TileGeometry geometry(const VaeTiling& t, bool for_decode) const;
  Tensor encode_moments(const Tensor& image) const;  // encoder + quant_conv, no checks
  Tensor decode_unchecked(const Tensor& z) const;    // post_quant_conv + decoder
  void check_image(const Tensor& image, const char* op) const;
  void check_latent(const Tensor& z, const char* op) const;
};

}  // namespace kiln::pipelines::models
