// FluxTransformer2DModel: the denoiser of Flux.1 dev (guidance-distilled, guidance_embeds true)
// and schnell (timestep-distilled, guidance_embeds false). num_layers double-stream blocks (text
// and image tokens with their own weights, one joint attention), then num_single_layers
// single-stream blocks over the concatenated sequence (attention and MLP in parallel), with
// multi-axis RoPE from per-token position ids. The module tree mirrors the diffusers checkpoint,
// so parameter names are diffusers keys ("transformer_blocks.0.attn.add_q_proj.weight").
// Ref: diffusers 0.42.1 src/diffusers/models/transformers/transformer_flux.py
//      (FluxTransformer2DModel, FluxTransformerBlock, FluxSingleTransformerBlock, FluxAttention,
//      FluxAttnProcessor, FluxPosEmbed); models/normalization.py (AdaLayerNormZero,
//      AdaLayerNormZeroSingle, AdaLayerNormContinuous); models/embeddings.py
//      (CombinedTimestep[Guidance]TextProjEmbeddings, PixArtAlphaTextProjection);
//      pipelines/flux/pipeline_flux.py (_pack_latents, _unpack_latents,
//      _prepare_latent_image_ids).
//
//   auto flux = models::FluxTransformer2DModel::load("FLUX.1-dev/transformer");
//   Tensor x = models::flux::pack_latents(latents);                 // (B, 16, H, W) -> (B, L, 64)
//   Tensor img_ids = models::flux::latent_image_ids(H / 2, W / 2);  // (L, 3)
//   Tensor v = flux.forward(x, t5_states, clip_pooled, sigma, img_ids,
//                           models::flux::text_ids(t5_states.size(1)), guidance);
//   Tensor out = models::flux::unpack_latents(v, height, width, 8);  // (B, 16, H, W)
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "kiln/io/diffusers.hpp"
#include "kiln/pipelines/nn/attention.hpp"
#include "kiln/pipelines/nn/embeddings.hpp"

namespace kiln::pipelines::models {

// config.json of a FluxTransformer2DModel (diffusers' defaults are FLUX.1's sizes).
struct FluxTransformerConfig {
  int64_t patch_size = 1;
  int64_t in_channels = 64;    // packed: 4 * latent channels (16 for the Flux VAE)
  int64_t out_channels = 0;    // 0 (config null): in_channels
  int num_layers = 19;         // double-stream blocks
  int num_single_layers = 38;  // single-stream blocks
  int64_t attention_head_dim = 128;
  int num_attention_heads = 24;
  int64_t joint_attention_dim = 4096;   // T5 hidden size
  int64_t pooled_projection_dim = 768;  // CLIP-L pooled size
  bool guidance_embeds = false;         // dev: true; schnell: false
  std::vector<int> axes_dims_rope{16, 56, 56};
  // FluxPosEmbed(theta=10000) is fixed in diffusers, not a config field.
  float rope_theta = 10000.f;

