// Scaled dot-product attention on the CPU, tiled with an online softmax so the Lq x Lk score
// matrix never exists: for each (batch, head, query tile) the key/value sequence is walked in
// tiles; S = Q K^T and O += P V run through the packed sgemm, and the running row max m and
// row sum l rescale O whenever the max grows.
// Ref: Dao 2023, "FlashAttention-2", Algorithm 1 (forward pass); Milakov & Gimelshein 2018,
//      "Online normalizer calculation for softmax".
// CUDA tensors (f32, f16 or bf16) go, after the same validation, to the flash-attention
// kernels through cuda_ops::attention (sdk/src/kiln/cuda/cuda_attention.cpp).
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "cpu/attention_softmax.hpp"
#include "cpu/gemm_f32.hpp"
#include "kiln/core/parallel.hpp"
#include "kiln/cuda/cuda_ops.hpp"
#include "kiln/ops/ops.hpp"

namespace kiln::ops {

namespace {

namespace cpu = kiln::kernels::cpu;

// Tile sizes. L2 is 1 MiB per core on our CPU machine (AMD EPYC, AVX-512); worst case
// D = Dv = 128:
//   Q tile   kBq x D   = 96 x 128 x 4 B =  48 KiB  (read by the S gemm)
//   K^T tile D x kBk   = 128 x 192 x 4  =  96 KiB
//   V tile   kBk x Dv  = 192 x 128 x 4  =  96 KiB
//   S/P tile kBq x kBk = 96 x 192 x 4   =  72 KiB
//   O rows   kBq x Dv  = 96 x 128 x 4   =  48 KiB  (accumulated in place in the output)
//   sgemm packing: A <= 96 x 192 (72 KiB), B <= 192 x 128 (96 KiB)
// = ~530 KiB, inside L2 with room for mask rows. kBq = 96 is a multiple of both micro-kernel
// heights (6 for AVX2, 12 for AVX-512) and within one sgemm MC block (96 / 144); kBk = 192 is
// within one sgemm KC block (256 AVX2 / 192 AVX-512), so the P V gemm never splits its K loop,
// and is a multiple of both NR (16 / 32) for the S gemm. D up to 192 keeps the S gemm in one
// KC block too.
constexpr int64_t kBq = 96;
constexpr int64_t kBk = 192;
constexpr float kLog2e = 1.4426950408889634f;

// A mask as (B, H, Lq, Lk) element strides over its own data (stride 0 on broadcast dims).
struct MaskView {
  const float* f32 = nullptr;  // additive
  const bool* keep = nullptr;  // bool: true = attend
  int64_t sb = 0, sh = 0, sq = 0, sk = 0;
};

struct Problem {
  int64_t B, H, Hkv, Lq, Lk, D, Dv;
  const float* q;
  int64_t q_sb, q_sh, q_sl;  // element strides of q; its last dim is contiguous
  const float* kt;           // K^T, contiguous (B, Hkv, D, Lk)
  const float* v;
  int64_t v_sb, v_sh, v_sl;
  float* out;   // contiguous (B, H, Lq, Dv)
  float alpha;  // scale * log2(e): scores in log2 units, so the softmax uses exp2
  bool causal;
  MaskView mask;
};

// Scratch of one worker: S/P tile and the per-row running statistics.
struct Scratch {
  std::vector<float> s, m, l;
  Scratch() : s(kBq * kBk), m(kBq), l(kBq) {}
};

// One (b, h, query tile [q0, q0 + nq)).
void attend_tile(const Problem& p, int64_t b, int64_t h, int64_t q0, int64_t nq, Scratch& w) {
  const float ninf = -std::numeric_limits<float>::infinity();
  const int64_t hk = h / (p.H / p.Hkv);  // torch enable_gqa: repeat_interleave of kv heads
  const float* q = p.q + b * p.q_sb + h * p.q_sh + q0 * p.q_sl;
  const float* kt = p.kt + (b * p.Hkv + hk) * p.D * p.Lk;
  const float* v = p.v + b * p.v_sb + hk * p.v_sh;
  float* o = p.out + ((b * p.H + h) * p.Lq + q0) * p.Dv;  // (nq, Dv), row stride Dv
  std::fill(o, o + nq * p.Dv, 0.f);
  std::fill(w.m.begin(), w.m.begin() + nq, ninf);
  std::fill(w.l.begin(), w.l.begin() + nq, 0.f);
  // Causal (torch is_causal, top-left aligned): row i sees keys j <= i.
  const int64_t k_end = p.causal ? std::min(p.Lk, q0 + nq) : p.Lk;
  const MaskView& mk = p.mask;
  for (int64_t k0 = 0; k0 < k_end; k0 += kBk) {
    const int64_t nk = std::min(kBk, k_end - k0);
    float* s = w.s.data();  // (nq, nk), row stride nk
    // S = alpha * Q K^T: (nq x D) @ (D x nk), K^T rows strided by Lk.
    cpu::sgemm(false, false, nq, nk, p.D, p.alpha, q, p.q_sl, kt + k0, p.Lk, 0.f, s, nk);
    bool any = false;  // some row has a finite score in this tile
    for (int64_t r = 0; r < nq; ++r) {
      float* sr = s + r * nk;
      const int64_t i = q0 + r;
      if (mk.f32 || mk.keep) {
        const int64_t base = b * mk.sb + h * mk.sh + i * mk.sq + k0 * mk.sk;
        if (mk.f32) {
          const float* mr = mk.f32 + base;
          for (int64_t j = 0; j < nk; ++j) sr[j] += mr[j * mk.sk] * kLog2e;
        } else {
          const bool* mr = mk.keep + base;
          for (int64_t j = 0; j < nk; ++j)
            if (!mr[j * mk.sk]) sr[j] = ninf;
        }
      }
      if (p.causal && k0 + nk - 1 > i)
        for (int64_t j = std::max<int64_t>(i + 1 - k0, 0); j < nk; ++j) sr[j] = ninf;
      // Online softmax update (FlashAttention-2 Alg. 1 lines 8-10), unnormalised O.
      const float m_new = std::max(w.m[r], cpu::attention_row_max(sr, nk));
      if (m_new == ninf) {  // every key so far masked: P row is 0, state unchanged
        std::fill(sr, sr + nk, 0.f);
        continue;
      }
      any = true;
      const float rescale = w.m[r] == ninf ? 0.f : std::exp2(w.m[r] - m_new);
      w.l[r] = w.l[r] * rescale + cpu::attention_row_exp2_sum(sr, nk, m_new);
      w.m[r] = m_new;
      if (rescale != 1.f) {
        float* orow = o + r * p.Dv;
        for (int64_t d = 0; d < p.Dv; ++d) orow[d] *= rescale;
      }
    }
    // O += P V: (nq x nk) @ (nk x Dv).
    if (any)
      cpu::sgemm(false, false, nq, p.Dv, nk, 1.f, s, nk, v + k0 * p.v_sl, p.v_sl, 1.f, o, p.Dv);
  }
  for (int64_t r = 0; r < nq; ++r) {
    float* orow = o + r * p.Dv;
    // A fully masked row has l == 0 and O == 0: it stays zeros (torch gives NaN).
    const float inv = w.l[r] > 0.f ? 1.f / w.l[r] : 0.f;
    for (int64_t d = 0; d < p.Dv; ++d) orow[d] *= inv;
  }
}

// The last dim of a q/k/v operand must be contiguous for the gemm; other strides are free.
Tensor unit_last_stride(const Tensor& t) {
  return t.size(-1) == 1 || t.stride(-1) == 1 ? t : t.contiguous();
}

bool is_half(const Tensor& t) {
  return t.defined() && (t.dtype() == DType::f16 || t.dtype() == DType::bf16);
}

// q, k, v: rank 4 and f32; on CUDA also f16 or bf16, all three one dtype (that of q). The
// checks and messages of f32 operands are the CPU's on every device.
void require_qkv(const char* op, Device dev, const char* arg, const Tensor& t, const Tensor& q) {
  if (!dev.is_cuda() || !t.defined() || !(is_half(t) || is_half(q))) {
    require_f32(op, arg, t, 4);
    return;
  }
  KILN_ARG(t.dtype() == q.dtype(), op, arg, " is ", dtype_name(t.dtype()), " but q is ",
           dtype_name(q.dtype()), "; q, k and v must share one dtype");
  KILN_ARG(t.ndim() == 4, op, arg, " has ", t.ndim(), " dims ", t.shape().str(), ", expected 4");
}

// Checks the mask's dtype and its broadcast to (B, H, Lq, Lk) = `full`.
void check_mask(const char* op, const Tensor& mask, const Shape& full) {
  KILN_ARG(mask.dtype() == DType::f32 || mask.dtype() == DType::boolean, op, "mask is ",
           dtype_name(mask.dtype()), ", expected bool (true = keep) or f32 (additive)");
  KILN_ARG(mask.ndim() <= 4, op, "mask ", mask.shape().str(), " has more than 4 dims");
  for (int i = 0; i < mask.ndim(); ++i) {
    const int64_t ms = mask.size(i), fs = full[4 - mask.ndim() + i];
    KILN_ARG(ms == fs || ms == 1, op, "mask ", mask.shape().str(),
             " is not broadcastable to (B, H, Lq, Lk) = ", full.str());
  }
}

}  // namespace

Tensor attention(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in, const Tensor& mask,
                 const AttentionParams& prm) {
  const char* op = "attention";
  const Device dev = common_device(op, {&q_in, &k_in, &v_in, &mask});
  require_qkv(op, dev, "q", q_in, q_in);
  require_qkv(op, dev, "k", k_in, q_in);
  require_qkv(op, dev, "v", v_in, q_in);
  const int64_t B = q_in.size(0), H = q_in.size(1), Lq = q_in.size(2), D = q_in.size(3);
  const int64_t Hkv = k_in.size(1), Lk = k_in.size(2), Dv = v_in.size(3);
  KILN_ARG(k_in.size(0) == B && k_in.size(3) == D, op, "k ", k_in.shape().str(),
           " does not match q ", q_in.shape().str(), " (expected (", B, ", Hkv, Lk, ", D, "))");
  KILN_ARG(v_in.size(0) == B && v_in.size(1) == Hkv && v_in.size(2) == Lk, op, "v ",
           v_in.shape().str(), " does not match k ", k_in.shape().str(), " (expected (", B, ", ",
           Hkv, ", ", Lk, ", Dv))");
  KILN_ARG(Hkv > 0 && H % Hkv == 0, op, "q has ", H, " heads, not a multiple of k's ", Hkv,
           " (grouped-query attention needs H % Hkv == 0)");
  KILN_ARG(D > 0 && Dv > 0, op, "head dims must be positive, got q ", q_in.shape().str(), " v ",
           v_in.shape().str());
  KILN_ARG(std::isfinite(prm.scale) && prm.scale >= 0.f, op, "scale ", prm.scale,
           " must be finite and >= 0 (0 = 1/sqrt(head_dim))");
  const Shape full{B, H, Lq, Lk};
  if (dev.is_cuda()) {
    // The CPU's order: an empty output or no keys returns before the mask is looked at.
    const bool trivial = B * H * Lq * Dv == 0 || Lk == 0;
    if (mask.defined() && !trivial) check_mask(op, mask, full);
    cuda_ops::AttentionOptions opt;
    opt.scale = prm.scale;
    opt.causal = prm.causal;
    return cuda_ops::attention(q_in, k_in, v_in, trivial ? Tensor() : mask, opt);
  }
  Tensor out = Tensor::empty({B, H, Lq, Dv}, DType::f32);
  if (out.numel() == 0) return out;
  if (Lk == 0) {  // no keys: every row is fully masked
    std::fill(out.mutable_data<float>(), out.mutable_data<float>() + out.numel(), 0.f);
    return out;
  }

  Tensor maskx;
  MaskView mv;
  if (mask.defined()) {
    check_mask(op, mask, full);
    maskx = mask.expand(full);
    mv.sb = maskx.stride(0), mv.sh = maskx.stride(1), mv.sq = maskx.stride(2);
    mv.sk = maskx.stride(3);
    if (mask.dtype() == DType::f32)
      mv.f32 = maskx.data<float>();
    else
      mv.keep = maskx.data<bool>();
  }

  const Tensor q = unit_last_stride(q_in), k = unit_last_stride(k_in), v = unit_last_stride(v_in);
  // K^T per (b, kv head), (B, Hkv, D, Lk): makes the S gemm's B operand row-major so sgemm
  // packs it with memcpy; costs one pass over K, negligible next to Lq/kBq passes of the gemm.
  Tensor kt = Tensor::empty({B, Hkv, D, Lk}, DType::f32);
  {
    const float* kp = k.data<float>();
    float* ktp = kt.mutable_data<float>();
    const int64_t sb = k.stride(0), sh = k.stride(1), sl = k.stride(2);
    parallel_for(B * Hkv, 1, [&](int64_t begin, int64_t end) {
      for (int64_t bh = begin; bh < end; ++bh) {
        const float* src = kp + (bh / Hkv) * sb + (bh % Hkv) * sh;
        float* dst = ktp + bh * D * Lk;
        for (int64_t j = 0; j < Lk; ++j)
          for (int64_t d = 0; d < D; ++d) dst[d * Lk + j] = src[j * sl + d];
      }
    });
  }

  Problem p;
  p.B = B, p.H = H, p.Hkv = Hkv, p.Lq = Lq, p.Lk = Lk, p.D = D, p.Dv = Dv;
  p.q = q.data<float>(), p.q_sb = q.stride(0), p.q_sh = q.stride(1), p.q_sl = q.stride(2);
  p.kt = kt.data<float>();
  p.v = v.data<float>(), p.v_sb = v.stride(0), p.v_sh = v.stride(1), p.v_sl = v.stride(2);
  p.out = out.mutable_data<float>();
  const float scale = prm.scale > 0.f ? prm.scale : 1.f / std::sqrt(static_cast<float>(D));
  p.alpha = scale * kLog2e;
  p.causal = prm.causal;
  p.mask = mv;
  // Size-1 dims may carry any stride; the gemm needs a real row stride for Lq/Lk == 1.
  if (Lq == 1) p.q_sl = D;
  if (Lk == 1) p.v_sl = Dv;

  // Tasks (b, h, query tile) dealt round-robin to workers: under a causal mask later query
  // tiles have more keys, and dealing keeps the threads' shares equal.
  const int64_t nqt = (Lq + kBq - 1) / kBq, tasks = B * H * nqt;
  const int64_t workers = std::min<int64_t>(num_threads(), tasks);
  parallel_for(workers, 1, [&](int64_t begin, int64_t end) {
    Scratch w;
    for (int64_t wi = begin; wi < end; ++wi)
      for (int64_t t = wi; t < tasks; t += workers) {
        const int64_t bh = t / nqt, qt = t % nqt;
        const int64_t q0 = qt * kBq;
        attend_tile(p, bh / H, bh % H, q0, std::min(kBq, Lq - q0), w);
      }
  });
  return out;
}

}  // namespace kiln::ops
