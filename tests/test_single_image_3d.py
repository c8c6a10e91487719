"""demos/single_image_3d.py: the --smoke run (CI), checkpoint / resume, and the pieces its numbers
rest on (procedural shapes, the winding-number voxel IoU, chamfer / F-score against ground truth)."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(ROOT, "demos"))
import single_image_3d as demo  # noqa: E402


def _run(*args, timeout=600):
    env = dict(os.environ, TAICHIRAST_ARCH=os.environ.get("TAICHIRAST_ARCH", "cpu"))
    return subprocess.run([sys.executable, os.path.join(ROOT, "demos", "single_image_3d.py"), *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=timeout)


def test_smoke_run_prints_the_table_and_resumes(tmp_path):
    res = _run("--smoke", "--quiet", "--out", tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "| category | 3D IoU | chamfer | F@0.1 | template IoU | template F@0.1 |" in res.stdout
    m = json.loads((tmp_path / "metrics.json").read_text())
    for who in ("model", "template"):
        assert set(m["table"][who]) == {*demo.CATEGORIES, "mean"}
        for iou, cd, f1 in m["table"][who].values():
            assert 0.0 <= iou <= 1.0 and cd > 0 and 0.0 <= f1 <= 1.0
    assert (tmp_path / "reconstructions.png").stat().st_size > 0
    assert torch.load(tmp_path / "checkpoint.pt")["step"] == 6
    res = _run("--smoke", "--quiet", "--out", tmp_path, "--resume", "--steps", 9)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "resumed from" in res.stdout and "at step 6" in res.stdout
    assert torch.load(tmp_path / "checkpoint.pt")["step"] == 9


@pytest.mark.parametrize("category", demo.CATEGORIES)
def test_shapes_are_closed_outward_and_in_the_unit_sphere(category):
    v, f, rgb = demo.make_shape(category, np.random.default_rng(3))
    assert np.linalg.norm(v, axis=1).max() <= 0.9 + 1e-5
    # closed: every edge is shared by exactly two faces, in opposite directions
    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    fwd = {tuple(x) for x in e}
    assert len(fwd) == len(e) and all((b, a) in fwd for a, b in fwd)
    # outward winding: positive signed volume
    tri = v[f].astype(np.float64)
    vol = np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6
    assert vol > 0.01
    assert ((rgb >= 0) & (rgb <= 1)).all()


def test_winding_voxels_of_a_cube_and_iou():
    from taichirast import meshes

    v, f = meshes.cube(size=1.0)  # [-0.5, 0.5]^3
    v, f = torch.from_numpy(v), torch.from_numpy(f)
    pts = demo.grid_points(8)  # centres at +-0.125, +-0.375, +-0.625, +-0.875
    inside = demo.winding_inside(v, f, pts)
    want = (pts.abs() < 0.5).all(-1)
    assert torch.equal(inside, want) and int(want.sum()) == 64
    assert demo.iou(inside, want) == 1.0
    assert demo.iou(inside, torch.zeros_like(want)) == 0.0
    shifted = demo.winding_inside(v + torch.tensor([0.25, 0.0, 0.0]), f, pts)
    assert demo.iou(inside, shifted) == pytest.approx(48 / 80)


def test_template_scores_against_a_sphere_of_its_own_size():
    """The evaluation gives the template (a sphere of radius 0.6) a near-perfect score against
    the same sphere, and a worse one against a smaller one."""
    from taichirast import meshes

    tv, tf = meshes.icosphere(2, radius=0.6)
    model = demo.Reconstructor(torch.from_numpy(tv))
    faces = torch.from_numpy(tf)
    same = [("ellipsoid", tv, tf.astype(np.int64), np.ones(3, np.float32))]
    small = [("ellipsoid", (tv * 0.5).astype(np.float32), tf.astype(np.int64), np.ones(3, np.float32))]
    images = torch.zeros(1, 3, 32, 32)
    rows = {name: demo.evaluate(model, shapes, images, faces, n_points=500, res=16)
            for name, shapes in (("same", same), ("small", small))}
    _, _, iou_same, cd_same, f_same = [r for r in rows["same"] if r[0] == "template"][0]
    _, _, iou_small, cd_small, f_small = [r for r in rows["small"] if r[0] == "template"][0]
    assert iou_same > 0.95 and f_same > 0.95 and cd_same < 0.02  # two independent 500-point samples
    assert iou_small < 0.3 and f_small < f_same and cd_small > 10 * cd_same
    assert math.isclose(iou_small, 0.125, abs_tol=0.08)  # (0.5)^3 of the volume, on a coarse grid
