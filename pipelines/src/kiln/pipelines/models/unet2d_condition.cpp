#include "kiln/pipelines/models/unet2d_condition.hpp"

#include <algorithm>
#include <functional>

#include "kiln/pipelines/models/bind_weights.hpp"
#include "kiln/io/module.hpp"
#include "kiln/io/weight_source.hpp"

// Ref: diffusers 0.42.1 src/diffusers/models/unets/unet_2d_condition.py — __init__ (how the
// per-block settings are resolved), get_time_embed / get_aug_embed ("text_time"), forward.

namespace kiln::pipelines::models {

namespace {

using Json = nlohmann::json;
constexpr const char* kCtx = "UNet2DConditionModel";

const Json* find(const io::ComponentConfig& c, const char* key) {
  auto it = c.json().find(key);
  return it == c.json().end() || it->is_null() ? nullptr : &*it;
}

[[noreturn]] void bad(const io::ComponentConfig& c, const char* key, const std::string& what) {
  fail(Status::format_error, str("config key \"", key, "\" ", what), c.file().string());
}

[[noreturn]] void unsupported(const io::ComponentConfig& c, const char* key, const Json& v) {
  fail(Status::unsupported,
       str("config key \"", key, "\" = ", v.dump().substr(0, 60),
           " selects a UNet2DConditionModel feature kiln does not implement (it runs the SD1.x, "
           "SD2.x and SDXL configurations)"),
       c.file().string());
}

// `key` must be absent/null, or equal `expected` (e.g. false, "default").
void require_default(const io::ComponentConfig& c, const char* key, const Json& expected) {
  if (const Json* v = find(c, key); v && *v != expected) unsupported(c, key, *v);
}

int as_int(const io::ComponentConfig& c, const char* key, const Json& v) {
  if (!v.is_number_integer()) bad(c, key, str("must hold integers, got ", v.dump()));
  return v.get<int>();
}

// An int (the same for every block) or a list with one int per block; `fallback` when absent.
std::vector<int> per_block(const io::ComponentConfig& c, const char* key, size_t n, int fallback) {
  const Json* v = find(c, key);
  if (!v) return std::vector<int>(n, fallback);
  if (!v->is_array()) return std::vector<int>(n, as_int(c, key, *v));
  if (v->size() != n) bad(c, key, str("has ", v->size(), " entries for ", n, " blocks"));
  std::vector<int> out;
  for (const Json& e : *v) out.push_back(as_int(c, key, e));
  return out;
}

std::vector<std::string> strings_or(const io::ComponentConfig& c, const char* key,
                                    std::vector<std::string> fallback) {
  return find(c, key) ? c.get_string_list(key) : std::move(fallback);
}

}  // namespace

UNet2DConditionConfig UNet2DConditionConfig::from_json(const io::ComponentConfig& c) {
  // Features outside SD1.x/2.x/SDXL: refused by name rather than silently ignored.
  for (const char* key :
       {"class_embed_type", "num_class_embeds", "encoder_hid_dim", "encoder_hid_dim_type",
        "time_embedding_act_fn", "timestep_post_act", "cross_attention_norm", "num_attention_heads",
        "reverse_transformer_layers_per_block"}) {
    if (const Json* v = find(c, key)) unsupported(c, key, *v);
  }
  require_default(c, "time_embedding_type", "positional");
  require_default(c, "resnet_time_scale_shift", "default");
  require_default(c, "act_fn", "silu");
  require_default(c, "attention_type", "default");
  require_default(c, "dual_cross_attention", false);
  if (const Json* v = find(c, "only_cross_attention")) {
    const bool any =
        v->is_array() ? std::any_of(v->begin(), v->end(), [](const Json& e) { return e == true; })
                      : *v != false;
    if (any) unsupported(c, "only_cross_attention", *v);
  }
  if (const Json* v = find(c, "addition_embed_type"); v && *v != "text_time")
    unsupported(c, "addition_embed_type", *v);

  UNet2DConditionConfig k;
  // Defaults are those of diffusers' __init__, which from_pretrained uses for absent keys.
  k.in_channels = c.get_int_or("in_channels", 4);
  k.out_channels = c.get_int_or("out_channels", 4);
  k.center_input_sample = c.get_bool_or("center_input_sample", false);
  k.flip_sin_to_cos = c.get_bool_or("flip_sin_to_cos", true);
  k.freq_shift = static_cast<float>(c.get_float_or("freq_shift", 0.0));
  k.down_block_types = strings_or(
      c, "down_block_types",
      {"CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"});
  k.up_block_types =
      strings_or(c, "up_block_types",
                 {"UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"});
  k.block_out_channels = find(c, "block_out_channels") ? c.get_int_list("block_out_channels")
                                                       : std::vector<int64_t>{320, 640, 1280, 1280};
  const size_t n = k.block_out_channels.size();
  if (n == 0) bad(c, "block_out_channels", "is empty");
  if (k.down_block_types.size() != n || k.up_block_types.size() != n)
    bad(c, "down_block_types",
        str("and up_block_types must have one entry per block_out_channels (", n, "), got ",
            k.down_block_types.size(), " and ", k.up_block_types.size()));
  for (const auto& t : k.down_block_types)
    if (t != "CrossAttnDownBlock2D" && t != "DownBlock2D") unsupported(c, "down_block_types", t);
  for (const auto& t : k.up_block_types)
    if (t != "CrossAttnUpBlock2D" && t != "UpBlock2D") unsupported(c, "up_block_types", t);
  if (const Json* v = find(c, "mid_block_type"); v && *v != "UNetMidBlock2DCrossAttn")
    unsupported(c, "mid_block_type", *v);
  // An explicit null mid_block_type means no mid block; an absent key the default one.
  k.mid_block = !(c.json().contains("mid_block_type") && c.json()["mid_block_type"].is_null());

  k.layers_per_block = per_block(c, "layers_per_block", n, 2);
  if (const Json* v = find(c, "transformer_layers_per_block"); v && v->is_array()) {
    if (v->size() != n) bad(c, "transformer_layers_per_block", str("needs ", n, " entries"));
    for (size_t i = 0; i < n; ++i) {
      // Per-resnet lists (asymmetric U-Nets) need reverse_transformer_layers_per_block too.
      if ((*v)[i].is_array()) unsupported(c, "transformer_layers_per_block", *v);
      k.transformer_layers.emplace_back(k.layers_per_block[i],
                                        as_int(c, "transformer_layers_per_block", (*v)[i]));
    }
  } else {
    const int t = v ? as_int(c, "transformer_layers_per_block", *v) : 1;
    for (size_t i = 0; i < n; ++i) k.transformer_layers.emplace_back(k.layers_per_block[i], t);
  }
  // Up block i mirrors down block n-1-i with one resnet more.
  for (size_t i = 0; i < n; ++i) {
    const size_t d = n - 1 - i;
    k.up_transformer_layers.emplace_back(k.layers_per_block[d] + 1, k.transformer_layers[d].at(0));
  }

  if (const Json* v = find(c, "cross_attention_dim"); v && v->is_array()) {
    const std::vector<int> dims = per_block(c, "cross_attention_dim", n, 0);
    if (std::adjacent_find(dims.begin(), dims.end(), std::not_equal_to<>()) != dims.end())
      unsupported(c, "cross_attention_dim", *v);  // one text encoder feeds every block
    k.cross_attention_dim = dims[0];
  } else {
    k.cross_attention_dim = c.get_int_or("cross_attention_dim", 1280);
  }
  k.num_attention_heads = per_block(c, "attention_head_dim", n, 8);
  k.use_linear_projection = c.get_bool_or("use_linear_projection", false);
  if (c.json().contains("norm_num_groups") && c.json()["norm_num_groups"].is_null())
    unsupported(c, "norm_num_groups", nullptr);
  k.norm_num_groups = static_cast<int>(c.get_int_or("norm_num_groups", 32));
  k.norm_eps = static_cast<float>(c.get_float_or("norm_eps", 1e-5));
  k.downsample_padding = static_cast<int>(c.get_int_or("downsample_padding", 1));
  k.mid_block_scale_factor = static_cast<float>(c.get_float_or("mid_block_scale_factor", 1.0));
  k.conv_in_kernel = static_cast<int>(c.get_int_or("conv_in_kernel", 3));
  k.conv_out_kernel = static_cast<int>(c.get_int_or("conv_out_kernel", 3));
  k.time_embedding_dim = c.get_int_or("time_embedding_dim", 0);
  k.time_cond_proj_dim = c.get_int_or("time_cond_proj_dim", 0);

  k.text_time = find(c, "addition_embed_type") != nullptr;
  if (k.text_time) {
    k.addition_time_embed_dim = c.get_int("addition_time_embed_dim");
    k.projection_class_embeddings_input_dim = c.get_int("projection_class_embeddings_input_dim");
  }
  for (size_t i = 0; i < n; ++i) {
    if (k.block_out_channels[i] <= 0 || k.layers_per_block[i] <= 0 || k.num_attention_heads[i] <= 0)
      bad(c, "block_out_channels",
          "layers_per_block and attention_head_dim must be positive for every block");
  }
  return k;
}

// ---------------------------------------------------------------- construction

UNet2DConditionModel::UNet2DConditionModel(const UNet2DConditionConfig& cfg) : config_(cfg) {
  const auto& ch = cfg.block_out_channels;
  const size_t n = cfg.levels();
  const int64_t temb = cfg.time_embed_dim();
  conv_in =
      nn::Conv(2, cfg.in_channels, ch[0], cfg.conv_in_kernel, 1, (cfg.conv_in_kernel - 1) / 2);
  time_embedding = nn::TimestepEmbedding(ch[0], temb);  // time_proj has no weights
  if (cfg.time_cond_proj_dim > 0)
    time_cond_proj.emplace(cfg.time_cond_proj_dim, ch[0], /*bias=*/false);
  if (cfg.text_time) add_embedding.emplace(cfg.projection_class_embeddings_input_dim, temb);

  auto spec = [&](bool cross, int layers, std::vector<int> tl, int heads) {
    unet::BlockSpec s;
    s.cross_attention = cross;
    s.num_layers = layers;
    s.transformer_layers = std::move(tl);
    s.heads = heads;
    s.cross_attention_dim = cfg.cross_attention_dim;
    s.linear_projection = cfg.use_linear_projection;
    s.groups = cfg.norm_num_groups;
    s.eps = cfg.norm_eps;
    s.temb_channels = temb;
    return s;
  };
  for (size_t i = 0; i < n; ++i) {
    const bool cross = cfg.down_block_types[i] == "CrossAttnDownBlock2D";
    down_blocks.emplace_back(
        spec(cross, cfg.layers_per_block[i], cfg.transformer_layers[i], cfg.num_attention_heads[i]),
        i == 0 ? ch[0] : ch[i - 1], ch[i], /*add_downsample=*/i + 1 < n, cfg.downsample_padding);
  }
  if (cfg.mid_block) {
    mid_block.emplace(
        spec(true, 1, {cfg.transformer_layers.back().at(0)}, cfg.num_attention_heads.back()),
        ch.back(), cfg.mid_block_scale_factor);
  }
  for (size_t i = 0; i < n; ++i) {
    const size_t d = n - 1 - i;  // the down level this up block mirrors
    const bool cross = cfg.up_block_types[i] == "CrossAttnUpBlock2D";
    const int64_t prev = i == 0 ? ch[n - 1] : ch[d + 1];
    const int64_t in = ch[d == 0 ? 0 : d - 1];  // reversed_block_out_channels[min(i + 1, n - 1)]
    up_blocks.emplace_back(spec(cross, cfg.layers_per_block[d] + 1, cfg.up_transformer_layers[i],
                                cfg.num_attention_heads[d]),
                           in, prev, ch[d], /*add_upsample=*/i + 1 < n);
  }
  conv_norm_out = nn::GroupNorm(cfg.norm_num_groups, ch[0], cfg.norm_eps);
  conv_out =
      nn::Conv(2, ch[0], cfg.out_channels, cfg.conv_out_kernel, 1, (cfg.conv_out_kernel - 1) / 2);
}

void UNet2DConditionModel::visit_params(io::ParamVisitor& v) {
  v.child("conv_in", conv_in);
  v.child("time_embedding", time_embedding);
  if (time_cond_proj) v.child("time_embedding.cond_proj", *time_cond_proj);
  if (add_embedding) v.child("add_embedding", *add_embedding);
  for (size_t i = 0; i < down_blocks.size(); ++i)
    v.child("down_blocks." + std::to_string(i), down_blocks[i]);
  if (mid_block) v.child("mid_block", *mid_block);
  for (size_t i = 0; i < up_blocks.size(); ++i)
    v.child("up_blocks." + std::to_string(i), up_blocks[i]);
  v.child("conv_norm_out", conv_norm_out);
  v.child("conv_out", conv_out);
}

UNet2DConditionModel UNet2DConditionModel::load(const std::filesystem::path& dir,
                                                const UNetLoadOptions& options) {
  const io::ComponentConfig cfg = io::ComponentConfig::load(dir / "config.json");
  cfg.expect_class("UNet2DConditionModel");
  UNet2DConditionModel model(UNet2DConditionConfig::from_json(cfg));
  const auto weights = io::open_weights(dir);
  bind_weights(model, *weights, cfg.file(), nullptr, options.float_dtype);
  return model;
}

// ---------------------------------------------------------------- forward

void UNet2DConditionModel::check_inputs(const Tensor& sample, const Tensor& ehs) const {
  const auto& c = config_;
  KILN_ARG(sample.defined() && sample.ndim() == 4 && sample.dtype() == DType::f32, kCtx,
           "sample must be f32 (B, C, H, W), got ", sample.defined() ? sample.str() : "undefined");
  KILN_ARG(sample.size(1) == c.in_channels, kCtx, "sample ", sample.shape().str(), " has ",
           sample.size(1), " channels, the model's in_channels is ", c.in_channels,
           c.in_channels == 9 ? " (inpainting: latents ++ mask ++ masked-image latents)" : "");
  KILN_ARG(sample.size(0) > 0 && sample.size(2) > 0 && sample.size(3) > 0, kCtx, "sample ",
           sample.shape().str(), " is empty");
  KILN_ARG(ehs.defined() && ehs.ndim() == 3 && ehs.dtype() == DType::f32, kCtx,
           "encoder_hidden_states must be f32 (B, S, D), got ",
           ehs.defined() ? ehs.str() : "undefined");
  KILN_ARG(ehs.size(0) == sample.size(0), kCtx, "encoder_hidden_states ", ehs.shape().str(),
           " has batch ", ehs.size(0), ", sample ", sample.shape().str(), " has ", sample.size(0));
  KILN_ARG(ehs.size(2) == c.cross_attention_dim && ehs.size(1) > 0, kCtx, "encoder_hidden_states ",
           ehs.shape().str(), " must end in cross_attention_dim ", c.cross_attention_dim);
}

Tensor UNet2DConditionModel::time_embedding_of(const Tensor& timestep, const Tensor& cond,
                                               int64_t batch) const {
  KILN_ARG(timestep.defined() && timestep.ndim() <= 1 &&
               (timestep.numel() == 1 || timestep.numel() == batch),
           kCtx, "timestep must hold 1 or batch (", batch, ") values, got ",
           timestep.defined() ? timestep.str() : "undefined");
  // get_time_embed: broadcast to the batch, then the sinusoidal projection in f32.
  Tensor t = timestep.to(DType::f32).reshape({timestep.numel()}).expand({batch});
  Tensor t_emb = nn::timestep_embedding(t.contiguous(), config_.block_out_channels[0],
                                        config_.flip_sin_to_cos, config_.freq_shift);
  if (cond.defined()) {  // TimestepEmbedding.forward(sample, condition)
    KILN_ARG(time_cond_proj, kCtx,
             "timestep_cond was given but this U-Net has no time_cond_proj_dim (only "
             "LCM-distilled U-Nets take a guidance embedding)");
    KILN_ARG(cond.ndim() == 2 && cond.size(0) == batch &&
                 cond.size(1) == config_.time_cond_proj_dim && cond.dtype() == DType::f32,
             kCtx, "timestep_cond must be f32 (", batch, ", ", config_.time_cond_proj_dim,
             "), got ", cond.str());
    t_emb = ops::add(t_emb, (*time_cond_proj)(cond));
  }
  return time_embedding(t_emb);  // (B, time_embed_dim)
}

Tensor UNet2DConditionModel::add_embedding_of(const UNetAddedConditions& a, int64_t batch) const {
  // get_aug_embed, "text_time": add_time_proj(time_ids.flatten()) reshaped to (B, -1),
  // concatenated after text_embeds, through add_embedding.
  const auto& c = config_;
  KILN_ARG(a.text_embeds.defined() && a.time_ids.defined(), kCtx,
           "this U-Net has addition_embed_type \"text_time\" (SDXL) and needs the added "
           "conditions text_embeds (B, pooled dim) and time_ids (B, 6); missing ",
           !a.text_embeds.defined() ? "text_embeds" : "time_ids");
  KILN_ARG(a.text_embeds.ndim() == 2 && a.text_embeds.size(0) == batch &&
               a.text_embeds.dtype() == DType::f32,
           kCtx, "text_embeds must be f32 (", batch, ", D), got ", a.text_embeds.str());
  KILN_ARG(a.time_ids.ndim() == 2 && a.time_ids.size(0) == batch, kCtx, "time_ids must be (", batch,
           ", n), got ", a.time_ids.str());
  const int64_t dim = a.text_embeds.size(1) + a.time_ids.size(1) * c.addition_time_embed_dim;
  KILN_ARG(dim == c.projection_class_embeddings_input_dim, kCtx, "text_embeds ",
           a.text_embeds.shape().str(), " and time_ids ", a.time_ids.shape().str(), " give ", dim,
           " features (D + n * addition_time_embed_dim ", c.addition_time_embed_dim,
           "), projection_class_embeddings_input_dim is ", c.projection_class_embeddings_input_dim);
  Tensor ids = a.time_ids.to(DType::f32).reshape({a.time_ids.numel()});
  Tensor time_embeds =
      nn::timestep_embedding(ids, c.addition_time_embed_dim, c.flip_sin_to_cos, c.freq_shift)
          .view({batch, -1});  // (B, n * addition_time_embed_dim)
  const Tensor parts[] = {a.text_embeds, time_embeds};
  return (*add_embedding)(ops::concat(parts, -1));  // (B, time_embed_dim)
}

Tensor UNet2DConditionModel::forward(const Tensor& sample, const Tensor& timestep,
                                     const Tensor& encoder_hidden_states,
                                     const UNetAddedConditions& added) const {
  check_inputs(sample, encoder_hidden_states);
  const int64_t B = sample.size(0);
  const Tensor& ctx = encoder_hidden_states;  // (B, S, cross_attention_dim)

  // 1. time: emb (B, T), T = 4 * block_out_channels[0]. Every resnet starts with silu(emb).
  Tensor emb = time_embedding_of(timestep, added.timestep_cond, B);
  if (add_embedding) emb = ops::add(emb, add_embedding_of(added, B));
  const Tensor temb_act = ops::silu(emb);

  // 2. conv_in: (B, in, H, W) -> (B, C0, H, W)
  Tensor x = config_.center_input_sample ? ops::scale(sample, 2.f, -1.f) : sample;
  x = conv_in(x);

  // 3. down: level i -> (B, C_i, ceil(H / 2^i), ceil(W / 2^i)); skips collect conv_in's output,
  //    each resnet/transformer output and each downsampled tensor.
  std::vector<Tensor> skips{x};
  for (const auto& block : down_blocks) x = block(x, temb_act, ctx, skips);

  // 4. mid: (B, C_last, h, w)
  if (mid_block) x = (*mid_block)(x, temb_act, ctx);

  // 5. up: each block consumes layers+1 skips; sizes that did not halve evenly are restored by
  //    upsampling to the next skip's size (diffusers' forward_upsample_size).
  const int64_t factor = int64_t{1} << (up_blocks.size() - 1);
  const bool forward_size = sample.size(2) % factor != 0 || sample.size(3) % factor != 0;
  for (size_t i = 0; i < up_blocks.size(); ++i) {
    const size_t used = up_blocks[i].resnets.size();
    std::vector<int64_t> size;
    if (forward_size && i + 1 < up_blocks.size()) {
      const Tensor& next = skips.at(skips.size() - used - 1);
      size = {next.size(2), next.size(3)};
    }
    x = up_blocks[i](x, temb_act, ctx, skips, size);
  }

  // 6. out: (B, C0, H, W) -> (B, out_channels, H, W)
  return conv_out(ops::silu(conv_norm_out(x)));
}

}  // namespace kiln::pipelines::models
