// Flash attention on CUDA (kernels/cuda/flash_attention*.cu through ops::attention and
// cuda_ops::attention) against references computed here on the host, on fresh random inputs.
// GPU tests skip without a device; the CudaAttentionNoGpu tests (can_implement, dispatch
// errors) run everywhere.
//
// Poisoning: the kernel writes into an output the op allocates; before each run the test
// frees a 0xFF-filled (NaN) block of the output's size so the allocator likely hands it to
// the op (as test_cuda_ops.cpp does); any element left unwritten then shows up as NaN, and
// every comparison below fails on a NaN the reference does not have.
//
// References and tolerances (exact definitions):
//  - ref64: double precision everywhere, from the same (dtype-rounded) q, k, v values:
//    s_ij = scale * sum_d q_id k_jd (+ mask_ij), masked keys excluded, o_i = sum_j softmax(s)_ij
//    v_j; a row with no key left is zeros; lse_i = log sum_j exp(s_ij) (-inf for such a row).
//  - f32 (SIMT path, "CPU-level accuracy"): max_abs(cuda - ref64) <= 2 * max_abs(cpu - ref64)
//    + 1e-6, cpu = ops::attention on the host (the reference op, f32 compute).
//  - f16/bf16 (tensor-core path), FlashAttention's criterion (Dao et al., tests/
//    test_flash_attn.py): max_abs(cuda - ref64) <= 2 * max_abs(naive - ref64) + 1e-5, where
//    `naive` is the textbook same-precision implementation, computed here as
//      rd(x) = x rounded (RNE) to the dtype;
//      s_ij = rd(scale * dot_f32(q_i, k_j)) (dot: f32 sum in index order), with a mask
//             s_ij = rd(s_ij + mask_ij) (f32 add), masked keys -> -inf;
//      p_ij = rd(exp(s_ij - max_j s_ij) / sum_j exp(s_ij - max_j s_ij)) in f32;
//      o_i  = rd(sum_j p_ij v_j) (f32 sum in index order); a row with no key left is zeros.
//  - Skipped tiles (tile mask) and block-causal vs the equivalent dense bool mask: bit-identical
//    output (a masked score is exp2(-inf) = 0 and leaves m, l and O unchanged bit for bit).
//  - lse: |cuda - ref64| <= 1e-4 + 1e-5 |ref64| (f32 statistics, exp2/log2 in f32).
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "cuda/flash_attention.hpp"
#include "kiln/core/device.hpp"
#include "kiln/core/storage.hpp"
#include "kiln/core/tensor.hpp"
#include "kiln/cuda/cuda_ops.hpp"
#include "kiln/ops/ops.hpp"
#include "cuda_test_util.hpp"
#include "test_support.hpp"

using namespace kiln;
using namespace kiln::cuda_test;
namespace kc = kiln::kernels::cuda;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

enum class MaskKind { none, keep, add };

struct Case {
  int64_t B, H, Hkv, Lq, Lk, D, Dv;
  bool causal = false;
  int64_t block = 0;  // block-causal block size (cuda_ops::attention only)
  MaskKind mask = MaskKind::none;
  bool bhld_view = false;  // q/k/v stored (B, L, H, D), passed permuted to (B, H, L, D)
  bool unaligned = false;  // q sliced at an element offset of 1 (copied by the glue)
  std::string str() const {
    // Appended piecewise: GCC 12 misreports operator+ chains under -Wrestrict.
    std::string s = "B";
    s.append(std::to_string(B));
    s.append(" H").append(std::to_string(H)).append("/").append(std::to_string(Hkv));
    s.append(" Lq").append(std::to_string(Lq)).append(" Lk").append(std::to_string(Lk));
    s.append(" D").append(std::to_string(D)).append("/").append(std::to_string(Dv));
    if (causal) s.append(" causal");
    if (block) s.append(" block").append(std::to_string(block));
    if (mask == MaskKind::keep) s.append(" bool-mask");
    if (mask == MaskKind::add) s.append(" add-mask");
    if (bhld_view) s.append(" bhld-view");
    if (unaligned) s.append(" unaligned");
    return s;
  }
};

// Host inputs of one case in f32 (values already representable in `dt`) and their device
// copies in `dt` (views built on the device, as a model would pass them).
struct Inputs {
  Tensor q, k, v, mask;      // CPU f32 (mask: bool or f32), logical (B, H, L, D)
  Tensor dq, dk, dv, dmask;  // device, dtype dt
};

