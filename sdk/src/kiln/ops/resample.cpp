// pad and interpolate on the CPU. Both are gathers: every output dim gets a table mapping output
// index -> source index (or "fill" / two taps with weights), computed once per call with the
// exact arithmetic torch uses, then planes are filled in parallel.
// Ref: torch.nn.functional.pad (aten/src/ATen/native/PadNd.cpp, ReflectionPad.cpp,
//      ReplicationPadding.cpp) and torch.nn.functional.interpolate
//      (aten/src/ATen/native/UpSample.h: nearest_idx, nearest_exact_idx,
//      area_pixel_compute_scale, area_pixel_compute_source_index,
//      compute_source_index_and_lambda).
// CUDA tensors go to kernels/cuda/resample.cu (through kiln/cuda/cuda_ops.hpp) after the same
// validation; that kernel repeats this index arithmetic operation for operation.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kiln/core/parallel.hpp"
#include "kiln/cuda/cuda_ops.hpp"
#include "kiln/ops/op_util.hpp"
#include "kiln/ops/ops.hpp"

namespace kiln::ops {

namespace {

// Source index for output index o of one dim of size n padded by (lo, hi); -1 = the fill value.
// reflect/replicate use the direct formulas (valid for negative pads too, as torch's kernels);
// circular follows torch's two-step definition: negative pads crop first, then positive pads
// wrap around the cropped "core" [crop_lo, n - crop_hi).
int64_t pad_source(PadMode mode, int64_t o, int64_t n, int64_t lo, int64_t hi) {
  int64_t i = o - lo;
  switch (mode) {
    case PadMode::zeros:
      return i >= 0 && i < n ? i : -1;
    case PadMode::reflect:
      if (i < 0) i = -i;
      if (i >= n) i = 2 * (n - 1) - i;
      return i;
    case PadMode::replicate:
      return std::clamp<int64_t>(i, 0, n - 1);
    case PadMode::circular: {
      const int64_t crop_lo = std::max<int64_t>(-lo, 0), crop_hi = std::max<int64_t>(-hi, 0);
      const int64_t m = n - crop_lo - crop_hi;
      int64_t c = (o - std::max<int64_t>(lo, 0)) % m;
      if (c < 0) c += m;
      return crop_lo + c;
    }
  }
  return -1;
}

// Checks torch's rules for padding one dim of size n by (lo, hi); `dim` is the tensor dim.
void check_pad_dim(PadMode mode, int dim, int64_t n, int64_t lo, int64_t hi, const Shape& shape) {
  constexpr const char* op = "pad";
  const int64_t out = n + lo + hi;
  switch (mode) {
    case PadMode::zeros:
      KILN_ARG(out >= 0, op, "padding (", lo, ", ", hi, ") of dim ", dim, " of x ", shape.str(),
               " gives a negative size ", out);
      break;
    case PadMode::reflect:
      KILN_ARG(lo < n && hi < n, op, "reflect padding (", lo, ", ", hi, ") of dim ", dim,
               " must be smaller than its size ", n, " (x ", shape.str(), ")");
      KILN_ARG(out >= 1, op, "reflect padding (", lo, ", ", hi, ") of dim ", dim, " of x ",
               shape.str(), " gives size ", out, ", expected >= 1");
      break;
    case PadMode::replicate:
      KILN_ARG(n >= 1, op, "replicate padding of dim ", dim, " of x ", shape.str(),
               " needs a non-empty dim");
      KILN_ARG(out >= 1, op, "replicate padding (", lo, ", ", hi, ") of dim ", dim, " of x ",
               shape.str(), " gives size ", out, ", expected >= 1");
      break;
    case PadMode::circular: {
      KILN_ARG(lo <= n && hi <= n, op, "circular padding (", lo, ", ", hi, ") of dim ", dim,
               " of x ", shape.str(), " wraps around more than once (size ", n, ")");
      const int64_t core = n - std::max<int64_t>(-lo, 0) - std::max<int64_t>(-hi, 0);
      KILN_ARG(core >= 0 && out >= 0, op, "circular padding (", lo, ", ", hi, ") of dim ", dim,
               " of x ", shape.str(), " crops more than the dim holds");
      KILN_ARG(core >= 1 || (lo <= 0 && hi <= 0), op, "circular padding (", lo, ", ", hi,
               ") of dim ", dim, " of x ", shape.str(), " wraps around an empty dim");
      break;
    }
  }
}

}  // namespace

Tensor pad(const Tensor& x, std::span<const int64_t> pads, PadMode mode, float value) {
  constexpr const char* op = "pad";
  const Device dev = common_device(op, {&x});
  // f32; on CUDA also f16/bf16 (conv pads its f16/bf16 input for non-zero pad modes).
  require_f32_or_cuda_half(op, "x", x, dev);
  const int nd = x.ndim();
  const int npad = static_cast<int>(pads.size());
  KILN_ARG(npad % 2 == 0, op, "pads has ", npad, " values, expected (lo, hi) pairs");
  KILN_ARG(npad <= 2 * nd, op, "pads has ", npad / 2, " pairs but x ", x.shape().str(), " has ", nd,
           " dims");
  if (mode != PadMode::zeros) {
    // torch: k = 1..3 padded dims on an input of k+1 (unbatched) or k+2 (batched) dims.
    const int k = npad / 2;
    KILN_ARG(k >= 1 && k <= 3 && (nd == k + 1 || nd == k + 2), op, pad_mode_name(mode),
             " padding of ", k, " dims needs x with ", k + 1, " or ", k + 2, " dims, got ",
             x.shape().str());
  }

  // Per-dim lo/hi (dims without a pair are unpadded), then source-offset tables.
  Shape out_shape = x.shape();
  std::vector<int64_t> lo(nd, 0), hi(nd, 0);
  for (int d = 0; d < nd; ++d) {
    const int pair = nd - 1 - d;  // pads[0..1] belong to the last dim
    if (2 * pair >= npad) continue;
    lo[d] = pads[2 * pair];
    hi[d] = pads[2 * pair + 1];
    check_pad_dim(mode, d, x.size(d), lo[d], hi[d], x.shape());
    out_shape[d] = x.size(d) + lo[d] + hi[d];
  }
  if (dev.is_cuda()) return cuda_ops::pad(x, lo, hi, mode, value);
  std::vector<std::vector<int64_t>> src(nd);  // element offset into x, or -1 for `value`
  for (int d = 0; d < nd; ++d) {
    src[d].resize(static_cast<size_t>(out_shape[d]));
    for (int64_t o = 0; o < out_shape[d]; ++o) {
      const int64_t i = pad_source(mode, o, x.size(d), lo[d], hi[d]);
      src[d][o] = i < 0 ? -1 : i * x.stride(d);
    }
  }
  Tensor out = Tensor::empty(out_shape, DType::f32);
  if (out.numel() == 0) return out;
  if (nd == 0) {
    out.mutable_data<float>()[0] = x.data<float>()[0];
    return out;
  }

  const float* xp = x.data<float>();
  float* yp = out.mutable_data<float>();
  const int64_t W = out_shape[nd - 1], rows = out.numel() / W;
  const std::vector<int64_t>& last = src[nd - 1];
  parallel_for(rows, std::max<int64_t>(1, 16384 / W), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      // Offset of this output row's source row, or -1 when any outer index is padding.
      int64_t off = 0;
      for (int64_t rem = r, d = nd - 2; d >= 0; --d) {
        const int64_t s = src[d][rem % out_shape[d]];
        rem /= out_shape[d];
        if (s < 0) {
          off = -1;
          break;
        }
        off += s;
      }
      float* y = yp + r * W;
      if (off < 0) {
        std::fill(y, y + W, value);
        continue;
      }
      const float* xr = xp + off;
      for (int64_t o = 0; o < W; ++o) y[o] = last[o] < 0 ? value : xr[last[o]];
    }
  });
  return out;
}

