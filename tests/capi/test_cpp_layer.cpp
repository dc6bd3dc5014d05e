// kiln.hpp over the C ABI: bad arguments come back as kiln::Exception with the C status, never
// as another exception type or undefined behaviour on the C++ side.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "kiln/kiln.hpp"

namespace {

template <typename F>
kiln_status status_of(F&& fn) {
  try {
    fn();
  } catch (const kiln::Exception& e) {
    return e.status();
  }
  return KILN_OK;
}

TEST(CppLayer, NegativeImageSizesAreInvalidArguments) {
  kiln::Runtime rt;
  const std::vector<float> data(3 * 2 * 2, 0.f);
  EXPECT_EQ(status_of([&] { rt.image_from_tensor(data, 3, 2, 2, -1.f, 1.f, -1, 4); }),
            KILN_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(status_of([&] { rt.image_from_tensor(data, 3, 2, 2, -1.f, 1.f, 4, -4); }),
            KILN_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(status_of([&] { rt.image_from_tensor(data, 3, 2, 2, -1.f, 1.f, 4, 4); }), KILN_OK);
}

TEST(CppLayer, NoiseShapeErrors) {
  kiln::Runtime rt;
  const kiln_noise_params p = kiln_noise_default_params();
  const std::vector<int64_t> negative{-1, 0}, huge{int64_t{1} << 32, int64_t{1} << 32, 4};
  EXPECT_EQ(status_of([&] { rt.noise(negative, p); }), KILN_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(status_of([&] { rt.noise(huge, p); }), KILN_ERR_INVALID_ARGUMENT);
  const std::vector<int64_t> ok{1, 4, 3, 5};
  EXPECT_EQ(rt.noise(ok, p).size(), 60u);
}

}  // namespace
