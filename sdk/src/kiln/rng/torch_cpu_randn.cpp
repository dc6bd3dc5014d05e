// Compiled with -ffp-contract=off (sdk/CMakeLists.txt): every multiply-add below that torch's
// build fused is written as std::fma, every other one must stay two roundings.
#include "kiln/rng/torch_cpu_randn.hpp"

#include <cmath>
#include <cstring>
#include <numbers>

#include "kiln/core/error.hpp"

namespace kiln::rng {
namespace {

constexpr int kMtN = 624;
constexpr int kMtM = 397;

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float float_of(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// ---- one lane of avx_mathfun.h ------------------------------------------------------------
// Ref: pytorch aten/src/ATen/native/cpu/avx_mathfun.h log256_ps, sincos256_ps (Giovanni
// Garberoglio's AVX port of Julien Pommier's sse_mathfun, itself after Cephes logf/sinf/cosf).
// The constants are double literals narrowed to float, as the _PS256_CONST tables do.
//
// torch's AVX2 objects are built by GCC with -mfma and the default -ffp-contract=fast, so a
// product whose only use is an add/sub became one vfmadd. Which operand pair was fused was
// settled empirically: this lane model reproduces all 2^21 torch 2.15 outputs for seeds 0 and 1
// (n = 2^20 each) only with every Horner step fused, y*z fused with +e*q1 in log, y*z fused with
// -z*0.5 in the cosine polynomial and y2*x fused with +x in the sine polynomial. Products that
// are exact (z*0.5, e*q2, y*DP1, y*DP2) give the same bits either way.

// log(x) for x in [2^-24, 1] (1 - uniform); the x <= 0 / denormal handling of log256_ps never
// triggers here and is reduced to the min_norm_pos clamp.
float log_avx_mathfun(float x) {
  const float min_norm_pos = float_of(0x00800000u);
  if (x < min_norm_pos) x = min_norm_pos;
  const uint32_t ix = bits_of(x);
  const int32_t exponent = static_cast<int32_t>(ix >> 23) - 0x7f;
  x = float_of((ix & ~0x7f800000u) | bits_of(0.5f));  // mantissa in [0.5, 1)
  float e = static_cast<float>(exponent);
  e = e + 1.0f;
  const bool below = x < static_cast<float>(0.707106781186547524);  // cephes_SQRTHF
  const float tmp = below ? x : 0.0f;
  x = x - 1.0f;
  e = e - (below ? 1.0f : 0.0f);
  x = x + tmp;
  const float z = x * x;
  static const float p[9] = {
      static_cast<float>(7.0376836292E-2), static_cast<float>(-1.1514610310E-1),
      static_cast<float>(1.1676998740E-1), static_cast<float>(-1.2420140846E-1),
      static_cast<float>(1.4249322787E-1), static_cast<float>(-1.6668057665E-1),
      static_cast<float>(2.0000714765E-1), static_cast<float>(-2.4999993993E-1),
      static_cast<float>(3.3333331174E-1)};
  float y = p[0];
  for (int k = 1; k < 9; ++k) y = std::fma(y, x, p[k]);
  y = y * x;
  const float q1 = static_cast<float>(-2.12194440e-4);
  const float q2 = static_cast<float>(0.693359375);
  y = std::fma(y, z, e * q1);
  y = std::fma(-z, 0.5f, y);
  x = x + y;
  x = std::fma(e, q2, x);
  return x;
}

// sin and cos of x >= 0 (theta = 2 pi u, u in [0, 1)).
void sincos_avx_mathfun(float xin, float* s, float* c) {
  float x = std::fabs(xin);
  uint32_t sign_sin = bits_of(xin) & 0x80000000u;
  float y = x * static_cast<float>(1.27323954473516);  // 4 / pi
  int32_t j = static_cast<int32_t>(y);                 // cvttps: truncation
  j = (j + 1) & ~1;
  y = static_cast<float>(j);
  const uint32_t swap_sign_sin = static_cast<uint32_t>(j & 4) << 29;
  const bool poly_sin_first = (j & 2) == 0;  // poly_mask
  // Extended-precision reduction x - y * pi/4 in three parts.
  x = std::fma(y, static_cast<float>(-0.78515625), x);
  x = std::fma(y, static_cast<float>(-2.4187564849853515625e-4), x);
  x = std::fma(y, static_cast<float>(-3.77489497744594108e-8), x);
  const uint32_t sign_cos = static_cast<uint32_t>(~(j - 2) & 4) << 29;
  sign_sin ^= swap_sign_sin;

  const float z = x * x;
  float yc = static_cast<float>(2.443315711809948E-005);
  yc = std::fma(yc, z, static_cast<float>(-1.388731625493765E-003));
  yc = std::fma(yc, z, static_cast<float>(4.166664568298827E-002));
  yc = yc * z;
  yc = std::fma(yc, z, -(z * 0.5f));
  yc = yc + 1.0f;

  float ys = static_cast<float>(-1.9515295891E-4);
  ys = std::fma(ys, z, static_cast<float>(8.3321608736E-3));
  ys = std::fma(ys, z, static_cast<float>(-1.6666654611E-1));
  ys = ys * z;
  ys = std::fma(ys, x, x);

  // Select per lane, with the same adds of +0 the masked blend does.
  const float ysin2 = poly_sin_first ? ys : 0.0f;
  const float ysin1 = poly_sin_first ? 0.0f : yc;
  ys = ys - ysin2;
  yc = yc - ysin1;
  *s = float_of(bits_of(ysin1 + ysin2) ^ sign_sin);
  *c = float_of(bits_of(yc + ys) ^ sign_cos);
}

// Ref: pytorch aten/src/ATen/native/cpu/DistributionTemplates.h normal_fill_16_AVX2 (mean 0,
// std 1: the final _mm256_fmadd_ps(n, std, mean) is kept for its -0 -> +0).
void normal_fill_16_avx2(float* data) {
  const float two_pi = static_cast<float>(2.0f * std::numbers::pi);
  float out[16];
  for (int j = 0; j < 8; ++j) {
    const float u1 = 1.0f - data[j];
    const float u2 = data[j + 8];
    const float radius = std::sqrt(-2.0f * log_avx_mathfun(u1));
    const float theta = two_pi * u2;
    float sin_t, cos_t;
    sincos_avx_mathfun(theta, &sin_t, &cos_t);
    out[j] = std::fma(radius * cos_t, 1.0f, 0.0f);
    out[j + 8] = std::fma(radius * sin_t, 1.0f, 0.0f);
  }
  std::memcpy(data, out, sizeof(out));
}

// Ref: pytorch aten/src/ATen/native/cpu/DistributionTemplates.h normal_fill_16 (scalar_t =
// float). theta is computed in double (2.0f * c10::pi<double> * u2) and narrowed.
void normal_fill_16_scalar(float* data) {
  for (int j = 0; j < 8; ++j) {
    const float u1 = 1 - data[j];
    const float u2 = data[j + 8];
    const float radius = std::sqrt(-2 * std::log(u1));
    const float theta = static_cast<float>(2.0f * std::numbers::pi * u2);
    data[j] = radius * std::cos(theta) * 1.0f + 0.0f;
    data[j + 8] = radius * std::sin(theta) * 1.0f + 0.0f;
  }
}

}  // namespace

// MT19937 seeding and generation as published by Matsumoto & Nishimura (1998), the stream of
// std::mt19937 and at::mt19937 (which seeds with seed & 0xffffffff).
void TorchCpuGenerator::manual_seed(uint64_t seed) {
  s_.seed = seed;
  s_.mt[0] = static_cast<uint32_t>(seed);
  for (uint32_t i = 1; i < kMtN; ++i)
    s_.mt[i] = 1812433253u * (s_.mt[i - 1] ^ (s_.mt[i - 1] >> 30)) + i;
  s_.mt_index = kMtN;
  s_.next_double_normal.reset();
}

void TorchCpuGenerator::set_state(const State& s) {
  KILN_ARG(s.mt_index <= kMtN, "TorchCpuGenerator::set_state", "mt_index ", s.mt_index,
           " is out of range [0, 624]");
  s_ = s;
}

void TorchCpuGenerator::twist() {
  auto& mt = s_.mt;
  for (int i = 0; i < kMtN; ++i) {
    const uint32_t y = (mt[i] & 0x80000000u) | (mt[(i + 1) % kMtN] & 0x7fffffffu);
    mt[i] = mt[(i + kMtM) % kMtN] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
  }
  s_.mt_index = 0;
}

uint32_t TorchCpuGenerator::random() {
  if (s_.mt_index >= kMtN) twist();
  uint32_t y = s_.mt[s_.mt_index++];
  y ^= y >> 11;
  y ^= (y << 7) & 0x9d2c5680u;
  y ^= (y << 15) & 0xefc60000u;
  y ^= y >> 18;
  return y;
}

uint64_t TorchCpuGenerator::random64() {
  const uint64_t hi = random();
  const uint64_t lo = random();
  return (hi << 32) | lo;
}

void TorchCpuGenerator::rand(std::span<float> out) {
  // (x & (2^24 - 1)) * 2^-24 is exact in float; "* (to - from) + from" with [0, 1) is identity.
  for (float& v : out) v = static_cast<float>(random() & 0xffffffu) * 0x1p-24f;
}

double TorchCpuGenerator::normal_double() {
  if (s_.next_double_normal) {
    const double cached = *s_.next_double_normal;
    s_.next_double_normal.reset();
    return cached;
  }
  const double u1 = static_cast<double>(random64() & ((uint64_t{1} << 53) - 1)) * 0x1p-53;
  const double u2 = static_cast<double>(random64() & ((uint64_t{1} << 53) - 1)) * 0x1p-53;
  const double r = std::sqrt(-2.0 * std::log1p(-u2));
  const double theta = 2.0 * std::numbers::pi * u1;
  s_.next_double_normal = r * std::sin(theta);
  return r * std::cos(theta);
}

void TorchCpuGenerator::randn(std::span<float> out, TorchCpuKernel kernel) {
  const int64_t size = static_cast<int64_t>(out.size());
  if (size < 16) {
    // Ref: DistributionTemplates.h normal_kernel: cpu_serial_kernel over normal_distribution
    // <double>, then transformation::normal (x * std + mean) and a cast to float.
    for (float& v : out) v = static_cast<float>(normal_double() * 1.0 + 0.0);
    return;
  }
  auto fill16 = kernel == TorchCpuKernel::avx2 ? normal_fill_16_avx2 : normal_fill_16_scalar;
  float* data = out.data();
  rand(out);
  for (int64_t i = 0; i + 16 <= size; i += 16) fill16(data + i);
  if (size % 16 != 0) {
    // The tail is recomputed from 16 fresh uniforms, overwriting the last full block's end.
    float* last = data + size - 16;
    rand(std::span<float>(last, 16));
    fill16(last);
  }
}

}  // namespace kiln::rng
