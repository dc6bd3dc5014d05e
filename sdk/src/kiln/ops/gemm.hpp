// The multithreaded f32 GEMM every op that multiplies matrices goes through (matmul, linear;
// conv and attention call the single-threaded kernel per tile). The library behind it is
// chosen at build time (KILN_BLAS) and can be switched at run time for benchmarks.
#pragma once

#include <cstdint>
#include <string_view>

namespace kiln::ops {

enum class GemmBackend {
  kiln,      // kernels/cpu/gemm_f32 (packed AVX2 6x16), split over threads by column blocks
  openblas,  // cblas_sgemm
  onednn,    // dnnl_sgemm
};
std::string_view gemm_backend_name(GemmBackend b);
bool gemm_backend_available(GemmBackend b);
GemmBackend gemm_backend();            // the one in use
void set_gemm_backend(GemmBackend b);  // throws unsupported when not compiled in

// Row-major C (M x N) = alpha * op(A) * op(B) + beta * C; see kernels/cpu/gemm_f32.hpp.
// Uses every kiln thread when called outside a parallel region, one thread inside one.
void gemm_f32(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
              const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
              int64_t ldc);

}  // namespace kiln::ops
