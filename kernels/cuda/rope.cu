// One thread per rotated pair (row r, pair i), grid-stride; consecutive threads take
// consecutive pairs of a row, so x and out are read and written coalesced and the table row
// (shared by the H rows of a position in (B, L, H, D) memory) stays in L1/L2.
#include "cuda/device_common.cuh"
#include "cuda/rope.hpp"

namespace kiln::kernels::cuda {

namespace {

constexpr int kThreads = 256;

template <bool Interleaved>
__global__ void rope_kernel(const float* __restrict__ x, const float* __restrict__ cos_t,
                            const float* __restrict__ sin_t, float* __restrict__ out, int64_t rows,
                            int64_t head_dim, int64_t seq_len, int64_t inner) {
  const int64_t half = head_dim / 2;
  const int64_t total = rows * half;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < total;
       k += step) {
    const int64_t r = k / half, i = k - r * half;
    const int64_t l = (r / inner) % seq_len;
    const float c = cos_t[l * half + i], s = sin_t[l * half + i];
    const int64_t i0 = Interleaved ? 2 * i : i, i1 = Interleaved ? 2 * i + 1 : i + half;
    const float x0 = x[r * head_dim + i0], x1 = x[r * head_dim + i1];
    // The CPU's x0 * c - x1 * s and x0 * s + x1 * c, each product rounded (no FMA).
    out[r * head_dim + i0] = __fsub_rn(__fmul_rn(x0, c), __fmul_rn(x1, s));
    out[r * head_dim + i1] = __fadd_rn(__fmul_rn(x0, s), __fmul_rn(x1, c));
  }
}

}  // namespace

std::string can_implement(const RopeParams& p) {
  if (p.rows < 0 || p.head_dim < 0 || p.seq_len < 0) return "negative size";
  if (p.head_dim % 2 != 0) return "head dim " + std::to_string(p.head_dim) + " is odd";
  if (p.inner < 1) return "inner stride " + std::to_string(p.inner) + " must be >= 1";
  if (p.rows > 0 && p.head_dim > 0) {
    if (p.seq_len < 1) return "empty table for a non-empty input";
    if (!p.x || !p.cos || !p.sin || !p.out) return "null pointer";
    if (p.x == p.out) return "out aliases x";
  }
  return {};
}

cudaError_t launch_rope(const RopeParams& p, cudaStream_t stream) {
  const int64_t pairs = p.rows * (p.head_dim / 2);
  if (pairs == 0) return cudaSuccess;
  const unsigned grid = detail::grid_for(pairs, kThreads);
  if (p.interleaved)
    rope_kernel<true><<<grid, kThreads, 0, stream>>>(p.x, p.cos, p.sin, p.out, p.rows, p.head_dim,
                                                     p.seq_len, p.inner);
  else
    rope_kernel<false><<<grid, kThreads, 0, stream>>>(p.x, p.cos, p.sin, p.out, p.rows, p.head_dim,
                                                      p.seq_len, p.inner);
  return cudaGetLastError();
}

}  // namespace kiln::kernels::cuda
