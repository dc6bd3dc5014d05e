// Convolution and transposed convolution (1-, 2-, 3-D) on the CPU.
//
// conv: for every (image, group, tile of output positions) one task writes the tile's column
// matrix (im2col, kernels/cpu/im2col.hpp) and multiplies the group's weight (Cout/g, K) by it
// with the packed sgemm, straight into the NC(D)HW output. Tiles make batch-1 convs use every
// core and bound the column buffer. 1x1 stride-1 unpadded convs skip im2col (the input already
// is the column matrix); single-input-channel groups (depthwise) run a direct loop, because a
// GEMM with M = 1 would waste 5/6 of the 6x16 micro-kernel.
// conv_transpose: per (image, group, block of output channels) the GEMM W^T x gives columns that
// col2im scatters (adds) into the output; a block owns its channels, so there are no races.
// CUDA tensors go to cuDNN (kiln/cuda/cuda_conv.cpp, kernels/cuda/conv_cudnn.hpp) after the
// same validation and explicit padding of non-zero pad modes; there x may also be f16/bf16.
// Ref: torch.nn.functional.conv{1,2,3}d / conv_transpose{1,2,3}d for the semantics and shape
//      rules (aten/src/ATen/native/Convolution.cpp); im2col per Chellapilla et al. (2006).
#include <algorithm>
#include <cstring>
#include <vector>

#include "cpu/gemm_f32.hpp"
#include "cpu/im2col.hpp"
#include "kiln/core/parallel.hpp"
#include "kiln/cuda/cuda_ops.hpp"
#include "kiln/ops/op_util.hpp"
#include "kiln/ops/conv_onednn.hpp"
#include "kiln/ops/gemm.hpp"
#include "kiln/ops/ops.hpp"

