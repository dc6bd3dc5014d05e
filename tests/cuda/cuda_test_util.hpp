// What the CUDA tests share: the GPU check that skips a test on machines without a device, the
// device they run on, and output poisoning (0xFF bytes, NaN in every float type) so that an
// element a kernel never writes shows up as NaN instead of passing by luck.
#pragma once

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstddef>

#include "kiln/core/device.hpp"
#include "kiln/core/tensor.hpp"

namespace kiln::cuda_test {

inline bool have_gpu() { return backend_for(DeviceType::cuda).device_count() > 0; }

#define REQUIRE_GPU() \
  if (!::kiln::cuda_test::have_gpu()) GTEST_SKIP() << "no CUDA device"

inline const Device kGpu = Device::cuda(0);

// Fills a CUDA tensor's bytes with 0xFF.
inline void poison(Tensor& t) {
  ASSERT_EQ(cudaMemset(t.mutable_raw_data(), 0xff, t.nbytes()), cudaSuccess);
}

// Frees a 0xFF-filled block of `nbytes` so that the next allocation of that size (the op's
// output) likely gets it.
inline void poison_next_allocation(size_t nbytes) {
  Tensor t = Tensor::empty({static_cast<int64_t>((nbytes + 3) / 4)}, DType::f32, kGpu);
  poison(t);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
}

// |x| elementwise of an f32 CPU tensor, as a new contiguous tensor (undefined stays undefined):
// the operands of the error scale S = op(|x|, |w|) the tolerances are written in.
inline Tensor abs_host(const Tensor& x) {
  if (!x.defined()) return x;
  Tensor a = x.contiguous().clone();
  float* p = a.mutable_data<float>();
  for (int64_t i = 0; i < a.numel(); ++i) p[i] = std::fabs(p[i]);
  return a;
}

}  // namespace kiln::cuda_test
