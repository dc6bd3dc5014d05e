// Devices, streams and the backend interface an accelerator plugs into. The CPU backend is
// always present; the CUDA backend (sdk/src/kiln/cuda/) is compiled when KILN_CUDA is on and
// otherwise replaced by one that answers "unsupported: needs a CUDA build" — callers never
// grow #ifdefs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace kiln {

enum class DeviceType : uint8_t { cpu = 0, cuda = 1 };

struct Device {
  DeviceType type = DeviceType::cpu;
  int index = 0;

  static Device cpu() { return {DeviceType::cpu, 0}; }
  static Device cuda(int i = 0) { return {DeviceType::cuda, i}; }
  bool is_cpu() const { return type == DeviceType::cpu; }
  bool is_cuda() const { return type == DeviceType::cuda; }
  std::string str() const;  // "cpu", "cuda:0"
  // Parses "cpu", "cuda", "cuda:N"; throws invalid_argument naming the text.
  static Device parse(std::string_view s);
  friend bool operator==(Device a, Device b) { return a.type == b.type && a.index == b.index; }
};

// A queue of device work. For the CPU, work is synchronous and `native` is null; for CUDA it
// is a cudaStream_t (null = the legacy default stream).
struct Stream {
  Device device;
  void* native = nullptr;
};

class DeviceBackend {
 public:
  virtual ~DeviceBackend() = default;
  virtual DeviceType type() const = 0;
  virtual int device_count() const = 0;
  // Throws Status::out_of_memory naming the amount asked and the amount free.
  virtual void* allocate(int index, size_t nbytes) = 0;
  virtual void deallocate(int index, void* p, size_t nbytes) noexcept = 0;
  // Copies between this backend's memory and host memory (or within it). Ordered on `stream`
  // when given; synchronous otherwise.
  virtual void copy(void* dst, Device dst_dev, const void* src, Device src_dev, size_t nbytes,
                    const Stream* stream) = 0;
  virtual Stream create_stream(int index) = 0;
  virtual void destroy_stream(Stream s) noexcept = 0;
  virtual void synchronize(const Stream& s) = 0;
  virtual std::string describe(int index) const = 0;  // "NVIDIA H100 80GB HBM3, 79.1 GiB free"
};

DeviceBackend& backend_for(DeviceType t);
inline DeviceBackend& backend_for(Device d) { return backend_for(d.type); }
// Throws unless `d` names an existing device of a compiled-in backend.
void check_device(Device d);
// Synchronous copy between any two devices (host staging when neither side is the host).
void copy_bytes(void* dst, Device dst_dev, const void* src, Device src_dev, size_t nbytes);

}  // namespace kiln
