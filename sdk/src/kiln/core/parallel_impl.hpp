#pragma once

#include <exception>
#include <mutex>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace kiln {

template <typename F>
void parallel_for(int64_t n, int64_t grain, F&& fn) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  int64_t max_chunks = (n + grain - 1) / grain;
  int threads = num_threads();
  if (threads <= 1 || max_chunks <= 1 || in_parallel_region()) {
    fn(int64_t{0}, n);
    return;
  }
#ifdef _OPENMP
  int64_t chunks = max_chunks < threads ? max_chunks : threads;
  std::exception_ptr error;
  std::mutex mu;
#pragma omp parallel for num_threads(static_cast<int>(chunks)) schedule(static, 1)
  for (int64_t c = 0; c < chunks; ++c) {
    int64_t b = n * c / chunks, e = n * (c + 1) / chunks;
    try {
      fn(b, e);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu);
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
#else
  fn(int64_t{0}, n);
#endif
}

}  // namespace kiln
