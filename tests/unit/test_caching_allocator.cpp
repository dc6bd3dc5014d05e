// The CUDA caching allocator's bookkeeping against a fake device (no GPU, no CUDA): size
// classes, best fit, split and coalesce, statistics, stream fences, out of memory, plain mode.
// The same allocator on a real device is tested by tests/cuda/test_cuda_allocator.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "kiln/core/error.hpp"
#include "kiln/cuda/caching_allocator.hpp"

using namespace kiln;
using namespace kiln::cuda_alloc;

namespace {

constexpr size_t KiB = 1024, MiB = 1024 * KiB, GiB = 1024 * MiB;

// A device of `capacity` bytes: addresses from a counter (never dereferenced), events are
// numbers, and every call is logged.
class FakeDevice final : public RawDeviceMemory {
 public:
  explicit FakeDevice(size_t capacity) : capacity_(capacity) {}
  ~FakeDevice() override { EXPECT_EQ(live_events, 0) << "events leaked"; }

  void* alloc(size_t n) override {
    if (fail_next_alloc_with_error) {
      fail_next_alloc_with_error = false;
      fail(Status::device_error, "fake cudaMalloc error");
    }
    if (used + n > capacity_) return nullptr;
    ++allocs;
    used += n;
    next_ = (next_ + 2 * MiB - 1) / (2 * MiB) * (2 * MiB);  // cudaMalloc aligns to 2 MiB
    void* p = reinterpret_cast<void*>(next_);
    next_ += n;
    sizes_[p] = n;
    return p;
  }
  void free(void* p) noexcept override {
    ++frees;
    used -= sizes_.at(p);
    sizes_.erase(p);
  }
  void mem_info(size_t& f, size_t& t) noexcept override {
    f = capacity_ - used;
    t = capacity_;
  }
  EventId record_event(StreamId s) override {
    ++live_events;
    log.push_back("record " + std::to_string(s) + " e" + std::to_string(++event_counter_));
    Clock snapshot = knows[s];
    snapshot[s] = clock[s];
    event_knows[event_counter_] = snapshot;
    return reinterpret_cast<EventId>(event_counter_);
  }
  void wait_event(StreamId s, EventId e) override {
    log.push_back("wait " + std::to_string(s) + " e" +
                  std::to_string(reinterpret_cast<uintptr_t>(e)));
    for (auto [t, c] : event_knows.at(reinterpret_cast<uintptr_t>(e)))
      knows[s][t] = std::max(knows[s][t], c);
  }
  void release_event(EventId) noexcept override { --live_events; }
  void synchronize_device() noexcept override {
    ++syncs;
    for (auto [t, c] : clock) device_done[t] = c;
  }

  // A vector-clock model of the streams, for checking that reuse is ordered: clock[t] counts
  // the work enqueued on stream t; knows[s][t] is how much of t's work stream s is ordered
  // after (through waits on events, which carry what their stream knew); device_done[t] is
  // what a device synchronization finished.
  using Clock = std::map<StreamId, uint64_t>;
  Clock clock, device_done;
  std::map<StreamId, Clock> knows;
  std::map<uintptr_t, Clock> event_knows;
  bool ordered_after(StreamId s, StreamId t, uint64_t c) {
    return s == t || knows[s][t] >= c || device_done[t] >= c;
  }

  size_t used = 0;
  int allocs = 0, frees = 0, syncs = 0, live_events = 0;
  bool fail_next_alloc_with_error = false;
  std::vector<std::string> log;

 private:
  size_t capacity_;
  uintptr_t next_ = 0x100000000;
  uintptr_t event_counter_ = 0;
  std::map<void*, size_t> sizes_;
};

char* as_char(void* p) {
  return static_cast<char*>(p);
}

// Blocks of every segment tile it, no two free blocks are neighbours, and the statistics
// agree with the blocks.
void check_invariants(const CachingAllocator& a) {
  size_t reserved = 0, allocated = 0, active = 0;
  for (const SegmentView& s : a.segments()) {
    size_t off = 0;
    for (size_t i = 0; i < s.blocks.size(); ++i) {
      const auto& b = s.blocks[i];
      EXPECT_EQ(b.offset, off);
      EXPECT_EQ(b.size % kMinBlock, 0u);
      if (i > 0) {
        EXPECT_FALSE(!b.allocated && !s.blocks[i - 1].allocated) << "unmerged neighbours";
      }
      if (b.allocated) {
        allocated += b.size;
        ++active;
      }
      off += b.size;
    }
    EXPECT_EQ(off, s.size);
    reserved += s.size;
  }
  CudaMemoryStats st = a.stats();
  EXPECT_EQ(st.reserved_bytes, reserved);
  EXPECT_EQ(st.allocated_bytes, allocated);
  EXPECT_EQ(st.active_blocks, active);
  EXPECT_EQ(st.segments, a.segments().size());
}

}  // namespace

