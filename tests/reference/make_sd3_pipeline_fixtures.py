#!/usr/bin/env python3
"""End-to-end fixture: a tiny random Stable Diffusion 3.5-architecture pipeline saved with
save_pretrained (the real diffusers folder layout) and the images diffusers generates with it.

    /tmp/venv/ref/bin/python tests/reference/make_sd3_pipeline_fixtures.py

Writes tests/data/sd3_pipe/ (model_index.json, transformer/ (qk rms-norm, dual attention in block
0, as SD3.5-medium), vae/ (16 latent channels, shift_factor), text_encoder/ + text_encoder_2/
(CLIPTextModelWithProjection), text_encoder_3/ (T5EncoderModel), tokenizer/, tokenizer_2/,
tokenizer_3/, scheduler/ (FlowMatchEulerDiscreteScheduler, shift 3.0); weights stored in float16,
the goldens computed in float32 from those rounded weights, as kiln loads them) and
tests/data/sd3_pipe.goldens.safetensors: for each case the float32 image (B, H, W, 3) in [0, 1]
that StableDiffusion3Pipeline returns with output_type="np" (FlowMatchEulerDiscreteScheduler, and
FlowMatchHeunDiscreteScheduler for case "heun", both from the folder's scheduler config), and for
the img2img cases (StableDiffusion3Img2ImgPipeline on the same components) the init image
(1, 3, H, W) in [-1, 1] as "<case>.init_image". Cases listed in INPAINT run
StableDiffusion3InpaintPipeline with that init image and the mask (1, 1, H, W) in [0, 1] stored as
"<case>.mask" (their case entry has inpaint true). img2img and inpaint cases record
denoise_steps, the pipeline's num_timesteps (the steps left after strength truncation); txt2img
ones the steps.

The two CLIP hidden sizes (16 + 16) are narrower than T5's d_model (48), so the zero padding of
the CLIP states to the T5 width is exercised. Case "no_t5" runs the same folder with
text_encoder_3=None/tokenizer_3=None (diffusers then uses zero T5 states); the kiln test makes that
folder by nulling the two entries of model_index.json. Tokenizers are the tiny vocabularies of
tests/data/clip/tokenizer{,_2} (make_clip_fixtures.py) and tests/data/t5/tokenizer/spiece.model
(make_t5_fixtures.py). Deterministic (fixed seeds).
"""
import shutil
from pathlib import Path

import diffusers
import torch
from diffusers import (AutoencoderKL, FlowMatchEulerDiscreteScheduler,
                       FlowMatchHeunDiscreteScheduler, SD3Transformer2DModel,
                       StableDiffusion3Img2ImgPipeline, StableDiffusion3InpaintPipeline,
                       StableDiffusion3Pipeline)
from transformers import (CLIPTextConfig, CLIPTextModelWithProjection, CLIPTokenizer, T5Config,
                          T5EncoderModel, T5Tokenizer)

from fixture_util import init_image, inpaint_mask, perturb, save_goldens, ship_slow_tokenizers

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "data"
OUT = DATA / "sd3_pipe"

# (name, sampler, prompt, negative prompt, steps, cfg, seed, batch, height, width,
#  max_sequence_length, t5, strength (None: txt2img, else StableDiffusion3Img2ImgPipeline))
CASES = [
    ("euler_cfg", "flow_euler", "a photograph of an astronaut riding a horse", "", 4, 7.0, 42, 1, 32, 40, 256, True, None),
    ("negative_batch2", "flow_euler", "a castle on a hill at sunset", "blurry, low quality", 5, 5.0, 7, 2, 32, 32,
     32, True, None),
    ("no_cfg", "flow_euler", "an oil painting of the sea", "", 3, 1.0, 3, 1, 24, 40, 64, True, None),
    ("no_t5", "flow_euler", "a cat sitting on a windowsill", "ugly", 3, 4.5, 11, 1, 40, 32, 77,
     False, None),
    ("heun", "flow_heun", "portrait of a woman with red hair", "", 3, 6.0, 5, 1, 32, 40, 48, True, None),
    # get_timesteps: t_start = int(4 - 4 * 0.6) = 1 and int(5 - 5 * 0.8) = 1.
    ("img2img_s06", "flow_euler", "a watercolor of a lighthouse", "", 4, 5.0, 21, 1, 32, 40, 64,
     True, 0.6),
    ("img2img_s08_batch2", "flow_euler", "a red sports car", "blurry", 5, 4.5, 8, 2, 32, 32, 32,
     True, 0.8),
    # StableDiffusion3InpaintPipeline (INPAINT): strength 1 starts from pure noise.
    ("inpaint_s1_batch2", "flow_euler", "a bowl of fruit on a table", "blurry", 4, 5.0, 13, 2, 32,
     40, 64, True, 1.0),
]
# Cases run with StableDiffusion3InpaintPipeline and inpaint_mask(h, w).
INPAINT = {"inpaint_s1_batch2"}
# kiln sampler name -> the diffusers scheduler built from the folder's scheduler config.
SCHEDULERS = {"flow_euler": FlowMatchEulerDiscreteScheduler,
              "flow_heun": FlowMatchHeunDiscreteScheduler}


