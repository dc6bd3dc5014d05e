// attention vs a double-precision reference. Tolerance is FlashAttention's criterion: the op's
// max error against the double reference is at most 2x that of a naive f32 implementation
// (scores, softmax and the weighted sum in float, one key at a time) plus 1e-6.
#include <cmath>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "kiln/ops/ops.hpp"
#include "test_support.hpp"

namespace kiln {
namespace {

struct Case {
  int64_t B = 1, H = 2, Hkv = 2, Lq = 33, Lk = 77, D = 40, Dv = -1;
  bool causal = false;
  float scale = 0.f;
};

// Element (b, h, i, j) of a mask broadcast to (B, H, Lq, Lk), as value (f32) or keep (bool).
struct MaskRef {
  Tensor expanded;  // (B, H, Lq, Lk) view
  std::vector<double> vals;
  bool is_bool = false;
  double at(const Case& c, int64_t b, int64_t h, int64_t i, int64_t j) const {
    return vals[((b * c.H + h) * c.Lq + i) * c.Lk + j];
  }
};

// Reference in T (double: the truth; float: the naive f32 implementation the criterion uses).
template <typename T>
std::vector<double> reference(const Case& c, const Tensor& q, const Tensor& k, const Tensor& v,
                              const MaskRef* mask) {
  const int64_t Dv = c.Dv < 0 ? c.D : c.Dv;
  const auto qd = test::to_doubles(q), kd = test::to_doubles(k), vd = test::to_doubles(v);
  const T scale = c.scale > 0 ? T(c.scale) : T(1) / std::sqrt(T(c.D));
  std::vector<double> out(static_cast<size_t>(c.B * c.H * c.Lq * Dv), 0.0);
  std::vector<T> s(static_cast<size_t>(c.Lk));
  std::vector<bool> keep(static_cast<size_t>(c.Lk));
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t h = 0; h < c.H; ++h) {
      const int64_t hk = h / (c.H / c.Hkv);
      for (int64_t i = 0; i < c.Lq; ++i) {
        T mx = -std::numeric_limits<T>::infinity();
        for (int64_t j = 0; j < c.Lk; ++j) {
          T dot = 0;
          for (int64_t d = 0; d < c.D; ++d)
            dot += T(qd[((b * c.H + h) * c.Lq + i) * c.D + d]) *
                   T(kd[((b * c.Hkv + hk) * c.Lk + j) * c.D + d]);
          s[j] = dot * scale;
          keep[j] = !(c.causal && j > i);
          if (mask) {
            const double m = mask->at(c, b, h, i, j);
            if (mask->is_bool)
              keep[j] = keep[j] && m != 0;
            else
              s[j] += T(m);
          }
          if (!keep[j] || std::isinf(s[j])) keep[j] = false;
          if (keep[j]) mx = std::max(mx, s[j]);
        }
        if (mx == -std::numeric_limits<T>::infinity()) continue;  // fully masked: zeros
        T sum = 0;
        for (int64_t j = 0; j < c.Lk; ++j) {
          s[j] = keep[j] ? std::exp(s[j] - mx) : T(0);
          sum += s[j];
        }
        for (int64_t dv = 0; dv < Dv; ++dv) {
          T acc = 0;
          for (int64_t j = 0; j < c.Lk; ++j)
            acc += s[j] * T(vd[((b * c.Hkv + hk) * c.Lk + j) * Dv + dv]);
          out[((b * c.H + h) * c.Lq + i) * Dv + dv] = double(acc / sum);
        }
      }
    }
  return out;
}

double max_err(const std::vector<double>& a, const std::vector<double>& b) {
  double e = 0;
  for (size_t i = 0; i < a.size(); ++i) e = std::max(e, std::fabs(a[i] - b[i]));
  return e;
}

// Runs attention on fresh random inputs and checks the FlashAttention criterion.
void check(const Case& c, uint64_t seed, const Tensor& mask = {}) {
  SCOPED_TRACE(::testing::Message()
               << "B=" << c.B << " H=" << c.H << " Hkv=" << c.Hkv << " Lq=" << c.Lq
               << " Lk=" << c.Lk << " D=" << c.D << " Dv=" << c.Dv << " causal=" << c.causal);
  const int64_t Dv = c.Dv < 0 ? c.D : c.Dv;
  // q in [-3, 3] makes the softmax peaked (score spread ~ several units), not near-uniform.
  const Tensor q = test::random_tensor({c.B, c.H, c.Lq, c.D}, seed, -3.f, 3.f);
  const Tensor k = test::random_tensor({c.B, c.Hkv, c.Lk, c.D}, seed + 1);
  const Tensor v = test::random_tensor({c.B, c.Hkv, c.Lk, Dv}, seed + 2);
  std::optional<MaskRef> mref;
  if (mask.defined()) {
    MaskRef m;
    m.expanded = mask.expand({c.B, c.H, c.Lq, c.Lk});
    m.is_bool = mask.dtype() == DType::boolean;
    m.vals = test::to_doubles(m.is_bool ? m.expanded.to(DType::f32) : m.expanded);
    mref = std::move(m);
  }
  const MaskRef* mp = mref ? &*mref : nullptr;
  const Tensor out = ops::attention(q, k, v, mask, {c.scale, c.causal});
  ASSERT_EQ(out.shape(), Shape({c.B, c.H, c.Lq, Dv}));
  const auto truth = reference<double>(c, q, k, v, mp);
  const auto naive = reference<float>(c, q, k, v, mp);
  const double naive_err = max_err(naive, truth);
  const double err = max_err(test::to_doubles(out), truth);
  EXPECT_LE(err, 2 * naive_err + 1e-6) << "naive f32 error " << naive_err;
  EXPECT_EQ(test::compare(out, truth).nonfinite, 0);
}

TEST(Attention, AwkwardSizes) {
  check({.B = 2, .H = 3, .Hkv = 3, .Lq = 33, .Lk = 77, .D = 40}, 1);
  check({.B = 1, .H = 1, .Hkv = 1, .Lq = 1, .Lk = 1, .D = 8}, 2);
  check({.B = 1, .H = 1, .Hkv = 1, .Lq = 7, .Lk = 3, .D = 8}, 3);
  check({.B = 1, .H = 1, .Hkv = 1, .Lq = 97, .Lk = 193, .D = 64}, 4);  // one past both tiles
  check({.B = 1, .H = 1, .Hkv = 1, .Lq = 96, .Lk = 384, .D = 64}, 6);  // exactly two key tiles
  check({.B = 1, .H = 1, .Hkv = 1, .Lq = 4097, .Lk = 31, .D = 8}, 5);
}

TEST(Attention, HeadDims) {
  for (int64_t D : {8, 40, 64, 80, 128}) check({.Lq = 31, .Lk = 300, .D = D}, 10 + D);
}

TEST(Attention, ValueDimDiffersAndGroupedQuery) {
  check({.B = 1, .H = 4, .Hkv = 4, .Lq = 31, .Lk = 77, .D = 64, .Dv = 24}, 20);
  check({.B = 2, .H = 6, .Hkv = 2, .Lq = 33, .Lk = 300, .D = 40, .Dv = 80}, 21);
  check({.B = 1, .H = 8, .Hkv = 1, .Lq = 17, .Lk = 33, .D = 64}, 22);  // multi-query
}

TEST(Attention, ExplicitScale) {
  check({.Lq = 31, .Lk = 77, .D = 64, .scale = 0.3f}, 30);
}

// torch's is_causal is tril(ones(Lq, Lk)): query i sees keys j <= i (top-left aligned).
TEST(Attention, CausalTopLeft) {
  check({.Lq = 200, .Lk = 200, .D = 64, .causal = true}, 40);
  check({.Lq = 7, .Lk = 300, .D = 40, .causal = true}, 41);   // Lq < Lk
  check({.Lq = 300, .Lk = 77, .D = 40, .causal = true}, 42);  // Lq > Lk
  check({.B = 1, .H = 4, .Hkv = 2, .Lq = 513, .Lk = 513, .D = 80, .causal = true}, 43);
  // Row 0 attends only key 0: its output is exactly v[0].
  const Tensor q = test::random_tensor({1, 1, 5, 8}, 44), k = test::random_tensor({1, 1, 9, 8}, 45);
  const Tensor v = test::random_tensor({1, 1, 9, 8}, 46);
  const Tensor o = ops::attention(q, k, v, {}, {.causal = true});
  const auto od = test::to_doubles(o), vd = test::to_doubles(v);
  for (int d = 0; d < 8; ++d) EXPECT_FLOAT_EQ(od[d], vd[d]);
}

// A random bool mask with rows 0 and 5 of batch 0 fully masked (those rows must be zeros).
Tensor bool_mask(const Shape& shape, uint64_t seed, double keep_p) {
  const auto r = test::to_doubles(test::random_tensor(shape, seed, 0.f, 1.f));
  Tensor m = Tensor::empty(shape, DType::boolean);
  bool* p = m.mutable_data<bool>();
  for (size_t i = 0; i < r.size(); ++i) p[i] = r[i] < keep_p;
  return m;
}

TEST(Attention, BoolMask) {
  const Case c{.B = 2, .H = 3, .Hkv = 3, .Lq = 33, .Lk = 300, .D = 64};
  Tensor m = bool_mask({2, 1, 33, 300}, 50, 0.5);  // broadcast over heads
  bool* p = m.mutable_data<bool>();
  for (int64_t j = 0; j < 300; ++j) p[0 * 300 + j] = p[5 * 300 + j] = false;
  check(c, 51, m);
  // Rows fully masked are zeros.
  const Tensor q = test::random_tensor({2, 3, 33, 64}, 51, -3.f, 3.f);
  const Tensor k = test::random_tensor({2, 3, 300, 64}, 52);
  const Tensor v = test::random_tensor({2, 3, 300, 64}, 53);
  const auto od = test::to_doubles(ops::attention(q, k, v, m));
  for (int64_t h = 0; h < 3; ++h)
    for (int64_t d = 0; d < 64; ++d) {
      EXPECT_EQ(od[((0 * 3 + h) * 33 + 0) * 64 + d], 0.0);
      EXPECT_EQ(od[((0 * 3 + h) * 33 + 5) * 64 + d], 0.0);
    }
  // Key padding mask (B, 1, 1, Lk), and a mask of fewer dims (Lq, Lk) broadcast from the left.
  check(c, 54, bool_mask({2, 1, 1, 300}, 55, 0.7));
  check(c, 56, bool_mask({33, 300}, 57, 0.3));
  // Only the last key tile holds kept keys: earlier tiles are fully masked for every row.
  Tensor late = Tensor::empty({300}, DType::boolean);
  for (int64_t j = 0; j < 300; ++j) late.mutable_data<bool>()[j] = j >= 290;
  check(c, 58, late);
  check({.B = 1, .H = 2, .Hkv = 1, .Lq = 40, .Lk = 77, .D = 8, .causal = true}, 59,
        bool_mask({1, 2, 40, 77}, 60, 0.6));
}

TEST(Attention, AdditiveMask) {
  const Case c{.B = 1, .H = 4, .Hkv = 2, .Lq = 31, .Lk = 270, .D = 80, .Dv = 40};
  Tensor m = test::random_tensor({1, 4, 31, 270}, 70, -4.f, 4.f);
  float* p = m.mutable_data<float>();
  const float ninf = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < m.numel(); i += 7) p[i] = ninf;
  for (int64_t j = 0; j < 270; ++j) p[(2 * 31 + 3) * 270 + j] = ninf;  // head 2 row 3: all masked
  check(c, 71, m);
  check(c, 72, test::random_tensor({31, 270}, 73, -2.f, 2.f));
  check({.Lq = 64, .Lk = 64, .D = 40, .causal = true}, 74, test::random_tensor({1, 64}, 75));
}

