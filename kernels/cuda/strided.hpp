// Host-side helpers shared by the CUDA kernel launchers: the strided description of an operand
// over a common shape, dimension coalescing, and the contiguity/period tests that pick the
// vectorized paths. Plain C++ (no CUDA includes).
#pragma once

#include <cstdint>

namespace kiln::kernels::cuda {

constexpr int kMaxDims = 6;  // = kiln::kMaxDims

// Storage element types the CUDA kernels load and store (compute is f32).
enum class ElemType : uint8_t { f32, f16, bf16 };
inline const char* elem_type_name(ElemType t) {
  return t == ElemType::f32 ? "f32" : t == ElemType::f16 ? "f16" : "bf16";
}
inline int elem_size(ElemType t) { return t == ElemType::f32 ? 4 : 2; }

// Merges adjacent dims that are contiguous with each other in every operand and drops size-1
// dims, so that a contiguous tensor becomes 1-D and a broadcast bias (rows, C) becomes 2-D.
// `strides[k]` is operand k's element strides over `shape` (0 on broadcast dims).
inline void coalesce_dims(int* ndim, int64_t* shape, int64_t* const* strides, int nops) {
  int out = 0;
  for (int d = 0; d < *ndim; ++d) {
    if (shape[d] == 1) continue;
    bool merge = out > 0;
    for (int k = 0; k < nops && merge; ++k)
      merge = strides[k][out - 1] == strides[k][d] * shape[d];
    if (merge) {
      shape[out - 1] *= shape[d];
      for (int k = 0; k < nops; ++k) strides[k][out - 1] = strides[k][d];
    } else {
      shape[out] = shape[d];
      for (int k = 0; k < nops; ++k) strides[k][out] = strides[k][d];
      ++out;
    }
  }
  *ndim = out;
}

// The number of elements after which the operand repeats when walked in row-major order over
// `shape`: n for a contiguous operand, C for a (C) bias broadcast over (rows, C), 1 for a
// scalar; -1 when the operand is neither (transposed, sliced, broadcast in a middle dim).
inline int64_t repeat_period(int ndim, const int64_t* shape, const int64_t* stride) {
  int64_t expect = 1;
  int d = ndim - 1;
  for (; d >= 0 && stride[d] != 0; --d) {  // contiguous trailing dims
    if (shape[d] != 1 && stride[d] != expect) return -1;
    expect *= shape[d];
  }
  for (; d >= 0; --d)  // then only broadcast leading dims
    if (stride[d] != 0 && shape[d] != 1) return -1;
  return expect;
}

inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

}  // namespace kiln::kernels::cuda
