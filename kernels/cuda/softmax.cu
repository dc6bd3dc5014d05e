// Two passes over each row: (1) each thread keeps an online (max, sum of exp(x - max)) over its
// columns, rescaling the sum when the max grows (Milakov & Gimelshein 2018, "Online normalizer
// calculation for softmax", Algorithm 3), then the (max, sum) pairs are merged across the warp
// (and block); (2) y = exp(x - max) / sum. The second pass re-reads the row from L1/L2.
// Ref: the warp-per-row / block-per-row split by row length follows OneFlow's
//      oneflow/core/cuda/softmax.cuh (SoftmaxWarpImpl, SoftmaxBlockUncachedImpl).
#include <cmath>

#include "cuda/device_common.cuh"
#include "cuda/softmax.hpp"
#include "cuda/strided.hpp"

namespace kiln::kernels::cuda {

namespace {

struct MaxSum {
  float m, s;  // running max, sum of exp(x - m)
};

__device__ __forceinline__ void online_add(MaxSum& a, float v) {
  if (v > a.m) {
    a.s = a.s * expf(a.m - v) + 1.f;  // a.m = -inf gives 0 * 0 + 1
    a.m = v;
  } else if (a.m != -INFINITY || v != v) {
    a.s += expf(v - a.m);  // a NaN v makes the sum NaN, as on the CPU
  }
}

__device__ __forceinline__ MaxSum merge(MaxSum a, MaxSum b) {
  const float m = fmaxf(a.m, b.m);
  if (m == -INFINITY) return {m, a.s + b.s};  // both empty or all -inf: sums are 0 (or NaN)
  const float fa = a.m == -INFINITY ? 0.f : expf(a.m - m);
  const float fb = b.m == -INFINITY ? 0.f : expf(b.m - m);
  return {m, a.s * fa + b.s * fb};
}

__device__ __forceinline__ MaxSum warp_merge(MaxSum v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    MaxSum other{__shfl_xor_sync(0xffffffffu, v.m, o), __shfl_xor_sync(0xffffffffu, v.s, o)};
    v = merge(v, other);
  }
  return v;
}

// Accumulates the columns [lane*W + k*step*W ...) of one row (W per 16-byte access, or 1).
template <ElemType E, int W>
__device__ __forceinline__ MaxSum row_stats(const typename detail::Elem<E>::T* __restrict__ row,
                                            int64_t cols, int lane, int step) {
  MaxSum acc{-INFINITY, 0.f};
  for (int64_t c = static_cast<int64_t>(lane) * W; c < cols; c += static_cast<int64_t>(step) * W) {
    float v[W];
    detail::load_w<E, W>(row + c, v);
#pragma unroll
    for (int k = 0; k < W; ++k) online_add(acc, v[k]);
  }
  return acc;
}

template <ElemType E, int W>
__device__ __forceinline__ void row_write(const typename detail::Elem<E>::T* __restrict__ row,
                                          typename detail::Elem<E>::T* __restrict__ out,
                                          int64_t cols, int lane, int step, MaxSum st) {
  for (int64_t c = static_cast<int64_t>(lane) * W; c < cols; c += static_cast<int64_t>(step) * W) {
    float v[W];
    detail::load_w<E, W>(row + c, v);
#pragma unroll
    for (int k = 0; k < W; ++k) v[k] = __fdiv_rn(expf(v[k] - st.m), st.s);
    detail::store_w<E, W>(out + c, v);
  }
}

constexpr int kWarpRowsPerBlock = 4;  // 128 threads, one row per warp
constexpr int kBlockThreads = 512;    // rows longer than 1024: 512 threads per row

template <ElemType E, int W>
__global__ void softmax_warp_kernel(const typename detail::Elem<E>::T* __restrict__ x,
                                    typename detail::Elem<E>::T* __restrict__ y, int64_t rows,
                                    int64_t cols) {
  const int lane = threadIdx.x & 31;
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kWarpRowsPerBlock + (threadIdx.x >> 5);
  if (r >= rows) return;  // whole warps exit together: the shuffles below stay full-warp
  const auto* row = x + r * cols;
  const MaxSum st = warp_merge(row_stats<E, W>(row, cols, lane, 32));
  row_write<E, W>(row, y + r * cols, cols, lane, 32, st);
}

template <ElemType E, int W>
__global__ void __launch_bounds__(kBlockThreads)
    softmax_block_kernel(const typename detail::Elem<E>::T* __restrict__ x,
                         typename detail::Elem<E>::T* __restrict__ y, int64_t cols) {
  __shared__ MaxSum partial[kBlockThreads / 32];
  const int64_t r = blockIdx.x;
  const auto* row = x + r * cols;
  MaxSum st = warp_merge(row_stats<E, W>(row, cols, threadIdx.x, kBlockThreads));
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  if (lane == 0) partial[warp] = st;
  __syncthreads();
  st = lane < kBlockThreads / 32 ? partial[lane] : MaxSum{-INFINITY, 0.f};
  st = warp_merge(st);  // every warp merges the same partials: no second barrier needed
  row_write<E, W>(row, y + r * cols, cols, threadIdx.x, kBlockThreads, st);
}

template <ElemType E>
cudaError_t launch_typed(const SoftmaxParams& p, cudaStream_t stream) {
  using T = typename detail::Elem<E>::T;
  constexpr int V = detail::kVecWidth<E>;
  const T* x = static_cast<const T*>(p.x);
  T* y = static_cast<T*>(p.y);
  // Vector rows need every row start 16-byte aligned: cols % V == 0 and aligned bases.
  const bool vec = p.cols % V == 0 && aligned16(p.x) && aligned16(p.y);
  if (p.cols <= 1024) {
    const unsigned grid = static_cast<unsigned>((p.rows + kWarpRowsPerBlock - 1) / kWarpRowsPerBlock);
    if (vec)
      softmax_warp_kernel<E, V><<<grid, 32 * kWarpRowsPerBlock, 0, stream>>>(x, y, p.rows, p.cols);
    else
      softmax_warp_kernel<E, 1><<<grid, 32 * kWarpRowsPerBlock, 0, stream>>>(x, y, p.rows, p.cols);
  } else {
    const unsigned grid = static_cast<unsigned>(p.rows);
    if (vec)
      softmax_block_kernel<E, V><<<grid, kBlockThreads, 0, stream>>>(x, y, p.cols);
    else
      softmax_block_kernel<E, 1><<<grid, kBlockThreads, 0, stream>>>(x, y, p.cols);
  }
  return cudaGetLastError();
}

}  // namespace

std::string can_implement(const SoftmaxParams& p) {
  if (p.rows < 0 || p.cols < 0) return "negative size";
  if (p.rows > 0x7fffffff) return "more than 2^31 - 1 rows";
  if ((p.rows > 0 && p.cols > 0) && (!p.x || !p.y)) return "null pointer";
  return {};
}

cudaError_t launch_softmax_last_dim(const SoftmaxParams& p, cudaStream_t stream) {
  if (p.rows == 0 || p.cols == 0) return cudaSuccess;
  return detail::dispatch_elem(p.type, [&](auto e) { return launch_typed<decltype(e)::value>(p, stream); });
}

}  // namespace kiln::kernels::cuda
