#include <gtest/gtest.h>

#include "kiln/core/tensor.hpp"
#include "test_support.hpp"

using namespace kiln;

namespace {
std::vector<float> iota(int64_t n) {
  std::vector<float> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = static_cast<float>(i);
  return v;
}
}  // namespace

TEST(Tensor, ViewsShareStorageAndIndexCorrectly) {
  Tensor t = Tensor::from_f32({2, 3, 4}, iota(24));
  Tensor p = t.permute({2, 0, 1});  // (4, 2, 3)
  EXPECT_EQ(p.shape(), Shape({4, 2, 3}));
  EXPECT_FALSE(p.is_contiguous());
  EXPECT_EQ(p.storage(), t.storage());
  auto v = test::to_doubles(p);
  // p[k][i][j] = t[i][j][k] = i*12 + j*4 + k
  for (int k = 0; k < 4; ++k)
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 3; ++j) EXPECT_EQ(v[k * 6 + i * 3 + j], i * 12 + j * 4 + k);
  Tensor s = t.slice(2, 1, 4, 2);  // k in {1, 3}
  EXPECT_EQ(s.shape(), Shape({2, 3, 2}));
  auto sv = test::to_doubles(s);
  EXPECT_EQ(sv[0], 1);
  EXPECT_EQ(sv[1], 3);
  EXPECT_EQ(sv[11], 23);
  Tensor sel = t.select(1, -1);  // j = 2
  EXPECT_EQ(sel.shape(), Shape({2, 4}));
  EXPECT_EQ(test::to_doubles(sel)[4], 12 + 8);
}

TEST(Tensor, ExpandBroadcastsWithZeroStride) {
  Tensor t = Tensor::from_f32({3, 1}, {1, 2, 3});
  Tensor e = t.expand({2, 3, 5});
  EXPECT_EQ(e.stride(2), 0);
  EXPECT_EQ(e.stride(0), 0);
  auto v = test::to_doubles(e);
  EXPECT_EQ(v.size(), 30u);
  EXPECT_EQ(v[29], 3);
  EXPECT_EQ(v[5], 2);
  EXPECT_THROW(t.expand({3, 2, 4}), Error);
}

TEST(Tensor, ReshapeViewsWhenContiguousAndCopiesOtherwise) {
  Tensor t = Tensor::from_f32({2, 6}, iota(12));
  Tensor v = t.view({3, -1});
  EXPECT_EQ(v.shape(), Shape({3, 4}));
  EXPECT_EQ(v.storage(), t.storage());
  Tensor tr = t.transpose(0, 1);
  EXPECT_THROW(tr.view({12}), Error);
  Tensor r = tr.reshape({12});
  EXPECT_NE(r.storage(), t.storage());
  EXPECT_EQ(test::to_doubles(r)[1], 6);
  EXPECT_THROW(t.view({5, -1}), Error);
  EXPECT_THROW(t.view({-1, -1}), Error);
}

TEST(Tensor, RankAboveSixIsAnError) {
  EXPECT_THROW(Tensor::empty({1, 1, 1, 1, 1, 1, 1}, DType::f32), Error);
  Tensor t = Tensor::zeros({1, 1, 1, 1, 1, 1});
  EXPECT_THROW(t.unsqueeze(0), Error);
}

TEST(Tensor, ByteSizeOverflowIsAnError) {
  // 2^62 f32 elements fit in int64 but need 2^64 bytes; the wrapped size must not allocate.
  EXPECT_THROW(dtype_nbytes(DType::f32, int64_t{1} << 62), Error);
  EXPECT_THROW(Tensor::empty({int64_t{1} << 62}, DType::f32), Error);
  // A zero dim makes the tensor empty, but the other dims still multiply into its strides.
  EXPECT_THROW(Tensor::empty({0, int64_t{1} << 62, int64_t{1} << 62}, DType::f32), Error);
  EXPECT_EQ(Tensor::empty({0, 1 << 20, 1 << 20}, DType::f32).numel(), 0);
}

// Constructed before main, so before the CPU backend's first use: at exit it is destroyed after
// any function-local static created later, and its storage must still find a live backend.
Tensor g_tensor_in_a_static;

TEST(Tensor, StaticTensorsOutliveTheBackends) {
  g_tensor_in_a_static = Tensor::zeros({4});
  EXPECT_EQ(g_tensor_in_a_static.numel(), 4);
}

TEST(Tensor, CastRoundTripsThroughHalfTypes) {
  Tensor t = Tensor::from_f32({4}, {1.f, -2.5f, 65504.f, 1e-8f});
  auto h = test::to_doubles(t.to(DType::f16).to(DType::f32));
  EXPECT_EQ(h[0], 1.0);
  EXPECT_EQ(h[1], -2.5);
  EXPECT_EQ(h[2], 65504.0);
  EXPECT_EQ(h[3], 0.0);  // below half the smallest f16 subnormal (2^-25)
  auto b = test::to_doubles(t.to(DType::bf16));
  EXPECT_EQ(b[1], -2.5);
  EXPECT_EQ(b[2], 65536.0);  // bf16 keeps 8 significant bits
}

TEST(Tensor, ReadOnlyStorageRefusesWrites) {
  static float backing[4] = {1, 2, 3, 4};
  auto st = Storage::borrow(backing, sizeof(backing), Device::cpu(), nullptr, true);
  Tensor t = Tensor::from_storage(st, 0, {4}, DType::f32);
  EXPECT_EQ(t.data<float>()[2], 3.f);
  EXPECT_THROW(t.mutable_data<float>(), Error);
  Tensor c = t.clone();
  c.mutable_data<float>()[0] = 7;
  EXPECT_EQ(backing[0], 1.f);
  EXPECT_THROW(Tensor::from_storage(st, 8, {3}, DType::f32), Error);
}

TEST(Tensor, CudaWithoutDeviceIsAClearError) {
  if (backend_for(DeviceType::cuda).device_count() > 0) GTEST_SKIP() << "a GPU is present";
  try {
    Tensor::empty({4}, DType::f32, Device::cuda(0));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cuda:0"), std::string::npos) << e.what();
  }
}

TEST(Device, ParsesNames) {
  EXPECT_EQ(Device::parse("cpu"), Device::cpu());
  EXPECT_EQ(Device::parse("cuda:3"), Device::cuda(3));
  EXPECT_THROW(Device::parse("cuda:x"), Error);
  EXPECT_THROW(Device::parse("tpu"), Error);
}
