#!/usr/bin/env python3
"""PyTorch CPU companion of kiln_bench_ops: the same shapes, f32, same thread count, printed as
'name ms GFLOP/s'. Run both in the same session on the same machine and report the ratio:

    OMP_NUM_THREADS=2 build/bench/kiln_bench_ops --benchmark_format=csv > kiln.csv
    OMP_NUM_THREADS=2 tests/reference/.venv/bin/python bench/torch_cpu_ops.py > torch.txt
"""
import os
import statistics
import time

import torch
import torch.nn.functional as F

torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
torch.manual_seed(0)


def bench(name, fn, flops, min_time=1.0):
    fn()  # warm-up
    times = []
    start = time.perf_counter()
    while time.perf_counter() - start < min_time or len(times) < 3:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    ms = statistics.median(times) * 1e3
    print(f"{name:44s} {ms:10.3f} ms {flops / ms / 1e6:8.1f} GFLOP/s", flush=True)


with torch.inference_mode():
    for m, n, k in [(1024, 1024, 1024), (4096, 320, 320), (4096, 640, 2880), (77, 768, 768)]:
        a, b = torch.rand(m, k) * 2 - 1, torch.rand(k, n) * 2 - 1
        bench(f"matmul/{m}/{n}/{k}", lambda: a @ b, 2.0 * m * n * k)
    for h, lq, lk, d in [(8, 4096, 4096, 40), (8, 4096, 77, 40), (24, 1024, 1024, 128)]:
        q, kk, v = torch.randn(1, h, lq, d), torch.randn(1, h, lk, d), torch.randn(1, h, lk, d)
        bench(f"attention/{h}/{lq}/{lk}/{d}", lambda: F.scaled_dot_product_attention(q, kk, v),
              4.0 * h * lq * lk * d)
    for cin, cout, hw, ks in [(320, 320, 64, 3), (640, 640, 32, 3), (512, 512, 128, 3),
                              (128, 128, 512, 3), (320, 320, 64, 1)]:
        x = torch.rand(1, cin, hw, hw) * 2 - 1
        w = torch.rand(cout, cin, ks, ks) * 2 - 1
        bias = torch.rand(cout) * 2 - 1
        bench(f"conv2d/{cin}/{cout}/{hw}/{ks}", lambda: F.conv2d(x, w, bias, padding=ks // 2),
              2.0 * cout * cin * ks * ks * hw * hw)
print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
      f"{torch.backends.cpu.get_cpu_capability()}")
