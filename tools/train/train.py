"""Trains kiln-mini from scratch: tokenizer, VAE, then text encoder + U-Net jointly, and exports a
diffusers StableDiffusionXLPipeline folder (fp16) that kiln loads through its normal path.

  python tools/train/train.py --packs DATA/p0 DATA/p1 ... --heldout tests/quality/heldout_prompts.jsonl \
      --work WORK --out models/kiln-mini [--stage all|tokenizer|vae|denoiser|export]

tools/train/retrain.sh runs the whole thing (data generation included) with the settings used for
the committed model. Every random choice is seeded (--seed); GPU kernels are not bit-deterministic,
so a retrain gives an equally good model, not the same bytes.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bpe  # noqa: E402
import data  # noqa: E402
import models  # noqa: E402


def log_line(path: Path, record: dict) -> None:
    with path.open("a") as f:
        f.write(json.dumps(record) + "\n")


def lr_at(step: int, steps: int, peak: float, warmup: int, progress: float = 0.0) -> float:
    """Linear warm-up, then cosine decay to 10% of the peak. `progress` (0..1, e.g. the share of
    a time budget used) ends the decay early when it runs ahead of step / steps."""
    if step < warmup:
        return peak * (step + 1) / warmup
    p = min(1.0, max((step - warmup) / max(1, steps - warmup), progress))
    return peak * (0.1 + 0.45 * (1 + math.cos(math.pi * p)))


def to_pixels(u8: torch.Tensor) -> torch.Tensor:
    """uint8 NHWC -> float NCHW in [-1, 1]."""
    return u8.permute(0, 3, 1, 2).float() / 127.5 - 1.0


# ---------------------------------------------------------------- tokenizer
def stage_tokenizer(captions: list[str], work: Path) -> None:
    vocab, merges = bpe.learn(captions)
    bpe.save(work / "tokenizer", vocab, merges, models.MAX_TOKENS)
    print(f"tokenizer: {len(vocab)} tokens, {len(merges)} merges", flush=True)


def load_tokenizer(work: Path):
    from transformers import CLIPTokenizer
    return CLIPTokenizer.from_pretrained(work / "tokenizer")


# ---------------------------------------------------------------- VAE
def stage_vae(images: torch.Tensor, work: Path, a) -> None:
    dev = images.device
    torch.manual_seed(a.seed)
    vae = models.make_vae().to(dev).train()
    opt = torch.optim.AdamW(vae.parameters(), lr=a.vae_lr, weight_decay=0.0, betas=(0.9, 0.99))
    gen = torch.Generator(device=dev).manual_seed(a.seed)
    logf = work / "vae_log.jsonl"
    logf.unlink(missing_ok=True)
    t0 = time.time()
    for step in range(a.vae_steps):
        used = (time.time() - t0) / a.vae_time_limit if a.vae_time_limit else 0.0
        if used >= 1.0:
            print(f"vae: stopping at step {step}: --vae-time-limit {a.vae_time_limit} s", flush=True)
            break
        for g in opt.param_groups:
            g["lr"] = lr_at(step, a.vae_steps, a.vae_lr, 200, used)
        idx = torch.randint(images.shape[0], (a.vae_batch,), device=dev, generator=gen)
        x = to_pixels(images[idx])
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            post = vae.encode(x).latent_dist
            rec = vae.decode(post.sample(generator=gen)).sample.float()
        l1 = (rec - x).abs().mean()
        mse = F.mse_loss(rec, x)
        kl = post.kl().mean()
        loss = l1 + mse + a.kl_weight * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        if step % 50 == 0 or step == a.vae_steps - 1:
            psnr = 10 * math.log10(4.0 / max(mse.item(), 1e-12))
            rec_ = dict(step=step, loss=loss.item(), l1=l1.item(), kl=kl.item(), psnr=psnr,
                        s=time.time() - t0)
            log_line(logf, rec_)
            print("vae", rec_, flush=True)
    # Latent scale as in SD: 1 / std of sampled latents over many images.
    vae.eval()
    with torch.no_grad():
        zs = []
        for i in range(0, min(images.shape[0], 8192), 1024):
            zs.append(vae.encode(to_pixels(images[i:i + 1024])).latent_dist.sample(generator=gen))
        z = torch.cat(zs)
    sf = float(1.0 / z.std())
    vae.register_to_config(scaling_factor=sf)
    print(f"vae: latent mean {z.mean():.4f} std {z.std():.4f} -> scaling_factor {sf:.5f}", flush=True)
    vae.save_pretrained(work / "vae")
    check_vae(vae, work)


def check_vae(vae, work: Path) -> None:
    """Round-trips the scenes of WORK/vae_check_gt (kiln-scenes PNG + JSON, written by
    retrain.sh) through the VAE into WORK/vae_check, JSONs alongside, so that
    `kiln-quality score WORK/vae_check` measures what the VAE alone keeps of the shapes: the
    ceiling of the whole model's adherence."""
    gt = work / "vae_check_gt"
    if not gt.is_dir():
        return
    from PIL import Image
    out = work / "vae_check"
    out.mkdir(exist_ok=True)
    dev = next(vae.parameters()).device
    errs = []
    for png in sorted(gt.glob("*.png")):
        x = torch.from_numpy(np.asarray(Image.open(png).convert("RGB")).copy()).to(dev)[None]
        with torch.no_grad():
            y = vae.decode(vae.encode(to_pixels(x)).latent_dist.mean).sample.clamp(-1, 1)
        errs.append(F.mse_loss(y, to_pixels(x)).item())
        img = ((y[0].permute(1, 2, 0).float().cpu().numpy() + 1) * 127.5).round()
        Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(out / png.name)
        (out / png.with_suffix(".json").name).write_text(png.with_suffix(".json").read_text())
    if errs:
        psnr = 10 * math.log10(4.0 / float(np.mean(errs)))
        (work / "vae_check.json").write_text(json.dumps(dict(scenes=len(errs), psnr=psnr)) + "\n")
        print(f"vae check: {len(errs)} held-out scenes, reconstruction PSNR {psnr:.2f} dB -> {out}",
              flush=True)


