#include "gemm_f32.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "cpu_features.hpp"
#include "gemm_f32_microkernel.hpp"

namespace kiln::kernels::cpu {

namespace {

// Blocking (f32, Zen 4 / generic AVX2): an MR x KC sliver of A (6*256*4 = 6 KiB) and a KC x NR
// sliver of B (16 KiB) stay in L1 while the micro-kernel runs; an MC x KC block of A
// (96 x 256 x 4 = 96 KiB) fits L2; NC bounds the packed B panel (256 x 2048 x 4 = 2 MiB, L3).
constexpr int64_t kMR = 6, kNR = 16;
constexpr int64_t kKC = 256, kMC = 96, kNC = 2048;

// Packs op(A)[m0:m0+mc, k0:k0+kc] into MR-row panels: panel p holds rows p*MR.. as
// kc columns of MR contiguous values; rows past mc are zero.
void pack_a(bool trans, const float* A, int64_t lda, int64_t m0, int64_t k0, int64_t mc,
            int64_t kc, float* dst) {
  for (int64_t p = 0; p < mc; p += kMR) {
    int64_t rows = std::min(kMR, mc - p);
    for (int64_t k = 0; k < kc; ++k) {
      for (int64_t r = 0; r < kMR; ++r) {
        float v = 0.f;
        if (r < rows) {
          int64_t m = m0 + p + r, kk = k0 + k;
          v = trans ? A[kk * lda + m] : A[m * lda + kk];
        }
        *dst++ = v;
      }
    }
  }
}

// Packs op(B)[k0:k0+kc, n0:n0+nc] into NR-column panels of kc rows x NR values.
void pack_b(bool trans, const float* B, int64_t ldb, int64_t k0, int64_t n0, int64_t kc,
            int64_t nc, float* dst) {
  for (int64_t p = 0; p < nc; p += kNR) {
    int64_t cols = std::min(kNR, nc - p);
    for (int64_t k = 0; k < kc; ++k) {
      int64_t kk = k0 + k;
      if (!trans && cols == kNR) {
        std::memcpy(dst, B + kk * ldb + n0 + p, kNR * sizeof(float));
        dst += kNR;
        continue;
      }
      for (int64_t c = 0; c < kNR; ++c) {
        float v = 0.f;
        if (c < cols) {
          int64_t n = n0 + p + c;
          v = trans ? B[n * ldb + kk] : B[kk * ldb + n];
        }
        *dst++ = v;
      }
    }
  }
}

struct AlignedFree {
  void operator()(float* p) const { std::free(p); }
};
using Buf = std::unique_ptr<float, AlignedFree>;
Buf alloc_floats(int64_t n) {
  size_t bytes = static_cast<size_t>((n * 4 + 63) / 64 * 64);
  return Buf(static_cast<float*>(std::aligned_alloc(64, bytes ? bytes : 64)));
}

}  // namespace

bool sgemm_uses_avx2() { return cpu_has_avx2_fma(); }

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
           const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
           int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.f) {
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) C[m * ldc + n] = beta == 0.f ? 0.f : beta * C[m * ldc + n];
    return;
  }
  const MicroKernel ukr = cpu_has_avx2_fma() ? microkernel_6x16_avx2 : microkernel_6x16_generic;
  // Thread-local packing buffers: sgemm is called from many threads at once.
  thread_local Buf a_buf = alloc_floats(kMC * kKC);
  thread_local Buf b_buf = alloc_floats(kKC * kNC);
  float tail[kMR * kNR];
  for (int64_t n0 = 0; n0 < N; n0 += kNC) {
    int64_t nc = std::min(kNC, N - n0);
    for (int64_t k0 = 0; k0 < K; k0 += kKC) {
      int64_t kc = std::min(kKC, K - k0);
      const float beta_k = k0 == 0 ? beta : 1.f;  // later K blocks accumulate
      pack_b(trans_b, B, ldb, k0, n0, kc, nc, b_buf.get());
      for (int64_t m0 = 0; m0 < M; m0 += kMC) {
        int64_t mc = std::min(kMC, M - m0);
        pack_a(trans_a, A, lda, m0, k0, mc, kc, a_buf.get());
        for (int64_t nr = 0; nr < nc; nr += kNR) {
          int64_t cols = std::min(kNR, nc - nr);
          const float* bp = b_buf.get() + nr * kc;
          for (int64_t mr = 0; mr < mc; mr += kMR) {
            int64_t rows = std::min(kMR, mc - mr);
            const float* ap = a_buf.get() + mr * kc;
            float* c = C + (m0 + mr) * ldc + n0 + nr;
            if (rows == kMR && cols == kNR) {
              ukr(kc, alpha, ap, bp, beta_k, c, ldc);
            } else {  // edge tile: compute into a scratch tile, copy the valid part
              ukr(kc, alpha, ap, bp, 0.f, tail, kNR);
              for (int64_t r = 0; r < rows; ++r)
                for (int64_t q = 0; q < cols; ++q) {
                  float prev = beta_k == 0.f ? 0.f : beta_k * c[r * ldc + q];
                  c[r * ldc + q] = prev + tail[r * kNR + q];
                }
            }
          }
        }
      }
    }
  }
}

}  // namespace kiln::kernels::cpu
