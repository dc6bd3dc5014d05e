// Reductions over a set of dims. The reduced dims are moved innermost (a permuted view), so
// each output element reduces one contiguous-or-strided run; sums accumulate in double so a
// mean over a 512x64x64 group stays exact to f32 rounding. CUDA tensors go to
// kernels/cuda/reduce.cu (f32 accumulation, deterministic) after the same validation.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kiln/core/parallel.hpp"
#include "kiln/cuda/cuda_ops.hpp"
#include "kiln/ops/ops.hpp"

namespace kiln::ops {

namespace {

enum class Reduce { sum, mean, max, min };

Tensor reduce(const char* op, const Tensor& x, std::span<const int> dims_in, bool keepdim,
              Reduce kind) {
  const Device dev = common_device(op, {&x});
  require_f32(op, "x", x);
  const int nd = x.ndim();
  bool red[kMaxDims] = {};
  if (dims_in.empty()) {
    for (int d = 0; d < nd; ++d) red[d] = true;  // torch: no dims = all dims
  }
  for (int d : dims_in) {
    int n = normalize_dim(d, nd, op);
    KILN_ARG(!red[n], op, "dim ", n, " listed twice");
    red[n] = true;
  }
  std::vector<int> perm;
  Shape out_shape, keep_shape;
  int64_t inner = 1;
  for (int d = 0; d < nd; ++d) {
    if (!red[d]) {
      perm.push_back(d);
      out_shape.push_back(x.size(d));
      keep_shape.push_back(x.size(d));
    } else {
      keep_shape.push_back(1);
    }
  }
  for (int d = 0; d < nd; ++d) {
    if (red[d]) {
      perm.push_back(d);
      inner *= x.size(d);
    }
  }
  if ((kind == Reduce::max || kind == Reduce::min) && inner == 0)
    fail(Status::invalid_argument, "reduction over an empty dim has no identity", op);
  if (dev.is_cuda()) {
    constexpr cuda_ops::Reduction kinds[] = {cuda_ops::Reduction::sum, cuda_ops::Reduction::mean,
                                             cuda_ops::Reduction::max, cuda_ops::Reduction::min};
    const Tensor out = cuda_ops::reduce(op, kinds[static_cast<int>(kind)], x,
                                        std::span<const bool>(red, static_cast<size_t>(nd)));
    return keepdim ? out.view(keep_shape) : out;
  }
  Tensor p = x.permute(std::span<const int>(perm.data(), perm.size())).contiguous();
  const int64_t outer = shape_numel(out_shape);
  Tensor out = Tensor::empty(out_shape, DType::f32);
  const float* src = p.data<float>();
  float* dst = out.mutable_data<float>();
  parallel_for(outer, std::max<int64_t>(1, 65536 / std::max<int64_t>(inner, 1)),
               [&](int64_t s, int64_t e) {
                 for (int64_t o = s; o < e; ++o) {
                   const float* r = src + o * inner;
                   if (kind == Reduce::sum || kind == Reduce::mean) {
                     double acc = 0;
                     for (int64_t i = 0; i < inner; ++i) acc += r[i];
                     if (kind == Reduce::mean) acc /= static_cast<double>(inner);
                     dst[o] = static_cast<float>(acc);
                   } else {
                     float acc = r[0];
                     bool nan = false;
                     for (int64_t i = 0; i < inner; ++i) {
                       nan |= std::isnan(r[i]);
                       acc = kind == Reduce::max ? std::max(acc, r[i]) : std::min(acc, r[i]);
                     }
                     dst[o] = nan ? std::numeric_limits<float>::quiet_NaN() : acc;  // torch propagates NaN
                   }
                 }
               });
  return keepdim ? out.view(keep_shape) : out;
}

}  // namespace

Tensor sum(const Tensor& x, std::span<const int> dims, bool keepdim) {
  return reduce("sum", x, dims, keepdim, Reduce::sum);
}
Tensor mean(const Tensor& x, std::span<const int> dims, bool keepdim) {
  return reduce("mean", x, dims, keepdim, Reduce::mean);
}
Tensor amax(const Tensor& x, std::span<const int> dims, bool keepdim) {
  return reduce("amax", x, dims, keepdim, Reduce::max);
}
Tensor amin(const Tensor& x, std::span<const int> dims, bool keepdim) {
  return reduce("amin", x, dims, keepdim, Reduce::min);
}

}  // namespace kiln::ops
