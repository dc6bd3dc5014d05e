// Flash-attention forward: can_implement, the launcher that picks a path, and the f32 SIMT
// path (the tensor-core path is flash_attention_mma.cu).
//
// f32 path: the same online-softmax algorithm as the tensor-core path and the CPU op
// (FlashAttention-2, Dao 2023, Alg. 1) in plain f32 FMAs, no TF32, so an f32 pipeline on CUDA
// matches the CPU reference to f32 rounding. One CTA of 8 warps per 32 query rows; each warp
// owns 4 rows. Per 32-key step, lane j scores key j against the warp's 4 rows (Q rows read as
// shared-memory broadcasts, K rows padded to an odd stride so the 32 lanes hit 32 banks), the
// row max/sum are warp reductions, and O += P V has lane c accumulate output columns
// c, c + 32, ... with P broadcast by shuffles. Compute tiles of 32 x 32 nest in the
// 64 x 64 tiles of the tile mask.
//   smem = 4 B x 32 x (D + (D | 1) + Dv): 24.6 KiB at D = Dv = 64, 96 KiB at 256
#include <cmath>

#include "cuda/device_common.cuh"
#include "cuda/flash_attention.hpp"

namespace kiln::kernels::cuda {

namespace {

constexpr int kF32Warps = 8;
constexpr int kF32Threads = kF32Warps * 32;
constexpr int kF32BQ = 32;  // query rows per CTA: 4 per warp
constexpr int kF32BK = 32;  // keys per step: one per lane
constexpr int kRowsPerWarp = kF32BQ / kF32Warps;
static_assert(kFlashAttnTileQ % kF32BQ == 0 && kFlashAttnTileK % kF32BK == 0,
              "f32 compute tiles nest in the tile-mask tiles");
constexpr float kLog2e = 1.4426950408889634f;
constexpr int kMaxHeadDimF32 = 256;

size_t f32_smem_bytes(int64_t D, int64_t Dv) {
  return sizeof(float) * static_cast<size_t>(kF32BQ * D + kF32BK * (D | 1) + kF32BK * Dv);
}

// NV = output columns per lane / 1: Dv <= 32 * NV. Grid (ceil(Lq / 32), H, B).
template <int NV>
__global__ void __launch_bounds__(kF32Threads) flash_attn_fwd_f32(const FlashAttnParams p) {
  extern __shared__ float smem_f32[];
  const int D = static_cast<int>(p.D), Dv = static_cast<int>(p.Dv);
  const int ks = D | 1;          // K row stride: odd, conflict-free column reads
  float* sQ = smem_f32;          // (32, D)
  float* sK = sQ + kF32BQ * D;   // (32, ks)
  float* sV = sK + kF32BK * ks;  // (32, Dv)

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int64_t qt = gridDim.x - 1 - blockIdx.x;  // heaviest (causal) tiles first
  const int64_t h = blockIdx.y, b = blockIdx.z;
  const int64_t hk = h / (p.H / p.Hkv);
  const int64_t q0 = qt * kF32BQ;
  const int64_t q_last = min(q0 + kF32BQ, p.Lq) - 1;

  const float* gq = static_cast<const float*>(p.q) + b * p.q_sb + h * p.q_sh;
  const float* gk = static_cast<const float*>(p.k) + b * p.k_sb + hk * p.k_sh;
  const float* gv = static_cast<const float*>(p.v) + b * p.v_sb + hk * p.v_sh;

  int64_t k_end = p.Lk;
  if (p.causal) k_end = min(k_end, q_last + 1);
  if (p.causal_block > 0) k_end = min(k_end, (q_last / p.causal_block + 1) * p.causal_block);
  const uint8_t* tm =
      p.tile_mask ? p.tile_mask + b * p.tile_sb + h * p.tile_sh + (q0 / kFlashAttnTileQ) * p.tile_sq
                  : nullptr;

  for (int i = tid; i < kF32BQ * D; i += kF32Threads) {
    const int r = i / D, c = i % D;
    sQ[i] = q0 + r < p.Lq ? gq[(q0 + r) * p.q_sl + c] : 0.f;
  }

  const float scale_log2 = p.scale * kLog2e;
  float o[kRowsPerWarp][NV];
  float m[kRowsPerWarp], l[kRowsPerWarp];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    m[r] = -INFINITY, l[r] = 0.f;
#pragma unroll
    for (int c = 0; c < NV; ++c) o[r][c] = 0.f;
  }

