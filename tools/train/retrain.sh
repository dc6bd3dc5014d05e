#!/usr/bin/env bash
# Retrains kiln-mini from scratch:
#   tools/train/retrain.sh [WORK_DIR]                       the committed model's recipe
#   tools/train/retrain.sh WORK_DIR [train.py options...]   one train.py run with these options
# 1. builds kiln-scenes (tools/data) unless KILN_SCENES names a built one,
# 2. writes TRAIN_SAMPLES (default 400000) scenes, seeds 0.., as JOBS parallel packs,
# 3. runs train.py: tokenizer -> VAE -> text encoder + U-Net -> models/kiln-mini (fp16): with no
#    options, the phases that made the committed model (RECIPE below: the denoiser was trained in
#    phases, one device call each, each resuming the last); loss curves in WORK_DIR, and 256
#    held-out scenes
#    round-tripped through the VAE in WORK_DIR/vae_check (scored when KILN_QUALITY names a
#    built kiln-quality: the VAE must keep the shapes, or no denoiser can draw them).
# Needs a CUDA GPU with PyTorch, diffusers, transformers, safetensors, regex, matplotlib.
# Held-out prompts (never trained on): tests/quality/heldout_prompts.jsonl.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=${1:-$root/build-train}
shift || true
mkdir -p "$work"
scenes=${KILN_SCENES:-}
if [ -z "$scenes" ]; then
  cmake -S "$root" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DKILN_CUDA=OFF \
    -DKILN_TESTS=OFF -DKILN_BENCH=OFF -DKILN_ONEDNN=OFF -DKILN_OPENBLAS=OFF >/dev/null
  cmake --build "$work/build" --target kiln_scenes_cli
  scenes=$work/build/tools/data/kiln-scenes
fi
n=${TRAIN_SAMPLES:-400000}
jobs=${JOBS:-$(nproc)}
per=$(( (n + jobs - 1) / jobs ))
packs=()
for ((j = 0; j < jobs; ++j)); do
  first=$(( j * per ))
  count=$(( first + per > n ? n - first : per ))
  (( count > 0 )) || break
  packs+=("$work/data/p$j")
  [ -f "$work/data/p$j/pack.json" ] || "$scenes" --count "$count" --seed "$first" --size 64 \
      --pack --out "$work/data/p$j" &
done
wait
for p in "${packs[@]}"; do
  [ -f "$p/pack.json" ] || { echo "retrain.sh: scene generation failed: $p" >&2; exit 1; }
done
# Held-out scenes (seeds 3*10^9..) that check_vae round-trips through the VAE.
[ -d "$work/vae_check_gt" ] || "$scenes" --count 256 --seed 3000000000 --size 64 \
    --out "$work/vae_check_gt" >/dev/null
train() {
  python3 "$root/tools/train/train.py" --packs "${packs[@]}" \
    --heldout "$root/tests/quality/heldout_prompts.jsonl" --work "$work" \
    --out "${KILN_MINI_OUT:-$root/models/kiln-mini}" "$@"
}
if [ $# -gt 0 ]; then
  train "$@"
else
  # RECIPE of the committed model (tools/train/README.md: when and on what each phase ran).
  # Fixed step counts, so that another GPU repeats the same schedule.
  train --stage tokenizer vae --vae-steps 2500 --vae-batch 256
  train --stage denoiser --batch 512 --lr 8e-4 --warmup 200 --steps 2648
  train --stage denoiser --resume "$work/denoiser_ema" --batch 1024 --lr 6e-4 --warmup 100 --steps 2296
  train --stage export
fi
python3 "$root/tools/train/plots.py" "$work"
# The VAE's ceiling on adherence, when kiln-quality is at hand (KILN_QUALITY=path).
if [ -n "${KILN_QUALITY:-}" ] && [ -d "$work/vae_check" ]; then
  "$KILN_QUALITY" score "$work/vae_check"
fi