  int64_t inner_dim() const { return attention_head_dim * num_attention_heads; }
  int64_t out_dim() const {  // proj_out width per token
    return patch_size * patch_size * (out_channels > 0 ? out_channels : in_channels);
  }
  // From config.json; format_error naming the file and key for inconsistent values
  // (sum(axes_dims_rope) must equal attention_head_dim, every rope axis even, sizes positive).
  static FluxTransformerConfig from_json(const io::ComponentConfig& c);
  void validate(const std::string& context) const;
};

namespace flux {

// ---------------------------------------------------------------- pipeline helpers
// Ref: diffusers pipeline_flux.py, FluxPipeline._pack_latents / _unpack_latents /
// _prepare_latent_image_ids.

// latents (B, C, H, W), H and W even -> (B, (H/2)*(W/2), 4C): each 2x2 patch becomes one token,
// channel order (c, dy, dx).
Tensor pack_latents(const Tensor& latents);
// packed (B, L, 4C) -> (B, C, h, w) with h = 2 * (height / (2 * vae_scale_factor)) and w alike:
// height/width are the image's pixel size, rounded down to whole 2x2 patches as the pipeline
// does. L must equal (h/2)*(w/2).
Tensor unpack_latents(const Tensor& packed, int64_t height, int64_t width,
                      int64_t vae_scale_factor = 8);
// (h * w, 3) f32 ids of an h x w token grid (the packed latent's size, i.e. latent H/2, W/2):
// row r*w + c = (0, r, c).
Tensor latent_image_ids(int64_t h, int64_t w);
// (S, 3) f32 zeros: FluxPipeline's text_ids.
Tensor text_ids(int64_t seq_len);

// ---------------------------------------------------------------- blocks

// adaLN-Zero: linear(silu(temb)) -> (shift, scale, gate) x {msa, mlp}; LayerNorm without
// affine, eps 1e-6. Ref: normalization.py AdaLayerNormZero.
struct AdaLayerNormZero : io::Module {
  nn::Linear linear;  // (6*dim, dim)
  nn::LayerNorm norm;
  AdaLayerNormZero() = default;
  explicit AdaLayerNormZero(int64_t dim);
  void visit_params(io::ParamVisitor& v) override { v.child("linear", linear); }
  struct Out {
    Tensor x;  // (B, L, dim): norm(x) * (1 + scale_msa) + shift_msa
    Tensor gate_msa, shift_mlp, scale_mlp, gate_mlp;  // (B, dim) each (views)
  };
  Out operator()(const Tensor& x, const Tensor& temb) const;
};

// linear(silu(temb)) -> (shift, scale, gate) for the single-stream block.
// Ref: normalization.py AdaLayerNormZeroSingle.
struct AdaLayerNormZeroSingle : io::Module {
  nn::Linear linear;  // (3*dim, dim)
  nn::LayerNorm norm;
  AdaLayerNormZeroSingle() = default;
  explicit AdaLayerNormZeroSingle(int64_t dim);
  void visit_params(io::ParamVisitor& v) override { v.child("linear", linear); }
  struct Out {
    Tensor x;     // (B, L, dim)
    Tensor gate;  // (B, dim)
  };
  Out operator()(const Tensor& x, const Tensor& temb) const;
};

// norm_out: linear(silu(temb)) -> (scale, shift) (scale first), LayerNorm without affine,
// eps 1e-6. Ref: normalization.py AdaLayerNormContinuous.
struct AdaLayerNormContinuous : io::Module {
  nn::Linear linear;  // (2*dim, cond_dim)
  nn::LayerNorm norm;
  AdaLayerNormContinuous() = default;
  AdaLayerNormContinuous(int64_t dim, int64_t cond_dim);
  void visit_params(io::ParamVisitor& v) override { v.child("linear", linear); }
  Tensor operator()(const Tensor& x, const Tensor& temb) const;  // (B, L, dim)
};

// FluxAttention + FluxAttnProcessor. Per-head RMSNorm on q and k (norm_q/norm_k), RoPE on the
// joint sequence, SDPA. Double-stream (`added`): the text stream has its own add_{q,k,v}_proj,
// norm_added_{q,k} and to_add_out, and is placed before the image tokens. Single-stream
// (pre_only): no output projection (proj_out of the block mixes attention and MLP).
struct FluxAttention : io::Module {
  int heads = 0;
  int64_t head_dim = 0, dim = 0;
  bool added = false, pre_only = false;
  nn::Linear to_q, to_k, to_v, to_out;                        // to_out.0 unless pre_only
  nn::RMSNorm norm_q, norm_k;                                 // (head_dim)
  nn::Linear add_q_proj, add_k_proj, add_v_proj, to_add_out;  // double-stream only
  nn::RMSNorm norm_added_q, norm_added_k;

  FluxAttention() = default;
  FluxAttention(int64_t dim, int heads, int64_t head_dim, bool added, bool pre_only, float eps);
  void visit_params(io::ParamVisitor& v) override;

  // Single-stream: x (B, N, dim) -> (B, N, heads*head_dim); rope (N, head_dim/2).
  Tensor operator()(const Tensor& x, const ops::RopeTable& rope) const;
  // Double-stream: x (B, L, dim) image, ctx (B, S, dim) text; rope (S + L, head_dim/2), text
  // rows first. Returns {image (B, L, dim), text (B, S, dim)}.
  std::pair<Tensor, Tensor> operator()(const Tensor& x, const Tensor& ctx,
                                       const ops::RopeTable& rope) const;

 private:
  // (B, N, heads*head_dim) projection -> (B, N, heads, head_dim), then the per-head norm
  // (null for values).
  Tensor heads_of(const Tensor& proj, const nn::RMSNorm* norm) const;
  // q, k, v (B, N, heads, head_dim) -> rope on q, k -> SDPA -> (B, N, heads*head_dim).
  Tensor attend(const Tensor& q, const Tensor& k, const Tensor& v,
                const ops::RopeTable& rope) const;
};

// Double-stream block. Ref: transformer_flux.py FluxTransformerBlock.
struct FluxTransformerBlock : io::Module {
  AdaLayerNormZero norm1, norm1_context;
  FluxAttention attn;
  nn::LayerNorm norm2, norm2_context;  // no affine, eps 1e-6
  nn::FeedForward ff, ff_context;      // gelu tanh, 4x

  FluxTransformerBlock() = default;
  FluxTransformerBlock(int64_t dim, int heads, int64_t head_dim);
  void visit_params(io::ParamVisitor& v) override;
  // x (B, L, dim) image, ctx (B, S, dim) text, temb (B, dim) -> {x, ctx} updated in place.
  void operator()(Tensor& x, Tensor& ctx, const Tensor& temb, const ops::RopeTable& rope) const;
};

// Single-stream block. Ref: transformer_flux.py FluxSingleTransformerBlock.
struct FluxSingleTransformerBlock : io::Module {
  AdaLayerNormZeroSingle norm;
  nn::Linear proj_mlp;  // (4*dim, dim)
  nn::Linear proj_out;  // (dim, dim + 4*dim): [attention, gelu_tanh(proj_mlp)] -> dim
  FluxAttention attn;

