#!/usr/bin/env bash
# Runs carried test binaries on the GPU machine (built here with the CUDA toolkit by
# tools/gpu_prepare.sh). Prints a summary.
#   tools/gpu_run_tests.sh BUNDLE.tar.xz OUT_DIR     (what gpu_prepare.sh writes)
#   tools/gpu_run_tests.sh BIN_DIR LIB_DIR OUT_DIR
set -uo pipefail
case $# in
  2) source "$(dirname "$0")/gpu_env.sh" "$1"; out="$2" ;;
  3) source "$(dirname "$0")/gpu_env.sh" "$1" "$2"; out="$3" ;;
  *) echo "usage: $0 BUNDLE.tar.xz OUT_DIR | BIN_DIR LIB_DIR OUT_DIR" >&2; exit 2 ;;
esac
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
