// Ref: transformers models/clip/modeling_clip.py (CLIPTextEmbeddings, CLIPAttention, CLIPMLP,
// CLIPEncoderLayer, CLIPTextModel.forward pooling, CLIPTextModelWithProjection).
#include "kiln/pipelines/models/clip_text.hpp"

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

constexpr const char* kCtx = "CLIPTextModel";

int64_t id_at(const Tensor& ids, int64_t i) {
  return ids.dtype() == DType::i64 ? ids.data<int64_t>()[i] : ids.data<int32_t>()[i];
}

}  // namespace

// ---------------------------------------------------------------- config

ClipTextConfig ClipTextConfig::from(const io::ComponentConfig& c) {
  ClipTextConfig k;
  k.vocab_size = c.get_int_or("vocab_size", k.vocab_size);
  k.hidden_size = c.get_int_or("hidden_size", k.hidden_size);
  k.intermediate_size = c.get_int_or("intermediate_size", k.intermediate_size);
  k.projection_dim = c.get_int_or("projection_dim", k.projection_dim);
  k.num_hidden_layers = static_cast<int>(c.get_int_or("num_hidden_layers", k.num_hidden_layers));
  k.num_attention_heads =
      static_cast<int>(c.get_int_or("num_attention_heads", k.num_attention_heads));
  k.max_position_embeddings = c.get_int_or("max_position_embeddings", k.max_position_embeddings);
  k.layer_norm_eps = static_cast<float>(c.get_float_or("layer_norm_eps", k.layer_norm_eps));
  // transformers' default is 49407 (the "new" pooling); configs that predate it carry 2.
  k.eos_token_id = c.has("eos_token_id") && c.json()["eos_token_id"].is_array()
                       ? -1
                       : c.get_int_or("eos_token_id", 49407);
  KILN_CHECK(k.eos_token_id >= 0, Status::unsupported, c.file().string(),
             "\"eos_token_id\" as a list is not supported (CLIPTextModel pools at one id)");
  const std::string act = c.get_string_or("hidden_act", "quick_gelu");
  if (act == "quick_gelu") {
    k.hidden_act = nn::Act::quick_gelu;
  } else if (act == "gelu") {
    k.hidden_act = nn::Act::gelu;
  } else if (act == "gelu_new" || act == "gelu_pytorch_tanh") {
    k.hidden_act = nn::Act::gelu_tanh;
  } else {
    fail(Status::format_error,
         str("\"hidden_act\": \"", act, "\" is not one of quick_gelu, gelu, gelu_new, ",
             "gelu_pytorch_tanh"),
         c.file().string());
  }
  k.validate(c.file().string());
  return k;
}

void ClipTextConfig::validate(const std::string& context) const {
  KILN_CHECK(vocab_size > 0 && hidden_size > 0 && intermediate_size > 0 && projection_dim > 0 &&
                 num_hidden_layers > 0 && num_attention_heads > 0 && max_position_embeddings > 0,
             Status::format_error, context, "sizes must be positive: vocab_size ", vocab_size,
             ", hidden_size ", hidden_size, ", intermediate_size ", intermediate_size,
             ", projection_dim ", projection_dim, ", num_hidden_layers ", num_hidden_layers,
             ", num_attention_heads ", num_attention_heads, ", max_position_embeddings ",
             max_position_embeddings);
  KILN_CHECK(hidden_size % num_attention_heads == 0, Status::format_error, context, "hidden_size ",
             hidden_size, " is not a multiple of num_attention_heads ", num_attention_heads);
}

// ---------------------------------------------------------------- layers

ClipAttention::ClipAttention(int64_t d, int h)
    : heads(h), dim(d), q_proj(d, d), k_proj(d, d), v_proj(d, d), out_proj(d, d) {}

void ClipAttention::visit_params(io::ParamVisitor& v) {
  v.child("q_proj", q_proj);
  v.child("k_proj", k_proj);
  v.child("v_proj", v_proj);
  v.child("out_proj", out_proj);
}

