#include "pipeline_test_util.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <utility>
#include <vector>

#include "kiln/ops/ops.hpp"

namespace kiln::test {

Tensor postprocess_image(const Tensor& img) {
  Tensor hwc = ops::scale(img, 0.5f, 0.5f).permute({0, 2, 3, 1}).contiguous();
  float* p = hwc.mutable_data<float>();
  for (int64_t i = 0; i < hwc.numel(); ++i) p[i] = std::fmin(std::fmax(p[i], 0.f), 1.f);
  return hwc;
}

double psnr(const Tensor& a, const Tensor& b) {
  auto x = to_doubles(a), y = to_doubles(b);
  double mse = 0;
  for (size_t i = 0; i < x.size(); ++i) mse += (x[i] - y[i]) * (x[i] - y[i]);
  mse /= static_cast<double>(x.size());
  return mse == 0 ? 200.0 : 10.0 * std::log10(1.0 / mse);
}

double golden_psnr(const Tensor& decoded, const Tensor& golden) {
  const Tensor img = postprocess_image(decoded);
  EXPECT_EQ(img.shape(), golden.shape());
  return img.shape() == golden.shape() ? psnr(img, golden) : 0.0;
}

const char* sampler_for_scheduler(const std::string& diffusers_class) {
  if (diffusers_class == "EulerDiscreteScheduler") return "euler";
  if (diffusers_class == "EulerAncestralDiscreteScheduler") return "euler_a";
  if (diffusers_class == "DDIMScheduler") return "ddim";
  if (diffusers_class == "DPMSolverMultistepScheduler") return "dpmpp_2m";
  return "unknown";
}

::testing::AssertionResult matches_golden(const Tensor& actual, const Tensor& golden,
                                          const std::string& name, double tol) {
  if (!(actual.shape() == golden.shape()))
    return ::testing::AssertionFailure()
           << name << ": shape " << actual.shape().str() << " vs " << golden.shape().str();
  const Diff d = compare(actual, to_doubles(golden));
  ::testing::Test::RecordProperty(name, str(d.rel_l2));  // --gtest_output=xml
  if (d.nonfinite > 0 || !(d.rel_l2 <= tol))
    return ::testing::AssertionFailure() << name << ": rel L2 " << d.rel_l2 << ", max abs "
                                         << d.max_abs << ", nonfinite " << d.nonfinite;
  std::printf("  %-36s rel L2 %.2e  max abs %.2e\n", name.c_str(), d.rel_l2, d.max_abs);
  return ::testing::AssertionSuccess();
}

nlohmann::json read_json(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("missing " + path.string());
  return nlohmann::json::parse(in);
}

void write_file(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
}

std::filesystem::path copy_fixture(const TempDir& tmp, const std::string& name,
                                   const std::string& as) {
  const auto dst = tmp.path / (as.empty() ? name : as);
  std::filesystem::copy(data_dir() / name, dst, std::filesystem::copy_options::recursive);
  return dst;
}

std::string escape_controls(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7F)
      out += str("\\x", std::hex, static_cast<int>(c));
    else
      out += static_cast<char>(c);
  }
  return out;
}

void expect_key_tree(io::Module& model, const nlohmann::json& want) {
  std::vector<std::pair<std::string, std::string>> lines;
  int64_t params = 0;
  for (const auto& p : io::collect_params(model)) {
    std::string dims;
    for (int i = 0; i < p.shape.size(); ++i) {  // append(): GCC 12 -Wrestrict false positive
      if (i) dims.append(",");
      dims.append(std::to_string(p.shape[i]));
    }
    lines.emplace_back(p.name, dims);
    params += shape_numel(p.shape);
  }
  std::sort(lines.begin(), lines.end());
  uint64_t h = 0xCBF29CE484222325ull;  // FNV-1a 64
  for (const auto& [key, dims] : lines) {
    std::string line = key;
    line.append(" ").append(dims).append("\n");
    for (char ch : line) h = (h ^ static_cast<uint8_t>(ch)) * 0x100000001B3ull;
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  EXPECT_EQ(static_cast<int64_t>(lines.size()), want["keys"].get<int64_t>());
  EXPECT_EQ(params, want["params"].get<int64_t>());
  EXPECT_EQ(std::string(hex), want["fnv1a64"].get<std::string>());
}

}  // namespace kiln::test
