// CUDA device backend over the runtime API: device memory from the stream-ordered caching
// allocator (caching_allocator.hpp), host->device uploads through pinned staging buffers,
// streams, and the services of cuda_memory.hpp (statistics, current stream, events).
#include <cuda_runtime_api.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

#include "kiln/core/device.hpp"
#include "kiln/core/error.hpp"
#include "kiln/cuda/caching_allocator.hpp"
#include "kiln/cuda/cuda_memory.hpp"

namespace kiln {

namespace {

namespace ca = cuda_alloc;

void check_cuda(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return;
  cudaGetLastError();  // clear the sticky-free error state so later calls are not poisoned
  Status s = e == cudaErrorMemoryAllocation ? Status::out_of_memory : Status::device_error;
  fail(s, str(what, ": ", cudaGetErrorString(e)), "cuda");
}

int visible_devices() {
  // Fixed for the life of the process (CUDA_VISIBLE_DEVICES is read once by the driver).
  static const int n = [] {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
      cudaGetLastError();
      return 0;  // no driver / no GPU: zero devices, not an error
    }
    return count;
  }();
  return n;
}

void check_index(int index) {
  const int n = visible_devices();
  if (index >= 0 && index < n) return;
  fail(Status::invalid_argument,
       n == 0 ? str("cuda:", index, " does not exist: no CUDA device is visible")
              : str("cuda:", index, " does not exist: ", n, " CUDA device(s) visible (cuda:0",
                    n > 1 ? str("..cuda:", n - 1) : std::string(), ")"),
       "cuda");
}

// cudaMalloc/cudaFree/events of one device for the caching allocator. Recorded events come
// from a cache: cudaEventCreate costs about a microsecond, a free that records one should not.
class CudaRawMemory final : public ca::RawDeviceMemory {
 public:
  explicit CudaRawMemory(int index) : index_(index) {}
  ~CudaRawMemory() override {
    for (cudaEvent_t e : events_) cudaEventDestroy(e);
  }
  void* alloc(size_t nbytes) override {
    check_cuda(cudaSetDevice(index_), "cudaSetDevice");
    void* p = nullptr;
    cudaError_t e = cudaMalloc(&p, nbytes);
    if (e == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      return nullptr;
    }
    check_cuda(e, "cudaMalloc");
    return p;
  }
  void free(void* p) noexcept override {
    cudaSetDevice(index_);
    cudaFree(p);
  }
  void mem_info(size_t& free_bytes, size_t& total_bytes) noexcept override {
    free_bytes = total_bytes = 0;
    if (cudaSetDevice(index_) != cudaSuccess ||
        cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess)
      cudaGetLastError();
  }
  ca::EventId record_event(ca::StreamId stream) override {
    check_cuda(cudaSetDevice(index_), "cudaSetDevice");
    cudaEvent_t e = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!events_.empty()) {
        e = events_.back();
        events_.pop_back();
      }
    }
    if (!e) check_cuda(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "cudaEventCreate");
    cudaError_t r = cudaEventRecord(e, reinterpret_cast<cudaStream_t>(stream));
    if (r != cudaSuccess) release_event(e);
    check_cuda(r, "cudaEventRecord");
    return e;
  }
  void wait_event(ca::StreamId stream, ca::EventId event) override {
    check_cuda(cudaSetDevice(index_), "cudaSetDevice");  // stream 0 is the current device's
    check_cuda(cudaStreamWaitEvent(reinterpret_cast<cudaStream_t>(stream),
                                   static_cast<cudaEvent_t>(event), 0),
               "cudaStreamWaitEvent");
  }
  void release_event(ca::EventId event) noexcept override {
    std::lock_guard<std::mutex> lock(mu_);
    events_.push_back(static_cast<cudaEvent_t>(event));
  }
  void synchronize_device() noexcept override {
    if (cudaSetDevice(index_) != cudaSuccess || cudaDeviceSynchronize() != cudaSuccess)
      cudaGetLastError();
  }

 private:
  int index_;
  std::mutex mu_;
  std::vector<cudaEvent_t> events_;
};

// Host->device uploads of pageable memory (weights in an mmap, a std::vector) through
// page-locked buffers: the source is copied into one buffer while the DMA of the other runs
// (double buffering, each buffer guarded by an event), so a large upload costs about
// max(host memcpy, DMA) instead of their sum. A 4 MiB chunk keeps per-chunk overhead
// (~10 us of API calls) under 1% at PCIe 5 speed (~80 us per chunk at 50 GB/s).
constexpr size_t kStagingChunk = size_t{4} << 20;
constexpr size_t kStagedUploadMin = 2 * kStagingChunk;  // below this nothing overlaps
constexpr size_t kIdleStagingSlots = 2;                 // kept between uploads (16 MiB pinned)

