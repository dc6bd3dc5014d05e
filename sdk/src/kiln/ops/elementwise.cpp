// Elementwise ops: broadcasting binary arithmetic, activations, float math, clamp/compare/where,
// softmax. f32 in, new contiguous f32 out. Activations follow torch's definitions exactly (the
// formulas are torch's docs). CUDA tensors go to kernels/cuda/elementwise.cu and softmax.cu
// (through kiln/cuda/cuda_ops.hpp) after the same validation; there f16/bf16 are accepted too
// (all operands one dtype, f32 math, output in that dtype; compare's mask in x's dtype), while
// the CPU keeps the f32 contract and its messages.
#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <vector>

#include "kiln/core/parallel.hpp"
#include "kiln/cuda/cuda_ops.hpp"
#include "kiln/ops/ops.hpp"

namespace kiln::ops {

namespace {

// ~32K elements per chunk: a parallel region costs a few us, a chunk of simple float work
// ~10 us, so tiny tensors stay on one thread.
constexpr int64_t kGrain = 32768;

enum class BinOp { add, sub, mul, div };

template <BinOp O>
inline float apply(float a, float b) {
  if constexpr (O == BinOp::add) return a + b;
  if constexpr (O == BinOp::sub) return a - b;
  if constexpr (O == BinOp::mul) return a * b;
  return a / b;
}

constexpr cuda_ops::BinaryOp cuda_kind(BinOp o) {
  switch (o) {
    case BinOp::add: return cuda_ops::BinaryOp::add;
    case BinOp::sub: return cuda_ops::BinaryOp::sub;
    case BinOp::mul: return cuda_ops::BinaryOp::mul;
    case BinOp::div: break;
  }
  return cuda_ops::BinaryOp::div;
}

// True when `small` (contiguous) equals the trailing dims of `full` after dropping its own
// leading 1s, so that broadcasting it over `full` repeats it with period small.numel().
bool is_trailing_broadcast(const Tensor& small, const Shape& full) {
  if (!small.is_contiguous()) return false;
  int s = 0;
  while (s < small.ndim() && small.size(s) == 1) ++s;
  const int rest = small.ndim() - s;
  if (rest > full.size()) return false;
  for (int i = 0; i < rest; ++i)
    if (small.size(s + i) != full[full.size() - rest + i]) return false;
  return true;
}

// Walks the rows (every dim but the last) of `shape` (n elements) in parallel and calls
// row_fn(r, off) for row r, off[k] being operand k's element offset of the row's first element.
// The operands are already expanded to `shape`, so broadcast dims have stride 0.
template <size_t N, typename RowFn>
void for_each_row(const Shape& shape, int64_t n, const std::array<const Tensor*, N>& xs,
                  RowFn row_fn) {
  const int nd = shape.size();
  const int64_t inner = nd ? shape[nd - 1] : 1;
  parallel_for(n / inner, std::max<int64_t>(1, kGrain / inner), [&](int64_t r0, int64_t r1) {
    int64_t idx[kMaxDims] = {};
    int64_t rem = r0;
    for (int d = nd - 2; d >= 0; --d) {
      idx[d] = rem % shape[d];
      rem /= shape[d];
    }
    for (int64_t r = r0; r < r1; ++r) {
      std::array<int64_t, N> off{};
      for (int d = 0; d < nd - 1; ++d)
        for (size_t k = 0; k < N; ++k) off[k] += idx[d] * xs[k]->stride(d);
      row_fn(r, off);
      for (int d = nd - 2; d >= 0; --d) {  // advance the row index
        if (++idx[d] < shape[d]) break;
        idx[d] = 0;
      }
    }
  });
}

template <BinOp O>
Tensor binary(const char* op, const Tensor& a, const Tensor& b) {
  const Device dev = common_device(op, {&a, &b});
  require_f32_or_cuda_half(op, "a", a, dev);
  require_f32_or_cuda_half(op, "b", b, dev);
  const Shape shape = broadcast_shapes(a.shape(), b.shape(), op);
  if (dev.is_cuda()) return cuda_ops::binary(op, cuda_kind(O), a, b, shape);
  Tensor out = Tensor::empty(shape, DType::f32);
  const int64_t n = out.numel();
  if (n == 0) return out;
  float* po = out.mutable_data<float>();
  const float* pa = a.data<float>();
  const float* pb = b.data<float>();

  // Same shape, both contiguous: one flat loop.
  if (a.shape() == shape && b.shape() == shape && a.is_contiguous() && b.is_contiguous()) {
    parallel_for(n, kGrain, [&](int64_t s, int64_t e) {
      for (int64_t i = s; i < e; ++i) po[i] = apply<O>(pa[i], pb[i]);
    });
    return out;
  }
  // One operand full and contiguous, the other a contiguous trailing block (a bias (C), a
  // scalar, a (1, L, D) embedding): the small one repeats with period p.
  const bool a_full = a.shape() == shape && a.is_contiguous();
  const bool b_full = b.shape() == shape && b.is_contiguous();
  if ((a_full && is_trailing_broadcast(b, shape)) || (b_full && is_trailing_broadcast(a, shape))) {
    const bool bias_is_b = a_full && is_trailing_broadcast(b, shape);
    const float* full = bias_is_b ? pa : pb;
    const float* bias = bias_is_b ? pb : pa;
    const int64_t period = bias_is_b ? b.numel() : a.numel();
    parallel_for(n, kGrain, [&](int64_t s, int64_t e) {
      int64_t j = s % period;
      for (int64_t i = s; i < e; ++i) {
        po[i] = bias_is_b ? apply<O>(full[i], bias[j]) : apply<O>(bias[j], full[i]);
        if (++j == period) j = 0;
      }
    });
    return out;
  }
  // General case: both operands viewed with broadcast (stride 0) strides over `shape`.
  const Tensor ax = a.expand(shape), bx = b.expand(shape);
  const int nd = shape.size();
  const int64_t inner = nd ? shape[nd - 1] : 1;
  const int64_t sa = nd ? ax.stride(nd - 1) : 0, sb = nd ? bx.stride(nd - 1) : 0;
  for_each_row<2>(shape, n, {&ax, &bx}, [&](int64_t r, const std::array<int64_t, 2>& off) {
    const float* ra = pa + off[0];
    const float* rb = pb + off[1];
    float* ro = po + r * inner;
    for (int64_t i = 0; i < inner; ++i) ro[i] = apply<O>(ra[i * sa], rb[i * sb]);
  });
  return out;
}

// out[i] = f(x[i]) over a contiguous copy of x. On CUDA: the kernel `kind` with scalars a, b
// (the same formula as f), reading x through its strides.
template <typename F>
Tensor unary(const char* op, cuda_ops::UnaryOp kind, const Tensor& x_in, F f, float a = 0.f,
             float b = 0.f) {
  const Device dev = common_device(op, {&x_in});
  require_f32_or_cuda_half(op, "x", x_in, dev);
  if (dev.is_cuda()) return cuda_ops::unary(op, kind, x_in, a, b);
  const Tensor x = x_in.contiguous();
  Tensor out = Tensor::empty(x.shape(), DType::f32);
  const float* px = x.data<float>();
  float* po = out.mutable_data<float>();
  parallel_for(x.numel(), kGrain, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) po[i] = f(px[i]);
  });
  return out;
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  return binary<BinOp::add>("add", a, b);
}
Tensor sub(const Tensor& a, const Tensor& b) {
  return binary<BinOp::sub>("sub", a, b);
}
Tensor mul(const Tensor& a, const Tensor& b) {
  return binary<BinOp::mul>("mul", a, b);
}
Tensor div(const Tensor& a, const Tensor& b) {
  return binary<BinOp::div>("div", a, b);
}