Tensor rounded(const Tensor& t, DType dt) {
  return dt == DType::f32 ? t : t.to(dt).to(DType::f32);
}

// (B, H, L, D) tensor; with `bhld`, stored (B, L, H, D) and permuted.
Tensor make_operand(const Case& c, int64_t heads, int64_t L, int64_t D, uint64_t seed, float lo,
                    float hi, DType dt, Tensor* dev) {
  if (c.bhld_view) {
    Tensor s = rounded(test::random_tensor({c.B, L, heads, D}, seed, lo, hi), dt);
    *dev = s.to(dt).to(kGpu).permute({0, 2, 1, 3});
    return s.permute({0, 2, 1, 3});
  }
  Tensor s = rounded(test::random_tensor({c.B, heads, L, D}, seed, lo, hi), dt);
  *dev = s.to(dt).to(kGpu);
  return s;
}

Inputs make_inputs(const Case& c, DType dt, uint64_t seed) {
  Inputs in;
  in.q = make_operand(c, c.H, c.Lq, c.D, seed, -2.f, 2.f, dt, &in.dq);
  in.k = make_operand(c, c.Hkv, c.Lk, c.D, seed + 1, -2.f, 2.f, dt, &in.dk);
  in.v = make_operand(c, c.Hkv, c.Lk, c.Dv, seed + 2, -1.f, 1.f, dt, &in.dv);
  if (c.unaligned) {  // same values, device pointer 1 element past a 16-byte boundary
    Tensor big = Tensor::zeros({c.B, c.H, c.Lq, c.D + 8}, dt, kGpu);
    Tensor view = big.slice(3, 1, c.D + 1);
    view.copy_from(in.dq);
    in.dq = view;
  }
  std::mt19937 rng(static_cast<uint32_t>(seed + 3));
  if (c.mask == MaskKind::keep) {  // (B, 1, Lq, Lk): ~30% dropped, row 0 of batch 0 all dropped
    in.mask = Tensor::empty({c.B, 1, c.Lq, c.Lk}, DType::boolean);
    bool* m = in.mask.mutable_data<bool>();
    std::uniform_real_distribution<float> u(0.f, 1.f);
    for (int64_t i = 0; i < in.mask.numel(); ++i) m[i] = u(rng) > 0.3f;
    for (int64_t j = 0; j < c.Lk; ++j) m[j] = false;
  } else if (c.mask == MaskKind::add) {  // (H, Lq, Lk) in [-3, 3], 10% -inf, one -inf row
    in.mask = test::random_tensor({c.H, c.Lq, c.Lk}, seed + 4, -3.f, 3.f);
    float* m = in.mask.mutable_data<float>();
    std::uniform_real_distribution<float> u(0.f, 1.f);
    for (int64_t i = 0; i < in.mask.numel(); ++i)
      if (u(rng) < 0.1f) m[i] = -std::numeric_limits<float>::infinity();
    const int64_t row = c.Lq / 2;
    for (int64_t j = 0; j < c.Lk; ++j) m[row * c.Lk + j] = -std::numeric_limits<float>::infinity();
  }
  if (in.mask.defined()) in.dmask = in.mask.to(kGpu);
  return in;
}

// Dense (B, H, Lq, Lk) view of a case's masking: keep flags and additive terms.
struct DenseMask {
  std::vector<uint8_t> keep;
  std::vector<double> add;
};
DenseMask dense_mask(const Case& c, const Tensor& mask, const Tensor& tiles) {
  const int64_t n = c.B * c.H * c.Lq * c.Lk;
  DenseMask dm{std::vector<uint8_t>(n, 1), std::vector<double>(n, 0.0)};
  std::vector<double> mv, tv;
  if (mask.defined()) mv = test::to_doubles(mask.expand({c.B, c.H, c.Lq, c.Lk}));
  const int64_t nqt = kc::flash_attn_num_tiles(c.Lq, kc::kFlashAttnTileQ);
  const int64_t nkt = kc::flash_attn_num_tiles(c.Lk, kc::kFlashAttnTileK);
  if (tiles.defined()) tv = test::to_doubles(tiles.expand({c.B, c.H, nqt, nkt}));
  for (int64_t bh = 0; bh < c.B * c.H; ++bh)
    for (int64_t i = 0; i < c.Lq; ++i)
      for (int64_t j = 0; j < c.Lk; ++j) {
        const int64_t e = (bh * c.Lq + i) * c.Lk + j;
        bool keep = !(c.causal && j > i) && !(c.block > 0 && j / c.block > i / c.block);
        if (!tv.empty())
          keep =
              keep && tv[(bh * nqt + i / kc::kFlashAttnTileQ) * nkt + j / kc::kFlashAttnTileK] != 0;
        if (!mv.empty()) {
          if (mask.dtype() == DType::boolean)
            keep = keep && mv[e] != 0;
          else
            dm.add[e] = mv[e];
        }
        if (keep && std::isinf(dm.add[e]) && dm.add[e] < 0) keep = false;
        dm.keep[e] = keep;
      }
  return dm;
}

