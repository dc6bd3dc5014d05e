// Linked when kiln is built without CUDA: zero devices, and every operation answers
// "unsupported: needs a CUDA build" instead of callers growing #ifdefs.
#include "kiln/core/device.hpp"
#include "kiln/core/error.hpp"
#include "kiln/cuda/cuda_memory.hpp"

namespace kiln {

namespace {

[[noreturn]] void no_cuda(const char* what) {
  fail(Status::unsupported, str(what, " needs a CUDA build of kiln (configure with KILN_CUDA=ON)"),
       "cuda");
}

class NoCudaBackend final : public DeviceBackend {
 public:
  DeviceType type() const override { return DeviceType::cuda; }
  int device_count() const override { return 0; }
  void* allocate(int, size_t) override { no_cuda("allocating device memory"); }
  void deallocate(int, void*, size_t) noexcept override {}
  void copy(void*, Device, const void*, Device, size_t, const Stream*) override {
    no_cuda("copying to or from a CUDA device");
  }
  Stream create_stream(int) override { no_cuda("creating a CUDA stream"); }
  void destroy_stream(Stream) noexcept override {}
  void synchronize(const Stream&) override { no_cuda("synchronizing a CUDA stream"); }
  std::string describe(int) const override { return "CUDA not compiled in"; }
};

}  // namespace

DeviceBackend& cuda_backend() {
  static NoCudaBackend* b = new NoCudaBackend;  // never destroyed: see backend_for()
  return *b;
}

CudaMemoryStats cuda_memory_stats(Device) {
  no_cuda("cuda_memory_stats");
}
void cuda_reset_peak_memory_stats(Device) {
  no_cuda("cuda_reset_peak_memory_stats");
}
size_t cuda_empty_cache(Device) {
  no_cuda("cuda_empty_cache");
}
Stream cuda_current_stream(Device) {
  no_cuda("cuda_current_stream");
}

CudaStreamGuard::CudaStreamGuard(const Stream&) {
  no_cuda("CudaStreamGuard");
}
CudaStreamGuard::~CudaStreamGuard() = default;

CudaEvent::CudaEvent(Device, bool) {
  no_cuda("CudaEvent");
}
CudaEvent::~CudaEvent() = default;
CudaEvent::CudaEvent(CudaEvent&&) noexcept {}
CudaEvent& CudaEvent::operator=(CudaEvent&&) noexcept {
  return *this;
}
void CudaEvent::record(const Stream&) {
  no_cuda("CudaEvent");
}
void CudaEvent::record() {
  no_cuda("CudaEvent");
}
void CudaEvent::synchronize() const {
  no_cuda("CudaEvent");
}
bool CudaEvent::ready() const {
  no_cuda("CudaEvent");
}
void CudaEvent::make_wait(const Stream&) const {
  no_cuda("CudaEvent");
}
float CudaEvent::elapsed_ms(const CudaEvent&, const CudaEvent&) {
  no_cuda("CudaEvent");
}

}  // namespace kiln
