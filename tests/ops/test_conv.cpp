// conv and conv_transpose against naive double-precision references written here (direct nested
// loops over the definition), on awkward sizes, every pad mode, groups, depthwise, causal
// padding, reduced-precision weights, plus error cases.
#include <cmath>
#include <string>
#include <vector>

#include "kiln/core/dtype.hpp"
#include "kiln/ops/ops.hpp"
#include "test_support.hpp"

namespace kiln {
namespace {

using ops::ConvParams;
using ops::ConvTransposeParams;
using ops::PadMode;
using test::expect_error;

// Geometry of one case, spatial dims padded to 3 with leading 1s.
struct Geom {
  int sp = 2;
  int64_t in[3] = {1, 1, 1}, k[3] = {1, 1, 1};
};

Geom geom_of(const Tensor& x, const Shape& wshape) {
  Geom g;
  g.sp = x.ndim() - 2;
  for (int d = 0; d < g.sp; ++d) {
    g.in[3 - g.sp + d] = x.size(2 + d);
    g.k[3 - g.sp + d] = wshape[2 + d];
  }
  return g;
}

// Source index of padded position q (in [0, n + lo + hi)) of a dim of size n, by mode; -1 = 0.
int64_t padded_index(PadMode mode, int64_t q, int64_t n, int64_t lo) {
  int64_t i = q - lo;
  if (i >= 0 && i < n) return i;
  switch (mode) {
    case PadMode::zeros:
      return -1;
    case PadMode::replicate:
      return i < 0 ? 0 : n - 1;
    case PadMode::reflect:
      return i < 0 ? -i : 2 * (n - 1) - i;
    case PadMode::circular:
      return ((i % n) + n) % n;
  }
  return -1;
}

// out[n, co, o] = bias[co] + sum_{ci in group, k} w[co, ci, k] * xpad[n, g*Cin_g + ci, o*s + k*d]
std::vector<double> ref_conv(const Tensor& x, const std::vector<double>& w, const Shape& wshape,
                             const std::vector<double>& bias, const ConvParams& p,
                             Shape* out_shape) {
  const std::vector<double> xd = test::to_doubles(x);
  const Geom g = geom_of(x, wshape);
  const int off = 3 - g.sp;
  int64_t s[3] = {1, 1, 1}, dl[3] = {1, 1, 1}, lo[3] = {0, 0, 0}, hi[3] = {0, 0, 0},
          o[3] = {1, 1, 1};
  for (int d = 0; d < g.sp; ++d) {
    s[off + d] = p.stride[d];
    dl[off + d] = p.dilation[d];
    lo[off + d] = p.pad_lo[d];
    hi[off + d] = p.pad_hi[d];
  }
  for (int d = 0; d < 3; ++d)
    o[d] = (g.in[d] + lo[d] + hi[d] - dl[d] * (g.k[d] - 1) - 1) / s[d] + 1;
  const int64_t N = x.size(0), Cin = x.size(1), Cout = wshape[0], G = p.groups;
  const int64_t Cin_g = Cin / G, Cout_g = Cout / G;
  *out_shape = Shape{N, Cout};
  for (int d = 0; d < g.sp; ++d) out_shape->push_back(o[off + d]);
  std::vector<double> out;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t co = 0; co < Cout; ++co)
      for (int64_t a = 0; a < o[0]; ++a)
        for (int64_t b = 0; b < o[1]; ++b)
          for (int64_t c = 0; c < o[2]; ++c) {
            double acc = bias.empty() ? 0.0 : bias[co];
            const int64_t grp = co / Cout_g;
            for (int64_t ci = 0; ci < Cin_g; ++ci)
              for (int64_t ka = 0; ka < g.k[0]; ++ka)
                for (int64_t kb = 0; kb < g.k[1]; ++kb)
                  for (int64_t kc = 0; kc < g.k[2]; ++kc) {
                    const int64_t i0 =
                        padded_index(p.pad_mode, a * s[0] + ka * dl[0], g.in[0], lo[0]);
                    const int64_t i1 =
                        padded_index(p.pad_mode, b * s[1] + kb * dl[1], g.in[1], lo[1]);
                    const int64_t i2 =
                        padded_index(p.pad_mode, c * s[2] + kc * dl[2], g.in[2], lo[2]);
                    if (i0 < 0 || i1 < 0 || i2 < 0) continue;
                    const double xv =
                        xd[(((n * Cin + grp * Cin_g + ci) * g.in[0] + i0) * g.in[1] + i1) *
                               g.in[2] +
                           i2];
                    const double wv =
                        w[(((co * Cin_g + ci) * g.k[0] + ka) * g.k[1] + kb) * g.k[2] + kc];
                    acc += xv * wv;
                  }
            out.push_back(acc);
          }
  return out;
}

// Scatter definition: out[n, g*Cout_g + co, i*s - p + k*d] += x[n, ci, i] * w[ci, co, k].
std::vector<double> ref_conv_transpose(const Tensor& x, const std::vector<double>& w,
                                       const Shape& wshape, const std::vector<double>& bias,
                                       const ConvTransposeParams& p, Shape* out_shape) {
  const std::vector<double> xd = test::to_doubles(x);
  const Geom g = geom_of(x, wshape);
  const int off = 3 - g.sp;
  int64_t s[3] = {1, 1, 1}, dl[3] = {1, 1, 1}, pd[3] = {0, 0, 0}, o[3] = {1, 1, 1};
  for (int d = 0; d < g.sp; ++d) {
    s[off + d] = p.stride[d];
    dl[off + d] = p.dilation[d];
    pd[off + d] = p.padding[d];
    o[off + d] = (g.in[off + d] - 1) * p.stride[d] - 2 * p.padding[d] +
                 p.dilation[d] * (g.k[off + d] - 1) + p.output_padding[d] + 1;
  }
  const int64_t N = x.size(0), Cin = x.size(1), G = p.groups, Cin_g = Cin / G;
  const int64_t Cout_g = wshape[1], Cout = Cout_g * G;
  *out_shape = Shape{N, Cout};
  for (int d = 0; d < g.sp; ++d) out_shape->push_back(o[off + d]);
  const int64_t ovol = o[0] * o[1] * o[2];
  std::vector<double> out(static_cast<size_t>(N * Cout * ovol), 0.0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t co = 0; co < Cout; ++co)
      for (int64_t q = 0; q < ovol; ++q)
        out[(n * Cout + co) * ovol + q] = bias.empty() ? 0 : bias[co];
  for (int64_t n = 0; n < N; ++n)
    for (int64_t ci = 0; ci < Cin; ++ci) {
      const int64_t grp = ci / Cin_g;
      for (int64_t co = 0; co < Cout_g; ++co)
        for (int64_t a = 0; a < g.in[0]; ++a)
          for (int64_t b = 0; b < g.in[1]; ++b)
            for (int64_t c = 0; c < g.in[2]; ++c)
              for (int64_t ka = 0; ka < g.k[0]; ++ka)
                for (int64_t kb = 0; kb < g.k[1]; ++kb)
                  for (int64_t kc = 0; kc < g.k[2]; ++kc) {
                    const int64_t t0 = a * s[0] - pd[0] + ka * dl[0];
                    const int64_t t1 = b * s[1] - pd[1] + kb * dl[1];
                    const int64_t t2 = c * s[2] - pd[2] + kc * dl[2];
                    if (t0 < 0 || t0 >= o[0] || t1 < 0 || t1 >= o[1] || t2 < 0 || t2 >= o[2])
                      continue;
                    const double xv =
                        xd[(((n * Cin + ci) * g.in[0] + a) * g.in[1] + b) * g.in[2] + c];
                    const double wv =
                        w[(((ci * Cout_g + co) * g.k[0] + ka) * g.k[1] + kb) * g.k[2] + kc];
                    out[((n * Cout + grp * Cout_g + co) * o[0] + t0) * o[1] * o[2] + t1 * o[2] +
                        t2] += xv * wv;
                  }
    }
  return out;
}

// A weight tensor of `dtype` holding random values; `rounded` gets the values it really holds.
Tensor make_weight(const Shape& shape, DType dtype, uint64_t seed, std::vector<double>* rounded) {
  const Tensor w32 = test::random_tensor(shape, seed, -0.5f, 0.5f);
  const float* v = w32.data<float>();
  const int64_t n = w32.numel();
  rounded->resize(static_cast<size_t>(n));
  if (dtype == DType::f32) {
    for (int64_t i = 0; i < n; ++i) (*rounded)[i] = v[i];
    return w32;
  }
  Tensor w = Tensor::empty(shape, dtype);
  if (dtype == DType::f16 || dtype == DType::bf16) {
    uint16_t* h = w.mutable_data<uint16_t>();
    for (int64_t i = 0; i < n; ++i) {
      h[i] = dtype == DType::f16 ? f32_to_f16(v[i]) : f32_to_bf16(v[i]);
      (*rounded)[i] = dtype == DType::f16 ? f16_to_f32(h[i]) : bf16_to_f32(h[i]);
    }
  } else {
    uint8_t* q = static_cast<uint8_t*>(w.mutable_raw_data());
    for (int64_t i = 0; i < n; ++i) {
      q[i] = dtype == DType::f8_e4m3 ? f32_to_f8e4m3(v[i]) : f32_to_f8e5m2(v[i]);
      (*rounded)[i] = dtype == DType::f8_e4m3 ? f8e4m3_to_f32(q[i]) : f8e5m2_to_f32(q[i]);
    }
  }
  return w;
}

struct ConvCase {
  Shape x;  // (N, Cin, *S)
  Shape w;  // (Cout, Cin/groups, *K)
  ConvParams p;
  bool bias = true;
  DType wdtype = DType::f32;
};

ConvParams params(std::array<int, 3> stride, std::array<int, 3> lo, std::array<int, 3> hi,
                  std::array<int, 3> dil, int groups, PadMode mode = PadMode::zeros) {
  ConvParams p;
  p.stride = stride;
  p.pad_lo = lo;
  p.pad_hi = hi;
  p.dilation = dil;
  p.groups = groups;
  p.pad_mode = mode;
  return p;
}

void check_conv(const ConvCase& c, uint64_t seed) {
  const Tensor x = test::random_tensor(c.x, seed);
  std::vector<double> w, b;
  const Tensor wt = make_weight(c.w, c.wdtype, seed + 1, &w);
  Tensor bt;
  if (c.bias) {
    bt = test::random_tensor({c.w[0]}, seed + 2);
    b = test::to_doubles(bt);
  }
  Shape want_shape;
  const std::vector<double> want = ref_conv(x, w, c.w, b, c.p, &want_shape);
  const Tensor y = ops::conv(x, wt, bt, c.p);
  ASSERT_EQ(y.shape(), want_shape) << "x " << c.x.str() << " w " << c.w.str();
  // Accumulation error grows like sqrt(K) * eps * |terms|; K <= ~1600 here.
  int64_t K = 1;
  for (int d = 1; d < c.w.size(); ++d) K *= c.w[d];
  const double atol = 1e-6 * std::sqrt(static_cast<double>(K)) + 1e-6;
  EXPECT_TRUE(test::all_close(y, want, atol, 1e-5))
      << "x " << c.x.str() << " w " << c.w.str() << " groups " << c.p.groups << " mode "
      << int(c.p.pad_mode) << " stride " << c.p.stride[0] << "," << c.p.stride[1] << " dtype "
      << dtype_name(c.wdtype);
}

TEST(Conv, Conv2dSweep) {
  uint64_t seed = 1;
  for (int64_t cin : {3, 5, 33})
    for (int64_t k : {1, 3, 5, 7})
      for (int s : {1, 2, 3})
        for (int dil : {1, 2}) {
          const int64_t h = 31, w = 7;
          const int pad = static_cast<int>(k / 2) * dil;
          if (dil * (k - 1) + 1 > w + 2 * pad) continue;
          ConvCase c{{1, cin, h, w},
                     {7, cin, k, k},
                     params({s, s, 1}, {pad, pad, 0}, {pad, pad, 0}, {dil, dil, 1}, 1)};
          c.bias = (seed % 2) == 0;
          check_conv(c, seed++);
        }
}

TEST(Conv, GroupsAndDepthwise) {
  uint64_t seed = 100;
  // groups 2, channel multiplier, depthwise (Cin_g == 1), batch 2, odd sizes.
  check_conv({{2, 6, 7, 9}, {10, 3, 3, 3}, params({1, 1, 1}, {1, 1, 0}, {1, 1, 0}, {1, 1, 1}, 2)},
             seed++);
  check_conv(
      {{1, 33, 7, 31}, {33, 1, 3, 3}, params({1, 1, 1}, {1, 1, 0}, {1, 1, 0}, {1, 1, 1}, 33)},
      seed++);
  check_conv({{2, 5, 31, 7}, {15, 1, 5, 5}, params({2, 1, 1}, {2, 2, 0}, {2, 2, 0}, {1, 2, 1}, 5)},
             seed++);
  check_conv({{1, 7, 9, 9}, {7, 1, 7, 7}, params({3, 3, 1}, {3, 3, 0}, {3, 3, 0}, {1, 1, 1}, 7)},
             seed++);
  check_conv({{1, 6, 5, 5}, {24, 2, 3, 3}, params({1, 2, 1}, {0, 1, 0}, {2, 1, 0}, {1, 1, 1}, 3)},
             seed++);
  check_conv({{1, 8, 5, 7}, {6, 4, 1, 1}, params({1, 1, 1}, {0, 0, 0}, {0, 0, 0}, {1, 1, 1}, 2)},
             seed++);
}

TEST(Conv, PointwiseAndTinySpatial) {
  uint64_t seed = 200;
  check_conv({{2, 33, 7, 31}, {5, 33, 1, 1}, params({1, 1, 1}, {0, 0, 0}, {0, 0, 0}, {1, 1, 1}, 1)},
             seed++);
  check_conv({{1, 5, 1, 1}, {7, 5, 1, 1}, params({1, 1, 1}, {0, 0, 0}, {0, 0, 0}, {1, 1, 1}, 1)},
             seed++);
  check_conv({{1, 3, 1, 1}, {4, 3, 3, 3}, params({1, 1, 1}, {1, 1, 0}, {1, 1, 0}, {1, 1, 1}, 1)},
             seed++);
  // 1x1 with stride 2 or padding goes through im2col.
  check_conv({{1, 7, 7, 7}, {3, 7, 1, 1}, params({2, 2, 1}, {0, 0, 0}, {0, 0, 0}, {1, 1, 1}, 1)},
             seed++);
  check_conv({{1, 7, 5, 5}, {3, 7, 1, 1}, params({1, 1, 1}, {1, 0, 0}, {0, 2, 0}, {1, 1, 1}, 1)},
             seed++);
  // Large enough for several column tiles per image (exercises tile edges and threads).
  check_conv(
      {{1, 64, 37, 41}, {33, 64, 3, 3}, params({1, 1, 1}, {1, 1, 0}, {1, 1, 0}, {1, 1, 1}, 1)},
      seed++);
  check_conv(
      {{1, 48, 40, 40}, {20, 48, 1, 1}, params({1, 1, 1}, {0, 0, 0}, {0, 0, 0}, {1, 1, 1}, 1)},
      seed++);
}

TEST(Conv, Conv1dCausalAndModes) {
  uint64_t seed = 300;
  for (PadMode mode : {PadMode::zeros, PadMode::reflect, PadMode::replicate, PadMode::circular})
    for (int64_t k : {1, 3, 7})
      for (int dil : {1, 2}) {
        // Causal: all padding before.
        const int lo = dil * static_cast<int>(k - 1);
        if (mode == PadMode::reflect && lo >= 31) continue;
        ConvCase c{
            {2, 5, 31}, {3, 5, k}, params({1, 1, 1}, {lo, 0, 0}, {0, 0, 0}, {dil, 1, 1}, 1, mode)};
        check_conv(c, seed++);
        // Asymmetric with stride.
        ConvCase d{
            {1, 3, 7}, {5, 3, k}, params({2, 1, 1}, {2, 0, 0}, {1, 0, 0}, {1, 1, 1}, 1, mode)};
        if (k <= 7 + 3) check_conv(d, seed++);
      }
  // groups in 1-D, length 1 input.
  check_conv({{1, 6, 31}, {4, 3, 5}, params({3, 1, 1}, {2, 0, 0}, {2, 0, 0}, {2, 1, 1}, 2)},
             seed++);
  check_conv({{3, 5, 1}, {7, 5, 1}, params({1, 1, 1}, {0, 0, 0}, {0, 0, 0}, {1, 1, 1}, 1)}, seed++);
}

TEST(Conv, Conv2dPadModes) {
  uint64_t seed = 400;
  for (PadMode mode : {PadMode::reflect, PadMode::replicate, PadMode::circular})
    for (int s : {1, 2}) {
      check_conv(
          {{1, 3, 7, 9}, {5, 3, 3, 3}, params({s, s, 1}, {1, 1, 0}, {1, 1, 0}, {1, 1, 1}, 1, mode)},
          seed++);
      check_conv(
          {{2, 4, 6, 5}, {4, 2, 5, 3}, params({1, s, 1}, {2, 0, 0}, {1, 2, 0}, {1, 1, 1}, 2, mode)},
          seed++);
    }
}

TEST(Conv, Conv3dCausal) {
  uint64_t seed = 500;
  // Wan-style causal 3-D conv: time padded only before, space symmetric.
  for (PadMode mode : {PadMode::zeros, PadMode::replicate})
    for (int s : {1, 2}) {
      check_conv({{1, 5, 4, 7, 6},
                  {7, 5, 3, 3, 3},
                  params({1, s, s}, {2, 1, 1}, {0, 1, 1}, {1, 1, 1}, 1, mode)},
                 seed++);
    }
  check_conv(
      {{2, 4, 5, 5, 5}, {6, 2, 3, 1, 3}, params({2, 1, 3}, {1, 0, 2}, {1, 0, 0}, {2, 1, 1}, 2)},
      seed++);
  check_conv({{1, 3, 3, 4, 5},
              {3, 1, 3, 3, 3},
              params({1, 1, 1}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}, 3, PadMode::circular)},
             seed++);
  check_conv(
      {{1, 7, 3, 5, 4}, {2, 7, 1, 1, 1}, params({1, 1, 1}, {0, 0, 0}, {0, 0, 0}, {1, 1, 1}, 1)},
      seed++);
}

