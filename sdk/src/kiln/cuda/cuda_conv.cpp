// The CUDA paths of conv and conv_transpose: tensors -> ConvCudnnParams
// (kernels/cuda/conv_cudnn.hpp), can_implement, launch on the op stream. See cuda_ops.hpp.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "cuda/conv_cudnn.hpp"
#include "kiln/cuda/cuda_ops.hpp"
#include "kiln/cuda/cuda_glue.hpp"

namespace kiln::cuda_ops {

namespace kc = kernels::cuda;

namespace {

using namespace glue;

// cuDNN's workspace: one buffer per device, grown (in 1 MiB steps) to the largest need of a
// plan so far and kept for the process; plans needing more than kConvWorkspaceLimit are not
// chosen. Called under the cuDNN device lock (conv_cudnn.cpp), so one conv at a time uses it;
// like the GEMM workspace this is correct while all convs of a device share op_stream().
// Growing frees the old buffer while earlier convs on that stream may still read it: the
// backend's deallocate must be stream-ordered or synchronizing (cudaFree is).
constexpr size_t kConvWorkspaceLimit = size_t{256} << 20;

void* conv_workspace(Device d, size_t bytes) {
  static std::mutex mu;
  static std::map<int, std::pair<void*, size_t>> buffers;
  std::lock_guard lock(mu);
  auto& [ptr, size] = buffers[d.index];
  if (size < bytes) {
    if (ptr) backend_for(d).deallocate(d.index, ptr, size);
    ptr = nullptr, size = 0;
    const size_t want = (bytes + (size_t{1} << 20) - 1) & ~((size_t{1} << 20) - 1);
    ptr = backend_for(d).allocate(d.index, want);
    size = want;
  }
  return ptr;
}

void check_cudnn(const kc::ConvCudnnStatus& st, const char* op, const std::string& what) {
  if (st.ok()) return;
  cudaGetLastError();  // a failed launch inside cuDNN must not be reported by the next op
  const Status s = st.kind == kc::ConvCudnnStatus::Kind::not_supported ? Status::unsupported
                   : st.kind == kc::ConvCudnnStatus::Kind::out_of_memory
                       ? Status::out_of_memory
                       : Status::device_error;
  fail(s, str(what, ": ", st.message), op);
}

// out = bias (Cout) broadcast over (N, Cout, *S), in out's dtype (the cast kernel's rounding,
// as bias.to(dtype) on the CPU), or zeros without a bias. Returns whether a bias was written.
bool fill_bias(Tensor& out, const Tensor& bias, cudaStream_t stream, const char* op) {
  if (!bias.defined()) {
    check_launch(cudaMemsetAsync(out.mutable_raw_data(), 0, out.nbytes(), stream), op);
    return false;
  }
  Shape bshape = Shape::filled(out.ndim(), 1);
  bshape[1] = out.size(1);
  out.copy_from(bias.reshape(bshape).expand(out.shape()));
  return true;
}

// Runs the plan; the shared tail of conv and conv_transpose.
void run(kc::ConvCudnnParams& c, const Tensor& x, const Tensor& w, Tensor& out, const Tensor& bias,
         const char* op, Device d, cudaStream_t stream, const std::string& what) {
  c.x = x.raw_data();
  c.w = w.raw_data();
  c.y = out.mutable_raw_data();
  c.workspace_limit = kConvWorkspaceLimit;
  require_implementable(kc::can_implement(c), op, d);
  c.accumulate = bias.defined() && fill_bias(out, bias, stream, op);  // else beta = 0 overwrites
  check_cudnn(kc::launch_conv_cudnn(
                  c, d.index, [d](size_t bytes) { return conv_workspace(d, bytes); }, stream),
              op, what);
}

}  // namespace

Tensor conv(const Tensor& x_in, const Tensor& weight, const Tensor& bias, const ops::ConvParams& p,
            const Shape& out_shape) {
  const char* op = "conv";
  const Device d = x_in.device();
  const std::string what = str("x ", x_in.shape().str(), " (", dtype_name(x_in.dtype()), "), weight ",
                               weight.shape().str(), " (", dtype_name(weight.dtype()), ") on ", d.str());
  kc::ConvCudnnParams c;
  c.type = elem_type(x_in.dtype(), op, d);
  elem_type(weight.dtype(), op, d);  // fp8 weights: no CUDA conversion yet
  if (bias.defined()) elem_type(bias.dtype(), op, d);
  const int sp = x_in.ndim() - 2;
  Tensor out = Tensor::empty(out_shape, x_in.dtype(), d);
  if (out.numel() == 0) return out;
  cudaStream_t stream = prepare(d, op);
  if (x_in.size(1) == 0) {  // no input channels: the output is the bias (the CPU's K = 0)
    fill_bias(out, bias, stream, op);
    return out;
  }
  // cuDNN's legacy API pads both sides of a dim equally: the common part goes to cuDNN, the
  // excess on one side (causal time padding, "same" padding of even kernels) is written as
  // zeros by the pad kernel first.
  std::vector<int64_t> lo(x_in.ndim(), 0), hi(x_in.ndim(), 0);
  bool asymmetric = false;
  for (int i = 0; i < sp; ++i) {
    const int sym = std::min(p.pad_lo[i], p.pad_hi[i]);
    c.pad[i] = sym;
    lo[2 + i] = p.pad_lo[i] - sym;
    hi[2 + i] = p.pad_hi[i] - sym;
    asymmetric = asymmetric || lo[2 + i] || hi[2 + i];
  }
  const Tensor x = (asymmetric ? pad(x_in, lo, hi, ops::PadMode::zeros, 0.f) : x_in).contiguous();
  const Tensor w = weight.to(x.dtype()).contiguous();
  c.transpose = false;
  c.spatial = sp;
  c.n = x.size(0), c.c_in = x.size(1), c.c_out = w.size(0), c.groups = p.groups;
  for (int i = 0; i < sp; ++i) {
    c.in[i] = x.size(2 + i);
    c.out[i] = out_shape[2 + i];
    c.kernel[i] = w.size(2 + i);
    c.stride[i] = p.stride[i];
    c.dilation[i] = p.dilation[i];
  }
  run(c, x, w, out, bias, op, d, stream, what);
  return out;
}

Tensor conv_transpose(const Tensor& x_in, const Tensor& weight, const Tensor& bias,
                      const ops::ConvTransposeParams& p, const Shape& out_shape) {
  const char* op = "conv_transpose";
  const Device d = x_in.device();
  const std::string what = str("x ", x_in.shape().str(), " (", dtype_name(x_in.dtype()), "), weight ",
                               weight.shape().str(), " (", dtype_name(weight.dtype()), ") on ", d.str());
  kc::ConvCudnnParams c;
  c.type = elem_type(x_in.dtype(), op, d);
  elem_type(weight.dtype(), op, d);
  if (bias.defined()) elem_type(bias.dtype(), op, d);
  const int sp = x_in.ndim() - 2;
  Tensor out = Tensor::empty(out_shape, x_in.dtype(), d);
  if (out.numel() == 0) return out;
  cudaStream_t stream = prepare(d, op);
  if (x_in.size(1) == 0 || weight.size(1) == 0) {
    fill_bias(out, bias, stream, op);
    return out;
  }
  const Tensor x = x_in.contiguous();
  const Tensor w = weight.to(x.dtype()).contiguous();
  c.transpose = true;
  c.spatial = sp;
  c.n = x.size(0), c.c_in = x.size(1), c.c_out = out_shape[1], c.groups = p.groups;
  for (int i = 0; i < sp; ++i) {
    c.in[i] = x.size(2 + i);
    c.out[i] = out_shape[2 + i];
    c.kernel[i] = w.size(2 + i);
    c.stride[i] = p.stride[i];
    c.pad[i] = p.padding[i];
    c.dilation[i] = p.dilation[i];
  }
  run(c, x, w, out, bias, op, d, stream, what);
  return out;
}

}  // namespace kiln::cuda_ops
