"""The NumPy API: the same primitives and kernels as :mod:`taichirast.ops`, on NumPy arrays.

Each function mirrors its torch twin (see its docstring there for shapes and conventions) but
takes and returns NumPy arrays and does no autograd. :func:`vjp` gives the vector-Jacobian
product, ``jax.vjp``-style::

    out, pullback = tr.np.vjp(tr.np.soft_rasterize, sv, faces, colors, image_size=(H, W))
    g_sv, g_colors, g_background = pullback(grad_out)   # g_background None: not given

``pullback`` takes one gradient per output (``None`` for outputs you do not use, or for integer
outputs such as face ids) and returns one gradient per *differentiable parameter* of
the function, in signature order, whether given by position or keyword (``None`` for arguments
the call did not give). Functions returning :class:`~taichirast.Fragments` take a
Fragments-shaped tuple of gradients ``(None, g_bary, g_depth)``; a Fragments argument gets a
Fragments of gradients (:func:`interpolate`'s pullback returns ``(g_attrs, Fragments(None, g_bary,
None))``) so pullbacks chain.

Every function here is made from the same primitive definition as its torch twin in
:mod:`taichirast.ops` (:mod:`taichirast._prims`), so the two cannot drift.

Importing this module does not import torch. With ``TAICHIRAST_ARCH=cuda`` NumPy arrays are
copied to and from the GPU by Taichi at each call (host arrays by definition).
"""
from __future__ import annotations

import numpy as _np

from ._prims import PUBLIC as _PUBLIC
from ._prims import exports as _exports
from .fragments import Fragments  # noqa: F401  (re-exported: pullbacks take and return it)

__all__ = ["project", *_PUBLIC, "look_at", "fov_intrinsics", "vjp"]


def look_at(eye, at=(0.0, 0.0, 0.0), up=(0.0, 1.0, 0.0)):
    """World-to-camera ``(R (3, 3), t (3,))`` float64 for a camera at ``eye`` looking at ``at``.

    OpenCV axes (camera looks down +Z, x right, y down, image up = ``up``), the same as
    :meth:`taichirast.PerspectiveCamera.look_at`. Raises ``ValueError`` if ``eye == at`` or ``up``
    is parallel to the viewing direction.
    """
    eye, at, up = (_np.asarray(x, dtype=_np.float64).reshape(3) for x in (eye, at, up))
    z = at - eye
    if _np.linalg.norm(z) == 0:
        raise ValueError("look_at: eye and at coincide")
    z = z / _np.linalg.norm(z)
    x = _np.cross(z, up)
    if _np.linalg.norm(x) <= 1e-12:
        raise ValueError("look_at: up is parallel to the viewing direction")
    x = x / _np.linalg.norm(x)
    y = _np.cross(z, x)
    R = _np.stack([x, y, z])
    return R, -R @ eye


def fov_intrinsics(fov_y, image_size):
    """``(4,)`` float64 intrinsics ``fx, fy, cx, cy`` for a vertical field of view in degrees, square
    pixels and the principal point at the image centre (as :meth:`PerspectiveCamera.from_fov`)."""
    from . import _validate as V

    H, W = V.image_size("fov_intrinsics", image_size)
    if not 0 < float(fov_y) < 180:
        raise ValueError(f"fov_intrinsics: fov_y must be in (0, 180) degrees, got {fov_y}")
    f = (H / 2.0) / _np.tan(_np.radians(float(fov_y)) / 2.0)
    return _np.array([f, f, W / 2.0, H / 2.0])


globals().update(_exports("numpy"))
project = project_points  # noqa: F821  (NumPy has no camera objects: project takes R, t, intrinsics)


def vjp(fn, *args, **kw):
    """``(outputs, pullback)`` for a function of this module called as ``fn(*args, **kw)``."""
    f = getattr(fn, "_vjp", None)
    if f is None:
        raise TypeError(f"vjp: {getattr(fn, '__name__', fn)!r} is not a taichirast.np primitive "
                        f"(expected one of {', '.join(__all__[:-1])})")
    return f(*args, **kw)
