#!/usr/bin/env python3
"""PyTorch / diffusers companion of `kiln bench` on the GPU: the same workloads, the same
timing method (warm-up, then CUDA events around each iteration, all read after the last one;
median and min), peak memory (torch.cuda.max_memory_allocated / max_memory_reserved since a
reset after the weights and inputs were made, the point where kiln resets its counters).
Eager, bf16 by default, random weights (diffusers' default init).

Run both in the same session on the same GPU and report the ratio:

    build/apps/kiln/kiln bench attention gemm conv2d unet-sd15 unet-sdxl flux \\
        --device cuda --json kiln.json
    python3 bench/torch_cuda_bench.py --kiln-json kiln.json --json torch.json

--kiln-json runs exactly the specs kiln ran (workload, parameters, dtype, warm-up, iterations)
and prints kiln/PyTorch per workload (< 1 = kiln faster); attention is timed with
F.scaled_dot_product_attention's flash and cuDNN backends separately (--attention-backends).
Without --kiln-json the workloads named on the command line run with kiln's defaults
(and -p key=value overrides, as `kiln bench -p`).

--device cpu (the default when kiln's JSON says cpu) times the same workloads on the CPU with
a monotonic clock and reports the peak RSS delta, as `kiln bench --device cpu` does.

diffusers is imported only for the component workloads (unet-sd15, unet-sdxl, flux): the op
workloads need torch alone. FLOP formulas are kiln's (pipelines/src/kiln/pipelines/bench.hpp):
attention 4*B*H*Lq*Lk*D (halved when causal), GEMM 2*M*N*K*batch,
conv 2*N*Cout*Hout*Wout*(Cin/groups)*kh*kw; components: no FLOP count.
"""
import argparse
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F

# kiln's workload defaults (pipelines/src/kiln/pipelines/bench.cpp, `kiln bench --list`).
DEFAULTS = {
    "attention": dict(batch=1, heads=12, seq=32760, seq_k=0, head_dim=128, causal=False),
    "gemm": dict(m=4096, n=4096, k=4096, batch=1),
    "conv2d": dict(batch=2, cin=320, cout=320, height=64, width=64, kernel=3, stride=1,
                   padding=-1, groups=1),
    "unet-sd15": dict(batch=2, height=512, width=512, text_seq=77),
    "unet-sdxl": dict(batch=2, height=1024, width=1024, text_seq=77),
    "flux": dict(batch=1, height=1024, width=1024, text_seq=512, guidance=True, layers=19,
                 single_layers=38),
}
DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}
DEVICE = "cuda"  # --device; "cpu" makes this the companion of `kiln bench --device cpu`

# The released configs (diffusers config.json of each repository; unset keys are diffusers'
# defaults), as kiln builds them.
SD15_UNET = dict(block_out_channels=(320, 640, 1280, 1280), cross_attention_dim=768,
                 attention_head_dim=8, layers_per_block=2, norm_num_groups=32, sample_size=64)
SDXL_UNET = dict(
    block_out_channels=(320, 640, 1280), attention_head_dim=(5, 10, 20),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    transformer_layers_per_block=(1, 2, 10), cross_attention_dim=2048,
    use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=256,
    projection_class_embeddings_input_dim=2816, layers_per_block=2, sample_size=128)
FLUX_DEV = dict(patch_size=1, in_channels=64, num_layers=19, num_single_layers=38,
                attention_head_dim=128, num_attention_heads=24, joint_attention_dim=4096,
                pooled_projection_dim=768, axes_dims_rope=(16, 56, 56))


def resolve(workload, overrides):
    if workload not in DEFAULTS:
        sys.exit(f"unknown workload '{workload}' ({', '.join(DEFAULTS)})")
    p = dict(DEFAULTS[workload])
    for k, v in overrides.items():
        if k not in p:
            sys.exit(f"{workload} has no parameter '{k}' ({', '.join(p)})")
        p[k] = bool(v) if isinstance(p[k], bool) else int(v)
    if workload == "attention" and p["seq_k"] == 0:
        p["seq_k"] = p["seq"]
    if workload == "conv2d" and p["padding"] == -1:
        p["padding"] = p["kernel"] // 2
    return p


def rand(*shape, dtype, bound=1.0):
    return (torch.rand(*shape, device=DEVICE, dtype=torch.float32) * 2 - 1).mul_(bound).to(dtype)


# ---------------------------------------------------------------- workloads
# Each builder returns [(variant, step, flops, label)]; step() runs one iteration.

