#!/usr/bin/env python3
"""Writes the AutoencoderKL parity fixtures under tests/data/vae/ with diffusers.

Two tiny random AutoencoderKL configs saved with `save_pretrained` (the real component layout:
config.json + diffusion_pytorch_model.safetensors):

  sd_tiny/    SD-like: 4 latent channels, block_out_channels (8, 16) (latent factor 2),
              quant_conv/post_quant_conv, scaling_factor 0.18215, no shift, f32 weights,
              sample_size 16 (so the default tiles are 16 px / 8 latents).
  flux_tiny/  Flux/SD3-like: 16 latent channels, block_out_channels (8, 8, 16) (factor 4),
              no quant convs, scaling_factor 0.3611, shift_factor 0.1159, weights stored in
              bf16 (kiln converts them to f32 on load), sample_size 32.
  noattn_tiny/ one block (factor 1), mid_block_add_attention False, f16 weights.

goldens.safetensors holds the inputs and diffusers' f32 outputs (reference model loaded back
from the saved folder with torch_dtype=float32, so bf16/f16 weights are widened exactly as kiln
widens them). Names: "<model>.<case>.<tensor>". Run from anywhere:

    /tmp/venv/ref/bin/python tests/reference/make_vae_fixtures.py

Deterministic (fixed seeds); about 570 KB in all.
"""
import json
from pathlib import Path

import torch
from diffusers import AutoencoderKL
from safetensors.torch import save_file

OUT = Path(__file__).resolve().parent.parent / "data" / "vae"

CONFIGS = {
    "sd_tiny": dict(
        config=dict(
            in_channels=3, out_channels=3, latent_channels=4,
            down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
            block_out_channels=[8, 16], layers_per_block=1, norm_num_groups=4, sample_size=16,
            scaling_factor=0.18215),
        dtype=torch.float32),
    "flux_tiny": dict(
        config=dict(
            in_channels=3, out_channels=3, latent_channels=16,
            down_block_types=["DownEncoderBlock2D"] * 3, up_block_types=["UpDecoderBlock2D"] * 3,
            block_out_channels=[8, 8, 16], layers_per_block=1, norm_num_groups=4,
            sample_size=32, scaling_factor=0.3611, shift_factor=0.1159,
            use_quant_conv=False, use_post_quant_conv=False),
        dtype=torch.bfloat16),
    "noattn_tiny": dict(
        config=dict(
            in_channels=3, out_channels=3, latent_channels=4,
            down_block_types=["DownEncoderBlock2D"], up_block_types=["UpDecoderBlock2D"],
            block_out_channels=[8], layers_per_block=2, norm_num_groups=2, sample_size=16,
            mid_block_add_attention=False),
        dtype=torch.float16),
}


def randomize(model, seed):
    """Default init leaves GroupNorm at weight 1 / bias 0; perturb every parameter so norms and
    biases are exercised too."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if name.endswith("norm1.weight") or name.endswith("norm2.weight") or \
                    name.endswith("norm.weight") or name.endswith("norm_out.weight"):
                p.copy_(1.0 + 0.2 * noise)
            elif name.endswith(".bias"):
                p.copy_(0.1 * noise)
            else:
                p.add_(0.05 * noise)


def uniform(shape, seed, lo=-1.0, hi=1.0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g) * (hi - lo) + lo


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    goldens = {}
    meta = {"torch_version": torch.__version__}
    import diffusers
    meta["diffusers_version"] = diffusers.__version__

    for idx, (name, spec) in enumerate(CONFIGS.items()):
        torch.manual_seed(1000 + idx)
        model = AutoencoderKL(**spec["config"])
        randomize(model, 2000 + idx)
        model.to(spec["dtype"]).save_pretrained(OUT / name, safe_serialization=True)
        ref = AutoencoderKL.from_pretrained(OUT / name, torch_dtype=torch.float32).eval()
        factor = 2 ** (len(spec["config"]["block_out_channels"]) - 1)
        lc = spec["config"]["latent_channels"]

        with torch.no_grad():
            # encode: batch 2, non-square, sizes a multiple of the latent factor.
            h, w = 6 * factor + (0 if factor > 1 else 5), 5 * factor + (0 if factor > 1 else 3)
            x = uniform((2, 3, h, w), 3000 + idx)
            dist = ref.encode(x).latent_dist
            goldens[f"{name}.encode.x"] = x
            goldens[f"{name}.encode.mean"] = dist.mean
            goldens[f"{name}.encode.logvar"] = dist.logvar
            if name == "sd_tiny":  # DiagonalGaussianDistribution.sample with a CPU generator
                gen = torch.Generator().manual_seed(42)
                goldens[f"{name}.encode.sample_seed42"] = dist.sample(generator=gen)

            # decode: batch 2, latent-sized input.
            z = torch.randn((2, lc, 7, 5), generator=torch.Generator().manual_seed(4000 + idx))
            goldens[f"{name}.decode.z"] = z
            goldens[f"{name}.decode.out"] = ref.decode(z).sample

            if name == "noattn_tiny":
                continue
            # tiled decode / encode with the config's tile sizes (enable_tiling()).
            ref.enable_tiling()
            tlm = ref.tile_latent_min_size
            zt = torch.randn((1, lc, tlm + tlm // 2 + 1, tlm + 3),
                             generator=torch.Generator().manual_seed(5000 + idx))
            goldens[f"{name}.tiled_decode.z"] = zt
            goldens[f"{name}.tiled_decode.out"] = ref.decode(zt).sample
            tsm = ref.tile_sample_min_size
            xt = uniform((1, 3, tsm + tsm // 2 + factor, tsm + 2 * factor), 6000 + idx)
            dist = ref.encode(xt).latent_dist
            goldens[f"{name}.tiled_encode.x"] = xt
            goldens[f"{name}.tiled_encode.mean"] = dist.mean
            goldens[f"{name}.tiled_encode.logvar"] = dist.logvar
            meta[f"{name}.tile_sample_min_size"] = str(tsm)
            meta[f"{name}.tile_latent_min_size"] = str(tlm)

            # Tile sizes set by hand (as users do: vae.tile_sample_min_size = ...); the last
            # tile row is a single latent row.
            ref.tile_sample_min_size = 6 * factor
            ref.tile_latent_min_size = 6
            zo = torch.randn((1, lc, 13, 10), generator=torch.Generator().manual_seed(7000 + idx))
            goldens[f"{name}.tiled_decode_custom.z"] = zo
            goldens[f"{name}.tiled_decode_custom.out"] = ref.decode(zo).sample
            meta[f"{name}.custom_tile_sample_min_size"] = str(ref.tile_sample_min_size)
            meta[f"{name}.custom_tile_latent_min_size"] = str(ref.tile_latent_min_size)

    goldens = {k: v.contiguous().float() for k, v in goldens.items()}
    save_file(goldens, OUT / "goldens.safetensors", metadata=meta)
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(json.dumps({k: list(v.shape) for k, v in goldens.items()}, indent=1))
    print(f"wrote {OUT} ({total / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