Tensor scale(const Tensor& x, float alpha, float beta) {
  return unary("scale", cuda_ops::UnaryOp::scale, x, [alpha, beta](float v) { return alpha * v + beta; }, alpha,
               beta);
}

// torch.nn.functional.silu: x * sigmoid(x).
Tensor silu(const Tensor& x) {
  return unary("silu", cuda_ops::UnaryOp::silu, x, [](float v) { return v / (1.f + std::exp(-v)); });
}

// torch.nn.functional.gelu: approximate='none' is x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2));
// approximate='tanh' is 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
Tensor gelu(const Tensor& x, GeluApprox approx) {
  if (approx == GeluApprox::tanh) {
    return unary("gelu", cuda_ops::UnaryOp::gelu_tanh, x, [](float v) {
      constexpr float kBeta = 0.7978845608028654f;  // sqrt(2/pi)
      constexpr float kKappa = 0.044715f;
      return 0.5f * v * (1.f + std::tanh(kBeta * (v + kKappa * v * v * v)));
    });
  }
  return unary("gelu", cuda_ops::UnaryOp::gelu_erf, x, [](float v) {
    constexpr float kRsqrt2 = 0.7071067811865476f;
    return 0.5f * v * (1.f + std::erf(v * kRsqrt2));
  });
}

