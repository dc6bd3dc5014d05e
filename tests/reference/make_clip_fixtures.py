#!/usr/bin/env python3
"""Writes the CLIP tokenizer and text-encoder fixtures under tests/data/clip/.

    /tmp/venv/ref/bin/python tests/reference/make_clip_fixtures.py

1. A tiny CLIP-style byte-level BPE vocabulary, trained here on a few sentences the way OpenAI's
   CLIP vocabulary was built (256 byte symbols, the same 256 with "</w>", then one entry per
   learned merge, then <|startoftext|> and <|endoftext|>), written as vocab.json + merges.txt and
   saved through transformers' CLIPTokenizer.save_pretrained as tokenizer/ (pads with
   <|endoftext|>, SD1.x) and tokenizer_2/ (pads with "!", SDXL's second tokenizer). tokenizer.json
   is removed so the folders look like the diffusers ones kiln reads (vocab.json + merges.txt).
2. tokens.json: transformers' ids for 40+ strings (plain, padded+truncated to 77, and the
   75-token chunking convention), and the prompts of the encoder goldens.
3. text_encoder/ (CLIPTextModel, quick_gelu, 3 layers, legacy eos_token_id=2 -> argmax pooling),
   text_encoder_2/ (CLIPTextModelWithProjection, gelu, first-eos pooling) and text_encoder_f16/
   (CLIPTextModel saved in float16), random weights, save_pretrained.
4. goldens.safetensors: input ids and last_hidden_state, hidden_states[-2], pooled output and
   text_embeds for each model, computed in float32 (the f16 model is upcast, as kiln loads it).

`--unicode-tables` prints the Unicode tables of pipelines/src/kiln/pipelines/text/clip_tokenizer.cpp
instead (see unicode_tables()).

Deterministic (fixed seeds); the whole folder is about 480 KB.
"""
import json
import shutil
import sys
from collections import Counter
from pathlib import Path

import regex
import torch
import transformers
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "train"))
import bpe  # noqa: E402
from transformers import (CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection,
                          CLIPTokenizer)

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "data" / "clip"
MAX_LEN = 77
NUM_MERGES = 160

CORPUS = [
    "a photograph of an astronaut riding a horse on the moon",
    "a painting of a cat sitting on a windowsill, highly detailed",
    "highly detailed digital art, trending on artstation, sharp focus",
    "portrait of a woman with red hair, 8k, studio lighting",
    "the quick brown fox jumps over the lazy dog",
    "it's a beautiful day and they're walking in the park",
    "a castle on a hill at sunset, fantasy landscape, matte painting",
    "masterpiece, best quality, photorealistic, cinematic lighting",
    "a horse and a horseman in the mountains, horses running",
    "an oil painting of the sea with waves and a lighthouse",
]

STRINGS = [
    "a photograph of an astronaut riding a horse",
    "",
    "   leading and trailing   spaces  ",
    "Tabs\tand\nnewlines\r\nmixed",
    "UPPER lower MiXeD CaSe",
    "it's they're we've I'm you'll he'd don't",
    "IT'S THEY'RE WE'VE",
    "'s 't '' ''s a's",
    "numbers 12345 and 3.14159, 1,000,000",
    "8k uhd, 4k, 1080p, 16:9",
    "punctuation!!! ... ??? --- ;;; ::: ,,,",
    "(masterpiece:1.2), [blurry], ((best quality))",
    "email@example.com http://x.y/z?a=b&c=d #tag",
    "café naïve résumé mañana",
    "Straße ÅNGSTRÖM İstanbul",
    "日本語のテキスト 東京",
    "emoji 🐱🚀 👍🏽 ❤️",
    "Ελληνικά κείμενο ΣΟΦΙΑ",
    "русский текст",
    "العربية",
    "mixed123abc456",
    "under_score and-hyphen and/slash",
    'quotes "double" \'single\' `back`',
    "a   very     spaced       prompt",
    "non\u00a0breaking\u2003em space\u3000ideographic",
    "zero\u200bwidth joiner\u200d",
    "control\x07bell\x00nul",
    "full-width ＡＢＣ１２３",
    "roman numeral Ⅻ superscript ² fraction ½",
    "Ǆ ǅ ǆ titlecase",
    "horse horses horsey unhorse horseman",
    "a painting of a cat sitting on a windowsill, highly detailed digital art, trending on "
    "artstation",
    "hello world " * 20,
    "the quick brown fox jumps over the lazy dog " * 6,
    "x" * 40,
    "a,b.c;d:e!f?g",
    "tab\ttab",
    "🐱",
    "123456789012345678901234567890",
    "ab" * 30 + " " + "cd" * 30,
    "<|startoftext|>special<|endoftext|> tokens",
    "<|ENDOFTEXT|> typed upper, <|endoftext|>!! and !!<|startoftext|>",
    "\x1c\x1d\x1e\x1f separators, x\u0085y, x\u2028y, a\u180eb, \ufeffbom",
    "İ ı ǅ",
    "hi! wow !!! yes!",
]

