"""``antialias``: analytic antialiasing of silhouette edges (Laine et al. 2020, nvdiffrast's
``antialias``). Kernels and the derivation in kernels/antialias.py; edge topology in
taichirast/topology.py.
"""
from __future__ import annotations

import numpy as np

from .. import _array as A
from .. import _validate as V
from .. import packed as P
from .._primitive import Prepared, Primitive
from ..runtime import ensure_init

FN = "antialias"


def antialias(color, fragments, screen_verts, faces, topology=None):
    """Antialias a hard-rasterized image along silhouette edges; differentiable in colour and vertices.

    For each horizontally or vertically adjacent pixel pair whose face ids differ, the nearer of
    the two pixels' surfaces (background is farthest) is the front one. Where a silhouette edge
    *on screen* of that surface -- a mesh boundary edge, or an edge whose two faces face opposite
    ways as seen by the camera -- crosses the segment between the two pixel centres, the pixel
    whose square holds the crossing takes a share of the other pixel's colour equal to the
    crossing's distance from the midpoint (at most 1/2), as nvdiffrast's ``antialias`` does
    (Laine et al. 2020, "Modular Primitives for High-Performance Differentiable Rendering").
    Occlusion boundaries inside the silhouette (a nearer part of a mesh over a farther part) count,
    not only the outer contour. Each edge is handled by the pairs along the axis it crosses most
    steeply (horizontal pairs for edges within 45 degrees of vertical, vertical pairs otherwise);
    pairs with no such crossing are unchanged. Because the blend weights are functions of the edge's
    screen vertices, the output has gradients w.r.t. vertex positions (silhouette / visibility
    gradients that hard rasterization alone does not give).

    One difference from nvdiffrast: nvdiffrast only tests the edges of the triangle covering the
    pixel. On dense meshes the faces along a contour are foreshortened slivers thinner than a
    pixel and the silhouette edge usually belongs to a neighbouring face, so most contour pixels
    stayed aliased (85 % of the blended pairs of a 70k-face bunny at 512x512 are found only this
    way) and the visibility gradients came out far too small. Here the pair's segment is followed
    across non-silhouette edges (up to 32 faces) to the silhouette edge, using the edge topology;
    on meshes whose faces are larger than pixels the two agree.

    The forward is deterministic (each pixel gathers its four pairs' contributions; no atomics).
    Cost: one pass over the faces, then work proportional to the silhouette's length in pixels
    (only pairs a silhouette edge crosses are analysed), plus copying the image.
    The triangle's screen orientation is taken projectively, so the silhouette test assumes
    ``screen_verts`` from a perspective camera where vertices behind it (z < 0) matter; with an
    orthographic camera keep the geometry in front of z = 0 (the rasterizer's ``near`` clips the
    rest anyway).

    Args:
        color: ``(B, H, W, C)`` float32/float64 shaded image (any channels, e.g. RGB plus an alpha
            or coverage channel ``(face_id >= 0)``). Differentiable.
        fragments: the hard rasterizer's output (:class:`~taichirast.Fragments` from
            :func:`rasterize`), or any object with ``face_id`` ``(B, H, W)`` int32/int64 (-1 =
            background) and ``depth`` ``(B, H, W)`` float camera depth (``+inf`` on background;
            only compared, to find the nearer surface of a pair). Not differentiable.
        screen_verts: ``(B, V, 3)`` or ``(V, 3)`` (a batch of 1 is shared by the images) as made
            by :func:`project`: x, y in pixels (x right, y down, pixel centres at half-integers),
            z = camera depth (> 0 in front). Same float dtype as ``color``. Differentiable in x, y
            (the z gradient is 0). Edges with a vertex at ``z <= 1e-6`` are never antialiased.
            Nothing here produces NaN/inf, whatever the geometry (degenerate or behind the camera).
        faces: ``(F, 3)`` int32/int64 vertex indices shared by the batch (the ones rasterized).
            A packed batch of different meshes (:mod:`taichirast.packed`): ``screen_verts`` a
            :class:`~taichirast.Meshes` of screen vertices with ``faces=None``, or packed / listed
            vertices with ``faces`` a ``Meshes`` / list; image i is mesh i's.
        topology: :class:`~taichirast.topology.EdgeTopology` from
            :func:`~taichirast.topology.edge_topology` ``(faces)`` -- build it once per mesh and
            pass it to every call (building costs a sort of the 3F edges, ~0.1 s for 100k faces)
            -- or ``None`` to build it here. For a packed batch, the topology of
            ``meshes.faces_global``.

    Returns:
        ``(B, H, W, C)`` antialiased image, dtype of ``color``. Differentiable w.r.t. ``color``
        and ``screen_verts`` (x, y); not through face ids, depth, faces or topology. Position
        gradients exist only for crossings strictly inside a pair's segment (a crossing clamped
        to a pixel centre has none; nor, as in nvdiffrast, one exactly at the midpoint).

    Example:
        >>> import numpy as np, taichirast as tr
        >>> from taichirast.topology import edge_topology
        >>> sv = np.array([[2.3, 1.0, 1.0], [6.0, 1.2, 1.0], [2.6, 7.0, 1.0]], np.float32)
        >>> faces = np.array([[0, 1, 2]], np.int32)
        >>> frags = tr.np.rasterize(sv, faces, (8, 8))
        >>> alpha = (frags.face_id >= 0).astype(np.float32)[..., None]
        >>> out = tr.np.antialias(alpha, frags, sv, faces, edge_topology(faces))
        >>> out.shape, bool(((out > 0) & (out < 1)).any())
        ((1, 8, 8, 1), True)
    """
    face_id, depth = V.fragment_fields(FN, "fragments", fragments, ("face_id", "depth"))
    if topology is not None and not all(hasattr(topology, f) for f in ("faces", "link")):
        raise TypeError(f"{FN}: topology must be an EdgeTopology from edge_topology(faces) (cache it per mesh), "
                        f"or None to build it here; got {type(topology).__name__}")
    screen_verts, faces, meshes = P.mesh_args(FN, "screen_verts", screen_verts, faces)
    kind = V.kind_of(color, screen_verts, faces)
    if kind == "numpy":
        for name, x in (("fragments.face_id", face_id), ("fragments.depth", depth)) + (
                () if topology is None else (("topology.faces", topology.faces), ("topology.link", topology.link))):
            if A.is_torch(x):
                raise TypeError(f"{FN}: {name} is a torch tensor but color, screen_verts and faces are NumPy "
                                f"arrays; pass all NumPy arrays (taichirast.np.antialias) or use "
                                f"taichirast.antialias with torch tensors")
    color = V.float_array(FN, "color", color, kind, ndims=(4,), finite=False)  # NaN colours just propagate
    B, H, W, C = (int(s) for s in color.shape)
    P.images(FN, meshes, "color", B)
    sv = V.screen_verts(FN, "screen_verts", screen_verts, kind, like=color)
    V.same_float(FN, color=color, screen_verts=sv)
    if sv.shape[0] not in (1, B):
        raise ValueError(f"{FN}: screen_verts has batch {sv.shape[0]} but color has batch {B} "
                         f"(screen_verts' batch must be 1 or equal)")
    faces = V.faces(FN, "faces", faces, kind, n_verts=sv.shape[1], like=sv)
    F = int(faces.shape[0])
    fid = V.array(FN, "fragments.face_id", face_id, kind, color)
    dt = A.dtype_name(fid)
    if not dt.startswith("int"):
        raise TypeError(f"{FN}: fragments.face_id must be an integer array (int32), got {dt}")
    if tuple(fid.shape) != (B, H, W):
        raise ValueError(f"{FN}: fragments.face_id must have shape (B, H, W) = {(B, H, W)} to match color "
                         f"{tuple(color.shape)}, got {tuple(fid.shape)}")
    dep = V.float_array(FN, "fragments.depth", depth, kind, color, finite=False)
    if tuple(dep.shape) != (B, H, W):
        raise ValueError(f"{FN}: fragments.depth must have shape (B, H, W) = {(B, H, W)} to match color "
                         f"{tuple(color.shape)}, got {tuple(dep.shape)}")
    for name, x in (("fragments.face_id", fid), ("fragments.depth", dep)):
        if A.is_torch(x) and A.is_torch(color) and x.device != color.device:
            raise ValueError(f"{FN}: {name} is on {x.device} but color is on {color.device}")
    n = B * H * W
    if n and not V.is_trusted():
        lo, hi = A.min_max(fid)
        if lo < -1 or hi >= F:
            raise ValueError(f"{FN}: fragments.face_id has values in [{lo}, {hi}] but there are {F} faces "
                             f"(valid: -1 for background, or [0, {F - 1}]); rasterize the same faces")
    fid = A.astype(fid, "int32")
    dep = A.astype(dep, A.dtype_name(color))
    if topology is None:
        from ..topology import edge_topology

        link = edge_topology(faces).link
    else:
        link = _check_topology(topology, faces, kind, sv)
    return Prepared(inputs=[color, sv, fid, dep, faces, link],
                    sources=["color", "screen_verts", None, None, None, None], params={})


