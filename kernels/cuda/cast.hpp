// Strided copy with dtype conversion between f32, f16 and bf16 (any pair, same type included):
// the CUDA side of Tensor::copy_from, so .to(dtype) and .contiguous() work on CUDA tensors.
// Conversions are bit-identical to the CPU's (sdk/src/kiln/core/dtype.cpp): RNE, overflow to
// inf, NaN payloads kept as the CPU keeps them.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>

#include "cuda/strided.hpp"

namespace kiln::kernels::cuda {

struct CastParams {
  const void* src = nullptr;
  void* dst = nullptr;
  ElemType src_type = ElemType::f32, dst_type = ElemType::f32;
  int ndim = 0;
  int64_t shape[kMaxDims] = {};
  int64_t src_stride[kMaxDims] = {};  // elements; 0 on broadcast dims
  int64_t dst_stride[kMaxDims] = {};  // elements; must not alias (no 0 strides)
};

// Empty when the launcher can run `p`; otherwise why not.
std::string can_implement(const CastParams& p);
// Queues the copy on `stream`. Coalesces dims; 16-byte vectors when both sides are contiguous
// and aligned, a strided loop otherwise. Returns the launch error (cudaSuccess when queued).
cudaError_t launch_cast(CastParams p, cudaStream_t stream);

}  // namespace kiln::kernels::cuda
