// CUDA op dispatch: tensors -> kernel params (kernels/cuda), can_implement, launch on the op
// stream. See cuda_ops.hpp.
#include "kiln/cuda/cuda_ops.hpp"

#include <cuda_runtime_api.h>

#include <string>

#include "cuda/cast.hpp"
#include "cuda/elementwise.hpp"
#include "cuda/norm.hpp"
#include "cuda/softmax.hpp"

namespace kiln::cuda_ops {

namespace kc = kernels::cuda;

namespace {

static_assert(kc::kMaxDims == kMaxDims);

// Refuses with the kernel's reason: "[op] no cuda:0 kernel for this case: <why>".
void require_implementable(const std::string& why, const char* op, Device d) {
  if (!why.empty()) fail(Status::unsupported, str("no ", d.str(), " kernel for this case: ", why), op);
}

void check_launch(cudaError_t e, const char* op) {
  if (e == cudaSuccess) return;
  cudaGetLastError();  // clear it so later calls are not reported as failing too
  fail(e == cudaErrorMemoryAllocation ? Status::out_of_memory : Status::device_error,
       str("CUDA kernel launch failed: ", cudaGetErrorString(e)), op);
}

// Makes `d` current (kernels launch on the calling thread's current device) and returns the
// stream to launch on.
cudaStream_t prepare(Device d, const char* op) {
  check_launch(cudaSetDevice(d.index), op);
  return static_cast<cudaStream_t>(op_stream(d).native);
}

kc::ElemType elem_type(DType t, const char* op, Device d) {
  switch (t) {
    case DType::f32: return kc::ElemType::f32;
    case DType::f16: return kc::ElemType::f16;
    case DType::bf16: return kc::ElemType::bf16;
    default: break;
  }
  fail(Status::unsupported,
       str("no ", d.str(), " kernel for ", dtype_name(t), " (f32, f16 and bf16 only)"), op);
}

// t's element strides over `shape` (0 where t is broadcast).
void strides_over(const Tensor& t, const Shape& shape, int64_t* out) {
  const Tensor e = t.shape() == shape ? t : t.expand(shape);
  for (int d = 0; d < shape.size(); ++d) out[d] = e.stride(d);
}

void copy_shape(const Shape& s, int* ndim, int64_t* shape) {
  *ndim = s.size();
  for (int d = 0; d < s.size(); ++d) shape[d] = s[d];
}

const float* f32_ptr(const Tensor& t) { return static_cast<const float*>(t.raw_data()); }
const float* f32_ptr_or_null(const Tensor& t) { return t.defined() ? f32_ptr(t) : nullptr; }

}  // namespace

Stream op_stream(Device d) { return Stream{d, nullptr}; }

void copy_cast(Tensor& dst, const Tensor& src) {
  const char* op = "copy";
  const Device d = dst.device();
  kc::CastParams p;
  p.src_type = elem_type(src.dtype(), op, d);
  p.dst_type = elem_type(dst.dtype(), op, d);
  p.src = src.raw_data();
  p.dst = dst.mutable_raw_data();
  copy_shape(dst.shape(), &p.ndim, p.shape);
  strides_over(src, dst.shape(), p.src_stride);
  strides_over(dst, dst.shape(), p.dst_stride);
  require_implementable(kc::can_implement(p), op, d);
  check_launch(kc::launch_cast(p, prepare(d, op)), op);
}

Tensor unary(const char* op, UnaryOp kind, const Tensor& x, float a, float b) {
  const Device d = x.device();
  Tensor out = Tensor::empty(x.shape(), DType::f32, d);
  kc::UnaryParams p;
  p.op = kind;
  p.a = a;
  p.b = b;
  p.x = f32_ptr(x);
  p.out = out.mutable_data<float>();
  copy_shape(x.shape(), &p.ndim, p.shape);
  strides_over(x, x.shape(), p.x_stride);
  require_implementable(kc::can_implement(p), op, d);
  check_launch(kc::launch_unary(p, prepare(d, op)), op);
  return out;
}

Tensor binary(const char* op, BinaryOp kind, const Tensor& a, const Tensor& b, const Shape& shape) {
  const Device d = a.device();
  Tensor out = Tensor::empty(shape, DType::f32, d);
  kc::BinaryParams p;
  p.op = kind;
  p.a = f32_ptr(a);
  p.b = f32_ptr(b);
  p.out = out.mutable_data<float>();
  copy_shape(shape, &p.ndim, p.shape);
  strides_over(a, shape, p.a_stride);
  strides_over(b, shape, p.b_stride);
  require_implementable(kc::can_implement(p), op, d);
  check_launch(kc::launch_binary(p, prepare(d, op)), op);
  return out;
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b, const Shape& shape) {
  const char* op = "where";
  const Device d = a.device();
  Tensor out = Tensor::empty(shape, DType::f32, d);
  kc::WhereParams p;
  p.cond = cond.raw_data();
  p.cond_is_byte = cond.dtype() == DType::boolean;
  p.a = f32_ptr(a);
  p.b = f32_ptr(b);
  p.out = out.mutable_data<float>();
  copy_shape(shape, &p.ndim, p.shape);
  strides_over(cond, shape, p.cond_stride);
  strides_over(a, shape, p.a_stride);
  strides_over(b, shape, p.b_stride);
  require_implementable(kc::can_implement(p), op, d);
  check_launch(kc::launch_where(p, prepare(d, op)), op);
  return out;
}

Tensor softmax_last_dim(const Tensor& x_in) {
  const char* op = "softmax";
  const Device d = x_in.device();
  const Tensor x = x_in.contiguous();
  Tensor out = Tensor::empty(x.shape(), DType::f32, d);
  kc::SoftmaxParams p;
  p.cols = x.ndim() ? x.size(-1) : 1;
  p.rows = p.cols ? x.numel() / p.cols : 0;
  p.x = f32_ptr(x);
  p.y = out.mutable_data<float>();
  require_implementable(kc::can_implement(p), op, d);
  check_launch(kc::launch_softmax_last_dim(p, prepare(d, op)), op);
  return out;
}

namespace {
Tensor row_norm(const char* op, const Tensor& x_in, const Tensor& weight, const Tensor& bias,
                float eps, bool rms) {
  const Device d = x_in.device();
  const Tensor x = x_in.contiguous();
  Tensor out = Tensor::empty(x.shape(), DType::f32, d);
  kc::RowNormParams p;
  p.cols = x.size(-1);
  p.rows = p.cols ? x.numel() / p.cols : 0;
  p.x = f32_ptr(x);
  p.w = f32_ptr_or_null(weight);
  p.b = f32_ptr_or_null(bias);
  p.y = out.mutable_data<float>();
  p.eps = eps;
  p.rms = rms;
  require_implementable(kc::can_implement(p), op, d);
  check_launch(kc::launch_row_norm(p, prepare(d, op)), op);
  return out;
}
}  // namespace

Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps) {
  return row_norm("layer_norm", x, weight, bias, eps, false);
}

Tensor rms_norm(const Tensor& x, const Tensor& weight, float eps) {
  return row_norm("rms_norm", x, weight, Tensor(), eps, true);
}

Tensor group_norm(const Tensor& x_in, int groups, const Tensor& weight, const Tensor& bias,
                  float eps) {
  const char* op = "group_norm";
  const Device d = x_in.device();
  const Tensor x = x_in.contiguous();
  Tensor out = Tensor::empty(x.shape(), DType::f32, d);
  kc::GroupNormParams p;
  p.n = x.size(0);
  p.c = x.size(1);
  p.s = p.n * p.c > 0 ? x.numel() / (p.n * p.c) : 0;
  p.groups = groups;
  p.x = f32_ptr(x);
  p.w = f32_ptr_or_null(weight);
  p.b = f32_ptr_or_null(bias);
  p.y = out.mutable_data<float>();
  p.eps = eps;
  require_implementable(kc::can_implement(p), op, d);
  check_launch(kc::launch_group_norm(p, prepare(d, op)), op);
  return out;
}

}  // namespace kiln::cuda_ops
