// The CUDA elementwise ops (add sub mul div, scale and the activations, float math, clamp,
// compare, where) on f16 and bf16 storage: f32 math inside, one rounding to the 16-bit output.
// The GPU tests skip without a CUDA device; the can_implement and validation checks at the end
// run everywhere. (The 16-bit norms and softmax are CudaOps.HalfNorms / HalfSoftmax in
// test_cuda_ops.cpp, with the same bound.)
//
// Reference: the CPU op (f32) on the 16-bit inputs widened to f32 (exact), its result rounded
// once to the 16-bit type (the CPU's conversion: round to nearest even).
//
// Bounds, per element:
//  - Exact ops (add/sub/mul/div, scale, relu, clamp, sqrt, compare, where): bit-identical.
//    The kernel widens the same 16-bit values to the same f32 values, runs the same IEEE f32
//    operations (no FMA contraction; the f32 tests show these ops give the CPU's bits) and
//    rounds the f32 result with the CPU's conversion (the cast tests show the device's
//    conversion gives the CPU's bits). where copies the picked value. 0 ulp is stronger than one
//    16-bit ulp and, unlike it, catches a truncating conversion.
//  - libdevice transcendentals (exp, sin, cos, tanh, sigmoid, silu, gelu): the kernel's f32
//    value g32 and the CPU's c32 differ by at most delta, the f32 tolerance of the same op in
//    test_cuda_ops.cpp (4-8 f32 ulps, or 1e-6 absolute for gelu's cancellation). Rounding
//    to nearest errs by at most half a 16-bit ulp of the value rounded, and that ulp grows with
//    the magnitude, so
//        |round(g32) - round(c32)| <= u/2 + delta + u/2 = u + delta,
//    u = the 16-bit ulp at |c32| + delta. delta is ~2^-20 relative, far below u (2^-8 bf16,
//    2^-11 f16), so in practice this is one 16-bit ulp; delta only matters for outputs near 0
//    (gelu of large negative x, f16 subnormals), where it is the f32 test's absolute bound.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "cuda/elementwise.hpp"
#include "cuda_test_util.hpp"
#include "kiln/core/device.hpp"
#include "kiln/core/tensor.hpp"
#include "kiln/ops/ops.hpp"
#include "test_support.hpp"

using namespace kiln;
using namespace kiln::cuda_test;
namespace kc = kiln::kernels::cuda;

