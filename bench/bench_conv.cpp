// Convolution throughput (f32, CPU, batch 1): 2*Cout*Cin/groups*prod(K)*prod(S_out) flops.
// SD1.5 U-Net shapes: 320->320 3x3 at 64x64 (down block 0), 640->640 3x3 at 32x32, the VAE
// decoder's 512->512 3x3 at 128x128 and 128->128 3x3 at 512x512 (the costliest convs of a
// 512^2 decode), and a 1x1 projection.
#include <benchmark/benchmark.h>

#include "bench_util.hpp"
#include "kiln/ops/ops.hpp"

using namespace kiln;

namespace {

void BM_conv2d(benchmark::State& st) {
  const int64_t cin = st.range(0), cout = st.range(1), hw = st.range(2), k = st.range(3);
  Tensor x = bench::random_tensor({1, cin, hw, hw}, 1);
  Tensor w = bench::random_tensor({cout, cin, k, k}, 2), b = bench::random_tensor({cout}, 3);
  ops::ConvParams p = ops::ConvParams::same_pad(1, static_cast<int>(k / 2));
  for (auto _ : st) benchmark::DoNotOptimize(ops::conv(x, w, b, p));
  bench::set_gflops(st, 2.0 * cout * cin * k * k * hw * hw);
}

}  // namespace

BENCHMARK(BM_conv2d)
    ->Args({320, 320, 64, 3})
    ->Args({640, 640, 32, 3})
    ->Args({512, 512, 128, 3})
    ->Args({128, 128, 512, 3})
    ->Args({320, 320, 64, 1})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
