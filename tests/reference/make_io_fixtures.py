#!/usr/bin/env python3
"""Writes the weight-I/O golden fixtures under tests/data/io/ with the real `safetensors` package.

The C++ tests (tests/io/test_*.cpp) read these files and compare every value against the
*.expected.json written next to them, so kiln's reader is checked against the reference writer
(not against itself). Run from anywhere:

    python3 tests/reference/make_io_fixtures.py

If torch/safetensors/numpy are not importable, the script creates tests/reference/.venv,
installs CPU torch + safetensors + numpy there and re-runs itself inside it.
Output is deterministic (fixed seeds, fixed values); the files total a few KB.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv"
OUT = HERE.parent / "data" / "io"


def ensure_deps():
    try:
        import numpy  # noqa: F401
        import safetensors  # noqa: F401
        import torch  # noqa: F401
        return
    except ImportError:
        pass
    if os.environ.get("KILN_REF_IN_VENV"):
        sys.exit(f"torch/safetensors/numpy still missing inside {VENV}")
    py = VENV / "bin" / "python"
    if not py.exists():
        subprocess.check_call([sys.executable, "-m", "venv", str(VENV)])
        # CPU wheels: the CUDA ones are several GB and nothing here needs a GPU.
        subprocess.check_call([str(py), "-m", "pip", "install", "--index-url",
                               "https://download.pytorch.org/whl/cpu", "torch>=2.1"])
        subprocess.check_call([str(py), "-m", "pip", "install", "safetensors>=0.4", "numpy"])
    os.execve(str(py), [str(py), __file__, *sys.argv[1:]], {**os.environ, "KILN_REF_IN_VENV": "1"})


ensure_deps()

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

ST_NAME = {
    torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.float8_e4m3fn: "F8_E4M3", torch.float8_e5m2: "F8_E5M2", torch.int64: "I64",
    torch.int32: "I32", torch.uint8: "U8", torch.int8: "I8", torch.bool: "BOOL",
}


def expected(tensors):
    """name -> dtype, shape and the values as torch decodes them (floats widened to f64)."""
    out = {}
    for name, t in tensors.items():
        if t.dtype.is_floating_point:
            values = t.to(torch.float64).flatten().tolist()
        else:
            values = t.to(torch.int64).flatten().tolist()
        out[name] = {"dtype": ST_NAME[t.dtype], "shape": list(t.shape), "values": values}
    return out


def write(path: Path, tensors, metadata=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=metadata)


def write_json(path: Path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def mixed():
    # Values chosen to exercise rounding, subnormals, extremes and signed zero of each type.
    t = {
        "w_bf16": (torch.linspace(-3, 3, 15, dtype=torch.float32) * torch.pi).reshape(3, 5).to(torch.bfloat16),
        "w_f16": torch.tensor([[1 / 3, -2.5, 65504.0], [6e-8, -0.0, 1000.1]]).to(torch.float16),
        "w_f32": torch.tensor([0.1, -1e30, 1.5, 3.4028234663852886e38], dtype=torch.float32),
        "w_f8_e4m3": torch.tensor([0.0, 1.0, -1.75, 448.0, 0.015625, -2.0**-9, 3.3]).to(torch.float8_e4m3fn),
        "w_f8_e5m2": torch.tensor([1.0, -2.0, 57344.0, 1e-4]).to(torch.float8_e5m2),
        "idx_i64": torch.tensor([-7, 2**40 + 1, 2**53 + 1], dtype=torch.int64),
        "i32": torch.tensor([-1, 2**31 - 1, -(2**31)], dtype=torch.int32),
        "u8": torch.tensor([0, 255, 7], dtype=torch.uint8),
        "scalar": torch.tensor(2.5, dtype=torch.float32),
        "empty": torch.zeros(0, 3, dtype=torch.float32),
    }
    meta = {"format": "pt", "source": "kiln tests/reference/make_io_fixtures.py"}
    write(OUT / "mixed.safetensors", t, meta)
    write_json(OUT / "mixed.expected.json", {"metadata": meta, "tensors": expected(t)})


def sharded():
    shards = {
        "model-00001-of-00002.safetensors": {
            "a.weight": torch.arange(4, dtype=torch.float32).reshape(2, 2) - 1.5,
            "b.weight": torch.tensor([0.5, -0.25, 8.0]).to(torch.float16),
        },
        "model-00002-of-00002.safetensors": {
            "c.bias": torch.tensor([1.0, -3.0]).to(torch.bfloat16),
        },
    }
    d = OUT / "sharded"
    weight_map, total, allt = {}, 0, {}
    for fname, tensors in shards.items():
        write(d / fname, tensors, {"format": "pt"})
        for name, t in tensors.items():
            weight_map[name] = fname
            total += t.numel() * t.element_size()
            allt[name] = t
    # Same layout transformers/diffusers write when sharding (save_pretrained max_shard_size).
    write_json(d / "model.safetensors.index.json", {"metadata": {"total_size": total}, "weight_map": weight_map})
    write_json(d / "expected.json", expected(allt))


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.norm = torch.nn.LayerNorm(8)
        self.fc1 = torch.nn.Linear(8, 16)
        self.fc2 = torch.nn.Linear(16, 8, bias=False)


class TinyMLP(torch.nn.Module):
    """The key tree the C++ test module in tests/io/test_module.cpp mirrors."""

    def __init__(self):
        super().__init__()
        self.proj_in = torch.nn.Linear(5, 8)
        self.blocks = torch.nn.ModuleList([Block(), Block()])
        self.proj_out = torch.nn.Linear(8, 3)


def diffusers_folder():
    # Hand-written in the layout DiffusionPipeline.save_pretrained produces (diffusers is not a
    # dependency of this script); the denoiser's weights are a real torch state_dict in f16.
    torch.manual_seed(0)
    mlp = TinyMLP()
    with torch.no_grad():
        for p in mlp.parameters():
            p.uniform_(-1, 1)
    sd = {k: v.detach().to(torch.float16).contiguous() for k, v in mlp.state_dict().items()}
    d = OUT / "tiny_pipe"
    write_json(d / "model_index.json", {
        "_class_name": "KilnTinyPipeline",
        "_diffusers_version": "0.31.0",
        "_name_or_path": "kiln/tiny",
        "requires_safety_checker": False,
        "safety_checker": [None, None],
        "feature_extractor": None,
        "scheduler": ["diffusers", "EulerDiscreteScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "unet": ["diffusers", "UNet2DConditionModel"],
    })
    write_json(d / "unet" / "config.json", {
        "_class_name": "UNet2DConditionModel",
        "_diffusers_version": "0.31.0",
        "in_channels": 5,
        "out_channels": 3,
        "block_out_channels": [8, 16],
        "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
        "norm_eps": 1e-05,
        "sample_size": 8,
        "cross_attention_dim": None,
        "use_linear_projection": True,
        "act_fn": "silu",
    })
    write(d / "unet" / "diffusion_pytorch_model.safetensors", sd, {"format": "pt"})
    write_json(d / "unet_expected.json", expected(sd))
    write_json(d / "scheduler" / "scheduler_config.json", {
        "_class_name": "EulerDiscreteScheduler",
        "_diffusers_version": "0.31.0",
        "num_train_timesteps": 1000,
        "beta_start": 0.00085,
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
    })
    write_json(d / "text_encoder" / "config.json", {"architectures": ["CLIPTextModel"], "hidden_size": 4})
    write(d / "text_encoder" / "model.safetensors",
          {"embeddings.weight": torch.arange(8, dtype=torch.float32).reshape(2, 4)}, {"format": "pt"})


def main():
    mixed()
    sharded()
    diffusers_folder()
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"wrote fixtures under {OUT} ({total} bytes, torch {torch.__version__})")


if __name__ == "__main__":
    main()
