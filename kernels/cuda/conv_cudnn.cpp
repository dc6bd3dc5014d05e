// cuDNN legacy convolution API (see conv_cudnn.hpp for why this API, the precision rules and
// the caching). The transposed convolution is cuDNN's backward data of the forward
// convolution that maps y to x, the way PyTorch runs conv_transpose
// (aten/src/ATen/native/cudnn/ConvShared.cpp, cudnn_convolution_transpose -> backward input).
// 1-D convolutions run as 2-D ones with H = 1 (cuDNN needs 4-D tensors at least).
#include <cudnn.h>

#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "cuda/conv_cudnn.hpp"

namespace kiln::kernels::cuda {

bool conv_cudnn_built() { return true; }

namespace {

cudnnDataType_t data_type(ElemType t) {
  switch (t) {
    case ElemType::f32: return CUDNN_DATA_FLOAT;
    case ElemType::f16: return CUDNN_DATA_HALF;
    case ElemType::bf16: return CUDNN_DATA_BFLOAT16;
  }
  return CUDNN_DATA_FLOAT;
}

ConvCudnnStatus failure(const char* call, cudnnStatus_t s, const ConvCudnnParams& p) {
  ConvCudnnStatus r;
  const int cat = static_cast<int>(s) / 1000;  // cuDNN 9 status categories (cudnn_graph.h)
  r.kind = s == CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED ||
                   s == CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED
               ? ConvCudnnStatus::Kind::out_of_memory
           : cat == 3 ? ConvCudnnStatus::Kind::not_supported
                      : ConvCudnnStatus::Kind::failed;
  r.message = std::string(call) + " failed: " + cudnnGetErrorString(s) + " for " + describe(p);
  return r;
}

// The descriptors and algorithm of one shape. Never destroyed (kept for the process with
// their handle; destroying them at exit races cuDNN's own teardown).
struct Plan {
  cudnnTensorDescriptor_t fwd_in = nullptr;   // the forward conv's input: x, or y if transpose
  cudnnTensorDescriptor_t fwd_out = nullptr;  // its output: y, or x if transpose
  cudnnFilterDescriptor_t filter = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  int algo = 0;  // cudnnConvolutionFwdAlgo_t or cudnnConvolutionBwdDataAlgo_t
  size_t workspace = 0;
};

struct DeviceState {
  std::mutex mu;
  cudnnHandle_t handle = nullptr;
  std::unordered_map<ConvCudnnKey, std::unique_ptr<Plan>, ConvCudnnKeyHash> plans;
};

DeviceState& device_state(int device) {
  static std::mutex mu;
  static auto* states = new std::map<int, std::unique_ptr<DeviceState>>();  // kept for the process
  std::lock_guard lock(mu);
  auto& s = (*states)[device];
  if (!s) s = std::make_unique<DeviceState>();
  return *s;
}

// A 4-D/5-D NCHW tensor (n, c, *spatial) with contiguous strides; 1-D gets H = 1.
cudnnStatus_t set_tensor(cudnnTensorDescriptor_t d, cudnnDataType_t t, int nb, int64_t n, int64_t c,
                         const int* spatial) {
  int dims[5], strides[5];
  dims[0] = static_cast<int>(n), dims[1] = static_cast<int>(c);
  for (int i = 0; i < nb - 2; ++i) dims[2 + i] = spatial[i];
  strides[nb - 1] = 1;
  for (int i = nb - 2; i >= 0; --i) strides[i] = strides[i + 1] * dims[i + 1];
  return cudnnSetTensorNdDescriptor(d, t, nb, dims, strides);
}

bool is_tensor_op(cudnnMathType_t m) {
  return m == CUDNN_TENSOR_OP_MATH || m == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
}

// f32: only algorithms that sum plain products (parity with the CPU's GEMM, error bounded by
// sum|w||x|); f16/bf16: any.
bool fwd_algo_allowed(cudnnConvolutionFwdAlgo_t a, ElemType t) {
  if (t != ElemType::f32) return true;
  return a == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM ||
         a == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM ||
         a == CUDNN_CONVOLUTION_FWD_ALGO_GEMM || a == CUDNN_CONVOLUTION_FWD_ALGO_DIRECT;
}
bool bwd_algo_allowed(cudnnConvolutionBwdDataAlgo_t a, ElemType t) {
  if (a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_0) return false;  // atomics: not deterministic
  return t != ElemType::f32 || a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_1;
}

#define KILN_CUDNN_TRY(call, ...)                                  \
  do {                                                             \
    const cudnnStatus_t st_ = __VA_ARGS__;                         \
    if (st_ != CUDNN_STATUS_SUCCESS) return failure(call, st_, p); \
  } while (0)

// Descriptors for `p` and the first algorithm of cuDNN's heuristic ranking that passes the
// precision rules and fits the workspace limit.
ConvCudnnStatus make_plan(const ConvCudnnParams& p, cudnnHandle_t h, Plan& plan) {
  const cudnnDataType_t dt = data_type(p.type);
  const int nb = p.spatial == 1 ? 4 : p.spatial + 2, ns = nb - 2;
  // Spatial arrays in cuDNN's order; 1-D: a leading H of 1 with kernel 1, stride 1, no pad.
  int in[3], out[3], kernel[3], stride[3], pad[3], dil[3];
  for (int i = 0; i < ns; ++i) {
    const int d = i - (ns - p.spatial);  // source dim, or < 0 for the added H
    in[i] = d < 0 ? 1 : static_cast<int>(p.in[d]);
    out[i] = d < 0 ? 1 : static_cast<int>(p.out[d]);
    kernel[i] = d < 0 ? 1 : static_cast<int>(p.kernel[d]);
    stride[i] = d < 0 ? 1 : p.stride[d];
    pad[i] = d < 0 ? 0 : p.pad[d];
    dil[i] = d < 0 ? 1 : p.dilation[d];
  }
  // The forward convolution cuDNN sees: x -> y, or for a transpose y -> x.
  const int64_t c_fin = p.transpose ? p.c_out : p.c_in, c_fout = p.transpose ? p.c_in : p.c_out;
  const int* s_fin = p.transpose ? out : in;
  const int* s_fout = p.transpose ? in : out;
  KILN_CUDNN_TRY("cudnnCreateTensorDescriptor", cudnnCreateTensorDescriptor(&plan.fwd_in));
  KILN_CUDNN_TRY("cudnnCreateTensorDescriptor", cudnnCreateTensorDescriptor(&plan.fwd_out));
  KILN_CUDNN_TRY("cudnnCreateFilterDescriptor", cudnnCreateFilterDescriptor(&plan.filter));
  KILN_CUDNN_TRY("cudnnCreateConvolutionDescriptor", cudnnCreateConvolutionDescriptor(&plan.conv));
  KILN_CUDNN_TRY("cudnnSetTensorNdDescriptor", set_tensor(plan.fwd_in, dt, nb, p.n, c_fin, s_fin));
  KILN_CUDNN_TRY("cudnnSetTensorNdDescriptor", set_tensor(plan.fwd_out, dt, nb, p.n, c_fout, s_fout));
  // Filter (out channels of the forward conv, its in channels per group, *kernel).
  int fdims[5] = {static_cast<int>(c_fout), static_cast<int>(c_fin / p.groups)};
  for (int i = 0; i < ns; ++i) fdims[2 + i] = kernel[i];
  KILN_CUDNN_TRY("cudnnSetFilterNdDescriptor",
                 cudnnSetFilterNdDescriptor(plan.filter, dt, CUDNN_TENSOR_NCHW, nb, fdims));
  KILN_CUDNN_TRY("cudnnSetConvolutionNdDescriptor",
                 cudnnSetConvolutionNdDescriptor(plan.conv, ns, pad, stride, dil,
                                                 CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
  KILN_CUDNN_TRY("cudnnSetConvolutionGroupCount",
                 cudnnSetConvolutionGroupCount(plan.conv, static_cast<int>(p.groups)));
  const bool f32 = p.type == ElemType::f32;
  KILN_CUDNN_TRY("cudnnSetConvolutionMathType",
                 cudnnSetConvolutionMathType(plan.conv, f32 ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH));

  // cuDNN's output size of the forward conv must be ours (a transpose's output_padding is
  // within the floor of that formula as long as it is smaller than the stride).
  int got[5];
  KILN_CUDNN_TRY("cudnnGetConvolutionNdForwardOutputDim",
                 cudnnGetConvolutionNdForwardOutputDim(plan.conv, plan.fwd_in, plan.filter, nb, got));
  for (int i = 0; i < ns; ++i)
    if (got[2 + i] != s_fout[i])
      return {ConvCudnnStatus::Kind::not_supported,
              "cuDNN's output size " + std::to_string(got[2 + i]) + " differs from " +
                  std::to_string(s_fout[i]) + " in spatial dim " + std::to_string(i) +
                  " (output_padding >= stride?) for " + describe(p)};

  auto math_ok = [&](cudnnMathType_t m) { return !(f32 && is_tensor_op(m)); };
  if (!p.transpose) {
    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    int n = 0;
    KILN_CUDNN_TRY("cudnnGetConvolutionForwardAlgorithm_v7",
                   cudnnGetConvolutionForwardAlgorithm_v7(h, plan.fwd_in, plan.filter, plan.conv,
                                                          plan.fwd_out, CUDNN_CONVOLUTION_FWD_ALGO_COUNT,
                                                          &n, perf));
    for (int i = 0; i < n; ++i) {
      const cudnnConvolutionFwdAlgoPerf_t& r = perf[i];
      if (r.status != CUDNN_STATUS_SUCCESS || !fwd_algo_allowed(r.algo, p.type) || !math_ok(r.mathType))
        continue;
      if (!f32) cudnnSetConvolutionMathType(plan.conv, r.mathType);
      size_t ws = 0;
      if (cudnnGetConvolutionForwardWorkspaceSize(h, plan.fwd_in, plan.filter, plan.conv,
                                                  plan.fwd_out, r.algo, &ws) != CUDNN_STATUS_SUCCESS ||
          ws > p.workspace_limit)
        continue;
      plan.algo = r.algo;
      plan.workspace = ws;
      return {};
    }
  } else {
    cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    int n = 0;
    KILN_CUDNN_TRY("cudnnGetConvolutionBackwardDataAlgorithm_v7",
                   cudnnGetConvolutionBackwardDataAlgorithm_v7(
                       h, plan.filter, plan.fwd_out, plan.conv, plan.fwd_in,
                       CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &n, perf));
    for (int i = 0; i < n; ++i) {
      const cudnnConvolutionBwdDataAlgoPerf_t& r = perf[i];
      if (r.status != CUDNN_STATUS_SUCCESS || !bwd_algo_allowed(r.algo, p.type) ||
          !math_ok(r.mathType) || r.determinism != CUDNN_DETERMINISTIC)
        continue;
      if (!f32) cudnnSetConvolutionMathType(plan.conv, r.mathType);
      size_t ws = 0;
      if (cudnnGetConvolutionBackwardDataWorkspaceSize(h, plan.filter, plan.fwd_out, plan.conv,
                                                       plan.fwd_in, r.algo, &ws) != CUDNN_STATUS_SUCCESS ||
          ws > p.workspace_limit)
        continue;
      plan.algo = r.algo;
      plan.workspace = ws;
      return {};
    }
  }
  return {ConvCudnnStatus::Kind::not_supported,
          std::string("no cuDNN algorithm ") + (f32 ? "without TF32 or FFT/Winograd " : "") +
              "fits a workspace of " + std::to_string(p.workspace_limit >> 20) + " MiB for " +
              describe(p)};
}

}  // namespace

ConvCudnnStatus launch_conv_cudnn(const ConvCudnnParams& p, int device,
                                  const std::function<void*(size_t)>& workspace,
                                  cudaStream_t stream) {
  DeviceState& s = device_state(device);
  std::lock_guard lock(s.mu);
  if (!s.handle) KILN_CUDNN_TRY("cudnnCreate", cudnnCreate(&s.handle));
  const ConvCudnnKey key = conv_cudnn_key(p, device);
  auto it = s.plans.find(key);
  if (it == s.plans.end()) {
    auto plan = std::make_unique<Plan>();
    const ConvCudnnStatus st = make_plan(p, s.handle, *plan);
    if (!st.ok()) return st;  // the half-made descriptors are dropped (a few bytes, rare)
    it = s.plans.emplace(key, std::move(plan)).first;
  }
  const Plan& plan = *it->second;
  void* ws = nullptr;
  if (plan.workspace > 0) {
    ws = workspace(plan.workspace);
    if (!ws) return {ConvCudnnStatus::Kind::out_of_memory, "no workspace for " + describe(p)};
  }
  KILN_CUDNN_TRY("cudnnSetStream", cudnnSetStream(s.handle, stream));
  const float alpha = 1.f, beta = p.accumulate ? 1.f : 0.f;  // f32 scalars: FLOAT compute
  if (!p.transpose) {
    KILN_CUDNN_TRY("cudnnConvolutionForward",
                   cudnnConvolutionForward(s.handle, &alpha, plan.fwd_in, p.x, plan.filter, p.w,
                                           plan.conv, static_cast<cudnnConvolutionFwdAlgo_t>(plan.algo),
                                           ws, plan.workspace, &beta, plan.fwd_out, p.y));
  } else {
    KILN_CUDNN_TRY("cudnnConvolutionBackwardData",
                   cudnnConvolutionBackwardData(s.handle, &alpha, plan.filter, p.w, plan.fwd_out, p.x,
                                                plan.conv,
                                                static_cast<cudnnConvolutionBwdDataAlgo_t>(plan.algo),
                                                ws, plan.workspace, &beta, plan.fwd_in, p.y));
  }
  return {};
}

}  // namespace kiln::kernels::cuda
