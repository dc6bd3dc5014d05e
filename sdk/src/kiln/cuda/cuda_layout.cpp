// The CUDA paths of pad, interpolate, concat, embedding, apply_rope and the reductions: tensors
// -> params of kernels/cuda/{resample,embedding,rope,reduce}.hpp, can_implement, launch on the
// op stream.
// See cuda_ops.hpp.
#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>

#include "cuda/embedding.hpp"
#include "cuda/reduce.hpp"
#include "cuda/rope.hpp"
#include "cuda/resample.hpp"
#include "kiln/cuda/cuda_ops.hpp"
#include "kiln/cuda/cuda_glue.hpp"

namespace kiln::cuda_ops {

namespace kc = kernels::cuda;

namespace {

using namespace glue;

kc::PadKind pad_kind(ops::PadMode m) {
  switch (m) {
    case ops::PadMode::zeros: return kc::PadKind::constant;
    case ops::PadMode::reflect: return kc::PadKind::reflect;
    case ops::PadMode::replicate: return kc::PadKind::replicate;
    case ops::PadMode::circular: return kc::PadKind::circular;
  }
  return kc::PadKind::constant;
}

}  // namespace

Tensor pad(const Tensor& x, std::span<const int64_t> lo, std::span<const int64_t> hi,
           ops::PadMode mode, float value) {
  const char* op = "pad";
  const Device d = x.device();
  kc::PadParams p;
  p.type = elem_type(x.dtype(), op, d);
  p.mode = pad_kind(mode);
  p.value = value;
  p.ndim = x.ndim();
  Shape out_shape = x.shape();
  for (int i = 0; i < x.ndim(); ++i) {
    p.in_shape[i] = x.size(i);
    p.x_stride[i] = x.stride(i);
    p.lo[i] = lo[i];
    p.hi[i] = hi[i];
    out_shape[i] += lo[i] + hi[i];
  }
  Tensor out = Tensor::empty(out_shape, x.dtype(), d);
  if (out.numel() == 0) return out;
  p.x = x.numel() > 0 ? x.raw_data() : nullptr;
  p.y = out.mutable_raw_data();
  if (!p.x) p.x = p.y;  // an empty x padded with the constant: never read
  require_implementable(kc::can_implement(p), op, d);
  check_launch(kc::launch_pad(p, prepare(d, op)), op);
  return out;
}

Tensor interpolate(const Tensor& x_in, std::span<const int64_t> out_size, ops::InterpMode mode,
                   bool align_corners) {
  const char* op = "interpolate";
  const Device d = x_in.device();
  kc::InterpParams p;
  p.type = elem_type(x_in.dtype(), op, d);
  p.mode = mode == ops::InterpMode::nearest         ? kc::InterpKind::nearest
           : mode == ops::InterpMode::nearest_exact ? kc::InterpKind::nearest_exact
                                                    : kc::InterpKind::bilinear;
  p.align_corners = align_corners;
  const int sp = x_in.ndim() - 2;
  Shape out_shape{x_in.size(0), x_in.size(1)};
  for (int i = 0; i < sp; ++i) {
    p.in[3 - sp + i] = x_in.size(2 + i);
    p.out[3 - sp + i] = out_size[i];
    out_shape.push_back(out_size[i]);
  }
  p.planes = x_in.size(0) * x_in.size(1);
  Tensor out = Tensor::empty(out_shape, x_in.dtype(), d);
  if (out.numel() == 0) return out;
  const Tensor x = x_in.contiguous();
  p.x = x.raw_data();
  p.y = out.mutable_raw_data();
  require_implementable(kc::can_implement(p), op, d);
  check_launch(kc::launch_interpolate(p, prepare(d, op)), op);
  return out;
}

Tensor concat(std::span<const Tensor> xs, int dim, const Shape& out_shape) {
  const char* op = "concat";
  const Device d = xs[0].device();
  const DType dt = xs[0].dtype();
  const bool float_type = dt == DType::f32 || dt == DType::f16 || dt == DType::bf16;
  for (size_t i = 0; i < xs.size(); ++i)
    if (!float_type && !xs[i].is_contiguous())
      fail(Status::unsupported,
           str("no ", d.str(), " kernel for this case: tensor ", i, " is a non-contiguous ",
               dtype_name(dt), " view (strided copies take f32, f16 and bf16)"),
           op);
  Tensor out = Tensor::empty(out_shape, dt, d);
  if (out.numel() == 0) return out;
  cudaStream_t stream = prepare(d, op);
  // Contiguous inputs: one 2-D copy each, `outer` rows of size(dim) * inner elements into rows
  // of out_shape[dim] * inner. Views (f32/f16/bf16): the strided cast kernel into the slice.
  int64_t outer = 1, inner = 1;
  for (int k = 0; k < dim; ++k) outer *= out_shape[k];
  for (int k = dim + 1; k < out_shape.size(); ++k) inner *= out_shape[k];
  const size_t es = static_cast<size_t>(dtype_nbytes(dt, 1));
  char* base = static_cast<char*>(out.mutable_raw_data());
  int64_t at = 0;
  for (const Tensor& t : xs) {
    const int64_t len = t.size(dim);
    if (len == 0) continue;
    if (t.is_contiguous()) {
      const size_t width = static_cast<size_t>(len * inner) * es;
      const size_t dpitch = static_cast<size_t>(out_shape[dim] * inner) * es;
      check_launch(cudaMemcpy2DAsync(base + static_cast<size_t>(at * inner) * es, dpitch,
                                     t.raw_data(), width, width, static_cast<size_t>(outer),
                                     cudaMemcpyDeviceToDevice, stream),
                   op);
    } else {
      Tensor dst = out.narrow(dim, at, len);
      dst.copy_from(t);  // Tensor::copy_from -> copy_cast on op_stream
    }
    at += len;
  }
  return out;
}

Tensor apply_rope(const Tensor& x_in, const Tensor& cos, const Tensor& sin, bool interleaved,
                  int seq_dim) {
  const char* op = "apply_rope";
  const Device d = x_in.device();
  const Tensor x = x_in.contiguous();
  const Tensor tc = cos.contiguous(), ts = sin.contiguous();
  Tensor out = Tensor::empty(x.shape(), DType::f32, d);
  kc::RopeParams p;
  p.head_dim = x.size(3);
  p.rows = p.head_dim > 0 ? x.numel() / p.head_dim : 0;
  p.seq_len = x.size(seq_dim);
  p.inner = seq_dim == 1 ? x.size(2) : 1;
  p.interleaved = interleaved;
  if (x.numel() == 0) return out;
  p.x = x.data<float>();
  p.cos = tc.data<float>();
  p.sin = ts.data<float>();
  p.out = out.mutable_data<float>();
  require_implementable(kc::can_implement(p), op, d);
  cudaStream_t stream = prepare(d, op);
  check_launch(kc::launch_rope(p, stream), op);
  return out;
}

Tensor embedding(const Tensor& weight, const Tensor& ids) {
  const char* op = "embedding";
  const Device d = weight.device();
  kc::EmbeddingParams p;
  p.table_type = elem_type(weight.dtype(), op, d);
  p.vocab = weight.size(0), p.dim = weight.size(1);
  p.table_row_stride = weight.stride(0), p.table_col_stride = weight.stride(1);
  p.ids_i64 = ids.dtype() == DType::i64;
  p.ids_ndim = ids.ndim();
  for (int i = 0; i < ids.ndim(); ++i) p.ids_shape[i] = ids.size(i), p.ids_stride[i] = ids.stride(i);
  Shape out_shape = ids.shape();
  out_shape.push_back(p.dim);
  Tensor out = Tensor::empty(out_shape, DType::f32, d);
  if (ids.numel() == 0) return out;
  p.table = weight.numel() > 0 ? weight.raw_data() : nullptr;
  p.ids = ids.raw_data();
  p.out = out.numel() > 0 ? out.mutable_data<float>() : nullptr;  // dim 0: nothing written
  Tensor flag = Tensor::empty({1}, DType::i64, d);
  p.first_bad = static_cast<unsigned long long*>(flag.mutable_raw_data());
  require_implementable(kc::can_implement(p), op, d);
  cudaStream_t stream = prepare(d, op);
  check_launch(kc::launch_embedding(p, stream), op);
  // The CPU op's error for the first id outside the table: read the flag (this waits for the
  // kernel), then the offending id itself.
  unsigned long long bad = 0;
  check_launch(cudaMemcpyAsync(&bad, p.first_bad, sizeof bad, cudaMemcpyDeviceToHost, stream), op);
  check_launch(cudaStreamSynchronize(stream), op);
  if (bad != ~0ull) {
    const int64_t i = static_cast<int64_t>(bad);
    int64_t rem = i, off = 0;  // element offset of flat index i through ids' strides
    for (int k = ids.ndim() - 1; k >= 0; --k) {
      off += (rem % ids.size(k)) * ids.stride(k);
      rem /= ids.size(k);
    }
    int64_t id = 0;
    const char* src = static_cast<const char*>(ids.raw_data()) + off * (p.ids_i64 ? 8 : 4);
    if (p.ids_i64) {
      check_launch(cudaMemcpy(&id, src, 8, cudaMemcpyDeviceToHost), op);
    } else {
      int32_t v = 0;
      check_launch(cudaMemcpy(&v, src, 4, cudaMemcpyDeviceToHost), op);
      id = v;
    }
    KILN_ARG(false, op, "id ", id, " at flat index ", i, " outside the vocabulary [0, ", p.vocab,
             ") of the embedding table");
  }
  return out;
}

Tensor reduce(const char* op, Reduction kind, const Tensor& x, std::span<const bool> reduced) {
  const Device d = x.device();
  kc::ReduceParams p;
  p.kind = kind == Reduction::sum    ? kc::ReduceKind::sum
           : kind == Reduction::mean ? kc::ReduceKind::mean
           : kind == Reduction::max  ? kc::ReduceKind::max
                                     : kc::ReduceKind::min;
  p.type = elem_type(x.dtype(), op, d);
  Shape out_shape;
  for (int i = 0; i < x.ndim(); ++i) {
    if (reduced[i]) {
      p.inner_shape[p.inner_ndim] = x.size(i);
      p.inner_stride[p.inner_ndim++] = x.stride(i);
    } else {
      p.outer_shape[p.outer_ndim] = x.size(i);
      p.outer_stride[p.outer_ndim++] = x.stride(i);
      out_shape.push_back(x.size(i));
    }
  }
  Tensor out = Tensor::empty(out_shape, DType::f32, d);
  if (out.numel() == 0) return out;
  p.x = x.numel() > 0 ? x.raw_data() : nullptr;
  p.out = out.mutable_data<float>();
  require_implementable(kc::can_implement(p), op, d);
  check_launch(kc::launch_reduce(p, prepare(d, op)), op);
  return out;
}

}  // namespace kiln::cuda_ops