TEST(Conv, ReducedPrecisionWeights) {
  uint64_t seed = 600;
  for (DType dt : {DType::f16, DType::bf16, DType::f8_e4m3, DType::f8_e5m2}) {
    ConvCase c{{1, 5, 9, 7}, {7, 5, 3, 3}, params({1, 1, 1}, {1, 1, 0}, {1, 1, 0}, {1, 1, 1}, 1)};
    c.wdtype = dt;
    check_conv(c, seed++);
    ConvCase d{{1, 6, 11}, {6, 1, 3}, params({1, 1, 1}, {2, 0, 0}, {0, 0, 0}, {1, 1, 1}, 6)};
    d.wdtype = dt;
    check_conv(d, seed++);
  }
}

TEST(Conv, StridedInputView) {
  const Tensor base = test::random_tensor({1, 9, 5, 11}, 700);
  const Tensor x = base.transpose(2, 3).slice(1, 0, 9, 2);  // (1, 5, 11, 5), non-contiguous
  std::vector<double> w;
  const Tensor wt = make_weight({3, 5, 3, 3}, DType::f32, 701, &w);
  const ConvParams p = ConvParams::same_pad(1, 1);
  Shape s;
  const std::vector<double> want = ref_conv(x, w, wt.shape(), {}, p, &s);
  EXPECT_TRUE(test::all_close(ops::conv(x, wt, {}, p), want, 1e-5, 1e-5));
}

