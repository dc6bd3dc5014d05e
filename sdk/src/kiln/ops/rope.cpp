// Rotary position embedding: cos/sin tables and their application.
// Tables follow diffusers' get_1d_rotary_pos_embed as FluxPosEmbed calls it (freqs_dtype =
// float64): freqs = 1 / theta^(arange(0, dim, 2) / dim) in float64, angles = outer(pos, freqs)
// in float64 (pos is ids.float(), promoted), cos/sin in float64, then cast to f32. Computing the
// angles in f32 instead would be off by up to ~pos * 6e-8 rad, which at pos ~ 4096 is 2.4e-4.
// Ref: diffusers src/diffusers/models/embeddings.py, get_1d_rotary_pos_embed and FluxPosEmbed;
//      Su et al. 2021, "RoFormer", eq. 34.
#include <cmath>
#include <vector>

#include "kiln/core/copy.hpp"
#include "kiln/core/parallel.hpp"
#include "kiln/cuda/cuda_ops.hpp"
#include "kiln/ops/ops.hpp"

namespace kiln::ops {

namespace {

// Position values as diffusers sees them: ids.float(), i.e. rounded to f32 first.
std::vector<double> positions_of(const char* op, const char* arg, const Tensor& t) {
  KILN_ARG(t.dtype() == DType::f32 || t.dtype() == DType::i64 || t.dtype() == DType::i32, op, arg,
           " is ", dtype_name(t.dtype()), ", expected f32, i64 or i32 positions");
  const Tensor c = t.contiguous();
  const char* p = static_cast<const char*>(c.raw_data());
  const int sz = dtype_size(c.dtype());
  std::vector<double> out(static_cast<size_t>(c.numel()));
  for (int64_t i = 0; i < c.numel(); ++i) out[i] = load_as_f32(p + i * sz, c.dtype());
  return out;
}

// Writes pairs [col0, col0 + dim/2) of rows of (L, ld) tables for positions pos (stride
// pos_stride) rotating `dim` channels.
void fill_axis(const double* pos, int64_t pos_stride, int64_t L, int dim, double theta, float* cos,
               float* sin, int64_t ld, int64_t col0) {
  const int half = dim / 2;
  std::vector<double> freqs(static_cast<size_t>(half));
  for (int i = 0; i < half; ++i)
    freqs[i] = 1.0 / std::pow(theta, static_cast<double>(2 * i) / static_cast<double>(dim));
  for (int64_t l = 0; l < L; ++l) {
    const double pl = pos[l * pos_stride];
    for (int i = 0; i < half; ++i) {
      const double a = pl * freqs[i];
      cos[l * ld + col0 + i] = static_cast<float>(std::cos(a));
      sin[l * ld + col0 + i] = static_cast<float>(std::sin(a));
    }
  }
}

void check_theta(const char* op, float theta) {
  KILN_ARG(std::isfinite(theta) && theta > 0.f, op, "theta ", theta, " must be finite and > 0");
}

}  // namespace

RopeTable rope_table_1d(const Tensor& positions, int dim, float theta) {
  const char* op = "rope_table_1d";
  require_cpu(op, {&positions});
  KILN_ARG(positions.defined(), op, "positions is undefined");
  KILN_ARG(positions.ndim() == 1, op, "positions has shape ", positions.shape().str(),
           ", expected (L)");
  KILN_ARG(dim > 0 && dim % 2 == 0, op, "dim ", dim, " must be positive and even");
  check_theta(op, theta);
  const std::vector<double> pos = positions_of(op, "positions", positions);
  const int64_t L = positions.size(0);
  RopeTable t{Tensor::empty({L, dim / 2}, DType::f32), Tensor::empty({L, dim / 2}, DType::f32)};
  fill_axis(pos.data(), 1, L, dim, theta, t.cos.mutable_data<float>(), t.sin.mutable_data<float>(),
            dim / 2, 0);
  return t;
}

RopeTable rope_table(const Tensor& ids, std::span<const int> axes_dims, float theta) {
  const char* op = "rope_table";
  require_cpu(op, {&ids});
  KILN_ARG(ids.defined(), op, "ids is undefined");
  KILN_ARG(ids.ndim() == 2, op, "ids has shape ", ids.shape().str(), ", expected (L, A)");
  const int64_t L = ids.size(0), A = ids.size(1);
  KILN_ARG(static_cast<int64_t>(axes_dims.size()) == A, op, "axes_dims has ", axes_dims.size(),
           " entries but ids ", ids.shape().str(), " has ", A, " axes");
  int64_t total = 0;
  for (size_t a = 0; a < axes_dims.size(); ++a) {
    KILN_ARG(axes_dims[a] > 0 && axes_dims[a] % 2 == 0, op, "axes_dims[", a, "] = ", axes_dims[a],
             " must be positive and even");
    total += axes_dims[a];
  }
  check_theta(op, theta);
  const std::vector<double> pos = positions_of(op, "ids", ids);  // (L, A) row-major
  RopeTable t{Tensor::empty({L, total / 2}, DType::f32), Tensor::empty({L, total / 2}, DType::f32)};
  int64_t col = 0;
  for (int64_t a = 0; a < A; ++a) {
    fill_axis(pos.data() + a, A, L, axes_dims[a], theta, t.cos.mutable_data<float>(),
              t.sin.mutable_data<float>(), total / 2, col);
    col += axes_dims[a] / 2;
  }
  return t;
}

// interleaved: (y[2i], y[2i+1]) = (x[2i] c - x[2i+1] s, x[2i] s + x[2i+1] c)
// split_half:  (y[i], y[i+D/2]) = (x[i] c - x[i+D/2] s, x[i] s + x[i+D/2] c)
// Ref: diffusers embeddings.py apply_rotary_emb (use_real_unbind_dim -1 / -2).
Tensor apply_rope(const Tensor& x_in, const RopeTable& table, RopeLayout layout, int seq_dim) {
  const char* op = "apply_rope";
  const Device dev = common_device(op, {&x_in, &table.cos, &table.sin});
  require_f32(op, "x", x_in, 4);
  require_f32(op, "table.cos", table.cos, 2);
  require_f32(op, "table.sin", table.sin, 2);
  KILN_ARG(seq_dim == 1 || seq_dim == 2, op, "seq_dim ", seq_dim,
           " must be 2 for (B, H, L, D) or 1 for (B, L, H, D)");
  const int64_t D = x_in.size(3), L = x_in.size(seq_dim);
  KILN_ARG(D % 2 == 0, op, "head dim ", D, " of x ", x_in.shape().str(), " must be even");
  KILN_ARG(table.cos.size(0) == L && table.cos.size(1) == D / 2, op, "table.cos has shape ",
           table.cos.shape().str(), ", expected (", L, ", ", D / 2, ") for x ", x_in.shape().str(),
           " with seq_dim ", seq_dim);
  KILN_ARG(table.sin.shape() == table.cos.shape(), op, "table.sin ", table.sin.shape().str(),
           " differs from table.cos ", table.cos.shape().str());
  if (dev.is_cuda())  // kernels/cuda/rope.cu, bit-identical to the loop below
    return cuda_ops::apply_rope(x_in, table.cos, table.sin, layout == RopeLayout::interleaved,
                                seq_dim);
  const Tensor x = x_in.contiguous();
  const Tensor tc = table.cos.contiguous(), ts = table.sin.contiguous();
  Tensor out = Tensor::empty(x.shape(), DType::f32);
  if (x.numel() == 0) return out;
  const float* px = x.data<float>();
  const float* pc = tc.data<float>();
  const float* ps = ts.data<float>();
  float* po = out.mutable_data<float>();
  const int64_t rows = x.numel() / D, half = D / 2;
  // Row r of the (rows, D) view has sequence index (r / H) % L when seq_dim is 1 (B, L, H),
  // r % L when it is 2 (B, H, L).
  const int64_t inner = seq_dim == 1 ? x.size(2) : 1;
  const bool interleaved = layout == RopeLayout::interleaved;
  parallel_for(rows, std::max<int64_t>(1, 32768 / D), [&](int64_t s, int64_t e) {
    for (int64_t r = s; r < e; ++r) {
      const int64_t l = (r / inner) % L;
      const float* c = pc + l * half;
      const float* sn = ps + l * half;
      const float* xs = px + r * D;
      float* os = po + r * D;
      if (interleaved) {
        for (int64_t i = 0; i < half; ++i) {
          const float x0 = xs[2 * i], x1 = xs[2 * i + 1];
          os[2 * i] = x0 * c[i] - x1 * sn[i];
          os[2 * i + 1] = x0 * sn[i] + x1 * c[i];
        }
      } else {
        for (int64_t i = 0; i < half; ++i) {
          const float x0 = xs[i], x1 = xs[i + half];
          os[i] = x0 * c[i] - x1 * sn[i];
          os[i + half] = x0 * sn[i] + x1 * c[i];
        }
      }
    }
  });
  return out;
}

}  // namespace kiln::ops
