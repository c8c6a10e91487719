"""Smoke tests of the geometry demos: 6DoF pose estimation and camera intrinsics recovery.

Each demo's ``main`` runs on a tiny configuration (small images, few steps) and must write its
outputs and cut the initial error at least in half. Margins (checked over repeated runs; the soft
rasterizer's backward pass is not bit-deterministic, so runs vary slightly): with these settings
the pose demo ends at ~0.7 / ~1.6 deg and ~0.001 / ~0.02 translation (seeds 0 / 1) from 40 deg and
0.2, and the intrinsics demo at <= 1.7% focal and <= 0.3 px principal point error from 30% and 8 px.
"""
import math

import pytest

from demo_support import assert_outputs_written, load_demo


@pytest.mark.parametrize("seed", [0, 1])
def test_pose_estimation_demo(tmp_path, capsys, seed):
    demo = load_demo("pose_estimation")
    res = demo.main(["--steps", "60", "--size", "48", "--views", "2", "--sigma-start", "3e-3",
                     "--seed", str(seed), "--gif-every", "20",
                     "--out", str(tmp_path), "--quiet"])
    assert_outputs_written(tmp_path)
    assert res["initial_rotation_error_deg"] == pytest.approx(40.0, abs=1e-3)
    assert math.isfinite(res["rotation_error_deg"]) and math.isfinite(res["translation_error"])
    assert res["rotation_error_deg"] < 0.5 * res["initial_rotation_error_deg"]
    assert res["translation_error"] < 0.5 * res["initial_translation_error"]
    assert "final rotation error" in capsys.readouterr().out


def test_pose_estimation_builtin_shape_is_asymmetric():
    # The built-in shape must not be invariant under a half-turn about a coordinate axis (which
    # would make the pose ambiguous): its vertex set changes under each.
    import torch

    demo = load_demo("pose_estimation")
    v, _ = demo.composite_shape()
    v = torch.from_numpy(v)
    for axis in range(3):
        flip = torch.ones(3)
        flip[[i for i in range(3) if i != axis]] = -1
        d = torch.cdist(v * flip, v).min(dim=1).values.max()
        assert d > 0.2


@pytest.mark.parametrize("seed", [0, 1])
def test_camera_intrinsics_demo(tmp_path, capsys, seed):
    demo = load_demo("camera_intrinsics")
    res = demo.main(["--steps", "60", "--height", "40", "--width", "48", "--views", "3", "--seed", str(seed),
                     "--gif-every", "20", "--out", str(tmp_path), "--quiet"])
    assert_outputs_written(tmp_path)
    assert res["initial_focal_error"] == pytest.approx(0.3, abs=1e-5)
    assert res["initial_principal_point_error_px"] == pytest.approx(8.0, abs=1e-4)
    assert res["focal_error"] < 0.5 * res["initial_focal_error"]
    assert res["principal_point_error_px"] < 0.5 * res["initial_principal_point_error_px"]
    assert "final focal error" in capsys.readouterr().out


def test_pose_estimation_progress_bar_ends_on_the_final_error(tmp_path, capsys):
    """The bar's last rot_err is the final pose's error, not a stale sample from 10 steps earlier."""
    import re

    demo = load_demo("pose_estimation")
    res = demo.main(["--steps", "13", "--size", "32", "--views", "1", "--sigma-start", "3e-3", "--gif-every", "20",
                     "--out", str(tmp_path)])
    err = capsys.readouterr().err
    shown = re.findall(r"rot_err=([0-9.]+)deg", err)
    assert shown, err[-500:]
    assert shown[-1] == f"{res['rotation_error_deg']:.2f}", (shown[-3:], res["rotation_error_deg"])


def test_fit_sh_lighting_docstring_names_the_real_bunny_path():
    import os

    from demo_support import ROOT

    doc = load_demo("fit_sh_lighting").__doc__
    assert "../shared/meshes/bunny.obj" in doc and "bunny/bunny.obj" not in doc
    for demo in ("fit_sh_lighting", "fit_silhouette", "pose_estimation", "fit_lights", "fit_material"):
        with open(os.path.join(ROOT, "demos", f"{demo}.py")) as fh:
            assert "meshes/bunny/bunny.obj" not in fh.read(), demo
