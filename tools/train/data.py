"""Training data for kiln-mini: packs written by `kiln-scenes --pack` (tools/data)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def load_pack(folder: Path) -> tuple[np.ndarray, list[str]]:
    """(images uint8 [N, S, S, 3], captions) of one pack folder."""
    info = json.loads((folder / "pack.json").read_text())
    n, s = info["count"], info["size"]
    if info.get("channels") != 3 or info.get("dtype") != "uint8" or info.get("layout") != "NHWC":
        raise ValueError(f"{folder}/pack.json: expected 3-channel uint8 NHWC, got {info}")
    images = np.fromfile(folder / "images.u8", dtype=np.uint8)
    if images.size != n * s * s * 3:
        raise ValueError(f"{folder}/images.u8: {images.size} bytes, pack.json says {n}x{s}x{s}x3")
    captions = (folder / "captions.txt").read_text("utf-8").splitlines()
    if len(captions) != n:
        raise ValueError(f"{folder}/captions.txt: {len(captions)} lines, pack.json says {n}")
    return images.reshape(n, s, s, 3), captions


def load_packs(folders: list[Path], exclude_captions: set[str]) -> tuple[list[np.ndarray], list[str]]:
    """The packs' images (one array per pack, to be concatenated where they are used) and
    captions, minus every sample whose caption is in `exclude_captions` (the held-out evaluation
    prompts, so that they are never seen in training)."""
    images, captions = [], []
    for f in folders:
        img, caps = load_pack(f)
        keep = np.array([c not in exclude_captions for c in caps])
        images.append(img if keep.all() else img[keep])
        captions += [c for c, k in zip(caps, keep) if k]
    return images, captions


def load_prompts(path: Path) -> list[dict]:
    """Held-out prompts: one JSON object per line with at least "caption" (and "seed", "scene")."""
    out = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{i}: {e}") from e
    return out
