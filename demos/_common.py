"""Helpers shared by the demos (built-in shapes, colours, camera rings, image strips).

Demos import this file as a sibling module (``from _common import ...``) after putting their own
folder on ``sys.path``, so they run as plain scripts and from the tests alike.
"""
from __future__ import annotations

import math
import os

import numpy as np
import torch

from taichirast import io as trio
from taichirast import meshes


def superellipsoid(level=2, power=4.0, scale=(1.0, 1.0, 1.0)):
    """``|x|^p + |y|^p + |z|^p = 1`` (a 'rounded box' for p = 4) from an icosphere, scaled: float64 NumPy."""
    v, f = meshes.icosphere(level)
    v = v.astype(np.float64)
    v = v / (np.abs(v) ** power).sum(1, keepdims=True) ** (1.0 / power)
    return v * np.asarray(scale, dtype=np.float64), f


def attach(base, part):
    """Concatenate two (verts, faces) meshes and centre the result on its bounding box: float32 / int32."""
    (v, f), (pv, pf) = base, part
    verts = np.concatenate([v, pv], 0)
    faces = np.concatenate([f, pf + v.shape[0]], 0)
    verts = verts - (verts.min(0) + verts.max(0)) / 2
    return verts.astype(np.float32), faces.astype(np.int32)


def load_normalized(path):
    """A mesh file, centred and scaled into the unit sphere."""
    v, f = trio.load_mesh(path)
    return trio.normalize_mesh(v, radius=1.0), f


def vertex_colors(verts):
    """Per-vertex colours from the object-space position (a fixed 'texture', so rotations show)."""
    lo, hi = verts.min(0).values, verts.max(0).values
    return 0.15 + 0.85 * (verts - lo) / (hi - lo).clamp_min(1e-6)


def ring_eyes(n_views, distance, az_offset_deg=0.0, el_up_deg=25.0, el_down_deg=-20.0):
    """``(n_views, 3)`` camera positions on a ring around the origin, alternating elevation."""
    eyes = []
    for i in range(n_views):
        az = 2 * math.pi * i / n_views + math.radians(az_offset_deg)
        el = math.radians(el_up_deg if i % 2 == 0 else el_down_deg)
        eyes.append([distance * math.cos(el) * math.sin(az), distance * math.sin(el),
                     distance * math.cos(el) * math.cos(az)])
    return torch.tensor(eyes)


def rgba_strip(rgba, n=4):
    """RGBA ``(N, H, W, 4)`` -> RGB strip of the first ``n`` views on a grey background."""
    rgb = rgba[..., :3] + (1 - rgba[..., 3:]) * 0.5
    return torch.cat(list(rgb[:n]), dim=1)


def compare_strip(current, target, n=4):
    """GIF frame: the current RGBA views above the target ones (each clamped to [0, 1], on grey)."""
    return torch.cat([rgba_strip(current.detach().clamp(0, 1), n), rgba_strip(target.detach().clamp(0, 1), n)], dim=0)


def log_anneal(start, end, step, steps):
    """Geometric interpolation from ``start`` (step 0) to ``end`` (the last of ``steps`` steps)."""
    frac = step / max(steps - 1, 1)
    return math.exp(math.log(start) * (1 - frac) + math.log(end) * frac)


BUNNY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "meshes", "bunny.obj")


def bunny_or_builtin(arg):
    """``--mesh``: a path, ``"none"`` (built-in shape) or unset (the bunny when present, else built-in).

    Returns ``(verts float32 tensor, faces int32 tensor, name)``.
    """
    path = arg if arg and arg.lower() != "none" else (BUNNY if arg is None and os.path.exists(BUNNY) else None)
    if path:
        v, f = load_normalized(path)
        name = os.path.basename(path)
    else:
        v, f = superellipsoid(3, power=3.0, scale=(0.9, 0.7, 0.6))
        name = "superellipsoid"
    return torch.as_tensor(v, dtype=torch.float32), torch.as_tensor(f, dtype=torch.int32), name


