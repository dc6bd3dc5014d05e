// ops::attention's CUDA path: tensors -> FlashAttnParams (kernels/cuda/flash_attention.hpp),
// can_implement, launch on the op stream. See cuda_ops.hpp.
#include <cuda_runtime_api.h>

#include <cmath>
#include <string>

#include "cuda/flash_attention.hpp"
#include "kiln/cuda/cuda_ops.hpp"
#include "kiln/cuda/cuda_glue.hpp"

namespace kiln::cuda_ops {

namespace kc = kernels::cuda;

namespace {

using namespace glue;

bool aligned16(const void* p) {
  return (reinterpret_cast<uintptr_t>(p) & 15u) == 0;
}

// An operand the kernel reads in place: last dim contiguous and, for the tensor-core path,
// 16-byte rows (pointer and the strides of dims of size > 1 multiples of 8 elements).
// Anything else (a sliced last dim, an odd offset) is made contiguous first. Permuted views
// such as (B, L, H, D) memory seen as (B, H, L, D) keep stride(-1) == 1 and are read in place.
Tensor kernel_operand(const Tensor& t, bool rows16) {
  bool ok = t.size(-1) == 1 || t.stride(-1) == 1;
  if (ok && rows16) {
    ok = aligned16(t.raw_data());
    for (int i = 0; i < 3 && ok; ++i) ok = t.size(i) <= 1 || t.stride(i) % 8 == 0;
  }
  return ok ? t : t.contiguous();
}

// Strides over (B, H, L) with size-1 dims given stride 0 (their index is always 0).
void bhl_strides(const Tensor& t, int64_t* sb, int64_t* sh, int64_t* sl) {
  *sb = t.size(0) == 1 ? 0 : t.stride(0);
  *sh = t.size(1) == 1 ? 0 : t.stride(1);
  *sl = t.size(2) == 1 ? 0 : t.stride(2);
}

}  // namespace

Tensor attention(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in, const Tensor& mask,
                 const AttentionOptions& opt, Tensor* lse) {
  const char* op = "attention";
  const Device d = q_in.device();
  kc::FlashAttnParams p;
  p.type = elem_type(q_in.dtype(), op, d);
  p.B = q_in.size(0), p.H = q_in.size(1), p.Lq = q_in.size(2), p.D = q_in.size(3);
  p.Hkv = k_in.size(1), p.Lk = k_in.size(2), p.Dv = v_in.size(3);
  KILN_ARG(opt.causal_block >= 0, op, "causal block ", opt.causal_block, " must be >= 0");
  KILN_ARG(std::isfinite(opt.scale) && opt.scale >= 0.f, op, "scale ", opt.scale,
           " must be finite and >= 0 (0 = 1/sqrt(head_dim))");
  p.scale = opt.scale > 0.f ? opt.scale : 1.f / std::sqrt(static_cast<float>(p.D));
  p.causal = opt.causal;
  p.causal_block = opt.causal_block;
  require_implementable(kc::can_implement_shape(p), op, d);  // before allocating or copying
  const int64_t nqt = kc::flash_attn_num_tiles(p.Lq, kc::kFlashAttnTileQ);
  const int64_t nkt = kc::flash_attn_num_tiles(p.Lk, kc::kFlashAttnTileK);
  Tensor tiles;
  if (opt.tile_mask.defined()) {
    const Tensor& tm = opt.tile_mask;
    const Shape full{p.B, p.H, nqt, nkt};
    KILN_ARG(tm.dtype() == DType::u8 || tm.dtype() == DType::boolean, op, "tile mask is ",
             dtype_name(tm.dtype()), ", expected u8 or bool (nonzero = compute the tile)");
    KILN_ARG(tm.device() == d, op, "tile mask on ", tm.device().str(), ", attention on ", d.str());
    KILN_ARG(tm.ndim() <= 4, op, "tile mask ", tm.shape().str(), " has more than 4 dims");
    for (int i = 0; i < tm.ndim(); ++i) {
      const int64_t ms = tm.size(i), fs = full[4 - tm.ndim() + i];
      KILN_ARG(ms == fs || ms == 1, op, "tile mask ", tm.shape().str(),
               " is not broadcastable to (B, H, ceil(Lq/", kc::kFlashAttnTileQ, "), ceil(Lk/",
               kc::kFlashAttnTileK, ")) = ", full.str());
    }
    tiles = tm.expand(full);
    if (nkt > 1 && tiles.stride(3) != 1) tiles = tiles.contiguous();  // key tiles contiguous
  }

  Tensor out = Tensor::empty({p.B, p.H, p.Lq, p.Dv}, q_in.dtype(), d);
  Tensor lse_t;
  if (lse) lse_t = *lse = Tensor::empty({p.B, p.H, p.Lq}, DType::f32, d);
  if (out.numel() == 0) return out;

  const bool rows16 = p.type != kc::ElemType::f32;
  const Tensor q = kernel_operand(q_in, rows16), k = kernel_operand(k_in, rows16),
               v = kernel_operand(v_in, rows16);
  p.q = q.raw_data(), p.k = k.raw_data(), p.v = v.raw_data();
  p.o = out.mutable_raw_data();
  bhl_strides(q, &p.q_sb, &p.q_sh, &p.q_sl);
  bhl_strides(k, &p.k_sb, &p.k_sh, &p.k_sl);
  bhl_strides(v, &p.v_sb, &p.v_sh, &p.v_sl);
  bhl_strides(out, &p.o_sb, &p.o_sh, &p.o_sl);
  Tensor maskx;
  if (mask.defined() && p.Lk > 0) {
    maskx = mask.expand({p.B, p.H, p.Lq, p.Lk});
    p.mask_sb = maskx.stride(0), p.mask_sh = maskx.stride(1);
    p.mask_sq = maskx.stride(2), p.mask_sk = maskx.stride(3);
    if (mask.dtype() == DType::f32)
      p.mask_add = static_cast<const float*>(maskx.raw_data());
    else
      p.mask_keep = static_cast<const uint8_t*>(maskx.raw_data());
  }
  if (tiles.defined()) {
    p.tile_mask = static_cast<const uint8_t*>(tiles.raw_data());
    p.tile_sb = tiles.stride(0), p.tile_sh = tiles.stride(1), p.tile_sq = tiles.stride(2);
  }
  if (lse) p.lse = lse_t.mutable_data<float>();
  require_implementable(kc::can_implement(p), op, d);
  check_launch(cudaSetDevice(d.index), op);
  check_launch(kc::launch_flash_attention(p, static_cast<cudaStream_t>(op_stream(d).native)), op);
  return out;
}

}  // namespace kiln::cuda_ops
