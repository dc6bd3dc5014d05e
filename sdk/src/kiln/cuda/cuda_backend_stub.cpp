// Linked when kiln is built without CUDA: zero devices, and every operation answers
// "unsupported: needs a CUDA build" instead of callers growing #ifdefs.
#include "kiln/core/device.hpp"
#include "kiln/core/error.hpp"

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

}  // namespace kiln