namespace {

// One linear-interpolation tap pair per output index.
struct LinearTap {
  int64_t i0, i1;
  float w0, w1;
};

// torch's compute_source_index_and_lambda with its float arithmetic (UpSample.h).
std::vector<LinearTap> linear_taps(int64_t in, int64_t out, bool align_corners) {
  std::vector<LinearTap> taps(static_cast<size_t>(out));
  float scale;
  if (align_corners)
    scale = out > 1 ? static_cast<float>(in - 1) / static_cast<float>(out - 1) : 0.f;
  else
    scale = static_cast<float>(in) / static_cast<float>(out);
  for (int64_t o = 0; o < out; ++o) {
    if (in == out) {
      taps[o] = {o, o, 1.f, 0.f};
      continue;
    }
    float real;
    if (align_corners) {
      real = scale * static_cast<float>(o);
    } else {
      real = scale * (static_cast<float>(o) + 0.5f) - 0.5f;
      if (real < 0.f) real = 0.f;
    }
    const int64_t i0 = std::min(static_cast<int64_t>(real), in - 1);
    const int64_t i1 = i0 + (i0 < in - 1 ? 1 : 0);
    const float w1 = std::min(std::max(real - static_cast<float>(i0), 0.f), 1.f);
    taps[o] = {i0, i1, 1.f - w1, w1};
  }
  return taps;
}

// torch's nearest_idx / nearest_exact_idx for size= inputs (no scale_factor): the scale is the
// float in/out, and the products are rounded exactly as torch rounds them.
std::vector<int64_t> nearest_index(int64_t in, int64_t out, bool exact) {
  std::vector<int64_t> idx(static_cast<size_t>(out));
  const float scale = static_cast<float>(in) / static_cast<float>(out);
  for (int64_t o = 0; o < out; ++o) {
    int64_t i;
    if (exact) {
      // (o + 0.5) is a double in torch's expression; floorf then takes it back to float.
      i = static_cast<int64_t>(std::floor(static_cast<float>((o + 0.5) * scale)));
    } else if (in == out) {
      i = o;
    } else if (out == 2 * in) {
      i = o >> 1;
    } else {
      i = static_cast<int64_t>(std::floor(static_cast<float>(o) * scale));
    }
    idx[o] = std::min(i, in - 1);
  }
  return idx;
}

}  // namespace

