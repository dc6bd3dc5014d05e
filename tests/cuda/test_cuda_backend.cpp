#include <gtest/gtest.h>

#include "kiln/core/device.hpp"
#include "kiln/core/tensor.hpp"
#include "cuda_test_util.hpp"
#include "test_support.hpp"

using namespace kiln;
using namespace kiln::cuda_test;

namespace {
}  // namespace

TEST(CudaBackend, RoundTripThroughDeviceMemory) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
  Tensor h = test::random_tensor({3, 77, 33}, 5);
  Tensor d = h.to(Device::cuda(0));
  EXPECT_TRUE(d.device().is_cuda());
  // Device-to-device copy, then back.
  Tensor d2 = Tensor::empty(d.shape(), DType::f32, Device::cuda(0));
  d2.copy_from(d);
  Tensor back = d2.to(Device::cpu());
  EXPECT_TRUE(test::all_close(back, test::to_doubles(h), 0, 0));
}

TEST(CudaBackend, StreamOrderedCopies) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
  auto& b = backend_for(DeviceType::cuda);
  Stream s = b.create_stream(0);
  Tensor h = test::random_tensor({1 << 20}, 6);
  void* dev = b.allocate(0, h.nbytes());
  std::vector<float> out(h.numel(), -1.f);
  b.copy(dev, Device::cuda(0), h.raw_data(), Device::cpu(), h.nbytes(), &s);
  b.copy(out.data(), Device::cpu(), dev, Device::cuda(0), h.nbytes(), &s);
  b.synchronize(s);
  const float* src = h.data<float>();
  for (int64_t i = 0; i < h.numel(); ++i) ASSERT_EQ(out[i], src[i]) << i;
  b.deallocate(0, dev, h.nbytes());
  b.destroy_stream(s);
}

TEST(CudaBackend, OutOfMemoryNamesTheAmounts) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
  try {
    Tensor::empty({int64_t{1} << 40}, DType::f32, Device::cuda(0));  // 4 TiB
    FAIL() << "expected out of memory";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Status::out_of_memory);
    std::string msg = e.what();
    EXPECT_NE(msg.find("4398046511104 bytes"), std::string::npos) << msg;
    EXPECT_NE(msg.find("free"), std::string::npos) << msg;
  }
  // The device still works after the failed allocation.
  Tensor ok = Tensor::zeros({16}, DType::f32, Device::cuda(0));
  EXPECT_EQ(ok.to(Device::cpu()).data<float>()[15], 0.f);
}

TEST(CudaBackend, MissingDeviceIndexIsAnError) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
  EXPECT_THROW(Tensor::empty({4}, DType::f32, Device::cuda(999)), Error);
  std::string d = backend_for(DeviceType::cuda).describe(0);
  EXPECT_NE(d.find("sm_"), std::string::npos) << d;
}
