"""Drag handle vertices of a mesh and let the rest follow as rigidly (or conformally) as possible.

    python demos/non_rigid_deformation.py                    # ARAP local/global solver on a plane
    python demos/non_rigid_deformation.py --method acap      # Adam on the ACAP energy (TF Graphics' notebook)
    python demos/non_rigid_deformation.py --mesh cylinder    # bend an open tube instead

After TF Graphics' "non-rigid surface deformation" notebook. One side of the mesh is pinned, a few
handle vertices are moved to new positions, and the free vertices minimise a deformation energy:
``--method arap`` runs the local/global solver of Sorkine & Alexa 2007 (``arap_solve``);
``--method acap`` optimises the free vertices and one quaternion per vertex with Adam on the
as-conformal-as-possible energy (``acap_energy``), as the notebook does. Headless: renders the rest
pose and the result with taichirast (hard rasterization, vertex colours = displacement, with a
simple Lambert term) to before.png / after.png, the iterations to optimization.gif, and prints the
final energy and handle error.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time

import numpy as np
import torch

import taichirast as tr
from taichirast import io as trio
from taichirast import meshes
from taichirast import tensorboard as tb
from taichirast.geometry import vertex_normals
from taichirast.geometry.deformation import acap_energy, arap_energy, arap_solve

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import add_tensorboard_arg, progress, tensorboard_writer  # noqa: E402


def tube(n, rings, height, radius):
    """Open cylinder along z with ``rings`` rings of ``n`` vertices (``meshes.cylinder`` has only two)."""
    phi = 2.0 * np.pi * np.arange(n) / n
    z = np.linspace(-height / 2.0, height / 2.0, rings)
    v = np.stack([np.tile(radius * np.cos(phi), rings), np.tile(radius * np.sin(phi), rings), np.repeat(z, n)], 1)
    k, j = np.meshgrid(np.arange(rings - 1), np.arange(n), indexing="ij")
    a, b = k * n + j, k * n + (j + 1) % n
    c, d = b + n, a + n
    f = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, d], -1).reshape(-1, 3)])
    return torch.from_numpy(v), f.astype(np.int32)


def scene(kind, res):
    """Mesh (float64 verts, faces), pinned ids, handle ids and handle targets."""
    if kind == "plane":
        v, f = meshes.plane(2.0, res)
        v = torch.from_numpy(v).double()
        x, y = v[:, 0], v[:, 1]
        pinned = torch.nonzero(x < -1 + 1e-6).flatten()                       # left edge
        handles = torch.nonzero((x > 1 - 1e-6) & (y.abs() > 1 - 1e-6)).flatten()  # right corners
        target = v[handles].clone()
        target[:, 0] -= 0.6
        target[:, 2] += 1.1
        target[:, 1] *= 0.8
    elif kind == "cylinder":
        v, f = tube(n=16, rings=res + 1, height=3.0, radius=0.4)
        z = v[:, 2]
        pinned = torch.nonzero(z < -1.5 + 1e-6).flatten()                     # bottom ring
        handles = torch.nonzero(z > 1.5 - 1e-6).flatten()                     # top ring
        a = math.radians(50)
        R = torch.tensor([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]], dtype=torch.float64)
        c = torch.tensor([0.0, 0.0, 1.5], dtype=torch.float64)
        target = (v[handles] - c) @ R.T + c + torch.tensor([1.0, 0.0, -0.35], dtype=torch.float64)
    else:
        raise ValueError(f"--mesh must be 'plane' or 'cylinder', got {kind!r}")
    return v, torch.from_numpy(f), pinned, handles, target


def shade(verts, faces, disp, scale):
    """Vertex colours: blue (still) -> red (moved by ``scale``), times a two-sided Lambert term."""
    t = (disp / scale).clamp(0, 1)[:, None]
    base = (1 - t) * torch.tensor([0.25, 0.45, 0.95]) + t * torch.tensor([0.95, 0.3, 0.2])
    n = vertex_normals(verts.float(), faces)
    light = torch.nn.functional.normalize(torch.tensor([0.4, -0.5, 0.8]), dim=0)
    return base * (0.35 + 0.65 * (n @ light).abs()[:, None])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--method", choices=["arap", "acap"], default="arap")
    p.add_argument("--mesh", choices=["plane", "cylinder"], default="plane")
    p.add_argument("--res", type=int, default=12, help="grid segments (plane) / extra ring vertices (cylinder)")
    p.add_argument("--steps", type=int, default=None, help="solver iterations (arap, default 30) or Adam steps (acap, default 400)")
    p.add_argument("--lr", type=float, default=0.02, help="Adam learning rate (acap)")
    p.add_argument("--size", type=int, default=192, help="image size in pixels")
    p.add_argument("--out", default=os.path.join("out", "non_rigid_deformation"))
    p.add_argument("--gif-every", type=int, default=None, help="GIF frame every N steps (default: about 30 frames)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_tensorboard_arg(p)
    args = p.parse_args(argv)
    steps = args.steps if args.steps is not None else (30 if args.method == "arap" else 400)
    every = args.gif_every or max(1, steps // 30)

    rest, faces, pinned, handles, target = scene(args.mesh, args.res)
    con = torch.cat([pinned, handles])
    con_pos = torch.cat([rest[pinned], target])
    free = torch.from_numpy(np.setdiff1d(np.arange(rest.shape[0]), con.numpy()))
    scale = float((target - rest[handles]).norm(dim=-1).max())
    if args.mesh == "plane":
        eye, at, up = (1.2, -3.6, 2.2), (0.0, 0.0, 0.35), (0.0, 0.0, 1.0)
    else:
        eye, at, up = (0.5, -5.5, 0.8), (0.4, 0.0, 0.2), (0.0, 0.0, 1.0)
    cam = tr.PerspectiveCamera.look_at(eye, at, up, fov_y=45.0, image_size=(args.size, args.size), near=0.1, far=20.0)

    tbw = tensorboard_writer(args)

    def picture(verts, step=0):
        verts = verts.detach()
        cols = shade(verts, faces, (verts - rest).norm(dim=-1).float(), scale)
        img = tr.render(verts.float(), faces, cam, colors=cols, mode="hard", background=(1.0, 1.0, 1.0))[0]
        if tbw is not None:
            tb.add_image(tbw, "render", img[..., :3], step)
            tb.add_mesh(tbw, "mesh", verts, faces, cols, step)
        return img[..., :3]

    it = progress(steps, f"non_rigid_deformation ({args.method})", quiet=args.quiet)
    frames = [picture(rest)]
    t0 = time.time()
    if args.method == "arap":
        verts = rest.clone()
        verts[con] = con_pos
        for step in it:  # one local/global iteration per step, warm-started
            verts = arap_solve(rest, faces, con, con_pos, iterations=1, init=verts)
            if step % every == 0 or step == steps - 1:
                frames.append(picture(verts, step + 1))
    else:
        x = rest[free].clone().requires_grad_(True)
        q = torch.zeros(rest.shape[0], 4, dtype=torch.float64)
        q[:, 0] = 1.0
        q.requires_grad_(True)
        opt = torch.optim.Adam([x, q], lr=args.lr)

        def assemble(xf):
            v = rest.clone()
            v[con] = con_pos
            return v.index_put((free,), xf)

        for step in it:
            loss = acap_energy(rest, assemble(x), faces, quaternions=q)
            if tbw is not None:
                tb.add_scalars(tbw, {"acap_energy": loss}, step)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if hasattr(it, "set_postfix") and step % 20 == 0:
                it.set_postfix(acap=f"{loss.item():.3e}")
            if step % every == 0 or step == steps - 1:
                frames.append(picture(assemble(x), step + 1))
        verts = assemble(x.detach())
    elapsed = time.time() - t0
    if tbw is not None:
        tbw.close()

    naive = rest.clone()
    naive[con] = con_pos
    e_arap = arap_energy(rest, verts, faces, "cotangent").item()
    e_naive = arap_energy(rest, naive, faces, "cotangent").item()
    e_acap = acap_energy(rest, verts, faces).item()
    handle_err = (verts[con] - con_pos).norm(dim=-1).max().item()
    os.makedirs(args.out, exist_ok=True)
    trio.save_image(os.path.join(args.out, "before.png"), frames[0])
    trio.save_image(os.path.join(args.out, "after.png"), picture(verts))
    trio.save_gif(os.path.join(args.out, "optimization.gif"), frames, fps=10)
    print(f"{args.mesh}: V={rest.shape[0]} F={faces.shape[0]}, {len(pinned)} pinned, {len(handles)} handles "
          f"moved up to {scale:.3f}; method {args.method}, {steps} steps in {elapsed:.1f} s")
    print(f"ARAP energy (cotangent): {e_arap:.5f} (handles-only deformation: {e_naive:.5f}); "
          f"ACAP energy (optimal similarities): {e_acap:.3e}")
    print(f"final energy: {e_arap if args.method == 'arap' else e_acap:.6g}  handle error: {handle_err:.3e}")
    print(f"wrote {args.out}/before.png, after.png, optimization.gif")
    return {"energy": e_arap if args.method == "arap" else e_acap, "arap_energy": e_arap, "naive_energy": e_naive,
            "acap_energy": e_acap, "handle_error": handle_err, "time": elapsed}


if __name__ == "__main__":
    main()
