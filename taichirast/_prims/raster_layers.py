"""``rasterize_layers``: K depth layers of hard fragments (depth peeling). Kernels in kernels/raster.py.

Layer 0 is exactly :func:`rasterize`'s output; layer k keeps, per pixel, the nearest face strictly
behind layer k - 1 in (depth, face id) order. Barycentrics and depth of every layer are recomputed
by the same differentiable kernels as ``rasterize``'s, run on the ``B * K`` layer images.
"""
from __future__ import annotations


import numpy as np

from .. import _array as A
from .._binning import bin_faces
from .._face_order import visit_order
from .._primitive import Prepared, Primitive
from ..fragments import Fragments
from ..runtime import ensure_init
from .raster import vertex_stride

FN = "rasterize_layers"

# Same meaning as taichirast._prims.raster.SCHEDULE ("face" | "pixel"); None = the choice
# rasterize makes (its SCHEDULE if set, else by arch). Results never depend on it.
SCHEDULE = None


def rasterize_layers(screen_verts, faces, image_size, num_layers=2, perspective_correct=True, cull_backfaces=False,
                     near=0.01, tile_size=8):
    """Hard rasterization into ``num_layers`` depth layers (depth peeling).

    Layer 0 equals :func:`rasterize` bit for bit. Layer ``k >= 1`` keeps, per pixel, the nearest
    face whose (depth, face id) is strictly greater than layer ``k - 1``'s, so the layers list
    the faces whose interior contains the pixel centre sorted by depth (exact depth ties by face
    id), nearest first. A pixel with fewer than ``k + 1`` such faces has ``face_id == -1``,
    ``bary == 0``, ``depth == +inf`` in layer ``k``; valid layers always come first.
    Deterministic (no dependence on thread order); on CPU each face scans its bounding box once
    per layer, on GPU faces are binned once and each pixel walks its tile's list once per layer
    (the two schedules give identical results).

    Used by rasterize-then-splat (:func:`splat`, Cole et al. 2021), which needs the surfaces
    just behind the visible one. For closed meshes pass ``cull_backfaces=True``: otherwise
    layer 1 is mostly the inside of the front surface rather than the surface behind it.

    Args:
        screen_verts: ``(V, 3)`` or ``(B, V, 3)`` float32/float64 from :func:`project`: x, y in
            pixels (x right, y down, pixel centres at half-integers), z = camera depth.
        faces: ``(F, 3)`` int32/int64 vertex indices shared by the batch; counter-clockwise on
            screen = front-facing.
        image_size: ``(H, W)`` or an int.
        num_layers: ``K >= 1``, number of depth layers.
        perspective_correct: perspective-correct barycentrics and depth (``False``: screen-linear,
            for orthographic cameras), as in :func:`rasterize`.
        cull_backfaces: drop clockwise (back-facing) triangles.
        near: minimum camera depth; nearer parts of triangles are clipped.
        tile_size: binning tile edge in pixels on GPU (speed only).

    Returns:
        :class:`~taichirast.Fragments` with a layer axis: ``face_id (B, K, H, W)`` int32,
        ``bary (B, K, H, W, 3)``, ``depth (B, K, H, W)`` (float dtype of ``screen_verts``).
        ``bary`` and ``depth`` are differentiable w.r.t. ``screen_verts`` exactly as
        :func:`rasterize`'s (face ids, hence visibility, are not). To use other fragment
        functions on the layers, view them as ``B`` images of height ``K * H``:
        ``Fragments(face_id.reshape(B, K * H, W), bary.reshape(B, K * H, W, 3), ...)``.

    Example::

        frags = tr.rasterize_layers(sv, faces, (64, 64), num_layers=2, cull_backfaces=True)
        frags.face_id.shape   # (B, 2, 64, 64); frags.face_id[:, 0] is tr.rasterize(sv, faces, (64, 64), ...).face_id
    """
    from .raster import raster_args

    if isinstance(num_layers, bool) or not isinstance(num_layers, (int, np.integer)):
        raise TypeError(f"{FN}: num_layers must be a positive int, got {num_layers!r}")
    K = int(num_layers)
    if K < 1:
        raise ValueError(f"{FN}: num_layers must be a positive int (1 = plain rasterize), got {num_layers!r}")
    sv, faces, tab, params = raster_args(FN, screen_verts, faces, image_size, perspective_correct,
                                         cull_backfaces, near, tile_size)
    if tab.shape[0] * K * params["H"] * params["W"] >= 2**31:
        raise ValueError(f"{FN}: batch {tab.shape[0]} x num_layers {K} x image {params['H']}x{params['W']} is "
                         f"more than 2^31 pixels; render fewer layers, a smaller batch or a smaller image")
    return Prepared(inputs=[sv, faces, tab], sources=["screen_verts", None, None],
                    params=dict(params, K=K),
                    pack=lambda outs: Fragments(*outs))


def _schedule():
    if SCHEDULE is not None:
        return SCHEDULE
    from . import raster as _raster

    s = getattr(_raster, "SCHEDULE", None)
    if s is not None:
        return s
    return "face" if ensure_init() == "cpu" else "pixel"


