// concat / split / chunk. Split and chunk return views (no copy), as torch does. CUDA tensors
// (concat, embedding) go to kiln/cuda/cuda_layout.cpp after the same validation.
#include <cstring>
#include <vector>

#include "kiln/cuda/cuda_ops.hpp"
#include "kiln/ops/ops.hpp"

namespace kiln::ops {

Tensor concat(std::span<const Tensor> xs, int dim) {
  KILN_ARG(!xs.empty(), "concat", "no tensors given");
  const Tensor& first = xs[0];
  KILN_ARG(first.defined(), "concat", "tensor 0 is undefined");
  const int nd = first.ndim();
  KILN_ARG(nd > 0, "concat", "0-d tensors cannot be concatenated");
  const int d = normalize_dim(dim, nd, "concat");
  int64_t total = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const Tensor& t = xs[i];
    KILN_ARG(t.defined(), "concat", "tensor ", i, " is undefined");
    common_device("concat", {&first, &t});
    KILN_ARG(t.dtype() == first.dtype(), "concat", "tensor ", i, " is ", dtype_name(t.dtype()),
             ", tensor 0 is ", dtype_name(first.dtype()));
    KILN_ARG(t.ndim() == nd, "concat", "tensor ", i, " has rank ", t.ndim(), ", tensor 0 has ", nd);
    for (int k = 0; k < nd; ++k) {
      KILN_ARG(k == d || t.size(k) == first.size(k), "concat", "tensor ", i, " ",
               t.shape().str(), " differs from tensor 0 ", first.shape().str(), " in dim ", k);
    }
    total += t.size(d);
  }
  Shape out_shape = first.shape();
  out_shape[d] = total;
  if (first.device().is_cuda()) return cuda_ops::concat(xs, d, out_shape);
  Tensor out = Tensor::empty(out_shape, first.dtype());
  int64_t at = 0;
  for (const Tensor& t : xs) {
    if (t.size(d) == 0) continue;
    Tensor dst = out.narrow(d, at, t.size(d));
    dst.copy_from(t);
    at += t.size(d);
  }
  return out;
}

std::vector<Tensor> split(const Tensor& x, std::span<const int64_t> sizes, int dim) {
  KILN_ARG(x.defined(), "split", "undefined tensor");
  const int d = normalize_dim(dim, x.ndim(), "split");
  int64_t total = 0;
  for (int64_t s : sizes) {
    KILN_ARG(s >= 0, "split", "negative split size ", s);
    total += s;
  }
  KILN_ARG(total == x.size(d), "split", "sizes sum to ", total, " but dim ", d, " has size ",
           x.size(d));
  std::vector<Tensor> out;
  int64_t at = 0;
  for (int64_t s : sizes) {
    out.push_back(x.narrow(d, at, s));
    at += s;
  }
  return out;
}

std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int dim) {
  KILN_ARG(x.defined(), "chunk", "undefined tensor");
  KILN_ARG(chunks > 0, "chunk", "chunks must be positive, got ", chunks);
  const int d = normalize_dim(dim, x.ndim(), "chunk");
  // torch.chunk: every chunk has ceil(n / chunks) elements except the last; may return fewer.
  const int64_t n = x.size(d);
  const int64_t each = n / chunks + (n % chunks != 0);  // ceil; n + chunks - 1 may overflow
  std::vector<Tensor> out;
  if (n == 0) {
    for (int64_t i = 0; i < chunks; ++i) out.push_back(x.narrow(d, 0, 0));
    return out;
  }
  for (int64_t at = 0; at < n; at += each) out.push_back(x.narrow(d, at, std::min(each, n - at)));
  return out;
}

Tensor embedding(const Tensor& weight, const Tensor& ids) {
  const Device dev = common_device("embedding", {&weight, &ids});
  KILN_ARG(weight.defined() && weight.ndim() == 2 && dtype_info(weight.dtype()).is_float,
           "embedding", "weight must be a 2-D float (vocab, dim) table, got ",
           weight.defined() ? weight.str() : std::string("undefined"));
  KILN_ARG(ids.defined() && (ids.dtype() == DType::i64 || ids.dtype() == DType::i32), "embedding",
           "ids must be i32 or i64, got ", ids.defined() ? ids.str() : std::string("undefined"));
  if (dev.is_cuda()) return cuda_ops::embedding(weight, ids);
  const Tensor table = weight.to(DType::f32).contiguous();
  const Tensor idc = ids.contiguous();
  const int64_t V = table.size(0), D = table.size(1), n = idc.numel();
  Shape out_shape = ids.shape();
  out_shape.push_back(D);
  Tensor out = Tensor::empty(out_shape, DType::f32);
  const float* tok = table.data<float>();
  float* o = out.mutable_data<float>();
  const bool i64 = idc.dtype() == DType::i64;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t id = i64 ? idc.data<int64_t>()[i] : idc.data<int32_t>()[i];
    KILN_ARG(id >= 0 && id < V, "embedding", "id ", id, " at flat index ", i,
             " outside the vocabulary [0, ", V, ") of the embedding table");
    std::memcpy(o + i * D, tok + id * D, sizeof(float) * static_cast<size_t>(D));
  }
  return out;
}

}  // namespace kiln::ops
