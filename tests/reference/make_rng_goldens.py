#!/usr/bin/env python3
"""Golden data for kiln's RNG parity tests (tests/rng/).

Writes
  tests/data/rng/torch_cpu_randn.json   torch.randn / torch.rand on the CPU generator, for both
                                        kernels torch can pick for float32 randn on x86:
                                        ATEN_CPU_CAPABILITY=avx2 (normal_fill_16_AVX2, avx_mathfun
                                        polynomials) and =default (scalar std::log/cos/sin).
  tests/data/rng/torch_cuda_randn.json  torch.randn / torch.rand / random_(-2**63) on a CUDA
                                        generator (Philox4x32-10 through curand), with the GPU's
                                        name and SM count (the element->thread mapping depends
                                        on it).

Usage
  python make_rng_goldens.py [--out DIR] [--cpu-only | --cuda-only]
  python make_rng_goldens.py --cuda-only --cuda-device cpu   # dry run of the CUDA driver on CPU

Each torch capability runs in its own subprocess because ATEN_CPU_CAPABILITY is read once, when
torch dispatches its first kernel. Only `torch` is needed (numpy is not used), so the CUDA part
runs on a bare GPU machine.

Encoding (parsed by tests/rng/rng_golden.hpp): a float32 array is one string of 8 hex digits per
value (the IEEE bits, big-endian text, element order); an int64 array 16 hex digits per value.
Arrays of at most FULL_MAX elements are stored whole; larger ones as head (first 64), tail (last
64), `strided` (SAMPLES values at index i*numel//SAMPLES), `sum` (float64 sum of the values) and
`fnv1a64`: FNV-1a over the 32-bit (64-bit for int64) words in element order, i.e.
h = 0xcbf29ce484222325; for w: h = ((h ^ w) * 0x100000001b3) mod 2**64.
"""
import argparse
import json
import os
import platform
import struct
import subprocess
import sys

HEAD = 64
FULL_MAX = 100
SAMPLES = 64

SEEDS = [0, 42, 2**32 + 5, 2**63 - 1]
SIZES = [1, 2, 3, 7, 15, 16, 17, 31, 33, 100, 1000, 4 * 64 * 64]
# Consecutive calls on one generator: shapes in call order.
SEQUENCES = [
    [[1, 4, 64, 64], [1, 4, 64, 64]],
    [[1, 16, 128, 128], [1, 16, 128, 128]],
    # CPU: exercises the cached second Box-Muller sample of the scalar path (sizes < 16) across
    # calls, interleaved with normal_fill calls that do not touch that cache.
    [[3], [100], [1], [5], [16], [2]],
]
# > 132 SMs * 2048 threads * 4 (unroll): several grid-stride iterations per thread on an H100.
CUDA_BIG = [2_500_001]