TEST(CachingAllocatorSizes, RoundingAndSegments) {
  EXPECT_EQ(round_request(0), 512u);
  EXPECT_EQ(round_request(1), 512u);
  EXPECT_EQ(round_request(512), 512u);
  EXPECT_EQ(round_request(513), 1024u);
  EXPECT_EQ(round_request(4097), 4608u);
  EXPECT_EQ(round_request(MiB + 1), MiB + 512);
  EXPECT_EQ(segment_size(512), 2 * MiB);  // small pool
  EXPECT_EQ(segment_size(MiB), 2 * MiB);
  EXPECT_EQ(segment_size(MiB + 512), 20 * MiB);  // 1-10 MiB share 20 MiB segments
  EXPECT_EQ(segment_size(10 * MiB - 512), 20 * MiB);
  EXPECT_EQ(segment_size(10 * MiB), 10 * MiB);  // from 10 MiB: own segment, 2 MiB multiple
  EXPECT_EQ(segment_size(11 * MiB), 12 * MiB);
  EXPECT_EQ(segment_size(77 * MiB + 3 * 512), 78 * MiB);
}

TEST(CachingAllocatorSizes, FormatBytes) {
  EXPECT_EQ(format_bytes(0), "0 B");
  EXPECT_EQ(format_bytes(1023), "1023 B");
  EXPECT_EQ(format_bytes(1536), "1.50 KiB");
  EXPECT_EQ(format_bytes(3 * GiB / 2), "1.50 GiB");
  EXPECT_EQ(format_bytes(size_t{1} << 50), "1.00 PiB");
  EXPECT_EQ(format_bytes(size_t{84934656} * 1000), "79.10 GiB");
}

TEST(CachingAllocatorSizes, EnvironmentValue) {
  EXPECT_TRUE(caching_from_env_value(nullptr));
  EXPECT_TRUE(caching_from_env_value(""));
  EXPECT_TRUE(caching_from_env_value("caching"));
  EXPECT_FALSE(caching_from_env_value("plain"));
  try {
    caching_from_env_value("Plain ");
    FAIL() << "expected invalid_argument";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Status::invalid_argument);
    EXPECT_NE(std::string(e.what()).find("KILN_CUDA_ALLOCATOR='Plain '"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("'plain'"), std::string::npos);
  }
}

TEST(CachingAllocator, SameSizeClassReusesTheBlock) {
  FakeDevice dev(GiB);
  CachingAllocator a(dev, "cuda:0", true);
  void* p = a.allocate(1000, 0);
  ASSERT_TRUE(a.deallocate(p, 0));
  EXPECT_EQ(a.allocate(1000, 0), p);
  ASSERT_TRUE(a.deallocate(p, 0));
  EXPECT_EQ(a.allocate(600, 0), p);  // 600 and 1000 both round to 1024
  EXPECT_EQ(dev.allocs, 1);
  void* big = a.allocate(64 * MiB, 0);
  ASSERT_TRUE(a.deallocate(big, 0));
  EXPECT_EQ(a.allocate(63 * MiB + 1, 0), big);  // the 64 MiB segment, not split (rest <= 1 MiB)
  EXPECT_EQ(dev.allocs, 2);
  EXPECT_TRUE(dev.log.empty()) << "one stream: no events";
  check_invariants(a);
}

