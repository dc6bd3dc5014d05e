// Convolution throughput (f32, CPU, batch 1): 2*Cout*Cin/groups*prod(K)*prod(S_out) flops.
// SD1.5 U-Net shapes: 320->320 3x3 at 64x64 (down block 0), 640->640 3x3 at 32x32, the VAE
// decoder's 512->512 3x3 at 128x128 and 128->128 3x3 at 512x512 (the costliest convs of a
// 512^2 decode), and a 1x1 projection.
#include <benchmark/benchmark.h>

#include <random>

#include "kiln/ops/ops.hpp"

using namespace kiln;

namespace {

Tensor rand_c(const Shape& s, uint32_t seed) {
  Tensor t = Tensor::empty(s, DType::f32);
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> d(-1, 1);
  float* p = t.mutable_data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = d(g);
  return t;
}

void BM_conv2d(benchmark::State& st) {
  const int64_t cin = st.range(0), cout = st.range(1), hw = st.range(2), k = st.range(3);
  Tensor x = rand_c({1, cin, hw, hw}, 1), w = rand_c({cout, cin, k, k}, 2), b = rand_c({cout}, 3);
  ops::ConvParams p = ops::ConvParams::same_pad(1, static_cast<int>(k / 2));
  for (auto _ : st) benchmark::DoNotOptimize(ops::conv(x, w, b, p));
  st.counters["GFLOP/s"] = benchmark::Counter(2.0 * cout * cin * k * k * hw * hw * st.iterations() / 1e9,
                                              benchmark::Counter::kIsRate);
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
