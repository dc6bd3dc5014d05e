// Gathers of the resample ops: pad (constant/reflect/replicate/circular) and interpolate
// (nearest, nearest_exact, bilinear with align_corners), with the index arithmetic of the CPU
// ops (sdk/src/kiln/ops/resample.cpp, which follows torch's PadNd/UpSample.h) done on the
// device in the same float/double operations, explicitly rounded (no FMA contraction), so the
// picked source indices and the bilinear weights are bit-identical to the CPU's.
// Storage f32, f16 or bf16 (the same for x and y); values are moved, or blended in f32.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>

#include "cuda/strided.hpp"

namespace kiln::kernels::cuda {

enum class PadKind : uint8_t { constant, reflect, replicate, circular };

// y (contiguous, shape in + lo + hi per dim) = x padded. lo/hi may be negative (a crop), as
// torch allows; reflect needs lo, hi < the dim's size, circular a non-empty core.
struct PadParams {
  ElemType type = ElemType::f32;  // x and y
  PadKind mode = PadKind::constant;
  float value = 0.f;  // constant mode's fill, rounded to `type`
  const void* x = nullptr;
  void* y = nullptr;
  int ndim = 0;
  int64_t in_shape[kMaxDims] = {};
  int64_t x_stride[kMaxDims] = {};  // elements, any (views read in place)
  int64_t lo[kMaxDims] = {}, hi[kMaxDims] = {};
};
std::string can_implement(const PadParams& p);
cudaError_t launch_pad(const PadParams& p, cudaStream_t stream);

enum class InterpKind : uint8_t { nearest, nearest_exact, bilinear };

// y (planes, *out) = x (planes, *in) resampled, both contiguous; spatial sizes as 3-D with
// leading 1s (a 2-D (H, W) image is {1, H, W}). bilinear uses only the last two dims (in[0]
// and out[0] must be 1).
struct InterpParams {
  ElemType type = ElemType::f32;
  InterpKind mode = InterpKind::nearest;
  bool align_corners = false;  // bilinear only
  const void* x = nullptr;
  void* y = nullptr;
  int64_t planes = 0;
  int64_t in[3] = {1, 1, 1}, out[3] = {1, 1, 1};
};
std::string can_implement(const InterpParams& p);
cudaError_t launch_interpolate(const InterpParams& p, cudaStream_t stream);

}  // namespace kiln::kernels::cuda
