// The runtime's side of op dispatch to CUDA. An op in ops.hpp validates its arguments (the same
// checks, messages and dtype contract on every device), finds the inputs' common device with
// common_device(), and for CUDA calls the function here, which describes the tensors to a
// kernel of kernels/cuda (pointers, shape, 64-bit strides), asks the kernel's can_implement(),
// and launches it on op_stream(). A case a kernel refuses throws Status::unsupported naming
// the op, the device and the kernel's reason. Builds without CUDA link cuda_ops_stub.cpp.
#pragma once

#include "cuda/elementwise_kinds.hpp"
#include "kiln/core/tensor.hpp"

namespace kiln::cuda_ops {

using kernels::cuda::BinaryOp;
using kernels::cuda::UnaryOp;

// The stream CUDA ops are queued on: the device's legacy default stream (native = null), so
// kernels are ordered with each other and with the backend's synchronous copies
// (Tensor::to(Device) is cudaMemcpy on that stream), and results read back are complete.
// Per-request streams (and CUDA Graph capture) replace this lookup with the CUDA Graph work
// of issue 5, item 4.
Stream op_stream(Device d);

// dst = src converted (f32/f16/bf16 in any pair), both on one CUDA device, src already
// expanded to dst's shape; any strides (dst not broadcast). Tensor::copy_from's CUDA path.
void copy_cast(Tensor& dst, const Tensor& src);

// New contiguous f32 tensors. Inputs are validated f32 tensors (cond: f32 or boolean) on one
// CUDA device, with shapes broadcastable to `shape` where one is given.
Tensor unary(const char* op, UnaryOp kind, const Tensor& x, float a = 0.f, float b = 0.f);
Tensor binary(const char* op, BinaryOp kind, const Tensor& a, const Tensor& b, const Shape& shape);
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b, const Shape& shape);
Tensor softmax_last_dim(const Tensor& x);
// weight/bias undefined or contiguous f32 of the normalised size (checked by the op).
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps);
Tensor rms_norm(const Tensor& x, const Tensor& weight, float eps);
Tensor group_norm(const Tensor& x, int groups, const Tensor& weight, const Tensor& bias,
                  float eps);

// GEMMs through cuBLASLt (kernels/cuda/gemm_cublaslt.hpp), f32 accumulate.
// a (..., M, K) @ b (..., K, N), validated: one dtype (f32, f16 or bf16), batch dims
// broadcastable to `batch` -> new contiguous (*batch, M, N) of that dtype. Transposed views and
// row-major views with a leading-dimension stride are read in place; any other view of the
// last two dims is made contiguous first (before the batch broadcast, which never copies).
Tensor matmul(const Tensor& a, const Tensor& b, const Shape& batch);
// x (rows, in) f32/f16/bf16 @ weight (out, in)^T + bias (out) -> new contiguous (rows, out) in
// x's dtype. Weight and bias are converted to x's dtype first when they differ (f32 x: the
// CPU's widening; f16/bf16 x: rounded to x's type); the bias is the GEMM's epilogue.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias);

}  // namespace kiln::cuda_ops
