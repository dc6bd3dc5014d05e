// GEMM throughput: kiln's ops::matmul on each backend against the raw library calls, at the
// shapes diffusion models produce (square 1024^3, a SD1.5 attention projection 4096x320x320,
// a conv-as-GEMM 4096x640x2880, and a thin 77x768x768 text-encoder layer).
#include <benchmark/benchmark.h>

#include "bench_util.hpp"
#include "cpu/gemm_f32.hpp"
#include "kiln/core/parallel.hpp"
#include "kiln/ops/gemm.hpp"
#include "kiln/ops/ops.hpp"

#ifdef KILN_HAVE_OPENBLAS
#include <cblas.h>
#endif
#ifdef KILN_HAVE_DNNL
#include <dnnl.h>
#endif

using namespace kiln;

namespace {

void set_flops(benchmark::State& st, int64_t M, int64_t N, int64_t K) {
  bench::set_gflops(st, 2.0 * M * N * K);
}

void BM_matmul(benchmark::State& st, ops::GemmBackend backend) {
  if (!ops::gemm_backend_available(backend)) {
    st.SkipWithError("backend not compiled in");
    return;
  }
  const int64_t M = st.range(0), N = st.range(1), K = st.range(2);
  Tensor a = bench::random_tensor({M, K}, 1), b = bench::random_tensor({K, N}, 2);
  ops::GemmBackend saved = ops::gemm_backend();
  ops::set_gemm_backend(backend);
  for (auto _ : st) benchmark::DoNotOptimize(ops::matmul(a, b));
  ops::set_gemm_backend(saved);
  set_flops(st, M, N, K);
}

#ifdef KILN_HAVE_OPENBLAS
void BM_raw_cblas_sgemm(benchmark::State& st) {
  const int64_t M = st.range(0), N = st.range(1), K = st.range(2);
  Tensor a = bench::random_tensor({M, K}, 1), b = bench::random_tensor({K, N}, 2);
  Tensor c = Tensor::empty({M, N}, DType::f32);
  openblas_set_num_threads(num_threads());
  for (auto _ : st) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.f, a.data<float>(), K,
                b.data<float>(), N, 0.f, c.mutable_data<float>(), N);
    benchmark::ClobberMemory();
  }
  set_flops(st, M, N, K);
}
#endif

#ifdef KILN_HAVE_DNNL
void BM_raw_dnnl_sgemm(benchmark::State& st) {
  const int64_t M = st.range(0), N = st.range(1), K = st.range(2);
  Tensor a = bench::random_tensor({M, K}, 1), b = bench::random_tensor({K, N}, 2);
  Tensor c = Tensor::empty({M, N}, DType::f32);
  for (auto _ : st) {
    dnnl_sgemm('N', 'N', M, N, K, 1.f, a.data<float>(), K, b.data<float>(), N, 0.f,
               c.mutable_data<float>(), N);
    benchmark::ClobberMemory();
  }
  set_flops(st, M, N, K);
}
#endif

// Single-threaded packed kernel: the per-core ceiling the attention and conv tiles run at.
void BM_kiln_sgemm_1thread(benchmark::State& st) {
  const int64_t M = st.range(0), N = st.range(1), K = st.range(2);
  Tensor a = bench::random_tensor({M, K}, 1), b = bench::random_tensor({K, N}, 2);
  Tensor c = Tensor::empty({M, N}, DType::f32);
  for (auto _ : st) {
    kernels::cpu::sgemm(false, false, M, N, K, 1.f, a.data<float>(), K, b.data<float>(), N, 0.f,
                        c.mutable_data<float>(), N);
    benchmark::ClobberMemory();
  }
  set_flops(st, M, N, K);
}

void shapes(benchmark::internal::Benchmark* b) {
  b->Args({1024, 1024, 1024})->Args({4096, 320, 320})->Args({4096, 640, 2880})->Args({77, 768, 768});
  b->Unit(benchmark::kMillisecond)->UseRealTime();
}

}  // namespace

BENCHMARK_CAPTURE(BM_matmul, kiln, ops::GemmBackend::kiln)->Apply(shapes);
BENCHMARK_CAPTURE(BM_matmul, openblas, ops::GemmBackend::openblas)->Apply(shapes);
BENCHMARK_CAPTURE(BM_matmul, onednn, ops::GemmBackend::onednn)->Apply(shapes);
#ifdef KILN_HAVE_OPENBLAS
BENCHMARK(BM_raw_cblas_sgemm)->Apply(shapes);
#endif
#ifdef KILN_HAVE_DNNL
BENCHMARK(BM_raw_dnnl_sgemm)->Apply(shapes);
#endif
BENCHMARK(BM_kiln_sgemm_1thread)->Args({1024, 1024, 1024})->Args({64, 256, 64})->Unit(benchmark::kMillisecond);
