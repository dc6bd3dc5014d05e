// CLIP text encoders: transformers' CLIPTextModel (SD1.x/2.x text_encoder, SDXL text_encoder)
// and CLIPTextModelWithProjection (SDXL text_encoder_2, SD3 text_encoder/_2).
//
//   auto clip = models::ClipTextModel::load(folder / "text_encoder");   // config.json + weights
//   auto out = clip.forward(ids, {.output_hidden_states = true});     // ids (B, 77) i64
//   Tensor cond = out.hidden_states[out.hidden_states.size() - 2];      // SDXL: hidden_states[-2]
//
// Module tree = the checkpoint keys of transformers 4.x and of diffusers/original SD folders:
// text_model.embeddings.{token,position}_embedding.weight,
// text_model.encoder.layers.N.{layer_norm1,self_attn.{q,k,v,out}_proj,layer_norm2,mlp.fc1,mlp.fc2},
// text_model.final_layer_norm, text_projection.weight (with projection). Also accepted on load:
// transformers 5.x CLIPTextModel files, which drop the "text_model." prefix, and the
// "text_model.embeddings.position_ids" buffer older transformers saved (ignored).
//
// Ref: transformers models/clip/modeling_clip.py (CLIPTextEmbeddings, CLIPAttention, CLIPMLP,
// CLIPEncoderLayer, CLIPTextModel, CLIPTextModelWithProjection), configuration_clip.py.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <vector>

#include "kiln/io/diffusers.hpp"
#include "kiln/pipelines/nn/embeddings.hpp"
#include "kiln/pipelines/nn/layers.hpp"

namespace kiln::pipelines::models {

struct ClipTextConfig {
  int64_t vocab_size = 49408;
  int64_t hidden_size = 512;
  int64_t intermediate_size = 2048;
  int64_t projection_dim = 512;
  int num_hidden_layers = 12;
  int num_attention_heads = 8;
  int64_t max_position_embeddings = 77;
  // quick_gelu: OpenAI CLIP-L (SD1.x, SDXL text_encoder); gelu: OpenCLIP ViT-H/bigG (SD2.x, SDXL
  // text_encoder_2); gelu_tanh: "gelu_new" / "gelu_pytorch_tanh".
  nn::Act hidden_act = nn::Act::quick_gelu;
  float layer_norm_eps = 1e-5f;
  // Pooling position. 2 (configs written before transformers PR #24773, e.g. SD1.5's): the
  // argmax of the ids, i.e. the highest id = <|endoftext|> of the original vocabulary. Otherwise:
  // the first position holding eos_token_id.
  int64_t eos_token_id = 2;

  // From a CLIPTextConfig config.json (transformers' defaults for absent keys); format_error
  // naming the file and key for unknown hidden_act or inconsistent sizes.
  static ClipTextConfig from(const io::ComponentConfig& c);
  void validate(const std::string& context) const;
};

struct ClipAttention : io::Module {
  int heads = 0;
  int64_t dim = 0;
  nn::Linear q_proj, k_proj, v_proj, out_proj;
  ClipAttention() = default;
  ClipAttention(int64_t dim, int heads);
  void visit_params(io::ParamVisitor& v) override;
  // x (B, L, D) -> (B, L, D); causal self-attention, `mask` optional (B, 1, 1, L) bool keep.
  Tensor operator()(const Tensor& x, const Tensor& mask) const;
};

struct ClipEncoderLayer : io::Module {
  nn::LayerNorm layer_norm1, layer_norm2;
  ClipAttention self_attn;
  nn::Linear fc1, fc2;  // mlp.fc1, mlp.fc2
  nn::Act act = nn::Act::quick_gelu;
  ClipEncoderLayer() = default;
  explicit ClipEncoderLayer(const ClipTextConfig& c);
  void visit_params(io::ParamVisitor& v) override;
  Tensor operator()(const Tensor& x, const Tensor& mask) const;  // (B, L, D) pre-LN block
};

struct ClipTextOptions {
  // Keep hidden_states: the embeddings, then the output of every layer (num_layers + 1 tensors,
  // the last one before final_layer_norm), as transformers' output_hidden_states=True.
  bool output_hidden_states = false;
};

struct ClipTextOutput {
  Tensor last_hidden_state;           // (B, L, D) after final_layer_norm
  std::vector<Tensor> hidden_states;  // see ClipTextOptions; empty unless asked for
  Tensor pooled;                      // (B, D) last_hidden_state at the eos position
  Tensor text_embeds;                 // (B, projection_dim), with projection only
};

class ClipTextModel : public io::Module {
 public:
  ClipTextModel() = default;
  ClipTextModel(const ClipTextConfig& cfg, bool with_projection);

  // `component_dir`/config.json + open_weights(component_dir); float weights (f16, bf16, ...)
  // become f32. With or without projection is read from config.json "architectures" and must
  // agree with the weights (text_projection.weight); every key must be used (io::bind).
  static ClipTextModel load(const std::filesystem::path& component_dir);

  void visit_params(io::ParamVisitor& v) override;

  // ids (B, L) i64 or i32, L <= max_position_embeddings, each id < vocab_size. attention_mask
  // optional (B, L) (nonzero = keep), combined with the causal mask as transformers does; the
  // diffusers SD pipelines pass none.
  ClipTextOutput forward(const Tensor& ids, const ClipTextOptions& opt = {},
                         const Tensor& attention_mask = {}) const;
  // Convenience: one or more sequences of ids of equal length, batched.
  ClipTextOutput forward(std::span<const std::vector<int32_t>> ids,
                         const ClipTextOptions& opt = {}) const;

  const ClipTextConfig& config() const { return cfg_; }
  bool with_projection() const { return with_projection_; }

  // Public for inspection and tests; the names mirror the checkpoint.
  Tensor token_embedding, position_embedding;  // (vocab, D), (max_positions, D)
  std::vector<ClipEncoderLayer> layers;
  nn::LayerNorm final_layer_norm;
  nn::Linear text_projection;  // (projection_dim, D), no bias; with projection only

 private:
  ClipTextConfig cfg_;
  bool with_projection_ = false;
};

}  // namespace kiln::pipelines::models
