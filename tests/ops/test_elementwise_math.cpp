// Float math (exp, sqrt, sin, cos), clamp, compare and where vs double-precision references on
// awkward sizes and strided views. Tolerances: libm's float exp/sin/cos are within ~1-2 ulp of
// the exact value (rtol 3e-7 covers 2 ulp, atol 1e-7 the sin/cos zeros); sqrt is correctly
// rounded (half an ulp, rtol 6e-8); clamp, compare and where only select values, so they are
// exact. The ops are f32-only (ops.hpp: activations are f32), so f16/bf16 inputs must be refused.
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "kiln/ops/ops.hpp"
#include "test_support.hpp"

namespace kiln {
namespace {

// Inputs: a contiguous tensor of each awkward size, a transposed view and a stepped slice.
std::vector<Tensor> inputs(uint64_t seed, float lo, float hi) {
  std::vector<Tensor> xs;
  for (const Shape& s : {Shape{}, Shape{1}, Shape{31}, Shape{33, 77}, Shape{3, 4097}})
    xs.push_back(test::random_tensor(s, seed++, lo, hi));
  xs.push_back(test::random_tensor({31, 7}, seed++, lo, hi).transpose(0, 1));     // (7, 31)
  xs.push_back(test::random_tensor({5, 66}, seed++, lo, hi).slice(1, 1, 66, 3));  // (5, 22)
  xs.push_back(test::random_tensor({2, 9, 4}, seed, lo, hi).permute({2, 0, 1}));  // (4, 2, 9)
  return xs;
}

void check_map(const char* name, const std::function<Tensor(const Tensor&)>& fn,
               const std::function<double(double)>& ref, double atol, double rtol, float lo,
               float hi) {
  for (const Tensor& x : inputs(100, lo, hi)) {
    SCOPED_TRACE(::testing::Message()
                 << name << " " << x.shape().str() << (x.is_contiguous() ? "" : " strided"));
    const auto xv = test::to_doubles(x);
    std::vector<double> r(xv.size());
    for (size_t i = 0; i < xv.size(); ++i) r[i] = ref(xv[i]);
    const Tensor out = fn(x);
    ASSERT_EQ(out.shape(), x.shape());
    ASSERT_TRUE(out.is_contiguous());
    EXPECT_TRUE(test::all_close(out, r, atol, rtol));
  }
}

TEST(ElementwiseMath, FloatMath) {
  check_map(
      "exp", [](const Tensor& x) { return ops::exp(x); }, [](double v) { return std::exp(v); }, 0,
      3e-7, -30.f, 20.f);
  check_map(
      "sqrt", [](const Tensor& x) { return ops::sqrt(x); }, [](double v) { return std::sqrt(v); },
      0, 6e-8, 0.f, 100.f);
  check_map(
      "sin", [](const Tensor& x) { return ops::sin(x); }, [](double v) { return std::sin(v); },
      1e-7, 3e-7, -10.f, 10.f);
  check_map(
      "cos", [](const Tensor& x) { return ops::cos(x); }, [](double v) { return std::cos(v); },
      1e-7, 3e-7, -10.f, 10.f);
}

TEST(ElementwiseMath, FloatMathEdges) {
  const float inf = std::numeric_limits<float>::infinity();
  const Tensor x = Tensor::from_f32({5}, {-inf, -100.f, 0.f, 89.f, inf});
  const auto e = test::to_doubles(ops::exp(x));
  EXPECT_EQ(e[0], 0.0);
  EXPECT_EQ(e[2], 1.0);
  EXPECT_EQ(e[3], inf);  // f32 overflow, as torch.exp
  EXPECT_EQ(e[4], inf);
  EXPECT_TRUE(std::isnan(test::to_doubles(ops::sqrt(Tensor::from_f32({1}, {-1.f})))[0]));
}

TEST(ElementwiseMath, Clamp) {
  auto ref = [](std::optional<double> lo, std::optional<double> hi) {
    return [=](double v) {
      if (lo && v < *lo) v = *lo;
      if (hi && v > *hi) v = *hi;
      return v;
    };
  };
  check_map(
      "clamp", [](const Tensor& x) { return ops::clamp(x, -0.25f, 0.5f); }, ref(-0.25, 0.5), 0, 0,
      -1.f, 1.f);
  check_map(
      "clamp_lo", [](const Tensor& x) { return ops::clamp(x, -0.25f, std::nullopt); },
      ref(-0.25, std::nullopt), 0, 0, -1.f, 1.f);
  check_map(
      "clamp_hi", [](const Tensor& x) { return ops::clamp(x, std::nullopt, 0.5f); },
      ref(std::nullopt, 0.5), 0, 0, -1.f, 1.f);
  // lo > hi: torch gives hi everywhere.
  check_map(
      "clamp_crossed", [](const Tensor& x) { return ops::clamp(x, 0.5f, -0.5f); },
      [](double) { return -0.5; }, 0, 0, -1.f, 1.f);
  // NaN passes through, infinities are clamped.
  const float nan = std::numeric_limits<float>::quiet_NaN(),
              inf = std::numeric_limits<float>::infinity();
  const auto c = test::to_doubles(ops::clamp(Tensor::from_f32({3}, {nan, -inf, inf}), -30.f, 20.f));
  EXPECT_TRUE(std::isnan(c[0]));
  EXPECT_EQ(c[1], -30.0);
  EXPECT_EQ(c[2], 20.0);
}

TEST(ElementwiseMath, Compare) {
  struct Case {
    ops::Cmp cmp;
    const char* name;
    bool (*ref)(double, double);
  };
  const Case cases[] = {
      {ops::Cmp::eq, "eq", [](double a, double b) { return a == b; }},
      {ops::Cmp::ne, "ne", [](double a, double b) { return a != b; }},
      {ops::Cmp::lt, "lt", [](double a, double b) { return a < b; }},
      {ops::Cmp::le, "le", [](double a, double b) { return a <= b; }},
      {ops::Cmp::gt, "gt", [](double a, double b) { return a > b; }},
      {ops::Cmp::ge, "ge", [](double a, double b) { return a >= b; }},
  };
  // Values on a grid of quarters, so that equality with the threshold occurs; contiguous and
  // strided views.
  const auto quarters = [](const Shape& s, uint64_t seed) {
    std::vector<float> v;
    for (double d : test::to_doubles(test::random_tensor(s, seed, -4.f, 4.f)))
      v.push_back(static_cast<float>(std::floor(d * 4) / 4));
    return Tensor::from_f32(s, v);
  };
  const std::vector<Tensor> xs = {quarters({1}, 201), quarters({31}, 202), quarters({3, 4097}, 203),
                                  quarters({31, 7}, 204).transpose(0, 1),
                                  quarters({5, 66}, 205).slice(1, 1, 66, 3)};
  for (const Case& c : cases)
    for (const Tensor& x : xs) {
      SCOPED_TRACE(::testing::Message() << c.name << " " << x.shape().str());
      const auto xv = test::to_doubles(x);
      std::vector<double> r(xv.size());
      for (size_t i = 0; i < xv.size(); ++i) r[i] = c.ref(xv[i], 0.5) ? 1.0 : 0.0;
      EXPECT_TRUE(test::all_close(ops::compare(x, c.cmp, 0.5f), r, 0, 0));
    }
  // Strided input: same mask as its contiguous copy.
  const Tensor t = test::random_tensor({31, 7}, 210).transpose(0, 1);
  EXPECT_TRUE(test::all_close(ops::compare(t, ops::Cmp::ge, 0.f),
                              test::to_doubles(ops::compare(t.contiguous(), ops::Cmp::ge, 0.f)), 0,
                              0));
  // NaN compares false, except ne.
  const Tensor n = Tensor::from_f32({1}, {std::numeric_limits<float>::quiet_NaN()});
  EXPECT_EQ(test::to_doubles(ops::compare(n, ops::Cmp::ge, 0.5f))[0], 0.0);
  EXPECT_EQ(test::to_doubles(ops::compare(n, ops::Cmp::lt, 0.5f))[0], 0.0);
  EXPECT_EQ(test::to_doubles(ops::compare(n, ops::Cmp::ne, 0.5f))[0], 1.0);
}

void check_where(const Tensor& cond, const Tensor& a, const Tensor& b, const Shape& expect) {
  SCOPED_TRACE(::testing::Message()
               << cond.shape().str() << " " << a.shape().str() << " " << b.shape().str());
  const Tensor out = ops::where(cond, a, b);
  ASSERT_EQ(out.shape(), expect);
  const auto cv = test::to_doubles(cond), av = test::to_doubles(a), bv = test::to_doubles(b);
  std::vector<double> r(static_cast<size_t>(out.numel()));
  for (int64_t i = 0; i < out.numel(); ++i) {
    const auto idx = test::unravel(i, expect);
    r[i] = test::bcast_at(cond.shape(), cv, idx) != 0 ? test::bcast_at(a.shape(), av, idx)
                                                : test::bcast_at(b.shape(), bv, idx);
  }
  EXPECT_TRUE(test::all_close(out, r, 0, 0));
}

TEST(ElementwiseMath, Where) {
  const auto mask = [](const Shape& s, uint64_t seed) {
    return ops::compare(test::random_tensor(s, seed), ops::Cmp::ge, 0.f);
  };
  check_where(mask({3, 4097}, 1), test::random_tensor({3, 4097}, 2),
              test::random_tensor({3, 4097}, 3), {3, 4097});
  // Scalars, as a masked fill: 0 where kept, -inf elsewhere.
  check_where(mask({2, 1, 1, 77}, 4), Tensor::full({}, 0.f),
              Tensor::full({}, -std::numeric_limits<float>::infinity()), {2, 1, 1, 77});
  // Three-way broadcasting and strided operands.
  check_where(mask({33, 1}, 5), test::random_tensor({1, 31}, 6), test::random_tensor({31}, 7),
              {33, 31});
  check_where(mask({31, 33}, 8).transpose(0, 1), test::random_tensor({33, 31}, 9),
              test::random_tensor({5, 66}, 10).slice(0, 0, 1).slice(1, 0, 62, 2), {33, 31});
  check_where(mask({7, 1, 5}, 11), test::random_tensor({3, 1}, 12),
              test::random_tensor({1, 1, 1}, 13), {7, 3, 5});
  // A boolean cond selects the same values as its f32 mask.
  const Tensor m = mask({5, 31}, 14);
  const Tensor a = test::random_tensor({5, 31}, 15), b = test::random_tensor({31}, 16);
  EXPECT_TRUE(test::all_close(ops::where(m.to(DType::boolean), a, b),
                              test::to_doubles(ops::where(m, a, b)), 0, 0));
  EXPECT_EQ(
      ops::where(Tensor::zeros({0, 3}), a.slice(0, 0, 1).slice(1, 0, 3), b.slice(0, 0, 3)).numel(),
      0);
}

TEST(ElementwiseMath, Validation) {
  const Tensor x = test::random_tensor({3, 4}, 1);
  const Tensor h = x.to(DType::f16), bf = x.to(DType::bf16);
  test::expect_error([&] { ops::exp(h); }, "[exp] x is f16");
  test::expect_error([&] { ops::sqrt(bf); }, "[sqrt] x is bf16");
  test::expect_error([&] { ops::sin(Tensor::zeros({3}, DType::i32)); }, "[sin] x is i32");
  test::expect_error([&] { ops::cos(Tensor()); }, "[cos] x is undefined");
  test::expect_error([&] { ops::clamp(h, 0.f, 1.f); }, "[clamp] x is f16");
  test::expect_error([&] { ops::clamp(x, std::nullopt, std::nullopt); }, "clamp");
  test::expect_error([&] { ops::clamp(x, std::numeric_limits<float>::quiet_NaN(), 1.f); },
                     "[clamp] a bound is NaN");
  test::expect_error([&] { ops::compare(bf, ops::Cmp::ge, 0.5f); }, "[compare] x is bf16");
  test::expect_error([&] { ops::where(x, x, test::random_tensor({5}, 2)); }, "where");
  test::expect_error(
      [&] {
        ops::where(Tensor::zeros({3, 4}, DType::i32), x, x);
      },
      "[where] cond is i32");
  test::expect_error([&] { ops::where(x, h, x); }, "[where] a is f16");
  test::expect_error([&] { ops::where(x, x, bf); }, "[where] b is bf16");
}

}  // namespace
}  // namespace kiln
