// Op dispatch checks that need no GPU: the kernels' can_implement(), the host helpers that pick
// their paths, and the errors for mixed devices and ops without a CUDA kernel. A "CUDA" tensor
// here is host memory borrowed under the name cuda:0: every check below throws before any
// kernel or CUDA runtime call would touch it.
#include <gtest/gtest.h>

#include <vector>

#include "cuda/cast.hpp"
#include "cuda/elementwise.hpp"
#include "cuda/gemm_cublaslt.hpp"
#include "cuda/norm.hpp"
#include "cuda/softmax.hpp"
#include "kiln/core/storage.hpp"
#include "kiln/ops/ops.hpp"
#include "test_support.hpp"

using namespace kiln;
namespace kc = kiln::kernels::cuda;

namespace {

// f32 tensor of `shape` whose storage claims to be on cuda:0 (host memory, never dereferenced
// by the code under test).
Tensor fake_cuda(const Shape& shape, DType dtype = DType::f32) {
  auto buf = std::make_shared<std::vector<char>>(static_cast<size_t>(dtype_nbytes(dtype, shape_numel(shape))) + 64);
  auto st = Storage::borrow(buf->data(), buf->size(), Device::cuda(0), buf, false);
  return Tensor::from_storage(st, 0, shape, dtype);
}

float dummy[16];

}  // namespace

TEST(CudaCanImplement, Cast) {
  kc::CastParams p;
  p.src = dummy;
  p.dst = dummy + 8;
  p.ndim = 2;
  p.shape[0] = 3, p.shape[1] = 4;
  p.src_stride[0] = 1, p.src_stride[1] = 3;  // transposed source: fine
  p.dst_stride[0] = 4, p.dst_stride[1] = 1;
  EXPECT_EQ(kc::can_implement(p), "");
  p.dst_stride[0] = 0;  // a broadcast destination would write one element many times
  EXPECT_NE(kc::can_implement(p).find("destination is broadcast"), std::string::npos);
  p.dst_stride[0] = 4;
  p.ndim = 7;
  EXPECT_NE(kc::can_implement(p).find("rank 7"), std::string::npos);
}

TEST(CudaCanImplement, Elementwise) {
  kc::UnaryParams u;
  u.x = dummy;
  u.out = dummy;
  u.op = kc::UnaryOp::clamp;
  u.a = -1.f;
  u.b = std::nanf("");
  EXPECT_NE(kc::can_implement(u).find("NaN"), std::string::npos);
  u.b = 1.f;
  EXPECT_EQ(kc::can_implement(u), "");
  u.op = kc::UnaryOp::count_;
  EXPECT_NE(kc::can_implement(u), "");
  EXPECT_STREQ(kc::unary_op_name(kc::UnaryOp::gelu_tanh), "gelu_tanh");

  kc::BinaryParams b;
  b.a = b.b = b.out = dummy;
  b.ndim = 1;
  b.shape[0] = -2;
  EXPECT_NE(kc::can_implement(b).find("negative"), std::string::npos);
  b.shape[0] = 2;
  EXPECT_EQ(kc::can_implement(b), "");
  b.b = nullptr;
  EXPECT_NE(kc::can_implement(b).find("null"), std::string::npos);

  kc::WhereParams w;
  w.cond = w.a = w.b = w.out = dummy;
  EXPECT_EQ(kc::can_implement(w), "");
}

