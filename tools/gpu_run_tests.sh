#!/usr/bin/env bash
# Runs carried test binaries on the GPU machine: tools/gpu_run_tests.sh BIN_DIR LIB_DIR OUT_DIR
# (built here with the CUDA toolkit; see docs/perf.md "GPU machine"). Prints a summary.
set -uo pipefail
bin="$1"; lib="$2"; out="$3"
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