def build_attention(p, dtype, backends):
    from torch.nn.attention import SDPBackend, sdpa_kernel
    names = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION,
             "efficient": SDPBackend.EFFICIENT_ATTENTION, "math": SDPBackend.MATH}
    b, h, lq, lk, d, causal = (p["batch"], p["heads"], p["seq"], p["seq_k"], p["head_dim"],
                               p["causal"])
    q, k, v = rand(b, h, lq, d, dtype=dtype), rand(b, h, lk, d, dtype=dtype), rand(b, h, lk, d, dtype=dtype)
    flops = 4.0 * b * h * lq * lk * d / (2 if causal else 1)
    label = f"attention {b}x{h}x{lq}" + (f"x{lk}" if lk != lq else "") + f"x{d}" + (" causal" if causal else "")
    out = []
    for name in backends:
        backend = names[name]

        def step(backend=backend):
            with sdpa_kernel(backend):
                F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        out.append((f"sdpa-{name}", step, flops, label))
    return out


def build_gemm(p, dtype, _):
    m, n, k, batch = p["m"], p["n"], p["k"], p["batch"]
    sa, sb = ((batch, m, k), (batch, k, n)) if batch > 1 else ((m, k), (k, n))
    a, b = rand(*sa, dtype=dtype), rand(*sb, dtype=dtype, bound=k ** -0.5)
    label = "gemm " + (f"{batch}x" if batch > 1 else "") + f"{m}x{n}x{k}"
    return [("matmul", lambda: torch.matmul(a, b), 2.0 * m * n * k * batch, label)]