TEST(CachingAllocator, SmallPoolSplitsAndCoalesces) {
  FakeDevice dev(GiB);
  CachingAllocator a(dev, "cuda:0", true);
  char* x = as_char(a.allocate(512, 0));
  char* y = as_char(a.allocate(512, 0));
  char* z = as_char(a.allocate(1000, 0));
  EXPECT_EQ(y, x + 512);  // carved from one 2 MiB segment in address order
  EXPECT_EQ(z, x + 1024);
  auto segs = a.segments();
  ASSERT_EQ(segs.size(), 1u);
  EXPECT_EQ(segs[0].size, 2 * MiB);
  ASSERT_EQ(segs[0].blocks.size(), 4u);
  EXPECT_EQ(segs[0].blocks[3].size, 2 * MiB - 2048);
  EXPECT_FALSE(segs[0].blocks[3].allocated);

  a.deallocate(y, 0);  // a hole between two live blocks
  EXPECT_EQ(a.segments()[0].blocks.size(), 4u);
  EXPECT_EQ(a.allocate(256, 0), y);  // best fit: the 512 B hole, not the big tail
  a.deallocate(y, 0);
  a.deallocate(x, 0);  // merges with the hole after it
  segs = a.segments();
  ASSERT_EQ(segs[0].blocks.size(), 3u);
  EXPECT_EQ(segs[0].blocks[0].size, 1024u);
  EXPECT_FALSE(segs[0].blocks[0].allocated);
  a.deallocate(z, 0);  // merges with both sides: the whole segment is one free block again
  segs = a.segments();
  ASSERT_EQ(segs[0].blocks.size(), 1u);
  EXPECT_EQ(segs[0].blocks[0].size, 2 * MiB);
  EXPECT_EQ(a.allocate(1536, 0), x);
  EXPECT_EQ(dev.allocs, 1);
  check_invariants(a);
}

TEST(CachingAllocator, LargePoolSplitsOnlyWhenTheRestIsLarge) {
  FakeDevice dev(GiB);
  CachingAllocator a(dev, "cuda:0", true);
  char* p = as_char(a.allocate(3 * MiB, 0));  // a 20 MiB segment: 3 MiB + 17 MiB free
  auto segs = a.segments();
  ASSERT_EQ(segs.size(), 1u);
  EXPECT_EQ(segs[0].size, 20 * MiB);
  ASSERT_EQ(segs[0].blocks.size(), 2u);
  char* q = as_char(a.allocate(16 * MiB + 512 * KiB, 0));  // rest 512 KiB: not split off
  EXPECT_EQ(q, p + 3 * MiB);
  EXPECT_EQ(a.segments()[0].blocks.size(), 2u);
  EXPECT_EQ(a.stats().allocated_bytes, 20 * MiB);
  EXPECT_EQ(a.stats().requested_bytes, 19 * MiB + 512 * KiB);
  char* s = as_char(a.allocate(256, 0));  // small requests never come from the large pool
  EXPECT_EQ(a.segments().size(), 2u);
  a.deallocate(p, 0);
  a.deallocate(q, 0);
  a.deallocate(s, 0);
  EXPECT_EQ(a.segments()[0].blocks.size(), 1u);
  check_invariants(a);
}

TEST(CachingAllocator, StatisticsArithmetic) {
  FakeDevice dev(GiB);
  CachingAllocator a(dev, "cuda:0", true);
  void* p1 = a.allocate(100, 0);           // 512 from a 2 MiB segment
  void* p2 = a.allocate(5 * MiB, 0);       // 5 MiB from a 20 MiB segment
  void* p3 = a.allocate(30 * MiB + 1, 0);  // 30 MiB + 512 from a 32 MiB segment
  CudaMemoryStats s = a.stats();
  EXPECT_TRUE(s.caching);
  EXPECT_EQ(s.allocated_bytes, 512 + 5 * MiB + 30 * MiB + 512);
  EXPECT_EQ(s.requested_bytes, 100 + 5 * MiB + 30 * MiB + 1);
  EXPECT_EQ(s.reserved_bytes, 2 * MiB + 20 * MiB + 32 * MiB);
  EXPECT_EQ(s.active_blocks, 3u);
  EXPECT_EQ(s.segments, 3u);
  EXPECT_EQ(s.device_alloc_calls, 3u);
  EXPECT_EQ(s.peak_allocated_bytes, s.allocated_bytes);
  const size_t peak = s.allocated_bytes;
  a.deallocate(p3, 0);
  s = a.stats();
  EXPECT_EQ(s.allocated_bytes, 512 + 5 * MiB);
  EXPECT_EQ(s.reserved_bytes, 54 * MiB);  // cached, not given back
  EXPECT_EQ(s.peak_allocated_bytes, peak);
  a.reset_peak_stats();
  EXPECT_EQ(a.stats().peak_allocated_bytes, 512 + 5 * MiB);
  EXPECT_EQ(a.stats().peak_reserved_bytes, 54 * MiB);
  EXPECT_EQ(a.empty_cache(), 32 * MiB);  // only the fully free segment goes
  s = a.stats();
  EXPECT_EQ(s.reserved_bytes, 22 * MiB);
  EXPECT_EQ(s.device_free_calls, 1u);
  EXPECT_EQ(dev.syncs, 1);  // empty_cache waits for the device before cudaFree
  a.deallocate(p1, 0);
  a.deallocate(p2, 0);
  EXPECT_EQ(a.stats().allocated_bytes, 0u);
  EXPECT_EQ(a.stats().requested_bytes, 0u);
  EXPECT_EQ(a.empty_cache(), 22 * MiB);
  EXPECT_EQ(a.stats().reserved_bytes, 0u);
  EXPECT_EQ(dev.used, 0u);
  check_invariants(a);
}