TEST(CudaCanImplement, SoftmaxAndNorms) {
  kc::SoftmaxParams s;
  s.x = s.y = dummy;
  s.rows = 3, s.cols = 4097;
  EXPECT_EQ(kc::can_implement(s), "");
  s.rows = int64_t{1} << 32;
  EXPECT_NE(kc::can_implement(s).find("2^31"), std::string::npos);

  kc::RowNormParams r;
  r.x = r.y = dummy;
  r.rows = 3, r.cols = 4097;
  EXPECT_EQ(kc::can_implement(r), "");
  r.rms = true;
  r.b = dummy;
  EXPECT_NE(kc::can_implement(r).find("no bias"), std::string::npos);
  r.b = nullptr;
  r.cols = (int64_t{1} << 24) + 1;
  EXPECT_NE(kc::can_implement(r).find("2^24"), std::string::npos);
  r.cols = 8;
  r.eps = -1.f;
  EXPECT_NE(kc::can_implement(r).find("eps"), std::string::npos);
  r.eps = 1e-5f;
  r.type = kc::ElemType::bf16;
  r.param_type = kc::ElemType::bf16;
  EXPECT_EQ(kc::can_implement(r), "");
  r.param_type = kc::ElemType::f16;  // parameters: f32 or x's own type
  EXPECT_NE(kc::can_implement(r).find("f32 or x's dtype"), std::string::npos);

  kc::GroupNormParams g;
  g.x = g.y = dummy;
  g.n = 2, g.c = 6, g.s = 35, g.groups = 4;
  EXPECT_NE(kc::can_implement(g).find("divide C = 6"), std::string::npos);
  g.groups = 3;
  EXPECT_EQ(kc::can_implement(g), "");
}

// The path choices of the launchers: a contiguous operand coalesces to one dim; a bias repeats
// with its own size; a transposed or middle-broadcast operand has no period.
TEST(CudaStridedHelpers, CoalesceAndPeriod) {
  int nd = 3;
  int64_t shape[kc::kMaxDims] = {4, 5, 6};
  int64_t a[kc::kMaxDims] = {30, 6, 1};  // contiguous
  int64_t b[kc::kMaxDims] = {0, 0, 1};   // bias (6)
  int64_t* st[2] = {a, b};
  kc::coalesce_dims(&nd, shape, st, 2);
  ASSERT_EQ(nd, 2);  // (20, 6): a merges fully, b only over its broadcast dims
  EXPECT_EQ(shape[0], 20);
  EXPECT_EQ(shape[1], 6);
  EXPECT_EQ(kc::repeat_period(nd, shape, a), 120);
  EXPECT_EQ(kc::repeat_period(nd, shape, b), 6);

  int64_t s2[kc::kMaxDims] = {3, 4};
  int64_t t[kc::kMaxDims] = {1, 3};   // transposed
  int64_t m[kc::kMaxDims] = {1, 0};   // (3, 1) broadcast along the last dim
  int64_t z[kc::kMaxDims] = {0, 0};   // scalar
  EXPECT_EQ(kc::repeat_period(2, s2, t), -1);
  EXPECT_EQ(kc::repeat_period(2, s2, m), -1);
  EXPECT_EQ(kc::repeat_period(2, s2, z), 1);

  int nd1 = 2;
  int64_t sh1[kc::kMaxDims] = {1, 7};
  int64_t c1[kc::kMaxDims] = {99, 1};
  int64_t* st1[1] = {c1};
  kc::coalesce_dims(&nd1, sh1, st1, 1);  // size-1 dims drop out
  EXPECT_EQ(nd1, 1);
  EXPECT_EQ(sh1[0], 7);
}

TEST(CudaDispatch, MixedDevicesAreAnError) {
  const Tensor h = test::random_tensor({4, 8}, 1);
  const Tensor d = fake_cuda({4, 8});
  EXPECT_TRUE(test::throws_error([&] { ops::add(h, d); }, Status::invalid_argument,
                                 {"[add]", "cpu", "cuda:0", "to(device)"}));
  EXPECT_TRUE(test::throws_error([&] { ops::where(d, h, h); }, Status::invalid_argument,
                                 {"[where]", "cuda:0", "cpu"}));
  const Tensor w = test::random_tensor({8}, 2);
  EXPECT_TRUE(test::throws_error([&] { ops::layer_norm(d, w, {}, 1e-5f); },
                                 Status::invalid_argument, {"[layer_norm]", "cuda:0", "cpu"}));
  // Ops without a CUDA kernel check the devices first too.
  EXPECT_TRUE(test::throws_error([&] { ops::matmul(h, d.transpose(0, 1)); },
                                 Status::invalid_argument, {"[matmul]", "cpu", "cuda:0"}));
}