namespace {

// The f32 tolerance of an op (test_cuda_ops.cpp's): ulps of f32 at the value, or absolute.
struct F32Tol {
  int ulp = 0;
  double atol = 0;
};

// The 16-bit type's ulp at magnitude v (subnormals: the smallest normal's ulp).
double ulp16(double v, DType dt) {
  const int mant = dt == DType::bf16 ? 7 : 10;
  const int min_exp = dt == DType::bf16 ? -126 : -14;
  const int e = v == 0 ? min_exp : std::max(min_exp, std::ilogb(v));
  return std::ldexp(1.0, e - mant);
}

double ulp32(double v) {
  const int e = v == 0 ? -126 : std::max(-126, std::ilogb(v));
  return std::ldexp(1.0, e - 23);
}

// An input of an op: `half` ones are stored in the 16-bit type under test (on the device) and
// given to the CPU widened to f32; the others (boolean or f32 masks) are given to both as they are.
struct In {
  Tensor t;
  bool half = true;
};

// Runs `op` on the CPU (widened inputs) and on the device (16-bit inputs; views made by `op` on
// each side, so non-contiguous views exist on the device) and checks the bound above: bitwise
// when tol is zero. The output must be of dt, contiguous, on the device.
void check_half(DType dt, const std::vector<In>& inputs,
                const std::function<Tensor(const std::vector<Tensor>&)>& op, F32Tol tol,
                const std::string& what) {
  SCOPED_TRACE(what + (dt == DType::bf16 ? " (bf16)" : " (f16)"));
  std::vector<Tensor> cpu, dev;
  for (const In& in : inputs) {
    const Tensor stored = in.half ? in.t.to(dt) : in.t;
    cpu.push_back(in.half ? stored.to(DType::f32) : stored);
    dev.push_back(stored.to(kGpu));
  }
  const Tensor ref = op(cpu).contiguous();  // f32
  ASSERT_EQ(ref.dtype(), DType::f32);
  const Tensor ref16 = ref.to(dt);  // rounded once
  poison_next_allocation(static_cast<size_t>(ref.numel()) * 2);
  const Tensor out = op(dev);
  ASSERT_TRUE(out.device().is_cuda());
  ASSERT_EQ(out.dtype(), dt);
  ASSERT_TRUE(out.shape() == ref.shape()) << out.shape().str() << " vs " << ref.shape().str();
  EXPECT_TRUE(out.is_contiguous());
  const Tensor got16 = out.to(Device::cpu());
  const bool exact = tol.ulp == 0 && tol.atol == 0;
  const auto* bg = static_cast<const uint16_t*>(got16.raw_data());
  const auto* br = static_cast<const uint16_t*>(ref16.raw_data());
  const Tensor g = got16.to(DType::f32), r = ref16.to(DType::f32);
  const float* pg = g.data<float>();
  const float* pr = r.data<float>();
  const float* pe = ref.data<float>();
  int64_t bad = 0, first = -1;
  for (int64_t i = 0; i < ref.numel(); ++i) {
    bool ok;
    if (exact) {
      ok = bg[i] == br[i];
    } else if (std::isnan(pe[i]) || std::isnan(pg[i])) {
      ok = std::isnan(pe[i]) && std::isnan(pg[i]);
    } else {
      const double mag = std::fabs(static_cast<double>(pe[i]));
      const double delta = std::max(tol.ulp * ulp32(mag), tol.atol);
      ok = std::fabs(static_cast<double>(pg[i]) - pr[i]) <= ulp16(mag + delta, dt) + delta;
    }
    if (!ok && bad++ == 0) first = i;
  }
  EXPECT_EQ(bad, 0) << " of " << ref.numel() << " differ; first at " << first << ": cuda "
                    << (first >= 0 ? pg[first] : 0.f) << " (0x" << std::hex
                    << (first >= 0 ? bg[first] : 0) << ") cpu " << std::dec
                    << (first >= 0 ? pr[first] : 0.f) << " (0x" << std::hex
                    << (first >= 0 ? br[first] : 0) << std::dec << "), f32 "
                    << (first >= 0 ? pe[first] : 0.f);
}

// Values on a 1/8 grid in [-4, 4): exact in f16 and bf16, so comparisons meet exact ties.
Tensor grid_tensor(const Shape& shape, uint64_t seed) {
  Tensor t = test::random_tensor(shape, seed, -4.f, 4.f);
  float* p = t.mutable_data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = std::round(p[i] * 8.f) / 8.f;
  return t;
}

const DType kHalfTypes[] = {DType::f16, DType::bf16};

// Odd lengths, rows that are not a multiple of 8 (the 16-bit vector width) or are a multiple
// of 4 but not 8 (vectorized for f32 only), and multiples of 8.
const std::vector<Shape> kShapes = {{1},          {7},     {31},    {33, 77}, {3, 4097},
                                    {2, 3, 5, 7}, {4, 64}, {6, 20}, {5, 24},  {1000}};

using Ops = std::vector<Tensor>;

}  // namespace

