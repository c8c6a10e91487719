"""Smoke tests of the shading demos: inverse lighting (fit_lights) and albedo recovery (fit_material).

Each demo's ``main`` runs on a tiny configuration (built-in procedural shape via ``--mesh none``,
48 px images, few steps) and must write its outputs and cut the initial error at least in half.
Margins: fit_lights ends at ~0.14 colour / ~0.45 position error (from ~0.83 / ~2.7), fit_material
at ~0.08 mean albedo error on visible vertices (from ~0.82).
"""
import math

from demo_support import assert_outputs_written, load_demo


def test_fit_lights_demo(tmp_path, capsys):
    demo = load_demo("fit_lights")
    res = demo.main(["--mesh", "none", "--steps", "120", "--size", "48", "--views", "3", "--gif-every", "30",
                     "--out", str(tmp_path), "--quiet"])
    assert_outputs_written(tmp_path)
    assert math.isfinite(res["color_error"]) and math.isfinite(res["position_error"])
    assert res["color_error"] < 0.5 * res["initial_color_error"]
    assert res["position_error"] < 0.5 * res["initial_position_error"]
    assert "final colour error" in capsys.readouterr().out


def test_fit_material_demo(tmp_path, capsys):
    demo = load_demo("fit_material")
    res = demo.main(["--mesh", "none", "--steps", "30", "--size", "48", "--views", "3", "--gif-every", "10",
                     "--out", str(tmp_path), "--quiet"])
    assert_outputs_written(tmp_path)
    assert res["visible_vertices"] > 0
    assert math.isfinite(res["albedo_error"])
    assert res["albedo_error"] < 0.5 * res["initial_albedo_error"]
    assert "final albedo error" in capsys.readouterr().out
