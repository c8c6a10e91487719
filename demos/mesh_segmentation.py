"""Semantic part segmentation of meshes with a FeaStNet-style network (taichirast.nn), trained on the CPU.

The data set is generated in code: procedural "creatures" assembled from primitives -- an
ellipsoid body, a round head, four legs and a tail (elongated ellipsoids) -- with random
proportions, poses (leg swing and splay, tail pitch, head height), a small random yaw, scale and
per-vertex noise. Every vertex is labelled by the part it came from (body / head / leg / tail).

The network follows TF Graphics' mesh-segmentation example (FeaStNet, Verma et al. 2018): a
per-vertex linear layer, a stack of ``FeatureSteeredConv`` layers (M = 8 weight matrices,
translation-invariant soft assignment, 1-ring + self neighbourhoods, row-normalised) with ReLU, and
a per-vertex classifier. Shapes of a mini-batch are packed into one graph (``pack_graphs``).
The feature-steered aggregation runs in the fused Taichi kernel (``taichirast.nn``'s default).

    python demos/mesh_segmentation.py                 # default: a few minutes on 2 CPU cores
    python demos/mesh_segmentation.py --smoke         # tiny configuration (CI), a few seconds
    python demos/mesh_segmentation.py --model unet    # a two-level mesh U-Net (vertex-clustering pooling)
    torchrun --nproc_per_node=2 demos/mesh_segmentation.py --smoke   # DistributedDataParallel, gloo on CPUs

Under ``torchrun`` each process (its own Taichi runtime) trains on its share of every batch and
DistributedDataParallel averages the gradients (``taichirast.distributed``); rank 0 evaluates and
writes the outputs. ``--batch`` must then be a multiple of the number of processes.

Writes ``OUT/segmentation.png`` (two views of a held-out creature; top row coloured by the
predicted part, bottom row by the ground truth; rendered with ``taichirast.render``) and
``OUT/metrics.json``; prints the per-vertex accuracy on held-out shapes.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# torch's idle OpenMP threads spin and starve Taichi's kernel threads on a small machine (measured
# here: 420 -> 24 ms per smoke-config training step); let them sleep (as benchmarks/run.py does).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import taichirast as tr  # noqa: E402
from taichirast import io as trio  # noqa: E402
from taichirast import distributed, meshes  # noqa: E402
from taichirast import tensorboard as tb  # noqa: E402
from taichirast.nn import (FeatureSteeredConv, graph_pool, graph_unpool, mesh_graph, mesh_hierarchy,  # noqa: E402
                           pack_graphs)

from _common import add_output_args, add_tensorboard_arg, progress, rgba_strip, ring_cameras, tensorboard_writer  # noqa: E402

PARTS = ("body", "head", "leg", "tail")
PALETTE = torch.tensor([[0.85, 0.75, 0.45], [0.85, 0.3, 0.3], [0.25, 0.45, 0.85], [0.3, 0.75, 0.35]])


# ----------------------------------------------------------------------------------- data set
def _rotation_to(d):
    """3x3 rotation taking +z to the unit vector ``d``."""
    z = np.array([0.0, 0.0, 1.0])
    v = np.cross(z, d)
    s, c = np.linalg.norm(v), float(np.dot(z, d))
    if s < 1e-9:
        return np.eye(3) if c > 0 else np.diag([1.0, -1.0, -1.0])
    k = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]]) / s
    a = math.atan2(s, c)
    return np.eye(3) + math.sin(a) * k + (1 - math.cos(a)) * k @ k


def _ellipsoid(sphere, center, radii, direction=None):
    v, f = sphere
    p = v * np.asarray(radii)
    if direction is not None:
        p = p @ _rotation_to(direction / np.linalg.norm(direction)).T
    return p + np.asarray(center), f


def make_creature(rng, level=2, limb_level=1, noise=0.01):
    """One random creature: ``(verts (V, 3) float32, faces (F, 3) int64, labels (V,) int64)``.

    Axes: x forward (head at +x), y up, z sideways. Labels index :data:`PARTS`.
    """
    big, small = meshes.icosphere(level), meshes.icosphere(limb_level)
    L, H, W = rng.uniform(1.2, 1.9), rng.uniform(0.5, 0.85), rng.uniform(0.5, 0.85)
    parts = [(_ellipsoid(big, (0, 0, 0), (L / 2, H / 2, W / 2)), 0)]
    r = rng.uniform(0.22, 0.38)
    head_c = (L / 2 + r * rng.uniform(0.3, 0.9), H / 2 * rng.uniform(0.1, 1.0), 0.0)
    parts.append((_ellipsoid(big, head_c, (r * rng.uniform(1.0, 1.4), r, r)), 1))
    leg_len, leg_r = rng.uniform(0.5, 1.1), rng.uniform(0.07, 0.14)
    for sx in (1, -1):
        for sz in (1, -1):
            swing = math.radians(rng.uniform(-35, 35))  # forward / backward pose
            splay = math.radians(rng.uniform(0, 20))  # outward
            d = np.array([math.sin(swing), -math.cos(swing) * math.cos(splay), sz * math.sin(splay)])
            top = np.array([sx * L / 2 * rng.uniform(0.45, 0.7), -H / 2 * 0.7, sz * W / 2 * 0.55])
            parts.append((_ellipsoid(small, top + d * leg_len / 2, (leg_r, leg_r, leg_len / 2), d), 2))
    t_len, t_r = rng.uniform(0.4, 1.0), rng.uniform(0.05, 0.1)
    pitch = math.radians(rng.uniform(-10, 70))
    d = np.array([-math.cos(pitch), math.sin(pitch), rng.uniform(-0.2, 0.2)])
    d /= np.linalg.norm(d)
    root = np.array([-L / 2 * 0.9, H * 0.1, 0.0])
    parts.append((_ellipsoid(small, root + d * t_len / 2, (t_r, t_r, t_len / 2), d), 3))

    vs, fs, ls, n = [], [], [], 0
    for (v, f), lab in parts:
        vs.append(v)
        fs.append(f + n)
        ls.append(np.full(v.shape[0], lab))
        n += v.shape[0]
    v = np.concatenate(vs)
    yaw = math.radians(rng.uniform(-20, 20))
    R = np.array([[math.cos(yaw), 0, math.sin(yaw)], [0, 1, 0], [-math.sin(yaw), 0, math.cos(yaw)]])
    v = v @ R.T * rng.uniform(0.85, 1.15)
    v = v - (v.min(0) + v.max(0)) / 2
    v = v + rng.normal(0, noise, v.shape)
    return (torch.as_tensor(v, dtype=torch.float32), torch.as_tensor(np.concatenate(fs), dtype=torch.long),
            torch.as_tensor(np.concatenate(ls), dtype=torch.long))


def make_dataset(n, seed, **kw):
    """``n`` creatures ``(verts, faces, labels, graph)``; each graph built once (1-ring + self, row-normalised)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        v, f, lab = make_creature(rng, **kw)
        out.append((v, f, lab, mesh_graph(f, v.shape[0])))
    return out


