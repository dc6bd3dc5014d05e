// conv and conv_transpose on CUDA (cuDNN) against the CPU ops (the reference) on fresh random
// inputs with awkward geometry, plus the checks that need no GPU (can_implement, the plan key,
// validation before dispatch). GPU tests skip without a device.
//
// Poisoning: before each CUDA op the test frees a 0xFF-filled block of the output's size (NaN
// in every float type), which the allocator usually hands to the op's output.
//
// Tolerances (per output element, S = the same conv applied to |x|, |w|, |b|, i.e.
// sum |w||x| + |b| over the terms of that element, computed by the CPU op):
//  - f32: |cuda - cpu| <= 2 K u S with u = 2^-24, K = Cin/groups * kernel volume + 1. Each
//    side sums the same K products (plus the bias) in its own order; any order is within
//    (K - 1) u S of the exact sum (Higham 2002, eq. 3.5), so the two are within 2 K u S of
//    each other. This holds because f32 runs without TF32 and without FFT/Winograd
//    transforms (conv_cudnn.hpp); a TF32 or Winograd algorithm would show up as a failure.
//  - f16/bf16 (inputs rounded to the type first, the CPU computes on the rounded values in
//    f32): one rounding of the output, u_t |cpu| (u_t = 2^-11 for f16, 2^-8 for bf16), plus
//    the f32-accumulation term above, plus u_t S for cuDNN's half paths that store transformed
//    or partial values in the storage type (Winograd-nonfused, split reductions).
//  The bias on f16/bf16 is rounded to the type before it is added (it is written into the
//  output first), so the CPU reference gets the rounded bias too.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "cuda/conv_cudnn.hpp"
#include "kiln/core/device.hpp"
#include "kiln/core/storage.hpp"
#include "kiln/core/tensor.hpp"
#include "kiln/ops/ops.hpp"
#include "cuda_test_util.hpp"
#include "test_support.hpp"

using namespace kiln;
using namespace kiln::cuda_test;
namespace kc = kiln::kernels::cuda;
using ops::ConvParams;
using ops::ConvTransposeParams;
using ops::PadMode;