TEST(Conv, SamePad) {
  const ConvParams p = ConvParams::same_pad(2, 3, 2, 4);
  for (int d = 0; d < 3; ++d) {
    EXPECT_EQ(p.stride[d], 2);
    EXPECT_EQ(p.pad_lo[d], 3);
    EXPECT_EQ(p.pad_hi[d], 3);
    EXPECT_EQ(p.dilation[d], 2);
  }
  EXPECT_EQ(p.groups, 4);
  EXPECT_EQ(p.pad_mode, PadMode::zeros);
}

// No input channels: every output is the empty sum plus the bias (the GEMM has K = 0).
TEST(Conv, NoInputChannelsGivesBias) {
  const Tensor x = Tensor::zeros({1, 0, 5, 5});
  const Tensor w = Tensor::zeros({4, 0, 3, 3});
  const Tensor b = Tensor::from_f32({4}, {1.f, 2.f, 3.f, 4.f});
  const Tensor y = ops::conv(x, w, b, ConvParams{});
  ASSERT_EQ(y.shape(), Shape({1, 4, 3, 3}));
  const std::vector<double> v = test::to_doubles(y);
  for (size_t i = 0; i < v.size(); ++i) EXPECT_EQ(v[i], 1.0 + static_cast<double>(i / 9)) << i;
}