# Encoder goldens: (prompt, kind) where kind is "plain" (diffusers: truncate to 77) or
# "chunk<i>" (the i-th 75-token chunk of the A1111/ComfyUI convention).
LONG = ("a castle on a hill at sunset, fantasy landscape, matte painting, " * 4).strip()
ENC_PROMPTS = {
    "text_encoder": [("a photograph of an astronaut riding a horse", "plain"), (LONG, "chunk1"),
                     ("numbers 3.14, punctuation!!! café 🐱", "plain")],
    "text_encoder_2": [("a painting of a cat sitting on a windowsill", "plain"),
                       (LONG, "plain")],
    "text_encoder_f16": [("masterpiece, best quality", "plain"), ("", "plain")],
}
WEIGHTED_PROMPT = "a (photograph:1.3) of an [astronaut] riding a ((horse))"


def train_bpe():
    """CLIP's vocabulary construction on a tiny corpus: greedy most-frequent-pair merges
    (tools/train/bpe.py, which also builds kiln-mini's vocabulary)."""
    vocab, merges = bpe.learn(CORPUS, NUM_MERGES)
    return {tok: i for i, tok in enumerate(vocab)}, merges


def write_tokenizers(vocab, merges):
    raw = OUT / "_raw_tokenizer"
    raw.mkdir(parents=True, exist_ok=True)
    (raw / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (raw / "merges.txt").write_text(
        "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8")
    toks = {}
    for name, pad in (("tokenizer", "<|endoftext|>"), ("tokenizer_2", "!")):
        tok = CLIPTokenizer.from_pretrained(str(raw), pad_token=pad, model_max_length=MAX_LEN)
        d = OUT / name
        if d.exists():
            shutil.rmtree(d)
        tok.save_pretrained(str(d))
        # transformers 5 writes tokenizer.json + tokenizer_config.json; diffusers folders (and
        # kiln) use vocab.json + merges.txt.
        (d / "tokenizer.json").unlink(missing_ok=True)
        shutil.copy(raw / "vocab.json", d / "vocab.json")
        shutil.copy(raw / "merges.txt", d / "merges.txt")
        # What kiln reads, re-read by transformers: the ids must not depend on tokenizer.json.
        toks[name] = CLIPTokenizer.from_pretrained(str(d))
        assert toks[name].pad_token == pad, (name, toks[name].pad_token)
        assert len(toks[name]) == len(vocab)
    shutil.rmtree(raw)
    return toks


def chunks(tok, text):
    """A1111/ComfyUI convention: the prompt's tokens in 75-token pieces, each wrapped in
    bos/eos and padded to 77 with the pad token; an empty prompt gives one chunk."""
    ids = tok(text, add_special_tokens=False)["input_ids"]
    out = []
    for i in range(0, max(len(ids), 1), MAX_LEN - 2):
        piece = [tok.bos_token_id] + ids[i:i + MAX_LEN - 2] + [tok.eos_token_id]
        out.append(piece + [tok.pad_token_id] * (MAX_LEN - len(piece)))
    return out


def padded(tok, text):
    return tok(text, padding="max_length", max_length=MAX_LEN, truncation=True)["input_ids"]


# Ref: AUTOMATIC1111 stable-diffusion-webui modules/prompt_parser.py (parse_prompt_attention),
# re-stated for the golden of the weighted encoding; the C++ parser documents the rules.
RE_ATTN = regex.compile(r"\\\(|\\\)|\\\[|\\]|\\\\|\\|\(|\[|:\s*([+-]?[.\d]+)\s*\)|\)|]|[^\\()\[\]:]+|:")


def parse_attention(text):
    res, rb, sb = [], [], []

    def mul(start, m):
        for p in range(start, len(res)):
            res[p][1] *= m

    for m in RE_ATTN.finditer(text):
        t, w = m.group(0), m.group(1)
        if t.startswith("\\"):
            res.append([t[1:], 1.0])
        elif t == "(":
            rb.append(len(res))
        elif t == "[":
            sb.append(len(res))
        elif w is not None and rb:
            mul(rb.pop(), float(w))
        elif t == ")" and rb:
            mul(rb.pop(), 1.1)
        elif t == "]" and sb:
            mul(sb.pop(), 1 / 1.1)
        else:
            res.append([t, 1.0])
    for p in rb:
        mul(p, 1.1)
    for p in sb:
        mul(p, 1 / 1.1)
    if not res:
        res = [["", 1.0]]
    i = 0
    while i + 1 < len(res):
        if res[i][1] == res[i + 1][1]:
            res[i][0] += res[i + 1][0]
            res.pop(i + 1)
        else:
            i += 1
    return res


def weighted_ids(tok, text):
    ids, weights = [tok.bos_token_id], [1.0]
    for run, w in parse_attention(text):
        t = tok(run, add_special_tokens=False)["input_ids"]
        ids += t
        weights += [w] * len(t)
    ids, weights = ids[:MAX_LEN - 1] + [tok.eos_token_id], weights[:MAX_LEN - 1] + [1.0]
    n = MAX_LEN - len(ids)
    return ids + [tok.pad_token_id] * n, weights + [1.0] * n


def make_models(vocab_size, toks):
    bos, eos = vocab_size - 2, vocab_size - 1
    common = dict(vocab_size=vocab_size, max_position_embeddings=MAX_LEN, intermediate_size=37,
                  bos_token_id=bos, pad_token_id=1, layer_norm_eps=1e-5)
    specs = {
        "text_encoder": (CLIPTextModel, dict(hidden_size=32, num_hidden_layers=3,
                                             num_attention_heads=4, hidden_act="quick_gelu",
                                             eos_token_id=2, projection_dim=32), torch.float32,
                         "tokenizer"),
        "text_encoder_2": (CLIPTextModelWithProjection,
                           dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=4,
                                hidden_act="gelu", eos_token_id=eos, projection_dim=16),
                           torch.float32, "tokenizer_2"),
        "text_encoder_f16": (CLIPTextModel, dict(hidden_size=16, num_hidden_layers=2,
                                                 num_attention_heads=2, hidden_act="quick_gelu",
                                                 eos_token_id=eos, projection_dim=16),
                             torch.float16, "tokenizer"),
    }
    goldens, meta = {}, {}
    for i, (name, (cls, kw, dtype, tok_name)) in enumerate(specs.items()):
        torch.manual_seed(1000 + i)
        model = cls(CLIPTextConfig(**common, **kw)).eval()
        with torch.no_grad():  # LayerNorms start at (1, 0): perturb them so they are tested
            for n, p in model.named_parameters():
                if "layer_norm" in n:
                    p.add_(0.1 * torch.randn_like(p))
        d = OUT / name
        if d.exists():
            shutil.rmtree(d)
        model.to(dtype).save_pretrained(str(d))
        model = cls.from_pretrained(str(d)).float().eval()  # exactly what was written, in f32
        tok = toks[tok_name]
        rows = []
        for text, kind in ENC_PROMPTS[name]:
            rows.append(padded(tok, text) if kind == "plain" else chunks(tok, text)[int(kind[5:])])
        entries = list(ENC_PROMPTS[name])
        if name == "text_encoder":
            wids, wts = weighted_ids(tok, WEIGHTED_PROMPT)
            rows.append(wids)
            entries.append((WEIGHTED_PROMPT, "weighted"))
        ids = torch.tensor(rows, dtype=torch.int64)
        with torch.no_grad():
            out = model(input_ids=ids, output_hidden_states=True)
        g = {"input_ids": ids, "last_hidden_state": out.last_hidden_state,
             "penultimate": out.hidden_states[-2]}
        if name == "text_encoder_f16":
            g["embeddings"] = out.hidden_states[0]
        if cls is CLIPTextModelWithProjection:
            g["text_embeds"] = out.text_embeds
            with torch.no_grad():
                g["pooled"] = model.text_model(input_ids=ids).pooler_output
        else:
            g["pooled"] = out.pooler_output
        if name == "text_encoder":
            # A1111 weighting of the last row: z * w, then rescale to the original mean.
            z = out.last_hidden_state[-1:].clone()
            w = torch.tensor(wts, dtype=torch.float32).reshape(1, -1, 1)
            zw = z * w
            g["weighted"] = zw * (z.mean() / zw.mean())
            g["weights"] = w.reshape(-1)
        for k, v in g.items():
            goldens[f"{name}.{k}"] = v.detach().float().contiguous() if v.is_floating_point() \
                else v.contiguous()
        meta[name] = {"prompts": [{"text": t, "kind": k} for t, k in entries],
                      "class": cls.__name__, "dtype": str(dtype).replace("torch.", ""),
                      "tokenizer": tok_name}
    save_file(goldens, str(OUT / "goldens.safetensors"))
    return meta