Tensor sigmoid(const Tensor& x) {
  return unary("sigmoid", cuda_ops::UnaryOp::sigmoid, x, [](float v) { return 1.f / (1.f + std::exp(-v)); });
}

Tensor tanh(const Tensor& x) {
  return unary("tanh", cuda_ops::UnaryOp::tanh, x, [](float v) { return std::tanh(v); });
}

Tensor relu(const Tensor& x) {
  return unary("relu", cuda_ops::UnaryOp::relu, x, [](float v) { return v > 0.f ? v : 0.f; });
}

Tensor exp(const Tensor& x) {
  return unary("exp", cuda_ops::UnaryOp::exp, x, [](float v) { return std::exp(v); });
}
Tensor sqrt(const Tensor& x) {
  return unary("sqrt", cuda_ops::UnaryOp::sqrt, x, [](float v) { return std::sqrt(v); });
}
Tensor sin(const Tensor& x) {
  return unary("sin", cuda_ops::UnaryOp::sin, x, [](float v) { return std::sin(v); });
}
Tensor cos(const Tensor& x) {
  return unary("cos", cuda_ops::UnaryOp::cos, x, [](float v) { return std::cos(v); });
}

// min(max(x, lo), hi) as torch applies the bounds; comparisons with NaN are false, so a NaN x
// passes through (torch propagates it too).
Tensor clamp(const Tensor& x, std::optional<float> lo, std::optional<float> hi) {
  const char* op = "clamp";
  KILN_ARG(lo || hi, op, "needs at least one of lo and hi");
  KILN_ARG(!(lo && std::isnan(*lo)) && !(hi && std::isnan(*hi)), op, "a bound is NaN");
  const float l = lo.value_or(-std::numeric_limits<float>::infinity());
  const float h = hi.value_or(std::numeric_limits<float>::infinity());
  return unary(
      op, cuda_ops::UnaryOp::clamp, x,
      [l, h](float v) {
        v = v < l ? l : v;
        return v > h ? h : v;
      },
      l, h);
}

Tensor compare(const Tensor& x, Cmp cmp, float value) {
  const char* op = "compare";
  auto mask = [&](cuda_ops::UnaryOp kind, auto pred) {
    return unary(
        op, kind, x, [value, pred](float v) { return pred(v, value) ? 1.f : 0.f; }, value);
  };
  switch (cmp) {
    case Cmp::eq:
      return mask(cuda_ops::UnaryOp::cmp_eq, [](float a, float b) { return a == b; });
    case Cmp::ne:
      return mask(cuda_ops::UnaryOp::cmp_ne, [](float a, float b) { return a != b; });
    case Cmp::lt:
      return mask(cuda_ops::UnaryOp::cmp_lt, [](float a, float b) { return a < b; });
    case Cmp::le:
      return mask(cuda_ops::UnaryOp::cmp_le, [](float a, float b) { return a <= b; });
    case Cmp::gt:
      return mask(cuda_ops::UnaryOp::cmp_gt, [](float a, float b) { return a > b; });
    case Cmp::ge:
      return mask(cuda_ops::UnaryOp::cmp_ge, [](float a, float b) { return a >= b; });
  }
  fail(Status::invalid_argument, str("unknown comparison ", static_cast<int>(cmp)), op);
}

