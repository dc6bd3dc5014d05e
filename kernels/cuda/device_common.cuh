// Device helpers of the CUDA kernels: storage conversions that match the CPU's bit for bit
// (sdk/src/kiln/core/dtype.cpp), strided offsets, and warp reductions.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cuda_runtime_api.h>

#include <cstdint>
#include <type_traits>

#include "cuda/strided.hpp"

namespace kiln::kernels::cuda::detail {

// f16 -> f32: the hardware conversion is exact for finite values; inf/NaN keep their payload
// as the CPU's f16_to_f32 does (cvt would return the canonical NaN).
__device__ __forceinline__ float f16_to_f32(uint16_t h) {
  if ((h & 0x7c00u) == 0x7c00u)
    return __uint_as_float((static_cast<uint32_t>(h & 0x8000u) << 16) | 0x7f800000u |
                           (static_cast<uint32_t>(h & 0x3ffu) << 13));
  return __half2float(__ushort_as_half(h));
}
// f32 -> f16, RNE with overflow to inf (cvt.rn.f16.f32); NaN becomes sign | 0x7e00 as on the CPU.
__device__ __forceinline__ uint16_t f32_to_f16(float f) {
  const uint32_t u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>(((u >> 16) & 0x8000u) | 0x7e00u);
  return __half_as_ushort(__float2half_rn(f));
}
__device__ __forceinline__ float bf16_to_f32(uint16_t h) {
  return __uint_as_float(static_cast<uint32_t>(h) << 16);
}
// The CPU's f32_to_bf16 (RNE, quiet NaN keeping the payload's top bits).
__device__ __forceinline__ uint16_t f32_to_bf16(float f) {
  uint32_t u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

template <ElemType E> struct Elem;
template <> struct Elem<ElemType::f32> {
  using T = float;
  static __device__ __forceinline__ float load(T v) { return v; }
  static __device__ __forceinline__ T store(float v) { return v; }
};
template <> struct Elem<ElemType::f16> {
  using T = uint16_t;
  static __device__ __forceinline__ float load(T v) { return f16_to_f32(v); }
  static __device__ __forceinline__ T store(float v) { return f32_to_f16(v); }
};
template <> struct Elem<ElemType::bf16> {
  using T = uint16_t;
  static __device__ __forceinline__ float load(T v) { return bf16_to_f32(v); }
  static __device__ __forceinline__ T store(float v) { return f32_to_bf16(v); }
};

// N elements of T moved as one aligned access (N * sizeof(T) = 16 bytes: one LDG.128).
template <typename T, int N>
struct alignas(sizeof(T) * N) Vec {
  T v[N];
};

// Elements of storage E per 16-byte access: 4 floats, 8 halves.
template <ElemType E>
constexpr int kVecWidth = 16 / static_cast<int>(sizeof(typename Elem<E>::T));

// W values of storage E at p, widened to f32: one aligned 16-byte access when W > 1 (p aligned).
template <ElemType E, int W>
__device__ __forceinline__ void load_w(const typename Elem<E>::T* __restrict__ p,
                                       float (&v)[W]) {
  using T = typename Elem<E>::T;
  if constexpr (W > 1) {
    const Vec<T, W> q = *reinterpret_cast<const Vec<T, W>*>(p);
#pragma unroll
    for (int k = 0; k < W; ++k) v[k] = Elem<E>::load(q.v[k]);
  } else {
    v[0] = Elem<E>::load(p[0]);
  }
}

// W f32 values rounded to storage E and stored at p (one 16-byte access when W > 1).
template <ElemType E, int W>
__device__ __forceinline__ void store_w(typename Elem<E>::T* __restrict__ p,
                                        const float (&v)[W]) {
  using T = typename Elem<E>::T;
  if constexpr (W > 1) {
    Vec<T, W> q;
#pragma unroll
    for (int k = 0; k < W; ++k) q.v[k] = Elem<E>::store(v[k]);
    *reinterpret_cast<Vec<T, W>*>(p) = q;
  } else {
    p[0] = Elem<E>::store(v[0]);
  }
}

// Host side: calls launch(std::integral_constant<ElemType, E>{}) with the runtime `type` made a
// template argument, so a launcher instantiates its kernels once per storage type.
template <typename Launch>
cudaError_t dispatch_elem(ElemType type, Launch&& launch) {
  switch (type) {
    case ElemType::f32: return launch(std::integral_constant<ElemType, ElemType::f32>{});
    case ElemType::f16: return launch(std::integral_constant<ElemType, ElemType::f16>{});
    case ElemType::bf16: return launch(std::integral_constant<ElemType, ElemType::bf16>{});
  }
  return cudaErrorInvalidValue;
}

// A shape with up to kMaxDims dims, passed by value to kernels.
struct Dims {
  int ndim;
  int64_t shape[kMaxDims];
};
// Element offset of row-major linear index `i` in an operand with element strides `stride`.
__device__ __forceinline__ int64_t strided_offset(int64_t i, const Dims& dims,
                                                  const int64_t* stride) {
  int64_t off = 0;
#pragma unroll
  for (int d = kMaxDims - 1; d >= 0; --d) {
    if (d < dims.ndim) {
      const int64_t s = dims.shape[d];
      const int64_t q = i / s;
      off += (i - q * s) * stride[d];
      i = q;
    }
  }
  return off;
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Grid-stride loop bounds: blocks for `work` items of `threads`, capped so the grid stays
// within a few waves (65536 blocks of 256 threads = 16M threads; each loops on).
inline unsigned grid_for(int64_t work, int threads) {
  const int64_t b = (work + threads - 1) / threads;
  return static_cast<unsigned>(b < 1 ? 1 : (b > 65536 ? 65536 : b));
}

}  // namespace kiln::kernels::cuda::detail