// Double-precision attention (ref64 above); also the lse.
void reference64(const Case& c, const Inputs& in, const DenseMask& dm, float scale,
                 std::vector<double>* out, std::vector<double>* lse) {
  const std::vector<double> q = test::to_doubles(in.q), k = test::to_doubles(in.k),
                            v = test::to_doubles(in.v);
  out->assign(c.B * c.H * c.Lq * c.Dv, 0.0);
  lse->assign(c.B * c.H * c.Lq, -kInf);
  std::vector<double> s(c.Lk);
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t h = 0; h < c.H; ++h) {
      const int64_t hk = h / (c.H / c.Hkv);
      for (int64_t i = 0; i < c.Lq; ++i) {
        const double* qi = &q[((b * c.H + h) * c.Lq + i) * c.D];
        const int64_t mrow = ((b * c.H + h) * c.Lq + i) * c.Lk;
        double mx = -kInf;
        for (int64_t j = 0; j < c.Lk; ++j) {
          if (!dm.keep[mrow + j]) {
            s[j] = -kInf;
            continue;
          }
          const double* kj = &k[((b * c.Hkv + hk) * c.Lk + j) * c.D];
          double dot = 0;
          for (int64_t d = 0; d < c.D; ++d) dot += qi[d] * kj[d];
          s[j] = scale * dot + dm.add[mrow + j];
          mx = std::max(mx, s[j]);
        }
        if (mx == -kInf) continue;
        double sum = 0;
        for (int64_t j = 0; j < c.Lk; ++j) sum += s[j] == -kInf ? 0.0 : std::exp(s[j] - mx);
        (*lse)[(b * c.H + h) * c.Lq + i] = mx + std::log(sum);
        double* oi = &(*out)[((b * c.H + h) * c.Lq + i) * c.Dv];
        for (int64_t j = 0; j < c.Lk; ++j) {
          if (s[j] == -kInf) continue;
          const double pj = std::exp(s[j] - mx) / sum;
          const double* vj = &v[((b * c.Hkv + hk) * c.Lk + j) * c.Dv];
          for (int64_t d = 0; d < c.Dv; ++d) oi[d] += pj * vj[d];
        }
      }
    }
}

float round_to(float x, DType dt) {
  if (dt == DType::bf16) return bf16_to_f32(f32_to_bf16(x));
  if (dt == DType::f16) return f16_to_f32(f32_to_f16(x));
  return x;
}

