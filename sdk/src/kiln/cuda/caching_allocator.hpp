// The bookkeeping of the stream-ordered caching allocator for CUDA device memory, with the
// device behind an interface (RawDeviceMemory) so it is built and tested without CUDA:
// cuda_backend.cpp gives it cudaMalloc/cudaFree/cudaEvent*, the unit tests a fake.
//
// Design (learned from PyTorch's c10/cuda/CUDACachingAllocator.cpp notes, written anew):
// - Requests are rounded up to 512 B. Up to 1 MiB they come from the small pool, whose
//   segments are 2 MiB; larger ones from the large pool: 20 MiB segments for requests under
//   10 MiB (a few 1-10 MiB activations share one cudaMalloc), else the request rounded up to
//   2 MiB. cudaMalloc costs 10 us-1 ms and may synchronize the device, so after warm-up a
//   denoiser step makes none.
// - Best fit: the smallest free block of the pool that fits (ties: lowest address). A larger
//   block is split when the rest is >= 512 B (small pool) or > 1 MiB (large pool), so a large
//   segment is not shredded into slivers only a small request could use. A freed block merges
//   with free neighbours of its segment; a segment entirely free again is cached, not freed.
// - Streams: unlike PyTorch (a block is only reused on the stream it was allocated on), a free
//   block carries fences, (stream, event) pairs of the frees that made it, and may be reused on
//   any stream: the new stream first waits (cudaStreamWaitEvent, on the device, no host sync)
//   on every fence of another stream. While a device has only ever seen one stream no events
//   are recorded at all (the common single-stream case costs nothing); when a second stream
//   appears, one event per stream is recorded for the blocks already free, and from then on
//   each free records one. A destroyed stream's fences get an event before it goes and a
//   'retired' stream id, so a new stream that reuses the old handle value still waits.
// - Out of memory: return every fully free cached segment to the device and retry once, then
//   throw out_of_memory naming the request, the device's free/total and what kiln holds.
// - Plain mode (KILN_CUDA_ALLOCATOR=plain): one cudaMalloc of the exact size per request and a
//   cudaFree per release, for compute-sanitizer (whose bounds checks see only cudaMalloc'd
//   regions) and for telling allocator bugs from kernel bugs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "kiln/cuda/cuda_memory.hpp"

namespace kiln::cuda_alloc {

using StreamId = std::uintptr_t;  // a cudaStream_t's value; 0 is the legacy default stream
using EventId = void*;            // a cudaEvent_t

// What the allocator needs from a device. Called with the allocator's lock held.
class RawDeviceMemory {
 public:
  virtual ~RawDeviceMemory() = default;
  // nullptr when the device is out of memory; throws Error on any other failure.
  virtual void* alloc(size_t nbytes) = 0;
  virtual void free(void* p) noexcept = 0;
  virtual void mem_info(size_t& free_bytes, size_t& total_bytes) noexcept = 0;
  // An event recorded on `stream` now (from a cache); throws Error on failure.
  virtual EventId record_event(StreamId stream) = 0;
  // `stream`'s later work waits for `event`; throws Error on failure.
  virtual void wait_event(StreamId stream, EventId event) = 0;
  virtual void release_event(EventId event) noexcept = 0;  // back to the cache
  virtual void synchronize_device() noexcept = 0;
};

constexpr size_t kMinBlock = 512;                  // rounding of every request
constexpr size_t kSmallRequest = size_t{1} << 20;  // <= this: small pool
constexpr size_t kSmallSegment = size_t{2} << 20;
constexpr size_t kMediumSegment = size_t{20} << 20;  // for requests in (1 MiB, 10 MiB)
constexpr size_t kLargeRequest = size_t{10} << 20;   // >= this: a segment of its own
constexpr size_t kLargeRounding = size_t{2} << 20;

size_t round_request(size_t nbytes);     // to a multiple of 512 B, at least 512 B
size_t segment_size(size_t rounded);     // the cudaMalloc size a new segment for it gets
std::string format_bytes(size_t bytes);  // "512 B", "1.50 KiB", "79.11 GiB", "1.00 PiB"
// KILN_CUDA_ALLOCATOR's value: null, "" or "caching" -> true; "plain" -> false; else throws
// invalid_argument naming the variable and the accepted values.
bool caching_from_env_value(const char* value);

// One segment as the tests see it: its blocks in address order.
struct SegmentView {
  uintptr_t base = 0;
  size_t size = 0;
  struct BlockView {
    size_t offset = 0, size = 0;
    bool allocated = false;
  };
  std::vector<BlockView> blocks;
};

class CachingAllocator {
 public:
  // `device_name` ("cuda:0") is for error messages. `raw` must outlive the allocator.
  CachingAllocator(RawDeviceMemory& raw, std::string device_name, bool caching);
  ~CachingAllocator();  // releases cached segments; blocks still handed out are left alone
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  // Device memory for `nbytes`, usable by work on `stream` from now on.
  void* allocate(size_t nbytes, StreamId stream);
  // Gives `p` back; work already enqueued on `stream` may still use it. False when `p` did not
  // come from this allocator (nothing is done then).
  bool deallocate(void* p, StreamId stream) noexcept;
  // Waits for the device and returns every fully free segment; returns the bytes released.
  size_t empty_cache();
  // Called before cudaStreamDestroy(stream).
  void stream_destroyed(StreamId stream) noexcept;

  CudaMemoryStats stats() const;  // pinned_staging_bytes is the backend's, left 0 here
  void reset_peak_stats();
  bool caching() const { return caching_; }
  std::vector<SegmentView> segments() const;  // caching mode only

 private:
  struct Fence;
  struct Block;
  struct BySize {
    bool operator()(const Block* a, const Block* b) const;
  };
  using FreeSet = std::set<Block*, BySize>;
  // `waiter` has waited on the fence of `freer`'s free number `seq`, so on every earlier free
  // of `freer` too: a block split from one it took, merged back later, needs no second wait.
  struct Synced {
    StreamId waiter, freer;
    uint64_t seq;
  };

  void* allocate_plain(size_t nbytes);
  void deallocate_plain(void* p) noexcept;
  Block* new_segment(size_t rounded, bool small, size_t asked);
  [[noreturn]] void throw_oom(size_t asked);
  void note_stream(StreamId stream);
  Synced* synced(StreamId waiter, StreamId freer);
  void free_cached_segments();
  void merge_fences(Block* into, const Block* from) const;
  FreeSet& pool_of(const Block* b);
  void update_peaks();

  RawDeviceMemory& raw_;
  const std::string device_name_;
  const bool caching_;
  mutable std::mutex mu_;
  FreeSet small_free_, large_free_;
  std::unordered_map<void*, Block*> active_;  // caching mode: handed-out blocks by pointer
  std::unordered_map<void*, size_t> plain_;   // plain mode: live allocations and their sizes
  std::set<Block*> segment_heads_;            // first block of every segment
  std::vector<StreamId> streams_seen_;
  std::vector<Synced> synced_;
  bool multi_stream_ = false;  // events are recorded at frees
  uint64_t fence_seq_ = 0;
  CudaMemoryStats stats_;
};

}  // namespace kiln::cuda_alloc
