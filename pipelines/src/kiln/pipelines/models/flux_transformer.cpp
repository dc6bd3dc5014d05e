// Ref: diffusers 0.42.1 src/diffusers/models/transformers/transformer_flux.py,
//      models/normalization.py, models/embeddings.py, pipelines/flux/pipeline_flux.py
//      (see flux_transformer.hpp for the classes each piece follows).
#include "kiln/pipelines/models/bind_weights.hpp"
#include "kiln/pipelines/models/flux_transformer.hpp"

#include <array>

#include "kiln/core/error.hpp"
#include "kiln/io/module.hpp"
#include "kiln/io/weight_source.hpp"
#include "kiln/ops/ops.hpp"

namespace kiln::pipelines::models {

namespace {

constexpr const char* kCtx = "FluxTransformer2DModel";
// LayerNorm eps of every adaLN / norm2 / norm_out and RMSNorm eps of the q/k norms (diffusers
// hard-codes 1e-6 for all of them in Flux).
constexpr float kNormEps = 1e-6f;
// Sinusoidal width of the timestep / guidance projection (Timesteps(num_channels=256)).
constexpr int64_t kTimeProjDim = 256;

// x * (1 + scale[:, None]) + shift[:, None]; x (B, L, D), scale/shift (B, D).
Tensor modulate(const Tensor& x, const Tensor& scale, const Tensor& shift) {
  return ops::add(ops::mul(x, ops::scale(scale, 1.f, 1.f).unsqueeze(1)), shift.unsqueeze(1));
}

// gate[:, None] * y; y (B, L, D), gate (B, D).
Tensor gated(const Tensor& gate, const Tensor& y) {
  return ops::mul(gate.unsqueeze(1), y);
}

std::string shape_or_undefined(const Tensor& t) {
  return t.defined() ? t.str() : "undefined";
}

}  // namespace

// ---------------------------------------------------------------- config

FluxTransformerConfig FluxTransformerConfig::from_json(const io::ComponentConfig& c) {
  FluxTransformerConfig k;
  k.patch_size = c.get_int_or("patch_size", k.patch_size);
  k.in_channels = c.get_int_or("in_channels", k.in_channels);
  k.out_channels = c.get_int_or("out_channels", 0);
  k.num_layers = static_cast<int>(c.get_int_or("num_layers", k.num_layers));
  k.num_single_layers = static_cast<int>(c.get_int_or("num_single_layers", k.num_single_layers));
  k.attention_head_dim = c.get_int_or("attention_head_dim", k.attention_head_dim);
  k.num_attention_heads =
      static_cast<int>(c.get_int_or("num_attention_heads", k.num_attention_heads));
  k.joint_attention_dim = c.get_int_or("joint_attention_dim", k.joint_attention_dim);
  k.pooled_projection_dim = c.get_int_or("pooled_projection_dim", k.pooled_projection_dim);
  k.guidance_embeds = c.get_bool_or("guidance_embeds", k.guidance_embeds);
  if (c.has("axes_dims_rope")) {
    k.axes_dims_rope.clear();
    for (int64_t d : c.get_int_list("axes_dims_rope"))
      k.axes_dims_rope.push_back(static_cast<int>(d));
  }
  k.validate(c.file().string());
  return k;
}

void FluxTransformerConfig::validate(const std::string& context) const {
  KILN_CHECK(
      patch_size > 0 && in_channels > 0 && out_channels >= 0 && num_layers >= 0 &&
          num_single_layers >= 0 && attention_head_dim > 0 && num_attention_heads > 0 &&
          joint_attention_dim > 0 && pooled_projection_dim > 0,
      Status::format_error, context, "FluxTransformer2DModel sizes must be positive (patch_size ",
      patch_size, ", in_channels ", in_channels, ", out_channels ", out_channels, ", num_layers ",
      num_layers, ", num_single_layers ", num_single_layers, ", attention_head_dim ",
      attention_head_dim, ", num_attention_heads ", num_attention_heads, ", joint_attention_dim ",
      joint_attention_dim, ", pooled_projection_dim ", pooled_projection_dim, ")");
  KILN_CHECK(!axes_dims_rope.empty(), Status::format_error, context, "\"axes_dims_rope\" is empty");
  int64_t rope_dims = 0;
  for (size_t a = 0; a < axes_dims_rope.size(); ++a) {
    KILN_CHECK(axes_dims_rope[a] > 0 && axes_dims_rope[a] % 2 == 0, Status::format_error, context,
               "\"axes_dims_rope\"[", a, "] = ", axes_dims_rope[a], " must be positive and even");
    rope_dims += axes_dims_rope[a];
  }
  KILN_CHECK(rope_dims == attention_head_dim, Status::format_error, context,
             "\"axes_dims_rope\" sums to ", rope_dims, " but \"attention_head_dim\" is ",
             attention_head_dim, " (RoPE rotates the whole head)");
}

namespace flux {

// ---------------------------------------------------------------- pipeline helpers

Tensor pack_latents(const Tensor& latents) {
  const char* op = "flux::pack_latents";
  KILN_ARG(latents.defined() && latents.ndim() == 4, op, "latents must be (B, C, H, W), got ",
           shape_or_undefined(latents));
  const int64_t B = latents.size(0), C = latents.size(1), H = latents.size(2), W = latents.size(3);
  KILN_ARG(H % 2 == 0 && W % 2 == 0, op, "latents ", latents.shape().str(),
           ": height and width must be even (2x2 patches)");
  // (B, C, H/2, 2, W/2, 2) -> (B, H/2, W/2, C, 2, 2) -> (B, H/2 * W/2, 4C)
  return latents.contiguous()
      .view({B, C, H / 2, 2, W / 2, 2})
      .permute({0, 2, 4, 1, 3, 5})
      .reshape({B, (H / 2) * (W / 2), C * 4});
}

Tensor unpack_latents(const Tensor& packed, int64_t height, int64_t width,
                      int64_t vae_scale_factor) {
  const char* op = "flux::unpack_latents";
  KILN_ARG(packed.defined() && packed.ndim() == 3, op, "packed latents must be (B, L, 4C), got ",
           shape_or_undefined(packed));
  KILN_ARG(vae_scale_factor > 0 && height > 0 && width > 0, op, "height ", height, ", width ",
           width, " and vae_scale_factor ", vae_scale_factor, " must be positive");
  const int64_t B = packed.size(0), L = packed.size(1), C4 = packed.size(2);
  KILN_ARG(C4 % 4 == 0, op, "packed latents ", packed.shape().str(),
           " have a channel count that is not a multiple of 4");
  // The pipeline's rounding: the latent is 2 * (size // (2 * vae_scale_factor)) on each side.
  const int64_t h = 2 * (height / (vae_scale_factor * 2)), w = 2 * (width / (vae_scale_factor * 2));
  KILN_ARG(h > 0 && w > 0 && L == (h / 2) * (w / 2), op, "packed latents ", packed.shape().str(),
           " hold ", L, " tokens, but a ", height, "x", width, " image (vae_scale_factor ",
           vae_scale_factor, ") has a ", h / 2, "x", w / 2, " token grid");
  // (B, h/2, w/2, C, 2, 2) -> (B, C, h/2, 2, w/2, 2) -> (B, C, h, w)
  return packed.contiguous()
      .view({B, h / 2, w / 2, C4 / 4, 2, 2})
      .permute({0, 3, 1, 4, 2, 5})
      .reshape({B, C4 / 4, h, w});
}

Tensor latent_image_ids(int64_t h, int64_t w) {
  KILN_ARG(h > 0 && w > 0, "flux::latent_image_ids", "grid ", h, "x", w, " must be positive");
  Tensor ids = Tensor::zeros({h * w, 3});
  float* p = ids.mutable_data<float>();
  for (int64_t r = 0; r < h; ++r)
    for (int64_t c = 0; c < w; ++c) {
      p[(r * w + c) * 3 + 1] = static_cast<float>(r);
      p[(r * w + c) * 3 + 2] = static_cast<float>(c);
    }
  return ids;
}

Tensor text_ids(int64_t seq_len) {
  KILN_ARG(seq_len > 0, "flux::text_ids", "seq_len ", seq_len, " must be positive");
  return Tensor::zeros({seq_len, 3});
}

// ---------------------------------------------------------------- adaptive norms

AdaLayerNormZero::AdaLayerNormZero(int64_t dim)
    : linear(dim, 6 * dim), norm(dim, kNormEps, /*affine=*/false) {}

AdaLayerNormZero::Out AdaLayerNormZero::operator()(const Tensor& x, const Tensor& temb) const {
  const auto e = ops::chunk(linear(ops::silu(temb)), 6, 1);  // 6 x (B, dim)
  // Chunk order: shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp.
  return {modulate(norm(x), e[1], e[0]), e[2], e[3], e[4], e[5]};
}

AdaLayerNormZeroSingle::AdaLayerNormZeroSingle(int64_t dim)
    : linear(dim, 3 * dim), norm(dim, kNormEps, /*affine=*/false) {}

AdaLayerNormZeroSingle::Out AdaLayerNormZeroSingle::operator()(const Tensor& x,
                                                               const Tensor& temb) const {
  const auto e = ops::chunk(linear(ops::silu(temb)), 3, 1);  // shift, scale, gate: (B, dim)
  return {modulate(norm(x), e[1], e[0]), e[2]};
}

AdaLayerNormContinuous::AdaLayerNormContinuous(int64_t dim, int64_t cond_dim)
    : linear(cond_dim, 2 * dim), norm(dim, kNormEps, /*affine=*/false) {}

Tensor AdaLayerNormContinuous::operator()(const Tensor& x, const Tensor& temb) const {
  const auto e = ops::chunk(linear(ops::silu(temb)), 2, 1);  // scale, shift (scale first)
  return modulate(norm(x), e[0], e[1]);
}

// ---------------------------------------------------------------- attention

FluxAttention::FluxAttention(int64_t dim, int heads, int64_t head_dim, bool added, bool pre_only,
                             float eps)
    : heads(heads), head_dim(head_dim), dim(dim), added(added), pre_only(pre_only) {
  const int64_t inner = heads * head_dim;
  to_q = nn::Linear(dim, inner);
  to_k = nn::Linear(dim, inner);
  to_v = nn::Linear(dim, inner);
  norm_q = nn::RMSNorm(head_dim, eps);
  norm_k = nn::RMSNorm(head_dim, eps);
  if (!pre_only) to_out = nn::Linear(inner, dim);
  if (added) {
    add_q_proj = nn::Linear(dim, inner);
    add_k_proj = nn::Linear(dim, inner);
    add_v_proj = nn::Linear(dim, inner);
    to_add_out = nn::Linear(inner, dim);
    norm_added_q = nn::RMSNorm(head_dim, eps);
    norm_added_k = nn::RMSNorm(head_dim, eps);
  }
}

void FluxAttention::visit_params(io::ParamVisitor& v) {
  v.child("norm_q", norm_q);
  v.child("norm_k", norm_k);
  v.child("to_q", to_q);
  v.child("to_k", to_k);
  v.child("to_v", to_v);
  if (!pre_only) v.child("to_out.0", to_out);
  if (added) {
    v.child("norm_added_q", norm_added_q);
    v.child("norm_added_k", norm_added_k);
    v.child("add_q_proj", add_q_proj);
    v.child("add_k_proj", add_k_proj);
    v.child("add_v_proj", add_v_proj);
    v.child("to_add_out", to_add_out);
  }
}

Tensor FluxAttention::heads_of(const Tensor& proj, const nn::RMSNorm* norm) const {
  // (B, N, heads*head_dim) -> (B, N, heads, head_dim); RMSNorm over head_dim for q and k.
  Tensor t = proj.view({proj.size(0), proj.size(1), heads, head_dim});
  return norm ? (*norm)(t) : t;
}

Tensor FluxAttention::attend(const Tensor& q, const Tensor& k, const Tensor& v,
                             const ops::RopeTable& rope) const {
  // q, k, v (B, N, heads, head_dim); RoPE pairs (x[2i], x[2i+1]) along N (seq_dim 1).
  const Tensor qr = ops::apply_rope(q, rope, ops::RopeLayout::interleaved, 1);
  const Tensor kr = ops::apply_rope(k, rope, ops::RopeLayout::interleaved, 1);
  // SDPA over (B, heads, N, head_dim) views, scale 1/sqrt(head_dim).
  const Tensor o = ops::attention(qr.transpose(1, 2), kr.transpose(1, 2), v.transpose(1, 2));
  return o.transpose(1, 2).reshape({q.size(0), q.size(1), heads * head_dim});  // (B, N, inner)
}

Tensor FluxAttention::operator()(const Tensor& x, const ops::RopeTable& rope) const {
  const Tensor q = heads_of(to_q(x), &norm_q);  // (B, N, heads, head_dim)
  const Tensor k = heads_of(to_k(x), &norm_k);
  const Tensor v = heads_of(to_v(x), nullptr);
  const Tensor o = attend(q, k, v, rope);  // (B, N, inner)
  return pre_only ? o : to_out(o);
}

std::pair<Tensor, Tensor> FluxAttention::operator()(const Tensor& x, const Tensor& ctx,
                                                    const ops::RopeTable& rope) const {
  KILN_CHECK(added, Status::internal, kCtx, "joint attention on a single-stream FluxAttention");
  const int64_t S = ctx.size(1), L = x.size(1);
  // Text tokens first: (B, S + L, heads, head_dim).
  const auto joint = [&](const nn::Linear& ctx_proj, const nn::RMSNorm* ctx_norm,
                         const nn::Linear& img_proj, const nn::RMSNorm* img_norm) {
    const std::array<Tensor, 2> parts{heads_of(ctx_proj(ctx), ctx_norm),
                                      heads_of(img_proj(x), img_norm)};
    return ops::concat(parts, 1);
  };
  const Tensor q = joint(add_q_proj, &norm_added_q, to_q, &norm_q);
  const Tensor k = joint(add_k_proj, &norm_added_k, to_k, &norm_k);
  const Tensor v = joint(add_v_proj, nullptr, to_v, nullptr);
  const Tensor o = attend(q, k, v, rope);  // (B, S + L, inner)
  return {to_out(o.narrow(1, S, L)), to_add_out(o.narrow(1, 0, S))};
}

// ---------------------------------------------------------------- blocks

FluxTransformerBlock::FluxTransformerBlock(int64_t dim, int heads, int64_t head_dim)
    : norm1(dim),
      norm1_context(dim),
      attn(dim, heads, head_dim, /*added=*/true, /*pre_only=*/false, kNormEps),
      norm2(dim, kNormEps, /*affine=*/false),
      norm2_context(dim, kNormEps, /*affine=*/false),
      ff(dim, dim, 4 * dim, nn::FeedForwardAct::gelu_tanh),
      ff_context(dim, dim, 4 * dim, nn::FeedForwardAct::gelu_tanh) {}

void FluxTransformerBlock::visit_params(io::ParamVisitor& v) {
  v.child("norm1", norm1);
  v.child("norm1_context", norm1_context);
  v.child("attn", attn);
  v.child("ff", ff);
  v.child("ff_context", ff_context);
}

void FluxTransformerBlock::operator()(Tensor& x, Tensor& ctx, const Tensor& temb,
                                      const ops::RopeTable& rope) const {
  // x (B, L, dim), ctx (B, S, dim), temb (B, dim)
  const auto n = norm1(x, temb);
  const auto c = norm1_context(ctx, temb);
  auto [attn_x, attn_ctx] = attn(n.x, c.x, rope);  // (B, L, dim), (B, S, dim)

  x = ops::add(x, gated(n.gate_msa, attn_x));
  x = ops::add(x, gated(n.gate_mlp, ff(modulate(norm2(x), n.scale_mlp, n.shift_mlp))));

  ctx = ops::add(ctx, gated(c.gate_msa, attn_ctx));
  ctx = ops::add(
      ctx, gated(c.gate_mlp, ff_context(modulate(norm2_context(ctx), c.scale_mlp, c.shift_mlp))));
}

FluxSingleTransformerBlock::FluxSingleTransformerBlock(int64_t dim, int heads, int64_t head_dim)
    : norm(dim),
      proj_mlp(dim, 4 * dim),
      proj_out(dim + 4 * dim, dim),
      attn(dim, heads, head_dim, /*added=*/false, /*pre_only=*/true, kNormEps) {}

void FluxSingleTransformerBlock::visit_params(io::ParamVisitor& v) {
  v.child("norm", norm);
  v.child("proj_mlp", proj_mlp);
  v.child("proj_out", proj_out);
  v.child("attn", attn);
}

Tensor FluxSingleTransformerBlock::operator()(const Tensor& h, const Tensor& temb,
                                              const ops::RopeTable& rope) const {
  // h (B, N, dim), N = S + L
  const auto n = norm(h, temb);
  const Tensor mlp = ops::gelu(proj_mlp(n.x), ops::GeluApprox::tanh);  // (B, N, 4*dim)
  const std::array<Tensor, 2> parts{attn(n.x, rope), mlp};             // (B, N, dim + 4*dim)
  return ops::add(h, gated(n.gate, proj_out(ops::concat(parts, 2))));
}

// ---------------------------------------------------------------- embeddings

TimeTextEmbedding::TimeTextEmbedding(int64_t dim, int64_t pooled_dim, bool guidance)
    : timestep_embedder(kTimeProjDim, dim), text_embedder(pooled_dim, dim) {
  if (guidance) guidance_embedder.emplace(kTimeProjDim, dim);
}

void TimeTextEmbedding::visit_params(io::ParamVisitor& v) {
  v.child("timestep_embedder", timestep_embedder);
  if (guidance_embedder) v.child("guidance_embedder", *guidance_embedder);
  v.child("text_embedder", text_embedder);
}

Tensor TimeTextEmbedding::operator()(const Tensor& timestep, const Tensor& guidance,
                                     const Tensor& pooled) const {
  const auto proj = [](const Tensor& t) {  // Timesteps(256, flip_sin_to_cos=True, shift 0)
    return nn::timestep_embedding(t, kTimeProjDim, /*flip_sin_to_cos=*/true, 0.f);
  };
  Tensor temb = timestep_embedder(proj(timestep));  // (B or 1, dim)
  if (guidance_embedder) temb = ops::add(temb, (*guidance_embedder)(proj(guidance)));
  return ops::add(temb, text_embedder(pooled));  // (B, dim)
}

}  // namespace flux

// ---------------------------------------------------------------- model

FluxTransformer2DModel::FluxTransformer2DModel(const FluxTransformerConfig& config)
    : config_(config) {
  config_.validate(kCtx);
  const int64_t inner = config_.inner_dim();
  const int heads = config_.num_attention_heads;
  const int64_t hd = config_.attention_head_dim;
  time_text_embed =
      flux::TimeTextEmbedding(inner, config_.pooled_projection_dim, config_.guidance_embeds);
  context_embedder = nn::Linear(config_.joint_attention_dim, inner);
  x_embedder = nn::Linear(config_.in_channels, inner);
  for (int i = 0; i < config_.num_layers; ++i) transformer_blocks.emplace_back(inner, heads, hd);
  for (int i = 0; i < config_.num_single_layers; ++i)
    single_transformer_blocks.emplace_back(inner, heads, hd);
  norm_out = flux::AdaLayerNormContinuous(inner, inner);
  proj_out = nn::Linear(inner, config_.out_dim());
}

void FluxTransformer2DModel::visit_params(io::ParamVisitor& v) {
  v.child("time_text_embed", time_text_embed);
  v.child("context_embedder", context_embedder);
  v.child("x_embedder", x_embedder);
  for (size_t i = 0; i < transformer_blocks.size(); ++i)
    v.child("transformer_blocks." + std::to_string(i), transformer_blocks[i]);
  for (size_t i = 0; i < single_transformer_blocks.size(); ++i)
    v.child("single_transformer_blocks." + std::to_string(i), single_transformer_blocks[i]);
  v.child("norm_out", norm_out);
  v.child("proj_out", proj_out);
}

FluxTransformer2DModel FluxTransformer2DModel::load(const std::filesystem::path& dir,
                                                    const FluxLoadOptions& options) {
  const io::ComponentConfig cfg = io::ComponentConfig::load(dir / "config.json");
  cfg.expect_class("FluxTransformer2DModel");
  FluxTransformer2DModel model(FluxTransformerConfig::from_json(cfg));
  const auto weights = io::open_weights(dir);
  bind_weights(model, *weights, cfg.file(), nullptr, options.float_dtype);
  return model;
}

// ---------------------------------------------------------------- forward

namespace {

// diffusers accepts (1, N, 3) ids with a deprecation warning and uses ids[0].
Tensor ids_2d(const Tensor& ids) {
  return ids.ndim() == 3 ? ids.select(0, 0) : ids;
}

}  // namespace

void FluxTransformer2DModel::check_inputs(const Tensor& hs, const Tensor& ehs, const Tensor& pooled,
                                          const Tensor& img_ids, const Tensor& txt_ids) const {
  const auto& c = config_;
  KILN_ARG(hs.defined() && hs.ndim() == 3 && hs.dtype() == DType::f32, kCtx,
           "hidden_states must be f32 (B, L, in_channels) packed latents, got ",
           shape_or_undefined(hs));
  KILN_ARG(hs.size(2) == c.in_channels, kCtx, "hidden_states ", hs.shape().str(), " has ",
           hs.size(2), " channels, the model's in_channels is ", c.in_channels,
           " (packed latents: 4 x latent channels; see flux::pack_latents)");
  KILN_ARG(hs.size(0) > 0 && hs.size(1) > 0, kCtx, "hidden_states ", hs.shape().str(), " is empty");
  const int64_t B = hs.size(0), L = hs.size(1);
  KILN_ARG(ehs.defined() && ehs.ndim() == 3 && ehs.dtype() == DType::f32, kCtx,
           "encoder_hidden_states must be f32 (B, S, joint_attention_dim), got ",
           shape_or_undefined(ehs));
  KILN_ARG(ehs.size(0) == B && ehs.size(1) > 0 && ehs.size(2) == c.joint_attention_dim, kCtx,
           "encoder_hidden_states ", ehs.shape().str(), " must be (", B, ", S, ",
           c.joint_attention_dim, ") for hidden_states ", hs.shape().str());
  KILN_ARG(pooled.defined() && pooled.ndim() == 2 && pooled.dtype() == DType::f32 &&
               pooled.size(0) == B && pooled.size(1) == c.pooled_projection_dim,
           kCtx, "pooled_projections must be f32 (", B, ", ", c.pooled_projection_dim, "), got ",
           shape_or_undefined(pooled));
  const int64_t axes = static_cast<int64_t>(c.axes_dims_rope.size());
  const auto check_ids = [&](const Tensor& ids, const char* name, int64_t n, const char* of) {
    KILN_ARG(ids.defined() && (ids.ndim() == 2 || (ids.ndim() == 3 && ids.size(0) >= 1)), kCtx,
             name, " must be (N, ", axes, "), got ", shape_or_undefined(ids));
    const Tensor i2 = ids_2d(ids);
    KILN_ARG(i2.size(0) == n && i2.size(1) == axes, kCtx, name, " ", ids.shape().str(),
             " must be (", n, ", ", axes, "): one row of ", axes, " positions per token of ", of);
  };
  check_ids(img_ids, "img_ids", L, "hidden_states");
  check_ids(txt_ids, "txt_ids", ehs.size(1), "encoder_hidden_states");
}

Tensor FluxTransformer2DModel::scaled_by_1000(const Tensor& t, int64_t batch,
                                              const char* what) const {
  KILN_ARG(t.defined() && t.ndim() <= 1 && (t.numel() == 1 || t.numel() == batch), kCtx, what,
           " must hold 1 or batch (", batch, ") values, got ", shape_or_undefined(t));
  // timestep.to(hidden_states.dtype) * 1000, in f32.
  return ops::scale(t.to(DType::f32).reshape({t.numel()}).contiguous(), 1000.f);
}

Tensor FluxTransformer2DModel::forward(const Tensor& hidden_states,
                                       const Tensor& encoder_hidden_states,
                                       const Tensor& pooled_projections, const Tensor& timestep,
                                       const Tensor& img_ids, const Tensor& txt_ids,
                                       const Tensor& guidance) const {
  check_inputs(hidden_states, encoder_hidden_states, pooled_projections, img_ids, txt_ids);
  const int64_t B = hidden_states.size(0), L = hidden_states.size(1);
  const int64_t S = encoder_hidden_states.size(1);
  KILN_ARG(guidance.defined() == config_.guidance_embeds, kCtx,
           config_.guidance_embeds
               ? "this model has guidance_embeds (FLUX.1-dev style) and needs guidance: the "
                 "distilled guidance scale, (B), (1) or 0-d"
               : "this model has no guidance embedding (guidance_embeds false, FLUX.1-schnell "
                 "style); pass no guidance");

  // Conditioning vector: temb (B, inner).
  const Tensor t = scaled_by_1000(timestep, B, "timestep");
  const Tensor g = guidance.defined() ? scaled_by_1000(guidance, B, "guidance") : Tensor();
  const Tensor temb = time_text_embed(t, g, pooled_projections);

  // RoPE table of the joint sequence, text first: (S + L, head_dim/2). Positions are host
  // metadata: the table is computed on the host in double (rope.cpp) and copied to the device.
  const std::array<Tensor, 2> ids{ids_2d(txt_ids).to(Device::cpu()).to(DType::f32),
                                  ids_2d(img_ids).to(Device::cpu()).to(DType::f32)};
  ops::RopeTable rope =
      ops::rope_table(ops::concat(ids, 0), config_.axes_dims_rope, config_.rope_theta);
  rope.cos = rope.cos.to(hidden_states.device());
  rope.sin = rope.sin.to(hidden_states.device());

  Tensor x = x_embedder(hidden_states);                  // (B, L, inner)
  Tensor ctx = context_embedder(encoder_hidden_states);  // (B, S, inner)
  for (const auto& block : transformer_blocks) block(x, ctx, temb, rope);

  // Single-stream blocks run on the joint sequence (B, S + L, inner). diffusers splits it back
  // into text and image after every block and re-joins it in the next; keeping it joined gives
  // the same values.
  const std::array<Tensor, 2> streams{ctx, x};
  Tensor h = ops::concat(streams, 1);
  for (const auto& block : single_transformer_blocks) h = block(h, temb, rope);
  x = h.narrow(1, S, L);  // (B, L, inner)

  return proj_out(norm_out(x, temb));  // (B, L, patch^2 * out_channels)
}

}  // namespace kiln::pipelines::models
