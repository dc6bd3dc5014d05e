#!/usr/bin/env python3
"""Golden trajectories of diffusers schedulers for kiln's sampler parity tests.

    /tmp/venv/ref/bin/python tests/reference/make_sampler_fixtures.py   # -> tests/data/samplers/

Each case runs a diffusers scheduler the way its pipelines do (initial latents =
torch.randn(generator) * init_noise_sigma, scale_model_input, model, step(generator=same generator))
with a deterministic analytic "model" that kiln's test implements identically:

    model(x_in, t) = tanh(x_in) * c(t) + 0.1 * x_in,   c(t) = float32(0.6 + 0.4 * cos(0.0031 * t))

(c is computed in float64 from the float value of t, then rounded to float32 as torch does when a
float32 tensor is multiplied by a Python float). It is nonlinear in x and depends on t, so a wrong
input scaling, timestep or step order shows up in the result.

Stored per case (in samplers.safetensors, keys "<case>/<what>"): the sigmas (k-diffusion form, one
per step plus the final one), the model timesteps (one per step), the initial noise, the latents
after step `inter` converted to k-diffusion (VE) form x / alpha, and the final latents as the
pipeline gets them. `__metadata__` holds a JSON description of every case.

Not in diffusers and written here from their definitions (cited next to each):
  * dpmpp_3m_sde: k-diffusion sample_dpmpp_3m_sde (eta=1) with torch.randn noise from the same
    generator. diffusers' DPMSolverMultistepScheduler(solver_order=3, sde-dpmsolver++) is not used:
    its D2 coefficient has -0.5 where the exact integral of the SDE gives +0.5 (see docs/samplers.md).
  * sgm_uniform and simple schedules: ComfyUI comfy/samplers.py (normal_scheduler with sgm=True,
    simple_scheduler) over the model's 1000 training sigmas.
"""
import inspect
import json
import math
import os
import sys

import numpy as np
import torch
import diffusers
from diffusers import (DDIMScheduler, DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler,
                       EulerDiscreteScheduler, FlowMatchEulerDiscreteScheduler,
                       FlowMatchHeunDiscreteScheduler, HeunDiscreteScheduler,
                       KDPM2DiscreteScheduler, LCMScheduler, TCDScheduler,
                       UniPCMultistepScheduler)
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "data", "samplers")
SHAPE = (1, 4, 8, 8)

# Scheduler configs as the real model folders have them (trimmed to the keys that matter).
CONFIGS = {
    # runwayml/stable-diffusion-v1-5 scheduler/scheduler_config.json (PNDM there; the keys are shared)
    "sd15": dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                 beta_schedule="scaled_linear", prediction_type="epsilon", steps_offset=1,
                 timestep_spacing="leading", set_alpha_to_one=False, clip_sample=False),
    # stabilityai/stable-diffusion-2-1 (768, v-prediction), with trailing spacing for coverage
    "sd2v": dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                 beta_schedule="scaled_linear", prediction_type="v_prediction", steps_offset=1,
                 timestep_spacing="trailing", set_alpha_to_one=False, clip_sample=False),
    # a linear-beta eps model with linspace spacing (DDPM-style configs)
    "linear": dict(num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02,
                   beta_schedule="linear", prediction_type="epsilon", steps_offset=0,
                   timestep_spacing="linspace", set_alpha_to_one=True, clip_sample=False),
    # stabilityai/stable-diffusion-xl-base-1.0 (EulerDiscreteScheduler)
    "sdxl": dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                 beta_schedule="scaled_linear", prediction_type="epsilon", steps_offset=1,
                 timestep_spacing="leading", interpolation_type="linear", set_alpha_to_one=False,
                 clip_sample=False),
    # sd15 as EulerDiscreteScheduler saves it: no clip_sample key, so DDIMScheduler.from_config
    # takes its own default clip_sample=True (range 1.0) and Heun/LCM their default False.
    "sd15_noclip": dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                        beta_schedule="scaled_linear", prediction_type="epsilon", steps_offset=1,
                        timestep_spacing="leading", set_alpha_to_one=False),
    # sd2v likewise (v-prediction: DDIM's pred_epsilon is taken before the clamp)
    "sd2v_noclip": dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                        beta_schedule="scaled_linear", prediction_type="v_prediction",
                        steps_offset=1, timestep_spacing="trailing", set_alpha_to_one=False),
    # an explicit clip_sample=True with a narrower range (clip_sample is read by DDIM, Heun, LCM;
    # TCDScheduler accepts it but never clips)
    "sd15_clip08": dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                        beta_schedule="scaled_linear", prediction_type="epsilon", steps_offset=1,
                        timestep_spacing="leading", set_alpha_to_one=False, clip_sample=True,
                        clip_sample_range=0.8),
    # stabilityai/stable-diffusion-3.5-medium (FlowMatchEulerDiscreteScheduler, shift 3.0)
    "sd3": dict(num_train_timesteps=1000, shift=3.0),
    # black-forest-labs/FLUX.1-dev (dynamic shifting)
    "flux": dict(num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True, base_shift=0.5,
                 max_shift=1.15, base_image_seq_len=256, max_image_seq_len=4096),
}

