# Sourced by tools/gpu_run_tests.sh and tools/gpu_bench.sh on the GPU machine:
#   source tools/gpu_env.sh BUNDLE.tar.xz        (unpacks it to /tmp/kiln-gpu, once per bundle)
#   source tools/gpu_env.sh BIN_DIR LIB_DIR      (binaries already unpacked)
# Sets bin, lib, cli (the kiln CLI, when the bundle has it) and LD_LIBRARY_PATH.
if [[ $# -eq 1 ]]; then
  # Unpacked once per bundle: a warm machine given a rebuilt bundle unpacks it afresh.
  stamp="$(cksum < "$1")" || { echo "cannot read $1"; exit 1; }
  if [[ "$(cat /tmp/kiln-gpu/.stamp 2>/dev/null)" != "$stamp" ]]; then
    rm -rf /tmp/kiln-gpu && mkdir -p /tmp/kiln-gpu &&
      tar -C /tmp/kiln-gpu -xJf "$1" || { echo "cannot unpack $1"; exit 1; }
    echo "$stamp" > /tmp/kiln-gpu/.stamp
  fi
  bin=/tmp/kiln-gpu/bin; lib=/tmp/kiln-gpu/lib
else
  bin="$1"; lib="$2"
fi
cli=/tmp/kiln-gpu/cli/kiln
export LD_LIBRARY_PATH="$lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
# cuDNN (CUDA convs): the GPU image has it only as PyTorch's pip package nvidia-cudnn-cu13, not
# under /usr/local/cuda; its lib/ (libcudnn.so.9 and the sub-libraries it loads) goes on the
# path after the toolkit's, when python3 can find it. Without it, binaries built with cuDNN
# (KILN_CUDNN found it) cannot load at all: the loader's error is in each log; build with
# -DKILN_CUDNN=OFF to run without cuDNN.
cudnn_lib="$(python3 -c 'import os, nvidia.cudnn as m; print(os.path.join(list(m.__path__)[0], "lib"))' 2>/dev/null || true)"
if [[ -n "$cudnn_lib" && -d "$cudnn_lib" ]]; then
  export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$cudnn_lib"
  echo "cuDNN: $cudnn_lib ($(cd "$cudnn_lib" && ls libcudnn.so.* 2>/dev/null | tr '\n' ' '))"
else
  echo "cuDNN: no pip package nvidia.cudnn found; using the loader's default paths (binaries"
  echo "       built with cuDNN need libcudnn.so.9 there)"
fi
