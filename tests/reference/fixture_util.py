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
