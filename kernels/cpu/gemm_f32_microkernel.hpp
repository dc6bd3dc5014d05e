// Register-blocked micro-kernels: C[MR x NR] = alpha * sum_k a[k][0..MR) (x) b[k][0..NR) + beta*C.
// `a` is a packed A panel (kc x MR), `b` a packed B panel (kc x NR, 64-byte aligned).
// beta == 0 never reads C.
#pragma once

#include <cstdint>

namespace kiln::kernels::cpu {

using MicroKernel = void (*)(int64_t kc, float alpha, const float* a, const float* b, float beta,
                             float* c, int64_t ldc);

// One instruction-set variant: its tile shape and cache blocking.
struct GemmKernelSpec {
  int64_t mr, nr;       // register tile
  int64_t kc, mc, nc;   // cache blocking (see gemm_f32.cpp for the arithmetic)
  MicroKernel kernel;
  const char* name;
};

void microkernel_6x16_generic(int64_t kc, float alpha, const float* a, const float* b,
                              float beta, float* c, int64_t ldc);
void microkernel_6x16_avx2(int64_t kc, float alpha, const float* a, const float* b, float beta,
                           float* c, int64_t ldc);
void microkernel_12x32_avx512(int64_t kc, float alpha, const float* a, const float* b,
                              float beta, float* c, int64_t ldc);

}  // namespace kiln::kernels::cpu
