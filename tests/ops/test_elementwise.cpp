// Elementwise ops vs double-precision references on random inputs. Tolerances: add/sub/mul are
// one f32 rounding of exact-in-double inputs (rtol 6e-8 ~ half an ulp, we allow 1.2e-7); div
// also one rounding; libm float exp/erf/tanh are within ~1-2 ulp, and composing them (silu,
// gelu) adds a few roundings, so activations use atol 1e-6 + rtol 1e-6 on O(1) values.
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "kiln/ops/ops.hpp"
#include "test_support.hpp"

namespace kiln {
namespace {

using BinFn = Tensor (*)(const Tensor&, const Tensor&);

void check_binary(const Tensor& a, const Tensor& b, const Shape& expect_shape) {
  struct Op {
    const char* name;
    BinFn fn;
    double (*ref)(double, double);
  };
  const Op ops_[] = {
      {"add", ops::add, [](double x, double y) { return x + y; }},
      {"sub", ops::sub, [](double x, double y) { return x - y; }},
      {"mul", ops::mul, [](double x, double y) { return x * y; }},
      {"div", ops::div, [](double x, double y) { return x / y; }},
  };
  const auto av = test::to_doubles(a), bv = test::to_doubles(b);
  for (const Op& op : ops_) {
    SCOPED_TRACE(::testing::Message()
                 << op.name << " " << a.shape().str() << " " << b.shape().str());
    const Tensor out = op.fn(a, b);
    ASSERT_EQ(out.shape(), expect_shape);
    std::vector<double> ref(static_cast<size_t>(out.numel()));
    for (int64_t i = 0; i < out.numel(); ++i) {
      const auto idx = test::unravel(i, expect_shape);
      ref[i] = op.ref(test::bcast_at(a.shape(), av, idx), test::bcast_at(b.shape(), bv, idx));
    }
    EXPECT_TRUE(test::all_close(out, ref, 0, 1.2e-7));
  }
}

TEST(Elementwise, BinarySameShape) {
  check_binary(test::random_tensor({4097}, 1), test::random_tensor({4097}, 2, 0.5f, 2.f), {4097});
  check_binary(test::random_tensor({3, 7, 31}, 3), test::random_tensor({3, 7, 31}, 4, 0.5f, 2.f),
               {3, 7, 31});
  // Large enough to run in parallel chunks.
  check_binary(test::random_tensor({77, 4097}, 5), test::random_tensor({77, 4097}, 6, 0.5f, 2.f),
               {77, 4097});
}

TEST(Elementwise, BinaryTrailingBias) {
  const Tensor x = test::random_tensor({2, 33, 77}, 10);
  check_binary(x, test::random_tensor({77}, 11, 0.5f, 2.f), {2, 33, 77});         // bias
  check_binary(x, test::random_tensor({1, 33, 77}, 12, 0.5f, 2.f), {2, 33, 77});  // (1, L, D)
  check_binary(test::random_tensor({77}, 13, 0.5f, 2.f), x, {2, 33, 77});         // bias first
  check_binary(x, test::random_tensor({1}, 14, 0.5f, 2.f), {2, 33, 77});          // scalar
  check_binary(x, Tensor::full({}, 1.5f), {2, 33, 77});                           // 0-dim
}

TEST(Elementwise, BinaryGeneralBroadcast) {
  // Channel broadcast (1, C, 1, 1) over NCHW, outer-product broadcast, and strided views.
  check_binary(test::random_tensor({2, 7, 3, 31}, 20),
               test::random_tensor({1, 7, 1, 1}, 21, 0.5f, 2.f), {2, 7, 3, 31});
  check_binary(test::random_tensor({33, 1}, 22), test::random_tensor({1, 77}, 23, 0.5f, 2.f),
               {33, 77});
  check_binary(test::random_tensor({5, 1, 7}, 24), test::random_tensor({3, 1}, 25, 0.5f, 2.f),
               {5, 3, 7});
  const Tensor t = test::random_tensor({31, 33}, 26).transpose(0, 1);  // (33, 31), strided
  check_binary(t, test::random_tensor({33, 31}, 27, 0.5f, 2.f), {33, 31});
  check_binary(t, test::random_tensor({31}, 28, 0.5f, 2.f), {33, 31});
  check_binary(test::random_tensor({4, 6}, 29).slice(1, 0, 6, 2),
               test::random_tensor({4, 3}, 30, 0.5f, 2.f), {4, 3});
  check_binary(test::random_tensor({1}, 31), test::random_tensor({1}, 32, 0.5f, 2.f), {1});
}

TEST(Elementwise, BinaryValidation) {
  try {
    ops::add(test::random_tensor({3, 4}, 1), test::random_tensor({5}, 2));
    ADD_FAILURE() << "no error for incompatible shapes";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("add"), std::string::npos) << e.what();
  }
  try {
    ops::mul(test::random_tensor({3}, 1), Tensor::zeros({3}, DType::i32));
    ADD_FAILURE() << "no error for an i32 operand";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[mul] b is i32"), std::string::npos) << e.what();
  }
}

void check_unary(const char* name, const std::function<Tensor(const Tensor&)>& fn,
                 double (*ref)(double), double atol, double rtol, float lo = -6.f, float hi = 6.f) {
  SCOPED_TRACE(name);
  for (const Shape& s : {Shape{1}, Shape{7}, Shape{33, 77}, Shape{3, 4097}}) {
    const Tensor x = test::random_tensor(s, 40 + s.size(), lo, hi);
    const auto xv = test::to_doubles(x);
    std::vector<double> r(xv.size());
    for (size_t i = 0; i < xv.size(); ++i) r[i] = ref(xv[i]);
    const Tensor out = fn(x);
    ASSERT_EQ(out.shape(), s);
    EXPECT_TRUE(test::all_close(out, r, atol, rtol));
  }
  // A strided input gives the same values as its contiguous copy.
  const Tensor t = test::random_tensor({31, 7}, 49, lo, hi).transpose(0, 1);
  EXPECT_TRUE(test::all_close(fn(t), test::to_doubles(fn(t.contiguous())), 0, 0));
}

TEST(Elementwise, Activations) {
  check_unary(
      "scale", [](const Tensor& x) { return ops::scale(x, 1.75f, -0.5f); },
      [](double x) { return 1.75 * x - 0.5; }, 1e-7, 1.2e-7);
  check_unary(
      "silu", ops::silu, [](double x) { return x / (1 + std::exp(-x)); }, 1e-6, 1e-6);
  check_unary(
      "sigmoid", ops::sigmoid, [](double x) { return 1 / (1 + std::exp(-x)); }, 1e-7, 1e-6);
  check_unary(
      "tanh", [](const Tensor& x) { return ops::tanh(x); }, [](double x) { return std::tanh(x); },
      1e-7, 1e-6);
  check_unary(
      "gelu", [](const Tensor& x) { return ops::gelu(x); },
      [](double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); }, 1e-6, 1e-6);
  check_unary(
      "gelu_tanh", [](const Tensor& x) { return ops::gelu(x, ops::GeluApprox::tanh); },
      [](double x) {
        const double k = std::sqrt(2.0 / M_PI);
        return 0.5 * x * (1 + std::tanh(k * (x + 0.044715 * x * x * x)));
      },
      1e-6, 1e-6);
  check_unary(
      "relu", ops::relu, [](double x) { return x > 0 ? x : 0.0; }, 0, 0);
  // Saturation far out: no inf/NaN from exp overflow.
  check_unary(
      "silu_far", ops::silu, [](double x) { return x / (1 + std::exp(-x)); }, 1e-5, 1e-6, -100.f,
      100.f);
  check_unary(
      "sigmoid_far", ops::sigmoid, [](double x) { return 1 / (1 + std::exp(-x)); }, 1e-7, 1e-6,
      -100.f, 100.f);
}