TEST(CachingAllocator, ReuseOnAnotherStreamWaitsOnTheFree) {
  FakeDevice dev(GiB);
  CachingAllocator a(dev, "cuda:0", true);
  const StreamId A = 0xA0, B = 0xB0;
  void* p = a.allocate(4096, A);
  a.deallocate(p, A);  // one stream so far: no event
  EXPECT_TRUE(dev.log.empty());
  EXPECT_EQ(a.allocate(4096, B), p);  // a second stream: an event on A now, B waits on it
  EXPECT_EQ(dev.log, (std::vector<std::string>{"record 160 e1", "wait 176 e1"}));
  EXPECT_EQ(a.stats().cross_stream_waits, 1u);
  dev.log.clear();
  a.deallocate(p, B);  // two streams seen: every free records an event
  EXPECT_EQ(dev.log, (std::vector<std::string>{"record 176 e2"}));
  dev.log.clear();
  EXPECT_EQ(a.allocate(4096, B), p);  // same stream: ordered already, no wait
  EXPECT_TRUE(dev.log.empty());
  a.deallocate(p, B);
  EXPECT_EQ(a.allocate(4096, A), p);
  EXPECT_EQ(dev.log, (std::vector<std::string>{"record 176 e3", "wait 160 e3"}));
  a.deallocate(p, A);
  check_invariants(a);
}

TEST(CachingAllocator, MergedBlocksKeepEveryStreamsFence) {
  FakeDevice dev(GiB);
  CachingAllocator a(dev, "cuda:0", true);
  const StreamId A = 1, B = 2, C = 3;
  char* x = as_char(a.allocate(512, A));
  char* y = as_char(a.allocate(512, A));
  char* z = as_char(a.allocate(512, A));  // keeps the tail from merging into x and y
  a.deallocate(x, A);                     // one stream: fence without event
  a.deallocate(y, B);  // second stream: x's fence gets an event on A (e1), y records e2
  dev.log.clear();
  EXPECT_EQ(a.allocate(1024, C), x);  // x and y merged: C waits for both frees
  std::vector<std::string> log = dev.log;
  std::sort(log.begin(), log.end());
  EXPECT_EQ(log, (std::vector<std::string>{"wait 3 e1", "wait 3 e2"}));
  a.deallocate(x, A);  // a fresh fence on A (e3): reuse on A needs no wait
  dev.log.clear();
  EXPECT_EQ(a.allocate(512, A), x);
  EXPECT_TRUE(dev.log.empty());
  a.deallocate(x, A);
  a.deallocate(z, A);
  check_invariants(a);
}

TEST(CachingAllocator, DestroyedStreamsFenceStaysWhenTheHandleIsReused) {
  FakeDevice dev(GiB);
  CachingAllocator a(dev, "cuda:0", true);
  const StreamId S = 0x5000;
  void* p = a.allocate(2048, S);
  a.deallocate(p, S);
  a.stream_destroyed(S);  // single-stream: the fence gets an event recorded before the end
  EXPECT_EQ(dev.log, (std::vector<std::string>{"record 20480 e1"}));
  dev.log.clear();
  // A new stream that happens to get the same handle value must still wait.
  EXPECT_EQ(a.allocate(2048, S), p);
  EXPECT_EQ(dev.log, (std::vector<std::string>{"wait 20480 e1"}));
  a.deallocate(p, S);
  check_invariants(a);
}

