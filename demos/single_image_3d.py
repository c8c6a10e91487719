"""Single-image 3D reconstruction the DIB-R / SoftRas way: a CNN looks at one picture of an object
and predicts a coloured mesh (offsets and colours of a template sphere's vertices), trained only
from 2D supervision rendered by taichirast.

Data: procedural coloured shapes of 5 categories (box, ellipsoid, cylinder, cone, pyramid) with
random proportions, yaw and colour, generated on the fly from ``--seed``; held-out shapes come
from another seed. Each shape is rendered (hard rasterization) from the input view and from
``--views`` supervision views around it.

Model: a 4-layer strided CNN encoder (64 x 64 RGB input) -> 256-d code -> a linear decoder to
per-vertex offsets (tanh-bounded) and colours (sigmoid) of an icosphere template (642 vertices).

Loss, on the soft-rasterized (SoftRas) renders of the prediction from every supervision view:
``1 - soft IoU`` of the silhouettes + colour L1 inside the target silhouette, plus Laplacian,
edge-length and normal-consistency regularisers (``taichirast.geometry``). No 3D supervision.

Evaluation on held-out shapes, per category: voxel 3D IoU (32^3 grid, inside = winding number >
1/2), chamfer distance and F-score at 0.1 on 2,000 surface samples against the ground-truth
meshes, and the same numbers for the untrained template (a sphere) as a baseline.

    python demos/single_image_3d.py                 # default run (minutes on 2 CPU cores)
    python demos/single_image_3d.py --smoke         # tiny configuration for CI (seconds)
    python demos/single_image_3d.py --resume        # continue from OUT/checkpoint.pt
    torchrun --standalone --nproc_per_node=2 demos/single_image_3d.py   # DDP: each process a share of every batch

Writes ``OUT/checkpoint.pt`` (every ``--ckpt-every`` steps and at the end; ``--resume`` continues
from it), ``OUT/metrics.json`` (the per-category table), ``OUT/reconstructions.png`` (rows of
held-out shapes: input | prediction from two novel views | ground truth from the same views) and
prints the table.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import taichirast as tr  # noqa: E402
from taichirast import distributed  # noqa: E402
from taichirast import io as trio  # noqa: E402
from taichirast import meshes  # noqa: E402
from taichirast import tensorboard as tb  # noqa: E402
from taichirast.geometry import (chamfer_distance, edge_length_loss, fscore, laplacian_smoothing,  # noqa: E402
                                 normal_consistency, sample_points)

from _common import add_output_args, add_tensorboard_arg, progress, superellipsoid, tensorboard_writer  # noqa: E402

CATEGORIES = ("box", "ellipsoid", "cylinder", "cone", "pyramid")
INPUT_VIEW = (35.0, 25.0)                      # azimuth, elevation (degrees) of the input picture
NOVEL_VIEWS = ((125.0, 15.0), (-100.0, 40.0))  # the evaluation image's two novel views


# ----------------------------------------------------------------------------- data
def make_shape(category, rng):
    """A closed mesh of ``category`` with random proportions and yaw, fitting in the unit sphere,
    and its colour: ``(verts (V, 3) float32, faces (F, 3) int64, rgb (3,) float32)``."""
    if category == "box":
        v, f = superellipsoid(level=3, power=8.0)
    elif category == "ellipsoid":
        v, f = meshes.icosphere(3)
    elif category == "cylinder":
        v, f = meshes.cylinder(n=24, height=2.0, radius=1.0)
    elif category == "cone":
        v, f = meshes.cone(n=24, height=2.0, radius=1.0)
    elif category == "pyramid":
        v, f = meshes.cone(n=4, height=2.0, radius=1.2)
    else:
        raise ValueError(f"unknown category {category!r}; choose from {CATEGORIES}")
    v = np.asarray(v, np.float64)
    if category in ("cylinder", "cone", "pyramid"):  # their axis is z: stand them up (y up)
        v = v[:, [0, 2, 1]]
        f = np.asarray(f)[:, ::-1]  # the axis swap mirrors: keep the winding outward
    v = v * rng.uniform(0.45, 1.0, 3)
    yaw = rng.uniform(-math.pi, math.pi)
    c, s = math.cos(yaw), math.sin(yaw)
    v = v @ np.array([[c, 0.0, -s], [0.0, 1.0, 0.0], [s, 0.0, c]])
    v = v - (v.min(0) + v.max(0)) / 2
    v = v * (0.9 / np.linalg.norm(v, axis=1).max())
    rgb = rng.uniform(0.15, 0.95, 3)
    return v.astype(np.float32), np.ascontiguousarray(f, dtype=np.int64), rgb.astype(np.float32)


def cameras(views, size):
    """Perspective cameras at distance 2.6 looking at the origin from ``(azimuth, elevation)`` pairs."""
    eyes = []
    for az, el in views:
        a, e = math.radians(az), math.radians(el)
        eyes.append([2.6 * math.cos(e) * math.sin(a), -2.6 * math.sin(e), 2.6 * math.cos(e) * math.cos(a)])
    return tr.PerspectiveCamera.look_at(torch.tensor(eyes), fov_y=40.0, image_size=(size, size), near=0.1, far=10.0)


def supervision_views(n):
    """The input view and ``n - 1`` more spread around the object."""
    az0, el0 = INPUT_VIEW
    return [INPUT_VIEW] + [(az0 + 360.0 * k / n, el0 if k % 2 else -10.0) for k in range(1, n)]


def render_rgba(verts, faces, rgb, cams):
    """Hard-rasterized RGBA ``(n_views, H, W, 4)`` of one mesh with a uniform colour."""
    v = torch.from_numpy(verts)
    cols = torch.from_numpy(rgb).expand(v.shape[0], 3).contiguous()
    with torch.no_grad():
        return tr.render(v, torch.from_numpy(faces), cams, colors=cols, mode="hard", background=(1.0, 1.0, 1.0))


def make_dataset(n, seed, size, n_views):
    """``n`` shapes (categories in turn): meshes, input images ``(n, 3, S, S)`` and supervision
    renders ``(n, n_views, S, S, 4)``."""
    rng = np.random.default_rng(seed)
    in_cam, sup_cams = cameras([INPUT_VIEW], size), cameras(supervision_views(n_views), size)
    shapes, inputs, targets = [], [], []
    for i in range(n):
        cat = CATEGORIES[i % len(CATEGORIES)]
        v, f, rgb = make_shape(cat, rng)
        shapes.append((cat, v, f, rgb))
        inputs.append(render_rgba(v, f, rgb, in_cam)[0, ..., :3].permute(2, 0, 1))
        targets.append(render_rgba(v, f, rgb, sup_cams))
    return shapes, torch.stack(inputs), torch.stack(targets)


# ----------------------------------------------------------------------------- model
class Reconstructor(nn.Module):
    """Image -> per-vertex offsets and colours of a template icosphere."""

    def __init__(self, template, code=256):
        super().__init__()
        self.register_buffer("template", template)
        V = template.shape[0]
        chans = (3, 32, 64, 128, 256)
        layers = []
        for a, b in zip(chans[:-1], chans[1:]):
            layers += [nn.Conv2d(a, b, 4, stride=2, padding=1), nn.BatchNorm2d(b), nn.ReLU(inplace=True)]
        self.encoder = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(256 * 4, code),
                                     nn.ReLU(inplace=True))
        self.offsets = nn.Linear(code, V * 3)
        self.colors = nn.Linear(code, V * 3)
        nn.init.zeros_(self.offsets.weight)
        nn.init.zeros_(self.offsets.bias)

    def forward(self, images):
        z = self.encoder(images)
        B = images.shape[0]
        verts = self.template + 0.6 * torch.tanh(self.offsets(z).view(B, -1, 3))
        cols = torch.sigmoid(self.colors(z).view(B, -1, 3))
        return verts, cols


def render_views(verts, faces, cols, cams, sigma):
    """Soft renders ``(B, n_views, H, W, 4)`` of a batch of predicted meshes; ``cams`` is a list of
    single cameras (the batch dimension is the meshes')."""
    views = [tr.render(verts, faces, cam, colors=cols, mode="soft", sigma=sigma, gamma=1e-4,
                       background=torch.ones(3)) for cam in cams]
    return torch.stack(views, 1)


def loss_terms(pred, target, verts, faces, w):
    a, t = pred[..., 3], target[..., 3]
    inter = (a * t).sum((-1, -2))
    union = (a + t - a * t).sum((-1, -2)).clamp_min(1e-6)
    iou_loss = (1 - inter / union).mean()
    color_loss = ((pred[..., :3] - target[..., :3]).abs().sum(-1) * t).sum() / t.sum().clamp_min(1.0) / 3
    reg = (w["laplacian"] * laplacian_smoothing(verts, faces) + w["edge"] * edge_length_loss(verts, faces)
           + w["normal"] * normal_consistency(verts, faces))
    return iou_loss, color_loss, reg


# ----------------------------------------------------------------------------- evaluation
def winding_inside(verts, faces, points, chunk=2048):
    """Generalised winding number of a closed mesh at ``points (N, 3)`` > 1/2: inside (bool (N,))."""
    tri = verts.float()[faces]  # (F, 3, 3)
    out = []
    for q in points.split(chunk):
        a, b, c = (tri[None, :, i] - q[:, None] for i in range(3))
        la, lb, lc = a.norm(dim=-1), b.norm(dim=-1), c.norm(dim=-1)
        det = (a * torch.cross(b, c, dim=-1)).sum(-1)
        den = la * lb * lc + (a * b).sum(-1) * lc + (b * c).sum(-1) * la + (c * a).sum(-1) * lb
        out.append(torch.atan2(det, den).sum(-1) / (2 * math.pi) > 0.5)
    return torch.cat(out)


def grid_points(res):
    """Voxel centres of a ``res``^3 grid over [-1, 1]^3, ``(res^3, 3)``."""
    g = (torch.arange(res, dtype=torch.float32) + 0.5) / res * 2 - 1
    return torch.stack(torch.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)


def iou(a, b):
    return float((a & b).sum()) / max(float((a | b).sum()), 1.0)


def evaluate(model, shapes, inputs, faces, n_points=2000, batch=16, res=32):
    """Per-shape (who, category, 3D IoU, chamfer, F-score@0.1) of the model and of the bare
    template (who = 'model' / 'template')."""
    model.eval()
    rows = []
    gen = torch.Generator().manual_seed(0)
    pts = grid_points(res)
    template_in = winding_inside(model.template, faces, pts)
    template_pts = sample_points(model.template, faces, n_points, generator=gen)
    with torch.no_grad():
        for s in range(0, len(shapes), batch):
            verts, _ = model(inputs[s:s + batch])
            for k, (cat, gv, gf, _) in enumerate(shapes[s:s + batch]):
                gv_t, gf_t = torch.from_numpy(gv), torch.from_numpy(gf)
                gt_in = winding_inside(gv_t, gf_t, pts)
                gp = sample_points(gv_t, gf_t, n_points, generator=gen)
                pp = sample_points(verts[k], faces, n_points, generator=gen)
                for who, p_in, p_pts in (("model", winding_inside(verts[k], faces, pts), pp),
                                         ("template", template_in, template_pts)):
                    cd = float(chamfer_distance(p_pts[None], gp[None]))
                    f1 = float(fscore(p_pts[None], gp[None], 0.1)[2])
                    rows.append((who, cat, iou(p_in, gt_in), cd, f1))
    model.train()
    return rows


def table(rows):
    """Per-category means: {who: {category: (iou, chamfer, fscore)}} plus 'mean'."""
    out = {}
    for who in ("model", "template"):
        out[who] = {}
        for cat in (*CATEGORIES, "mean"):
            sel = [r for r in rows if r[0] == who and (cat == "mean" or r[1] == cat)]
            if sel:
                out[who][cat] = tuple(float(np.mean([r[i] for r in sel])) for i in (2, 3, 4))
    return out


def print_table(t, n_test):
    print(f"held-out shapes: {n_test} ({n_test // len(CATEGORIES)} per category)")
    print("| category | 3D IoU | chamfer | F@0.1 | template IoU | template F@0.1 |")
    print("|---|---:|---:|---:|---:|---:|")
    for cat in (*CATEGORIES, "mean"):
        if cat in t["model"]:
            m, b = t["model"][cat], t["template"][cat]
            print(f"| {cat} | {m[0]:.3f} | {m[1]:.4f} | {m[2]:.3f} | {b[0]:.3f} | {b[2]:.3f} |")


def picture(model, inputs, shapes, faces, size, n=5):
    """Rows: input | prediction from the two novel views | ground truth from the same views."""
    cams = [cameras([v], size) for v in NOVEL_VIEWS]
    rows = []
    model.eval()
    with torch.no_grad():
        verts, cols = model(inputs[:n])
        pred = render_views(verts, faces, cols, cams, sigma=1e-5)
    model.train()
    for k in range(min(n, len(shapes))):
        _, gv, gf, rgb = shapes[k]
        gt = render_rgba(gv, gf, rgb, cameras(NOVEL_VIEWS, size))
        cells = [inputs[k].permute(1, 2, 0)] + [pred[k, j, ..., :3] for j in range(2)] + [gt[j, ..., :3] for j in range(2)]
        rows.append(torch.cat(cells, 1))
    return torch.cat(rows, 0).clamp(0, 1)


# ----------------------------------------------------------------------------- main
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--train", type=int, default=500, help="training shapes")
    p.add_argument("--test", type=int, default=50, help="held-out shapes")
    p.add_argument("--steps", type=int, default=None, help="training steps (default 1500; 6 with --smoke)")
    p.add_argument("--batch", type=int, default=None, help="shapes per step, over all processes (16; 5 with --smoke)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--size", type=int, default=64, help="image size of every view")
    p.add_argument("--views", type=int, default=3, help="supervision views per object (>= 2)")
    p.add_argument("--level", type=int, default=3, help="template icosphere level (3: 642 vertices)")
    p.add_argument("--sigma", type=float, default=3e-4, help="SoftRas sigma of the training renders")
    p.add_argument("--laplacian", type=float, default=0.5)
    p.add_argument("--edge", type=float, default=0.5)
    p.add_argument("--normal", type=float, default=0.02)
    p.add_argument("--color", type=float, default=1.0, help="weight of the colour L1")
    p.add_argument("--ckpt-every", type=int, default=250)
    p.add_argument("--eval-res", type=int, default=32, help="voxel grid of the 3D IoU")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--smoke", action="store_true", help="tiny configuration for CI (seconds)")
    add_output_args(p, "single_image_3d")
    add_tensorboard_arg(p)
    args = p.parse_args(argv)
    if args.smoke:
        args.train, args.test, args.size, args.level = 10, 5, 32, 2
        args.ckpt_every, args.eval_res = 3, 16
    if args.steps is None:
        args.steps = 6 if args.smoke else 1500
    if args.batch is None:
        args.batch = 5 if args.smoke else 16
    if args.views < 2:
        p.error(f"--views must be >= 2, got {args.views}")
    ctx = distributed.init(device="cpu")  # rank 0 of 1 unless started by torchrun; CPU tensors: gloo
    if args.batch % ctx.world_size:
        p.error(f"--batch {args.batch} must be a multiple of the {ctx.world_size} processes")
    main_proc = distributed.is_main(ctx)
    torch.manual_seed(args.seed)
    t_data = time.time()
    shapes, inputs, targets = make_dataset(args.train, args.seed, args.size, args.views)
    test_shapes, test_inputs, _ = make_dataset(args.test, args.seed + 10_000, args.size, args.views)
    t_data = time.time() - t_data
    tv, tf = meshes.icosphere(args.level, radius=0.6)
    template, faces = torch.from_numpy(tv), torch.from_numpy(tf)
    net = model = Reconstructor(template)  # same seed, same initial weights in every process
    if ctx.distributed:  # torchrun: each process renders and backpropagates its share of every batch
        model = torch.nn.parallel.DistributedDataParallel(net)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    sup_cams = [cameras([v], args.size) for v in supervision_views(args.views)]
    weights = dict(laplacian=args.laplacian, edge=args.edge, normal=args.normal)
    os.makedirs(args.out, exist_ok=True)
    ckpt = os.path.join(args.out, "checkpoint.pt")
    start, elapsed = 0, 0.0
    if args.resume and os.path.exists(ckpt):
        state = torch.load(ckpt)
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        start, elapsed = state["step"], state["elapsed"]
        if main_proc:
            print(f"resumed from {ckpt} at step {start}")
    gen = np.random.default_rng(args.seed + 1 + start)  # the same global batches in every process
    tbw = tensorboard_writer(args) if main_proc else None
    it = progress(args.steps - start, "single_image_3d", quiet=args.quiet or not main_proc)
    t0 = time.time()
    for i in it:
        step = start + i
        idx = gen.choice(len(shapes), size=min(args.batch, len(shapes)), replace=False)
        idx = torch.tensor(distributed.shard(idx, ctx))
        verts, cols = model(inputs[idx])
        pred = render_views(verts, faces, cols, sup_cams, args.sigma)
        iou_l, col_l, reg = loss_terms(pred, targets[idx], verts, faces, weights)
        loss = iou_l + args.color * col_l + reg
        opt.zero_grad()
        loss.backward()
        opt.step()
        if hasattr(it, "set_postfix") and step % 10 == 0:
            it.set_postfix(iou=f"{1 - float(iou_l):.3f}", color=f"{float(col_l):.3f}")
        if tbw is not None:
            tb.add_scalars(tbw, {"loss": loss, "soft_iou": 1 - iou_l, "color_l1": col_l}, step)
        if main_proc and ((step + 1) % args.ckpt_every == 0 or step + 1 == args.steps):
            torch.save({"model": net.state_dict(), "opt": opt.state_dict(), "step": step + 1,
                        "elapsed": elapsed + time.time() - t0, "args": vars(args)}, ckpt)
    elapsed += time.time() - t0
    if not main_proc:
        distributed.finish(ctx)
        return None
    model = net
    rows = evaluate(model, test_shapes, test_inputs, faces, n_points=500 if args.smoke else 2000, res=args.eval_res)
    t = table(rows)
    img = picture(model, test_inputs, test_shapes, faces, args.size)
    path = os.path.join(args.out, "reconstructions.png")
    trio.save_image(path, img)
    if tbw is not None:
        tb.add_image(tbw, "input | prediction (2 novel views) | ground truth", img, args.steps)
        with torch.no_grad():
            v0, c0 = model.eval()(test_inputs[:1])
        tb.add_mesh(tbw, "prediction", v0[0], faces, c0[0], args.steps)
        tbw.close()
    res = {"table": t, "train_time_s": elapsed, "data_time_s": t_data, "steps": args.steps, "train_shapes": args.train,
           "test_shapes": args.test, "size": args.size, "views": args.views, "image": path,
           "arch": tr.runtime.arch()}
    with open(os.path.join(args.out, "metrics.json"), "w") as fh:
        json.dump(res, fh, indent=2)
    print(f"trained {args.steps} steps on {args.train} shapes in {elapsed:.0f} s (data {t_data:.0f} s), "
          f"arch {tr.runtime.arch()}")
    print_table(t, args.test)
    print(f"wrote {path} (rows: input | prediction from two novel views | ground truth from the same views)")
    distributed.finish(ctx)
    return res


if __name__ == "__main__":
    main()