// All three operands are viewed with broadcast (stride 0) strides over the output shape and
// walked row by row, as binary()'s general case. A boolean cond is widened to an f32 mask first.
Tensor where(const Tensor& cond_in, const Tensor& a, const Tensor& b) {
  const char* op = "where";
  KILN_ARG(cond_in.defined(), op, "cond is undefined");
  const Device dev = common_device(op, {&cond_in, &a, &b});
  // On CUDA a 16-bit mask is accepted too (compare's output for 16-bit x); the kernel takes it
  // when it is a's dtype.
  const bool cuda_half_cond =
      dev.is_cuda() && (cond_in.dtype() == DType::f16 || cond_in.dtype() == DType::bf16);
  KILN_ARG(cond_in.dtype() == DType::f32 || cond_in.dtype() == DType::boolean || cuda_half_cond,
           op, "cond is ", dtype_name(cond_in.dtype()), ", expected an f32 mask or boolean");
  require_f32_or_cuda_half(op, "a", a, dev);
  require_f32_or_cuda_half(op, "b", b, dev);
  if (dev.is_cuda()) {
    const Shape shape =
        broadcast_shapes(broadcast_shapes(cond_in.shape(), a.shape(), op), b.shape(), op);
    return cuda_ops::where(cond_in, a, b, shape);
  }
  const Tensor cond = cond_in.to(DType::f32);
  const Shape shape =
      broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), op), b.shape(), op);
  Tensor out = Tensor::empty(shape, DType::f32);
  const int64_t n = out.numel();
  if (n == 0) return out;
  const Tensor cx = cond.expand(shape), ax = a.expand(shape), bx = b.expand(shape);
  const float *pc = cx.data<float>(), *pa = ax.data<float>(), *pb = bx.data<float>();
  float* po = out.mutable_data<float>();
  const int nd = shape.size();
  const int64_t inner = nd ? shape[nd - 1] : 1;
  const int64_t sc = nd ? cx.stride(nd - 1) : 0, sa = nd ? ax.stride(nd - 1) : 0,
                sb = nd ? bx.stride(nd - 1) : 0;
  for_each_row<3>(shape, n, {&cx, &ax, &bx}, [&](int64_t r, const std::array<int64_t, 3>& off) {
    float* ro = po + r * inner;
    for (int64_t i = 0; i < inner; ++i)
      ro[i] = pc[off[0] + i * sc] != 0.f ? pa[off[1] + i * sa] : pb[off[2] + i * sb];
  });
  return out;
}

// softmax along `dim`: exp(x - max) / sum, sums in double. A row of all -inf gives NaN, as in
// torch. The tensor is viewed as (outer, n, inner); lanes of `inner` are processed together so
// the reads along `dim` stay unit-stride when inner > 1.
Tensor softmax(const Tensor& x_in, int dim) {
  const char* op = "softmax";
  const Device dev = common_device(op, {&x_in});
  require_f32_or_cuda_half(op, "x", x_in, dev);
  KILN_ARG(x_in.ndim() > 0, op, "x is a 0-dim tensor; softmax needs a dim");
  const int d = normalize_dim(dim, x_in.ndim(), op);
  if (dev.is_cuda()) {
    // The kernel reduces the last dim; another dim is moved there and back (two strided copies).
    if (d == x_in.ndim() - 1) return cuda_ops::softmax_last_dim(x_in);
    return cuda_ops::softmax_last_dim(x_in.transpose(d, -1)).transpose(d, -1).contiguous();
  }
  const Tensor x = x_in.contiguous();
  Tensor out = Tensor::empty(x.shape(), DType::f32);
  if (x.numel() == 0) return out;
  const int64_t n = x.size(d);
  int64_t inner = 1;
  for (int i = d + 1; i < x.ndim(); ++i) inner *= x.size(i);
  const int64_t outer = x.numel() / (n * inner);
  const float* px = x.data<float>();
  float* po = out.mutable_data<float>();
  constexpr int64_t kLanes = 64;  // inner columns per work item
  const int64_t lane_blocks = (inner + kLanes - 1) / kLanes;
  parallel_for(outer * lane_blocks, std::max<int64_t>(1, kGrain / (n * std::min(inner, kLanes))),
               [&](int64_t s, int64_t e) {
                 float mx[kLanes];
                 double sum[kLanes];
                 for (int64_t item = s; item < e; ++item) {
                   const int64_t o = item / lane_blocks, c0 = (item % lane_blocks) * kLanes;
                   const int64_t nc = std::min(kLanes, inner - c0);
                   const float* xs = px + o * n * inner + c0;
                   float* os = po + o * n * inner + c0;
                   std::fill(mx, mx + nc, -std::numeric_limits<float>::infinity());
                   std::fill(sum, sum + nc, 0.0);
                   for (int64_t k = 0; k < n; ++k)
                     for (int64_t c = 0; c < nc; ++c) mx[c] = std::max(mx[c], xs[k * inner + c]);
                   for (int64_t k = 0; k < n; ++k)
                     for (int64_t c = 0; c < nc; ++c) {
                       const float ev = std::exp(xs[k * inner + c] - mx[c]);
                       os[k * inner + c] = ev;
                       sum[c] += ev;
                     }
                   for (int64_t c = 0; c < nc; ++c) sum[c] = 1.0 / sum[c];
                   for (int64_t k = 0; k < n; ++k)
                     for (int64_t c = 0; c < nc; ++c)
                       os[k * inner + c] = static_cast<float>(os[k * inner + c] * sum[c]);
                 }
               });
  return out;
}

}  // namespace kiln::ops