SAMPLER_CLASS = {
    "euler": EulerDiscreteScheduler,
    "euler_a": EulerAncestralDiscreteScheduler,
    "heun": HeunDiscreteScheduler,
    "dpm2": KDPM2DiscreteScheduler,
    "ddim": DDIMScheduler,
    "dpmpp_2m": DPMSolverMultistepScheduler,
    "dpmpp_2m_sde": DPMSolverMultistepScheduler,
    "dpmpp_3m_sde": DPMSolverMultistepScheduler,  # only for its sigmas; the update is k-diffusion's
    "lcm": LCMScheduler,
    "flow_euler": FlowMatchEulerDiscreteScheduler,
    "flow_heun": FlowMatchHeunDiscreteScheduler,
    "unipc": UniPCMultistepScheduler,
    "flow_unipc": UniPCMultistepScheduler,
    "tcd": TCDScheduler,
}
SAMPLER_EXTRA = {
    "dpmpp_2m": dict(algorithm_type="dpmsolver++", solver_order=2),
    "dpmpp_2m_sde": dict(algorithm_type="sde-dpmsolver++", solver_order=2),
    "dpmpp_3m_sde": dict(algorithm_type="sde-dpmsolver++", solver_order=3),
    # UniPCMultistepScheduler's flow mode: flow sigmas shifted by flow_shift (the model config's shift).
    "flow_unipc": dict(use_flow_sigmas=True, prediction_type="flow_prediction"),
}
SCHEDULE_FLAG = {"karras": "use_karras_sigmas", "exponential": "use_exponential_sigmas",
                 "beta": "use_beta_sigmas"}
# Samplers whose diffusers scheduler works on the VP sample x_vp = x / sqrt(sigma^2 + 1).
VP_SAMPLERS = {"ddim", "dpmpp_2m", "dpmpp_2m_sde", "dpmpp_3m_sde", "lcm", "unipc", "tcd"}
# diffusers runs these with two model calls per step (the last step one).
SECOND_ORDER = {"heun", "dpm2", "flow_heun"}


def c_of_t(t):
    return float(np.float32(0.6 + 0.4 * math.cos(0.0031 * float(t))))


def model(x_in, t):
    return torch.tanh(x_in) * c_of_t(t) + 0.1 * x_in


def make_scheduler(sampler, config, schedule, options=None):
    cls = SAMPLER_CLASS[sampler]
    kw = {k: v for k, v in CONFIGS[config].items()}
    kw.update(SAMPLER_EXTRA.get(sampler, {}))
    if sampler == "flow_unipc":
        kw["flow_shift"] = kw.get("shift", 1.0)
    if schedule in SCHEDULE_FLAG:
        kw[SCHEDULE_FLAG[schedule]] = True
    kw.update(options or {})
    accepted = set(inspect.signature(cls.__init__).parameters)
    return cls(**{k: v for k, v in kw.items() if k in accepted})


def vp_sigmas_at(sched, timesteps):
    ac = sched.alphas_cumprod
    return [float((((1 - ac[int(t)]) / ac[int(t)]) ** 0.5)) for t in timesteps]


def flux_mu(cfg, image_seq_len):
    # Ref: diffusers pipelines/flux/pipeline_flux.py, calculate_shift
    m = (cfg["max_shift"] - cfg["base_shift"]) / (cfg["max_image_seq_len"] - cfg["base_image_seq_len"])
    b = cfg["base_shift"] - m * cfg["base_image_seq_len"]
    return image_seq_len * m + b