def _check_topology(topology, faces, kind, like):
    """``topology.link`` as int32, checked against ``faces``."""
    F = int(faces.shape[0])
    link = V.array(FN, "topology.link", topology.link, kind, like)
    dt = A.dtype_name(link)
    if not dt.startswith("int"):
        raise TypeError(f"{FN}: topology.link must be an integer array (int32), got {dt}")
    if tuple(link.shape) != (F, 3):
        raise ValueError(f"{FN}: topology is for {link.shape[0] if link.ndim else '?'} faces (link has shape "
                         f"{tuple(link.shape)}), but faces has shape {tuple(faces.shape)}; build it with "
                         f"edge_topology(faces) for these faces")
    if A.is_torch(link) and A.is_torch(like) and link.device != like.device:
        raise ValueError(f"{FN}: topology.link is on {link.device} but screen_verts is on {like.device}")
    if F and not V.is_trusted():
        lo, hi = A.min_max(link)
        if lo < -1 or hi >= 8 * F:
            raise ValueError(f"{FN}: topology.link has values in [{lo}, {hi}], expected -1 or [0, {8 * F - 1}]; "
                             f"build it with edge_topology(faces) for this mesh")
        tf = V.array(FN, "topology.faces", topology.faces, kind, like)
        if not (tuple(tf.shape) == tuple(faces.shape) and bool((A.astype(tf, "int32") == faces).all())):
            raise ValueError(f"{FN}: topology was built from different faces than the faces passed; "
                             f"rebuild it with edge_topology(faces)")
    return A.astype(link, "int32")


