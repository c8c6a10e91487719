"""``dibr_silhouette``: DIB-R soft silhouette (Chen et al. 2019; Kaolin's ``dibr_soft_mask``).
Kernels in kernels/dibr.py.

Inputs
    screen_verts  (B, V, 3) or (V, 3) float32/float64: x, y in pixels (x right, y down, pixel (r, c)
                  centred at (c + 0.5, r + 0.5)), z = camera depth. Differentiable.
    faces         (F, 3) int32/int64, shared by the batch.
    face_id       (B, H, W) or (H, W) int32/int64 face ids of a hard rasterization (-1 = background),
                  or an object with a ``face_id`` attribute (rasterizer fragments). Not differentiable.
    image_size    (H, W) or an int; must match face_id.
    sigmainv      sharpness: ``P_j = exp(-sigmainv d_j^2)``, d_j the NDC distance (the image's shorter
                  side spans [-1, 1]) from the pixel centre to triangle j, 0 inside it. > 0, and
                  ``sigmainv (2 / min(H, W))^2`` at most ``finfo(dtype).max / 1e8`` (ValueError above).
    box_len       only faces whose vertex box grown by box_len (NDC) holds the pixel centre count. >= 0.
    near          faces with any vertex at ``z <= near`` are dropped (their projection is meaningless).
    tile_size     binning tile edge in pixels (performance only).

Output: alpha ``(B, H, W)``, dtype of ``screen_verts``: 1 where ``face_id >= 0`` (no gradient there),
elsewhere ``1 - prod_j (1 - P_j)``. Zero-area faces are skipped (never NaN).
"""
from __future__ import annotations

from .. import _array as A
from .. import _validate as V
from .. import packed as P
from .._binning import bin_faces, tile_schedule
from .._primitive import Prepared, Primitive
from ..runtime import ensure_init
from .soft import bits_dtype, spatial_order, tile_size_arg

FN = "dibr_silhouette"


def dibr_silhouette(screen_verts, faces, fragments, image_size, sigmainv=7000.0, box_len=0.02, near=0.01, tile_size=16):
    """DIB-R soft silhouette (Chen et al. 2019): alpha with gradients from pixels outside the mesh.

    Covered pixels (``fragments.face_id >= 0``) get alpha 1; every other pixel gets
    ``1 - prod_j (1 - exp(-sigmainv * d_j^2))`` over the faces within ``box_len`` (NDC, of the
    face's bounding box), ``d_j`` the NDC distance from the pixel centre to face j.

    Args:
        screen_verts: ``(V, 3)`` or ``(B, V, 3)``; faces ``(F, 3)``. Or a packed batch of
            different meshes (a :class:`~taichirast.Meshes` of screen vertices and ``faces=None``,
            or packed / listed vertices with ``faces`` a ``Meshes`` / list; see
            :mod:`taichirast.packed`): image i draws mesh i.
        fragments: :class:`~taichirast.Fragments` of the same mesh from :func:`rasterize` (or just
            its ``face_id (B, H, W)`` image).
        image_size: ``(H, W)``.
        sigmainv: sharpness (Kaolin's default 7000, NDC units).
        box_len: neighbourhood half-size in NDC units.

    Returns:
        ``(B, H, W)`` alpha, differentiable w.r.t. ``screen_verts`` (x, y).
    """
    # Fragments, or (for callers holding only the ids) the face_id image itself
    face_id = fragments.face_id if hasattr(fragments, "face_id") and not A.is_array(fragments) else fragments
    screen_verts, faces, meshes = P.mesh_args(FN, "screen_verts", screen_verts, faces)
    kind = V.kind_of(screen_verts, faces, face_id)
    sv = V.screen_verts(FN, "screen_verts", screen_verts, kind)
    faces = V.faces(FN, "faces", faces, kind, sv.shape[1], like=sv)
    H, W = V.image_size(FN, image_size)
    V.camera_size_matches(FN, screen_verts, (H, W))
    fid = V.array(FN, "face_id", face_id, kind, sv)
    dt = A.dtype_name(fid)
    if not dt.startswith("int"):
        raise TypeError(f"{FN}: face_id must be an integer array (int32 or int64), got {dt}")
    if fid.ndim == 2:
        fid = fid[None]
    if fid.ndim != 3 or tuple(fid.shape[1:]) != (H, W):
        raise ValueError(f"{FN}: face_id must have shape (B, {H}, {W}) or ({H}, {W}) to match image_size, "
                         f"got {tuple(fid.shape)}")
    n = fid.numel() if A.is_torch(fid) else fid.size
    lo, hi = A.min_max(fid) if n and not V.is_trusted() else (-1, -1)
    if lo < -1 or hi >= faces.shape[0]:
        raise ValueError(f"{FN}: face_id values must be -1 (background) or in [0, {faces.shape[0] - 1}], "
                         f"got [{lo}, {hi}]")
    if A.is_torch(fid) and A.is_torch(sv) and fid.device != sv.device:
        raise ValueError(f"{FN}: face_id is on {fid.device} but screen_verts is on {sv.device}")
    fid = A.astype(fid, "int32")
    sigmainv = V.positive(FN, "sigmainv", sigmainv)
    lim = V.dtype_limit(A.dtype_name(sv))
    V.in_dtype_range(FN, "sigmainv", sigmainv, A.dtype_name(sv), hi=lim / (2.0 / min(H, W)) ** 2,
                     why=f"sigmainv (2 / min(H, W))^2 must stay below {lim:.3g}")
    box_len = V.number(FN, "box_len", box_len, lo=0.0, hi=1e6)
    near = V.number(FN, "near", near, lo=0.0)
    tile = tile_size_arg(FN, tile_size)
    P.images(FN, meshes, "fragments", fid.shape[0])
    B = P.batch(FN, meshes, {"screen_verts": sv.shape[0], "face_id": fid.shape[0]})
    ent = P.entries_for(meshes, B, faces.shape[0], sv)
    return Prepared(inputs=[sv, faces, fid, ent.tab], sources=["screen_verts", None, None, None],
                    params=dict(B=B, H=H, W=W, sigmainv=sigmainv, box_len=box_len, near=near, tile=tile, E=ent.total,
                                counts=ent.counts))


