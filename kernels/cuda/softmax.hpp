// Softmax over the last dim of contiguous rows: y = exp(x - max) / sum(exp(x - max)); f32, f16
// or bf16 storage (x and y one type), f32 math.
// One warp per row up to 1024 columns, one block per row beyond; any length. An all -inf row
// gives NaN, as on the CPU and in torch.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>

#include "cuda/strided.hpp"

namespace kiln::kernels::cuda {

struct SoftmaxParams {
  const void* x = nullptr;  // (rows, cols) contiguous, `type`
  void* y = nullptr;        // (rows, cols) contiguous, `type`
  ElemType type = ElemType::f32;
  int64_t rows = 0, cols = 0;
};
std::string can_implement(const SoftmaxParams& p);
cudaError_t launch_softmax_last_dim(const SoftmaxParams& p, cudaStream_t stream);

}  // namespace kiln::kernels::cuda