def _repeat_layers(x, K):
    """``(B, ...) -> (B * K, ...)``, each batch entry repeated K times in a row (layer images' vertices);
    shared vertices (a batch of 1) stay shared."""
    if K == 1 or x.shape[0] == 1:
        return x
    if A.is_torch(x):
        return x.repeat_interleave(K, dim=0).contiguous()
    return np.repeat(x, K, axis=0)


def _layer0(dst, src, B, K, n):
    """Copy a ``(B * n,)`` layer buffer into layer 0 of a flat ``(B, K, n)`` buffer."""
    dst.reshape(B, K, n)[:, 0] = src.reshape(B, n)


def forward(inputs, params):
    from taichirast.kernels import raster, real_type

    ensure_init()
    sv, faces, tab = inputs
    real = A.dtype_name(sv)
    k = raster.build(real_type(real))
    B, Vn, E = tab.shape[0], sv.shape[1], params["E"]
    H, W, K, T = params["H"], params["W"], params["K"], params["tile"]
    near, persp, cull = params["near"], int(params["persp"]), int(params["cull"])
    HW = H * W
    N = B * HW
    NK = N * K
    outs = (A.empty(sv, (B, K, H, W), "int32"), A.empty(sv, (B, K, H, W, 3)), A.empty(sv, (B, K, H, W)))
    face_id, bary, depth = outs[0].reshape(NK), outs[1].reshape(NK, 3), outs[2].reshape(NK)
    svf = sv.reshape(sv.shape[0] * Vn, 3)
    Vs = vertex_stride(sv)
    sv_rep = _repeat_layers(sv, K)  # layer image b * K + l sees batch b's vertices
    svr = sv_rep.reshape(sv_rep.shape[0] * Vn, 3)
    if _schedule() == "face":
        key = A.full(sv, (NK,), raster.KEY_EMPTY, "int64")
        f64 = real == "float64"
        fid = A.full(sv, (NK,) if f64 else (1,), raster.FID_EMPTY, "int32")
        rows, order, ordered = visit_order(k, sv, faces, B, E)
        if E > 0:
            # layer 0: rasterize's own kernel (so it matches rasterize bit for bit), then peel
            key0 = key if K == 1 else A.full(sv, (N,), raster.KEY_EMPTY, "int64")
            fid0 = fid if (K == 1 or not f64) else A.full(sv, (N,), raster.FID_EMPTY, "int32")
            for second in ((0, 1) if f64 else (0,)):
                k["raster_faces"](svf, rows, tab, order, key0, fid0, E, Vs, H, W, near, persp, cull, second, ordered)
            if K > 1:
                _layer0(key, key0, B, K, HW)
                if f64:
                    _layer0(fid, fid0, B, K, HW)
            for layer in range(1, K):
                for second in ((0, 1) if f64 else (0,)):
                    k["raster_faces_peel"](svf, rows, tab, order, key, fid, E, Vs, K, layer, H, W, near, persp,
                                           cull, second, ordered)
        k["resolve"](svr, faces, key, fid, face_id, bary, depth, B * K, Vs, H, W, near, persp)
    else:
        bbox = A.empty(sv, (E, 4))
        fdata = A.empty(sv, (E, raster.N_FDATA))
        if E > 0:
            k["setup"](svf, faces, tab, bbox, fdata, Vs, near, persp, cull)
        offsets, tile_faces = bin_faces(bbox, tab, H, W, T)
        # depth holds the depth test's own values while peeling; ``bary`` then rewrites it
        if K == 1:
            k["raster_pixels"](bbox, fdata, tab, offsets, tile_faces, face_id, depth, H, W, T, near, persp)
        else:
            fid0, d0 = A.empty(sv, (N,), "int32"), A.empty(sv, (N,))
            k["raster_pixels"](bbox, fdata, tab, offsets, tile_faces, fid0, d0, H, W, T, near, persp)
            _layer0(face_id, fid0, B, K, HW)
            _layer0(depth, d0, B, K, HW)
            for layer in range(1, K):
                k["raster_pixels_peel"](bbox, fdata, tab, offsets, tile_faces, face_id, depth, K, layer, H, W, T,
                                        near, persp)
        k["bary"](svr, faces, face_id, bary, depth, B * K, Vs, H, W, near, persp)
    return outs, (sv, faces, outs[0])


def backward(saved, params, grads, needs):
    """rasterize's backward on the ``B * K`` layer images (vertices repeated per layer), summed over layers."""
    from .raster import screen_vertex_grads

    sv, faces, face_id = saved
    _, g_bary, g_depth = grads
    if g_bary is None and g_depth is None:
        return [None, None, None]
    Bv, Vn, K = sv.shape[0], sv.shape[1], params["K"]
    B = face_id.shape[0]
    grad_rep = screen_vertex_grads(_repeat_layers(sv, K), faces, face_id.reshape(B * K, params["H"], params["W"]),
                                   g_bary, g_depth, params["H"], params["W"], params["persp"])
    summed = K == 1 or Bv == 1  # shared vertices: the kernel summed over every layer image already
    return [grad_rep if summed else A.sum_axes(grad_rep.reshape(Bv, K, Vn, 3), (1,)), None, None]


PRIM = Primitive(FN, rasterize_layers, forward, backward, differentiable=("screen_verts",))
