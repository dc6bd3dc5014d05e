#include "kiln/core/dtype.hpp"

#include <array>
#include <cmath>
#include <limits>

#include "kiln/core/error.hpp"

namespace kiln {

namespace {
constexpr std::array<DTypeInfo, static_cast<size_t>(DType::count_)> kInfo = {{
    {"f32", "F32", 1, 4, true},
    {"f16", "F16", 1, 2, true},
    {"bf16", "BF16", 1, 2, true},
    {"f8_e4m3", "F8_E4M3", 1, 1, true},
    {"f8_e5m2", "F8_E5M2", 1, 1, true},
    {"i8", "I8", 1, 1, false},
    {"u8", "U8", 1, 1, false},
    {"i32", "I32", 1, 4, false},
    {"i64", "I64", 1, 8, false},
    {"bool", "BOOL", 1, 1, false},
}};
}  // namespace

const DTypeInfo& dtype_info(DType t) {
  auto i = static_cast<size_t>(t);
  KILN_CHECK(i < kInfo.size(), Status::internal, "dtype", "invalid dtype value ", i);
  return kInfo[i];
}

int64_t dtype_nbytes(DType t, int64_t numel) {
  const auto& in = dtype_info(t);
  KILN_ARG(numel >= 0, "dtype", "negative element count ", numel);
  KILN_ARG(numel % in.block_elems == 0, "dtype",
           numel, " elements is not a whole number of ", in.name, " blocks of ", in.block_elems);
  const int64_t blocks = numel / in.block_elems;
  // numel itself fits in int64, its byte size may not (2^62 f32 elements): a wrapped size would
  // allocate a tiny buffer for a huge tensor.
  KILN_ARG(blocks <= std::numeric_limits<int64_t>::max() / in.block_bytes, "dtype", numel, " ",
           in.name, " elements need more than 2^63 bytes");
  return blocks * in.block_bytes;
}

DType parse_dtype(std::string_view s) {
  struct Alias { std::string_view name; DType t; };
  static constexpr Alias kAliases[] = {
      {"float32", DType::f32}, {"float", DType::f32},   {"fp32", DType::f32},
      {"float16", DType::f16}, {"half", DType::f16},    {"fp16", DType::f16},
      {"bfloat16", DType::bf16}, {"float8_e4m3fn", DType::f8_e4m3}, {"fp8_e4m3", DType::f8_e4m3},
      {"float8_e5m2", DType::f8_e5m2}, {"fp8_e5m2", DType::f8_e5m2}, {"int8", DType::i8},
      {"uint8", DType::u8}, {"int32", DType::i32}, {"int64", DType::i64},
  };
  for (size_t i = 0; i < kInfo.size(); ++i)
    if (s == kInfo[i].name || s == kInfo[i].safetensors_name) return static_cast<DType>(i);
  for (const auto& a : kAliases)
    if (s == a.name) return a.t;
  fail(Status::invalid_argument, str("unknown dtype '", s, "'"), "dtype");
}

bool dtype_from_safetensors(std::string_view s, DType* out) {
  for (size_t i = 0; i < kInfo.size(); ++i) {
    if (s == kInfo[i].safetensors_name) {
      *out = static_cast<DType>(i);
      return true;
    }
  }
  return false;
}

float f16_to_f32(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t man = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (man << 13);  // inf / NaN
  } else if (exp != 0) {
    bits = sign | ((exp + 112u) << 23) | (man << 13);
  } else if (man == 0) {
    bits = sign;
  } else {  // subnormal: value = man * 2^-24, exact in f32
    float v = static_cast<float>(man) * 5.9604644775390625e-8f;
    bits = sign | f32_bits(v);
  }
  return f32_from_bits(bits);
}

uint16_t f32_to_f16(float f) {
  uint32_t u = f32_bits(f);
  uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return sign | 0x7e00u;  // NaN
  if (a >= 0x477ff000u) return sign | 0x7c00u;  // >= 65520 rounds to inf
  if (a < 0x38800000u) {  // below 2^-14: subnormal or zero; quantum 2^-24
    float v = f32_from_bits(a) * 16777216.0f;  // exact scaling by 2^24
    return sign | static_cast<uint16_t>(std::nearbyint(v));  // RNE (default rounding mode)
  }
  uint32_t man_odd = (a >> 13) & 1u;
  a += 0xfffu + man_odd - (112u << 23);
  return sign | static_cast<uint16_t>(a >> 13);
}

