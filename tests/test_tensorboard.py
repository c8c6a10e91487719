"""taichirast.tensorboard: meshes, point clouds, images and scalars written through torch's
SummaryWriter and read back with TensorBoard's own event reader; the demos' --tensorboard DIR."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

from taichirast import meshes  # noqa: E402
from taichirast import tensorboard as tb  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def _read(logdir):
    acc = EventAccumulator(str(logdir), size_guidance={"tensors": 0, "images": 0, "scalars": 0})
    acc.Reload()
    return acc


def test_mesh_point_cloud_image_and_scalars_round_trip(tmp_path):
    v, f = meshes.icosphere(1)
    cols = (v + 1) / 2
    w = tb.writer(tmp_path)
    tb.add_mesh(w, "sphere", torch.from_numpy(v), torch.from_numpy(f), cols, step=3)
    tb.add_point_cloud(w, "cloud", v[:10], step=3)
    img = np.zeros((8, 6, 3), np.float32)
    img[2, 1] = (1.0, 0.5, 0.0)
    tb.add_image(w, "render", img, step=3)
    tb.add_scalars(w, {"loss": torch.tensor(0.25), "iou": 0.75}, step=3)
    w.close()
    acc = _read(tmp_path)
    tags = acc.Tags()
    assert {"loss", "iou"} <= set(tags["scalars"])
    assert acc.Scalars("loss")[0].value == pytest.approx(0.25) and acc.Scalars("loss")[0].step == 3
    assert acc.Scalars("iou")[0].value == pytest.approx(0.75)
    assert tags["images"] == ["render"]
    im = acc.Images("render")[0]
    assert (im.height, im.width, im.step) == (8, 6, 3)
    # the mesh plugin stores vertices, faces and colours as tensors named TAG_VERTEX / _FACE / _COLOR
    tensors = set(tags["tensors"])
    assert {"sphere_VERTEX", "sphere_FACE", "sphere_COLOR", "cloud_VERTEX"} <= tensors, tensors
    from tensorboard.util import tensor_util

    verts = tensor_util.make_ndarray(acc.Tensors("sphere_VERTEX")[0].tensor_proto)
    faces = tensor_util.make_ndarray(acc.Tensors("sphere_FACE")[0].tensor_proto)
    colors = tensor_util.make_ndarray(acc.Tensors("sphere_COLOR")[0].tensor_proto)
    np.testing.assert_allclose(verts.reshape(-1, 3), v, rtol=1e-6)
    np.testing.assert_array_equal(faces.reshape(-1, 3), f)
    np.testing.assert_array_equal(colors.reshape(-1, 3), (np.clip(cols, 0, 1) * 255 + 0.5).astype(np.uint8))
    assert "cloud_FACE" not in tensors


def test_bad_input_names_the_argument(tmp_path):
    w = tb.writer(tmp_path)
    v, f = meshes.icosphere(0)
    with pytest.raises(ValueError, match=r"add_mesh: verts must have shape \(N, 3\)"):
        tb.add_mesh(w, "m", v[:, :2], f)
    with pytest.raises(ValueError, match="add_mesh: faces index vertices 0..11"):
        tb.add_mesh(w, "m", v, f + 1)
    with pytest.raises(ValueError, match=r"add_mesh: colors must have shape \(12, 3\)"):
        tb.add_mesh(w, "m", v, f, np.zeros((5, 3)))
    with pytest.raises(ValueError, match="add_mesh: verts contains NaN"):
        tb.add_mesh(w, "m", np.full((3, 3), np.nan), [[0, 1, 2]])
    with pytest.raises(ValueError, match="add_image: image must have shape"):
        tb.add_image(w, "i", np.zeros((4, 4, 2)))
    with pytest.raises(ValueError, match="FitLogger: every must be >= 1"):
        tb.FitLogger(tmp_path / "x", every=0)
    w.close()


def test_fit_logger_logs_every_step_and_the_last(tmp_path):
    v, f = meshes.icosphere(0)
    log = tb.FitLogger(tmp_path, every=2, mesh=lambda: (v, f, None))
    for step in range(5):
        log.update(step, torch.zeros(2, 6, 5), torch.full((2, 6, 5), 0.5), loss=1.0 / (step + 1))
    log.close()
    acc = _read(tmp_path)
    assert [e.step for e in acc.Scalars("loss")] == [0, 1, 2, 3, 4]
    assert [e.step for e in acc.Images("target | current")] == [0, 2, 4]
    im = acc.Images("target | current")[-1]
    assert (im.height, im.width) == (12, 10)  # 2 views (rows) x target | current
    assert len(acc.Tensors("mesh_VERTEX")) == 3


def test_demo_writes_mesh_image_and_loss(tmp_path):
    """demos/fit_silhouette.py --tensorboard DIR: the event file holds the loss curve, the renders
    and the fitted mesh."""
    logdir = tmp_path / "tb"
    res = subprocess.run([sys.executable, os.path.join(ROOT, "demos", "fit_silhouette.py"), "--steps", "3", "--size",
                          "24", "--views", "2", "--level", "1", "--quiet", "--out", str(tmp_path / "out"),
                          "--tensorboard", str(logdir), "--live-every", "2", "--heldout", "0"],
                         capture_output=True, text=True, timeout=600,
                         env=dict(os.environ, TAICHIRAST_ARCH=os.environ.get("TAICHIRAST_ARCH", "cpu")))
    assert res.returncode == 0, res.stderr[-3000:]
    acc = _read(logdir)
    assert [e.step for e in acc.Scalars("loss")] == [0, 1, 2]
    assert [e.step for e in acc.Images("target | current")] == [0, 2]
    verts = acc.Tensors("mesh_VERTEX")
    assert [e.step for e in verts] == [0, 2]


@pytest.mark.parametrize("demo, args, scalars, mesh", [
    ("non_rigid_deformation.py", ["--method", "acap", "--steps", "3", "--size", "32"], ["acap_energy"], "mesh"),
    ("mesh_segmentation.py", ["--smoke", "--steps", "4"], ["loss", "batch_accuracy", "heldout_accuracy"], None),
    ("single_image_3d.py", ["--smoke"], ["loss", "soft_iou", "color_l1"], "prediction"),
])
def test_other_demos_take_tensorboard(tmp_path, demo, args, scalars, mesh):
    logdir = tmp_path / "tb"
    res = subprocess.run([sys.executable, os.path.join(ROOT, "demos", demo), *args, "--quiet", "--out",
                          str(tmp_path / "out"), "--tensorboard", str(logdir)], capture_output=True, text=True,
                         timeout=600, env=dict(os.environ, TAICHIRAST_ARCH=os.environ.get("TAICHIRAST_ARCH", "cpu")))
    assert res.returncode == 0, res.stderr[-3000:]
    acc = _read(logdir)
    assert set(scalars) <= set(acc.Tags()["scalars"])
    assert acc.Tags()["images"]
    meshes_logged = {t[:-len("_VERTEX")] for t in acc.Tags()["tensors"] if t.endswith("_VERTEX")}
    assert meshes_logged == ({mesh} if mesh else set())
