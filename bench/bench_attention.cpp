// Attention throughput (f32, CPU): 4*B*H*Lq*Lk*D flops. Shapes: SD1.5's 64x64 self-attention
// (8 heads x 4096 tokens x d40 after the 320->8 split), its cross-attention to 77 tokens, and
// a DiT-like 1x24x1024x128.
#include <benchmark/benchmark.h>

#include <random>

#include "kiln/ops/ops.hpp"

using namespace kiln;

namespace {

Tensor rand_a(const Shape& s, uint32_t seed) {
  Tensor t = Tensor::empty(s, DType::f32);
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0, 1);
  float* p = t.mutable_data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = d(g);
  return t;
}

void BM_attention(benchmark::State& st) {
  const int64_t B = 1, H = st.range(0), Lq = st.range(1), Lk = st.range(2), D = st.range(3);
  Tensor q = rand_a({B, H, Lq, D}, 1), k = rand_a({B, H, Lk, D}, 2), v = rand_a({B, H, Lk, D}, 3);
  for (auto _ : st) benchmark::DoNotOptimize(ops::attention(q, k, v));
  st.counters["GFLOP/s"] =
      benchmark::Counter(4.0 * B * H * Lq * Lk * D * st.iterations() / 1e9, benchmark::Counter::kIsRate);
}

}  // namespace

BENCHMARK(BM_attention)
    ->Args({8, 4096, 4096, 40})
    ->Args({8, 4096, 77, 40})
    ->Args({24, 1024, 1024, 128})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
