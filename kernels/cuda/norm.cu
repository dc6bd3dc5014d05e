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

// Statistics of n values at p (W = 4: float4 reads; p and n aligned to 4), one thread's share.
template <bool kRms, int W>
__device__ __forceinline__ Welford thread_stats(const float* __restrict__ p, int64_t n, int t,
                                                int threads) {
  Welford acc{0.f, 0.f, 0.f};  // for kRms: m2 holds the sum of squares
  for (int64_t i = static_cast<int64_t>(t) * W; i < n; i += static_cast<int64_t>(threads) * W) {
    float v[W];
    if constexpr (W == 4) {
      const float4 q = *reinterpret_cast<const float4*>(p + i);
      v[0] = q.x, v[1] = q.y, v[2] = q.z, v[3] = q.w;
    } else {
      v[0] = p[i];
    }
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

template <bool kRms, int W>
__device__ __forceinline__ void row_write(const float* __restrict__ xr, float* __restrict__ yr,
                                          const float* __restrict__ w, const float* __restrict__ b,
                                          int64_t cols, int t, int threads, float mean,
                                          float rstd) {
  for (int64_t i = static_cast<int64_t>(t) * W; i < cols; i += static_cast<int64_t>(threads) * W) {
    float v[W], wv[W], bv[W];
    if constexpr (W == 4) {
      const float4 q = *reinterpret_cast<const float4*>(xr + i);
      v[0] = q.x, v[1] = q.y, v[2] = q.z, v[3] = q.w;
    } else {
      v[0] = xr[i];
    }
#pragma unroll
    for (int k = 0; k < W; ++k) {
      wv[k] = w ? w[i + k] : 1.f;
      bv[k] = b ? b[i + k] : 0.f;
      v[k] = (kRms ? v[k] * rstd : (v[k] - mean) * rstd) * wv[k] + bv[k];
    }
    if constexpr (W == 4) {
      *reinterpret_cast<float4*>(yr + i) = make_float4(v[0], v[1], v[2], v[3]);
    } else {
      yr[i] = v[0];
    }
  }
}

// Warp per row (cols <= 1024): 4 rows per 128-thread block.
template <bool kRms, int W>
__global__ void row_norm_warp_kernel(const RowNormParams p) {
  const int lane = threadIdx.x & 31;
  const int64_t r = static_cast<int64_t>(blockIdx.x) * 4 + (threadIdx.x >> 5);
  if (r >= p.rows) return;  // whole warps exit together
  const float* xr = p.x + r * p.cols;
  Welford st = thread_stats<kRms, W>(xr, p.cols, lane, 32);
  st = kRms ? sum_merge_warp(st) : warp_merge(st);
  const float var = st.m2 / st.count;  // RMS: mean of squares
  const float rstd = 1.f / sqrtf(var + p.eps);
  row_write<kRms, W>(xr, p.y + r * p.cols, p.w, p.b, p.cols, lane, 32, st.mean, rstd);
}

constexpr int kRowBlockThreads = 512;

template <bool kRms, int W>
__global__ void __launch_bounds__(kRowBlockThreads) row_norm_block_kernel(const RowNormParams p) {
  __shared__ Welford shared[kRowBlockThreads / 32];
  const int64_t r = blockIdx.x;
  const float* xr = p.x + r * p.cols;
  Welford st = thread_stats<kRms, W>(xr, p.cols, threadIdx.x, kRowBlockThreads);
  const Welford identity{0.f, 0.f, 0.f};
  if constexpr (kRms)
    st = block_merge<kRowBlockThreads>(st, identity, shared, sum_merge_warp);
  else
    st = block_merge<kRowBlockThreads>(st, identity, shared, warp_merge);
  const float rstd = 1.f / sqrtf(st.m2 / st.count + p.eps);
  row_write<kRms, W>(xr, p.y + r * p.cols, p.w, p.b, p.cols, threadIdx.x, kRowBlockThreads,
                     st.mean, rstd);
}

template <bool kRms>
cudaError_t launch_rows(const RowNormParams& p, cudaStream_t stream) {
  const bool vec = p.cols % 4 == 0 && aligned16(p.x) && aligned16(p.y) &&
                   (!p.w || aligned16(p.w)) && (!p.b || aligned16(p.b));
  if (p.cols <= 1024) {
    const unsigned grid = static_cast<unsigned>((p.rows + 3) / 4);
    if (vec)
      row_norm_warp_kernel<kRms, 4><<<grid, 128, 0, stream>>>(p);
    else
      row_norm_warp_kernel<kRms, 1><<<grid, 128, 0, stream>>>(p);
  } else {
    const unsigned grid = static_cast<unsigned>(p.rows);
    if (vec)
      row_norm_block_kernel<kRms, 4><<<grid, kRowBlockThreads, 0, stream>>>(p);
    else
      row_norm_block_kernel<kRms, 1><<<grid, kRowBlockThreads, 0, stream>>>(p);
  }
  return cudaGetLastError();
}

// -------------------------------------------------------------------------------- GroupNorm

constexpr int kGroupThreads = 512;

// One block per (n, g): the group's cpg * S values are contiguous. Pass 2 walks them with the
// channel tracked incrementally (no division per element). W = 4 needs S % 4 == 0 so a float4
// never straddles two channels.
template <int W>
__global__ void __launch_bounds__(kGroupThreads) group_norm_kernel(const GroupNormParams p) {
  __shared__ Welford shared[kGroupThreads / 32];
  const int64_t ng = blockIdx.x;
  const int64_t cpg = p.c / p.groups, ge = cpg * p.s;
  const int64_t base = ng * ge;
  const float* xg = p.x + base;
  float* yg = p.y + base;
  Welford st = thread_stats<false, W>(xg, ge, threadIdx.x, kGroupThreads);
  st = block_merge<kGroupThreads>(st, Welford{0.f, 0.f, 0.f}, shared, warp_merge);
  const float mean = st.mean;
  const float rstd = 1.f / sqrtf(st.m2 / st.count + p.eps);
  const int64_t c0 = (ng % p.groups) * cpg;  // first channel of the group
  const int64_t e0 = static_cast<int64_t>(threadIdx.x) * W, step = static_cast<int64_t>(kGroupThreads) * W;
  const int64_t step_c = step / p.s, step_r = step % p.s;
  int64_t c = e0 / p.s, r = e0 % p.s;  // channel within the group, position within the channel
  for (int64_t e = e0; e < ge; e += step) {
    const float a = rstd * (p.w ? p.w[c0 + c] : 1.f);
    const float bc = p.b ? p.b[c0 + c] : 0.f;
    if constexpr (W == 4) {
      float4 q = *reinterpret_cast<const float4*>(xg + e);
      q.x = (q.x - mean) * a + bc;
      q.y = (q.y - mean) * a + bc;
      q.z = (q.z - mean) * a + bc;
      q.w = (q.w - mean) * a + bc;
      *reinterpret_cast<float4*>(yg + e) = q;
    } else {
      yg[e] = (xg[e] - mean) * a + bc;
    }
    c += step_c;
    r += step_r;
    if (r >= p.s) {
      r -= p.s;
      ++c;
    }
  }
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
  return {};
}

cudaError_t launch_row_norm(const RowNormParams& p, cudaStream_t stream) {
  if (p.rows == 0 || p.cols == 0) return cudaSuccess;
  return p.rms ? launch_rows<true>(p, stream) : launch_rows<false>(p, stream);
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
  return {};
}

cudaError_t launch_group_norm(const GroupNormParams& p, cudaStream_t stream) {
  if (p.n * p.c * p.s == 0) return cudaSuccess;
  const unsigned grid = static_cast<unsigned>(p.n * p.groups);
  const bool vec = p.s % 4 == 0 && aligned16(p.x) && aligned16(p.y);
  if (vec)
    group_norm_kernel<4><<<grid, kGroupThreads, 0, stream>>>(p);
  else
    group_norm_kernel<1><<<grid, kGroupThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace kiln::kernels::cuda
