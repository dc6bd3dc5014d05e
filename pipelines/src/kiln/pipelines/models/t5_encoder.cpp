// Ref: transformers models/t5/modeling_t5.py (T5LayerNorm, T5DenseActDense, T5DenseGatedActDense,
// T5Attention, T5Block, T5Stack, T5EncoderModel), configuration_t5.py (feed_forward_proj).
#include "kiln/pipelines/models/t5_encoder.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "kiln/pipelines/models/bind_weights.hpp"
#include "kiln/core/error.hpp"
#include "kiln/io/module.hpp"
#include "kiln/io/weight_source.hpp"
#include "kiln/ops/ops.hpp"

namespace kiln::pipelines::models {

namespace {

constexpr const char* kCtx = "T5EncoderModel";

}  // namespace

// ---------------------------------------------------------------- config

T5Config T5Config::from(const io::ComponentConfig& c) {
  T5Config k;
  const std::string file = c.file().string();
  k.vocab_size = c.get_int_or("vocab_size", k.vocab_size);
  k.d_model = c.get_int_or("d_model", k.d_model);
  k.d_kv = c.get_int_or("d_kv", k.d_kv);
  k.d_ff = c.get_int_or("d_ff", k.d_ff);
  k.num_layers = static_cast<int>(c.get_int_or("num_layers", k.num_layers));
  k.num_heads = static_cast<int>(c.get_int_or("num_heads", k.num_heads));
  k.relative_attention_num_buckets = static_cast<int>(
      c.get_int_or("relative_attention_num_buckets", k.relative_attention_num_buckets));
  k.relative_attention_max_distance = static_cast<int>(
      c.get_int_or("relative_attention_max_distance", k.relative_attention_max_distance));
  k.layer_norm_epsilon =
      static_cast<float>(c.get_float_or("layer_norm_epsilon", k.layer_norm_epsilon));
  KILN_CHECK(!c.get_bool_or("is_decoder", false), Status::format_error, file,
             "\"is_decoder\": true — this is a T5 decoder config, not an encoder");

  // "[gated-]ACT"; "gated-gelu" means gelu_new (the tanh approximation), as transformers maps it.
  const std::string proj = c.get_string_or("feed_forward_proj", "relu");
  std::string act = proj;
  if (proj.rfind("gated-", 0) == 0) {
    k.gated = true;
    act = proj.substr(6);
  }
  if (proj == "gated-gelu") act = "gelu_new";
  if (act == "relu") {
    k.act = nn::Act::relu;
  } else if (act == "gelu") {
    k.act = nn::Act::gelu;
  } else if (act == "gelu_new" || act == "gelu_pytorch_tanh") {
    k.act = nn::Act::gelu_tanh;
  } else if (act == "silu" || act == "swish") {
    k.act = nn::Act::silu;
  } else {
    fail(Status::format_error,
         str("\"feed_forward_proj\": \"", proj, "\" is not [gated-]ACT with ACT one of relu, ",
             "gelu, gelu_new, gelu_pytorch_tanh, silu, swish"),
         file);
  }
  k.validate(file);
  return k;
}

void T5Config::validate(const std::string& context) const {
  KILN_CHECK(
      vocab_size > 0 && d_model > 0 && d_kv > 0 && d_ff > 0 && num_layers > 0 && num_heads > 0,
      Status::format_error, context, "sizes must be positive: vocab_size ", vocab_size,
      ", d_model ", d_model, ", d_kv ", d_kv, ", d_ff ", d_ff, ", num_layers ", num_layers,
      ", num_heads ", num_heads);
  // Bidirectional bucketing halves the buckets, then half of those are exact: max_exact >= 1.
  KILN_CHECK(relative_attention_num_buckets >= 4 &&
                 relative_attention_max_distance > relative_attention_num_buckets / 4,
             Status::format_error, context, "relative_attention_num_buckets ",
             relative_attention_num_buckets, " must be >= 4 and relative_attention_max_distance ",
             relative_attention_max_distance, " > num_buckets / 4");
}

// ---------------------------------------------------------------- relative position bias

int32_t t5_relative_position_bucket(int64_t relative_position, int num_buckets, int max_distance) {
  // Bidirectional: the upper half of the buckets is for keys after the query.
  const int half = num_buckets / 2;
  int32_t bucket = relative_position > 0 ? half : 0;
  const int64_t n = relative_position < 0 ? -relative_position : relative_position;
  const int max_exact = half / 2;
  if (n < max_exact) return bucket + static_cast<int32_t>(n);
  // torch: log(n.float() / max_exact) / math.log(max_distance / max_exact) * (half - max_exact),
  // each step in float32 (the Python float divisor is rounded to float32 first), truncated.
  // The same steps in the same order: with T5's defaults (32, 128) the value is an exact
  // integer at n = 16, 32, 64, where a different rounding could fall one bucket short.
  const float ratio = static_cast<float>(n) / static_cast<float>(max_exact);
  const auto denom = static_cast<float>(
      std::log(static_cast<double>(max_distance) / static_cast<double>(max_exact)));
  const float scaled = std::log(ratio) / denom * static_cast<float>(half - max_exact);
  const int64_t large = std::min<int64_t>(max_exact + static_cast<int64_t>(scaled), half - 1);
  return bucket + static_cast<int32_t>(large);
}

// ---------------------------------------------------------------- layers

T5SelfAttention::T5SelfAttention(const T5Config& c, bool has_relative_bias)
    : heads(c.num_heads),
      d_model(c.d_model),
      d_kv(c.d_kv),
      num_buckets(has_relative_bias ? c.relative_attention_num_buckets : 0),
      q(c.d_model, c.num_heads * c.d_kv, false),
      k(c.d_model, c.num_heads * c.d_kv, false),
      v(c.d_model, c.num_heads * c.d_kv, false),
      o(c.num_heads * c.d_kv, c.d_model, false) {}

void T5SelfAttention::visit_params(io::ParamVisitor& vis) {
  vis.child("q", q);
  vis.child("k", k);
  vis.child("v", v);
  vis.child("o", o);
  if (num_buckets > 0)
    vis.param("relative_attention_bias.weight", &relative_attention_bias, {num_buckets, heads});
}

Tensor T5SelfAttention::operator()(const Tensor& x, const Tensor& bias) const {
  const int64_t B = x.size(0), L = x.size(1);
  // (B, L, H*Dk) -> (B, H, L, Dk) views; attention consumes the strides.
  auto split = [&](const Tensor& t) { return t.view({B, L, heads, d_kv}).transpose(1, 2); };
  ops::AttentionParams p;
  p.scale = 1.f;  // T5 does not scale q.k (the 1/sqrt(d_kv) is folded into the init)
  Tensor a = ops::attention(split(q(x)), split(k(x)), split(v(x)), bias, p);  // (B, H, L, Dk)
  return o(a.transpose(1, 2).reshape({B, L, heads * d_kv}));                  // (B, L, d_model)
}

T5Block::T5Block(const T5Config& c, bool has_relative_bias)
    : attn_norm(c.d_model, c.layer_norm_epsilon),
      ff_norm(c.d_model, c.layer_norm_epsilon),
      attn(c, has_relative_bias),
      wo(c.d_ff, c.d_model, false),
      gated(c.gated),
      act(c.act) {
  if (gated) {
    wi_0 = nn::Linear(c.d_model, c.d_ff, false);
    wi_1 = nn::Linear(c.d_model, c.d_ff, false);
  } else {
    wi = nn::Linear(c.d_model, c.d_ff, false);
  }
}

void T5Block::visit_params(io::ParamVisitor& v) {
  v.child("layer.0.SelfAttention", attn);
  v.child("layer.0.layer_norm", attn_norm);
  if (gated) {
    v.child("layer.1.DenseReluDense.wi_0", wi_0);
    v.child("layer.1.DenseReluDense.wi_1", wi_1);
  } else {
    v.child("layer.1.DenseReluDense.wi", wi);
  }
  v.child("layer.1.DenseReluDense.wo", wo);
  v.child("layer.1.layer_norm", ff_norm);
}

Tensor T5Block::operator()(const Tensor& x, const Tensor& bias) const {
  const Tensor h = ops::add(x, attn(attn_norm(x), bias));  // (B, L, d_model)
  const Tensor n = ff_norm(h);
  const Tensor f = gated ? ops::mul(nn::activate(wi_0(n), act), wi_1(n)) : nn::activate(wi(n), act);
  return ops::add(h, wo(f));  // (B, L, d_model)
}

// ---------------------------------------------------------------- model

T5EncoderModel::T5EncoderModel(const T5Config& cfg)
    : final_layer_norm(cfg.d_model, cfg.layer_norm_epsilon), cfg_(cfg) {
  cfg_.validate(kCtx);
  blocks.reserve(static_cast<size_t>(cfg.num_layers));
  for (int i = 0; i < cfg.num_layers; ++i) blocks.emplace_back(cfg_, i == 0);
}

void T5EncoderModel::visit_params(io::ParamVisitor& v) {
  v.param("shared.weight", &shared, {cfg_.vocab_size, cfg_.d_model});
  for (size_t i = 0; i < blocks.size(); ++i) v.child(str("encoder.block.", i), blocks[i]);
  v.child("encoder.final_layer_norm", final_layer_norm);
}

T5EncoderModel T5EncoderModel::load(const std::filesystem::path& component_dir) {
  const auto cfg_file = component_dir / "config.json";
  const T5Config cfg = T5Config::from(io::ComponentConfig::load(cfg_file));
  const auto src = io::open_weights(component_dir);

  T5EncoderModel m(cfg);
  io::KeyMap keys;
  // encoder.embed_tokens is shared: transformers 4.x wrote both keys, 5.x only shared.weight.
  if (src->has("encoder.embed_tokens.weight")) {
    if (src->has("shared.weight"))
      keys.ignore_prefix("encoder.embed_tokens.weight");
    else
      keys.rename_prefix("encoder.embed_tokens.weight", "shared.weight");
  }
  // As T5EncoderModel's _keys_to_ignore_on_load_unexpected: a full T5's decoder is not used.
  keys.ignore_prefix("decoder.");
  bind_weights(m, *src, cfg_file, &keys);
  return m;
}

Tensor T5EncoderModel::position_bias(int64_t L) const {
  const T5SelfAttention& a = blocks.at(0).attn;
  // One bucket per relative position key - query in (-L, L), spread to an (L, L) index: integer
  // math on the shape, a host constant like a schedule.
  std::vector<int32_t> bucket(static_cast<size_t>(2 * L - 1));
  for (int64_t r = -(L - 1); r < L; ++r)
    bucket[static_cast<size_t>(r + L - 1)] = t5_relative_position_bucket(
        r, cfg_.relative_attention_num_buckets, cfg_.relative_attention_max_distance);
  Tensor ids = Tensor::empty({L, L}, DType::i32);
  int32_t* id = ids.mutable_data<int32_t>();
  for (int64_t i = 0; i < L; ++i)
    for (int64_t j = 0; j < L; ++j) id[i * L + j] = bucket[static_cast<size_t>(j - i + L - 1)];
  // Rows of the (num_buckets, H) table: (L, L, H) -> (1, H, L, L).
  const Tensor& table = a.relative_attention_bias;  // (num_buckets, H)
  return ops::embedding(table, ids.to(table.device())).permute({2, 0, 1}).unsqueeze(0).contiguous();
}

Tensor T5EncoderModel::forward(const Tensor& ids, const Tensor& attention_mask) const {
  KILN_ARG(
      ids.defined() && ids.ndim() == 2 && (ids.dtype() == DType::i64 || ids.dtype() == DType::i32),
      kCtx, "ids must be (B, L) i64 or i32, got ", ids.defined() ? ids.str() : "undefined");
  KILN_ARG(!blocks.empty() && shared.defined(), kCtx, "the model has no weights (use load())");
  // Host-built ids and mask go to the weights' device.
  const Device dev = shared.device();
  const Tensor idc = ids.to(dev).contiguous();
  const int64_t B = ids.size(0), L = ids.size(1);
  KILN_ARG(B > 0 && L > 0, kCtx, "empty ids ", ids.str());

  // Embeddings: shared[ids] -> (B, L, D); no positions (T5 has only the relative bias).
  Tensor x = ops::embedding(shared, idc);

  // Scores get position_bias (1, H, L, L) and, with a mask, float32's lowest value on padded
  // keys (B, 1, 1, L): the same sum transformers forms, computed once for all blocks.
  Tensor bias = position_bias(L);
  if (attention_mask.defined()) {
    KILN_ARG(
        attention_mask.ndim() == 2 && attention_mask.size(0) == B && attention_mask.size(1) == L,
        kCtx, "attention_mask must be (", B, ", ", L, "), got ", attention_mask.str());
    const Tensor keep = ops::compare(attention_mask.to(dev).to(DType::f32), ops::Cmp::ne, 0.f);
    const Tensor mask =
        ops::where(keep.view({B, 1, 1, L}), Tensor::full({}, 0.f, keep.device()),
                   Tensor::full({}, std::numeric_limits<float>::lowest(), keep.device()));
    bias = ops::add(bias, mask);  // (B, H, L, L)
  }

  for (const auto& block : blocks) x = block(x, bias);  // (B, L, D)
  return final_layer_norm(x);                           // (B, L, D)
}

Tensor T5EncoderModel::forward(std::span<const std::vector<int32_t>> ids,
                               std::span<const std::vector<int32_t>> masks) const {
  KILN_ARG(!ids.empty(), kCtx, "no sequences");
  KILN_ARG(masks.empty() || masks.size() == ids.size(), kCtx, masks.size(), " masks for ",
           ids.size(), " sequences");
  const auto B = static_cast<int64_t>(ids.size());
  const auto L = static_cast<int64_t>(ids[0].size());
  const auto pack = [&](std::span<const std::vector<int32_t>> rows, const char* what) {
    Tensor t = Tensor::empty({B, L}, DType::i64);
    int64_t* p = t.mutable_data<int64_t>();
    for (const auto& row : rows) {
      KILN_ARG(static_cast<int64_t>(row.size()) == L, kCtx, what, " of different lengths ", L,
               " and ", row.size());
      for (int32_t v : row) *p++ = v;
    }
    return t;
  };
  return forward(pack(ids, "sequences"), masks.empty() ? Tensor{} : pack(masks, "masks"));
}

}  // namespace kiln::pipelines::models