def kdiff_sigmas_and_timesteps(sampler, sched, steps):
    """The schedule in k-diffusion form: one sigma per step + the final one, one timestep per step."""
    if sampler in ("ddim", "lcm", "tcd"):
        ts = [int(t) for t in sched.timesteps]
        sig = vp_sigmas_at(sched, ts)
        if sampler == "tcd":  # TCDScheduler.step: the last step goes to prev_timestep = 0
            sig += vp_sigmas_at(sched, [0])
        elif sampler == "ddim":
            prev = ts[-1] - sched.config.num_train_timesteps // steps
            ac = sched.alphas_cumprod[prev] if prev >= 0 else sched.final_alpha_cumprod
            sig.append(float(((1 - ac) / ac) ** 0.5))
        else:
            sig.append(0.0)
        return sig, [float(t) for t in ts]
    if sampler in SECOND_ORDER:
        s = sched.sigmas.tolist()
        t = sched.timesteps.tolist()
        if sampler == "dpm2":  # sigmas: s0, s1, s1, ..., s_{n-1}, s_{n-1}, 0, 0; t: t0, ti1, t1, ...
            return [s[0]] + s[1::2][: steps], [t[0]] + t[2::2]
        # heun / flow_heun: s0, s1, s1, ..., s_{n-1}, s_{n-1}, 0
        return [s[0]] + s[1::2], [t[0]] + t[1::2]
    return sched.sigmas.tolist(), [float(t) for t in sched.timesteps]


def run_diffusers(sampler, config, schedule, steps, seed, inter, extra):
    sched = make_scheduler(sampler, config, schedule, extra.get("options"))
    kw = {}
    if "mu" in extra:
        kw["mu"] = extra["mu"]
    sched.set_timesteps(steps, **kw)
    sigmas, timesteps = kdiff_sigmas_and_timesteps(sampler, sched, steps)
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(SHAPE, generator=g)
    x = noise * getattr(sched, "init_noise_sigma", 1.0)
    inter_x = None
    step_kw = {"generator": g} if sampler in ("euler_a", "dpmpp_2m_sde", "lcm", "ddim", "euler", "flow_euler") else {}
    if sampler == "ddim":
        step_kw["eta"] = extra.get("eta", 0.0)
    if sampler == "tcd":  # TCDScheduler.step(eta=0.3) by default (the paper's gamma)
        step_kw = {"generator": g, "eta": extra.get("gamma", 0.3)}
    # Loop index after which the latents sit at sigmas[inter + 1].
    inter_iter = 2 * inter + 1 if sampler in SECOND_ORDER else inter
    for i, t in enumerate(sched.timesteps):
        x_in = sched.scale_model_input(x, t) if hasattr(sched, "scale_model_input") else x
        out = model(x_in, t)
        x = sched.step(out, t, x, **step_kw).prev_sample
        if i == inter_iter:
            inter_x = x.clone()
    if sampler in VP_SAMPLERS:  # to k-diffusion (VE) form: x / alpha
        s = sigmas[inter + 1]
        inter_x = (inter_x.double() * math.sqrt(s * s + 1)).float()
    return sigmas, timesteps, noise, inter_x, x


def run_dpmpp_3m_sde(config, schedule, steps, seed, inter):
    """k-diffusion sample_dpmpp_3m_sde (eta=1, s_noise=1) in VE form, over the sigmas diffusers'
    DPMSolverMultistepScheduler gives (so the model's timestep is the table's)."""
    sched = make_scheduler("dpmpp_3m_sde", config, schedule)
    sched.set_timesteps(steps)
    sigmas = sched.sigmas.tolist()
    timesteps = [float(t) for t in sched.timesteps]
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(SHAPE, generator=g)
    x = noise * math.sqrt(sigmas[0] ** 2 + 1)  # diffusers' VP init x_vp = noise, in VE form
    x = x.float()
    d1 = d2 = None
    h1 = h2 = None
    inter_x = None
    for i in range(steps):
        s = torch.tensor(sigmas[i])
        s_next = torch.tensor(sigmas[i + 1])
        x_in = x / ((s ** 2 + 1) ** 0.5)
        eps = model(x_in, timesteps[i])
        den = x - s * eps
        if sigmas[i + 1] == 0:
            x = den
        else:
            t, tn = -s.log(), -s_next.log()
            h = tn - t
            h_eta = h * 2.0
            x = torch.exp(-h_eta) * x + (-h_eta).expm1().neg() * den
            if h2 is not None:
                r0, r1 = h1 / h, h2 / h
                d1_0 = (den - d1) / r0
                d1_1 = (d1 - d2) / r1
                dd1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)
                dd2 = (d1_0 - d1_1) / (r0 + r1)
                phi_2 = h_eta.neg().expm1() / h_eta + 1
                phi_3 = phi_2 / h_eta - 0.5
                x = x + phi_2 * dd1 - phi_3 * dd2
            elif h1 is not None:
                r = h1 / h
                dd = (den - d1) / r
                phi_2 = h_eta.neg().expm1() / h_eta + 1
                x = x + phi_2 * dd
            n = torch.randn(SHAPE, generator=g)
            x = x + n * s_next * (-2 * h).expm1().neg().sqrt()
            h1, h2 = h, h1
        d1, d2 = den, d1
        if i == inter:
            inter_x = x.clone()
    return sigmas, timesteps, noise, inter_x, x


