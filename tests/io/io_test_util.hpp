// Helpers shared by the weight-I/O tests: fixture paths, exact value checks against the
// *.expected.json files that tests/reference/make_io_fixtures.py writes, raw file writing.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "kiln/core/copy.hpp"
#include "kiln/core/error.hpp"
#include "kiln/core/tensor.hpp"
#include "test_support.hpp"

namespace kiln::test {

inline std::filesystem::path io_data(const std::string& rel) {
  return data_dir() / "io" / rel;
}

inline nlohmann::json read_json_file(const std::filesystem::path& p) {
  std::ifstream f(p);
  EXPECT_TRUE(f.good()) << p;
  return nlohmann::json::parse(f);
}

inline void write_bytes(const std::filesystem::path& p, const std::string& bytes) {
  std::ofstream f(p, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

inline std::string read_bytes(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// Checks dtype, shape and every value (floats exactly as torch decoded them; integers exactly
// as int64) of `t` against one entry of an expected.json.
inline ::testing::AssertionResult matches_expected(const Tensor& t, const nlohmann::json& e) {
  if (dtype_info(t.dtype()).safetensors_name != e["dtype"].get<std::string>())
    return ::testing::AssertionFailure()
           << "dtype " << dtype_name(t.dtype()) << " vs " << e["dtype"];
  std::vector<int64_t> shape = e["shape"];
  if (!(t.shape() == Shape(std::span<const int64_t>(shape))))
    return ::testing::AssertionFailure() << "shape " << t.shape().str() << " vs " << e["shape"];
  const auto& values = e["values"];
  if (static_cast<int64_t>(values.size()) != t.numel())
    return ::testing::AssertionFailure() << "numel " << t.numel() << " vs " << values.size();
  Tensor c = t.contiguous();
  const char* p = static_cast<const char*>(c.raw_data());
  const int sz = dtype_size(c.dtype());
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (dtype_info(t.dtype()).is_float) {
      double got = load_as_f32(p + i * sz, t.dtype());
      double want = values[i].get<double>();
      if (!(got == want) || std::signbit(got) != std::signbit(want))
        return ::testing::AssertionFailure() << "element " << i << ": " << got << " vs " << want;
    } else {
      int64_t got = load_as_i64(p + i * sz, t.dtype());
      int64_t want = values[i].get<int64_t>();
      if (got != want)
        return ::testing::AssertionFailure() << "element " << i << ": " << got << " vs " << want;
    }
  }
  return ::testing::AssertionSuccess();
}

}  // namespace kiln::test
