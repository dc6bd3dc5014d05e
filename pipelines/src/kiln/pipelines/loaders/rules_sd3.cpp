// SD3-medium / SD3.5 single files (sd3_medium.safetensors, sd3.5_large.safetensors):
//   model.diffusion_model.{pos_embed, x_embedder, t_embedder, y_embedder, context_embedder,
//   joint_blocks.N.{x_block,context_block}.*, final_layer}; all-in-one files add the VAE
//   (first_stage_model.*, LDM layout) and text_encoders.clip_l / clip_g (transformers layout);
//   their T5 (text_encoders.t5xxl) is left unclaimed.
// SD3.5 is told apart by its qk-norm weights (attn.ln_q); SD3.5-medium also has x_block.attn2
// (dual attention) in its first blocks.
// Ref: diffusers loaders/single_file_utils.py convert_sd3_transformer_checkpoint_to_diffusers,
//      get_attn2_layers, get_caption_projection_dim, swap_scale_shift.
#include "kiln/pipelines/loaders/rules_sd3.hpp"

#include <cmath>

#include "kiln/core/error.hpp"

namespace kiln::pipelines::loaders::sd3 {

namespace {

using Json = nlohmann::json;
constexpr const char* kPrefix = "model.diffusion_model.";

bool detect(const io::WeightSource& src) {
  return src.has(std::string(kPrefix) + "joint_blocks.0.x_block.attn.qkv.weight");
}

FamilyBuild build(const std::shared_ptr<const io::WeightSource>& src, const SingleFileOptions& o) {
  const KeyView k(*src, kPrefix);
  FamilyBuild b;
  b.family = "sd3";
  const int layers = k.count("joint_blocks.");
  const Shape proj = k.shape("x_embedder.proj.weight", "SD3 patch embedding");  // (D, C, p, p)
  const int64_t inner = proj[0], patch = proj[2];
  const bool qk_norm = k.has("joint_blocks.0.x_block.attn.ln_q.weight");
  // With qk-norm the head size is the norm's width; without it, MMDiT's 64 (heads = depth).
  const int64_t head_dim =
      qk_norm ? k.dim("joint_blocks.0.x_block.attn.ln_q.weight", 0, "qk-norm width") : 64;
  Json dual = Json::array();
  for (int i = 0; i < layers; ++i)
    if (k.has("joint_blocks." + std::to_string(i) + ".x_block.attn2.qkv.weight")) dual.push_back(i);
  Json c = {
      {"_class_name", "SD3Transformer2DModel"},
      {"sample_size", 128},
      {"patch_size", patch},
      {"in_channels", proj[1]},
      {"num_layers", layers},
      {"attention_head_dim", head_dim},
      {"num_attention_heads", inner / head_dim},
      {"joint_attention_dim", k.dim("context_embedder.weight", 1, "SD3 context embedding")},
      {"caption_projection_dim", k.dim("context_embedder.weight", 0, "SD3 context embedding")},
      {"pooled_projection_dim", k.dim("y_embedder.mlp.0.weight", 1, "SD3 pooled embedding")},
      {"out_channels", k.dim("final_layer.linear.weight", 0, "SD3 output") / (patch * patch)},
      {"dual_attention_layers", dual},
      {"qk_norm",
       qk_norm ? Json(k.has("joint_blocks.0.x_block.attn.ln_q.bias") ? "layer_norm" : "rms_norm")
               : Json(nullptr)},
      {"pos_embed_max_size", nullptr},
  };
  if (k.has("pos_embed")) {
    const int64_t n = k.dim("pos_embed", 1, "SD3 position table");
    const auto side = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(n))));
    KILN_CHECK(side * side == n, Status::format_error, src->describe(), kPrefix, "pos_embed has ",
               n, " positions, not a square grid");
    c["pos_embed_max_size"] = side;
  }
  b.variant = qk_norm ? "sd35" : "sd3";
  if (!qk_norm)
    b.notes.push_back("no qk-norm weights: attention_head_dim 64 assumed (MMDiT heads = depth)");
  b.components.push_back(make_component(src, "transformer", "SD3Transformer2DModel", std::move(c),
                                        kPrefix, rules(layers), o));
  // All-in-one files (sd3_medium_incl_clips*.safetensors): the VAE in the LDM layout and the
  // CLIPs in transformers' (CHECKPOINT_KEY_NAMES clip_sd3 / open_clip_sd3).
  if (has_prefix(*src, "first_stage_model."))
    b.components.push_back(vae_component(src, "first_stage_model.", "sd3", o));
  if (has_prefix(*src, "text_encoders.clip_l.transformer."))
    b.components.push_back(
        clip_l_component(src, "text_encoders.clip_l.transformer.", "text_encoder", o));
  if (has_prefix(*src, "text_encoders.clip_g.transformer."))
    b.components.push_back(
        clip_l_component(src, "text_encoders.clip_g.transformer.", "text_encoder_2", o, "gelu"));
  if (has_prefix(*src, "text_encoders.t5xxl."))
    b.notes.push_back(
        "text_encoders.t5xxl.* (T5) is not read from single files; load "
        "text_encoder_3 from a diffusers folder");
  return b;
}

}  // namespace

