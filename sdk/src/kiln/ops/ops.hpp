// The op set. Every op validates shapes/dtypes with a message naming the op and the offending
// argument (the same on every device), has a CPU implementation (the reference: f32 compute,
// OpenMP-parallel), and may dispatch CUDA tensors to a kernel of kernels/cuda through
// kiln/cuda/cuda_ops.hpp (docs/cuda.md lists which). An op on a device it has no kernel for
// throws Status::unsupported naming the op and the device — it never silently copies to the
// host; inputs on different devices are an invalid_argument error.
//
// Conventions: activations are f32. Weight arguments (linear, conv) may also be f16, bf16 or
// fp8 (converted on the fly). Layout follows PyTorch: NC(D)HW for convs, (B, H, L, D) for
// attention. Outputs are new contiguous tensors unless the op is documented as a view.
#pragma once

#include <array>
#include <optional>
#include <span>
#include <vector>

#include "kiln/core/tensor.hpp"

namespace kiln::ops {

// The device of the defined tensors (the CPU when none is defined); throws invalid_argument
// "[op] inputs on cpu and cuda:0 ..." when they are on different devices.
Device common_device(const char* op, std::initializer_list<const Tensor*> tensors);
// common_device(), then Status::unsupported "[op] no <device> kernel for this op yet" unless
// it is the CPU: the guard of ops without a CUDA kernel.
void require_cpu(const char* op, std::initializer_list<const Tensor*> tensors);
// Throws invalid_argument unless t is defined, f32 and (optionally) of rank `ndim`.
void require_f32(const char* op, const char* arg, const Tensor& t, int ndim = -1);
// require_f32, except that on a CUDA device f16 and bf16 are accepted too (the ops whose CUDA
// kernels take 16-bit storage with f32 math; the CPU's contract and messages stay f32).
void require_f32_or_cuda_half(const char* op, const char* arg, const Tensor& t, Device dev);

// ---------------------------------------------------------------- elementwise (elementwise.cpp)
Tensor add(const Tensor& a, const Tensor& b);  // NumPy broadcasting
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor scale(const Tensor& x, float alpha, float beta = 0.f);  // alpha * x + beta
Tensor silu(const Tensor& x);
enum class GeluApprox { none, tanh };  // erf-exact, or tanh approximation (torch's approximate=)
Tensor gelu(const Tensor& x, GeluApprox approx = GeluApprox::none);
Tensor sigmoid(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor relu(const Tensor& x);
Tensor softmax(const Tensor& x, int dim);  // numerically stable (max-subtracted)
// Float math of libm (std::exp(float) etc.), as torch's CPU kernels compute them.
Tensor exp(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor sin(const Tensor& x);
Tensor cos(const Tensor& x);
// torch.clamp(x, min=lo, max=hi): either bound optional (not both absent), NaN passes through.
// lo > hi gives hi everywhere, as torch does.
Tensor clamp(const Tensor& x, std::optional<float> lo, std::optional<float> hi);
// x <cmp> value as a mask of 0 and 1 in x's dtype (f32; f16/bf16 on CUDA) (a NaN x compares
// false, except for ne).
enum class Cmp { eq, ne, lt, le, gt, ge };
Tensor compare(const Tensor& x, Cmp cmp, float value);
// torch.where(cond, a, b) with NumPy broadcasting of all three; cond is an f32 mask (non-zero
// picks a; compare() makes one; on CUDA also a mask in a's f16/bf16 dtype) or boolean. a/b may be 0-dim tensors (Tensor::full({}, v)).
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);

// ---------------------------------------------------------------- reductions (reduce.cpp)
Tensor sum(const Tensor& x, std::span<const int> dims, bool keepdim = false);
Tensor mean(const Tensor& x, std::span<const int> dims, bool keepdim = false);
Tensor amax(const Tensor& x, std::span<const int> dims, bool keepdim = false);
Tensor amin(const Tensor& x, std::span<const int> dims, bool keepdim = false);

// ---------------------------------------------------------------- layout (layout.cpp)
Tensor concat(std::span<const Tensor> xs, int dim);
std::vector<Tensor> split(const Tensor& x, std::span<const int64_t> sizes, int dim);  // views
std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int dim);  // views, torch semantics
// torch.nn.functional.embedding: rows of `weight` (V, D) (any float dtype) picked by `ids`
// (i32/i64, any shape) -> (*ids.shape, D) f32. An id outside [0, V) is an error naming it.
Tensor embedding(const Tensor& weight, const Tensor& ids);

// ---------------------------------------------------------------- matmul (matmul.cpp)
// (..., M, K) @ (..., K, N) -> (..., M, N); batch dims broadcast. Transposed views of the last
// two dims are consumed without a copy. On CUDA (cuBLASLt, f32 accumulate) a and b may also
// both be f16 or both bf16; the output then has their dtype.
Tensor matmul(const Tensor& a, const Tensor& b);
// x (..., in) @ weight (out, in)^T + bias (out) -> (..., out). weight f32/f16/bf16/fp8 (fp8:
// CPU only for now). On CUDA x may also be f16 or bf16: weight and bias are rounded to x's
// dtype, the output has it, and the bias is added in the GEMM's f32 epilogue.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = {});

// ---------------------------------------------------------------- convolution (conv.cpp)
enum class PadMode { zeros, reflect, replicate, circular };
// Spatial dims = rank - 2 (1, 2 or 3). Per-dim arrays use the first `spatial` entries, in the
// order of the tensor's spatial dims (D, H, W). Padding is given per side so that causal
// padding (pad_lo = dilation * (k - 1), pad_hi = 0 on the time axis) is just a value.
struct ConvParams {
  std::array<int, 3> stride{1, 1, 1};
  std::array<int, 3> pad_lo{0, 0, 0};
  std::array<int, 3> pad_hi{0, 0, 0};
  std::array<int, 3> dilation{1, 1, 1};
  int groups = 1;
  PadMode pad_mode = PadMode::zeros;
  // torch-style symmetric padding on every spatial dim.
  static ConvParams same_pad(int stride, int padding, int dilation = 1, int groups = 1);
};
// x (N, Cin, *S), weight (Cout, Cin/groups, *K), bias (Cout) -> (N, Cout, *S'). On CUDA (cuDNN)
// x may also be f16 or bf16 (f32 accumulate; output, weight and bias in x's dtype); the same
// holds for conv_transpose and for pad.
Tensor conv(const Tensor& x, const Tensor& weight, const Tensor& bias, const ConvParams& p);

struct ConvTransposeParams {
  std::array<int, 3> stride{1, 1, 1};
  std::array<int, 3> padding{0, 0, 0};
  std::array<int, 3> output_padding{0, 0, 0};
  std::array<int, 3> dilation{1, 1, 1};
  int groups = 1;
};
// x (N, Cin, *S), weight (Cin, Cout/groups, *K) (torch's layout), bias (Cout).
Tensor conv_transpose(const Tensor& x, const Tensor& weight, const Tensor& bias,
                      const ConvTransposeParams& p);

// ---------------------------------------------------------------- pad / resample (resample.cpp)
// pads: (lo, hi) pairs starting from the LAST dim, exactly like torch.nn.functional.pad.
Tensor pad(const Tensor& x, std::span<const int64_t> pads, PadMode mode = PadMode::zeros,
           float value = 0.f);
enum class InterpMode { nearest, nearest_exact, bilinear };
// x (N, C, *S) with 1-3 spatial dims (bilinear: exactly 2). out_size has one entry per spatial
// dim. Matches torch.nn.functional.interpolate(size=out_size, mode=..., align_corners=...).
Tensor interpolate(const Tensor& x, std::span<const int64_t> out_size, InterpMode mode,
                   bool align_corners = false);

// ---------------------------------------------------------------- normalization (norm.cpp)
// x (N, C, *): statistics per (n, group); weight/bias (C) optional.
Tensor group_norm(const Tensor& x, int groups, const Tensor& weight, const Tensor& bias,
                  float eps);
// Over the last dim; weight/bias (D) optional.
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps);
Tensor rms_norm(const Tensor& x, const Tensor& weight, float eps);