def build():
    torch.manual_seed(0)
    clip_common = dict(vocab_size=674, bos_token_id=672, eos_token_id=673, pad_token_id=673,
                       max_position_embeddings=77, intermediate_size=37, num_hidden_layers=2,
                       num_attention_heads=4, projection_dim=16)
    text_encoder = CLIPTextModelWithProjection(
        CLIPTextConfig(**clip_common, hidden_size=16, hidden_act="quick_gelu"))
    text_encoder_2 = CLIPTextModelWithProjection(
        CLIPTextConfig(**clip_common, hidden_size=16, hidden_act="gelu"))
    tokenizer_3 = T5Tokenizer.from_pretrained(DATA / "t5" / "tokenizer")
    text_encoder_3 = T5EncoderModel(T5Config(
        vocab_size=len(tokenizer_3), d_model=48, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
        feed_forward_proj="gated-gelu", relative_attention_num_buckets=32,
        relative_attention_max_distance=128))
    transformer = SD3Transformer2DModel(
        sample_size=16, patch_size=2, in_channels=16, out_channels=16, num_layers=2,
        attention_head_dim=8, num_attention_heads=2, joint_attention_dim=48,
        caption_projection_dim=16, pooled_projection_dim=32, pos_embed_max_size=24,
        qk_norm="rms_norm", dual_attention_layers=(0,))
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=16,
                        block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4,
                        down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, sample_size=32,
                        scaling_factor=1.5305, shift_factor=0.0609,
                        use_quant_conv=False, use_post_quant_conv=False)
    for i, m in enumerate((transformer, vae, text_encoder, text_encoder_2, text_encoder_3)):
        perturb(m, 100 + i, 0.05)
    # stabilityai/stable-diffusion-3.5-medium's scheduler_config.json.
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0)
    return StableDiffusion3Pipeline(
        transformer=transformer, scheduler=scheduler, vae=vae, text_encoder=text_encoder,
        tokenizer=CLIPTokenizer.from_pretrained(DATA / "clip" / "tokenizer"),
        text_encoder_2=text_encoder_2,
        tokenizer_2=CLIPTokenizer.from_pretrained(DATA / "clip" / "tokenizer_2"),
        text_encoder_3=text_encoder_3, tokenizer_3=tokenizer_3)


def main():
    diffusers.utils.logging.set_verbosity_error()  # truncation warnings
    pipe = build()
    if OUT.exists():
        shutil.rmtree(OUT)
    pipe.to(torch.float16).save_pretrained(OUT)
    # Reloaded from the shipped vocab.json + merges.txt / spiece.model.
    ship_slow_tokenizers(DATA, OUT, clip=("tokenizer", "tokenizer_2"), t5="tokenizer_3")
    pipe = StableDiffusion3Pipeline.from_pretrained(OUT, torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    te3, tok3 = pipe.text_encoder_3, pipe.tokenizer_3
    base_cfg = dict(pipe.scheduler.config)
    goldens, cases = {}, []
    for (name, sampler, prompt, negative, steps, cfg, seed, batch, h, w, max_len, t5,
         strength) in CASES:
        pipe.scheduler = SCHEDULERS[sampler].from_config(base_cfg)
        pipe.text_encoder_3, pipe.tokenizer_3 = (te3, tok3) if t5 else (None, None)
        gen = torch.Generator().manual_seed(seed)
        kwargs = dict(negative_prompt=negative or None, height=h, width=w,
                      num_inference_steps=steps, guidance_scale=cfg, generator=gen,
                      num_images_per_prompt=batch, max_sequence_length=max_len,
                      output_type="np")
        run = pipe
        if strength is not None:
            # The image tensor in [-1, 1] is used as is (its min < 0: no renormalization).
            inpaint = name in INPAINT
            run = (StableDiffusion3InpaintPipeline if inpaint
                   else StableDiffusion3Img2ImgPipeline).from_pipe(pipe)
            run.set_progress_bar_config(disable=True)
            image = init_image(h, w)
            goldens[f"{name}.init_image"] = image
            kwargs.update(image=image, strength=strength)
            if inpaint:
                mask = inpaint_mask(h, w)
                goldens[f"{name}.mask"] = mask
                kwargs.update(mask_image=mask)
        with torch.no_grad():
            out = run(prompt, **kwargs)
        img = torch.from_numpy(out.images).float().contiguous()
        goldens[f"{name}.image"] = img
        cases.append(dict(name=name, sampler=sampler, prompt=prompt, negative_prompt=negative,
                          steps=steps, guidance_scale=cfg, seed=seed, batch=batch, height=h,
                          width=w, max_sequence_length=max_len, t5=t5, strength=strength,
                          inpaint=name in INPAINT,
                          denoise_steps=steps if strength is None else run.num_timesteps))
        inside = ((img > 0.01) & (img < 0.99)).float().mean().item()
        print(f"{name}: {tuple(img.shape)} mean {img.mean():.4f} unclipped {inside:.0%}")
    save_goldens(DATA / "sd3_pipe.goldens.safetensors", goldens, cases, with_diffusers=True)


if __name__ == "__main__":
    main()