def _kd_margin(p):
    s = 2.0 / min(p["H"], p["W"])  # one pixel in NDC units
    return p["sigmainv"] * s * s, p["box_len"] / s


def forward(inputs, params):
    from taichirast.kernels import dibr, real_type, soft

    ensure_init()
    sv, faces, fid, tab = inputs
    B, H, W = params["B"], params["H"], params["W"]
    F = params["E"]
    alpha = A.empty(sv, (B, H, W))
    aux = A.empty(sv, (B, H, W, 3))
    if F == 0:
        alpha[...] = A.astype(fid >= 0, A.dtype_name(sv))
        return (alpha,), (sv, faces, fid, tab, A.zeros(sv, (1, soft.K)), aux, A.zeros(sv, (1,), "int32"))
    K = dibr.build(real_type(A.dtype_name(sv)))
    kd, margin = _kd_margin(params)
    fs = A.empty(sv, (F, soft.K))
    reach = A.empty(sv, (F, soft.NREACH))  # the binning box, then the (unused) disk
    eperm = spatial_order(K, sv, faces, tab, params["counts"])
    K.setup(sv, faces, tab, eperm, fs, reach, A.empty(sv, (F,), bits_dtype(sv)), params["near"], margin,
            0)  # (the depth keys unused: DIB-R's lists are in slot order)
    # entry slots in index order in every tile: the per-pixel product is the same run to run
    order = A.index_rows(sv, 1, F)[0]
    offsets, tile_faces = bin_faces(reach, tab, H, W, params["tile"], order=order)
    K.forward(fs, fid, offsets, tile_faces, tile_schedule(offsets), alpha, aux, params["tile"], kd)
    return (alpha,), (sv, faces, fid, tab, fs, aux, eperm)


def backward(saved, params, grads, needs):
    from taichirast.kernels import dibr, real_type

    sv, faces, fid, tab, fs, aux, eperm = (A.detach(x) for x in saved)
    (g,) = grads
    if g is None or not needs[0]:
        return [None, None, None, None]
    gsv = A.zeros(sv, sv.shape)
    F = params["E"]
    if F > 0:
        K = dibr.build(real_type(A.dtype_name(sv)))
        kd, _ = _kd_margin(params)
        K.backward(fs, faces, tab, eperm, fid, g, aux, gsv, kd)
    return [gsv, None, None, None]


PRIM = Primitive(FN, dibr_silhouette, forward, backward, differentiable=("screen_verts",))
