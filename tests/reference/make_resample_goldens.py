"""Golden outputs of torch.nn.functional.interpolate and pad for tests/ops/test_resample.cpp.

Run: /tmp/venv/ref/bin/python tests/reference/make_resample_goldens.py
Writes tests/data/ops/resample_goldens.json: a list of cases, each with the op, its arguments,
the input (shape + values) and torch's output (shape + values). Inputs are k/8 - 2 style values
(exact in f32) so the goldens depend only on torch's index and weight arithmetic.
"""
import json
import pathlib

import torch
import torch.nn.functional as F


def values(shape, seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(-64, 64, shape, generator=g).float() / 8.0)


def case(op, x, out, **args):
    return {"op": op, **args, "x_shape": list(x.shape), "x": x.flatten().tolist(),
            "out_shape": list(out.shape), "out": out.flatten().tolist()}


def main():
    cases = []
    seed = 0
    # interpolate: odd/even up- and down-scales, including sizes where in/out is not exact in f32
    # (the float scale of torch's nearest_idx then decides) and the 2x shortcut.
    for in_hw, out_hw in [((5, 7), (3, 11)), ((4, 6), (8, 12)), ((7, 5), (7, 5)), ((6, 9), (4, 3)),
                          ((3, 3), (10, 7)), ((1, 4), (5, 1)), ((10, 15), (3, 7)), ((5, 3), (13, 9))]:
        seed += 1
        x = values((1, 2, *in_hw), seed)
        for mode in ["nearest", "nearest-exact"]:
            cases.append(case("interpolate", x, F.interpolate(x, size=out_hw, mode=mode),
                              mode=mode, size=list(out_hw), align_corners=False))
        for ac in [False, True]:
            y = F.interpolate(x, size=out_hw, mode="bilinear", align_corners=ac)
            cases.append(case("interpolate", x, y, mode="bilinear", size=list(out_hw),
                              align_corners=ac))
    for in_s, out_s in [((7,), (3,)), ((5,), (12,)), ((3,), (7,))]:
        seed += 1
        x = values((2, 1, *in_s), seed)
        for mode in ["nearest", "nearest-exact"]:
            cases.append(case("interpolate", x, F.interpolate(x, size=out_s, mode=mode),
                              mode=mode, size=list(out_s), align_corners=False))
    for in_s, out_s in [((3, 4, 5), (5, 2, 9)), ((2, 3, 3), (4, 6, 6))]:
        seed += 1
        x = values((1, 2, *in_s), seed)
        for mode in ["nearest", "nearest-exact"]:
            cases.append(case("interpolate", x, F.interpolate(x, size=out_s, mode=mode),
                              mode=mode, size=list(out_s), align_corners=False))
    # pad: every mode, mixed-sign pads, 1-3 padded dims.
    pad_cases = [
        ("constant", (2, 3, 5), (2, 1)), ("constant", (2, 3, 5), (-2, 3, 1, -1)),
        ("constant", (2, 3, 4, 5), (1, 1, 0, 2, 1, 0)), ("constant", (2, 3, 4), (-4, 0)),
        ("reflect", (2, 3, 5), (4, 4)), ("reflect", (2, 3, 5), (-2, 1)),
        ("reflect", (2, 3, 5), (2, -4)), ("reflect", (1, 2, 4, 5), (3, 1, 2, 3)),
        ("reflect", (1, 2, 3, 4, 5), (1, 2, 2, 1, 2, 0)), ("reflect", (3, 5), (2, 3)),
        ("replicate", (2, 3, 5), (6, 0)), ("replicate", (2, 3, 5), (-1, 5)),
        ("replicate", (1, 2, 4, 5), (3, 1, 2, 3)), ("replicate", (1, 2, 3, 2, 4), (0, 2, 1, 1, 2, 2)),
        ("circular", (2, 3, 5), (4, 4)), ("circular", (2, 3, 5), (5, 0)),
        ("circular", (2, 3, 5), (-2, 1)), ("circular", (2, 3, 5), (-1, 3)),
        ("circular", (1, 2, 4, 5), (3, 1, 2, 3)), ("circular", (1, 2, 3, 2, 4), (1, 2, 1, 0, 2, 1)),
    ]
    for mode, shape, pads in pad_cases:
        seed += 1
        x = values(shape, seed)
        kw = {"value": 1.5} if mode == "constant" else {}
        y = F.pad(x, pads, mode=mode, **kw)
        cases.append(case("pad", x, y, mode=mode, pads=list(pads), value=kw.get("value", 0.0)))
    out = pathlib.Path(__file__).resolve().parents[1] / "data" / "ops" / "resample_goldens.json"
    out.write_text(json.dumps({"torch": torch.__version__, "cases": cases}, separators=(",", ":")))
    print(f"wrote {len(cases)} cases to {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
