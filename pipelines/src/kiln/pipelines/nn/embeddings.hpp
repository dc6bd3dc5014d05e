// Timestep embeddings shared by U-Nets and DiTs.
// Ref: diffusers src/diffusers/models/embeddings.py (get_timestep_embedding, TimestepEmbedding).
#pragma once

#include "kiln/pipelines/nn/layers.hpp"

namespace kiln::pipelines::nn {

// timesteps (N) f32 -> (N, dim) sinusoidal embedding, exactly as get_timestep_embedding:
// exponent = -ln(max_period) * arange(half) / (half - downscale_freq_shift); [sin, cos] (or
// [cos, sin] with flip_sin_to_cos); zero-padded when dim is odd.
Tensor timestep_embedding(const Tensor& timesteps, int64_t dim, bool flip_sin_to_cos,
                          float downscale_freq_shift, float scale = 1.f,
                          float max_period = 10000.f);

// Hidden activations by their transformers/diffusers config names: silu, gelu (erf),
// gelu_tanh ("gelu_new", "gelu_pytorch_tanh"), quick_gelu (x * sigmoid(1.702 x), OpenAI CLIP),
// relu (T5 v1.0).
enum class Act { silu, gelu, gelu_tanh, quick_gelu, relu, none };
Tensor activate(const Tensor& x, Act act);

// linear_1 -> act -> linear_2.
struct TimestepEmbedding : Module {
  Linear linear_1, linear_2;
  Act act = Act::silu;
  TimestepEmbedding() = default;
  TimestepEmbedding(int64_t in_channels, int64_t time_embed_dim, int64_t out_dim = 0,
                    Act act = Act::silu);
  void visit_params(ParamVisitor& v) override;
  Tensor operator()(const Tensor& x) const { return linear_2(activate(linear_1(x), act)); }
};

}  // namespace kiln::pipelines::nn
