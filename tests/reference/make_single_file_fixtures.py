"""Single-file checkpoints in the original (non-diffusers) key layouts, made from the tiny
diffusers fixtures already in tests/data, so that a single-file load and a folder load of the
same weights can be compared exactly.

    /tmp/venv/ref/bin/python tests/reference/make_single_file_fixtures.py  # -> tests/data/single_file/

Writes:
  sd15.safetensors   SD1.x LDM layout: model.diffusion_model.* (unet/sd15), first_stage_model.*
                     (vae/sd_tiny, mid-block attention as (C, C, 1, 1) convs) and
                     cond_stage_model.transformer.text_model.* (clip/text_encoder), all f16.
  flux_dev.safetensors   BFL layout (double_blocks.* / single_blocks.*, fused qkv and linear1,
                     shift/scale order in final_layer), from flux/dev, bf16 as stored.
  sd3.safetensors, sd35.safetensors   SD3 MMDiT layout under model.diffusion_model.
                     (joint_blocks.*, fused qkv, x_block.attn2, ln_q/ln_k) from sd3/sd3 (f16)
                     and sd3/sd35 (bf16).
  layouts.json       names and shapes only (no data) of the SD2 (OpenCLIP, linear projections,
                     sharded unet/sd2), SDXL (conditioner.embedders.0/1, label_emb) and
                     inpainting (9 input channels) layouts, for detection and key-accounting tests.

The diffusers -> original tables are a transcription, generalised to any number of levels and
layers per block, of diffusers' scripts/convert_diffusers_to_original_stable_diffusion.py
(unet_conversion_map*, vae_conversion_map*, textenc_conversion_lst / protected transformer
names) and of the inverse of diffusers loaders/single_file_utils.py
(convert_flux_transformer_checkpoint_to_diffusers, convert_sd3_transformer_checkpoint_to_diffusers,
swap_scale_shift). Every SD component and the SD3 files are then converted back with diffusers'
own convert_ldm_unet_checkpoint / convert_ldm_vae_checkpoint / convert_ldm_clip_checkpoint /
convert_open_clip_checkpoint / convert_sd3_transformer_checkpoint_to_diffusers and must give the
original state dict exactly, so the files are checkpoints diffusers itself reads. (diffusers'
Flux converter hard-codes inner_dim 3072 and cannot read a tiny model; that file is checked by
the C++ test against the folder load only.)
"""

import json
import os
import sys

import torch
from safetensors.torch import load_file, save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "data")
OUT = os.path.join(DATA, "single_file")


def load_dir(path):
    from diffusers.utils import SAFETENSORS_WEIGHTS_NAME  # noqa: F401

    sd = {}
    for f in sorted(os.listdir(path)):
        if f.endswith(".safetensors"):
            sd.update(load_file(os.path.join(path, f)))
    return sd


def config(path):
    with open(os.path.join(path, "config.json")) as f:
        return json.load(f)


# ------------------------------------------------------------------ SD U-Net (LDM layout)


def unet_to_ldm(sd, cfg):
    levels = len(cfg["block_out_channels"])
    lpb = cfg["layers_per_block"]
    up_attn = [t.startswith("CrossAttn") for t in cfg["up_block_types"]]
    down_attn = [t.startswith("CrossAttn") for t in cfg["down_block_types"]]
    # (ldm, diffusers) exact names
    exact = [
        ("time_embed.0.", "time_embedding.linear_1."),
        ("time_embed.2.", "time_embedding.linear_2."),
        ("label_emb.0.0.", "add_embedding.linear_1."),
        ("label_emb.0.2.", "add_embedding.linear_2."),
        ("input_blocks.0.0.", "conv_in."),
        ("out.0.", "conv_norm_out."),
        ("out.2.", "conv_out."),
    ]
    resnet = [
        ("in_layers.0", "norm1"),
        ("in_layers.2", "conv1"),
        ("out_layers.0", "norm2"),
        ("out_layers.3", "conv2"),
        ("emb_layers.1", "time_emb_proj"),
        ("skip_connection", "conv_shortcut"),
    ]
    layer = []
    for i in range(levels):
        for j in range(lpb):
            layer.append((f"input_blocks.{(lpb + 1) * i + j + 1}.0.", f"down_blocks.{i}.resnets.{j}."))
            if down_attn[i]:
                layer.append((f"input_blocks.{(lpb + 1) * i + j + 1}.1.", f"down_blocks.{i}.attentions.{j}."))
        for j in range(lpb + 1):
            layer.append((f"output_blocks.{(lpb + 1) * i + j}.0.", f"up_blocks.{i}.resnets.{j}."))
            if up_attn[i]:
                layer.append((f"output_blocks.{(lpb + 1) * i + j}.1.", f"up_blocks.{i}.attentions.{j}."))
        if i < levels - 1:
            layer.append((f"input_blocks.{(lpb + 1) * (i + 1)}.0.op.", f"down_blocks.{i}.downsamplers.0.conv."))
            layer.append(
                (f"output_blocks.{(lpb + 1) * i + lpb}.{2 if up_attn[i] else 1}.", f"up_blocks.{i}.upsamplers.0.")
            )
    layer.append(("middle_block.1.", "mid_block.attentions.0."))
    for j in range(2):
        layer.append((f"middle_block.{2 * j}.", f"mid_block.resnets.{j}."))

    out = {}
    for k, v in sd.items():
        n = k
        for ldm, hf in exact:
            if n.startswith(hf):
                n = ldm + n[len(hf):]
        if "resnets" in n:
            for ldm, hf in resnet:
                n = n.replace(hf, ldm)
        for ldm, hf in layer:
            if n.startswith(hf):
                n = ldm + n[len(hf):]
        out[n] = v
    assert len(out) == len(sd)
    return out


