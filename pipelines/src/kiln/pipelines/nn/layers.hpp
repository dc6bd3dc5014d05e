// Building blocks shared by every model family, each a Module whose parameter names are the
// diffusers/PyTorch ones (weight, bias), so a family's module tree mirrors its checkpoint.
// Forward functions are const: a bound model is immutable and may serve concurrent requests.
#pragma once

#include <array>
#include <cstdint>

#include "kiln/io/module.hpp"
#include "kiln/ops/ops.hpp"

namespace kiln::pipelines::nn {

using io::Module;
using io::ParamVisitor;

// torch.nn.Linear: y = x W^T + b, W (out, in).
struct Linear : Module {
  int64_t in = 0, out = 0;
  bool has_bias = true;
  Tensor weight, bias;
  Linear() = default;
  Linear(int64_t in_features, int64_t out_features, bool bias = true)
      : in(in_features), out(out_features), has_bias(bias) {}
  void visit_params(ParamVisitor& v) override;
  Tensor operator()(const Tensor& x) const { return ops::linear(x, weight, bias); }
};

// torch.nn.Conv{1,2,3}d with symmetric padding (or any ConvParams).
struct Conv : Module {
  int dims = 2;  // spatial dims: 1, 2 or 3
  int64_t cin = 0, cout = 0;
  std::array<int64_t, 3> kernel{1, 1, 1};
  ops::ConvParams params;
  bool has_bias = true;
  Tensor weight, bias;
  Conv() = default;
  // Square/cubic kernel of size k, stride s, padding p on every spatial dim.
  Conv(int dims, int64_t cin, int64_t cout, int64_t k, int s = 1, int p = 0, bool bias = true,
       int groups = 1);
  void visit_params(ParamVisitor& v) override;
  Tensor operator()(const Tensor& x) const { return ops::conv(x, weight, bias, params); }
};

// torch.nn.GroupNorm over (N, C, *).
struct GroupNorm : Module {
  int groups = 32;
  int64_t channels = 0;
  float eps = 1e-5f;
  bool affine = true;
  Tensor weight, bias;
  GroupNorm() = default;
  GroupNorm(int groups, int64_t channels, float eps = 1e-5f, bool affine = true)
      : groups(groups), channels(channels), eps(eps), affine(affine) {}
  void visit_params(ParamVisitor& v) override;
  Tensor operator()(const Tensor& x) const { return ops::group_norm(x, groups, weight, bias, eps); }
};

// torch.nn.LayerNorm over the last dim (elementwise_affine, bias as in torch >= 2.1).
struct LayerNorm : Module {
  int64_t dim = 0;
  float eps = 1e-5f;
  bool affine = true, has_bias = true;
  Tensor weight, bias;
  LayerNorm() = default;
  LayerNorm(int64_t dim, float eps = 1e-5f, bool affine = true, bool bias = true)
      : dim(dim), eps(eps), affine(affine), has_bias(bias) {}
  void visit_params(ParamVisitor& v) override;
  Tensor operator()(const Tensor& x) const { return ops::layer_norm(x, weight, bias, eps); }
};

// diffusers RMSNorm: x * rsqrt(mean(x^2) + eps) * weight.
struct RMSNorm : Module {
  int64_t dim = 0;
  float eps = 1e-6f;
  bool affine = true;
  Tensor weight;
  RMSNorm() = default;
  RMSNorm(int64_t dim, float eps = 1e-6f, bool affine = true) : dim(dim), eps(eps), affine(affine) {}
  void visit_params(ParamVisitor& v) override;
  Tensor operator()(const Tensor& x) const { return ops::rms_norm(x, weight, eps); }
};

}  // namespace kiln::pipelines::nn