TEST(CudaDispatch, OpsWithoutACudaKernelSayWhich) {
  // The guard of ops (and pipeline steps) that have no CUDA path: unsupported, naming both.
  const Tensor d = fake_cuda({4, 8});
  EXPECT_TRUE(test::throws_error([&] { ops::require_cpu("rope_table", {&d}); },
                                 Status::unsupported, {"[rope_table]", "no cuda:0 kernel"}));
  // A CUDA path without a kernel for the case says so before touching the device: an fp8
  // embedding table (the CUDA gathers read f32, f16 and bf16).
  EXPECT_TRUE(test::throws_error(
      [&] { ops::embedding(fake_cuda({4, 8}, DType::f8_e4m3), fake_cuda({3}, DType::i64)); },
      Status::unsupported, {"[embedding]", "no cuda:0 kernel for"}));
}

// Validation is the same on every device and comes before any dispatch.
TEST(CudaDispatch, ValidationPrecedesDispatch) {
  const Tensor d = fake_cuda({4, 8});
  const Tensor di = fake_cuda({4, 8}, DType::i32);
  EXPECT_TRUE(test::throws_error([&] { ops::add(d, di); }, Status::invalid_argument,
                                 {"[add]", "b is i32"}));
  EXPECT_TRUE(test::throws_error([&] { ops::add(d, fake_cuda({3})); }, Status::invalid_argument,
                                 {"add"}));
  EXPECT_TRUE(test::throws_error([&] { ops::group_norm(fake_cuda({2, 6, 5}), 4, {}, {}, 1e-5f); },
                                 Status::invalid_argument, {"[group_norm]", "groups = 4"}));
  EXPECT_TRUE(test::throws_error([&] { ops::clamp(d, std::nullopt, std::nullopt); },
                                 Status::invalid_argument, {"[clamp]"}));
}

// matmul/linear validate shapes and dtypes before dispatch, with the CPU op's messages.
TEST(CudaDispatch, GemmValidationPrecedesDispatch) {
  const Tensor a = fake_cuda({2, 3, 5});
  EXPECT_TRUE(test::throws_error(
      [&] {
        ops::matmul(a, fake_cuda({4, 7}));
      },
      Status::invalid_argument, {"[matmul]", "inner dims differ"}));
  EXPECT_TRUE(test::throws_error(
      [&] {
        ops::matmul(a, fake_cuda({4, 5, 7}));
      },
      Status::invalid_argument, {"matmul"}));  // batch 2 vs 4
  EXPECT_TRUE(test::throws_error(
      [&] {
        ops::matmul(fake_cuda({3, 5}, DType::f16), fake_cuda({5, 2}, DType::bf16));
      },
      Status::invalid_argument, {"[matmul]", "b is bf16 but a is f16"}));
  EXPECT_TRUE(test::throws_error(
      [&] {
        ops::matmul(fake_cuda({3, 5}, DType::bf16), fake_cuda({5, 2}));
      },
      Status::invalid_argument, {"[matmul]", "b is f32 but a is bf16"}));
  EXPECT_TRUE(test::throws_error(
      [&] {
        ops::matmul(fake_cuda({3, 5}, DType::i32), fake_cuda({5, 2}));
      },
      Status::invalid_argument, {"[matmul]", "a is i32"}));
  const Tensor w = fake_cuda({7, 5});
  EXPECT_TRUE(test::throws_error(
      [&] {
        ops::linear(fake_cuda({3, 4}), w);
      },
      Status::invalid_argument, {"[linear]", "in_features 5"}));
  EXPECT_TRUE(test::throws_error([&] { ops::linear(a, w, fake_cuda({6})); },
                                 Status::invalid_argument, {"[linear]", "out_features 7"}));
  EXPECT_TRUE(test::throws_error([&] { ops::linear(a, fake_cuda({7})); }, Status::invalid_argument,
                                 {"[linear]", "weight must be 2-D"}));
  // The CPU keeps its f32-only contract for activations.
  EXPECT_TRUE(test::throws_error(
      [&] {
        ops::linear(test::random_tensor({3, 5}, 1).to(DType::f16), test::random_tensor({7, 5}, 2));
      },
      Status::invalid_argument, {"[linear]", "x is f16"}));
}