def fnv1a64(words):
    h = 0xCBF29CE484222325
    for w in words:
        h = ((h ^ w) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def encode(t):
    """t: 1-D CPU tensor, float32 or int64 -> JSON object as described in the module doc."""
    import torch
    n = t.numel()
    if t.dtype == torch.float32:
        words = [w & 0xFFFFFFFF for w in t.view(torch.int32).tolist()]
        fmt = "%08x"
    elif t.dtype == torch.int64:
        words = [w & 0xFFFFFFFFFFFFFFFF for w in t.tolist()]
        fmt = "%016x"
    else:
        raise ValueError(t.dtype)
    hexs = lambda ws: "".join(fmt % w for w in ws)
    out = {"numel": n, "dtype": "f32" if t.dtype == torch.float32 else "i64"}
    if n <= FULL_MAX:
        out["full"] = hexs(words)
        return out
    idx = [i * n // SAMPLES for i in range(SAMPLES)]
    out["head"] = hexs(words[:HEAD])
    out["tail"] = hexs(words[-HEAD:])
    out["strided"] = hexs(words[i] for i in idx)
    out["sum"] = float(t.double().sum().item())
    out["fnv1a64"] = "%016x" % fnv1a64(words)
    return out


def cpu_cases():
    cases = []
    for seed in SEEDS:
        for n in SIZES:
            cases.append({"op": "randn", "seed": seed, "calls": [[n]]})
        for seq in SEQUENCES:
            cases.append({"op": "randn", "seed": seed, "calls": seq})
    for seed in (0, 2**63 - 1):
        for n in (1, 3, 17, 1000, 4 * 64 * 64):
            cases.append({"op": "rand", "seed": seed, "calls": [[n]]})
        cases.append({"op": "rand", "seed": seed, "calls": SEQUENCES[0]})
    return cases


def cpu_worker():
    """Runs inside a subprocess with ATEN_CPU_CAPABILITY set; prints its results as JSON."""
    import torch
    torch.set_num_threads(1)
    fn = {"randn": torch.randn, "rand": torch.rand}
    cases = cpu_cases()
    for c in cases:
        g = torch.Generator().manual_seed(c["seed"])
        c["outputs"] = [encode(fn[c["op"]](*shape, generator=g).flatten()) for shape in c["calls"]]
    json.dump({"torch_version": torch.__version__,
               "cpu_capability": torch.backends.cpu.get_cpu_capability(),
               "cases": cases}, sys.stdout)


def make_cpu(out_dir):
    results = {}
    for cap, key in (("avx2", "avx2"), ("default", "scalar")):
        env = dict(os.environ, ATEN_CPU_CAPABILITY=cap)
        p = subprocess.run([sys.executable, os.path.abspath(__file__), "--_cpu-worker"], env=env,
                           check=True, capture_output=True, text=True)
        results[key] = json.loads(p.stdout)
        print(f"cpu kernel {key}: torch reports capability {results[key]['cpu_capability']}",
              file=sys.stderr)
    # torch registers no AVX512 normal kernel (REGISTER_NO_AVX512_DISPATCH in
    # DistributionKernels.cpp): on an AVX-512 CPU it runs the AVX2 kernel. Record that check.
    env = dict(os.environ, ATEN_CPU_CAPABILITY="avx512")
    p = subprocess.run([sys.executable, os.path.abspath(__file__), "--_cpu-worker"], env=env,
                       check=True, capture_output=True, text=True)
    avx512 = json.loads(p.stdout)
    avx512_same = None
    if avx512["cpu_capability"] == "AVX512":
        avx512_same = all(a["outputs"] == b["outputs"]
                          for a, b in zip(avx512["cases"], results["avx2"]["cases"]))
    print(f"cpu capability avx512 available: {avx512['cpu_capability'] == 'AVX512'}, "
          f"same as avx2: {avx512_same}", file=sys.stderr)
    versions = {r["torch_version"] for r in results.values()}
    assert len(versions) == 1, versions
    doc = {
        "generator": "torch.Generator('cpu').manual_seed(seed); torch.randn/rand(*shape, generator=g)",
        "torch_version": versions.pop(),
        "machine": platform.machine(),
        # null when the CPU has no AVX-512; else whether ATEN_CPU_CAPABILITY=avx512 gave the
        # avx2 kernel's bits for every case.
        "avx512_equals_avx2": avx512_same,
        "kernels": {k: {"ATEN_CPU_CAPABILITY": "avx2" if k == "avx2" else "default",
                        "reported_capability": r["cpu_capability"], "cases": r["cases"]}
                    for k, r in results.items()},
    }
    write(os.path.join(out_dir, "torch_cpu_randn.json"), doc)


def make_cuda(out_dir, device):
    import torch
    dev = torch.device(device)
    info = {"device": device}
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        info.update(name=props.name, sm_count=props.multi_processor_count,
                    max_threads_per_sm=getattr(props, "max_threads_per_multi_processor", None),
                    capability="%d.%d" % (props.major, props.minor))

    def randn(shape, g):
        return torch.randn(*shape, device=dev, generator=g)

    def rand(shape, g):
        return torch.rand(*shape, device=dev, generator=g)

    def random64(shape, g):
        # from = int64 min, to = None: random_full_64_bits_range_kernel, i.e. the raw 64 bits
        # (x << 32 | y) of each curand4 pair, unroll 2.
        t = torch.empty(*shape, dtype=torch.int64, device=dev)
        return t.random_(-2**63, None, generator=g)

    def philox_offset(g):
        try:
            return int(g.get_offset())
        except Exception:  # older torch: no Generator.get_offset
            return None

    ops = {"randn": randn, "rand": rand, "random64": random64}
    cases = []
    for seed in SEEDS:
        for n in SIZES:
            cases.append({"op": "randn", "seed": seed, "calls": [[n]]})
        cases.append({"op": "randn", "seed": seed, "calls": SEQUENCES[0]})
        cases.append({"op": "randn", "seed": seed, "calls": SEQUENCES[1]})
    for seed in (0, 2**32 + 5):
        for n in CUDA_BIG:
            cases.append({"op": "randn", "seed": seed, "calls": [[n]]})
    for seed in (0, 2**63 - 1):
        for op in ("rand", "random64"):
            for n in (1, 17, 1000):
                cases.append({"op": op, "seed": seed, "calls": [[n]]})
            cases.append({"op": op, "seed": seed, "calls": SEQUENCES[0]})
            cases.append({"op": op, "seed": seed, "calls": [[n] for n in CUDA_BIG]})
    done = []
    for c in cases:
        try:
            g = torch.Generator(device=dev).manual_seed(c["seed"])
            outs, offsets = [], []
            for shape in c["calls"]:
                outs.append(encode(ops[c["op"]](shape, g).flatten().cpu()))
                offsets.append(philox_offset(g) if dev.type == "cuda" else None)
            c["outputs"], c["offset_after"] = outs, offsets
            done.append(c)
        except Exception as e:  # keep the other cases: the GPU machine is used once
            c["error"] = repr(e)
            done.append(c)
            print("case failed:", c["op"], c["seed"], c["calls"], repr(e), file=sys.stderr)
    doc = {
        "generator": "torch.Generator(device).manual_seed(seed); op(*shape, generator=g)",
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda,
        "device_info": info,
        "cases": done,
    }
    write(os.path.join(out_dir, "torch_cuda_randn.json"), doc)


def write(path, doc):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {path} ({os.path.getsize(path)} bytes)", file=sys.stderr)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", default=os.path.normpath(os.path.join(here, "..", "data", "rng")))
    ap.add_argument("--cpu-only", action="store_true")
    ap.add_argument("--cuda-only", action="store_true")
    ap.add_argument("--cuda-device", default="cuda")
    ap.add_argument("--_cpu-worker", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a._cpu_worker:
        return cpu_worker()
    if not a.cuda_only:
        make_cpu(a.out)
    if not a.cpu_only:
        make_cuda(a.out, a.cuda_device)


if __name__ == "__main__":
    main()