# ----------------------------------------------------------------------------------- network
class FeaStNet(nn.Module):
    """Per-vertex part classifier: Linear -> [FeatureSteeredConv -> ReLU] x k -> Linear -> ReLU -> Linear."""

    def __init__(self, in_channels=3, widths=(32, 64, 64, 64), num_classes=len(PARTS), num_weights=8):
        super().__init__()
        self.lin_in = nn.Linear(in_channels, widths[0])
        self.convs = nn.ModuleList(FeatureSteeredConv(a, b, num_weights=num_weights)
                                   for a, b in zip(widths[:-1], widths[1:]))
        self.head = nn.Sequential(nn.Linear(widths[-1], 64), nn.ReLU(), nn.Linear(64, num_classes))

    def forward(self, x, graph):
        h = torch.relu(self.lin_in(x))
        for conv in self.convs:
            h = torch.relu(conv(h, graph))
        return self.head(h)


class FeaStUNet(nn.Module):
    """A two-level mesh U-Net: FeaSt convs on the mesh, max-pool to a vertex-clustering level
    (``mesh_hierarchy``, voxel ``voxel``), FeaSt convs there, unpool, concatenate the skip
    features, FeaSt conv, per-vertex classifier. The hierarchy is built from the input positions
    on the fly (vertex clustering of a packed batch never mixes shapes)."""

    def __init__(self, in_channels=3, width=32, num_classes=len(PARTS), num_weights=8, voxel=0.2):
        super().__init__()
        self.voxel = voxel
        self.lin_in = nn.Linear(in_channels, width)
        self.enc = FeatureSteeredConv(width, width, num_weights)
        self.low1 = FeatureSteeredConv(width, 2 * width, num_weights)
        self.low2 = FeatureSteeredConv(2 * width, 2 * width, num_weights)
        self.dec = FeatureSteeredConv(3 * width, 2 * width, num_weights)
        self.head = nn.Sequential(nn.Linear(2 * width, 64), nn.ReLU(), nn.Linear(64, num_classes))

    def forward(self, x, graph):
        lvl = mesh_hierarchy(x.detach(), graph, [self.voxel])[0]
        h1 = torch.relu(self.enc(torch.relu(self.lin_in(x)), graph))
        h2 = graph_pool(h1, lvl.cluster, lvl.num_vertices, reduce="max")
        h2 = torch.relu(self.low2(torch.relu(self.low1(h2, lvl.graph)), lvl.graph))
        h = torch.cat([h1, graph_unpool(h2, lvl.cluster)], 1)
        return self.head(torch.relu(self.dec(h, graph)))


