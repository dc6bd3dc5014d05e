// The CUDA backend's memory on a real device: the caching allocator (reuse, split/coalesce,
// statistics, cross-stream reuse, out of memory), the pinned staging of uploads, device index
// errors and timing events. Built twice: cuda_test_allocator (the caching allocator) and
// cuda_test_allocator_plain (allocator_plain_env.cpp sets KILN_CUDA_ALLOCATOR=plain before
// the first allocation); tests that only make sense in one mode skip in the other. The
// bookkeeping itself is tested without a GPU in tests/unit/test_caching_allocator.cpp.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "kiln/core/device.hpp"
#include "kiln/core/tensor.hpp"
#include "kiln/cuda/cuda_memory.hpp"
#include "cuda_test_util.hpp"

using namespace kiln;
using namespace kiln::cuda_test;

namespace {

DeviceBackend& cuda() {
  return backend_for(DeviceType::cuda);
}
const Device kDev = Device::cuda(0);

bool caching() {
  return cuda_memory_stats(kDev).caching;
}

void expect_has(const std::string& text, const std::string& part) {
  EXPECT_NE(text.find(part), std::string::npos) << "'" << part << "' not in: " << text;
}

// Blocks the stream for `ms` milliseconds on the host (a host function in the stream), so work
// enqueued after it is still pending when the test goes on.
void stall(cudaStream_t s, int ms) {
  static int delay;
  delay = ms;
  ASSERT_EQ(cudaLaunchHostFunc(
                s,
                [](void* d) {
                  std::this_thread::sleep_for(std::chrono::milliseconds(*static_cast<int*>(d)));
                },
                &delay),
            cudaSuccess);
}

}  // namespace

// ---- these run without a GPU too (zero devices) ----

TEST(CudaDeviceIndex, MissingDeviceIsInvalidArgumentNamingIndexAndCount) {
  const int n = cuda().device_count();
  try {
    cuda().allocate(n, 16);
    FAIL() << "expected invalid_argument";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Status::invalid_argument);
    expect_has(e.what(), "cuda:" + std::to_string(n) + " does not exist");
    expect_has(e.what(),
               n == 0 ? std::string("no CUDA device") : std::to_string(n) + " CUDA device");
  }
  std::vector<char> host(64);
  EXPECT_THROW(cuda().copy(host.data(), Device::cpu(), host.data(), Device::cuda(n), 64, nullptr),
               Error);
  EXPECT_THROW(cuda().create_stream(n), Error);
  EXPECT_THROW(Tensor::empty({4}, DType::f32, Device::cuda(n)), Error);
  EXPECT_THROW(cuda_memory_stats(Device::cuda(n)), Error);
  EXPECT_THROW(CudaEvent(Device::cuda(n)), Error);
  EXPECT_THROW(cuda_memory_stats(Device::cpu()), Error);
}

// ---- GPU ----

TEST(CudaAllocator, ModeFollowsTheEnvironment) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
  const char* v = std::getenv("KILN_CUDA_ALLOCATOR");
  EXPECT_EQ(caching(), !(v && std::string(v) == "plain"));
}

TEST(CudaAllocator, SameSizeClassGivesTheSamePointerBack) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
  if (!caching()) GTEST_SKIP() << "plain allocator";
  cuda_empty_cache(kDev);  // no other free small blocks to be a better fit
  void* p = cuda().allocate(0, 1000);
  const uint64_t mallocs = cuda_memory_stats(kDev).device_alloc_calls;
  cuda().deallocate(0, p, 1000);
  void* q = cuda().allocate(0, 700);  // 700 and 1000 are both one 1024 B block
  EXPECT_EQ(q, p);
  cuda().deallocate(0, q, 700);
  Tensor t = Tensor::empty({250}, DType::f32, kDev);  // 1000 B through Storage
  EXPECT_EQ(t.raw_data(), p);
  EXPECT_EQ(cuda_memory_stats(kDev).device_alloc_calls, mallocs);
}

TEST(CudaAllocator, SplitAndCoalesce) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
  if (!caching()) GTEST_SKIP() << "plain allocator";
  cuda_empty_cache(kDev);
  char* a = static_cast<char*>(cuda().allocate(0, 512));
  char* b = static_cast<char*>(cuda().allocate(0, 512));
  char* c = static_cast<char*>(cuda().allocate(0, 512));
  EXPECT_EQ(b, a + 512);  // one 2 MiB segment, carved in address order
  EXPECT_EQ(c, a + 1024);
  cuda().deallocate(0, b, 512);
  cuda().deallocate(0, a, 512);
  cuda().deallocate(0, c, 512);
  EXPECT_EQ(cuda().allocate(0, 1536), a);  // the three merged back
  cuda().deallocate(0, a, 1536);
  // Large: a 20 MiB segment serves a 3 MiB request and then the 17 MiB after it.
  char* x = static_cast<char*>(cuda().allocate(0, 3 << 20));
  char* y = static_cast<char*>(cuda().allocate(0, 17 << 20));
  EXPECT_EQ(y, x + (3 << 20));
  cuda().deallocate(0, x, 3 << 20);
  cuda().deallocate(0, y, 17 << 20);
  EXPECT_EQ(cuda().allocate(0, 20 << 20), x);
  cuda().deallocate(0, x, 20 << 20);
}

