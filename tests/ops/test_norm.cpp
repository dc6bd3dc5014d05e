// Normalization ops vs double-precision references. Outputs are O(1..4) values computed from
// double statistics with a final f32 multiply-add, so a few f32 roundings: atol 2e-6,
// rtol 1e-6.
#include <cmath>
#include <string>
#include <vector>

#include "kiln/ops/ops.hpp"
#include "test_support.hpp"

namespace kiln {
namespace {

constexpr double kAtol = 2e-6, kRtol = 1e-6;

std::vector<double> group_norm_ref(const Tensor& x, int G, const Tensor& w, const Tensor& b,
                                   double eps) {
  const auto v = test::to_doubles(x);
  const auto wv = w.defined() ? test::to_doubles(w) : std::vector<double>{};
  const auto bv = b.defined() ? test::to_doubles(b) : std::vector<double>{};
  const int64_t N = x.size(0), C = x.size(1), S = x.numel() / (N * C), cpg = C / G;
  std::vector<double> r(v.size());
  for (int64_t n = 0; n < N; ++n)
    for (int64_t g = 0; g < G; ++g) {
      const int64_t base = (n * C + g * cpg) * S, cnt = cpg * S;
      double mean = 0, var = 0;
      for (int64_t i = 0; i < cnt; ++i) mean += v[base + i];
      mean /= cnt;
      for (int64_t i = 0; i < cnt; ++i) var += (v[base + i] - mean) * (v[base + i] - mean);
      var /= cnt;
      for (int64_t i = 0; i < cnt; ++i) {
        const int64_t c = g * cpg + i / S;
        double y = (v[base + i] - mean) / std::sqrt(var + eps);
        if (w.defined()) y *= wv[c];
        if (b.defined()) y += bv[c];
        r[base + i] = y;
      }
    }
  return r;
}

// Row-wise over the last dim: layer (rms = false) or RMS norm.
std::vector<double> last_dim_ref(const Tensor& x, const Tensor& w, const Tensor& b, double eps,
                                 bool rms) {
  const auto v = test::to_doubles(x);
  const auto wv = w.defined() ? test::to_doubles(w) : std::vector<double>{};
  const auto bv = b.defined() ? test::to_doubles(b) : std::vector<double>{};
  const int64_t D = x.size(-1), rows = x.numel() / D;
  std::vector<double> r(v.size());
  for (int64_t row = 0; row < rows; ++row) {
    const double* p = v.data() + row * D;
    double mean = 0, ms = 0;
    for (int64_t i = 0; i < D; ++i) mean += p[i];
    mean /= D;
    for (int64_t i = 0; i < D; ++i) ms += rms ? p[i] * p[i] : (p[i] - mean) * (p[i] - mean);
    ms /= D;
    for (int64_t i = 0; i < D; ++i) {
      double y = (rms ? p[i] : p[i] - mean) / std::sqrt(ms + eps);
      if (w.defined()) y *= wv[i];
      if (b.defined()) y += bv[i];
      r[row * D + i] = y;
    }
  }
  return r;
}

TEST(Norm, GroupNorm) {
  struct C {
    Shape shape;
    int groups;
  };
  for (const C& c : {C{{2, 6, 7, 31}, 3}, C{{1, 33, 77}, 1}, C{{3, 12}, 4}, C{{1, 7, 3, 5, 4}, 7},
                     C{{2, 32, 33, 31}, 32}}) {
    SCOPED_TRACE(c.shape.str());
    const int64_t Cn = c.shape[1];
    const Tensor x = test::random_tensor(c.shape, 1 + Cn, -2.f, 3.f);  // mean != 0
    const Tensor w = test::random_tensor({Cn}, 2, 0.5f, 1.5f), b = test::random_tensor({Cn}, 3);
    EXPECT_TRUE(test::all_close(ops::group_norm(x, c.groups, w, b, 1e-5f),
                                group_norm_ref(x, c.groups, w, b, 1e-5), kAtol, kRtol));
    EXPECT_TRUE(test::all_close(ops::group_norm(x, c.groups, {}, {}, 1e-6f),
                                group_norm_ref(x, c.groups, {}, {}, 1e-6), kAtol, kRtol));
    EXPECT_TRUE(test::all_close(ops::group_norm(x, c.groups, w, {}, 1e-5f),
                                group_norm_ref(x, c.groups, w, {}, 1e-5), kAtol, kRtol));
  }
}

// The SD VAE case: 32 groups over (1, 512, 64, 64), i.e. 65536 values per group, with a large
// common offset (mean 100, std ~0.3) where a naive f32 E[x^2] - E[x]^2 would lose every digit.
TEST(Norm, GroupNormLargeGroupsStayAccurate) {
  const Tensor x = ops::scale(test::random_tensor({1, 512, 64, 64}, 7), 0.5f, 100.f);
  const Tensor w = test::random_tensor({512}, 8, 0.5f, 1.5f), b = test::random_tensor({512}, 9);
  // The reference sees the same f32 inputs, so the usual tolerance applies: only the centring
  // (x - mean) must not round at the scale of 100.
  EXPECT_TRUE(test::all_close(ops::group_norm(x, 32, w, b, 1e-6f),
                              group_norm_ref(x, 32, w, b, 1e-6), kAtol, kRtol));
  const Tensor y = ops::scale(test::random_tensor({3, 4097}, 10), 0.5f, 100.f);
  EXPECT_TRUE(test::all_close(ops::layer_norm(y, {}, {}, 1e-6f),
                              last_dim_ref(y, {}, {}, 1e-6, false), kAtol, kRtol));
}

TEST(Norm, LayerNorm) {
  for (const Shape& s : {Shape{1}, Shape{3, 7}, Shape{2, 33, 77}, Shape{3, 4097}, Shape{31, 1}}) {
    SCOPED_TRACE(s.str());
    const int64_t D = s.back();
    const Tensor x = test::random_tensor(s, 20 + D, -1.f, 3.f);
    const Tensor w = test::random_tensor({D}, 21, 0.5f, 1.5f), b = test::random_tensor({D}, 22);
    EXPECT_TRUE(test::all_close(ops::layer_norm(x, w, b, 1e-5f), last_dim_ref(x, w, b, 1e-5, false),
                                kAtol, kRtol));
    EXPECT_TRUE(test::all_close(ops::layer_norm(x, {}, {}, 1e-6f),
                                last_dim_ref(x, {}, {}, 1e-6, false), kAtol, kRtol));
  }
  // Strided input (a transposed view) normalises its logical last dim.
  const Tensor t = test::random_tensor({77, 33}, 25).transpose(0, 1);
  EXPECT_TRUE(test::all_close(ops::layer_norm(t, {}, {}, 1e-5f),
                              last_dim_ref(t, {}, {}, 1e-5, false), kAtol, kRtol));
}

TEST(Norm, RmsNorm) {
  for (const Shape& s :
       {Shape{1}, Shape{3, 7}, Shape{2, 33, 77}, Shape{3, 4097}, Shape{2, 31, 128}}) {
    SCOPED_TRACE(s.str());
    const int64_t D = s.back();
    const Tensor x = test::random_tensor(s, 30 + D, -1.f, 2.f);
    const Tensor w = test::random_tensor({D}, 31, 0.5f, 1.5f);
    EXPECT_TRUE(test::all_close(ops::rms_norm(x, w, 1e-6f), last_dim_ref(x, w, {}, 1e-6, true),
                                kAtol, kRtol));
    EXPECT_TRUE(test::all_close(ops::rms_norm(x, {}, 1e-5f), last_dim_ref(x, {}, {}, 1e-5, true),
                                kAtol, kRtol));
  }
}

using test::expect_error;

TEST(Norm, Validation) {
  const Tensor x = test::random_tensor({2, 6, 5}, 1);
  expect_error([&] { ops::group_norm(x, 4, {}, {}, 1e-5f); }, "[group_norm] groups = 4");
  expect_error([&] { ops::group_norm(x, 3, test::random_tensor({5}, 2), {}, 1e-5f); },
               "[group_norm] weight has shape (5)");
  expect_error([&] { ops::group_norm(test::random_tensor({6}, 3), 3, {}, {}, 1e-5f); },
               "[group_norm] x has shape (6)");
  expect_error([&] { ops::layer_norm(x, {}, test::random_tensor({6}, 4), 1e-5f); },
               "[layer_norm] bias has shape (6)");
  expect_error([&] { ops::rms_norm(x, Tensor::zeros({5}, DType::i32), 1e-5f); },
               "[rms_norm] weight is i32");
}

}  // namespace
}  // namespace kiln