TEST(Attention, StridedInputs) {
  // (B, L, H, D) tensors viewed as (B, H, L, D), as a transformer's projections produce them.
  const Tensor q = test::random_tensor({2, 33, 4, 40}, 80, -3.f, 3.f).transpose(1, 2);
  const Tensor k = test::random_tensor({2, 77, 2, 40}, 81).transpose(1, 2);
  const Tensor v = test::random_tensor({2, 77, 2, 40}, 82).transpose(1, 2);
  const Tensor out = ops::attention(q, k, v);
  const Tensor ref = ops::attention(q.contiguous(), k.contiguous(), v.contiguous());
  EXPECT_TRUE(test::all_close(out, test::to_doubles(ref), 0, 0));
  // Non-unit last-dim stride is copied to contiguous first.
  const Tensor qt = test::random_tensor({1, 2, 8, 31}, 83).transpose(2, 3);  // (1, 2, 31, 8)
  const Tensor kk = test::random_tensor({1, 2, 5, 8}, 84),
               vv = test::random_tensor({1, 2, 5, 8}, 85);
  EXPECT_TRUE(test::all_close(ops::attention(qt, kk, vv),
                              test::to_doubles(ops::attention(qt.contiguous(), kk, vv)), 0, 0));
}

TEST(Attention, EmptyKeysGiveZeros) {
  const Tensor q = test::random_tensor({1, 2, 3, 8}, 90);
  const Tensor k = Tensor::empty({1, 2, 0, 8}, DType::f32),
               v = Tensor::empty({1, 2, 0, 4}, DType::f32);
  const Tensor o = ops::attention(q, k, v);
  ASSERT_EQ(o.shape(), Shape({1, 2, 3, 4}));
  for (double x : test::to_doubles(o)) EXPECT_EQ(x, 0.0);
}

