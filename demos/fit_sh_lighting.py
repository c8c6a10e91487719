"""Recover spherical-harmonics environment lighting (9 x 3 coefficients) from images of a white object.

    python demos/fit_sh_lighting.py                    # icosphere, writes out/fit_sh_lighting/
    python demos/fit_sh_lighting.py --mesh ../shared/meshes/bunny.obj

The "inverse lighting" demo: a Lambertian object with white albedo is lit by a band 0-2 SH
environment (an order-2 sky: blue from above, a warm key light from one side, a dimmer ground
bounce, plus a seeded random perturbation) and rendered in hard mode from ``--views`` cameras
around it (per-pixel shading with smooth normals). The optimisation starts from zeros (black) or,
with ``--init constant``, from a constant environment, and fits the 27 coefficients with Adam on
the RGB image loss. The image is linear in the coefficients, but band 2 is attenuated 4x by the
Lambertian kernel, so it converges last. Reports the relative coefficient error
``||L - L_gt|| / ||L_gt||`` (overall and per band) and the image MSE. Headless: writes target /
before / after PNG strips, an environment-map panorama of each (target / after) and an
optimisation GIF.
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
from _common import add_output_args, load_normalized, rgba_strip, ring_eyes, add_live_args, make_live, progress, compare_strip  # noqa: E402

BANDS = (slice(0, 1), slice(1, 4), slice(4, 9))


def sh_basis(d):
    """Real SH basis, bands 0-2, order L00, L1-1, L10, L11, L2-2, L2-1, L20, L21, L22: ``(..., 9)``."""
    x, y, z = d[..., 0], d[..., 1], d[..., 2]
    return torch.stack([0.282095 * torch.ones_like(x), 0.488603 * y, 0.488603 * z, 0.488603 * x,
                        1.092548 * x * y, 1.092548 * y * z, 0.315392 * (3 * z * z - 1), 1.092548 * x * z,
                        0.546274 * (x * x - y * y)], -1)


def ground_truth_sh(seed):
    """A plausible environment: ambient + blue sky (+y) + warm key light (+x, +z) + seeded perturbation."""
    gen = torch.Generator().manual_seed(seed)
    L = torch.zeros(9, 3)
    L[0] = torch.tensor([0.85, 0.82, 0.80]) / 0.282095 * 0.5  # mean radiance ~0.5 per channel
    L[1] = torch.tensor([0.10, 0.18, 0.35])   # y: sky from above (blue)
    L[3] = torch.tensor([0.35, 0.25, 0.10])   # x: warm key light
    L[2] = torch.tensor([0.20, 0.16, 0.10])   # z
    L[4:] = torch.tensor([[0.10, 0.06, 0.02], [0.05, 0.08, 0.12], [-0.08, -0.06, 0.02],
                          [0.12, 0.08, 0.04], [0.06, 0.03, -0.04]])
    return L + 0.06 * torch.randn(9, 3, generator=gen)


def env_panorama(L, h=32):
    """Equirectangular picture of the radiance the SH coefficients describe: ``(h, 2h, 3)``, y up."""
    th = (torch.arange(h) + 0.5) / h * math.pi
    ph = (torch.arange(2 * h) + 0.5) / (2 * h) * 2 * math.pi
    t, p = torch.meshgrid(th, ph, indexing="ij")
    d = torch.stack([torch.sin(t) * torch.sin(p), torch.cos(t), torch.sin(t) * torch.cos(p)], -1)
    return (sh_basis(d) @ L).clamp(0, 1)


def rel_err(L, L_gt, band=slice(None)):
    return ((L[band] - L_gt[band]).norm() / L_gt[band].norm()).item()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mesh", help="mesh file (OBJ/PLY/STL/GLB); default: icosphere(--level)")
    p.add_argument("--level", type=int, default=3, help="icosphere subdivision level")
    p.add_argument("--steps", type=int, default=250)
    p.add_argument("--size", type=int, default=80, help="image size in pixels")
    p.add_argument("--views", type=int, default=6)
    p.add_argument("--init", choices=("zeros", "constant"), default="zeros",
                   help="initial environment: black, or a constant grey (radiance 0.5)")
    p.add_argument("--lr", type=float, default=0.1)
    add_output_args(p, "fit_sh_lighting")
    add_live_args(p)
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)

    if args.mesh:
        v, f = load_normalized(args.mesh)
    else:
        v, f = meshes.icosphere(args.level)
    verts, faces = torch.from_numpy(np.asarray(v, dtype=np.float32)), torch.from_numpy(np.asarray(f, dtype=np.int32))
    albedo = torch.ones(verts.shape[0], 3)
    eyes = ring_eyes(args.views, 3.2, az_offset_deg=10.0, el_up_deg=50.0, el_down_deg=-50.0)
    cams = tr.PerspectiveCamera.look_at(eyes, fov_y=40.0, image_size=(args.size, args.size), near=0.1, far=10.0)
    material = tr.Material(model="lambert")

    def render(sh):
        return tr.render(verts, faces, cams, colors=albedo, mode="hard", background=0.0,
                         lights=tr.Lights(sh=sh), material=material)

    L_gt = ground_truth_sh(args.seed)
    L0 = torch.zeros(9, 3)
    if args.init == "constant":
        L0[0] = 0.5 / 0.282095
    with torch.no_grad():
        target = render(L_gt)
        before = render(L0)
    mask = target[..., 3:] > 0

    def img_mse(img):
        return (((img[..., :3] - target[..., :3]) ** 2) * mask).sum().item() / (3 * mask.sum().item())

    err0, img0 = rel_err(L0, L_gt), img_mse(before)
    L = L0.clone().requires_grad_(True)
    opt = torch.optim.Adam([L], lr=args.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(args.steps, 1), eta_min=args.lr * 0.02)
    frames = []
    it = progress(args.steps, "fit_sh_lighting", quiet=args.quiet)
    live = make_live(args, "fit_sh_lighting", [L], [opt])
    t_start = time.time()
    for step in it:
        img = render(L)
        loss = (((img[..., :3] - target[..., :3]) ** 2) * mask).sum() / (3 * mask.sum())
        live.update(step, target, img, loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if hasattr(it, "set_postfix") and step % 10 == 0:
            it.set_postfix(loss=f"{loss.item():.2e}", coef_err=f"{rel_err(L.detach(), L_gt):.4f}")
        if step % args.gif_every == 0 or step == args.steps - 1:
            frames.append(compare_strip(img, target))
    elapsed = time.time() - t_start
    live.close()

    L_fit = L.detach()
    with torch.no_grad():
        after = render(L_fit)
    err, img1 = rel_err(L_fit, L_gt), img_mse(after)
    band_err = [rel_err(L_fit, L_gt, b) for b in BANDS]
    os.makedirs(args.out, exist_ok=True)
    trio.save_image(os.path.join(args.out, "target.png"), rgba_strip(target.clamp(0, 1)))
    trio.save_image(os.path.join(args.out, "before.png"), rgba_strip(before.clamp(0, 1)))
    trio.save_image(os.path.join(args.out, "after.png"), rgba_strip(after.clamp(0, 1)))
    trio.save_image(os.path.join(args.out, "env_target_after.png"),
                    torch.cat([env_panorama(L_gt), env_panorama(L_fit)], dim=0))
    trio.save_gif(os.path.join(args.out, "optimization.gif"), frames, fps=10)
    print(f"steps: {args.steps}  time: {elapsed:.1f} s ({1000 * elapsed / max(args.steps, 1):.0f} ms/step, "
          f"{args.views} views of {args.size}x{args.size}, {faces.shape[0]} faces, init {args.init}, "
          f"arch {tr.runtime.arch()})")
    print(f"initial SH coefficient error (relative): {err0:.4f}  image MSE: {img0:.3e}")
    print(f"final SH coefficient error (relative): {err:.5f}  (bands 0/1/2: {band_err[0]:.5f} / "
          f"{band_err[1]:.5f} / {band_err[2]:.5f})  image MSE: {img1:.3e}")
    print(f"wrote {args.out}/target.png, before.png, after.png, env_target_after.png, optimization.gif")
    return {"sh_rel_error": err, "initial_sh_rel_error": err0, "sh_rel_error_per_band": band_err,
            "image_mse": img1, "initial_image_mse": img0, "time_s": elapsed}


if __name__ == "__main__":
    main()