// The naive same-precision implementation (exact definition at the top of the file).
std::vector<double> naive_same_precision(const Case& c, const Inputs& in, const DenseMask& dm,
                                         float scale, DType dt) {
  const std::vector<double> qd = test::to_doubles(in.q), kd = test::to_doubles(in.k),
                            vd = test::to_doubles(in.v);
  const std::vector<float> q(qd.begin(), qd.end()), k(kd.begin(), kd.end()),
      v(vd.begin(), vd.end());
  std::vector<double> out(c.B * c.H * c.Lq * c.Dv, 0.0);
  std::vector<float> s(c.Lk), p(c.Lk), acc(c.Dv);
  const float ninf = -std::numeric_limits<float>::infinity();
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t h = 0; h < c.H; ++h) {
      const int64_t hk = h / (c.H / c.Hkv);
      for (int64_t i = 0; i < c.Lq; ++i) {
        const float* qi = &q[((b * c.H + h) * c.Lq + i) * c.D];
        const int64_t mrow = ((b * c.H + h) * c.Lq + i) * c.Lk;
        float mx = ninf;
        for (int64_t j = 0; j < c.Lk; ++j) {
          if (!dm.keep[mrow + j]) {
            s[j] = ninf;
            continue;
          }
          const float* kj = &k[((b * c.Hkv + hk) * c.Lk + j) * c.D];
          float dot = 0.f;
          for (int64_t d = 0; d < c.D; ++d) dot += qi[d] * kj[d];
          s[j] = round_to(scale * dot, dt);
          if (dm.add[mrow + j] != 0.0)
            s[j] = round_to(s[j] + static_cast<float>(dm.add[mrow + j]), dt);
          mx = std::max(mx, s[j]);
        }
        if (mx == ninf) continue;
        float sum = 0.f;
        for (int64_t j = 0; j < c.Lk; ++j) {
          p[j] = s[j] == ninf ? 0.f : std::exp(s[j] - mx);
          sum += p[j];
        }
        std::fill(acc.begin(), acc.end(), 0.f);
        for (int64_t j = 0; j < c.Lk; ++j) {
          const float pj = round_to(p[j] / sum, dt);
          const float* vj = &v[((b * c.Hkv + hk) * c.Lk + j) * c.Dv];
          for (int64_t d = 0; d < c.Dv; ++d) acc[d] += pj * vj[d];
        }
        for (int64_t d = 0; d < c.Dv; ++d)
          out[((b * c.H + h) * c.Lq + i) * c.Dv + d] = round_to(acc[d], dt);
      }
    }
  return out;
}

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b,
                    int64_t* nan = nullptr) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i]) && !std::isnan(b[i])) {
      if (nan) ++*nan;
      m = kInf;
      continue;
    }
    m = std::max(m, std::fabs(a[i] - b[i]));
  }
  return m;
}

// Runs one case through ops::attention (or cuda_ops::attention when the case needs its
// options) and checks it against ref64 with the dtype's criterion.
void check_case(const Case& c, DType dt, uint64_t seed) {
  SCOPED_TRACE(c.str() + " " + std::string(dtype_name(dt)));
  const Inputs in = make_inputs(c, dt, seed);
  const float scale = 1.f / std::sqrt(static_cast<float>(c.D));
  const DenseMask dm = dense_mask(c, in.mask, Tensor());
  std::vector<double> ref, lse_ref;
  reference64(c, in, dm, scale, &ref, &lse_ref);

  poison_next_allocation(dtype_nbytes(dt, c.B * c.H * c.Lq * c.Dv));
  Tensor out, lse;
  if (c.block > 0) {
    cuda_ops::AttentionOptions opt;
    opt.causal = c.causal;
    opt.causal_block = c.block;
    out = cuda_ops::attention(in.dq, in.dk, in.dv, in.dmask, opt, &lse);
  } else {
    ops::AttentionParams prm;
    prm.causal = c.causal;
    out = ops::attention(in.dq, in.dk, in.dv, in.dmask, prm);
  }
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  EXPECT_TRUE(out.device().is_cuda());
  EXPECT_EQ(out.dtype(), dt);
  EXPECT_TRUE(out.shape() == (Shape{c.B, c.H, c.Lq, c.Dv}));
  int64_t nan = 0;
  const double err = max_abs_diff(test::to_doubles(out), ref, &nan);
  EXPECT_EQ(nan, 0) << "NaN in the output (an element left unwritten?)";

  if (dt == DType::f32) {
    ops::AttentionParams prm;
    prm.causal = c.causal;
    Tensor cpu_mask = in.mask;
    if (c.block > 0) {  // the CPU op has no block-causal flag: the same masking as -inf terms
      cpu_mask = Tensor::empty({c.B, c.H, c.Lq, c.Lk}, DType::f32);
      float* m = cpu_mask.mutable_data<float>();
      for (int64_t e = 0; e < cpu_mask.numel(); ++e)
        m[e] = dm.keep[e] ? static_cast<float>(dm.add[e]) : -std::numeric_limits<float>::infinity();
    }
    const double cpu_err =
        max_abs_diff(test::to_doubles(ops::attention(in.q, in.k, in.v, cpu_mask, prm)), ref);
    EXPECT_LE(err, 2 * cpu_err + 1e-6) << "cpu error " << cpu_err;
    std::printf("  %-48s f32  err %.3g (cpu %.3g)\n", c.str().c_str(), err, cpu_err);
  } else {
    const double naive_err = max_abs_diff(naive_same_precision(c, in, dm, scale, dt), ref);
    EXPECT_LE(err, 2 * naive_err + 1e-5) << "naive " << dtype_name(dt) << " error " << naive_err;
    std::printf("  %-48s %-4s err %.3g (naive %.3g)\n", c.str().c_str(),
                std::string(dtype_name(dt)).c_str(), err, naive_err);
  }
  if (lse.defined()) {
    const std::vector<double> l = test::to_doubles(lse);
    for (size_t i = 0; i < l.size(); ++i) {
      if (std::isinf(lse_ref[i])) {
        EXPECT_EQ(l[i], lse_ref[i]) << "lse row " << i;
      } else {
        EXPECT_NEAR(l[i], lse_ref[i], 1e-4 + 1e-5 * std::fabs(lse_ref[i])) << "lse row " << i;
      }
    }
  }
  // Rows with no key attended are exact zeros.
  const std::vector<double> o = test::to_doubles(out);
  for (int64_t r = 0; r < c.B * c.H * c.Lq; ++r) {
    bool any = false;
    for (int64_t j = 0; j < c.Lk && !any; ++j) any = dm.keep[r * c.Lk + j];
    if (any) continue;
    for (int64_t d = 0; d < c.Dv; ++d) ASSERT_EQ(o[r * c.Dv + d], 0.0) << "masked row " << r;
  }
}