Tensor ClipAttention::operator()(const Tensor& x, const Tensor& mask) const {
  const int64_t B = x.size(0), L = x.size(1), Dh = dim / heads;
  // (B, L, D) -> (B, H, L, Dh) views; attention consumes the strides.
  auto split = [&](const Tensor& t) { return t.view({B, L, heads, Dh}).transpose(1, 2); };
  ops::AttentionParams p;
  p.causal = true;  // scale: Dh^-0.5 (the default)
  Tensor o = ops::attention(split(q_proj(x)), split(k_proj(x)), split(v_proj(x)), mask, p);
  return out_proj(o.transpose(1, 2).reshape({B, L, dim}));  // (B, L, D)
}

ClipEncoderLayer::ClipEncoderLayer(const ClipTextConfig& c)
    : layer_norm1(c.hidden_size, c.layer_norm_eps),
      layer_norm2(c.hidden_size, c.layer_norm_eps),
      self_attn(c.hidden_size, c.num_attention_heads),
      fc1(c.hidden_size, c.intermediate_size),
      fc2(c.intermediate_size, c.hidden_size),
      act(c.hidden_act) {}

void ClipEncoderLayer::visit_params(io::ParamVisitor& v) {
  v.child("self_attn", self_attn);
  v.child("layer_norm1", layer_norm1);
  v.child("mlp.fc1", fc1);
  v.child("mlp.fc2", fc2);
  v.child("layer_norm2", layer_norm2);
}

Tensor ClipEncoderLayer::operator()(const Tensor& x, const Tensor& mask) const {
  Tensor h = ops::add(x, self_attn(layer_norm1(x), mask));  // (B, L, D)
  return ops::add(h, fc2(nn::activate(fc1(layer_norm2(h)), act)));
}

// ---------------------------------------------------------------- model

ClipTextModel::ClipTextModel(const ClipTextConfig& cfg, bool with_projection)
    : final_layer_norm(cfg.hidden_size, cfg.layer_norm_eps),
      cfg_(cfg),
      with_projection_(with_projection) {
  cfg_.validate(kCtx);
  layers.reserve(static_cast<size_t>(cfg.num_hidden_layers));
  for (int i = 0; i < cfg.num_hidden_layers; ++i) layers.emplace_back(cfg_);
  if (with_projection) text_projection = nn::Linear(cfg.hidden_size, cfg.projection_dim, false);
}

void ClipTextModel::visit_params(io::ParamVisitor& v) {
  struct TextModel : io::Module {
    ClipTextModel* m;
    explicit TextModel(ClipTextModel* m) : m(m) {}
    void visit_params(io::ParamVisitor& v) override {
      const auto& c = m->cfg_;
      v.param("embeddings.token_embedding.weight", &m->token_embedding,
              {c.vocab_size, c.hidden_size});
      v.param("embeddings.position_embedding.weight", &m->position_embedding,
              {c.max_position_embeddings, c.hidden_size});
      for (size_t i = 0; i < m->layers.size(); ++i)
        v.child(str("encoder.layers.", i), m->layers[i]);
      v.child("final_layer_norm", m->final_layer_norm);
    }
  } text_model(this);
  v.child("text_model", text_model);
  if (with_projection_) v.child("text_projection", text_projection);
}

ClipTextModel ClipTextModel::load(const std::filesystem::path& component_dir) {
  const auto cfg_file = component_dir / "config.json";
  const auto config = io::ComponentConfig::load(cfg_file);
  const ClipTextConfig cfg = ClipTextConfig::from(config);
  const auto src = io::open_weights(component_dir);

  bool with_projection = src->has("text_projection.weight");
  if (config.has("architectures")) {
    const auto arch = config.get_string_list("architectures");
    const bool says_proj =
        std::find(arch.begin(), arch.end(), "CLIPTextModelWithProjection") != arch.end();
    const bool says_plain = std::find(arch.begin(), arch.end(), "CLIPTextModel") != arch.end();
    KILN_CHECK(says_proj || says_plain, Status::format_error, cfg_file.string(),
               "\"architectures\" names neither CLIPTextModel nor CLIPTextModelWithProjection");
    KILN_CHECK(says_proj == with_projection, Status::format_error, cfg_file.string(),
               "\"architectures\" says ",
               says_proj ? "CLIPTextModelWithProjection" : "CLIPTextModel", " but the weights in ",
               src->describe(), with_projection ? " have" : " have no", " text_projection.weight");
  }

  ClipTextModel m(cfg, with_projection);
  io::KeyMap keys;
  // transformers >= 5 saves CLIPTextModel without its "text_model." level.
  if (!src->has("text_model.embeddings.token_embedding.weight") &&
      src->has("embeddings.token_embedding.weight"))
    keys.rename_prefix("", "text_model.");
  // A buffer that transformers < 4.31 saved into checkpoints (persistent then, not since).
  keys.ignore_prefix("text_model.embeddings.position_ids");
  bind_weights(m, *src, cfg_file, &keys);
  return m;
}

