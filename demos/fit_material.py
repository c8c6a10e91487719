"""Recover a mesh's per-vertex albedo from images under known lights.

    python demos/fit_material.py                    # Stanford bunny if ../shared has it, else a built-in shape
    python demos/fit_material.py --mesh none        # force the built-in (procedural) shape
    python demos/fit_material.py --mesh path/to/mesh.obj

Inverse rendering of reflectance: the mesh (purple albedo) is lit by fixed lights (ambient, a
white key point light and a dimmer fill light, Lambert) and rendered from a few cameras. The
optimisation starts from a green albedo and recovers the per-vertex colours with Adam on the
hard-mode image loss (per-pixel shading; gradients reach the albedo through interpolation).
Only vertices of faces that some camera sees can be recovered: the reported error is the mean
RGB distance to the ground truth over those (visible = referenced by a rendered face id).
Headless: writes target / before / after PNG strips and an optimisation GIF.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import torch

import taichirast as tr
from taichirast import io as trio

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import add_output_args, bunny_or_builtin, rgba_strip, ring_cameras, add_live_args, make_live, progress, compare_strip  # noqa: E402

PURPLE = (0.55, 0.2, 0.75)
GREEN = (0.2, 0.75, 0.25)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mesh", help="mesh file, or 'none' for the built-in shape; default: the Stanford bunny "
                                  "(../shared/meshes/bunny.obj) when present, else the built-in shape")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--size", type=int, default=96, help="image size in pixels")
    p.add_argument("--views", type=int, default=3)
    p.add_argument("--lr", type=float, default=0.05)
    add_output_args(p, "fit_material", gif_every=3)
    add_live_args(p)
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)

    verts, faces, mesh_name = bunny_or_builtin(args.mesh)
    V = verts.shape[0]
    cams = ring_cameras(args.views, args.size, 3.2, az_offset_deg=15.0, el_up_deg=25.0, el_down_deg=-20.0)
    lights = tr.Lights(point_positions=[[2.0, 2.5, 2.5], [-2.5, 0.5, -1.5]],
                       point_colors=[[1.0, 1.0, 1.0], [0.45, 0.45, 0.45]], ambient=[0.25, 0.25, 0.25])
    material = tr.Material(model="lambert")
    alb_gt = torch.tensor(PURPLE).expand(V, 3).contiguous()
    alb0 = torch.tensor(GREEN).expand(V, 3).contiguous()

    def render(alb, **kw):
        return tr.render(verts, faces, cams, colors=alb, mode="hard", lights=lights, material=material,
                         background=0.0, **kw)

    with torch.no_grad():
        target, frags = render(alb_gt, return_fragments=True)
        before = render(alb0)
    # visible vertices: corners of a face some camera rasterized
    fid = frags.face_id[frags.face_id >= 0].long().unique()
    visible = torch.zeros(V, dtype=torch.bool)
    visible[faces[fid].long().reshape(-1)] = True

    def error(alb):
        return (alb.detach()[visible] - alb_gt[visible]).norm(dim=1).mean().item()

    alb = alb0.clone().requires_grad_(True)
    opt = torch.optim.Adam([alb], lr=args.lr)
    err0 = error(alb0)
    frames = []
    it = progress(args.steps, "fit_material", quiet=args.quiet)
    live = make_live(args, "fit_material", [alb], [opt])
    t_start = time.time()
    for step in it:
        img = render(alb)
        loss = ((img - target) ** 2).mean()
        live.update(step, target, img, loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            alb.clamp_(0.0, 1.0)
        if hasattr(it, "set_postfix") and step % 5 == 0:
            it.set_postfix(loss=f"{loss.item():.5f}", albedo_err=f"{error(alb):.4f}")
        if step % args.gif_every == 0 or step == args.steps - 1:
            frames.append(compare_strip(img, target))
    elapsed = time.time() - t_start
    live.close()

    with torch.no_grad():
        after = render(alb)
    err = error(alb)
    os.makedirs(args.out, exist_ok=True)
    for name, img in (("target", target), ("before", before), ("after", after)):
        trio.save_image(os.path.join(args.out, f"{name}.png"), rgba_strip(img).clamp(0, 1))
    trio.save_gif(os.path.join(args.out, "optimization.gif"), frames, fps=10)
    n_vis = int(visible.sum())
    print(f"steps: {args.steps}  time: {elapsed:.1f} s ({1000 * elapsed / max(args.steps, 1):.0f} ms/step, "
          f"{args.views} views of {args.size}x{args.size}, {mesh_name}: {faces.shape[0]} faces, "
          f"arch {tr.runtime.arch()})")
    print(f"visible vertices: {n_vis} of {V}")
    print(f"initial albedo error (visible vertices): {err0:.4f}")
    print(f"final albedo error (visible vertices): {err:.4f}")
    print(f"wrote {args.out}/target.png, before.png, after.png, optimization.gif")
    return {"albedo_error": err, "initial_albedo_error": err0, "visible_vertices": n_vis, "time_s": elapsed}


if __name__ == "__main__":
    main()
