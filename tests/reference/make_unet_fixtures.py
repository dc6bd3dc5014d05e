#!/usr/bin/env python3
"""Writes the UNet2DConditionModel parity fixtures under tests/data/unet/ with diffusers.

Five tiny random-weight configurations of the real architectures, each saved with
`save_pretrained` (the real component folder: config.json + diffusers weights) and read back with
`from_pretrained` before the golden outputs are computed, so the goldens belong to exactly the
weights on disk:

  sd15     SD1.x-like: CrossAttn, CrossAttn, Down; conv proj_in/out; one head count for all blocks
  sd2      SD2.x-like: attention_head_dim as a per-block list, use_linear_projection; SHARDED
           (diffusion_pytorch_model.safetensors.index.json + 2 shards)
  sdxl     SDXL-like: Down (no attention), CrossAttn, CrossAttn; transformer_layers_per_block
           (1, 1, 2); addition_embed_type "text_time"; stored in fp16
  inpaint  SD1.x inpainting-like: in_channels 9
  lcm      LCM-distilled SD1.x-like: time_cond_proj_dim (guidance embedding as timestep_cond)

Each `<name>.io.safetensors` holds one or more cases `<case>.sample`, `<case>.timestep`,
`<case>.encoder_hidden_states` (+ `<case>.text_embeds`, `<case>.time_ids` for SDXL,
`<case>.timestep_cond` for LCM) and the diffusers output `<case>.out`, all f32. Batch 2
everywhere (CFG layout: the same latent twice, uncond + cond text), awkward sequence lengths and
one case whose spatial size is not a multiple of 2^(levels-1) (diffusers then forwards the skip
sizes to the upsamplers). `real_configs.json`: see fixture_util.real_key_trees().

Run:  /tmp/venv/ref/bin/python tests/reference/make_unet_fixtures.py
Deterministic values (fixed seeds, CPU f32; safetensors may order the metadata differently).
Total about 2.6 MB: weights ~2.5 MB (sd15 1.25 MB), goldens ~120 KB, real_configs.json 2 KB.
"""
import json
import shutil
from pathlib import Path

import torch
from diffusers import UNet2DConditionModel
from safetensors.torch import save_file

from fixture_util import perturb, real_key_trees, versions

OUT = Path(__file__).resolve().parent.parent / "data" / "unet"


CONFIGS = {
    "sd15": dict(
        block_out_channels=(16, 24, 32),
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        layers_per_block=1,
        cross_attention_dim=24,
        attention_head_dim=2,  # diffusers reads this as the number of heads (issue 2011)
        norm_num_groups=8,
        sample_size=16,
    ),
    "sd2": dict(
        block_out_channels=(8, 16),
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        layers_per_block=1,
        cross_attention_dim=24,
        attention_head_dim=[2, 4],
        use_linear_projection=True,
        norm_num_groups=4,
        sample_size=16,
        flip_sin_to_cos=True,
        freq_shift=0,
    ),
    "sdxl": dict(
        block_out_channels=(8, 16, 24),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        layers_per_block=1,
        transformer_layers_per_block=(1, 1, 2),
        cross_attention_dim=24,
        attention_head_dim=[2, 2, 4],
        use_linear_projection=True,
        norm_num_groups=4,
        sample_size=16,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=20 + 6 * 8,  # text_embeds 20 + 6 time ids * 8
    ),
    "inpaint": dict(
        in_channels=9,
        block_out_channels=(8, 16),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        layers_per_block=1,
        cross_attention_dim=24,
        attention_head_dim=2,
        norm_num_groups=4,
        sample_size=16,
    ),
    "lcm": dict(
        block_out_channels=(8, 16),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        layers_per_block=1,
        cross_attention_dim=24,
        attention_head_dim=2,
        norm_num_groups=4,
        sample_size=16,
        time_cond_proj_dim=12,
    ),
}


def cfg_case(g, in_ch, h, w, seq, dim, t):
    """Batch 2 as classifier-free guidance builds it: one latent twice, uncond + cond text."""
    x = torch.randn(1, in_ch, h, w, generator=g)
    return {
        "sample": torch.cat([x, x]),
        "timestep": torch.tensor([t, t], dtype=torch.float32),
        "encoder_hidden_states": torch.randn(2, seq, dim, generator=g),
    }