# ---------------------------------------------------------------- denoiser
class Ema:
    def __init__(self, modules, decay: float):
        self.decay = decay
        self.params = [p for m in modules for p in m.parameters()]
        self.shadow = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def update(self, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        torch._foreach_lerp_(self.shadow, [p.detach() for p in self.params], 1 - d)

    @torch.no_grad()
    def copy_to_models(self) -> None:
        for p, s in zip(self.params, self.shadow):
            p.copy_(s)

    @torch.no_grad()
    def save(self, te, unet, folder: Path) -> None:
        """Saves the averaged weights into `folder` (save_denoiser's layout) without touching
        the models being trained: into copies, written beside and renamed in place."""
        import copy
        import shutil
        te_c, unet_c = copy.deepcopy(te), copy.deepcopy(unet)
        for p, s in zip([p for m in (te_c, unet_c) for p in m.parameters()], self.shadow):
            p.copy_(s)
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        save_denoiser(te_c, unet_c, tmp)
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)


def encode_dataset(vae, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior mean and std of every image's latent (fp16), for sampling z each step."""
    means, stds = [], []
    with torch.no_grad(), torch.autocast(images.device.type, dtype=torch.bfloat16,
                                         enabled=images.device.type == "cuda"):
        for i in range(0, images.shape[0], 2048):
            d = vae.encode(to_pixels(images[i:i + 2048])).latent_dist
            means.append(d.mean.half())
            stds.append(d.std.half())
    return torch.cat(means), torch.cat(stds)


def text_condition(te, ids: torch.Tensor):
    """SDXL's conditioning from text_encoder_2: penultimate hidden state + projected pooled."""
    out = te(ids, output_hidden_states=True)
    return out.hidden_states[-2], out.text_embeds


def stage_denoiser(images: torch.Tensor, captions: list[str], work: Path, a) -> None:
    from diffusers import AutoencoderKL
    dev = images.device
    torch.manual_seed(a.seed + 1)
    tok = load_tokenizer(work)
    # Tokenize each distinct caption once.
    uniq = sorted(set(captions))
    table = torch.tensor(tok(uniq, padding="max_length", max_length=models.MAX_TOKENS,
                             truncation=True).input_ids, dtype=torch.int32)
    row = {c: i for i, c in enumerate(uniq)}
    ids = table[torch.tensor([row[c] for c in captions])].to(dev)
    vae = AutoencoderKL.from_pretrained(work / "vae", torch_dtype=torch.float32).to(dev).eval()
    sf = vae.config.scaling_factor
    # The U-Net's in/out channels follow the VAE that was trained, whatever --latent-channels says.
    models.set_latent_channels(vae.config.latent_channels)
    mean, std = encode_dataset(vae, images)
    del vae
    print(f"denoiser: {len(captions)} samples, latents {tuple(mean.shape)}", flush=True)

    te = models.make_text_encoder(len(tok), tok.bos_token_id, tok.eos_token_id).to(dev).train()
    unet = models.make_unet().to(dev).train()
    if a.resume:
        load_denoiser(te, unet, Path(a.resume))
    params = list(te.parameters()) + list(unet.parameters())
    # The step is bound by the CPU side at kiln-mini's size (tools/train/README.md); compiled
    # modules share the parameters, so EMA, saving and the optimizer see the same tensors.
    te_f, unet_f = (torch.compile(te), torch.compile(unet)) if a.compile else (te, unet)
    print(f"denoiser: unet {sum(p.numel() for p in unet.parameters())/1e6:.2f} M, text encoder "
          f"{sum(p.numel() for p in te.parameters())/1e6:.2f} M parameters", flush=True)
    opt = torch.optim.AdamW(params, lr=a.lr, weight_decay=0.01, betas=(0.9, 0.99),
                            fused=dev.type == "cuda")
    ema = Ema([te, unet], a.ema)
    ac = torch.tensor(np.cumprod(1 - np.linspace(models.SCHEDULER["beta_start"],
                                                 models.SCHEDULER["beta_end"], 1000)),
                      dtype=torch.float32, device=dev)
    time_ids = torch.tensor([models.TIME_IDS], dtype=torch.float32, device=dev)
    gen = torch.Generator(device=dev).manual_seed(a.seed + 2)
    logf = work / "denoiser_log.jsonl"
    # A resumed run continues the log (steps, samples and seconds counted on), so that one loss
    # curve covers every phase of the committed model; a fresh run starts it anew.
    prev = {}
    if a.resume and logf.exists():
        lines = [l for l in logf.read_text().splitlines() if l.strip()]
        prev = json.loads(lines[-1]) if lines else {}
    else:
        logf.unlink(missing_ok=True)
    step0 = prev.get("step", -1) + 1
    samples0, s0 = prev.get("samples", step0 * a.batch), prev.get("s", 0.0)
    phase = prev.get("phase", 1) + 1 if prev else 1
    t0, B = time.time(), a.batch
    saved = t0
    for step in range(a.steps):
        used = (time.time() - t0) / a.time_limit if a.time_limit else 0.0
        if used >= 1.0:
            print(f"denoiser: stopping at step {step}: --time-limit {a.time_limit} s", flush=True)
            break
        for g in opt.param_groups:
            g["lr"] = lr_at(step, a.steps, a.lr, a.warmup, used)
        idx = torch.randint(mean.shape[0], (B,), device=dev, generator=gen)
        z0 = (mean[idx].float() + std[idx].float() *
              torch.randn(mean[idx].shape, device=dev, generator=gen)) * sf
        eps = torch.randn(z0.shape, device=dev, generator=gen)
        t = torch.randint(0, 1000, (B,), device=dev, generator=gen)
        a_t = ac[t].view(B, 1, 1, 1)
        zt = a_t.sqrt() * z0 + (1 - a_t).sqrt() * eps
        v = a_t.sqrt() * eps - (1 - a_t).sqrt() * z0
        drop = (torch.rand(B, device=dev, generator=gen) < a.cond_drop).view(B, 1, 1)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            ctx, pooled = text_condition(te_f, ids[idx])
            # Unconditional = zeros, as SDXL's force_zeros_for_empty_prompt gives at inference.
            ctx = torch.where(drop, torch.zeros_like(ctx), ctx)
            pooled = torch.where(drop[:, :, 0], torch.zeros_like(pooled), pooled)
            pred = unet_f(zt, t, encoder_hidden_states=ctx,
                        added_cond_kwargs={"text_embeds": pooled,
                                           "time_ids": time_ids.expand(B, -1)}).sample.float()
        # Min-SNR-5 weighting for v-prediction (Hang et al. 2023): min(snr, 5) / (snr + 1).
        snr = a_t.view(B) / (1 - a_t.view(B))
        w = torch.clamp(snr, max=5.0) / (snr + 1)
        loss = (w * ((pred - v) ** 2).mean(dim=(1, 2, 3))).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        ema.update(step)
        if step % 50 == 0 or step == a.steps - 1:
            rec = dict(step=step0 + step, loss=loss.item(), lr=opt.param_groups[0]["lr"],
                       s=s0 + time.time() - t0, samples=samples0 + (step + 1) * B, batch=B,
                       phase=phase)
            log_line(logf, rec)
            print("denoiser", rec, flush=True)
        if a.save_every and time.time() - saved >= a.save_every:
            ema.save(te, unet, work / "denoiser_ema")  # a checkpoint to copy out while training
            saved = time.time()
    ema.copy_to_models()
    save_denoiser(te, unet, work / "denoiser_ema")


def save_denoiser(te, unet, folder: Path) -> None:
    te.save_pretrained(folder / "text_encoder_2")
    unet.save_pretrained(folder / "unet")


def load_denoiser(te, unet, folder: Path) -> None:
    from safetensors.torch import load_file
    te.load_state_dict(load_file(folder / "text_encoder_2" / "model.safetensors"))
    unet.load_state_dict(load_file(folder / "unet" / "diffusion_pytorch_model.safetensors"))
    print(f"denoiser: resumed from {folder}", flush=True)


# ---------------------------------------------------------------- export
def stage_export(work: Path, out: Path, prompts: list[dict], dev: torch.device) -> None:
    from diffusers import AutoencoderKL, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextModelWithProjection
    tok = load_tokenizer(work)
    pipe = StableDiffusionXLPipeline(
        vae=AutoencoderKL.from_pretrained(work / "vae"), text_encoder=None,
        text_encoder_2=CLIPTextModelWithProjection.from_pretrained(
            work / "denoiser_ema" / "text_encoder_2"),
        tokenizer=None, tokenizer_2=tok,
        unet=UNet2DConditionModel.from_pretrained(work / "denoiser_ema" / "unet"),
        scheduler=models.make_scheduler(), force_zeros_for_empty_prompt=True,
        add_watermarker=False)
    pipe.to(torch.float16).save_pretrained(out, safe_serialization=True)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"export: {out} ({size / 1e6:.2f} MB)", flush=True)
    if not prompts:
        return
    # Preview grid of held-out prompts with diffusers itself (fp32), proving the folder loads.
    pipe = StableDiffusionXLPipeline.from_pretrained(out, torch_dtype=torch.float32).to(dev)
    caps = [p["caption"] for p in prompts[:32]]
    imgs = pipe(caps, num_inference_steps=20, guidance_scale=5.0, output_type="np",
                generator=torch.Generator(dev).manual_seed(0)).images
    grid = (np.concatenate([np.concatenate(list(imgs[r * 8:(r + 1) * 8]), axis=1)
                            for r in range(len(imgs) // 8)], axis=0) * 255).round().astype(np.uint8)
    from PIL import Image
    Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST).save(
        work / "preview_grid.png")
    (work / "preview_captions.txt").write_text("\n".join(caps) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--packs", nargs="+", type=Path, default=[],
                    help="kiln-scenes --pack folders (not needed for --stage export)")
    ap.add_argument("--heldout", type=Path, required=True,
                    help="held-out prompts (jsonl); their captions are removed from training")
    ap.add_argument("--work", type=Path, required=True, help="checkpoints, logs, previews")
    ap.add_argument("--out", type=Path, help="diffusers folder to export (stage export/all)")
    ap.add_argument("--stage", nargs="+", default=["all"],
                    choices=["all", "tokenizer", "vae", "denoiser", "export"])
    ap.add_argument("--seed", type=int, default=20261123)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--vae-steps", type=int, default=3000)
    ap.add_argument("--vae-batch", type=int, default=256)
    ap.add_argument("--vae-lr", type=float, default=1e-3)
    ap.add_argument("--vae-channels", type=int, nargs="+", default=models.VAE["block_out_channels"],
                    help="VAE channels per level (levels - 1 = log2 of the downsampling)")
    ap.add_argument("--vae-layers", type=int, default=models.VAE["layers_per_block"],
                    help="VAE ResNet layers per block")
    ap.add_argument("--vae-time-limit", type=float, default=0,
                    help="stop the VAE after this many seconds, the learning rate decaying over "
                    "that time (0: run all --vae-steps)")
    ap.add_argument("--kl-weight", type=float, default=1e-5)
    ap.add_argument("--steps", type=int, default=12000, help="denoiser steps")
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--warmup", type=int, default=500, help="denoiser warm-up steps")
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--cond-drop", type=float, default=0.1)
    ap.add_argument("--latent-channels", type=int, default=models.VAE["latent_channels"],
                    help="VAE latent channels (the U-Net's in/out channels follow)")
    ap.add_argument("--compile", action="store_true",
                    help="torch.compile the text encoder and U-Net (measure first: bench_step.py)")
    ap.add_argument("--time-limit", type=float, default=0,
                    help="stop the denoiser after this many seconds, the learning rate decaying "
                    "over that time (0: run all --steps)")
    ap.add_argument("--resume", help="denoiser_ema folder to start the denoiser from")
    ap.add_argument("--save-every", type=float, default=0,
                    help="also save the EMA weights to WORK/denoiser_ema every this many seconds")
    ap.add_argument("--no-preview", action="store_true",
                    help="export without rendering the held-out preview grid")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = ap.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    models.set_latent_channels(a.latent_channels)
    models.set_vae_width(a.vae_channels, a.vae_layers)
    dev = torch.device(a.device)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True  # fixed shapes: 110 vs 134 ms per denoiser step (H100)

    prompts = data.load_prompts(a.heldout)
    stages = set(a.stage)
    if stages & {"all", "tokenizer", "vae", "denoiser"}:  # export alone needs no data
        if not a.packs:
            ap.error("--packs is needed to train")
        held = {p["caption"] for p in prompts}
        images_np, captions = data.load_packs(a.packs, held)
        print(f"data: {len(captions)} training samples ({len(held)} held-out captions excluded)",
              flush=True)
        images = torch.cat([torch.from_numpy(x).to(dev) for x in images_np])
    if {"all", "tokenizer"} & set(a.stage):
        stage_tokenizer(captions, a.work)
    if {"all", "vae"} & set(a.stage):
        stage_vae(images, a.work, a)
    if {"all", "denoiser"} & set(a.stage):
        stage_denoiser(images, captions, a.work, a)
    if {"all", "export"} & set(a.stage):
        if a.out is None:
            ap.error("--out is needed to export")
        stage_export(a.work, a.out, [] if a.no_preview else prompts, dev)


if __name__ == "__main__":
    main()