def unicode_tables():
    """Prints the C++ tables of clip_tokenizer.cpp, probed from the installed `tokenizers` (the
    regex engine and Rust char tables transformers' CLIPTokenizer runs on, Unicode 16 today, newer
    than Python's unicodedata): letter/number classes of the pre-tokenizer regex and the
    per-character lowercase map of its Lowercase normalizer."""
    from tokenizers import Regex, normalizers, pre_tokenizers

    def probe(pattern):
        split = pre_tokenizers.Split(Regex(pattern), behavior="removed", invert=True)
        return lambda ch: bool(split.pre_tokenize_str(ch))

    is_l, is_n = probe(r"[\p{L}]+"), probe(r"[\p{N}]")
    lower = normalizers.Lowercase()
    cls_ranges, runs, multi = [], [], []
    for c in range(0x110000):
        if 0xD800 <= c < 0xE000:
            continue
        ch = chr(c)
        k = 1 if is_l(ch) else 2 if is_n(ch) else 0
        if k:
            if cls_ranges and cls_ranges[-1][2] == k and cls_ranges[-1][1] == c - 1:
                cls_ranges[-1][1] = c
            else:
                cls_ranges.append([c, c, k])
        lo = lower.normalize_str(ch)
        if lo == ch:
            continue
        if len(lo) > 1:
            multi.append((c, lo))
            continue
        d = ord(lo) - c
        last = runs[-1] if runs else None
        if last and last[2] == d and (c - last[1]) in (1, 2) and last[3] in (0, c - last[1]):
            last[3], last[1] = c - last[1], c
        else:
            runs.append([c, c, d, 0])
    assert multi == [(0x130, "i\u0307")], multi

    def emit(name, rows, fmt, per_line):
        print(f"const {name}[] = {{")
        for i in range(0, len(rows), per_line):
            print("    " + " ".join(fmt(r) for r in rows[i:i + per_line]))
        print("};")

    emit("CharRange kLetterNumber", cls_ranges,
         lambda r: f"{{0x{r[0]:X}, 0x{r[1]:X}, {r[2]}}},", 4)
    emit("LowerRun kLowerRuns", runs,
         lambda r: f"{{0x{r[0]:X}, 0x{r[1]:X}, {r[2]}, {max(r[3], 1)}}},", 3)


