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
# cuDNN (CUDA convs): the GPU image has it only as PyTorch's pip package nvidia-cudnn-cu13, not
# under /usr/local/cuda; its lib/ (libcudnn.so.9 and the sub-libraries it loads) goes on the
# path after the toolkit's, when python3 can find it. The script goes on if it is absent, but
# binaries built with cuDNN (KILN_CUDNN found it) then cannot load at all: the loader's error is
# in each log; build with -DKILN_CUDNN=OFF to test without cuDNN.
cudnn_lib="$(python3 -c 'import os, nvidia.cudnn as m; print(os.path.join(list(m.__path__)[0], "lib"))' 2>/dev/null || true)"
if [[ -n "$cudnn_lib" && -d "$cudnn_lib" ]]; then
  export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$cudnn_lib"
  echo "cuDNN: $cudnn_lib ($(cd "$cudnn_lib" && ls libcudnn.so.* 2>/dev/null | tr '\n' ' '))"
else
  echo "cuDNN: no pip package nvidia.cudnn found; using the loader's default paths (binaries"
  echo "       built with cuDNN need libcudnn.so.9 there)"
fi
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
