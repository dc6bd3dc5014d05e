// Flux.1 single files in Black Forest Labs' layout (flux1-dev.safetensors,
// flux1-schnell.safetensors; ComfyUI re-saves put "model.diffusion_model." in front):
//   img_in, txt_in, time_in, vector_in, guidance_in (dev only), double_blocks.N.{img,txt}_*,
//   single_blocks.N.{linear1,linear2,modulation,norm}, final_layer.
// Ref: diffusers loaders/single_file_utils.py convert_flux_transformer_checkpoint_to_diffusers
//      (fused qkv and linear1 splits; swap_scale_shift on final_layer.adaLN_modulation).
#include "kiln/pipelines/loaders/rules_flux.hpp"

#include "kiln/core/error.hpp"

namespace kiln::pipelines::loaders::flux {

namespace {

using Json = nlohmann::json;

std::string prefix_of(const io::WeightSource& src) {
  return src.has("model.diffusion_model.double_blocks.0.img_attn.norm.key_norm.scale")
             ? "model.diffusion_model."
             : "";
}

bool detect(const io::WeightSource& src) {
  return src.has(prefix_of(src) + "double_blocks.0.img_attn.norm.key_norm.scale");
}

FamilyBuild build(const std::shared_ptr<const io::WeightSource>& src, const SingleFileOptions& o) {
  const std::string p = prefix_of(*src);
  const KeyView k(*src, p);
  FamilyBuild b;
  b.family = "flux";
  const bool guidance = k.has("guidance_in.in_layer.weight");
  b.variant = guidance ? "dev" : "schnell";  // schnell is guidance-distilled away
  const int64_t inner = k.dim("img_in.weight", 0, "Flux image embedding");
  const int64_t head_dim = k.dim("double_blocks.0.img_attn.norm.query_norm.scale", 0, "head dim");
  const int64_t out = k.dim("final_layer.linear.weight", 0, "Flux output projection");
  const int64_t in = k.dim("img_in.weight", 1, "Flux image embedding");
  Json c = {
      {"_class_name", "FluxTransformer2DModel"},
      {"patch_size", 1},
      {"in_channels", in},
      {"out_channels", out == in ? Json(nullptr) : Json(out)},
      {"num_layers", k.count("double_blocks.")},
      {"num_single_layers", k.count("single_blocks.")},
      {"attention_head_dim", head_dim},
      {"num_attention_heads", inner / head_dim},
      {"joint_attention_dim", k.dim("txt_in.weight", 1, "Flux text embedding")},
      {"pooled_projection_dim", k.dim("vector_in.in_layer.weight", 1, "Flux pooled embedding")},
      {"guidance_embeds", guidance},
      {"axes_dims_rope", {16, 56, 56}},
  };
  b.notes.push_back(guidance ? "guidance_in present: Flux.1-dev (distilled guidance)"
                             : "no guidance_in: Flux.1-schnell (timestep-distilled)");
  b.components.push_back(
      make_component(src, "transformer", "FluxTransformer2DModel", std::move(c), p, rules(), o));
  return b;
}

}  // namespace

RenameTable rules() {
  RenameTable t;
  t.rename("time_in.in_layer.", "time_text_embed.timestep_embedder.linear_1.")
      .rename("time_in.out_layer.", "time_text_embed.timestep_embedder.linear_2.")
      .rename("vector_in.in_layer.", "time_text_embed.text_embedder.linear_1.")
      .rename("vector_in.out_layer.", "time_text_embed.text_embedder.linear_2.")
      .rename("guidance_in.in_layer.", "time_text_embed.guidance_embedder.linear_1.")
      .rename("guidance_in.out_layer.", "time_text_embed.guidance_embedder.linear_2.")
      .rename("txt_in.", "context_embedder.")
      .rename("img_in.", "x_embedder.")
      .rename("final_layer.linear.", "proj_out.")
      // The original modulation yields (shift, scale); diffusers' AdaLayerNormContinuous
      // chunks (scale, shift).
      .swap_halves("final_layer.adaLN_modulation.1.", "norm_out.linear.");
  const std::string d = "double_blocks.{}.", D = "transformer_blocks.{}.";
  t.rename(d + "img_mod.lin.", D + "norm1.linear.")
      .rename(d + "txt_mod.lin.", D + "norm1_context.linear.")
      .split(d + "img_attn.qkv.", {D + "attn.to_q.", D + "attn.to_k.", D + "attn.to_v."})
      .split(d + "txt_attn.qkv.",
             {D + "attn.add_q_proj.", D + "attn.add_k_proj.", D + "attn.add_v_proj."})
      .rename(d + "img_attn.norm.query_norm.scale", D + "attn.norm_q.weight")
      .rename(d + "img_attn.norm.key_norm.scale", D + "attn.norm_k.weight")
      .rename(d + "txt_attn.norm.query_norm.scale", D + "attn.norm_added_q.weight")
      .rename(d + "txt_attn.norm.key_norm.scale", D + "attn.norm_added_k.weight")
      .rename(d + "img_attn.proj.", D + "attn.to_out.0.")
      .rename(d + "txt_attn.proj.", D + "attn.to_add_out.")
      .rename(d + "img_mlp.0.", D + "ff.net.0.proj.")
      .rename(d + "img_mlp.2.", D + "ff.net.2.")
      .rename(d + "txt_mlp.0.", D + "ff_context.net.0.proj.")
      .rename(d + "txt_mlp.2.", D + "ff_context.net.2.");
  const std::string s = "single_blocks.{}.", S = "single_transformer_blocks.{}.";
  // linear1 = [q; k; v; mlp] with the MLP 4x wider (FluxSingleTransformerBlock mlp_ratio 4).
  t.rename(s + "modulation.lin.", S + "norm.linear.")
      .split(s + "linear1.",
             {S + "attn.to_q.", S + "attn.to_k.", S + "attn.to_v.", S + "proj_mlp."}, {1, 1, 1, 4})
      .rename(s + "norm.query_norm.scale", S + "attn.norm_q.weight")
      .rename(s + "norm.key_norm.scale", S + "attn.norm_k.weight")
      .rename(s + "linear2.", S + "proj_out.");
  return t;
}

}  // namespace kiln::pipelines::loaders::flux

namespace kiln::pipelines::loaders {

const FamilyRules& flux_family() {
  static const FamilyRules r{"flux", "double_blocks.0.img_attn.norm.key_norm.scale (Flux.1)",
                             flux::detect, flux::build};
  return r;
}

}  // namespace kiln::pipelines::loaders
