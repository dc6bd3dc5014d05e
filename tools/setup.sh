#!/usr/bin/env bash
# kiln set-up for a fresh Debian 12 / Ubuntu 24.04 machine: installs what is missing (apt),
# builds, then either runs the main job or the whole test suite.
#
#   tools/setup.sh run ["prompt"]  # build + the main job: a kiln-mini render (out/kiln-mini.png)
#   tools/setup.sh test   # build + every test (ctest)
#
# Environment: BUILD_DIR (default build), KILN_CMAKE_ARGS (extra configure flags), JOBS.
set -euo pipefail

mode="${1:-}"
if [[ "$mode" != "run" && "$mode" != "test" ]]; then
  echo "usage: tools/setup.sh run|test" >&2
  exit 2
fi
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
build="${BUILD_DIR:-build}"
jobs="${JOBS:-$(nproc)}"

# ---- 1. packages (only the missing ones) ----
packages=(cmake ninja-build g++ ccache pkg-config libopenblas-dev libdnnl-dev ocl-icd-opencl-dev
          libstb-dev nlohmann-json3-dev libcli11-dev libgtest-dev libbenchmark-dev
          libsentencepiece-dev libopencv-imgproc-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo=""
  if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# ---- 2. build ----
# shellcheck disable=SC2086
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release ${KILN_CMAKE_ARGS:-}
cmake --build "$build" -j "$jobs"

# ---- 3. run ----
if [[ "$mode" == "run" ]]; then
  mkdir -p out
  kiln="$build/apps/kiln/kiln"
  prompt="${2:-a large yellow star in the center on a blue background}"
  echo
  echo "Main job: text-to-image with kiln-mini, the default model embedded in the tree"
  echo "(models/kiln-mini: an SDXL-architecture pipeline trained by tools/train on procedural"
  echo "shape scenes, 64x64). It is an early checkpoint: it draws the background and the colors"
  echo "asked for, while shapes, counts and positions are often wrong (docs/quality.md)."
  echo "Prompt: $prompt"
  echo
  start=$(date +%s.%N)
  "$kiln" render -m models/kiln-mini -p "$prompt" --seed 42 --progress none -o out/kiln-mini.png
  end=$(date +%s.%N)
  awk -v s="$start" -v e="$end" 'BEGIN { printf "load + text encoding + 30 Euler steps with CFG + VAE decode + PNG: %.2f s\n", e - s }'
else
  ctest --test-dir "$build" --output-on-failure -j "$jobs" --timeout 900
fi
