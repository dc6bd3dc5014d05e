#include "cuda/cast.hpp"
#include "cuda/device_common.cuh"

namespace kiln::kernels::cuda {

namespace {

using detail::Elem;
using detail::Vec;

constexpr int kThreads = 256;

// Contiguous: 8 elements per thread per step, loaded and stored as whole vectors (16 or 32
// bytes: one or two LDG.128/STG.128). The tail (n % 8) is done by the first threads of block 0.
template <ElemType S, ElemType D>
__global__ void cast_contiguous_kernel(const typename Elem<S>::T* __restrict__ src,
                                       typename Elem<D>::T* __restrict__ dst, int64_t n) {
  using ST = typename Elem<S>::T;
  using DT = typename Elem<D>::T;
  constexpr int kVec = 8;
  const int64_t nv = n / kVec;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < nv; i += step) {
    const Vec<ST, kVec> in = reinterpret_cast<const Vec<ST, kVec>*>(src)[i];
    Vec<DT, kVec> out;
#pragma unroll
    for (int k = 0; k < kVec; ++k) out.v[k] = Elem<D>::store(Elem<S>::load(in.v[k]));
    reinterpret_cast<Vec<DT, kVec>*>(dst)[i] = out;
  }
  if (blockIdx.x == 0 && threadIdx.x < n - nv * kVec) {
    const int64_t i = nv * kVec + threadIdx.x;
    dst[i] = Elem<D>::store(Elem<S>::load(src[i]));
  }
}

struct CastStrides {
  detail::Dims dims;
  int64_t src[kMaxDims], dst[kMaxDims];
};

template <ElemType S, ElemType D>
__global__ void cast_strided_kernel(const typename Elem<S>::T* __restrict__ src,
                                    typename Elem<D>::T* __restrict__ dst, int64_t n,
                                    const CastStrides st) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    const int64_t si = detail::strided_offset(i, st.dims, st.src);
    const int64_t di = detail::strided_offset(i, st.dims, st.dst);
    dst[di] = Elem<D>::store(Elem<S>::load(src[si]));
  }
}

template <ElemType S, ElemType D>
cudaError_t launch_typed(const CastParams& p, int64_t n, cudaStream_t stream) {
  using ST = typename Elem<S>::T;
  using DT = typename Elem<D>::T;
  const auto* src = static_cast<const ST*>(p.src);
  auto* dst = static_cast<DT*>(p.dst);
  // After coalescing, both sides contiguous means one dim with unit strides.
  const bool contiguous = p.ndim == 0 || (p.ndim == 1 && p.src_stride[0] == 1 && p.dst_stride[0] == 1);
  // The vector path reads 8 elements at once: 16 bytes (f16/bf16) or 32 bytes (f32).
  const bool aligned = reinterpret_cast<uintptr_t>(src) % (8 * sizeof(ST)) == 0 &&
                       reinterpret_cast<uintptr_t>(dst) % (8 * sizeof(DT)) == 0;
  if (contiguous && aligned) {
    cast_contiguous_kernel<S, D>
        <<<detail::grid_for(n / 8 + 1, kThreads), kThreads, 0, stream>>>(src, dst, n);
  } else {
    CastStrides st{};
    st.dims.ndim = p.ndim;
    for (int d = 0; d < p.ndim; ++d) {
      st.dims.shape[d] = p.shape[d];
      st.src[d] = p.src_stride[d];
      st.dst[d] = p.dst_stride[d];
    }
    cast_strided_kernel<S, D><<<detail::grid_for(n, kThreads), kThreads, 0, stream>>>(src, dst, n, st);
  }
  return cudaGetLastError();
}

template <ElemType S>
cudaError_t launch_from(const CastParams& p, int64_t n, cudaStream_t stream) {
  switch (p.dst_type) {
    case ElemType::f32: return launch_typed<S, ElemType::f32>(p, n, stream);
    case ElemType::f16: return launch_typed<S, ElemType::f16>(p, n, stream);
    case ElemType::bf16: return launch_typed<S, ElemType::bf16>(p, n, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace

std::string can_implement(const CastParams& p) {
  if (p.ndim < 0 || p.ndim > kMaxDims)
    return "rank " + std::to_string(p.ndim) + " is outside 0.." + std::to_string(kMaxDims);
  for (int d = 0; d < p.ndim; ++d) {
    if (p.shape[d] < 0) return "negative size in dim " + std::to_string(d);
    if (p.dst_stride[d] == 0 && p.shape[d] > 1)
      return "the destination is broadcast (stride 0) in dim " + std::to_string(d);
  }
  if (!p.src || !p.dst) return "null pointer";
  return {};
}

cudaError_t launch_cast(CastParams p, cudaStream_t stream) {
  int64_t n = 1;
  for (int d = 0; d < p.ndim; ++d) n *= p.shape[d];
  if (n == 0) return cudaSuccess;
  int64_t* strides[2] = {p.src_stride, p.dst_stride};
  coalesce_dims(&p.ndim, p.shape, strides, 2);
  switch (p.src_type) {
    case ElemType::f32: return launch_from<ElemType::f32>(p, n, stream);
    case ElemType::f16: return launch_from<ElemType::f16>(p, n, stream);
    case ElemType::bf16: return launch_from<ElemType::bf16>(p, n, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace kiln::kernels::cuda