def cases_for(name, g):
    in_ch = CONFIGS[name].get("in_channels", 4)
    if name == "sd15":
        two = {  # two different latents and timesteps
            "sample": torch.randn(2, 4, 16, 16, generator=g),
            "timestep": torch.tensor([999.0, 17.0]),
            "encoder_hidden_states": torch.randn(2, 7, 24, generator=g),
        }
        odd = {  # 14x10: not a multiple of 4; a scalar timestep broadcast to the batch
            "sample": torch.randn(2, 4, 14, 10, generator=g),
            "timestep": torch.tensor([500.0]),
            "encoder_hidden_states": torch.randn(2, 5, 24, generator=g),
        }
        return {"cfg": cfg_case(g, in_ch, 16, 16, 7, 24, 981.0), "two": two, "odd": odd}
    if name == "sdxl":
        c = cfg_case(g, in_ch, 16, 12, 9, 24, 761.0)
        c["text_embeds"] = torch.randn(2, 20, generator=g)
        # (original h, w, crop top, left, target h, w) in pixels, as the SDXL pipeline builds them
        c["time_ids"] = torch.tensor([[128.0, 96.0, 0.0, 0.0, 128.0, 96.0],
                                      [1024.0, 768.0, 16.0, 8.0, 128.0, 96.0]])
        return {"cfg": c}
    if name == "lcm":  # LCM: no CFG batch; the guidance scale enters as timestep_cond
        c = {
            "sample": torch.randn(2, 4, 16, 16, generator=g),
            "timestep": torch.tensor([879.0, 259.0]),
            "encoder_hidden_states": torch.randn(2, 7, 24, generator=g),
            "timestep_cond": torch.randn(2, 12, generator=g),
        }
        return {"cfg": c}
    return {"cfg": cfg_case(g, in_ch, 16, 16, 7, 24, 421.0)}


# Real-size configurations (as on the Hub, trimmed to the keys that matter; the rest take
# diffusers' defaults). Built on the meta device: only names and shapes are recorded.
REAL_CONFIGS = {
    "sd15": dict(cross_attention_dim=768, attention_head_dim=8, sample_size=64),
    "sd15_inpaint": dict(in_channels=9, cross_attention_dim=768, attention_head_dim=8),
    "sd21": dict(cross_attention_dim=1024, attention_head_dim=[5, 10, 20, 20],
                 use_linear_projection=True, upcast_attention=True, sample_size=96),
    "sdxl_base": dict(
        block_out_channels=[320, 640, 1280], attention_head_dim=[5, 10, 20],
        down_block_types=["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
        up_block_types=["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
        transformer_layers_per_block=[1, 2, 10], cross_attention_dim=2048,
        use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=256,
        projection_class_embeddings_input_dim=2816, sample_size=128),
    "sdxl_refiner": dict(
        block_out_channels=[384, 768, 1536, 1536], attention_head_dim=[6, 12, 24, 24],
        down_block_types=["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                          "DownBlock2D"],
        up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
        transformer_layers_per_block=4, cross_attention_dim=1280, use_linear_projection=True,
        addition_embed_type="text_time", addition_time_embed_dim=256,
        projection_class_embeddings_input_dim=2560, sample_size=128),
}


def main():
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    torch.set_grad_enabled(False)
    for i, (name, cfg) in enumerate(CONFIGS.items()):
        torch.manual_seed(100 + i)
        model = UNet2DConditionModel(**cfg).eval()
        perturb(model, 200 + i, 0.1, only_1d=True)
        folder = OUT / name
        if name == "sd2":
            model.save_pretrained(folder, max_shard_size="150KB")
            assert (folder / "diffusion_pytorch_model.safetensors.index.json").exists()
        elif name in ("sdxl", "sd15"):
            # f16 storage keeps each weight file under 1 MB; the goldens are computed in f32
            # from the rounded weights, as kiln loads them.
            model.to(torch.float16).save_pretrained(folder)
        else:
            model.save_pretrained(folder)
        ref = UNet2DConditionModel.from_pretrained(folder, torch_dtype=torch.float32).eval()

        g = torch.Generator().manual_seed(300 + i)
        tensors = {}
        for case, inp in cases_for(name, g).items():
            added = None
            if "text_embeds" in inp:
                added = {"text_embeds": inp["text_embeds"], "time_ids": inp["time_ids"]}
            out = ref(inp["sample"], inp["timestep"], inp["encoder_hidden_states"],
                      timestep_cond=inp.get("timestep_cond"), added_cond_kwargs=added).sample
            for k, v in inp.items():
                tensors[f"{case}.{k}"] = v.contiguous()
            tensors[f"{case}.out"] = out.contiguous()
        save_file(tensors, OUT / f"{name}.io.safetensors", metadata=versions())
        n = sum(p.numel() for p in ref.parameters())
        print(f"{name}: {n} params, cases {sorted(cases_for(name, torch.Generator()).keys())}")
    (OUT / "real_configs.json").write_text(json.dumps(
        real_key_trees(UNet2DConditionModel, REAL_CONFIGS), indent=1) + "\n")
    total = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"wrote {OUT} ({total / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