TEST(Conv, Errors) {
  const Tensor x = test::random_tensor({1, 4, 5, 5}, 1);
  const Tensor w = test::random_tensor({6, 4, 3, 3}, 2);
  const ConvParams p;
  expect_error([&] { ops::conv(x.select(0, 0).select(0, 0), w, {}, p); }, "[conv] x has 2 dims");
  expect_error([&] { ops::conv(x, w.select(0, 0), {}, p); }, "weight has 3 dims");
  expect_error(
      [&] {
        ops::conv(x, test::random_tensor({6, 3, 3, 3}, 3), {}, p);
      },
      "input channels");
  expect_error([&] { ops::conv(x, w, test::random_tensor({5}, 4), p); }, "bias has shape");
  ConvParams g3 = p;
  g3.groups = 3;
  expect_error(
      [&] {
        ops::conv(x, test::random_tensor({6, 1, 3, 3}, 5), {}, g3);
      },
      "groups 3 does not divide the 4 input channels");
  ConvParams g2 = p;
  g2.groups = 2;
  expect_error(
      [&] {
        ops::conv(x, test::random_tensor({5, 2, 3, 3}, 5), {}, g2);
      },
      "does not divide the 5 output channels");
  ConvParams g0 = p;
  g0.groups = 0;
  expect_error([&] { ops::conv(x, w, {}, g0); }, "groups is 0");
  ConvParams s0 = p;
  s0.stride[1] = 0;
  expect_error([&] { ops::conv(x, w, {}, s0); }, "stride[1] is 0");
  ConvParams d0 = p;
  d0.dilation[0] = -1;
  expect_error([&] { ops::conv(x, w, {}, d0); }, "dilation[0] is -1");
  ConvParams neg = p;
  neg.pad_lo[0] = -1;
  expect_error([&] { ops::conv(x, w, {}, neg); }, "expected >= 0");
  expect_error(
      [&] {
        ops::conv(x, test::random_tensor({6, 4, 7, 3}, 6), {}, p);
      },
      "but the padded input is only 5");
  ConvParams refl = ConvParams::same_pad(1, 5);
  refl.pad_mode = PadMode::reflect;
  expect_error([&] { ops::conv(x, w, {}, refl); }, "reflect padding (5, 5)");
  const Tensor wi = Tensor::zeros({6, 4, 3, 3}, DType::i32);
  expect_error([&] { ops::conv(x, wi, {}, p); }, "expected f32, f16, bf16 or fp8");
  expect_error([&] { ops::conv(Tensor::zeros({1, 4, 5, 5}, DType::f16), w, {}, p); }, "x is f16");

  const Tensor wt = test::random_tensor({4, 3, 3, 3}, 7);
  ConvTransposeParams tp;
  expect_error(
      [&] {
        ops::conv_transpose(x, test::random_tensor({3, 3, 3, 3}, 8), {}, tp);
      },
      "[conv_transpose] weight");
  ConvTransposeParams opad;
  opad.stride = {2, 2, 2};
  opad.output_padding = {2, 0, 0};
  expect_error([&] { ops::conv_transpose(x, wt, {}, opad); }, "output_padding[0] is 2");
  ConvTransposeParams big;
  big.padding = {4, 0, 0};
  expect_error([&] { ops::conv_transpose(x, wt, {}, big); }, "output size of dim 0");
  ConvTransposeParams tg;
  tg.groups = 3;
  expect_error([&] { ops::conv_transpose(x, wt, {}, tg); }, "groups 3 does not divide");
}

