// matmul / linear / the GEMM backends against a naive double-precision reference.
#include <gtest/gtest.h>

#include <cmath>

#include "cpu/gemm_f32.hpp"
#include "kiln/ops/gemm.hpp"
#include "kiln/ops/ops.hpp"
#include "test_support.hpp"

using namespace kiln;

namespace {

// Reference for (batch..., M, K) @ (batch..., K, N) with already-equal batch shapes.
std::vector<double> ref_matmul(const std::vector<double>& a, const std::vector<double>& b,
                               int64_t batch, int64_t M, int64_t K, int64_t N, bool b_broadcast) {
  std::vector<double> c(batch * M * N, 0.0);
  for (int64_t z = 0; z < batch; ++z)
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        double acc = 0;
        for (int64_t k = 0; k < K; ++k)
          acc += a[(z * M + m) * K + k] * b[(b_broadcast ? 0 : z * K * N) + k * N + n];
        c[(z * M + m) * N + n] = acc;
      }
  return c;
}

// f32 accumulation over K terms of products in [-1, 1]: error grows like sqrt(K) * eps.
double tol_for(int64_t K) { return 2e-6 * std::sqrt(static_cast<double>(K)) + 1e-6; }

}  // namespace

TEST(Sgemm, KernelMatchesReferenceOnAwkwardSizesAndTransposes) {
  const int64_t sizes[][3] = {{1, 1, 1}, {7, 33, 5}, {31, 17, 77}, {6, 16, 256}, {97, 130, 300},
                              {13, 4097, 3}};
  for (auto& s : sizes) {
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb) {
        int64_t M = s[0], N = s[1], K = s[2];
        Tensor A = test::random_tensor({M * K}, 1 + M + ta);
        Tensor B = test::random_tensor({K * N}, 2 + N + tb);
        Tensor C = test::random_tensor({M * N}, 3);
        auto a = test::to_doubles(A), b = test::to_doubles(B), c0 = test::to_doubles(C);
        const float alpha = 0.75f, beta = -0.5f;
        kernels::cpu::sgemm(ta, tb, M, N, K, alpha, A.data<float>(), ta ? M : K, B.data<float>(),
                            tb ? K : N, beta, C.mutable_data<float>(), N);
        std::vector<double> ref(M * N);
        for (int64_t m = 0; m < M; ++m)
          for (int64_t n = 0; n < N; ++n) {
            double acc = 0;
            for (int64_t k = 0; k < K; ++k)
              acc += (ta ? a[k * M + m] : a[m * K + k]) * (tb ? b[n * K + k] : b[k * N + n]);
            ref[m * N + n] = alpha * acc + beta * c0[m * N + n];
          }
        EXPECT_TRUE(test::all_close(C, ref, tol_for(K), 1e-5))
            << M << "x" << N << "x" << K << " ta=" << ta << " tb=" << tb;
      }
  }
}

TEST(Sgemm, BetaZeroIgnoresNaNInOutput) {
  Tensor A = test::random_tensor({5 * 9}, 1), B = test::random_tensor({9 * 20}, 2);
  Tensor C = Tensor::full({5 * 20}, std::nanf(""));
  kernels::cpu::sgemm(false, false, 5, 20, 9, 1.f, A.data<float>(), 9, B.data<float>(), 20, 0.f,
                      C.mutable_data<float>(), 20);
  for (double v : test::to_doubles(C)) ASSERT_TRUE(std::isfinite(v));
}

class GemmBackends : public ::testing::TestWithParam<ops::GemmBackend> {};

