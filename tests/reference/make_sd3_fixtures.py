#!/usr/bin/env python3
"""Writes the SD3Transformer2DModel (MMDiT) parity fixtures under tests/data/sd3/ with diffusers.

Two tiny random-weight configurations of the real architectures, each saved with
`save_pretrained` (config.json + diffusion_pytorch_model.safetensors, which holds the
`pos_embed.pos_embed` sincos buffer since it is persistent when pos_embed_max_size is set) and
read back with `from_pretrained` before the goldens are computed:

  sd3   SD3-medium-like: no qk norm, no dual attention; 3 layers (the last context_pre_only)
  sd35  SD3.5-like: qk_norm "rms_norm", dual_attention_layers (0,) (SD35AdaLayerNormZeroX +
        attn2 in block 0); 2 layers; stored in bf16 (kiln converts to f32 on load)

Both: sample_size 16, patch 2 (base grid 8), 2 heads x 8 dims (inner 16), joint_attention_dim 32,
caption_projection_dim 16, pooled 32, pos_embed_max_size 16 (latents up to 32x32) unless noted.

`<name>.io.safetensors` holds cases `<case>.{hidden_states, encoder_hidden_states,
pooled_projections, timestep, out}` (f32):
  two   batch 2, different latents/timesteps, 16x16 latent (the model's sample_size)
  wide  batch 2 (CFG layout), 12x20 latent: non-square, cropped off-centre of the 16x16 grid
  big   batch 1, 32x32 latent: the whole pos_embed_max_size grid (not nocrop)
  skip  (sd35 only) batch 1, 10x14 latent, skip_layers=[0] (SD3.5 skip-layer guidance)

`real_configs.json`: key count, parameter count and FNV-1a-64 of the sorted "key shape" lines of
the real SD3-medium, SD3.5-medium and SD3.5-large transformers (built on the meta device).

Run:  /tmp/venv/ref/bin/python tests/reference/make_sd3_fixtures.py
Deterministic (fixed seeds, CPU f32). Total size about 420 KB.
"""
import json
import shutil
from pathlib import Path

import torch
from diffusers import SD3Transformer2DModel
from safetensors.torch import save_file

from fixture_util import perturb, real_key_trees, versions

OUT = Path(__file__).resolve().parent.parent / "data" / "sd3"

COMMON = dict(
    sample_size=16,
    patch_size=2,
    in_channels=4,
    out_channels=4,
    attention_head_dim=8,
    num_attention_heads=2,
    joint_attention_dim=32,
    caption_projection_dim=16,
    pooled_projection_dim=32,
    pos_embed_max_size=16,
)
CONFIGS = {
    "sd3": dict(COMMON, num_layers=3),
    "sd35": dict(COMMON, num_layers=2, qk_norm="rms_norm", dual_attention_layers=(0,)),
    "nocrop": dict(COMMON, num_layers=1, pos_embed_max_size=None),
}

REAL_CONFIGS = {
    "sd3_medium": dict(sample_size=128, patch_size=2, in_channels=16, num_layers=24,
                       attention_head_dim=64, num_attention_heads=24, joint_attention_dim=4096,
                       caption_projection_dim=1536, pooled_projection_dim=2048, out_channels=16,
                       pos_embed_max_size=192),
    "sd35_medium": dict(sample_size=128, patch_size=2, in_channels=16, num_layers=24,
                        attention_head_dim=64, num_attention_heads=24, joint_attention_dim=4096,
                        caption_projection_dim=1536, pooled_projection_dim=2048, out_channels=16,
                        pos_embed_max_size=384, qk_norm="rms_norm",
                        dual_attention_layers=list(range(13))),
    "sd35_large": dict(sample_size=128, patch_size=2, in_channels=16, num_layers=38,
                       attention_head_dim=64, num_attention_heads=38, joint_attention_dim=4096,
                       caption_projection_dim=2432, pooled_projection_dim=2048, out_channels=16,
                       pos_embed_max_size=192, qk_norm="rms_norm"),
}


def cases_for(name, g):
    c = CONFIGS[name]
    cin, jd, pd = c["in_channels"], c["joint_attention_dim"], c["pooled_projection_dim"]
    two = {
        "hidden_states": torch.randn(2, cin, 16, 16, generator=g),
        "encoder_hidden_states": torch.randn(2, 7, jd, generator=g),
        "pooled_projections": torch.randn(2, pd, generator=g),
        "timestep": torch.tensor([999.0, 17.5]),
    }
    x = torch.randn(1, cin, 12, 20, generator=g)
    p = torch.randn(1, pd, generator=g)
    wide = {  # CFG layout: one latent twice, uncond + cond text
        "hidden_states": torch.cat([x, x]),
        "encoder_hidden_states": torch.randn(2, 5, jd, generator=g),
        "pooled_projections": torch.cat([torch.zeros_like(p), p]),
        "timestep": torch.tensor([421.0, 421.0]),
    }
    big = {
        "hidden_states": torch.randn(1, cin, 32, 32, generator=g),
        "encoder_hidden_states": torch.randn(1, 9, jd, generator=g),
        "pooled_projections": torch.randn(1, pd, generator=g),
        "timestep": torch.tensor([3.0]),
    }
    if name == "nocrop":
        return {"two": two, "wide": wide}
    cases = {"two": two, "wide": wide, "big": big}
    if name == "sd35":
        cases["skip"] = {
            "hidden_states": torch.randn(1, cin, 10, 14, generator=g),
            "encoder_hidden_states": torch.randn(1, 6, jd, generator=g),
            "pooled_projections": torch.randn(1, pd, generator=g),
            "timestep": torch.tensor([640.0]),
        }
    return cases


def main():
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    torch.set_grad_enabled(False)
    for i, (name, cfg) in enumerate(CONFIGS.items()):
        torch.manual_seed(500 + i)
        model = SD3Transformer2DModel(**cfg).eval()
        perturb(model, 600 + i, 0.1, only_1d=True)
        folder = OUT / name
        if name == "sd35":
            model.to(torch.bfloat16).save_pretrained(folder)
        elif name == "nocrop":
            model.to(torch.float16).save_pretrained(folder)
        else:
            model.save_pretrained(folder)
        ref = SD3Transformer2DModel.from_pretrained(folder, torch_dtype=torch.float32).eval()

        g = torch.Generator().manual_seed(700 + i)
        tensors = {}
        for case, inp in cases_for(name, g).items():
            skip = [0] if case == "skip" else None
            out = ref(inp["hidden_states"], inp["encoder_hidden_states"],
                      inp["pooled_projections"], inp["timestep"], skip_layers=skip).sample
            for k, v in inp.items():
                tensors[f"{case}.{k}"] = v.contiguous()
            tensors[f"{case}.out"] = out.contiguous()
        save_file(tensors, OUT / f"{name}.io.safetensors", metadata=versions())
        n = sum(p.numel() for p in ref.parameters())
        print(f"{name}: {n} params, cases {sorted(tensors)}")
    (OUT / "real_configs.json").write_text(json.dumps(
        real_key_trees(SD3Transformer2DModel, REAL_CONFIGS), indent=1) + "\n")
    total = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"wrote {OUT} ({total / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
