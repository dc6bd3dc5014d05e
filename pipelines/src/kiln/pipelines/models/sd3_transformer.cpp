#include "kiln/pipelines/models/sd3_transformer.hpp"

#include <algorithm>
#include <cmath>
#include <tuple>

#include "kiln/pipelines/models/bind_weights.hpp"
#include "kiln/core/error.hpp"

// Ref: diffusers 0.42.1 models/transformers/transformer_sd3.py, attention.py
// (JointTransformerBlock), attention_processor.py (JointAttnProcessor2_0), normalization.py,
// embeddings.py — see the header for the class list.

namespace kiln::pipelines::models {

namespace {

constexpr const char* kCtx = "SD3Transformer2DModel";
constexpr float kNormEps = 1e-6f;  // every LayerNorm/RMSNorm of the MMDiT

// norm * (1 + scale) + shift, scale/shift (B, 1, D) broadcast over tokens. The same op order as
// diffusers: (1 + scale) first, then the product, then the shift.
Tensor modulate(const Tensor& norm, const Tensor& shift, const Tensor& scale) {
  return ops::add(ops::mul(norm, ops::scale(scale, 1.f, 1.f)), shift);
}

Tensor layer_norm_plain(const Tensor& x) {
  return ops::layer_norm(x, Tensor{}, Tensor{}, kNormEps);
}

// x + gate * y, gate (B, 1, D).
Tensor gated_add(const Tensor& x, const Tensor& gate, const Tensor& y) {
  return ops::add(x, ops::mul(gate, y));
}

}  // namespace

// ---------------------------------------------------------------- config

bool SD3TransformerConfig::dual_attention(int layer) const {
  return std::find(dual_attention_layers.begin(), dual_attention_layers.end(), layer) !=
         dual_attention_layers.end();
}

SD3TransformerConfig SD3TransformerConfig::from_json(const io::ComponentConfig& c) {
  SD3TransformerConfig s;
  const std::string file = c.file().string();
  s.sample_size = c.get_int_or("sample_size", s.sample_size);
  s.patch_size = c.get_int_or("patch_size", s.patch_size);
  s.in_channels = c.get_int_or("in_channels", s.in_channels);
  s.num_layers = static_cast<int>(c.get_int_or("num_layers", s.num_layers));
  s.attention_head_dim = c.get_int_or("attention_head_dim", s.attention_head_dim);
  s.num_attention_heads =
      static_cast<int>(c.get_int_or("num_attention_heads", s.num_attention_heads));
  s.joint_attention_dim = c.get_int_or("joint_attention_dim", s.joint_attention_dim);
  s.caption_projection_dim = c.get_int_or("caption_projection_dim", s.caption_projection_dim);
  s.pooled_projection_dim = c.get_int_or("pooled_projection_dim", s.pooled_projection_dim);
  // diffusers: out_channels None -> in_channels.
  s.out_channels = c.get_int_or("out_channels", s.in_channels);
  // Absent: the default 96. Explicit null: no cropping (ComponentConfig reads both as unset).
  const auto& j = c.json();
  if (j.contains("pos_embed_max_size") && j["pos_embed_max_size"].is_null())
    s.pos_embed_max_size = 0;
  else
    s.pos_embed_max_size = c.get_int_or("pos_embed_max_size", s.pos_embed_max_size);
  if (c.has("dual_attention_layers"))
    for (int64_t l : c.get_int_list("dual_attention_layers"))
      s.dual_attention_layers.push_back(static_cast<int>(l));
  const std::string qk = c.get_string_or("qk_norm", "");
  if (qk.empty())
    s.qk_norm = nn::QkNorm::none;
  else if (qk == "rms_norm")
    s.qk_norm = nn::QkNorm::rms_norm;
  else if (qk == "layer_norm")
    s.qk_norm = nn::QkNorm::layer_norm;
  else
    fail(Status::unsupported,
         str("qk_norm \"", qk, "\" is not supported (SD3 uses null or \"rms_norm\")"), file);
  s.validate(file);
  return s;
}

void SD3TransformerConfig::validate(const std::string& context) const {
  KILN_CHECK(sample_size > 0 && patch_size > 0 && in_channels > 0 && out_channels > 0 &&
                 num_layers > 0 && attention_head_dim > 0 && num_attention_heads > 0 &&
                 joint_attention_dim > 0 && pooled_projection_dim > 0 && pos_embed_max_size >= 0,
             Status::format_error, context,
             "SD3 transformer sizes must be positive (pos_embed_max_size >= 0)");
  // The context stream enters the same square blocks as the image stream.
  KILN_CHECK(caption_projection_dim == inner_dim(), Status::format_error, context,
             "caption_projection_dim ", caption_projection_dim, " != num_attention_heads ",
             num_attention_heads, " * attention_head_dim ", attention_head_dim);
  // Half of the channels encode x, half y, each half as [sin | cos].
  KILN_CHECK(inner_dim() % 4 == 0, Status::format_error, context, "inner dim ", inner_dim(),
             " must be a multiple of 4 for the 2-D sincos position embedding");
  KILN_CHECK(sample_size >= patch_size, Status::format_error, context, "sample_size ", sample_size,
             " < patch_size ", patch_size);
  for (int l : dual_attention_layers)
    KILN_CHECK(l >= 0 && l < num_layers, Status::format_error, context,
               "dual_attention_layers holds ", l, ", outside [0, ", num_layers, ")");
}

namespace sd3 {

// ---------------------------------------------------------------- embeddings

Tensor sincos_pos_embed_2d(int64_t embed_dim, int64_t grid_h, int64_t grid_w, int64_t base_size) {
  KILN_ARG(embed_dim % 4 == 0 && grid_h > 0 && grid_w > 0 && base_size > 0, "sincos_pos_embed_2d",
           "embed_dim ", embed_dim, " must be a multiple of 4 and the grid/base sizes positive");
  const int64_t quarter = embed_dim / 4;  // frequencies per axis
  std::vector<double> omega(quarter);
  for (int64_t k = 0; k < quarter; ++k)
    omega[k] = 1.0 / std::pow(10000.0, static_cast<double>(k) / static_cast<double>(quarter));
  // Positions: arange(n, f32) / (n / base_size): a float32 division by the (rounded) scalar.
  auto position = [&](int64_t i, int64_t n) {
    const float step = static_cast<float>(static_cast<double>(n) / static_cast<double>(base_size));
    return static_cast<double>(static_cast<float>(i) / step);
  };
  Tensor out = Tensor::empty({grid_h * grid_w, embed_dim}, DType::f32);
  float* o = out.mutable_data<float>();
  for (int64_t i = 0; i < grid_h; ++i) {
    const double y = position(i, grid_h);
    for (int64_t j = 0; j < grid_w; ++j) {
      const double x = position(j, grid_w);
      float* row = o + (i * grid_w + j) * embed_dim;
      // meshgrid(w, h, indexing="xy"): the first half encodes the column, the second the row.
      for (int64_t k = 0; k < quarter; ++k) {
        row[k] = static_cast<float>(std::sin(x * omega[k]));
        row[quarter + k] = static_cast<float>(std::cos(x * omega[k]));
        row[2 * quarter + k] = static_cast<float>(std::sin(y * omega[k]));
        row[3 * quarter + k] = static_cast<float>(std::cos(y * omega[k]));
      }
    }
  }
  return out;
}

PatchEmbed::PatchEmbed(const SD3TransformerConfig& c)
    : patch(c.patch_size),
      dim(c.inner_dim()),
      max_size(c.pos_embed_max_size),
      base_size(c.sample_size / c.patch_size),
      proj(2, c.in_channels, c.inner_dim(), c.patch_size, static_cast<int>(c.patch_size), 0) {}

void PatchEmbed::visit_params(io::ParamVisitor& v) {
  v.child("proj", proj);
  // Persistent only with pos_embed_max_size; a deterministic function of the config, so files
  // converted without it still load (load() fills it in).
  if (max_size > 0) v.optional_param("pos_embed", &pos_embed, {1, max_size * max_size, dim});
}

Tensor PatchEmbed::positions(int64_t h, int64_t w) const {
  if (max_size == 0) return sincos_pos_embed_2d(dim, h, w, base_size).unsqueeze(0);
  KILN_ARG(h <= max_size && w <= max_size, kCtx, "a ", h, "x", w,
           " patch grid exceeds pos_embed_max_size ", max_size);
  KILN_CHECK(pos_embed.defined(), Status::internal, kCtx, "pos_embed is not set");
  // Centre crop of the (max, max) grid, rounding the offset down as diffusers does.
  const int64_t top = (max_size - h) / 2, left = (max_size - w) / 2;
  return pos_embed.reshape({max_size, max_size, dim})
      .narrow(0, top, h)
      .narrow(1, left, w)
      .reshape({1, h * w, dim});
}

Tensor PatchEmbed::operator()(const Tensor& x) const {
  Tensor t = proj(x);  // (B, D, h, w)
  const int64_t h = t.size(2), w = t.size(3);
  t = t.flatten(2).transpose(1, 2);     // (B, h*w, D)
  return ops::add(t, positions(h, w).to(t.device()));  // (B, h*w, D) contiguous
}

TimeTextEmbed::TimeTextEmbed(int64_t dim, int64_t pooled_dim)
    : timestep_embedder(256, dim), text_embedder(pooled_dim, dim) {}

void TimeTextEmbed::visit_params(io::ParamVisitor& v) {
  v.child("timestep_embedder", timestep_embedder);
  v.child("text_embedder", text_embedder);
}

Tensor TimeTextEmbed::operator()(const Tensor& timestep, const Tensor& pooled) const {
  // Timesteps(256, flip_sin_to_cos=True, downscale_freq_shift=0).
  const Tensor t_emb = timestep_embedder(nn::timestep_embedding(timestep, 256, true, 0.f));
  return ops::add(t_emb, text_embedder(pooled));  // (B, D); a (1, D) t_emb broadcasts
}

// ---------------------------------------------------------------- adaptive norms

AdaNormZero::AdaNormZero(int64_t dim, int chunks)
    : dim(dim), chunks(chunks), linear(dim, chunks * dim) {}

void AdaNormZero::visit_params(io::ParamVisitor& v) {
  v.child("linear", linear);
}

AdaNormZero::Out AdaNormZero::operator()(const Tensor& x, const Tensor& temb) const {
  const Tensor emb = linear(ops::silu(temb));  // (B, chunks * D)
  std::vector<Tensor> p = ops::chunk(emb, chunks, 1);
  for (Tensor& t : p) t = t.unsqueeze(1);  // (B, 1, D) views
  // shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp[, shift_msa2, scale_msa2,
  // gate_msa2]
  const Tensor norm = layer_norm_plain(x);
  Out o;
  o.x = modulate(norm, p[0], p[1]);
  o.gate_msa = p[2];
  o.shift_mlp = p[3];
  o.scale_mlp = p[4];
  o.gate_mlp = p[5];
  if (chunks == 9) {
    o.x2 = modulate(norm, p[6], p[7]);
    o.gate_msa2 = p[8];
  }
  return o;
}

AdaNormContinuous::AdaNormContinuous(int64_t dim) : dim(dim), linear(dim, 2 * dim) {}

void AdaNormContinuous::visit_params(io::ParamVisitor& v) {
  v.child("linear", linear);
}

Tensor AdaNormContinuous::operator()(const Tensor& x, const Tensor& cond) const {
  const Tensor emb = linear(ops::silu(cond));  // (B, 2D): scale first, then shift
  std::vector<Tensor> p = ops::chunk(emb, 2, 1);
  return modulate(layer_norm_plain(x), p[1].unsqueeze(1), p[0].unsqueeze(1));
}

// ---------------------------------------------------------------- joint attention

JointAttention::JointAttention(const nn::AttentionConfig& c, bool pre_only)
    : image(c), context_pre_only(pre_only) {
  const int64_t inner = c.dim_head * c.heads;
  add_q_proj = nn::Linear(c.query_dim, inner);
  add_k_proj = nn::Linear(c.query_dim, inner);
  add_v_proj = nn::Linear(c.query_dim, inner);
  if (!pre_only) to_add_out = nn::Linear(inner, c.query_dim);
  if (c.qk_norm == nn::QkNorm::layer_norm) {
    norm_added_q_ln.emplace(c.dim_head, c.qk_norm_eps);
    norm_added_k_ln.emplace(c.dim_head, c.qk_norm_eps);
  } else if (c.qk_norm == nn::QkNorm::rms_norm) {
    norm_added_q_rms.emplace(c.dim_head, c.qk_norm_eps);
    norm_added_k_rms.emplace(c.dim_head, c.qk_norm_eps);
  }
}

void JointAttention::visit_params(io::ParamVisitor& v) {
  image.visit_params(v);  // to_q/to_k/to_v/to_out.0/norm_q/norm_k at this module's level
  v.child("add_q_proj", add_q_proj);
  v.child("add_k_proj", add_k_proj);
  v.child("add_v_proj", add_v_proj);
  if (!context_pre_only) v.child("to_add_out", to_add_out);
  if (norm_added_q_ln) v.child("norm_added_q", *norm_added_q_ln);
  if (norm_added_k_ln) v.child("norm_added_k", *norm_added_k_ln);
  if (norm_added_q_rms) v.child("norm_added_q", *norm_added_q_rms);
  if (norm_added_k_rms) v.child("norm_added_k", *norm_added_k_rms);
}

Tensor JointAttention::norm_added(const Tensor& t, bool is_q) const {
  const auto& ln = is_q ? norm_added_q_ln : norm_added_k_ln;
  const auto& rms = is_q ? norm_added_q_rms : norm_added_k_rms;
  if (ln) return (*ln)(t);
  if (rms) return (*rms)(t);
  return t;
}

std::pair<Tensor, Tensor> JointAttention::operator()(const Tensor& x, const Tensor& ctx) const {
  const int64_t B = x.size(0), L = x.size(1), S = ctx.size(1);
  const int64_t H = image.cfg.heads, Dh = image.cfg.dim_head;
  // Per-head norms act on the last dim, so they apply in (B, tokens, H, Dh) before the streams
  // are joined; the joined sequence is [image tokens, text tokens] as in JointAttnProcessor2_0.
  auto heads = [&](const Tensor& t, int64_t n) { return t.view({B, n, H, Dh}); };
  const Tensor q = image.norm_q(heads(image.to_q(x), L));  // (B, L, H, Dh)
  const Tensor k = image.norm_k(heads(image.to_k(x), L));
  const Tensor v = heads(image.to_v(x), L);
  const Tensor cq = norm_added(heads(add_q_proj(ctx), S), true);  // (B, S, H, Dh)
  const Tensor ck = norm_added(heads(add_k_proj(ctx), S), false);
  const Tensor cv = heads(add_v_proj(ctx), S);
  auto join = [](const Tensor& a, const Tensor& b) {
    const Tensor both[] = {a, b};
    return ops::concat(both, 1).transpose(1, 2);  // (B, H, L + S, Dh) view
  };
  const Tensor o = ops::attention(join(q, cq), join(k, ck), join(v, cv))
                       .transpose(1, 2)
                       .reshape({B, L + S, H * Dh});                         // (B, L + S, inner)
  Tensor img = image.to_out(o.narrow(1, 0, L));                              // (B, L, D)
  Tensor txt = context_pre_only ? Tensor{} : to_add_out(o.narrow(1, L, S));  // (B, S, D)
  return {std::move(img), std::move(txt)};
}

// ---------------------------------------------------------------- block

JointTransformerBlock::JointTransformerBlock(const SD3TransformerConfig& c, int layer)
    : dim(c.inner_dim()),
      context_pre_only(layer == c.num_layers - 1),
      use_dual_attention(c.dual_attention(layer)) {
  nn::AttentionConfig ac;
  ac.query_dim = dim;
  ac.heads = c.num_attention_heads;
  ac.dim_head = c.attention_head_dim;
  ac.out_dim = dim;
  ac.bias = true;
  ac.qk_norm = c.qk_norm;
  ac.qk_norm_eps = kNormEps;
  norm1 = AdaNormZero(dim, use_dual_attention ? 9 : 6);
  if (context_pre_only)
    norm1_context_continuous = AdaNormContinuous(dim);
  else
    norm1_context = AdaNormZero(dim, 6);
  attn = JointAttention(ac, context_pre_only);
  if (use_dual_attention) attn2 = nn::Attention(ac);
  // FeedForward(dim, dim_out=dim, activation_fn="gelu-approximate"), mult 4.
  ff = nn::FeedForward(dim, dim, 4 * dim, nn::FeedForwardAct::gelu_tanh);
  if (!context_pre_only)
    ff_context = nn::FeedForward(dim, dim, 4 * dim, nn::FeedForwardAct::gelu_tanh);
}

void JointTransformerBlock::visit_params(io::ParamVisitor& v) {
  v.child("norm1", norm1);
  if (context_pre_only)
    v.child("norm1_context", norm1_context_continuous);
  else
    v.child("norm1_context", norm1_context);
  v.child("attn", attn);
  if (use_dual_attention) v.child("attn2", attn2);
  v.child("ff", ff);
  if (!context_pre_only) v.child("ff_context", ff_context);
}

std::pair<Tensor, Tensor> JointTransformerBlock::operator()(const Tensor& x_in,
                                                            const Tensor& ctx_in,
                                                            const Tensor& temb) const {
  // x (B, L, D), ctx (B, S, D), temb (B, D).
  const AdaNormZero::Out n = norm1(x_in, temb);
  // The last block only feeds the text stream into attention: no gates, no MLP for it.
  const AdaNormZero::Out nc = context_pre_only ? AdaNormZero::Out{} : norm1_context(ctx_in, temb);
  const Tensor ctx_normed =
      context_pre_only ? norm1_context_continuous(ctx_in, temb) : nc.x;  // (B, S, D)

  auto [attn_out, ctx_attn_out] = attn(n.x, ctx_normed);  // (B, L, D), (B, S, D)
  Tensor x = gated_add(x_in, n.gate_msa, attn_out);
  if (use_dual_attention) x = gated_add(x, n.gate_msa2, attn2(n.x2));  // image-only attention
  x = gated_add(x, n.gate_mlp, ff(modulate(layer_norm_plain(x), n.shift_mlp, n.scale_mlp)));

  if (context_pre_only) return {std::move(x), Tensor{}};
  Tensor ctx = gated_add(ctx_in, nc.gate_msa, ctx_attn_out);
  ctx = gated_add(ctx, nc.gate_mlp,
                  ff_context(modulate(layer_norm_plain(ctx), nc.shift_mlp, nc.scale_mlp)));
  return {std::move(x), std::move(ctx)};  // (B, L, D), (B, S, D)
}

}  // namespace sd3

// ---------------------------------------------------------------- model

SD3Transformer2DModel::SD3Transformer2DModel(const SD3TransformerConfig& cfg) : cfg_(cfg) {
  cfg_.validate(kCtx);
  const int64_t D = cfg_.inner_dim();
  pos_embed = sd3::PatchEmbed(cfg_);
  time_text_embed = sd3::TimeTextEmbed(D, cfg_.pooled_projection_dim);
  context_embedder = nn::Linear(cfg_.joint_attention_dim, cfg_.caption_projection_dim);
  transformer_blocks.reserve(cfg_.num_layers);
  for (int i = 0; i < cfg_.num_layers; ++i) transformer_blocks.emplace_back(cfg_, i);
  norm_out = sd3::AdaNormContinuous(D);
  proj_out = nn::Linear(D, cfg_.patch_size * cfg_.patch_size * cfg_.out_channels);
}

void SD3Transformer2DModel::visit_params(io::ParamVisitor& v) {
  v.child("pos_embed", pos_embed);
  v.child("time_text_embed", time_text_embed);
  v.child("context_embedder", context_embedder);
  for (size_t i = 0; i < transformer_blocks.size(); ++i)
    v.child(str("transformer_blocks.", i), transformer_blocks[i]);
  v.child("norm_out", norm_out);
  v.child("proj_out", proj_out);
}

SD3Transformer2DModel SD3Transformer2DModel::load(const std::filesystem::path& component_dir) {
  const auto cfg_file = component_dir / "config.json";
  const auto config = io::ComponentConfig::load(cfg_file);
  config.expect_class("SD3Transformer2DModel");
  SD3Transformer2DModel m(SD3TransformerConfig::from_json(config));
  const auto src = io::open_weights(component_dir);
  bind_weights(m, *src, cfg_file);
  const int64_t max = m.cfg_.pos_embed_max_size;
  if (max > 0 && !m.pos_embed.pos_embed.defined())
    m.pos_embed.pos_embed =
        sd3::sincos_pos_embed_2d(m.cfg_.inner_dim(), max, max, m.pos_embed.base_size).unsqueeze(0);
  return m;
}

void SD3Transformer2DModel::check_inputs(const Tensor& x, const Tensor& ctx, const Tensor& pooled,
                                         const Tensor& t) const {
  KILN_ARG(x.defined() && x.ndim() == 4, kCtx, "hidden_states must be (B, C, H, W), got ",
           x.defined() ? x.shape().str() : std::string("undefined"));
  for (const Tensor* a : {&x, &ctx, &pooled})
    KILN_ARG(!a->defined() || a->dtype() == DType::f32, kCtx,
             "hidden_states, encoder_hidden_states and pooled_projections must be f32, got ",
             dtype_name(a->dtype()));
  const int64_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3), p = cfg_.patch_size;
  KILN_ARG(C == cfg_.in_channels, kCtx, "hidden_states has ", C, " channels, the model expects ",
           cfg_.in_channels);
  KILN_ARG(H % p == 0 && W % p == 0, kCtx, "latent size ", H, "x", W,
           " is not a multiple of patch_size ", p);
  const int64_t max = cfg_.pos_embed_max_size;
  KILN_ARG(max == 0 || (H / p <= max && W / p <= max), kCtx, "latent size ", H, "x", W, " is ",
           H / p, "x", W / p, " patches; pos_embed_max_size ", max, " allows at most ", max * p,
           "x", max * p);
  KILN_ARG(ctx.defined() && ctx.ndim() == 3 && ctx.size(0) == B &&
               ctx.size(2) == cfg_.joint_attention_dim,
           kCtx, "encoder_hidden_states must be (", B, ", S, ", cfg_.joint_attention_dim, "), got ",
           ctx.defined() ? ctx.shape().str() : std::string("undefined"));
  KILN_ARG(pooled.defined() && pooled.ndim() == 2 && pooled.size(0) == B &&
               pooled.size(1) == cfg_.pooled_projection_dim,
           kCtx, "pooled_projections must be (", B, ", ", cfg_.pooled_projection_dim, "), got ",
           pooled.defined() ? pooled.shape().str() : std::string("undefined"));
  KILN_ARG(t.defined() && t.ndim() == 1 && (t.size(0) == B || t.size(0) == 1), kCtx,
           "timestep must be (", B, ") or (1), got ",
           t.defined() ? t.shape().str() : std::string("undefined"));
}

