// cuBLASLt GEMM launcher: params -> column-major descriptors, cached heuristic algorithm,
// cublasLtMatmul on the caller's stream. See gemm_cublaslt.hpp.
#include "cuda/gemm_cublaslt.hpp"

#include <algorithm>
#include <bit>
#include <climits>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <unordered_map>

namespace kiln::kernels::cuda {

namespace {

cudaDataType_t cuda_type(ElemType t) {
  switch (t) {
    case ElemType::f32:
      return CUDA_R_32F;
    case ElemType::f16:
      return CUDA_R_16F;
    case ElemType::bf16:
      return CUDA_R_16BF;
  }
  return CUDA_R_32F;
}

// Per device: the handle (kept for the process) and the algorithm cache, under one mutex that
// also serializes the device's GEMMs (they share the caller's workspace).
struct DeviceState {
  std::mutex mu;
  cublasLtHandle_t handle = nullptr;
  std::unordered_map<GemmAlgoKey, cublasLtMatmulAlgo_t, GemmAlgoKeyHash> algos;
};

DeviceState& device_state(int device) {
  static std::mutex mu;
  static std::map<int, std::unique_ptr<DeviceState>> states;
  std::lock_guard lock(mu);
  std::unique_ptr<DeviceState>& s = states[device];
  if (!s) s = std::make_unique<DeviceState>();
  return *s;
}

// RAII owners of the descriptors (host objects, created per call: a few microseconds).
struct DescDeleter {
  void operator()(cublasLtMatmulDescOpaque_t* d) const { cublasLtMatmulDescDestroy(d); }
  void operator()(cublasLtMatrixLayoutOpaque_t* l) const { cublasLtMatrixLayoutDestroy(l); }
  void operator()(cublasLtMatmulPreferenceOpaque_t* p) const { cublasLtMatmulPreferenceDestroy(p); }
};
using MatmulDesc = std::unique_ptr<cublasLtMatmulDescOpaque_t, DescDeleter>;
using Layout = std::unique_ptr<cublasLtMatrixLayoutOpaque_t, DescDeleter>;
using Preference = std::unique_ptr<cublasLtMatmulPreferenceOpaque_t, DescDeleter>;

// Records the first failing call; later calls are skipped once one failed.
struct Checker {
  GemmStatus st;
  bool operator()(cublasStatus_t s, const char* call) {
    if (st.ok() && s != CUBLAS_STATUS_SUCCESS) st = {call, s};
    return st.ok();
  }
};

// A column-major (rows, cols) layout with leading dim ld, strided-batched when batch > 1.
Layout make_layout(Checker& ck, ElemType t, int64_t rows, int64_t cols, int64_t ld, int64_t batch,
                   int64_t stride) {
  cublasLtMatrixLayout_t l = nullptr;
  if (!ck(cublasLtMatrixLayoutCreate(&l, cuda_type(t), static_cast<uint64_t>(rows),
                                     static_cast<uint64_t>(cols), ld),
          "cublasLtMatrixLayoutCreate"))
    return Layout(l);
  Layout owned(l);
  if (batch > 1) {
    const int32_t count = static_cast<int32_t>(batch);
    ck(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count,
                                        sizeof(count)),
       "cublasLtMatrixLayoutSetAttribute(BATCH_COUNT)");
    ck(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride,
                                        sizeof(stride)),
       "cublasLtMatrixLayoutSetAttribute(STRIDED_BATCH_OFFSET)");
  }
  return owned;
}

int64_t stored_cols(bool trans, int64_t rows_of_op, int64_t cols_of_op) {
  return trans ? rows_of_op : cols_of_op;  // row width of the matrix as stored
}

void hash_mix(size_t& h, uint64_t v) {
  h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
}

}  // namespace

GemmOperand gemm_operand(int64_t rows, int64_t cols, int64_t row_stride, int64_t col_stride) {
  if (col_stride == 1 && (row_stride >= cols || rows == 1))
    return {true, false, std::max<int64_t>(1, rows == 1 ? cols : row_stride)};
  if (row_stride == 1 && (col_stride >= rows || cols == 1))
    return {true, true, std::max<int64_t>(1, cols == 1 ? rows : col_stride)};
  return {};
}

uint32_t gemm_alignment(const void* p, int64_t stride_bytes) {
  uint64_t bits = reinterpret_cast<uintptr_t>(p) | 256u;
  if (stride_bytes != 0) bits |= static_cast<uint64_t>(stride_bytes);
  return 1u << std::countr_zero(bits);
}

