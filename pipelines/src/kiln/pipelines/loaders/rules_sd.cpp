#include "kiln/pipelines/loaders/rules_sd.hpp"

#include <algorithm>

#include "kiln/core/error.hpp"

namespace kiln::pipelines::loaders::sd {

namespace {

using Json = nlohmann::json;

constexpr const char* kUnet = "model.diffusion_model.";
constexpr const char* kVae = "first_stage_model.";
constexpr const char* kSd1Clip = "cond_stage_model.transformer.";
constexpr const char* kSd2Clip = "cond_stage_model.model.";
constexpr const char* kXlClipL = "conditioner.embedders.0.transformer.";
constexpr const char* kXlClipG = "conditioner.embedders.1.model.";
constexpr const char* kRefinerClipG = "conditioner.embedders.0.model.";

std::string s(int i) {
  return std::to_string(i);
}

// ResBlock (LDM) -> ResnetBlock2D (diffusers); update_unet_resnet_ldm_to_diffusers.
void resnet(RenameTable& t, const std::string& ldm, const std::string& hf) {
  t.rename(ldm + "in_layers.0.", hf + "norm1.")
      .rename(ldm + "in_layers.2.", hf + "conv1.")
      .rename(ldm + "out_layers.0.", hf + "norm2.")
      .rename(ldm + "out_layers.3.", hf + "conv2.")
      .rename(ldm + "emb_layers.1.", hf + "time_emb_proj.")
      .rename(ldm + "skip_connection.", hf + "conv_shortcut.");
}

}  // namespace

// ---------------------------------------------------------------- U-Net

UnetLayout UnetLayout::read(const KeyView& u) {
  UnetLayout l;
  u.shape("input_blocks.0.0.weight", "the U-Net's conv_in");
  std::vector<int> first_resnet;  // input_blocks index of each level's first resnet
  int resnets_in_level = 0;
  for (int i = 1;; ++i) {
    const std::string b = "input_blocks." + s(i) + ".0.";
    if (u.has(b + "op.weight")) {  // the downsampler closes a level
      KILN_CHECK(l.levels == 0 || resnets_in_level == l.layers_per_block, Status::format_error,
                 u.source().describe(), "U-Net level ", first_resnet.size() - 1, " has ",
                 resnets_in_level, " resnets, level 0 has ", l.layers_per_block);
      if (first_resnet.size() == 1) l.layers_per_block = resnets_in_level;
      resnets_in_level = 0;
      l.levels = static_cast<int>(first_resnet.size());
      continue;
    }
    if (!u.has(b + "in_layers.0.weight")) break;
    if (resnets_in_level == 0) first_resnet.push_back(i);
    ++resnets_in_level;
  }
  KILN_CHECK(!first_resnet.empty(), Status::format_error, u.source().describe(),
             "no U-Net resnets under ", u.prefix(), "input_blocks.1.0.*");
  if (first_resnet.size() == 1) l.layers_per_block = resnets_in_level;
  l.levels = static_cast<int>(first_resnet.size());
  for (int lv = 0; lv < l.levels; ++lv) {
    const std::string b = "input_blocks." + s(first_resnet[lv]);
    l.channels.push_back(u.dim(b + ".0.out_layers.3.weight", 0, "resnet output channels"));
    l.down_depth.push_back(u.count(b + ".1.transformer_blocks."));
  }
  for (int ub = 0; ub < l.levels; ++ub)
    l.up_depth.push_back(
        u.count("output_blocks." + s((l.layers_per_block + 1) * ub) + ".1.transformer_blocks."));
  l.mid_attention = u.has("middle_block.1.proj_in.weight");
  return l;
}

RenameTable unet_rules(const UnetLayout& l) {
  RenameTable t;
  // Ref: DIFFUSERS_TO_LDM_MAPPING["unet"] (layers, addition_embed_type).
  t.rename("time_embed.0.", "time_embedding.linear_1.")
      .rename("time_embed.2.", "time_embedding.linear_2.")
      .rename("label_emb.0.0.", "add_embedding.linear_1.")
      .rename("label_emb.0.2.", "add_embedding.linear_2.")
      .rename("input_blocks.0.0.", "conv_in.")
      .rename("out.0.", "conv_norm_out.")
      .rename("out.2.", "conv_out.");
  const int per = l.layers_per_block + 1;  // input_blocks per level, with the downsampler
  for (int lv = 0; lv < l.levels; ++lv) {
    for (int j = 0; j < l.layers_per_block; ++j) {
      const std::string in = "input_blocks." + s(per * lv + j + 1) + ".";
      resnet(t, in + "0.", "down_blocks." + s(lv) + ".resnets." + s(j) + ".");
      if (l.down_depth[lv] > 0)
        t.rename(in + "1.", "down_blocks." + s(lv) + ".attentions." + s(j) + ".");
    }
    if (lv + 1 < l.levels)
      t.rename("input_blocks." + s(per * (lv + 1)) + ".0.op.",
               "down_blocks." + s(lv) + ".downsamplers.0.conv.");
  }
  resnet(t, "middle_block.0.", "mid_block.resnets.0.");
  t.rename("middle_block.1.", "mid_block.attentions.0.");
  resnet(t, "middle_block.2.", "mid_block.resnets.1.");
  for (int ub = 0; ub < l.levels; ++ub) {
    const std::string hf = "up_blocks." + s(ub) + ".";
    if (ub + 1 < l.levels)  // after the attention of the block's last layer, if any
      t.rename("output_blocks." + s(per * ub + l.layers_per_block) + "." +
                   (l.up_depth[ub] > 0 ? "2" : "1") + ".conv.",
               hf + "upsamplers.0.conv.");
    for (int j = 0; j < per; ++j) {
      const std::string out = "output_blocks." + s(per * ub + j) + ".";
      resnet(t, out + "0.", hf + "resnets." + s(j) + ".");
      if (l.up_depth[ub] > 0) t.rename(out + "1.", hf + "attentions." + s(j) + ".");
    }
  }
  return t;
}

namespace {

// create_unet_diffusers_config_from_ldm, from shapes instead of the original yaml.
Json unet_config(const KeyView& u, const UnetLayout& l, const std::string& family) {
  const auto& src = u.source().describe();
  Json down = Json::array(), up = Json::array(), heads = Json::array();
  Json depth = Json::array();
  int64_t cross = 0;
  bool linear = false;
  const int per = l.layers_per_block + 1;
  for (int lv = 0; lv < l.levels; ++lv) {
    down.push_back(l.down_depth[lv] > 0 ? "CrossAttnDownBlock2D" : "DownBlock2D");
    up.push_back(l.up_depth[lv] > 0 ? "CrossAttnUpBlock2D" : "UpBlock2D");
    KILN_CHECK(l.up_depth[lv] == l.down_depth[l.levels - 1 - lv], Status::unsupported, src,
               "U-Net up block ", lv, " has ", l.up_depth[lv],
               " transformer layers, its mirrored down level ", l.down_depth[l.levels - 1 - lv],
               " (asymmetric U-Nets are not supported)");
    depth.push_back(std::max(l.down_depth[lv], 1));
    // SD1: 8 heads everywhere; SD2/SDXL: heads of 64 channels (diffusers issue 2011 naming).
    heads.push_back(family == "sd1" ? 8 : l.channels[lv] / 64);
    if (l.down_depth[lv] > 0 && cross == 0) {
      const std::string a = "input_blocks." + s(per * lv + 1) + ".1.";
      cross = u.dim(a + "transformer_blocks.0.attn2.to_k.weight", 1, "cross-attention width");
      linear = u.shape(a + "proj_in.weight", "attention input projection").size() == 2;
    }
  }
  if (cross == 0 && l.mid_attention) {
    cross = u.dim("middle_block.1.transformer_blocks.0.attn2.to_k.weight", 1, "cross-attention");
    linear = u.shape("middle_block.1.proj_in.weight", "attention projection").size() == 2;
  }
  const bool same_depth =
      std::all_of(depth.begin(), depth.end(), [&](const Json& d) { return d == depth[0]; });
  Json c = {
      {"_class_name", "UNet2DConditionModel"},
      {"in_channels", u.dim("input_blocks.0.0.weight", 1, "conv_in")},
      {"out_channels", u.dim("out.2.weight", 0, "conv_out")},
      {"block_out_channels", l.channels},
      {"layers_per_block", l.layers_per_block},
      {"down_block_types", down},
      {"up_block_types", up},
      {"mid_block_type", l.mid_attention ? Json("UNetMidBlock2DCrossAttn") : Json(nullptr)},
      {"cross_attention_dim", cross},
      {"attention_head_dim", family == "sd1" ? Json(8) : heads},
      {"use_linear_projection", linear},
      {"transformer_layers_per_block", same_depth ? depth[0] : depth},
      {"norm_num_groups", 32},
      {"sample_size", family == "sd1"   ? 64
                      : family == "sd2" ? 96
                                        : 128},
  };
  const int64_t temb = u.dim("time_embed.0.weight", 0, "time embedding");
  if (temb != 4 * l.channels[0]) c["time_embedding_dim"] = temb;
  if (u.has("label_emb.0.0.weight")) {  // SDXL: text_time added conditioning
    c["addition_embed_type"] = "text_time";
    c["addition_time_embed_dim"] = 256;
    c["projection_class_embeddings_input_dim"] =
        u.dim("label_emb.0.0.weight", 1, "added-condition projection");
  }
  return c;
}

}  // namespace

// ---------------------------------------------------------------- VAE

RenameTable vae_rules(int levels) {
  RenameTable t;
  for (const std::string side : {"encoder.", "decoder."}) {
    t.rename(side + "norm_out.", side + "conv_norm_out.")
        .rename(side + "mid.block_1.", side + "mid_block.resnets.0.")
        .rename(side + "mid.block_2.", side + "mid_block.resnets.1.");
    // The original attention is a 1x1-conv block; diffusers' Attention is linear.
    const std::string a = side + "mid.attn_1.", d = side + "mid_block.attentions.0.";
    t.rename(a + "norm.", d + "group_norm.")
        .conv1x1_to_linear(a + "q.", d + "to_q.")
        .conv1x1_to_linear(a + "k.", d + "to_k.")
        .conv1x1_to_linear(a + "v.", d + "to_v.")
        .conv1x1_to_linear(a + "proj_out.", d + "to_out.0.");
  }
  t.rename("encoder.down.{}.block.{}.nin_shortcut.",
           "encoder.down_blocks.{}.resnets.{}.conv_shortcut.")
      .rename("encoder.down.{}.block.{}.", "encoder.down_blocks.{}.resnets.{}.")
      .rename("encoder.down.{}.downsample.conv.", "encoder.down_blocks.{}.downsamplers.0.conv.");
  // The decoder's levels are numbered from the bottom in the original, from the top in diffusers.
  for (int i = 0; i < levels; ++i) {
    const std::string ldm = "decoder.up." + s(levels - 1 - i) + ".";
    const std::string hf = "decoder.up_blocks." + s(i) + ".";
    t.rename(ldm + "block.{}.nin_shortcut.", hf + "resnets.{}.conv_shortcut.")
        .rename(ldm + "block.{}.", hf + "resnets.{}.")
        .rename(ldm + "upsample.conv.", hf + "upsamplers.0.conv.");
  }
  return t;
}

namespace {

Json vae_config(const KeyView& v, const std::string& family) {
  const int levels = v.count("encoder.down.");
  KILN_CHECK(levels > 0, Status::format_error, v.source().describe(), "no VAE encoder levels (",
             v.prefix(), "encoder.down.0.*)");
  std::vector<int64_t> ch;
  for (int i = 0; i < levels; ++i)
    ch.push_back(v.dim("encoder.down." + s(i) + ".block.0.conv1.weight", 0, "VAE level width"));
  Json c = {
      {"_class_name", "AutoencoderKL"},
      {"in_channels", v.dim("encoder.conv_in.weight", 1, "VAE input")},
      {"out_channels", v.dim("decoder.conv_out.weight", 0, "VAE output")},
      {"latent_channels", v.dim("decoder.conv_in.weight", 1, "VAE latent channels")},
      {"block_out_channels", ch},
      {"layers_per_block", v.count("encoder.down.0.block.")},
      {"down_block_types", std::vector<std::string>(levels, "DownEncoderBlock2D")},
      {"up_block_types", std::vector<std::string>(levels, "UpDecoderBlock2D")},
      {"norm_num_groups", 32},
      {"use_quant_conv", v.has("quant_conv.weight")},
      {"use_post_quant_conv", v.has("post_quant_conv.weight")},
      {"mid_block_add_attention", v.has("encoder.mid.attn_1.q.weight")},
  };
  // Ref: the released VAE configs (SD1/SD2, SDXL, SD3, FLUX.1); sample_size is the training
  // resolution. The 16-channel VAEs shift before scaling.
  if (family == "sd3") {
    c["scaling_factor"] = 1.5305;
    c["shift_factor"] = 0.0609;
  } else if (family == "flux") {
    c["scaling_factor"] = 0.3611;
    c["shift_factor"] = 0.1159;
  } else {
    c["scaling_factor"] = family == "sd1" || family == "sd2" ? 0.18215 : 0.13025;
  }
  c["sample_size"] = family == "sd1" ? 512 : family == "sd2" ? 768 : 1024;
  return c;
}

// ---------------------------------------------------------------- family entry

// SDXL has added conditioning (the refiner's projection is 5 * 256 + 1280 = 2560 wide, the
// base's 6 * 256 + 1280 = 2816); SD2 cross-attends to OpenCLIP ViT-H's 1024-wide states.
std::string unet_only_family(const KeyView& u) {
  if (u.has("label_emb.0.0.weight"))
    return u.dim("label_emb.0.0.weight", 1, "") == 2560 ? "sdxl_refiner" : "sdxl";
  const int blocks = u.count("input_blocks.");
  for (int i = 1; i < blocks; ++i) {
    const std::string k = "input_blocks." + s(i) + ".1.transformer_blocks.0.attn2.to_k.weight";
    if (u.has(k)) return u.dim(k, 1, "") == 1024 ? "sd2" : "sd1";
  }
  return "sd1";
}

bool detect(const io::WeightSource& src) {
  return src.has(std::string(kUnet) + "input_blocks.0.0.weight");
}

FamilyBuild build(const std::shared_ptr<const io::WeightSource>& src, const SingleFileOptions& o) {
  FamilyBuild b;
  const KeyView u(*src, kUnet);
  if (has_prefix(*src, kXlClipG))
    b.family = "sdxl";
  else if (has_prefix(*src, kRefinerClipG))
    b.family = "sdxl_refiner";
  else if (has_prefix(*src, kSd2Clip))
    b.family = "sd2";
  else if (has_prefix(*src, kSd1Clip))
    b.family = "sd1";
  else  // no text encoder in the file: judge by the U-Net, as diffusers' v2 / xl keys do
    b.family = unet_only_family(u);
  const UnetLayout layout = UnetLayout::read(u);
  Json uc = unet_config(u, layout, b.family);
  if (uc["in_channels"] == 9) b.variant = "inpainting";
  b.notes.push_back(
      "prediction type (epsilon or v_prediction) is not stored in the weights; SD2.x 768 models "
      "need v_prediction set by the caller");
  b.components.push_back(make_component(src, "unet", "UNet2DConditionModel", std::move(uc), kUnet,
                                        unet_rules(layout), o));
  if (has_prefix(*src, kVae)) b.components.push_back(vae_component(src, kVae, b.family, o));
  if (b.family == "sd1" && has_prefix(*src, kSd1Clip))
    b.components.push_back(clip_l_component(src, kSd1Clip, "text_encoder", o));
  if (b.family == "sd2" && has_prefix(*src, kSd2Clip))
    b.components.push_back(open_clip_component(src, kSd2Clip, "text_encoder", false, true, o));
  if (b.family == "sdxl") {
    if (has_prefix(*src, kXlClipL))
      b.components.push_back(clip_l_component(src, kXlClipL, "text_encoder", o));
    if (has_prefix(*src, kXlClipG))
      b.components.push_back(open_clip_component(src, kXlClipG, "text_encoder_2", true, false, o));
  }
  if (b.family == "sdxl_refiner" && has_prefix(*src, kRefinerClipG))
    b.components.push_back(
        open_clip_component(src, kRefinerClipG, "text_encoder_2", true, false, o));
  return b;
}

}  // namespace
}  // namespace kiln::pipelines::loaders::sd

