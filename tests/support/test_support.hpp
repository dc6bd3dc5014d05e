// Shared test helpers: seeded random tensors, a double-precision comparison, fixture paths,
// error expectations.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "kiln/core/error.hpp"
#include "kiln/core/tensor.hpp"

namespace kiln::test {

// Directory of committed fixtures (tests/data), from the KILN_TEST_DATA environment variable.
std::filesystem::path data_dir();
// Directory of the trained models (models/, e.g. kiln-mini), from the KILN_MODELS environment
// variable.
std::filesystem::path models_dir();
// A fresh temporary directory, removed by the destructor.
struct TempDir {
  TempDir();
  ~TempDir();
  std::filesystem::path path;
};

// Uniform [lo, hi) f32 tensor from a std::mt19937 seeded with `seed`.
Tensor random_tensor(const Shape& shape, uint64_t seed, float lo = -1.f, float hi = 1.f);
// Element values as double, in logical (row-major) order, whatever the strides/dtype.
std::vector<double> to_doubles(const Tensor& t);
// Row-major multi-index of flat position i in `shape`.
std::vector<int64_t> unravel(int64_t i, const Shape& shape);
// Value of a tensor of logical shape `ts` (row-major values `v`) broadcast, numpy style, at
// multi-index `idx` of a larger output: references for broadcasting ops.
double bcast_at(const Shape& ts, const std::vector<double>& v, const std::vector<int64_t>& idx);

struct Diff {
  double max_abs = 0, rel_l2 = 0;  // max |a-b|; ||a-b|| / ||b||
  int64_t nonfinite = 0;           // positions where a is NaN/inf but b is not
};
Diff compare(const Tensor& actual, const std::vector<double>& expected);

// EXPECT that `actual` matches `expected` within `atol + rtol*|expected|` element-wise and has
// no NaN/inf where the reference has none.
::testing::AssertionResult all_close(const Tensor& actual, const std::vector<double>& expected,
                                     double atol, double rtol);

// Runs `fn`; succeeds when it throws a kiln::Error with `status` whose what() contains every
// one of `parts`.
::testing::AssertionResult throws_error(const std::function<void()>& fn, Status status,
                                        const std::vector<std::string>& parts);
// As throws_error, for a kiln::Error of any status.
::testing::AssertionResult throws_any_error(const std::function<void()>& fn,
                                            const std::vector<std::string>& parts);
// EXPECTs that `fn` fails with an invalid_argument kiln::Error mentioning `needle`.
void expect_error(const std::function<void()>& fn, const std::string& needle);
// EXPECTs that `fn` fails with a kiln::Error of `status` mentioning `needle`.
void expect_error(const std::function<void()>& fn, Status status, const std::string& needle);

}  // namespace kiln::test
