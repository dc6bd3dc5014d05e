// Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy as 1, 2, 3",
// SC 2011; the Random123 library) and PhiloxCudaGenerator, which reproduces on the CPU what
//   g = torch.Generator('cuda').manual_seed(seed); torch.randn(shape, device='cuda', generator=g)
// draws (float32), including the generator's Philox offset advancing per call.
//
// How torch uses it (Ref: pytorch aten/src/ATen/native/cuda/DistributionTemplates.h
// calc_execution_policy, distribution_elementwise_grid_stride_kernel, normal_and_transform;
// aten/src/ATen/cuda/CUDAGeneratorImpl.cpp philox_cuda_state; CUDA curand_kernel.h,
// curand_philox4x32_x.h, curand_normal.h, curand_uniform.h):
//  - launch: block 256, grid = min(ceil(numel / 256), sm_count * (max_threads_per_sm / 256)),
//    so the element -> thread mapping depends on the GPU (H100 SXM: 132 SMs * 8 blocks).
//  - thread t (global index) runs curand_init(seed, subsequence = t, offset): Philox key =
//    (seed lo, seed hi), counter = (offset / 4 [64-bit, words 0-1], t [64-bit, words 2-3]).
//  - each grid-stride iteration takes one curand_normal4 (one Philox block: Box-Muller of the
//    pairs (x, y), (z, w): u = x 2^-32 + 2^-33, v = y 2^-32 2pi + 2^-32 pi, s = sqrt(-2 log u),
//    outputs s sin v, s cos v) and writes element li + ii * 256 * grid for ii < unroll = 4.
//  - the generator offset advances by ((numel - 1) / (256 * grid * unroll) + 1) * 4 per call.
//
// Exactness: the Philox words, torch.rand and random_(-2**63) are bit-exact. The normals use
// float logf/sinf/cosf on the host (curand's host branch) where the GPU uses logf and the
// __sincosf intrinsic, so they match torch CUDA to float rounding, not bit for bit (measured
// max abs error vs an H100 in tests/rng/test_philox.cpp).
#pragma once

#include <array>
#include <cstdint>
#include <span>

namespace kiln::rng {

using PhiloxCounter = std::array<uint32_t, 4>;
using PhiloxKey = std::array<uint32_t, 2>;

// The Philox4x32 bijection with 10 rounds: the raw generator, checked against Random123's
// known-answer vectors.
PhiloxCounter philox4x32_10(PhiloxCounter ctr, PhiloxKey key);

// curandStatePhilox4_32_10 semantics (curand_init / curand / curand4 / skipahead), so that any
// torch CUDA kernel's per-thread stream can be rebuilt.
class CurandPhilox4x32 {
 public:
  CurandPhilox4x32(uint64_t seed, uint64_t subsequence, uint64_t offset);
  uint32_t next();                  // curand()
  std::array<uint32_t, 4> next4();  // curand4()
  // curand_normal4 with host math (sqrtf(-2 logf(u)), sinf, cosf): {s1 sin v1, s1 cos v1,
  // s2 sin v2, s2 cos v2}.
  std::array<float, 4> normal4();
  std::array<float, 4> uniform4();  // curand_uniform4: x 2^-32 + 2^-33, in (0, 1]

 private:
  void increment();               // Philox_State_Incr(s)
  void increment(uint64_t n);     // Philox_State_Incr(s, n)
  void increment_hi(uint64_t n);  // Philox_State_Incr_hi(s, n)
  PhiloxCounter ctr_{};
  PhiloxCounter output_{};
  PhiloxKey key_{};
  uint32_t index_ = 0;  // which word of output_ curand() returns next (curand's STATE)
};

// The GPU properties torch's launch heuristic reads. Defaults: H100 SXM (132 SMs).
struct CudaLaunchParams {
  int sm_count = 132;             // cudaDeviceProp::multiProcessorCount
  int max_threads_per_sm = 2048;  // cudaDeviceProp::maxThreadsPerMultiProcessor
};

// What calc_execution_policy picks for `numel` elements and `unroll` outputs per Philox block.
struct PhiloxLaunch {
  uint32_t block = 256;
  uint32_t grid = 0;
  uint64_t counter_offset = 0;  // how far the generator's offset advances
};
PhiloxLaunch philox_launch(int64_t numel, int unroll, const CudaLaunchParams& params);

class PhiloxCudaGenerator {
 public:
  explicit PhiloxCudaGenerator(uint64_t seed = 67280421310721ull, CudaLaunchParams params = {})
      : seed_(seed), params_(params) {}

  void manual_seed(uint64_t seed) { seed_ = seed, offset_ = 0; }
  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }  // torch.Generator.get_offset()
  void set_offset(uint64_t offset);            // must be a multiple of 4, as torch enforces
  const CudaLaunchParams& params() const { return params_; }

  // torch.randn / torch.rand / torch.empty(int64).random_(-2**63, None) of numel elements.
  // Throws unsupported for numel >= 2^31 (torch splits those into several launches).
  void randn(std::span<float> out);
  void rand(std::span<float> out);
  void random64(std::span<uint64_t> out);

 private:
  uint64_t seed_;
  uint64_t offset_ = 0;
  CudaLaunchParams params_;
};

}  // namespace kiln::rng