namespace kiln::ops {

namespace kc = kiln::kernels::cpu;

ConvParams ConvParams::same_pad(int stride, int padding, int dilation, int groups) {
  ConvParams p;
  p.stride = {stride, stride, stride};
  p.pad_lo = {padding, padding, padding};
  p.pad_hi = {padding, padding, padding};
  p.dilation = {dilation, dilation, dilation};
  p.groups = groups;
  return p;
}

namespace {

// A float tensor (weight or bias) as contiguous f32: a view of the tensor when it already is one,
// else converted once per call.
struct F32Buffer {
  Tensor keep;
  std::vector<float> converted;
  const float* ptr = nullptr;
};

F32Buffer to_f32_buffer(const char* op, const char* arg, const Tensor& t) {
  F32Buffer b;
  const DType dt = t.dtype();
  KILN_ARG(dt == DType::f32 || dt == DType::f16 || dt == DType::bf16 || dt == DType::f8_e4m3 ||
               dt == DType::f8_e5m2,
           op, arg, " is ", dtype_name(dt), ", expected f32, f16, bf16 or fp8");
  b.keep = t.contiguous();
  if (dt == DType::f32) {
    b.ptr = b.keep.data<float>();
    return b;
  }
  const int64_t n = t.numel();
  b.converted.resize(static_cast<size_t>(n));
  float* out = b.converted.data();
  if (dt == DType::f16 || dt == DType::bf16) {
    const uint16_t* src = static_cast<const uint16_t*>(b.keep.raw_data());
    for (int64_t i = 0; i < n; ++i)
      out[i] = dt == DType::f16 ? f16_to_f32(src[i]) : bf16_to_f32(src[i]);
  } else {
    const uint8_t* src = static_cast<const uint8_t*>(b.keep.raw_data());
    for (int64_t i = 0; i < n; ++i)
      out[i] = dt == DType::f8_e4m3 ? f8e4m3_to_f32(src[i]) : f8e5m2_to_f32(src[i]);
  }
  b.ptr = out;
  return b;
}

bool is_conv_param_dtype(DType dt) {
  return dt == DType::f32 || dt == DType::f16 || dt == DType::bf16 || dt == DType::f8_e4m3 ||
         dt == DType::f8_e5m2;
}

// Shape checks shared by conv and conv_transpose: x (N, C, *S) f32 (on CUDA also f16/bf16)
// with 1-3 spatial dims, weight of the same rank, float weight and bias; returns the number
// of spatial dims and the inputs' device in `dev`.
int check_conv_inputs(const char* op, const Tensor& x, const Tensor& weight, const Tensor& bias,
                      int groups, Device* dev) {
  *dev = common_device(op, {&x, &weight, &bias});
  if (!dev->is_cuda() || !x.defined() || !(x.dtype() == DType::f16 || x.dtype() == DType::bf16))
    require_f32(op, "x", x);
  KILN_ARG(x.ndim() >= 3 && x.ndim() <= 5, op, "x has ", x.ndim(), " dims ", x.shape().str(),
           ", expected 3 (N, C, L), 4 (N, C, H, W) or 5 (N, C, D, H, W)");
  KILN_ARG(weight.defined(), op, "weight is undefined");
  KILN_ARG(is_conv_param_dtype(weight.dtype()), op, "weight is ", dtype_name(weight.dtype()),
           ", expected f32, f16, bf16 or fp8");
  if (bias.defined())
    KILN_ARG(is_conv_param_dtype(bias.dtype()), op, "bias is ", dtype_name(bias.dtype()),
             ", expected f32, f16, bf16 or fp8");
  KILN_ARG(weight.ndim() == x.ndim(), op, "weight has ", weight.ndim(), " dims ",
           weight.shape().str(), ", expected ", x.ndim(), " to match x ", x.shape().str());
  KILN_ARG(groups >= 1, op, "groups is ", groups, ", expected >= 1");
  for (int d = 2; d < x.ndim(); ++d)
    KILN_ARG(weight.size(d) >= 1, op, "weight ", weight.shape().str(), " has an empty kernel dim");
  return x.ndim() - 2;
}

// Splits `cols` output positions into tiles of at most `max_tile` (a multiple of 32, the
// widest micro-kernel's width) while giving at least `min_tasks` tasks over `outer` independent
// slices.
int64_t pick_tile(int64_t cols, int64_t max_tile, int64_t outer, int64_t min_tasks) {
  int64_t tile = std::min(cols, max_tile);
  while (tile > 64 && outer * ((cols + tile - 1) / tile) < min_tasks) tile = (tile + 1) / 2;
  if (tile < cols) tile = std::max<int64_t>(32, (tile + 31) / 32 * 32);
  return std::min(tile, cols);
}

// Column tiles: every sgemm call re-packs the group's whole weight (M x K), so a tile must be
// wide enough to amortise that (cost ratio M / tile), yet the tile (K x tile, written by im2col
// and re-read by the B packing) should stay near L2. Measured on this 2-core Zen 4 (best of 20,
// 1 thread): 64->64 3x3 on 128x128 (K = 576) peaks at 256 columns (~115 GFLOP/s vs ~70 at 64),
// 320->320 3x3 on 64x64 (K = 2880) at 128-256 (~140 vs ~115 at 64); 512+ loses on both.
// Hence ~1 MiB of columns, clamped to [128, 256].
constexpr int64_t kColTileBytes = 1024 * 1024;
constexpr int64_t kMinColTile = 128, kMaxColTile = 256;

// Depthwise-style groups (one input channel per group): out[co] = sum over taps of w * x, a
// direct loop per output row, vectorisable when stride_w == 1.
void conv_single_input_channel(const kc::ConvGeom3d& g, const float* x, const float* w, float bias,
                               float* out) {
  const int64_t OD = g.out[0], OH = g.out[1], OW = g.out[2];
  const int64_t D = g.in[0], H = g.in[1], W = g.in[2];
  std::fill(out, out + g.out_volume(), bias);
  for (int64_t kd = 0; kd < g.kernel[0]; ++kd)
    for (int64_t kh = 0; kh < g.kernel[1]; ++kh)
      for (int64_t kw = 0; kw < g.kernel[2]; ++kw) {
        const float wv = w[(kd * g.kernel[1] + kh) * g.kernel[2] + kw];
        const int64_t dw = kw * g.dilation[2] - g.pad[2], sw = g.stride[2];
        // Output columns whose tap lands inside the row: 0 <= ow*sw + dw <= W-1.
        const int64_t ow_lo = dw >= 0 ? 0 : (-dw + sw - 1) / sw;
        const int64_t ow_hi = dw > W - 1 ? 0 : std::min(OW, (W - 1 - dw) / sw + 1);
        if (ow_lo >= ow_hi) continue;
        for (int64_t od = 0; od < OD; ++od) {
          const int64_t id = od * g.stride[0] + kd * g.dilation[0] - g.pad[0];
          if (id < 0 || id >= D) continue;
          for (int64_t oh = 0; oh < OH; ++oh) {
            const int64_t ih = oh * g.stride[1] + kh * g.dilation[1] - g.pad[1];
            if (ih < 0 || ih >= H) continue;
            const float* src = x + (id * H + ih) * W + dw;
            float* dst = out + (od * OH + oh) * OW;
            if (sw == 1) {
              for (int64_t ow = ow_lo; ow < ow_hi; ++ow) dst[ow] += wv * src[ow];
            } else {
              for (int64_t ow = ow_lo; ow < ow_hi; ++ow) dst[ow] += wv * src[ow * sw];
            }
          }
        }
      }
}

}  // namespace

Tensor conv(const Tensor& x_in, const Tensor& weight, const Tensor& bias, const ConvParams& p) {
  constexpr const char* op = "conv";
  Device dev;
  const int sp = check_conv_inputs(op, x_in, weight, bias, p.groups, &dev);
  const int64_t N = x_in.size(0), Cin = x_in.size(1), Cout = weight.size(0);
  const int64_t G = p.groups;
  KILN_ARG(Cin % G == 0, op, "groups ", G, " does not divide the ", Cin, " input channels of x ",
           x_in.shape().str());
  KILN_ARG(Cout % G == 0, op, "groups ", G, " does not divide the ", Cout,
           " output channels of weight ", weight.shape().str());
  KILN_ARG(weight.size(1) == Cin / G, op, "weight ", weight.shape().str(), " expects ",
           weight.size(1) * G, " input channels (groups ", G, "), x ", x_in.shape().str(), " has ",
           Cin);
  if (bias.defined())
    KILN_ARG(bias.ndim() == 1 && bias.size(0) == Cout, op, "bias has shape ", bias.shape().str(),
             ", expected (", Cout, ")");
  for (int d = 0; d < sp; ++d) {
    KILN_ARG(p.stride[d] >= 1, op, "stride[", d, "] is ", p.stride[d], ", expected >= 1");
    KILN_ARG(p.dilation[d] >= 1, op, "dilation[", d, "] is ", p.dilation[d], ", expected >= 1");
    KILN_ARG(p.pad_lo[d] >= 0 && p.pad_hi[d] >= 0, op, "padding of dim ", d, " is (", p.pad_lo[d],
             ", ", p.pad_hi[d], "), expected >= 0");
  }

  // Non-zero pad modes: pad explicitly (pad() applies torch's rules for the mode and names the
  // offending dim), then convolve without padding — what torch's Conv*d(padding_mode=) does.
  Tensor x = x_in;
  std::array<int64_t, 3> lo{0, 0, 0}, hi{0, 0, 0};
  bool any_pad = false;
  for (int d = 0; d < sp; ++d) {
    lo[d] = p.pad_lo[d];
    hi[d] = p.pad_hi[d];
    any_pad = any_pad || lo[d] || hi[d];
  }
  if (p.pad_mode != PadMode::zeros && any_pad) {
    std::vector<int64_t> pads;
    for (int d = sp - 1; d >= 0; --d) {
      pads.push_back(lo[d]);
      pads.push_back(hi[d]);
    }
    try {
      x = pad(x_in, pads, p.pad_mode);
    } catch (const Error& e) {
      throw e.with_context(str(op, " (pad_mode ", pad_mode_name(p.pad_mode), ")"));
    }
    lo = hi = {0, 0, 0};
  }
  x = x.contiguous();

  // Geometry as 3-D: the missing leading spatial dims are size 1.
  kc::ConvGeom3d g;
  g.channels = Cin / G;
  const int off = 3 - sp;
  for (int d = 0; d < sp; ++d) {
    const int64_t in = x.size(2 + d), k = weight.size(2 + d);
    const int64_t extent = p.dilation[d] * (k - 1) + 1, padded = in + lo[d] + hi[d];
    KILN_ARG(extent <= padded, op, "kernel of dim ", d, " spans ", extent, " (size ", k,
             ", dilation ", p.dilation[d], ") but the padded input is only ", padded, " (size ",
             x_in.size(2 + d), " + padding ", lo[d], " + ", hi[d], ")");
    g.in[off + d] = in;
    g.kernel[off + d] = k;
    g.stride[off + d] = p.stride[d];
    g.pad[off + d] = lo[d];
    g.dilation[off + d] = p.dilation[d];
    g.out[off + d] = (padded - extent) / p.stride[d] + 1;
  }
  Shape out_shape{N, Cout};
  for (int d = 0; d < sp; ++d) out_shape.push_back(g.out[off + d]);
  if (dev.is_cuda()) {  // cuDNN (cuda_conv.cpp); x is padded already for non-zero pad modes
    ConvParams q = p;
    for (int d = 0; d < sp; ++d) {
      q.pad_lo[d] = static_cast<int>(lo[d]);
      q.pad_hi[d] = static_cast<int>(hi[d]);
    }
    q.pad_mode = PadMode::zeros;
    return cuda_ops::conv(x, weight, bias, q, out_shape);
  }
  Tensor out = Tensor::empty(out_shape, DType::f32);
  if (out.numel() == 0) return out;

  const F32Buffer w = to_f32_buffer(op, "weight", weight);
  const F32Buffer b = bias.defined() ? to_f32_buffer(op, "bias", bias) : F32Buffer{};
  const float* xp = x.data<float>();
  float* yp = out.mutable_data<float>();
  const int64_t Cin_g = Cin / G, Cout_g = Cout / G;
  const int64_t P_in = g.in_volume(), P = g.out_volume(), kvol = g.kernel_volume();
  const int64_t K = Cin_g * kvol;

  // oneDNN's direct convolution when it is the build's GEMM library (the same kernel PyTorch
  // uses on the CPU) for spatial kernels; 1x1 convs are a plain GEMM already (the layout
  // reorders oneDNN needs would dominate them). The im2col path below is the reference and
  // the fallback.
  if (gemm_backend() == GemmBackend::onednn && K > 0 && kvol > 1 && !in_parallel_region()) {
    detail::OnednnConvArgs a;
    a.x = xp;
    a.x_shape = x.shape();
    a.w = w.ptr;
    a.w_shape = weight.shape();
    a.bias = b.ptr;
    a.y = yp;
    a.y_shape = out.shape();
    for (int d = 0; d < sp; ++d) {
      a.stride[d] = p.stride[d];
      a.pad_lo[d] = lo[d];
      a.pad_hi[d] = hi[d];
      a.dilation[d] = p.dilation[d];
    }
    a.groups = G;
    if (detail::conv_onednn(a)) return out;
  }

  if (Cin_g == 1 && Cout_g < 6) {
    // Depthwise convs (or up to 5 outputs per input channel): one task per output plane.
    kc::ConvGeom3d g1 = g;
    parallel_for(N * Cout, 1, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) {
        const int64_t n = t / Cout, co = t % Cout, ci = co / Cout_g;
        conv_single_input_channel(g1, xp + (n * Cin + ci) * P_in, w.ptr + co * kvol,
                                  b.ptr ? b.ptr[co] : 0.f, yp + t * P);
      }
    });
    return out;
  }

  const bool pointwise = kvol == 1 && g.stride[0] == 1 && g.stride[1] == 1 && g.stride[2] == 1 &&
                         g.pad[0] == 0 && g.pad[1] == 0 && g.pad[2] == 0;
  const int64_t max_tile =
      pointwise ? 1024
                : std::clamp<int64_t>(kColTileBytes / (std::max<int64_t>(K, 1) * 4) / 32 * 32,
                                      kMinColTile, kMaxColTile);  // K = 0: no input channels
  const int64_t tile = pick_tile(P, max_tile, N * G, 4 * num_threads());
  const int64_t tiles = (P + tile - 1) / tile;
  parallel_for(N * G * tiles, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> col;
    if (!pointwise) col.resize(static_cast<size_t>(K * tile));
    for (int64_t t = begin; t < end; ++t) {
      const int64_t ng = t / tiles, c0 = (t % tiles) * tile;
      const int64_t n = ng / G, grp = ng % G, nc = std::min(tile, P - c0);
      const float* xg = xp + (n * Cin + grp * Cin_g) * P_in;
      float* yg = yp + (n * Cout + grp * Cout_g) * P + c0;
      const float* wg = w.ptr + grp * Cout_g * K;
      if (pointwise) {
        kc::sgemm(false, false, Cout_g, nc, K, 1.f, wg, K, xg + c0, P_in, 0.f, yg, P);
      } else {
        kc::im2col_3d(g, xg, c0, nc, col.data(), nc);
        kc::sgemm(false, false, Cout_g, nc, K, 1.f, wg, K, col.data(), nc, 0.f, yg, P);
      }
      if (b.ptr) {
        for (int64_t co = 0; co < Cout_g; ++co) {
          const float bv = b.ptr[grp * Cout_g + co];
          float* row = yg + co * P;
          for (int64_t j = 0; j < nc; ++j) row[j] += bv;
        }
      }
    }
  });
  return out;
}

