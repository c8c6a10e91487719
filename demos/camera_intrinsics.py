"""Recover a camera's intrinsics (fx, fy, cx, cy) from images of a known object, by gradient descent.

    python demos/camera_intrinsics.py                     # built-in object, writes out/camera_intrinsics/
    python demos/camera_intrinsics.py --mesh ../shared/meshes/bunny.obj

A known mesh with per-vertex colours is photographed from a few known poses by one camera with
ground-truth intrinsics. Starting from wrong intrinsics (focal lengths ``--init-focal-error`` off,
principal point ``--init-pp-error`` pixels off), ``log fx, log fy, cx, cy`` are optimised with Adam
on the RGBA image loss of soft renders (sigma annealed coarse-to-fine); the gradients reach the
intrinsics through :func:`taichirast.project` inside :func:`taichirast.render`. Headless: writes
target / before / after PNG strips and an optimisation GIF, and prints the final relative focal
error and principal point error in pixels.
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import add_output_args, attach, load_normalized, rgba_strip, ring_eyes, superellipsoid, vertex_colors, add_live_args, make_live, progress, compare_strip, log_anneal  # noqa: E402


def builtin_object(level=2):
    """A rounded box with a cone on top, off-centre: asymmetric and low-poly."""
    box = superellipsoid(level, power=4.0, scale=(0.9, 0.5, 0.6))
    cv, cf = meshes.cone(n=12, height=0.8, radius=0.3)
    cv = cv.astype(np.float64)
    cv = cv[:, [0, 2, 1]] * np.array([1.0, 1.0, -1.0])  # z-up cone -> y-up (a proper rotation)
    cv = cv + np.array([0.35, 0.8, 0.1])
    return attach(box, (cv, cf))


def poses(n_views, distance=3.0):
    """Known world-to-camera poses ``R (N, 3, 3)``, ``t (N, 3)`` on a ring around the object."""
    eyes = ring_eyes(n_views, distance, az_offset_deg=30.0, el_up_deg=25.0, el_down_deg=-15.0)
    cam = tr.PerspectiveCamera.look_at(eyes, image_size=(8, 8))
    return cam.R, cam.t


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mesh", help="mesh file (OBJ/PLY/STL/GLB); default: built-in box-with-cone")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--height", type=int, default=64, help="image height in pixels")
    p.add_argument("--width", type=int, default=80, help="image width in pixels")
    p.add_argument("--views", type=int, default=4)
    p.add_argument("--fov", type=float, default=45.0, help="ground-truth vertical field of view (degrees)")
    p.add_argument("--init-focal-error", type=float, default=0.3, help="initial relative error of fx and fy")
    p.add_argument("--init-pp-error", type=float, default=8.0, help="initial principal point error (pixels)")
    p.add_argument("--sigma-start", type=float, default=3e-3, help="SoftRas sigma at the first step (NDC units)")
    p.add_argument("--sigma-end", type=float, default=3e-5, help="SoftRas sigma at the last step")
    p.add_argument("--lr", type=float, default=0.02, help="Adam learning rate of log-focal (x20 for cx, cy in pixels)")
    add_output_args(p, "camera_intrinsics")
    add_live_args(p)
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)

    if args.mesh:
        v, f = load_normalized(args.mesh)
    else:
        v, f = builtin_object()
    verts, faces = torch.from_numpy(v), torch.from_numpy(f)
    colors = vertex_colors(verts)
    H, W = args.height, args.width
    R, t = poses(args.views)

    # ground truth: slightly non-square pixels, principal point a little off the image centre
    f_gt = (H / 2.0) / math.tan(math.radians(args.fov) / 2)
    gt = torch.tensor([f_gt * 1.05, f_gt * 0.97, W / 2.0 + 2.5, H / 2.0 - 1.5])
    # initial guess: both focal lengths too long by --init-focal-error (relative), principal point
    # off by --init-pp-error pixels in a random direction
    a = float(torch.rand(1, generator=gen)) * 2 * math.pi
    init = gt.clone()
    init[:2] = gt[:2] * (1 + args.init_focal_error)
    init[2:] = gt[2:] + args.init_pp_error * torch.tensor([math.cos(a), math.sin(a)])

    def camera(k):
        return tr.PerspectiveCamera(R, t, k[0:1], k[1:2], k[2:3], k[3:4], image_size=(H, W), near=0.1, far=10.0)

    def render(k, sigma):
        return tr.render(verts, faces, camera(k), colors=colors, mode="soft", sigma=sigma, gamma=1e-4)

    with torch.no_grad():
        target = render(gt, args.sigma_end)
        before = render(init, args.sigma_end)

    log_f = init[:2].log().clone().requires_grad_(True)
    pp = init[2:].clone().requires_grad_(True)
    opt = torch.optim.Adam([{"params": [log_f], "lr": args.lr}, {"params": [pp], "lr": args.lr * 20}])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(args.steps, 1), eta_min=args.lr * 0.05)

    def current():
        return torch.cat([log_f.exp(), pp])

    def errors(k):
        k = k.detach()
        focal = ((k[:2] - gt[:2]).abs() / gt[:2]).max().item()
        ppe = (k[2:] - gt[2:]).norm().item()
        return focal, ppe

    err0 = errors(init)
    frames = []
    it = progress(args.steps, "camera_intrinsics", quiet=args.quiet)
    live = make_live(args, "camera_intrinsics", [log_f, pp], [opt])
    t_start = time.time()
    for step in it:
        sigma = log_anneal(args.sigma_start, args.sigma_end, step, args.steps)
        k = current()
        img = render(k, sigma)
        loss = ((img - target) ** 2).mean()
        live.update(step, target, img, loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if hasattr(it, "set_postfix") and step % 10 == 0:
            fe, pe = errors(k)
            it.set_postfix(loss=f"{loss.item():.5f}", focal_err=f"{100 * fe:.2f}%", pp_err=f"{pe:.2f}px")
        if step % args.gif_every == 0 or step == args.steps - 1:
            frames.append(compare_strip(img, target))
    elapsed = time.time() - t_start
    live.close()

    k = current().detach()
    with torch.no_grad():
        after = render(k, args.sigma_end)
    focal_err, pp_err = errors(k)
    os.makedirs(args.out, exist_ok=True)
    trio.save_image(os.path.join(args.out, "target.png"), rgba_strip(target))
    trio.save_image(os.path.join(args.out, "before.png"), rgba_strip(before))
    trio.save_image(os.path.join(args.out, "after.png"), rgba_strip(after))
    trio.save_gif(os.path.join(args.out, "optimization.gif"), frames, fps=10)
    fmt = lambda x: ", ".join(f"{v:.2f}" for v in x.tolist())  # noqa: E731
    print(f"steps: {args.steps}  time: {elapsed:.1f} s ({1000 * elapsed / max(args.steps, 1):.0f} ms/step, "
          f"{args.views} views of {W}x{H}, {faces.shape[0]} faces, arch {tr.runtime.arch()})")
    print(f"fx, fy, cx, cy  ground truth: {fmt(gt)}  initial: {fmt(init)}  final: {fmt(k)}")
    print(f"initial focal error: {100 * err0[0]:.2f}%  principal point error: {err0[1]:.2f} px")
    print(f"final focal error: {100 * focal_err:.3f}%  principal point error: {pp_err:.3f} px")
    print(f"wrote {args.out}/target.png, before.png, after.png, optimization.gif")
    return {"focal_error": focal_err, "principal_point_error_px": pp_err,
            "initial_focal_error": err0[0], "initial_principal_point_error_px": err0[1]}


if __name__ == "__main__":
    main()
