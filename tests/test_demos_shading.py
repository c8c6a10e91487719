"""Smoke tests of the shading demos: inverse lighting (fit_lights) and albedo recovery (fit_material).

Each demo's ``main`` runs on a tiny configuration (built-in procedural shape via ``--mesh none``,
48 px images, few steps) and must write its outputs and cut the initial error at least in half.
Margins: fit_lights ends at ~0.14 colour / ~0.45 position error (from ~0.83 / ~2.7), fit_material
at ~0.08 mean albedo error on visible vertices (from ~0.82).
"""
import importlib.util
import math
import os

ROOT = os.path.join(os.path.dirname(__file__), "..")
OUTPUTS = ("target.png", "before.png", "after.png", "optimization.gif")


def _load(name):
    spec = importlib.util.spec_from_file_location(f"demo_{name}", os.path.join(ROOT, "demos", f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _outputs_written(path):
    for name in OUTPUTS:
        assert (path / name).stat().st_size > 0


def test_fit_lights_demo(tmp_path, capsys):
    demo = _load("fit_lights")
    res = demo.main(["--mesh", "none", "--steps", "120", "--size", "48", "--views", "3", "--gif-every", "30",
                     "--out", str(tmp_path), "--quiet"])
    _outputs_written(tmp_path)
    assert math.isfinite(res["color_error"]) and math.isfinite(res["position_error"])
    assert res["color_error"] < 0.5 * res["initial_color_error"]
    assert res["position_error"] < 0.5 * res["initial_position_error"]
    assert "final colour error" in capsys.readouterr().out


def test_fit_material_demo(tmp_path, capsys):
    demo = _load("fit_material")
    res = demo.main(["--mesh", "none", "--steps", "30", "--size", "48", "--views", "3", "--gif-every", "10",
                     "--out", str(tmp_path), "--quiet"])
    _outputs_written(tmp_path)
    assert res["visible_vertices"] > 0
    assert math.isfinite(res["albedo_error"])
    assert res["albedo_error"] < 0.5 * res["initial_albedo_error"]
    assert "final albedo error" in capsys.readouterr().out