GemmAlgoKey gemm_algo_key(const GemmParams& p, int device) {
  const int64_t es = elem_size(p.type);
  GemmAlgoKey k;
  k.device = device;
  k.type = p.type;
  k.trans_a = p.trans_a;
  k.trans_b = p.trans_b;
  k.bias = p.bias != nullptr;
  k.d_f32 = p.d_f32;
  k.m = p.m, k.n = p.n, k.k = p.k;
  k.lda = p.lda, k.ldb = p.ldb, k.ldd = p.ldd;
  k.batch = p.batch;
  const bool batched = p.batch > 1;
  k.stride_a = batched ? p.stride_a : 0;
  k.stride_b = batched ? p.stride_b : 0;
  k.stride_d = batched ? p.stride_d : 0;
  k.align_a = gemm_alignment(p.a, k.stride_a * es);
  k.align_b = gemm_alignment(p.b, k.stride_b * es);
  k.align_d = gemm_alignment(p.d, k.stride_d * (p.d_f32 ? 4 : es));
  k.align_bias = p.bias ? gemm_alignment(p.bias, 0) : 0;
  k.workspace_bytes = p.workspace_bytes;
  return k;
}

size_t GemmAlgoKeyHash::operator()(const GemmAlgoKey& k) const {
  size_t h = 0;
  hash_mix(h, static_cast<uint64_t>(k.device));
  hash_mix(h, static_cast<uint64_t>(k.type) | (uint64_t{k.trans_a} << 8) |
                  (uint64_t{k.trans_b} << 9) | (uint64_t{k.bias} << 10) |
                  (uint64_t{k.d_f32} << 11));
  for (int64_t v :
       {k.m, k.n, k.k, k.lda, k.ldb, k.ldd, k.batch, k.stride_a, k.stride_b, k.stride_d})
    hash_mix(h, static_cast<uint64_t>(v));
  hash_mix(h, (uint64_t{k.align_a} << 48) ^ (uint64_t{k.align_b} << 32) ^
                  (uint64_t{k.align_d} << 16) ^ k.align_bias);
  hash_mix(h, k.workspace_bytes);
  return h;
}

std::string describe(const GemmParams& p) {
  std::ostringstream s;
  s << elem_type_name(p.type) << " gemm M=" << p.m << " N=" << p.n << " K=" << p.k
    << " op(A)=" << (p.trans_a ? 'T' : 'N') << " lda=" << p.lda
    << " op(B)=" << (p.trans_b ? 'T' : 'N') << " ldb=" << p.ldb << " ldd=" << p.ldd
    << (p.d_f32 ? " D f32" : "");
  if (p.batch != 1)
    s << " batch=" << p.batch << " (strides a=" << p.stride_a << " b=" << p.stride_b
      << " d=" << p.stride_d << ")";
  s << (p.bias ? ", bias" : ", no bias");
  return s.str();
}

std::string gemm_error_message(const GemmParams& p, const GemmStatus& st) {
  std::ostringstream s;
  s << (st.call ? st.call : "cuBLASLt") << " failed: " << cublasLtGetStatusName(st.status) << " ("
    << cublasLtGetStatusString(st.status) << ") for " << describe(p);
  return s.str();
}

std::string can_implement(const GemmParams& p) {
  if (p.m < 0 || p.n < 0 || p.k < 0) return "negative size in " + describe(p);
  if (p.m == 0 || p.n == 0) return "";  // nothing to compute
  if (p.k == 0) return "K = 0 (an empty inner dimension) is not run through cuBLASLt";
  if (!p.a || !p.b || !p.d) return "null A, B or D pointer";
  if (p.batch < 1 || p.batch > INT32_MAX)
    return "batch count " + std::to_string(p.batch) + " outside cuBLASLt's [1, 2^31)";
  if (p.batch > 1) {
    if (p.stride_a < 0 || p.stride_b < 0 || p.stride_d < 0) return "negative batch stride";
    if (p.stride_d < p.ldd * (p.m - 1) + p.n) return "D's batch stride makes its matrices overlap";
  }
  const int64_t wa = stored_cols(p.trans_a, p.m, p.k), wb = stored_cols(p.trans_b, p.k, p.n);
  if (p.lda < wa)
    return "lda " + std::to_string(p.lda) + " < " + std::to_string(wa) + " columns of A as stored";
  if (p.ldb < wb)
    return "ldb " + std::to_string(p.ldb) + " < " + std::to_string(wb) + " columns of B as stored";
  if (p.ldd < p.n) return "ldd " + std::to_string(p.ldd) + " < N = " + std::to_string(p.n);
  if (p.d_f32 && p.type == ElemType::f32) return "d_f32 is for f16/bf16 A and B";
  const uint32_t es = static_cast<uint32_t>(elem_size(p.type));
  const uint32_t es_d = p.d_f32 ? 4u : es;
  const std::pair<const void*, uint32_t> ptrs[] = {{p.a, es}, {p.b, es}, {p.d, es_d}, {p.bias, es_d}};
  for (const auto& [q, e] : ptrs)
    if (q && gemm_alignment(q, 0) < e)
      return "a pointer is not aligned to its " + std::to_string(e) + "-byte elements";
  if (p.workspace_bytes > 0 && !p.workspace) return "workspace size given without a workspace";
  return "";
}