// Every attention error names the op as well as the offending argument.
void expect_error(const std::function<void()>& f, const std::string& needle) {
  EXPECT_TRUE(test::throws_error(f, Status::invalid_argument, {"[attention]", needle}));
}

TEST(Attention, Validation) {
  const Tensor q = test::random_tensor({1, 6, 5, 8}, 1), k = test::random_tensor({1, 4, 7, 8}, 2);
  const Tensor v = test::random_tensor({1, 4, 7, 8}, 3);
  expect_error([&] { ops::attention(q, k, v); }, "multiple");
  const Tensor k2 = test::random_tensor({1, 2, 7, 8}, 4), v2 = test::random_tensor({1, 2, 7, 8}, 5);
  expect_error([&] { ops::attention(q, test::random_tensor({1, 2, 7, 9}, 6), v2); }, "k ");
  expect_error([&] { ops::attention(q, k2, test::random_tensor({1, 2, 6, 8}, 7)); }, "v ");
  expect_error([&] { ops::attention(q.reshape({6, 5, 8}), k2, v2); }, "q has 3 dims");
  expect_error(
      [&] {
        ops::attention(q, k2, v2, test::random_tensor({1, 6, 5, 6}, 8));
      },
      "broadcastable");
  expect_error(
      [&] {
        ops::attention(q, k2, v2, Tensor::zeros({5, 7}, DType::i32));
      },
      "mask is i32");
  expect_error([&] { ops::attention(q.to(DType::f16), k2, v2); }, "q is f16");
}

}  // namespace
}  // namespace kiln
