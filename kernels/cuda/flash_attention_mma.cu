// Flash-attention forward, f16/bf16 on tensor cores (sm_80+): mma.sync.m16n8k16 with f32
// accumulation, cp.async tile loads, ldmatrix fragment loads.
//
// Algorithm: FlashAttention-2 forward (Dao 2023, "FlashAttention-2: Faster Attention with
// Better Parallelism and Work Partitioning", Algorithm 1): one CTA per (query tile, head,
// batch); each of its 4 warps owns 16 query rows, so the row statistics (max m, sum l) never
// leave a warp; scores are kept in log2 units (scale * log2 e folded into one multiply) so the
// softmax uses exp2; O is rescaled when the row max grows and divided by l once at the end.
// What was followed, not copied: the load/compute overlap with one K and one V buffer (V(j)
// loads while S = Q K(j)^T runs, K(j+1) loads while O += P V(j) runs) and the reuse of the S
// accumulators as the A operand of P V are those of flash-attention's csrc/flash_attn/src/
// flash_fwd_kernel.h (compute_attn_1rowblock) and softmax.h; fragment layouts are the PTX
// ISA's ("Matrix Fragments for mma.m16n8k16 with floating point type").
//
// Shared memory: Q, K, V tiles of 64 rows x D, rows padded to D + 8 elements (a row stride of
// an odd number of 16-byte chunks: 9, 11, 13, 17 for D = 64, 80, 96, 128), so the 8 row
// addresses of an ldmatrix phase fall in 8 different bank groups without an XOR swizzle.
//   D = 64: 3 x 64 x 72 x 2 B = 27 KiB     D = 96:  3 x 64 x 104 x 2 B = 39 KiB
//   D = 80: 3 x 64 x 88 x 2 B  = 33 KiB    D = 128: 3 x 64 x 136 x 2 B = 51 KiB
// Registers per thread (D = 128): O 16 n-tiles x 4 = 64 f32, S 8 x 4 = 32 f32, m/l 4, plus
// transient fragments; nvcc's report (-Xptxas -v) is the number to check.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>

#include "cuda/device_common.cuh"
#include "cuda/flash_attention.hpp"

namespace kiln::kernels::cuda {

namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kBQ = kFlashAttnTileQ;  // 64 = 16 rows x 4 warps
constexpr int kBK = kFlashAttnTileK;  // 64 keys per step
static_assert(kBQ == 16 * kWarps, "one m16 row block per warp");
constexpr float kLog2e = 1.4426950408889634f;

template <ElemType E>
struct MmaElem;
template <>
struct MmaElem<ElemType::bf16> {
  static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&v);
  }
  // d += a (16x16, row) * b (16x8, col), f32 accumulators.
  static __device__ __forceinline__ void mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                             uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
};
template <>
struct MmaElem<ElemType::f16> {
  static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
    const __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&v);
  }
  static __device__ __forceinline__ void mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                             uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
};

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
// 16 bytes global -> shared, asynchronous; src_bytes = 0 writes zeros and reads nothing.
__device__ __forceinline__ void cp_async_16(void* dst, const void* src, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src),
               "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::);
}
__device__ __forceinline__ void cp_async_wait_all() {
  asm volatile("cp.async.wait_group 0;\n" ::);
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}

// Copies rows [0, rows_valid) of a (64, D) tile (global row stride `ld` elements) into shared
// memory with row stride D + 8; rows beyond are zero-filled (so tails add 0 to P V, not NaN).
template <int D>
__device__ __forceinline__ void load_tile(uint16_t* s, const uint16_t* g, int64_t ld,
                                          int64_t rows_valid, int tid) {
  constexpr int kChunks = D / 8;  // 16-byte chunks per row
  static_assert(kBQ * kChunks % kThreads == 0, "D / 16 chunks per thread");
#pragma unroll
  for (int i = 0; i < kBQ * kChunks / kThreads; ++i) {
    const int c = tid + i * kThreads;
    const int r = c / kChunks, col = (c % kChunks) * 8;
    const bool ok = r < rows_valid;
    cp_async_16(s + r * (D + 8) + col, ok ? g + r * ld + col : g, ok ? 16 : 0);
  }
}