TEST_P(GemmBackends, MatmulBatchedBroadcastAndTransposedViews) {
  if (!ops::gemm_backend_available(GetParam())) GTEST_SKIP() << "backend not compiled in";
  ops::GemmBackend saved = ops::gemm_backend();
  ops::set_gemm_backend(GetParam());
  const int64_t B = 3, M = 33, K = 77, N = 31;
  Tensor a = test::random_tensor({B, M, K}, 10);
  Tensor b = test::random_tensor({K, N}, 11);  // broadcast over the batch
  auto ref = ref_matmul(test::to_doubles(a), test::to_doubles(b), B, M, K, N, true);
  EXPECT_TRUE(test::all_close(ops::matmul(a, b), ref, tol_for(K), 1e-5));
  // Same product through transposed views (no copy): a^T^T and b stored as (N, K).
  Tensor at = a.transpose(1, 2).contiguous().transpose(1, 2);
  Tensor bt = b.transpose(0, 1).contiguous().transpose(0, 1);
  EXPECT_FALSE(at.is_contiguous());
  EXPECT_TRUE(test::all_close(ops::matmul(at, bt), ref, tol_for(K), 1e-5));
  // A large single GEMM that takes the multithreaded path.
  Tensor x = test::random_tensor({300, 260}, 12), y = test::random_tensor({260, 270}, 13);
  auto ref2 = ref_matmul(test::to_doubles(x), test::to_doubles(y), 1, 300, 260, 270, true);
  EXPECT_TRUE(test::all_close(ops::matmul(x, y), ref2, tol_for(260), 1e-5));
  ops::set_gemm_backend(saved);
}

INSTANTIATE_TEST_SUITE_P(All, GemmBackends,
                         ::testing::Values(ops::GemmBackend::kiln, ops::GemmBackend::openblas,
                                           ops::GemmBackend::onednn),
                         [](const auto& info) { return std::string(ops::gemm_backend_name(info.param)); });

TEST(Matmul, VectorsAndErrors) {
  Tensor v = test::random_tensor({5}, 1), m = test::random_tensor({5, 3}, 2);
  Tensor r = ops::matmul(v, m);
  EXPECT_EQ(r.shape(), Shape({3}));
  auto vd = test::to_doubles(v), md = test::to_doubles(m);
  std::vector<double> ref(3, 0);
  for (int j = 0; j < 3; ++j)
    for (int k = 0; k < 5; ++k) ref[j] += vd[k] * md[k * 3 + j];
  EXPECT_TRUE(test::all_close(r, ref, 1e-6, 1e-6));
  EXPECT_THROW(ops::matmul(test::random_tensor({2, 4}, 1), test::random_tensor({5, 3}, 2)), Error);
  EXPECT_THROW(ops::matmul(test::random_tensor({2, 2, 4}, 1), test::random_tensor({3, 4, 3}, 2)),
               Error);
  EXPECT_THROW(ops::matmul(test::random_tensor({2, 4}, 1).to(DType::f16), m), Error);
}

TEST(Linear, LowPrecisionWeightsAndBias) {
  const int64_t in = 77, out = 33;
  Tensor x = test::random_tensor({2, 5, in}, 1);
  Tensor w = test::random_tensor({out, in}, 2);
  Tensor bias = test::random_tensor({out}, 3);
  for (DType wt : {DType::f32, DType::f16, DType::bf16, DType::f8_e4m3}) {
    Tensor wq = w.to(wt);
    auto wd = test::to_doubles(wq);  // reference uses the rounded weights
    auto xd = test::to_doubles(x), bd = test::to_doubles(bias);
    std::vector<double> ref(10 * out);
    for (int r = 0; r < 10; ++r)
      for (int o = 0; o < out; ++o) {
        double acc = bd[o];
        for (int k = 0; k < in; ++k) acc += xd[r * in + k] * wd[o * in + k];
        ref[r * out + o] = acc;
      }
    Tensor y = ops::linear(x, wq, bias);
    EXPECT_EQ(y.shape(), Shape({2, 5, out}));
    EXPECT_TRUE(test::all_close(y, ref, tol_for(in), 1e-5)) << dtype_name(wt);
  }
  EXPECT_THROW(ops::linear(x, test::random_tensor({out, in + 1}, 4)), Error);
  EXPECT_THROW(ops::linear(x, w, test::random_tensor({out + 1}, 5)), Error);
}