GemmStatus launch_gemm_cublaslt(const GemmParams& p, cudaStream_t stream) {
  if (p.m == 0 || p.n == 0) return {};
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) {
    cudaGetLastError();
    return {"cudaGetDevice", CUBLAS_STATUS_NOT_INITIALIZED};
  }
  DeviceState& ds = device_state(device);
  std::lock_guard lock(ds.mu);
  Checker ck;
  if (!ds.handle && !ck(cublasLtCreate(&ds.handle), "cublasLtCreate")) {
    ds.handle = nullptr;
    return ck.st;
  }

  // Column-major view: D^T (N, M) = op(B)^T (N, K) @ op(A)^T (K, M); cuBLASLt's "A" is our B.
  cublasLtMatmulDesc_t raw_desc = nullptr;
  if (!ck(cublasLtMatmulDescCreate(&raw_desc, CUBLAS_COMPUTE_32F, CUDA_R_32F),
          "cublasLtMatmulDescCreate"))
    return ck.st;
  MatmulDesc desc(raw_desc);
  const cublasOperation_t op_lt_a = p.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_lt_b = p.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  ck(cublasLtMatmulDescSetAttribute(raw_desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_lt_a,
                                    sizeof(op_lt_a)),
     "cublasLtMatmulDescSetAttribute(TRANSA)");
  ck(cublasLtMatmulDescSetAttribute(raw_desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_lt_b,
                                    sizeof(op_lt_b)),
     "cublasLtMatmulDescSetAttribute(TRANSB)");
  if (p.bias) {
    const cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
    ck(cublasLtMatmulDescSetAttribute(raw_desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)),
       "cublasLtMatmulDescSetAttribute(EPILOGUE)");
    ck(cublasLtMatmulDescSetAttribute(raw_desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &p.bias,
                                      sizeof(p.bias)),
       "cublasLtMatmulDescSetAttribute(BIAS_POINTER)");
  }
  // cuBLASLt's A = our B: stored (K, N) row-major = column-major (N, K); transposed: (K, N).
  Layout la = make_layout(ck, p.type, p.trans_b ? p.k : p.n, p.trans_b ? p.n : p.k, p.ldb, p.batch,
                          p.stride_b);
  Layout lb = make_layout(ck, p.type, p.trans_a ? p.m : p.k, p.trans_a ? p.k : p.m, p.lda, p.batch,
                          p.stride_a);
  Layout ld = make_layout(ck, p.d_f32 ? ElemType::f32 : p.type, p.n, p.m, p.ldd, p.batch,
                          p.stride_d);
  if (!ck.st.ok()) return ck.st;

  const GemmAlgoKey key = gemm_algo_key(p, device);
  auto it = ds.algos.find(key);
  if (it == ds.algos.end()) {
    cublasLtMatmulPreference_t raw_pref = nullptr;
    if (!ck(cublasLtMatmulPreferenceCreate(&raw_pref), "cublasLtMatmulPreferenceCreate"))
      return ck.st;
    Preference pref(raw_pref);
    const uint64_t ws = p.workspace_bytes;
    ck(cublasLtMatmulPreferenceSetAttribute(raw_pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
                                            sizeof(ws)),
       "cublasLtMatmulPreferenceSetAttribute(MAX_WORKSPACE_BYTES)");
    // Split-K only with f32 partials: the in-place and output-type schemes add partial sums
    // rounded to f16/bf16 (an error growing with the number of splits, and for in-place an
    // order that depends on the split count), which the f32-accumulate contract excludes.
    const uint32_t reduction = CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE;
    ck(cublasLtMatmulPreferenceSetAttribute(raw_pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK,
                                            &reduction, sizeof(reduction)),
       "cublasLtMatmulPreferenceSetAttribute(REDUCTION_SCHEME_MASK)");
    const std::pair<cublasLtMatmulPreferenceAttributes_t, uint32_t> aligns[] = {
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, key.align_b},  // cuBLASLt's A is our B
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, key.align_a},
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, key.align_d},
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, key.align_d}};
    for (const auto& [attr, value] : aligns)
      ck(cublasLtMatmulPreferenceSetAttribute(raw_pref, attr, &value, sizeof(value)),
         "cublasLtMatmulPreferenceSetAttribute(MIN_ALIGNMENT)");
    cublasLtMatmulHeuristicResult_t result = {};
    int returned = 0;
    if (!ck(cublasLtMatmulAlgoGetHeuristic(ds.handle, raw_desc, la.get(), lb.get(), ld.get(),
                                           ld.get(), raw_pref, 1, &result, &returned),
            "cublasLtMatmulAlgoGetHeuristic"))
      return ck.st;
    if (returned == 0)
      return {"cublasLtMatmulAlgoGetHeuristic (no algorithm)", CUBLAS_STATUS_NOT_SUPPORTED};
    it = ds.algos.emplace(key, result.algo).first;
  }

  const float alpha = 1.f, beta = 0.f;
  ck(cublasLtMatmul(ds.handle, raw_desc, &alpha, p.b, la.get(), p.a, lb.get(), &beta, p.d, ld.get(),
                    p.d, ld.get(), &it->second, p.workspace, p.workspace_bytes, stream),
     "cublasLtMatmul");
  return ck.st;
}

}  // namespace kiln::kernels::cuda
