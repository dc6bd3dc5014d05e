#!/usr/bin/env python3
"""Writes the FluxTransformer2DModel parity fixtures under tests/data/flux/ with diffusers.

Two tiny random-weight configurations of the Flux.1 architecture, each saved with
`save_pretrained` (config.json + diffusers weights) and read back in f32 with `from_pretrained`
before the goldens are computed, so the goldens belong to exactly the weights on disk:

  dev      guidance_embeds true (CombinedTimestepGuidanceTextProjEmbeddings); 1 double-stream +
           2 single-stream blocks; weights stored in bf16
  schnell  guidance_embeds false (CombinedTimestepTextProjEmbeddings); 1 double + 1 single block;
           weights stored in f16

Both: in_channels 16 (4 latent channels packed 2x2), 2 heads x 16 dims, axes_dims_rope (4, 6, 6),
joint_attention_dim 32, pooled_projection_dim 32.

`<name>.io.safetensors` holds cases `<case>.{hidden_states, encoder_hidden_states,
pooled_projections, timestep, img_ids, txt_ids[, guidance], out}` (f32). Inputs are made the way
FluxPipeline makes them: latents packed with `_pack_latents`, img_ids from
`_prepare_latent_image_ids`, txt_ids zeros, timestep = t / 1000 (the model multiplies by 1000),
guidance = the guidance scale broadcast to the batch. One dev case has non-zero txt_ids on every
axis (as Kontext-style conditioning uses) so all three rope axes are exercised.

`pipeline.safetensors` holds FluxPipeline's static helpers on a (2, 4, 6, 10) latent:
`latents`, `packed` (_pack_latents), `unpacked` (_unpack_latents with height 52, width 80 and
vae_scale_factor 8: 52 rounds down to a 6-row latent) and `img_ids` (_prepare_latent_image_ids
for a 3 x 5 grid).

`real_configs.json` records key count, parameter count and a hash of the sorted state_dict
"key shape" lines of the real FLUX.1-dev and FLUX.1-schnell transformers (built on the meta
device), which the C++ test compares with kiln's module tree.

Run:  /tmp/venv/ref/bin/python tests/reference/make_flux_fixtures.py
Deterministic values (fixed seeds, CPU f32, one thread); the bytes of a file may still differ
between runs because safetensors writes `__metadata__` keys in hash-map order. Total about 370 KB.
"""
import json
import shutil
from pathlib import Path

import torch
from diffusers import FluxPipeline, FluxTransformer2DModel
from safetensors.torch import save_file

from fixture_util import perturb, real_key_trees, versions

OUT = Path(__file__).resolve().parent.parent / "data" / "flux"

TINY = dict(
    patch_size=1,
    in_channels=16,
    num_attention_heads=2,
    attention_head_dim=16,
    joint_attention_dim=32,
    pooled_projection_dim=32,
    axes_dims_rope=(4, 6, 6),
)
CONFIGS = {
    "dev": dict(TINY, num_layers=1, num_single_layers=2, guidance_embeds=True),
    "schnell": dict(TINY, num_layers=1, num_single_layers=1, guidance_embeds=False),
}
STORE_DTYPE = {"dev": torch.bfloat16, "schnell": torch.float16}

# The shipped transformer/config.json of black-forest-labs/FLUX.1-{dev,schnell}.
REAL_CONFIGS = {
    "flux1_dev": dict(patch_size=1, in_channels=64, num_layers=19, num_single_layers=38,
                      attention_head_dim=128, num_attention_heads=24, joint_attention_dim=4096,
                      pooled_projection_dim=768, guidance_embeds=True, axes_dims_rope=(16, 56, 56)),
    "flux1_schnell": dict(patch_size=1, in_channels=64, num_layers=19, num_single_layers=38,
                          attention_head_dim=128, num_attention_heads=24, joint_attention_dim=4096,
                          pooled_projection_dim=768, guidance_embeds=False,
                          axes_dims_rope=(16, 56, 56)),
}


