#!/usr/bin/env python3
"""Writes the T5 tokenizer and encoder fixtures under tests/data/t5/.

    /tmp/venv/ref/bin/python tests/reference/make_t5_fixtures.py

1. tokenizer/spiece.model: a tiny SentencePiece Unigram model trained here with the sentencepiece
   trainer (single thread, fixed corpus: deterministic) the way T5's was built (pad=0, eos=1,
   unk=2, no bos), with a small custom normalization table instead of nmt_nfkc (whose charsmap
   alone is 240 KB) that keeps what matters for parity: whitespace kinds mapped to a space or
   deleted, NFKC-style folds (fullwidth, ligature, circled digits, ellipsis, a composition), and
   U+0085 / U+2002 left alone so that transformers' WhitespaceSplit splits where SentencePiece
   would not. tokenizer_config.json is what transformers' T5Tokenizer.save_pretrained writes;
   its tokenizer.json is not kept (kiln reads spiece.model, as the hub folders ship it).
2. goldens.json: ids from transformers' T5Tokenizer (5.x: a `tokenizers` Unigram backend, the
   class diffusers' Flux/SD3 pipelines load as T5TokenizerFast) for 40+ strings, loaded both
   from the saved folder (tokenizer.json) and from spiece.model alone (they must agree); the
   same strings padded/truncated to 16 the way the pipelines call it; a long prompt at 256 (SD3)
   and 512 (Flux) with attention masks; relative-position buckets from
   T5Attention._relative_position_bucket for two configs.
3. text_encoder/ (T5EncoderModel, d_model 32, 2 layers, 4 heads, d_kv 8, d_ff 37, gated-gelu,
   f32), text_encoder_fp16/ (the same weights saved in float16) and text_encoder_relu_bf16/
   (original T5 "relu" feed-forward, 1 layer, bfloat16, and with the duplicated
   encoder.embed_tokens.weight key that transformers 4.x wrote), all with save_pretrained.
4. goldens.safetensors: encoder outputs in f32 — through diffusers' own
   FluxPipeline._get_t5_prompt_embeds (max_sequence_length 64) and
   StableDiffusion3Pipeline._get_t5_prompt_embeds (256), which pass no attention mask, and
   model(ids, attention_mask) for a padded batch with each model (f16/bf16 ones upcast to f32,
   as kiln loads them).

Deterministic (fixed seeds); the folder is about 330 KB.
"""
import io
import json
import shutil
import tempfile
import types
from pathlib import Path

import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2
import torch
import transformers
import diffusers
import diffusers.utils.logging
from diffusers import FluxPipeline, StableDiffusion3Pipeline
from safetensors.torch import load_file, save_file
from transformers import T5Config, T5EncoderModel, T5Tokenizer

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "data" / "t5"

# (source code points, target code points) in hex; an empty target deletes.
NORMALIZATION_RULES = [
    ("9", "20"), ("A", "20"), ("C", "20"), ("D", "20"), ("A0", "20"), ("3000", "20"),
    ("2009", "20"), ("B", ""), ("1", ""), ("7F", ""), ("200B", ""),
    ("FB01", "66 69"), ("2026", "2E 2E 2E"), ("2122", "54 4D"), ("65 301", "E9"), ("61 300", "E0"),
] + [(f"{0xFF21 + i:X}", f"{0x41 + i:X}") for i in range(26)] \
  + [(f"{0xFF41 + i:X}", f"{0x61 + i:X}") for i in range(26)] \
  + [(f"{0x2460 + i:X}", f"{0x31 + i:X}") for i in range(9)]

SUBJECTS = ["a cat", "a dog", "an astronaut", "a castle", "a woman", "an old man", "a robot",
            "a lighthouse", "a dragon", "a forest", "the city", "a café", "two horses"]
ACTIONS = ["sitting on a red chair", "riding a horse on the moon", "at sunset", "in the rain",
           "under a starry sky", "near the sea", "with neon lights", "in a garden"]
STYLES = ["oil painting", "highly detailed", "trending on artstation", "cinematic lighting",
          "35mm photograph", "watercolor", "4k, 8k", "Digital Art", "Photorealistic",
          "sharp focus", "naïve résumé"]


def corpus():
    lines = []
    for i, s in enumerate(SUBJECTS):
        for j, a in enumerate(ACTIONS):
            style = STYLES[(i * 3 + j) % len(STYLES)]
            lines.append(f"{s} {a}, {style}")
    lines += ["The quick brown fox jumps over the lazy dog!", "Hello World? 123 4567 89.",
              "It's a beautiful day (really) - isn't it?",
              "mountains, valleys, rivers and waterfalls beneath purple clouds",
              "a medieval knight holding a sword, armor, dramatic shadows",
              "vintage poster of a jazz musician playing saxophone in Paris",
              "macro shot of a butterfly on a yellow flower, morning dew",
              "an isometric illustration of a tiny kitchen with copper pots",
              "surreal sculpture made of glass and marble, museum exhibit",
              "children building a snowman in winter, warm scarves, laughing",
              "abstract geometric pattern, vibrant colors, symmetry, minimalism",
              "a spaceship orbiting Jupiter, science fiction concept art",
              "fresh bread, cheese and grapes on a wooden table, still life",
              "underwater coral reef with turtles, jellyfish and bright fish",
              "a samurai walking through bamboo forest, fog, ukiyo-e woodblock",
              "steampunk airship above Victorian London, brass gears, smoke",
              "cozy library interior, leather armchairs, fireplace, bookshelves"]
    return lines


