"""The ``taichirast`` command (also ``python -m taichirast``).

::

    taichirast render MESH -o out.png [--mode hard|soft|dibr|splat] [--antialias] [--size 256 | HxW] [--azimuth 30]
                      [--elevation 20] [--distance 3] [--light-dir X Y Z] [--background R G B] [--views N]
    taichirast view MESH [--mode ...] [--size ...] [--out view.png (no display)] [--target IMG]
    taichirast demo --list | demo NAME [--gui] [demo arguments ...]
    taichirast bench [benchmark arguments ...]          # python -m benchmarks, from the repo checkout
    taichirast info [--json] [--probe]
    taichirast warmup [--quiet]                         # compile the common kernels into the offline cache

``MESH`` is a file trimesh reads (OBJ, PLY, STL, GLB/glTF, OFF) or ``builtin:NAME`` (``icosphere``,
``cube``, ``torus``, ...). Bad input (a missing file, an unknown demo, a malformed option) prints one
line ``taichirast CMD: error: ...`` and exits with status 2, without a traceback.
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import subprocess
import sys

PROG = "taichirast"


class UsageError(Exception):
    """A user error: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line (``PROG CMD: error: MSG (see --help)``) and exit 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def repo_root() -> str | None:
    """The source checkout containing this package (with ``demos/`` or ``benchmarks/``), or None for a wheel install."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if os.path.isdir(os.path.join(here, "demos")) or os.path.isdir(os.path.join(here, "benchmarks")):
        return here
    return None


def list_demos() -> dict:
    """``{name: first line of its docstring}`` for every ``demos/NAME.py`` of the checkout (empty when absent)."""
    root = repo_root()
    d = os.path.join(root, "demos") if root else None
    if not d or not os.path.isdir(d):
        return {}
    out = {}
    for fn in sorted(os.listdir(d)):
        if fn.endswith(".py") and not fn.startswith("_"):
            try:
                with open(os.path.join(d, fn), encoding="utf-8") as fh:
                    doc = ast.get_docstring(ast.parse(fh.read())) or ""
            except (OSError, SyntaxError, ValueError):
                doc = ""
            out[fn[:-3]] = doc.strip().split("\n")[0]
    return out


def _size(text):
    """``"256"`` -> (256, 256); ``"240x320"`` -> (240, 320) (H x W)."""
    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be N or HxW with integers, got {text!r}") from None
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) < 1 or max(parts) > 8192:
        raise argparse.ArgumentTypeError(f"size must be N or HxW with 1 <= N <= 8192, got {text!r}")
    return tuple(parts)


def _check_mesh(path):
    if str(path).startswith("builtin:"):
        return
    if not os.path.exists(path):
        raise UsageError(f"no such file: {path}")
    if os.path.isdir(path):
        raise UsageError(f"{path} is a directory, not a mesh file")


def _scene_args(p):
    p.add_argument("mesh", help="mesh file (OBJ/PLY/STL/GLB/glTF/OFF) or builtin:NAME (icosphere, cube, torus, ...)")
    p.add_argument("--mode", choices=("hard", "soft", "dibr", "splat"), default="hard",
                   help="rasterizer (default: hard)")
    p.add_argument("--antialias", action="store_true", help="antialias silhouette edges (hard and dibr modes)")
    p.add_argument("--size", type=_size, default=(256, 256), metavar="N|HxW", help="image size (default 256)")
    p.add_argument("--azimuth", type=float, default=30.0, help="camera azimuth in degrees (default 30)")
    p.add_argument("--elevation", type=float, default=20.0, help="camera elevation in degrees (default 20)")
    p.add_argument("--distance", type=float, default=3.0, help="camera distance; the mesh is scaled into the unit sphere")
    p.add_argument("--fov", type=float, default=40.0, help="vertical field of view in degrees")
    p.add_argument("--light-dir", type=float, nargs=3, default=(-0.4, -0.6, -0.7), metavar=("X", "Y", "Z"),
                   help="direction the light travels (world space)")
    p.add_argument("--light-color", type=float, nargs=3, default=(0.85, 0.85, 0.85), metavar=("R", "G", "B"))
    p.add_argument("--ambient", type=float, nargs=3, default=(0.25, 0.25, 0.25), metavar=("R", "G", "B"))
    p.add_argument("--background", type=float, nargs=3, default=(0.1, 0.1, 0.12), metavar=("R", "G", "B"))
    p.add_argument("--sigma", type=float, default=1e-4, help="soft-mode sigma (NDC units)")
    p.add_argument("--gamma", type=float, default=1e-4, help="soft-mode gamma")
    p.add_argument("--no-texture", action="store_true",
                   help="ignore an OBJ's UV-mapped diffuse texture (MTL map_Kd), used by default when present")


def _state_kwargs(a):
    return dict(size=a.size, mode=a.mode, azimuth=a.azimuth, elevation=a.elevation, distance=a.distance, fov=a.fov,
                light_direction=a.light_dir, light_color=a.light_color, ambient=a.ambient, background=a.background,
                sigma=a.sigma, gamma=a.gamma, antialias=a.antialias)


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the ``taichirast`` command (subcommands render, view, demo, bench, info)."""
    p = _Parser(prog=PROG, description="taichirast: differentiable rasterization in Taichi.")
    p.add_argument("--version", action="store_true", help="print the version and exit")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    r = sub.add_parser("render", help="render a mesh to an image", description="Render a mesh to PNG (or a GIF turntable).")
    _scene_args(r)
    r.add_argument("-o", "--out", default="render.png", help="output image (.png/.jpg; .gif with --views > 1)")
    r.add_argument("--views", type=int, default=1, help="render N views around the mesh (azimuth steps of 360/N)")
    r.add_argument("--unlit", action="store_true", help="no lighting (plain vertex colours or texture)")
    r.add_argument("--quiet", action="store_true", help="no progress bar")

    v = sub.add_parser("view", help="interactive viewer with a gradient view",
                       description="Open the interactive viewer (Taichi GGUI). Without a display, render the "
                                   "view and its gradient view offscreen to PNG files.")
    _scene_args(v)
    v.add_argument("--out", default="view.png", help="offscreen output when there is no display (default view.png)")
    v.add_argument("--target", help="target image for the gradient view (same size)")
    v.add_argument("--grad-param", choices=("light_direction", "light_color", "vertices"), default="light_direction")
    v.add_argument("--offscreen", action="store_true", help="render offscreen even with a display")

    d = sub.add_parser("demo", help="run a demo from the repository's demos/ folder",
                       description="Run demos/NAME.py with the remaining arguments (e.g. --gui, --steps 50).")
    d.add_argument("name", nargs="?", help="demo name (see --list)")
    d.add_argument("--list", action="store_true", help="list the demos")
    d.add_argument("args", nargs=argparse.REMAINDER, help="arguments passed to the demo (e.g. --gui --steps 50)")

    b = sub.add_parser("bench", help="run the benchmark suite (python -m benchmarks)", add_help=False,
                       description="Run python -m benchmarks from the repository checkout; arguments pass through.")
    b.add_argument("args", nargs=argparse.REMAINDER)

    i = sub.add_parser("info", help="arch, devices and versions",
                       description="Versions, the arch taichirast will use, and what the GUI can use. Cheap: it "
                                   "neither starts Taichi nor imports torch unless --probe is given.")
    i.add_argument("--json", action="store_true", help="print JSON")
    i.add_argument("--probe", action="store_true",
                   help="also start the Taichi runtime and import torch (the arch actually running, CUDA devices)")

    w = sub.add_parser("warmup", help="compile the common kernels into Taichi's offline cache",
                       description="Compile the kernels of the common render paths (hard / soft / dibr / splat, "
                                   "antialias, lit, textured; float32; forward and backward) into Taichi's "
                                   "offline cache once, so that later processes start fast.")
    w.add_argument("--quiet", action="store_true", help="no progress bar")
    w.add_argument("--only", nargs="+", metavar="PATH",
                   help="compile only these render paths, by label (e.g. --only hard soft 'hard + antialias')")
    return p


