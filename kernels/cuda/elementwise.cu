// Storage f32, f16 or bf16 (a template argument, ElemType E): loads widen to f32, the f32 formula
// runs unchanged, stores round once to E (device_common.cuh's conversions, the CPU's).
// Paths, picked by the launchers after coalescing dims:
//  - vectorized (16-byte accesses: 4 floats or 8 halves): every operand contiguous, or
//    repeating with a period that is a multiple of the vector width (a bias (C) over (rows, C)),
//    and 16-byte aligned;
//  - periodic scalar: the same with any period or alignment;
//  - strided: anything else (transposed or sliced views, broadcast in a middle dim), with a
//    row-major index decomposition per element.
// Grid-stride loops (one launch covers any size). The index of a repeating operand advances by
// the (constant) grid stride modulo its period, so the loop has no 64-bit division.
// Ref: the vectorized/strided split follows PyTorch's ATen/native/cuda/Loops.cuh and
//      MemoryAccess.cuh (vectorized when contiguous and aligned, an offset calculator otherwise).
#include <cmath>

#include "cuda/device_common.cuh"
#include "cuda/elementwise.hpp"

namespace kiln::kernels::cuda {

const char* unary_op_name(UnaryOp op) {
  static const char* const kNames[] = {"scale", "silu",   "gelu_erf", "gelu_tanh", "sigmoid",
                                       "tanh",  "relu",   "exp",      "sqrt",      "sin",
                                       "cos",   "clamp",  "eq",       "ne",        "lt",
                                       "le",    "gt",     "ge"};
  static_assert(sizeof(kNames) / sizeof(kNames[0]) == static_cast<int>(UnaryOp::count_));
  const int i = static_cast<int>(op);
  return i >= 0 && i < static_cast<int>(UnaryOp::count_) ? kNames[i] : "?";
}

namespace {

constexpr int kThreads = 256;

// The CPU formulas (sdk/src/kiln/ops/elementwise.cpp) with explicit round-to-nearest
// intrinsics wherever nvcc would otherwise contract a*b+c into an FMA the CPU does not do.
template <UnaryOp O>
__device__ __forceinline__ float unary_fn(float v, float a, float b) {
  if constexpr (O == UnaryOp::scale) {
    return __fadd_rn(__fmul_rn(a, v), b);
  } else if constexpr (O == UnaryOp::silu) {
    return v / (1.f + expf(-v));
  } else if constexpr (O == UnaryOp::gelu_erf) {
    constexpr float kRsqrt2 = 0.7071067811865476f;
    return __fmul_rn(__fmul_rn(0.5f, v), 1.f + erff(__fmul_rn(v, kRsqrt2)));
  } else if constexpr (O == UnaryOp::gelu_tanh) {
    constexpr float kBeta = 0.7978845608028654f;  // sqrt(2/pi)
    constexpr float kKappa = 0.044715f;
    const float cube = __fmul_rn(__fmul_rn(__fmul_rn(kKappa, v), v), v);
    return __fmul_rn(__fmul_rn(0.5f, v), 1.f + tanhf(__fmul_rn(kBeta, __fadd_rn(v, cube))));
  } else if constexpr (O == UnaryOp::sigmoid) {
    return 1.f / (1.f + expf(-v));
  } else if constexpr (O == UnaryOp::tanh) {
    return tanhf(v);
  } else if constexpr (O == UnaryOp::relu) {
    return v > 0.f ? v : 0.f;
  } else if constexpr (O == UnaryOp::exp) {
    return expf(v);
  } else if constexpr (O == UnaryOp::sqrt) {
    return sqrtf(v);  // IEEE-rounded (nvcc's default -prec-sqrt=true)
  } else if constexpr (O == UnaryOp::sin) {
    return sinf(v);
  } else if constexpr (O == UnaryOp::cos) {
    return cosf(v);
  } else if constexpr (O == UnaryOp::clamp) {
    v = v < a ? a : v;
    return v > b ? b : v;
  } else if constexpr (O == UnaryOp::cmp_eq) {
    return v == a ? 1.f : 0.f;
  } else if constexpr (O == UnaryOp::cmp_ne) {
    return v != a ? 1.f : 0.f;
  } else if constexpr (O == UnaryOp::cmp_lt) {
    return v < a ? 1.f : 0.f;
  } else if constexpr (O == UnaryOp::cmp_le) {
    return v <= a ? 1.f : 0.f;
  } else if constexpr (O == UnaryOp::cmp_gt) {
    return v > a ? 1.f : 0.f;
  } else {
    static_assert(O == UnaryOp::cmp_ge);
    return v >= a ? 1.f : 0.f;
  }
}

template <BinaryOp O>
__device__ __forceinline__ float binary_fn(float a, float b) {
  if constexpr (O == BinaryOp::add) return __fadd_rn(a, b);
  if constexpr (O == BinaryOp::sub) return __fsub_rn(a, b);
  if constexpr (O == BinaryOp::mul) return __fmul_rn(a, b);
  return __fdiv_rn(a, b);
}

__device__ __forceinline__ int64_t thread_index() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ int64_t grid_stride() {
  return static_cast<int64_t>(gridDim.x) * blockDim.x;
}

// ------------------------------------------------------------------------------------- unary

// Storage of element type E: loads widen to f32 exactly, stores round once (RNE).
template <ElemType E>
using StorageOf = typename detail::Elem<E>::T;

// Contiguous x: W > 1 moves one 16-byte vector per step (4 floats, 8 halves; x and out
// aligned); the n % W tail is done by the first threads of block 0.
template <UnaryOp O, ElemType E, int W>
__global__ void unary_contiguous_kernel(const StorageOf<E>* __restrict__ x,
                                        StorageOf<E>* __restrict__ out, int64_t n, float a,
                                        float b) {
  const int64_t nv = n / W;
  for (int64_t i = thread_index(); i < nv; i += grid_stride()) {
    float v[W];
    detail::load_w<E, W>(x + i * W, v);
#pragma unroll
    for (int k = 0; k < W; ++k) v[k] = unary_fn<O>(v[k], a, b);
    detail::store_w<E, W>(out + i * W, v);
  }
  if (W > 1 && blockIdx.x == 0 && threadIdx.x < n - nv * W) {
    const int64_t i = nv * W + threadIdx.x;
    out[i] = detail::Elem<E>::store(unary_fn<O>(detail::Elem<E>::load(x[i]), a, b));
  }
}

struct UnaryStrides {
  detail::Dims dims;
  int64_t x[kMaxDims];
};

template <UnaryOp O, ElemType E>
__global__ void unary_strided_kernel(const StorageOf<E>* __restrict__ x,
                                     StorageOf<E>* __restrict__ out, int64_t n, float a, float b,
                                     const UnaryStrides st) {
  for (int64_t i = thread_index(); i < n; i += grid_stride()) {
    const float v = detail::Elem<E>::load(x[detail::strided_offset(i, st.dims, st.x)]);
    out[i] = detail::Elem<E>::store(unary_fn<O>(v, a, b));
  }
}

template <UnaryOp O, ElemType E>
cudaError_t launch_unary_op(const UnaryParams& p, int64_t n, cudaStream_t stream) {
  constexpr int V = detail::kVecWidth<E>;
  const auto* x = static_cast<const StorageOf<E>*>(p.x);
  auto* out = static_cast<StorageOf<E>*>(p.out);
  const bool contiguous = p.ndim == 0 || (p.ndim == 1 && p.x_stride[0] == 1);
  if (contiguous && aligned16(p.x) && aligned16(p.out)) {
    unary_contiguous_kernel<O, E, V>
        <<<detail::grid_for(n / V + 1, kThreads), kThreads, 0, stream>>>(x, out, n, p.a, p.b);
  } else if (contiguous) {
    unary_contiguous_kernel<O, E, 1>
        <<<detail::grid_for(n, kThreads), kThreads, 0, stream>>>(x, out, n, p.a, p.b);
  } else {
    UnaryStrides st{};
    st.dims.ndim = p.ndim;
    for (int d = 0; d < p.ndim; ++d) {
      st.dims.shape[d] = p.shape[d];
      st.x[d] = p.x_stride[d];
    }
    unary_strided_kernel<O, E>
        <<<detail::grid_for(n, kThreads), kThreads, 0, stream>>>(x, out, n, p.a, p.b, st);
  }
  return cudaGetLastError();
}

// ------------------------------------------------------------------------------------ binary

// a and b repeat with periods pa, pb (n for a full contiguous operand), in units of W elements
// (one 16-byte vector when W > 1: every period is then a multiple of W). Indices into the
// operands advance by the grid stride modulo the period (one compare-and-subtract, no division
// in the loop).
template <BinaryOp O, ElemType E, int W>
__global__ void binary_periodic_kernel(const StorageOf<E>* __restrict__ a,
                                       const StorageOf<E>* __restrict__ b,
                                       StorageOf<E>* __restrict__ out, int64_t nv, int64_t pa,
                                       int64_t pb) {
  const int64_t step = grid_stride();
  const int64_t da = step % pa, db = step % pb;
  int64_t i = thread_index();
  int64_t ia = i % pa, ib = i % pb;
  for (; i < nv; i += step) {
    float va[W], vb[W];
    detail::load_w<E, W>(a + ia * W, va);
    detail::load_w<E, W>(b + ib * W, vb);
#pragma unroll
    for (int k = 0; k < W; ++k) va[k] = binary_fn<O>(va[k], vb[k]);
    detail::store_w<E, W>(out + i * W, va);
    ia += da;
    if (ia >= pa) ia -= pa;
    ib += db;
    if (ib >= pb) ib -= pb;
  }
}

struct BinaryStrides {
  detail::Dims dims;
  int64_t a[kMaxDims], b[kMaxDims];
};

template <BinaryOp O, ElemType E>
__global__ void binary_strided_kernel(const StorageOf<E>* __restrict__ a,
                                      const StorageOf<E>* __restrict__ b,
                                      StorageOf<E>* __restrict__ out, int64_t n,
                                      const BinaryStrides st) {
  for (int64_t i = thread_index(); i < n; i += grid_stride()) {
    const float va = detail::Elem<E>::load(a[detail::strided_offset(i, st.dims, st.a)]);
    const float vb = detail::Elem<E>::load(b[detail::strided_offset(i, st.dims, st.b)]);
    out[i] = detail::Elem<E>::store(binary_fn<O>(va, vb));
  }
}

template <BinaryOp O, ElemType E>
cudaError_t launch_binary_op(const BinaryParams& p, int64_t n, cudaStream_t stream) {
  constexpr int V = detail::kVecWidth<E>;
  const auto* a = static_cast<const StorageOf<E>*>(p.a);
  const auto* b = static_cast<const StorageOf<E>*>(p.b);
  auto* out = static_cast<StorageOf<E>*>(p.out);
  const int64_t pa = repeat_period(p.ndim, p.shape, p.a_stride);
  const int64_t pb = repeat_period(p.ndim, p.shape, p.b_stride);
  if (pa > 0 && pb > 0) {
    // n is a multiple of both periods, so of V when they are.
    const bool vec = pa % V == 0 && pb % V == 0 && aligned16(p.a) && aligned16(p.b) &&
                     aligned16(p.out);
    if (vec) {
      binary_periodic_kernel<O, E, V><<<detail::grid_for(n / V, kThreads), kThreads, 0, stream>>>(
          a, b, out, n / V, pa / V, pb / V);
    } else {
      binary_periodic_kernel<O, E, 1>
          <<<detail::grid_for(n, kThreads), kThreads, 0, stream>>>(a, b, out, n, pa, pb);
    }
  } else {
    BinaryStrides st{};
    st.dims.ndim = p.ndim;
    for (int d = 0; d < p.ndim; ++d) {
      st.dims.shape[d] = p.shape[d];
      st.a[d] = p.a_stride[d];
      st.b[d] = p.b_stride[d];
    }
    binary_strided_kernel<O, E>
        <<<detail::grid_for(n, kThreads), kThreads, 0, stream>>>(a, b, out, n, st);
  }
  return cudaGetLastError();
}

// ------------------------------------------------------------------------------------- where

struct WhereStrides {
  detail::Dims dims;
  int64_t c[kMaxDims], a[kMaxDims], b[kMaxDims];
};

// The condition's truth: a boolean byte != 0, or a float mask (f32 or 16-bit, widened) != 0,
// so NaN is true and -0 false as in the CPU's `cond != 0.f`.
struct ByteCond {
  using T = uint8_t;
  static __device__ __forceinline__ bool truth(T c) { return c != 0; }
};
template <ElemType C>
struct MaskCond {
  using T = StorageOf<C>;
  static __device__ __forceinline__ bool truth(T c) { return detail::Elem<C>::load(c) != 0.f; }
};

// a and b are copied bit for bit (no widening and rounding: the value is unchanged either way).
template <typename Cond, ElemType E>
__global__ void where_kernel(const typename Cond::T* __restrict__ cond,
                             const StorageOf<E>* __restrict__ a, const StorageOf<E>* __restrict__ b,
                             StorageOf<E>* __restrict__ out, int64_t n, const WhereStrides st) {
  for (int64_t i = thread_index(); i < n; i += grid_stride()) {
    const bool pick_a = Cond::truth(cond[detail::strided_offset(i, st.dims, st.c)]);
    out[i] = pick_a ? a[detail::strided_offset(i, st.dims, st.a)]
                    : b[detail::strided_offset(i, st.dims, st.b)];
  }
}

template <typename Cond, ElemType E>
cudaError_t launch_where_typed(const WhereParams& p, int64_t n, const WhereStrides& st,
                               cudaStream_t stream) {
  where_kernel<Cond, E><<<detail::grid_for(n, kThreads), kThreads, 0, stream>>>(
      static_cast<const typename Cond::T*>(p.cond), static_cast<const StorageOf<E>*>(p.a),
      static_cast<const StorageOf<E>*>(p.b), static_cast<StorageOf<E>*>(p.out), n, st);
  return cudaGetLastError();
}

bool valid_type(ElemType t) {
  return t == ElemType::f32 || t == ElemType::f16 || t == ElemType::bf16;
}

// a and b of one supported storage type (the output's).
std::string check_operand_types(ElemType a, ElemType b) {
  if (!valid_type(a) || !valid_type(b)) return "unknown element type";
  if (a != b)
    return std::string("a is ") + elem_type_name(a) + " but b is " + elem_type_name(b) +
           ": both operands must have one dtype (cast one with to(dtype))";
  return {};
}

int64_t numel(int ndim, const int64_t* shape) {
  int64_t n = 1;
  for (int d = 0; d < ndim; ++d) n *= shape[d];
  return n;
}

std::string check_dims(int ndim, const int64_t* shape) {
  if (ndim < 0 || ndim > kMaxDims)
    return "rank " + std::to_string(ndim) + " is outside 0.." + std::to_string(kMaxDims);
  for (int d = 0; d < ndim; ++d)
    if (shape[d] < 0) return "negative size in dim " + std::to_string(d);
  return {};
}

}  // namespace

std::string can_implement(const UnaryParams& p) {
  if (static_cast<int>(p.op) >= static_cast<int>(UnaryOp::count_)) return "unknown unary op";
  if (!valid_type(p.type)) return "unknown element type";
  if (auto why = check_dims(p.ndim, p.shape); !why.empty()) return why;
  if (!p.x || !p.out) return "null pointer";
  if (p.op == UnaryOp::clamp && (std::isnan(p.a) || std::isnan(p.b))) return "a clamp bound is NaN";
  return {};
}

cudaError_t launch_unary(UnaryParams p, cudaStream_t stream) {
  const int64_t n = numel(p.ndim, p.shape);
  if (n == 0) return cudaSuccess;
  int64_t* strides[1] = {p.x_stride};
  coalesce_dims(&p.ndim, p.shape, strides, 1);
  return detail::dispatch_elem(p.type, [&](auto e) -> cudaError_t {
    constexpr ElemType E = decltype(e)::value;
    switch (p.op) {
#define KILN_UNARY_CASE(name) \
  case UnaryOp::name:         \
    return launch_unary_op<UnaryOp::name, E>(p, n, stream);
      KILN_UNARY_CASE(scale)
      KILN_UNARY_CASE(silu)
      KILN_UNARY_CASE(gelu_erf)
      KILN_UNARY_CASE(gelu_tanh)
      KILN_UNARY_CASE(sigmoid)
      KILN_UNARY_CASE(tanh)
      KILN_UNARY_CASE(relu)
      KILN_UNARY_CASE(exp)
      KILN_UNARY_CASE(sqrt)
      KILN_UNARY_CASE(sin)
      KILN_UNARY_CASE(cos)
      KILN_UNARY_CASE(clamp)
      KILN_UNARY_CASE(cmp_eq)
      KILN_UNARY_CASE(cmp_ne)
      KILN_UNARY_CASE(cmp_lt)
      KILN_UNARY_CASE(cmp_le)
      KILN_UNARY_CASE(cmp_gt)
      KILN_UNARY_CASE(cmp_ge)
#undef KILN_UNARY_CASE
      case UnaryOp::count_:
        break;
    }
    return cudaErrorInvalidValue;
  });
}

std::string can_implement(const BinaryParams& p) {
  if (static_cast<int>(p.op) >= static_cast<int>(BinaryOp::count_)) return "unknown binary op";
  if (auto why = check_operand_types(p.a_type, p.b_type); !why.empty()) return why;
  if (auto why = check_dims(p.ndim, p.shape); !why.empty()) return why;
  if (!p.a || !p.b || !p.out) return "null pointer";
  return {};
}

cudaError_t launch_binary(BinaryParams p, cudaStream_t stream) {
  const int64_t n = numel(p.ndim, p.shape);
  if (n == 0) return cudaSuccess;
  if (p.a_type != p.b_type) return cudaErrorInvalidValue;  // can_implement refuses it
  int64_t* strides[2] = {p.a_stride, p.b_stride};
  coalesce_dims(&p.ndim, p.shape, strides, 2);
  return detail::dispatch_elem(p.a_type, [&](auto e) -> cudaError_t {
    constexpr ElemType E = decltype(e)::value;
    switch (p.op) {
      case BinaryOp::add: return launch_binary_op<BinaryOp::add, E>(p, n, stream);
      case BinaryOp::sub: return launch_binary_op<BinaryOp::sub, E>(p, n, stream);
      case BinaryOp::mul: return launch_binary_op<BinaryOp::mul, E>(p, n, stream);
      case BinaryOp::div: return launch_binary_op<BinaryOp::div, E>(p, n, stream);
      case BinaryOp::count_: break;
    }
    return cudaErrorInvalidValue;
  });
}

std::string can_implement(const WhereParams& p) {
  if (auto why = check_operand_types(p.a_type, p.b_type); !why.empty()) return why;
  if (!p.cond_is_byte) {
    if (!valid_type(p.cond_type)) return "unknown element type";
    if (p.cond_type != ElemType::f32 && p.cond_type != p.a_type)
      return std::string("cond is ") + elem_type_name(p.cond_type) + " but a and b are " +
             elem_type_name(p.a_type) + ": cond must be boolean, f32 or a's dtype";
  }
  if (auto why = check_dims(p.ndim, p.shape); !why.empty()) return why;
  if (!p.cond || !p.a || !p.b || !p.out) return "null pointer";
  return {};
}

cudaError_t launch_where(WhereParams p, cudaStream_t stream) {
  const int64_t n = numel(p.ndim, p.shape);
  if (n == 0) return cudaSuccess;
  if (p.a_type != p.b_type) return cudaErrorInvalidValue;  // can_implement refuses it
  int64_t* strides[3] = {p.cond_stride, p.a_stride, p.b_stride};
  coalesce_dims(&p.ndim, p.shape, strides, 3);
  WhereStrides st{};
  st.dims.ndim = p.ndim;
  for (int d = 0; d < p.ndim; ++d) {
    st.dims.shape[d] = p.shape[d];
    st.c[d] = p.cond_stride[d];
    st.a[d] = p.a_stride[d];
    st.b[d] = p.b_stride[d];
  }
  return detail::dispatch_elem(p.a_type, [&](auto e) -> cudaError_t {
    constexpr ElemType E = decltype(e)::value;
    if (p.cond_is_byte) return launch_where_typed<ByteCond, E>(p, n, st, stream);
    if (p.cond_type == ElemType::f32)
      return launch_where_typed<MaskCond<ElemType::f32>, E>(p, n, st, stream);
    if (p.cond_type == E) return launch_where_typed<MaskCond<E>, E>(p, n, st, stream);
    return cudaErrorInvalidValue;  // can_implement refuses it
  });
}

}  // namespace kiln::kernels::cuda
