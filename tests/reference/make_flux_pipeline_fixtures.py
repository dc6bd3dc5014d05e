#!/usr/bin/env python3
"""End-to-end fixture: a tiny random Flux.1-architecture pipeline saved with save_pretrained (the
real diffusers folder layout) and the images diffusers' FluxPipeline generates with it.

    /tmp/venv/ref/bin/python tests/reference/make_flux_pipeline_fixtures.py

Writes tests/data/flux_pipe/ (model_index.json, transformer/ (dev-like: guidance_embeds true),
vae/ (16 latent channels, shift_factor), text_encoder/ (CLIPTextModel), text_encoder_2/
(T5EncoderModel), tokenizer/, tokenizer_2/, scheduler/ (FLUX.1-dev's: dynamic shifting); weights
in float16, goldens computed in float32 from those rounded weights, as kiln loads them),
tests/data/flux_pipe_schnell/ (only transformer/ without guidance embedding and scheduler/ with
FLUX.1-schnell's static shift 1.0: the kiln test swaps them into a copy of flux_pipe/, which is
what this script runs too) and tests/data/flux_pipe.goldens.safetensors: for each case the
float32 image (B, H, W, 3) in [0, 1] that FluxPipeline (FluxImg2ImgPipeline for the cases with
a strength, which also store their init image (1, 3, H, W) in [-1, 1] as "<case>.init_image" and
record denoise_steps, the steps left after strength truncation) returns with output_type="np".
Cases listed in INPAINT run FluxInpaintPipeline instead, with the mask (1, 1, H, W) in [0, 1]
stored as "<case>.mask" (their case entry has inpaint true).

Tokenizers are the tiny vocabularies of tests/data/clip/tokenizer (make_clip_fixtures.py) and
tests/data/t5/tokenizer/spiece.model (make_t5_fixtures.py). Deterministic (fixed seeds).
"""
import shutil
from pathlib import Path

import diffusers
import torch
from diffusers import (AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxImg2ImgPipeline,
                       FluxInpaintPipeline, FluxPipeline, FluxTransformer2DModel)
from transformers import (CLIPTextConfig, CLIPTextModel, CLIPTokenizer, T5Config, T5EncoderModel,
                          T5Tokenizer)

from fixture_util import init_image, inpaint_mask, perturb, save_goldens, ship_slow_tokenizers

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "data"
OUT = DATA / "flux_pipe"
OUT_SCHNELL = DATA / "flux_pipe_schnell"

# (name, variant, prompt, steps, guidance, seed, batch, height, width, max_sequence_length,
#  strength (None: FluxPipeline, else FluxImg2ImgPipeline))
# No FlowMatchHeunDiscreteScheduler case: FluxPipeline passes sigmas to set_timesteps, which
# that scheduler does not take (retrieve_timesteps raises).
CASES = [
    ("dev_guidance", "dev", "a photograph of an astronaut riding a horse", 4, 3.5, 42, 1, 32, 40, 512, None),
    ("dev_batch2", "dev", "a castle on a hill at sunset", 3, 5.0, 7, 2, 32, 32, 64, None),
    ("schnell", "schnell", "an oil painting of the sea", 2, 0.0, 3, 1, 24, 40, 64, None),
    # get_timesteps: t_start = int(4 - 4 * 0.6) = 1 and int(5 - 5 * 0.8) = 1.
    ("dev_img2img_s06", "dev", "a watercolor of a lighthouse", 4, 3.5, 21, 1, 32, 40, 64, 0.6),
    ("schnell_img2img_s08_batch2", "schnell", "a red sports car", 5, 0.0, 8, 2, 32, 32, 64, 0.8),
    # FluxInpaintPipeline (INPAINT): t_start = int(7 - 7 * 0.85) = 1.
    ("dev_inpaint_s085", "dev", "a bowl of fruit on a table", 7, 3.5, 13, 1, 32, 40, 64, 0.85),
]
# Cases run with FluxInpaintPipeline and inpaint_mask(h, w).
INPAINT = {"dev_inpaint_s085"}

TRANSFORMER = dict(patch_size=1, in_channels=64, num_attention_heads=2, attention_head_dim=16,
                   joint_attention_dim=32, pooled_projection_dim=32, axes_dims_rope=(4, 6, 6))
# scheduler_config.json of black-forest-labs/FLUX.1-dev and FLUX.1-schnell.
SCHEDULERS = {
    "dev": dict(num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True, base_shift=0.5,
                max_shift=1.15, base_image_seq_len=256, max_image_seq_len=4096),
    "schnell": dict(num_train_timesteps=1000, shift=1.0, use_dynamic_shifting=False,
                    base_shift=0.5, max_shift=1.15, base_image_seq_len=256,
                    max_image_seq_len=4096),
}