TEST(CudaHalfOps, Binary) {
  REQUIRE_GPU();
  // (a, b): same shape (vector path when aligned and the length is a multiple of 8), trailing
  // bias with a period % 8 == 0, % 4 == 0 only and odd (periodic paths), bias on the left,
  // middle and 3-way broadcast (strided path), scalars and 0-dim operands.
  const std::vector<std::pair<Shape, Shape>> shapes = {
      {{33, 77}, {33, 77}}, {{3, 4097}, {3, 4097}}, {{7}, {7}},
      {{16, 8}, {16, 8}},   {{4, 64}, {64}},        {{5, 24}, {24}},
      {{6, 20}, {20}},      {{33, 77}, {77}},       {{77}, {33, 77}},
      {{3, 4097}, {3, 1}},  {{2, 1, 5}, {3, 1}},    {{}, {31}},
      {{31}, {}},           {{1}, {33, 77}},        {{2, 3, 5, 7}, {3, 1, 7}},
      {{5, 16}, {1, 16}}};
  using Fn = Tensor (*)(const Tensor&, const Tensor&);
  const std::pair<const char*, Fn> fns[] = {
      {"add", ops::add}, {"sub", ops::sub}, {"mul", ops::mul}, {"div", ops::div}};
  uint64_t seed = 1000;
  for (DType dt : kHalfTypes) {
    for (const auto& [name, fn] : fns) {
      const auto f = [fn](const Ops& in) { return fn(in[0], in[1]); };
      for (const auto& [sa, sb] : shapes) {
        const Tensor a = test::random_tensor(sa, seed++, -3.f, 3.f);
        const Tensor b = test::random_tensor(sb, seed++, 0.5f, 2.f);
        check_half(dt, {{a}, {b}}, f, {}, std::string(name) + " " + sa.str() + " " + sb.str());
      }
      const Tensor a = test::random_tensor({77, 33}, seed++);
      const Tensor b = test::random_tensor({33, 77}, seed++, 0.5f, 2.f);
      // A transposed operand and a strided slice: the strided kernel.
      check_half(
          dt, {{a}, {b}}, [fn](const Ops& in) { return fn(in[0].transpose(0, 1), in[1]); }, {},
          std::string(name) + " transposed a");
      check_half(
          dt, {{b}, {a}},
          [fn](const Ops& in) {
            return fn(in[0].slice(1, 1, 77, 2), in[1].transpose(0, 1).slice(1, 0, 76, 2));
          },
          {}, std::string(name) + " sliced");
      // Contiguous views at an element offset: 16-byte aligned (8 halves in: vector path with
      // an offset) and not (4 halves: aligned for f32 but not for 16-bit, the scalar path).
      const Tensor c = test::random_tensor({1032}, seed++);
      const Tensor e = test::random_tensor({1032}, seed++, 0.5f, 2.f);
      for (int64_t off : {8, 4, 1}) {
        check_half(
            dt, {{c}, {e}},
            [fn, off](const Ops& in) {
              return fn(in[0].slice(0, off, 1032), in[1].slice(0, off, 1032));
            },
            {}, std::string(name) + " offset " + std::to_string(off));
      }
    }
  }
}

TEST(CudaHalfOps, Unary) {
  REQUIRE_GPU();
  struct Case {
    const char* name;
    std::function<Tensor(const Tensor&)> f;
    F32Tol tol;
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
      {"clamp_hi", [](const Tensor& x) { return ops::clamp(x, std::nullopt, 0.3f); }, {}},
  };
  uint64_t seed = 2000;
  for (DType dt : kHalfTypes) {
    for (const Case& c : cases) {
      const auto f = [&c](const Ops& in) { return c.f(in[0]); };
      for (const Shape& shape : kShapes) {
        const Tensor x = test::random_tensor(shape, seed++, c.lo, c.hi);
        check_half(dt, {{x}}, f, c.tol, std::string(c.name) + " " + shape.str());
      }
      // Views: transposed and sliced (strided kernel), a row at an odd offset (contiguous,
      // unaligned), an aligned offset with a tail (vector path) and a 4-element offset.
      const Tensor x = test::random_tensor({77, 33}, seed++, c.lo, c.hi);
      check_half(
          dt, {{x}}, [&c](const Ops& in) { return c.f(in[0].transpose(0, 1)); }, c.tol,
          std::string(c.name) + " transposed");
      check_half(
          dt, {{x}}, [&c](const Ops& in) { return c.f(in[0].slice(1, 2, 33, 2)); }, c.tol,
          std::string(c.name) + " sliced");
      check_half(
          dt, {{x}}, [&c](const Ops& in) { return c.f(in[0].select(0, 1)); }, c.tol,
          std::string(c.name) + " offset row");
      const Tensor v = test::random_tensor({1037}, seed++, c.lo, c.hi);
      for (int64_t off : {8, 4}) {
        check_half(
            dt, {{v}}, [&c, off](const Ops& in) { return c.f(in[0].slice(0, off, 1037)); }, c.tol,
            std::string(c.name) + " offset " + std::to_string(off));
      }
    }
  }
}