def ring_cameras(n_views, size, distance, fov=40.0, **ring):
    """``n_views`` perspective cameras looking at the origin from :func:`ring_eyes` (``ring`` keywords)."""
    import taichirast as tr

    return tr.PerspectiveCamera.look_at(ring_eyes(n_views, distance, **ring), fov_y=fov, image_size=(size, size),
                                        near=0.1, far=10.0)


def add_output_args(parser, name, gif_every=5):
    """The arguments every demo has: --out (default out/NAME), --seed, --gif-every, --quiet."""
    parser.add_argument("--out", default=os.path.join("out", name))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gif-every", type=int, default=gif_every)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def progress(n, desc, quiet=False):
    """``range(n)`` with a tqdm progress bar (plain ``range`` when ``quiet`` or tqdm is missing)."""
    if not quiet:
        try:
            from tqdm import trange
        except ImportError:  # tqdm is optional
            return range(n)
        return trange(n, desc=desc)
    return range(n)


def add_live_args(parser):
    """The live-view arguments of the fitting demos: --gui, --live, --live-every, --live-format.

    ``--gui`` opens a window showing target | current | |difference| | gradient (dL/dpixel) and the
    loss curve, updated every step (space pause, s step, r reset, esc close); without a display it
    renders the same dashboard offscreen into ``OUT/live/`` with a one-line message. ``--live``
    records that output headless in any case (PNG frames, a GIF or MP4, loss.png, loss.csv).
    """
    g = parser.add_argument_group("live view")
    g.add_argument("--gui", action="store_true",
                   help="live window (target | current | difference | gradient, loss curve; space = pause, "
                        "s = step, r = reset); without a display: offscreen frames in OUT/live/")
    g.add_argument("--live", action="store_true", help="record the live view headless into OUT/live/")
    g.add_argument("--live-every", type=int, default=5, help="record a live frame every N steps")
    g.add_argument("--live-format", choices=("gif", "mp4"), default="gif", help="live animation format")
    add_tensorboard_arg(g)


def add_tensorboard_arg(parser):
    """``--tensorboard DIR``: log to TensorBoard event files in DIR (see :func:`tensorboard_writer`)."""
    parser.add_argument("--tensorboard", metavar="DIR", default=None,
                        help="also log losses, renders and meshes to TensorBoard event files in DIR (needs "
                             "`pip install tensorboard`; view with `tensorboard --logdir DIR`)")


def tensorboard_writer(args):
    """A ``SummaryWriter`` for ``--tensorboard DIR``, or None without it."""
    if not getattr(args, "tensorboard", None):
        return None
    from taichirast.tensorboard import writer

    return writer(args.tensorboard)


def make_live(args, name, params=(), optimizers=(), on_reset=None, views=2, mesh=None):
    """A :class:`taichirast.live.LiveOptimization` for the demo's ``args`` (disabled without --gui / --live).

    The ``r`` key restores ``params`` to their values now, clears the optimisers' state and calls
    ``on_reset()``. Call ``live.update(step, target, current, loss)`` before ``loss.backward()``
    and ``live.close()`` after the loop. With ``--tensorboard DIR`` the same updates are logged to
    TensorBoard (every ``--live-every`` steps for images and ``mesh()``, a callable returning
    ``(verts, faces, colors or None)``, when given).
    """
    from taichirast.live import LiveOptimization, has_display

    params = list(params)
    snapshot = [p.detach().clone() for p in params]

    def reset():
        with torch.no_grad():
            for p, s in zip(params, snapshot):
                p.copy_(s)
        for o in optimizers:
            o.state.clear()
        if on_reset is not None:
            on_reset()

    gui = bool(getattr(args, "gui", False))
    record = bool(getattr(args, "live", False)) or (gui and not has_display())
    tb = None
    if getattr(args, "tensorboard", None):
        from taichirast.tensorboard import FitLogger

        tb = FitLogger(args.tensorboard, every=getattr(args, "live_every", 5), mesh=mesh)
    return LiveOptimization(name, gui=gui, out_dir=os.path.join(args.out, "live") if record else None,
                            every=getattr(args, "live_every", 5), reset=reset,
                            fmt=getattr(args, "live_format", "gif"), views=views, tensorboard=tb)