def main():
    if "--unicode-tables" in sys.argv:
        unicode_tables()
        return
    OUT.mkdir(parents=True, exist_ok=True)
    vocab, merges = train_bpe()
    toks = write_tokenizers(vocab, merges)
    t1, t2 = toks["tokenizer"], toks["tokenizer_2"]
    cases = []
    for s in STRINGS:
        ids = t1(s)["input_ids"]
        case = {"text": s, "ids": ids}
        if t2(s)["input_ids"] != ids:  # "!" is a special token of SDXL's second tokenizer
            case["ids_2"] = t2(s)["input_ids"]
        if len(ids) > MAX_LEN or len(cases) % 4 == 0:
            case["padded"] = padded(t1, s)
            case["padded_2"] = padded(t2, s)
            case["chunks"] = chunks(t1, s)
        cases.append(case)
    n_merged = sum(1 for c in cases for i in c["ids"] if 512 <= i < len(vocab) - 2)
    assert n_merged > 50, "the fixture must exercise merges"
    meta = make_models(len(vocab), toks)
    doc = {
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "max_length": MAX_LEN,
        "vocab_size": len(vocab),
        "bos": len(vocab) - 2,
        "eos": len(vocab) - 1,
        "weighted_prompt": WEIGHTED_PROMPT,
        "weighted_runs": parse_attention(WEIGHTED_PROMPT),
        "cases": cases,
        "encoders": meta,
    }
    # One case per line: readable diffs without the bulk of one id per line.
    body = json.dumps({k: v for k, v in doc.items() if k != "cases"}, ensure_ascii=False,
                      indent=1)[:-2]
    lines = ",\n  ".join(json.dumps(c, ensure_ascii=False) for c in cases)
    (OUT / "tokens.json").write_text(body + ',\n "cases": [\n  ' + lines + "\n ]\n}\n",
                                     encoding="utf-8")
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"wrote {OUT} ({total / 1024:.0f} KB), {len(cases)} token cases, "
          f"{n_merged} merged tokens")


if __name__ == "__main__":
    main()
