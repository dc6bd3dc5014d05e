// Flash-attention forward on CUDA: O = softmax(scale * Q K^T + mask) V without materialising
// the Lq x Lk score matrix, one pass over K/V per query tile with an online softmax.
//
//   q (B, H, Lq, D), k (B, Hkv, Lk, D), v (B, Hkv, Lk, Dv) -> o (B, H, Lq, Dv), lse (B, H, Lq)
//
// Paths (picked by the element type, see can_implement for what each refuses):
//  - f16 / bf16: tensor cores through mma.sync.m16n8k16 (sm_80+), f32 accumulation and f32
//    softmax statistics, P rounded to the input type for the P V product, output rounded once
//    to the input type. D == Dv in {64, 80, 96, 128}. flash_attention_mma.cu.
//  - f32: SIMT, f32 math throughout (no TF32), any D, Dv <= 256: f32 pipelines on CUDA with
//    the CPU reference's accuracy. flash_attention.cu.
//  - sm_90a (wgmma + TMA, warp-specialised producer/consumer, FlashAttention-3 style) is not
//    written yet. It plugs in at launch_flash_attention() (flash_attention.cu): the same
//    params, the same tile mask granularity (kFlashAttnTileQ x kFlashAttnTileK, or a multiple
//    the launcher maps onto it), chosen when the device is sm_90 and the case fits; this path
//    stays the sm_80/sm_89 path and the fallback for the cases wgmma does not take.
//
// Masking rules (a key must pass every one that is set; a query row with no key left gives
// zeros and lse = -inf, as the CPU op ops::attention does):
//  - causal: query i attends keys j <= i (top-left aligned, torch's is_causal).
//  - causal_block = n > 0: block-causal, query i attends keys j with j / n <= i / n (query
//    block i sees key blocks <= i: block-autoregressive video/audio generation).
//  - mask_add (f32, added to scale * q.k) or mask_keep (bytes, nonzero = attend), indexed by
//    (b, h, i, j) through element strides (0 = broadcast), h the query head.
//  - tile_mask (bytes) [b][h][qt][kt]: tile (qt, kt) = query rows [qt*64, qt*64+64) x keys
//    [kt*64, kt*64+64) is computed only when nonzero; a skipped tile is exactly a tile of
//    `false` in a bool mask. The hook of block-sparse attention (mask estimators build it).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>

#include "cuda/strided.hpp"

namespace kiln::kernels::cuda {

// Tile sizes of the tile mask: query rows and keys per tile. The tensor-core path computes
// exactly these tiles; the f32 path computes 32 x 32 tiles inside them.
constexpr int kFlashAttnTileQ = 64;
constexpr int kFlashAttnTileK = 64;
inline int64_t flash_attn_num_tiles(int64_t len, int tile) {
  return (len + tile - 1) / tile;
}

struct FlashAttnParams {
  ElemType type = ElemType::bf16;  // of q, k, v and o
  const void* q = nullptr;         // (B, H, Lq, D)
  const void* k = nullptr;         // (B, Hkv, Lk, D)
  const void* v = nullptr;         // (B, Hkv, Lk, Dv)
  void* o = nullptr;               // (B, H, Lq, Dv)
  int64_t B = 0, H = 0, Hkv = 0, Lq = 0, Lk = 0, D = 0, Dv = 0;
  // Element strides over (batch, head, position); the last dim of each is contiguous.
  // f16/bf16: every stride of a dim of size > 1 a multiple of 8 elements (16-byte rows).
  int64_t q_sb = 0, q_sh = 0, q_sl = 0;
  int64_t k_sb = 0, k_sh = 0, k_sl = 0;
  int64_t v_sb = 0, v_sh = 0, v_sl = 0;
  int64_t o_sb = 0, o_sh = 0, o_sl = 0;
  float scale = 0.f;  // multiplies q.k; the caller resolves any default (e.g. 1/sqrt(D))
  bool causal = false;
  int64_t causal_block = 0;  // > 0: block-causal with this block size
  // At most one of the two element masks; element strides over (B, H, Lq, Lk), 0 = broadcast.
  const float* mask_add = nullptr;
  const uint8_t* mask_keep = nullptr;
  int64_t mask_sb = 0, mask_sh = 0, mask_sq = 0, mask_sk = 0;
  // Optional (B, H, ceil(Lq / kFlashAttnTileQ), ceil(Lk / kFlashAttnTileK)) bytes; the key-tile
  // dim is contiguous, the others strided (0 = broadcast).
  const uint8_t* tile_mask = nullptr;
  int64_t tile_sb = 0, tile_sh = 0, tile_sq = 0;
  // Optional (B, H, Lq) contiguous f32: log(sum_j exp(scale * q.k_j + mask_ij)) over the
  // attended keys (natural log), -inf for a row with none.
  float* lse = nullptr;
};

// "" when the case can run, else the reason (for the unsupported error of the op).
std::string can_implement(const FlashAttnParams& p);
// The part of can_implement that reads no pointer or stride (sizes, head dims, type, scale):
// lets a caller refuse a case before it allocates the output or copies operands.
std::string can_implement_shape(const FlashAttnParams& p);
// Launches on `stream`; returns the launch's error (cudaErrorInvalidDeviceFunction on a device
// below sm_80 for f16/bf16).
cudaError_t launch_flash_attention(const FlashAttnParams& p, cudaStream_t stream);

namespace detail {
// The tensor-core path (flash_attention_mma.cu); launch_flash_attention() picks it.
cudaError_t launch_flash_attention_mma_sm80(const FlashAttnParams& p, cudaStream_t stream);
constexpr bool flash_attn_mma_head_dim(int64_t d) {
  return d == 64 || d == 80 || d == 96 || d == 128;
}
}  // namespace detail

}  // namespace kiln::kernels::cuda
