// CUDA op dispatch: tensors -> kernel params (kernels/cuda), can_implement, launch on the op
// stream. See cuda_ops.hpp.
#include "kiln/cuda/cuda_ops.hpp"

#include <cuda_runtime_api.h>

#include <map>
#include <mutex>
#include <string>

#include "cuda/cast.hpp"
#include "cuda/elementwise.hpp"
#include "cuda/gemm_cublaslt.hpp"
#include "cuda/norm.hpp"
#include "cuda/softmax.hpp"
#include "kiln/cuda/cuda_glue.hpp"

namespace kiln::cuda_ops {

namespace kc = kernels::cuda;

namespace {

using namespace glue;

static_assert(kc::kMaxDims == kMaxDims);

// t's element strides over `shape` (0 where t is broadcast).
void strides_over(const Tensor& t, const Shape& shape, int64_t* out) {
  const Tensor e = t.shape() == shape ? t : t.expand(shape);
  for (int d = 0; d < shape.size(); ++d) out[d] = e.stride(d);
}

void copy_shape(const Shape& s, int* ndim, int64_t* shape) {
  *ndim = s.size();
  for (int d = 0; d < s.size(); ++d) shape[d] = s[d];
}

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
  kc::UnaryParams p;
  p.type = elem_type(x.dtype(), op, d);
  Tensor out = Tensor::empty(x.shape(), x.dtype(), d);
  p.op = kind;
  p.a = a;
  p.b = b;
  p.x = x.raw_data();
  p.out = out.mutable_raw_data();
  copy_shape(x.shape(), &p.ndim, p.shape);
  strides_over(x, x.shape(), p.x_stride);
  require_implementable(kc::can_implement(p), op, d);
  check_launch(kc::launch_unary(p, prepare(d, op)), op);
  return out;
}

Tensor binary(const char* op, BinaryOp kind, const Tensor& a, const Tensor& b, const Shape& shape) {
  const Device d = a.device();
  kc::BinaryParams p;
  p.a_type = elem_type(a.dtype(), op, d);
  p.b_type = elem_type(b.dtype(), op, d);
  Tensor out = Tensor::empty(shape, a.dtype(), d);
  p.op = kind;
  p.a = a.raw_data();
  p.b = b.raw_data();
  p.out = out.mutable_raw_data();
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
  kc::WhereParams p;
  p.cond_is_byte = cond.dtype() == DType::boolean;
  if (!p.cond_is_byte) p.cond_type = elem_type(cond.dtype(), op, d);
  p.a_type = elem_type(a.dtype(), op, d);
  p.b_type = elem_type(b.dtype(), op, d);
  Tensor out = Tensor::empty(shape, a.dtype(), d);
  p.cond = cond.raw_data();
  p.a = a.raw_data();
  p.b = b.raw_data();
  p.out = out.mutable_raw_data();
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
  Tensor out = Tensor::empty(x.shape(), x.dtype(), d);
  kc::SoftmaxParams p;
  p.cols = x.ndim() ? x.size(-1) : 1;
  p.rows = p.cols ? x.numel() / p.cols : 0;
  p.type = elem_type(x.dtype(), op, d);
  p.x = x.raw_data();
  p.y = out.mutable_raw_data();
  require_implementable(kc::can_implement(p), op, d);
  check_launch(kc::launch_softmax_last_dim(p, prepare(d, op)), op);
  return out;
}

namespace {
// The norms' affine parameters (contiguous, validated by ops/norm.cpp): all of one dtype, f32
// when there are none.
kc::ElemType norm_param_type(const Tensor& w, const Tensor& b, const char* op, Device d) {
  if (w.defined() && b.defined() && w.dtype() != b.dtype())
    throw Error(Status::invalid_argument, str("[", op, "] weight is ", dtype_name(w.dtype()),
                                              " but bias is ", dtype_name(b.dtype())));
  const Tensor& t = w.defined() ? w : b;
  return t.defined() ? elem_type(t.dtype(), op, d) : kc::ElemType::f32;
}

// The operands shared by RowNormParams and GroupNormParams: x, y (x's dtype), weight, bias.
template <typename P>
void bind_norm_operands(P& p, const Tensor& x, const Tensor& w, const Tensor& b, Tensor& out,
                        const char* op, Device d) {
  p.type = elem_type(x.dtype(), op, d);
  p.param_type = norm_param_type(w, b, op, d);
  p.x = x.raw_data();
  p.w = w.defined() ? w.raw_data() : nullptr;
  p.b = b.defined() ? b.raw_data() : nullptr;
  p.y = out.mutable_raw_data();
}

Tensor row_norm(const char* op, const Tensor& x_in, const Tensor& weight, const Tensor& bias,
                float eps, bool rms) {
  const Device d = x_in.device();
  const Tensor x = x_in.contiguous();
  Tensor out = Tensor::empty(x.shape(), x.dtype(), d);
  kc::RowNormParams p;
  p.cols = x.size(-1);
  p.rows = p.cols ? x.numel() / p.cols : 0;
  bind_norm_operands(p, x, weight, bias, out, op, d);
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
  Tensor out = Tensor::empty(x.shape(), x.dtype(), d);
  kc::GroupNormParams p;
  p.n = x.size(0);
  p.c = x.size(1);
  p.s = p.n * p.c > 0 ? x.numel() / (p.n * p.c) : 0;
  p.groups = groups;
  bind_norm_operands(p, x, weight, bias, out, op, d);
  p.eps = eps;
  require_implementable(kc::can_implement(p), op, d);
  check_launch(kc::launch_group_norm(p, prepare(d, op)), op);
  return out;
}

namespace {

// cuBLASLt's workspace: 32 MiB per device, NVIDIA's recommendation for Hopper (cuBLAS docs,
// cublasSetWorkspace: 32 MiB on sm_90, 4 MiB before), allocated once from the backend and kept
// for the process. One per device suffices while all of a device's GEMMs are queued on
// op_stream() (see gemm_cublaslt.hpp).
constexpr size_t kGemmWorkspaceBytes = size_t{32} << 20;

void* gemm_workspace(Device d) {
  static std::mutex mu;
  static std::map<int, void*> workspaces;
  std::lock_guard lock(mu);
  void*& w = workspaces[d.index];
  if (!w) w = backend_for(d).allocate(d.index, kGemmWorkspaceBytes);
  return w;
}

// A view whose last two dims cuBLASLt reads in place; otherwise a contiguous copy.
struct GemmInput {
  Tensor t;
  kc::GemmOperand view;
};
GemmInput gemm_input(const Tensor& t) {
  kc::GemmOperand v = kc::gemm_operand(t.size(-2), t.size(-1), t.stride(-2), t.stride(-1));
  if (v.ok) return {t, v};
  Tensor c = t.contiguous();
  return {c, kc::gemm_operand(c.size(-2), c.size(-1), c.stride(-2), c.stride(-1))};
}

// cuBLAS status -> kiln error: "[matmul] a (2, 33, 77) @ b (77, 7) on cuda:0: cublasLtMatmul
// failed: CUBLAS_STATUS_... (...) for f32 gemm M=33 ...".
void check_gemm(const kc::GemmStatus& st, const kc::GemmParams& p, const char* op,
                const std::string& what) {
  if (st.ok()) return;
  cudaGetLastError();  // a failed launch inside cuBLASLt must not be reported by the next op
  const Status s = st.status == CUBLAS_STATUS_ALLOC_FAILED    ? Status::out_of_memory
                   : st.status == CUBLAS_STATUS_NOT_SUPPORTED ? Status::unsupported
                                                              : Status::device_error;
  fail(s, str(what, ": ", kc::gemm_error_message(p, st)), op);
}

const char* byte_ptr(const Tensor& t) {
  return static_cast<const char*>(t.raw_data());
}

}  // namespace

Tensor matmul(const Tensor& a_in, const Tensor& b_in, const Shape& batch) {
  const char* op = "matmul";
  const Device d = a_in.device();
  const std::string what =
      str("a ", a_in.shape().str(), " @ b ", b_in.shape().str(), " on ", d.str());
  kc::GemmParams p;
  p.type = elem_type(a_in.dtype(), op, d);
  const GemmInput a = gemm_input(a_in), b = gemm_input(b_in);
  p.m = a.t.size(-2), p.k = a.t.size(-1), p.n = b.t.size(-1);
  Shape ea = batch, eb = batch, out_shape = batch;
  ea.push_back(p.m), ea.push_back(p.k);
  eb.push_back(p.k), eb.push_back(p.n);
  out_shape.push_back(p.m), out_shape.push_back(p.n);
  const Tensor ae = a.t.expand(ea), be = b.t.expand(eb);
  Tensor out = Tensor::empty(out_shape, a_in.dtype(), d);
  if (out.numel() == 0) return out;
  cudaStream_t stream = prepare(d, op);
  if (p.k == 0) {  // empty sums: zeros (all-zero bits in every float type)
    check_launch(cudaMemsetAsync(out.mutable_raw_data(), 0, out.nbytes(), stream), op);
    return out;
  }
  // Batch dims coalesced over a, b and out (contiguous, so it decides which merge): the last
  // one left is cuBLASLt's strided batch, the ones before it a loop here. One call unless a
  // broadcast interrupts the batch, e.g. (2, 1, M, K) @ (1, 3, K, N) is 2 calls of batch 3.
  int nb = batch.size();
  int64_t bshape[kMaxDims], sa[kMaxDims], sb[kMaxDims], so[kMaxDims];
  for (int i = 0; i < nb; ++i) {
    bshape[i] = batch[i];
    sa[i] = ae.stride(i), sb[i] = be.stride(i), so[i] = out.stride(i);
  }
  int64_t* strides[3] = {sa, sb, so};
  kc::coalesce_dims(&nb, bshape, strides, 3);
  p.trans_a = a.view.trans, p.lda = a.view.ld;
  p.trans_b = b.view.trans, p.ldb = b.view.ld;
  p.ldd = p.n;
  if (nb > 0) {
    p.batch = bshape[nb - 1];
    p.stride_a = sa[nb - 1], p.stride_b = sb[nb - 1], p.stride_d = so[nb - 1];
  }
  p.workspace = gemm_workspace(d);
  p.workspace_bytes = kGemmWorkspaceBytes;
  const int64_t es = dtype_nbytes(a_in.dtype(), 1);
  const char* pa = byte_ptr(ae);
  const char* pb = byte_ptr(be);
  char* po = static_cast<char*>(out.mutable_raw_data());
  p.a = pa, p.b = pb, p.d = po;
  require_implementable(kc::can_implement(p), op, d);
  int64_t outer = 1;
  for (int i = 0; i + 1 < nb; ++i) outer *= bshape[i];
  for (int64_t i = 0; i < outer; ++i) {
    int64_t oa = 0, ob = 0, oo = 0;
    for (int64_t r = i, dim = nb - 2; dim >= 0; --dim) {
      const int64_t j = r % bshape[dim];
      r /= bshape[dim];
      oa += j * sa[dim], ob += j * sb[dim], oo += j * so[dim];
    }
    p.a = pa + oa * es, p.b = pb + ob * es, p.d = po + oo * es;
    check_gemm(kc::launch_gemm_cublaslt(p, stream), p, op, what);
  }
  return out;
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  const char* op = "linear";
  const Device d = x.device();
  const std::string what = str("x ", x.shape().str(), ", weight ", weight.shape().str(), " (",
                               dtype_name(weight.dtype()), ") on ", d.str());
  kc::GemmParams p;
  p.type = elem_type(x.dtype(), op, d);
  elem_type(weight.dtype(), op, d);  // fp8 weights: unsupported here (no fp8 GEMM yet)
  const GemmInput xi = gemm_input(x);
  const GemmInput wi = gemm_input(weight.to(x.dtype()));
  // The bias is rounded to x's dtype (the op's contract) and fused as cuBLASLt's bias epilogue.
  // bf16 with a bias: D and the bias in f32, then one cast to bf16, since cuBLASLt's bf16 bias
  // epilogue rounds early (kernels/cuda/gemm_cublaslt.hpp, GemmParams::d_f32).
  const bool f32_out = bias.defined() && x.dtype() == DType::bf16;
  const Tensor b = !bias.defined() ? Tensor()
                   : f32_out       ? bias.to(x.dtype()).to(DType::f32).contiguous()
                                   : bias.to(x.dtype()).contiguous();
  p.m = x.size(0), p.k = x.size(1), p.n = weight.size(0);
  Tensor out = Tensor::empty({p.m, p.n}, f32_out ? DType::f32 : x.dtype(), d);
  if (out.numel() == 0) return out.to(x.dtype());
  // out = x @ W^T: W (out, in) row-major is op(B) with its transpose flag toggled.
  p.trans_a = xi.view.trans, p.lda = xi.view.ld, p.a = xi.t.raw_data();
  p.trans_b = !wi.view.trans, p.ldb = wi.view.ld, p.b = wi.t.raw_data();
  p.d = out.mutable_raw_data(), p.ldd = p.n;
  p.d_f32 = f32_out;
  p.bias = b.defined() ? b.raw_data() : nullptr;
  p.workspace = gemm_workspace(d);
  p.workspace_bytes = kGemmWorkspaceBytes;
  require_implementable(kc::can_implement(p), op, d);
  check_gemm(kc::launch_gemm_cublaslt(p, prepare(d, op)), p, op, what);
  return f32_out ? out.to(DType::bf16) : out;  // the cast kernel: round to nearest even, once
}

}  // namespace kiln::cuda_ops
