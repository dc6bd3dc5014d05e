// CUDA runtime services beyond the DeviceBackend interface: the caching allocator's statistics
// and cache control (what `kiln bench` reports as peak memory), the stream this thread's
// allocations are ordered on, and events for timing. Implemented in cuda_backend.cpp; builds
// without CUDA link cuda_backend_stub.cpp, whose functions answer `unsupported: ... needs a
// CUDA build` (callers need no #ifdefs). docs/cuda.md, "Memory", describes the allocator.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kiln/core/device.hpp"

namespace kiln {

// One device's allocator counters. Sizes in bytes.
struct CudaMemoryStats {
  bool caching = true;         // false: KILN_CUDA_ALLOCATOR=plain (cudaMalloc/cudaFree each time)
  size_t allocated_bytes = 0;  // in blocks handed out (requests rounded up to 512 B)
  size_t requested_bytes = 0;  // as asked by the callers of those blocks
  size_t reserved_bytes = 0;   // held from the device: cudaMalloc'd segments, in use or cached
  size_t peak_allocated_bytes = 0;  // since start or cuda_reset_peak_memory_stats()
  size_t peak_reserved_bytes = 0;
  size_t active_blocks = 0;         // blocks handed out and not yet freed
  size_t segments = 0;              // cudaMalloc'd regions held
  uint64_t device_alloc_calls = 0;  // cudaMalloc calls that succeeded
  uint64_t device_free_calls = 0;   // cudaFree calls
  uint64_t cache_flushes = 0;       // a cudaMalloc failed, the cache was emptied and it retried
  uint64_t oom_errors = 0;          // allocations refused with out_of_memory
  uint64_t cross_stream_waits = 0;  // event waits for reuse of memory freed on another stream
  size_t pinned_staging_bytes = 0;  // page-locked host buffers held for host->device uploads
};

// Throw invalid_argument when `device` is not an existing CUDA device.
CudaMemoryStats cuda_memory_stats(Device device);
void cuda_reset_peak_memory_stats(Device device);  // peaks := current values
// Waits for the device, then returns every fully free cached segment to the driver (and the
// idle pinned staging buffers). Returns the device bytes released.
size_t cuda_empty_cache(Device device);

// The stream this thread's allocations, frees and synchronous copies on `device` are ordered
// on: the legacy default stream ({device, nullptr}) unless a CudaStreamGuard says otherwise.
// A block freed on one stream and reused on another makes the new stream wait on an event
// recorded at the free; the caller's side is to free memory on a stream that is already
// ordered after every use of it (the stream it was used on, or one that waited for it). Kernels
// launch on cuda_ops::op_stream(), which is still the legacy default stream: until it follows this
// stream (issue 5, item 4), set a guard only around code whose device work all runs on that stream
// (backend copies with it, raw CUDA calls).
Stream cuda_current_stream(Device device);

class CudaStreamGuard {
 public:
  explicit CudaStreamGuard(const Stream& stream);  // stream.device must be a CUDA device
  ~CudaStreamGuard();
  CudaStreamGuard(const CudaStreamGuard&) = delete;
  CudaStreamGuard& operator=(const CudaStreamGuard&) = delete;

 private:
  Stream previous_;
};

// A cudaEvent_t, for timing work on a stream (and for ordering one stream after another).
//   CudaEvent start(dev), stop(dev);
//   start.record(s); ...work on s...; stop.record(s);
//   float ms = CudaEvent::elapsed_ms(start, stop);  // waits for stop
class CudaEvent {
 public:
  explicit CudaEvent(Device device, bool timing = true);
  ~CudaEvent();
  CudaEvent(CudaEvent&& other) noexcept;
  CudaEvent& operator=(CudaEvent&& other) noexcept;
  CudaEvent(const CudaEvent&) = delete;
  CudaEvent& operator=(const CudaEvent&) = delete;

  void record(const Stream& stream);           // stream on device()
  void record();                               // on cuda_current_stream(device())
  void synchronize() const;                    // host waits until the recorded work is done
  bool ready() const;                          // the recorded work is done (true if never recorded)
  void make_wait(const Stream& stream) const;  // `stream`'s later work waits for this event
  // Milliseconds between two recorded timing events (~0.5 us resolution); waits for `end`.
  static float elapsed_ms(const CudaEvent& start, const CudaEvent& end);

  Device device() const { return device_; }
  void* native() const { return event_; }  // cudaEvent_t

 private:
  Device device_;
  void* event_ = nullptr;
  bool timing_ = true;
};

}  // namespace kiln
