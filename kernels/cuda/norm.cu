// Each row (LayerNorm/RMSNorm) or (n, group) (GroupNorm) is owned by one warp or one block:
// pass 1 accumulates per-thread Welford statistics (count, mean, M2) — or the sum of squares
// for RMSNorm — and merges them across the warp by shuffles and across warps through shared
// memory; pass 2 re-reads the values (L1/L2-resident for rows; L2 for groups up to tens of MB)
// and writes y. Welford keeps an f32 variance accurate where sum(x^2) - n mean^2 cancels.
// Ref: Apex csrc/layer_norm_cuda_kernel.cu (cuWelfordOnlineSum, cuChanOnlineSum) and PyTorch
//      aten/src/ATen/native/cuda/layer_norm_kernel.cu (WelfordDataLN); Chan, Golub & LeVeque
//      1979 for the pairwise merge.
#include <cmath>

#include "cuda/device_common.cuh"
#include "cuda/norm.hpp"
#include "cuda/strided.hpp"

namespace kiln::kernels::cuda {

namespace {

using detail::warp_sum;

struct Welford {
  float count, mean, m2;  // count is exact in f32 up to 2^24 values per thread
};

__device__ __forceinline__ void welford_add(Welford& a, float v) {
  a.count += 1.f;
  const float d = v - a.mean;
  a.mean += d / a.count;
  a.m2 += d * (v - a.mean);
}

// Chan's merge. Merged counts may pass 2^24 (large GroupNorm groups) and round, which only
// perturbs the weight nb / n by an ulp.
__device__ __forceinline__ Welford welford_merge(Welford a, Welford b) {
  const float n = a.count + b.count;
  if (n == 0.f) return a;
  const float fb = b.count / n;
  const float d = b.mean - a.mean;
  return {n, a.mean + d * fb, a.m2 + b.m2 + d * d * a.count * fb};
}

__device__ __forceinline__ Welford warp_merge(Welford v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    Welford other{__shfl_xor_sync(0xffffffffu, v.count, o), __shfl_xor_sync(0xffffffffu, v.mean, o),
                  __shfl_xor_sync(0xffffffffu, v.m2, o)};
    v = welford_merge(v, other);
  }
  return v;
}

// Merges one value per thread across a block of kThreads (a multiple of 32, <= 1024); every
// thread gets the result. `shared` holds kThreads / 32 entries.
template <int kThreads, typename T, typename Merge>
__device__ __forceinline__ T block_merge(T v, T identity, T* shared, Merge merge_warp) {
  v = merge_warp(v);
  if constexpr (kThreads > 32) {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    v = merge_warp(lane < kThreads / 32 ? shared[lane] : identity);
  }
  return v;
}

// An optional parameter value (null: `fallback`).
template <ElemType P>
__device__ __forceinline__ float param(const void* p, int64_t i, float fallback) {
  return p ? detail::Elem<P>::load(static_cast<const typename detail::Elem<P>::T*>(p)[i])
           : fallback;
}

// Statistics of n values at p (W per access; p and n aligned to W), one thread's share.
template <bool kRms, ElemType E, int W>
__device__ __forceinline__ Welford thread_stats(const typename detail::Elem<E>::T* __restrict__ p,
                                                int64_t n, int t, int threads) {
  Welford acc{0.f, 0.f, 0.f};  // for kRms: m2 holds the sum of squares
  for (int64_t i = static_cast<int64_t>(t) * W; i < n; i += static_cast<int64_t>(threads) * W) {
    float v[W];
    detail::load_w<E, W>(p + i, v);
#pragma unroll
    for (int k = 0; k < W; ++k) {
      if constexpr (kRms) {
        acc.count += 1.f;
        acc.m2 += v[k] * v[k];
      } else {
        welford_add(acc, v[k]);
      }
    }
  }
  return acc;
}

__device__ __forceinline__ Welford sum_merge_warp(Welford v) {
  v.count = warp_sum(v.count);
  v.m2 = warp_sum(v.m2);
  return v;
}

// ---------------------------------------------------------------------------- LayerNorm/RMS

template <bool kRms, ElemType E, ElemType P, int W>
__device__ __forceinline__ void row_write(const typename detail::Elem<E>::T* __restrict__ xr,
                                          typename detail::Elem<E>::T* __restrict__ yr,
                                          const void* w, const void* b, int64_t cols, int t,
                                          int threads, float mean, float rstd) {
  for (int64_t i = static_cast<int64_t>(t) * W; i < cols; i += static_cast<int64_t>(threads) * W) {
    float v[W];
    detail::load_w<E, W>(xr + i, v);
#pragma unroll
    for (int k = 0; k < W; ++k)
      v[k] = (kRms ? v[k] * rstd : (v[k] - mean) * rstd) * param<P>(w, i + k, 1.f) +
             param<P>(b, i + k, 0.f);
    detail::store_w<E, W>(yr + i, v);
  }
}

// Warp per row (cols <= 1024): 4 rows per 128-thread block.
template <bool kRms, ElemType E, ElemType P, int W>
__global__ void row_norm_warp_kernel(const RowNormParams p) {
  using T = typename detail::Elem<E>::T;
  const int lane = threadIdx.x & 31;
  const int64_t r = static_cast<int64_t>(blockIdx.x) * 4 + (threadIdx.x >> 5);
  if (r >= p.rows) return;  // whole warps exit together
  const T* xr = static_cast<const T*>(p.x) + r * p.cols;
  Welford st = thread_stats<kRms, E, W>(xr, p.cols, lane, 32);
  st = kRms ? sum_merge_warp(st) : warp_merge(st);
  const float var = st.m2 / st.count;  // RMS: mean of squares
  const float rstd = 1.f / sqrtf(var + p.eps);
  row_write<kRms, E, P, W>(xr, static_cast<T*>(p.y) + r * p.cols, p.w, p.b, p.cols, lane, 32,
                           st.mean, rstd);
}

constexpr int kRowBlockThreads = 512;

template <bool kRms, ElemType E, ElemType P, int W>
__global__ void __launch_bounds__(kRowBlockThreads) row_norm_block_kernel(const RowNormParams p) {
  using T = typename detail::Elem<E>::T;
  __shared__ Welford shared[kRowBlockThreads / 32];
  const int64_t r = blockIdx.x;
  const T* xr = static_cast<const T*>(p.x) + r * p.cols;
  Welford st = thread_stats<kRms, E, W>(xr, p.cols, threadIdx.x, kRowBlockThreads);
  const Welford identity{0.f, 0.f, 0.f};
  if constexpr (kRms)
    st = block_merge<kRowBlockThreads>(st, identity, shared, sum_merge_warp);
  else
    st = block_merge<kRowBlockThreads>(st, identity, shared, warp_merge);
  const float rstd = 1.f / sqrtf(st.m2 / st.count + p.eps);
  row_write<kRms, E, P, W>(xr, static_cast<T*>(p.y) + r * p.cols, p.w, p.b, p.cols, threadIdx.x,
                           kRowBlockThreads, st.mean, rstd);
}

template <bool kRms, ElemType E, ElemType P>
cudaError_t launch_rows(const RowNormParams& p, cudaStream_t stream) {
  constexpr int V = detail::kVecWidth<E>;
  // The parameters are read per element (no vector loads), so only x and y need the alignment.
  const bool vec = p.cols % V == 0 && aligned16(p.x) && aligned16(p.y);
  if (p.cols <= 1024) {
    const unsigned grid = static_cast<unsigned>((p.rows + 3) / 4);
    if (vec)
      row_norm_warp_kernel<kRms, E, P, V><<<grid, 128, 0, stream>>>(p);
    else
      row_norm_warp_kernel<kRms, E, P, 1><<<grid, 128, 0, stream>>>(p);
  } else {
    const unsigned grid = static_cast<unsigned>(p.rows);
    if (vec)
      row_norm_block_kernel<kRms, E, P, V><<<grid, kRowBlockThreads, 0, stream>>>(p);
    else
      row_norm_block_kernel<kRms, E, P, 1><<<grid, kRowBlockThreads, 0, stream>>>(p);
  }
  return cudaGetLastError();
}

// -------------------------------------------------------------------------------- GroupNorm

constexpr int kGroupThreads = 512;

// One block per (n, g): the group's cpg * S values are contiguous. Pass 2 walks them with the
// channel tracked incrementally (no division per element). W > 1 needs S % W == 0 so a vector
// never straddles two channels.
template <ElemType E, ElemType P, int W>
__global__ void __launch_bounds__(kGroupThreads) group_norm_kernel(const GroupNormParams p) {
  using T = typename detail::Elem<E>::T;
  __shared__ Welford shared[kGroupThreads / 32];
  const int64_t ng = blockIdx.x;
  const int64_t cpg = p.c / p.groups, ge = cpg * p.s;
  const int64_t base = ng * ge;
  const T* xg = static_cast<const T*>(p.x) + base;
  T* yg = static_cast<T*>(p.y) + base;
  Welford st = thread_stats<false, E, W>(xg, ge, threadIdx.x, kGroupThreads);
  st = block_merge<kGroupThreads>(st, Welford{0.f, 0.f, 0.f}, shared, warp_merge);
  const float mean = st.mean;
  const float rstd = 1.f / sqrtf(st.m2 / st.count + p.eps);
  const int64_t c0 = (ng % p.groups) * cpg;  // first channel of the group
  const int64_t e0 = static_cast<int64_t>(threadIdx.x) * W, step = static_cast<int64_t>(kGroupThreads) * W;
  const int64_t step_c = step / p.s, step_r = step % p.s;
  int64_t c = e0 / p.s, r = e0 % p.s;  // channel within the group, position within the channel
  for (int64_t e = e0; e < ge; e += step) {
    const float a = rstd * param<P>(p.w, c0 + c, 1.f);
    const float bc = param<P>(p.b, c0 + c, 0.f);
    float v[W];
    detail::load_w<E, W>(xg + e, v);
#pragma unroll
    for (int k = 0; k < W; ++k) v[k] = (v[k] - mean) * a + bc;
    detail::store_w<E, W>(yg + e, v);
    c += step_c;
    r += step_r;
    if (r >= p.s) {
      r -= p.s;
      ++c;
    }
  }
}

template <ElemType E, ElemType P>
cudaError_t launch_groups(const GroupNormParams& p, cudaStream_t stream) {
  constexpr int V = detail::kVecWidth<E>;
  const unsigned grid = static_cast<unsigned>(p.n * p.groups);
  if (p.s % V == 0 && aligned16(p.x) && aligned16(p.y))
    group_norm_kernel<E, P, V><<<grid, kGroupThreads, 0, stream>>>(p);
  else
    group_norm_kernel<E, P, 1><<<grid, kGroupThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

// Launches for the (type, param_type) pair: the parameters' storage is f32 or x's own.
template <typename Launch>
cudaError_t dispatch_types(ElemType type, ElemType param_type, Launch&& launch) {
  return detail::dispatch_elem(type, [&](auto e) {
    return param_type == type ? launch(e, e)
                              : launch(e, std::integral_constant<ElemType, ElemType::f32>{});
  });
}

std::string check_types(ElemType type, ElemType param_type) {
  if (param_type != ElemType::f32 && param_type != type)
    return "the affine parameters must be f32 or x's dtype";
  return {};
}

}  // namespace

std::string can_implement(const RowNormParams& p) {
  if (p.rows < 0 || p.cols < 0) return "negative size";
  if (p.rows > 0x7fffffff) return "more than 2^31 - 1 rows";
  if (p.cols > (int64_t{1} << 24))
    return "a row of " + std::to_string(p.cols) + " values exceeds 2^24 (f32 Welford counts)";
  if (!(p.eps >= 0.f)) return "eps must be >= 0";
  if (p.rms && p.b) return "RMSNorm has no bias";
  if (p.rows > 0 && p.cols > 0 && (!p.x || !p.y)) return "null pointer";
  return check_types(p.type, p.param_type);
}

cudaError_t launch_row_norm(const RowNormParams& p, cudaStream_t stream) {
  if (p.rows == 0 || p.cols == 0) return cudaSuccess;
  return dispatch_types(p.type, p.param_type, [&](auto e, auto pe) {
    return p.rms ? launch_rows<true, decltype(e)::value, decltype(pe)::value>(p, stream)
                 : launch_rows<false, decltype(e)::value, decltype(pe)::value>(p, stream);
  });
}

std::string can_implement(const GroupNormParams& p) {
  if (p.n < 0 || p.c < 0 || p.s < 0) return "negative size";
  if (p.groups <= 0 || p.c % p.groups != 0)
    return "groups = " + std::to_string(p.groups) + " must be positive and divide C = " +
           std::to_string(p.c);
  if (p.n * p.groups > 0x7fffffff) return "more than 2^31 - 1 groups in the batch";
  if (p.groups > 0 && (p.c / p.groups) * p.s > (int64_t{1} << 24) * kGroupThreads)
    return "a group of " + std::to_string((p.c / p.groups) * p.s) +
           " values exceeds 2^24 per thread (f32 Welford counts)";
  if (!(p.eps >= 0.f)) return "eps must be >= 0";
  if (p.n * p.c * p.s > 0 && (!p.x || !p.y)) return "null pointer";
  return check_types(p.type, p.param_type);
}

cudaError_t launch_group_norm(const GroupNormParams& p, cudaStream_t stream) {
  if (p.n * p.c * p.s == 0) return cudaSuccess;
  return dispatch_types(p.type, p.param_type, [&](auto e, auto pe) {
    return launch_groups<decltype(e)::value, decltype(pe)::value>(p, stream);
  });
}

}  // namespace kiln::kernels::cuda
