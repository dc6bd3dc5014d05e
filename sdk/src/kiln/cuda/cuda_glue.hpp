// The steps every CUDA op's glue shares (cuda_ops.cpp, cuda_attention.cpp, cuda_conv.cpp,
// cuda_layout.cpp): refusing a case a kernel cannot do, turning a launch error into a kiln
// error, making the device current, and mapping a DType to the kernels' ElemType. Internal to
// sdk/src/kiln/cuda; the kernels (kernels/cuda) know no kiln types.
#pragma once

#include <cuda_runtime_api.h>

#include <string>

#include "cuda/strided.hpp"
#include "kiln/core/error.hpp"
#include "kiln/cuda/cuda_ops.hpp"

namespace kiln::cuda_ops::glue {

namespace kc = kernels::cuda;

// Refuses with the kernel's reason: "[op] no cuda:0 kernel for this case: <why>".
inline void require_implementable(const std::string& why, const char* op, Device d) {
  if (!why.empty()) fail(Status::unsupported, str("no ", d.str(), " kernel for this case: ", why), op);
}

inline void check_launch(cudaError_t e, const char* op) {
  if (e == cudaSuccess) return;
  cudaGetLastError();  // clear it so later calls are not reported as failing too
  fail(e == cudaErrorMemoryAllocation ? Status::out_of_memory : Status::device_error,
       str("CUDA kernel launch failed: ", cudaGetErrorString(e)), op);
}

// Makes `d` current (kernels launch on the calling thread's current device) and returns the
// stream to launch on.
inline cudaStream_t prepare(Device d, const char* op) {
  check_launch(cudaSetDevice(d.index), op);
  return static_cast<cudaStream_t>(op_stream(d).native);
}

inline kc::ElemType elem_type(DType t, const char* op, Device d) {
  switch (t) {
    case DType::f32: return kc::ElemType::f32;
    case DType::f16: return kc::ElemType::f16;
    case DType::bf16: return kc::ElemType::bf16;
    default: break;
  }
  fail(Status::unsupported,
       str("no ", d.str(), " kernel for ", dtype_name(t), " (f32, f16 and bf16 only)"), op);
}

}  // namespace kiln::cuda_ops::glue
