// `kiln bench`'s FLOP formulas and spec parsing, and tiny CPU runs of the op workloads. Only
// that the bench runs and reports consistently is checked: its timings are never judged.
#include <gtest/gtest.h>

#include "kiln/pipelines/bench.hpp"
#include "test_support.hpp"

namespace kiln::test {
namespace {

namespace bench = pipelines::bench;

TEST(BenchFlops, Formulas) {
  // Issue 5's attention: 4 * 1 * 12 * 32760^2 * 128 = 6.5939e12.
  EXPECT_DOUBLE_EQ(bench::attention_flops(1, 12, 32760, 32760, 128, false),
                   4.0 * 12 * 32760.0 * 32760.0 * 128);
  EXPECT_DOUBLE_EQ(bench::attention_flops(2, 8, 4096, 77, 40, true),
                   4.0 * 2 * 8 * 4096 * 77 * 40 / 2);
  EXPECT_DOUBLE_EQ(bench::gemm_flops(4096, 320, 320), 2.0 * 4096 * 320 * 320);
  EXPECT_DOUBLE_EQ(bench::gemm_flops(77, 768, 768, 3), 2.0 * 77 * 768 * 768 * 3);
  // SD1.5 conv 320->320 3x3 at 64^2, CFG batch 2: 2 * 2 * 320 * 64 * 64 * 320 * 9.
  EXPECT_DOUBLE_EQ(bench::conv2d_flops(2, 320, 64, 64, 320, 1, 3, 3),
                   2.0 * 2 * 320 * 64 * 64 * 320 * 9);
  EXPECT_DOUBLE_EQ(bench::conv2d_flops(1, 64, 8, 8, 64, 64, 3, 3), 2.0 * 64 * 8 * 8 * 1 * 9);
}

TEST(BenchSpec, DefaultsAndOverrides) {
  bench::Spec s = bench::parse_spec(R"({"workload": "attention"})");
  EXPECT_TRUE(s.device.is_cpu());
  EXPECT_EQ(s.dtype, DType::f32);  // bf16 is the CUDA default only
  EXPECT_EQ(s.warmup, 3);
  EXPECT_EQ(s.iters, 10);
  EXPECT_EQ(s.params["seq"], 32760);
  EXPECT_EQ(s.params["seq_k"], 32760);  // 0 = same as seq
  EXPECT_EQ(s.params["causal"], false);

  s = bench::parse_spec(
      R"({"workload": "attention", "iters": 2, "warmup": 0,
          "params": {"heads": 2, "seq": 33, "seq_k": 77, "causal": 1}})");
  EXPECT_EQ(s.iters, 2);
  EXPECT_EQ(s.warmup, 0);
  EXPECT_EQ(s.params["seq_k"], 77);
  EXPECT_EQ(s.params["causal"], true);

  s = bench::parse_spec(R"({"workload": "conv2d", "params": {"kernel": 5}})");
  EXPECT_EQ(s.params["padding"], 2);  // -1 = kernel / 2

  // A CUDA device parses without a GPU (it is checked when run); its default dtype is bf16.
  s = bench::parse_spec(R"({"workload": "gemm", "device": "cuda:1"})");
  EXPECT_EQ(s.device.index, 1);
  EXPECT_EQ(s.dtype, DType::bf16);
  EXPECT_EQ(bench::workload_names().size(), 6u);
}

TEST(BenchSpec, BadSpecsNameTheProblem) {
  const Status bad = Status::invalid_argument;
  expect_error([] { bench::parse_spec("not json"); }, bad, "JSON object");
  expect_error([] { bench::parse_spec("{}"); }, bad, "\"workload\"");
  expect_error([] { bench::parse_spec(R"({"workload": "resnet"})"); }, bad,
               "unknown workload 'resnet' (attention, gemm, conv2d, unet-sd15");
  expect_error([] { bench::parse_spec(R"({"workload": "gemm", "params": {"q": 1}})"); }, bad,
               "gemm has no parameter 'q' (");
  expect_error([] { bench::parse_spec(R"({"workload": "gemm", "params": {"m": "big"}})"); }, bad,
               "m must be an integer");
  expect_error([] { bench::parse_spec(R"({"workload": "gemm", "params": {"m": 0}})"); }, bad,
               "m must be >= 1");
  expect_error([] { bench::parse_spec(R"({"workload": "gemm", "dtype": "f8"})"); }, bad,
               "dtype 'f8'");
  expect_error([] { bench::parse_spec(R"({"workload": "gemm", "iters": 0})"); }, bad, "iters");
  expect_error([] { bench::parse_spec(R"({"workload": "gemm", "device": "tpu"})"); }, bad, "tpu");
  expect_error([] { bench::parse_spec(R"({"workload": "gemm", "repeat": 3})"); }, bad,
               "unknown spec field 'repeat'");
}

TEST(BenchRun, TinyOpsOnTheCpu) {
  bench::Spec s = bench::parse_spec(
      R"({"workload": "attention", "iters": 3, "warmup": 1,
          "params": {"heads": 2, "seq": 33, "head_dim": 16, "causal": true}})");
  nlohmann::json r = bench::run(s);
  EXPECT_EQ(r["label"], "attention 1x2x33x16 causal");
  EXPECT_EQ(r["times_ms"].size(), 3u);
  EXPECT_LE(r["min_ms"].get<double>(), r["median_ms"].get<double>());
  EXPECT_DOUBLE_EQ(r["flops"].get<double>(), bench::attention_flops(1, 2, 33, 33, 16, true));
  EXPECT_TRUE(r.contains("peak_rss_delta_bytes"));
  EXPECT_FALSE(r.contains("peak_allocated_bytes"));

  r = bench::run(bench::parse_spec(
      R"({"workload": "gemm", "iters": 2, "params": {"m": 31, "n": 33, "k": 77, "batch": 2}})"));
  EXPECT_EQ(r["label"], "gemm 2x31x33x77");
  EXPECT_DOUBLE_EQ(r["flops"].get<double>(), bench::gemm_flops(31, 33, 77, 2));

  r = bench::run(bench::parse_spec(
      R"({"workload": "conv2d", "iters": 2,
          "params": {"batch": 1, "cin": 8, "cout": 4, "height": 9, "width": 7, "stride": 2}})"));
  // 'same' padding 1, stride 2: 5 x 4 outputs.
  EXPECT_DOUBLE_EQ(r["flops"].get<double>(), bench::conv2d_flops(1, 4, 5, 4, 8, 1, 3, 3));
}

TEST(BenchRun, DeviceOrDtypeTheOpsCannotRunFailsClearly) {
  // The CPU attention is f32 only: the op's own error, not a crash.
  const bench::Spec s = bench::parse_spec(
      R"({"workload": "attention", "dtype": "bf16", "iters": 1,
          "params": {"heads": 1, "seq": 8, "head_dim": 8}})");
  EXPECT_THROW(bench::run(s), Error);
}

}  // namespace
}  // namespace kiln::test
