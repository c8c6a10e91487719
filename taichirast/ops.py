"""The torch API: one function per primitive, each a ``torch.autograd.Function`` over Taichi kernels.

All functions take torch tensors on the device Taichi runs on (CPU tensors for the CPU backend,
CUDA tensors for ``TAICHIRAST_ARCH=cuda``; anything else is a ``ValueError``), in float32 or
float64 (all float inputs of one call share a dtype). Outputs are always batched. Every gradient
is a hand-written Taichi kernel checked against finite differences in float64 (tests/).

The functions are made from the primitive definitions in :mod:`taichirast._prims` (their
signatures and docstrings are written once, there); the same kernels are reachable from NumPy
through :mod:`taichirast.np`. Compositions (:func:`taichirast.render`, mip-mapped
:func:`taichirast.texture`) live above this module.
"""
from __future__ import annotations

from . import _validate
from ._prims import PUBLIC, exports

globals().update(exports("torch"))
__all__ = ["project", *PUBLIC]


def project(verts, camera):
    """Project world vertices to screen pixels with ``camera``.

    Args:
        verts: ``(V, 3)`` or ``(B, V, 3)`` float world positions, or a :class:`~taichirast.Meshes`
            batch of different meshes (mesh i seen by camera i; the result is then a ``Meshes`` of
            screen vertices, what every primitive takes as a packed batch).
        camera: :class:`~taichirast.PerspectiveCamera` or :class:`~taichirast.OrthographicCamera`
            (batch 1 or B).

    Returns:
        ``(B, V, 3)``: ``x, y`` in pixels (x right, y down, pixel centres at half-integers) and
        ``z`` = camera depth (> 0 in front of a perspective camera). Differentiable w.r.t.
        ``verts`` and every camera tensor (R, t, fx, fy, cx, cy). The result remembers the
        camera's ``image_size``: rasterizing this tensor at another size warns
        (``taichirast.CameraSizeWarning``).
    """
    R, t = camera.extrinsics()
    out = project_points(verts, R, t, camera.intrinsics(), orthographic=camera.orthographic)  # noqa: F821
    _validate.tag_projected(getattr(out, "verts_packed", out), camera.image_size)
    return out
