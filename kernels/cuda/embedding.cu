// One thread per output element (row i, column j), grid-stride; consecutive threads write
// consecutive columns of a row, so table rows are read and output rows written coalesced. The
// id is re-read by every thread of its row (an L1 hit after the first).
#include "cuda/device_common.cuh"
#include "cuda/embedding.hpp"

namespace kiln::kernels::cuda {

namespace {

using detail::Elem;

constexpr int kThreads = 256;

struct IdArgs {
  detail::Dims dims;
  int64_t stride[kMaxDims];
};

template <ElemType E, typename Id>
__global__ void embedding_kernel(const typename Elem<E>::T* __restrict__ table,
                                 const Id* __restrict__ ids, float* __restrict__ out,
                                 unsigned long long* __restrict__ first_bad, int64_t n,
                                 int64_t vocab, int64_t dim, int64_t row_stride,
                                 int64_t col_stride, const IdArgs a) {
  const int64_t width = dim > 0 ? dim : 1;  // dim 0: one thread per id, for the check
  const int64_t total = n * width;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < total; k += step) {
    const int64_t i = k / width, j = k - i * width;
    const int64_t id = static_cast<int64_t>(ids[detail::strided_offset(i, a.dims, a.stride)]);
    if (id < 0 || id >= vocab) {
      if (j == 0) atomicMin(first_bad, static_cast<unsigned long long>(i));
      continue;
    }
    if (j < dim) out[k] = Elem<E>::load(table[id * row_stride + j * col_stride]);
  }
}

template <ElemType E>
cudaError_t launch_typed(const EmbeddingParams& p, int64_t n, const IdArgs& a, cudaStream_t stream) {
  using T = typename Elem<E>::T;
  const auto* table = static_cast<const T*>(p.table);
  const unsigned grid = detail::grid_for(n * (p.dim > 0 ? p.dim : 1), kThreads);
  if (p.ids_i64)
    embedding_kernel<E, int64_t><<<grid, kThreads, 0, stream>>>(
        table, static_cast<const int64_t*>(p.ids), p.out, p.first_bad, n, p.vocab, p.dim,
        p.table_row_stride, p.table_col_stride, a);
  else
    embedding_kernel<E, int32_t><<<grid, kThreads, 0, stream>>>(
        table, static_cast<const int32_t*>(p.ids), p.out, p.first_bad, n, p.vocab, p.dim,
        p.table_row_stride, p.table_col_stride, a);
  return cudaGetLastError();
}

}  // namespace

std::string can_implement(const EmbeddingParams& p) {
  if (p.ids_ndim < 0 || p.ids_ndim > kMaxDims)
    return "ids rank " + std::to_string(p.ids_ndim) + " is outside 0.." + std::to_string(kMaxDims);
  if (p.vocab < 0 || p.dim < 0) return "negative table size";
  for (int d = 0; d < p.ids_ndim; ++d)
    if (p.ids_shape[d] < 0) return "negative size in ids dim " + std::to_string(d);
  if (!p.first_bad) return "no device word for the out-of-range flag";
  if (!p.ids || (p.dim > 0 && !p.out) || (p.vocab > 0 && p.dim > 0 && !p.table))
    return "null pointer";
  return {};
}

cudaError_t launch_embedding(const EmbeddingParams& p, cudaStream_t stream) {
  cudaError_t e = cudaMemsetAsync(p.first_bad, 0xff, sizeof(unsigned long long), stream);
  if (e != cudaSuccess) return e;
  IdArgs a{};
  a.dims.ndim = p.ids_ndim;
  int64_t n = 1;
  for (int d = 0; d < p.ids_ndim; ++d) {
    a.dims.shape[d] = p.ids_shape[d];
    a.stride[d] = p.ids_stride[d];
    n *= p.ids_shape[d];
  }
  // dim == 0 still checks the ids (one thread per id), so a zero-width table reports the
  // first bad id like the CPU op.
  if (n == 0) return cudaSuccess;
  switch (p.table_type) {
    case ElemType::f32: return launch_typed<ElemType::f32>(p, n, a, stream);
    case ElemType::f16: return launch_typed<ElemType::f16>(p, n, a, stream);
    case ElemType::bf16: return launch_typed<ElemType::bf16>(p, n, a, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace kiln::kernels::cuda
