// Reductions (sum, mean, amax, amin) over any set of dims of a strided f32/f16/bf16 input into
// a contiguous f32 output, accumulated in f32. Deterministic: every output is reduced by one
// thread, warp or block in a fixed order that depends only on the shapes (no atomics), so
// repeated runs give the same bits. amax/amin propagate NaN as torch (and the CPU op) do.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>

#include "cuda/strided.hpp"

namespace kiln::kernels::cuda {

enum class ReduceKind : uint8_t { sum, mean, max, min };

struct ReduceParams {
  ReduceKind kind = ReduceKind::sum;
  ElemType type = ElemType::f32;  // x
  const void* x = nullptr;
  float* out = nullptr;  // (the kept dims) contiguous, row-major in the order given
  // The kept dims (one output each, row-major) and the reduced dims, with x's element strides.
  int outer_ndim = 0;
  int64_t outer_shape[kMaxDims] = {};
  int64_t outer_stride[kMaxDims] = {};
  int inner_ndim = 0;
  int64_t inner_shape[kMaxDims] = {};
  int64_t inner_stride[kMaxDims] = {};
};
// max/min over an empty set have no identity and are refused.
std::string can_implement(const ReduceParams& p);
cudaError_t launch_reduce(ReduceParams p, cudaStream_t stream);

}  // namespace kiln::kernels::cuda
