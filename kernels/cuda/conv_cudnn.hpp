// Convolution (1-, 2-, 3-D, stride, dilation, groups) and transposed convolution through cuDNN 9,
// NCHW / NCDHW contiguous tensors, f32 accumulate.
//
// API: cuDNN's legacy convolution API (cudnnConvolutionForward / cudnnConvolutionBackwardData,
// in libcudnn_cnn in v9, marked deprecated there but kept through 9.x), not the graph API.
// Why, for now: (1) CPU parity needs "no TF32 and a plain dot-product summation" for f32, which
// the legacy API states directly (CUDNN_FMA_MATH plus a choice among the GEMM-type
// algorithms), whereas the graph API needs engine filtering by numerical notes that we cannot
// try without a GPU; (2) it is a small surface (descriptors, a heuristic query, one call) that
// is easy to verify on the first GPU run. Costs: symmetric padding only (the op pads
// asymmetric cases explicitly first: one extra copy of x, e.g. for causal 3-D convs) and no
// epilogue fusion (the bias is pre-written to y and blended with beta = 1, one extra pass over
// y). The graph API (CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS/POST_PADDINGS, a conv + pointwise-add
// graph) removes both; switch when a measurement shows they matter.
// Layout: NCHW because it is kiln's tensor layout (no transposes around the call). cuDNN's
// fastest f16/bf16 kernels on sm_80/sm_90 are NHWC; pick the layout by measurement (kiln
// bench vs PyTorch on SD/Flux VAE convs) before changing it.
//
// Precision: f32 data computes in f32 with CUDNN_FMA_MATH (no TF32) and only the algorithms
// that sum plain products (IMPLICIT_GEMM, IMPLICIT_PRECOMP_GEMM, GEMM, DIRECT; backward data
// ALGO_1): no FFT or Winograd transforms, whose error is not bounded by sum|w||x|. f16/bf16
// data: tensor cores with f32 accumulation (CUDNN_DATA_FLOAT compute), any deterministic
// algorithm. Backward data ALGO_0 (atomics, non-deterministic) is never used.
//
// Handles, plans, workspace: one cudnnHandle per device (created on first use, kept for the
// process, like the cuBLASLt handle). A plan (descriptors + algorithm + workspace size) is
// cached per ConvCudnnKey; the first call of a shape pays cudnnGetConvolution*Algorithm_v7
// (heuristics, no benchmarking). Calls on one device are serialized by a per-device mutex (the
// handle's stream is set per call). The workspace comes from the caller's callback, sized per
// plan (the caller keeps one growing buffer per device).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "cuda/strided.hpp"

namespace kiln::kernels::cuda {

struct ConvCudnnParams {
  ElemType type = ElemType::f32;  // x, w, y
  // false: y (n, c_out, *out) = conv(x (n, c_in, *in), w (c_out, c_in/groups, *kernel)).
  // true:  y (n, c_out, *out) = conv_transpose(x (n, c_in, *in), w (c_in, c_out/groups, *kernel))
  //        (torch's layout), i.e. cuDNN's backward data of the conv that maps y to x.
  bool transpose = false;
  int spatial = 2;  // 1, 2 or 3; the first `spatial` entries below are used
  int64_t n = 0, c_in = 0, c_out = 0, groups = 1;
  int64_t in[3] = {1, 1, 1}, out[3] = {1, 1, 1}, kernel[3] = {1, 1, 1};
  int stride[3] = {1, 1, 1}, pad[3] = {0, 0, 0}, dilation[3] = {1, 1, 1};  // pad: both sides
  const void* x = nullptr;
  const void* w = nullptr;
  void* y = nullptr;
  bool accumulate = false;  // beta = 1: y += result (y holds the broadcast bias)
  size_t workspace_limit = size_t{256} << 20;  // algorithms needing more are skipped
};

// Empty when launch_conv_cudnn can run `p`; otherwise why not (including "this build has no
// cuDNN").
std::string can_implement(const ConvCudnnParams& p);

struct ConvCudnnStatus {
  enum class Kind : uint8_t { ok, not_supported, out_of_memory, failed };
  Kind kind = Kind::ok;
  std::string message;  // "cudnnConvolutionForward failed: CUDNN_STATUS_... for f32 conv ..."
  bool ok() const { return kind == Kind::ok; }
};

// Queues the convolution on `stream` on the calling thread's current device `device` (which
// owns every pointer). `workspace(bytes)` returns device memory of at least `bytes` (called
// under the device's lock, at most once per call, only when bytes > 0).
ConvCudnnStatus launch_conv_cudnn(const ConvCudnnParams& p, int device,
                                  const std::function<void*(size_t)>& workspace,
                                  cudaStream_t stream);

// Whether this build links cuDNN (KILN_CUDNN); without it can_implement refuses every case.
bool conv_cudnn_built();

// "f32 conv N=3 C=7->5 in 33x17 kernel 3x3 stride 2x2 pad 1x1 dilation 1x1 groups 1".
std::string describe(const ConvCudnnParams& p);

// The plan cache's key: every field of the params but the pointers and `accumulate`.
struct ConvCudnnKey {
  int device = 0;
  ElemType type = ElemType::f32;
  bool transpose = false;
  int spatial = 0;
  int64_t n = 0, c_in = 0, c_out = 0, groups = 0;
  int64_t in[3] = {}, out[3] = {}, kernel[3] = {};
  int stride[3] = {}, pad[3] = {}, dilation[3] = {};
  size_t workspace_limit = 0;
  bool operator==(const ConvCudnnKey&) const = default;
};
ConvCudnnKey conv_cudnn_key(const ConvCudnnParams& p, int device);
struct ConvCudnnKeyHash {
  size_t operator()(const ConvCudnnKey& k) const;
};

}  // namespace kiln::kernels::cuda
