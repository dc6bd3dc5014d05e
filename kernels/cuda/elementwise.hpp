// Elementwise CUDA kernels: unary activations and float math, broadcasting binary arithmetic,
// and where(). f32 storage and compute, mirroring the CPU op set's contract (ops.hpp).
// Every function matches the CPU op's formula operation for operation: the arithmetic ops,
// scale, relu, clamp, compare and where give the CPU's bits exactly (IEEE operations without
// FMA contraction); exp/sin/cos/erf/tanh come from CUDA's libdevice (<= 2 ulp, CUDA C
// Programming Guide, "Mathematical Functions") where the CPU uses glibc (<= 1 ulp).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>

#include "cuda/elementwise_kinds.hpp"
#include "cuda/strided.hpp"

namespace kiln::kernels::cuda {

// out (contiguous, `shape`) = f(x); x has element strides over `shape`.
struct UnaryParams {
  UnaryOp op = UnaryOp::relu;
  float a = 0.f, b = 0.f;
  const float* x = nullptr;
  float* out = nullptr;
  int ndim = 0;
  int64_t shape[kMaxDims] = {};
  int64_t x_stride[kMaxDims] = {};
};
std::string can_implement(const UnaryParams& p);
cudaError_t launch_unary(UnaryParams p, cudaStream_t stream);

// out (contiguous, `shape`) = a <op> b with a, b given by strides over `shape` (0 where
// broadcast): NumPy broadcasting as the CPU's binary() in elementwise.cpp.
struct BinaryParams {
  BinaryOp op = BinaryOp::add;
  const float* a = nullptr;
  const float* b = nullptr;
  float* out = nullptr;
  int ndim = 0;
  int64_t shape[kMaxDims] = {};
  int64_t a_stride[kMaxDims] = {};
  int64_t b_stride[kMaxDims] = {};
};
std::string can_implement(const BinaryParams& p);
cudaError_t launch_binary(BinaryParams p, cudaStream_t stream);

// out = cond != 0 ? a : b, all three broadcast over `shape` by strides. cond is f32, or one
// byte per element (kiln's boolean) when cond_is_byte.
struct WhereParams {
  const void* cond = nullptr;
  bool cond_is_byte = false;
  const float* a = nullptr;
  const float* b = nullptr;
  float* out = nullptr;
  int ndim = 0;
  int64_t shape[kMaxDims] = {};
  int64_t cond_stride[kMaxDims] = {};
  int64_t a_stride[kMaxDims] = {};
  int64_t b_stride[kMaxDims] = {};
};
std::string can_implement(const WhereParams& p);
cudaError_t launch_where(WhereParams p, cudaStream_t stream);

}  // namespace kiln::kernels::cuda
