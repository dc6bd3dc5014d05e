// TorchCpuGenerator: reproduces PyTorch's CPU generator bit for bit, so that a pipeline seeded
// with `seed` draws the same initial noise as
//   g = torch.Generator().manual_seed(seed); torch.randn(shape, generator=g)   (float32, CPU)
// including the state carried between successive calls on one generator.
//
// What torch does (verified against torch 2.15 in tests/rng/test_torch_cpu_randn.cpp):
//  - Engine: MT19937 seeded with the low 32 bits of the seed (seeds 5 and 2**32+5 give the same
//    stream). random() is one 32-bit output, random64() is (first << 32) | second.
//    Ref: pytorch aten/src/ATen/core/MT19937RNGEngine.h, aten/src/ATen/CPUGeneratorImpl.cpp
//  - rand (float): (random() & (2^24 - 1)) * 2^-24.  Ref: aten/src/ATen/core/TransformationHelper.h
//    uniform_real
//  - randn, numel < 16: per element at::normal_distribution<double>: u1, u2 from random64()
//    ((x & (2^53 - 1)) * 2^-53), r = sqrt(-2 log1p(-u2)), theta = 2 pi u1, returns r cos(theta)
//    and caches r sin(theta) in the generator for the next scalar draw (the cache survives
//    calls, is not used by the numel >= 16 path, and is cleared by manual_seed).
//    Ref: aten/src/ATen/core/DistributionsHelper.h normal_distribution
//  - randn, numel >= 16 (contiguous float32): normal_fill. All numel uniforms are drawn first;
//    each block of 16 maps u[j], u[j+8] (j < 8) to r cos, r sin with r = sqrt(-2 log(1 - u[j])),
//    theta = 2 pi u[j+8]; when numel % 16 != 0 the last 16 outputs are recomputed from 16
//    fresh uniforms. Ref: aten/src/ATen/native/cpu/DistributionTemplates.h normal_fill,
//    normal_fill_AVX2
//  - Which float math: DistributionKernels.cpp registers normal_stub for the DEFAULT and AVX2
//    capabilities and REGISTER_NO_AVX512_DISPATCH for AVX512, so an x86 CPU with AVX2 *or*
//    AVX-512 runs normal_fill_16_AVX2 (Cephes-style log256_ps / sincos256_ps polynomials of
//    avx_mathfun.h, compiled by GCC with FMA contraction): TorchCpuKernel::avx2, the default.
//    ATEN_CPU_CAPABILITY=default, pre-AVX2 x86 and non-x86 builds run the scalar normal_fill_16
//    with the C library's logf/cosf/sinf: TorchCpuKernel::scalar (bit-exact where kiln links the
//    same libm as torch, e.g. glibc on Linux).
//
// The avx2 mode is portable scalar C++ doing the same float operations in the same order,
// including the multiply-adds GCC fused in torch's build (found by matching 2M torch samples;
// see the .cpp). Not thread-safe: one generator per request.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>

namespace kiln::rng {

enum class TorchCpuKernel : uint8_t {
  avx2,    // torch on x86 with AVX2 or AVX-512 (the common case)
  scalar,  // torch with ATEN_CPU_CAPABILITY=default, or on non-x86 CPUs
};

// c10::detail::default_rng_seed_val: the seed of a fresh torch.Generator().
constexpr uint64_t kTorchDefaultSeed = 67280421310721ull;

class TorchCpuGenerator {
 public:
  // Everything torch keeps: the MT19937 words and position, the seed, the cached normal.
  struct State {
    uint64_t seed = 0;
    std::array<uint32_t, 624> mt{};
    uint32_t mt_index = 624;  // next word to temper; 624 = twist before the next draw
    std::optional<double> next_double_normal;
  };

  explicit TorchCpuGenerator(uint64_t seed = kTorchDefaultSeed) { manual_seed(seed); }

  void manual_seed(uint64_t seed);  // as torch.Generator.manual_seed: also drops the cache
  uint64_t seed() const { return s_.seed; }
  const State& state() const { return s_; }
  void set_state(const State& s);  // throws on an out-of-range mt_index

  uint32_t random();    // at::CPUGeneratorImpl::random
  uint64_t random64();  // at::CPUGeneratorImpl::random64

  // torch.randn(numel) into `out` (float32, contiguous), advancing the generator.
  void randn(std::span<float> out, TorchCpuKernel kernel = TorchCpuKernel::avx2);
  // torch.rand(numel) into `out`.
  void rand(std::span<float> out);
  // One at::normal_distribution<double>(0, 1) draw (the numel < 16 path of randn).
  double normal_double();

 private:
  void twist();
  State s_;
};

}  // namespace kiln::rng