def build_conv2d(p, dtype, _):
    n, cin, cout, h, w = p["batch"], p["cin"], p["cout"], p["height"], p["width"]
    k, s, pad, g = p["kernel"], p["stride"], p["padding"], p["groups"]
    x = rand(n, cin, h, w, dtype=dtype)
    wt = rand(cout, cin // g, k, k, dtype=dtype, bound=(cin // g * k * k) ** -0.5)
    bias = rand(cout, dtype=dtype, bound=0.02)
    ho, wo = (h + 2 * pad - k) // s + 1, (w + 2 * pad - k) // s + 1
    flops = 2.0 * n * cout * ho * wo * (cin // g) * k * k
    label = f"conv2d {n}x{cin}x{h}x{w} -> {cout} k{k} s{s}" + (f" g{g}" if g > 1 else "")
    return [("conv2d", lambda: F.conv2d(x, wt, bias, stride=s, padding=pad, groups=g), flops, label)]


def make_on_gpu(cls, config, dtype):
    """Random-init (diffusers' default init) directly on the GPU in `dtype`: Flux's 11.9e9
    parameters would not fit in f32 next to a bf16 copy."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(DEVICE):
            model = cls(**config)
    finally:
        torch.set_default_dtype(previous)
    if any(p.dtype != dtype for p in model.parameters()):
        model = model.to(dtype)
    return model.eval()


def build_unet(p, dtype, config, name):
    from diffusers import UNet2DConditionModel
    unet = make_on_gpu(UNet2DConditionModel, config, dtype)
    b, h, w, s = p["batch"], p["height"], p["width"], p["text_seq"]
    x = rand(b, 4, h // 8, w // 8, dtype=dtype)
    ctx = rand(b, s, config["cross_attention_dim"], dtype=dtype)
    t = torch.full((b,), 981.0, device=DEVICE)
    added = None
    if config.get("addition_embed_type") == "text_time":
        pooled = config["projection_class_embeddings_input_dim"] - 6 * config["addition_time_embed_dim"]
        added = {"text_embeds": rand(b, pooled, dtype=dtype),
                 "time_ids": torch.tensor([[h, w, 0, 0, h, w]] * b, device=DEVICE, dtype=dtype)}
    step = lambda: unet(x, t, ctx, added_cond_kwargs=added, return_dict=False)
    return [("diffusers", step, 0.0, f"{name} {h}x{w} batch {b}")]


def build_flux(p, dtype, _):
    from diffusers import FluxTransformer2DModel
    cfg = dict(FLUX_DEV, guidance_embeds=p["guidance"], num_layers=p["layers"],
               num_single_layers=p["single_layers"])
    flux = make_on_gpu(FluxTransformer2DModel, cfg, dtype)
    b, h, w, s = p["batch"], p["height"] // 16, p["width"] // 16, p["text_seq"]
    x = rand(b, h * w, 64, dtype=dtype)
    ctx = rand(b, s, 4096, dtype=dtype)
    pooled = rand(b, 768, dtype=dtype)
    t = torch.full((b,), 1.0, device=DEVICE, dtype=dtype)
    g = torch.full((b,), 3.5, device=DEVICE, dtype=dtype) if p["guidance"] else None
    img_ids = torch.zeros(h, w, 3, device=DEVICE, dtype=dtype)  # FluxPipeline._prepare_latent_image_ids
    img_ids[..., 1] += torch.arange(h, device=DEVICE)[:, None]
    img_ids[..., 2] += torch.arange(w, device=DEVICE)[None, :]
    img_ids = img_ids.reshape(h * w, 3)
    txt_ids = torch.zeros(s, 3, device=DEVICE, dtype=dtype)
    step = lambda: flux(hidden_states=x, encoder_hidden_states=ctx, pooled_projections=pooled,
                        timestep=t, img_ids=img_ids, txt_ids=txt_ids, guidance=g, return_dict=False)
    label = f"flux {'dev' if p['guidance'] else 'schnell'} {p['height']}x{p['width']}" + (
        f" batch {b}" if b > 1 else "") + (
        f" {p['layers']}+{p['single_layers']} blocks" if (p["layers"], p["single_layers"]) != (19, 38) else "")
    return [("diffusers", step, 0.0, label)]


BUILDERS = {
    "attention": build_attention,
    "gemm": build_gemm,
    "conv2d": build_conv2d,
    "unet-sd15": lambda p, d, _: build_unet(p, d, SD15_UNET, "unet-sd15"),
    "unet-sdxl": lambda p, d, _: build_unet(p, d, SDXL_UNET, "unet-sdxl"),
    "flux": build_flux,
}


# ---------------------------------------------------------------- timing

def time_step(step, warmup, iters):
    """kiln's method: warm-up, synchronize, an event pair around each iteration, read after the
    last one (CUDA); a monotonic clock around each iteration (CPU)."""
    for _ in range(warmup):
        step()
    if DEVICE == "cpu":
        ms = []
        for _ in range(iters):
            t0 = time.perf_counter()
            step()
            ms.append((time.perf_counter() - t0) * 1e3)
        return ms
    torch.cuda.synchronize()
    start = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
    stop = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
    for i in range(iters):
        start[i].record()
        step()
        stop[i].record()
    torch.cuda.synchronize()
    return [s.elapsed_time(e) for s, e in zip(start, stop)]


def run_workload(workload, params, dtype_name, warmup, iters, backends):
    dtype = DTYPES[dtype_name]
    results = []
    if DEVICE == "cpu":  # as kiln: the peak RSS over building and running, minus the RSS before
        rss_before = proc_status_bytes("VmRSS")
        reset_peak_rss()
    try:
        variants = BUILDERS[workload](params, dtype, backends)
    except Exception as e:  # e.g. diffusers missing, out of memory
        return [{"workload": workload, "params": params, "dtype": dtype_name,
                 "error": f"{type(e).__name__}: {e}"}]
    for variant, step, flops, label in variants:
        r = {"workload": workload, "variant": variant, "label": label, "params": params,
             "dtype": dtype_name, "warmup": warmup, "iters": iters}
        try:
            if DEVICE != "cpu":
                torch.cuda.reset_peak_memory_stats()
            with torch.inference_mode():
                ms = time_step(step, warmup, iters)
            med = statistics.median(ms)
            r.update(times_ms=ms, median_ms=med, min_ms=min(ms), mean_ms=statistics.fmean(ms),
                     flops=flops or None, tflops=(flops / (med * 1e-3) / 1e12) if flops else None)
            if DEVICE == "cpu":
                r["peak_rss_delta_bytes"] = max(proc_status_bytes("VmHWM") - rss_before, 0)
            else:
                r.update(peak_allocated_bytes=torch.cuda.max_memory_allocated(),
                         peak_reserved_bytes=torch.cuda.max_memory_reserved())
        except Exception as e:  # e.g. "No available kernel" for a backend and shape
            r["error"] = f"{type(e).__name__}: {e}"
        results.append(r)
    del variants
    if DEVICE != "cpu":
        torch.cuda.empty_cache()
    return results


def proc_status_bytes(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def reset_peak_rss():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def fmt(v, f):
    return "-" if v is None else format(v, f)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("workloads", nargs="*", help=f"{', '.join(DEFAULTS)} or all")
    ap.add_argument("--device", default=None,
                    help="cuda (default), cuda:N or cpu (CPU: perf_counter timing, peak RSS "
                         "delta); with --kiln-json, the device kiln ran on")
    ap.add_argument("--dtype", default=None, choices=list(DTYPES),
                    help="default: bf16 on CUDA, f32 on the CPU (as kiln bench)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("-n", "--iters", type=int, default=10)
    ap.add_argument("-p", "--param", action="append", default=[], help="key=value, as kiln bench -p")
    ap.add_argument("--attention-backends", default="flash,cudnn",
                    help="comma-separated SDPA backends: flash, cudnn, efficient, math")
    ap.add_argument("--tf32", action="store_true",
                    help="allow TF32 for f32 matmul/conv (kiln's f32 never uses it; off by default)")
    ap.add_argument("--kiln-json", help="kiln bench --json output: run its specs, print kiln/PyTorch")
    ap.add_argument("--json", help="write the results to this file")
    args = ap.parse_args()

    kiln = None
    if args.kiln_json:
        with open(args.kiln_json) as f:
            kiln = json.load(f)
    global DEVICE
    DEVICE = args.device or (kiln or {}).get("device", "cuda")
    if DEVICE.startswith("cuda"):
        if not torch.cuda.is_available():
            sys.exit("no CUDA device visible to torch")
        if DEVICE == "cuda":  # set_device needs an index; "cuda" is the current one, as in kiln
            DEVICE = f"cuda:{torch.cuda.current_device()}"
        torch.cuda.set_device(torch.device(DEVICE))
    elif DEVICE != "cpu":
        sys.exit(f"unknown device '{DEVICE}' (cuda, cuda:N, cpu)")
    if args.dtype is None:
        args.dtype = "f32" if DEVICE == "cpu" else "bf16"
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    torch.backends.cudnn.allow_tf32 = args.tf32
    backends = [b for b in args.attention_backends.split(",") if b]
    for b in backends:
        if b not in ("flash", "cudnn", "efficient", "math"):
            sys.exit(f"unknown attention backend '{b}'")

    kiln_results = []
    if kiln:
        kiln_results = [r for r in kiln["results"] if "error" not in r]
        jobs = [(r["workload"], resolve(r["workload"], r["params"]), r["dtype"], r["warmup"],
                 r["iters"]) for r in kiln_results]
    else:
        overrides = {}
        for kv in args.param:
            key, sep, value = kv.partition("=")
            if not sep:
                sys.exit(f"--param expects key=value, got '{kv}'")
            overrides[key] = value in ("true", "1") if value in ("true", "false") else int(value)
        names = [w for n in (args.workloads or ["all"]) for w in (DEFAULTS if n == "all" else [n])]
        jobs = [(w, resolve(w, overrides), args.dtype, args.warmup, args.iters) for w in names]

    import importlib.metadata as md
    try:
        diffusers_version = md.version("diffusers")
    except md.PackageNotFoundError:
        diffusers_version = None
    device_name = "CPU" if DEVICE == "cpu" else torch.cuda.get_device_name()
    print(f"torch {torch.__version__}, diffusers {diffusers_version or '(not installed)'}, "
          f"{device_name} ({DEVICE}), eager, {torch.get_num_threads()} CPU threads")
    print(f"{'workload':44s} {'variant':14s} {'median ms':>10s} {'min ms':>10s} {'TFLOP/s':>8s} "
          f"{'peak RSS+' if DEVICE == 'cpu' else 'peak alloc':>11s} {'peak reserv':>11s}")
    results = []
    for workload, params, dtype_name, warmup, iters in jobs:
        for r in run_workload(workload, params, dtype_name, warmup, iters, backends):
            results.append(r)
            if "error" in r:
                print(f"{workload}: {r.get('variant', '')}: error: {r['error']}", flush=True)
                continue
            gib = lambda b: "-" if b is None else f"{b / 2**30:.2f} GiB"
            alloc = r.get("peak_allocated_bytes", r.get("peak_rss_delta_bytes"))
            print(f"{r['label']:44s} {r['variant']:14s} {r['median_ms']:10.3f} {r['min_ms']:10.3f} "
                  f"{fmt(r['tflops'], '.3g'):>8s} {gib(alloc):>11s} "
                  f"{gib(r.get('peak_reserved_bytes')):>11s}", flush=True)

    if kiln_results:
        print("\nkiln / PyTorch (median; < 1: kiln faster)")
        print(f"{'workload':44s} {'kiln ms':>10s} {'PyTorch':>24s} {'ratio':>7s} {'kiln mem / torch':>17s}")
        for k in kiln_results:
            p = resolve(k["workload"], k["params"])
            for r in results:
                if r["workload"] != k["workload"] or r["params"] != p or r["dtype"] != k["dtype"] \
                        or "error" in r:
                    continue
                key = "peak_allocated_bytes" if "peak_allocated_bytes" in k else "peak_rss_delta_bytes"
                mem_ratio = f"{k[key] / r[key]:.2f}" if k.get(key) and r.get(key) else "-"
                print(f"{k['label']:44s} {k['median_ms']:10.3f} "
                      f"{r['variant'] + ' ' + format(r['median_ms'], '.3f'):>24s} "
                      f"{k['median_ms'] / r['median_ms']:6.2f}x {mem_ratio:>17s}")

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"tool": "bench/torch_cuda_bench.py", "torch": torch.__version__,
                       "diffusers": diffusers_version, "device": DEVICE, "device_name": device_name,
                       "results": results}, f, indent=1)
        print(f"wrote {args.json}")
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