namespace {

// |cuda - cpu| <= a * |cpu| + b * S elementwise (NaN never matches: conv outputs are finite).
::testing::AssertionResult within(const Tensor& gpu, const Tensor& cpu, const Tensor& s, double a,
                                  double b) {
  if (!(gpu.shape() == cpu.shape()))
    return ::testing::AssertionFailure() << "shape " << gpu.shape().str() << " vs " << cpu.shape().str();
  const std::vector<double> g = test::to_doubles(gpu.to(Device::cpu()));
  const std::vector<double> c = test::to_doubles(cpu), sv = test::to_doubles(s);
  int64_t bad = 0, first = -1;
  double worst = 0;  // largest |error| / allowed, for the report
  for (size_t i = 0; i < c.size(); ++i) {
    const double allowed = a * std::fabs(c[i]) + b * sv[i];
    const double err = std::fabs(g[i] - c[i]);
    if (!(err <= allowed)) {
      if (bad++ == 0) first = static_cast<int64_t>(i);
    }
    if (allowed > 0) worst = std::max(worst, err / allowed);
  }
  if (bad == 0) return ::testing::AssertionSuccess() << "worst error " << worst << " of allowed";
  return ::testing::AssertionFailure() << bad << " of " << c.size() << " elements differ; first at "
                                       << first << ": cuda " << g[first] << " cpu " << c[first]
                                       << " allowed " << a * std::fabs(c[first]) + b * sv[first];
}

struct ConvCase {
  const char* name;
  Shape x, w;
  ConvParams p;
  bool bias = true;
};

ConvParams params(std::array<int, 3> stride, std::array<int, 3> lo, std::array<int, 3> hi,
                  std::array<int, 3> dil = {1, 1, 1}, int groups = 1, PadMode mode = PadMode::zeros) {
  ConvParams p;
  p.stride = stride, p.pad_lo = lo, p.pad_hi = hi, p.dilation = dil, p.groups = groups;
  p.pad_mode = mode;
  return p;
}

// Odd channel counts, 1x1, stride 2 with asymmetric padding, depthwise, dilation 2, 3-D causal
// time padding, 1-D, N = 3, every pad mode.
std::vector<ConvCase> conv_cases() {
  return {
      {"3x3 same, N=3, C 7->5", {3, 7, 17, 19}, {5, 7, 3, 3}, ConvParams::same_pad(1, 1)},
      {"1x1, C 33->17", {2, 33, 9, 11}, {17, 33, 1, 1}, ConvParams{}},
      {"3x3 stride 2, pad (0,1)/(1,0)", {3, 6, 15, 16}, {9, 6, 3, 3}, params({2, 2, 1}, {0, 1, 0}, {1, 0, 0})},
      {"depthwise 3x3, groups = C = 12", {2, 12, 13, 10}, {12, 1, 3, 3}, ConvParams::same_pad(1, 1, 1, 12)},
      {"depthwise x2 multiplier", {1, 6, 9, 9}, {12, 1, 3, 3}, ConvParams::same_pad(2, 1, 1, 6)},
      {"dilation 2", {2, 5, 16, 14}, {3, 5, 3, 3}, ConvParams::same_pad(1, 2, 2)},
      {"groups 2, odd per group", {2, 6, 8, 7}, {10, 3, 3, 2}, params({1, 1, 1}, {1, 0, 0}, {1, 1, 0}, {1, 1, 1}, 2)},
      {"3-D causal time", {1, 4, 5, 9, 8}, {6, 4, 3, 3, 3}, params({1, 1, 1}, {2, 1, 1}, {0, 1, 1})},
      {"3-D stride (1, 2, 2)", {2, 3, 4, 10, 9}, {5, 3, 1, 3, 3}, params({1, 2, 2}, {0, 1, 1}, {0, 1, 1})},
      {"1-D stride 2, pad (1, 2)", {3, 5, 31}, {7, 5, 4}, params({2, 1, 1}, {1, 0, 0}, {2, 0, 0})},
      {"1-D causal dilation 2", {2, 4, 20}, {4, 4, 3}, params({1, 1, 1}, {4, 0, 0}, {0, 0, 0}, {2, 1, 1})},
      {"reflect pad", {2, 3, 11, 12}, {4, 3, 3, 3}, params({1, 1, 1}, {1, 1, 0}, {1, 1, 0}, {1, 1, 1}, 1, PadMode::reflect)},
      {"replicate pad", {2, 3, 11, 12}, {4, 3, 3, 3}, params({1, 1, 1}, {1, 2, 0}, {1, 0, 0}, {1, 1, 1}, 1, PadMode::replicate)},
      {"circular pad, stride 2", {2, 3, 11, 12}, {4, 3, 3, 3}, params({2, 2, 1}, {1, 1, 0}, {1, 1, 0}, {1, 1, 1}, 1, PadMode::circular)},
      {"1-D circular", {1, 3, 16}, {2, 3, 5}, params({1, 1, 1}, {2, 0, 0}, {2, 0, 0}, {1, 1, 1}, 1, PadMode::circular)},
      {"no bias", {1, 8, 7, 7}, {4, 8, 3, 3}, ConvParams::same_pad(1, 1), false},
  };
}

int64_t terms_per_output(const Shape& w, int groups_in_w_dim1) {
  int64_t k = groups_in_w_dim1;
  for (int d = 2; d < w.size(); ++d) k *= w[d];
  return k + 1;  // + the bias
}

// f32 CUDA conv vs the CPU conv.
void check_conv_f32(const ConvCase& c, uint64_t seed, bool transposed_view) {
  SCOPED_TRACE(std::string(c.name) + (transposed_view ? " (x a transposed view)" : ""));
  const Tensor x = test::random_tensor(c.x, seed);
  const Tensor w = test::random_tensor(c.w, seed + 1);
  const Tensor b = c.bias ? test::random_tensor({c.w[0]}, seed + 2) : Tensor();
  // A view with the same values: x stored with its last two dims swapped, transposed back.
  auto arg = [&](const Tensor& t) {
    const int n = t.ndim();
    return transposed_view ? t.transpose(n - 2, n - 1).contiguous().transpose(n - 2, n - 1) : t;
  };
  const Tensor ref = ops::conv(x, w, b, c.p);
  const Tensor s = ops::conv(abs_host(x), abs_host(w), abs_host(b), c.p);
  const Tensor xd = arg(x.to(kGpu)), wd = w.to(kGpu), bd = c.bias ? b.to(kGpu) : Tensor();
  poison_next_allocation(ref.nbytes());
  const Tensor got = ops::conv(xd, wd, bd, c.p);
  ASSERT_TRUE(got.device().is_cuda());
  ASSERT_EQ(got.dtype(), DType::f32);
  const double K = static_cast<double>(terms_per_output(c.w, static_cast<int>(c.w[1])));
  EXPECT_TRUE(within(got, ref, s, 0, 2 * K * std::ldexp(1.0, -24)));
}

// f16/bf16 CUDA conv vs the CPU conv on the rounded inputs.
void check_conv_half(const ConvCase& c, DType dt, uint64_t seed) {
  SCOPED_TRACE(std::string(c.name) + " " + std::string(dtype_name(dt)));
  const Tensor x = test::random_tensor(c.x, seed).to(dt);
  const Tensor w = test::random_tensor(c.w, seed + 1).to(dt);
  const Tensor b = c.bias ? test::random_tensor({c.w[0]}, seed + 2).to(dt) : Tensor();
  const Tensor xf = x.to(DType::f32), wf = w.to(DType::f32), bf = c.bias ? b.to(DType::f32) : Tensor();
  const Tensor ref = ops::conv(xf, wf, bf, c.p);
  const Tensor s = ops::conv(abs_host(xf), abs_host(wf), abs_host(bf), c.p);
  poison_next_allocation(ref.nbytes() / 2);
  const Tensor got = ops::conv(x.to(kGpu), w.to(kGpu), c.bias ? b.to(kGpu) : Tensor(), c.p);
  ASSERT_EQ(got.dtype(), dt);
  const double ut = dt == DType::f16 ? std::ldexp(1.0, -11) : std::ldexp(1.0, -8);
  const double K = static_cast<double>(terms_per_output(c.w, static_cast<int>(c.w[1])));
  EXPECT_TRUE(within(got.to(DType::f32), ref, s, ut, 2 * K * std::ldexp(1.0, -24) + ut));
}

Tensor fake_cuda(const Shape& shape, DType dtype = DType::f32) {
  auto buf = std::make_shared<std::vector<char>>(static_cast<size_t>(dtype_nbytes(dtype, shape_numel(shape))) + 64);
  auto st = Storage::borrow(buf->data(), buf->size(), Device::cuda(0), buf, false);
  return Tensor::from_storage(st, 0, shape, dtype);
}

}  // namespace