Tensor conv_transpose(const Tensor& x_in, const Tensor& weight, const Tensor& bias,
                      const ConvTransposeParams& p) {
  constexpr const char* op = "conv_transpose";
  Device dev;
  const int sp = check_conv_inputs(op, x_in, weight, bias, p.groups, &dev);
  const int64_t N = x_in.size(0), Cin = x_in.size(1), G = p.groups;
  KILN_ARG(Cin % G == 0, op, "groups ", G, " does not divide the ", Cin, " input channels of x ",
           x_in.shape().str());
  KILN_ARG(weight.size(0) == Cin, op, "weight ", weight.shape().str(),
           " (layout (Cin, Cout/groups, *K)) has ", weight.size(0), " input channels, x ",
           x_in.shape().str(), " has ", Cin);
  const int64_t Cin_g = Cin / G, Cout_g = weight.size(1), Cout = Cout_g * G;
  if (bias.defined())
    KILN_ARG(bias.ndim() == 1 && bias.size(0) == Cout, op, "bias has shape ", bias.shape().str(),
             ", expected (", Cout, ")");

  // The transposed conv's output is the image the forward conv geometry reads: in <-> out swap.
  kc::ConvGeom3d g;
  const int off = 3 - sp;
  for (int d = 0; d < sp; ++d) {
    const int s = p.stride[d], dil = p.dilation[d], pd = p.padding[d], op_d = p.output_padding[d];
    KILN_ARG(s >= 1, op, "stride[", d, "] is ", s, ", expected >= 1");
    KILN_ARG(dil >= 1, op, "dilation[", d, "] is ", dil, ", expected >= 1");
    KILN_ARG(pd >= 0, op, "padding[", d, "] is ", pd, ", expected >= 0");
    KILN_ARG(op_d >= 0 && (op_d < s || op_d < dil), op, "output_padding[", d, "] is ", op_d,
             ", expected >= 0 and smaller than stride (", s, ") or dilation (", dil, ")");
    const int64_t in = x_in.size(2 + d), k = weight.size(2 + d);
    const int64_t o = (in - 1) * s - 2 * pd + dil * (k - 1) + op_d + 1;
    KILN_ARG(o >= 1, op, "output size of dim ", d, " is ", o, " (input ", in, ", stride ", s,
             ", padding ", pd, ", kernel ", k, ", dilation ", dil, ", output_padding ", op_d,
             "), expected >= 1");
    g.in[off + d] = o;
    g.out[off + d] = in;
    g.kernel[off + d] = k;
    g.stride[off + d] = s;
    g.pad[off + d] = pd;
    g.dilation[off + d] = dil;
  }
  Shape out_shape{N, Cout};
  for (int d = 0; d < sp; ++d) out_shape.push_back(g.in[off + d]);
  if (dev.is_cuda()) return cuda_ops::conv_transpose(x_in, weight, bias, p, out_shape);
  Tensor out = Tensor::empty(out_shape, DType::f32);
  if (out.numel() == 0) return out;

  const Tensor x = x_in.contiguous();
  const F32Buffer w = to_f32_buffer(op, "weight", weight);
  const F32Buffer b = bias.defined() ? to_f32_buffer(op, "bias", bias) : F32Buffer{};
  const float* xp = x.data<float>();
  float* yp = out.mutable_data<float>();
  const int64_t P_in = g.out_volume(), P_out = g.in_volume(), kvol = g.kernel_volume();

  // Blocks of output channels so batch-1, group-1 calls still give every thread work.
  const int64_t want = std::max<int64_t>(1, 4 * num_threads() / (N * G));
  const int64_t cblk = std::max<int64_t>(1, (Cout_g + want - 1) / want);
  const int64_t nblk = (Cout_g + cblk - 1) / cblk;
  // Column tiles: the GEMM output (cblk * kvol rows) stays ~1 MiB, then col2im consumes it.
  const int64_t tile =
      std::min(P_in, std::max<int64_t>(32, kColTileBytes / (cblk * kvol * 4) / 32 * 32));
  parallel_for(N * G * nblk, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> col(static_cast<size_t>(cblk * kvol * tile));
    for (int64_t t = begin; t < end; ++t) {
      const int64_t ng = t / nblk, c0 = (t % nblk) * cblk;
      const int64_t n = ng / G, grp = ng % G, nch = std::min(cblk, Cout_g - c0);
      const int64_t M = nch * kvol, lda = Cout_g * kvol;
      const float* xg = xp + (n * Cin + grp * Cin_g) * P_in;
      const float* wg = w.ptr + grp * Cin_g * lda + c0 * kvol;  // (Cin_g, Cout_g*kvol) slice
      float* yg = yp + (n * Cout + grp * Cout_g + c0) * P_out;
      for (int64_t c = 0; c < nch; ++c)
        std::fill(yg + c * P_out, yg + (c + 1) * P_out, b.ptr ? b.ptr[grp * Cout_g + c0 + c] : 0.f);
      kc::ConvGeom3d gb = g;
      gb.channels = nch;
      for (int64_t j0 = 0; j0 < P_in; j0 += tile) {
        const int64_t nc = std::min(tile, P_in - j0);
        // col (M, nc) = W_g[:, block]^T (M, Cin_g) @ x_g[:, j0:j0+nc] (Cin_g, nc)
        kc::sgemm(true, false, M, nc, Cin_g, 1.f, wg, lda, xg + j0, P_in, 0.f, col.data(), nc);
        kc::col2im_add_3d(gb, col.data(), j0, nc, nc, yg);
      }
    }
  });
  return out;
}

}  // namespace kiln::ops