// Sizes exercised by every dtype: tails of 1, 7, 63, 65, 200 and 1000+, Lq != Lk, GQA.
std::vector<Case> size_cases(int64_t D) {
  return {
      {1, 1, 1, 1, 1, D, D},       {1, 2, 2, 7, 7, D, D},
      {2, 3, 3, 63, 65, D, D},     {1, 4, 2, 65, 63, D, D},  // GQA 2:1
      {1, 4, 1, 200, 7, D, D},                               // MQA
      {1, 2, 2, 1, 1030, D, D},                              // one query, long keys
      {1, 1, 1, 1100, 1031, D, D},
  };
}

}  // namespace

// ---------------------------------------------------------------- no GPU needed

namespace {
float dummy[64];

Tensor fake_cuda(const Shape& shape, DType dtype = DType::f32) {
  auto buf = std::make_shared<std::vector<char>>(
      static_cast<size_t>(dtype_nbytes(dtype, shape_numel(shape))) + 64);
  auto st = Storage::borrow(buf->data(), buf->size(), Device::cuda(0), buf, false);
  return Tensor::from_storage(st, 0, shape, dtype);
}

kc::FlashAttnParams valid_params(kc::ElemType t, int64_t D) {
  kc::FlashAttnParams p;
  p.type = t;
  p.q = p.k = p.v = dummy;
  p.o = dummy;
  p.B = 1, p.H = 4, p.Hkv = 2, p.Lq = 33, p.Lk = 77, p.D = p.Dv = D;
  p.q_sh = p.k_sh = p.v_sh = p.o_sh = 80 * D;
  p.q_sl = p.k_sl = p.v_sl = p.o_sl = D;
  p.scale = 0.125f;
  return p;
}
}  // namespace

TEST(CudaAttentionNoGpu, CanImplement) {
  for (int64_t d : {64, 80, 96, 128}) {
    EXPECT_EQ(kc::can_implement(valid_params(kc::ElemType::bf16, d)), "") << d;
    EXPECT_EQ(kc::can_implement(valid_params(kc::ElemType::f16, d)), "") << d;
  }
  EXPECT_NE(kc::can_implement(valid_params(kc::ElemType::f16, 72)).find("head dim 72 in f16"),
            std::string::npos);
  EXPECT_NE(kc::can_implement(valid_params(kc::ElemType::bf16, 256)).find("64, 80, 96 or 128"),
            std::string::npos);
  for (int64_t d : {1, 7, 72, 200, 256})
    EXPECT_EQ(kc::can_implement(valid_params(kc::ElemType::f32, d)), "");
  EXPECT_NE(kc::can_implement(valid_params(kc::ElemType::f32, 257)).find("<= 256"),
            std::string::npos);

  kc::FlashAttnParams p = valid_params(kc::ElemType::bf16, 64);
  p.Dv = 128;
  EXPECT_NE(kc::can_implement(p).find("D == Dv"), std::string::npos);
  p = valid_params(kc::ElemType::bf16, 64);
  p.q_sl = 68;  // rows not 16-byte aligned
  EXPECT_NE(kc::can_implement(p).find("16-byte"), std::string::npos);
  p = valid_params(kc::ElemType::f16, 64);
  p.k = reinterpret_cast<const char*>(dummy) + 2;
  EXPECT_NE(kc::can_implement(p).find("16-byte"), std::string::npos);
  p = valid_params(kc::ElemType::f32, 64);
  p.q_sl = 67;  // the f32 path reads any row stride
  EXPECT_EQ(kc::can_implement(p), "");
  p.H = 3;
  EXPECT_NE(kc::can_implement(p).find("multiple of Hkv"), std::string::npos);
  p = valid_params(kc::ElemType::f32, 64);
  p.mask_add = dummy;
  p.mask_keep = reinterpret_cast<const uint8_t*>(dummy);
  EXPECT_NE(kc::can_implement(p).find("both"), std::string::npos);
  p = valid_params(kc::ElemType::f32, 64);
  p.q = nullptr;
  EXPECT_NE(kc::can_implement(p).find("null"), std::string::npos);
  p.Lq = 0;  // empty: nothing is read
  EXPECT_EQ(kc::can_implement(p), "");
  p = valid_params(kc::ElemType::f32, 64);
  p.causal_block = -1;
  EXPECT_NE(kc::can_implement(p).find("causal block"), std::string::npos);
  EXPECT_EQ(kc::flash_attn_num_tiles(65, kc::kFlashAttnTileQ), 2);
  EXPECT_EQ(kc::flash_attn_num_tiles(64, kc::kFlashAttnTileK), 1);
}

