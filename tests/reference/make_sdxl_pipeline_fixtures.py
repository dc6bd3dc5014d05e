#!/usr/bin/env python3
"""End-to-end fixture: a tiny random Stable Diffusion XL pipeline saved with save_pretrained
(the real diffusers folder layout) and the images diffusers generates with it.

    /tmp/venv/ref/bin/python tests/reference/make_sdxl_pipeline_fixtures.py

Writes tests/data/sdxl_pipe/ (model_index.json with force_zeros_for_empty_prompt, unet/ with
addition_embed_type "text_time", vae/, text_encoder/ (CLIPTextModel), text_encoder_2/
(CLIPTextModelWithProjection), tokenizer/ and tokenizer_2/ (the tiny BPE vocabulary of
tests/data/clip, the second padding with "!" as SDXL's), scheduler/; weights in float16, goldens
computed in float32 from those rounded weights, as kiln loads them) and
tests/data/sdxl_pipe.goldens.safetensors: for each case the float32 image (B, H, W, 3) in [0, 1]
that StableDiffusionXLPipeline returns with output_type="np" — or StableDiffusionXLImg2ImgPipeline
for "img2img_*" cases and StableDiffusionXLInpaintPipeline (4-channel U-Net: the re-noised
original is blended in outside the mask after each step) for "inpaint_*" cases, with the input
image (1, 3, H, W) in [-1, 1] stored as "<case>.init_image" and the mask (1, 1, H, W) as
"<case>.mask". The case list is
JSON in the metadata. Deterministic (fixed seeds).
"""
import json
import shutil
from pathlib import Path

import torch
from diffusers import (AutoencoderKL, DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler,
                       EulerDiscreteScheduler, StableDiffusionXLImg2ImgPipeline,
                       StableDiffusionXLInpaintPipeline, StableDiffusionXLPipeline,
                       UNet2DConditionModel)
from transformers import (CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection,
                          CLIPTokenizer)

from fixture_util import save_goldens, ship_slow_tokenizers

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "data"
OUT = DATA / "sdxl_pipe"

# (name, scheduler class, extra kwargs, prompt, negative prompt, steps, cfg, seed, batch, strength)
# An empty negative prompt is passed as None, so force_zeros_for_empty_prompt applies.
CASES = [
    ("euler", EulerDiscreteScheduler, {}, "a photograph of an astronaut riding a horse", "", 4, 7.5, 42, 1, None),
    ("dpmpp_2m_neg", DPMSolverMultistepScheduler, {}, "a castle on a hill at sunset", "blurry, low quality", 5, 5.0, 7, 2, None),
    ("euler_a", EulerAncestralDiscreteScheduler, {}, "a cat sitting on a windowsill", "", 4, 6.0, 11, 1, None),
    ("img2img_euler", EulerDiscreteScheduler, {}, "an oil painting of the sea", "ugly", 6, 7.5, 3, 1, 0.6),
    ("inpaint_euler_a", EulerAncestralDiscreteScheduler, {}, "a red hat", "", 5, 7.5, 5, 1, 1.0),
]
HEIGHT, WIDTH = 32, 40  # latent 16 x 20 with the 2-level VAE (vae_scale_factor 2)


