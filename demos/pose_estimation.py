"""Recover an object's 6DoF pose (rotation + translation) from images, with differentiable rasterization.

    python demos/pose_estimation.py                       # built-in shape, writes out/pose_estimation/
    python demos/pose_estimation.py --mesh ../shared/meshes/spot/spot_triangulated.obj
    python demos/pose_estimation.py --mode hard --antialias --lit   # shaded images, antialiased hard path
    python demos/pose_estimation.py --mode splat

The "object pose estimation" / "6DoF alignment" demo (as in TensorFlow Graphics): a known mesh with
per-vertex colours (``--lit``: also shaded by a directional light) is rendered (SoftRas by default;
``--mode dibr``, ``--mode hard --antialias`` or ``--mode splat``; a few fixed cameras) at a
ground-truth pose ``X -> R X + t``.
The optimisation starts ``--init-angle`` degrees away (about a random axis) with an offset
translation, and recovers ``R`` (axis-angle or 6D, through :mod:`taichirast.geometry.transforms`)
and ``t`` with Adam on the RGBA image loss (soft mode anneals sigma coarse-to-fine). Headless: writes
target / before / after PNG strips and an optimisation GIF, and prints the final rotation error
(geodesic angle, degrees) and translation error.
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
from taichirast.geometry import transforms as T

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import add_output_args, attach, load_normalized, rgba_strip, ring_eyes, superellipsoid, vertex_colors, add_live_args, make_live, progress, compare_strip, log_anneal  # noqa: E402


def composite_shape(level=2):
    """Built-in object: a rounded box with a cylinder 'handle' sticking out of one side, off-centre.

    Deliberately asymmetric (no rotation maps it onto itself), low-poly (a few hundred faces).
    """
    box = superellipsoid(level, power=4.0, scale=(0.8, 0.55, 0.45))
    cv, cf = meshes.cylinder(n=12, height=0.9, radius=0.18)
    cv = cv.astype(np.float64)
    # cylinder along z -> along x, attached to the +x face, raised in y and pushed forward in z
    cv = cv[:, [2, 1, 0]] * np.array([1.0, 1.0, -1.0])  # swap x/z (with a flip to keep the winding)
    cv = cv + np.array([0.95, 0.2, 0.15])
    return attach(box, (cv, cf))


def cameras(n_views, size, distance=3.5, fov=40.0):
    """``n_views`` fixed cameras on a ring around the origin (alternating elevation)."""
    eyes = ring_eyes(n_views, distance, az_offset_deg=20.0, el_up_deg=20.0, el_down_deg=-15.0)
    return tr.PerspectiveCamera.look_at(eyes, fov_y=fov, image_size=(size, size), near=0.1, far=10.0)


def random_axis(gen):
    a = torch.randn(3, generator=gen, dtype=torch.float64)
    return (a / a.norm()).float()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mesh", help="mesh file (OBJ/PLY/STL/GLB); default: built-in box-with-handle")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--size", type=int, default=80, help="image size in pixels")
    p.add_argument("--views", type=int, default=3)
    p.add_argument("--init-angle", type=float, default=40.0, help="initial rotation error in degrees")
    p.add_argument("--init-offset", type=float, default=0.2, help="initial translation error (world units)")
    p.add_argument("--param", choices=("axis_angle", "6d"), default="axis_angle", help="rotation parametrisation")
    p.add_argument("--sigma-start", type=float, default=1e-2, help="SoftRas sigma at the first step (NDC units)")
    p.add_argument("--sigma-end", type=float, default=3e-5, help="SoftRas sigma at the last step")
    p.add_argument("--lr", type=float, default=0.03)
    p.add_argument("--mode", choices=("soft", "dibr", "hard", "splat"), default="soft",
                   help="render mode (hard needs --antialias for silhouette and occlusion gradients)")
    p.add_argument("--antialias", action="store_true", help="analytic antialiasing (hard / dibr modes)")
    p.add_argument("--lit", action="store_true", help="shade the colours with a directional and ambient light")
    add_output_args(p, "pose_estimation")
    add_live_args(p)
    args = p.parse_args(argv)
    if args.mode == "hard" and not args.antialias:
        p.error("--mode hard gives no silhouette or occlusion gradients by itself: add --antialias")
    if args.antialias and args.mode not in ("hard", "dibr"):
        p.error(f"--antialias works with --mode hard or dibr, not {args.mode}")
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)

    if args.mesh:
        v, f = load_normalized(args.mesh)
    else:
        v, f = composite_shape()
    verts, faces = torch.from_numpy(v), torch.from_numpy(f)
    colors = vertex_colors(verts)
    cams = cameras(args.views, args.size)

    # ground truth: a random rotation and a small translation
    R_gt = T.random_rotation_matrices(1, generator=gen)[0].float()
    t_gt = (torch.rand(3, generator=gen) - 0.5) * 0.4
    # initial guess: --init-angle degrees away about a random axis, translation off by --init-offset
    R_err = T.axis_angle_to_matrix(random_axis(gen) * math.radians(args.init_angle))
    R0 = R_err @ R_gt
    t0 = t_gt + random_axis(gen) * args.init_offset

    def pose_verts(R, t):
        return verts @ R.T + t

    lights = (tr.Lights(ambient=[0.35, 0.35, 0.35], directions=[[0.4, -0.8, 0.6]], colors=[[0.8, 0.8, 0.8]])
              if args.lit else None)

    def render(R, t, sigma):
        return tr.render(pose_verts(R, t), faces, cams, colors=colors, mode=args.mode, sigma=sigma, gamma=1e-4,
                         background=0.0, antialias=args.antialias, lights=lights)

    with torch.no_grad():
        target = render(R_gt, t_gt, args.sigma_end)
        before = render(R0, t0, args.sigma_end)

    # Parametrise the rotation relative to the initial guess: R = rot(w) R0, with w = 0 at the start
    # (axis-angle) or w = the identity's 6D representation (6D).
    if args.param == "axis_angle":
        w = torch.zeros(3, requires_grad=True)
        to_matrix = T.axis_angle_to_matrix
    else:
        w = T.matrix_to_rotation_6d(torch.eye(3)).clone().requires_grad_(True)
        to_matrix = T.rotation_6d_to_matrix
    t = t0.clone().requires_grad_(True)
    opt = torch.optim.Adam([{"params": [w], "lr": args.lr}, {"params": [t], "lr": args.lr * 0.5}])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(args.steps, 1), eta_min=args.lr * 0.05)

    def current():
        return to_matrix(w) @ R0, t

    def rot_err_deg(R):
        return math.degrees(T.rotation_geodesic_angle(R.detach(), R_gt).item())

    err0 = (rot_err_deg(R0), (t0 - t_gt).norm().item())
    frames = []
    it = progress(args.steps, "pose_estimation", quiet=args.quiet)
    live = make_live(args, "pose_estimation", [w, t], [opt])
    t_start = time.time()
    for step in it:
        sigma = log_anneal(args.sigma_start, args.sigma_end, step, args.steps)
        R, tt = current()
        img = render(R, tt, sigma)
        loss = ((img - target) ** 2).mean()
        live.update(step, target, img, loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if hasattr(it, "set_postfix") and step == args.steps - 1:
            # the bar ends on the final pose's error (after this last step), not a stale 10-step sample
            it.set_postfix(loss=f"{loss.item():.5f}", rot_err=f"{rot_err_deg(current()[0]):.2f}deg")
        elif hasattr(it, "set_postfix") and step % 10 == 0:
            it.set_postfix(loss=f"{loss.item():.5f}", rot_err=f"{rot_err_deg(R):.2f}deg")
        if step % args.gif_every == 0 or step == args.steps - 1:
            frames.append(compare_strip(img, target))
    elapsed = time.time() - t_start
    live.close()

    with torch.no_grad():
        R, tt = current()
        after = render(R, tt, args.sigma_end)
    rot_err = rot_err_deg(R)
    trans_err = (tt.detach() - t_gt).norm().item()
    os.makedirs(args.out, exist_ok=True)
    trio.save_image(os.path.join(args.out, "target.png"), rgba_strip(target))
    trio.save_image(os.path.join(args.out, "before.png"), rgba_strip(before))
    trio.save_image(os.path.join(args.out, "after.png"), rgba_strip(after))
    trio.save_gif(os.path.join(args.out, "optimization.gif"), frames, fps=10)
    print(f"steps: {args.steps}  time: {elapsed:.1f} s ({1000 * elapsed / max(args.steps, 1):.0f} ms/step, "
          f"{args.views} views of {args.size}x{args.size}, {faces.shape[0]} faces, {args.param}, "
          f"mode {args.mode}{' + antialias' * args.antialias}{', lit' * args.lit}, "
          f"arch {tr.runtime.arch()})")
    print(f"initial rotation error: {err0[0]:.2f} deg  translation error: {err0[1]:.4f}")
    print(f"final rotation error: {rot_err:.3f} deg  translation error: {trans_err:.5f}")
    print(f"wrote {args.out}/target.png, before.png, after.png, optimization.gif")
    return {"rotation_error_deg": rot_err, "translation_error": trans_err,
            "initial_rotation_error_deg": err0[0], "initial_translation_error": err0[1]}


if __name__ == "__main__":
    main()