TEST(CudaAttentionNoGpu, UnsupportedCasesNameOpDeviceAndReason) {
  // Thrown before any allocation or kernel: fake device tensors are never touched.
  const Tensor q = fake_cuda({1, 2, 5, 72}, DType::f16), k = fake_cuda({1, 2, 9, 72}, DType::f16),
               v = fake_cuda({1, 2, 9, 72}, DType::f16);
  EXPECT_TRUE(
      test::throws_error([&] { ops::attention(q, k, v); }, Status::unsupported,
                         {"[attention]", "no cuda:0 kernel for this case", "head dim 72 in f16"}));
  const Tensor q32 = fake_cuda({1, 2, 5, 300}), k32 = fake_cuda({1, 2, 9, 300}),
               v32 = fake_cuda({1, 2, 9, 16});
  EXPECT_TRUE(test::throws_error([&] { ops::attention(q32, k32, v32); }, Status::unsupported,
                                 {"[attention]", "cuda:0", "<= 256"}));
  const Tensor qb = fake_cuda({1, 2, 5, 64}, DType::bf16),
               kb = fake_cuda({1, 2, 9, 64}, DType::bf16),
               vb = fake_cuda({1, 2, 9, 128}, DType::bf16);
  EXPECT_TRUE(test::throws_error([&] { ops::attention(qb, kb, vb); }, Status::unsupported,
                                 {"[attention]", "cuda:0", "D == Dv"}));
}

TEST(CudaAttentionNoGpu, ValidationMatchesCpu) {
  // The same invalid arguments on the CPU and on (fake) CUDA tensors give the same message.
  struct Bad {
    Shape q, k, v, mask;
    DType mask_dtype = DType::f32;
  };
  const std::vector<Bad> bad = {
      {{1, 2, 5, 8}, {1, 2, 9, 4}, {1, 2, 9, 8}, {}},      // k head dim
      {{1, 2, 5, 8}, {1, 2, 9, 8}, {1, 2, 7, 8}, {}},      // v length
      {{1, 3, 5, 8}, {1, 2, 9, 8}, {1, 2, 9, 8}, {}},      // H % Hkv
      {{1, 2, 5, 8}, {1, 2, 9, 8}, {1, 2, 9, 8}, {5, 8}},  // mask not broadcastable
      {{1, 2, 5, 8}, {1, 2, 9, 8}, {1, 2, 9, 8}, {5, 9}, DType::i32},
      {{2, 5, 8}, {1, 2, 9, 8}, {1, 2, 9, 8}, {}},  // rank
  };
  for (const Bad& b : bad) {
    auto message = [&](bool cuda) {
      auto make = [&](const Shape& s, DType dt) {
        return cuda ? fake_cuda(s, dt) : Tensor::zeros(s, dt);
      };
      const Tensor m = b.mask.size() ? make(b.mask, b.mask_dtype) : Tensor();
      try {
        ops::attention(make(b.q, DType::f32), make(b.k, DType::f32), make(b.v, DType::f32), m);
      } catch (const Error& e) {
        EXPECT_EQ(e.code(), Status::invalid_argument);
        return std::string(e.what());
      }
      return std::string("no error");
    };
    EXPECT_EQ(message(true), message(false));
    EXPECT_NE(message(false), "no error");
  }
  // Half types: allowed on CUDA, one dtype for q, k and v.
  EXPECT_TRUE(test::throws_error(
      [] {
        ops::attention(fake_cuda({1, 2, 5, 64}, DType::f16), fake_cuda({1, 2, 9, 64}, DType::bf16),
                       fake_cuda({1, 2, 9, 64}, DType::f16));
      },
      Status::invalid_argument, {"[attention]", "k is bf16 but q is f16"}));
  EXPECT_TRUE(test::throws_error(
      [] {
        ops::attention(Tensor::zeros({1, 2, 5, 64}, DType::f16),
                       Tensor::zeros({1, 2, 9, 64}, DType::f16),
                       Tensor::zeros({1, 2, 9, 64}, DType::f16));
      },
      Status::invalid_argument, {"[attention]", "q is f16, expected f32"}));
}

