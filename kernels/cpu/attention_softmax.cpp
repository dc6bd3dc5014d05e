#include "attention_softmax.hpp"

#include <cmath>
#include <limits>

#include "cpu_features.hpp"

namespace kiln::kernels::cpu {

float attention_row_max(const float* s, int64_t n) {
  if (cpu_has_avx2_fma()) return attention_row_max_avx2(s, n);
  float m = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j < n; ++j) m = s[j] > m ? s[j] : m;
  return m;
}

float attention_row_exp2_sum(float* s, int64_t n, float m) {
  if (cpu_has_avx2_fma()) return attention_row_exp2_sum_avx2(s, n, m);
  float sum = 0.f;
  for (int64_t j = 0; j < n; ++j) {
    float d = s[j] - m;
    s[j] = d < -126.f ? 0.f : std::exp2(d);
    sum += s[j];
  }
  return sum;
}

}  // namespace kiln::kernels::cpu