def _copy(x):
    """A contiguous copy (the blend / colour-gradient kernels only write the pixels pairs change)."""
    return x.contiguous().clone() if A.is_torch(x) else np.array(x, order="C")


def forward(inputs, params):
    from taichirast.kernels import antialias as K, real_type

    ensure_init()
    color, sv, fid, dep, faces, link = inputs
    B, H, W, C = color.shape
    Bs, Vn = sv.shape[0], sv.shape[1]
    N = B * H * W
    if N == 0 or C == 0 or faces.shape[0] == 0 or Vn == 0:
        alpha = A.zeros(color, (N, 2))
        code = A.zeros(color, (N, 2), "int32")
        out = _copy(color)
        return (out,), (color, sv, faces, alpha, code, A.zeros(color, (1,), "int32"))
    k = K.build(real_type(A.dtype_name(color)))
    shared = int(Bs == 1)
    alpha = A.zeros(color, (N, 2))  # mark, then analyse, write the candidate pairs
    code = A.empty(color, (N, 2), "int32")  # written (and read) where alpha != 0 only
    svf = sv.reshape(Bs * Vn, 3)
    fbits = A.empty(color, (Bs * faces.shape[0],), "int32")
    k["setup"](svf, faces, fbits, Vn)
    seg = A.zeros(color, (B * H * K.ROW_SEGMENTS,), "int32")
    k["mark"](svf, faces, link, fbits, alpha, seg, B, H, W, Vn)
    k["analyse"](svf, faces, link, fbits, fid.reshape(N), dep.reshape(N), alpha, code, seg, H, W, Vn, shared)
    out = _copy(color)
    k["blend"](color.reshape(N, C), alpha, out.reshape(N, C), seg, H, W)
    return (out,), (color, sv, faces, alpha, code, seg)


def backward(saved, params, grads, needs):
    from taichirast.kernels import antialias as K, real_type

    color, sv, faces, alpha, code, seg = (A.detach(x) for x in saved)
    (g,) = grads
    need_color, need_sv = bool(needs[0]), bool(needs[1])
    if g is None or not (need_color or need_sv):
        return [None] * 6
    B, H, W, C = color.shape
    Bs, Vn = sv.shape[0], sv.shape[1]
    N = B * H * W
    g_sv = A.zeros(sv, sv.shape) if need_sv else None
    if N == 0 or C == 0 or faces.shape[0] == 0 or Vn == 0:
        g_color = _copy(g) if need_color else None
        return [g_color, g_sv, None, None, None, None]
    k = K.build(real_type(A.dtype_name(color)))
    g_color = _copy(g) if need_color else A.zeros(color, (1, 1))
    gs = g_sv.reshape(Bs * Vn, 3) if need_sv else A.zeros(color, (1, 3))
    k["backward"](sv.reshape(Bs * Vn, 3), faces, color.reshape(N, C), alpha, code, seg, g.reshape(N, C),
                  g_color.reshape(N, C) if need_color else g_color, gs, H, W, Vn, int(Bs == 1),
                  int(need_color), int(need_sv))
    return [g_color if need_color else None, g_sv, None, None, None, None]


PRIM = Primitive(FN, antialias, forward, backward, differentiable=("color", "screen_verts"))
