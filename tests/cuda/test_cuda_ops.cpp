// Every CUDA op against the CPU op (the reference) on fresh random inputs: awkward sizes,
// broadcasting, non-contiguous views. Skipped without a CUDA device.
//
// Poisoning: casts write into a destination the test filled with 0xFF bytes (NaN in f32, f16
// and bf16). Ops allocate their own outputs, so before each op the test allocates a block of
// the output's size, fills it with 0xFF and frees it: the CUDA allocator usually hands the same
// block to the op's output right after (reported per test, not asserted, since it is not
// guaranteed), so an element a kernel forgets to write shows up as NaN.
//
// Tolerances, per op (ulp = units in the last place of the CPU's value):
//  - exact (0 ulp): add/sub/mul/div, scale, relu, clamp, compare, where, sqrt, casts — the
//    same IEEE-rounded operations in the same order on both sides (the kernels use
//    __fmul_rn/__fadd_rn where nvcc would otherwise fuse an FMA).
//  - exp, sin, cos, tanh: 4 ulp — CUDA's expf/sinf/cosf/tanhf are within 2 ulp of the true
//    value (CUDA C Programming Guide, Mathematical Functions), glibc's within 1.
//  - sigmoid, silu: 6 ulp — one expf (2+1 ulp apart), then an add and a division on values
//    that carry that difference.
//  - gelu (erf, tanh): 8 ulp or 1e-6 absolute — 1 + erf(x) (1 + tanh) cancels for x < -2,
//    which turns erff's 2 ulp into an absolute error of ~2.4e-7 * |x| / 2.
//  - softmax: 4e-6 relative (~32 ulp): f32 online sums per thread (<= 9 terms at 4097 columns
//    over 512 threads) with a rescale each time the running max grows, merged over a 9-level
//    tree, against the CPU's double sums; plus 2 ulp of expf and one division.
//  - layer/rms norm: 4e-6 absolute + 4e-6 relative on outputs of size ~1: f32 Welford (mean
//    error ~ a few ulp of max|x|, rstd relative error ~1e-6 worst) against the CPU's double
//    two-pass statistics. group_norm: 8e-6 (groups of up to ~5000 values).
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <functional>
#include <optional>
#include <vector>

#include "kiln/core/device.hpp"
#include "kiln/core/tensor.hpp"
#include "kiln/ops/ops.hpp"
#include "cuda_test_util.hpp"
#include "test_support.hpp"

using namespace kiln;
using namespace kiln::cuda_test;

