// One thread per output element (grid-stride): the output index is decomposed over the output
// shape and every dim maps its index to a source index with the CPU op's formula. These ops
// move data once (no reuse worth a tile in shared memory), so the cost is the reads and the
// 64-bit index divisions; both are small next to the convolutions that follow them.
// Ref: sdk/src/kiln/ops/resample.cpp (pad_source, linear_taps, nearest_index), itself after
//      torch's aten/src/ATen/native/UpSample.h and PadNd.cpp.
#include <cmath>

#include "cuda/device_common.cuh"
#include "cuda/resample.hpp"

namespace kiln::kernels::cuda {

namespace {

using detail::Elem;

constexpr int kThreads = 256;

struct PadArgs {
  int ndim;
  PadKind mode;
  float value;
  int64_t in[kMaxDims], out[kMaxDims], stride[kMaxDims], lo[kMaxDims], hi[kMaxDims];
};

// The CPU's pad_source: the source index of output index o, or -1 for the fill value.
__device__ __forceinline__ int64_t pad_source(PadKind mode, int64_t o, int64_t n, int64_t lo,
                                              int64_t hi) {
  int64_t i = o - lo;
  switch (mode) {
    case PadKind::constant:
      return i >= 0 && i < n ? i : -1;
    case PadKind::reflect:
      if (i < 0) i = -i;
      if (i >= n) i = 2 * (n - 1) - i;
      return i;
    case PadKind::replicate:
      return i < 0 ? 0 : (i > n - 1 ? n - 1 : i);
    case PadKind::circular: {
      const int64_t crop_lo = lo < 0 ? -lo : 0, crop_hi = hi < 0 ? -hi : 0;
      const int64_t m = n - crop_lo - crop_hi;
      int64_t c = (o - (lo > 0 ? lo : 0)) % m;
      if (c < 0) c += m;
      return crop_lo + c;
    }
  }
  return -1;
}

template <ElemType E>
__global__ void pad_kernel(const typename Elem<E>::T* __restrict__ x,
                           typename Elem<E>::T* __restrict__ y, int64_t n, const PadArgs a) {
  const typename Elem<E>::T fill = Elem<E>::store(a.value);
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    int64_t rem = i, off = 0;
    bool inside = true;
#pragma unroll
    for (int d = kMaxDims - 1; d >= 0; --d) {
      if (d < a.ndim) {
        const int64_t q = rem / a.out[d];
        const int64_t s = pad_source(a.mode, rem - q * a.out[d], a.in[d], a.lo[d], a.hi[d]);
        rem = q;
        inside = inside && s >= 0;
        off += s * a.stride[d];
      }
    }
    y[i] = inside ? x[off] : fill;
  }
}

// ---------------------------------------------------------------------------- interpolate

// torch's nearest_idx / nearest_exact_idx for size= inputs, as the CPU's nearest_index: the
// scale is float(in) / float(out), exact mode computes (o + 0.5) * scale in double, rounds it
// to float and floors it.
__device__ __forceinline__ int64_t nearest_source(int64_t o, int64_t in, int64_t out, bool exact) {
  const float scale = __fdiv_rn(static_cast<float>(in), static_cast<float>(out));
  int64_t i;
  if (exact) {
    const double r = __dmul_rn(__dadd_rn(static_cast<double>(o), 0.5), static_cast<double>(scale));
    i = static_cast<int64_t>(floorf(__double2float_rn(r)));
  } else if (in == out) {
    i = o;
  } else if (out == 2 * in) {
    i = o >> 1;
  } else {
    i = static_cast<int64_t>(floorf(__fmul_rn(static_cast<float>(o), scale)));
  }
  return i < in - 1 ? i : in - 1;
}

struct Tap {
  int64_t i0, i1;
  float w0, w1;
};

// The CPU's linear_taps for one output index (torch's compute_source_index_and_lambda).
__device__ __forceinline__ Tap linear_tap(int64_t o, int64_t in, int64_t out, bool align_corners) {
  if (in == out) return {o, o, 1.f, 0.f};
  float scale, real;
  if (align_corners) {
    scale = out > 1 ? __fdiv_rn(static_cast<float>(in - 1), static_cast<float>(out - 1)) : 0.f;
    real = __fmul_rn(scale, static_cast<float>(o));
  } else {
    scale = __fdiv_rn(static_cast<float>(in), static_cast<float>(out));
    real = __fsub_rn(__fmul_rn(scale, __fadd_rn(static_cast<float>(o), 0.5f)), 0.5f);
    if (real < 0.f) real = 0.f;
  }
  int64_t i0 = static_cast<int64_t>(real);
  if (i0 > in - 1) i0 = in - 1;
  const int64_t i1 = i0 + (i0 < in - 1 ? 1 : 0);
  const float w1 = fminf(fmaxf(__fsub_rn(real, static_cast<float>(i0)), 0.f), 1.f);
  return {i0, i1, __fsub_rn(1.f, w1), w1};
}

struct InterpArgs {
  int64_t in[3], out[3];
  int64_t in_vol, out_vol;
  bool exact, align_corners;
};

template <ElemType E>
__global__ void nearest_kernel(const typename Elem<E>::T* __restrict__ x,
                               typename Elem<E>::T* __restrict__ y, int64_t n, const InterpArgs a) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    const int64_t pl = i / a.out_vol;
    int64_t r = i - pl * a.out_vol;
    const int64_t ow = r % a.out[2];
    r /= a.out[2];
    const int64_t oh = r % a.out[1];
    const int64_t od = r / a.out[1];
    const int64_t id = nearest_source(od, a.in[0], a.out[0], a.exact);
    const int64_t ih = nearest_source(oh, a.in[1], a.out[1], a.exact);
    const int64_t iw = nearest_source(ow, a.in[2], a.out[2], a.exact);
    y[i] = x[pl * a.in_vol + (id * a.in[1] + ih) * a.in[2] + iw];
  }
}