def training_sigmas(config):
    sched = make_scheduler("euler", config, "default")
    return (((1 - sched.alphas_cumprod) / sched.alphas_cumprod) ** 0.5).float()  # ascending in t


def comfy_sigma(log_sigmas, t):
    # Ref: ComfyUI comfy/model_sampling.py ModelSamplingDiscrete.sigma (log-linear interpolation)
    t = torch.clamp(t.float(), min=0, max=len(log_sigmas) - 1)
    low = t.floor().long()
    high = t.ceil().long()
    w = t.frac()
    return ((1 - w) * log_sigmas[low] + w * log_sigmas[high]).exp()


def comfy_schedule(kind, config, steps):
    sig = training_sigmas(config)
    if kind == "simple":
        # Ref: ComfyUI comfy/samplers.py simple_scheduler
        ss = len(sig) / steps
        out = [float(sig[-(1 + int(x * ss))]) for x in range(steps)]
    else:
        # Ref: ComfyUI comfy/samplers.py normal_scheduler(sgm=True): timesteps of sigma_max and
        # sigma_min (999 and 0), steps + 1 points, last dropped.
        ts = torch.linspace(len(sig) - 1, 0, steps + 1)[:-1]
        out = [float(comfy_sigma(sig.log(), t)) for t in ts]
    return out + [0.0]


CASES = []


