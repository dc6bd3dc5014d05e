// Helpers shared by the benchmark programs: seeded inputs and the GFLOP/s counter.
#pragma once

#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>

#include "kiln/core/tensor.hpp"

namespace kiln::bench {

// Uniform [-1, 1) f32 tensor from a std::mt19937 seeded with `seed`.
inline Tensor random_tensor(const Shape& s, uint32_t seed) {
  Tensor t = Tensor::empty(s, DType::f32);
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> d(-1, 1);
  float* p = t.mutable_data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = d(g);
  return t;
}

// Reports "GFLOP/s" from the flops of one iteration.
inline void set_gflops(benchmark::State& st, double flops_per_iteration) {
  st.counters["GFLOP/s"] =
      benchmark::Counter(flops_per_iteration * static_cast<double>(st.iterations()) / 1e9,
                         benchmark::Counter::kIsRate);
}

}  // namespace kiln::bench