  for (int64_t k0 = 0; k0 < k_end; k0 += kF32BK) {
    if (tm && !tm[k0 / kFlashAttnTileK]) continue;  // uniform over the CTA
    __syncthreads();  // the previous step's K/V reads are done (and sQ is written, first time)
    for (int i = tid; i < kF32BK * D; i += kF32Threads) {
      const int r = i / D, c = i % D;
      sK[r * ks + c] = k0 + r < p.Lk ? gk[(k0 + r) * p.k_sl + c] : 0.f;
    }
    for (int i = tid; i < kF32BK * Dv; i += kF32Threads) {
      const int r = i / Dv, c = i % Dv;
      sV[i] = k0 + r < p.Lk ? gv[(k0 + r) * p.v_sl + c] : 0.f;
    }
    __syncthreads();

    // Lane = key k0 + lane; the warp's rows r = warp * 4 + i.
    float s[kRowsPerWarp] = {};
    const float* qrow = sQ + warp * kRowsPerWarp * D;
    const float* krow = sK + lane * ks;
    for (int d = 0; d < D; ++d) {
      const float kd = krow[d];
#pragma unroll
      for (int i = 0; i < kRowsPerWarp; ++i) s[i] = fmaf(qrow[i * D + d], kd, s[i]);
    }
    const int64_t c = k0 + lane;
#pragma unroll
    for (int i = 0; i < kRowsPerWarp; ++i) {
      const int64_t r = q0 + warp * kRowsPerWarp + i;
      float x = s[i] * scale_log2;
      if (c >= p.Lk || (p.causal && c > r) ||
          (p.causal_block > 0 && c / p.causal_block > r / p.causal_block)) {
        x = -INFINITY;
      } else if (r < p.Lq && (p.mask_add || p.mask_keep)) {
        const int64_t mi = b * p.mask_sb + h * p.mask_sh + r * p.mask_sq + c * p.mask_sk;
        if (p.mask_keep) {
          if (!p.mask_keep[mi]) x = -INFINITY;
        } else {
          x += p.mask_add[mi] * kLog2e;
        }
      }
      const float mx = fmaxf(m[i], detail::warp_max(x));
      const float m_use = mx == -INFINITY ? 0.f : mx;  // all masked so far: P = 0
      const float rescale = exp2f(m[i] - m_use);
      const float pr = exp2f(x - m_use);
      l[i] = l[i] * rescale + detail::warp_sum(pr);
      m[i] = mx;
      s[i] = pr;
#pragma unroll
      for (int cc = 0; cc < NV; ++cc) o[i][cc] *= rescale;
    }
    // O += P V: P[i][j] lives in lane j.
    for (int jk = 0; jk < kF32BK; ++jk) {
      float vj[NV];
#pragma unroll
      for (int cc = 0; cc < NV; ++cc) {
        const int col = lane + 32 * cc;
        vj[cc] = col < Dv ? sV[jk * Dv + col] : 0.f;
      }
#pragma unroll
      for (int i = 0; i < kRowsPerWarp; ++i) {
        const float pj = __shfl_sync(0xffffffffu, s[i], jk);
#pragma unroll
        for (int cc = 0; cc < NV; ++cc) o[i][cc] = fmaf(pj, vj[cc], o[i][cc]);
      }
    }
  }

  float* go = static_cast<float*>(p.o) + b * p.o_sb + h * p.o_sh;
#pragma unroll
  for (int i = 0; i < kRowsPerWarp; ++i) {
    const int64_t r = q0 + warp * kRowsPerWarp + i;
    if (r >= p.Lq) continue;
    const float inv = l[i] > 0.f ? 1.f / l[i] : 0.f;  // no key attended: zeros
#pragma unroll
    for (int cc = 0; cc < NV; ++cc) {
      const int col = lane + 32 * cc;
      if (col < Dv) go[r * p.o_sl + col] = o[i][cc] * inv;
    }
    if (p.lse && lane == 0)
      p.lse[(b * p.H + h) * p.Lq + r] =
          l[i] > 0.f ? (m[i] + log2f(l[i])) * 0.6931471805599453f : -INFINITY;
  }
}

template <int NV>
cudaError_t launch_f32(const FlashAttnParams& p, cudaStream_t stream) {
  const size_t smem = f32_smem_bytes(p.D, p.Dv);
  auto kernel = flash_attn_fwd_f32<NV>;
  cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       static_cast<int>(smem));
  if (e != cudaSuccess) return e;
  const dim3 grid(static_cast<unsigned>(flash_attn_num_tiles(p.Lq, kF32BQ)),
                  static_cast<unsigned>(p.H), static_cast<unsigned>(p.B));
  kernel<<<grid, kF32Threads, smem, stream>>>(p);
  return cudaGetLastError();
}