// ---------------------------------------------------------------------------- no GPU needed

TEST(CudaConvCanImplement, Params) {
  float dummy[4];
  kc::ConvCudnnParams p;
  p.x = p.w = dummy;
  p.y = dummy;
  p.spatial = 2;
  p.n = 3, p.c_in = 6, p.c_out = 9, p.groups = 3;
  p.in[0] = 15, p.in[1] = 16, p.out[0] = 8, p.out[1] = 8, p.kernel[0] = p.kernel[1] = 3;
  if (kc::conv_cudnn_built()) {
    EXPECT_EQ(kc::can_implement(p), "");
  } else {
    EXPECT_NE(kc::can_implement(p).find("no cuDNN"), std::string::npos);
    return;
  }
  p.groups = 4;
  EXPECT_NE(kc::can_implement(p).find("groups 4"), std::string::npos);
  p.groups = 3;
  p.spatial = 4;
  EXPECT_NE(kc::can_implement(p).find("spatial"), std::string::npos);
  p.spatial = 2;
  p.n = int64_t{1} << 22;  // x: 2^22 * 6 * 240 elements, past int indexing
  EXPECT_NE(kc::can_implement(p).find("2^31"), std::string::npos);
  p.n = 3;
  p.y = nullptr;
  EXPECT_NE(kc::can_implement(p).find("null"), std::string::npos);
}

