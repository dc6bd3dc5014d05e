#include "gemm_f32_microkernel.hpp"

namespace kiln::kernels::cpu {

void microkernel_6x16_generic(int64_t kc, float alpha, const float* a, const float* b,
                              float beta, float* c, int64_t ldc) {
  float acc[6][16] = {};
  for (int64_t k = 0; k < kc; ++k, a += 6, b += 16)
    for (int r = 0; r < 6; ++r)
      for (int q = 0; q < 16; ++q) acc[r][q] += a[r] * b[q];
  for (int r = 0; r < 6; ++r)
    for (int q = 0; q < 16; ++q) {
      float prev = beta == 0.f ? 0.f : beta * c[r * ldc + q];
      c[r * ldc + q] = prev + alpha * acc[r][q];
    }
}

}  // namespace kiln::kernels::cpu
