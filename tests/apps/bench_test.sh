#!/usr/bin/env bash
# Usage: bench_test.sh KILN_BINARY
# `kiln bench` on the CPU at tiny shapes: it runs, prints its table, writes JSON with the
# resolved spec; bad specs give a clear error and a non-zero exit. Timings are never judged.
set -uo pipefail
kiln="$1"
source "$(dirname "${BASH_SOURCE[0]}")/check_lib.sh"

if "$kiln" bench attention --device cpu -n 2 --warmup 1 -p heads=2 -p seq=40 -p head_dim=16 \
     -p causal=true --json "$tmp/b.json" >"$tmp/out" 2>&1; then
  pass "bench attention runs"
else
  bad "bench attention: $(cat "$tmp/out")"
fi
grep -q "attention 1x2x40x16 causal" "$tmp/out" && pass "table row" || bad "table row: $(cat "$tmp/out")"
grep -q "median ms" "$tmp/out" && pass "table header" || bad "table header"
grep -q '"seq_k": 40' "$tmp/b.json" && grep -q '"median_ms"' "$tmp/b.json" && grep -q '"tflops"' "$tmp/b.json" \
  && pass "json result" || bad "json result: $(cat "$tmp/b.json")"
if "$kiln" bench gemm conv2d -n 1 --warmup 0 -p batch=1 -p m=16 -p n=8 -p k=4 >"$tmp/out2" 2>&1; then
  bad "params unknown to conv2d should fail: $(cat "$tmp/out2")"
else
  grep -q "gemm 16x8x4" "$tmp/out2" && grep -q "conv2d has no parameter '" "$tmp/out2" \
    && pass "per-workload error, the others still run" || bad "per-workload error: $(cat "$tmp/out2")"
fi
"$kiln" bench --list | grep -q '^unet-sdxl' && pass "list" || bad "list"

expect_fail "unknown workload" "unknown workload 'resnet'" "$kiln" bench resnet
expect_fail "unknown parameter" "attention has no parameter 'tokens'" "$kiln" bench attention -p tokens=5
expect_fail "non-integer parameter" "must be an integer" "$kiln" bench gemm -p m=lots
expect_fail "param without =" "key=value" "$kiln" bench gemm -p m
expect_fail "bad device" "gpu" "$kiln" bench gemm --device gpu
expect_fail "no workload" "name a workload" "$kiln" bench
expect_fail "bf16 on the cpu" "attention" "$kiln" bench attention --dtype bf16 -n 1 --warmup 0 -p seq=8 -p head_dim=8 -p heads=1
expect_fail "cuda without a device" "cuda" "$kiln" bench gemm --device cuda:7 -n 1 -p m=8 -p n=8 -p k=8

finish
