"""A batch of different meshes in one call against the same meshes rendered one by one.

    python -m benchmarks.packed                 # 16 meshes, 128², 10 rounds
    python -m benchmarks.packed --meshes 64 --size 64
    python -m benchmarks.packed --big 6       # mesh 0 an 81,920-face icosphere: very unequal sizes

The batch is N procedural meshes of different sizes (icospheres, tori, cylinders, cones, cubes;
80 to 1,280 faces), each seen by its own camera. Each round times, back to back, ``tr.render`` of
the ``tr.Meshes`` batch (one launch per kernel for the whole batch) and a Python loop of N single
renders (what a batch cost before the kernels took face ranges), in hard (lit) and soft mode,
forward+backward (gradients to every mesh's vertices and colours); medians over the rounds, and
the loop / batch ratio. The first row is a reference in the same run: one mesh of the batch seen
by N cameras (a shared topology), the path the batch should approach.
"""
from __future__ import annotations

import argparse

import torch

import taichirast as tr
from benchmarks.run import default_device
from benchmarks.visibility import interleaved
from taichirast import meshes

LIGHTS = dict(lights=tr.Lights(ambient=[0.3, 0.3, 0.3], directions=[[0.3, -0.6, -1.0]], colors=[[0.7, 0.7, 0.7]]))


def batch(n, device, size, big=None):
    """N different meshes (float32 tensors on ``device``), their colours and N cameras; with ``big``,
    mesh 0 is ``icosphere(big)``."""
    makers = [lambda i: meshes.icosphere(1 + i % 3), lambda i: meshes.torus(R=0.7, r=0.2 + 0.02 * (i % 4),
                                                                              n_major=16 + 4 * (i % 5), n_minor=8),
              lambda i: meshes.cylinder(n=12 + 4 * (i % 6)), lambda i: meshes.cone(n=10 + 6 * (i % 5)),
              lambda i: meshes.cube(size=1.0 + 0.1 * (i % 3))]
    vs, fs = [], []
    for i in range(n):
        v, f = meshes.icosphere(big) if (big and i == 0) else makers[i % len(makers)](i)
        vs.append(torch.from_numpy(v).to(device))
        fs.append(torch.from_numpy(f).to(device))
    g = torch.Generator().manual_seed(0)
    ang = torch.rand(n, generator=g) * 6.283
    eyes = torch.stack([2.6 * torch.sin(ang), 0.8 * torch.rand(n, generator=g), 2.6 * torch.cos(ang)], -1)
    cams = tr.PerspectiveCamera.look_at(eyes.to(device), fov_y=45.0, image_size=(size, size), near=0.1, far=10.0,
                                        device=device)
    cols = [(v - v.min(0).values) / (v.max(0).values - v.min(0).values + 1e-6) for v in vs]
    return vs, fs, cols, cams


def cases(vs, fs, cols, cams, size):
    n = len(vs)
    w = torch.rand(n, size, size, 4, generator=torch.Generator().manual_seed(1)).to(vs[0].device)
    out = {}
    for mode, kw in (("hard lit", dict(mode="hard", **LIGHTS)), ("soft", dict(mode="soft"))):
        def packed(kw=kw):
            leaves = [v.clone().requires_grad_() for v in vs]
            cl = [c.clone().requires_grad_() for c in cols]
            (tr.render(tr.Meshes(leaves, fs), None, cams, colors=cl, **kw) * w).sum().backward()

        def loop(kw=kw):
            for i in range(n):
                v, c = vs[i].clone().requires_grad_(), cols[i].clone().requires_grad_()
                (tr.render(v, fs[i], cams[i], colors=c, **kw) * w[i:i + 1]).sum().backward()

        def shared(kw=kw):
            v, c = vs[0].clone().requires_grad_(), cols[0].clone().requires_grad_()
            (tr.render(v, fs[0], cams, colors=c, **kw) * w).sum().backward()

        out[(mode, "one mesh, N cameras (reference)")] = shared
        out[(mode, "Meshes batch, one call")] = packed
        out[(mode, "mesh by mesh (loop)")] = loop
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--meshes", type=int, default=16)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--device", default=default_device())
    p.add_argument("--big", type=int, default=None, help="mesh 0 = icosphere(BIG) (e.g. 6: 81,920 faces)")
    args = p.parse_args(argv)
    vs, fs, cols, cams = batch(args.meshes, args.device, args.size, args.big)
    faces = sum(f.shape[0] for f in fs)
    print(f"{args.meshes} different meshes, {faces} faces in all ({fs[0].shape[0]} in mesh 0), {args.size}², "
          f"fwd+bwd, median of {args.rounds} interleaved rounds, {args.device}", flush=True)
    ms = interleaved({" | ".join(k): fn for k, fn in cases(vs, fs, cols, cams, args.size).items()}, args.rounds)
    print()
    print("| mode | case | ms |")
    print("|---|---|---:|")
    for k, v in ms.items():
        print(f"| {k} | {v:.1f} |")
    for mode in ("hard lit", "soft"):
        loop, one = ms[f"{mode} | mesh by mesh (loop)"], ms[f"{mode} | Meshes batch, one call"]
        print(f"{mode}: loop / batch = {loop / one:.2f}x")
    return ms


if __name__ == "__main__":
    main()
