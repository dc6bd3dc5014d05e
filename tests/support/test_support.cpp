#include "test_support.hpp"

#include <cmath>
#include <cstdlib>
#include <sstream>

#include "kiln/core/copy.hpp"

namespace kiln::test {

std::filesystem::path data_dir() {
  const char* d = std::getenv("KILN_TEST_DATA");
  return d ? std::filesystem::path(d) : std::filesystem::path("tests/data");
}

std::filesystem::path models_dir() {
  const char* d = std::getenv("KILN_MODELS");
  return d ? std::filesystem::path(d) : std::filesystem::path("models");
}

TempDir::TempDir() {
  std::random_device rd;
  path = std::filesystem::temp_directory_path() / ("kiln-test-" + std::to_string(rd()));
  std::filesystem::create_directories(path);
}
TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
}

Tensor random_tensor(const Shape& shape, uint64_t seed, float lo, float hi) {
  Tensor t = Tensor::empty(shape, DType::f32);
  std::mt19937 gen(static_cast<uint32_t>(seed));
  std::uniform_real_distribution<float> d(lo, hi);
  float* p = t.mutable_data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = d(gen);
  return t;
}

std::vector<int64_t> unravel(int64_t i, const Shape& shape) {
  std::vector<int64_t> idx(static_cast<size_t>(shape.size()));
  for (int d = shape.size() - 1; d >= 0; --d) {
    idx[d] = i % shape[d];
    i /= shape[d];
  }
  return idx;
}

double bcast_at(const Shape& ts, const std::vector<double>& v, const std::vector<int64_t>& idx) {
  int64_t flat = 0;
  const int lead = static_cast<int>(idx.size()) - ts.size();
  for (int d = 0; d < ts.size(); ++d) flat = flat * ts[d] + (ts[d] == 1 ? 0 : idx[lead + d]);
  return v[static_cast<size_t>(flat)];
}

std::vector<double> to_doubles(const Tensor& t) {
  Tensor c = t.to(Device::cpu()).contiguous();
  std::vector<double> out(static_cast<size_t>(c.numel()));
  const char* p = static_cast<const char*>(c.raw_data());
  int sz = dtype_size(c.dtype());
  for (int64_t i = 0; i < c.numel(); ++i) out[i] = load_as_f32(p + i * sz, c.dtype());
  return out;
}

Diff compare(const Tensor& actual, const std::vector<double>& expected) {
  std::vector<double> a = to_doubles(actual);
  Diff d;
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size() && i < expected.size(); ++i) {
    if (!std::isfinite(a[i]) && std::isfinite(expected[i])) ++d.nonfinite;
    double e = std::fabs(a[i] - expected[i]);
    if (e > d.max_abs) d.max_abs = e;
    num += e * e;
    den += expected[i] * expected[i];
  }
  d.rel_l2 = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
  return d;
}

::testing::AssertionResult all_close(const Tensor& actual, const std::vector<double>& expected,
                                     double atol, double rtol) {
  if (actual.numel() != static_cast<int64_t>(expected.size()))
    return ::testing::AssertionFailure() << "size " << actual.numel() << " vs expected "
                                         << expected.size();
  std::vector<double> a = to_doubles(actual);
  int64_t bad = 0, first = -1;
  for (size_t i = 0; i < a.size(); ++i) {
    bool ok = std::isfinite(expected[i])
                  ? std::isfinite(a[i]) && std::fabs(a[i] - expected[i]) <= atol + rtol * std::fabs(expected[i])
                  : (std::isnan(expected[i]) ? std::isnan(a[i]) : a[i] == expected[i]);
    if (!ok) {
      if (first < 0) first = static_cast<int64_t>(i);
      ++bad;
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  Diff d = compare(actual, expected);
  return ::testing::AssertionFailure()
         << bad << " of " << a.size() << " elements out of tolerance (atol " << atol << ", rtol "
         << rtol << "); first at " << first << ": got " << a[first] << ", expected "
         << expected[first] << "; max abs err " << d.max_abs << ", rel L2 " << d.rel_l2;
}

::testing::AssertionResult throws_error(const std::function<void()>& fn, Status status,
                                        const std::vector<std::string>& parts) {
  try {
    fn();
  } catch (const Error& e) {
    if (e.code() != status)
      return ::testing::AssertionFailure() << "status " << status_name(e.code()) << ", expected "
                                           << status_name(status) << ": " << e.what();
    for (const auto& p : parts)
      if (std::string(e.what()).find(p) == std::string::npos)
        return ::testing::AssertionFailure() << "message lacks \"" << p << "\": " << e.what();
    return ::testing::AssertionSuccess();
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "non-kiln exception: " << e.what();
  }
  return ::testing::AssertionFailure() << "no exception";
}

::testing::AssertionResult throws_any_error(const std::function<void()>& fn,
                                            const std::vector<std::string>& parts) {
  try {
    fn();
  } catch (const Error& e) {
    return throws_error([&] { throw e; }, e.code(), parts);
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "non-kiln exception: " << e.what();
  }
  return ::testing::AssertionFailure() << "no exception";
}

void expect_error(const std::function<void()>& fn, const std::string& needle) {
  EXPECT_TRUE(throws_error(fn, Status::invalid_argument, {needle}));
}

void expect_error(const std::function<void()>& fn, Status status, const std::string& needle) {
  EXPECT_TRUE(throws_error(fn, status, {needle}));
}

}  // namespace kiln::test
