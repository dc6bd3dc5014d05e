"""Loss curves of a kiln-mini training run: WORK/vae_log.jsonl and WORK/denoiser_log.jsonl ->
WORK/loss_vae.png and WORK/loss_denoiser.png (committed under tools/train/ for the shipped model).

  python tools/train/plots.py WORK
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read(path: Path) -> list[dict]:
    return [json.loads(l) for l in path.read_text().splitlines() if l.strip()] if path.exists() else []


def smooth(ys: list[float], k: int = 9) -> list[float]:
    out = []
    for i in range(len(ys)):
        w = ys[max(0, i - k // 2): i + k // 2 + 1]
        out.append(sum(w) / len(w))
    return out


def main() -> None:
    work = Path(sys.argv[1])
    vae = read(work / "vae_log.jsonl")
    if vae:
        fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
        steps = [r["step"] for r in vae]
        ax[0].semilogy(steps, [r["loss"] for r in vae], lw=0.8, alpha=0.4)
        ax[0].semilogy(steps, smooth([r["loss"] for r in vae]), lw=1.5)
        ax[0].set(title="VAE loss (L1 + MSE + KL term)", xlabel="step")
        ax[1].plot(steps, smooth([r["psnr"] for r in vae]))
        ax[1].set(title="VAE reconstruction PSNR (dB, training batches)", xlabel="step")
        for a in ax:
            a.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(work / "loss_vae.png", dpi=110)
    den = read(work / "denoiser_log.jsonl")
    if den:
        fig, ax = plt.subplots(figsize=(6, 3.6))
        # Samples seen on the x axis: the batch changes between resumed phases.
        by_samples = all("samples" in r for r in den)
        steps = [r["samples"] if by_samples else r["step"] for r in den]
        ax.semilogy(steps, [r["loss"] for r in den], lw=0.8, alpha=0.4, label="per logged step")
        ax.semilogy(steps, smooth([r["loss"] for r in den], 21), lw=1.5, label="smoothed")
        # Resumed phases (one device call each) start at a dashed line.
        for a_, b_ in zip(den, den[1:]):
            if a_.get("phase") != b_.get("phase"):
                ax.axvline(b_["samples"] if by_samples else b_["step"], color="grey", ls="--", lw=0.8)
        ax.set(title="Denoiser loss (v-prediction, min-SNR-5 weighted)",
               xlabel="training samples" if by_samples else "step")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(work / "loss_denoiser.png", dpi=110)


if __name__ == "__main__":
    main()
