"""The ``taichirast`` command through subprocesses: every subcommand, success and error paths.

Commands run as ``python -m taichirast`` (and through the installed console script when it is on
PATH). Help and error paths do not start Taichi (fast); the rendering ones use tiny images.
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import taichirast.cli as cli

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
ENV = dict(os.environ, TAICHIRAST_ARCH=os.environ.get("TAICHIRAST_ARCH", "cpu"))
ENV.pop("DISPLAY", None)  # headless: `view` must render offscreen
ENV.pop("WAYLAND_DISPLAY", None)


def run(*args, cwd=None, timeout=180):
    return subprocess.run([sys.executable, "-m", "taichirast", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd or ROOT, env=ENV, timeout=timeout)


def _assert_one_line_error(res, *words):
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    err = res.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    for w in words:
        assert w in err, err


@pytest.fixture(scope="module")
def mesh_file(tmp_path_factory):
    from taichirast import io as trio
    from taichirast import meshes

    p = tmp_path_factory.mktemp("mesh") / "ico.obj"
    trio.save_mesh(str(p), *meshes.icosphere(1))
    return p


def test_help_for_every_command():
    res = run("--help")
    assert res.returncode == 0
    for cmd in ("render", "view", "demo", "bench", "info", "warmup"):
        assert cmd in res.stdout
        sub = run(cmd, "--help")
        assert sub.returncode == 0 and "usage" in sub.stdout.lower(), (cmd, sub.stderr)
    assert run().returncode == 0  # no command: help
    assert run("--version").stdout.startswith("taichirast ")


def test_bad_options_and_commands_are_one_line_errors():
    _assert_one_line_error(run("frobnicate"), "invalid choice")
    _assert_one_line_error(run("render", "builtin:cube", "--mode", "wire"), "--mode", "invalid choice")
    _assert_one_line_error(run("render", "builtin:cube", "--size", "big"), "size")
    _assert_one_line_error(run("render", "builtin:cube", "--azimuth", "left"), "--azimuth")


def test_render_errors(tmp_path, mesh_file):
    _assert_one_line_error(run("render", tmp_path / "missing.obj", "-o", tmp_path / "x.png"), "no such file", "missing.obj")
    _assert_one_line_error(run("render", tmp_path, "-o", tmp_path / "x.png"), "directory")
    _assert_one_line_error(run("render", mesh_file, "-o", tmp_path / "nodir" / "x.png"), "output folder")
    _assert_one_line_error(run("render", mesh_file, "-o", tmp_path / "x.tiff"), ".png")
    _assert_one_line_error(run("render", mesh_file, "--views", "0"), "--views")
    bad = tmp_path / "bad.obj"
    bad.write_text("v 0 0 0\nf 1 2 9\n")
    _assert_one_line_error(run("render", bad, "-o", tmp_path / "x.png"), "bad.obj")


def test_render_success_single_and_turntable(tmp_path, mesh_file):
    import imageio.v2 as imageio

    out = tmp_path / "r.png"
    res = run("render", mesh_file, "-o", out, "--size", "24x32", "--mode", "hard", "--azimuth", "10",
              "--elevation", "5", "--distance", "3", "--light-dir", "0", "0", "-1", "--background", "1", "0", "0")
    assert res.returncode == 0, res.stderr
    assert "wrote" in res.stdout
    img = imageio.imread(out)
    assert img.shape[:2] == (24, 32)
    assert tuple(img[0, 0, :3]) == (255, 0, 0)  # background colour in the corner
    assert img[12, 16, :3].sum() > 0 and tuple(img[12, 16, :3]) != (255, 0, 0)  # the sphere in the middle



def test_render_turntable_in_process(tmp_path, capsys):
    import imageio.v2 as imageio

    gif = tmp_path / "turn.gif"
    assert cli.main(["render", "builtin:torus", "-o", str(gif), "--size", "16", "--views", "3", "--mode", "soft"]) == 0
    assert len(imageio.mimread(gif)) == 3
    assert "render" in capsys.readouterr().err  # tqdm progress bar
    assert cli.main(["render", "builtin:cube", "-o", str(tmp_path / "s.png"), "--size", "16", "--views", "2",
                     "--unlit", "--quiet"]) == 0
    assert (tmp_path / "s_000.png").exists() and (tmp_path / "s_001.png").exists()
    for mode in (["--mode", "hard", "--antialias"], ["--mode", "splat"]):
        assert cli.main(["render", "builtin:torus", "-o", str(tmp_path / "m.png"), "--size", "16", "--quiet",
                         *mode]) == 0
        assert imageio.imread(tmp_path / "m.png").shape[:2] == (16, 16)


def test_view_offscreen_and_errors(tmp_path, mesh_file):
    out = tmp_path / "v.png"
    res = run("view", mesh_file, "--size", "24", "--out", out, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "no display" in res.stdout
    assert out.stat().st_size > 0 and (tmp_path / "v_gradient.png").stat().st_size > 0
    _assert_one_line_error(run("view", tmp_path / "nope.ply"), "no such file")
    _assert_one_line_error(run("view", mesh_file, "--target", tmp_path / "nope.png"), "no such file")
    _assert_one_line_error(run("view", mesh_file, "--grad-param", "fov"), "invalid choice")


def test_demo_list_run_and_errors(tmp_path):
    res = run("demo", "--list")
    assert res.returncode == 0
    for name in ("fit_silhouette", "pose_estimation", "camera_intrinsics", "fit_lights", "fit_material",
                 "fit_texture", "fit_sh_lighting"):
        assert name in res.stdout
    assert "_common" not in res.stdout
    _assert_one_line_error(run("demo", "no_such_demo"), "unknown demo", "fit_silhouette")
    res = run("demo", "fit_silhouette", "--steps", "2", "--size", "24", "--views", "2", "--level", "1",
              "--quiet", "--out", tmp_path / "fs", "--gui", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "final silhouette IoU" in res.stdout and "no display found" in res.stdout
    assert (tmp_path / "fs" / "after.png").exists() and (tmp_path / "fs" / "live" / "live.gif").exists()
    res = run("demo", "fit_silhouette", "--steps", "-x", cwd=tmp_path)
    assert res.returncode == 2  # the demo's own argparse error is passed through


def test_bench_help_and_missing_checkout(monkeypatch):
    res = run("bench", "--help")
    assert res.returncode == 0 and "--quick" in res.stdout
    monkeypatch.setattr(cli, "repo_root", lambda: None)
    assert cli.main(["bench"]) == 2
    assert cli.main(["demo", "--list"]) == 2
    assert cli.list_demos() == {}


def test_info_text_and_json(capsys):
    res = run("info", "--json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["arch"] in ("cpu", "cuda", "vulkan", "metal") and data["taichi"].startswith("1.7")
    assert isinstance(data["vulkan"], bool) and data["display"] is False
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert "taichirast" in out and "arch" in out and "vulkan" in out


def test_console_script_when_installed(tmp_path):
    exe = shutil.which("taichirast")
    if exe is None:
        pytest.skip("the taichirast console script is not on PATH (pip install -e . installs it)")
    res = subprocess.run([exe, "demo", "--list"], capture_output=True, text=True, env=ENV, timeout=60)
    assert res.returncode == 0 and "fit_silhouette" in res.stdout
    res = subprocess.run([exe, "render", str(tmp_path / "none.obj")], capture_output=True, text=True, env=ENV)
    _assert_one_line_error(res, "no such file")


def test_parser_helpers():
    assert cli._size("32") == (32, 32) and cli._size("24x40") == (24, 40)
    with pytest.raises(Exception):
        cli._size("0")
    assert cli.repo_root() == ROOT
    assert "fit_silhouette" in cli.list_demos()
    p = cli.build_parser()
    a = p.parse_args(["render", "builtin:cube", "--views", "2"])
    assert a.command == "render" and a.views == 2 and np.allclose(a.light_dir, (-0.4, -0.6, -0.7))


def test_render_uses_an_obj_texture_unless_told_not_to(tmp_path):
    import imageio.v2 as imageio

    tex = np.zeros((4, 4, 3), np.uint8)
    tex[..., 1] = 255                                                   # solid green
    imageio.imwrite(tmp_path / "tex.png", tex)
    (tmp_path / "quad.mtl").write_text("newmtl m\nKd 1 1 1\nmap_Kd tex.png\n")
    (tmp_path / "quad.obj").write_text(
        "mtllib quad.mtl\nv -1 -1 0\nv 1 -1 0\nv 1 1 0\nv -1 1 0\n"
        "vt 0 0\nvt 1 0\nvt 1 1\nvt 0 1\nusemtl m\nf 1/1 2/2 3/3\nf 1/1 3/3 4/4\n")
    outs = {}
    for flag in ("", "--no-texture"):
        out = tmp_path / f"r{flag}.png"
        res = run("render", tmp_path / "quad.obj", "-o", out, "--size", 16, "--azimuth", 0, "--elevation", 0,
                  *([flag] if flag else []))
        assert res.returncode == 0, res.stderr
        outs[flag] = imageio.imread(out)[8, 8, :3].astype(int)
    g = outs[""]
    assert g[1] > 3 * max(g[0], g[2], 1)                                # green from the texture
    w = outs["--no-texture"]
    assert abs(w[0] - w[1]) < 8 and abs(w[1] - w[2]) < 8               # grey without it


def test_info_is_cheap_without_probe():
    """`taichirast info` neither imports torch nor starts Taichi (it took 30 s on a cold machine)."""
    code = ("import sys, json; from taichirast.cli import main; main(['info', '--json']); "
            "print('MODS', 'torch' in sys.modules, 'taichi' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=60)
    assert res.returncode == 0, res.stderr
    body, mods = res.stdout.rsplit("MODS", 1)
    assert mods.split() == ["False", "False"], mods
    data = json.loads(body)
    assert data["arch"] in ("cpu", "cuda", "vulkan", "metal") and data["runtime"].startswith("not started")
    assert data["taichi"].startswith("1.7") and "vulkan" in data
    probe = run("info", "--json", "--probe")
    assert probe.returncode == 0, probe.stderr
    pd = json.loads(probe.stdout)
    assert pd["runtime"] == "started" and pd["arch"] == data["arch"] and "torch_cuda" in pd


def test_view_out_without_extension_errors_before_writing(tmp_path, mesh_file):
    out = tmp_path / "view_off"
    _assert_one_line_error(run("view", mesh_file, "--size", "16", "--out", out, cwd=tmp_path), "--out", ".png")
    assert sorted(os.listdir(tmp_path)) == []  # no 0-byte file, no gradient image, nothing
    _assert_one_line_error(run("view", mesh_file, "--out", tmp_path / "nodir" / "v.png", cwd=tmp_path), "output folder")


def test_bench_help_names_the_command():
    res = run("bench", "--help")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("usage: taichirast bench") and "__main__" not in res.stdout


def test_warmup_fills_an_empty_offline_cache(tmp_path):
    cache = tmp_path / "ticache"
    env = dict(ENV, TI_OFFLINE_CACHE_FILE_PATH=str(cache))
    res = subprocess.run([sys.executable, "-m", "taichirast", "warmup", "--only", "hard", "--quiet"],
                         capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "warmup: compiled 1 render paths" in res.stdout and str(cache) in res.stdout
    files = [f for _, _, fs in os.walk(cache) for f in fs]
    assert len(files) > 1, files  # compiled kernels landed in the offline cache
    _assert_one_line_error(run("warmup", "--only", "wireframe"), "--only", "hard")


def test_warmup_progress_bar_and_time(capsys):
    assert cli.main(["warmup", "--only", "hard", "dibr"]) == 0
    cap = capsys.readouterr()
    assert "warmup" in cap.err and "2/2" in cap.err  # tqdm progress bar
    assert "compiled 2 render paths" in cap.out and " s;" in cap.out
    assert [c[0] for c in cli.WARMUP_CASES][:2] == ["hard", "hard + antialias"]
    assert {c[1]["mode"] for c in cli.WARMUP_CASES} == {"hard", "soft", "dibr", "splat"}


def test_quick_exit_keeps_output_and_offline_cache(tmp_path):
    """The console script ends with os._exit after resetting Taichi: its printed line, its image and
    the kernels it compiled (in the offline cache) are all there, and a second run compiles nothing."""
    cache = tmp_path / "ticache"
    env = dict(ENV, TI_OFFLINE_CACHE_FILE_PATH=str(cache))
    cmd = [sys.executable, "-m", "taichirast", "render", "builtin:torus", "--size", "24", "--out", "t.png"]

    def cached():
        return sorted(os.path.join(d, f) for d, _, fs in os.walk(cache) for f in fs if not f.endswith(".lock"))

    res = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[-1].startswith("wrote t.png") and (tmp_path / "t.png").stat().st_size > 0
    first = cached()
    assert sum(f.endswith(".tic") for f in first) >= 2, first  # Taichi's compiled-kernel files
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert res.returncode == 0, res.stderr
    assert [f for f in cached() if f not in first] == []  # nothing compiled again
    res = subprocess.run(cmd[:4] + ["builtin:nope"] + cmd[5:], capture_output=True, text=True, cwd=tmp_path,
                         env=env, timeout=60)
    _assert_one_line_error(res, "nope")