namespace {

// An fp8 format: E exponent bits, M mantissa bits, bias, and whether it is e4m3 "fn"
// (all-ones exponent is a normal binade; only S.1111.111 is NaN; no inf).
struct F8Format { int e, m, bias; bool fn; };
constexpr F8Format kE4M3{4, 3, 7, true};
constexpr F8Format kE5M2{5, 2, 15, false};

float f8_decode(const F8Format& fmt, uint8_t v) {
  int sign = v >> 7;
  int exp = (v >> fmt.m) & ((1 << fmt.e) - 1);
  int man = v & ((1 << fmt.m) - 1);
  int exp_max = (1 << fmt.e) - 1;
  float r;
  if (fmt.fn && exp == exp_max && man == (1 << fmt.m) - 1) {
    r = std::numeric_limits<float>::quiet_NaN();
  } else if (!fmt.fn && exp == exp_max) {
    r = man == 0 ? std::numeric_limits<float>::infinity() : std::numeric_limits<float>::quiet_NaN();
  } else if (exp == 0) {
    r = std::ldexp(static_cast<float>(man), 1 - fmt.bias - fmt.m);
  } else {
    r = std::ldexp(static_cast<float>((1 << fmt.m) + man), exp - fmt.bias - fmt.m);
  }
  return sign ? -r : r;
}

// Rounds |f| to the format's grid (RNE), treating the code just past the largest finite value
// as reachable; anything that lands past max finite becomes the overflow code.
uint8_t f8_encode(const F8Format& fmt, float f) {
  uint8_t sign = std::signbit(f) ? 0x80 : 0x00;
  if (std::isnan(f)) return sign | 0x7f;  // a NaN code in both formats
  const uint8_t overflow_code = fmt.fn ? 0x7f : 0x7c;  // NaN for e4m3fn, inf for e5m2
  float a = std::fabs(f);
  const int emin = 1 - fmt.bias;
  int e = a > 0 ? std::ilogb(a) : emin;
  if (e < emin) e = emin;
  // Largest exponent reachable: e4m3fn uses the top binade, e5m2 stops one below it.
  const int emax = ((1 << fmt.e) - 1) - fmt.bias - (fmt.fn ? 0 : 1);
  if (e > emax + 1 || std::isinf(a)) return sign | overflow_code;
  float q = std::ldexp(1.0f, e - fmt.m);
  float n = std::nearbyint(a / q);  // exact division by a power of two; RNE
  // value = n * q; n in [0, 2^(m+1)]. Re-normalise into exponent/mantissa.
  int ni = static_cast<int>(n);
  if (ni == 0) return sign;
  int exp_field, man_field;
  if (ni >= (2 << fmt.m)) {  // rounded up into the next binade
    e += 1;
    ni >>= 1;
  }
  if (ni < (1 << fmt.m)) {  // subnormal (only possible at e == emin)
    exp_field = 0;
    man_field = ni;
  } else {
    exp_field = e + fmt.bias;
    man_field = ni - (1 << fmt.m);
  }
  if (e > emax) return sign | overflow_code;
  uint8_t code = static_cast<uint8_t>((exp_field << fmt.m) | man_field);
  if (fmt.fn && code == 0x7f) return sign | overflow_code;  // 480 is not representable
  return sign | code;
}

struct F8Tables {
  float e4m3[256], e5m2[256];
  F8Tables() {
    for (int i = 0; i < 256; ++i) {
      e4m3[i] = f8_decode(kE4M3, static_cast<uint8_t>(i));
      e5m2[i] = f8_decode(kE5M2, static_cast<uint8_t>(i));
    }
  }
};
const F8Tables& f8_tables() {
  static const F8Tables t;
  return t;
}

}  // namespace

float f8e4m3_to_f32(uint8_t v) { return f8_tables().e4m3[v]; }
float f8e5m2_to_f32(uint8_t v) { return f8_tables().e5m2[v]; }
uint8_t f32_to_f8e4m3(float f) { return f8_encode(kE4M3, f); }
uint8_t f32_to_f8e5m2(float f) { return f8_encode(kE5M2, f); }

}  // namespace kiln
