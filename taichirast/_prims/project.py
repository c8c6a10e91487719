"""``project``: world vertices -> screen pixels + camera depth. Kernels in kernels/project.py."""
from __future__ import annotations

from .. import _array as A
from .. import _validate as V
from .. import packed as P
from .._primitive import Prepared, Primitive
from ..runtime import ensure_init

FN = "project"


def project_points(verts, R, t, intrinsics, orthographic=False):
    """Project world vertices with raw camera tensors (:func:`taichirast.project` takes a camera object).

    OpenCV convention: world-to-camera ``x_cam = R @ x + t``, camera looking down +Z, x right,
    y down. Perspective: ``(fx * x / z + cx, fy * y / z + cy, z)``; orthographic:
    ``(fx * x + cx, fy * y + cy, z)`` (fx, fy in pixels per unit).

    Args:
        verts: ``(V, 3)`` or ``(B, V, 3)`` float world positions, or a :class:`~taichirast.Meshes`
            batch of different meshes: mesh i is projected by camera i (a camera batch of N, or
            1 shared) and the result is a ``Meshes`` of screen vertices with the same faces.
        R: ``(3, 3)`` or ``(B, 3, 3)`` rotation; t: ``(3,)`` or ``(B, 3)`` translation.
        intrinsics: ``(4,)`` or ``(B, 4)`` = ``fx, fy, cx, cy`` in pixels.
        orthographic: orthographic instead of perspective projection.

    Returns:
        ``(B, V, 3)``: ``x, y`` in pixels (pixel centres at half-integers) and ``z`` = camera
        depth (a ``Meshes`` for a ``Meshes``). Differentiable w.r.t. ``verts``, ``R``, ``t`` and
        ``intrinsics``.
    """
    meshes = verts if P.is_batch(verts) else None
    if meshes is not None:
        verts = meshes.verts_packed
    kind = V.kind_of(verts, R, t, intrinsics)
    verts = V.verts(FN, "verts", verts, kind)
    R = V.float_array(FN, "R", R, kind, verts, ndims=(2, 3), last=3)
    R = R[None] if R.ndim == 2 else R
    if R.shape[-2] != 3:
        raise ValueError(f"{FN}: R must have shape (3, 3) or (B, 3, 3), got {tuple(R.shape)}")
    t = V.float_array(FN, "t", t, kind, verts, ndims=(1, 2), last=3)
    t = t[None] if t.ndim == 1 else t
    intrinsics = V.float_array(FN, "intrinsics", intrinsics, kind, verts, ndims=(1, 2), last=4)
    intrinsics = intrinsics[None] if intrinsics.ndim == 1 else intrinsics
    if R.shape[0] != t.shape[0] or R.shape[0] != intrinsics.shape[0]:
        raise ValueError(f"{FN}: camera batch sizes differ: R {R.shape[0]}, t {t.shape[0]}, "
                         f"intrinsics {intrinsics.shape[0]}")
    V.same_float(FN, verts=verts, R=R, t=t, intrinsics=intrinsics)
    B = V.batch(FN, {"verts": verts.shape[0], "camera": R.shape[0]})
    per_vertex = meshes is not None and R.shape[0] > 1
    if per_vertex and R.shape[0] != len(meshes):
        raise ValueError(f"{FN}: a Meshes batch of {len(meshes)} needs {len(meshes)} cameras (one per mesh) or 1 "
                         f"shared, got a camera batch of {R.shape[0]}")
    vcam = meshes.vertex_mesh() if per_vertex else A.zeros(verts, (1,), "int32")
    return Prepared(inputs=[verts, R, t, intrinsics, vcam], sources=["verts", "R", "t", "intrinsics", None],
                    params={"orthographic": bool(orthographic), "B": 1 if per_vertex else B,
                            "per_vertex": per_vertex},
                    pack=None if meshes is None else (lambda outs: meshes.with_verts(outs[0][0])))


def forward(inputs, params):
    from taichirast.kernels import project, real_type

    ensure_init()
    verts, R, t, intr, vcam = inputs
    fwd, _ = project.build(real_type(A.dtype_name(verts)))
    out = A.empty(verts, (params["B"], verts.shape[1], 3))
    if verts.shape[1] > 0:
        fwd(verts, R, t, intr, vcam, int(params["per_vertex"]), out, int(params["orthographic"]))
    return (out,), (verts, R, t, intr, vcam)


def backward(saved, params, grads, needs):
    from taichirast.kernels import project, real_type

    verts, R, t, intr, vcam = saved
    (g,) = grads
    if g is None:
        return [None] * 5
    _, bwd = project.build(real_type(A.dtype_name(verts)))
    gv = A.zeros(verts, verts.shape)
    need_cam = any(needs[1:])
    B, Vn = g.shape[0], g.shape[1]
    partial = A.zeros(verts, (B, Vn, 16) if need_cam else (1, 1, 16))
    if Vn > 0:
        bwd(verts, R, t, intr, vcam, int(params["per_vertex"]), g, gv, partial, int(params["orthographic"]),
            int(need_cam))
    if not need_cam:
        return [gv, None, None, None, None]
    if params["per_vertex"]:  # each camera's vertices: (N, 16)
        cam = A.segment_sum(partial[0], vcam, R.shape[0])
    else:
        cam = A.sum_axes(partial, (1,))  # (B, 16)
    if R.shape[0] == 1:
        cam = A.sum_axes(cam, (0,)).reshape(1, 16)
    gR = cam[:, 0:9].reshape(R.shape[0], 3, 3)
    gt = A.contiguous(cam[:, 9:12])
    gi = A.contiguous(cam[:, 12:16])
    return [gv, A.contiguous(gR), gt, gi, None]


PRIM = Primitive(FN, project_points, forward, backward, differentiable=("verts", "R", "t", "intrinsics"))
