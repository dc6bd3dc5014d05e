#!/usr/bin/env python3
"""End-to-end fixture: image-to-image and inpainting with diffusers' StableDiffusionImg2ImgPipeline
and StableDiffusionInpaintPipeline on tiny random Stable Diffusion 1.x folders.

    /tmp/venv/ref/bin/python tests/reference/make_sd_img2img_fixtures.py

Uses tests/data/sd15_pipe (make_sd15_pipeline_fixtures.py; a 4-channel U-Net, so inpainting
blends the re-noised original latents outside the mask after every step) and writes
tests/data/sd15_inpaint_pipe/: the same text encoder, tokenizer, VAE and scheduler with a random
9-channel inpainting U-Net (input concat(latents, mask, masked image latents)), weights in
float16. tests/data/sd_img2img.goldens.safetensors holds, per case, the init image (1, 3, H, W)
in [-1, 1] (passed to diffusers as a tensor, which it uses as is), the mask (1, 1, H, W) in [0, 1]
with soft values on both sides of 0.5 (diffusers binarizes it), and the float32 image
(B, H, W, 3) in [0, 1] returned with output_type="np"; the case list is JSON in the metadata.
Deterministic (fixed seeds).
"""
import json
import shutil
from pathlib import Path

import torch
from diffusers import (DDIMScheduler, DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler,
                       EulerDiscreteScheduler, StableDiffusionImg2ImgPipeline,
                       StableDiffusionInpaintPipeline, UNet2DConditionModel)

from fixture_util import save_goldens

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "data"
SD15 = DATA / "sd15_pipe"
INPAINT = DATA / "sd15_inpaint_pipe"

# (name, folder, mode, scheduler, extra, prompt, negative, steps, cfg, seed, batch, strength)
CASES = [
    ("img2img_ddim", "sd15_pipe", "img2img", DDIMScheduler, {}, "an oil painting of the sea", "", 6, 7.5, 3, 2, 0.7),
    ("img2img_euler_a", "sd15_pipe", "img2img", EulerAncestralDiscreteScheduler, {}, "a cat on a windowsill", "blurry", 6, 6.0, 11, 1, 0.5),
    ("inpaint4_euler", "sd15_pipe", "inpaint", EulerDiscreteScheduler, {}, "a red hat", "", 5, 7.5, 5, 1, 1.0),
    ("inpaint4_dpmpp_2m", "sd15_pipe", "inpaint", DPMSolverMultistepScheduler, {}, "a red hat", "low quality", 8, 5.0, 8, 1, 0.75),
    ("inpaint9_euler_a", "sd15_inpaint_pipe", "inpaint", EulerAncestralDiscreteScheduler, {}, "a stone wall", "", 5, 7.5, 9, 2, 1.0),
    ("inpaint9_ddim", "sd15_inpaint_pipe", "inpaint", DDIMScheduler, {}, "a stone wall", "", 6, 7.5, 13, 1, 0.8),
]
HEIGHT, WIDTH = 32, 40


def make_inpaint_folder():
    base = StableDiffusionInpaintPipeline.from_pretrained(SD15, torch_dtype=torch.float32,
                                                          safety_checker=None,
                                                          requires_safety_checker=False)
    torch.manual_seed(1)
    unet = UNet2DConditionModel(**{**base.unet.config, "in_channels": 9})
    with torch.no_grad():
        for p in unet.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    base.unet = unet
    base.register_modules(unet=unet)
    if INPAINT.exists():
        shutil.rmtree(INPAINT)
    base.to(torch.float16).save_pretrained(INPAINT)
    for f in ("vocab.json", "merges.txt"):
        shutil.copy(SD15 / "tokenizer" / f, INPAINT / "tokenizer" / f)
    for f in INPAINT.rglob("tokenizer.json"):
        f.unlink()


def inputs(seed):
    g = torch.Generator().manual_seed(1000 + seed)
    image = torch.rand(1, 3, HEIGHT, WIDTH, generator=g) * 2 - 1
    mask = torch.zeros(1, 1, HEIGHT, WIDTH)
    mask[..., 6:22, 10:30] = 1.0
    mask[..., 22:26, 10:30] = 0.7   # binarized to 1
    mask[..., 2:6, 10:30] = 0.3     # binarized to 0
    mask[..., 13:17, 0:6] = 0.5     # 0.5 -> 1 (diffusers: < 0.5 is 0)
    return image, mask


def main():
    make_inpaint_folder()
    goldens, cases = {}, []
    for name, folder, mode, cls, extra, prompt, negative, steps, cfg, seed, batch, strength in CASES:
        klass = StableDiffusionImg2ImgPipeline if mode == "img2img" else StableDiffusionInpaintPipeline
        pipe = klass.from_pretrained(DATA / folder, torch_dtype=torch.float32, safety_checker=None,
                                     requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
        pipe.scheduler = cls.from_config(pipe.scheduler.config, **extra)
        image, mask = inputs(seed)
        kwargs = dict(negative_prompt=negative or None, num_inference_steps=steps,
                      guidance_scale=cfg, generator=torch.Generator().manual_seed(seed),
                      num_images_per_prompt=batch, strength=strength, output_type="np")
        with torch.no_grad():
            if mode == "img2img":
                out = pipe(prompt, image=image, **kwargs)
            else:
                out = pipe(prompt, image=image, mask_image=mask, height=HEIGHT, width=WIDTH, **kwargs)
                goldens[f"{name}.mask"] = mask.contiguous()
        goldens[f"{name}.init_image"] = image.contiguous()
        goldens[f"{name}.image"] = torch.from_numpy(out.images).float().contiguous()
        cases.append(dict(name=name, folder=folder, mode=mode, scheduler=cls.__name__,
                          options=extra, prompt=prompt, negative_prompt=negative, steps=steps,
                          guidance_scale=cfg, seed=seed, batch=batch, strength=strength,
                          height=HEIGHT, width=WIDTH))
    save_goldens(DATA / "sd_img2img.goldens.safetensors", goldens, cases)
    print(json.dumps(cases, indent=1))


if __name__ == "__main__":
    main()
