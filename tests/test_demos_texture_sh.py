"""Smoke tests of the texture and SH-lighting recovery demos.

Each demo's ``main`` runs on a tiny configuration (procedural stand-in / icosphere, small images,
few steps) and must write its outputs and improve substantially: the texture demo must raise the
PSNR over visible texels by more than 3 dB (from a grey texture) and halve the image error; the
SH demo must cut both the relative coefficient error and the image error below half their initial
values (starting from zeros and from a constant environment).
"""
import math

import pytest

from demo_support import OUTPUTS, assert_outputs_written, load_demo


def test_fit_texture_demo(tmp_path, capsys):
    demo = load_demo("fit_texture")
    res = demo.main(["--procedural", "--steps", "25", "--size", "40", "--views", "3", "--tex-size", "32",
                     "--lr", "0.1", "--gif-every", "10", "--out", str(tmp_path), "--quiet"])
    assert_outputs_written(tmp_path, OUTPUTS + ("texture_target.png", "texture_after.png"))
    assert math.isfinite(res["texture_psnr"])
    assert 0.0 < res["visible_fraction"] < 1.0
    assert res["texture_psnr"] > res["initial_texture_psnr"] + 3.0
    assert res["image_mse"] < 0.5 * res["initial_image_mse"]
    assert "final texture PSNR" in capsys.readouterr().out


def test_spherical_uvs_do_not_span_the_seam():
    import numpy as np

    from taichirast import meshes

    demo = load_demo("fit_texture")
    v, f = meshes.uv_sphere(n_lat=8, n_lon=12)
    uvs, uvf = demo.spherical_uvs(v.astype(np.float64), f)
    assert uvs.shape == (3 * f.shape[0], 2) and uvf.shape == f.shape
    span = uvs[uvf][..., 0].max(1) - uvs[uvf][..., 0].min(1)
    assert span.max() <= 1.0 / 12 + 1e-5  # every face covers one longitude segment at most


@pytest.mark.parametrize("init", ["zeros", "constant"])
def test_fit_sh_lighting_demo(tmp_path, capsys, init):
    demo = load_demo("fit_sh_lighting")
    res = demo.main(["--level", "2", "--steps", "100", "--size", "32", "--views", "4", "--init", init,
                     "--lr", "0.1", "--gif-every", "10", "--out", str(tmp_path), "--quiet"])
    assert_outputs_written(tmp_path, OUTPUTS + ("env_target_after.png",))
    assert math.isfinite(res["sh_rel_error"])
    assert res["sh_rel_error"] < 0.5 * res["initial_sh_rel_error"]
    assert res["image_mse"] < 0.5 * res["initial_image_mse"]
    assert "final SH coefficient error" in capsys.readouterr().out
