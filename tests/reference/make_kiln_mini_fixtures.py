#!/usr/bin/env python3
"""Goldens for the trained models/kiln-mini pipeline (tools/train): what transformers and
diffusers make of the folder as it is stored, for tests/pipelines/test_clip_tokenizer.cpp and
test_kiln_mini.cpp.

    /tmp/venv/ref/bin/python tests/reference/make_kiln_mini_fixtures.py

kiln-mini is a StableDiffusionXLPipeline folder with text_encoder=None and a tokenizer_2/ that
holds only tokenizer.json + tokenizer_config.json (transformers 5 writes no vocab.json /
merges.txt), so the tokenizer goldens exercise kiln's tokenizer.json reader on a vocabulary that
was not built by tests/reference. Writes, under tests/data/kiln_mini/:

- tokens.json: CLIPTokenizer.from_pretrained(tokenizer_2) ids (add_special_tokens, no padding)
  of all 200 captions of tests/quality/heldout_prompts.jsonl and of AWKWARD strings, which also
  carry the padded + truncated ids to model_max_length (64 here) that the pipeline feeds the
  encoder. One case per line so a diff stays readable (~58 KB).
- goldens.safetensors: per case the float32 image (1, 64, 64, 3) in [0, 1] that
  StableDiffusionXLPipeline returns with output_type="np", loaded in float32 from the float16
  weights as stored (as kiln loads them); no negative prompt, so force_zeros_for_empty_prompt
  applies. The case list is JSON in the metadata (~200 KB).
"""
import json
from pathlib import Path

import torch
import transformers
from diffusers import DPMSolverMultistepScheduler, EulerDiscreteScheduler, StableDiffusionXLPipeline
from transformers import CLIPTokenizer

from fixture_util import save_goldens

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
MODEL = ROOT / "models" / "kiln-mini"
OUT = HERE.parent / "data" / "kiln_mini"

AWKWARD = [
    "",
    "   ",
    "  a   large  red    circle  ",
    "A LARGE RED CIRCLE ON A BLUE BACKGROUND",
    "MiXeD cAsE Green TRIANGLES",
    "3 red rings, 12 blue stars and 1,000,000.5 dots",
    "a2b3 x86 route66",
    "hello, world! (really?) [yes] {no} <maybe> ...",
    "red-and-blue/green_yellow\\white;black:pink",
    "a zebra quantum xylophone flibbertigibbet",
    "supercalifragilisticexpialidocious",
    "don't it's we're they've i'm you'll he'd 'tis",
    "tab\tand\nnewline\r\nand\u00a0no-break space",
    "café naïve résumé über",
    "日本語の テキスト",
    "emoji \U0001F3A8\U0001F534 and \u2764\ufe0f",
    "<|startoftext|>a ring<|endoftext|>",
    "<|ENDOFTEXT|> is not special",
    "!!! ??? ###",
    ("a large yellow ring at the top right and a small green heart near the bottom, " * 5).strip(),
]

# (name, scheduler, caption index in heldout_prompts.jsonl, seed); 20 steps, cfg 5, 64x64.
CASES = [
    ("euler_0", EulerDiscreteScheduler, 0, 0),
    ("euler_2", EulerDiscreteScheduler, 2, 1),   # the longest caption (201 chars)
    ("euler_39", EulerDiscreteScheduler, 39, 2),  # the shortest (48 chars)
    ("dpmpp_2m_1", DPMSolverMultistepScheduler, 1, 3),
]
STEPS, CFG, SIZE = 20, 5.0, 64


def captions():
    with open(ROOT / "tests" / "quality" / "heldout_prompts.jsonl") as f:
        return [json.loads(line)["caption"] for line in f if line.strip()]


def write_tokens(caps):
    tok = CLIPTokenizer.from_pretrained(MODEL / "tokenizer_2")
    n = tok.model_max_length
    lines = []
    for text in caps:
        lines.append(json.dumps({"text": text, "ids": tok(text).input_ids}, ensure_ascii=False))
    for text in AWKWARD:
        padded = tok(text, padding="max_length", max_length=n, truncation=True).input_ids
        lines.append(json.dumps({"text": text, "ids": tok(text).input_ids, "padded": padded},
                                ensure_ascii=False))
    head = {"transformers": transformers.__version__, "model_max_length": n,
            "vocab_size": len(tok), "bos": tok.bos_token_id, "eos": tok.eos_token_id,
            "pad": tok.pad_token_id, "captions": len(caps)}
    body = ",\n".join(lines)
    (OUT / "tokens.json").write_text(
        json.dumps(head)[:-1] + ', "cases": [\n' + body + "\n]}\n", encoding="utf-8")


def write_goldens(caps):
    pipe = StableDiffusionXLPipeline.from_pretrained(MODEL, torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    base_cfg = dict(pipe.scheduler.config)
    goldens, cases = {}, []
    for name, cls, idx, seed in CASES:
        pipe.scheduler = cls.from_config(base_cfg)
        with torch.no_grad():
            out = pipe(caps[idx], height=SIZE, width=SIZE, num_inference_steps=STEPS,
                       guidance_scale=CFG, generator=torch.Generator().manual_seed(seed),
                       output_type="np")
        goldens[f"{name}.image"] = torch.from_numpy(out.images).float().contiguous()
        cases.append(dict(name=name, scheduler=cls.__name__, prompt=caps[idx], steps=STEPS,
                          guidance_scale=CFG, seed=seed, height=SIZE, width=SIZE))
    save_goldens(OUT / "goldens.safetensors", goldens, cases, with_diffusers=True)
    print(json.dumps(cases, indent=1))


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    caps = captions()
    write_tokens(caps)
    write_goldens(caps)


if __name__ == "__main__":
    main()