class PinnedStaging {
 public:
  explicit PinnedStaging(int index) : index_(index) {}

  // False when no pinned memory could be had (the caller copies directly instead).
  bool upload(void* dst, const void* src, size_t n, cudaStream_t stream, bool sync) {
    Slot* slot = acquire();
    if (!slot) return false;
    struct Lease {
      PinnedStaging* owner;
      Slot* slot;
      ~Lease() { owner->give_back(slot); }
    } lease{this, slot};
    int last = 0;
    for (size_t off = 0, k = 0; off < n; off += kStagingChunk, ++k) {
      const int i = static_cast<int>(k & 1);
      const size_t len = std::min(kStagingChunk, n - off);
      // The DMA that last read this buffer (this upload's chunk k-2, or an earlier upload's).
      check_cuda(cudaEventSynchronize(slot->done[i]), "cudaEventSynchronize");
      std::memcpy(slot->buf[i], static_cast<const char*>(src) + off, len);
      check_cuda(cudaMemcpyAsync(static_cast<char*>(dst) + off, slot->buf[i], len,
                                 cudaMemcpyHostToDevice, stream),
                 "cudaMemcpyAsync");
      check_cuda(cudaEventRecord(slot->done[i], stream), "cudaEventRecord");
      last = i;
    }
    // Asynchronous callers may free `src` now: it has been read. The buffers stay guarded by
    // their events until the DMA is done.
    if (sync) check_cuda(cudaEventSynchronize(slot->done[last]), "cudaEventSynchronize");
    return true;
  }

  size_t held_bytes() const { return held_.load(); }

  void release_idle() noexcept {
    std::vector<Slot*> idle;
    {
      std::lock_guard<std::mutex> lock(mu_);
      idle.swap(idle_);
    }
    for (Slot* s : idle) destroy(s);
  }

 private:
  struct Slot {
    void* buf[2] = {nullptr, nullptr};
    cudaEvent_t done[2] = {nullptr, nullptr};
  };

  Slot* acquire() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!idle_.empty()) {
        Slot* s = idle_.back();
        idle_.pop_back();
        return s;
      }
    }
    check_cuda(cudaSetDevice(index_), "cudaSetDevice");
    auto* s = new Slot;
    bool ok = true;
    for (int i = 0; i < 2 && ok; ++i) {
      ok = cudaHostAlloc(&s->buf[i], kStagingChunk, cudaHostAllocDefault) == cudaSuccess &&
           cudaEventCreateWithFlags(&s->done[i], cudaEventDisableTiming) == cudaSuccess;
    }
    if (!ok) {
      cudaGetLastError();
      destroy(s);
      return nullptr;
    }
    held_ += 2 * kStagingChunk;
    return s;
  }

  void give_back(Slot* s) noexcept {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (idle_.size() < kIdleStagingSlots) {
        idle_.push_back(s);
        return;
      }
    }
    destroy(s);
  }

  void destroy(Slot* s) noexcept {
    for (int i = 0; i < 2; ++i) {
      if (s->done[i]) {
        cudaEventSynchronize(s->done[i]);  // its DMA may still read the buffer
        cudaEventDestroy(s->done[i]);
      }
      if (s->buf[i]) cudaFreeHost(s->buf[i]);
    }
    if (s->buf[0] && s->buf[1] && s->done[0] && s->done[1]) held_ -= 2 * kStagingChunk;
    delete s;
  }

  int index_;
  std::mutex mu_;
  std::vector<Slot*> idle_;
  std::atomic<size_t> held_{0};
};

// Everything kept per device, created on first use.
struct DeviceState {
  explicit DeviceState(int index)
      : raw(index),
        allocator(raw, str("cuda:", index),
                  ca::caching_from_env_value(std::getenv("KILN_CUDA_ALLOCATOR"))),
        staging(index) {}
  CudaRawMemory raw;
  ca::CachingAllocator allocator;
  PinnedStaging staging;
};

constexpr int kMaxDevices = 64;
std::array<std::atomic<DeviceState*>, kMaxDevices> g_states{};  // never destroyed (backend_for)
std::mutex g_states_mu;

DeviceState& state(int index) {
  check_index(index);
  KILN_CHECK(index < kMaxDevices, Status::unsupported, "cuda", "cuda:", index, ": kiln handles ",
             kMaxDevices, " devices at most");
  DeviceState* s = g_states[index].load(std::memory_order_acquire);
  if (s) return *s;
  std::lock_guard<std::mutex> lock(g_states_mu);
  s = g_states[index].load(std::memory_order_relaxed);
  if (!s) {
    s = new DeviceState(index);
    g_states[index].store(s, std::memory_order_release);
  }
  return *s;
}