// The CPU's blend, operation for operation:
// h.w0 * (w.w0 * r0[w.i0] + w.w1 * r0[w.i1]) + h.w1 * (w.w0 * r1[w.i0] + w.w1 * r1[w.i1]).
template <ElemType E>
__global__ void bilinear_kernel(const typename Elem<E>::T* __restrict__ x,
                                typename Elem<E>::T* __restrict__ y, int64_t n, const InterpArgs a) {
  using L = Elem<E>;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    const int64_t pl = i / a.out_vol;
    const int64_t r = i - pl * a.out_vol;
    const int64_t oh = r / a.out[2], ow = r - oh * a.out[2];
    const Tap h = linear_tap(oh, a.in[1], a.out[1], a.align_corners);
    const Tap w = linear_tap(ow, a.in[2], a.out[2], a.align_corners);
    const typename L::T* r0 = x + pl * a.in_vol + h.i0 * a.in[2];
    const typename L::T* r1 = x + pl * a.in_vol + h.i1 * a.in[2];
    const float top = __fadd_rn(__fmul_rn(w.w0, L::load(r0[w.i0])), __fmul_rn(w.w1, L::load(r0[w.i1])));
    const float bot = __fadd_rn(__fmul_rn(w.w0, L::load(r1[w.i0])), __fmul_rn(w.w1, L::load(r1[w.i1])));
    y[i] = L::store(__fadd_rn(__fmul_rn(h.w0, top), __fmul_rn(h.w1, bot)));
  }
}

template <ElemType E>
cudaError_t launch_pad_typed(const PadParams& p, int64_t n, const PadArgs& a, cudaStream_t stream) {
  using T = typename Elem<E>::T;
  pad_kernel<E><<<detail::grid_for(n, kThreads), kThreads, 0, stream>>>(
      static_cast<const T*>(p.x), static_cast<T*>(p.y), n, a);
  return cudaGetLastError();
}

template <ElemType E>
cudaError_t launch_interp_typed(const InterpParams& p, int64_t n, const InterpArgs& a,
                                cudaStream_t stream) {
  using T = typename Elem<E>::T;
  const auto* x = static_cast<const T*>(p.x);
  auto* y = static_cast<T*>(p.y);
  if (p.mode == InterpKind::bilinear)
    bilinear_kernel<E><<<detail::grid_for(n, kThreads), kThreads, 0, stream>>>(x, y, n, a);
  else
    nearest_kernel<E><<<detail::grid_for(n, kThreads), kThreads, 0, stream>>>(x, y, n, a);
  return cudaGetLastError();
}

}  // namespace