// ---------------------------------------------------------------- conv_transpose
struct TCase {
  Shape x;  // (N, Cin, *S)
  Shape w;  // (Cin, Cout/groups, *K)
  ConvTransposeParams p;
  bool bias = true;
  DType wdtype = DType::f32;
};

ConvTransposeParams tparams(std::array<int, 3> stride, std::array<int, 3> pad,
                            std::array<int, 3> opad, std::array<int, 3> dil, int groups) {
  ConvTransposeParams p;
  p.stride = stride;
  p.padding = pad;
  p.output_padding = opad;
  p.dilation = dil;
  p.groups = groups;
  return p;
}

void check_conv_transpose(const TCase& c, uint64_t seed) {
  const Tensor x = test::random_tensor(c.x, seed);
  std::vector<double> w, b;
  const Tensor wt = make_weight(c.w, c.wdtype, seed + 1, &w);
  Tensor bt;
  if (c.bias) {
    bt = test::random_tensor({c.w[1] * c.p.groups}, seed + 2);
    b = test::to_doubles(bt);
  }
  Shape want_shape;
  const std::vector<double> want = ref_conv_transpose(x, w, c.w, b, c.p, &want_shape);
  const Tensor y = ops::conv_transpose(x, wt, bt, c.p);
  ASSERT_EQ(y.shape(), want_shape) << "x " << c.x.str() << " w " << c.w.str();
  EXPECT_TRUE(test::all_close(y, want, 2e-5, 1e-5))
      << "x " << c.x.str() << " w " << c.w.str() << " groups " << c.p.groups << " stride "
      << c.p.stride[0] << " dtype " << dtype_name(c.wdtype);
}

