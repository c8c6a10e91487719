"""Benchmark: silhouette (visibility) gradients -- hard + antialias, splat, DIB-R and SoftRas.

    python -m benchmarks.visibility              # bunny (or icosphere level 4 without ../shared) at 512²
    python -m benchmarks.visibility --size 256 --repeat 5

Two tables, each measured in one run with the cases interleaved (round-robin, so the machine's
drift hits every case alike; medians over ``--repeat`` rounds after a compiling warm-up):

1. Primitives, forward + backward of a random-weighted sum, gradients to the screen vertices and
   colours: hard rasterize + interpolate of RGBA (alpha = coverage) alone, the same followed by
   :func:`taichirast.antialias` (edge topology built once, as a fitting loop does), and
   rasterize_layers (K = 2) + interpolate + :func:`taichirast.splat`. The ratio against hard alone
   is the price of the silhouette gradients.
2. One shape-fitting step as in demos/fit_silhouette.py: ``render`` of the alpha channel in each
   mode with silhouette gradients, MSE against a target silhouette, ``backward()`` to the world
   vertices.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see benchmarks/run.py

import torch  # noqa: E402

import taichirast as tr  # noqa: E402
from benchmarks.run import SHARED, default_device, scene  # noqa: E402
from taichirast.stages.blenders import splat_positions  # noqa: E402


def _sync():
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def interleaved(cases, repeat):
    """``{label: median ms}``, each round running every case once (after one compiling warm-up).
    On CUDA each case is timed to the end of its GPU work (synchronised before and after)."""
    for fn in cases.values():
        fn()
    times = {k: [] for k in cases}
    for _ in range(repeat):
        for label, fn in cases.items():
            _sync()
            t0 = time.perf_counter()
            fn()
            _sync()
            times[label].append((time.perf_counter() - t0) * 1000.0)
    return {k: statistics.median(v) for k, v in times.items()}


def primitive_cases(sv, f, cols, size):
    g = torch.Generator().manual_seed(0)
    w = torch.rand(1, size, size, 4, generator=g).to(sv.device)
    topo = tr.edge_topology(f)
    rgba_cols = torch.cat([cols, torch.ones_like(cols[:, :1])], -1)

    def hard(antialias):
        def step():
            s = sv.detach().requires_grad_()
            c = rgba_cols.detach().requires_grad_()
            fr = tr.rasterize(s, f, (size, size))
            img = tr.interpolate(c, f, fr)
            if antialias:
                img = tr.antialias(img, fr, s, f, topo)
            (img * w).sum().backward()
        return step

    def splat():
        s = sv.detach().requires_grad_()
        c = rgba_cols.detach().requires_grad_()
        fr = tr.rasterize_layers(s, f, (size, size), num_layers=2)
        B, K = fr.face_id.shape[:2]
        flat = tr.Fragments(fr.face_id.reshape(B, K * size, size), fr.bary.detach().reshape(B, K * size, size, 3),
                            None)
        rgba = tr.interpolate(c, f, flat).reshape(B, K, size, size, 4)
        out = tr.splat(rgba, splat_positions(s, f, fr, True), fr)
        (out * w).sum().backward()

    return {"hard raster+interp": hard(False), "hard raster+interp + antialias": hard(True),
            "rasterize_layers(K=2)+interp + splat": splat}


def step_cases(verts, f, cam):
    with torch.no_grad():
        target = (tr.render(verts * 1.05, f, cam, mode="hard")[..., 3] > 0).float()
    modes = {"hard + antialias": dict(mode="hard", antialias=True), "splat (K=2)": dict(mode="splat"),
             "DIB-R": dict(mode="dibr"), "soft (sigma 1e-4)": dict(mode="soft", sigma=1e-4)}

    def make(kw):
        def step():
            v = verts.detach().requires_grad_()
            alpha = tr.render(v, f, cam, **kw)[..., 3]
            ((alpha - target) ** 2).mean().backward()
        return step

    return {k: make(kw) for k, kw in modes.items()}


def main(argv=None):
    p = argparse.ArgumentParser(description="silhouette-gradient benchmark")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--repeat", type=int, default=10)
    args = p.parse_args(argv)
    torch.set_num_threads(os.cpu_count() or 1)
    name = "bunny" if os.path.exists(os.path.join(SHARED, "bunny.obj")) else "icosphere4"
    device = default_device()
    sv, f, cols, cam = scene(name, args.size, device)
    info = tr.info()
    print(f"taichirast {info['taichirast']} | taichi {info['taichi']} | arch {info['arch']} | "
          f"{info['cpu_count']} CPU cores | {name}, {f.shape[0]} faces, {args.size}²", flush=True)
    prim = interleaved(primitive_cases(sv, f, cols, args.size), args.repeat)
    base = prim["hard raster+interp"]
    print()
    print(f"| {name} {args.size}², fwd+bwd | ms | × hard |")
    print("|---|---:|---:|")
    for k, ms in prim.items():
        print(f"| {k} | {ms:.1f} | {ms / base:.2f} |")
    if name == "bunny":
        from taichirast import io as trio

        v, f = trio.load_mesh(os.path.join(SHARED, "bunny.obj"))
        verts, f = torch.from_numpy(trio.normalize_mesh(v)), torch.from_numpy(f)
    else:
        from taichirast import meshes

        v, ff = meshes.icosphere(4)
        verts, f = torch.from_numpy(v), torch.from_numpy(ff)
    verts, f = verts.to(device), f.to(device)
    steps = interleaved(step_cases(verts, f, cam), args.repeat)
    ref = steps["hard + antialias"]
    print()
    print(f"| one silhouette-fitting step, {name} {args.size}² (render alpha, MSE, backward to vertices) | ms | "
          f"× hard + antialias |")
    print("|---|---:|---:|")
    for k, ms in steps.items():
        print(f"| {k} | {ms:.1f} | {ms / ref:.2f} |")
    return prim, steps


if __name__ == "__main__":
    main()