// compare writes a 1 / 0 mask in x's dtype (f32 for f32 x, as on the CPU).
TEST(CudaHalfOps, Compare) {
  REQUIRE_GPU();
  const ops::Cmp cmps[] = {ops::Cmp::eq, ops::Cmp::ne, ops::Cmp::lt,
                           ops::Cmp::le, ops::Cmp::gt, ops::Cmp::ge};
  uint64_t seed = 3000;
  for (DType dt : kHalfTypes) {
    for (ops::Cmp cmp : cmps) {
      for (float value : {0.5f, 0.3f}) {  // 0.3: not a 16-bit value, compared in f32
        const auto f = [cmp, value](const Ops& in) { return ops::compare(in[0], cmp, value); };
        for (const Shape& shape : kShapes) {
          check_half(dt, {{grid_tensor(shape, seed++)}}, f, {},
                     "compare " + std::to_string(static_cast<int>(cmp)) + " " + shape.str());
        }
        check_half(
            dt, {{grid_tensor({33, 77}, seed++)}},
            [cmp, value](const Ops& in) { return ops::compare(in[0].transpose(0, 1), cmp, value); },
            {}, "compare transposed");
      }
    }
  }
}

TEST(CudaHalfOps, Where) {
  REQUIRE_GPU();
  uint64_t seed = 4000;
  for (DType dt : kHalfTypes) {
    const Tensor x = grid_tensor({33, 77}, seed++);
    const Tensor a = test::random_tensor({33, 77}, seed++);
    const Tensor b = test::random_tensor({77}, seed++);
    // A mask in the operands' 16-bit dtype (compare's output on the device), b a bias.
    check_half(
        dt, {{x}, {a}, {b}},
        [](const Ops& in) {
          return ops::where(ops::compare(in[0], ops::Cmp::gt, 0.f), in[1], in[2]);
        },
        {}, "where 16-bit mask");
    // An f32 mask with 16-bit operands, holding NaN (true) and -0 (false) too.
    Tensor m = test::random_tensor({33, 77}, seed++);
    float* pm = m.mutable_data<float>();
    for (int64_t i = 0; i < m.numel(); ++i)
      pm[i] = i % 5 == 0   ? std::numeric_limits<float>::quiet_NaN()
              : i % 5 == 1 ? -0.f
              : i % 5 == 2 ? 0.f
                           : pm[i];
    check_half(
        dt, {{m, false}, {a}, {b}}, [](const Ops& in) { return ops::where(in[0], in[1], in[2]); },
        {}, "where f32 mask with NaN and -0");
    // The same special values in a 16-bit mask.
    check_half(
        dt, {{m}, {a}, {b}}, [](const Ops& in) { return ops::where(in[0], in[1], in[2]); }, {},
        "where 16-bit mask with NaN and -0");
    // Boolean cond broadcast (33, 1), 0-dim b.
    Tensor cond = Tensor::empty({33, 1}, DType::boolean);
    auto* pc = static_cast<uint8_t*>(cond.mutable_raw_data());
    for (int i = 0; i < 33; ++i) pc[i] = static_cast<uint8_t>(i % 3 == 0);
    check_half(
        dt, {{cond, false}, {a}, {Tensor::full({}, 2.5f)}},
        [](const Ops& in) { return ops::where(in[0], in[1], in[2]); }, {}, "where bool, scalar b");
    // Transposed and sliced views of all three.
    check_half(
        dt, {{x}, {a}},
        [](const Ops& in) {
          return ops::where(ops::compare(in[0], ops::Cmp::le, 0.f).transpose(0, 1),
                            in[1].transpose(0, 1), in[1].transpose(0, 1).slice(0, 0, 1));
        },
        {}, "where transposed");
    // Odd sizes, 3-way broadcast.
    const Tensor c3 = grid_tensor({2, 1, 7}, seed++);
    const Tensor a3 = test::random_tensor({5, 1}, seed++);
    const Tensor b3 = test::random_tensor({2, 5, 7}, seed++);
    check_half(
        dt, {{c3}, {a3}, {b3}},
        [](const Ops& in) {
          return ops::where(ops::compare(in[0], ops::Cmp::ge, 1.f), in[1], in[2]);
        },
        {}, "where 3-way broadcast");
  }
}

