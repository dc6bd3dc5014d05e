// Convolution through oneDNN's convolution primitive (the kernel PyTorch's CPU conv uses): a
// blocked-layout direct convolution JIT-compiled for the CPU, ~1.7x the im2col + GEMM path on
// 3x3 convs here (docs/perf.md). Internal to conv.cpp.
#pragma once

#include <array>
#include <cstdint>

#include "kiln/core/shape.hpp"

namespace kiln::ops::detail {

struct OnednnConvArgs {
  const float* x = nullptr;  // (N, Cin, *S) contiguous
  Shape x_shape;
  const float* w = nullptr;  // (Cout, Cin/groups, *K) contiguous
  Shape w_shape;
  const float* bias = nullptr;  // (Cout) or null
  float* y = nullptr;           // (N, Cout, *S') contiguous
  Shape y_shape;
  std::array<int64_t, 3> stride{1, 1, 1}, pad_lo{0, 0, 0}, pad_hi{0, 0, 0}, dilation{1, 1, 1};
  int64_t groups = 1;
};

// Runs the convolution; returns false when oneDNN is not compiled in or refuses the case
// (the caller then uses its own path).
bool conv_onednn(const OnednnConvArgs& a);

}  // namespace kiln::ops::detail