namespace kiln::pipelines::loaders {

using Json = nlohmann::json;

// ---------------------------------------------------------------- CLIP text encoders

SingleFileComponent vae_component(const std::shared_ptr<const io::WeightSource>& src,
                                  const std::string& prefix, const std::string& family,
                                  const SingleFileOptions& o) {
  Json c = sd::vae_config(KeyView(*src, prefix), family);
  const RenameTable rules = sd::vae_rules(static_cast<int>(c["block_out_channels"].size()));
  return make_component(src, "vae", "AutoencoderKL", std::move(c), prefix, rules, o);
}

SingleFileComponent clip_l_component(const std::shared_ptr<const io::WeightSource>& src,
                                     const std::string& prefix, std::string name,
                                     const SingleFileOptions& o, const std::string& hidden_act) {
  const KeyView k(*src, prefix);
  // Older SD1 files lack the text_model. level (convert_ldm_clip_checkpoint strips both forms).
  const std::string tm = k.has("text_model.embeddings.token_embedding.weight") ? "text_model." : "";
  RenameTable t;
  t.ignore("text_model.embeddings.position_ids")  // a transformers < 4.31 buffer
      .ignore("embeddings.position_ids")
      .rename("embeddings.", "text_model.embeddings.")
      .rename("encoder.", "text_model.encoder.")
      .rename("final_layer_norm.", "text_model.final_layer_norm.");
  const int64_t hidden = k.dim(tm + "embeddings.token_embedding.weight", 1, "CLIP token embedding");
  Json c = {
      {"architectures", {"CLIPTextModel"}},
      {"vocab_size", k.dim(tm + "embeddings.token_embedding.weight", 0, "CLIP token embedding")},
      {"hidden_size", hidden},
      {"max_position_embeddings",
       k.dim(tm + "embeddings.position_embedding.weight", 0, "CLIP positions")},
      {"num_hidden_layers", k.count(tm + "encoder.layers.")},
      {"intermediate_size", k.dim(tm + "encoder.layers.0.mlp.fc1.weight", 0, "CLIP MLP width")},
      {"num_attention_heads", hidden / 64},
      {"hidden_act", hidden_act},
      {"eos_token_id", 2},
  };
  // SD3 stores both CLIPs with their projection (CLIPTextModelWithProjection); SD1/SDXL's
  // CLIP-L has none.
  const bool proj = k.has("text_projection.weight");
  if (proj) c["projection_dim"] = k.dim("text_projection.weight", 0, "CLIP projection");
  const char* cls = proj ? "CLIPTextModelWithProjection" : "CLIPTextModel";
  c["architectures"] = {cls};
  return make_component(src, std::move(name), cls, std::move(c), prefix, t, o);
}

SingleFileComponent open_clip_component(const std::shared_ptr<const io::WeightSource>& src,
                                        const std::string& prefix, std::string name,
                                        bool with_projection, bool drop_last_layer,
                                        const SingleFileOptions& o) {
  const KeyView k(*src, prefix);
  const int layers = k.count("transformer.resblocks.");
  RenameTable t;
  t.ignore("logit_scale");
  if (!with_projection) t.ignore("text_projection");
  if (drop_last_layer) t.ignore("transformer.resblocks." + std::to_string(layers - 1) + ".");
  // Ref: DIFFUSERS_TO_LDM_MAPPING["openclip"] and convert_open_clip_checkpoint.
  const std::string r = "transformer.resblocks.{}.", l = "text_model.encoder.layers.{}.";
  t.rename("token_embedding.", "text_model.embeddings.token_embedding.")
      .rename("positional_embedding", "text_model.embeddings.position_embedding.weight")
      .rename("ln_final.", "text_model.final_layer_norm.")
      .transpose("text_projection", "text_projection.weight")  // stored (D, proj) for x @ P
      .rename(r + "ln_1.", l + "layer_norm1.")
      .rename(r + "ln_2.", l + "layer_norm2.")
      .rename(r + "mlp.c_fc.", l + "mlp.fc1.")
      .rename(r + "mlp.c_proj.", l + "mlp.fc2.")
      .rename(r + "attn.out_proj.", l + "self_attn.out_proj.")
      .split(r + "attn.in_proj_",
             {l + "self_attn.q_proj.", l + "self_attn.k_proj.", l + "self_attn.v_proj."});
  const int64_t hidden = k.dim("token_embedding.weight", 1, "OpenCLIP token embedding");
  Json c = {
      {"architectures", {with_projection ? "CLIPTextModelWithProjection" : "CLIPTextModel"}},
      {"vocab_size", k.dim("token_embedding.weight", 0, "OpenCLIP token embedding")},
      {"hidden_size", hidden},
      {"max_position_embeddings", k.dim("positional_embedding", 0, "OpenCLIP positions")},
      {"num_hidden_layers", layers - (drop_last_layer ? 1 : 0)},
      {"intermediate_size",
       k.dim("transformer.resblocks.0.mlp.c_fc.weight", 0, "OpenCLIP MLP width")},
      {"num_attention_heads", hidden / 64},
      {"hidden_act", "gelu"},
      {"eos_token_id", 2},
  };
  if (with_projection) c["projection_dim"] = k.dim("text_projection", 1, "OpenCLIP projection");
  return make_component(src, std::move(name),
                        with_projection ? "CLIPTextModelWithProjection" : "CLIPTextModel",
                        std::move(c), prefix, t, o);
}

// A VAE saved on its own in the original layout (vae-ft-mse-840000-ema-pruned.safetensors,
// sdxl_vae.safetensors): encoder.* / decoder.* / quant_conv.* without a prefix.
namespace sd {
namespace {

bool detect_vae(const io::WeightSource& src) {
  return src.has("encoder.down.0.block.0.conv1.weight") && src.has("decoder.conv_in.weight");
}

FamilyBuild build_vae(const std::shared_ptr<const io::WeightSource>& src,
                      const SingleFileOptions& o) {
  FamilyBuild b;
  b.family = "sd_vae";
  b.notes.push_back(
      "a VAE alone: SD1/SD2 and SDXL VAEs share the layout, scaling_factor 0.18215 (SD1/SD2) is "
      "assumed; SDXL's is 0.13025");
  b.components.push_back(vae_component(src, "", "sd1", o));
  return b;
}

}  // namespace
}  // namespace sd

const FamilyRules& sd_vae_family() {
  static const FamilyRules r{"sd_vae",
                             "encoder.down.0.block.0.conv1.weight + decoder.conv_in.weight (a "
                             "VAE in the original layout)",
                             sd::detect_vae, sd::build_vae};
  return r;
}

const FamilyRules& sd_family() {
  static const FamilyRules r{
      "sd", "model.diffusion_model.input_blocks.0.0.weight (SD1.x/SD2.x/SDXL U-Net)", sd::detect,
      sd::build};
  return r;
}

}  // namespace kiln::pipelines::loaders