# ------------------------------------------------------------------ SD VAE (LDM layout)


def vae_to_ldm(sd, cfg):
    levels = len(cfg["block_out_channels"])
    lpb = cfg["layers_per_block"]
    conv = [("nin_shortcut", "conv_shortcut"), ("norm_out", "conv_norm_out"), ("mid.attn_1.", "mid_block.attentions.0.")]
    for i in range(levels):
        for j in range(lpb):
            conv.append((f"encoder.down.{i}.block.{j}.", f"encoder.down_blocks.{i}.resnets.{j}."))
        if i < levels - 1:
            conv.append((f"down.{i}.downsample.", f"down_blocks.{i}.downsamplers.0."))
            conv.append((f"up.{levels - 1 - i}.upsample.", f"up_blocks.{i}.upsamplers.0."))
        for j in range(lpb + 1):
            conv.append((f"decoder.up.{levels - 1 - i}.block.{j}.", f"decoder.up_blocks.{i}.resnets.{j}."))
    for i in range(2):
        conv.append((f"mid.block_{i + 1}.", f"mid_block.resnets.{i}."))
    attn = [("norm.", "group_norm."), ("q.", "to_q."), ("k.", "to_k."), ("v.", "to_v."), ("proj_out.", "to_out.0.")]
    out = {}
    for k, v in sd.items():
        n = k
        for ldm, hf in conv:
            n = n.replace(hf, ldm)
        if "attentions" in k:
            for ldm, hf in attn:
                n = n.replace(hf, ldm)
            if v.ndim == 2:  # linear -> 1x1 conv, as the original checkpoints store them
                v = v.reshape(*v.shape, 1, 1)
        out[n] = v
    assert len(out) == len(sd)
    return out


# ------------------------------------------------------------------ CLIP


def clip_l_keys(sd):
    """transformers >= 5 saves CLIPTextModel without the text_model. level; the LDM files have it."""
    return {(k if k.startswith(("text_model.", "text_projection.")) else "text_model." + k): v
            for k, v in sd.items()}


def clip_to_open_clip(sd):
    """CLIPTextModel(WithProjection) -> OpenCLIP (cond_stage_model.model.* / conditioner.embedders.1.model.*)."""
    sd = clip_l_keys(sd)
    out = {}
    layers = sorted({int(k.split(".")[3]) for k in sd if k.startswith("text_model.encoder.layers.")})
    ren = [("layer_norm1", "ln_1"), ("layer_norm2", "ln_2"), ("mlp.fc1", "mlp.c_fc"), ("mlp.fc2", "mlp.c_proj"),
           ("self_attn.out_proj", "attn.out_proj")]
    for i in layers:
        p = f"text_model.encoder.layers.{i}."
        for hf, oc in ren:
            for s in ("weight", "bias"):
                out[f"transformer.resblocks.{i}.{oc}.{s}"] = sd[f"{p}{hf}.{s}"]
        for s in ("weight", "bias"):
            out[f"transformer.resblocks.{i}.attn.in_proj_{s}"] = torch.cat(
                [sd[f"{p}self_attn.{x}_proj.{s}"] for x in "qkv"], 0)
    out["token_embedding.weight"] = sd["text_model.embeddings.token_embedding.weight"]
    out["positional_embedding"] = sd["text_model.embeddings.position_embedding.weight"]
    out["ln_final.weight"] = sd["text_model.final_layer_norm.weight"]
    out["ln_final.bias"] = sd["text_model.final_layer_norm.bias"]
    if "text_projection.weight" in sd:
        out["text_projection"] = sd["text_projection.weight"].T.contiguous()
    return out


