// The runtime's side of op dispatch to CUDA. An op in ops.hpp validates its arguments (the same
// checks, messages and dtype contract on every device), finds the inputs' common device with
// common_device(), and for CUDA calls the function here, which describes the tensors to a
// kernel of kernels/cuda (pointers, shape, 64-bit strides), asks the kernel's can_implement(),
// and launches it on op_stream(). A case a kernel refuses throws Status::unsupported naming
// the op, the device and the kernel's reason. Builds without CUDA link cuda_ops_stub.cpp.
#pragma once

#include "cuda/elementwise_kinds.hpp"
#include "kiln/core/tensor.hpp"
#include "kiln/ops/ops.hpp"

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

// New contiguous tensors in the inputs' dtype (compare: a 1 / 0 mask in x's dtype). Inputs are
// validated f32, f16 or bf16 tensors on one CUDA device, with shapes broadcastable to `shape`
// where one is given; f32 math, one rounding to a 16-bit output. a and b must share a dtype
// (mixed dtypes: Status::unsupported from the kernel's can_implement); where's cond is boolean,
// f32 or a's dtype.
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

// Convolutions through cuDNN (kernels/cuda/conv_cudnn.hpp; glue in cuda_conv.cpp), NC(D)HW.
// x f32/f16/bf16, validated by the op and already padded for a non-zero pad mode (p.pad_mode
// is ignored: the padding left is zeros, any per side); `out_shape` is the op's. weight (f32,
// f16, bf16) is converted to x's dtype on the device and the bias written into the output
// in x's dtype before cuDNN adds the convolution (beta = 1). Returns a new contiguous tensor
// in x's dtype. Without cuDNN in the build: Status::unsupported with the reason.
Tensor conv(const Tensor& x, const Tensor& weight, const Tensor& bias, const ops::ConvParams& p,
            const Shape& out_shape);
Tensor conv_transpose(const Tensor& x, const Tensor& weight, const Tensor& bias,
                      const ops::ConvTransposeParams& p, const Shape& out_shape);

// Layout, resample and reduction kernels (kernels/cuda/{resample,embedding,reduce}.hpp; glue in
// cuda_layout.cpp). Inputs validated by the ops; outputs new and contiguous.
// x f32/f16/bf16 (any strides) padded by lo[d], hi[d] on every dim d (0 where the op pads
// nothing; negative = crop) -> x's dtype.
Tensor pad(const Tensor& x, std::span<const int64_t> lo, std::span<const int64_t> hi,
           ops::PadMode mode, float value);
// x (N, C, *S) f32/f16/bf16 -> (N, C, *out_size) in x's dtype.
Tensor interpolate(const Tensor& x, std::span<const int64_t> out_size, ops::InterpMode mode,
                   bool align_corners);
// Tensors of one dtype and rank, equal but in `dim` -> their concatenation (out_shape).
// f32/f16/bf16 views are copied through strides; other dtypes must be contiguous (a 2-D
// cudaMemcpy each).
Tensor concat(std::span<const Tensor> xs, int dim, const Shape& out_shape);
// weight (V, D) f32/f16/bf16, ids i32/i64 (any strides) -> (*ids.shape, D) f32. An id outside
// [0, V) is invalid_argument naming the first one (flat index) as the CPU op does; the check
// reads one word back, so this call waits for the device.
Tensor embedding(const Tensor& weight, const Tensor& ids);
// Rotary embedding (kernels/cuda/rope.hpp): x (B, H, L, D) or (B, L, H, D) f32 (any strides;
// a view is made contiguous first), cos/sin (L, D/2) f32, validated by ops::apply_rope ->
// new contiguous f32 of x's shape, bit-identical to the CPU op.
Tensor apply_rope(const Tensor& x, const Tensor& cos, const Tensor& sin, bool interleaved,
                  int seq_dim);
enum class Reduction { sum, mean, max, min };
// x f32/f16/bf16 reduced over the dims with reduced[d] -> f32 (the kept dims, in order).
Tensor reduce(const char* op, Reduction kind, const Tensor& x, std::span<const bool> reduced);

// Flash attention forward (kernels/cuda/flash_attention.hpp; glue in cuda_attention.cpp).
struct AttentionOptions {
  float scale = 0.f;          // 0: 1/sqrt(D)
  bool causal = false;        // query i attends keys j <= i (top-left aligned)
  int64_t causal_block = 0;   // > 0: block-causal, query i attends keys j with j/n <= i/n
  // Optional u8 or bool, broadcastable to (B, H, ceil(Lq/64), ceil(Lk/64)) (tile sizes
  // kernels::cuda::kFlashAttnTileQ/K): a zero skips that (query tile, key tile) exactly as a
  // tile of `false` in a bool mask would. The block-sparse attention hook.
  Tensor tile_mask;
};
// q (B, H, Lq, D), k (B, Hkv, Lk, D), v (B, Hkv, Lk, Dv) on one CUDA device, one dtype
// (f32, f16 or bf16), validated as ops::attention does; mask undefined or validated (bool keep
// / f32 additive, broadcastable to (B, H, Lq, Lk)). Returns a new contiguous (B, H, Lq, Dv) in
// q's dtype; rows with no key attended are zeros. `lse`, when given, receives a new (B, H, Lq)
// f32 log-sum-exp of the scaled, masked scores (natural log; -inf for such rows). Cases the
// kernels cannot take (e.g. f16 head dim 72) are Status::unsupported with the kernel's reason.
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                 const AttentionOptions& opt, Tensor* lse = nullptr);

}  // namespace kiln::cuda_ops
