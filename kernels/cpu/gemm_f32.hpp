// Single-threaded f32 GEMM, BLIS-style: pack B into NR-wide column panels and A into MR-high
// row panels, then run an MR x NR register-blocked micro-kernel over them (AVX-512 12x32 or AVX2+FMA 6x16
// when the CPU has it, a portable one otherwise). Callers parallelise over independent GEMMs or
// over tiles of C; this function never spawns threads, so it is safe inside parallel regions
// (the attention op calls it per (batch, head, query tile)).
// Ref: Goto & van de Geijn, "Anatomy of High-Performance Matrix Multiplication" (2008);
//      BLIS micro-kernel design (Van Zee & van de Geijn 2015).
#pragma once

#include <cstdint>

namespace kiln::kernels::cpu {

// C (M x N, row stride ldc) = alpha * op(A) * op(B) + beta * C, all row-major.
// op(A) is M x K: A[m*lda + k] when !trans_a, A[k*lda + m] when trans_a.
// op(B) is K x N: B[k*ldb + n] when !trans_b, B[n*ldb + k] when trans_b.
// beta == 0 overwrites C without reading it (C may hold NaN garbage).
void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
           const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
           int64_t ldc);

// The micro-kernel in use on this CPU: "avx512 12x32", "avx2 6x16" or "generic 6x16".
const char* sgemm_kernel_name();
// Register tile (rows, cols) of that kernel: callers splitting C across threads cut it at
// multiples of these.
void sgemm_tile(int64_t* mr, int64_t* nr);

}  // namespace kiln::kernels::cpu
