// Normalization forward kernels with torch's semantics (biased variance, eps inside the rsqrt),
// f32, f16 or bf16 storage (x and y one type; the affine parameters f32 or x's type), f32 math
// and f32 accumulation (Welford, merged across threads with Chan et al.'s
// pairwise update), optional per-channel affine.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>

#include "cuda/strided.hpp"

namespace kiln::kernels::cuda {

// LayerNorm (rms = false): y = (x - mean) / sqrt(var + eps) * w + b over the last dim.
// RMSNorm (rms = true): y = x / sqrt(mean(x^2) + eps) * w (b must be null).
struct RowNormParams {
  const void* x = nullptr;  // (rows, cols) contiguous, `type`
  const void* w = nullptr;  // (cols) or null, `param_type`
  const void* b = nullptr;  // (cols) or null, `param_type`
  void* y = nullptr;        // (rows, cols) contiguous, `type`
  ElemType type = ElemType::f32;
  ElemType param_type = ElemType::f32;  // f32 or `type`
  int64_t rows = 0, cols = 0;
  float eps = 1e-5f;
  bool rms = false;
};
std::string can_implement(const RowNormParams& p);
cudaError_t launch_row_norm(const RowNormParams& p, cudaStream_t stream);

// GroupNorm over x (N, C, S) contiguous: statistics per (n, group of C/groups channels).
struct GroupNormParams {
  const void* x = nullptr;  // `type`
  const void* w = nullptr;  // (C) or null, `param_type`
  const void* b = nullptr;  // (C) or null, `param_type`
  void* y = nullptr;        // `type`
  ElemType type = ElemType::f32;
  ElemType param_type = ElemType::f32;  // f32 or `type`
  int64_t n = 0, c = 0, s = 0;  // batch, channels, spatial elements per channel
  int64_t groups = 1;
  float eps = 1e-5f;
};
std::string can_implement(const GroupNormParams& p);
cudaError_t launch_group_norm(const GroupNormParams& p, cudaStream_t stream);

}  // namespace kiln::kernels::cuda
