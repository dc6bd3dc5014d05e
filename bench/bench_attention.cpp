// Attention throughput (f32, CPU): 4*B*H*Lq*Lk*D flops. Shapes: SD1.5's 64x64 self-attention
// (8 heads x 4096 tokens x d40 after the 320->8 split), its cross-attention to 77 tokens, and
// a DiT-like 1x24x1024x128.
#include <benchmark/benchmark.h>

#include "bench_util.hpp"
#include "kiln/ops/ops.hpp"

using namespace kiln;

namespace {

void BM_attention(benchmark::State& st) {
  const int64_t B = 1, H = st.range(0), Lq = st.range(1), Lk = st.range(2), D = st.range(3);
  Tensor q = bench::random_tensor({B, H, Lq, D}, 1), k = bench::random_tensor({B, H, Lk, D}, 2);
  Tensor v = bench::random_tensor({B, H, Lk, D}, 3);
  for (auto _ : st) benchmark::DoNotOptimize(ops::attention(q, k, v));
  bench::set_gflops(st, 4.0 * B * H * Lq * Lk * D);
}

}  // namespace

BENCHMARK(BM_attention)
    ->Args({8, 4096, 4096, 40})
    ->Args({8, 4096, 77, 40})
    ->Args({24, 1024, 1024, 128})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