namespace {
// A valid (M, N, K) = (33, 77, 320) f32 GEMM with a transposed B, batched 6 times.
kc::GemmParams gemm_case() {
  alignas(256) static float buf[64];
  kc::GemmParams p;
  p.a = buf, p.b = buf + 8, p.d = buf + 16;
  p.m = 33, p.n = 77, p.k = 320;
  p.lda = 320, p.ldb = 320, p.trans_b = true, p.ldd = 77;
  p.batch = 6, p.stride_a = 0, p.stride_b = 77 * 320, p.stride_d = 33 * 77;
  return p;
}
}  // namespace

TEST(CudaCanImplement, Gemm) {
  kc::GemmParams p = gemm_case();
  EXPECT_EQ(kc::can_implement(p), "");
  p.ldb = 100;  // B stored (N, K) = (77, 320): rows of 320 cannot have a leading dim of 100
  EXPECT_NE(kc::can_implement(p).find("ldb 100 < 320"), std::string::npos);
  p = gemm_case();
  p.k = 0;
  EXPECT_NE(kc::can_implement(p).find("K = 0"), std::string::npos);
  p = gemm_case();
  p.stride_d = 0;  // every batch item written to one matrix
  EXPECT_NE(kc::can_implement(p).find("overlap"), std::string::npos);
  p = gemm_case();
  p.batch = int64_t{1} << 31;
  EXPECT_NE(kc::can_implement(p).find("batch count"), std::string::npos);
  p = gemm_case();
  p.a = reinterpret_cast<const char*>(p.a) + 2;  // not a multiple of 4 bytes
  EXPECT_NE(kc::can_implement(p).find("aligned"), std::string::npos);
  p = gemm_case();
  p.workspace_bytes = 1024;
  EXPECT_NE(kc::can_implement(p).find("workspace"), std::string::npos);
  p = gemm_case();
  p.d_f32 = true;  // an f32 D is the 16-bit inputs' option
  EXPECT_NE(kc::can_implement(p).find("d_f32"), std::string::npos);
  p.type = kc::ElemType::bf16;
  EXPECT_EQ(kc::can_implement(p), "");
  p.d = reinterpret_cast<char*>(p.d) + 2;  // 2-byte aligned: fine for bf16, not for an f32 D
  EXPECT_NE(kc::can_implement(p).find("4-byte"), std::string::npos);
  EXPECT_NE(kc::gemm_algo_key(p, 0), [&] {
    kc::GemmParams q = p;
    q.d_f32 = false;
    return kc::gemm_algo_key(q, 0);
  }());
  p = gemm_case();
  p.m = 0;  // empty output: nothing to do, even with null pointers
  p.a = nullptr;
  EXPECT_EQ(kc::can_implement(p), "");
}

// The views read in place (row-major with a leading-dim stride, plain transposes) and the ones
// made contiguous first, mirroring the CPU op's rule.
TEST(CudaCanImplement, GemmOperandViews) {
  auto eq = [](kc::GemmOperand g, bool ok, bool trans, int64_t ld) {
    return g.ok == ok && (!ok || (g.trans == trans && g.ld == ld));
  };
  EXPECT_TRUE(eq(kc::gemm_operand(7, 33, 33, 1), true, false, 33));  // contiguous
  EXPECT_TRUE(eq(kc::gemm_operand(7, 33, 40, 1), true, false, 40));  // column slice of (7, 40)
  EXPECT_TRUE(eq(kc::gemm_operand(7, 33, 1, 7), true, true, 7));     // transpose of (33, 7)
  EXPECT_TRUE(eq(kc::gemm_operand(1, 33, 0, 1), true, false, 33));   // single row, any stride
  EXPECT_TRUE(eq(kc::gemm_operand(7, 1, 1, 0), true, true, 7));      // single column
  EXPECT_TRUE(eq(kc::gemm_operand(7, 33, 66, 2), false, false, 0));  // every other column
  EXPECT_TRUE(eq(kc::gemm_operand(7, 33, 0, 1), false, false, 0));   // broadcast rows overlap
}

