#include "kiln/pipelines/nn/embeddings.hpp"

#include <cmath>
#include <vector>

namespace kiln::pipelines::nn {

Tensor timestep_embedding(const Tensor& timesteps, int64_t dim, bool flip_sin_to_cos,
                          float downscale_freq_shift, float scale, float max_period) {
  KILN_ARG(timesteps.defined() && timesteps.ndim() == 1, "timestep_embedding",
           "timesteps must be 1-D, got ", timesteps.str());
  KILN_ARG(dim >= 2, "timestep_embedding", "dim must be >= 2, got ", dim);
  const int64_t half = dim / 2;
  KILN_ARG(half - downscale_freq_shift != 0.f, "timestep_embedding",
           "half dim equals downscale_freq_shift");
  // The frequencies are a host constant (scalar math on the index), in f32 in the reference's
  // order (torch computes them in float32); the rest is tensor ops.
  const float neg_log = -std::log(max_period);
  std::vector<float> freq(static_cast<size_t>(half));
  for (int64_t j = 0; j < half; ++j) {
    const float exponent =
        neg_log * static_cast<float>(j) / (static_cast<float>(half) - downscale_freq_shift);
    freq[static_cast<size_t>(j)] = std::exp(exponent);
  }
  const Tensor t = timesteps.to(DType::f32);
  // scale * (t * freq): (N, 1) x (1, half) -> (N, half); scale(x, s) = s * x + 0, one rounding.
  const Tensor arg =
      ops::scale(ops::mul(t.unsqueeze(1), Tensor::from_f32({1, half}, freq).to(t.device())), scale);
  const Tensor sin = ops::sin(arg), cos = ops::cos(arg);
  const Tensor halves[] = {flip_sin_to_cos ? cos : sin, flip_sin_to_cos ? sin : cos};
  Tensor out = ops::concat(halves, 1);  // (N, 2 * half)
  if (dim % 2 == 1) {
    const int64_t pads[] = {0, 1};
    out = ops::pad(out, pads);  // a zero column, as diffusers pads odd dims
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
