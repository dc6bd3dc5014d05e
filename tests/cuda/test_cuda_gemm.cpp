// CUDA matmul / linear (cuBLASLt) against the CPU ops on fresh random inputs: awkward sizes
// (M, N, K mixed from 1, 7, 33, 77, 320, 1280), batched 3-D/4-D with broadcasting, transposed
// and leading-dim-strided views read in place, views that need a copy, bias on and off, f32,
// f16 and bf16. Skipped without a CUDA device.
//
// Reference: the CPU op in f32 on the same inputs, rounded first to the dtype under test (so
// f16/bf16 storage error is not counted against the GEMM). Tolerance per output element, with
// S = (|A| @ |B|) + |bias| (the sum the rounding errors scale with; the CPU computes it too):
//  - accumulation: both sides sum K f32 products in different orders (CPU: oneDNN/OpenBLAS
//    blocks; GPU: tensor-core tiles, maybe split-K with f32 partials). Each is within
//    K * 2^-24 * S of the exact sum (Higham, Accuracy and Stability, (3.5)), so they are within
//    2 * K * 2^-24 * S of each other. This is a worst-case bound (random signs give ~sqrt(K)),
//    yet a layout or transpose bug gives errors of order S, 2^23 / K times larger.
//  - output rounding: f32 none beyond the sum; f16 2^-11 and bf16 2^-8 relative (one
//    round-to-nearest of the f32 result), plus f16's subnormal step 2^-24 absolute.
// f32 runs without TF32 (CUBLAS_COMPUTE_32F), so the f32 bound holds; TF32 would need 2^-11.
//
// Poisoning: as in test_cuda_ops.cpp, a 0xFF (NaN) block of the output's size is freed just
// before each op so the allocator likely hands it to the output; a skipped element is NaN.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include "kiln/core/device.hpp"
#include "kiln/core/tensor.hpp"
#include "kiln/ops/ops.hpp"
#include "cuda_test_util.hpp"
#include "test_support.hpp"

using namespace kiln;
using namespace kiln::cuda_test;

