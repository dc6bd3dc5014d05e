#!/usr/bin/env bash
# Runs `kiln bench` and its PyTorch/diffusers companion (bench/torch_cuda_bench.py) in the same
# run on the GPU machine, with the CLI from tools/gpu_prepare.sh's bundle:
#   bash tools/gpu_bench.sh BUNDLE.tar.xz OUT_DIR [WORKLOADS...]
# Default: attention, gemm, conv2d in bf16 and the three components (SD1.5 / SDXL U-Net, Flux)
# in f32 (the models take f32 inputs until issue 5's bf16 pipelines), -n 5 --warmup 2 for them.
# diffusers must be importable (bench/README.md: it travels as a wheel). Writes OUT_DIR/kiln_*.json
# (kiln's results), OUT_DIR/torch_*.json and the text of both, ratios included (< 1: kiln faster).
set -uo pipefail
[[ $# -ge 2 ]] || { echo "usage: $0 BUNDLE.tar.xz OUT_DIR [WORKLOADS...]" >&2; exit 2; }
source "$(dirname "$0")/gpu_env.sh" "$1"
out="$2"; shift 2
[[ -x "$cli" ]] || { echo "no kiln CLI in $1 (rebuild it with tools/gpu_prepare.sh)"; exit 1; }
export OMP_NUM_THREADS=8
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' | tee -a "$out/gpu.txt"
run() {  # NAME KILN_ARGS...: kiln, then the companion on kiln's specs
  local name="$1"; shift
  echo "== $name: kiln bench $*"
  "$cli" bench "$@" --device cuda --json "$out/kiln_$name.json" 2>&1 | tee "$out/kiln_$name.txt"
  echo "== $name: torch_cuda_bench.py"
  python3 bench/torch_cuda_bench.py --kiln-json "$out/kiln_$name.json" \
    --json "$out/torch_$name.json" 2>&1 | tee "$out/torch_$name.txt"
}
if [[ $# -gt 0 ]]; then
  run custom "$@"
else
  run ops attention gemm conv2d
  run models unet-sd15 unet-sdxl flux --dtype f32 -n 5 --warmup 2
fi
