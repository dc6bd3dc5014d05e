"""A CLIP-format byte-level BPE vocabulary learned from the training captions.

kiln-mini's text encoder has its own vocabulary: the 512 byte symbols of CLIP's tokenizer (each
byte, and each byte ending a word "</w>"), then merges learned from the captions until every
caption word is a single token, then <|startoftext|> and <|endoftext|>. The files (vocab.json,
merges.txt) are in the format of openai/clip-vit-large-patch14's tokenizer, so transformers'
CLIPTokenizer and kiln's ClipTokenizer read them unchanged; a word the captions never used still
tokenizes, into smaller pieces.

Follows the BPE procedure of Sennrich et al. 2016 ("Neural Machine Translation of Rare Words with
Subword Units", Algorithm 1) over CLIP's pre-tokenization (openai/CLIP simple_tokenizer.py):
lower-cased text split by the regex below, a word's last symbol marked with "</w>".
"""
from __future__ import annotations

import collections
import json
from pathlib import Path

import regex

# CLIP's pre-tokenization pattern (openai/CLIP simple_tokenizer.py, also transformers'
# CLIPTokenizer).
PAT = regex.compile(
    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
    regex.IGNORECASE,
)
BOS, EOS = "<|startoftext|>", "<|endoftext|>"


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def word_counts(captions: list[str]) -> collections.Counter:
    """Pre-tokenized words of all captions (as byte symbols) with their frequencies."""
    b2u = bytes_to_unicode()
    raw = collections.Counter()
    for text, n in collections.Counter(captions).items():
        for w in PAT.findall(" ".join(text.split()).lower()):
            raw[w] += n
    return collections.Counter({"".join(b2u[b] for b in w.encode("utf-8")): n
                                for w, n in raw.items()})


def learn(captions: list[str], max_merges: int | None = None
          ) -> tuple[list[str], list[tuple[str, str]]]:
    """Returns (vocab in id order, merges in rank order): merges until every word is one token,
    or `max_merges`. Deterministic: ties between pairs of equal frequency go to the
    lexicographically largest pair. (tests/reference/make_clip_fixtures.py uses this too.)"""
    counts = word_counts(captions)
    words = {w: tuple(w[:-1]) + (w[-1] + "</w>",) for w in counts}
    merges: list[tuple[str, str]] = []
    while max_merges is None or len(merges) < max_merges:
        pairs: collections.Counter = collections.Counter()
        for w, syms in words.items():
            for a, b in zip(syms, syms[1:]):
                pairs[(a, b)] += counts[w]
        if not pairs:
            break
        best = max(pairs, key=lambda p: (pairs[p], p))
        merges.append(best)
        for w, syms in words.items():
            out, i = [], 0
            while i < len(syms):
                if i + 1 < len(syms) and (syms[i], syms[i + 1]) == best:
                    out.append(syms[i] + syms[i + 1])
                    i += 2
                else:
                    out.append(syms[i])
                    i += 1
            words[w] = tuple(out)
    base = list(bytes_to_unicode().values())
    vocab = base + [v + "</w>" for v in base] + ["".join(m) for m in merges] + [BOS, EOS]
    assert len(set(vocab)) == len(vocab), "duplicate vocabulary entries"
    return vocab, merges


def save(folder: Path, vocab: list[str], merges: list[tuple[str, str]], max_length: int) -> None:
    """Writes a CLIPTokenizer folder (vocab.json, merges.txt, tokenizer_config.json,
    special_tokens_map.json). Padding uses <|endoftext|>, as openai/clip-vit-large-patch14."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(
        json.dumps({t: i for i, t in enumerate(vocab)}, ensure_ascii=False) + "\n", "utf-8")
    (folder / "merges.txt").write_text(
        "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), "utf-8")
    special = {"bos_token": BOS, "eos_token": EOS, "unk_token": EOS, "pad_token": EOS}
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=1) + "\n")
    cfg = dict(special, model_max_length=max_length, do_lower_case=True,
               tokenizer_class="CLIPTokenizer", clean_up_tokenization_spaces=False)
    (folder / "tokenizer_config.json").write_text(json.dumps(cfg, indent=1) + "\n")
