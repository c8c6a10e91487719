"""``rasterize``: hard rasterization of screen-space triangles. Kernels in kernels/raster.py.

Inputs: screen vertices ``(B, V, 3)`` or ``(V, 3)`` (x, y in pixels, z = camera depth, as made by
``project``), faces ``(F, 3)`` int32/int64 shared by the batch, ``image_size = (H, W)``; or a packed
batch of different meshes (:mod:`taichirast.packed`: image i draws mesh i's face range).
Outputs, in order:

* ``face_id (B, H, W)`` int32, ``-1`` on background (not differentiable);
* ``bary (B, H, W, 3)`` perspective-correct barycentrics (screen-space ones when
  ``perspective_correct=False``), 0 on background; same float dtype as the vertices;
* ``depth (B, H, W)`` camera depth of the visible point, ``+inf`` on background.

Gradients flow to the screen vertices through ``bary`` and ``depth`` (hand-written backward; the
face ids are piecewise constant). Nearest depth wins; exact ties go to the smaller face id, so the
result is deterministic. ``cull_backfaces=True`` keeps only counter-clockwise (front-facing)
triangles. ``near``: points nearer than this (camera depth) are not drawn; with
``perspective_correct`` vertices behind the camera are handled exactly (homogeneous
rasterization), without NaN/inf. ``tile_size``: side of the square screen tiles of the binned
schedule (GPU); the CPU schedule needs no binning (see ``SCHEDULE``). Results never depend on it.
"""
from __future__ import annotations

import math

import numpy as np

from .. import _array as A
from .. import _validate as V
from .. import packed as P
from .._binning import bin_faces
from .._face_order import visit_order
from .._primitive import Prepared, Primitive
from .._scatter import Target
from ..runtime import ensure_init

FN = "rasterize"


def _fragments(outs):
    from ..fragments import Fragments

    return Fragments(*outs)

# Depth-test schedule: "face" (one thread per face visiting its own bbox pixels, atomic_min on a
# per-pixel depth key; no binning: best on CPU, where faces of real meshes cover a few pixels),
# "pixel" (tile binning, then one thread per pixel walking its tile's list: GPU), or None =
# choose by arch. Both give identical results (tests run both).
SCHEDULE = None


def rasterize(screen_verts, faces, image_size, perspective_correct=True, cull_backfaces=False, near=0.01,
            tile_size=8):
    """Hard rasterization: visible face, barycentrics and depth per pixel.

    Each pixel keeps the nearest face whose interior contains its centre, ties going to the
    smaller face id (deterministic). On CPU each face scans the pixels of its own bounding box
    (depth test by atomic-min on packed depth/id keys); on GPU triangles are binned into
    ``tile_size``-pixel tiles (CSR lists sized from counts, so nothing is ever dropped) and each
    pixel walks its tile's list. Both schedules give bitwise-identical results. Triangles crossing
    the near plane are clipped exactly (2D homogeneous rasterization); points behind the camera
    never show.

    Args:
        screen_verts: ``(V, 3)`` or ``(B, V, 3)`` from :func:`project` (x, y pixels, z camera depth);
            or a :class:`~taichirast.Meshes` of screen vertices (``project`` of a batch; then
            ``faces=None``), or packed ``(sum V_i, 3)`` / a list of per-mesh ``(V_i, 3)`` with
            ``faces`` a ``Meshes`` / a list of per-mesh ``(F_i, 3)``: image i draws mesh i.
        faces: ``(F, 3)`` int32/int64 vertex indices, counter-clockwise seen from the camera =
            front-facing; shared by the batch.
        image_size: ``(H, W)`` or an int, any positive size.
        perspective_correct: barycentrics and depth for a perspective projection (``True``) or
            screen-linear (``False``; use it for orthographic cameras).
        cull_backfaces: drop faces that are clockwise on screen.
        near: minimum camera depth; nearer parts of triangles are clipped.
        tile_size: binning tile edge in pixels on GPU (a speed knob, never a limit).

    Returns:
        :class:`~taichirast.Fragments` ``(face_id (B,H,W) int32, bary (B,H,W,3), depth (B,H,W))``
        with ``-1`` / 0 / ``+inf`` on background; for a packed batch, face ids index the packed
        faces (mesh i's face k is ``faces_offsets[i] + k``). ``bary`` and ``depth`` are differentiable
        w.r.t. ``screen_verts`` (not through visibility changes: use soft modes or
        :func:`dibr_silhouette` for silhouette gradients).
    """
    sv, faces, tab, params = raster_args(FN, screen_verts, faces, image_size, perspective_correct,
                                         cull_backfaces, near, tile_size)
    return Prepared(inputs=[sv, faces, tab], sources=["screen_verts", None, None], pack=_fragments, params=params)


