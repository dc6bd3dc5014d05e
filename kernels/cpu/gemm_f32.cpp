#include "gemm_f32.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "cpu_features.hpp"
#include "gemm_f32_microkernel.hpp"

namespace kiln::kernels::cpu {

namespace {

// Blocking, per kernel. The KC x NR sliver of B and the MR x KC sliver of A must stay in L1
// (32-48 KiB) while the micro-kernel runs; the MC x KC block of A fits L2 (1 MiB here); NC
// bounds the packed B panel (KC x NC floats) in L3.
//   AVX2 6x16:     B sliver 256*16*4 = 16 KiB, A 6 KiB;  A block 96*256*4 = 96 KiB;  B panel 2 MiB
//   AVX-512 12x32: B sliver 192*32*4 = 24 KiB, A 9 KiB;  A block 144*192*4 = 108 KiB; B panel 1.5 MiB
constexpr GemmKernelSpec kGeneric{6, 16, 256, 96, 2048, microkernel_6x16_generic, "generic 6x16"};
constexpr GemmKernelSpec kAvx2{6, 16, 256, 96, 2048, microkernel_6x16_avx2, "avx2 6x16"};
constexpr GemmKernelSpec kAvx512{12, 32, 192, 144, 2048, microkernel_12x32_avx512, "avx512 12x32"};
constexpr int64_t kMaxTile = 12 * 32;

const GemmKernelSpec& pick_kernel() {
  if (cpu_has_avx512f()) return kAvx512;
  if (cpu_has_avx2_fma()) return kAvx2;
  return kGeneric;
}

// Packs op(A)[m0:m0+mc, k0:k0+kc] into MR-row panels: panel p holds rows p*MR.. as
// kc columns of MR contiguous values; rows past mc are zero.
void pack_a(int64_t kMR, bool trans, const float* A, int64_t lda, int64_t m0, int64_t k0,
            int64_t mc, int64_t kc, float* dst) {
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
void pack_b(int64_t kNR, bool trans, const float* B, int64_t ldb, int64_t k0, int64_t n0,
            int64_t kc, int64_t nc, float* dst) {
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

const char* sgemm_kernel_name() { return pick_kernel().name; }
void sgemm_tile(int64_t* mr, int64_t* nr) {
  *mr = pick_kernel().mr;
  *nr = pick_kernel().nr;
}

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
           const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
           int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.f) {
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) C[m * ldc + n] = beta == 0.f ? 0.f : beta * C[m * ldc + n];
    return;
  }
  const GemmKernelSpec& spec = pick_kernel();
  const MicroKernel ukr = spec.kernel;
  const int64_t kMR = spec.mr, kNR = spec.nr, kKC = spec.kc, kMC = spec.mc, kNC = spec.nc;
  // Thread-local packing buffers sized for the largest blocking: sgemm is called from many
  // threads at once.
  thread_local Buf a_buf = alloc_floats(144 * 256);
  thread_local Buf b_buf = alloc_floats(256 * 2048);
  alignas(64) float tail[kMaxTile];
  for (int64_t n0 = 0; n0 < N; n0 += kNC) {
    int64_t nc = std::min(kNC, N - n0);
    for (int64_t k0 = 0; k0 < K; k0 += kKC) {
      int64_t kc = std::min(kKC, K - k0);
      const float beta_k = k0 == 0 ? beta : 1.f;  // later K blocks accumulate
      pack_b(kNR, trans_b, B, ldb, k0, n0, kc, nc, b_buf.get());
      for (int64_t m0 = 0; m0 < M; m0 += kMC) {
        int64_t mc = std::min(kMC, M - m0);
        pack_a(kMR, trans_a, A, lda, m0, k0, mc, kc, a_buf.get());
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