namespace {

// Distance in ulps between two finite floats of the same sign domain (monotone integer map).
int64_t ulp_distance(float a, float b) {
  auto key = [](float f) {
    const int32_t i = std::bit_cast<int32_t>(f);
    return i < 0 ? static_cast<int64_t>(INT32_MIN) - i : static_cast<int64_t>(i);
  };
  return std::llabs(key(a) - key(b));
}

struct Tol {
  int64_t ulp = 0;    // allowed ulp distance
  double atol = 0;    // or absolute difference
  double rtol = 0;    // or relative difference
};

// Compares a CUDA result with the CPU reference element by element (f32, same shape). NaN
// matches NaN only.
::testing::AssertionResult matches(const Tensor& gpu, const Tensor& cpu, Tol tol) {
  if (!(gpu.shape() == cpu.shape()))
    return ::testing::AssertionFailure() << "shape " << gpu.shape().str() << " vs " << cpu.shape().str();
  const Tensor g = gpu.to(Device::cpu()).contiguous();
  const Tensor c = cpu.contiguous();
  const float* pg = g.data<float>();
  const float* pc = c.data<float>();
  int64_t bad = 0, first = -1;
  for (int64_t i = 0; i < c.numel(); ++i) {
    const float x = pg[i], r = pc[i];
    bool ok;
    if (std::isnan(r) || std::isnan(x)) {
      ok = std::isnan(r) && std::isnan(x);
    } else {
      const double d = std::fabs(static_cast<double>(x) - r);
      ok = ulp_distance(x, r) <= tol.ulp || d <= tol.atol || d <= tol.rtol * std::fabs(r);
    }
    if (!ok && bad++ == 0) first = i;
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << bad << " of " << c.numel() << " elements differ; first at "
                                       << first << ": cuda " << pg[first] << " cpu " << pc[first]
                                       << " (" << ulp_distance(pg[first], pc[first]) << " ulp)";
}

// Runs `op` on the CPU inputs and on their CUDA copies (made with `view` applied on each
// side, so non-contiguous views are built on the device) and compares.
void check_op(const std::vector<Tensor>& inputs, const std::function<Tensor(const std::vector<Tensor>&)>& op,
              Tol tol, const std::string& what) {
  SCOPED_TRACE(what);
  std::vector<Tensor> dev;
  for (const Tensor& t : inputs) dev.push_back(t.to(kGpu));
  const Tensor ref = op(inputs);
  poison_next_allocation(ref.nbytes());
  const Tensor out = op(dev);
  EXPECT_TRUE(out.device().is_cuda());
  EXPECT_TRUE(out.is_contiguous());
  EXPECT_TRUE(matches(out, ref, tol));
}

// Inputs on a 1/8 grid in [-4, 4), so comparisons meet exact ties.
Tensor grid_tensor(const Shape& shape, uint64_t seed) {
  Tensor t = test::random_tensor(shape, seed, -4.f, 4.f);
  float* p = t.mutable_data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = std::round(p[i] * 8.f) / 8.f;
  return t;
}

const std::vector<Shape> kShapes = {{1}, {7}, {31}, {33, 77}, {3, 4097}, {2, 3, 5, 7}, {4, 64}};

}  // namespace

TEST(CudaOps, CastsAreExactAndFillEveryElement) {
  REQUIRE_GPU();
  const DType types[] = {DType::f32, DType::f16, DType::bf16};
  uint64_t seed = 10;
  for (const Shape& shape : kShapes) {
    // Values spanning f16's subnormals, normals and overflow: exercises every rounding branch.
    Tensor src32 = test::random_tensor(shape, seed++, -1.f, 1.f);
    float* p = src32.mutable_data<float>();
    for (int64_t i = 0; i < src32.numel(); ++i) p[i] = std::ldexp(p[i], static_cast<int>(i % 45) - 28);
    for (DType from : types) {
      const Tensor src = src32.to(from);
      for (DType to : types) {
        SCOPED_TRACE(std::string(dtype_name(from)) + " -> " + std::string(dtype_name(to)) + " " + shape.str());
        const Tensor ref = src.to(to);
        Tensor dst = Tensor::empty(shape, to, kGpu);
        poison(dst);
        dst.copy_from(src.to(kGpu));
        const Tensor back = dst.to(Device::cpu());
        ASSERT_EQ(std::memcmp(back.raw_data(), ref.raw_data(), ref.nbytes()), 0);
      }
    }
  }
}

TEST(CudaOps, StridedCopiesAndCasts) {
  REQUIRE_GPU();
  const Tensor h = test::random_tensor({33, 77}, 3);
  const Tensor d = h.to(kGpu);
  // Transposed and sliced views made contiguous on the device, and cast on the way.
  for (DType to : {DType::f32, DType::f16, DType::bf16}) {
    const Tensor ref_t = h.transpose(0, 1).contiguous().to(to);
    const Tensor got_t = d.transpose(0, 1).to(to).contiguous().to(Device::cpu());
    ASSERT_EQ(std::memcmp(got_t.raw_data(), ref_t.raw_data(), ref_t.nbytes()), 0);
    const Tensor ref_s = h.slice(1, 1, 76, 3).contiguous().to(to);
    const Tensor got_s = d.slice(1, 1, 76, 3).contiguous().to(to).to(Device::cpu());
    ASSERT_EQ(std::memcmp(got_s.raw_data(), ref_s.raw_data(), ref_s.nbytes()), 0);
  }
  // Broadcast source into a strided destination.
  Tensor dst = Tensor::empty({77, 33}, DType::f32, kGpu);
  poison(dst);
  Tensor dst_t = dst.transpose(0, 1);  // (33, 77) view with strides (1, 33)
  const Tensor row = test::random_tensor({77}, 4);
  dst_t.copy_from(row.to(kGpu));
  Tensor ref = Tensor::empty({33, 77}, DType::f32);
  ref.copy_from(row);
  EXPECT_TRUE(matches(dst_t, ref, {}));
}

TEST(CudaOps, Unary) {
  REQUIRE_GPU();
  struct Case {
    const char* name;
    std::function<Tensor(const Tensor&)> f;
    Tol tol;
    float lo = -4.f, hi = 4.f;
  };
  const std::vector<Case> cases = {
      {"scale", [](const Tensor& x) { return ops::scale(x, 1.7f, -0.3f); }, {}},
      {"silu", [](const Tensor& x) { return ops::silu(x); }, {6}},
      {"gelu", [](const Tensor& x) { return ops::gelu(x); }, {8, 1e-6}},
      {"gelu_tanh", [](const Tensor& x) { return ops::gelu(x, ops::GeluApprox::tanh); }, {8, 1e-6}},
      {"sigmoid", [](const Tensor& x) { return ops::sigmoid(x); }, {6}},
      {"tanh", [](const Tensor& x) { return ops::tanh(x); }, {4}},
      {"relu", [](const Tensor& x) { return ops::relu(x); }, {}},
      {"exp", [](const Tensor& x) { return ops::exp(x); }, {4}},
      {"sqrt", [](const Tensor& x) { return ops::sqrt(x); }, {}, 0.f, 9.f},
      {"sin", [](const Tensor& x) { return ops::sin(x); }, {4}, -20.f, 20.f},
      {"cos", [](const Tensor& x) { return ops::cos(x); }, {4}, -20.f, 20.f},
      {"clamp", [](const Tensor& x) { return ops::clamp(x, -0.5f, 0.75f); }, {}},
      {"clamp_lo", [](const Tensor& x) { return ops::clamp(x, 0.25f, std::nullopt); }, {}},
  };
  uint64_t seed = 100;
  for (const Case& c : cases) {
    for (const Shape& shape : kShapes) {
      const Tensor x = test::random_tensor(shape, seed++, c.lo, c.hi);
      check_op({x}, [&](const std::vector<Tensor>& in) { return c.f(in[0]); }, c.tol,
               std::string(c.name) + " " + shape.str());
    }
    // Non-contiguous views (the kernel's strided path) and an unaligned contiguous one.
    const Tensor x = test::random_tensor({77, 33}, seed++, c.lo, c.hi);
    check_op({x}, [&](const std::vector<Tensor>& in) { return c.f(in[0].transpose(0, 1)); }, c.tol,
             std::string(c.name) + " transposed");
    check_op({x}, [&](const std::vector<Tensor>& in) { return c.f(in[0].slice(1, 2, 33, 2)); },
             c.tol, std::string(c.name) + " sliced");
    check_op({x}, [&](const std::vector<Tensor>& in) { return c.f(in[0].select(0, 1)); }, c.tol,
             std::string(c.name) + " offset row");
  }
}

TEST(CudaOps, Compare) {
  REQUIRE_GPU();
  const ops::Cmp cmps[] = {ops::Cmp::eq, ops::Cmp::ne, ops::Cmp::lt,
                           ops::Cmp::le, ops::Cmp::gt, ops::Cmp::ge};
  uint64_t seed = 200;
  for (ops::Cmp cmp : cmps) {
    for (const Shape& shape : kShapes) {
      const Tensor x = grid_tensor(shape, seed++);
      check_op({x}, [&](const std::vector<Tensor>& in) { return ops::compare(in[0], cmp, 0.5f); },
               {}, "compare " + std::to_string(static_cast<int>(cmp)) + " " + shape.str());
    }
  }
}

TEST(CudaOps, BinaryBroadcasting) {
  REQUIRE_GPU();
  // (a, b) shapes: same shape (vector path), trailing bias (periodic path, period % 4 == 0 and
  // not), bias on the left, middle broadcast and 3-way broadcast (strided path), scalars.
  const std::vector<std::pair<Shape, Shape>> shapes = {
      {{33, 77}, {33, 77}}, {{3, 4097}, {3, 4097}}, {{7}, {7}},         {{4, 64}, {64}},
      {{33, 77}, {77}},     {{77}, {33, 77}},       {{3, 4097}, {3, 1}}, {{2, 1, 5}, {3, 1}},
      {{}, {31}},           {{31}, {}},             {{1}, {33, 77}},     {{2, 3, 5, 7}, {3, 1, 7}},
      {{5, 12}, {1, 12}}};
  using Fn = Tensor (*)(const Tensor&, const Tensor&);
  const std::pair<const char*, Fn> fns[] = {
      {"add", ops::add}, {"sub", ops::sub}, {"mul", ops::mul}, {"div", ops::div}};
  uint64_t seed = 300;
  for (const auto& [name, fn] : fns) {
    for (const auto& [sa, sb] : shapes) {
      const Tensor a = test::random_tensor(sa, seed++);
      const Tensor b = test::random_tensor(sb, seed++, 0.5f, 2.f);
      check_op({a, b}, [&](const std::vector<Tensor>& in) { return fn(in[0], in[1]); }, {},
               std::string(name) + " " + sa.str() + " " + sb.str());
    }
    // Transposed operand.
    const Tensor a = test::random_tensor({77, 33}, seed++);
    const Tensor b = test::random_tensor({33, 77}, seed++, 0.5f, 2.f);
    check_op({a, b}, [&](const std::vector<Tensor>& in) { return fn(in[0].transpose(0, 1), in[1]); },
             {}, std::string(name) + " transposed");
  }
}

TEST(CudaOps, Where) {
  REQUIRE_GPU();
  const Tensor x = grid_tensor({33, 77}, 400);
  const Tensor a = test::random_tensor({33, 77}, 401);
  const Tensor b = test::random_tensor({77}, 402);
  check_op({x, a, b},
           [](const std::vector<Tensor>& in) {
             return ops::where(ops::compare(in[0], ops::Cmp::gt, 0.f), in[1], in[2]);
           },
           {}, "where f32 mask, bias b");
  // Boolean cond (one byte per element), broadcast (33, 1), scalar b.
  Tensor cond = Tensor::empty({33, 1}, DType::boolean);
  auto* pc = static_cast<uint8_t*>(cond.mutable_raw_data());
  for (int i = 0; i < 33; ++i) pc[i] = static_cast<uint8_t>(i % 3 == 0);
  const Tensor s = Tensor::full({}, 2.5f);
  check_op({cond, a, s},
           [](const std::vector<Tensor>& in) { return ops::where(in[0], in[1], in[2]); }, {},
           "where bool, scalar b");
  check_op({x, a},
           [](const std::vector<Tensor>& in) {
             return ops::where(ops::compare(in[0], ops::Cmp::le, 0.f).transpose(0, 1),
                               in[1].transpose(0, 1), in[1].transpose(0, 1).slice(0, 0, 1));
           },
           {}, "where transposed");
}

TEST(CudaOps, Softmax) {
  REQUIRE_GPU();
  const Tol tol{0, 0, 4e-6};
  const std::vector<Shape> shapes = {{1},       {7},        {31, 33}, {33, 77}, {3, 4097},
                                     {5, 1024}, {2, 1025},  {4, 8},   {2, 3, 5, 7}};
  uint64_t seed = 500;
  for (const Shape& shape : shapes) {
    for (float range : {1.f, 30.f}) {  // 30: large logits, exercises the running-max rescale
      const Tensor x = test::random_tensor(shape, seed++, -range, range);
      check_op({x}, [](const std::vector<Tensor>& in) { return ops::softmax(in[0], -1); }, tol,
               "softmax " + shape.str() + " range " + std::to_string(range));
    }
  }
  // Not the last dim: composed from transposes and strided copies.
  const Tensor x = test::random_tensor({33, 77}, seed++);
  check_op({x}, [](const std::vector<Tensor>& in) { return ops::softmax(in[0], 0); }, tol,
           "softmax dim 0");
  check_op({x}, [](const std::vector<Tensor>& in) { return ops::softmax(in[0].transpose(0, 1), -1); },
           tol, "softmax of a transposed view");
}

TEST(CudaOps, LayerAndRmsNorm) {
  REQUIRE_GPU();
  const Tol tol{0, 4e-6, 4e-6};
  const std::vector<Shape> shapes = {{1}, {7}, {31, 33}, {33, 77}, {3, 4097}, {5, 1024}, {2, 2048}, {4, 64}};
  uint64_t seed = 600;
  for (const Shape& shape : shapes) {
    const int64_t D = shape[shape.size() - 1];
    const Tensor x = test::random_tensor(shape, seed++, -2.f, 3.f);
    const Tensor w = test::random_tensor({D}, seed++, 0.5f, 1.5f);
    const Tensor b = test::random_tensor({D}, seed++);
    check_op({x, w, b},
             [](const std::vector<Tensor>& in) { return ops::layer_norm(in[0], in[1], in[2], 1e-5f); },
             tol, "layer_norm affine " + shape.str());
    check_op({x}, [](const std::vector<Tensor>& in) { return ops::layer_norm(in[0], {}, {}, 1e-6f); },
             tol, "layer_norm " + shape.str());
    check_op({x, w},
             [](const std::vector<Tensor>& in) { return ops::rms_norm(in[0], in[1], 1e-6f); }, tol,
             "rms_norm weight " + shape.str());
    check_op({x}, [](const std::vector<Tensor>& in) { return ops::rms_norm(in[0], {}, 1e-5f); }, tol,
             "rms_norm " + shape.str());
  }
  const Tensor x = test::random_tensor({77, 33}, seed++);
  check_op({x}, [](const std::vector<Tensor>& in) { return ops::layer_norm(in[0].transpose(0, 1), {}, {}, 1e-5f); },
           tol, "layer_norm of a transposed view");
}

TEST(CudaOps, GroupNorm) {
  REQUIRE_GPU();
  const Tol tol{0, 8e-6, 8e-6};
  struct Case {
    Shape shape;
    int groups;
  };
  const std::vector<Case> cases = {{{1, 1, 1}, 1},     {{2, 6, 7, 5}, 3},  {{2, 32, 8, 8}, 8},
                                   {{1, 4, 4097}, 2},  {{3, 64, 33, 77}, 32}, {{2, 8}, 4},
                                   {{1, 12, 3, 4, 5}, 6}};
  uint64_t seed = 700;
  for (const Case& c : cases) {
    const int64_t C = c.shape[1];
    const Tensor x = test::random_tensor(c.shape, seed++, -2.f, 3.f);
    const Tensor w = test::random_tensor({C}, seed++, 0.5f, 1.5f);
    const Tensor b = test::random_tensor({C}, seed++);
    const int g = c.groups;
    check_op({x, w, b},
             [g](const std::vector<Tensor>& in) { return ops::group_norm(in[0], g, in[1], in[2], 1e-5f); },
             tol, "group_norm affine " + c.shape.str());
    check_op({x}, [g](const std::vector<Tensor>& in) { return ops::group_norm(in[0], g, {}, {}, 1e-6f); },
             tol, "group_norm " + c.shape.str());
  }
}

// f16/bf16 storage with f32 math (norms and softmax; x and y 16-bit, the norms' affine
// parameters f32 or x's dtype). The elementwise ops' 16-bit tests are test_cuda_half_ops.cpp.
// Reference: the CPU op on the 16-bit inputs widened to f32 (exact), rounded once to the 16-bit
// type. The kernels run the f32 code on the widened values, so their pre-rounding value g32
// differs from the CPU's c32 by at most delta, the f32 tolerance above (atol + rtol |c32|:
// 4e-6 + 4e-6 for the row norms, 8e-6 + 8e-6 for group_norm, 4e-6 relative for softmax; the
// 16-bit kernels' 8-wide vectors change the per-thread summation order, not the bound's
// derivation). Each rounding to nearest errs by at most half a 16-bit ulp of the value rounded,
// and that ulp grows with the magnitude, so
//     |round(g32) - round(c32)| <= u/2 + delta + u/2 = u + delta,   u = ulp16(|c32| + delta).
// delta is far below u at the outputs' usual size (bf16 ulp at 1: 7.8e-3, f16: 9.8e-4), so this
// is one 16-bit ulp there; delta matters only for outputs near 0 (a norm's w x^ + b cancelling,
// tiny softmax probabilities), where the 16-bit ulp shrinks below the f32 error. No wider
// absolute slack (e.g. 1e-3 max|y|) is needed: it would hide one-ulp bugs of f16 near 1.
namespace {

double ulp16(double v, DType dt) {
  const int mant = dt == DType::bf16 ? 7 : 10;
  const int min_exp = dt == DType::bf16 ? -126 : -14;  // smallest normal exponent
  const int e = v == 0 ? min_exp : std::max(min_exp, std::ilogb(v));
  return std::ldexp(1.0, e - mant);
}

// The f32 tolerance the 16-bit bound adds: atol + rtol |reference|.
struct Delta {
  double atol = 0, rtol = 0;
};
constexpr Delta kRowNormDelta{4e-6, 4e-6};
constexpr Delta kGroupNormDelta{8e-6, 8e-6};
constexpr Delta kSoftmaxDelta{0, 4e-6};

void check_half_op(DType dt, bool half_params, const std::vector<Tensor>& f32_inputs,
                     const std::function<Tensor(const std::vector<Tensor>&)>& op,
                     const std::string& what, Delta delta) {
  SCOPED_TRACE(what + (dt == DType::bf16 ? " bf16" : " f16") +
               (half_params ? ", 16-bit parameters" : ", f32 parameters"));
  std::vector<Tensor> cpu, dev;
  for (size_t i = 0; i < f32_inputs.size(); ++i) {
    const bool is_x = i == 0;
    const Tensor stored = is_x || half_params ? f32_inputs[i].to(dt) : f32_inputs[i];
    cpu.push_back(stored.to(DType::f32));
    dev.push_back(stored.to(kGpu));
  }
  const Tensor ref = op(cpu);                       // f32, from the exact widened inputs
  const Tensor ref16 = ref.to(dt).to(DType::f32);   // rounded once
  poison_next_allocation(ref.numel() * 2);
  const Tensor out = op(dev);
  ASSERT_EQ(out.dtype(), dt);
  ASSERT_TRUE(out.shape() == ref.shape());
  const Tensor g = out.to(Device::cpu()).to(DType::f32);
  const float* pg = g.data<float>();
  const float* pr = ref16.data<float>();
  const float* pe = ref.data<float>();
  int64_t bad = 0, first = -1;
  for (int64_t i = 0; i < g.numel(); ++i) {
    const double d = std::fabs(static_cast<double>(pg[i]) - pr[i]);
    const double mag = std::fabs(static_cast<double>(pe[i]));
    const double dl = delta.atol + delta.rtol * mag;
    if (!(d <= ulp16(mag + dl, dt) + dl) && bad++ == 0) first = i;  // NaN fails
  }
  EXPECT_EQ(bad, 0) << "first at " << first << ": cuda " << (first >= 0 ? pg[first] : 0.f)
                    << " cpu " << (first >= 0 ? pr[first] : 0.f);
}

}  // namespace

TEST(CudaOps, HalfNorms) {
  REQUIRE_GPU();
  uint64_t seed = 800;
  for (DType dt : {DType::f16, DType::bf16}) {
    for (bool half_params : {false, true}) {
      // Warp rows (<= 1024) and block rows, each with lengths % 8 == 0 (16-bit vectors), % 4
      // == 0 only (f32's vector width) and odd.
      for (const Shape& shape : std::vector<Shape>{{7}, {33, 77}, {3, 4097}, {5, 1024}, {4, 64}, {2, 8},
                                                   {6, 20}, {2, 2048}, {3, 1036}}) {
        const int64_t D = shape[shape.size() - 1];
        const Tensor x = test::random_tensor(shape, seed++, -2.f, 3.f);
        const Tensor w = test::random_tensor({D}, seed++, 0.5f, 1.5f);
        const Tensor b = test::random_tensor({D}, seed++);
        check_half_op(dt, half_params, {x, w, b},
                        [](const std::vector<Tensor>& in) { return ops::layer_norm(in[0], in[1], in[2], 1e-5f); },
                        "layer_norm affine " + shape.str(), kRowNormDelta);
        check_half_op(dt, half_params, {x, w},
                        [](const std::vector<Tensor>& in) { return ops::rms_norm(in[0], in[1], 1e-6f); },
                        "rms_norm weight " + shape.str(), kRowNormDelta);
      }
      struct Case {
        Shape shape;
        int groups;
      };
      for (const Case& c : std::vector<Case>{{{2, 6, 7, 5}, 3}, {{2, 32, 8, 8}, 8}, {{1, 4, 4097}, 2},
                                             {{3, 64, 33, 77}, 32}, {{1, 16, 16, 16}, 4},
                                             {{2, 8, 3, 4}, 4}}) {
        const int64_t C = c.shape[1];
        const Tensor x = test::random_tensor(c.shape, seed++, -2.f, 3.f);
        const Tensor w = test::random_tensor({C}, seed++, 0.5f, 1.5f);
        const Tensor b = test::random_tensor({C}, seed++);
        const int g = c.groups;
        check_half_op(dt, half_params, {x, w, b},
                        [g](const std::vector<Tensor>& in) { return ops::group_norm(in[0], g, in[1], in[2], 1e-5f); },
                        "group_norm affine " + c.shape.str(), kGroupNormDelta);
      }
    }
    // No parameters, and a transposed view (made contiguous by the op).
    const Tensor x = test::random_tensor({77, 33}, seed++);
    check_half_op(dt, false, {x},
                    [](const std::vector<Tensor>& in) { return ops::layer_norm(in[0].transpose(0, 1), {}, {}, 1e-5f); },
                    "layer_norm of a transposed view", kRowNormDelta);
    check_half_op(dt, false, {x},
                    [](const std::vector<Tensor>& in) { return ops::rms_norm(in[0], {}, 1e-5f); },
                    "rms_norm no weight", kRowNormDelta);
    // A contiguous view at an offset that is not 16-byte aligned (the scalar path).
    const Tensor x3 = test::random_tensor({3, 5, 20}, seed++, -2.f, 3.f);
    check_half_op(dt, false, {x3},
                    [](const std::vector<Tensor>& in) { return ops::layer_norm(in[0].select(0, 1), {}, {}, 1e-5f); },
                    "layer_norm at an unaligned offset", kRowNormDelta);
  }
}

TEST(CudaOps, HalfSoftmax) {
  REQUIRE_GPU();
  uint64_t seed = 850;
  for (DType dt : {DType::f16, DType::bf16}) {
    std::vector<Shape> shapes = kShapes;
    for (const Shape& s : std::vector<Shape>{{6, 20}, {5, 1024}, {2, 2048}, {3, 1036}}) shapes.push_back(s);
    for (const Shape& shape : shapes) {
      const Tensor x = test::random_tensor(shape, seed++, -8.f, 8.f);
      check_half_op(dt, false, {x}, [](const std::vector<Tensor>& in) { return ops::softmax(in[0], -1); },
                    "softmax " + shape.str(), kSoftmaxDelta);
    }
    const Tensor x = test::random_tensor({6, 5, 9}, seed++, -8.f, 8.f);
    check_half_op(dt, false, {x}, [](const std::vector<Tensor>& in) { return ops::softmax(in[0], 1); },
                  "softmax over a middle dim", kSoftmaxDelta);
    const Tensor x3 = test::random_tensor({3, 5, 20}, seed++, -8.f, 8.f);
    check_half_op(dt, false, {x3}, [](const std::vector<Tensor>& in) { return ops::softmax(in[0].select(0, 1), -1); },
                  "softmax at an unaligned offset", kSoftmaxDelta);
  }
}

// Validation of the 16-bit norms (no GPU needed for the CPU side): the CPU keeps its f32
// contract; on CUDA, parameters of a third dtype are refused before any launch.
TEST(CudaOps, HalfNormsValidation) {
  const Tensor x16 = test::random_tensor({4, 8}, 900).to(DType::bf16);
  test::expect_error([&] { ops::layer_norm(x16, {}, {}, 1e-5f); }, Status::invalid_argument,
                     "x is bf16, expected f32");
  REQUIRE_GPU();
  const Tensor xg = x16.to(kGpu);
  const Tensor wf16 = test::random_tensor({8}, 901).to(DType::f16).to(kGpu);
  test::expect_error([&] { ops::layer_norm(xg, wf16, {}, 1e-5f); }, Status::invalid_argument,
                     "weight is f16, expected f32");
  const Tensor wb = test::random_tensor({8}, 902).to(DType::bf16).to(kGpu);
  const Tensor bf = test::random_tensor({8}, 903).to(kGpu);
  test::expect_error([&] { ops::layer_norm(xg, wb, bf, 1e-5f); }, Status::invalid_argument,
                     "weight is bf16 but bias is f32");
}
