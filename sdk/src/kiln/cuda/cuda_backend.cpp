// CUDA device backend over the runtime API: plain cudaMalloc/cudaFree, copies and streams.
// The stream-ordered caching allocator, pinned staging and overlapped weight upload come with
// the CUDA backend issue; this file is the seam they plug into.
#include <cuda_runtime_api.h>

#include "kiln/core/device.hpp"
#include "kiln/core/error.hpp"

namespace kiln {

namespace {

void check_cuda(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return;
  cudaGetLastError();  // clear the sticky-free error state so later calls are not poisoned
  Status s = e == cudaErrorMemoryAllocation ? Status::out_of_memory : Status::device_error;
  fail(s, str(what, ": ", cudaGetErrorString(e)), "cuda");
}

class CudaBackend final : public DeviceBackend {
 public:
  DeviceType type() const override { return DeviceType::cuda; }
  int device_count() const override {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      cudaGetLastError();
      return 0;  // no driver / no GPU: zero devices, not an error
    }
    return n;
  }
  void* allocate(int index, size_t nbytes) override {
    check_cuda(cudaSetDevice(index), "cudaSetDevice");
    void* p = nullptr;
    cudaError_t e = cudaMalloc(&p, nbytes == 0 ? 1 : nbytes);
    if (e == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      size_t free_b = 0, total_b = 0;
      cudaMemGetInfo(&free_b, &total_b);
      fail(Status::out_of_memory,
           str("cannot allocate ", nbytes, " bytes on cuda:", index, " (", free_b, " of ", total_b,
               " bytes free)"),
           "cuda");
    }
    check_cuda(e, "cudaMalloc");
    return p;
  }
  void deallocate(int index, void* p, size_t) noexcept override {
    cudaSetDevice(index);
    cudaFree(p);
  }
  void copy(void* dst, Device dst_dev, const void* src, Device src_dev, size_t n,
            const Stream* stream) override {
    if (n == 0) return;
    cudaMemcpyKind kind = dst_dev.is_cpu()   ? cudaMemcpyDeviceToHost
                          : src_dev.is_cpu() ? cudaMemcpyHostToDevice
                                             : cudaMemcpyDeviceToDevice;
    if (stream && stream->native) {
      check_cuda(cudaMemcpyAsync(dst, src, n, kind, static_cast<cudaStream_t>(stream->native)),
                 "cudaMemcpyAsync");
    } else {
      check_cuda(cudaMemcpy(dst, src, n, kind), "cudaMemcpy");
    }
  }
  Stream create_stream(int index) override {
    check_cuda(cudaSetDevice(index), "cudaSetDevice");
    cudaStream_t s = nullptr;
    check_cuda(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreate");
    return Stream{Device::cuda(index), s};
  }
  void destroy_stream(Stream s) noexcept override {
    if (s.native) cudaStreamDestroy(static_cast<cudaStream_t>(s.native));
  }
  void synchronize(const Stream& s) override {
    if (s.native) {
      check_cuda(cudaStreamSynchronize(static_cast<cudaStream_t>(s.native)), "cudaStreamSynchronize");
    } else {
      check_cuda(cudaSetDevice(s.device.index), "cudaSetDevice");
      check_cuda(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
    }
  }
  std::string describe(int index) const override {
    cudaDeviceProp p{};
    if (cudaGetDeviceProperties(&p, index) != cudaSuccess) {
      cudaGetLastError();
      return "unavailable CUDA device";
    }
    return str(p.name, ", sm_", p.major, p.minor, ", ", p.multiProcessorCount, " SMs, ",
               p.totalGlobalMem >> 20, " MiB");
  }
};

}  // namespace

DeviceBackend& cuda_backend() {
  static CudaBackend* b = new CudaBackend;  // never destroyed: see backend_for()
  return *b;
}

}  // namespace kiln