DeviceState* existing_state(int index) noexcept {
  return index >= 0 && index < kMaxDevices ? g_states[index].load(std::memory_order_acquire)
                                           : nullptr;
}

// The stream CudaStreamGuard set for each device on this thread (null: legacy default). A
// plain array: a tensor held by a static is freed at exit, after thread_local objects with
// destructors are gone.
thread_local void* t_current_streams[kMaxDevices] = {};

cudaStream_t current_stream(int index) {
  return index >= 0 && index < kMaxDevices ? static_cast<cudaStream_t>(t_current_streams[index])
                                           : nullptr;
}

ca::StreamId stream_id(cudaStream_t s) {
  return reinterpret_cast<ca::StreamId>(s);
}

bool is_pinned(const void* p) {
  cudaPointerAttributes a{};
  if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return a.type == cudaMemoryTypeHost;
}

class CudaBackend final : public DeviceBackend {
 public:
  DeviceType type() const override { return DeviceType::cuda; }
  int device_count() const override { return visible_devices(); }

  void* allocate(int index, size_t nbytes) override {
    DeviceState& st = state(index);
    check_cuda(cudaSetDevice(index), "cudaSetDevice");
    return st.allocator.allocate(nbytes, stream_id(current_stream(index)));
  }

  void deallocate(int index, void* p, size_t) noexcept override {
    DeviceState* st = existing_state(index);
    if (st && st->allocator.deallocate(p, stream_id(current_stream(index)))) return;
    cudaSetDevice(index);  // not from the allocator: memory cudaMalloc'd elsewhere
    cudaFree(p);
  }

  // Synchronous copies (no stream, or a null one) run on the thread's current stream of the
  // CUDA side and return when done, as cudaMemcpy does on the legacy default stream.
  void copy(void* dst, Device dst_dev, const void* src, Device src_dev, size_t n,
            const Stream* stream) override {
    if (n == 0) return;
    if (dst_dev.is_cuda()) check_index(dst_dev.index);
    if (src_dev.is_cuda()) check_index(src_dev.index);
    const int index = dst_dev.is_cuda() ? dst_dev.index : src_dev.index;
    check_cuda(cudaSetDevice(index), "cudaSetDevice");
    const bool sync = !(stream && stream->native);
    cudaStream_t s = sync ? current_stream(index) : static_cast<cudaStream_t>(stream->native);
    if (dst_dev.is_cuda() && src_dev.is_cpu() && n >= kStagedUploadMin && !is_pinned(src) &&
        state(index).staging.upload(dst, src, n, s, sync))
      return;
    cudaMemcpyKind kind = dst_dev.is_cpu()   ? cudaMemcpyDeviceToHost
                          : src_dev.is_cpu() ? cudaMemcpyHostToDevice
                                             : cudaMemcpyDeviceToDevice;
    if (sync && !s) {
      check_cuda(cudaMemcpy(dst, src, n, kind), "cudaMemcpy");
    } else {
      check_cuda(cudaMemcpyAsync(dst, src, n, kind, s), "cudaMemcpyAsync");
      if (sync) check_cuda(cudaStreamSynchronize(s), "cudaStreamSynchronize");
    }
  }

