#include <gtest/gtest.h>

#include <cmath>

#include "kiln/core/dtype.hpp"
#include "kiln/core/error.hpp"

using namespace kiln;

TEST(DType, HalfConversionIsExactOnEveryBitPattern) {
  // Every finite f16 value converts to f32 and back unchanged.
  for (uint32_t h = 0; h < 0x10000; ++h) {
    float f = f16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(f32_to_f16(f), h) << "pattern " << h;
  }
}

TEST(DType, HalfRoundsToNearestEven) {
  // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties to even (1).
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.f, -11)), 0x3c00);
  // 1 + 3*2^-11 is halfway between 1+2^-10 (odd) and 1+2^-9 (even).
  EXPECT_EQ(f32_to_f16(1.0f + 3 * std::ldexp(1.f, -11)), 0x3c02);
  EXPECT_EQ(f32_to_f16(65520.f), 0x7c00);  // rounds to inf
  EXPECT_EQ(f32_to_f16(65519.f), 0x7bff);
  EXPECT_EQ(f32_to_f16(std::ldexp(1.f, -25)), 0x0000);            // tie -> even (0)
  EXPECT_EQ(f32_to_f16(std::ldexp(1.5f, -25)), 0x0001);
}

TEST(DType, BFloat16RoundTripAndRounding) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    float f = bf16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(f32_to_bf16(f), h);
  }
  EXPECT_EQ(f32_to_bf16(f32_from_bits(0x3f808000u)), 0x3f80);  // tie -> even
  EXPECT_EQ(f32_to_bf16(f32_from_bits(0x3f818000u)), 0x3f82);
}

TEST(DType, Fp8RoundTripsAndTorchOverflowRules) {
  for (int v = 0; v < 256; ++v) {
    float a = f8e4m3_to_f32(static_cast<uint8_t>(v));
    if (!std::isnan(a)) {
      ASSERT_EQ(f32_to_f8e4m3(a), v) << v;
    }
    float b = f8e5m2_to_f32(static_cast<uint8_t>(v));
    if (!std::isnan(b)) {
      ASSERT_EQ(f32_to_f8e5m2(b), v) << v;
    }
  }
  EXPECT_EQ(f8e4m3_to_f32(0x7e), 448.f);
  EXPECT_TRUE(std::isnan(f8e4m3_to_f32(0x7f)));
  EXPECT_EQ(f32_to_f8e4m3(464.f), 0x7e);  // tie rounds to even (448)
  EXPECT_EQ(f32_to_f8e4m3(470.f), 0x7f);  // past it: NaN, as torch
  EXPECT_EQ(f32_to_f8e4m3(-1000.f), 0xff);
  EXPECT_EQ(f8e5m2_to_f32(0x7b), 57344.f);
  EXPECT_TRUE(std::isinf(f8e5m2_to_f32(0x7c)));
  EXPECT_EQ(f32_to_f8e5m2(1e6f), 0x7c);
  EXPECT_EQ(f8e4m3_to_f32(0x01), std::ldexp(1.f, -9));  // smallest subnormal
}

TEST(DType, ParsesAllSpellings) {
  EXPECT_EQ(parse_dtype("bf16"), DType::bf16);
  EXPECT_EQ(parse_dtype("BF16"), DType::bf16);
  EXPECT_EQ(parse_dtype("bfloat16"), DType::bf16);
  EXPECT_EQ(parse_dtype("float8_e4m3fn"), DType::f8_e4m3);
  EXPECT_THROW(parse_dtype("f12"), Error);
  EXPECT_EQ(dtype_nbytes(DType::f16, 7), 14);
}