STRINGS = [
    "a cat sitting on a red chair, oil painting",
    "An Astronaut Riding A Horse On The Moon",
    "",
    " ",
    "   leading and trailing   spaces  ",
    "tabs\tand\nnewlines\r\nmixed",
    "vertical\x0btab and \x0cform feed",
    "nbsp\u00a0and\u3000ideographic and\u2009thin",
    "en\u2002space and next\u0085line",
    "zero\u200bwidth and ctrl\x01char and del\x7f",
    "ﬁne ligature and wait…",
    "ＦＵＬＬＷＩＤＴＨ ｔｅｘｔ",
    "circled ① ② ⑨ digits",
    "trademark™ sign",
    "composed café and decomposed cafe\u0301",
    "à la carte vs a\u0300",
    "naïve résumé",
    "日本語のテキスト",
    "cat 猫 dog 犬",
    "emoji 😀😀 and 🐱",
    "numbers 123 4567 89.5%",
    "punctuation!!! ??? ... ,,, ;;",
    "(parentheses) [brackets] {braces}",
    "zzzz qqqq xxxx",
    "UPPERCASE lowercase MiXeD",
    "a</s>b",
    "a </s> b </s>",
    "</s></s>",
    "<pad>x<unk>y",
    "<extra_id_0> hi <extra_id_99>",
    "a <extra_id_5>b<extra_id_12>c",
    "<extra_id_100> is not a token, nor is <extra_id_5",
    "<PAD> and </S> are plain text",
    "x\x00y",
    "highly detailed, trending on artstation, 35mm photograph, sharp focus",
    "the quick brown fox jumps over the lazy dog",
    "it's a beautiful day - isn't it?",
    "\u2581already a metaspace \u2581\u2581",
    "ab\u2581\u2581cd\u2581 \u2581e and x \u2581 y",
    "tab\t\tend\n",
]
LONG_PROMPT = ", ".join(f"{s} {a}" for s in SUBJECTS for a in ACTIONS[:2])
SHORT_LEN = 16


def train_spiece(path: Path):
    with tempfile.TemporaryDirectory() as tmp:
        rules = Path(tmp) / "rules.tsv"
        rules.write_text("".join(f"{s}\t{t}\n" for s, t in NORMALIZATION_RULES))
        model = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(corpus()), model_writer=model, model_type="unigram",
            vocab_size=256, hard_vocab_limit=False, pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
            normalization_rule_tsv=str(rules), character_coverage=1.0, num_threads=1,
            minloglevel=2)
    # The model records the rules file's (temporary) path: drop it so reruns are byte-identical.
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(model.getvalue())
    proto.normalizer_spec.ClearField("normalization_rule_tsv")
    path.write_bytes(proto.SerializeToString())


def pipeline_call(tok, text, max_length):
    # What the Flux/SD3 pipelines call (padding="max_length", truncation=True).
    enc = tok(text, padding="max_length", max_length=max_length, truncation=True)
    return enc.input_ids, enc.attention_mask


def buckets(num_buckets, max_distance, span):
    rel = torch.arange(-span, span + 1, dtype=torch.long)
    b = transformers.models.t5.modeling_t5.T5Attention._relative_position_bucket(
        rel, bidirectional=True, num_buckets=num_buckets, max_distance=max_distance)
    return {"num_buckets": num_buckets, "max_distance": max_distance, "first": -span,
            "buckets": b.tolist()}


