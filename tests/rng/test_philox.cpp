// Philox4x32-10 against Random123's known answers, curand's state semantics, and
// PhiloxCudaGenerator against torch CUDA goldens from an H100 (tests/reference/
// make_rng_goldens.py --cuda-only -> tests/data/rng/torch_cuda_randn.json).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "kiln/rng/generator.hpp"
#include "kiln/rng/philox.hpp"
#include "rng_golden.hpp"

namespace kiln::rng {
namespace {

using test::rng::bits_equal;
using test::rng::case_name;
using test::rng::fnv1a64;
using test::rng::numel_of;
using test::rng::parse_array;
using test::rng::shape_of;

TEST(Philox, Random123KnownAnswers) {
  // Random123 kat_vectors, "philox4x32 10": counter, key -> output.
  struct Kat {
    PhiloxCounter ctr;
    PhiloxKey key;
    PhiloxCounter out;
  };
  const Kat kats[] = {
      {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
      {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
       {0xffffffff, 0xffffffff},
       {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
      {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
       {0xa4093822, 0x299f31d0},
       {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
  };
  for (const auto& k : kats) EXPECT_EQ(philox4x32_10(k.ctr, k.key), k.out);
}

TEST(Philox, CurandStateSemantics) {
  const uint64_t seed = 0x0123456789abcdefull;
  // curand_init: key = seed halves, counter words 2-3 = subsequence, words 0-1 = offset / 4.
  CurandPhilox4x32 s(seed, 7, 8);
  const auto first = s.next4();
  EXPECT_EQ(first, philox4x32_10({2, 0, 7, 0}, {0x89abcdefu, 0x01234567u}));
  // An offset that is not a multiple of 4 starts inside a block; curand() and curand4() agree.
  CurandPhilox4x32 a(seed, 3, 0), b(seed, 3, 5), c(seed, 3, 5);
  for (int i = 0; i < 5; ++i) a.next();
  const auto b4 = b.next4();
  for (int i = 0; i < 4; ++i) EXPECT_EQ(b4[i], c.next()) << i;
  for (int i = 0; i < 4; ++i) EXPECT_EQ(b4[i], a.next()) << i;
  // A 64-bit subsequence fills counter words 2 and 3.
  CurandPhilox4x32 h(seed, (uint64_t{5} << 32) | 9, 0);
  EXPECT_EQ(h.next4(), philox4x32_10({0, 0, 9, 5}, {0x89abcdefu, 0x01234567u}));
}

TEST(Philox, LaunchPolicyMatchesTorch) {
  const CudaLaunchParams h100;  // 132 SMs x 2048 threads
  auto l = philox_launch(16384, 4, h100);
  EXPECT_EQ(l.grid, 64u);
  EXPECT_EQ(l.counter_offset, 4u);
  l = philox_launch(2'500'001, 4, h100);  // 1056 blocks = 270,336 threads; 3 iterations
  EXPECT_EQ(l.grid, 1056u);
  EXPECT_EQ(l.counter_offset, 12u);
  l = philox_launch(2'500'001, 2, h100);
  EXPECT_EQ(l.counter_offset, 20u);
  l = philox_launch(1, 4, CudaLaunchParams{108, 2048});  // A100
  EXPECT_EQ(l.grid, 1u);
  EXPECT_THROW(philox_launch(0, 4, h100), Error);
  PhiloxCudaGenerator g(1);
  EXPECT_THROW(g.set_offset(6), Error);
}

const nlohmann::json& cuda_golden() {
  static const nlohmann::json j = test::rng::load_golden("torch_cuda_randn.json");
  return j;
}

CudaLaunchParams golden_params() {
  const auto& info = cuda_golden().at("device_info");
  return {info.at("sm_count").get<int>(), info.at("max_threads_per_sm").get<int>()};
}

// randn on the GPU uses the __sincosf intrinsic; everything else is exact. Measured on the
// H100 goldens (torch 2.11, CUDA 13.0): max |kiln - torch| = 1.61e-6 over 5,892 values
// (printed by MatchesTorchCuda); the bound leaves 2.5x margin.
constexpr double kCudaNormalAbsTol = 4e-6;

TEST(PhiloxCudaGenerator, GoldenDeviceIsTheDefaultH100) {
  const auto p = golden_params();
  EXPECT_EQ(p.sm_count, CudaLaunchParams{}.sm_count);
  EXPECT_EQ(p.max_threads_per_sm, CudaLaunchParams{}.max_threads_per_sm);
  std::printf("CUDA goldens: %s, %d SMs, torch %s\n",
              cuda_golden().at("device_info").at("name").get<std::string>().c_str(), p.sm_count,
              cuda_golden().at("torch_version").get<std::string>().c_str());
}

TEST(PhiloxCudaGenerator, MatchesTorchCuda) {
  double max_err = 0;
  int64_t normals = 0, exact_calls = 0;
  for (const auto& c : cuda_golden().at("cases")) {
    SCOPED_TRACE(case_name(c));
    ASSERT_FALSE(c.contains("error")) << c.at("error");
    PhiloxCudaGenerator g(c.at("seed").get<uint64_t>(), golden_params());
    const std::string op = c.at("op");
    for (size_t i = 0; i < c.at("calls").size(); ++i) {
      const auto n = static_cast<size_t>(numel_of(shape_of(c.at("calls")[i])));
      const auto want = parse_array(c.at("outputs")[i]);
      if (op == "random64") {
        std::vector<uint64_t> out(n);
        g.random64(out);
        for (size_t k = 0; k < want.index.size(); ++k)
          ASSERT_EQ(out[want.index[k]], want.words[k]) << "element " << want.index[k];
        if (!want.full) {
          EXPECT_EQ(fnv1a64(out), want.fnv);
        }
        ++exact_calls;
      } else if (op == "rand") {
        std::vector<float> out(n);
        g.rand(out);
        ASSERT_TRUE(bits_equal(out, want));
        ++exact_calls;
      } else {
        std::vector<float> out(n);
        g.randn(out);
        for (size_t k = 0; k < want.index.size(); ++k) {
          const double ref = f32_from_bits(static_cast<uint32_t>(want.words[k]));
          const double err = std::fabs(out[want.index[k]] - ref);
          max_err = std::max(max_err, err);
          ++normals;
          ASSERT_LE(err, kCudaNormalAbsTol)
              << "element " << want.index[k] << ": " << out[want.index[k]] << " vs torch " << ref;
        }
        if (!want.full) {
          double sum = 0;
          for (float v : out) sum += v;
          EXPECT_NEAR(sum, want.sum, 1e-6 * static_cast<double>(n) + 1e-3);
        }
      }
      const auto& off = c.at("offset_after")[i];
      if (!off.is_null()) {
        EXPECT_EQ(g.offset(), off.get<uint64_t>()) << "call " << i;
      }
    }
  }
  std::printf(
      "CUDA randn: max |kiln - torch| = %.3g over %lld values; %lld exact rand/random64 calls\n",
      max_err, static_cast<long long>(normals), static_cast<long long>(exact_calls));
  EXPECT_GT(normals, 5000);
  EXPECT_GT(exact_calls, 10);
}

TEST(PhiloxCudaGenerator, GeneratorInterface) {
  // Two consecutive latents through the generic interface equal two raw calls.
  auto gen = Generator::philox_cuda(42);
  PhiloxCudaGenerator raw(42);
  for (int call = 0; call < 2; ++call) {
    const Tensor t = randn({1, 4, 64, 64}, gen);
    std::vector<float> want(16384);
    raw.randn(want);
    const float* p = t.data<float>();
    ASSERT_TRUE(std::equal(want.begin(), want.end(), p));
  }
  EXPECT_EQ(gen.as_philox_cuda()->offset(), 8u);
  EXPECT_EQ(gen.str(), "philox_cuda(seed=42, offset=8, sm_count=132)");
  gen.manual_seed(42);
  EXPECT_EQ(gen.as_philox_cuda()->offset(), 0u);
}

}  // namespace
}  // namespace kiln::rng