def batch_of(shapes):
    """Pack ``[(verts, faces, labels, graph), ...]`` -> ``(x, graph, labels)`` (PyTorch3D-style packing)."""
    return torch.cat([s[0] for s in shapes]), pack_graphs([s[3] for s in shapes]), torch.cat([s[2] for s in shapes])


@torch.no_grad()
def evaluate(model, shapes, batch_size):
    correct = total = 0
    for k in range(0, len(shapes), batch_size):
        x, g, y = batch_of(shapes[k:k + batch_size])
        correct += int((model(x, g).argmax(1) == y).sum())
        total += y.numel()
    return correct / max(total, 1)


# ----------------------------------------------------------------------------------- picture
def render_prediction(model, shape, size):
    """RGB ``(2 * size, 2 * size, 3)``: two views, top predicted parts, bottom ground truth."""
    v, f, lab, graph = shape
    with torch.no_grad():
        pred = model(v, graph).argmax(1)
    cams = ring_cameras(2, size, 4.2, az_offset_deg=35.0, el_up_deg=20.0, el_down_deg=20.0)
    lights = tr.Lights(point_positions=[[3.0, 4.0, 4.0], [-3.0, 2.0, -3.0]],
                       point_colors=[[0.8, 0.8, 0.8], [0.4, 0.4, 0.4]], ambient=[0.35, 0.35, 0.35])
    mat = tr.Material(model="lambert")
    rows = []
    for labels in (pred, lab):
        rgba = tr.render(v, f.int(), cams, colors=PALETTE[labels], mode="hard", lights=lights, material=mat)
        rows.append(rgba_strip(rgba, n=2))
    return torch.cat(rows, 0).clamp(0, 1), pred


