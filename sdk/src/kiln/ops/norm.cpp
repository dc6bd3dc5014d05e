// Normalization: group_norm, layer_norm, rms_norm with torch's semantics (biased variance,
// eps added to the variance / mean square inside the rsqrt). Statistics are accumulated in
// double with two passes (mean, then sum of squared deviations): a GroupNorm group of an SD
// VAE block holds 16 x 512 x 512 = 4M values, where a single-pass f32 sum loses ~3 digits.
// CUDA tensors go to kernels/cuda/norm.cu (f32 Welford; see its tolerance in docs/cuda.md)
// after the same validation.
// Ref: torch.nn.functional.group_norm / layer_norm / rms_norm docs; Wu & He 2018, "Group
//      Normalization".
#include <algorithm>
#include <cmath>
#include <vector>

#include "kiln/core/parallel.hpp"
#include "kiln/cuda/cuda_ops.hpp"
#include "kiln/ops/ops.hpp"

namespace kiln::ops {

namespace {

constexpr int64_t kGrain = 32768;  // elements per parallel chunk (see elementwise.cpp)

struct Moments {
  double mean, rstd;
};

// The mean as an unevaluated f32 sum hi + lo: (x - hi) - lo is exact in its first step when x
// is near the mean (Sterbenz), so data with a large common offset (mean 100, std 0.3) keeps
// its centred digits; a single f32 mean would be off by up to 100 * 6e-8 = 6e-6, i.e. 2e-5
// after division by the std.
struct SplitMean {
  float hi, lo;
  explicit SplitMean(double m)
      : hi(static_cast<float>(m)), lo(static_cast<float>(m - static_cast<double>(hi))) {}
  float centre(float x) const { return (x - hi) - lo; }
};

// Mean and 1/sqrt(biased var + eps) of p[0..n) in double.
Moments moments(const float* p, int64_t n, double eps) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += p[i];
  const double mean = s / static_cast<double>(n);
  double ss = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double dv = p[i] - mean;
    ss += dv * dv;
  }
  return {mean, 1.0 / std::sqrt(ss / static_cast<double>(n) + eps)};
}

// An optional per-channel parameter: undefined, or (n) on x's device, f32 (on CUDA also x's
// f16/bf16 dtype). Returns a contiguous view (or an undefined tensor).
Tensor check_param(const char* op, const char* arg, const Tensor& t, int64_t n, const char* what,
                   const Tensor& x) {
  if (!t.defined()) return t;
  if (!(t.device().is_cuda() && t.dtype() == x.dtype())) require_f32(op, arg, t);
  KILN_ARG(t.ndim() == 1 && t.size(0) == n, op, arg, " has shape ", t.shape().str(), ", expected (",
           n, ") to match ", what);
  return t.contiguous();
}

}  // namespace

Tensor group_norm(const Tensor& x_in, int groups, const Tensor& weight, const Tensor& bias,
                  float eps) {
  const char* op = "group_norm";
  const Device dev = common_device(op, {&x_in, &weight, &bias});
  require_f32_or_cuda_half(op, "x", x_in, dev);
  KILN_ARG(x_in.ndim() >= 2, op, "x has shape ", x_in.shape().str(),
           ", expected (N, C, *) with at least 2 dims");
  const int64_t N = x_in.size(0), C = x_in.size(1);
  KILN_ARG(groups > 0 && C % groups == 0, op, "groups = ", groups,
           " must be positive and divide the ", C, " channels of x ", x_in.shape().str());
  KILN_ARG(eps >= 0.f, op, "eps ", eps, " must be >= 0");
  const Tensor w = check_param(op, "weight", weight, C, "the channels of x", x_in);
  const Tensor b = check_param(op, "bias", bias, C, "the channels of x", x_in);
  if (dev.is_cuda()) return cuda_ops::group_norm(x_in, groups, w, b, eps);
  const Tensor x = x_in.contiguous();
  Tensor out = Tensor::empty(x.shape(), DType::f32);
  if (x.numel() == 0) return out;
  const int64_t S = x.numel() / (N * C);  // spatial elements per channel
  const int64_t cpg = C / groups, group_elems = cpg * S;
  const float* px = x.data<float>();
  const float* pw = w.defined() ? w.data<float>() : nullptr;
  const float* pb = b.defined() ? b.data<float>() : nullptr;
  float* po = out.mutable_data<float>();

  // Pass 1: statistics per (n, g); a group's values are contiguous in x.
  const int64_t ng = N * groups;
  std::vector<Moments> st(static_cast<size_t>(ng));
  parallel_for(ng, std::max<int64_t>(1, kGrain / group_elems), [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) st[i] = moments(px + i * group_elems, group_elems, eps);
  });
  // Pass 2: per (n, c) plane, y = (x - mean) * (rstd * w) + b.
  parallel_for(N * C, std::max<int64_t>(1, kGrain / S), [&](int64_t s, int64_t e) {
    for (int64_t nc = s; nc < e; ++nc) {
      const int64_t n = nc / C, c = nc % C;
      const Moments& m = st[n * groups + c / cpg];
      const SplitMean mean(m.mean);
      const float a = static_cast<float>(m.rstd * (pw ? pw[c] : 1.0));
      const float bc = pb ? pb[c] : 0.f;
      const float* xs = px + nc * S;
      float* os = po + nc * S;
      for (int64_t i = 0; i < S; ++i) os[i] = mean.centre(xs[i]) * a + bc;
    }
  });
  return out;
}

