// Linked into cuda_test_allocator_plain: selects the plain allocator before main() runs, so
// before the backend's first allocation reads KILN_CUDA_ALLOCATOR (the test runner starts
// every binary bare, without a per-test environment).
#include <cstdlib>

namespace {
[[maybe_unused]] const bool kPlainSelected = setenv("KILN_CUDA_ALLOCATOR", "plain", 1) == 0;
}  // namespace
