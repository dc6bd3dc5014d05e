// Bookkeeping of the CUDA caching allocator; design notes in caching_allocator.hpp.
#include "kiln/cuda/caching_allocator.hpp"

#include <algorithm>
#include <cstdio>
#include <string_view>

#include "kiln/core/error.hpp"

namespace kiln::cuda_alloc {

namespace {

// Fences of destroyed streams: never equal to a live stream's id, so a new stream that gets
// the old handle value still waits on them.
constexpr StreamId kRetiredStream = ~StreamId{0};
// Above this a request cannot be rounded without overflow, and no device has it: refused as
// out of memory before any rounding.
constexpr size_t kMaxRequest = size_t{1} << 62;

size_t round_up(size_t n, size_t m) {
  return (n + m - 1) / m * m;
}

}  // namespace

size_t round_request(size_t nbytes) {
  return nbytes <= kMinBlock ? kMinBlock : round_up(nbytes, kMinBlock);
}

size_t segment_size(size_t rounded) {
  if (rounded <= kSmallRequest) return kSmallSegment;
  if (rounded < kLargeRequest) return kMediumSegment;
  return round_up(rounded, kLargeRounding);
}

std::string format_bytes(size_t bytes) {
  if (bytes < 1024) return str(bytes, " B");
  static const char* const kUnits[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double v = static_cast<double>(bytes) / 1024.0;
  int u = 0;
  while (v >= 1024.0 && u < 5) {
    v /= 1024.0;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f %s", v, kUnits[u]);
  return buf;
}

bool caching_from_env_value(const char* value) {
  std::string_view v = value ? value : "";
  if (v.empty() || v == "caching") return true;
  if (v == "plain") return false;
  fail(Status::invalid_argument,
       str("KILN_CUDA_ALLOCATOR='", v,
           "' is not an allocator: expected 'caching' (the default) or 'plain'"),
       "cuda");
}

struct CachingAllocator::Fence {
  StreamId stream = 0;
  std::shared_ptr<void> event;  // hands the event back to RawDeviceMemory with its last user
  uint64_t seq = 0;             // order of frees: on one stream the later fence covers both
};

struct CachingAllocator::Block {
  char* ptr = nullptr;
  size_t size = 0;
  size_t requested = 0;  // while allocated
  bool allocated = false;
  bool small = false;
  Block* prev = nullptr;  // neighbours in the segment, by address
  Block* next = nullptr;
  std::vector<Fence> fences;  // while free: the frees whose work may still touch it
};

bool CachingAllocator::BySize::operator()(const Block* a, const Block* b) const {
  if (a->size != b->size) return a->size < b->size;
  return a->ptr < b->ptr;
}

CachingAllocator::FreeSet& CachingAllocator::pool_of(const Block* b) {
  return b->small ? small_free_ : large_free_;
}

CachingAllocator::CachingAllocator(RawDeviceMemory& raw, std::string device_name, bool caching)
    : raw_(raw), device_name_(std::move(device_name)), caching_(caching) {
  stats_.caching = caching;
}

CachingAllocator::~CachingAllocator() {
  for (Block* head : segment_heads_) {
    if (!head->allocated && !head->next) raw_.free(head->ptr);
    for (Block* b = head; b;) {
      Block* next = b->next;
      delete b;
      b = next;
    }
  }
}

void CachingAllocator::update_peaks() {
  stats_.peak_allocated_bytes = std::max(stats_.peak_allocated_bytes, stats_.allocated_bytes);
  stats_.peak_reserved_bytes = std::max(stats_.peak_reserved_bytes, stats_.reserved_bytes);
}

void* CachingAllocator::allocate(size_t nbytes, StreamId stream) {
  std::lock_guard<std::mutex> lock(mu_);
  if (nbytes > kMaxRequest) throw_oom(nbytes);
  if (!caching_) return allocate_plain(nbytes);
  note_stream(stream);

  const size_t size = round_request(nbytes);
  const bool small = size <= kSmallRequest;
  FreeSet& pool = small ? small_free_ : large_free_;
  Block key;
  key.size = size;
  auto it = pool.lower_bound(&key);  // best fit: smallest that fits, then lowest address
  Block* b = nullptr;
  if (it != pool.end()) {
    b = *it;
    // Order `stream` after the frees of this memory on other streams. Done before anything
    // changes, so a failing wait leaves the block free and the books intact.
    for (const Fence& f : b->fences) {
      if (f.stream == stream) continue;  // stream order already covers it
      Synced* known = f.stream == kRetiredStream ? nullptr : synced(stream, f.stream);
      if (known && known->seq >= f.seq) continue;  // `stream` waited on a later free already
      if (f.event) {
        raw_.wait_event(stream, f.event.get());
      } else {
        raw_.synchronize_device();  // cannot happen (a second stream records events); be safe
      }
      ++stats_.cross_stream_waits;
      if (f.stream == kRetiredStream) continue;
      if (known) {
        known->seq = f.seq;
      } else {
        synced_.push_back({stream, f.stream, f.seq});
      }
    }
    pool.erase(it);
  } else {
    b = new_segment(size, small, nbytes);
  }

  const size_t rest = b->size - size;
  if (small ? rest >= kMinBlock : rest > kSmallRequest) {
    Block* r = new Block;
    r->ptr = b->ptr + size;
    r->size = rest;
    r->small = small;
    r->prev = b;
    r->next = b->next;
    if (b->next) b->next->prev = r;
    b->next = r;
    b->size = size;
    r->fences = b->fences;  // the rest is still fenced by the same frees
    pool.insert(r);
  }
  b->fences.clear();
  b->allocated = true;
  b->requested = nbytes;
  active_.emplace(b->ptr, b);
  stats_.allocated_bytes += b->size;
  stats_.requested_bytes += nbytes;
  ++stats_.active_blocks;
  update_peaks();
  return b->ptr;
}

CachingAllocator::Block* CachingAllocator::new_segment(size_t size, bool small, size_t asked) {
  size_t seg = segment_size(size);
  void* p = raw_.alloc(seg);
  if (!p && stats_.reserved_bytes > stats_.allocated_bytes) {
    free_cached_segments();
    ++stats_.cache_flushes;
    p = raw_.alloc(seg);
  }
  // A 1-10 MiB request shares a 20 MiB segment when it can; near the limit, take only its own.
  const size_t own = small ? size : round_up(size, kLargeRounding);
  if (!p && own < seg) {
    seg = own;
    p = raw_.alloc(seg);
  }
  if (!p) throw_oom(asked);
  Block* b = new Block;
  b->ptr = static_cast<char*>(p);
  b->size = seg;
  b->small = small;
  segment_heads_.insert(b);
  stats_.reserved_bytes += seg;
  ++stats_.segments;
  ++stats_.device_alloc_calls;
  update_peaks();
  return b;
}

void CachingAllocator::throw_oom(size_t asked) {
  ++stats_.oom_errors;
  size_t free_b = 0, total_b = 0;
  raw_.mem_info(free_b, total_b);
  fail(Status::out_of_memory,
       str("cannot allocate ", format_bytes(asked), " (", asked, " bytes) on ", device_name_, ": ",
           format_bytes(free_b), " free of ", format_bytes(total_b), "; kiln holds ",
           format_bytes(stats_.reserved_bytes), " (", format_bytes(stats_.allocated_bytes),
           " in use)"),
       "cuda");
}

CachingAllocator::Synced* CachingAllocator::synced(StreamId waiter, StreamId freer) {
  for (Synced& e : synced_)
    if (e.waiter == waiter && e.freer == freer) return &e;
  return nullptr;
}

void CachingAllocator::note_stream(StreamId stream) {
  if (std::find(streams_seen_.begin(), streams_seen_.end(), stream) != streams_seen_.end()) return;
  if (!multi_stream_ && !streams_seen_.empty()) {
    // A second stream: from now on frees record events. The blocks already free were freed on
    // the first stream without one; one event recorded there now covers all of them (it may
    // wait for a little more work than needed, once).
    std::vector<std::pair<StreamId, std::shared_ptr<void>>> made;
    for (FreeSet* pool : {&small_free_, &large_free_}) {
      for (Block* b : *pool) {
        for (Fence& f : b->fences) {
          if (f.event) continue;
          auto m = std::find_if(made.begin(), made.end(),
                                [&](const auto& e) { return e.first == f.stream; });
          if (m == made.end()) {
            made.emplace_back(f.stream,
                              std::shared_ptr<void>(raw_.record_event(f.stream),
                                                    [r = &raw_](void* e) { r->release_event(e); }));
            m = made.end() - 1;
          }
          f.event = m->second;
        }
      }
    }
    multi_stream_ = true;
  }
  streams_seen_.push_back(stream);
}

bool CachingAllocator::deallocate(void* p, StreamId stream) noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  if (!caching_) {
    if (!plain_.count(p)) return false;
    deallocate_plain(p);
    return true;
  }
  auto it = active_.find(p);
  if (it == active_.end()) return false;
  Block* b = it->second;
  active_.erase(it);
  stats_.allocated_bytes -= b->size;
  stats_.requested_bytes -= b->requested;
  --stats_.active_blocks;
  b->allocated = false;
  b->requested = 0;

  b->fences.clear();
  Fence f;
  f.stream = stream;
  f.seq = ++fence_seq_;
  try {
    note_stream(stream);
    if (multi_stream_) {
      f.event = std::shared_ptr<void>(raw_.record_event(stream),
                                      [r = &raw_](void* e) { r->release_event(e); });
    }
    b->fences.push_back(std::move(f));
  } catch (...) {
    // No event to order a later reuse after this free: wait for the whole device instead,
    // which orders it after everything, and leave the block unfenced.
    raw_.synchronize_device();
  }

  FreeSet& pool = pool_of(b);
  if (b->next && !b->next->allocated) {  // absorb the free block after
    Block* n = b->next;
    pool.erase(n);
    b->size += n->size;
    b->next = n->next;
    if (n->next) n->next->prev = b;
    merge_fences(b, n);
    delete n;
  }
  if (b->prev && !b->prev->allocated) {  // let the free block before absorb this one
    Block* pv = b->prev;
    pool.erase(pv);  // before its size (the set's key) changes
    pv->size += b->size;
    pv->next = b->next;
    if (b->next) b->next->prev = pv;
    merge_fences(pv, b);
    delete b;
    b = pv;
  }
  pool.insert(b);
  return true;
}

void CachingAllocator::merge_fences(Block* into, const Block* from) const {
  for (const Fence& g : from->fences) {
    auto same = g.stream == kRetiredStream
                    ? into->fences.end()  // retired fences come from different streams
                    : std::find_if(into->fences.begin(), into->fences.end(),
                                   [&](const Fence& f) { return f.stream == g.stream; });
    if (same == into->fences.end()) {
      into->fences.push_back(g);
    } else if (g.seq > same->seq) {
      *same = g;
    }
  }
}

void CachingAllocator::free_cached_segments() {
  raw_.synchronize_device();  // every fence is passed: the memory is idle
  for (auto it = segment_heads_.begin(); it != segment_heads_.end();) {
    Block* head = *it;
    if (head->allocated || head->next) {
      ++it;
      continue;
    }
    pool_of(head).erase(head);
    raw_.free(head->ptr);
    stats_.reserved_bytes -= head->size;
    --stats_.segments;
    ++stats_.device_free_calls;
    delete head;
    it = segment_heads_.erase(it);
  }
  for (FreeSet* pool : {&small_free_, &large_free_})
    for (Block* b : *pool) b->fences.clear();
}

size_t CachingAllocator::empty_cache() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!caching_) return 0;
  const size_t before = stats_.reserved_bytes;
  free_cached_segments();
  return before - stats_.reserved_bytes;
}

