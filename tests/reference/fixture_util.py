"""Helpers the fixture scripts share: weight perturbation, state_dict key-tree digests, the
tokenizer files shipped in pipeline folders, and golden files with their version metadata."""

import json
import shutil

import torch
from safetensors.torch import save_file


def perturb(model, seed, scale, only_1d=False):
    """Adds scale * N(0, 1) from its own generator to every parameter (or every 1-D one), in
    sorted-name order: default init leaves norm weights at 1 and some projections at zero, so
    they and any key mix-up between them would not show in the output otherwise."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in sorted(model.named_parameters()):
            if not only_1d or p.ndim == 1:
                p.add_(scale * torch.randn(p.shape, generator=g))


def fnv1a64(text):
    h = 0xCBF29CE484222325
    for b in text.encode():
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def real_key_trees(model_cls, configs):
    """name -> {config, keys, params, fnv1a64 of the sorted "key a,b,c" lines} per real config,
    built on the meta device: kiln's module tree must produce exactly these state_dict keys and
    shapes (tests/support/pipeline_test_util.cpp, expect_key_tree)."""
    out = {}
    for name, cfg in configs.items():
        with torch.device("meta"):
            m = model_cls(**cfg)
        sd = m.state_dict()
        lines = "".join(f"{k} {','.join(map(str, v.shape))}\n" for k, v in sorted(sd.items()))
        out[name] = {"config": cfg, "keys": len(sd), "params": sum(v.numel() for v in sd.values()),
                     "fnv1a64": fnv1a64(lines)}
    return out


def versions():
    """The metadata every golden file carries."""
    return {"torch": torch.__version__, "diffusers": __import__("diffusers").__version__}


def ship_slow_tokenizers(data, out, clip=(), t5=None):
    """transformers 5 writes only tokenizer.json; diffusers folders in the wild carry vocab.json +
    merges.txt and spiece.model (what kiln reads), so ship those (from tests/data/clip/<name> for
    each CLIP tokenizer in `clip`, tests/data/t5/tokenizer into `t5`) and drop tokenizer.json."""
    for tok in clip:
        for f in ("vocab.json", "merges.txt"):
            shutil.copy(data / "clip" / tok / f, out / tok / f)
    if t5:
        shutil.copy(data / "t5" / "tokenizer" / "spiece.model", out / t5 / "spiece.model")
    for f in out.rglob("tokenizer.json"):
        f.unlink()


def save_goldens(path, goldens, cases, with_diffusers=False):
    """The end-to-end goldens: tensors plus the case list (JSON) and library versions."""
    meta = {"cases": json.dumps(cases), "torch": torch.__version__}
    if with_diffusers:
        meta["diffusers"] = __import__("diffusers").__version__
    save_file(goldens, path, metadata=meta)


def init_image(h, w):
    """A deterministic synthetic RGB init image (1, 3, h, w) in [-1, 1]: horizontal and vertical
    gradients in red and green, a disc and a bar in blue."""
    y = torch.linspace(-1, 1, h)[:, None].expand(h, w)
    x = torch.linspace(-1, 1, w)[None, :].expand(h, w)
    blue = torch.full((h, w), -0.6)
    blue[(x - 0.3) ** 2 + (y + 0.2) ** 2 < 0.25] = 0.9
    blue[h // 2 + 2:h // 2 + 6, : w // 3] = 0.2
    return torch.stack([x, 0.8 * y, blue])[None].contiguous()


def inpaint_mask(h, w):
    """A deterministic inpainting mask (1, 1, h, w) in [0, 1]: a rectangle (rows h/4 - 1 to
    3h/4 - 2, columns w/4 - 1 to 3w/4 - 1) of 0.75 around a core of 1.0, and a band of 0.3 above it
    that binarization (>= 0.5) drops. The rectangle's edges fall between latent cells on purpose
    (nearest resizing to the latent grid picks even pixels)."""
    m = torch.zeros(1, 1, h, w)
    top, bottom, left, right = h // 4 - 1, 3 * h // 4 - 1, w // 4 - 1, 3 * w // 4 + 1
    m[..., top - 2:top, left:right] = 0.3
    m[..., top:bottom, left:right] = 0.75
    m[..., top + 2:bottom - 2, left + 2:right - 2] = 1.0
    return m
