#include "kiln/pipelines/nn/attention.hpp"

// Ref: diffusers src/diffusers/models/attention_processor.py (Attention, AttnProcessor2_0) and
//      src/diffusers/models/attention.py (FeedForward, GEGLU in activations.py).

namespace kiln::pipelines::nn {

Attention::Attention(const AttentionConfig& c) : cfg(c) {
  KILN_ARG(c.query_dim > 0 && c.heads > 0 && c.dim_head > 0, "nn::Attention",
           "query_dim, heads and dim_head must be positive");
  const int64_t kv_dim = c.cross_attention_dim > 0 ? c.cross_attention_dim : c.query_dim;
  const int64_t out_dim = c.out_dim > 0 ? c.out_dim : c.query_dim;
  to_q = Linear(c.query_dim, inner_dim(), c.bias);
  to_k = Linear(kv_dim, inner_dim(), c.bias);
  to_v = Linear(kv_dim, inner_dim(), c.bias);
  to_out = Linear(inner_dim(), out_dim, c.out_bias);
  if (c.norm_num_groups > 0) group_norm.emplace(c.norm_num_groups, c.query_dim, c.norm_eps, true);
  if (c.qk_norm == QkNorm::layer_norm) {
    norm_q_ln.emplace(c.dim_head, c.qk_norm_eps);
    norm_k_ln.emplace(c.dim_head, c.qk_norm_eps);
  } else if (c.qk_norm == QkNorm::rms_norm) {
    norm_q_rms.emplace(c.dim_head, c.qk_norm_eps);
    norm_k_rms.emplace(c.dim_head, c.qk_norm_eps);
  }
}

void Attention::visit_params(ParamVisitor& v) {
  v.child("to_q", to_q);
  v.child("to_k", to_k);
  v.child("to_v", to_v);
  v.child("to_out.0", to_out);
  if (group_norm) v.child("group_norm", *group_norm);
  if (norm_q_ln) v.child("norm_q", *norm_q_ln);
  if (norm_k_ln) v.child("norm_k", *norm_k_ln);
  if (norm_q_rms) v.child("norm_q", *norm_q_rms);
  if (norm_k_rms) v.child("norm_k", *norm_k_rms);
}

Tensor Attention::split_heads(const Tensor& t) const {
  // (B, L, H*D) -> (B, L, H, D) -> (B, H, L, D): a view; attention consumes the strides.
  return t.view({t.size(0), t.size(1), cfg.heads, cfg.dim_head}).transpose(1, 2);
}

Tensor Attention::merge_heads(const Tensor& t) const {
  return t.transpose(1, 2).reshape({t.size(0), t.size(2), cfg.heads * cfg.dim_head});
}

Tensor Attention::norm_q(const Tensor& q) const {
  if (norm_q_ln) return (*norm_q_ln)(q);
  if (norm_q_rms) return (*norm_q_rms)(q);
  return q;
}

Tensor Attention::norm_k(const Tensor& k) const {
  if (norm_k_ln) return (*norm_k_ln)(k);
  if (norm_k_rms) return (*norm_k_rms)(k);
  return k;
}

Tensor Attention::operator()(const Tensor& x_in, const Tensor& context, const Tensor& mask) const {
  const bool spatial = x_in.ndim() == 4;
  Tensor x = x_in;
  int64_t B = x.size(0), C = 0, H = 0, W = 0;
  if (spatial) {  // (B, C, H, W) -> (B, H*W, C)
    C = x.size(1), H = x.size(2), W = x.size(3);
    x = x.view({B, C, H * W}).transpose(1, 2);
  }
  KILN_ARG(x.ndim() == 3 && x.size(2) == cfg.query_dim, "Attention", "input ", x_in.shape().str(),
           " does not end in query_dim ", cfg.query_dim);
  Tensor residual = x;
  if (group_norm) x = (*group_norm)(x.transpose(1, 2)).transpose(1, 2);
  Tensor kv_in = context.defined() ? context : x;
  Tensor q = split_heads(to_q(x));       // (B, heads, L, dim_head)
  Tensor k = split_heads(to_k(kv_in));   // (B, heads, S, dim_head)
  Tensor v = split_heads(to_v(kv_in));
  q = norm_q(q);
  k = norm_k(k);
  Tensor o = merge_heads(ops::attention(q, k, v, mask));  // (B, L, inner)
  o = to_out(o);
  if (spatial) o = o.transpose(1, 2).reshape({B, C, H, W});
  if (cfg.residual_connection) o = ops::add(o, spatial ? x_in : residual);
  if (cfg.rescale_output_factor != 1.f) o = ops::scale(o, 1.f / cfg.rescale_output_factor);
  return o;
}

FeedForward::FeedForward(int64_t dim, int64_t dim_out, int64_t inner_dim, FeedForwardAct act,
                         bool bias)
    : dim(dim), inner(inner_dim), dim_out(dim_out), act(act) {
  const bool gated = act == FeedForwardAct::geglu || act == FeedForwardAct::swiglu;
  proj = Linear(dim, gated ? inner * 2 : inner, bias);
  out = Linear(inner, dim_out, bias);
}

void FeedForward::visit_params(ParamVisitor& v) {
  v.child("net.0.proj", proj);
  v.child("net.2", out);
}

Tensor FeedForward::operator()(const Tensor& x) const {
  Tensor h = proj(x);
  switch (act) {
    case FeedForwardAct::geglu:
    case FeedForwardAct::swiglu: {
      // GEGLU: hidden, gate = proj(x).chunk(2, -1); hidden * gelu(gate).
      auto parts = ops::chunk(h, 2, -1);
      Tensor gate = act == FeedForwardAct::geglu ? ops::gelu(parts[1]) : ops::silu(parts[1]);
      h = ops::mul(parts[0], gate);
      break;
    }
    case FeedForwardAct::gelu: h = ops::gelu(h); break;
    case FeedForwardAct::gelu_tanh: h = ops::gelu(h, ops::GeluApprox::tanh); break;
  }
  return out(h);
}

}  // namespace kiln::pipelines::nn
