// Row kernels of the attention op's online softmax (FlashAttention-2's inner step): the row
// maximum of a score tile and p = exp2(s - m) with its sum. Scores arrive pre-multiplied by
// scale * log2(e), so exp2 here is exp of the scaled scores. The dispatching functions pick the
// AVX2+FMA version when cpu_has_avx2_fma(); the *_avx2 ones must only be called after that check.
// Ref: Dao 2023, "FlashAttention-2", Algorithm 1 (lines 8-10: m, P~, l updates).
#pragma once

#include <cstdint>

namespace kiln::kernels::cpu {

// max(s[0..n)); -inf for n == 0 or an all -inf row.
float attention_row_max(const float* s, int64_t n);
// s[j] = exp2(s[j] - m) in place (0 where s[j] - m < -126, i.e. masked -inf entries give
// exactly 0); returns the f32 sum of the new values. m must be finite.
float attention_row_exp2_sum(float* s, int64_t n, float m);

float attention_row_max_avx2(const float* s, int64_t n);
float attention_row_exp2_sum_avx2(float* s, int64_t n, float m);

}  // namespace kiln::kernels::cpu