def make_case(g, cfg, batch, lat_h, lat_w, seq, sigma, guidance=None, txt_ids=None):
    """Inputs as FluxPipeline.__call__ builds them for a (batch, 4, lat_h, lat_w) latent."""
    ch = cfg["in_channels"] // 4
    latents = torch.randn(batch, ch, lat_h, lat_w, generator=g)
    hidden = FluxPipeline._pack_latents(latents, batch, ch, lat_h, lat_w)
    img_ids = FluxPipeline._prepare_latent_image_ids(batch, lat_h // 2, lat_w // 2, "cpu",
                                                     torch.float32)
    case = {
        "hidden_states": hidden,
        "encoder_hidden_states": torch.randn(batch, seq, cfg["joint_attention_dim"], generator=g),
        "pooled_projections": torch.randn(batch, cfg["pooled_projection_dim"], generator=g),
        # The pipeline passes timestep / 1000 with timestep = sigma * 1000 (f32).
        "timestep": (torch.full((batch,), sigma * 1000.0) / 1000).to(torch.float32),
        "img_ids": img_ids,
        "txt_ids": torch.zeros(seq, 3) if txt_ids is None else txt_ids,
    }
    if guidance is not None:
        case["guidance"] = torch.tensor(guidance, dtype=torch.float32)
    return case


def cases_for(name, g):
    cfg = CONFIGS[name]
    if name == "dev":
        kontext_ids = torch.stack([torch.ones(5), torch.arange(5.0) + 2, 7 - torch.arange(5.0)], 1)
        return {
            "b2": make_case(g, cfg, 2, 8, 8, 7, 0.6123, guidance=[3.5, 3.5]),
            "wide": make_case(g, cfg, 1, 6, 10, 9, 1.0, guidance=[4.0]),
            "ids": make_case(g, cfg, 2, 4, 6, 5, 0.25, guidance=[2.0, 5.5], txt_ids=kontext_ids),
        }
    return {
        "b2": make_case(g, cfg, 2, 6, 10, 7, 0.75),
        "one": make_case(g, cfg, 1, 8, 4, 11, 0.0307),
    }


def pipeline_helpers(g):
    latents = torch.randn(2, 4, 6, 10, generator=g)
    packed = FluxPipeline._pack_latents(latents, 2, 4, 6, 10)
    unpacked = FluxPipeline._unpack_latents(packed, 52, 80, 8)
    img_ids = FluxPipeline._prepare_latent_image_ids(2, 3, 5, "cpu", torch.float32)
    return {"latents": latents, "packed": packed, "unpacked": unpacked, "img_ids": img_ids}


def main():
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    torch.set_grad_enabled(False)
    torch.set_num_threads(1)  # summation order independent of the core count
    meta = versions()
    for i, (name, cfg) in enumerate(CONFIGS.items()):
        torch.manual_seed(100 + i)
        model = FluxTransformer2DModel(**cfg).eval()
        perturb(model, 200 + i, 0.1, only_1d=True)
        folder = OUT / name
        model.to(STORE_DTYPE[name]).save_pretrained(folder)
        ref = FluxTransformer2DModel.from_pretrained(folder, torch_dtype=torch.float32).eval()

        g = torch.Generator().manual_seed(300 + i)
        tensors = {}
        for case, inp in cases_for(name, g).items():
            out = ref(**inp).sample
            for k, v in inp.items():
                tensors[f"{case}.{k}"] = v.contiguous()
            tensors[f"{case}.out"] = out.contiguous()
        save_file(tensors, OUT / f"{name}.io.safetensors", metadata=meta)
        n = sum(p.numel() for p in ref.parameters())
        print(f"{name}: {n} params, cases {sorted(k for k in tensors if k.endswith('.out'))}")
    helpers = {k: v.contiguous() for k, v in pipeline_helpers(torch.Generator().manual_seed(400)).items()}
    save_file(helpers, OUT / "pipeline.safetensors", metadata=meta)
    (OUT / "real_configs.json").write_text(json.dumps(
        real_key_trees(FluxTransformer2DModel, REAL_CONFIGS), indent=1) + "\n")
    total = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"wrote {OUT} ({total / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
