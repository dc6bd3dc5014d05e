// matmul and linear on the CPU: batch dims broadcast, transposed views consumed through the
// GEMM's trans flags, low-precision weights widened to f32 once per call. CUDA tensors go to
// cuBLASLt (kernels/cuda/gemm_cublaslt.cpp, through kiln/cuda/cuda_ops.hpp) after the same
// validation; there f16/bf16 activations are accepted too.
#include <vector>

#include "kiln/core/copy.hpp"
#include "kiln/core/parallel.hpp"
#include "kiln/cuda/cuda_ops.hpp"
#include "kiln/ops/gemm.hpp"
#include "kiln/ops/ops.hpp"

namespace kiln::ops {

namespace {

// How a 2-D (last two dims) view can be fed to the GEMM without a copy.
struct MatView {
  bool trans = false;
  int64_t ld = 0;
  bool ok = false;
};
MatView as_gemm_operand(const Tensor& t) {
  int64_t rows = t.size(-2), cols = t.size(-1);
  int64_t sr = t.stride(-2), sc = t.stride(-1);
  if (sc == 1 && (sr >= cols || rows == 1)) return {false, rows == 1 ? cols : sr, true};
  if (sr == 1 && (sc >= rows || cols == 1)) return {true, cols == 1 ? rows : sc, true};
  return {};
}

bool is_half(const Tensor& t) {
  return t.defined() && (t.dtype() == DType::f16 || t.dtype() == DType::bf16);
}

// Activations are f32; on CUDA they may also be f16 or bf16 (cuBLASLt, f32 accumulate), one
// dtype for all of an op's activation operands (`t`, checked against the first one, `first`).
// The CPU computes f32 activations only.
void require_activation_dtype(const char* op, Device dev, const char* arg, const Tensor& t,
                              const char* first_arg, const Tensor& first) {
  if (!dev.is_cuda() || !t.defined() || !(is_half(t) || is_half(first))) {
    require_f32(op, arg, t);
    return;
  }
  KILN_ARG(t.dtype() == first.dtype(), op, arg, " is ", dtype_name(t.dtype()), " but ", first_arg,
           " is ", dtype_name(first.dtype()), "; the operands must share one dtype");
}

Tensor matmul_cpu(Tensor a, Tensor b, const Shape& batch);

}  // namespace

Tensor matmul(const Tensor& a_in, const Tensor& b_in) {
  const Device dev = common_device("matmul", {&a_in, &b_in});
  require_activation_dtype("matmul", dev, "a", a_in, "a", a_in);
  require_activation_dtype("matmul", dev, "b", b_in, "a", a_in);
  KILN_ARG(a_in.ndim() >= 1 && b_in.ndim() >= 1, "matmul", "0-d operands are not supported");
  // Vectors follow torch: a (K) -> (1, K) and b (K) -> (K, 1), the added dim removed after.
  Tensor a = a_in.ndim() == 1 ? a_in.unsqueeze(0) : a_in;
  Tensor b = b_in.ndim() == 1 ? b_in.unsqueeze(1) : b_in;
  const int64_t K = a.size(-1);
  KILN_ARG(b.size(-2) == K, "matmul", "inner dims differ: a ", a_in.shape().str(), " @ b ",
           b_in.shape().str());
  Shape ab, bb;
  for (int i = 0; i < a.ndim() - 2; ++i) ab.push_back(a.size(i));
  for (int i = 0; i < b.ndim() - 2; ++i) bb.push_back(b.size(i));
  Shape batch = broadcast_shapes(ab, bb, "matmul");
  const Tensor out = dev.is_cuda() ? cuda_ops::matmul(a, b, batch) : matmul_cpu(a, b, batch);
  if (a_in.ndim() == 1 && b_in.ndim() == 1) return out.reshape({});
  if (a_in.ndim() == 1) return out.squeeze(-2);
  if (b_in.ndim() == 1) return out.squeeze(-1);
  return out;
}

namespace {

// a (..., M, K) @ b (..., K, N), validated, batch dims broadcast to `batch`.
Tensor matmul_cpu(Tensor a, Tensor b, const Shape& batch) {
  const int64_t M = a.size(-2), K = a.size(-1), N = b.size(-1);
  Shape ea = batch, eb = batch, out_shape = batch;
  ea.push_back(M); ea.push_back(K);
  eb.push_back(K); eb.push_back(N);
  out_shape.push_back(M); out_shape.push_back(N);
  a = a.expand(ea);
  b = b.expand(eb);
  MatView va = as_gemm_operand(a), vb = as_gemm_operand(b);
  if (!va.ok) { a = a.contiguous(); va = as_gemm_operand(a); }
  if (!vb.ok) { b = b.contiguous(); vb = as_gemm_operand(b); }
  Tensor out = Tensor::empty(out_shape, DType::f32);
  const int64_t nbatch = shape_numel(batch);
  const float* pa = a.data<float>();
  const float* pb = b.data<float>();
  float* pc = out.mutable_data<float>();
  // Element offset of batch index i in a strided (possibly broadcast) operand.
  auto batch_offset = [&](const Tensor& t, int64_t i) {
    int64_t off = 0;
    for (int d = batch.size() - 1; d >= 0; --d) {
      off += (i % batch[d]) * t.stride(d);
      i /= batch[d];
    }
    return off;
  };
  auto one = [&](int64_t i) {
    gemm_f32(va.trans, vb.trans, M, N, K, 1.f, pa + batch_offset(a, i), va.ld,
             pb + batch_offset(b, i), vb.ld, 0.f, pc + i * M * N, N);
  };
  // Many small GEMMs: one per thread-chunk; few big ones: each uses every thread.
  if (nbatch >= num_threads() && 2.0 * M * N * K < 64e6) {
    parallel_for(nbatch, 1, [&](int64_t s, int64_t e) {
      for (int64_t i = s; i < e; ++i) one(i);
    });
  } else {
    for (int64_t i = 0; i < nbatch; ++i) one(i);
  }
  return out;
}

}  // namespace

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  const Device dev = common_device("linear", {&x, &weight, &bias});
  require_activation_dtype("linear", dev, "x", x, "x", x);
  KILN_ARG(weight.defined() && weight.ndim() == 2, "linear", "weight must be 2-D (out, in), got ",
           weight.defined() ? weight.shape().str() : std::string("undefined"));
  KILN_ARG(dtype_info(weight.dtype()).is_float, "linear", "weight dtype ",
           dtype_name(weight.dtype()), " is not a float type");
  const int64_t out_f = weight.size(0), in_f = weight.size(1);
  KILN_ARG(x.ndim() >= 1 && x.size(-1) == in_f, "linear", "x ", x.shape().str(),
           " does not end in weight's in_features ", in_f);
  if (bias.defined()) {
    KILN_ARG(bias.ndim() == 1 && bias.size(0) == out_f, "linear", "bias ", bias.shape().str(),
             " does not match out_features ", out_f);
  }
  if (dev.is_cuda()) {
    Shape out_shape = x.shape();
    out_shape[out_shape.size() - 1] = out_f;
    return cuda_ops::linear(x.reshape({-1, in_f}), weight, bias).reshape(out_shape);
  }
  // Low-precision weights are widened once per call (the CPU computes in f32).
  Tensor w = weight.dtype() == DType::f32 ? weight : weight.to(DType::f32);
  Tensor x2 = x.reshape({-1, in_f});
  const int64_t rows = x2.size(0);
  MatView vw = as_gemm_operand(w);
  if (!vw.ok) { w = w.contiguous(); vw = as_gemm_operand(w); }
  MatView vx = as_gemm_operand(x2);
  if (!vx.ok) { x2 = x2.contiguous(); vx = as_gemm_operand(x2); }
  Shape out_shape = x.shape();
  out_shape[out_shape.size() - 1] = out_f;
  Tensor out = Tensor::empty(out_shape, DType::f32);
  float* po = out.mutable_data<float>();
  // out = x @ W^T: W (out, in) row-major is op(B) with trans toggled.
  gemm_f32(vx.trans, !vw.trans, rows, out_f, in_f, 1.f, x2.data<float>(), vx.ld, w.data<float>(),
           vw.ld, 0.f, po, out_f);
  if (bias.defined()) {
    Tensor bf = bias.to(DType::f32).contiguous();
    const float* pb = bf.data<float>();
    parallel_for(rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(out_f, 1)),
                 [&](int64_t s, int64_t e) {
                   for (int64_t r = s; r < e; ++r)
                     for (int64_t j = 0; j < out_f; ++j) po[r * out_f + j] += pb[j];
                 });
  }
  return out;
}

}  // namespace kiln::ops