namespace {

// Random values in [-1, 1) representable in `dt` (returned as f32 on the CPU).
Tensor rounded_random(const Shape& shape, uint64_t seed, DType dt) {
  return test::random_tensor(shape, seed).to(dt).to(DType::f32);
}

// f32 CPU view of a CUDA result of any float dtype.
Tensor host_f32(const Tensor& gpu) {
  return gpu.to(Device::cpu()).to(DType::f32).contiguous();
}

::testing::AssertionResult gemm_matches(const Tensor& gpu, const Tensor& ref, const Tensor& scale,
                                        int64_t K, DType dt) {
  if (!(gpu.shape() == ref.shape()))
    return ::testing::AssertionFailure()
           << "shape " << gpu.shape().str() << " vs " << ref.shape().str();
  if (gpu.dtype() != dt)
    return ::testing::AssertionFailure()
           << "dtype " << dtype_name(gpu.dtype()) << ", expected " << dtype_name(dt);
  const double u_out = dt == DType::f32   ? 0.0
                       : dt == DType::f16 ? std::ldexp(1.0, -11)
                                          : std::ldexp(1.0, -8);
  const double atol = dt == DType::f16 ? std::ldexp(1.0, -24) : 0.0;
  const double acc = 2.0 * static_cast<double>(K) * std::ldexp(1.0, -24);
  const Tensor g = host_f32(gpu), r = ref.contiguous(), s = scale.contiguous();
  const float *pg = g.data<float>(), *pr = r.data<float>(), *ps = s.data<float>();
  int64_t bad = 0, first = -1;
  double worst = 0;  // largest error / tolerance
  for (int64_t i = 0; i < r.numel(); ++i) {
    const double err = std::fabs(static_cast<double>(pg[i]) - pr[i]);
    const double tol = u_out * std::fabs(pr[i]) + acc * ps[i] + atol;
    const bool ok = std::isfinite(pg[i]) && err <= tol;
    if (std::isfinite(pg[i]) && tol > 0) worst = std::max(worst, err / tol);
    if (!ok && bad++ == 0) first = i;
  }
  if (bad == 0) {
    std::cout << "    worst error / tolerance " << worst << "\n";
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure()
         << bad << " of " << r.numel() << " elements differ; first at " << first << ": cuda "
         << pg[first] << " cpu " << pr[first] << " scale " << ps[first];
}

const DType kTypes[] = {DType::f32, DType::f16, DType::bf16};

// The stored tensors of one operand and the view taken of them (the same on both devices).
using View = std::function<Tensor(const Tensor&)>;
const View kPlain = [](const Tensor& t) { return t; };
const View kTransposed = [](const Tensor& t) { return t.transpose(-1, -2); };

// matmul(view_a(A), view_b(B)) on CUDA in `dt` vs the CPU in f32 on the rounded values.
void check_matmul(const Shape& sa, const View& va, const Shape& sb, const View& vb, DType dt,
                  uint64_t seed) {
  const Tensor a = rounded_random(sa, seed, dt), b = rounded_random(sb, seed + 1, dt);
  const Tensor ref = ops::matmul(va(a), vb(b));
  const Tensor scale = ops::matmul(va(abs_host(a)), vb(abs_host(b)));
  const Tensor ga = a.to(dt).to(kGpu), gb = b.to(dt).to(kGpu);
  poison_next_allocation(static_cast<size_t>(dtype_nbytes(dt, ref.numel())));
  const Tensor out = ops::matmul(va(ga), vb(gb));
  EXPECT_TRUE(out.device().is_cuda());
  EXPECT_TRUE(out.is_contiguous());
  const int64_t K = va(a).size(-1);
  EXPECT_TRUE(gemm_matches(out, ref, scale, K, dt));
}

struct Mnk {
  int64_t m, n, k;
};
const Mnk kSizes[] = {{1, 1, 1},    {7, 33, 77},   {33, 7, 320},    {77, 320, 33}, {320, 77, 1280},
                      {1, 1280, 7}, {1280, 1, 33}, {33, 1280, 320}, {77, 77, 1},   {320, 1280, 77}};

}  // namespace

TEST(CudaGemm, MatmulSizesAndTransposes) {
  REQUIRE_GPU();
  uint64_t seed = 100;
  for (DType dt : kTypes)
    for (const Mnk& s : kSizes)
      for (int t = 0; t < 4; ++t) {
        const bool ta = t & 1, tb = t & 2;
        SCOPED_TRACE(std::string(dtype_name(dt)) + " M=" + std::to_string(s.m) +
                     " N=" + std::to_string(s.n) + " K=" + std::to_string(s.k) +
                     (ta ? " a^T" : "") + (tb ? " b^T" : ""));
        check_matmul(ta ? Shape{s.k, s.m} : Shape{s.m, s.k}, ta ? kTransposed : kPlain,
                     tb ? Shape{s.n, s.k} : Shape{s.k, s.n}, tb ? kTransposed : kPlain, dt,
                     seed += 2);
      }
}

// Row-major views with a leading-dim stride are read in place; views that are neither that nor
// a plain transpose (every other column) are copied first. Both must give the same numbers.
TEST(CudaGemm, MatmulStridedViews) {
  REQUIRE_GPU();
  uint64_t seed = 300;
  const View cols_of_wider = [](const Tensor& t) { return t.narrow(-1, 3, t.size(-1) - 8); };
  const View every_other_col = [](const Tensor& t) { return t.slice(-1, 0, t.size(-1), 2); };
  const View t_of_slice = [](const Tensor& t) {
    return t.narrow(-1, 1, t.size(-1) - 4).transpose(-1, -2);
  };
  for (DType dt : kTypes) {
    SCOPED_TRACE(dtype_name(dt));
    check_matmul({33, 77 + 8}, cols_of_wider, {77, 7}, kPlain, dt, seed++);
    check_matmul({33, 77}, kPlain, {77, 320 + 8}, cols_of_wider, dt, seed++);
    check_matmul({7, 2 * 33}, every_other_col, {33, 77}, kPlain, dt, seed++);
    check_matmul({77, 33}, kPlain, {33, 2 * 7}, every_other_col, dt, seed++);
    check_matmul({77, 33 + 4}, t_of_slice, {77, 320}, kPlain, dt, seed++);  // (33, 77), ld 37, ^T
    check_matmul(
        {5, 33, 77}, [](const Tensor& t) { return t.select(0, 2); }, {77, 7}, kPlain, dt, seed++);
  }
}

TEST(CudaGemm, MatmulBatchedAndBroadcast) {
  REQUIRE_GPU();
  uint64_t seed = 500;
  const View batch_swapped = [](const Tensor& t) { return t.permute({1, 0, 2, 3}); };
  for (DType dt : kTypes) {
    SCOPED_TRACE(dtype_name(dt));
    check_matmul({5, 33, 77}, kPlain, {5, 77, 7}, kPlain, dt, seed++);        // one strided batch
    check_matmul({5, 33, 77}, kPlain, {77, 320}, kPlain, dt, seed++);         // b broadcast
    check_matmul({7, 33}, kPlain, {4, 33, 77}, kPlain, dt, seed++);           // a broadcast
    check_matmul({1, 33, 77}, kPlain, {4, 7, 77}, kTransposed, dt, seed++);   // size-1 batch, b^T
    check_matmul({2, 1, 7, 33}, kPlain, {1, 3, 33, 77}, kPlain, dt, seed++);  // loop of 2 x batch 3
    check_matmul({2, 3, 77, 7}, kTransposed, {3, 33, 77}, kTransposed, dt, seed++);
    check_matmul({3, 2, 33, 77}, batch_swapped, {2, 3, 77, 7}, kPlain, dt,
                 seed++);                                                // uncoalescible
    check_matmul({2, 3, 1, 320}, kPlain, {320, 1}, kPlain, dt, seed++);  // M = N = 1
    check_matmul({77}, kPlain, {2, 77, 33}, kPlain, dt, seed++);         // vector @ batch
    check_matmul({2, 33, 77}, kPlain, {77}, kPlain, dt, seed++);         // batch @ vector
    check_matmul({320}, kPlain, {320}, kPlain, dt, seed++);              // dot product
  }
}

TEST(CudaGemm, MatmulEmpty) {
  REQUIRE_GPU();
  for (DType dt : kTypes) {
    const Tensor a = Tensor::zeros({3, 0}, dt, kGpu), b = Tensor::zeros({0, 4}, dt, kGpu);
    poison_next_allocation(12 * 4);
    const Tensor out = ops::matmul(a, b);  // K = 0: zeros, as torch gives
    ASSERT_EQ(out.shape(), Shape({3, 4}));
    const Tensor h = host_f32(out);
    for (int64_t i = 0; i < 12; ++i) EXPECT_EQ(h.data<float>()[i], 0.f) << i;
    EXPECT_EQ(ops::matmul(Tensor::zeros({0, 5}, dt, kGpu), Tensor::zeros({5, 4}, dt, kGpu)).shape(),
              Shape({0, 4}));
  }
}

namespace {

// linear(x, w, bias) on CUDA with x in `xt`, weight in `wt` vs the CPU in f32 on the values the
// GPU computes with (x rounded to xt; weight and bias rounded to wt, then to xt as the op does).
void check_linear(const Shape& xs, int64_t out_f, bool with_bias, DType xt, DType wt,
                  bool w_transposed, uint64_t seed) {
  const int64_t in_f = xs[xs.size() - 1];
  const Tensor x = rounded_random(xs, seed, xt);
  const Tensor w_stored =
      rounded_random(w_transposed ? Shape{in_f, out_f} : Shape{out_f, in_f}, seed + 1, wt)
          .to(xt)
          .to(DType::f32);
  const Tensor bias =
      with_bias ? rounded_random({out_f}, seed + 2, wt).to(xt).to(DType::f32) : Tensor();
  auto wv = [&](const Tensor& t) { return w_transposed ? t.transpose(0, 1) : t; };
  const Tensor ref = ops::linear(x, wv(w_stored), bias);
  Tensor scale =
      ops::linear(abs_host(x), wv(abs_host(w_stored)), with_bias ? abs_host(bias) : Tensor());
  const Tensor gx = x.to(xt).to(kGpu), gw = w_stored.to(wt).to(kGpu);
  const Tensor gb = with_bias ? bias.to(wt).to(kGpu) : Tensor();
  poison_next_allocation(static_cast<size_t>(dtype_nbytes(xt, ref.numel())));
  const Tensor out = ops::linear(gx, wv(gw), gb);
  EXPECT_TRUE(out.device().is_cuda());
  EXPECT_TRUE(gemm_matches(out, ref, scale, in_f, xt));
}

}  // namespace

TEST(CudaGemm, LinearSizesBiasAndWeightTypes) {
  REQUIRE_GPU();
  uint64_t seed = 700;
  const Shape xs_list[] = {{1, 7}, {7, 33}, {77, 320}, {2, 77, 320}, {2, 3, 33, 1280}, {320, 1}};
  const int64_t outs[] = {1, 7, 33, 77, 320, 1280};
  struct Types {
    DType x, w;
  };
  const Types types[] = {{DType::f32, DType::f32},   {DType::f32, DType::f16},
                         {DType::f32, DType::bf16},  {DType::f16, DType::f16},
                         {DType::bf16, DType::bf16}, {DType::bf16, DType::f32}};
  int i = 0;
  for (const Types& t : types)
    for (const Shape& xs : xs_list)
      for (bool bias : {false, true}) {
        const int64_t out_f = outs[i++ % 6];
        const bool w_t = i % 3 == 0;
        SCOPED_TRACE("x " + xs.str() + " " + std::string(dtype_name(t.x)) + ", weight (" +
                     std::to_string(out_f) + ", in) " + std::string(dtype_name(t.w)) +
                     (w_t ? " transposed view" : "") + (bias ? ", bias" : ""));
        check_linear(xs, out_f, bias, t.x, t.w, w_t, seed += 3);
      }
}

// A non-contiguous x (transposed batch dims) is reshaped to rows on the device first.
TEST(CudaGemm, LinearNonContiguousInput) {
  REQUIRE_GPU();
  for (DType dt : kTypes) {
    const Tensor x = rounded_random({33, 2, 77}, 900, dt), w = rounded_random({7, 77}, 901, dt);
    const Tensor b = rounded_random({7}, 902, dt);
    const Tensor ref = ops::linear(x.transpose(0, 1), w, b);
    const Tensor scale = ops::linear(abs_host(x).transpose(0, 1), abs_host(w), abs_host(b));
    const Tensor out =
        ops::linear(x.to(dt).to(kGpu).transpose(0, 1), w.to(dt).to(kGpu), b.to(dt).to(kGpu));
    EXPECT_TRUE(gemm_matches(out, ref, scale, 77, dt)) << dtype_name(dt);
  }
}

// Shape errors are the CPU op's, word for word; validation precedes any CUDA work.
TEST(CudaGemm, BadShapesGiveTheCpuErrors) {
  REQUIRE_GPU();
  auto message = [](const std::function<void()>& fn) -> std::string {
    try {
      fn();
    } catch (const Error& e) {
      return e.what();
    }
    return "(no error)";
  };
  struct Case {
    Shape a, b;
  };
  for (const Case& c :
       {Case{{3, 5}, {4, 7}}, Case{{2, 3, 5}, {4, 5, 7}}, Case{{5}, {4}}, Case{{}, {3}}}) {
    const Tensor a = test::random_tensor(c.a, 1), b = test::random_tensor(c.b, 2);
    const std::string cpu = message([&] { ops::matmul(a, b); });
    EXPECT_EQ(message([&] { ops::matmul(a.to(kGpu), b.to(kGpu)); }), cpu);
    EXPECT_NE(cpu, "(no error)");
  }
  const Tensor x = test::random_tensor({3, 5}, 3), w = test::random_tensor({7, 4}, 4);
  const Tensor bias = test::random_tensor({6}, 5), w_ok = test::random_tensor({7, 5}, 6);
  EXPECT_EQ(message([&] { ops::linear(x.to(kGpu), w.to(kGpu)); }),
            message([&] { ops::linear(x, w); }));
  EXPECT_EQ(message([&] { ops::linear(x.to(kGpu), w_ok.to(kGpu), bias.to(kGpu)); }),
            message([&] { ops::linear(x, w_ok, bias); }));
}
