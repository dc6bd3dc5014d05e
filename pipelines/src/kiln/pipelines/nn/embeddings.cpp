#include "kiln/pipelines/nn/embeddings.hpp"

#include <cmath>

namespace kiln::pipelines::nn {

Tensor timestep_embedding(const Tensor& timesteps, int64_t dim, bool flip_sin_to_cos,
                          float downscale_freq_shift, float scale, float max_period) {
  KILN_ARG(timesteps.defined() && timesteps.ndim() == 1, "timestep_embedding",
           "timesteps must be 1-D, got ", timesteps.str());
  KILN_ARG(dim >= 2, "timestep_embedding", "dim must be >= 2, got ", dim);
  const int64_t half = dim / 2;
  KILN_ARG(half - downscale_freq_shift != 0.f, "timestep_embedding",
           "half dim equals downscale_freq_shift");
  Tensor t = timesteps.to(DType::f32).contiguous();
  const int64_t n = t.size(0);
  Tensor out = Tensor::zeros({n, dim});
  const float* tp = t.data<float>();
  float* o = out.mutable_data<float>();
  // f32 arithmetic in the same order as the reference (torch computes this in float32).
  const float neg_log = -std::log(max_period);
  for (int64_t j = 0; j < half; ++j) {
    const float exponent =
        neg_log * static_cast<float>(j) / (static_cast<float>(half) - downscale_freq_shift);
    const float freq = std::exp(exponent);
    for (int64_t i = 0; i < n; ++i) {
      const float a = scale * (tp[i] * freq);
      const float s = std::sin(a), c = std::cos(a);
      o[i * dim + (flip_sin_to_cos ? half + j : j)] = s;
      o[i * dim + (flip_sin_to_cos ? j : half + j)] = c;
    }
  }
  return out;
}

Tensor activate(const Tensor& x, Act act) {
  switch (act) {
    case Act::silu:
      return ops::silu(x);
    case Act::gelu:
      return ops::gelu(x);
    case Act::gelu_tanh:
      return ops::gelu(x, ops::GeluApprox::tanh);
    // transformers' QuickGELUActivation, in the same three f32 steps.
    case Act::quick_gelu:
      return ops::mul(x, ops::sigmoid(ops::scale(x, 1.702f)));
    case Act::relu:
      return ops::relu(x);
    case Act::none:
      return x;
  }
  return x;
}

TimestepEmbedding::TimestepEmbedding(int64_t in_channels, int64_t time_embed_dim, int64_t out_dim,
                                     Act act)
    : linear_1(in_channels, time_embed_dim),
      linear_2(time_embed_dim, out_dim > 0 ? out_dim : time_embed_dim),
      act(act) {}

void TimestepEmbedding::visit_params(ParamVisitor& v) {
  v.child("linear_1", linear_1);
  v.child("linear_2", linear_2);
}

}  // namespace kiln::pipelines::nn