std::vector<double> softmax_ref(const Tensor& x, int dim) {
  const auto v = test::to_doubles(x);
  const int d = dim < 0 ? dim + x.ndim() : dim;
  int64_t inner = 1;
  for (int i = d + 1; i < x.ndim(); ++i) inner *= x.size(i);
  const int64_t n = x.size(d), outer = x.numel() / (n * inner);
  std::vector<double> r(v.size());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t c = 0; c < inner; ++c) {
      double mx = -INFINITY, s = 0;
      for (int64_t k = 0; k < n; ++k) mx = std::max(mx, v[(o * n + k) * inner + c]);
      for (int64_t k = 0; k < n; ++k) s += std::exp(v[(o * n + k) * inner + c] - mx);
      for (int64_t k = 0; k < n; ++k)
        r[(o * n + k) * inner + c] = std::exp(v[(o * n + k) * inner + c] - mx) / s;
    }
  return r;
}

TEST(Elementwise, Softmax) {
  // rtol 1e-6: exp's ~1 ulp plus the final f32 rounding of a double division.
  for (int dim : {-1, 0, 1, 2}) {
    const Tensor x = test::random_tensor({7, 33, 77}, 60 + dim, -8.f, 8.f);
    EXPECT_TRUE(test::all_close(ops::softmax(x, dim), softmax_ref(x, dim), 1e-9, 1e-6)) << dim;
  }
  const Tensor big = test::random_tensor({3, 4097}, 65, -20.f, 20.f);
  EXPECT_TRUE(test::all_close(ops::softmax(big, -1), softmax_ref(big, -1), 1e-9, 1e-6));
  const Tensor wide = test::random_tensor({31, 131}, 66);  // inner > one 64-lane block
  EXPECT_TRUE(test::all_close(ops::softmax(wide, 0), softmax_ref(wide, 0), 1e-9, 1e-6));
  // Max subtraction: values near f32 exp overflow (88.7) stay finite.
  const Tensor hot = ops::scale(test::random_tensor({5, 31}, 67), 10.f, 1000.f);
  EXPECT_TRUE(test::all_close(ops::softmax(hot, 1), softmax_ref(hot, 1), 1e-9, 1e-6));
  // A -inf entry gets probability 0.
  Tensor m = test::random_tensor({2, 7}, 68);
  m.mutable_data<float>()[3] = -std::numeric_limits<float>::infinity();
  const auto sm = test::to_doubles(ops::softmax(m, 1));
  EXPECT_EQ(sm[3], 0.0);
  try {
    ops::softmax(m, 2);
    ADD_FAILURE() << "no error for dim 2 of a 2-dim tensor";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("softmax"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace kiln
