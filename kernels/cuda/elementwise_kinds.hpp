// The op kinds of the CUDA elementwise kernels, in a header free of CUDA includes so that the
// runtime's dispatch interface (sdk/src/kiln/cuda/cuda_ops.hpp) can name them in any build.
#pragma once

#include <cstdint>

namespace kiln::kernels::cuda {

// out = f(x); `a`, `b` in UnaryParams are the op's scalars (scale: alpha, beta; clamp: lo, hi;
// compare: the value in `a`).
enum class UnaryOp : uint8_t {
  scale,      // a * x + b
  silu,       // x / (1 + exp(-x))
  gelu_erf,   // 0.5 x (1 + erf(x / sqrt 2))
  gelu_tanh,  // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
  sigmoid,
  tanh,
  relu,
  exp,
  sqrt,
  sin,
  cos,
  clamp,  // min(max(x, a), b) in torch's order; NaN passes through
  cmp_eq,  // x == a as 1.f / 0.f
  cmp_ne,
  cmp_lt,
  cmp_le,
  cmp_gt,
  cmp_ge,
  count_  // keep last
};

enum class BinaryOp : uint8_t { add, sub, mul, div, count_ };

const char* unary_op_name(UnaryOp op);

}  // namespace kiln::kernels::cuda
