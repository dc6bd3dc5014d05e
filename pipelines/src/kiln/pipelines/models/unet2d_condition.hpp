// UNet2DConditionModel: the denoiser of SD1.x, SD2.x (incl. inpainting, 9 input channels) and
// SDXL (addition_embed_type "text_time"). The module tree mirrors the diffusers checkpoint, so
// parameter names are diffusers keys ("down_blocks.1.attentions.0.proj_in.weight").
// Ref: diffusers 0.42.1 src/diffusers/models/unets/unet_2d_condition.py (UNet2DConditionModel).
//
//   auto unet = models::UNet2DConditionModel::load("sdxl/unet");
//   Tensor eps = unet.forward(latents, t, text_states, {.text_embeds = pooled, .time_ids = ids});
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "kiln/io/diffusers.hpp"
#include "kiln/pipelines/models/unet_blocks.hpp"
#include "kiln/pipelines/nn/embeddings.hpp"

namespace kiln::pipelines::models {

// The config.json fields this implementation honours, resolved to one value per block the way
// diffusers' __init__ resolves them. Fields that select features kiln does not implement
// (class embeddings, encoder_hid_proj, time_cond_proj_dim, only_cross_attention, ...) make
// from_json() throw Status::unsupported naming the field.
struct UNet2DConditionConfig {
  int64_t in_channels = 4, out_channels = 4;
  bool center_input_sample = false;
  bool flip_sin_to_cos = true;
  float freq_shift = 0.f;
  std::vector<std::string> down_block_types, up_block_types;  // Down/CrossAttnDownBlock2D ...
  bool mid_block = true;                                      // UNetMidBlock2DCrossAttn or null
  std::vector<int64_t> block_out_channels;
  std::vector<int> layers_per_block;                    // per down block
  std::vector<std::vector<int>> transformer_layers;     // per down block, per resnet
  std::vector<std::vector<int>> up_transformer_layers;  // per up block, per resnet
  int64_t cross_attention_dim = 1280;
  // Heads per block. diffusers reads `attention_head_dim` as the number of heads when
  // `num_attention_heads` is null (its issue 2011): SD1.5 "8" = 8 heads of 40/80/160 dims,
  // SD2 [5, 10, 20, 20] and SDXL [5, 10, 20] = heads of 64.
  std::vector<int> num_attention_heads;
  bool use_linear_projection = false;
  int norm_num_groups = 32;
  float norm_eps = 1e-5f;
  int downsample_padding = 1;
  float mid_block_scale_factor = 1.f;
  int conv_in_kernel = 3, conv_out_kernel = 3;
  int64_t time_embedding_dim = 0;  // 0: 4 * block_out_channels[0]
  // LCM-distilled U-Nets: a guidance-scale embedding (B, time_cond_proj_dim) is projected by
  // time_embedding.cond_proj (no bias) and added to the sinusoidal timestep features.
  int64_t time_cond_proj_dim = 0;
  // addition_embed_type "text_time" (SDXL): add_time_proj(time_ids) ++ text_embeds ->
  // add_embedding, added to the time embedding.
  bool text_time = false;
  int64_t addition_time_embed_dim = 0;
  int64_t projection_class_embeddings_input_dim = 0;

  int64_t time_embed_dim() const {
    return time_embedding_dim > 0 ? time_embedding_dim : block_out_channels.at(0) * 4;
  }
  size_t levels() const { return block_out_channels.size(); }
  static UNet2DConditionConfig from_json(const io::ComponentConfig& cfg);
};

// Optional conditions besides the text. SDXL's added_cond_kwargs (required by, and only read by,
// models with addition_embed_type "text_time") and diffusers' forward(timestep_cond=...).
struct UNetAddedConditions {
  Tensor text_embeds;  // (B, D_pooled): the pooled text embedding
  Tensor time_ids;     // (B, n) f32: n * addition_time_embed_dim + D_pooled must equal
                       // projection_class_embeddings_input_dim (n = 6 for SDXL)
  // (B, time_cond_proj_dim): LCM's guidance embedding; optional as in diffusers, an error for a
  // model without time_cond_proj_dim.
  Tensor timestep_cond;
};

struct UNetLoadOptions {
  // Weights stored in f16/bf16/fp8 are converted to f32 when bound (the CPU computes in f32).
  DType float_dtype = DType::f32;
};

class UNet2DConditionModel : public io::Module {
 public:
  explicit UNet2DConditionModel(const UNet2DConditionConfig& config);

  // A diffusers component folder: config.json + weights (single file or sharded index), bound
  // with strict key accounting. Errors name the folder.
  static UNet2DConditionModel load(const std::filesystem::path& component_dir,
                                   const UNetLoadOptions& options = {});

  void visit_params(io::ParamVisitor& v) override;
  const UNet2DConditionConfig& config() const { return config_; }

  // sample (B, in_channels, H, W) f32; timestep (B), (1) or 0-d, any float/int dtype;
  // encoder_hidden_states (B, S, cross_attention_dim) -> (B, out_channels, H, W).
  // H and W need not be multiples of 2^(levels-1): as in diffusers, odd sizes round up on the
  // way down and each upsampler then targets the size of the skip it meets.
  Tensor forward(const Tensor& sample, const Tensor& timestep, const Tensor& encoder_hidden_states,
                 const UNetAddedConditions& added = {}) const;

 private:
  // (B, time_embed_dim)
  Tensor time_embedding_of(const Tensor& timestep, const Tensor& cond, int64_t batch) const;
  Tensor add_embedding_of(const UNetAddedConditions& added, int64_t batch) const;
  void check_inputs(const Tensor& sample, const Tensor& encoder_hidden_states) const;

  UNet2DConditionConfig config_;
  nn::Conv conv_in, conv_out;
  nn::TimestepEmbedding time_embedding;
  // time_embedding.cond_proj: diffusers' TimestepEmbedding(cond_proj_dim=...), which the shared
  // nn::TimestepEmbedding does not have; registered under that key by visit_params.
  std::optional<nn::Linear> time_cond_proj;
  std::optional<nn::TimestepEmbedding> add_embedding;  // text_time
  std::vector<unet::DownBlock> down_blocks;
  std::optional<unet::MidBlock> mid_block;
  std::vector<unet::UpBlock> up_blocks;
  nn::GroupNorm conv_norm_out;
};

}  // namespace kiln::pipelines::models
