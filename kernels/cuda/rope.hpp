// Rotary position embedding applied to f32 rows (ops::apply_rope's CUDA path): each pair of a
// row's channels is rotated by the (cos, sin) of its table row, with the CPU op's float
// operations in its order (products and the sum rounded separately, no FMA contraction), so
// the result is bit-identical to the CPU reference.
//   interleaved: (y[2i], y[2i+1]) = (x[2i] c - x[2i+1] s, x[2i] s + x[2i+1] c)
//   split_half:  (y[i], y[i+D/2]) = (x[i] c - x[i+D/2] s, x[i] s + x[i+D/2] c)
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>

namespace kiln::kernels::cuda {

struct RopeParams {
  const float* x = nullptr;    // (rows, head_dim) contiguous
  const float* cos = nullptr;  // (seq_len, head_dim / 2) contiguous
  const float* sin = nullptr;  // (seq_len, head_dim / 2) contiguous
  float* out = nullptr;        // (rows, head_dim) contiguous, may not alias x
  int64_t rows = 0, head_dim = 0, seq_len = 0;
  // Row r rotates with table row (r / inner) % seq_len: inner = H for (B, L, H, D) memory,
  // 1 for (B, H, L, D).
  int64_t inner = 1;
  bool interleaved = true;  // else split_half
};
std::string can_implement(const RopeParams& p);
cudaError_t launch_rope(const RopeParams& p, cudaStream_t stream);

}  // namespace kiln::kernels::cuda
