#include "kiln/core/device.hpp"

#include <charconv>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>

#include "kiln/core/error.hpp"

namespace kiln {

std::string Device::str() const {
  return is_cpu() ? std::string("cpu") : "cuda:" + std::to_string(index);
}

Device Device::parse(std::string_view s) {
  if (s == "cpu") return cpu();
  if (s == "cuda") return cuda(0);
  if (s.substr(0, 5) == "cuda:") {
    auto num = s.substr(5);
    int idx = -1;
    auto [p, ec] = std::from_chars(num.data(), num.data() + num.size(), idx);
    if (ec == std::errc() && p == num.data() + num.size() && idx >= 0) return cuda(idx);
  }
  fail(Status::invalid_argument, kiln::str("unknown device '", s, "' (expected cpu, cuda or cuda:N)"),
       "device");
}

namespace {

// Host memory: 64-byte aligned (one cache line, a full AVX-512 vector) so kernels may use
// aligned loads on the start of every tensor.
class CpuBackend final : public DeviceBackend {
 public:
  DeviceType type() const override { return DeviceType::cpu; }
  int device_count() const override { return 1; }
  void* allocate(int, size_t nbytes) override {
    size_t rounded = (nbytes + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
    if (!p)
      fail(Status::out_of_memory, str("host allocation of ", nbytes, " bytes failed"), "cpu");
    return p;
  }
  void deallocate(int, void* p, size_t) noexcept override { std::free(p); }
  void copy(void* dst, Device, const void* src, Device, size_t n, const Stream*) override {
    if (n) std::memmove(dst, src, n);
  }
  Stream create_stream(int) override { return Stream{Device::cpu(), nullptr}; }
  void destroy_stream(Stream) noexcept override {}
  void synchronize(const Stream&) override {}
  std::string describe(int) const override { return "host CPU"; }
};

}  // namespace

DeviceBackend& cuda_backend();  // cuda/cuda_backend.cpp or cuda/cuda_backend_stub.cpp

DeviceBackend& backend_for(DeviceType t) {
  // Never destroyed (nor are the CUDA ones): a tensor held by a static constructed before the
  // first allocation is freed at exit after a destroyed backend would be gone, and would call a
  // pure virtual through its reset vtable.
  static CpuBackend* cpu = new CpuBackend;
  switch (t) {
    case DeviceType::cpu: return *cpu;
    case DeviceType::cuda: return cuda_backend();
  }
  fail(Status::internal, "unknown device type", "device");
}

void check_device(Device d) {
  auto& b = backend_for(d.type);
  int n = b.device_count();
  KILN_CHECK(d.index >= 0 && d.index < n, Status::invalid_argument, "device",
             "device ", d.str(), " does not exist (", n, " ", d.is_cpu() ? "cpu" : "cuda",
             " device(s) present)");
}

void copy_bytes(void* dst, Device dst_dev, const void* src, Device src_dev, size_t nbytes) {
  if (nbytes == 0) return;
  if (dst_dev.is_cpu() && src_dev.is_cpu()) {
    std::memmove(dst, src, nbytes);
  } else if (dst_dev.is_cpu() || src_dev.is_cpu() || dst_dev.type == src_dev.type) {
    backend_for(dst_dev.is_cpu() ? src_dev : dst_dev).copy(dst, dst_dev, src, src_dev, nbytes,
                                                          nullptr);
  } else {
    std::unique_ptr<char[]> staging(new char[nbytes]);
    backend_for(src_dev).copy(staging.get(), Device::cpu(), src, src_dev, nbytes, nullptr);
    backend_for(dst_dev).copy(dst, dst_dev, staging.get(), Device::cpu(), nbytes, nullptr);
  }
}

}  // namespace kiln
