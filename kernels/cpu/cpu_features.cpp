#include "cpu_features.hpp"

#include <cstdlib>
#include <cstring>

namespace kiln::kernels::cpu {

namespace {
// KILN_CPU_ISA=avx2 / generic caps the instruction set (for testing every kernel path on one
// machine, and to reproduce a CI machine's results).
int isa_cap() {
  const char* v = std::getenv("KILN_CPU_ISA");
  if (!v) return 3;
  if (!std::strcmp(v, "generic")) return 0;
  if (!std::strcmp(v, "avx2")) return 1;
  return 3;
}
}  // namespace

bool cpu_has_avx2_fma() {
#if defined(__x86_64__) || defined(__i386__)
  static const bool has = isa_cap() >= 1 && __builtin_cpu_supports("avx2") &&
                          __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  return has;
#else
  return false;
#endif
}

bool cpu_has_avx512f() {
#if defined(__x86_64__) || defined(__i386__)
  static const bool has = isa_cap() >= 3 && cpu_has_avx2_fma() && __builtin_cpu_supports("avx512f");
  return has;
#else
  return false;
#endif
}

}  // namespace kiln::kernels::cpu
