// Row-major GEMM through cuBLASLt: D (batch, M, N) = op(A) @ op(B) [+ bias (N)], f32
// accumulate. The params speak row-major like kernels/cpu's gemm_f32 (trans flags and leading
// dimensions of the stored matrices); the launcher hands cuBLASLt the column-major transpose,
// D^T = op(B)^T op(A)^T, so no operand is copied and the bias, one value per column of D, is
// cuBLASLt's per-row CUBLASLT_EPILOGUE_BIAS.
//
// Types: A, B and D share one storage type. f32 computes in exact f32 (CUBLAS_COMPUTE_32F, no
// TF32: parity with the CPU reference; the op API has no place to ask for TF32 yet). f16 and
// bf16 accumulate in f32 (CUBLAS_COMPUTE_32F, f32 alpha/beta) and round D once. The bias has
// D's type (cuBLASLt's rule for these types; CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE is unset).
//
// Not yet: fp8 e4m3 (issue 5, item 2, for the quantization work). It needs A/B of
// CUDA_R_8F_E4M3 with per-tensor scales (CUBLASLT_MATMUL_DESC_A_SCALE_POINTER/B_SCALE_POINTER),
// sm_89+, and the "TN" layout (A transposed, B not, in cuBLASLt's column-major terms, i.e.
// row-major B stored (N, K) like a linear weight), plus a bf16/f16 D and a bias type per the
// cuBLASLt fp8 table; can_implement() would refuse the other layouts.
//
// Handles, workspace, stream: one cublasLt handle per device, created on first use and kept for
// the process (destroying it at exit races the CUDA runtime's own teardown). The caller passes
// a workspace (kiln: 32 MiB per device from the backend's allocator) and the stream; calls on
// one device are serialized by a per-device mutex, which also guards the algorithm cache.
// Sharing one workspace per device is correct while every GEMM of a device is queued on one
// stream (kiln's op_stream today); per-request streams need a workspace per stream.
//
// Algorithm choice: cublasLtMatmulAlgoGetHeuristic's first answer, cached per GemmAlgoKey
// (device, types, transposes, sizes, leading dims, batch strides, the pointers' alignments and
// the workspace size — everything the heuristic reads), so repeated shapes skip the heuristic.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "cuda/strided.hpp"

namespace kiln::kernels::cuda {

struct GemmParams {
  ElemType type = ElemType::f32;  // A, B, D (and bias) storage
  const void* a = nullptr;        // op(A) (M, K): stored (M, K) row-major, or (K, M) if trans_a
  const void* b = nullptr;        // op(B) (K, N): stored (K, N) row-major, or (N, K) if trans_b
  void* d = nullptr;              // (M, N) row-major, leading dim ldd
  const void* bias = nullptr;     // (N) contiguous, or null
  // D (and the bias) stored in f32 while A and B are f16/bf16 (a cuBLASLt combination for
  // CUBLAS_COMPUTE_32F). kiln's bf16 linear with a bias uses it and casts D once afterwards: on
  // the H100 (CUDA 13) the bf16 bias epilogue was off by several bf16 ulps where acc + bias
  // cancels, cuBLASLt refuses an f32 bias (BIAS_DATA_TYPE) for a 16-bit D, and a bias pre-filled
  // into D with beta = 1 still left one layout one ulp over (tests/cuda/test_cuda_gemm.cpp).
  bool d_f32 = false;
  bool trans_a = false, trans_b = false;
  int64_t m = 0, n = 0, k = 0;
  int64_t lda = 0, ldb = 0, ldd = 0;  // elements between rows of the stored matrices
  // Strided batch: matrix i of X starts at X + i * stride_x elements (0 = the same matrix for
  // every i, a broadcast operand; not allowed for D).
  int64_t batch = 1;
  int64_t stride_a = 0, stride_b = 0, stride_d = 0;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
};

// Empty when launch_gemm_cublaslt can run `p`; otherwise why not.
std::string can_implement(const GemmParams& p);

// The outcome of a cuBLASLt call sequence: the first call that failed and its status.
struct GemmStatus {
  const char* call = nullptr;  // e.g. "cublasLtMatmul"; null on success
  cublasStatus_t status = CUBLAS_STATUS_SUCCESS;
  bool ok() const { return call == nullptr; }
};

// Queues the GEMM on `stream` on the calling thread's current device (which must own every
// pointer). m == 0 or n == 0 queues nothing; k == 0 is refused by can_implement.
GemmStatus launch_gemm_cublaslt(const GemmParams& p, cudaStream_t stream);

// "cublasLtMatmul failed: CUBLAS_STATUS_NOT_SUPPORTED (<cuBLAS's description>) for <describe(p)>".
std::string gemm_error_message(const GemmParams& p, const GemmStatus& s);
// "bf16 gemm M=77 N=320 K=33 op(A)=T lda=77 op(B)=N ldb=320 ldd=320 batch=6 strides 0/..., bias".
std::string describe(const GemmParams& p);

// How a row-major (rows, cols) view with element strides (row_stride, col_stride) is fed to
// the GEMM without a copy: a row-major matrix with leading dim ld, or the transpose of one.
// ok = false for any other view (a column or row slice with stride > 1, overlapping
// broadcast): the caller makes it contiguous first.
struct GemmOperand {
  bool ok = false;
  bool trans = false;
  int64_t ld = 0;
};
GemmOperand gemm_operand(int64_t rows, int64_t cols, int64_t row_stride, int64_t col_stride);

// The algorithm cache's key: everything cublasLtMatmulAlgoGetHeuristic sees. Alignments are
// the largest power of two (<= 256 bytes) dividing a pointer and its batch stride in bytes.
struct GemmAlgoKey {
  int device = 0;
  ElemType type = ElemType::f32;
  bool trans_a = false, trans_b = false, bias = false, d_f32 = false;
  int64_t m = 0, n = 0, k = 0, lda = 0, ldb = 0, ldd = 0;
  int64_t batch = 1, stride_a = 0, stride_b = 0, stride_d = 0;
  uint32_t align_a = 0, align_b = 0, align_d = 0, align_bias = 0;
  size_t workspace_bytes = 0;
  bool operator==(const GemmAlgoKey&) const = default;
};
GemmAlgoKey gemm_algo_key(const GemmParams& p, int device);
struct GemmAlgoKeyHash {
  size_t operator()(const GemmAlgoKey& k) const;
};
// Largest power of two <= 256 dividing the byte address `p` and `stride_bytes` (0: ignored).
uint32_t gemm_alignment(const void* p, int64_t stride_bytes);

}  // namespace kiln::kernels::cuda
