"""Times one denoiser training step (text encoder + U-Net forward/backward + fused AdamW) on
random inputs, for picking kiln-mini's batch size and compile mode before a training run:

  python tools/train/bench_step.py --batch 512 2048 [--compile] [--profile]

Prints ms per step and training samples per second for each batch size (after warm-up).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import models  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--batch", type=int, nargs="+", default=[512])
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--compile", action="store_true", help="torch.compile text encoder and U-Net")
    ap.add_argument("--profile", action="store_true", help="torch.profiler table of 3 steps")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = ap.parse_args()
    dev = torch.device(a.device)
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.manual_seed(0)
    te = models.make_text_encoder(686, 684, 685).to(dev)
    unet = models.make_unet().to(dev)
    params = list(te.parameters()) + list(unet.parameters())
    opt = torch.optim.AdamW(params, lr=1e-4, fused=dev.type == "cuda")
    te_f, unet_f = (torch.compile(te), torch.compile(unet)) if a.compile else (te, unet)
    for B in a.batch:
        ids = torch.randint(0, 684, (B, models.MAX_TOKENS), device=dev)
        z = torch.randn(B, 4, models.LATENT_SIZE, models.LATENT_SIZE, device=dev)
        t = torch.randint(0, 1000, (B,), device=dev)
        tid = torch.tensor([models.TIME_IDS], dtype=torch.float32, device=dev).expand(B, -1)

        def step():
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
                o = te_f(ids, output_hidden_states=True)
                p = unet_f(z, t, encoder_hidden_states=o.hidden_states[-2],
                           added_cond_kwargs={"text_embeds": o.text_embeds,
                                              "time_ids": tid}).sample.float()
            loss = (p - z).pow(2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        t0 = time.time()
        for _ in range(3):
            step()
        sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
        sync()
        warm = time.time() - t0
        t0 = time.time()
        for _ in range(a.steps):
            step()
        sync()
        ms = (time.time() - t0) / a.steps * 1000
        print(f"batch {B}: {ms:.1f} ms/step, {B / ms * 1000:.0f} samples/s "
              f"(warm-up incl. compile {warm:.1f} s)", flush=True)
        if a.profile:
            from torch.profiler import ProfilerActivity, profile
            acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
            with profile(activities=acts) as prof:
                for _ in range(3):
                    step()
                sync()
            key = "cuda_time_total" if dev.type == "cuda" else "cpu_time_total"
            print(prof.key_averages().table(sort_by=key, row_limit=15), flush=True)


if __name__ == "__main__":
    main()