def case(name, sampler, config, schedule, steps, seed, inter=None, **extra):
    CASES.append(dict(name=name, sampler=sampler, config=config, schedule=schedule, steps=steps,
                      seed=seed, inter=max(0, steps // 2 - 1) if inter is None else inter, **extra))


def build_cases():
    for steps in (4, 7):
        for s in ("euler", "euler_a", "heun", "dpm2", "ddim", "dpmpp_2m", "dpmpp_2m_sde", "lcm"):
            case(f"sd15_{s}_{steps}", s, "sd15", "default", steps, 1000 + steps)
    for s in ("euler", "heun", "dpmpp_2m", "ddim", "euler_a"):
        case(f"sd2v_{s}_10", s, "sd2v", "default", 10, 7)
    for s in ("euler", "dpm2", "dpmpp_2m"):
        case(f"linear_{s}_5", s, "linear", "default", 5, 11)
    # eta > 0 with leading spacing: DDIM's prev_timestep = t - T // n is then the next listed one.
    case("sd15_ddim_eta1_5", "ddim", "sd15", "default", 5, 12, eta=1.0)
    for sched in ("karras", "exponential", "beta"):
        for s in ("euler", "heun", "dpm2", "dpmpp_2m", "dpmpp_2m_sde"):
            case(f"sdxl_{sched}_{s}_6", s, "sdxl", sched, 6, 21)
    case("sdxl_karras_dpmpp_3m_sde_8", "dpmpp_3m_sde", "sdxl", "karras", 8, 31)
    case("sd15_dpmpp_3m_sde_5", "dpmpp_3m_sde", "sd15", "default", 5, 32)
    for steps in (4, 7):
        for s in ("flow_euler", "flow_heun"):
            case(f"sd3_{s}_{steps}", s, "sd3", "default", steps, 40 + steps)
    mu = flux_mu(CONFIGS["flux"], 4096 // 4)  # a 512x512 Flux image: (64/2)^2 = 1024 tokens
    for steps in (4, 9):
        case(f"flux_flow_euler_{steps}", "flow_euler", "flux", "default", steps, 50 + steps,
             mu=mu, image_seq_len=1024)
    # UniPC (bh2, order 2, predict_x0, lower_order_final, UniC) and its options.
    for steps in (1, 4, 7):
        case(f"sd15_unipc_{steps}", "unipc", "sd15", "default", steps, 60 + steps)
    case("sd2v_unipc_10", "unipc", "sd2v", "default", 10, 71)
    case("linear_unipc_5", "unipc", "linear", "default", 5, 72)
    for sched in ("karras", "exponential", "beta"):
        case(f"sdxl_{sched}_unipc_6", "unipc", "sdxl", sched, 6, 73)
    # bh1's last step into sigma 0 is NaN in diffusers (alpha_t * B_h * pred_res = 1 * -inf * 0), so
    # the case checks the latents before it (every bh1 step but the final x = x0 one).
    case("sd15_unipc_bh1_6", "unipc", "sd15", "default", 6, 74, inter=4, options=dict(solver_type="bh1"))
    case("sd15_unipc_order3_8", "unipc", "sd15", "default", 8, 75, options=dict(solver_order=3))
    case("sd15_unipc_nocorr_6", "unipc", "sd15", "default", 6, 76,
         options=dict(disable_corrector=[0, 2]))
    for steps in (4, 7):
        case(f"sd3_flow_unipc_{steps}", "flow_unipc", "sd3", "default", steps, 80 + steps)
    case("flux_flow_unipc_6", "flow_unipc", "flux", "default", 6, 86, mu=mu, image_seq_len=1024)
    # TCD (gamma = diffusers' step(eta=...), 0.3 by default; noise on every step but the last).
    for steps in (1, 4, 7):
        case(f"sd15_tcd_{steps}", "tcd", "sd15", "default", steps, 90 + steps)
    case("sd2v_tcd_6", "tcd", "sd2v", "default", 6, 96)
    case("sdxl_tcd_8", "tcd", "sdxl", "default", 8, 97)
    case("linear_tcd_5", "tcd", "linear", "default", 5, 98)
    case("sd15_tcd_g0_4", "tcd", "sd15", "default", 4, 99, gamma=0.0)
    case("sd15_tcd_g07_5", "tcd", "sd15", "default", 5, 100, gamma=0.7)
    # clip_sample: a missing key (DDIM clips to [-1, 1]; Heun and LCM do not), an explicit true
    # with range 0.8 (all three clip; TCD ignores it); sd15_* above are the explicit false.
    for s in ("ddim", "heun", "lcm"):
        case(f"sd15_noclip_{s}_6", s, "sd15_noclip", "default", 6, 110)
    case("sd15_noclip_ddim_eta1_5", "ddim", "sd15_noclip", "default", 5, 111, eta=1.0)
    case("sd2v_noclip_ddim_8", "ddim", "sd2v_noclip", "default", 8, 112)
    for s in ("ddim", "heun", "lcm", "tcd"):
        case(f"sd15_clip08_{s}_5", s, "sd15_clip08", "default", 5, 113)


def main():
    os.makedirs(OUT, exist_ok=True)
    build_cases()
    tensors, meta = {}, {}
    for c in CASES:
        if c["sampler"] == "dpmpp_3m_sde":
            sig, ts, noise, inter_x, final = run_dpmpp_3m_sde(c["config"], c["schedule"], c["steps"],
                                                              c["seed"], c["inter"])
        else:
            sig, ts, noise, inter_x, final = run_diffusers(c["sampler"], c["config"], c["schedule"],
                                                           c["steps"], c["seed"], c["inter"], c)
        n = c["name"]
        tensors[f"{n}/sigmas"] = torch.tensor(sig, dtype=torch.float32)
        tensors[f"{n}/timesteps"] = torch.tensor(ts, dtype=torch.float32)
        tensors[f"{n}/noise"] = noise.contiguous()
        tensors[f"{n}/inter"] = inter_x.float().contiguous()
        tensors[f"{n}/final"] = final.float().contiguous()
        meta[n] = {k: v for k, v in c.items() if k != "name"}
        assert torch.isfinite(inter_x).all(), n
        if not torch.isfinite(final).all():
            meta[n]["final_nonfinite"] = True
    # ComfyUI-defined schedules: sigmas only (no diffusers scheduler runs them).
    for kind in ("sgm_uniform", "simple"):
        for steps in (4, 7, 10):
            n = f"sd15_{kind}_{steps}"
            tensors[f"{n}/sigmas"] = torch.tensor(comfy_schedule(kind, "sd15", steps), dtype=torch.float32)
            meta[n] = dict(sampler="", config="sd15", schedule=kind, steps=steps)
    save_file(tensors, os.path.join(OUT, "samplers.safetensors"),
              metadata={"cases": json.dumps(meta, sort_keys=True), "torch_version": torch.__version__,
                        "diffusers_version": diffusers.__version__})
    # The scheduler configs as they appear in model folders, for kiln's ScheduleConfig reader.
    for name, cfg in CONFIGS.items():
        cls = "FlowMatchEulerDiscreteScheduler" if name in ("sd3", "flux") else "EulerDiscreteScheduler"
        d = os.path.join(OUT, "configs", name)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "scheduler_config.json"), "w") as f:
            json.dump({"_class_name": cls, "_diffusers_version": diffusers.__version__, **cfg}, f,
                      indent=2, sort_keys=True)
    print(f"{len(CASES)} cases -> {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