RenameTable rules(int num_layers) {
  RenameTable t;
  t.rename("pos_embed", "pos_embed.pos_embed")
      .rename("x_embedder.proj.", "pos_embed.proj.")
      .rename("t_embedder.mlp.0.", "time_text_embed.timestep_embedder.linear_1.")
      .rename("t_embedder.mlp.2.", "time_text_embed.timestep_embedder.linear_2.")
      .rename("y_embedder.mlp.0.", "time_text_embed.text_embedder.linear_1.")
      .rename("y_embedder.mlp.2.", "time_text_embed.text_embedder.linear_2.")
      .rename("final_layer.linear.", "proj_out.")
      .swap_halves("final_layer.adaLN_modulation.1.", "norm_out.linear.");
  // The last block's context branch is an AdaLayerNormContinuous (pre-only): (shift, scale) in
  // the original, (scale, shift) in diffusers. Listed before the general rule, which it shadows.
  const std::string last = "joint_blocks." + std::to_string(num_layers - 1) + ".";
  t.swap_halves(last + "context_block.adaLN_modulation.1.",
                "transformer_blocks." + std::to_string(num_layers - 1) + ".norm1_context.linear.");
  const std::string j = "joint_blocks.{}.", T = "transformer_blocks.{}.";
  t.split(j + "x_block.attn.qkv.", {T + "attn.to_q.", T + "attn.to_k.", T + "attn.to_v."})
      .split(j + "context_block.attn.qkv.",
             {T + "attn.add_q_proj.", T + "attn.add_k_proj.", T + "attn.add_v_proj."})
      .split(j + "x_block.attn2.qkv.", {T + "attn2.to_q.", T + "attn2.to_k.", T + "attn2.to_v."})
      .rename(j + "x_block.attn.proj.", T + "attn.to_out.0.")
      .rename(j + "context_block.attn.proj.", T + "attn.to_add_out.")
      .rename(j + "x_block.attn2.proj.", T + "attn2.to_out.0.")
      .rename(j + "x_block.attn.ln_q.", T + "attn.norm_q.")
      .rename(j + "x_block.attn.ln_k.", T + "attn.norm_k.")
      .rename(j + "context_block.attn.ln_q.", T + "attn.norm_added_q.")
      .rename(j + "context_block.attn.ln_k.", T + "attn.norm_added_k.")
      .rename(j + "x_block.attn2.ln_q.", T + "attn2.norm_q.")
      .rename(j + "x_block.attn2.ln_k.", T + "attn2.norm_k.")
      .rename(j + "x_block.adaLN_modulation.1.", T + "norm1.linear.")
      .rename(j + "context_block.adaLN_modulation.1.", T + "norm1_context.linear.")
      .rename(j + "x_block.mlp.fc1.", T + "ff.net.0.proj.")
      .rename(j + "x_block.mlp.fc2.", T + "ff.net.2.")
      .rename(j + "context_block.mlp.fc1.", T + "ff_context.net.0.proj.")
      .rename(j + "context_block.mlp.fc2.", T + "ff_context.net.2.");
  return t;
}

}  // namespace kiln::pipelines::loaders::sd3

namespace kiln::pipelines::loaders {

const FamilyRules& sd3_family() {
  static const FamilyRules r{"sd3",
                             "model.diffusion_model.joint_blocks.0.x_block.attn.qkv.weight (SD3)",
                             sd3::detect, sd3::build};
  return r;
}

}  // namespace kiln::pipelines::loaders
