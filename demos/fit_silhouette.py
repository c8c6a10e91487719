"""Deform an icosphere until its silhouettes match a target shape's, with differentiable rasterization.

    python demos/fit_silhouette.py                       # built-in target, writes out/fit_silhouette/
    python demos/fit_silhouette.py --mesh bunny.obj      # any mesh file trimesh reads
    python demos/fit_silhouette.py --mode hard --antialias   # silhouette gradients from antialiasing
    python demos/fit_silhouette.py --mode splat          # rasterize-then-splat

The target is rendered from several views as hard silhouettes (the "photos"); an icosphere's
vertex offsets are optimised with Adam so that its differentiable silhouettes match them (SoftRas
by default; ``--mode dibr``, ``--mode hard --antialias`` or ``--mode splat`` for the others), with
Laplacian and edge-length regularisers. Headless: writes target / before / after PNG strips and
an optimisation GIF, and prints the final silhouette IoU (hard masks, mean over views).
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
from taichirast.geometry import edge_length_loss, laplacian_smoothing, silhouette_iou

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import add_output_args, load_normalized, ring_eyes, superellipsoid, add_live_args, make_live, progress  # noqa: E402


def rounded_box(level=4, power=4.0, scale=(1.1, 0.75, 0.9)):
    """Built-in target: a superellipsoid ('rounded box') |x|^p + |y|^p + |z|^p = 1, scaled and tilted."""
    v, f = superellipsoid(level, power, scale)
    a, b = math.radians(25), math.radians(-15)
    Ry = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    Rx = np.array([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    return (v @ (Rx @ Ry).T).astype(np.float32), f


def ring_cameras(n_views, size, distance=4.0, fov=40.0, dtype=torch.float32):
    """``n_views`` cameras around the object, alternating elevations, looking at the origin."""
    eyes = ring_eyes(n_views, distance, el_up_deg=25.0, el_down_deg=-20.0).to(dtype)
    return tr.PerspectiveCamera.look_at(eyes, fov_y=fov, image_size=(size, size),
                                        near=0.1, far=10.0)


def overlay(pred, target):
    """RGB image: target in red, prediction in green (yellow where they agree)."""
    return torch.stack([target, pred, torch.zeros_like(pred)], dim=-1)


def strip(images, n=4):
    """Concatenate the first ``n`` views side by side."""
    return torch.cat(list(images[:n]), dim=1)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mesh", help="target mesh file (OBJ/PLY/STL/GLB); default: built-in rounded box")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--size", type=int, default=128, help="image size in pixels")
    p.add_argument("--views", type=int, default=8)
    p.add_argument("--level", type=int, default=3, help="icosphere subdivision level of the source mesh")
    p.add_argument("--mode", choices=("soft", "dibr", "hard", "splat"), default="soft",
                   help="render mode whose silhouette gradients drive the fit (hard needs --antialias)")
    p.add_argument("--antialias", action="store_true", help="analytic antialiasing (hard / dibr modes)")
    p.add_argument("--sigma", type=float, default=1e-4, help="SoftRas sigma (NDC units)")
    p.add_argument("--lr", type=float, default=0.01)
    add_output_args(p, "fit_silhouette", gif_every=10)
    add_live_args(p)
    args = p.parse_args(argv)
    if args.mode == "hard" and not args.antialias:
        p.error("--mode hard gives no silhouette gradients by itself: add --antialias")
    if args.antialias and args.mode not in ("hard", "dibr"):
        p.error(f"--antialias works with --mode hard or dibr, not {args.mode}")
    torch.manual_seed(args.seed)

    if args.mesh:
        tv, tf = load_normalized(args.mesh)
    else:
        tv, tf = rounded_box()
    tv, tf = torch.from_numpy(tv), torch.from_numpy(tf)
    cams = ring_cameras(args.views, args.size)
    with torch.no_grad():
        target = tr.render(tv, tf, cams, mode="hard")[..., 3]  # (N, H, W) binary silhouettes

    sv0, sf = meshes.icosphere(args.level)
    src = torch.from_numpy(sv0)
    faces = torch.from_numpy(sf)
    offset = torch.zeros_like(src, requires_grad=True)
    opt = torch.optim.Adam([offset], lr=args.lr)

    def silhouettes(verts, soft=True):
        if soft:
            return tr.render(verts, faces, cams, mode=args.mode, sigma=args.sigma, antialias=args.antialias)[..., 3]
        return tr.render(verts, faces, cams, mode="hard")[..., 3]

    with torch.no_grad():
        before = silhouettes(src, soft=False)
    frames = []
    it = progress(args.steps, "fit_silhouette", quiet=args.quiet)
    live = make_live(args, "fit_silhouette", [offset], [opt])
    t0 = time.time()
    loss_val = float("nan")
    for step in it:
        verts = src + offset
        alpha = silhouettes(verts)
        sil_loss = ((alpha - target) ** 2).mean()
        live.update(step, target, alpha, sil_loss)
        loss = sil_loss + 0.5 * laplacian_smoothing(verts, faces) + 0.1 * edge_length_loss(verts, faces)
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss_val = sil_loss.item()
        if hasattr(it, "set_postfix") and step % 10 == 0:
            it.set_postfix(silhouette_mse=f"{loss_val:.4f}")
        if step % args.gif_every == 0 or step == args.steps - 1:
            frames.append(strip(overlay(alpha.detach(), target)))
    elapsed = time.time() - t0
    live.close()

    with torch.no_grad():
        after = silhouettes(src + offset, soft=False)
    iou = silhouette_iou(after, target)
    os.makedirs(args.out, exist_ok=True)
    trio.save_image(os.path.join(args.out, "target.png"), strip(target))
    trio.save_image(os.path.join(args.out, "before.png"), strip(overlay(before, target)))
    trio.save_image(os.path.join(args.out, "after.png"), strip(overlay(after, target)))
    trio.save_gif(os.path.join(args.out, "optimization.gif"), frames, fps=10)
    print(f"steps: {args.steps}  time: {elapsed:.1f} s ({1000 * elapsed / max(args.steps, 1):.0f} ms/step, "
          f"{args.views} views of {args.size}x{args.size}, mode {args.mode}{' + antialias' * args.antialias}, "
          f"arch {tr.runtime.arch()})")
    print(f"silhouette IoU before: {silhouette_iou(before, target).mean().item():.4f}")
    print(f"final silhouette IoU: {iou.mean().item():.4f} (per view: {', '.join(f'{x:.3f}' for x in iou.tolist())})")
    print(f"wrote {args.out}/target.png, before.png, after.png, optimization.gif")
    return iou.mean().item()


if __name__ == "__main__":
    main()