TEST(CachingAllocator, OutOfMemoryFlushesTheCacheThenNamesTheNumbers) {
  FakeDevice dev(100 * MiB);
  CachingAllocator a(dev, "cuda:3", true);
  void* big = a.allocate(60 * MiB, 0);
  a.deallocate(big, 0);                   // 60 MiB cached
  void* other = a.allocate(70 * MiB, 0);  // does not fit beside it: flush, retry
  EXPECT_NE(other, nullptr);
  CudaMemoryStats s = a.stats();
  EXPECT_EQ(s.cache_flushes, 1u);
  EXPECT_EQ(s.device_free_calls, 1u);
  EXPECT_EQ(s.reserved_bytes, 70 * MiB);
  try {
    a.allocate(size_t{1} << 50, 0);
    FAIL() << "expected out_of_memory";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Status::out_of_memory);
    EXPECT_EQ(std::string(e.what()),
              "[cuda] cannot allocate 1.00 PiB (1125899906842624 bytes) on cuda:3: 30.00 MiB free "
              "of 100.00 MiB; kiln holds 70.00 MiB (70.00 MiB in use)");
  }
  EXPECT_THROW(a.allocate(~size_t{0}, 0), Error);  // no overflow in the rounding
  EXPECT_EQ(a.stats().oom_errors, 2u);
  // A 1-10 MiB request wants a 20 MiB segment; with less than that free on the device it
  // gets a segment of its own size rounded to 2 MiB.
  void* m1 = a.allocate(15 * MiB, 0);  // a 16 MiB segment: 14 MiB left on the device
  void* m2 = a.allocate(3 * MiB, 0);
  auto segs = a.segments();
  EXPECT_TRUE(std::any_of(segs.begin(), segs.end(), [&](const SegmentView& v) {
    return v.base == reinterpret_cast<uintptr_t>(m2) && v.size == 4 * MiB;
  }));
  a.deallocate(m1, 0);
  a.deallocate(m2, 0);
  // The device works after all that, and other errors are not taken for out of memory.
  dev.fail_next_alloc_with_error = true;
  try {
    a.allocate(200 * MiB, 0);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Status::device_error);
  }
  check_invariants(a);
}

TEST(CachingAllocator, PlainModeGoesToTheDeviceEveryTime) {
  FakeDevice dev(GiB);
  CachingAllocator a(dev, "cuda:0", false);
  void* p = a.allocate(1000, 0);
  CudaMemoryStats s = a.stats();
  EXPECT_FALSE(s.caching);
  EXPECT_EQ(s.allocated_bytes, 1000u);  // exact: compute-sanitizer sees the real bounds
  EXPECT_EQ(s.reserved_bytes, 1000u);
  EXPECT_EQ(dev.used, 1000u);
  EXPECT_TRUE(a.deallocate(p, 0));
  EXPECT_EQ(dev.used, 0u);
  EXPECT_EQ(dev.frees, 1);
  void* q = a.allocate(1000, 7);
  a.deallocate(q, 9);
  EXPECT_EQ(a.stats().device_alloc_calls, 2u);
  EXPECT_EQ(a.stats().device_free_calls, 2u);
  EXPECT_EQ(a.stats().reserved_bytes, 0u);
  EXPECT_EQ(a.stats().peak_reserved_bytes, 1000u);
  EXPECT_TRUE(dev.log.empty());
  EXPECT_EQ(a.empty_cache(), 0u);
  try {
    a.allocate(2 * GiB, 0);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Status::out_of_memory);
    EXPECT_NE(std::string(e.what()).find("cannot allocate 2.00 GiB"), std::string::npos);
  }
}

TEST(CachingAllocator, UnknownPointersAreRefused) {
  FakeDevice dev(GiB);
  CachingAllocator a(dev, "cuda:0", true);
  int x = 0;
  EXPECT_FALSE(a.deallocate(&x, 0));
  void* p = a.allocate(512, 0);
  EXPECT_FALSE(a.deallocate(as_char(p) + 512, 0));  // inside a segment, not a block start
  EXPECT_TRUE(a.deallocate(p, 0));
  EXPECT_FALSE(a.deallocate(p, 0));  // double free
}

