// Elementwise CUDA kernels: unary activations and float math, broadcasting binary arithmetic,
// and where(). f32, f16 or bf16 storage (every operand of one op in one type, except where's
// condition), f32 compute: 16-bit values are widened exactly, the f32 formula runs unchanged,
// and the result is rounded once to the storage type (round to nearest even, the cast kernel's
// and the CPU's conversion).
// Every function matches the CPU op's formula operation for operation: the arithmetic ops,
// scale, relu, clamp, compare and where give the CPU's bits exactly (IEEE operations without
// FMA contraction); exp/sin/cos/erf/tanh come from CUDA's libdevice (<= 2 ulp, CUDA C
// Programming Guide, "Mathematical Functions") where the CPU uses glibc (<= 1 ulp). For 16-bit
// storage that makes the arithmetic ops bit-identical to the CPU's f32 op on the widened
// inputs rounded once to the 16-bit type.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>

#include "cuda/elementwise_kinds.hpp"
#include "cuda/strided.hpp"

namespace kiln::kernels::cuda {

// out (contiguous, `shape`) = f(x); x has element strides over `shape`. x and out are of
// `type` (compare writes 1 / 0 in it).
struct UnaryParams {
  UnaryOp op = UnaryOp::relu;
  float a = 0.f, b = 0.f;
  const void* x = nullptr;
  void* out = nullptr;
  ElemType type = ElemType::f32;
  int ndim = 0;
  int64_t shape[kMaxDims] = {};
  int64_t x_stride[kMaxDims] = {};
};
std::string can_implement(const UnaryParams& p);
cudaError_t launch_unary(UnaryParams p, cudaStream_t stream);

// out (contiguous, `shape`) = a <op> b with a, b given by strides over `shape` (0 where
// broadcast): NumPy broadcasting as the CPU's binary() in elementwise.cpp. a, b and out share
// one storage type: a_type and b_type must be equal (mixed types are refused by
// can_implement), and out is of that type.
struct BinaryParams {
  BinaryOp op = BinaryOp::add;
  const void* a = nullptr;
  const void* b = nullptr;
  void* out = nullptr;
  ElemType a_type = ElemType::f32;
  ElemType b_type = ElemType::f32;
  int ndim = 0;
  int64_t shape[kMaxDims] = {};
  int64_t a_stride[kMaxDims] = {};
  int64_t b_stride[kMaxDims] = {};
};
std::string can_implement(const BinaryParams& p);
cudaError_t launch_binary(BinaryParams p, cudaStream_t stream);

// out = cond != 0 ? a : b, all three broadcast over `shape` by strides; the picked value is
// copied bit for bit. a, b and out share one storage type (a_type == b_type, as for binary).
// cond is one byte per element (kiln's boolean) when cond_is_byte, else of cond_type: f32 (the
// CPU's mask type) or a's type (compare's output on 16-bit x); NaN counts as true, -0 as false.
struct WhereParams {
  const void* cond = nullptr;
  bool cond_is_byte = false;
  ElemType cond_type = ElemType::f32;
  const void* a = nullptr;
  const void* b = nullptr;
  void* out = nullptr;
  ElemType a_type = ElemType::f32;
  ElemType b_type = ElemType::f32;
  int ndim = 0;
  int64_t shape[kMaxDims] = {};
  int64_t cond_stride[kMaxDims] = {};
  int64_t a_stride[kMaxDims] = {};
  int64_t b_stride[kMaxDims] = {};
};
std::string can_implement(const WhereParams& p);
cudaError_t launch_where(WhereParams p, cudaStream_t stream);

}  // namespace kiln::kernels::cuda
