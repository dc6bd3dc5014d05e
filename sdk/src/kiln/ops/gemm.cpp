#include "kiln/ops/gemm.hpp"

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdlib>

#include "cpu/gemm_f32.hpp"
#include "kiln/core/error.hpp"
#include "kiln/core/parallel.hpp"

#ifdef KILN_HAVE_OPENBLAS
#include <cblas.h>
#endif
#ifdef KILN_HAVE_DNNL
#include <dnnl.h>
#endif

namespace kiln::ops {

namespace {

#ifndef KILN_GEMM_DEFAULT
#define KILN_GEMM_DEFAULT "openblas"
#endif

// The KILN_GEMM environment variable (kiln, openblas, onednn) when set to an available library,
// else the build's KILN_BLAS choice when compiled in, else the first available library.
GemmBackend default_backend() {
  if (const char* env = std::getenv("KILN_GEMM")) {
    for (GemmBackend b : {GemmBackend::openblas, GemmBackend::onednn, GemmBackend::kiln})
      if (gemm_backend_name(b) == env && gemm_backend_available(b)) return b;
  }
  for (GemmBackend b : {GemmBackend::openblas, GemmBackend::onednn, GemmBackend::kiln})
    if (gemm_backend_name(b) == KILN_GEMM_DEFAULT && gemm_backend_available(b)) return b;
  for (GemmBackend b : {GemmBackend::openblas, GemmBackend::onednn})
    if (gemm_backend_available(b)) return b;
  return GemmBackend::kiln;
}

std::atomic<GemmBackend>& current() {
  static std::atomic<GemmBackend> b{default_backend()};
  return b;
}

// Splits C into column blocks (multiples of the micro-kernel's tile width) or, when N is narrow,
// row blocks, one per thread; each runs the single-threaded packed kernel.
void gemm_kiln_parallel(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
                        const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
                        float* C, int64_t ldc) {
  const double flops = 2.0 * M * N * K;
  const int threads = in_parallel_region() || flops < 2e6 ? 1 : num_threads();
  if (threads <= 1) {
    kernels::cpu::sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  int64_t mr = 6, nr = 16;
  kernels::cpu::sgemm_tile(&mr, &nr);
  if (N >= 4 * nr * threads) {
    int64_t blocks = (N + nr - 1) / nr;
    parallel_for(blocks, 1, [&](int64_t b, int64_t e) {
      int64_t n0 = b * nr, n1 = std::min(N, e * nr);
      const float* Bp = tb ? B + n0 * ldb : B + n0;
      kernels::cpu::sgemm(ta, tb, M, n1 - n0, K, alpha, A, lda, Bp, ldb, beta, C + n0, ldc);
    });
  } else {
    int64_t blocks = (M + mr - 1) / mr;
    parallel_for(blocks, 1, [&](int64_t b, int64_t e) {
      int64_t m0 = b * mr, m1 = std::min(M, e * mr);
      const float* Ap = ta ? A + m0 : A + m0 * lda;
      kernels::cpu::sgemm(ta, tb, m1 - m0, N, K, alpha, Ap, lda, B, ldb, beta, C + m0 * ldc, ldc);
    });
  }
}

}  // namespace

std::string_view gemm_backend_name(GemmBackend b) {
  switch (b) {
    case GemmBackend::kiln: return "kiln";
    case GemmBackend::openblas: return "openblas";
    case GemmBackend::onednn: return "onednn";
  }
  return "?";
}

bool gemm_backend_available(GemmBackend b) {
  switch (b) {
    case GemmBackend::kiln: return true;
#ifdef KILN_HAVE_OPENBLAS
    case GemmBackend::openblas: return true;
#endif
#ifdef KILN_HAVE_DNNL
    case GemmBackend::onednn: return true;
#endif
    default: return false;
  }
}

GemmBackend gemm_backend() { return current().load(); }

void set_gemm_backend(GemmBackend b) {
  KILN_CHECK(gemm_backend_available(b), Status::unsupported, "gemm",
             "GEMM backend '", gemm_backend_name(b), "' is not compiled in (KILN_BLAS)");
  current().store(b);
}

void gemm_f32(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
              int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  GemmBackend b = current().load();
  // Inside a parallel region the libraries would either oversubscribe or serialise on a lock;
  // the packed kernel is re-entrant and single-threaded there.
  if (in_parallel_region()) b = GemmBackend::kiln;
  // The libraries take int dimensions (OpenBLAS) or are only exercised below 2^31 here.
  const int64_t lim = INT_MAX;
  if (M >= lim || N >= lim || K >= lim || lda >= lim || ldb >= lim || ldc >= lim) b = GemmBackend::kiln;
  switch (b) {
#ifdef KILN_HAVE_OPENBLAS
    case GemmBackend::openblas:
      if (K > 0) {
        openblas_set_num_threads(num_threads());
        cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                    static_cast<int>(M), static_cast<int>(N), static_cast<int>(K), alpha, A,
                    static_cast<int>(lda), B, static_cast<int>(ldb), beta, C,
                    static_cast<int>(ldc));
        return;
      }
      break;
#endif
#ifdef KILN_HAVE_DNNL
    case GemmBackend::onednn:
      if (K > 0) {
        dnnl_status_t s = dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, alpha, A, lda, B,
                                     ldb, beta, C, ldc);
        KILN_CHECK(s == dnnl_success, Status::internal, "gemm", "dnnl_sgemm failed (", s, ")");
        return;
      }
      break;
#endif
    default: break;
  }
  gemm_kiln_parallel(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

}  // namespace kiln::ops
