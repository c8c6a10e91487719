"""TensorBoard logging of meshes, point clouds, rendered images and scalars.

Thin helpers over torch's :class:`torch.utils.tensorboard.SummaryWriter` (TensorBoard's mesh
plugin shows meshes and point clouds in 3D next to the images and loss curves)::

    from taichirast import tensorboard as tb
    w = tb.writer("runs/fit")                        # needs `pip install tensorboard`
    tb.add_scalars(w, {"loss": 0.12, "iou": 0.97}, step=10)
    tb.add_image(w, "render", image, step=10)        # (H, W), (H, W, C) or (1, H, W, C), in [0, 1]
    tb.add_mesh(w, "shape", verts, faces, colors, step=10)
    tb.add_point_cloud(w, "points", points, step=10)
    w.close()

Then ``tensorboard --logdir runs``. :class:`FitLogger` does this for an optimisation loop (the
demos' ``--tensorboard DIR``). Inputs may be torch tensors or NumPy arrays; colours are floats in
[0, 1] (or uint8). Nothing here is differentiable; tensors are detached and copied to the CPU.
"""
from __future__ import annotations

import numpy as np


def writer(logdir):
    """A ``SummaryWriter`` writing event files into ``logdir`` (created if missing).

    Raises ImportError naming the package to install when ``tensorboard`` is not installed.
    """
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:  # torch imports tensorboard lazily here
        raise ImportError("taichirast.tensorboard needs the tensorboard package: pip install tensorboard "
                          f"({e})") from None
    return SummaryWriter(log_dir=str(logdir))


def _np(x):
    """A tensor (detached, on the CPU) or array-like as a NumPy array."""
    return np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x)


def _u8(a):
    """Floats in [0, 1] (clipped; NaN as 0) as uint8; uint8 kept."""
    if a.dtype == np.uint8:
        return a
    return (np.clip(np.nan_to_num(a.astype(np.float64)), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _rows(fn, name, x, width, dtype):
    """``x`` as ``(N, width)`` (a leading batch of 1 is dropped); ValueError naming fn and name."""
    a = _np(x)
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 2 or a.shape[1] != width:
        raise ValueError(f"{fn}: {name} must have shape (N, {width}) or (1, N, {width}), got {tuple(a.shape)}")
    if np.issubdtype(dtype, np.floating) and not np.isfinite(a).all():
        raise ValueError(f"{fn}: {name} contains NaN or infinite values")
    return a.astype(dtype)


def _colors_u8(fn, colors, n):
    """Per-vertex colours (n, 3) as uint8: floats in [0, 1] are scaled by 255, uint8 kept."""
    a = _np(colors)
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 2 or a.shape[0] != n or a.shape[1] not in (3, 4):
        raise ValueError(f"{fn}: colors must have shape ({n}, 3) (one RGB row per vertex), got {tuple(a.shape)}")
    return _u8(a[:, :3])


def add_mesh(w, tag: str, verts, faces, colors=None, step=None):
    """Log a triangle mesh: ``verts (V, 3)``, ``faces (F, 3)`` int indices, ``colors (V, 3)``
    per vertex in [0, 1] (or uint8), optional. A leading batch dimension of 1 is accepted."""
    fn = "add_mesh"
    v = _rows(fn, "verts", verts, 3, np.float32)
    f = _rows(fn, "faces", faces, 3, np.int64)
    if f.size and (f.min() < 0 or f.max() >= v.shape[0]):
        raise ValueError(f"{fn}: faces index vertices 0..{v.shape[0] - 1}, got indices {f.min()}..{f.max()}")
    kw = {}
    if colors is not None:
        kw["colors"] = _colors_u8(fn, colors, v.shape[0])[None]
    import torch

    w.add_mesh(tag, vertices=torch.from_numpy(v[None]), faces=torch.from_numpy(f[None]),
               colors=torch.from_numpy(kw["colors"]) if kw else None, global_step=step)


def add_point_cloud(w, tag: str, points, colors=None, step=None):
    """Log a point cloud ``points (N, 3)`` with optional ``colors (N, 3)`` (TensorBoard's mesh
    plugin without faces)."""
    fn = "add_point_cloud"
    p = _rows(fn, "points", points, 3, np.float32)
    import torch

    c = None if colors is None else torch.from_numpy(_colors_u8(fn, colors, p.shape[0])[None])
    w.add_mesh(tag, vertices=torch.from_numpy(p[None]), colors=c, global_step=step)


def add_image(w, tag: str, image, step=None):
    """Log an image: ``(H, W)``, ``(H, W, C)`` or ``(1, H, W, C)`` with C in {1, 3, 4}, floats in
    [0, 1] (clipped; NaN shown as 0) or uint8. RGBA is logged as is (TensorBoard shows alpha)."""
    a = shown = _np(image)
    if a.ndim == 4 and a.shape[0] == 1:
        a = a[0]
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4) or 0 in a.shape:
        raise ValueError(f"add_image: image must have shape (H, W), (H, W, C) or (1, H, W, C) with C in "
                         f"(1, 3, 4), got {tuple(shown.shape)}")
    w.add_image(tag, _u8(a), global_step=step, dataformats="HWC")


def add_scalars(w, values: dict, step=None):
    """Log each ``name: value`` of ``values`` as its own scalar curve (tensors with one element,
    or numbers)."""
    for name, v in values.items():
        v = float(v.detach()) if hasattr(v, "detach") else float(v)
        w.add_scalar(name, v, global_step=step)


class FitLogger:
    """TensorBoard logging of an optimisation loop (the demos' ``--tensorboard DIR``).

    Every step: the loss (and any extra scalars). Every ``every`` steps and at :meth:`close`: the
    target and current renders side by side (one row per view, up to 2; the inputs as
    :func:`taichirast.live.to_rgb_views` takes them) and, if ``mesh`` is given, the current mesh
    (``mesh()`` returns ``(verts, faces, colors or None)``).
    """

    def __init__(self, logdir, every: int = 10, mesh=None):
        if int(every) < 1:
            raise ValueError(f"FitLogger: every must be >= 1, got {every}")
        self.w = writer(logdir)
        self.logdir, self.every, self.mesh = str(logdir), int(every), mesh
        self._last = None

    def update(self, step: int, target, current, loss, **scalars) -> None:
        add_scalars(self.w, {"loss": loss, **scalars}, step)
        self._last = (step, target, current)
        if step % self.every == 0:
            self._snapshot()

    def _snapshot(self):
        from .live import to_rgb_views

        step, target, current = self._last
        # up to 2 views (rows) of target | current, as RGB (RGBA composited over grey, as in live)
        rows = [np.concatenate([t, c], axis=1) for t, c in zip(to_rgb_views(target), to_rgb_views(current))
                if t.shape == c.shape]
        if rows:
            add_image(self.w, "target | current", np.concatenate(rows, axis=0), step)
        if self.mesh is not None:
            v, f, col = self.mesh()
            add_mesh(self.w, "mesh", v, f, col, step)

    def close(self) -> None:
        if self._last is not None and self._last[0] % self.every != 0:
            self._snapshot()
        self.w.close()
