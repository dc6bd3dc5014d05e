#!/usr/bin/env python3
"""End-to-end fixture: a tiny random Stable Diffusion 1.x pipeline saved with save_pretrained
(the real diffusers folder layout) and the images diffusers generates with it.

    /tmp/venv/ref/bin/python tests/reference/make_sd15_pipeline_fixtures.py

Writes tests/data/sd15_pipe/ (model_index.json, unet/, vae/, text_encoder/, tokenizer/,
scheduler/; weights stored in float16 to keep the folder small — the goldens are computed in
float32 from those rounded weights, as kiln loads them) and tests/data/sd15_pipe.goldens.safetensors:
for each case, the float32 image (B, H, W, 3) in [0, 1] that StableDiffusionPipeline returns
with output_type="np", plus the initial latents. The tokenizer is the tiny BPE vocabulary of
tests/data/clip/tokenizer (make_clip_fixtures.py). Deterministic (fixed seeds).
"""
import json
import shutil
from pathlib import Path

import torch
from diffusers import (AutoencoderKL, DDIMScheduler, DPMSolverMultistepScheduler,
                       EulerAncestralDiscreteScheduler, EulerDiscreteScheduler, PNDMScheduler,
                       StableDiffusionPipeline, UNet2DConditionModel)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from fixture_util import save_goldens, ship_slow_tokenizers

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "data"
OUT = DATA / "sd15_pipe"

# (name, scheduler class, extra scheduler kwargs, prompt, negative prompt, steps, cfg, seed, batch)
CASES = [
    ("euler", EulerDiscreteScheduler, {}, "a photograph of an astronaut riding a horse", "", 4, 7.5, 42, 1),
    ("dpmpp_2m", DPMSolverMultistepScheduler, {}, "a castle on a hill at sunset", "blurry, low quality", 5, 5.0, 7, 1),
    ("ddim", DDIMScheduler, {}, "an oil painting of the sea", "", 4, 7.5, 3, 2),
    ("euler_a", EulerAncestralDiscreteScheduler, {}, "a cat sitting on a windowsill", "", 4, 6.0, 11, 1),
    ("dpmpp_2m_karras", DPMSolverMultistepScheduler, {"use_karras_sigmas": True},
     "portrait of a woman with red hair", "", 6, 7.5, 5, 1),
]
HEIGHT, WIDTH = 32, 40  # latent 16 x 20 with the 2-level VAE (vae_scale_factor 2)


def build():
    torch.manual_seed(0)
    te_cfg = CLIPTextConfig(hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                            num_attention_heads=4, max_position_embeddings=77, vocab_size=674,
                            bos_token_id=672, eos_token_id=673, pad_token_id=673,
                            hidden_act="quick_gelu", projection_dim=32)
    text_encoder = CLIPTextModel(te_cfg)
    unet = UNet2DConditionModel(
        sample_size=16, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=(16, 32), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
        attention_head_dim=4, norm_num_groups=8)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4,
                        block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4,
                        down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, sample_size=32)
    # Random init leaves some layers at zero (conv_out of the U-Net): perturb every weight so the
    # whole network contributes to the output.
    for m in (unet, vae, text_encoder):
        with torch.no_grad():
            for p in m.parameters():
                p.add_(torch.randn_like(p) * 0.02)
    tokenizer = CLIPTokenizer.from_pretrained(DATA / "clip" / "tokenizer")
    # The scheduler config of the real SD1.5 folders (PNDM, no sample clipping, alpha_T = alpha_0):
    # every case's scheduler is built from it with from_config, as users switch samplers.
    scheduler = PNDMScheduler.from_config(dict(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
        steps_offset=1, skip_prk_steps=True, clip_sample=False, set_alpha_to_one=False))
    return StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                                   unet=unet, scheduler=scheduler, safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)


def main():
    pipe = build()
    if OUT.exists():
        shutil.rmtree(OUT)
    pipe.to(torch.float16).save_pretrained(OUT)
    ship_slow_tokenizers(DATA, OUT, clip=("tokenizer",))
    pipe = StableDiffusionPipeline.from_pretrained(OUT, torch_dtype=torch.float32,
                                                   safety_checker=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    base_cfg = dict(pipe.scheduler.config)
    goldens, cases = {}, []
    for name, cls, extra, prompt, negative, steps, cfg, seed, batch in CASES:
        pipe.scheduler = cls.from_config(base_cfg, **extra)
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            out = pipe(prompt, negative_prompt=negative or None, height=HEIGHT, width=WIDTH,
                       num_inference_steps=steps, guidance_scale=cfg, generator=gen,
                       num_images_per_prompt=batch, output_type="np")
        goldens[f"{name}.image"] = torch.from_numpy(out.images).float().contiguous()
        cases.append(dict(name=name, scheduler=cls.__name__, options=extra, prompt=prompt,
                          negative_prompt=negative, steps=steps, guidance_scale=cfg, seed=seed,
                          batch=batch, height=HEIGHT, width=WIDTH))
    save_goldens(DATA / "sd15_pipe.goldens.safetensors", goldens, cases)
    print(json.dumps(cases, indent=1))


if __name__ == "__main__":
    main()
