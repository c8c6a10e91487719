"""Benchmark: what a kernel launch costs, with and without the launch plans of kernels/_launch.py.

    python -m benchmarks.launch               # bunny (icosphere level 4 without ../shared)
    python -m benchmarks.launch --repeat 30

Two tables, each case run with the plans on and off interleaved (round-robin, medians), so the
ratios come from the same conditions:

1. One launch of the hard rasterizer's ``resolve`` kernel (7 arrays, 6 scalars) over an empty
   range: nothing but the launch (Taichi's Python per argument, then its C++ launch).
2. Forward + backward steps: hard raster + interpolate at 64², 128² and 512², soft_rasterize at
   128² (sigma = gamma = 1e-4), as a fitting loop runs them.
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see benchmarks/run.py

import torch  # noqa: E402

import taichirast as tr  # noqa: E402
from benchmarks.run import SHARED, scene  # noqa: E402
from taichirast.kernels import _launch  # noqa: E402


def _both(fn, repeat, inner=1):
    """``(ms with plans, ms without)``: medians of ``repeat`` interleaved rounds of ``inner`` calls."""
    times = {True: [], False: []}
    for on in (True, False):
        _launch.ENABLED = on
        fn()
    try:
        for _ in range(repeat):
            for on in (True, False):
                _launch.ENABLED = on
                t0 = time.perf_counter()
                for _ in range(inner):
                    fn()
                times[on].append((time.perf_counter() - t0) * 1000.0 / inner)
    finally:
        _launch.ENABLED = True
    return tuple(sorted(times[on])[len(times[on]) // 2] for on in (True, False))


def empty_launch(repeat):
    """ms per empty launch of ``resolve``, with and without plans."""
    import numpy as np
    import taichi as ti

    from taichirast.kernels import raster

    tr.ensure_init()
    k = raster.build(ti.f32)["resolve"]
    sv, faces = np.zeros((8, 3), np.float32), np.zeros((4, 3), np.int32)
    key, fid, face_id = np.zeros(16, np.int64), np.zeros(16, np.int32), np.zeros(16, np.int32)
    bary, depth = np.zeros((16, 3), np.float32), np.zeros(16, np.float32)
    return _both(lambda: k(sv, faces, key, fid, face_id, bary, depth, 0, 0, 4, 4, 0.1, 1), repeat, inner=200)


def steps(name, repeat):
    """``{case: (ms with plans, ms without)}`` for the fwd+bwd steps of the module docstring."""
    out = {}
    for size in (64, 128, 512):
        sv, f, cols, _ = scene(name, size, "cpu")
        w = torch.rand(1, size, size, 4, generator=torch.Generator().manual_seed(0))

        def hard(sv=sv, f=f, cols=cols, size=size, w=w):
            s, c = sv.detach().requires_grad_(), cols.detach().requires_grad_()
            fr = tr.rasterize(s, f, (size, size))
            (tr.interpolate(c, f, fr) * w[..., :3]).sum().backward()

        out[f"hard raster + interpolate, {size}²"] = _both(hard, repeat)
        if size == 128:
            def soft(sv=sv, f=f, cols=cols, size=size, w=w):
                s, c = sv.detach().requires_grad_(), cols.detach().requires_grad_()
                (tr.soft_rasterize(s, f, c, (size, size), sigma=1e-4, gamma=1e-4, near=0.1, far=10.0)
                 * w).sum().backward()

            out[f"soft_rasterize, {size}²"] = _both(soft, repeat)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args(argv)
    name = "bunny" if os.path.exists(os.path.join(SHARED, "bunny.obj")) else "icosphere4"
    on, off = empty_launch(args.repeat)
    print("| empty launch, 7 arrays + 6 scalars | with plans | Taichi's launch | ratio |")
    print("|---|---:|---:|---:|")
    print(f"| `resolve`, nothing to do | {on * 1000:.0f} us | {off * 1000:.0f} us | {on / off:.2f} |", flush=True)
    print()
    print(f"| {name}, fwd+bwd | with plans | Taichi's launch | ratio |")
    print("|---|---:|---:|---:|")
    for case, (on, off) in steps(name, args.repeat).items():
        print(f"| {case} | {on:.2f} ms | {off:.2f} ms | {on / off:.2f} |", flush=True)


if __name__ == "__main__":
    main()