Tensor interpolate(const Tensor& x_in, std::span<const int64_t> out_size, InterpMode mode,
                   bool align_corners) {
  constexpr const char* op = "interpolate";
  const Device dev = common_device(op, {&x_in});
  require_f32(op, "x", x_in);
  const int nd = x_in.ndim();
  KILN_ARG(nd >= 3 && nd <= 5, op, "x has ", nd, " dims ", x_in.shape().str(),
           ", expected (N, C, *S) with 1-3 spatial dims");
  const int sp = nd - 2;
  KILN_ARG(static_cast<int>(out_size.size()) == sp, op, "out_size has ", out_size.size(),
           " entries, x ", x_in.shape().str(), " has ", sp, " spatial dims");
  if (mode == InterpMode::bilinear)
    KILN_ARG(sp == 2, op, "bilinear needs 2 spatial dims (N, C, H, W), x is ", x_in.shape().str());
  else
    KILN_ARG(!align_corners, op, "align_corners only applies to bilinear, not nearest modes");
  for (int d = 0; d < sp; ++d) {
    KILN_ARG(out_size[d] >= 1, op, "out_size[", d, "] is ", out_size[d], ", expected >= 1");
    KILN_ARG(x_in.size(2 + d) >= 1, op, "x ", x_in.shape().str(), " has an empty spatial dim");
  }
  if (dev.is_cuda()) return cuda_ops::interpolate(x_in, out_size, mode, align_corners);
  Shape out_shape{x_in.size(0), x_in.size(1)};
  for (int d = 0; d < sp; ++d) out_shape.push_back(out_size[d]);
  Tensor out = Tensor::empty(out_shape, DType::f32);
  if (out.numel() == 0) return out;

  const Tensor x = x_in.contiguous();
  const float* xp = x.data<float>();
  float* yp = out.mutable_data<float>();
  const int64_t planes = x.size(0) * x.size(1);
  // Spatial sizes as 3-D (leading dims 1).
  int64_t in[3] = {1, 1, 1}, os[3] = {1, 1, 1};
  for (int d = 0; d < sp; ++d) {
    in[3 - sp + d] = x.size(2 + d);
    os[3 - sp + d] = out_size[d];
  }
  const int64_t in_vol = in[0] * in[1] * in[2], out_vol = os[0] * os[1] * os[2];
  const int64_t grain = std::max<int64_t>(1, 16384 / out_vol);

  if (mode == InterpMode::bilinear) {
    const std::vector<LinearTap> th = linear_taps(in[1], os[1], align_corners);
    const std::vector<LinearTap> tw = linear_taps(in[2], os[2], align_corners);
    parallel_for(planes, grain, [&](int64_t begin, int64_t end) {
      for (int64_t pl = begin; pl < end; ++pl) {
        const float* src = xp + pl * in_vol;
        float* dst = yp + pl * out_vol;
        for (int64_t oh = 0; oh < os[1]; ++oh) {
          const LinearTap& h = th[oh];
          const float* r0 = src + h.i0 * in[2];
          const float* r1 = src + h.i1 * in[2];
          for (int64_t ow = 0; ow < os[2]; ++ow) {
            const LinearTap& w = tw[ow];
            dst[oh * os[2] + ow] = h.w0 * (w.w0 * r0[w.i0] + w.w1 * r0[w.i1]) +
                                   h.w1 * (w.w0 * r1[w.i0] + w.w1 * r1[w.i1]);
          }
        }
      }
    });
    return out;
  }

  const bool exact = mode == InterpMode::nearest_exact;
  const std::vector<int64_t> id = nearest_index(in[0], os[0], exact);
  const std::vector<int64_t> ih = nearest_index(in[1], os[1], exact);
  const std::vector<int64_t> iw = nearest_index(in[2], os[2], exact);
  parallel_for(planes, grain, [&](int64_t begin, int64_t end) {
    for (int64_t pl = begin; pl < end; ++pl) {
      const float* src = xp + pl * in_vol;
      float* dst = yp + pl * out_vol;
      for (int64_t od = 0; od < os[0]; ++od)
        for (int64_t oh = 0; oh < os[1]; ++oh) {
          const float* row = src + (id[od] * in[1] + ih[oh]) * in[2];
          float* y = dst + (od * os[1] + oh) * os[2];
          for (int64_t ow = 0; ow < os[2]; ++ow) y[ow] = row[iw[ow]];
        }
    }
  });
  return out;
}

}  // namespace kiln::ops