// 16-byte aligned rows: the pointer, and the stride of every dim of size > 1, a multiple of 8
// elements.
bool rows16(const void* ptr, int64_t nb, int64_t sb, int64_t nh, int64_t sh, int64_t nl,
            int64_t sl) {
  return aligned16(ptr) && (nb <= 1 || sb % 8 == 0) && (nh <= 1 || sh % 8 == 0) &&
         (nl <= 1 || sl % 8 == 0);
}

}  // namespace

std::string can_implement_shape(const FlashAttnParams& p) {
  if (p.B < 0 || p.H < 0 || p.Hkv < 0 || p.Lq < 0 || p.Lk < 0 || p.D < 0 || p.Dv < 0)
    return "negative size";
  if (p.B > 65535 || p.H > 65535) return "B and H must be <= 65535 (grid y/z)";
  if (p.Hkv <= 0 || p.H % p.Hkv != 0) return "H must be a positive multiple of Hkv";
  if (p.D <= 0 || p.Dv <= 0) return "head dims must be positive";
  if (!std::isfinite(p.scale)) return "scale is not finite";
  if (p.causal_block < 0) return "negative causal block";
  if (p.Lq > int64_t{0x7fffffff} * kF32BQ) return "Lq too large for the grid";
  if (p.type == ElemType::f32) {
    if (p.D > kMaxHeadDimF32 || p.Dv > kMaxHeadDimF32)
      return "f32 head dims must be <= 256 (D = " + std::to_string(p.D) +
             ", Dv = " + std::to_string(p.Dv) + ")";
    return {};
  }
  const std::string t = elem_type_name(p.type);
  if (p.D != p.Dv)
    return t + " needs D == Dv (tensor-core path), got D = " + std::to_string(p.D) +
           ", Dv = " + std::to_string(p.Dv);
  if (!detail::flash_attn_mma_head_dim(p.D))
    return "head dim " + std::to_string(p.D) + " in " + t +
           " (tensor-core path: 64, 80, 96 or 128)";
  return {};
}

std::string can_implement(const FlashAttnParams& p) {
  if (std::string why = can_implement_shape(p); !why.empty()) return why;
  if (p.mask_add && p.mask_keep) return "both an additive and a bool mask";
  if (p.B == 0 || p.H == 0 || p.Lq == 0) return {};
  if (!p.q || !p.o || (p.Lk > 0 && (!p.k || !p.v))) return "null pointer";
  if (p.type != ElemType::f32 &&
      (!rows16(p.q, p.B, p.q_sb, p.H, p.q_sh, p.Lq, p.q_sl) ||
       !rows16(p.o, p.B, p.o_sb, p.H, p.o_sh, p.Lq, p.o_sl) ||
       (p.Lk > 0 && (!rows16(p.k, p.B, p.k_sb, p.Hkv, p.k_sh, p.Lk, p.k_sl) ||
                     !rows16(p.v, p.B, p.v_sb, p.Hkv, p.v_sh, p.Lk, p.v_sl)))))
    return "q, k, v and o need 16-byte aligned rows (pointers 16-byte aligned, strides "
           "multiples of 8 elements)";
  return {};
}

cudaError_t launch_flash_attention(const FlashAttnParams& p, cudaStream_t stream) {
  if (p.B == 0 || p.H == 0 || p.Lq == 0) return cudaSuccess;
  // sm_90a wgmma + TMA path plugs in here (see flash_attention.hpp).
  if (p.type != ElemType::f32) return detail::launch_flash_attention_mma_sm80(p, stream);
  if (p.Dv <= 32) return launch_f32<1>(p, stream);
  if (p.Dv <= 64) return launch_f32<2>(p, stream);
  if (p.Dv <= 128) return launch_f32<4>(p, stream);
  return launch_f32<8>(p, stream);
}

}  // namespace kiln::kernels::cuda