def build():
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=674, bos_token_id=672, eos_token_id=673, pad_token_id=673,
        max_position_embeddings=77, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
        num_attention_heads=4, projection_dim=32, hidden_act="quick_gelu"))
    tokenizer_2 = T5Tokenizer.from_pretrained(DATA / "t5" / "tokenizer")
    text_encoder_2 = T5EncoderModel(T5Config(
        vocab_size=len(tokenizer_2), d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
        feed_forward_proj="gated-gelu"))
    dev = FluxTransformer2DModel(**TRANSFORMER, num_layers=1, num_single_layers=2,
                                 guidance_embeds=True)
    schnell = FluxTransformer2DModel(**TRANSFORMER, num_layers=1, num_single_layers=1,
                                     guidance_embeds=False)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=16,
                        block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4,
                        down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, sample_size=32,
                        scaling_factor=0.3611, shift_factor=0.1159,
                        use_quant_conv=False, use_post_quant_conv=False)
    for i, m in enumerate((dev, schnell, vae, text_encoder, text_encoder_2)):
        perturb(m, 200 + i, 0.05)
    pipe = FluxPipeline(transformer=dev,
                        scheduler=FlowMatchEulerDiscreteScheduler(**SCHEDULERS["dev"]), vae=vae,
                        text_encoder=text_encoder,
                        tokenizer=CLIPTokenizer.from_pretrained(DATA / "clip" / "tokenizer"),
                        text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2)
    return pipe, schnell


def main():
    diffusers.utils.logging.set_verbosity_error()  # truncation warnings
    pipe, schnell = build()
    for d in (OUT, OUT_SCHNELL):
        if d.exists():
            shutil.rmtree(d)
    pipe.to(torch.float16).save_pretrained(OUT)
    schnell.to(torch.float16).save_pretrained(OUT_SCHNELL / "transformer")
    FlowMatchEulerDiscreteScheduler(**SCHEDULERS["schnell"]).save_pretrained(
        OUT_SCHNELL / "scheduler")
    # Reloaded from the shipped vocab.json + merges.txt / spiece.model.
    ship_slow_tokenizers(DATA, OUT, clip=("tokenizer",), t5="tokenizer_2")
    pipes = {"dev": FluxPipeline.from_pretrained(OUT, torch_dtype=torch.float32)}
    pipes["schnell"] = FluxPipeline.from_pretrained(
        OUT, torch_dtype=torch.float32,
        transformer=FluxTransformer2DModel.from_pretrained(OUT_SCHNELL / "transformer",
                                                           torch_dtype=torch.float32),
        scheduler=FlowMatchEulerDiscreteScheduler.from_pretrained(OUT_SCHNELL / "scheduler"))
    goldens, cases = {}, []
    for name, variant, prompt, steps, guidance, seed, batch, h, w, max_len, strength in CASES:
        pipe = pipes[variant]
        kwargs = dict(height=h, width=w, num_inference_steps=steps, guidance_scale=guidance,
                      generator=torch.Generator().manual_seed(seed),
                      num_images_per_prompt=batch, max_sequence_length=max_len,
                      output_type="np")
        if strength is not None:
            # The image tensor in [-1, 1] is used as is (its min < 0: no renormalization).
            inpaint = name in INPAINT
            pipe = (FluxInpaintPipeline if inpaint else FluxImg2ImgPipeline).from_pipe(pipe)
            image = init_image(h, w)
            goldens[f"{name}.init_image"] = image
            kwargs.update(image=image, strength=strength)
            if inpaint:
                mask = inpaint_mask(h, w)
                goldens[f"{name}.mask"] = mask
                kwargs.update(mask_image=mask)
        pipe.set_progress_bar_config(disable=True)
        with torch.no_grad():
            out = pipe(prompt, **kwargs)
        img = torch.from_numpy(out.images).float().contiguous()
        goldens[f"{name}.image"] = img
        cases.append(dict(name=name, variant=variant, sampler="flow_euler", prompt=prompt,
                          steps=steps, guidance_scale=guidance, seed=seed, batch=batch, height=h,
                          width=w, max_sequence_length=max_len, strength=strength,
                          inpaint=name in INPAINT,
                          denoise_steps=steps if strength is None else pipe.num_timesteps))
        inside = ((img > 0.01) & (img < 0.99)).float().mean().item()
        print(f"{name}: {tuple(img.shape)} mean {img.mean():.4f} std {img.std():.4f} "
              f"unclipped {inside:.0%}")
    save_goldens(DATA / "flux_pipe.goldens.safetensors", goldens, cases, with_diffusers=True)


if __name__ == "__main__":
    main()