# ------------------------------------------------------------------ commands

def _start_taichi_first() -> None:
    """Start Taichi and define taichirast's kernels before torch and trimesh are imported.

    Every ``@ti.kernel`` definition (Taichi's own at ``ti.init``, ours when their module is
    imported) looks up its module through ``inspect.getmodule``, which walks all of ``sys.modules``;
    with torch's ~900 modules loaded that costs ~0.5-1 s per process, before any kernel runs.
    """
    import importlib
    import pkgutil

    from .runtime import ensure_init

    ensure_init(prefer="cpu")  # the viewer's tensors live on the CPU (TAICHIRAST_ARCH=auto follows them)
    try:
        from . import kernels
    except ImportError:  # pragma: no cover - the kernels package ships with taichirast
        return
    for m in pkgutil.iter_modules(kernels.__path__):
        importlib.import_module(f"{kernels.__name__}.{m.name}")


def cmd_render(a) -> int:
    """``taichirast render``: one image, several PNGs or a GIF turntable."""
    _check_mesh(a.mesh)
    if a.views < 1:
        raise UsageError(f"--views must be >= 1, got {a.views}")
    out_dir = os.path.dirname(os.path.abspath(a.out))
    if not os.path.isdir(out_dir):
        raise UsageError(f"output folder does not exist: {out_dir}")
    ext = os.path.splitext(a.out)[1].lower()
    if ext not in (".png", ".jpg", ".jpeg", ".gif", ".bmp"):
        raise UsageError(f"output must end in .png, .jpg, .bmp or .gif, got {a.out!r}")
    # Start Taichi before torch and trimesh are imported: every @ti.kernel definition (Taichi's own
    # at ti.init, ours on first use) scans sys.modules through inspect.getmodule, which costs per
    # loaded module, so with torch's ~900 modules already loaded this alone took ~0.5 s longer.
    _start_taichi_first()
    from . import io as trio
    from .viewer import ViewerState, load_view_scene

    v, f, tex = load_view_scene(a.mesh, texture=not a.no_texture)
    state = ViewerState(v, f, texture=tex, **_state_kwargs(a))
    images = []
    views = range(a.views)
    if a.views > 1 and not a.quiet:
        try:
            from tqdm import tqdm

            views = tqdm(views, desc="render", unit="view")
        except ImportError:
            pass
    for k in views:
        state.azimuth = a.azimuth + 360.0 * k / a.views
        if a.unlit:
            import torch

            import taichirast as tr

            with torch.no_grad():
                img = tr.render(state.verts, state.faces, state.camera(), **state.render_kwargs())[0, ..., :3].cpu().numpy()
        else:
            img = state.frame()
        images.append(img)
    if ext == ".gif":
        paths = [trio.save_gif(a.out, images, fps=10)]
    elif len(images) == 1:
        paths = [trio.save_image(a.out, images[0])]
    else:
        root = os.path.splitext(a.out)[0]
        paths = [trio.save_image(f"{root}_{k:03d}{ext}", img) for k, img in enumerate(images)]
    print(f"wrote {paths[0]}" + (f" ... ({len(paths)} files)" if len(paths) > 1 else "")
          + f"  [{a.mode}, {a.size[0]}x{a.size[1]}, {f.shape[0]} faces]")
    return 0


_IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp")


def cmd_view(a) -> int:
    """``taichirast view``: the interactive viewer, or offscreen PNGs without a display."""
    _check_mesh(a.mesh)
    # check --out before anything is rendered or written (a bad name must not leave an empty file)
    if os.path.splitext(a.out)[1].lower() not in _IMAGE_EXTS:
        raise UsageError(f"--out must end in .png, .jpg or .bmp, got {a.out!r}")
    out_dir = os.path.dirname(os.path.abspath(a.out))
    if not os.path.isdir(out_dir):
        raise UsageError(f"output folder does not exist: {out_dir}")
    if a.target and not os.path.isfile(a.target):
        raise UsageError(f"no such file: {a.target}")
    from .live import has_display
    from .viewer import view

    show = has_display() and not a.offscreen
    if not show and not a.offscreen:
        print("taichirast view: no display found, rendering offscreen", flush=True)
    kw = _state_kwargs(a)
    size, mode = kw.pop("size"), kw.pop("mode")
    paths = view(a.mesh, size=size, mode=mode, show_window=show, out=a.out, target=a.target, grad_param=a.grad_param,
                 texture=not a.no_texture, **kw)
    for pth in paths:
        print(f"wrote {pth}")
    return 0


def cmd_demo(a) -> int:
    """``taichirast demo``: list the demos or run one as a subprocess (its exit status is returned)."""
    root = repo_root()
    demos = list_demos()
    if not demos:
        raise UsageError("no demos/ folder found: the demos ship with the source checkout, not the wheel "
                         "(git clone the repository and pip install -e .)")
    if a.list or not a.name:
        if not a.name and not a.list:
            print("usage: taichirast demo NAME [--gui] [demo arguments ...]; available demos:")
        width = max(map(len, demos))
        for n, doc in demos.items():
            print(f"  {n:<{width}}  {doc}")
        return 0
    name = a.name[:-3] if a.name.endswith(".py") else a.name
    if name not in demos:
        raise UsageError(f"unknown demo {a.name!r}; available: {', '.join(demos)}")
    cmd = [sys.executable, os.path.join(root, "demos", name + ".py"), *a.args]
    return subprocess.call(cmd)