void CachingAllocator::stream_destroyed(StreamId stream) noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  streams_seen_.erase(std::remove(streams_seen_.begin(), streams_seen_.end(), stream),
                      streams_seen_.end());
  std::erase_if(synced_, [&](const Synced& e) { return e.waiter == stream || e.freer == stream; });
  if (!caching_) return;
  std::shared_ptr<void> last;  // one event for the fences that have none (single-stream mode)
  bool synced = false;
  for (FreeSet* pool : {&small_free_, &large_free_}) {
    for (Block* b : *pool) {
      for (Fence& f : b->fences) {
        if (f.stream != stream || synced) continue;
        if (!f.event) {
          if (!last) {
            try {
              last = std::shared_ptr<void>(raw_.record_event(stream),
                                           [r = &raw_](void* e) { r->release_event(e); });
            } catch (...) {
              raw_.synchronize_device();  // no event: the stream's work is done after this
              synced = true;
              continue;
            }
          }
          f.event = last;
        }
        f.stream = kRetiredStream;
      }
    }
  }
  if (synced) {
    for (FreeSet* pool : {&small_free_, &large_free_}) {
      for (Block* b : *pool) {
        std::erase_if(b->fences, [&](const Fence& f) { return f.stream == stream; });
      }
    }
  }
}

