#pragma once

namespace kiln::kernels::cpu {
// AVX2 + FMA + F16C present (checked once with cpuid through the compiler builtin).
bool cpu_has_avx2_fma();
// AVX-512 F (512-bit FMA) present, with AVX2/FMA.
bool cpu_has_avx512f();
}  // namespace kiln::kernels::cpu