def build():
    torch.manual_seed(0)
    common = dict(intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                  max_position_embeddings=77, vocab_size=674, bos_token_id=672, eos_token_id=673)
    text_encoder = CLIPTextModel(CLIPTextConfig(hidden_size=32, hidden_act="quick_gelu",
                                                pad_token_id=673, projection_dim=32, **common))
    text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(
        hidden_size=16, hidden_act="gelu", pad_token_id=1, projection_dim=16, **common))
    # SDXL U-Net layout at toy size: no attention in the first block, text_time conditioning
    # (6 time ids x addition_time_embed_dim 8 + pooled 16 = 64), cross_attention_dim 32 + 16.
    unet = UNet2DConditionModel(
        sample_size=16, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=(16, 24), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=48,
        attention_head_dim=(2, 4), transformer_layers_per_block=1, use_linear_projection=True,
        addition_embed_type="text_time", addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=64, norm_num_groups=8)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4,
                        block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4,
                        down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, sample_size=32,
                        scaling_factor=0.13025)
    for m in (unet, vae, text_encoder, text_encoder_2):
        with torch.no_grad():
            for p in m.parameters():
                p.add_(torch.randn_like(p) * 0.02)
    tokenizer = CLIPTokenizer.from_pretrained(DATA / "clip" / "tokenizer")
    tokenizer_2 = CLIPTokenizer.from_pretrained(DATA / "clip" / "tokenizer_2")
    # SDXL base's scheduler config (EulerDiscrete, leading spacing, steps_offset 1).
    scheduler = EulerDiscreteScheduler.from_config(dict(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
        steps_offset=1, timestep_spacing="leading", interpolation_type="linear",
        prediction_type="epsilon", use_karras_sigmas=False))
    return StableDiffusionXLPipeline(vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2,
                                     tokenizer=tokenizer, tokenizer_2=tokenizer_2, unet=unet,
                                     scheduler=scheduler, force_zeros_for_empty_prompt=True)


def main():
    pipe = build()
    if OUT.exists():
        shutil.rmtree(OUT)
    pipe.to(torch.float16).save_pretrained(OUT)
    ship_slow_tokenizers(DATA, OUT, clip=("tokenizer", "tokenizer_2"))
    pipe = StableDiffusionXLPipeline.from_pretrained(OUT, torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    base_cfg = dict(pipe.scheduler.config)
    goldens, cases = {}, []
    for name, cls, extra, prompt, negative, steps, cfg, seed, batch, strength in CASES:
        pipe.scheduler = cls.from_config(base_cfg, **extra)
        gen = torch.Generator().manual_seed(seed)
        kwargs = dict(negative_prompt=negative or None, num_inference_steps=steps,
                      guidance_scale=cfg, generator=gen, num_images_per_prompt=batch,
                      output_type="np")
        with torch.no_grad():
            if strength is None:
                out = pipe(prompt, height=HEIGHT, width=WIDTH, **kwargs)
            else:
                g = torch.Generator().manual_seed(1000 + seed)
                image = torch.rand(1, 3, HEIGHT, WIDTH, generator=g) * 2 - 1  # [-1, 1], used as is
                goldens[f"{name}.init_image"] = image.contiguous()
                if name.startswith("img2img"):
                    i2i = StableDiffusionXLImg2ImgPipeline(**pipe.components)
                    i2i.set_progress_bar_config(disable=True)
                    out = i2i(prompt, image=image, strength=strength, **kwargs)
                else:
                    mask = torch.zeros(1, 1, HEIGHT, WIDTH)
                    mask[..., 6:22, 10:30] = 1.0
                    mask[..., 22:26, 10:30] = 0.7  # diffusers binarizes at 0.5
                    goldens[f"{name}.mask"] = mask.contiguous()
                    inp = StableDiffusionXLInpaintPipeline(**pipe.components)
                    inp.set_progress_bar_config(disable=True)
                    out = inp(prompt, image=image, mask_image=mask, height=HEIGHT, width=WIDTH,
                              strength=strength, **kwargs)
        goldens[f"{name}.image"] = torch.from_numpy(out.images).float().contiguous()
        cases.append(dict(name=name, scheduler=cls.__name__, options=extra, prompt=prompt,
                          negative_prompt=negative, steps=steps, guidance_scale=cfg, seed=seed,
                          batch=batch, height=HEIGHT, width=WIDTH, strength=strength))
    save_goldens(DATA / "sdxl_pipe.goldens.safetensors", goldens, cases)
    print(json.dumps(cases, indent=1))


if __name__ == "__main__":
    main()
