"""``vertex_normals``: area-weighted unit vertex normals on a Taichi kernel (kernels/normals.py).

Inputs ``verts (V, 3)`` / ``(B, V, 3)`` float, ``faces (F, 3)`` int (checked against V). Output
``(B, V, 3)``: the normalised sum of the incident faces' ``cross(v1 - v0, v2 - v0)``; a vertex in
no face (or whose normals cancel) gets 0. Differentiable w.r.t. ``verts``. Used by
:func:`taichirast.geometry.vertex_normals` (``weighting="area"``), whose torch implementation is the
reference it is tested against.
"""
from __future__ import annotations

from .. import _array as A
from .. import _validate as V
from .._primitive import Prepared, Primitive
from ..runtime import ensure_init

FN = "vertex_normals"
EPS = 1e-12


def vertex_normals(verts, faces):
    kind = V.kind_of(verts, faces)
    verts = V.verts(FN, "verts", verts, kind)
    faces = V.faces(FN, "faces", faces, kind, n_verts=verts.shape[1], like=verts)
    return Prepared(inputs=[verts, faces], sources=["verts", None], params={})


def _kernels(x):
    from taichirast.kernels import normals, real_type

    ensure_init()
    return normals.build(real_type(A.dtype_name(x)))


def forward(inputs, params):
    v, f = inputs
    S, out = A.zeros(v, tuple(v.shape)), A.empty(v, tuple(v.shape))
    if v.shape[0] * v.shape[1] > 0:
        _kernels(v)[0](v, f, S, out, EPS)
    return (out,), (v, f, S)


def backward(saved, params, grads, needs):
    v, f, S = saved
    (g,) = grads
    if g is None or not needs[0]:
        return [None, None]
    g_S, g_v = A.empty(v, tuple(v.shape)), A.zeros(v, tuple(v.shape))
    if v.shape[0] * v.shape[1] > 0:
        _kernels(v)[1](v, f, S, g, g_S, g_v, EPS)
    return [g_v, None]


PRIM = Primitive(FN, vertex_normals, forward, backward, differentiable=("verts",))
