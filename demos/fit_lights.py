"""Recover two coloured point lights (colours and positions) from images of a lit mesh.

    python demos/fit_lights.py                      # Stanford bunny if ../shared has it, else a built-in shape
    python demos/fit_lights.py --mesh none          # force the built-in (procedural) shape
    python demos/fit_lights.py --mesh path/to/mesh.obj

Inverse lighting: a grey mesh is lit (Lambert, small fixed ambient) by a teal point light on its
left and a purple one on its right, and rendered from a few fixed cameras. The optimisation starts
from two white lights, one above and one below the mesh, and recovers both lights' colours and
positions with Adam on the image loss. Hard-mode rendering shades per pixel (interpolated position
and normal), so the loss is differentiable in every light parameter. Headless: writes target /
before / after PNG strips and an optimisation GIF, and prints the final colour error (mean RGB
distance) and position error (mean distance, world units).
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

TEAL = (0.1, 0.9, 0.8)
PURPLE = (0.75, 0.2, 0.95)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mesh", help="mesh file, or 'none' for the built-in shape; default: the Stanford bunny "
                                  "(../shared/meshes/bunny.obj) when present, else the built-in shape")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--size", type=int, default=64, help="image size in pixels")
    p.add_argument("--views", type=int, default=3)
    p.add_argument("--distance", type=float, default=2.0, help="distance of the lights from the centre")
    p.add_argument("--attenuation", type=float, default=0.0, help="point-light falloff 1 / (1 + k d^2)")
    p.add_argument("--lr", type=float, default=0.1)
    add_output_args(p, "fit_lights")
    add_live_args(p)
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)

    verts, faces, mesh_name = bunny_or_builtin(args.mesh)
    albedo = torch.full((verts.shape[0], 3), 0.8)
    cams = ring_cameras(args.views, args.size, 3.2, az_offset_deg=0.0, el_up_deg=20.0, el_down_deg=-15.0)
    material = tr.Material(model="lambert")
    ambient = torch.tensor([0.08, 0.08, 0.08])
    d = args.distance

    # ground truth: teal on the left (-x), purple on the right (+x), both slightly in front
    pos_gt = torch.tensor([[-d, 0.3, 0.6], [d, -0.2, 0.6]])
    col_gt = torch.tensor([TEAL, PURPLE]) * 1.3
    # initial guess: white lights at the top and the bottom
    pos0 = torch.tensor([[0.0, d, 0.3], [0.0, -d, 0.3]])
    col0 = torch.ones(2, 3)

    def render(pos, col):
        lights = tr.Lights(point_positions=pos, point_colors=col, ambient=ambient, attenuation=args.attenuation)
        return tr.render(verts, faces, cams, colors=albedo, mode="hard", lights=lights, material=material,
                         background=0.0)

    with torch.no_grad():
        target = render(pos_gt, col_gt)
        before = render(pos0, col0)

    pos = pos0.clone().requires_grad_(True)
    col = col0.clone().requires_grad_(True)
    opt = torch.optim.Adam([{"params": [pos], "lr": args.lr * 2}, {"params": [col], "lr": args.lr}])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(args.steps, 1), eta_min=args.lr * 0.05)

    def errors(P, C):
        """Mean colour and position error, under the better of the two light orderings."""
        best = None
        for perm in ((0, 1), (1, 0)):
            ce = (C.detach()[list(perm)] - col_gt).norm(dim=1).mean().item()
            pe = (P.detach()[list(perm)] - pos_gt).norm(dim=1).mean().item()
            if best is None or ce + pe < best[0] + best[1]:
                best = (ce, pe)
        return best

    err0 = errors(pos0, col0)
    frames = []
    it = progress(args.steps, "fit_lights", quiet=args.quiet)
    live = make_live(args, "fit_lights", [pos, col], [opt])
    t_start = time.time()
    for step in it:
        img = render(pos, col)
        loss = ((img - target) ** 2).mean()
        live.update(step, target, img, loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            col.clamp_(min=0.0)
        if hasattr(it, "set_postfix") and step % 10 == 0:
            ce, pe = errors(pos, col)
            it.set_postfix(loss=f"{loss.item():.5f}", col_err=f"{ce:.3f}", pos_err=f"{pe:.3f}")
        if step % args.gif_every == 0 or step == args.steps - 1:
            frames.append(compare_strip(img, target))
    elapsed = time.time() - t_start
    live.close()

    with torch.no_grad():
        after = render(pos, col)
    col_err, pos_err = errors(pos, col)
    os.makedirs(args.out, exist_ok=True)
    for name, img in (("target", target), ("before", before), ("after", after)):
        trio.save_image(os.path.join(args.out, f"{name}.png"), rgba_strip(img).clamp(0, 1))
    trio.save_gif(os.path.join(args.out, "optimization.gif"), frames, fps=10)
    print(f"steps: {args.steps}  time: {elapsed:.1f} s ({1000 * elapsed / max(args.steps, 1):.0f} ms/step, "
          f"{args.views} views of {args.size}x{args.size}, {mesh_name}: {faces.shape[0]} faces, "
          f"arch {tr.runtime.arch()})")
    print(f"initial colour error: {err0[0]:.4f}  position error: {err0[1]:.4f}")
    print(f"final colour error: {col_err:.4f}  position error: {pos_err:.4f}")
    print("recovered colours:", [[round(x, 3) for x in c] for c in col.detach().tolist()],
          " positions:", [[round(x, 3) for x in q] for q in pos.detach().tolist()])
    print(f"wrote {args.out}/target.png, before.png, after.png, optimization.gif")
    return {"color_error": col_err, "position_error": pos_err,
            "initial_color_error": err0[0], "initial_position_error": err0[1], "time_s": elapsed}


if __name__ == "__main__":
    main()