TEST(CudaAllocator, StatisticsArithmetic) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
  cuda_empty_cache(kDev);
  const CudaMemoryStats s0 = cuda_memory_stats(kDev);
  cuda_reset_peak_memory_stats(kDev);
  void* p = cuda().allocate(0, 100);
  void* q = cuda().allocate(0, 30 << 20);
  CudaMemoryStats s1 = cuda_memory_stats(kDev);
  const size_t small = caching() ? 512 : 100;
  EXPECT_EQ(s1.allocated_bytes - s0.allocated_bytes, small + (30 << 20));
  EXPECT_EQ(s1.requested_bytes - s0.requested_bytes,
            caching() ? 100 + (30 << 20) : small + (30 << 20));
  EXPECT_EQ(s1.active_blocks - s0.active_blocks, 2u);
  EXPECT_GE(s1.reserved_bytes, s1.allocated_bytes);
  EXPECT_EQ(s1.peak_allocated_bytes, s1.allocated_bytes);
  cuda().deallocate(0, q, 30 << 20);
  cuda().deallocate(0, p, 100);
  CudaMemoryStats s2 = cuda_memory_stats(kDev);
  EXPECT_EQ(s2.allocated_bytes, s0.allocated_bytes);
  EXPECT_EQ(s2.peak_allocated_bytes, s1.allocated_bytes);
  if (caching()) {
    EXPECT_EQ(s2.reserved_bytes, s1.reserved_bytes);  // kept for reuse
    EXPECT_GE(cuda_empty_cache(kDev), size_t{30} << 20);
    EXPECT_LT(cuda_memory_stats(kDev).reserved_bytes, s2.reserved_bytes);
  } else {
    EXPECT_EQ(s2.reserved_bytes, s0.reserved_bytes);  // given back at once
    EXPECT_EQ(s2.device_free_calls - s0.device_free_calls, 2u);
  }
}

// Stream A reads P (after a 300 ms stall), P is freed on A, stream B gets the same memory and
// overwrites it at once. Unless B waits for A's free, the copy on A reads B's bytes.
TEST(CudaAllocator, ReuseOnAnotherStreamIsOrderedAfterTheFree) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
  cuda_empty_cache(kDev);  // so the best fit for B is P's block, whatever ran before
  const size_t n = 8 << 20;
  Stream A = cuda().create_stream(0), B = cuda().create_stream(0);
  auto sa = static_cast<cudaStream_t>(A.native), sb = static_cast<cudaStream_t>(B.native);
  void* q = cuda().allocate(0, n);
  void* p = nullptr;
  {
    CudaStreamGuard on_a(A);
    p = cuda().allocate(0, n);
    ASSERT_EQ(cudaMemsetAsync(p, 0x11, n, sa), cudaSuccess);
    stall(sa, 300);
    ASSERT_EQ(cudaMemcpyAsync(q, p, n, cudaMemcpyDeviceToDevice, sa), cudaSuccess);
    cuda().deallocate(0, p, n);  // A may still read it
  }
  {
    CudaStreamGuard on_b(B);
    void* p2 = cuda().allocate(0, n);
    if (caching()) {
      EXPECT_EQ(p2, p);
    }
    ASSERT_EQ(cudaMemsetAsync(p2, 0x22, n, sb), cudaSuccess);
    cuda().synchronize(B);
    cuda().synchronize(A);
    cuda().deallocate(0, p2, n);
  }
  std::vector<unsigned char> out(n);
  cuda().copy(out.data(), Device::cpu(), q, kDev, n, nullptr);
  for (size_t i = 0; i < n; i += 4099) ASSERT_EQ(out[i], 0x11) << i;
  EXPECT_EQ(out[n - 1], 0x11);
  if (caching()) {
    EXPECT_GE(cuda_memory_stats(kDev).cross_stream_waits, 1u);
  }
  cuda().deallocate(0, q, n);
  cuda().destroy_stream(A);
  cuda().destroy_stream(B);
}