# ------------------------------------------------------------------ Flux (BFL layout)


def swap_halves(t):
    a, b = t.chunk(2, dim=0)
    return torch.cat([b, a], 0)


def flux_to_bfl(sd):
    out = {}
    exact = {
        "time_in.in_layer": "time_text_embed.timestep_embedder.linear_1",
        "time_in.out_layer": "time_text_embed.timestep_embedder.linear_2",
        "vector_in.in_layer": "time_text_embed.text_embedder.linear_1",
        "vector_in.out_layer": "time_text_embed.text_embedder.linear_2",
        "guidance_in.in_layer": "time_text_embed.guidance_embedder.linear_1",
        "guidance_in.out_layer": "time_text_embed.guidance_embedder.linear_2",
        "txt_in": "context_embedder",
        "img_in": "x_embedder",
        "final_layer.linear": "proj_out",
    }
    for bfl, hf in exact.items():
        for s in ("weight", "bias"):
            if f"{hf}.{s}" in sd:
                out[f"{bfl}.{s}"] = sd[f"{hf}.{s}"]
    for s in ("weight", "bias"):
        out[f"final_layer.adaLN_modulation.1.{s}"] = swap_halves(sd[f"norm_out.linear.{s}"])
    n_double = len({k.split(".")[1] for k in sd if k.startswith("transformer_blocks.")})
    n_single = len({k.split(".")[1] for k in sd if k.startswith("single_transformer_blocks.")})
    for i in range(n_double):
        p, q = f"transformer_blocks.{i}.", f"double_blocks.{i}."
        ren = {"norm1.linear": "img_mod.lin", "norm1_context.linear": "txt_mod.lin", "attn.to_out.0": "img_attn.proj",
               "attn.to_add_out": "txt_attn.proj", "ff.net.0.proj": "img_mlp.0", "ff.net.2": "img_mlp.2",
               "ff_context.net.0.proj": "txt_mlp.0", "ff_context.net.2": "txt_mlp.2"}
        for hf, bfl in ren.items():
            for s in ("weight", "bias"):
                out[f"{q}{bfl}.{s}"] = sd[f"{p}{hf}.{s}"]
        for s in ("weight", "bias"):
            out[f"{q}img_attn.qkv.{s}"] = torch.cat([sd[f"{p}attn.to_{x}.{s}"] for x in "qkv"], 0)
            out[f"{q}txt_attn.qkv.{s}"] = torch.cat([sd[f"{p}attn.add_{x}_proj.{s}"] for x in "qkv"], 0)
        out[f"{q}img_attn.norm.query_norm.scale"] = sd[f"{p}attn.norm_q.weight"]
        out[f"{q}img_attn.norm.key_norm.scale"] = sd[f"{p}attn.norm_k.weight"]
        out[f"{q}txt_attn.norm.query_norm.scale"] = sd[f"{p}attn.norm_added_q.weight"]
        out[f"{q}txt_attn.norm.key_norm.scale"] = sd[f"{p}attn.norm_added_k.weight"]
    for i in range(n_single):
        p, q = f"single_transformer_blocks.{i}.", f"single_blocks.{i}."
        for s in ("weight", "bias"):
            out[f"{q}modulation.lin.{s}"] = sd[f"{p}norm.linear.{s}"]
            out[f"{q}linear1.{s}"] = torch.cat([sd[f"{p}attn.to_{x}.{s}"] for x in "qkv"] + [sd[f"{p}proj_mlp.{s}"]], 0)
            out[f"{q}linear2.{s}"] = sd[f"{p}proj_out.{s}"]
        out[f"{q}norm.query_norm.scale"] = sd[f"{p}attn.norm_q.weight"]
        out[f"{q}norm.key_norm.scale"] = sd[f"{p}attn.norm_k.weight"]
    assert sum(v.numel() for v in out.values()) == sum(v.numel() for v in sd.values())
    return out


# ------------------------------------------------------------------ SD3 (MMDiT layout)