def cmd_bench(a) -> int:
    """``taichirast bench``: ``python -m benchmarks`` in the repository checkout, arguments passed through."""
    root = repo_root()
    if not root or not os.path.isdir(os.path.join(root, "benchmarks")):
        raise UsageError("no benchmarks/ folder found: the benchmark suite ships with the source checkout, not the wheel")
    env = dict(os.environ)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    # run the package as `python -m benchmarks` would, but with argv[0] = "taichirast bench" so that
    # its argparse usage line reads "usage: taichirast bench ..." (not "usage: __main__.py")
    boot = (f"import runpy, sys; sys.argv[0] = {PROG + ' bench'!r}; "
            "runpy.run_module('benchmarks', run_name='__main__', alter_sys=False)")
    return subprocess.call([sys.executable, "-c", boot, *a.args], cwd=root, env=env)


def _offline_cache_dir() -> str:
    """Where Taichi keeps compiled kernels: ``$TI_OFFLINE_CACHE_FILE_PATH`` or Taichi 1.7's default."""
    return os.environ.get("TI_OFFLINE_CACHE_FILE_PATH") or os.path.join("~", ".cache", "taichi", "ticache")


def _dist_version(name):
    """An installed distribution's version from its metadata (no import), or None."""
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def quick_info() -> dict:
    """What ``taichirast info`` prints without ``--probe``: versions from package metadata and the arch
    taichirast will request, without importing taichi or torch and without starting the runtime (which
    on a cold machine cost seconds to tens of seconds: torch's import, ``ti.init``, CUDA's context)."""
    import platform

    import numpy as np

    from . import __version__
    from .runtime import arch, requested_arch

    return {"taichirast": __version__, "python": platform.python_version(), "platform": platform.platform(),
            "taichi": _dist_version("taichi"), "numpy": np.__version__,
            "arch": arch() or requested_arch(), "requested_arch": os.environ.get("TAICHIRAST_ARCH", "auto"),
            "runtime": "started" if arch() else "not started (taichirast info --probe starts it)",
            "cpu_count": os.cpu_count(), "torch": _dist_version("torch"),
            "offline_cache": _offline_cache_dir()}


def cmd_info(a) -> int:
    """``taichirast info``: versions, arch, devices and what the GUI can use (``--probe``: start the runtime)."""
    import importlib.util

    from .live import has_display, vulkan_available

    if a.probe:
        import contextlib

        from .runtime import info

        with contextlib.redirect_stdout(sys.stderr if a.json else sys.stdout):  # Taichi's banner is not JSON
            out = info()
        out["runtime"] = "started"
    else:
        out = quick_info()
    out["display"] = has_display()
    out["vulkan"] = vulkan_available()
    out["gui_backend"] = "ggui" if out["vulkan"] else "gui"
    for mod in ("matplotlib", "imageio_ffmpeg", "tqdm"):
        out[mod] = importlib.util.find_spec(mod) is not None
    if a.json:
        print(json.dumps(out, indent=2, default=str))
    else:
        width = max(map(len, out))
        for k, v in out.items():
            print(f"{k:<{width}}  {v}")
    return 0


# (label, tr.render keyword arguments): the render paths `taichirast warmup` compiles, forward and backward
WARMUP_CASES = (
    ("hard", dict(mode="hard")),
    ("hard + antialias", dict(mode="hard", antialias=True)),
    ("hard lit", dict(mode="hard", lit=True)),
    ("hard lit + antialias", dict(mode="hard", lit=True, antialias=True)),
    ("hard textured", dict(mode="hard", textured=True)),
    ("hard lit textured", dict(mode="hard", lit=True, textured=True)),
    ("soft", dict(mode="soft")),
    ("soft lit", dict(mode="soft", lit=True)),
    ("dibr", dict(mode="dibr")),
    ("dibr lit", dict(mode="dibr", lit=True)),
    ("splat", dict(mode="splat")),
    ("splat lit", dict(mode="splat", lit=True)),
)