// ---------------------------------------------------------------- GPU

TEST(CudaAttention, F32MatchesCpuAccuracy) {
  REQUIRE_GPU();
  uint64_t seed = 100;
  for (int64_t D : {64, 40, 72, 128, 256})
    for (Case c : size_cases(D)) check_case(c, DType::f32, seed++);
  check_case({1, 2, 2, 63, 65, 24, 200}, DType::f32, seed++);  // D != Dv
  check_case({1, 2, 2, 33, 77, 1, 3}, DType::f32, seed++);
  Case view{2, 4, 2, 65, 130, 64, 64};
  view.bhld_view = true;
  check_case(view, DType::f32, seed++);
}

TEST(CudaAttention, HalfMeetsFlashAttentionCriterion) {
  REQUIRE_GPU();
  uint64_t seed = 200;
  for (DType dt : {DType::bf16, DType::f16})
    for (int64_t D : {64, 80, 96, 128})
      for (Case c : size_cases(D)) check_case(c, dt, seed++);
}

TEST(CudaAttention, StridedAndUnalignedViews) {
  REQUIRE_GPU();
  uint64_t seed = 300;
  for (DType dt : {DType::bf16, DType::f16, DType::f32}) {
    Case view{2, 4, 2, 65, 130, 64, 64};
    view.bhld_view = true;  // (B, L, H, D) memory read in place as (B, H, L, D)
    check_case(view, dt, seed++);
    Case un{1, 2, 2, 70, 70, 80, 80};
    un.unaligned = true;
    check_case(un, dt, seed++);
  }
}

TEST(CudaAttention, CausalAndMasks) {
  REQUIRE_GPU();
  uint64_t seed = 400;
  for (DType dt : {DType::f32, DType::bf16, DType::f16})
    for (MaskKind mk : {MaskKind::none, MaskKind::keep, MaskKind::add})
      for (bool causal : {false, true}) {
        if (mk == MaskKind::none && !causal) continue;
        for (Case c : std::vector<Case>{{1, 2, 2, 7, 7, 64, 64},
                                        {2, 2, 1, 200, 200, 96, 96},
                                        {1, 2, 2, 130, 65, 128, 128},
                                        {1, 1, 1, 65, 300, 80, 80}}) {
          c.causal = causal;
          c.mask = mk;
          check_case(c, dt, seed++);
        }
      }
}

TEST(CudaAttention, BlockCausalMatchesReferenceAndLse) {
  REQUIRE_GPU();
  uint64_t seed = 500;
  for (DType dt : {DType::f32, DType::bf16, DType::f16})
    for (int64_t block : {1, 7, 64, 100})
      for (Case c : std::vector<Case>{{1, 2, 2, 200, 200, 64, 64}, {1, 2, 1, 129, 300, 128, 128}}) {
        c.block = block;
        check_case(c, dt, seed++);
        c.mask = MaskKind::add;
        check_case(c, dt, seed++);
      }
}