def sd3_to_mmdit(sd, cfg):
    out = {}
    n = cfg["num_layers"]
    exact = {
        "pos_embed": "pos_embed.pos_embed",
        "x_embedder.proj.weight": "pos_embed.proj.weight", "x_embedder.proj.bias": "pos_embed.proj.bias",
        "context_embedder.weight": "context_embedder.weight", "context_embedder.bias": "context_embedder.bias",
        "final_layer.linear.weight": "proj_out.weight", "final_layer.linear.bias": "proj_out.bias",
    }
    for mm, hf in [("t_embedder.mlp.0", "time_text_embed.timestep_embedder.linear_1"),
                   ("t_embedder.mlp.2", "time_text_embed.timestep_embedder.linear_2"),
                   ("y_embedder.mlp.0", "time_text_embed.text_embedder.linear_1"),
                   ("y_embedder.mlp.2", "time_text_embed.text_embedder.linear_2")]:
        for s in ("weight", "bias"):
            exact[f"{mm}.{s}"] = f"{hf}.{s}"
    for mm, hf in exact.items():
        if hf in sd:
            out[mm] = sd[hf]
    for s in ("weight", "bias"):
        out[f"final_layer.adaLN_modulation.1.{s}"] = swap_halves(sd[f"norm_out.linear.{s}"])
    for i in range(n):
        p, q = f"transformer_blocks.{i}.", f"joint_blocks.{i}."
        last = i == n - 1
        for s in ("weight", "bias"):
            out[f"{q}x_block.attn.qkv.{s}"] = torch.cat([sd[f"{p}attn.to_{x}.{s}"] for x in "qkv"], 0)
            out[f"{q}context_block.attn.qkv.{s}"] = torch.cat([sd[f"{p}attn.add_{x}_proj.{s}"] for x in "qkv"], 0)
            out[f"{q}x_block.attn.proj.{s}"] = sd[f"{p}attn.to_out.0.{s}"]
            out[f"{q}x_block.adaLN_modulation.1.{s}"] = sd[f"{p}norm1.linear.{s}"]
            ctx = sd[f"{p}norm1_context.linear.{s}"]
            out[f"{q}context_block.adaLN_modulation.1.{s}"] = swap_halves(ctx) if last else ctx
            out[f"{q}x_block.mlp.fc1.{s}"] = sd[f"{p}ff.net.0.proj.{s}"]
            out[f"{q}x_block.mlp.fc2.{s}"] = sd[f"{p}ff.net.2.{s}"]
            if not last:
                out[f"{q}context_block.attn.proj.{s}"] = sd[f"{p}attn.to_add_out.{s}"]
                out[f"{q}context_block.mlp.fc1.{s}"] = sd[f"{p}ff_context.net.0.proj.{s}"]
                out[f"{q}context_block.mlp.fc2.{s}"] = sd[f"{p}ff_context.net.2.{s}"]
            if f"{p}attn2.to_q.{s}" in sd:
                out[f"{q}x_block.attn2.qkv.{s}"] = torch.cat([sd[f"{p}attn2.to_{x}.{s}"] for x in "qkv"], 0)
                out[f"{q}x_block.attn2.proj.{s}"] = sd[f"{p}attn2.to_out.0.{s}"]
        for hf, mm in [("attn.norm_q", "x_block.attn.ln_q"), ("attn.norm_k", "x_block.attn.ln_k"),
                       ("attn.norm_added_q", "context_block.attn.ln_q"), ("attn.norm_added_k", "context_block.attn.ln_k"),
                       ("attn2.norm_q", "x_block.attn2.ln_q"), ("attn2.norm_k", "x_block.attn2.ln_k")]:
            if f"{p}{hf}.weight" in sd:
                out[f"{q}{mm}.weight"] = sd[f"{p}{hf}.weight"]
    assert sum(v.numel() for v in out.values()) == sum(v.numel() for v in sd.values()), "unmapped sd3 keys"
    return {"model.diffusion_model." + k: v for k, v in out.items()}


# ------------------------------------------------------------------ checks with diffusers' readers


def same(a, b, what):
    assert sorted(a) == sorted(b), (what, sorted(set(a) ^ set(b))[:10])
    for k in a:
        assert a[k].shape == b[k].shape and torch.equal(a[k], b[k]), (what, k)


def check_sd(ckpt, unet, unet_cfg, vae, vae_cfg, clip):
    from diffusers.loaders import single_file_utils as sfu

    same(sfu.convert_ldm_unet_checkpoint(dict(ckpt), unet_cfg), unet, "unet")
    same(sfu.convert_ldm_vae_checkpoint(dict(ckpt), vae_cfg), vae, "vae")
    got = sfu.convert_ldm_clip_checkpoint(dict(ckpt))
    same({k: v for k, v in got.items() if k.startswith("text_model.")}, clip, "clip")