# ----------------------------------------------------------------------------------- main
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--train", type=int, default=160, help="training shapes")
    p.add_argument("--test", type=int, default=40, help="held-out shapes")
    p.add_argument("--steps", type=int, default=800)
    p.add_argument("--batch", type=int, default=8, help="shapes per packed mini-batch")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--size", type=int, default=192, help="image size of each view")
    p.add_argument("--model", choices=("feastnet", "unet"), default="feastnet",
                   help="plain FeaSt stack (TF Graphics' example) or a two-level mesh U-Net with pooling")
    p.add_argument("--smoke", action="store_true", help="tiny configuration for CI (a few seconds)")
    add_output_args(p, "mesh_segmentation")
    add_tensorboard_arg(p)
    args = p.parse_args(argv)
    if args.smoke:
        args.train, args.test, args.steps, args.batch, args.size, args.lr = 12, 4, 80, 4, 64, 1e-2
    ctx = distributed.init(device="cpu")  # rank 0 of 1 unless started by torchrun; CPU tensors: gloo
    torch.manual_seed(args.seed)
    level = 1 if args.smoke else 2
    train = make_dataset(args.train, args.seed, level=level)
    test = make_dataset(args.test, args.seed + 10_000, level=level)
    chance = max(float((torch.cat([s[2] for s in test]) == k).float().mean()) for k in range(len(PARTS)))

    if args.model == "unet":
        model = FeaStUNet(width=16 if args.smoke else 32)
    else:
        model = FeaStNet(widths=(16, 32, 32) if args.smoke else (32, 64, 64, 64))
    net = model
    if ctx.distributed:  # torchrun: each process trains on its share of every batch
        model = nn.parallel.DistributedDataParallel(net)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.steps)
    main_proc = distributed.is_main(ctx)
    it = progress(args.steps, "mesh_segmentation", quiet=args.quiet or not main_proc)
    tbw = tensorboard_writer(args) if main_proc else None
    rng = np.random.default_rng(args.seed + 1)  # the same global batches in every process
    t0 = time.time()
    for step in it:
        idx = rng.choice(len(train), size=min(args.batch, len(train)), replace=False)
        x, g, y = batch_of([train[i] for i in distributed.shard(idx, ctx)])
        logits = model(x, g)
        loss = nn.functional.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        batch_acc = float((logits.argmax(1) == y).float().mean())
        if tbw is not None:
            tb.add_scalars(tbw, {"loss": loss, "batch_accuracy": batch_acc}, step)
        if hasattr(it, "set_postfix") and step % 10 == 0:
            it.set_postfix(loss=f"{loss.item():.3f}", acc=f"{batch_acc:.3f}")
    train_time = time.time() - t0
    if not main_proc:
        distributed.finish(ctx)
        return None
    model = net
    model.eval()
    acc = evaluate(model, test, args.batch)
    train_acc = evaluate(model, train, args.batch)

    os.makedirs(args.out, exist_ok=True)
    img, pred = render_prediction(model, test[0], args.size)
    path = os.path.join(args.out, "segmentation.png")
    trio.save_image(path, img)
    shown_acc = float((pred == test[0][2]).float().mean())
    res = {"model": args.model, "accuracy": acc, "train_accuracy": train_acc, "chance": chance, "train_time_s": train_time,
           "steps": args.steps, "train_shapes": args.train, "test_shapes": args.test,
           "shown_shape_accuracy": shown_acc, "image": path}
    with open(os.path.join(args.out, "metrics.json"), "w") as fh:
        json.dump(res, fh, indent=2)
    if tbw is not None:
        tb.add_image(tbw, "predicted | ground truth (held-out shape)", img, args.steps)
        tb.add_scalars(tbw, {"heldout_accuracy": acc, "train_accuracy": train_acc}, args.steps)
        tbw.close()
    nv = int(np.mean([s[0].shape[0] for s in test]))
    print(f"model: {args.model}  steps: {args.steps} ({args.batch} shapes/step, ~{nv} vertices/shape)  training time: {train_time:.1f} s  "
          f"arch {tr.runtime.arch()}")
    print(f"per-vertex accuracy: held-out {acc:.4f} ({args.test} shapes), train {train_acc:.4f}, "
          f"majority class {chance:.4f}")
    print(f"wrote {path} (top: predicted parts, bottom: ground truth; held-out shape accuracy {shown_acc:.4f})")
    distributed.finish(ctx)
    return res


if __name__ == "__main__":
    main()