TEST(CudaAllocator, OutOfMemoryNamesTheNumbers) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
  const uint64_t ooms = cuda_memory_stats(kDev).oom_errors;
  try {
    cuda().allocate(0, size_t{1} << 50);  // 1 PiB
    FAIL() << "expected out of memory";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Status::out_of_memory);
    const std::string msg = e.what();
    expect_has(msg, "cannot allocate 1.00 PiB (1125899906842624 bytes) on cuda:0: ");
    expect_has(msg, " GiB free of ");
    expect_has(msg, "; kiln holds ");
    expect_has(msg, " in use)");
  }
  EXPECT_EQ(cuda_memory_stats(kDev).oom_errors, ooms + 1);
  Tensor ok = Tensor::zeros({16}, DType::f32, kDev);  // the device still works
  EXPECT_EQ(ok.to(Device::cpu()).data<float>()[15], 0.f);
}

TEST(CudaAllocator, PlainModeCallsTheDriverEveryTime) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
  if (caching()) GTEST_SKIP() << "caching allocator (run cuda_test_allocator_plain)";
  const CudaMemoryStats s0 = cuda_memory_stats(kDev);
  for (int i = 0; i < 3; ++i) cuda().deallocate(0, cuda().allocate(0, 4096), 4096);
  const CudaMemoryStats s1 = cuda_memory_stats(kDev);
  EXPECT_EQ(s1.device_alloc_calls - s0.device_alloc_calls, 3u);
  EXPECT_EQ(s1.device_free_calls - s0.device_free_calls, 3u);
  EXPECT_EQ(s1.reserved_bytes, s0.reserved_bytes);
  EXPECT_EQ(cuda_empty_cache(kDev), 0u);
}

// 100 MB (not a multiple of the 4 MiB staging chunk) through the pinned double buffer, from
// an odd address, synchronously and on a stream; back bit-exactly.
TEST(CudaStaging, HundredMegabyteUploadRoundTrips) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
  const size_t n = 100'000'000;
  std::vector<unsigned char> host(n + 1);
  std::mt19937_64 rng(3);
  for (size_t i = 0; i + 8 <= host.size(); i += 8) {
    uint64_t v = rng();
    std::memcpy(&host[i], &v, 8);
  }
  void* dev = cuda().allocate(0, n);
  cuda().copy(dev, kDev, host.data() + 1, Device::cpu(), n, nullptr);
  std::vector<unsigned char> back(n);
  cuda().copy(back.data(), Device::cpu(), dev, kDev, n, nullptr);
  EXPECT_EQ(std::memcmp(back.data(), host.data() + 1, n), 0);
  EXPECT_GT(cuda_memory_stats(kDev).pinned_staging_bytes, 0u);

  Stream s = cuda().create_stream(0);
  ASSERT_EQ(cudaMemset(dev, 0, n), cudaSuccess);
  cuda().copy(dev, kDev, host.data() + 1, Device::cpu(), n, &s);
  std::fill(host.begin(), host.end(), 0);  // the source may be reused once copy() returns
  std::vector<unsigned char> back2(n);
  cuda().copy(back2.data(), Device::cpu(), dev, kDev, n, &s);
  cuda().synchronize(s);
  EXPECT_EQ(std::memcmp(back2.data(), back.data(), n), 0);
  cuda().destroy_stream(s);
  cuda().deallocate(0, dev, n);
}

// The weight-loading path: a large host tensor to the device and back.
TEST(CudaStaging, TensorToDeviceRoundTrips) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
  Tensor h = Tensor::empty({3, 1000, 4099}, DType::f32);
  float* v = h.mutable_data<float>();
  for (int64_t i = 0; i < h.numel(); ++i) v[i] = static_cast<float>(i % 65521) * 0.5f - 7.f;
  Tensor back = h.to(kDev).to(Device::cpu());
  EXPECT_EQ(std::memcmp(back.raw_data(), h.raw_data(), h.nbytes()), 0);
}

TEST(CudaEvents, TimeWorkOnAStream) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
  Stream s = cuda().create_stream(0);
  const size_t n = size_t{256} << 20;
  void* p = cuda().allocate(0, n);
  CudaEvent start(kDev), stop(kDev);
  EXPECT_TRUE(start.ready());  // never recorded
  start.record(s);
  ASSERT_EQ(cudaMemsetAsync(p, 1, n, static_cast<cudaStream_t>(s.native)), cudaSuccess);
  stop.record(s);
  const float ms = CudaEvent::elapsed_ms(start, stop);
  EXPECT_GT(ms, 0.f);
  EXPECT_LT(ms, 1000.f);
  EXPECT_TRUE(stop.ready());
  CudaEvent moved = std::move(stop);
  EXPECT_TRUE(moved.ready());
  CudaEvent untimed(kDev, false);
  untimed.record(s);
  EXPECT_THROW(CudaEvent::elapsed_ms(start, untimed), Error);
  EXPECT_THROW(untimed.record(Stream{Device::cpu(), nullptr}), Error);
  cuda().synchronize(s);
  cuda().deallocate(0, p, n);
  cuda().destroy_stream(s);
}