def warmup(quiet: bool = False, size: int = 32, cases=WARMUP_CASES) -> float:
    """Compile the kernels of ``cases`` (float32, forward and backward) into Taichi's offline cache by
    rendering a small icosphere once per case; returns the seconds it took."""
    import time

    t0 = time.perf_counter()
    from .runtime import torch_device

    dev = torch_device(prefer="cpu")  # TAICHIRAST_ARCH's backend; under auto the CPU, like `taichirast render`
    import numpy as np
    import torch

    import taichirast as tr
    from . import meshes

    v, f = meshes.icosphere(2)
    faces = torch.from_numpy(f).to(dev)
    cam = tr.PerspectiveCamera.look_at([0.0, 0.3, 3.0], fov_y=40.0, image_size=(size, size), device=dev)
    lights = tr.Lights(ambient=[0.3] * 3, directions=[[-0.5, -0.7, -0.5]], colors=[[0.8] * 3]).to(device=dev)
    rng = np.random.default_rng(0)
    tex = torch.from_numpy(rng.random((8, 8, 3), dtype=np.float32)).to(dev)
    uvs = torch.from_numpy((v[:, :2] * 0.5 + 0.5).astype(np.float32)).to(dev)
    it = cases
    if not quiet:
        try:
            from tqdm import tqdm

            it = tqdm(cases, desc="warmup", unit="path")
        except ImportError:
            pass
    for label, kw in it:
        kw = dict(kw)
        if hasattr(it, "set_postfix_str"):
            it.set_postfix_str(label)
        verts = torch.from_numpy(v).to(dev).requires_grad_()
        extra = {}
        if kw.pop("lit", False):
            extra["lights"] = lights
        if kw.pop("textured", False):
            extra.update(texture=tex.clone().requires_grad_(), uvs=uvs)
        else:
            extra["colors"] = verts * 0.5 + 0.5
        out = tr.render(verts, faces, cam, **kw, **extra)
        out.sum().backward()
    return time.perf_counter() - t0


def cmd_warmup(a) -> int:
    """``taichirast warmup``: compile the common kernels into the offline cache, print the time."""
    from . import runtime

    cases = WARMUP_CASES
    if a.only:
        want = {w.strip().lower() for w in a.only}
        cases = tuple(c for c in WARMUP_CASES if c[0] in want)
        if not cases:
            raise UsageError(f"--only: no render path named {' '.join(a.only)}; known: "
                             f"{', '.join(repr(c[0]) for c in WARMUP_CASES)}")
    n = len(cases)
    sec = warmup(quiet=a.quiet, cases=cases)
    where = _offline_cache_dir()
    print(f"warmup: compiled {n} render paths (forward + backward, float32) on arch {runtime.arch()} "
          f"in {sec:.1f} s; offline cache: {where}")
    return 0


COMMANDS = {"render": cmd_render, "view": cmd_view, "demo": cmd_demo, "bench": cmd_bench, "info": cmd_info,
            "warmup": cmd_warmup}


def main(argv=None) -> int:
    """Entry point of the ``taichirast`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if argv[:1] == ["bench"]:  # everything after `bench` goes to the benchmark suite, --help included
        a = argparse.Namespace(command="bench", args=argv[1:])
    elif argv[:1] == ["demo"] and len(argv) > 2 and not argv[1].startswith("-"):
        a = argparse.Namespace(command="demo", name=argv[1], list=False, args=argv[2:])  # demo NAME --any --args
    else:
        a = parser.parse_args(argv)
    if getattr(a, "version", False):
        from . import __version__

        print(f"taichirast {__version__}")
        return 0
    if not a.command:
        parser.print_help()
        return 0
    try:
        return COMMANDS[a.command](a) or 0
    except UsageError as e:
        print(f"{PROG} {a.command}: error: {e}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError) as e:  # unreadable mesh / image, bad parameter values
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"{PROG} {a.command}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG} {a.command}: interrupted", file=sys.stderr)
        return 130


def _quick_exit(rc: int) -> None:
    """End the process with status ``rc`` without the interpreter's teardown of every loaded module.

    Tearing down torch's and Taichi's ~2,000 modules took 0.8 s of a 3.2 s ``taichirast render``
    on 2 cores. What a normal exit does that matters is done first: Taichi's runtime is reset
    (that writes new compiled kernels to its offline cache), the atexit handlers run, and the
    standard streams are flushed. With another thread still running, the normal exit is kept.
    """
    import threading

    if threading.active_count() > 1:
        sys.exit(rc)
    if "taichi" in sys.modules:
        from .runtime import reset_if_initialized

        reset_if_initialized()
    import atexit

    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed or broken pipe: nothing left to write to
        pass
    os._exit(rc)


def console() -> None:
    """The ``taichirast`` console script and ``python -m taichirast``: :func:`main`, then a quick
    exit (:func:`_quick_exit`). An exception other than those :func:`main` reports propagates
    with the interpreter's normal exit and traceback."""
    _quick_exit(main())


if __name__ == "__main__":
    console()
