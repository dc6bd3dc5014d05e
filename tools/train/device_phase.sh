#!/bin/bash
# One training phase as one self-contained device call (tools/train/README.md: a run left going
# between calls dies with the machine). Run on the GPU machine from the repo root, with the
# kiln-scenes binary and the wheels carried (carry [".whl", ".train"]):
#   KILN_SCENES=.train/kiln-scenes bash tools/train/device_phase.sh vae|denoiser [train.py options]
# vae:      a VAE alone until CALL_END, its 256-scene held-out round trip into $OUT (score it
#           here with `kiln-quality score`), the fp32 VAE too;
# denoiser: resumes models/kiln-mini's denoiser (its VAE and tokenizer kept; RESUME_VAE names
#           another fp32 VAE folder when the denoiser starts anew on it: then no --resume), trains
#           until CALL_END, exports into $OUT/mini.tar.* and copies the log.
# Environment: CALL_END (seconds from the start the call must be done by, default 555),
# TRAIN_SAMPLES (400000), JOBS (16), WORK (/tmp/w), OUT (the device tool's output folder).
set -uo pipefail
phase=${1:?usage: device_phase.sh vae|denoiser [train.py options]}; shift
T0=$(date +%s); END=$(( T0 + ${CALL_END:-555} ))
log() { echo "[t=$(( $(date +%s) - T0 ))] $*"; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
W=${WORK:-/tmp/w}; n=${TRAIN_SAMPLES:-400000}; jobs=${JOBS:-16}; per=$(( (n + jobs - 1) / jobs ))
scenes=${KILN_SCENES:?KILN_SCENES must name a built kiln-scenes}
mkdir -p "$W/data" "$OUT"
packs=()
for ((j = 0; j < jobs; ++j)); do  # the same seeds and split as retrain.sh
  first=$(( j * per )); count=$(( first + per > n ? n - first : per )); (( count > 0 )) || break
  packs+=("$W/data/p$j")
  [ -f "$W/data/p$j/pack.json" ] || "$scenes" --count $count --seed $first --size 64 --pack \
    --out "$W/data/p$j" > /dev/null &
done
[ -d "$W/vae_check_gt" ] || "$scenes" --count 256 --seed 3000000000 --size 64 --out "$W/vae_check_gt" > /dev/null
wait; log "data: ${#packs[@]} packs"
train() { python3 tools/train/train.py --packs "${packs[@]}" --heldout tests/quality/heldout_prompts.jsonl \
  --work "$W" "$@" 2>&1 | grep --line-buffered -v -E "^(vae|denoiser) \{|Warning|warn\(|Writing model"; }
left() { echo $(( END - $(date +%s) - $1 )); }
case $phase in
  vae)
    [ -d "$W/tokenizer" ] || python3 - <<PY
from transformers import CLIPTokenizer
CLIPTokenizer.from_pretrained("models/kiln-mini/tokenizer_2").save_pretrained("$W/tokenizer")
PY
    train --stage vae --vae-steps 100000000 --vae-time-limit "$(left 60)" "$@"
    tar -C "$W" -cf "$OUT/vae.tar" vae vae_check vae_check.json vae_log.jsonl ;;
  denoiser)
    python3 - <<PY
from transformers import CLIPTokenizer
CLIPTokenizer.from_pretrained("models/kiln-mini/tokenizer_2").save_pretrained("$W/tokenizer")
PY
    if [ -n "${RESUME_VAE:-}" ]; then
      rm -rf "$W/vae"; cp -r "$RESUME_VAE" "$W/vae"; resume=()
    else
      rm -rf "$W/vae"; cp -r models/kiln-mini/vae "$W/vae"; resume=(--resume models/kiln-mini)
    fi
    train --stage denoiser "${resume[@]}" --steps 100000000 --time-limit "$(left 90)" --save-every 60 "$@"
    cp "$W/denoiser_log.jsonl" "$OUT/"
    train --stage export --out /tmp/mini --no-preview
    tar -C /tmp -cf - mini | split -b 15M - "$OUT/mini.tar." ;;
  *) echo "unknown phase '$phase' (vae, denoiser)" >&2; exit 2 ;;
esac
log "done"