ClipTextOutput ClipTextModel::forward(const Tensor& ids, const ClipTextOptions& opt,
                                      const Tensor& attention_mask) const {
  KILN_ARG(
      ids.defined() && ids.ndim() == 2 && (ids.dtype() == DType::i64 || ids.dtype() == DType::i32),
      kCtx, "ids must be (B, L) i64 or i32, got ", ids.defined() ? ids.str() : "undefined");
  // The ids are read on the host (eos positions below) and embedded on the weights' device.
  const Device dev = token_embedding.device();
  const Tensor idc = ids.to(Device::cpu()).contiguous();
  const int64_t B = ids.size(0), L = ids.size(1);
  KILN_ARG(B > 0 && L > 0 && L <= cfg_.max_position_embeddings, kCtx, "sequence length ", L,
           " outside [1, max_position_embeddings ", cfg_.max_position_embeddings, "]");

  // Embeddings: token_embedding[ids] + position_embedding[0..L)  -> (B, L, D)
  Tensor x =
      ops::add(ops::embedding(token_embedding, idc.to(dev)), position_embedding.narrow(0, 0, L));

  Tensor mask;  // (B, 1, 1, L) additive, combined with the causal mask inside attention
  if (attention_mask.defined()) {
    KILN_ARG(
        attention_mask.ndim() == 2 && attention_mask.size(0) == B && attention_mask.size(1) == L,
        kCtx, "attention_mask must be (", B, ", ", L, "), got ", attention_mask.str());
    const Tensor keep = ops::compare(attention_mask.to(dev).to(DType::f32), ops::Cmp::ne, 0.f);
    mask = ops::where(keep.view({B, 1, 1, L}), Tensor::full({}, 0.f, keep.device()),
                      Tensor::full({}, -std::numeric_limits<float>::infinity(), keep.device()));
  }

  ClipTextOutput out;
  if (opt.output_hidden_states) out.hidden_states.push_back(x);
  for (const auto& layer : layers) {
    x = layer(x, mask);  // (B, L, D)
    if (opt.output_hidden_states) out.hidden_states.push_back(x);
  }
  out.last_hidden_state = final_layer_norm(x);

  // Pooled: the row at the eos position of each sequence -> (B, D)
  // The position is found on the host in the token ids (the tokenizer's output); the rows are
  // gathered as views.
  std::vector<Tensor> rows;
  for (int64_t b = 0; b < B; ++b) {
    int64_t at = 0;
    if (cfg_.eos_token_id == 2) {  // legacy: argmax of the ids (first maximum)
      for (int64_t l = 1; l < L; ++l)
        if (id_at(idc, b * L + l) > id_at(idc, b * L + at)) at = l;
    } else {  // first eos; position 0 when there is none (torch's argmax of all zeros)
      for (int64_t l = 0; l < L; ++l)
        if (id_at(idc, b * L + l) == cfg_.eos_token_id) {
          at = l;
          break;
        }
    }
    rows.push_back(out.last_hidden_state.select(0, b).narrow(0, at, 1));  // (1, D)
  }
  out.pooled = ops::concat(rows, 0);                                    // (B, D)
  if (with_projection_) out.text_embeds = text_projection(out.pooled);  // (B, projection_dim)
  return out;
}

ClipTextOutput ClipTextModel::forward(std::span<const std::vector<int32_t>> ids,
                                      const ClipTextOptions& opt) const {
  KILN_ARG(!ids.empty(), kCtx, "no sequences");
  const auto L = static_cast<int64_t>(ids[0].size());
  Tensor t = Tensor::empty({static_cast<int64_t>(ids.size()), L}, DType::i64);
  int64_t* p = t.mutable_data<int64_t>();
  for (const auto& seq : ids) {
    KILN_ARG(static_cast<int64_t>(seq.size()) == L, kCtx, "sequences of different lengths ", L,
             " and ", seq.size());
    for (int32_t id : seq) *p++ = id;
  }
  return forward(t, opt);
}

}  // namespace kiln::pipelines::models
