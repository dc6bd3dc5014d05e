// Every float multiply-add here is either an explicit std::fma (where nvcc's default -fmad=true
// fuses the device code) or has no add, so the result does not depend on -ffp-contract.
#include "kiln/rng/philox.hpp"

#include <algorithm>
#include <cmath>

#include "kiln/core/error.hpp"

namespace kiln::rng {
namespace {

// Philox constants: Weyl key increments (golden ratio, sqrt(3) - 1) and round multipliers.
// Ref: Salmon et al. 2011, table 2; Random123 philox.h; CUDA curand_philox4x32_x.h.
constexpr uint32_t kW0 = 0x9E3779B9u;
constexpr uint32_t kW1 = 0xBB67AE85u;
constexpr uint32_t kM0 = 0xD2511F53u;
constexpr uint32_t kM1 = 0xCD9E8D57u;

PhiloxCounter philox_round(const PhiloxCounter& c, const PhiloxKey& k) {
  const uint64_t p0 = uint64_t{kM0} * c[0];
  const uint64_t p1 = uint64_t{kM1} * c[2];
  const auto hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
  const auto hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
  return {hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0};
}

// curand's float constants. Ref: CUDA curand_globals.h CURAND_2POW32_INV,
// CURAND_2POW32_INV_2PI (= 2.3283064e-10f * 6.2831855f, a float product).
constexpr float k2Pow32Inv = 2.3283064e-10f;
constexpr float k2Pow32Inv2Pi = 2.3283064e-10f * 6.2831855f;

// Ref: CUDA curand_normal.h _curand_box_muller (host branch: sinf, cosf).
void box_muller(uint32_t x, uint32_t y, float* out) {
  const float u = std::fma(static_cast<float>(x), k2Pow32Inv, k2Pow32Inv / 2);
  const float v = std::fma(static_cast<float>(y), k2Pow32Inv2Pi, k2Pow32Inv2Pi / 2);
  const float s = std::sqrt(-2.0f * std::log(u));
  out[0] = std::sin(v) * s;
  out[1] = std::cos(v) * s;
}

float uniform_01(uint32_t x) {  // Ref: CUDA curand_uniform.h _curand_uniform
  return std::fma(static_cast<float>(x), k2Pow32Inv, k2Pow32Inv / 2.0f);
}

// Runs torch's distribution_elementwise_grid_stride_kernel on the CPU: thread t of the launch
// takes Philox blocks from curand_init(seed, t, offset) and writes up to `unroll` elements per
// block, strided by the grid. `draw(state)` turns one Philox block into kUnroll values,
// `store(index, value)` writes one element.
template <int kUnroll, typename Draw, typename Store>
void grid_stride(int64_t numel, uint64_t seed, uint64_t offset, const PhiloxLaunch& launch,
                 Draw draw, Store store) {
  const int64_t stride = int64_t{launch.block} * launch.grid;
  const int64_t rounded = ((numel - 1) / (stride * kUnroll) + 1) * stride * kUnroll;
  for (int64_t t = 0; t < stride && t < numel; ++t) {
    CurandPhilox4x32 state(seed, static_cast<uint64_t>(t), offset);
    for (int64_t li = t; li < rounded; li += stride * kUnroll) {
      const auto r = draw(state);
      for (int ii = 0; ii < kUnroll; ++ii) {
        const int64_t idx = li + stride * ii;
        if (idx < numel) store(idx, r[ii]);
      }
    }
  }
}

void check_numel(size_t n, const char* op) {
  // torch splits >= 2^31-element tensors into several launches, each with its own offset.
  KILN_CHECK(n < (size_t{1} << 31), Status::unsupported, op, "numel ", n,
             " needs torch's 32-bit-indexing split, which is not reproduced");
}

}  // namespace

PhiloxCounter philox4x32_10(PhiloxCounter ctr, PhiloxKey key) {
  for (int round = 0; round < 10; ++round) {
    if (round > 0) key = {key[0] + kW0, key[1] + kW1};
    ctr = philox_round(ctr, key);
  }
  return ctr;
}

// Ref: CUDA curand_kernel.h curand_init (Philox): key = seed, counter 0, then
// skipahead_sequence(subsequence) (counter words 2-3) and skipahead(offset) (words 0-1, in
// units of 4 outputs; offset % 4 selects the word).
CurandPhilox4x32::CurandPhilox4x32(uint64_t seed, uint64_t subsequence, uint64_t offset) {
  key_ = {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)};
  increment_hi(subsequence);
  index_ = static_cast<uint32_t>(offset & 3);
  increment(offset / 4);
  output_ = philox4x32_10(ctr_, key_);
}

// Ref: curand_philox4x32_x.h Philox_State_Incr. The carry out of word 1 is as curand writes
// it (compared after the add), kept so that huge offsets land where curand's do.
void CurandPhilox4x32::increment(uint64_t n) {
  const auto nlo = static_cast<uint32_t>(n);
  auto nhi = static_cast<uint32_t>(n >> 32);
  ctr_[0] += nlo;
  if (ctr_[0] < nlo) ++nhi;
  ctr_[1] += nhi;
  if (nhi <= ctr_[1]) return;
  if (++ctr_[2]) return;
  ++ctr_[3];
}

void CurandPhilox4x32::increment_hi(uint64_t n) {
  const auto nlo = static_cast<uint32_t>(n);
  auto nhi = static_cast<uint32_t>(n >> 32);
  ctr_[2] += nlo;
  if (ctr_[2] < nlo) ++nhi;
  ctr_[3] += nhi;
}