TEST(ConvTranspose, Sweep) {
  uint64_t seed = 800;
  for (int64_t k : {1, 3, 4, 5})
    for (int s : {1, 2, 3})
      for (int dil : {1, 2}) {
        const int pad = static_cast<int>(k / 2);
        const int opad = s > 1 ? s - 1 : 0;
        check_conv_transpose({{1, 5, 7, 6},
                              {5, 3, k, k},
                              tparams({s, s, 1}, {pad, 0, 0}, {opad, 0, 0}, {dil, dil, 1}, 1)},
                             seed++);
      }
  // 1-D (vocoder-style upsampling), groups, 3-D, batch 2, reduced-precision weights.
  check_conv_transpose(
      {{2, 33, 31}, {33, 7, 16}, tparams({8, 1, 1}, {4, 0, 0}, {0, 0, 0}, {1, 1, 1}, 1)}, seed++);
  check_conv_transpose(
      {{2, 6, 9}, {6, 5, 3}, tparams({2, 1, 1}, {1, 0, 0}, {1, 0, 0}, {1, 1, 1}, 3)}, seed++);
  check_conv_transpose(
      {{1, 4, 1, 1}, {4, 1, 3, 3}, tparams({2, 2, 1}, {0, 0, 0}, {1, 1, 0}, {1, 1, 1}, 4)}, seed++);
  check_conv_transpose(
      {{1, 4, 3, 4, 5}, {4, 3, 3, 3, 3}, tparams({1, 2, 2}, {1, 1, 1}, {0, 1, 0}, {1, 1, 2}, 2)},
      seed++);
  check_conv_transpose(
      {{1, 64, 17, 19}, {64, 33, 4, 4}, tparams({2, 2, 1}, {1, 1, 0}, {0, 0, 0}, {1, 1, 1}, 1)},
      seed++);
  for (DType dt : {DType::f16, DType::bf16}) {
    TCase c{{1, 5, 6, 7}, {5, 4, 3, 3}, tparams({2, 2, 1}, {1, 1, 0}, {1, 0, 0}, {1, 1, 1}, 1)};
    c.wdtype = dt;
    c.bias = false;
    check_conv_transpose(c, seed++);
  }
}

}  // namespace
}  // namespace kiln