std::string can_implement(const PadParams& p) {
  if (p.ndim < 0 || p.ndim > kMaxDims)
    return "rank " + std::to_string(p.ndim) + " is outside 0.." + std::to_string(kMaxDims);
  int64_t n = 1;
  for (int d = 0; d < p.ndim; ++d) {
    const int64_t in = p.in_shape[d], out = in + p.lo[d] + p.hi[d];
    if (in < 0 || out < 0) return "negative size in dim " + std::to_string(d);
    n *= out;
    if (out == 0 || (p.lo[d] == 0 && p.hi[d] == 0)) continue;
    if (p.mode == PadKind::reflect && (p.lo[d] >= in || p.hi[d] >= in))
      return "reflect padding of dim " + std::to_string(d) + " must be smaller than its size";
    if (p.mode == PadKind::replicate && in < 1)
      return "replicate padding of an empty dim " + std::to_string(d);
    if (p.mode == PadKind::circular) {
      const int64_t core = in - (p.lo[d] < 0 ? -p.lo[d] : 0) - (p.hi[d] < 0 ? -p.hi[d] : 0);
      if (core < 1 || p.lo[d] > in || p.hi[d] > in)
        return "circular padding of dim " + std::to_string(d) + " wraps more than once";
    }
  }
  if (n > 0 && (!p.x || !p.y)) return "null pointer";
  return {};
}

cudaError_t launch_pad(const PadParams& p, cudaStream_t stream) {
  PadArgs a{};
  a.ndim = p.ndim;
  a.mode = p.mode;
  a.value = p.value;
  int64_t n = 1;
  for (int d = 0; d < p.ndim; ++d) {
    a.in[d] = p.in_shape[d];
    a.out[d] = p.in_shape[d] + p.lo[d] + p.hi[d];
    a.stride[d] = p.x_stride[d];
    a.lo[d] = p.lo[d];
    a.hi[d] = p.hi[d];
    n *= a.out[d];
  }
  if (n == 0) return cudaSuccess;
  switch (p.type) {
    case ElemType::f32: return launch_pad_typed<ElemType::f32>(p, n, a, stream);
    case ElemType::f16: return launch_pad_typed<ElemType::f16>(p, n, a, stream);
    case ElemType::bf16: return launch_pad_typed<ElemType::bf16>(p, n, a, stream);
  }
  return cudaErrorInvalidValue;
}

std::string can_implement(const InterpParams& p) {
  if (p.planes < 0) return "negative plane count";
  for (int d = 0; d < 3; ++d)
    if (p.in[d] < 1 || p.out[d] < 1) return "spatial sizes must be >= 1";
  if (p.mode == InterpKind::bilinear && (p.in[0] != 1 || p.out[0] != 1))
    return "bilinear resamples 2 spatial dims (in[0] = out[0] = 1)";
  if (p.mode != InterpKind::bilinear && p.align_corners)
    return "align_corners only applies to bilinear";
  if (p.planes > 0 && (!p.x || !p.y)) return "null pointer";
  return {};
}

cudaError_t launch_interpolate(const InterpParams& p, cudaStream_t stream) {
  InterpArgs a{};
  for (int d = 0; d < 3; ++d) a.in[d] = p.in[d], a.out[d] = p.out[d];
  a.in_vol = p.in[0] * p.in[1] * p.in[2];
  a.out_vol = p.out[0] * p.out[1] * p.out[2];
  a.exact = p.mode == InterpKind::nearest_exact;
  a.align_corners = p.align_corners;
  const int64_t n = p.planes * a.out_vol;
  if (n == 0) return cudaSuccess;
  switch (p.type) {
    case ElemType::f32: return launch_interp_typed<ElemType::f32>(p, n, a, stream);
    case ElemType::f16: return launch_interp_typed<ElemType::f16>(p, n, a, stream);
    case ElemType::bf16: return launch_interp_typed<ElemType::bf16>(p, n, a, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace kiln::kernels::cuda