TEST(CachingAllocator, RandomWorkloadKeepsTheBooks) {
  FakeDevice dev(4 * GiB);
  CachingAllocator a(dev, "cuda:0", true);
  std::mt19937_64 rng(42);
  struct Live {
    char* p;
    size_t n;
  };
  std::vector<Live> live;
  const StreamId streams[] = {0, 11, 22};
  for (int step = 0; step < 4000; ++step) {
    if (live.empty() || rng() % 100 < 55) {
      size_t n;
      switch (rng() % 4) {
        case 0:
          n = 1 + rng() % 4096;
          break;
        case 1:
          n = 1 + rng() % MiB;
          break;
        case 2:
          n = MiB + rng() % (12 * MiB);
          break;
        default:
          n = 1 + rng() % (48 * MiB);
          break;
      }
      char* p = as_char(a.allocate(n, streams[rng() % 3]));
      for (const Live& l : live)  // no overlap with anything live
        ASSERT_TRUE(p + n <= l.p || l.p + l.n <= p) << "step " << step;
      live.push_back({p, n});
    } else {
      size_t i = rng() % live.size();
      ASSERT_TRUE(a.deallocate(live[i].p, streams[rng() % 3]));
      live.erase(live.begin() + i);
    }
    if (step % 500 == 0) check_invariants(a);
    if (step % 1500 == 1499) a.empty_cache();
  }
  check_invariants(a);
  for (const Live& l : live) a.deallocate(l.p, 0);
  a.empty_cache();
  EXPECT_EQ(a.stats().reserved_bytes, 0u);
  EXPECT_EQ(dev.used, 0u);
}

// Streams use memory after they allocate it and before they free it; the model checks that
// every reuse on a stream is ordered after the last work of every other stream that touched
// any byte of it (the guarantee the fences exist for), through splits, merges, the switch to
// recording events and cache flushes.
TEST(CachingAllocator, RandomMultiStreamReuseIsAlwaysOrdered) {
  FakeDevice dev(3 * GiB);
  CachingAllocator a(dev, "cuda:0", true);
  std::mt19937_64 rng(7);
  struct Freed {  // a byte range [start, end) last touched by `stream` at its clock `at`
    uintptr_t end;
    StreamId stream;
    uint64_t at;
  };
  std::map<uintptr_t, Freed> freed;  // by start; ranges never overlap
  struct Live {
    char* p;
    size_t n;
    StreamId stream;  // allocated on
  };
  std::vector<Live> live;
  const StreamId streams[] = {0, 11, 22, 33};
  int checked = 0;
  for (int step = 0; step < 6000; ++step) {
    // The first 300 steps use one stream, so the switch to events happens with blocks cached.
    const StreamId s = step < 300 ? 11 : streams[rng() % 4];
    if (live.empty() || rng() % 100 < 52) {
      size_t n;
      switch (rng() % 3) {
        case 0:
          n = 1 + rng() % 8192;
          break;
        case 1:
          n = 1 + rng() % (2 * MiB);
          break;
        default:
          n = 1 + rng() % (40 * MiB);
          break;
      }
      char* p = as_char(a.allocate(n, s));
      const uintptr_t lo = reinterpret_cast<uintptr_t>(p), hi = lo + n;
      // Every freed range overlapping [lo, hi) must be ordered before s's use; then s owns it.
      auto it = freed.upper_bound(lo);
      if (it != freed.begin()) --it;
      while (it != freed.end() && it->first < hi) {
        const uintptr_t f_lo = it->first;
        const Freed f = it->second;
        if (f.end <= lo) {
          ++it;
          continue;
        }
        ASSERT_TRUE(dev.ordered_after(s, f.stream, f.at))
            << "step " << step << ": stream " << s << " reuses memory stream " << f.stream
            << " freed at its clock " << f.at;
        ++checked;
        it = freed.erase(it);
        if (f_lo < lo) freed[f_lo] = {lo, f.stream, f.at};
        if (f.end > hi) freed[hi] = {f.end, f.stream, f.at};
      }
      ++dev.clock[s];  // s's work on the block
      live.push_back({p, n, s});
    } else {
      const size_t i = rng() % live.size();
      const uintptr_t lo = reinterpret_cast<uintptr_t>(live[i].p);
      // The caller's side of the contract: memory is freed on a stream ordered after all of
      // its uses, here the stream it was allocated on (an event recorded there, waited on by s).
      if (live[i].stream != s) {
        FakeDevice::Clock k = dev.knows[live[i].stream];
        k[live[i].stream] = dev.clock[live[i].stream];
        for (auto [t, c] : k) dev.knows[s][t] = std::max(dev.knows[s][t], c);
      }
      ++dev.clock[s];  // the last use, on the stream it is freed on
      freed[lo] = {lo + live[i].n, s, dev.clock[s]};
      ASSERT_TRUE(a.deallocate(live[i].p, s));
      live.erase(live.begin() + i);
    }
    if (step % 2000 == 1999) a.empty_cache();
  }
  check_invariants(a);
  EXPECT_GT(checked, 1000);
  EXPECT_GT(a.stats().cross_stream_waits, 100u);
  for (const Live& l : live) a.deallocate(l.p, 0);
}