// Skipped tiles equal a dense bool mask of the same tiles, bit for bit; block-causal equals
// its dense bool mask bit for bit too.
TEST(CudaAttention, TileMaskEqualsDenseBoolMask) {
  REQUIRE_GPU();
  uint64_t seed = 600;
  for (DType dt : {DType::bf16, DType::f16, DType::f32})
    for (const Case& c :
         std::vector<Case>{{2, 2, 1, 200, 300, 64, 64}, {1, 3, 3, 65, 1030, 128, 128}}) {
      SCOPED_TRACE(c.str() + " " + std::string(dtype_name(dt)));
      const Inputs in = make_inputs(c, dt, seed++);
      const int64_t nqt = kc::flash_attn_num_tiles(c.Lq, kc::kFlashAttnTileQ);
      const int64_t nkt = kc::flash_attn_num_tiles(c.Lk, kc::kFlashAttnTileK);
      Tensor tiles = Tensor::empty({c.B, c.H, nqt, nkt}, DType::u8);
      std::mt19937 rng(static_cast<uint32_t>(seed));
      uint8_t* t = tiles.mutable_data<uint8_t>();
      for (int64_t i = 0; i < tiles.numel(); ++i) t[i] = rng() % 3 != 0;
      for (int64_t j = 0; j < nkt; ++j) t[j] = 0;  // query tile 0 of (0, 0) skips everything
      const DenseMask dm = dense_mask(c, Tensor(), tiles);
      Tensor dense = Tensor::empty({c.B, c.H, c.Lq, c.Lk}, DType::boolean);
      bool* dp = dense.mutable_data<bool>();
      for (int64_t i = 0; i < dense.numel(); ++i) dp[i] = dm.keep[i];

      cuda_ops::AttentionOptions opt;
      opt.tile_mask = tiles.to(kGpu);
      poison_next_allocation(dtype_nbytes(dt, c.B * c.H * c.Lq * c.Dv));
      Tensor lse;
      const std::vector<double> sparse =
          test::to_doubles(cuda_ops::attention(in.dq, in.dk, in.dv, {}, opt, &lse));
      const std::vector<double> full =
          test::to_doubles(ops::attention(in.dq, in.dk, in.dv, dense.to(kGpu)));
      ASSERT_EQ(sparse.size(), full.size());
      int64_t differ = 0;
      for (size_t i = 0; i < sparse.size(); ++i) differ += !(sparse[i] == full[i]);
      EXPECT_EQ(differ, 0);
      std::vector<double> ref, lse_ref;
      reference64(c, in, dm, 1.f / std::sqrt(static_cast<float>(c.D)), &ref, &lse_ref);
      EXPECT_LT(max_abs_diff(sparse, ref), dt == DType::f32 ? 1e-5 : 2e-2);
      const std::vector<double> l = test::to_doubles(lse);
      for (size_t i = 0; i < l.size(); ++i)
        if (std::isinf(lse_ref[i]))
          EXPECT_EQ(l[i], lse_ref[i]);
        else
          EXPECT_NEAR(l[i], lse_ref[i], 1e-4 + 1e-5 * std::fabs(lse_ref[i]));

      // Block-causal (block 50) against its dense bool mask.
      cuda_ops::AttentionOptions bc;
      bc.causal_block = 50;
      Tensor keep = Tensor::empty({c.Lq, c.Lk}, DType::boolean);
      bool* kp = keep.mutable_data<bool>();
      for (int64_t i = 0; i < c.Lq; ++i)
        for (int64_t j = 0; j < c.Lk; ++j) kp[i * c.Lk + j] = j / 50 <= i / 50;
      const std::vector<double> blk =
          test::to_doubles(cuda_ops::attention(in.dq, in.dk, in.dv, {}, bc));
      const std::vector<double> blk_dense =
          test::to_doubles(ops::attention(in.dq, in.dk, in.dv, keep.to(kGpu)));
      differ = 0;
      for (size_t i = 0; i < blk.size(); ++i) differ += !(blk[i] == blk_dense[i]);
      EXPECT_EQ(differ, 0);
    }
}

TEST(CudaAttention, EmptyAndKeylessInputs) {
  REQUIRE_GPU();
  for (DType dt : {DType::f32, DType::bf16}) {
    const Tensor q = Tensor::zeros({1, 2, 0, 64}, dt, kGpu),
                 k = Tensor::zeros({1, 2, 5, 64}, dt, kGpu);
    EXPECT_EQ(ops::attention(q, k, k).numel(), 0);
    const Tensor q2 = Tensor::full({1, 2, 3, 64}, 1.f).to(dt).to(kGpu);
    const Tensor k0 = Tensor::zeros({1, 2, 0, 64}, dt, kGpu);
    poison_next_allocation(dtype_nbytes(dt, 6 * 64));
    for (double x : test::to_doubles(ops::attention(q2, k0, k0))) EXPECT_EQ(x, 0.0);
  }
}
