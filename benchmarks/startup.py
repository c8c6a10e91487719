"""Start-up times of taichirast, each in a fresh process: cold (empty Taichi offline cache) and warm.

    python -m benchmarks.startup                  # the table (bunny at 512², 3 warm repeats)
    python -m benchmarks.startup --repeat 5 --mesh builtin:torus --size 256

Rows: ``taichirast info``, a first render of the mesh (``taichirast render MESH --size N``) in hard
and soft mode, and ``taichirast warmup``; plus what bounds them from below (``python -c pass``,
``import taichi``, ``import torch``, and ``import torch`` + ``import trimesh`` + ``ti.init``). *Cold*
runs each command with ``TI_OFFLINE_CACHE_FILE_PATH`` pointing to a new empty folder, so every
kernel it launches is compiled; *warm* runs it again with that folder filled (min and median over
``--repeat`` runs). The mesh defaults to ``../shared/meshes/bunny.obj`` when present, else a
built-in torus. Times are wall-clock seconds of the whole process (interpreter start included).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUNNY = os.path.join(ROOT, "..", "shared", "meshes", "bunny.obj")


def _run(cmd, cache_dir, cwd):
    env = dict(os.environ, TI_OFFLINE_CACHE_FILE_PATH=cache_dir, TAICHIRAST_ARCH=os.environ.get("TAICHIRAST_ARCH", "cpu"))
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stderr[-2000:]}")
    return dt


def measure(cmd, repeat=3, cold=True, cwd=None):
    """``(cold seconds or None, warm min, warm median)`` of ``cmd`` run in fresh processes."""
    with tempfile.TemporaryDirectory(prefix="ticache_") as cache:
        c = _run(cmd, cache, cwd) if cold else None
        if not cold:
            _run(cmd, cache, cwd)  # fill the cache first
        warm = [_run(cmd, cache, cwd) for _ in range(repeat)]
    return c, min(warm), statistics.median(warm)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.startup", description=__doc__.split("\n")[0])
    p.add_argument("--mesh", default=None, help="mesh for the first-render rows (default: the bunny, else builtin:torus)")
    p.add_argument("--size", type=int, default=512, help="image size of the first render (default 512)")
    p.add_argument("--repeat", type=int, default=3, help="warm runs per row (default 3)")
    p.add_argument("--no-warmup-row", action="store_true", help="skip the `taichirast warmup` row (the slowest cold)")
    a = p.parse_args(argv)
    mesh = a.mesh or (os.path.abspath(BUNNY) if os.path.exists(BUNNY) else "builtin:torus")
    py = sys.executable
    tmp = tempfile.mkdtemp(prefix="startup_")
    tr = [py, "-m", "taichirast"]
    rows = [
        ("python -c pass", [py, "-c", "pass"], False),
        ("import taichi", [py, "-c", "import taichi"], False),
        ("import torch", [py, "-c", "import torch"], False),
        ("import torch, trimesh; ti.init", [py, "-c", "import torch, trimesh, taichirast; taichirast.ensure_init()"], False),
        ("taichirast info", tr + ["info"], True),
        ("taichirast info --probe", tr + ["info", "--probe"], True),
        (f"render {os.path.basename(mesh)} {a.size}² hard", tr + ["render", mesh, "-o", os.path.join(tmp, "h.png"),
                                                             "--size", str(a.size), "--mode", "hard"], True),
        (f"render {os.path.basename(mesh)} {a.size}² soft", tr + ["render", mesh, "-o", os.path.join(tmp, "s.png"),
                                                             "--size", str(a.size), "--mode", "soft"], True),
    ]
    if not a.no_warmup_row:
        rows.append(("taichirast warmup", tr + ["warmup", "--quiet"], True))
    print(f"start-up, fresh process each, {os.cpu_count()} CPUs, arch {os.environ.get('TAICHIRAST_ARCH', 'cpu')}, "
          f"warm = min / median of {a.repeat}")
    print()
    print("| command | cold (empty offline cache) | warm min | warm median |")
    print("|---|---:|---:|---:|")
    for label, cmd, cold in rows:
        c, wmin, wmed = measure(cmd, a.repeat, cold=cold, cwd=tmp)
        cs = f"{c:.2f} s" if c is not None else "-"
        print(f"| {label} | {cs} | {wmin:.2f} s | {wmed:.2f} s |", flush=True)


if __name__ == "__main__":
    main()