TEST(CudaCanImplement, GemmAlgoKey) {
  const kc::GemmParams p = gemm_case();
  const kc::GemmAlgoKey k = kc::gemm_algo_key(p, 0);
  EXPECT_EQ(k, kc::gemm_algo_key(p, 0));
  EXPECT_EQ(kc::GemmAlgoKeyHash()(k), kc::GemmAlgoKeyHash()(kc::gemm_algo_key(p, 0)));
  EXPECT_EQ(k.align_a, 256u);  // buf is 256-aligned and A is broadcast (stride 0)
  EXPECT_EQ(k.align_b, 32u);   // buf + 8 floats; stride 77 * 320 * 4 bytes = 2^8 * 385 keeps 32
  EXPECT_EQ(k.align_d, 4u);    // stride 33 * 77 floats: odd, so 4 bytes
  EXPECT_FALSE(k.bias);
  EXPECT_NE(k, kc::gemm_algo_key(p, 1));  // another device
  kc::GemmParams q = p;
  q.n = 78;
  EXPECT_NE(k, kc::gemm_algo_key(q, 0));
  q = p;
  q.type = kc::ElemType::bf16;
  EXPECT_NE(k, kc::gemm_algo_key(q, 0));
  q = p;
  q.batch = 1;  // unbatched: D's alignment is its pointer's (buf + 16 floats: 64 bytes)
  kc::GemmParams r = q;
  r.d = reinterpret_cast<char*>(q.d) + 4;  // same shape, 4-aligned D: may need another algorithm
  EXPECT_EQ(kc::gemm_algo_key(q, 0).align_d, 64u);
  EXPECT_EQ(kc::gemm_algo_key(r, 0).align_d, 4u);
  EXPECT_NE(kc::gemm_algo_key(q, 0), kc::gemm_algo_key(r, 0));
  q = p;
  q.bias = p.d;
  EXPECT_NE(k, kc::gemm_algo_key(q, 0));
  // Unbatched GEMMs ignore the batch strides (cuBLASLt never reads them).
  q = p;
  q.batch = 1;
  r = q;
  r.stride_b = 5;
  EXPECT_EQ(kc::gemm_algo_key(q, 0), kc::gemm_algo_key(r, 0));
  EXPECT_EQ(kc::gemm_alignment(reinterpret_cast<const void*>(uintptr_t{4096}), 0), 256u);
  EXPECT_EQ(kc::gemm_alignment(reinterpret_cast<const void*>(uintptr_t{4096 + 6}), 0), 2u);
  EXPECT_EQ(kc::gemm_alignment(reinterpret_cast<const void*>(uintptr_t{4096}), 24), 8u);
}

// cuBLAS's status names come from cublasLtGetStatusName/String, which need no device.
TEST(CudaCanImplement, GemmErrorMessage) {
  kc::GemmParams p = gemm_case();
  p.type = kc::ElemType::bf16;
  const std::string m =
      kc::gemm_error_message(p, kc::GemmStatus{"cublasLtMatmul", CUBLAS_STATUS_NOT_SUPPORTED});
  for (const char* part : {"cublasLtMatmul failed", "CUBLAS_STATUS_NOT_SUPPORTED", "bf16 gemm",
                           "M=33 N=77 K=320", "op(A)=N lda=320 op(B)=T ldb=320 ldd=77",
                           "batch=6 (strides a=0 b=24640 d=2541)", "no bias"})
    EXPECT_NE(m.find(part), std::string::npos) << part << " not in: " << m;
  EXPECT_TRUE(kc::GemmStatus{}.ok());
}