void* CachingAllocator::allocate_plain(size_t nbytes) {
  const size_t n = nbytes == 0 ? 1 : nbytes;
  void* p = raw_.alloc(n);
  if (!p) throw_oom(nbytes);
  plain_.emplace(p, n);
  stats_.allocated_bytes += n;
  stats_.requested_bytes += n;
  stats_.reserved_bytes += n;
  ++stats_.active_blocks;
  ++stats_.segments;
  ++stats_.device_alloc_calls;
  update_peaks();
  return p;
}

void CachingAllocator::deallocate_plain(void* p) noexcept {
  auto it = plain_.find(p);
  const size_t n = it->second;
  plain_.erase(it);
  // Work enqueued on any stream may still read it; cudaFree would wait too, but say so here.
  raw_.synchronize_device();
  raw_.free(p);
  stats_.allocated_bytes -= n;
  stats_.requested_bytes -= n;
  stats_.reserved_bytes -= n;
  --stats_.active_blocks;
  --stats_.segments;
  ++stats_.device_free_calls;
}

CudaMemoryStats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void CachingAllocator::reset_peak_stats() {
  std::lock_guard<std::mutex> lock(mu_);
  stats_.peak_allocated_bytes = stats_.allocated_bytes;
  stats_.peak_reserved_bytes = stats_.reserved_bytes;
}

std::vector<SegmentView> CachingAllocator::segments() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<SegmentView> out;
  for (const Block* head : segment_heads_) {
    SegmentView s;
    s.base = reinterpret_cast<uintptr_t>(head->ptr);
    for (const Block* b = head; b; b = b->next) {
      s.blocks.push_back({static_cast<size_t>(b->ptr - head->ptr), b->size, b->allocated});
      s.size += b->size;
    }
    out.push_back(std::move(s));
  }
  std::sort(out.begin(), out.end(),
            [](const SegmentView& a, const SegmentView& b) { return a.base < b.base; });
  return out;
}

}  // namespace kiln::cuda_alloc
