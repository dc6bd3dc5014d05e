// AVX2+FMA versions of the attention row kernels. exp2(x) = 2^n * 2^f with n = round(x),
// f in [-0.5, 0.5]; 2^f = e^(f ln2) by its degree-7 Taylor polynomial, whose truncation error
// (0.5 ln2)^8 / 8! = 5e-9 is below f32 rounding (6e-8), so the result is within ~2 ulp of exp2.
#include <immintrin.h>

#include <cmath>
#include <limits>

#include "attention_softmax.hpp"

namespace kiln::kernels::cpu {

namespace {

inline float hmax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
  return _mm_cvtss_f32(m);
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

// 2^x for x <= 0 (the only range softmax needs); x < -126 gives exactly 0.
inline __m256 exp2_nonpos(__m256 x) {
  const __m256 lo = _mm256_set1_ps(-126.f);
  __m256 keep = _mm256_cmp_ps(x, lo, _CMP_GE_OQ);
  x = _mm256_max_ps(x, lo);
  __m256 n = _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 f = _mm256_sub_ps(x, n);
  // c_k = ln2^k / k!
  __m256 p = _mm256_set1_ps(1.5252733804059841e-05f);
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.5403530393381606e-04f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.3333558146428441e-03f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(9.6181291076284772e-03f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(5.5504108664821580e-02f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(2.4022650695910071e-01f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(6.9314718055994531e-01f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.f));
  __m256i e = _mm256_slli_epi32(_mm256_cvtps_epi32(n), 23);
  __m256 r = _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(p), e));
  return _mm256_and_ps(r, keep);
}

}  // namespace

float attention_row_max_avx2(const float* s, int64_t n) {
  const float ninf = -std::numeric_limits<float>::infinity();
  __m256 m0 = _mm256_set1_ps(ninf), m1 = m0;
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    m0 = _mm256_max_ps(m0, _mm256_loadu_ps(s + j));
    m1 = _mm256_max_ps(m1, _mm256_loadu_ps(s + j + 8));
  }
  float m = hmax(_mm256_max_ps(m0, m1));
  for (; j < n; ++j) m = s[j] > m ? s[j] : m;
  return m;
}

float attention_row_exp2_sum_avx2(float* s, int64_t n, float m) {
  const __m256 mv = _mm256_set1_ps(m);
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    __m256 p0 = exp2_nonpos(_mm256_sub_ps(_mm256_loadu_ps(s + j), mv));
    __m256 p1 = exp2_nonpos(_mm256_sub_ps(_mm256_loadu_ps(s + j + 8), mv));
    _mm256_storeu_ps(s + j, p0);
    _mm256_storeu_ps(s + j + 8, p1);
    acc0 = _mm256_add_ps(acc0, p0);
    acc1 = _mm256_add_ps(acc1, p1);
  }
  float sum = hsum(_mm256_add_ps(acc0, acc1));
  for (; j < n; ++j) {
    float d = s[j] - m;
    s[j] = d < -126.f ? 0.f : std::exp2(d);
    sum += s[j];
  }
  return sum;
}

}  // namespace kiln::kernels::cpu