Tensor layer_norm(const Tensor& x_in, const Tensor& weight, const Tensor& bias, float eps) {
  const char* op = "layer_norm";
  const Device dev = common_device(op, {&x_in, &weight, &bias});
  require_f32_or_cuda_half(op, "x", x_in, dev);
  KILN_ARG(x_in.ndim() >= 1, op, "x is a 0-dim tensor; layer_norm normalises the last dim");
  KILN_ARG(eps >= 0.f, op, "eps ", eps, " must be >= 0");
  const int64_t D = x_in.size(-1);
  const Tensor w = check_param(op, "weight", weight, D, "the last dim of x", x_in);
  const Tensor b = check_param(op, "bias", bias, D, "the last dim of x", x_in);
  if (dev.is_cuda()) return cuda_ops::layer_norm(x_in, w, b, eps);
  const Tensor x = x_in.contiguous();
  Tensor out = Tensor::empty(x.shape(), DType::f32);
  if (x.numel() == 0) return out;
  const int64_t rows = x.numel() / D;
  const float* px = x.data<float>();
  const float* pw = w.defined() ? w.data<float>() : nullptr;
  const float* pb = b.defined() ? b.data<float>() : nullptr;
  float* po = out.mutable_data<float>();
  parallel_for(rows, std::max<int64_t>(1, kGrain / D), [&](int64_t s, int64_t e) {
    for (int64_t r = s; r < e; ++r) {
      const float* xs = px + r * D;
      float* os = po + r * D;
      const Moments m = moments(xs, D, eps);
      const SplitMean mean(m.mean);
      const float rstd = static_cast<float>(m.rstd);
      for (int64_t i = 0; i < D; ++i) {
        float y = mean.centre(xs[i]) * rstd;
        if (pw) y *= pw[i];
        if (pb) y += pb[i];
        os[i] = y;
      }
    }
  });
  return out;
}

// torch.nn.functional.rms_norm: x * rsqrt(mean(x^2) + eps) * weight.
Tensor rms_norm(const Tensor& x_in, const Tensor& weight, float eps) {
  const char* op = "rms_norm";
  const Device dev = common_device(op, {&x_in, &weight});
  require_f32_or_cuda_half(op, "x", x_in, dev);
  KILN_ARG(x_in.ndim() >= 1, op, "x is a 0-dim tensor; rms_norm normalises the last dim");
  KILN_ARG(eps >= 0.f, op, "eps ", eps, " must be >= 0");
  const int64_t D = x_in.size(-1);
  const Tensor w = check_param(op, "weight", weight, D, "the last dim of x", x_in);
  if (dev.is_cuda()) return cuda_ops::rms_norm(x_in, w, eps);
  const Tensor x = x_in.contiguous();
  Tensor out = Tensor::empty(x.shape(), DType::f32);
  if (x.numel() == 0) return out;
  const int64_t rows = x.numel() / D;
  const float* px = x.data<float>();
  const float* pw = w.defined() ? w.data<float>() : nullptr;
  float* po = out.mutable_data<float>();
  parallel_for(rows, std::max<int64_t>(1, kGrain / D), [&](int64_t s, int64_t e) {
    for (int64_t r = s; r < e; ++r) {
      const float* xs = px + r * D;
      float* os = po + r * D;
      double ss = 0;
      for (int64_t i = 0; i < D; ++i) ss += static_cast<double>(xs[i]) * xs[i];
      const float rs = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(D) + eps));
      for (int64_t i = 0; i < D; ++i) os[i] = pw ? xs[i] * rs * pw[i] : xs[i] * rs;
    }
  });
  return out;
}

}  // namespace kiln::ops
