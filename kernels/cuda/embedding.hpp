// Embedding lookup (torch.nn.functional.embedding): out[i, :] = table[ids[i], :] as f32, for
// ids i32 or i64 of any shape and strides (read in place) and a table of f32, f16 or bf16
// (widened exactly, as the CPU op's weight.to(f32)). An id outside [0, vocab) is not read:
// the kernel lowers a device word to the smallest flat index holding one, which the caller
// reads back to report the first bad id the way the CPU op does.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>

#include "cuda/strided.hpp"

namespace kiln::kernels::cuda {

struct EmbeddingParams {
  ElemType table_type = ElemType::f32;
  const void* table = nullptr;  // (vocab, dim), element strides below
  int64_t vocab = 0, dim = 0;
  int64_t table_row_stride = 0, table_col_stride = 1;
  const void* ids = nullptr;
  bool ids_i64 = false;  // i64, else i32
  int ids_ndim = 0;
  int64_t ids_shape[kMaxDims] = {};
  int64_t ids_stride[kMaxDims] = {};  // elements
  float* out = nullptr;               // (numel(ids), dim) contiguous
  // One device word: the launcher sets it to UINT64_MAX, the kernel lowers it (atomicMin) to
  // the row-major flat index of the first id outside [0, vocab). Must not be null.
  unsigned long long* first_bad = nullptr;
};
std::string can_implement(const EmbeddingParams& p);
cudaError_t launch_embedding(const EmbeddingParams& p, cudaStream_t stream);

}  // namespace kiln::kernels::cuda
