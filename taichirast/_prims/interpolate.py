"""``interpolate``: per-pixel attributes from rasterizer output. Kernels in kernels/interpolate.py.

Inputs: ``attrs (V, C)`` or ``(B, V, C)`` (a batch of 1 is shared by every image), ``faces (F, 3)``
int32/int64 indexing ``attrs``' V axis (vertex indices, or any other per-face index table such as
UV indices, with one row per face id), ``face_id (B, H, W)`` int32 and ``bary (B, H, W, 3)`` as
returned by ``rasterize``. Output ``(B, H, W, C)``: ``sum_i bary_i attrs[b, faces[face_id, i]]``,
0 on background pixels (``face_id == -1``). Differentiable in ``attrs`` and ``bary``.
"""
from __future__ import annotations

from .. import _array as A
from .. import _validate as V
from .. import packed as P
from .._primitive import Prepared, Primitive
from .._scatter import Target
from ..runtime import ensure_init

FN = "interpolate"


def _int_image(name, x, kind, like):
    x = V.array(FN, name, x, kind, like)
    dt = A.dtype_name(x)
    if not (dt.startswith("int") or dt.startswith("uint")):
        raise TypeError(f"{FN}: {name} must be an integer array (int32), got {dt}")
    if x.ndim != 3:
        raise ValueError(f"{FN}: {name} must have shape (B, H, W), got {tuple(x.shape)}")
    return x


def interpolate(attrs, faces, fragments):
    """Interpolate per-vertex attributes at every pixel with the fragments' barycentrics.

    A packed batch of different meshes (:mod:`taichirast.packed`; fragments of ``rasterize``
    on it, face ids = packed face indices): ``faces`` a :class:`~taichirast.Meshes` with
    ``attrs`` packed ``(sum V_i, C)`` or a list of per-mesh ``(V_i, C)``, or ``faces`` a list
    of per-mesh ``(F_i, 3)`` (e.g. UV faces) with ``attrs`` a list; or ``attrs`` a ``Meshes``
    (its vertices) with ``faces=None``.

    Args:
        attrs: ``(V, C)`` or ``(B, V, C)`` float attributes.
        faces: ``(F, 3)`` indices into ``attrs`` with the same face order as the rasterized mesh.
            For face-varying data (UV seams, per-corner normals) pass the attribute topology,
            e.g. ``uv_faces``, or ``arange(3F).reshape(F, 3)`` with ``attrs`` of shape ``(3F, C)``.
        fragments: :class:`~taichirast.Fragments` from :func:`rasterize`.

    Returns:
        ``(B, H, W, C)``; 0 on background. Differentiable w.r.t. ``attrs`` and, through
        ``fragments.bary``, the screen vertices.
    """
    face_id, bary = V.fragment_fields(FN, "fragments", fragments, ("face_id", "bary"))
    attrs, faces, meshes = P.mesh_args(FN, "attrs", attrs, faces)
    kind = V.kind_of(attrs, faces, face_id, bary)
    attrs = V.float_array(FN, "attrs", attrs, kind, ndims=(2, 3))
    attrs = attrs[None] if attrs.ndim == 2 else attrs
    faces = V.faces(FN, "faces", faces, kind, n_verts=attrs.shape[1], like=attrs)
    face_id = _int_image("fragments.face_id", face_id, kind, attrs)
    bary = V.float_array(FN, "fragments.bary", bary, kind, attrs, ndims=(4,), last=3, finite=False)
    if tuple(bary.shape[:3]) != tuple(face_id.shape):
        raise ValueError(f"{FN}: bary must have shape face_id.shape + (3,) = {tuple(face_id.shape) + (3,)}, "
                         f"got {tuple(bary.shape)}")
    V.same_float(FN, attrs=attrs, bary=bary)
    if A.is_torch(face_id) and A.is_torch(attrs) and face_id.device != attrs.device:
        raise ValueError(f"{FN}: face_id is on {face_id.device} but attrs are on {attrs.device}")
    B = face_id.shape[0]
    P.images(FN, meshes, "fragments", B)
    if attrs.shape[0] not in (1, B):
        raise ValueError(f"{FN}: attrs has batch {attrs.shape[0]} but face_id has batch {B} "
                         f"(attrs' batch must be 1 or equal)")
    n = face_id.numel() if A.is_torch(face_id) else face_id.size
    if n and not V.is_trusted():
        lo, hi = A.min_max(face_id)
        if lo < -1 or hi >= faces.shape[0]:
            raise ValueError(f"{FN}: face_id has values in [{lo}, {hi}] but there are {faces.shape[0]} faces "
                             f"(valid: -1 for background, or [0, {faces.shape[0] - 1}])")
    face_id = A.astype(face_id, "int32")
    return Prepared(inputs=[attrs, faces, face_id, bary], sources=["attrs", None, None, "fragments.bary"],
                    params={})


def _flat(attrs, face_id, bary):
    """Flat views for the kernels (kernels/interpolate.py) and their static sizes."""
    B, H, W = face_id.shape
    Ba, Vn, C = attrs.shape
    N = B * H * W
    return (attrs.reshape(Ba * Vn, C), face_id.reshape(N), bary.reshape(N, 3)), (N, H * W, Vn, C, int(Ba == 1))


def forward(inputs, params):
    from taichirast.kernels import interpolate, real_type

    ensure_init()
    attrs, faces, face_id, bary = inputs
    fwd, _ = interpolate.build(real_type(A.dtype_name(attrs)))
    B, H, W = face_id.shape
    out = A.empty(attrs, (B, H, W, attrs.shape[2]))
    (af, ff, bf), (N, HW, Vn, C, shared) = _flat(attrs, face_id, bary)
    if C > 0 and N > 0:
        fwd(af, faces, ff, bf, out.reshape(N, C), HW, Vn, shared)
    return (out,), (attrs, faces, face_id, bary)


def backward(saved, params, grads, needs):
    from taichirast.kernels import interpolate, real_type

    attrs, faces, face_id, bary = saved
    (g,) = grads
    need_attrs, need_bary = bool(needs[0]), bool(needs[3])
    if g is None or not (need_attrs or need_bary):
        return [None, None, None, None]
    _, bwd = interpolate.build(real_type(A.dtype_name(attrs)))
    (af, ff, bf), (N, HW, Vn, C, shared) = _flat(attrs, face_id, bary)
    if C == 0 or N == 0:
        return [A.zeros(attrs, attrs.shape) if need_attrs else None, None, None,
                A.zeros(attrs, bary.shape) if need_bary else None]
    g_bary = A.empty(attrs, bary.shape) if need_bary else A.zeros(attrs, (1, 3))
    B, H, W = face_id.shape
    t = Target(attrs, attrs.shape[0] * Vn if need_attrs else 1, C if need_attrs else 1, B * H)
    bwd(af, faces, ff, bf, g.reshape(N, C), t.dst, g_bary.reshape(N, 3) if need_bary else g_bary.reshape(1, 3),
        H, W, Vn, shared, t.workers, int(need_attrs), int(need_bary), t.private)
    return [t.result().reshape(attrs.shape) if need_attrs else None, None, None, g_bary if need_bary else None]


PRIM = Primitive(FN, interpolate, forward, backward, differentiable=("attrs", "fragments"))