def check_sd3(ckpt, sd):
    from diffusers.loaders import single_file_utils as sfu

    same(sfu.convert_sd3_transformer_checkpoint_to_diffusers(dict(ckpt)), sd, "sd3")


def shapes(sd):
    return {k: list(v.shape) for k, v in sorted(sd.items())}


def main():
    os.makedirs(OUT, exist_ok=True)
    f16 = lambda sd: {k: v.to(torch.float16).contiguous() for k, v in sd.items()}  # noqa: E731

    unet_cfg, vae_cfg = config(f"{DATA}/unet/sd15"), config(f"{DATA}/vae/sd_tiny")
    unet, vae = f16(load_dir(f"{DATA}/unet/sd15")), f16(load_dir(f"{DATA}/vae/sd_tiny"))
    clip = f16(clip_l_keys(load_dir(f"{DATA}/clip/text_encoder")))
    ckpt = {}
    ckpt.update({"model.diffusion_model." + k: v for k, v in unet_to_ldm(unet, unet_cfg).items()})
    ckpt.update({"first_stage_model." + k: v for k, v in vae_to_ldm(vae, vae_cfg).items()})
    ckpt.update({"cond_stage_model.transformer." + k: v for k, v in clip.items()})
    check_sd(ckpt, unet, unet_cfg, vae, vae_cfg, clip)
    save_file(ckpt, f"{OUT}/sd15.safetensors", metadata={"format": "pt"})

    flux = load_dir(f"{DATA}/flux/dev")
    save_file(flux_to_bfl(flux), f"{OUT}/flux_dev.safetensors")

    for name, cast in (("sd3", f16), ("sd35", lambda sd: sd)):
        sd = cast(load_dir(f"{DATA}/sd3/{name}"))
        mm = sd3_to_mmdit(sd, config(f"{DATA}/sd3/{name}"))
        check_sd3(mm, sd)
        save_file(mm, f"{OUT}/{name}.safetensors")

    # Names and shapes only: SD2 (OpenCLIP text encoder under cond_stage_model.model.), SDXL
    # (conditioner.embedders.0 = CLIP-L, .1 = OpenCLIP with text_projection) and inpainting.
    from diffusers.loaders import single_file_utils as sfu

    vae_sd = vae_to_ldm(vae, vae_cfg)
    clip_l = clip_l_keys(load_dir(f"{DATA}/clip/text_encoder"))
    oc = clip_to_open_clip(load_dir(f"{DATA}/clip/text_encoder_2"))
    oc_check = sfu.convert_open_clip_checkpoint(
        type("M", (), {"config": type("C", (), {"hidden_size": 32})()})(),
        {"conditioner.embedders.1.model." + k: v for k, v in oc.items()}, prefix="conditioner.embedders.1.model.")
    same(oc_check, clip_l_keys(load_dir(f"{DATA}/clip/text_encoder_2")), "open_clip")
    layouts = {}
    for name, te in (("sd2", {"cond_stage_model.model." + k: v for k, v in oc.items()}),
                     ("sdxl", {**{"conditioner.embedders.0.transformer." + k: v for k, v in clip_l.items()},
                               **{"conditioner.embedders.1.model." + k: v for k, v in oc.items()}}),
                     ("inpaint", {"cond_stage_model.transformer." + k: v for k, v in clip_l.items()})):
        u = load_dir(f"{DATA}/unet/{name}")
        ldm = unet_to_ldm(u, config(f"{DATA}/unet/{name}"))
        same(sfu.convert_ldm_unet_checkpoint({"model.diffusion_model." + k: v for k, v in ldm.items()},
                                             config(f"{DATA}/unet/{name}")), u, name)
        full = {"model.diffusion_model." + k: v for k, v in ldm.items()}
        full.update({"first_stage_model." + k: v for k, v in vae_sd.items()})
        full.update(te)
        layouts[name] = shapes(full)
    with open(f"{OUT}/layouts.json", "w") as f:
        json.dump(layouts, f, separators=(",", ":"), sort_keys=True)
    for f in sorted(os.listdir(OUT)):
        print(f"{f}: {os.path.getsize(os.path.join(OUT, f))} bytes")


if __name__ == "__main__":
    sys.exit(main())
