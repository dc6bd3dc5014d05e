// pad and interpolate: against naive double-precision references written here, against torch
// goldens (tests/reference/make_resample_goldens.py -> tests/data/ops/resample_goldens.json),
// and error cases.
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include "kiln/ops/ops.hpp"
#include "test_support.hpp"

namespace kiln {
namespace {

using ops::InterpMode;
using ops::PadMode;
using test::expect_error;

// ---------------------------------------------------------------- pad reference
// One dim of torch's F.pad, written from its definition: constant reads outside -> fill;
// reflect mirrors without repeating the edge; replicate clamps; circular crops negative pads
// first, then wraps around what is left.
int64_t ref_pad_index(PadMode mode, int64_t o, int64_t n, int64_t lo, int64_t hi) {
  const int64_t i = o - lo;
  switch (mode) {
    case PadMode::zeros:
      return (i >= 0 && i < n) ? i : -1;
    case PadMode::replicate:
      return i < 0 ? 0 : (i >= n ? n - 1 : i);
    case PadMode::reflect: {
      int64_t r = i;
      while (r < 0 || r >= n) r = r < 0 ? -r : 2 * (n - 1) - r;
      return r;
    }
    case PadMode::circular: {
      std::vector<int64_t> core;
      for (int64_t k = std::max<int64_t>(0, -lo); k < n - std::max<int64_t>(0, -hi); ++k)
        core.push_back(k);
      std::vector<int64_t> full;
      const int64_t m = static_cast<int64_t>(core.size());
      for (int64_t k = std::max<int64_t>(lo, 0); k > 0; --k) full.push_back(core[(m - k % m) % m]);
      full.insert(full.end(), core.begin(), core.end());
      for (int64_t k = 0; k < std::max<int64_t>(hi, 0); ++k) full.push_back(core[k % m]);
      return full[o];
    }
  }
  return -1;
}

std::vector<double> ref_pad(const Tensor& x, const std::vector<int64_t>& pads, PadMode mode,
                            double value, Shape* out_shape) {
  const std::vector<double> xd = test::to_doubles(x);
  const int nd = x.ndim();
  Shape os = x.shape();
  std::vector<int64_t> lo(nd, 0), hi(nd, 0);
  for (size_t p = 0; p < pads.size() / 2; ++p) {
    lo[nd - 1 - p] = pads[2 * p];
    hi[nd - 1 - p] = pads[2 * p + 1];
  }
  for (int d = 0; d < nd; ++d) os[d] = x.size(d) + lo[d] + hi[d];
  *out_shape = os;
  std::vector<double> out(static_cast<size_t>(shape_numel(os)));
  for (int64_t e = 0; e < static_cast<int64_t>(out.size()); ++e) {
    int64_t rem = e, src = 0, stride = 1;
    bool fill = false;
    for (int d = nd - 1; d >= 0; --d) {
      const int64_t o = rem % os[d];
      rem /= os[d];
      const int64_t i = ref_pad_index(mode, o, x.size(d), lo[d], hi[d]);
      if (i < 0) fill = true;
      src += i * stride;
      stride *= x.size(d);
    }
    out[e] = fill ? value : xd[src];
  }
  return out;
}

TEST(Pad, MatchesReferenceEveryMode) {
  struct Case {
    PadMode mode;
    Shape shape;
    std::vector<int64_t> pads;
  };
  const std::vector<Case> cases = {
      {PadMode::zeros, {2, 3, 7}, {3, 1}},
      {PadMode::zeros, {2, 3, 7}, {-2, 4, 0, -1}},
      {PadMode::zeros, {1, 5, 4, 31}, {2, -3, 1, 1, -1, 2}},
      {PadMode::zeros, {3, 4}, {1, 2, 3, 4}},
      {PadMode::zeros, {2, 3, 5}, {-5, 0}},
      {PadMode::reflect, {2, 3, 7}, {6, 6}},
      {PadMode::reflect, {2, 3, 7}, {-3, 2}},
      {PadMode::reflect, {1, 3, 5, 31}, {4, 30, 0, 4}},
      {PadMode::reflect, {1, 2, 3, 4, 5}, {4, 4, 3, 3, 2, 2}},
      {PadMode::reflect, {3, 7}, {1, 1}},
      {PadMode::replicate, {2, 3, 1}, {3, 2}},
      {PadMode::replicate, {1, 3, 5, 7}, {-2, 9, 3, 0}},
      {PadMode::replicate, {2, 1, 3, 4, 5}, {1, 0, 2, 2, 0, 3}},
      {PadMode::circular, {2, 3, 7}, {7, 3}},
      {PadMode::circular, {2, 3, 7}, {-2, 4}},
      {PadMode::circular, {1, 3, 5, 31}, {2, 1, 5, -2}},
      {PadMode::circular, {1, 2, 3, 4, 5}, {5, 0, 1, 4, 3, 3}},
  };
  uint64_t seed = 1;
  for (const Case& c : cases) {
    const Tensor x = test::random_tensor(c.shape, seed++);
    const float value = c.mode == PadMode::zeros ? 0.25f : 0.f;
    Shape os;
    const std::vector<double> want = ref_pad(x, c.pads, c.mode, value, &os);
    const Tensor y = ops::pad(x, c.pads, c.mode, value);
    EXPECT_EQ(y.shape(), os) << c.shape.str();
    EXPECT_TRUE(test::all_close(y, want, 0, 0)) << "mode " << int(c.mode) << " x " << c.shape.str();
  }
}

TEST(Pad, ReadsStridedViews) {
  const Tensor base = test::random_tensor({3, 6, 5}, 7);
  const Tensor x = base.transpose(1, 2).slice(2, 1, 6, 2);  // (3, 5, 3), non-contiguous
  const std::vector<int64_t> pads = {2, 2, 1, 0};
  Shape os;
  const std::vector<double> want = ref_pad(x, pads, PadMode::reflect, 0, &os);
  EXPECT_TRUE(test::all_close(ops::pad(x, pads, PadMode::reflect), want, 0, 0));
}

TEST(Pad, Errors) {
  const Tensor x = test::random_tensor({2, 3, 5}, 3);
  const std::vector<int64_t> odd = {1, 2, 3}, too_many = {1, 1, 1, 1, 1, 1, 1, 1};
  expect_error([&] { ops::pad(x, odd); }, "pairs");
  expect_error([&] { ops::pad(x, too_many); }, "has 3 dims");
  const std::vector<int64_t> crop_neg = {-4, -2};
  expect_error([&] { ops::pad(x, crop_neg); }, "negative size");
  const std::vector<int64_t> p5 = {5, 0}, p6 = {6, 0}, crop_all = {-3, -2};
  expect_error([&] { ops::pad(x, p5, PadMode::reflect); }, "smaller than its size 5");
  expect_error([&] { ops::pad(x, crop_all, PadMode::reflect); }, "expected >= 1");
  expect_error([&] { ops::pad(x, crop_all, PadMode::replicate); }, "expected >= 1");
  expect_error([&] { ops::pad(x, p6, PadMode::circular); }, "more than once");
  const std::vector<int64_t> p2d = {1, 1, 1, 1, 1, 1};
  expect_error([&] { ops::pad(x, p2d, PadMode::reflect); }, "needs x with 4 or 5 dims");
  const std::vector<int64_t> p1 = {1, 1};
  expect_error([&] { ops::pad(x.unsqueeze(0).unsqueeze(0), p1, PadMode::replicate); },
               "needs x with 2 or 3 dims");
  // Reflect with one element cannot pad; replicate can.
  const Tensor one = test::random_tensor({1, 2, 1}, 4);
  expect_error([&] { ops::pad(one, p1, PadMode::reflect); }, "[pad]");
  EXPECT_EQ(ops::pad(one, p1, PadMode::replicate).shape(), (Shape{1, 2, 3}));
}

// ---------------------------------------------------------------- interpolate reference
// Index formulas of torch's UpSample.h (nearest_idx, nearest_exact_idx,
// compute_source_index_and_lambda), written out with the same float rounding.
int64_t ref_nearest(int64_t o, int64_t in, int64_t out, bool exact) {
  const float scale = static_cast<float>(in) / static_cast<float>(out);
  double src = exact ? std::floor(static_cast<float>((o + 0.5) * scale))
                     : (in == out ? o : std::floor(static_cast<float>(o) * scale));
  return std::min(static_cast<int64_t>(src), in - 1);
}

void ref_linear(int64_t o, int64_t in, int64_t out, bool ac, int64_t* i0, int64_t* i1, double* w1) {
  if (in == out) {
    *i0 = *i1 = o;
    *w1 = 0;
    return;
  }
  float real;
  if (ac) {
    const float scale = out > 1 ? static_cast<float>(in - 1) / static_cast<float>(out - 1) : 0.f;
    real = scale * static_cast<float>(o);
  } else {
    const float scale = static_cast<float>(in) / static_cast<float>(out);
    real = std::max(scale * (static_cast<float>(o) + 0.5f) - 0.5f, 0.f);
  }
  *i0 = std::min(static_cast<int64_t>(real), in - 1);
  *i1 = *i0 < in - 1 ? *i0 + 1 : *i0;
  *w1 = std::clamp(static_cast<double>(real) - static_cast<double>(*i0), 0.0, 1.0);
}

std::vector<double> ref_interpolate(const Tensor& x, const std::vector<int64_t>& size,
                                    InterpMode mode, bool ac) {
  const std::vector<double> xd = test::to_doubles(x);
  const int sp = x.ndim() - 2;
  int64_t in[3] = {1, 1, 1}, os[3] = {1, 1, 1};
  for (int d = 0; d < sp; ++d) {
    in[3 - sp + d] = x.size(2 + d);
    os[3 - sp + d] = size[d];
  }
  const int64_t planes = x.size(0) * x.size(1);
  std::vector<double> out;
  for (int64_t p = 0; p < planes; ++p) {
    const double* src = xd.data() + p * in[0] * in[1] * in[2];
    for (int64_t od = 0; od < os[0]; ++od)
      for (int64_t oh = 0; oh < os[1]; ++oh)
        for (int64_t ow = 0; ow < os[2]; ++ow) {
          if (mode == InterpMode::bilinear) {
            int64_t h0, h1, w0, w1;
            double lh, lw;
            ref_linear(oh, in[1], os[1], ac, &h0, &h1, &lh);
            ref_linear(ow, in[2], os[2], ac, &w0, &w1, &lw);
            const auto at = [&](int64_t h, int64_t w) { return src[h * in[2] + w]; };
            out.push_back((1 - lh) * ((1 - lw) * at(h0, w0) + lw * at(h0, w1)) +
                          lh * ((1 - lw) * at(h1, w0) + lw * at(h1, w1)));
          } else {
            const bool ex = mode == InterpMode::nearest_exact;
            const int64_t id = ref_nearest(od, in[0], os[0], ex);
            const int64_t ih = ref_nearest(oh, in[1], os[1], ex);
            const int64_t iw = ref_nearest(ow, in[2], os[2], ex);
            out.push_back(src[(id * in[1] + ih) * in[2] + iw]);
          }
        }
  }
  return out;
}

TEST(Interpolate, NearestModesMatchReference) {
  struct Case {
    Shape shape;
    std::vector<int64_t> size;
  };
  const std::vector<Case> cases = {
      {{2, 3, 7}, {31}},
      {{2, 3, 31}, {7}},
      {{1, 5, 1}, {5}},
      {{2, 3, 7, 5}, {14, 10}},
      {{1, 3, 31, 7}, {9, 33}},
      {{1, 2, 1, 1}, {3, 7}},
      {{1, 3, 5, 7, 3}, {7, 5, 6}},
      {{2, 1, 3, 4, 5}, {6, 8, 10}},
  };
  uint64_t seed = 100;
  for (const Case& c : cases)
    for (InterpMode m : {InterpMode::nearest, InterpMode::nearest_exact}) {
      const Tensor x = test::random_tensor(c.shape, seed++);
      const Tensor y = ops::interpolate(x, c.size, m);
      EXPECT_TRUE(test::all_close(y, ref_interpolate(x, c.size, m, false), 0, 0))
          << c.shape.str() << " mode " << int(m);
    }
}

TEST(Interpolate, BilinearMatchesReference) {
  struct Case {
    Shape shape;
    std::vector<int64_t> size;
  };
  const std::vector<Case> cases = {{{2, 3, 7, 5}, {14, 10}}, {{1, 3, 31, 7}, {9, 33}},
                                   {{1, 2, 1, 1}, {3, 7}},   {{1, 5, 7, 7}, {1, 1}},
                                   {{2, 2, 5, 6}, {5, 6}},   {{1, 1, 33, 5}, {7, 31}}};
  uint64_t seed = 200;
  for (const Case& c : cases)
    for (bool ac : {false, true}) {
      const Tensor x = test::random_tensor(c.shape, seed++);
      const Tensor y = ops::interpolate(x, c.size, InterpMode::bilinear, ac);
      EXPECT_TRUE(
          test::all_close(y, ref_interpolate(x, c.size, InterpMode::bilinear, ac), 1e-6, 1e-6))
          << c.shape.str() << " align_corners " << ac;
    }
}

TEST(Interpolate, Errors) {
  const Tensor x = test::random_tensor({1, 2, 5, 6}, 5);
  const std::vector<int64_t> s2 = {3, 4}, s1 = {3}, s3 = {3, 4, 5}, s0 = {0, 4};
  expect_error([&] { ops::interpolate(x, s1, InterpMode::nearest); }, "out_size has 1");
  expect_error([&] { ops::interpolate(x, s0, InterpMode::nearest); }, "out_size[0] is 0");
  expect_error([&] { ops::interpolate(x, s2, InterpMode::nearest, true); }, "align_corners");
  expect_error([&] { ops::interpolate(x.unsqueeze(0), s3, InterpMode::bilinear); },
               "bilinear needs 2 spatial dims");
  expect_error([&] { ops::interpolate(x.select(0, 0).select(0, 0), s1, InterpMode::nearest); },
               "[interpolate] x has 2 dims");
}

// ---------------------------------------------------------------- torch goldens
TEST(ResampleGoldens, MatchTorch) {
  const std::filesystem::path path = test::data_dir() / "ops" / "resample_goldens.json";
  std::ifstream f(path);
  ASSERT_TRUE(f.good()) << "missing " << path << " (KILN_TEST_DATA must name tests/data)";
  const nlohmann::json doc = nlohmann::json::parse(f);
  int checked = 0;
  for (const nlohmann::json& c : doc.at("cases")) {
    const Shape xs(std::span<const int64_t>(c.at("x_shape").get<std::vector<int64_t>>()));
    const std::vector<float> xv = c.at("x").get<std::vector<float>>();
    const Tensor x = Tensor::from_f32(xs, xv);
    const std::vector<double> want = c.at("out").get<std::vector<double>>();
    const std::string op = c.at("op"), mode = c.at("mode");
    Tensor y;
    if (op == "interpolate") {
      const std::vector<int64_t> size = c.at("size").get<std::vector<int64_t>>();
      const InterpMode m = mode == "nearest"         ? InterpMode::nearest
                           : mode == "nearest-exact" ? InterpMode::nearest_exact
                                                     : InterpMode::bilinear;
      y = ops::interpolate(x, size, m, c.at("align_corners").get<bool>());
    } else {
      const std::vector<int64_t> pads = c.at("pads").get<std::vector<int64_t>>();
      const PadMode m = mode == "constant"    ? PadMode::zeros
                        : mode == "reflect"   ? PadMode::reflect
                        : mode == "replicate" ? PadMode::replicate
                                              : PadMode::circular;
      y = ops::pad(x, pads, m, c.at("value").get<float>());
    }
    const Shape ys(std::span<const int64_t>(c.at("out_shape").get<std::vector<int64_t>>()));
    EXPECT_EQ(y.shape(), ys) << op << " " << mode << " " << xs.str();
    // Nearest and pad are exact gathers; bilinear may differ from torch in the last ulp from
    // the order of its multiply-adds.
    const double tol = mode == "bilinear" ? 2e-6 : 0.0;
    EXPECT_TRUE(test::all_close(y, want, tol, tol)) << op << " " << mode << " " << xs.str();
    ++checked;
  }
  EXPECT_GE(checked, 60);
}

}  // namespace
}  // namespace kiln