  FluxSingleTransformerBlock() = default;
  FluxSingleTransformerBlock(int64_t dim, int heads, int64_t head_dim);
  void visit_params(io::ParamVisitor& v) override;
  // h (B, S + L, dim), text tokens first -> (B, S + L, dim).
  Tensor operator()(const Tensor& h, const Tensor& temb, const ops::RopeTable& rope) const;
};

// time_text_embed: CombinedTimestepTextProjEmbeddings (schnell) or
// CombinedTimestepGuidanceTextProjEmbeddings (dev). The timestep (and guidance) arrive already
// multiplied by 1000; each goes through the 256-channel sinusoidal projection (flip_sin_to_cos,
// shift 0) and a TimestepEmbedding; the pooled text through text_embedder (linear, silu, linear).
struct TimeTextEmbedding : io::Module {
  nn::TimestepEmbedding timestep_embedder;                 // 256 -> dim
  std::optional<nn::TimestepEmbedding> guidance_embedder;  // 256 -> dim, dev only
  // PixArtAlphaTextProjection(act "silu") has TimestepEmbedding's keys and math
  // (linear_1, silu, linear_2), so it reuses it.
  nn::TimestepEmbedding text_embedder;  // pooled -> dim

  TimeTextEmbedding() = default;
  TimeTextEmbedding(int64_t dim, int64_t pooled_dim, bool guidance);
  void visit_params(io::ParamVisitor& v) override;
  // timestep (B) f32, guidance (B) f32 or undefined, pooled (B, pooled_dim) -> temb (B, dim).
  Tensor operator()(const Tensor& timestep, const Tensor& guidance, const Tensor& pooled) const;
};

}  // namespace flux

struct FluxLoadOptions {
  // Weights stored in f16/bf16/fp8 are converted to this dtype when bound (the CPU computes in
  // f32).
  DType float_dtype = DType::f32;
};

class FluxTransformer2DModel : public io::Module {
 public:
  explicit FluxTransformer2DModel(const FluxTransformerConfig& config);

  // A diffusers component folder: config.json + weights (single file or sharded index), bound
  // with strict key accounting (a schnell config over dev weights fails listing the
  // guidance_embedder keys). Errors name the folder.
  static FluxTransformer2DModel load(const std::filesystem::path& component_dir,
                                     const FluxLoadOptions& options = {});

  void visit_params(io::ParamVisitor& v) override;
  const FluxTransformerConfig& config() const { return config_; }

  // hidden_states (B, L, in_channels) f32: packed latents (flux::pack_latents);
  // encoder_hidden_states (B, S, joint_attention_dim) f32: T5 states;
  // pooled_projections (B, pooled_projection_dim) f32: CLIP pooled output;
  // timestep (B), (1) or 0-d: sigma in [0, 1] as FluxPipeline passes it (timestep / 1000); the
  //   model multiplies by 1000, in f32 like diffusers;
  // img_ids (L, 3), txt_ids (S, 3): RoPE positions (any of f32/i64/i32); a leading batch dim
  //   (deprecated in diffusers) is accepted and its first entry used, as diffusers does;
  // guidance (B), (1) or 0-d: the distilled guidance scale; required exactly when
  //   config().guidance_embeds (dev), multiplied by 1000 like the timestep.
  // -> (B, L, patch_size^2 * out_channels).
  Tensor forward(const Tensor& hidden_states, const Tensor& encoder_hidden_states,
                 const Tensor& pooled_projections, const Tensor& timestep, const Tensor& img_ids,
                 const Tensor& txt_ids, const Tensor& guidance = {}) const;

  // Public for inspection and tests; the names mirror the checkpoint.
  flux::TimeTextEmbedding time_text_embed;
  nn::Linear context_embedder;  // (inner, joint_attention_dim)
  nn::Linear x_embedder;        // (inner, in_channels)
  std::vector<flux::FluxTransformerBlock> transformer_blocks;
  std::vector<flux::FluxSingleTransformerBlock> single_transformer_blocks;
  flux::AdaLayerNormContinuous norm_out;
  nn::Linear proj_out;  // (patch^2 * out_channels, inner)

 private:
  void check_inputs(const Tensor& hidden_states, const Tensor& encoder_hidden_states,
                    const Tensor& pooled_projections, const Tensor& img_ids,
                    const Tensor& txt_ids) const;
  // (B) f32 * 1000 from a (B), (1) or 0-d input named `what`.
  Tensor scaled_by_1000(const Tensor& t, int64_t batch, const char* what) const;

  FluxTransformerConfig config_;
};

}  // namespace kiln::pipelines::models
