#!/usr/bin/env python3
"""PyTorch/diffusers companion of kiln's real-size SD1.5 U-Net CPU timing: one CFG forward
(latent (2, 4, 64, 64), text (2, 77, 768)) with random weights, f32, median of 3 after a warm-up.

    OMP_NUM_THREADS=2 python bench/torch_unet_sd15.py
    OMP_NUM_THREADS=2 build/apps/kiln/kiln bench unet-sd15 --device cpu -n 3
"""
import os
import statistics
import time

import torch
from diffusers import UNet2DConditionModel

torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
torch.manual_seed(0)
unet = UNet2DConditionModel(cross_attention_dim=768, sample_size=64).eval()  # SD1.5 config
x, t, ctx = torch.randn(2, 4, 64, 64), torch.tensor([500.0, 500.0]), torch.randn(2, 77, 768)
with torch.inference_mode():
    unet(x, t, ctx)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        unet(x, t, ctx)
        times.append(time.perf_counter() - t0)
print(f"diffusers UNet2DConditionModel SD1.5 CFG forward: median {statistics.median(times):.2f} s "
      f"({', '.join(f'{v:.2f}' for v in times)}), torch {torch.__version__}, "
      f"{torch.get_num_threads()} threads")
