// Op dispatch checks that need no GPU: the kernels' can_implement(), the host helpers that pick
// their paths, and the errors for mixed devices and ops without a CUDA kernel. A "CUDA" tensor
// here is host memory borrowed under the name cuda:0: every check below throws before any
// kernel or CUDA runtime call would touch it.
#include <gtest/gtest.h>

#include <vector>

#include "cuda/cast.hpp"
#include "cuda/elementwise.hpp"
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
  kc::SoftmaxParams s{dummy, dummy, 3, 4097};
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
  const Tensor d = fake_cuda({4, 8});
  EXPECT_TRUE(test::throws_error([&] { ops::matmul(d, d.transpose(0, 1)); }, Status::unsupported,
                                 {"[matmul]", "no cuda:0 kernel"}));
  const int dims[] = {1};
  EXPECT_TRUE(test::throws_error([&] { ops::sum(d, dims); }, Status::unsupported,
                                 {"[sum]", "no cuda:0 kernel"}));
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
