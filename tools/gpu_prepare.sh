#!/usr/bin/env bash
# Prepares the GPU test run: builds the CUDA test binaries and the kiln CLI here (this machine
# has the CUDA toolkit but no GPU) and copies them, with the shared libraries the GPU machine's
# image lacks, into .gpu/ (ignored by git), which the device call carries:
#   tools/gpu_prepare.sh                 # then, on the GPU machine (carry [".gpu"]):
#   bash tools/gpu_run_tests.sh .gpu/bundle.tar.xz $OUT
# The CLI (for `kiln bench`, bench/README.md) unpacks to /tmp/kiln-gpu/cli/kiln; run it with
# LD_LIBRARY_PATH=/tmp/kiln-gpu/lib plus cuDNN's, as gpu_run_tests.sh sets it.
# Each test binary links the runtime with its CUDA kernels statically (~4 MB each, 170 MB in
# all, over the device tool's 64 MiB carry limit), so they travel as one xz archive (~16 MB).
# The GPU machine has CUDA 13 (cudart, cuBLASLt) in /usr/local/cuda/lib64; what it may lack
# (libgomp, libstdc++ newer than its own) travels in .gpu/lib. cuDNN (~1 GB) does not travel:
# the binaries link libcudnn.so.9 from this machine's toolkit and gpu_run_tests.sh finds the GPU
# image's pip copy (nvidia-cudnn-cu13) at run time.
# Environment: BUILD_DIR (default build-gpu), JOBS, TESTS.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
build="${BUILD_DIR:-build-gpu}"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DKILN_CUDA=ON \
  -DKILN_CUDA_ARCHS="90a;80" -DKILN_OPENBLAS=OFF -DKILN_ONEDNN=OFF -DKILN_BLAS=kiln \
  -DKILN_STB=OFF -DKILN_BENCH=OFF -DKILN_APPS=ON >/dev/null
cmake --build "$build" -j "${JOBS:-$(nproc)}"
rm -rf .gpu && mkdir -p .gpu/bin .gpu/lib .gpu/cli
mkdir -p .git/info && { grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude; }
# TESTS: a glob of the binaries to take (default every test, ~300 MB, ~40 MB packed: over the
# carry limit next to the repo; 'cuda_*' packs to ~10 MB).
find "$build/tests" -maxdepth 2 -type f -executable -name "${TESTS:-*_test_*}" -exec cp {} .gpu/bin/ \;
cp "$build/apps/kiln/kiln" .gpu/cli/
# Every library a binary resolves here except glibc's and CUDA's own (the GPU image has those,
# matching its driver): libgomp, libstdc++, sentencepiece and protobuf (the GPU image's own
# sentencepiece needs a newer libstdc++ than ours), and libkiln.so for the C API test.
for t in .gpu/bin/* .gpu/cli/kiln; do
  ldd "$t" | awk '/=> \// {print $3}' |
    grep -v -E '/(libc|libm|libpthread|libdl|librt|ld-linux-x86-64)\.so|/(libcuda|libcudart|libcublas|libcublasLt|libcudnn[a-z_]*)\.so' || true
done | sort -u | xargs -r -I{} cp -L {} .gpu/lib/
echo "prepared: $(ls .gpu/bin | wc -l) test binaries, libs: $(ls .gpu/lib | tr '\n' ' ')"
tar -C .gpu -cf - bin lib cli | xz -T0 -6 > .gpu/bundle.tar.xz
rm -rf .gpu/bin .gpu/lib .gpu/cli
ls -la .gpu/bundle.tar.xz
