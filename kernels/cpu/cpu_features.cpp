#include "cpu_features.hpp"

#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

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

#if defined(__x86_64__) || defined(__i386__)
// F16C is CPUID leaf 1, ECX bit 29 (Intel SDM vol. 2A, table 3-10); clang 14's
// __builtin_cpu_supports does not know the "f16c" name.
bool has_f16c() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  return __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
}
#endif
}  // namespace

bool cpu_has_avx2_fma() {
#if defined(__x86_64__) || defined(__i386__)
  static const bool has = isa_cap() >= 1 && __builtin_cpu_supports("avx2") &&
                          __builtin_cpu_supports("fma") && has_f16c();
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