def raster_args(fn, screen_verts, faces, image_size, perspective_correct, cull_backfaces, near, tile_size):
    """Checked ``(screen_verts (Bv, V, 3), faces, tab (B, 3), params)`` of a hard rasterization
    (also rasterize_layers'): the face entries of the B images (:class:`taichirast.packed.Entries`,
    ``params["E"]`` of them), with vertices ``screen_verts[b]`` (``[0]`` when ``Bv = 1``)."""
    screen_verts, faces, meshes = P.mesh_args(fn, "screen_verts", screen_verts, faces)
    kind = V.kind_of(screen_verts, faces)
    sv = V.screen_verts(fn, "screen_verts", screen_verts, kind)
    faces = V.faces(fn, "faces", faces, kind, n_verts=sv.shape[1], like=sv)
    H, W = V.image_size(fn, image_size)
    V.camera_size_matches(fn, screen_verts, (H, W))
    B = P.batch(fn, meshes, {"screen_verts": sv.shape[0]})
    ent = P.entries_for(meshes, B, faces.shape[0], sv)
    persp = bool(perspective_correct)
    near = V.number(fn, "near", near, lo=0.0, lo_open=True) if persp else V.number(fn, "near", near)
    if not math.isfinite(near):
        raise ValueError(f"{fn}: near must be finite, got {near!r}")
    if isinstance(tile_size, bool) or not isinstance(tile_size, (int, np.integer)):
        raise TypeError(f"{fn}: tile_size must be a positive int, got {tile_size!r}")
    if int(tile_size) <= 0:
        raise ValueError(f"{fn}: tile_size must be a positive int, got {tile_size!r}")
    return sv, faces, ent.tab, {"H": H, "W": W, "persp": persp, "cull": bool(cull_backfaces), "near": near,
                                "tile": int(tile_size), "E": ent.total}


def vertex_stride(sv):
    """Rows of the flattened ``(Bv * V, 3)`` vertices between images: V for a batch, 0 when shared."""
    return sv.shape[1] if sv.shape[0] > 1 else 0


def _schedule():
    if SCHEDULE is not None:
        return SCHEDULE
    return "face" if ensure_init() == "cpu" else "pixel"


def forward(inputs, params):
    from taichirast.kernels import raster, real_type

    ensure_init()
    sv, faces, tab = inputs
    real = A.dtype_name(sv)
    k = raster.build(real_type(real))
    B, Vn, E = tab.shape[0], sv.shape[1], params["E"]
    H, W, T = params["H"], params["W"], params["tile"]
    near, persp, cull = params["near"], int(params["persp"]), int(params["cull"])
    N, Vs = B * H * W, vertex_stride(sv)
    outs = (A.empty(sv, (B, H, W), "int32"), A.empty(sv, (B, H, W, 3)), A.empty(sv, (B, H, W)))
    # kernels see flat views (see kernels/raster.py): pixels (N, ...), vertices (Bv * V, 3)
    face_id, bary, depth = outs[0].reshape(N), outs[1].reshape(N, 3), outs[2].reshape(N)
    svf = sv.reshape(sv.shape[0] * Vn, 3)
    if _schedule() == "face":
        key = A.full(sv, (N,), raster.KEY_EMPTY, "int64")
        rows, order, ordered = visit_order(k, sv, faces, B, E)
        f64 = real == "float64"
        # f32: the face id is in the key's low bits (fid unused); f64: a second pass finds it
        fid = A.full(sv, (N,), raster.FID_EMPTY, "int32") if f64 else A.empty(sv, (1,), "int32")
        for second in ((0, 1) if f64 else (0,)) if E > 0 else ():
            k["raster_faces"](svf, rows, tab, order, key, fid, E, Vs, H, W, near, persp, cull, second, ordered)
        k["resolve"](svf, faces, key, fid, face_id, bary, depth, B, Vs, H, W, near, persp)
    else:
        bbox = A.empty(sv, (E, 4))
        fdata = A.empty(sv, (E, raster.N_FDATA))
        if E > 0:
            k["setup"](svf, faces, tab, bbox, fdata, Vs, near, persp, cull)
        offsets, tile_faces = bin_faces(bbox, tab, H, W, T)
        k["raster_pixels"](bbox, fdata, tab, offsets, tile_faces, face_id, depth, H, W, T, near, persp)
        k["bary"](svf, faces, face_id, bary, depth, B, Vs, H, W, near, persp)
    return outs, (sv, faces, outs[0])


def screen_vertex_grads(sv, faces, face_id, g_bary, g_depth, H, W, persp):
    """``(Bv, V, 3)`` gradient w.r.t. ``sv (Bv, V, 3)`` of the barycentric / depth recompute on the
    images of ``face_id (Bi, H, W)``, with ``Bv`` = ``Bi`` or 1 (shared vertices; rasterize_layers
    passes B * K images)."""
    from taichirast.kernels import raster, real_type

    k = raster.build(real_type(A.dtype_name(sv)))
    Bi, Vn = face_id.shape[0], sv.shape[1]
    N = Bi * H * W
    if faces.shape[0] == 0 or Vn == 0 or N == 0:
        return A.zeros(sv, sv.shape)
    gb = A.zeros(sv, (1, 3)) if g_bary is None else g_bary.reshape(N, 3)
    gd = A.zeros(sv, (1,)) if g_depth is None else g_depth.reshape(N)
    t = Target(sv, sv.shape[0] * Vn, 3, Bi * H)
    k["backward"](sv.reshape(sv.shape[0] * Vn, 3), faces, face_id.reshape(N), gb, gd, t.dst, Bi, vertex_stride(sv),
                  H, W, int(persp), int(g_bary is not None), int(g_depth is not None), t.workers, t.private)
    return t.result().reshape(sv.shape)


def backward(saved, params, grads, needs):
    sv, faces, face_id = saved
    _, g_bary, g_depth = grads
    if g_bary is None and g_depth is None:
        return [None, None, None]
    return [screen_vertex_grads(sv, faces, face_id, g_bary, g_depth, params["H"], params["W"], params["persp"]),
            None, None]


PRIM = Primitive(FN, rasterize, forward, backward, differentiable=("screen_verts",))