  Stream create_stream(int index) override {
    check_index(index);
    check_cuda(cudaSetDevice(index), "cudaSetDevice");
    cudaStream_t s = nullptr;
    check_cuda(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreate");
    return Stream{Device::cuda(index), s};
  }

  void destroy_stream(Stream s) noexcept override {
    if (!s.native) return;
    if (DeviceState* st = existing_state(s.device.index))
      st->allocator.stream_destroyed(stream_id(static_cast<cudaStream_t>(s.native)));
    cudaStreamDestroy(static_cast<cudaStream_t>(s.native));
  }

  void synchronize(const Stream& s) override {
    if (s.native) {
      check_cuda(cudaStreamSynchronize(static_cast<cudaStream_t>(s.native)),
                 "cudaStreamSynchronize");
    } else {
      check_index(s.device.index);
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

void check_cuda_device(Device d, const char* what) {
  KILN_CHECK(d.is_cuda(), Status::invalid_argument, "cuda", what, " needs a CUDA device, got ",
             d.str());
  check_index(d.index);
}

}  // namespace

DeviceBackend& cuda_backend() {
  static CudaBackend* b = new CudaBackend;  // never destroyed: see backend_for()
  return *b;
}

CudaMemoryStats cuda_memory_stats(Device device) {
  check_cuda_device(device, "cuda_memory_stats");
  DeviceState& st = state(device.index);
  CudaMemoryStats s = st.allocator.stats();
  s.pinned_staging_bytes = st.staging.held_bytes();
  return s;
}

void cuda_reset_peak_memory_stats(Device device) {
  check_cuda_device(device, "cuda_reset_peak_memory_stats");
  state(device.index).allocator.reset_peak_stats();
}

size_t cuda_empty_cache(Device device) {
  check_cuda_device(device, "cuda_empty_cache");
  DeviceState& st = state(device.index);
  st.staging.release_idle();
  return st.allocator.empty_cache();
}

Stream cuda_current_stream(Device device) {
  check_cuda_device(device, "cuda_current_stream");
  return Stream{device, current_stream(device.index)};
}

CudaStreamGuard::CudaStreamGuard(const Stream& stream)
    : previous_(cuda_current_stream(stream.device)) {
  state(stream.device.index);  // in range of t_current_streams
  t_current_streams[stream.device.index] = stream.native;
}

CudaStreamGuard::~CudaStreamGuard() {
  t_current_streams[previous_.device.index] = previous_.native;
}

CudaEvent::CudaEvent(Device device, bool timing) : device_(device), timing_(timing) {
  check_cuda_device(device, "CudaEvent");
  check_cuda(cudaSetDevice(device.index), "cudaSetDevice");
  cudaEvent_t e = nullptr;
  check_cuda(cudaEventCreateWithFlags(&e, timing ? cudaEventDefault : cudaEventDisableTiming),
             "cudaEventCreate");
  event_ = e;
}

CudaEvent::~CudaEvent() {
  if (event_) cudaEventDestroy(static_cast<cudaEvent_t>(event_));
}

CudaEvent::CudaEvent(CudaEvent&& other) noexcept
    : device_(other.device_), event_(other.event_), timing_(other.timing_) {
  other.event_ = nullptr;
}

CudaEvent& CudaEvent::operator=(CudaEvent&& other) noexcept {
  if (this != &other) {
    if (event_) cudaEventDestroy(static_cast<cudaEvent_t>(event_));
    device_ = other.device_;
    event_ = other.event_;
    timing_ = other.timing_;
    other.event_ = nullptr;
  }
  return *this;
}

void CudaEvent::record(const Stream& stream) {
  KILN_CHECK(event_, Status::invalid_argument, "cuda", "CudaEvent was moved from");
  KILN_CHECK(stream.device == device_, Status::invalid_argument, "cuda", "CudaEvent of ",
             device_.str(), " recorded on a stream of ", stream.device.str());
  check_cuda(cudaSetDevice(device_.index), "cudaSetDevice");
  check_cuda(
      cudaEventRecord(static_cast<cudaEvent_t>(event_), static_cast<cudaStream_t>(stream.native)),
      "cudaEventRecord");
}

void CudaEvent::record() {
  record(cuda_current_stream(device_));
}

void CudaEvent::synchronize() const {
  KILN_CHECK(event_, Status::invalid_argument, "cuda", "CudaEvent was moved from");
  check_cuda(cudaEventSynchronize(static_cast<cudaEvent_t>(event_)), "cudaEventSynchronize");
}

bool CudaEvent::ready() const {
  KILN_CHECK(event_, Status::invalid_argument, "cuda", "CudaEvent was moved from");
  cudaError_t e = cudaEventQuery(static_cast<cudaEvent_t>(event_));
  if (e == cudaErrorNotReady) return false;
  check_cuda(e, "cudaEventQuery");
  return true;
}

void CudaEvent::make_wait(const Stream& stream) const {
  KILN_CHECK(event_, Status::invalid_argument, "cuda", "CudaEvent was moved from");
  check_cuda_device(stream.device, "CudaEvent::make_wait");
  check_cuda(cudaSetDevice(stream.device.index), "cudaSetDevice");
  check_cuda(cudaStreamWaitEvent(static_cast<cudaStream_t>(stream.native),
                                 static_cast<cudaEvent_t>(event_), 0),
             "cudaStreamWaitEvent");
}

float CudaEvent::elapsed_ms(const CudaEvent& start, const CudaEvent& end) {
  KILN_CHECK(start.event_ && end.event_, Status::invalid_argument, "cuda",
             "CudaEvent was moved from");
  KILN_CHECK(start.timing_ && end.timing_, Status::invalid_argument, "cuda",
             "elapsed_ms needs two timing events (CudaEvent(device, true))");
  end.synchronize();
  float ms = 0.f;
  check_cuda(cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(start.event_),
                                  static_cast<cudaEvent_t>(end.event_)),
             "cudaEventElapsedTime");
  return ms;
}

}  // namespace kiln