TEST(CudaConvCanImplement, DescribeAndPlanKey) {
  kc::ConvCudnnParams p;
  p.spatial = 2;
  p.n = 3, p.c_in = 7, p.c_out = 5;
  p.in[0] = 33, p.in[1] = 17, p.out[0] = 33, p.out[1] = 17, p.kernel[0] = p.kernel[1] = 3;
  p.pad[0] = p.pad[1] = 1;
  EXPECT_EQ(kc::describe(p),
            "f32 conv N=3 C=7->5 in 33x17 out 33x17 kernel 3x3 stride 1x1 pad 1x1 dilation 1x1 "
            "groups 1");
  const kc::ConvCudnnKey a = kc::conv_cudnn_key(p, 0);
  kc::ConvCudnnParams q = p;
  q.x = &p;            // pointers and accumulate are not part of the plan
  q.accumulate = true;
  q.in[2] = 99;        // nor unused spatial entries
  EXPECT_EQ(kc::conv_cudnn_key(q, 0), a);
  EXPECT_EQ(kc::ConvCudnnKeyHash()(kc::conv_cudnn_key(q, 0)), kc::ConvCudnnKeyHash()(a));
  q.pad[1] = 0;
  EXPECT_FALSE(kc::conv_cudnn_key(q, 0) == a);
  EXPECT_FALSE(kc::conv_cudnn_key(p, 1) == a);
  q = p;
  q.type = kc::ElemType::bf16;
  EXPECT_FALSE(kc::conv_cudnn_key(q, 0) == a);
}

// Validation is the device-independent part: the same invalid_argument on a (fake) CUDA
// tensor as on the CPU, before any dispatch. f16/bf16 x passes the dtype check on CUDA only.
TEST(CudaConvDispatch, ValidationPrecedesDispatch) {
  for (Device dev : {Device::cpu(), Device::cuda(0)}) {
    auto make = [&](const Shape& s, DType dt = DType::f32) {
      return dev.is_cuda() ? fake_cuda(s, dt) : Tensor::zeros(s, dt);
    };
    SCOPED_TRACE(dev.str());
    EXPECT_TRUE(test::throws_error([&] { ops::conv(make({1, 4, 8, 8}), make({5, 3, 3, 3}), {}, {}); },
                                   Status::invalid_argument, {"[conv]", "expects 3 input channels"}));
    EXPECT_TRUE(test::throws_error(
        [&] { ops::conv(make({1, 4, 8, 8}), make({5, 4, 3, 3}, DType::i32), {}, {}); },
        Status::invalid_argument, {"[conv]", "weight is i32"}));
    EXPECT_TRUE(test::throws_error(
        [&] { ops::conv(make({1, 4, 2, 2}), make({5, 4, 3, 3}), {}, {}); }, Status::invalid_argument,
        {"[conv]", "kernel of dim 0 spans 3"}));
    ConvTransposeParams tp;
    tp.stride = {2, 2, 2};
    tp.output_padding = {2, 0, 0};
    EXPECT_TRUE(test::throws_error(
        [&] { ops::conv_transpose(make({1, 4, 5, 5}), make({4, 2, 3, 3}), {}, tp); },
        Status::invalid_argument, {"[conv_transpose]", "output_padding[0] is 2"}));
  }
  EXPECT_TRUE(test::throws_error(
      [&] { ops::conv(Tensor::zeros({1, 4, 8, 8}, DType::f16), Tensor::zeros({5, 4, 3, 3}), {}, {}); },
      Status::invalid_argument, {"[conv]", "x is f16"}));
  EXPECT_TRUE(test::throws_error(
      [&] { ops::conv(fake_cuda({1, 4, 8, 8}, DType::f16), fake_cuda({5, 3, 3, 3}), {}, {}); },
      Status::invalid_argument, {"[conv]", "expects 3 input channels"}));
}

// ---------------------------------------------------------------------------- GPU

TEST(CudaConv, F32MatchesCpu) {
  REQUIRE_GPU();
  uint64_t seed = 100;
  for (const ConvCase& c : conv_cases()) {
    check_conv_f32(c, seed, false);
    seed += 3;
  }
  check_conv_f32(conv_cases()[0], seed, true);
  check_conv_f32(conv_cases()[2], seed + 3, true);
}

TEST(CudaConv, HalfTypesMatchCpuOnRoundedInputs) {
  REQUIRE_GPU();
  uint64_t seed = 200;
  for (DType dt : {DType::f16, DType::bf16})
    for (const ConvCase& c : conv_cases()) {
      check_conv_half(c, dt, seed);
      seed += 3;
    }
}

