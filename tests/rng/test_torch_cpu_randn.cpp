// TorchCpuGenerator against torch's CPU generator, bit for bit, for both of torch's float32
// randn kernels (goldens: tests/reference/make_rng_goldens.py -> tests/data/rng/
// torch_cpu_randn.json).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <set>

#include "kiln/rng/generator.hpp"
#include "kiln/rng/torch_cpu_randn.hpp"
#include "rng_golden.hpp"

namespace kiln::rng {
namespace {

using test::rng::bits_equal;
using test::rng::case_name;
using test::rng::numel_of;
using test::rng::parse_array;
using test::rng::shape_of;

const nlohmann::json& golden() {
  static const nlohmann::json j = test::rng::load_golden("torch_cpu_randn.json");
  return j;
}

TEST(TorchCpuGenerator, Mt19937MatchesStdAndTruncatesSeed) {
  // The 10000th output of MT19937 with the reference seed 5489 is fixed by the C++ standard.
  TorchCpuGenerator g(5489);
  uint32_t v = 0;
  for (int i = 0; i < 10000; ++i) v = g.random();
  EXPECT_EQ(v, 4123659995u);
  // at::mt19937 seeds with the low 32 bits; the seed itself is remembered whole.
  TorchCpuGenerator a(5), b((uint64_t{1} << 32) + 5);
  EXPECT_EQ(b.seed(), (uint64_t{1} << 32) + 5);
  std::mt19937 ref(5);
  for (int i = 0; i < 2000; ++i) {
    const uint32_t x = a.random();
    EXPECT_EQ(x, b.random());
    ASSERT_EQ(x, ref());
  }
}

// Runs every golden case of one kernel: same seed, same calls in order, exact bits.
void check_kernel(const char* key, TorchCpuKernel kernel) {
  const auto& k = golden().at("kernels").at(key);
  int checked = 0;
  for (const auto& c : k.at("cases")) {
    SCOPED_TRACE(case_name(c));
    TorchCpuGenerator g(c.at("seed").get<uint64_t>());
    const bool is_randn = c.at("op") == "randn";
    for (size_t i = 0; i < c.at("calls").size(); ++i) {
      const auto shape = shape_of(c.at("calls")[i]);
      std::vector<float> out(static_cast<size_t>(numel_of(shape)));
      if (is_randn)
        g.randn(out, kernel);
      else
        g.rand(out);
      ASSERT_TRUE(bits_equal(out, parse_array(c.at("outputs")[i]))) << "call " << i;
      ++checked;
    }
  }
  EXPECT_GT(checked, 60);
}

TEST(TorchCpuGenerator, Avx2KernelBitExact) {
  check_kernel("avx2", TorchCpuKernel::avx2);
}
TEST(TorchCpuGenerator, ScalarKernelBitExact) {
  check_kernel("scalar", TorchCpuKernel::scalar);
}

TEST(TorchCpuGenerator, GoldensTellTheKernelsApart) {
  // Guards the two tests above against goldens that cannot distinguish the kernels: the same
  // call must have different bits somewhere for avx2 and default.
  const auto& a = golden().at("kernels").at("avx2");
  const auto& s = golden().at("kernels").at("scalar");
  EXPECT_EQ(a.at("reported_capability"), "AVX2");
  EXPECT_EQ(s.at("reported_capability"), "DEFAULT");
  int differing = 0;
  for (size_t i = 0; i < a.at("cases").size(); ++i)
    if (a.at("cases")[i].at("outputs") != s.at("cases")[i].at("outputs")) ++differing;
  EXPECT_GT(differing, 10);
  // On an AVX-512 machine the generator script also ran ATEN_CPU_CAPABILITY=avx512 and found
  // the avx2 bits (torch registers no AVX512 normal kernel): TorchCpuKernel::avx2 covers both.
  const auto& same = golden().at("avx512_equals_avx2");
  if (!same.is_null()) {
    EXPECT_TRUE(same.get<bool>());
  }
}

TEST(TorchCpuGenerator, SmallSizesUseCachedSecondSample) {
  // randn(1) twice == randn(2) once: the second call takes the cached r*sin(theta).
  TorchCpuGenerator a(42), b(42);
  std::vector<float> x(1), y(1), xy(2);
  a.randn(x);
  a.randn(y);
  b.randn(xy);
  EXPECT_EQ(f32_bits(x[0]), f32_bits(xy[0]));
  EXPECT_EQ(f32_bits(y[0]), f32_bits(xy[1]));
  // manual_seed drops the cache.
  a.manual_seed(42);
  a.randn(x);
  a.manual_seed(42);
  a.randn(y);
  EXPECT_EQ(f32_bits(x[0]), f32_bits(y[0]));
}

TEST(TorchCpuGenerator, StateRoundTrip) {
  TorchCpuGenerator g(2024);
  std::vector<float> warm(3), a(1000), b(1000);
  g.randn(warm);  // leaves a cached normal in the state
  const auto saved = g.state();
  ASSERT_TRUE(saved.next_double_normal.has_value());
  g.randn(a);
  std::vector<float> small_a(1), small_b(1);
  g.randn(small_a);
  g.set_state(saved);
  g.randn(b);
  g.randn(small_b);
  EXPECT_EQ(a, b);
  EXPECT_EQ(f32_bits(small_a[0]), f32_bits(small_b[0]));
  TorchCpuGenerator::State bad = saved;
  bad.mt_index = 625;
  EXPECT_THROW(g.set_state(bad), Error);
}

TEST(TorchCpuGenerator, GeneratorInterfaceMatchesConsecutiveTorchCalls) {
  // Generator + randn(Shape) reproduce the golden two-latent sequence of seed 42.
  for (const char* key : {"avx2", "scalar"}) {
    const auto kernel = std::string(key) == "avx2" ? TorchCpuKernel::avx2 : TorchCpuKernel::scalar;
    for (const auto& c : golden().at("kernels").at(key).at("cases")) {
      if (c.at("op") != "randn" || c.at("seed") != 42 || c.at("calls").size() != 2) continue;
      SCOPED_TRACE(std::string(key) + " " + case_name(c));
      auto gen = Generator::torch_cpu(42, kernel);
      EXPECT_EQ(gen.convention(), RngConvention::torch_cpu);
      for (size_t i = 0; i < 2; ++i) {
        const auto dims = shape_of(c.at("calls")[i]);
        const Tensor t = randn(Shape(std::span<const int64_t>(dims)), gen);
        EXPECT_EQ(t.dtype(), DType::f32);
        EXPECT_EQ(t.shape(), Shape(std::span<const int64_t>(dims)));
        const float* p = t.data<float>();
        ASSERT_TRUE(
            bits_equal(std::vector<float>(p, p + t.numel()), parse_array(c.at("outputs")[i])));
      }
    }
  }
  auto gen = Generator::torch_cpu(7, TorchCpuKernel::scalar);
  EXPECT_EQ(gen.str(), "torch_cpu(seed=7, kernel=scalar)");
  EXPECT_NE(gen.as_torch_cpu(), nullptr);
  EXPECT_EQ(gen.as_philox_cuda(), nullptr);
}

TEST(TorchCpuGenerator, NormalStatistics) {
  // A sanity check independent of torch: mean ~ 0, variance ~ 1, no non-finite values, for an
  // awkward size with a recomputed tail.
  TorchCpuGenerator g(3);
  std::vector<float> x(100003);
  g.randn(x);
  double s = 0, s2 = 0;
  for (float v : x) {
    ASSERT_TRUE(std::isfinite(v));
    s += v, s2 += double(v) * v;
  }
  const double n = static_cast<double>(x.size());
  EXPECT_NEAR(s / n, 0.0, 0.02);
  EXPECT_NEAR(s2 / n, 1.0, 0.02);
}

}  // namespace
}  // namespace kiln::rng
