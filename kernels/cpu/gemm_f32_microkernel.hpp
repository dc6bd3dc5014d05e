// 6 x 16 micro-kernels: C[6x16] = alpha * sum_k a[k][0..6) (x) b[k][0..16) + beta * C.
// `a` is a packed A panel (kc x 6), `b` a packed B panel (kc x 16). beta == 0 never reads C.
#pragma once

#include <cstdint>

namespace kiln::kernels::cpu {

using MicroKernel = void (*)(int64_t kc, float alpha, const float* a, const float* b, float beta,
                             float* c, int64_t ldc);
void microkernel_6x16_generic(int64_t kc, float alpha, const float* a, const float* b,
                              float beta, float* c, int64_t ldc);
void microkernel_6x16_avx2(int64_t kc, float alpha, const float* a, const float* b, float beta,
                           float* c, int64_t ldc);

}  // namespace kiln::kernels::cpu
