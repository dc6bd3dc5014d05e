"""kiln-mini's architecture: an SDXL-architecture pipeline (diffusers StableDiffusionXLPipeline)
with one text encoder, scaled down for 64x64 images of procedural scenes.

- text_encoder_2: CLIPTextModelWithProjection, 4 layers x 192 wide, vocabulary learned from the
  captions (bpe.py). SDXL reads the penultimate hidden state as context and the projected
  end-of-text state as the pooled embedding. There is no first text encoder: diffusers'
  StableDiffusionXLPipeline accepts text_encoder=None (as the SDXL refiner does).
- vae: AutoencoderKL, 2 levels (64, 64 channels), 2x downsampling: 64x64x3 -> 32x32x4. A 4x
  VAE (16x16 latents) lost the small shapes the captions ask for: round-tripped held-out scenes
  kept only 16 % (4 channels) / 37 % (16 channels) adherence (tools/train/README.md).
- unet: UNet2DConditionModel, three levels (64, 96, 128 channels) at 32, 16 and 8 latent pixels;
  as in SDXL the first level has no attention, the other two cross-attend to the text (head dim
  32); SDXL's "text_time" added conditioning.
- scheduler: a 1000-step linear beta schedule (DDPM's 1e-4..0.02, terminal SNR 4e-5, so the
  first step starts from almost pure noise), v-prediction, trailing timestep spacing.
"""
from __future__ import annotations

IMAGE_SIZE = 64
LATENT_SIZE = 32
MAX_TOKENS = 64
TIME_EMBED = 16

VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, sample_size=IMAGE_SIZE,
    down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
    block_out_channels=[64, 64], layers_per_block=1, norm_num_groups=16,
    act_fn="silu")

CLIP = dict(
    hidden_size=192, intermediate_size=768, num_hidden_layers=4, num_attention_heads=3,
    max_position_embeddings=MAX_TOKENS, projection_dim=192, hidden_act="quick_gelu")

UNET_CHANNELS = [64, 96, 128]
UNET = dict(
    sample_size=LATENT_SIZE, in_channels=4, out_channels=4,
    down_block_types=["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    up_block_types=["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    mid_block_type="UNetMidBlock2DCrossAttn", block_out_channels=UNET_CHANNELS,
    layers_per_block=1, transformer_layers_per_block=1,
    attention_head_dim=[c // 32 for c in UNET_CHANNELS],  # diffusers' name for the head count
    cross_attention_dim=CLIP["hidden_size"], use_linear_projection=True,
    addition_embed_type="text_time", addition_time_embed_dim=TIME_EMBED,
    projection_class_embeddings_input_dim=6 * TIME_EMBED + CLIP["projection_dim"],
    norm_num_groups=32)

SCHEDULER = dict(
    num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="linear",
    prediction_type="v_prediction", timestep_spacing="trailing", steps_offset=0)

# SDXL micro-conditioning: (original h, w, crop top, left, target h, w), fixed for kiln-mini.
TIME_IDS = [IMAGE_SIZE, IMAGE_SIZE, 0, 0, IMAGE_SIZE, IMAGE_SIZE]


def set_latent_channels(c: int) -> None:
    """Latent channels of the VAE, and so the U-Net's input/output channels."""
    if c < 1:
        raise ValueError(f"latent channels must be >= 1, got {c}")
    VAE["latent_channels"] = c
    UNET["in_channels"] = UNET["out_channels"] = c


def set_vae_width(channels: list[int], layers: int) -> None:
    """The VAE's channels per level (its length = levels, each level after the first halves the
    resolution) and ResNet layers per block."""
    if not channels or any(c < 16 or c % 16 for c in channels) or layers < 1:
        raise ValueError(f"VAE channels must be multiples of 16 (got {channels}), layers >= 1 "
                         f"(got {layers})")
    VAE["block_out_channels"] = list(channels)
    VAE["down_block_types"] = ["DownEncoderBlock2D"] * len(channels)
    VAE["up_block_types"] = ["UpDecoderBlock2D"] * len(channels)
    VAE["layers_per_block"] = layers


def make_vae():
    from diffusers import AutoencoderKL
    return AutoencoderKL(**VAE)


def make_unet():
    from diffusers import UNet2DConditionModel
    return UNet2DConditionModel(**UNET)


def make_text_encoder(vocab_size: int, bos_id: int, eos_id: int):
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection
    cfg = CLIPTextConfig(vocab_size=vocab_size, bos_token_id=bos_id, eos_token_id=eos_id,
                         pad_token_id=eos_id, **CLIP)
    return CLIPTextModelWithProjection(cfg)


def make_scheduler():
    from diffusers import EulerDiscreteScheduler
    return EulerDiscreteScheduler(**SCHEDULER)