Tensor SD3Transformer2DModel::forward(const Tensor& hidden_states,
                                      const Tensor& encoder_hidden_states,
                                      const Tensor& pooled_projections, const Tensor& timestep,
                                      const SD3ForwardOptions& opt) const {
  check_inputs(hidden_states, encoder_hidden_states, pooled_projections, timestep);
  for (int l : opt.skip_layers)
    KILN_ARG(l >= 0 && l < cfg_.num_layers, kCtx, "skip_layers holds ", l, ", outside [0, ",
             cfg_.num_layers, ")");
  const int64_t B = hidden_states.size(0), p = cfg_.patch_size, Co = cfg_.out_channels;
  const int64_t h = hidden_states.size(2) / p, w = hidden_states.size(3) / p;

  Tensor x = pos_embed(hidden_states);                                // (B, h*w, D)
  const Tensor temb = time_text_embed(timestep, pooled_projections);  // (B, D)
  Tensor ctx = context_embedder(encoder_hidden_states);               // (B, S, D)
  for (int i = 0; i < cfg_.num_layers; ++i) {
    if (std::find(opt.skip_layers.begin(), opt.skip_layers.end(), i) != opt.skip_layers.end())
      continue;
    // The last block is context_pre_only: ctx comes back undefined and is not used again.
    std::tie(x, ctx) = transformer_blocks[i](x, ctx, temb);  // (B, h*w, D), (B, S, D)
  }
  x = proj_out(norm_out(x, temb));  // (B, h*w, p*p*Co)
  // Unpatchify: (B, h, w, p, q, Co) -> "nhwpqc->nchpwq" -> (B, Co, h*p, w*q).
  return x.view({B, h, w, p, p, Co}).permute({0, 5, 1, 3, 2, 4}).reshape({B, Co, h * p, w * p});
}

}  // namespace kiln::pipelines::models
