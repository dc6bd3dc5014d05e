// Two layouts, picked after coalescing the kept and the reduced dims separately:
//  - rows: the innermost reduced dim is contiguous (sum over the last dim, over H and W of an
//    NCHW image): a warp per output (inner <= 4096) or a 256-thread block per output. Thread t
//    accumulates elements t, t + T, ... in order; then a fixed butterfly (warp shuffles) and,
//    for blocks, a fixed merge of the 8 warp results through shared memory.
//  - columns: the kept dims are the fast ones (mean over the sequence of (B, L, C), over N of
//    NCHW): one thread per output walks its elements in row-major order, so consecutive
//    threads read consecutive addresses.
// Both orders depend only on the shapes: results are bitwise reproducible. Accumulation is
// f32; the worst-case error of a sum of n terms is (n - 1) 2^-24 sum|x| in either order
// (Higham, Accuracy and Stability of Numerical Algorithms, 2002, eq. 4.4), the tolerance the
// tests use against the CPU's double sums.
// Ref: the row/column split follows PyTorch's aten/src/ATen/native/cuda/Reduce.cuh
//      (input_vectorized vs. output-parallel reduction), written here without its splits.
#include <cmath>

#include "cuda/device_common.cuh"
#include "cuda/reduce.hpp"

namespace kiln::kernels::cuda {

namespace {

using detail::Elem;

constexpr int kThreads = 256;
constexpr int64_t kWarpRowMax = 4096;  // a warp per output up to here: <= 128 values per lane

struct ReduceArgs {
  detail::Dims outer, inner;
  int64_t outer_stride[kMaxDims], inner_stride[kMaxDims];
  int64_t outer_n, inner_n;
};

template <ReduceKind K>
__device__ __forceinline__ float identity() {
  if constexpr (K == ReduceKind::max) return -INFINITY;
  if constexpr (K == ReduceKind::min) return INFINITY;
  return 0.f;
}

// NaN wins (the CPU op returns NaN when any value is NaN); ties keep `a`.
template <ReduceKind K>
__device__ __forceinline__ float combine(float a, float b) {
  if constexpr (K == ReduceKind::sum || K == ReduceKind::mean) {
    return __fadd_rn(a, b);
  } else {
    if (isnan(a)) return a;
    if (isnan(b)) return b;
    if constexpr (K == ReduceKind::max) return b > a ? b : a;
    return b < a ? b : a;
  }
}

template <ReduceKind K>
__device__ __forceinline__ float finish(float acc, int64_t n) {
  if constexpr (K == ReduceKind::mean) return acc / static_cast<float>(n);
  return acc;
}

template <ReduceKind K>
__device__ __forceinline__ float warp_combine(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = combine<K>(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

template <ElemType E>
__device__ __forceinline__ float load_inner(const typename Elem<E>::T* xo, int64_t i,
                                            const ReduceArgs& a) {
  const int64_t off = a.inner.ndim == 1 ? i * a.inner_stride[0]
                                        : detail::strided_offset(i, a.inner, a.inner_stride);
  return Elem<E>::load(xo[off]);
}

// A warp per output, 8 outputs per block.
template <ReduceKind K, ElemType E>
__global__ void reduce_rows_warp_kernel(const typename Elem<E>::T* __restrict__ x,
                                        float* __restrict__ out, const ReduceArgs a) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (kThreads / 32);
  for (int64_t o = static_cast<int64_t>(blockIdx.x) * (kThreads / 32) + (threadIdx.x >> 5);
       o < a.outer_n; o += warps) {
    const typename Elem<E>::T* xo = x + detail::strided_offset(o, a.outer, a.outer_stride);
    float acc = identity<K>();
    for (int64_t i = lane; i < a.inner_n; i += 32) acc = combine<K>(acc, load_inner<E>(xo, i, a));
    acc = warp_combine<K>(acc);
    if (lane == 0) out[o] = finish<K>(acc, a.inner_n);
  }
}

// A block per output.
template <ReduceKind K, ElemType E>
__global__ void __launch_bounds__(kThreads)
    reduce_rows_block_kernel(const typename Elem<E>::T* __restrict__ x, float* __restrict__ out,
                             const ReduceArgs a) {
  __shared__ float partial[kThreads / 32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int64_t o = blockIdx.x; o < a.outer_n; o += gridDim.x) {  // uniform across the block
    const typename Elem<E>::T* xo = x + detail::strided_offset(o, a.outer, a.outer_stride);
    float acc = identity<K>();
    for (int64_t i = threadIdx.x; i < a.inner_n; i += kThreads)
      acc = combine<K>(acc, load_inner<E>(xo, i, a));
    acc = warp_combine<K>(acc);
    if (lane == 0) partial[warp] = acc;
    __syncthreads();
    if (warp == 0) {
      acc = lane < kThreads / 32 ? partial[lane] : identity<K>();
      acc = warp_combine<K>(acc);
      if (lane == 0) out[o] = finish<K>(acc, a.inner_n);
    }
    __syncthreads();  // partial is rewritten by the next output
  }
}

// A thread per output; the innermost reduced dim is the inner loop.
template <ReduceKind K, ElemType E>
__global__ void reduce_columns_kernel(const typename Elem<E>::T* __restrict__ x,
                                      float* __restrict__ out, const ReduceArgs a) {
  const int nd = a.inner.ndim;
  const int64_t last = nd > 0 ? a.inner.shape[nd - 1] : 1;
  const int64_t last_stride = nd > 0 ? a.inner_stride[nd - 1] : 0;
  const int64_t rows = last > 0 ? a.inner_n / last : 0;
  detail::Dims head = a.inner;  // the reduced dims but the last
  head.ndim = nd > 0 ? nd - 1 : 0;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t o = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; o < a.outer_n;
       o += step) {
    const typename Elem<E>::T* xo = x + detail::strided_offset(o, a.outer, a.outer_stride);
    float acc = identity<K>();
    for (int64_t r = 0; r < rows; ++r) {
      const typename Elem<E>::T* xr = xo + detail::strided_offset(r, head, a.inner_stride);
      for (int64_t k = 0; k < last; ++k) acc = combine<K>(acc, Elem<E>::load(xr[k * last_stride]));
    }
    out[o] = finish<K>(acc, a.inner_n);
  }
}

template <ReduceKind K, ElemType E>
cudaError_t launch_typed(const ReduceParams& p, const ReduceArgs& a, cudaStream_t stream) {
  using T = typename Elem<E>::T;
  const auto* x = static_cast<const T*>(p.x);
  const bool rows = a.inner.ndim >= 1 && a.inner_stride[a.inner.ndim - 1] == 1 && a.inner_n > 1;
  if (!rows) {
    reduce_columns_kernel<K, E><<<detail::grid_for(a.outer_n, kThreads), kThreads, 0, stream>>>(x, p.out, a);
  } else if (a.inner_n <= kWarpRowMax) {
    reduce_rows_warp_kernel<K, E>
        <<<detail::grid_for(a.outer_n, kThreads / 32), kThreads, 0, stream>>>(x, p.out, a);
  } else {
    reduce_rows_block_kernel<K, E><<<detail::grid_for(a.outer_n, 1), kThreads, 0, stream>>>(x, p.out, a);
  }
  return cudaGetLastError();
}

template <ReduceKind K>
cudaError_t launch_kind(const ReduceParams& p, const ReduceArgs& a, cudaStream_t stream) {
  switch (p.type) {
    case ElemType::f32: return launch_typed<K, ElemType::f32>(p, a, stream);
    case ElemType::f16: return launch_typed<K, ElemType::f16>(p, a, stream);
    case ElemType::bf16: return launch_typed<K, ElemType::bf16>(p, a, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace

std::string can_implement(const ReduceParams& p) {
  if (p.outer_ndim < 0 || p.inner_ndim < 0 || p.outer_ndim + p.inner_ndim > kMaxDims)
    return "more than " + std::to_string(kMaxDims) + " dims";
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < p.outer_ndim; ++d) {
    if (p.outer_shape[d] < 0) return "negative size";
    outer *= p.outer_shape[d];
  }
  for (int d = 0; d < p.inner_ndim; ++d) {
    if (p.inner_shape[d] < 0) return "negative size";
    inner *= p.inner_shape[d];
  }
  if ((p.kind == ReduceKind::max || p.kind == ReduceKind::min) && inner == 0 && outer > 0)
    return "max/min over an empty set has no identity";
  if (outer > 0 && (!p.out || (inner > 0 && !p.x))) return "null pointer";
  return {};
}

cudaError_t launch_reduce(ReduceParams p, cudaStream_t stream) {
  ReduceArgs a{};
  a.outer_n = 1, a.inner_n = 1;
  for (int d = 0; d < p.outer_ndim; ++d) a.outer_n *= p.outer_shape[d];
  for (int d = 0; d < p.inner_ndim; ++d) a.inner_n *= p.inner_shape[d];
  if (a.outer_n == 0) return cudaSuccess;
  int64_t* os[1] = {p.outer_stride};
  int64_t* is[1] = {p.inner_stride};
  coalesce_dims(&p.outer_ndim, p.outer_shape, os, 1);  // keeps the row-major output order
  coalesce_dims(&p.inner_ndim, p.inner_shape, is, 1);  // keeps the row-major summation order
  a.outer.ndim = p.outer_ndim;
  a.inner.ndim = p.inner_ndim;
  for (int d = 0; d < kMaxDims; ++d) {
    a.outer.shape[d] = d < p.outer_ndim ? p.outer_shape[d] : 1;
    a.outer_stride[d] = d < p.outer_ndim ? p.outer_stride[d] : 0;
    a.inner.shape[d] = d < p.inner_ndim ? p.inner_shape[d] : 1;
    a.inner_stride[d] = d < p.inner_ndim ? p.inner_stride[d] : 0;
  }
  switch (p.kind) {
    case ReduceKind::sum: return launch_kind<ReduceKind::sum>(p, a, stream);
    case ReduceKind::mean: return launch_kind<ReduceKind::mean>(p, a, stream);
    case ReduceKind::max: return launch_kind<ReduceKind::max>(p, a, stream);
    case ReduceKind::min: return launch_kind<ReduceKind::min>(p, a, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace kiln::kernels::cuda
