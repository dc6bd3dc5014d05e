// `kiln bench`: one workload (an op or a whole component forward at a real config, random
// weights) timed on one device. A benchmark, never a test: it prints what it measured and
// asserts nothing about speed. bench/torch_cuda_bench.py runs the same specs in PyTorch /
// diffusers on the same GPU and prints the ratio (DESIGN.md, "How speed is shown").
//
// Spec (JSON object; every field but "workload" optional):
//   {"workload": "attention", "device": "cuda:0", "dtype": "bf16", "warmup": 3, "iters": 10,
//    "params": {"heads": 24, "seq": 4608}}
// Result (JSON object): the spec with every parameter resolved, the device's description, the
// per-iteration times, median/min/mean ms, FLOPs and TFLOP/s (ops only), peak memory, and for
// components the parameter count. Timing: CUDA events around each iteration on the device's
// stream (read after the last one, so the host never waits between iterations); a steady clock
// around each iteration on the CPU.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kiln/core/device.hpp"
#include "kiln/core/dtype.hpp"

namespace kiln::pipelines::bench {

// ---------------------------------------------------------------- FLOP formulas
// One multiply-add counts as 2 FLOPs (the convention of PyTorch's and FlashAttention's
// benchmarks, so TFLOP/s figures compare directly).

// S = Q K^T and O = P V are 2*Lq*Lk*D FLOPs each per (batch, head): 4*B*H*Lq*Lk*D in all
// (softmax not counted). Causal: halved, FlashAttention's convention (exactly (L+1)/(2L) of the
// dense work for Lq == Lk, so half is within 1/L).
double attention_flops(int64_t batch, int64_t heads, int64_t seq_q, int64_t seq_k, int64_t head_dim,
                       bool causal);
// (M, K) @ (K, N), `batch` times: 2*M*N*K*batch.
double gemm_flops(int64_t m, int64_t n, int64_t k, int64_t batch = 1);
// Each output element is a dot product of length Cin/groups*kh*kw:
// 2*N*Cout*Hout*Wout*(Cin/groups)*kh*kw (bias not counted).
double conv2d_flops(int64_t n, int64_t cout, int64_t hout, int64_t wout, int64_t cin,
                    int64_t groups, int64_t kh, int64_t kw);

// ---------------------------------------------------------------- specs

struct Spec {
  std::string workload;
  Device device = Device::cpu();
  DType dtype = DType::f32;
  int warmup = 3;
  int iters = 10;
  nlohmann::json params;  // every parameter of the workload, defaults filled in
};

// The workloads and, for each, its parameters with their defaults (a JSON object).
std::vector<std::string> workload_names();
nlohmann::json workload_defaults(const std::string& workload);

// Parses and validates a spec: invalid_argument naming the field for an unknown workload,
// parameter (listing the known ones), device or dtype, a non-integer value, warmup < 0 or
// iters < 1. dtype defaults to bf16 on CUDA and f32 on the CPU. Nothing runs.
Spec parse_spec(const std::string& spec_json);

// Builds the workload's inputs (and random weights) on the device, runs warm-up and timed
// iterations, and returns the result object. The op's or model's own error propagates when
// the device or dtype cannot run it (e.g. unsupported "[group_norm] no cuda:0 kernel ...").
nlohmann::json run(const Spec& spec);

}  // namespace kiln::pipelines::bench
