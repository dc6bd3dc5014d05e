// Element access across dtypes, and the strided copy/cast every layout change goes through.
#pragma once

#include <cstdint>

#include "kiln/core/dtype.hpp"
#include "kiln/core/shape.hpp"

namespace kiln {

// Loads one element of `t` at p as f32 / stores f32 into it (RNE; float->int truncates toward
// zero and saturates; NaN -> 0).
float load_as_f32(const void* p, DType t);
void store_from_f32(void* p, DType t, float v);
int64_t load_as_i64(const void* p, DType t);
void store_from_i64(void* p, DType t, int64_t v);

// dst[i] = cast(src[i]) over `shape` with element strides; dst and src must not overlap
// unless identical. Integer->integer copies go through int64, everything else through f32.
void strided_copy_cast(void* dst, DType dst_t, const Shape& shape, const Strides& dst_strides,
                       const void* src, DType src_t, const Strides& src_strides);

// Contiguous conversions, the hot path of weight loading (f16/bf16/fp8 -> f32 on load).
void convert_to_f32(float* dst, const void* src, DType src_t, int64_t n);
void convert_from_f32(void* dst, DType dst_t, const float* src, int64_t n);

}  // namespace kiln