// The cached plan gives the same bits on a repeated shape, and f16 weights with an f32 x are
// widened exactly (the CPU's rule).
TEST(CudaConv, RepeatedShapesAndWeightDtypes) {
  REQUIRE_GPU();
  const ConvCase c = conv_cases()[0];
  const Tensor x = test::random_tensor(c.x, 300).to(kGpu);
  const Tensor w = test::random_tensor(c.w, 301).to(DType::f16);
  const Tensor b = test::random_tensor({c.w[0]}, 302).to(DType::bf16);
  const Tensor y1 = ops::conv(x, w.to(kGpu), b.to(kGpu), c.p).to(Device::cpu());
  const Tensor y2 = ops::conv(x, w.to(kGpu), b.to(kGpu), c.p).to(Device::cpu());
  ASSERT_EQ(std::memcmp(y1.raw_data(), y2.raw_data(), y1.nbytes()), 0);
  const Tensor ref = ops::conv(x.to(Device::cpu()), w, b, c.p);
  const Tensor s = ops::conv(abs_host(x.to(Device::cpu())), abs_host(w.to(DType::f32)),
                             abs_host(b.to(DType::f32)), c.p);
  EXPECT_TRUE(within(y1, ref, s, 0, 2.0 * (7 * 9 + 1) * std::ldexp(1.0, -24)));
}

TEST(CudaConvTranspose, MatchesCpu) {
  REQUIRE_GPU();
  struct Case {
    const char* name;
    Shape x, w;  // w (Cin, Cout/groups, *K)
    ConvTransposeParams p;
    bool bias = true;
  };
  auto tp = [](std::array<int, 3> s, std::array<int, 3> pad, std::array<int, 3> op,
               std::array<int, 3> dil = {1, 1, 1}, int groups = 1) {
    ConvTransposeParams p;
    p.stride = s, p.padding = pad, p.output_padding = op, p.dilation = dil, p.groups = groups;
    return p;
  };
  const std::vector<Case> cases = {
      {"2x up, kernel 4, pad 1", {2, 5, 7, 9}, {5, 3, 4, 4}, tp({2, 2, 1}, {1, 1, 0}, {0, 0, 0})},
      {"stride 2, kernel 3, output_padding 1", {3, 4, 6, 5}, {4, 7, 3, 3}, tp({2, 2, 1}, {1, 1, 0}, {1, 1, 0})},
      {"groups 2", {1, 6, 5, 5}, {6, 2, 3, 3}, tp({1, 1, 1}, {1, 1, 0}, {0, 0, 0}, {1, 1, 1}, 2)},
      {"dilation 2", {2, 3, 6, 7}, {3, 4, 3, 3}, tp({1, 1, 1}, {2, 2, 0}, {0, 0, 0}, {2, 2, 1})},
      {"1-D stride 4", {2, 3, 11}, {3, 5, 8}, tp({4, 1, 1}, {2, 0, 0}, {0, 0, 0}), false},
      {"3-D stride (1, 2, 2)", {1, 4, 3, 5, 6}, {4, 3, 3, 4, 4}, tp({1, 2, 2}, {1, 1, 1}, {0, 0, 0})},
  };
  uint64_t seed = 400;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const Tensor x = test::random_tensor(c.x, seed++);
    const Tensor w = test::random_tensor(c.w, seed++);
    const int64_t cout = c.w[1] * c.p.groups;
    const Tensor b = c.bias ? test::random_tensor({cout}, seed++) : Tensor();
    const Tensor ref = ops::conv_transpose(x, w, b, c.p);
    const Tensor s = ops::conv_transpose(abs_host(x), abs_host(w), abs_host(b), c.p);
    poison_next_allocation(ref.nbytes());
    const Tensor got = ops::conv_transpose(x.to(kGpu), w.to(kGpu), c.bias ? b.to(kGpu) : Tensor(), c.p);
    ASSERT_TRUE(got.device().is_cuda());
    // At most Cin/groups * kernel volume products per output (fewer where strides skip taps).
    const double K = static_cast<double>(terms_per_output(c.w, static_cast<int>(c.x[1] / c.p.groups)));
    EXPECT_TRUE(within(got, ref, s, 0, 2 * K * std::ldexp(1.0, -24)));
  }
}