// Mixed dtypes on the device: refused by the kernels' can_implement, as unsupported.
TEST(CudaHalfOps, MixedDtypesAreUnsupported) {
  REQUIRE_GPU();
  const Tensor f = test::random_tensor({4, 8}, 5000).to(kGpu);
  const Tensor h = test::random_tensor({4, 8}, 5001).to(DType::bf16).to(kGpu);
  const Tensor h16 = test::random_tensor({4, 8}, 5002).to(DType::f16).to(kGpu);
  EXPECT_TRUE(
      test::throws_error([&] { ops::add(f, h); }, Status::unsupported,
                         {"[add]", "no cuda:0 kernel for this case", "a is f32 but b is bf16"}));
  EXPECT_TRUE(test::throws_error([&] { ops::mul(h16, h); }, Status::unsupported,
                                 {"[mul]", "a is f16 but b is bf16"}));
  EXPECT_TRUE(test::throws_error([&] { ops::where(ops::compare(h16, ops::Cmp::gt, 0.f), h, h); },
                                 Status::unsupported,
                                 {"[where]", "cond is f16 but a and b are bf16"}));
  EXPECT_TRUE(test::throws_error([&] { ops::where(f, h, f); }, Status::unsupported,
                                 {"[where]", "a is bf16 but b is f32"}));
  // f32 masks and boolean conds go with any operand dtype; outputs keep the operands' dtype.
  EXPECT_EQ(ops::where(f, h, h).dtype(), DType::bf16);
  EXPECT_EQ(ops::compare(h, ops::Cmp::gt, 0.f).dtype(), DType::bf16);
  EXPECT_EQ(ops::compare(f, ops::Cmp::gt, 0.f).dtype(), DType::f32);
}

// The CPU keeps its f32 contract and messages for 16-bit inputs (no GPU needed).
TEST(CudaHalfOpsNoGpu, CpuKeepsItsF32Contract) {
  const Tensor x = test::random_tensor({4, 8}, 6000).to(DType::bf16);
  const Tensor f = test::random_tensor({4, 8}, 6001);
  test::expect_error([&] { ops::add(x, f); }, Status::invalid_argument, "a is bf16, expected f32");
  test::expect_error([&] { ops::sub(f, x.to(DType::f16)); }, Status::invalid_argument,
                     "b is f16, expected f32");
  test::expect_error([&] { ops::relu(x); }, Status::invalid_argument, "x is bf16, expected f32");
  test::expect_error([&] { ops::compare(x, ops::Cmp::gt, 0.f); }, Status::invalid_argument,
                     "x is bf16, expected f32");
  test::expect_error([&] { ops::where(x, f, f); }, Status::invalid_argument,
                     "cond is bf16, expected an f32 mask or boolean");
  test::expect_error([&] { ops::where(f, x, f); }, Status::invalid_argument,
                     "a is bf16, expected f32");
}

// can_implement of the 16-bit elementwise kernels (no GPU needed).
TEST(CudaHalfOpsNoGpu, CanImplement) {
  float dummy[16] = {};
  kc::UnaryParams u;
  u.x = u.out = dummy;
  u.type = kc::ElemType::bf16;
  EXPECT_EQ(kc::can_implement(u), "");
  u.type = static_cast<kc::ElemType>(7);
  EXPECT_NE(kc::can_implement(u).find("element type"), std::string::npos);

  kc::BinaryParams b;
  b.a = b.b = b.out = dummy;
  b.ndim = 1;
  b.shape[0] = 4;
  b.a_type = b.b_type = kc::ElemType::f16;
  EXPECT_EQ(kc::can_implement(b), "");
  b.b_type = kc::ElemType::f32;
  EXPECT_NE(kc::can_implement(b).find("a is f16 but b is f32"), std::string::npos);

  kc::WhereParams w;
  w.cond = w.a = w.b = w.out = dummy;
  w.a_type = w.b_type = kc::ElemType::bf16;
  w.cond_type = kc::ElemType::f32;
  EXPECT_EQ(kc::can_implement(w), "");
  w.cond_type = kc::ElemType::bf16;
  EXPECT_EQ(kc::can_implement(w), "");
  w.cond_type = kc::ElemType::f16;
  EXPECT_NE(kc::can_implement(w).find("cond is f16 but a and b are bf16"), std::string::npos);
  w.cond_is_byte = true;  // cond_type is not read for a boolean cond
  EXPECT_EQ(kc::can_implement(w), "");
  w.b_type = kc::ElemType::f32;
  EXPECT_NE(kc::can_implement(w).find("a is bf16 but b is f32"), std::string::npos);
}
