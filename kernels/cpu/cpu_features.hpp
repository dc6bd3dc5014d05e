#pragma once

namespace kiln::kernels::cpu {
// AVX2 + FMA + F16C present (checked once with cpuid through the compiler builtin).
bool cpu_has_avx2_fma();
}  // namespace kiln::kernels::cpu
