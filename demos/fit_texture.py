"""Recover a mesh's texture image from multi-view renders (hard rasterization, texture sampling).

    python demos/fit_texture.py                  # Spot (if ../shared/meshes/spot exists), writes out/fit_texture/
    python demos/fit_texture.py --procedural     # UV sphere with a procedural checker/gradient texture

The "texture recovery" demo: a mesh with UVs and a known texture (Spot's ``spot_texture.png``,
resampled to ``--tex-size``; or a procedural checker on a UV sphere) is rendered unlit in hard
mode from ``--views`` cameras around it. The optimisation starts from a uniform grey texture and
fits the texels with Adam on the RGB image loss; gradients reach the texture through bilinear
sampling at the interpolated per-pixel UVs. Only texels that some pixel samples can be recovered,
so the reported PSNR is over those *visible* texels (texels that receive gradient from the
renders). Headless: writes target / before / after PNG strips (renders), target / before / after
texture images and an optimisation GIF.
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
from _common import add_output_args, rgba_strip, ring_eyes, add_live_args, make_live, progress, compare_strip  # noqa: E402

SPOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "meshes", "spot",
                    "spot_triangulated.obj")


def spherical_uvs(verts, faces):
    """Per-corner spherical UVs for a sphere around the z axis: ``(uvs (3F, 2), uv_faces (F, 3))``.

    ``u = phi / 2pi`` (unwrapped per face so faces across the seam do not span the whole texture;
    ``wrap="repeat"`` handles ``u > 1``), ``v = 1 - theta / pi``; a pole corner takes the mean
    ``u`` of the face's other two corners.
    """
    v = verts / np.linalg.norm(verts, axis=1, keepdims=True)
    theta = np.arccos(np.clip(v[:, 2], -1.0, 1.0))
    phi = np.arctan2(v[:, 1], v[:, 0]) % (2 * np.pi)
    pole = np.hypot(v[:, 0], v[:, 1]) < 1e-6
    fp, ft, fpole = phi[faces], theta[faces], pole[faces]
    ref = np.where(fpole, np.nan, fp)
    lo = np.nanmin(ref, axis=1, keepdims=True)
    fp = np.where(fp - lo > np.pi, fp - 2 * np.pi, fp)  # unwrap towards the smallest angle
    fp = np.where(fp < lo - np.pi, fp + 2 * np.pi, fp)
    ref = np.where(fpole, np.nan, fp)
    fp = np.where(fpole, np.nanmean(ref, axis=1, keepdims=True), fp)
    uvs = np.stack([fp / (2 * np.pi), 1.0 - ft / np.pi], -1).reshape(-1, 2)
    uv_faces = np.arange(3 * faces.shape[0]).reshape(-1, 3)
    return uvs.astype(np.float32), uv_faces.astype(np.int32)


def procedural_texture(size, checks=8):
    """A colour gradient modulated by a ``checks x checks/2`` checkerboard: ``(size, size, 3)`` float32."""
    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    check = ((torch.floor(x * checks) + torch.floor(y * checks / 2)) % 2)
    base = torch.stack([0.2 + 0.7 * x, 0.3 + 0.5 * y, 0.9 - 0.6 * x * y], -1)
    return (base * (0.45 + 0.55 * check[..., None])).clamp(0, 1)


def load_scene(args):
    """(verts, faces, uvs, uv_faces, texture (S, S, 3), name) as torch tensors."""
    if not args.procedural and os.path.isfile(SPOT):
        m = trio.load_textured_mesh(SPOT, require_uvs=True)
        v = trio.normalize_mesh(m.verts.astype(np.float64), radius=1.0).astype(np.float32)
        tex = torch.from_numpy(np.ascontiguousarray(m.texture[..., :3])).float()
        tex = torch.nn.functional.interpolate(tex.permute(2, 0, 1)[None], size=(args.tex_size, args.tex_size),
                                              mode="area")[0].permute(1, 2, 0).contiguous()
        return (torch.from_numpy(v), torch.from_numpy(m.faces.astype(np.int32)), torch.from_numpy(m.uvs),
                torch.from_numpy(m.uv_faces.astype(np.int32)), tex, "spot")
    v, f = meshes.uv_sphere(n_lat=24, n_lon=48)
    uvs, uvf = spherical_uvs(v.astype(np.float64), f)
    # z-up sphere -> y-up world (the camera ring is around y): (x, y, z) -> (x, z, -y) keeps the winding
    v = np.stack([v[:, 0], v[:, 2], -v[:, 1]], -1).astype(np.float32)
    return (torch.from_numpy(v), torch.from_numpy(f.astype(np.int32)), torch.from_numpy(uvs),
            torch.from_numpy(uvf), procedural_texture(args.tex_size), "procedural sphere")


def psnr(a, b, mask):
    mse = (((a - b) ** 2).mean(-1))[mask].mean().item()
    return 10 * math.log10(1.0 / max(mse, 1e-12))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--procedural", action="store_true", help="use the UV sphere + procedural texture even if Spot exists")
    p.add_argument("--steps", type=int, default=80)
    p.add_argument("--size", type=int, default=96, help="image size in pixels")
    p.add_argument("--views", type=int, default=8)
    p.add_argument("--tex-size", type=int, default=128, help="texture resolution (the file's is resampled)")
    p.add_argument("--distance", type=float, default=2.6, help="camera distance from the origin")
    p.add_argument("--lr", type=float, default=0.05)
    add_output_args(p, "fit_texture")
    add_live_args(p)
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)

    verts, faces, uvs, uv_faces, tex_gt, name = load_scene(args)
    eyes = ring_eyes(args.views, args.distance, az_offset_deg=15.0, el_up_deg=35.0, el_down_deg=-25.0)
    cams = tr.PerspectiveCamera.look_at(eyes, fov_y=45.0, image_size=(args.size, args.size), near=0.1, far=10.0)

    def render(tex):
        return tr.render(verts, faces, cams, texture=tex, uvs=uvs, uv_faces=uv_faces, mode="hard", background=0.0)

    tex0 = torch.full_like(tex_gt, 0.5)
    with torch.no_grad():
        target = render(tex_gt)
        before = render(tex0)
    # visible texels: those that receive gradient from some pixel of some view
    probe = tex0.clone().requires_grad_(True)
    render(probe)[..., :3].sum().backward()
    visible = probe.grad.abs().sum(-1) > 0
    psnr0 = psnr(tex0, tex_gt, visible)

    tex = tex0.clone().requires_grad_(True)
    opt = torch.optim.Adam([tex], lr=args.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(args.steps, 1), eta_min=args.lr * 0.05)
    frames = []
    it = progress(args.steps, "fit_texture", quiet=args.quiet)
    live = make_live(args, "fit_texture", [tex], [opt])
    t_start = time.time()
    for step in it:
        img = render(tex)
        loss = ((img[..., :3] - target[..., :3]) ** 2).mean()
        live.update(step, target, img, loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            tex.clamp_(0.0, 1.0)
        if hasattr(it, "set_postfix") and step % 10 == 0:
            it.set_postfix(loss=f"{loss.item():.5f}", psnr=f"{psnr(tex.detach(), tex_gt, visible):.2f}dB")
        if step % args.gif_every == 0 or step == args.steps - 1:
            frames.append(compare_strip(img, target))
    elapsed = time.time() - t_start
    live.close()

    tex_fit = tex.detach()
    with torch.no_grad():
        after = render(tex_fit)
    psnr1 = psnr(tex_fit, tex_gt, visible)
    img_err = ((after[..., :3] - target[..., :3]) ** 2).mean().item()
    img_err0 = ((before[..., :3] - target[..., :3]) ** 2).mean().item()
    os.makedirs(args.out, exist_ok=True)
    trio.save_image(os.path.join(args.out, "target.png"), rgba_strip(target))
    trio.save_image(os.path.join(args.out, "before.png"), rgba_strip(before))
    trio.save_image(os.path.join(args.out, "after.png"), rgba_strip(after))
    shown = lambda t: torch.where(visible[..., None], t, 0.5 * t + 0.25)  # noqa: E731  (dim unseen texels)
    trio.save_image(os.path.join(args.out, "texture_target.png"), tex_gt)
    trio.save_image(os.path.join(args.out, "texture_after.png"), shown(tex_fit))
    trio.save_gif(os.path.join(args.out, "optimization.gif"), frames, fps=10)
    print(f"steps: {args.steps}  time: {elapsed:.1f} s ({1000 * elapsed / max(args.steps, 1):.0f} ms/step, "
          f"{args.views} views of {args.size}x{args.size}, {name}, {faces.shape[0]} faces, "
          f"texture {args.tex_size}x{args.tex_size}, arch {tr.runtime.arch()})")
    print(f"visible texels: {int(visible.sum())} / {visible.numel()} ({100 * visible.float().mean().item():.1f}%)")
    print(f"initial texture PSNR (visible texels): {psnr0:.2f} dB  image MSE: {img_err0:.3e}")
    print(f"final texture PSNR (visible texels): {psnr1:.2f} dB  image MSE: {img_err:.3e}")
    print(f"wrote {args.out}/target.png, before.png, after.png, texture_target.png, texture_after.png, "
          f"optimization.gif")
    return {"texture_psnr": psnr1, "initial_texture_psnr": psnr0, "image_mse": img_err,
            "initial_image_mse": img_err0, "visible_fraction": visible.float().mean().item(), "time_s": elapsed}


if __name__ == "__main__":
    main()
