#!/usr/bin/env bash
# Runs carried test binaries on the GPU machine (built here with the CUDA toolkit by
# tools/gpu_prepare.sh). Prints a summary.
#   tools/gpu_run_tests.sh BUNDLE.tar.xz OUT_DIR     (what gpu_prepare.sh writes)
#   tools/gpu_run_tests.sh BIN_DIR LIB_DIR OUT_DIR
set -uo pipefail
if [[ $# -eq 2 ]]; then
  mkdir -p /tmp/kiln-gpu && tar -C /tmp/kiln-gpu -xJf "$1" || { echo "cannot unpack $1"; exit 1; }
  bin=/tmp/kiln-gpu/bin; lib=/tmp/kiln-gpu/lib; out="$2"
else
  bin="$1"; lib="$2"; out="$3"
fi
export LD_LIBRARY_PATH="$lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
export KILN_TEST_DATA="$(pwd)/tests/data" OMP_NUM_THREADS=8
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
fails=0
for t in "$bin"/*; do
  name="$(basename "$t")"
  if "$t" >"$out/$name.log" 2>&1; then
    echo "PASS $name: $(grep -E '^\[  PASSED' "$out/$name.log") $(grep -E '^\[  SKIPPED \] [0-9]' "$out/$name.log")"
  else
    echo "FAIL $name"; tail -30 "$out/$name.log"; fails=$((fails + 1))
  fi
done
echo "$fails failing binaries"