// Grid (query tiles, H, B); block kThreads; dynamic smem 3 x 64 x (D + 8) x 2 bytes.
template <ElemType E, int D>
__global__ void __launch_bounds__(kThreads) flash_attn_fwd_mma(const FlashAttnParams p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  using M = MmaElem<E>;
  constexpr int kS = D + 8;  // smem row stride, elements
  extern __shared__ __align__(16) unsigned char smem_raw[];
  uint16_t* sQ = reinterpret_cast<uint16_t*>(smem_raw);  // (64, D) +pad, later O staging
  uint16_t* sK = sQ + kBQ * kS;                          // (64, D) +pad
  uint16_t* sV = sK + kBK * kS;                          // (64, D) +pad

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int g = lane >> 2, t = lane & 3;  // fragment row group and thread-in-group
  // Heaviest tiles first: under a causal mask the last query tiles see the most keys.
  const int64_t qt = gridDim.x - 1 - blockIdx.x;
  const int64_t h = blockIdx.y, b = blockIdx.z;
  const int64_t hk = h / (p.H / p.Hkv);  // GQA: torch's repeat_interleave of the kv heads
  const int64_t q0 = qt * kBQ;
  const int64_t q_last = min(q0 + kBQ, p.Lq) - 1;

  const uint16_t* gq = static_cast<const uint16_t*>(p.q) + b * p.q_sb + h * p.q_sh + q0 * p.q_sl;
  const uint16_t* gk = static_cast<const uint16_t*>(p.k) + b * p.k_sb + hk * p.k_sh;
  const uint16_t* gv = static_cast<const uint16_t*>(p.v) + b * p.v_sb + hk * p.v_sh;

  // Keys beyond k_end are masked for every row of this tile.
  int64_t k_end = p.Lk;
  if (p.causal) k_end = min(k_end, q_last + 1);
  if (p.causal_block > 0) k_end = min(k_end, (q_last / p.causal_block + 1) * p.causal_block);
  const int nkt = static_cast<int>((k_end + kBK - 1) / kBK);
  const uint8_t* tm =
      p.tile_mask ? p.tile_mask + b * p.tile_sb + h * p.tile_sh + qt * p.tile_sq : nullptr;
  auto next_tile = [&](int j) {
    while (j < nkt && tm && !tm[j]) ++j;
    return j;
  };

  // This thread's two rows in the warp's m16 block: fragment rows g and g + 8.
  const int64_t row0 = q0 + warp * 16 + g;
  const int64_t rows[2] = {row0, row0 + 8};
  const float scale_log2 = p.scale * kLog2e;
  const bool has_mask = p.mask_add || p.mask_keep;

  float o[D / 8][4];
#pragma unroll
  for (int i = 0; i < D / 8; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};

  int j = next_tile(0);
  load_tile<D>(sQ, gq, p.q_sl, p.Lq - q0, tid);
  if (j < nkt) load_tile<D>(sK, gk + j * kBK * p.k_sl, p.k_sl, p.Lk - j * kBK, tid);
  cp_async_commit();

  while (j < nkt) {
    const int jn = next_tile(j + 1);
    const int64_t k0 = static_cast<int64_t>(j) * kBK;
    cp_async_wait_all();  // K(j) (and Q)
    __syncthreads();
    load_tile<D>(sV, gv + k0 * p.v_sl, p.v_sl, p.Lk - k0, tid);
    cp_async_commit();

    // S = Q K^T: (16 x 64) per warp, 8 n-tiles of 8 keys.
    float s[kBK / 8][4];
#pragma unroll
    for (int i = 0; i < kBK / 8; ++i) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      uint32_t a[4];  // rows (lane % 16), d columns kk*16 + (lane / 16)*8
      ldmatrix_x4(a, sQ + (warp * 16 + (lane & 15)) * kS + kk * 16 + (lane >> 4) * 8);
#pragma unroll
      for (int n2 = 0; n2 < kBK / 16; ++n2) {
        uint32_t bk[4];  // keys n2*16 + (lane % 8) + (lane / 16)*8, d kk*16 + ((lane / 8) % 2)*8
        ldmatrix_x4(bk, sK + (n2 * 16 + (lane & 7) + (lane >> 4) * 8) * kS + kk * 16 +
                            ((lane >> 3) & 1) * 8);
        M::mma(s[2 * n2], a, bk[0], bk[1]);
        M::mma(s[2 * n2 + 1], a, bk[2], bk[3]);
      }
    }

    // Scores in log2 units, then the element masks where this tile needs them.
    const bool edge = k0 + kBK > p.Lk || (p.causal && k0 + kBK - 1 > q0) ||
                      (p.causal_block > 0 && (k0 + kBK - 1) / p.causal_block > q0 / p.causal_block);
#pragma unroll
    for (int n = 0; n < kBK / 8; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float x = s[n][e] * scale_log2;
        if (edge || has_mask) {
          const int64_t r = rows[e >> 1];
          const int64_t c = k0 + n * 8 + 2 * t + (e & 1);
          if (c >= p.Lk || (p.causal && c > r) ||
              (p.causal_block > 0 && c / p.causal_block > r / p.causal_block)) {
            x = -INFINITY;
          } else if (has_mask && r < p.Lq) {
            const int64_t mi = b * p.mask_sb + h * p.mask_sh + r * p.mask_sq + c * p.mask_sk;
            if (p.mask_keep) {
              if (!p.mask_keep[mi]) x = -INFINITY;
            } else {
              x += p.mask_add[mi] * kLog2e;
            }
          }
        }
        s[n][e] = x;
      }

      // Online softmax (FA-2 Alg. 1 lines 8-10). The 4 threads of a group hold one row's 64
      // scores (2 x 8 each): max over them with two xor shuffles. l stays a per-thread partial
      // sum until the end.
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      float mx = m[i];
#pragma unroll
      for (int n = 0; n < kBK / 8; ++n) mx = fmaxf(mx, fmaxf(s[n][2 * i], s[n][2 * i + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      // A row with every key so far masked keeps m = -inf; exp2(-inf - 0) = 0 keeps P = 0.
      const float m_use = mx == -INFINITY ? 0.f : mx;
      const float rescale = exp2f(m[i] - m_use);
      m[i] = mx;
      float sum = 0.f;
#pragma unroll
      for (int n = 0; n < kBK / 8; ++n) {
        s[n][2 * i] = exp2f(s[n][2 * i] - m_use);
        s[n][2 * i + 1] = exp2f(s[n][2 * i + 1] - m_use);
        sum += s[n][2 * i] + s[n][2 * i + 1];
      }
      l[i] = l[i] * rescale + sum;
#pragma unroll
      for (int d = 0; d < D / 8; ++d) {
        o[d][2 * i] *= rescale;
        o[d][2 * i + 1] *= rescale;
      }
    }

    cp_async_wait_all();  // V(j)
    __syncthreads();      // ... and every warp is done reading K(j)
    if (jn < nkt) {
      const int64_t kn = static_cast<int64_t>(jn) * kBK;
      load_tile<D>(sK, gk + kn * p.k_sl, p.k_sl, p.Lk - kn, tid);
      cp_async_commit();
    }

    // O += P V: the S accumulators of n-tiles 2kk, 2kk+1 are the A fragment of k-step kk.
#pragma unroll
    for (int kk = 0; kk < kBK / 16; ++kk) {
      const uint32_t a[4] = {
          M::pack(s[2 * kk][0], s[2 * kk][1]), M::pack(s[2 * kk][2], s[2 * kk][3]),
          M::pack(s[2 * kk + 1][0], s[2 * kk + 1][1]), M::pack(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
      for (int d2 = 0; d2 < D / 16; ++d2) {
        uint32_t bv[4];  // keys kk*16 + (lane % 8) + ((lane / 8) % 2)*8, dv d2*16 + (lane / 16)*8
        ldmatrix_x4_trans(bv, sV + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * kS + d2 * 16 +
                                  (lane >> 4) * 8);
        M::mma(o[2 * d2], a, bv[0], bv[1]);
        M::mma(o[2 * d2 + 1], a, bv[2], bv[3]);
      }
    }
    j = jn;
  }
  cp_async_wait_all();  // Q when no tile ran

  // Epilogue: O / l rounded to the element type, staged in this warp's 16 rows of sQ (only
  // this warp read them), then written as 16-byte rows.
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    l[i] += __shfl_xor_sync(0xffffffffu, l[i], 1);
    l[i] += __shfl_xor_sync(0xffffffffu, l[i], 2);
  }
  const float inv[2] = {l[0] > 0.f ? 1.f / l[0] : 0.f, l[1] > 0.f ? 1.f / l[1] : 0.f};
  __syncwarp();
  uint16_t* so = sQ + warp * 16 * kS;
#pragma unroll
  for (int d = 0; d < D / 8; ++d)
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int col = d * 8 + 2 * t;
      so[(g + 8 * i) * kS + col] = detail::Elem<E>::store(o[d][2 * i] * inv[i]);
      so[(g + 8 * i) * kS + col + 1] = detail::Elem<E>::store(o[d][2 * i + 1] * inv[i]);
    }
  __syncwarp();
  uint16_t* go = static_cast<uint16_t*>(p.o) + b * p.o_sb + h * p.o_sh;
  constexpr int kChunks = D / 8;
#pragma unroll
  for (int i = 0; i < 16 * kChunks / 32; ++i) {
    const int c = lane + i * 32;
    const int r = c / kChunks, col = (c % kChunks) * 8;
    const int64_t row = q0 + warp * 16 + r;
    if (row < p.Lq)
      *reinterpret_cast<uint4*>(go + row * p.o_sl + col) =
          *reinterpret_cast<const uint4*>(so + r * kS + col);
  }
  if (p.lse && t == 0) {
    constexpr float kLn2 = 0.6931471805599453f;
#pragma unroll
    for (int i = 0; i < 2; ++i)
      if (rows[i] < p.Lq)
        p.lse[(b * p.H + h) * p.Lq + rows[i]] =
            l[i] > 0.f ? (m[i] + log2f(l[i])) * kLn2 : -INFINITY;
  }
#else
  __trap();  // launch_flash_attention_mma_sm80 refuses devices below sm_80
#endif
}

template <ElemType E, int D>
cudaError_t launch_mma(const FlashAttnParams& p, cudaStream_t stream) {
  constexpr int kSmem = 3 * kBQ * (D + 8) * 2;
  auto kernel = flash_attn_fwd_mma<E, D>;
  cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem);
  if (e != cudaSuccess) return e;
  const dim3 grid(static_cast<unsigned>(flash_attn_num_tiles(p.Lq, kBQ)),
                  static_cast<unsigned>(p.H), static_cast<unsigned>(p.B));
  kernel<<<grid, kThreads, kSmem, stream>>>(p);
  return cudaGetLastError();
}

template <ElemType E>
cudaError_t launch_mma_dim(const FlashAttnParams& p, cudaStream_t stream) {
  switch (p.D) {
    case 64:
      return launch_mma<E, 64>(p, stream);
    case 80:
      return launch_mma<E, 80>(p, stream);
    case 96:
      return launch_mma<E, 96>(p, stream);
    case 128:
      return launch_mma<E, 128>(p, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

}  // namespace

namespace detail {

cudaError_t launch_flash_attention_mma_sm80(const FlashAttnParams& p, cudaStream_t stream) {
  int dev = 0, major = 0;
  cudaError_t e = cudaGetDevice(&dev);
  if (e == cudaSuccess) e = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
  if (e != cudaSuccess) return e;
  if (major < 8) return cudaErrorInvalidDeviceFunction;  // mma.sync bf16/f16 m16n8k16, cp.async
  return p.type == ElemType::bf16 ? launch_mma_dim<ElemType::bf16>(p, stream)
                                  : launch_mma_dim<ElemType::f16>(p, stream);
}

}  // namespace detail

}  // namespace kiln::kernels::cuda