def make_model(vocab_size, num_layers, ff, seed):
    cfg = T5Config(vocab_size=vocab_size, d_model=32, d_kv=8, d_ff=37, num_layers=num_layers,
                   num_heads=4, feed_forward_proj=ff, relative_attention_num_buckets=32,
                   relative_attention_max_distance=128, decoder_start_token_id=0)
    torch.manual_seed(seed)
    model = T5EncoderModel(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():  # O(1) activations whatever the init scheme
            p.normal_(0.0, 0.3)
        # A bias large enough that a wrong bucket or a missing bias shows.
        model.encoder.block[0].layer[0].SelfAttention.relative_attention_bias.weight.normal_(0, 1)
        for blk in model.encoder.block:
            blk.layer[0].layer_norm.weight.uniform_(0.5, 1.5)
            blk.layer[-1].layer_norm.weight.uniform_(0.5, 1.5)
        model.encoder.final_layer_norm.weight.uniform_(0.5, 1.5)
    return model


def main():
    diffusers.utils.logging.set_verbosity_error()  # the pipelines warn about truncation
    if OUT.exists():
        shutil.rmtree(OUT)
    tok_dir = OUT / "tokenizer"
    tok_dir.mkdir(parents=True)
    train_spiece(tok_dir / "spiece.model")
    sp = spm.SentencePieceProcessor(model_file=str(tok_dir / "spiece.model"))

    with tempfile.TemporaryDirectory() as tmp:
        from_spm = T5Tokenizer.from_pretrained(str(tok_dir))
        from_spm.save_pretrained(tmp)
        saved = T5Tokenizer.from_pretrained(tmp)  # tokenizer.json + tokenizer_config.json
        shutil.copy(Path(tmp) / "tokenizer_config.json", tok_dir / "tokenizer_config.json")

    cases = []
    spm_differs = 0
    for text in STRINGS:
        ids = saved(text).input_ids
        assert ids == from_spm(text).input_ids, text
        short, short_mask = pipeline_call(saved, text, SHORT_LEN)
        spm_differs += (sp.encode(text) + [1]) != ids
        cases.append({"text": text, "ids": ids, "pieces": saved.convert_ids_to_tokens(ids),
                      "ids_16": short, "mask_16": short_mask})
    long_cases = []
    for n in (256, 512):
        ids, mask = pipeline_call(saved, LONG_PROMPT, n)
        long_cases.append({"max_length": n, "ids": ids, "attention_mask": mask})
    full_long = saved(LONG_PROMPT).input_ids
    assert 256 < len(full_long) < 512, len(full_long)
    print(f"spm pieces {sp.get_piece_size()}, tokenizer size {len(saved)}, "
          f"{spm_differs} strings where plain SentencePiece differs, long prompt {len(full_long)}")

    # ---- encoders
    vocab = len(saved) + 4  # like T5's 32128 = 32100 + 28 unused rows
    gated = make_model(vocab, 2, "gated-gelu", 0)
    gated.save_pretrained(OUT / "text_encoder")
    make_model(vocab, 2, "gated-gelu", 0).half().save_pretrained(OUT / "text_encoder_fp16")
    relu_dir = OUT / "text_encoder_relu_bf16"
    make_model(vocab, 1, "relu", 1).to(torch.bfloat16).save_pretrained(relu_dir)
    st = load_file(relu_dir / "model.safetensors")
    assert "encoder.embed_tokens.weight" not in st
    st["encoder.embed_tokens.weight"] = st["shared.weight"].clone()
    save_file(st, relu_dir / "model.safetensors", metadata={"format": "pt"})

    goldens = {}
    prompts = [STRINGS[0], LONG_PROMPT]
    fake = types.SimpleNamespace(tokenizer_2=saved, text_encoder_2=gated, text_encoder=gated,
                                 tokenizer_3=saved, text_encoder_3=gated, tokenizer_max_length=77,
                                 _execution_device=torch.device("cpu"))
    with torch.no_grad():
        flux = FluxPipeline._get_t5_prompt_embeds(fake, prompts, max_sequence_length=64)
        sd3 = StableDiffusion3Pipeline._get_t5_prompt_embeds(fake, [LONG_PROMPT],
                                                             max_sequence_length=256)
    goldens["flux_ids"] = torch.tensor([pipeline_call(saved, p, 64)[0] for p in prompts])
    goldens["flux_out"] = flux.float()
    goldens["sd3_ids"] = torch.tensor([pipeline_call(saved, LONG_PROMPT, 256)[0]])
    goldens["sd3_out"] = sd3.float()

    batch = [STRINGS[1], STRINGS[5], STRINGS[29]]
    enc = saved(batch, padding="max_length", max_length=24, truncation=True, return_tensors="pt")
    goldens["masked_ids"] = enc.input_ids
    goldens["masked_mask"] = enc.attention_mask
    with torch.no_grad():
        goldens["masked_out"] = gated(input_ids=enc.input_ids,
                                      attention_mask=enc.attention_mask).last_hidden_state
        goldens["unmasked_out"] = gated(input_ids=enc.input_ids).last_hidden_state
        for name in ("text_encoder_fp16", "text_encoder_relu_bf16"):
            m = T5EncoderModel.from_pretrained(OUT / name, dtype=torch.float32).eval()
            goldens[f"{name}_out"] = m(input_ids=enc.input_ids,
                                       attention_mask=enc.attention_mask).last_hidden_state
    save_file({k: v.contiguous() for k, v in goldens.items()}, OUT / "goldens.safetensors",
              # One key: safetensors writes __metadata__ in hash order, which varies by run.
              metadata={"versions": f"transformers {transformers.__version__}, diffusers "
                                    f"{diffusers.__version__}, torch {torch.__version__}"})

    doc = {
        "transformers": transformers.__version__, "sentencepiece": spm.__version__,
        "vocab_size": len(saved), "spm_pieces": sp.get_piece_size(),
        "pad": saved.pad_token_id, "eos": saved.eos_token_id, "unk": saved.unk_token_id,
        "extra_id_0": saved.convert_tokens_to_ids("<extra_id_0>"),
        "cases": cases, "long_prompt": LONG_PROMPT, "long_ids": full_long, "long": long_cases,
        "masked_batch": batch,
        "buckets": [buckets(32, 128, 600), buckets(16, 20, 60)],
    }
    (OUT / "goldens.json").write_text(json.dumps(doc, ensure_ascii=False, indent=None) + "\n")
    total = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"wrote {OUT} ({total / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
