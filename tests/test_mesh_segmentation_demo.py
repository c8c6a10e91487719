"""Smoke test of demos/mesh_segmentation.py (FeaStNet part segmentation of procedural creatures).

The demo runs in a subprocess so that its ``OMP_WAIT_POLICY=PASSIVE`` takes effect (set before
torch starts; in this process torch is already running and its spinning OpenMP threads slow the
Taichi kernels ~10x on a 2-core machine). ``--smoke``: 12 training shapes, 80 steps, 64 px views,
a few seconds of training; it reaches ~0.95 held-out per-vertex accuracy against a majority
class of ~0.57, so the 0.75 bar below fails if the network does not learn.
"""
import json
import os
import subprocess
import sys

import imageio.v3 as iio
import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def test_mesh_segmentation_smoke(tmp_path):
    import taichirast

    # the subprocess imports the same taichirast as this process (not whatever the install points at)
    src = os.path.dirname(os.path.dirname(os.path.abspath(taichirast.__file__)))
    path = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH", "")) if p)
    env = dict(os.environ, TAICHIRAST_ARCH=os.environ.get("TAICHIRAST_ARCH", "cpu"), PYTHONPATH=path)
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "demos", "mesh_segmentation.py"), "--smoke", "--quiet",
                           "--out", str(tmp_path)], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "per-vertex accuracy: held-out" in proc.stdout
    res = json.loads((tmp_path / "metrics.json").read_text())
    assert res["accuracy"] > max(0.75, res["chance"] + 0.1), res
    img = iio.imread(tmp_path / "segmentation.png")
    assert img.shape[0] == 128 and img.shape[1] == 128  # 2 x 2 views of 64 px
    # not blank: the creature covers a good part of each view and shows several part colours
    fg = img[..., :3].astype(np.float64)
    bg = np.all(np.abs(fg - fg[0, 0]) < 2, axis=-1)
    assert 0.05 < 1 - bg.mean() < 0.9
    assert len(np.unique(img[..., :3].reshape(-1, 3)[~bg.reshape(-1)] // 64, axis=0)) >= 4


def _demo_module():
    sys.path.insert(0, os.path.join(ROOT, "demos"))
    try:
        import mesh_segmentation as ms
    finally:
        sys.path.pop(0)
    return ms


def test_make_creature_labels_and_packing():
    ms = _demo_module()
    data = ms.make_dataset(2, seed=3, level=1)
    for v, f, lab, g in data:
        assert v.shape[0] == lab.shape[0] == g.num_vertices and int(f.max()) < v.shape[0]
        assert set(lab.tolist()) == {0, 1, 2, 3}
        assert (lab == 2).sum() == 4 * (lab == 3).sum()  # four legs, one tail, same mesh each
    x, g, y = ms.batch_of(data)
    assert g.num_graphs == 2 and x.shape[0] == y.shape[0] == g.num_vertices


def test_unet_model_trains_one_step():
    import torch

    ms = _demo_module()
    x, g, y = ms.batch_of(ms.make_dataset(2, seed=4, level=1))
    torch.manual_seed(0)
    model = ms.FeaStUNet(width=8)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(3):
        loss = torch.nn.functional.cross_entropy(model(x, g), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert model(x, g).shape == (g.num_vertices, len(ms.PARTS))
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert losses[-1] < losses[0]
