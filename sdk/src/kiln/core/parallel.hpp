// Work splitting for CPU ops. OpenMP underneath; ops call parallel_for with a grain so tiny
// tensors stay single-threaded (a parallel region costs ~1-5 us).
#pragma once

#include <cstdint>

namespace kiln {

int num_threads();              // threads parallel_for may use
void set_num_threads(int n);    // n <= 0: the machine's core count

// Calls fn(begin, end) over [0, n) in contiguous chunks of at least `grain` items. The calls
// may run concurrently; fn must be safe for that. Exceptions thrown by fn are rethrown here.
template <typename F>
void parallel_for(int64_t n, int64_t grain, F&& fn);

bool in_parallel_region();

}  // namespace kiln

#include "kiln/core/parallel_impl.hpp"