void CurandPhilox4x32::increment() {
  for (uint32_t& w : ctr_)
    if (++w) return;
}

uint32_t CurandPhilox4x32::next() {
  const uint32_t r = output_[index_++];
  if (index_ == 4) {
    increment();
    output_ = philox4x32_10(ctr_, key_);
    index_ = 0;
  }
  return r;
}

std::array<uint32_t, 4> CurandPhilox4x32::next4() {
  const PhiloxCounter prev = output_;
  increment();
  output_ = philox4x32_10(ctr_, key_);
  std::array<uint32_t, 4> r;
  for (uint32_t i = 0; i < 4; ++i)
    r[i] = index_ + i < 4 ? prev[index_ + i] : output_[index_ + i - 4];
  return r;
}

std::array<float, 4> CurandPhilox4x32::normal4() {
  const auto x = next4();
  std::array<float, 4> r;
  box_muller(x[0], x[1], &r[0]);
  box_muller(x[2], x[3], &r[2]);
  return r;
}

std::array<float, 4> CurandPhilox4x32::uniform4() {
  const auto x = next4();
  return {uniform_01(x[0]), uniform_01(x[1]), uniform_01(x[2]), uniform_01(x[3])};
}

// Ref: pytorch aten/src/ATen/native/cuda/DistributionTemplates.h calc_execution_policy.
// Worked numbers for an H100 (132 SMs, 2048 threads/SM): blocks_per_sm = 8, grid <= 1056,
// 270,336 threads; a 1x4x64x64 latent (16,384) uses 64 blocks, one element per thread.
PhiloxLaunch philox_launch(int64_t numel, int unroll, const CudaLaunchParams& params) {
  KILN_ARG(numel > 0 && unroll > 0, "philox_launch", "numel ", numel, ", unroll ", unroll);
  KILN_ARG(params.sm_count > 0 && params.max_threads_per_sm >= 256, "philox_launch", "sm_count ",
           params.sm_count, ", max_threads_per_sm ", params.max_threads_per_sm);
  PhiloxLaunch l;
  const auto n = static_cast<uint64_t>(numel);
  const uint64_t blocks = (n + l.block - 1) / l.block;
  const uint64_t blocks_per_sm = static_cast<uint64_t>(params.max_threads_per_sm) / l.block;
  l.grid = static_cast<uint32_t>(
      std::min<uint64_t>(static_cast<uint64_t>(params.sm_count) * blocks_per_sm, blocks));
  l.counter_offset = ((n - 1) / (uint64_t{l.block} * l.grid * unroll) + 1) * 4;
  return l;
}

void PhiloxCudaGenerator::set_offset(uint64_t offset) {
  KILN_ARG(offset % 4 == 0, "PhiloxCudaGenerator::set_offset", "offset ", offset,
           " is not a multiple of 4");
  offset_ = offset;
}

// Ref: DistributionTemplates.h normal_kernel -> normal_and_transform (curand_normal4, unroll 4),
// transform rand * std + mean (fused on the device: fma(r, 1, 0)).
void PhiloxCudaGenerator::randn(std::span<float> out) {
  if (out.empty()) return;
  check_numel(out.size(), "PhiloxCudaGenerator::randn");
  const auto launch = philox_launch(static_cast<int64_t>(out.size()), 4, params_);
  const uint64_t offset = offset_;
  offset_ += launch.counter_offset;
  grid_stride<4>(
      static_cast<int64_t>(out.size()), seed_, offset, launch,
      [](CurandPhilox4x32& s) { return s.normal4(); },
      [&](int64_t i, float r) { out[i] = std::fma(r, 1.0f, 0.0f); });
}

// Ref: DistributionTemplates.h uniform_kernel: curand_uniform4 in (0, 1], rand * range + from,
// and a value equal to `to` (1) is mapped to `from` (0).
void PhiloxCudaGenerator::rand(std::span<float> out) {
  if (out.empty()) return;
  check_numel(out.size(), "PhiloxCudaGenerator::rand");
  const auto launch = philox_launch(static_cast<int64_t>(out.size()), 4, params_);
  const uint64_t offset = offset_;
  offset_ += launch.counter_offset;
  grid_stride<4>(
      static_cast<int64_t>(out.size()), seed_, offset, launch,
      [](CurandPhilox4x32& s) { return s.uniform4(); },
      [&](int64_t i, float r) {
        const float v = std::fma(r, 1.0f, 0.0f);
        out[i] = v == 1.0f ? 0.0f : v;
      });
}

// Ref: DistributionTemplates.h random_full_64_bits_range_kernel: curand4 -> two 64-bit values
// (x << 32 | y, z << 32 | w), unroll 2.
void PhiloxCudaGenerator::random64(std::span<uint64_t> out) {
  if (out.empty()) return;
  check_numel(out.size(), "PhiloxCudaGenerator::random64");
  const auto launch = philox_launch(static_cast<int64_t>(out.size()), 2, params_);
  const uint64_t offset = offset_;
  offset_ += launch.counter_offset;
  grid_stride<2>(
      static_cast<int64_t>(out.size()), seed_, offset, launch,
      [](CurandPhilox4x32& s) {
        const auto x = s.next4();
        return std::array<uint64_t, 2>{(uint64_t{x[0]} << 32) | x[1],
                                       (uint64_t{x[2]} << 32) | x[3]};
      },
      [&](int64_t i, uint64_t r) { out[i] = r; });
}

}  // namespace kiln::rng