// ---------------------------------------------------------------- attention (attention.cpp)
struct AttentionParams {
  float scale = 0.f;    // 0: 1/sqrt(head_dim)
  // Query i attends keys j <= i (top-left aligned, as torch's is_causal). Unlike torch, a
  // mask may be combined with it: a key must pass both.
  bool causal = false;
};
// q (B, H, Lq, D), k (B, Hkv, Lk, D), v (B, Hkv, Lk, Dv), H % Hkv == 0 (grouped-query);
// mask optional, broadcastable to (B, H, Lq, Lk): bool (true = keep) or f32 (added to scores).
// Computed in tiles with an online softmax; never materialises the Lq x Lk matrix.
// A query row with every key masked out yields zeros (torch yields NaN there).
// q, k, v are f32; on CUDA they may also be f16 or bf16 (one dtype; output in it): see
// docs/cuda.md for the head dims each CUDA path takes.
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask = {},
                 const AttentionParams& p = {});

// ---------------------------------------------------------------- rotary embedding (rope.cpp)
struct RopeTable {
  Tensor cos, sin;  // (L, D/2) f32 each: one angle per rotated pair
};
// The tables are built on the CPU (positions are host metadata; angles in f64, as diffusers):
// move them with .to(device) to apply them on a GPU.
// 1-D: positions (L) f32/i64, pair i of `dim` rotates by pos * theta^(-2i/dim).
RopeTable rope_table_1d(const Tensor& positions, int dim, float theta);
// Multi-axis (Flux, Wan): ids (L, A), axis a contributes axes_dims[a]/2 pairs computed from
// ids[:, a]; pairs are concatenated in axis order. sum(axes_dims) = head dim.
RopeTable rope_table(const Tensor& ids, std::span<const int> axes_dims, float theta);
enum class RopeLayout {
  interleaved,  // pairs (x[2i], x[2i+1]) — Flux, Wan, diffusers use_real_unbind_dim=-1
  split_half,   // pairs (x[i], x[i + D/2]) — GPT-NeoX / diffusers use_real_unbind_dim=-2
};
// x (B, H, L, D) or (B, L, H, D) with `seq_dim` naming L (2 or 1); table (L, D/2), on x's
// device. On CUDA bit-identical to the CPU (kernels/cuda/rope.cu).
Tensor apply_rope(const Tensor& x, const RopeTable& table, RopeLayout layout, int seq_dim = 2);

}  // namespace kiln::ops
