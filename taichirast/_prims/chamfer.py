"""``knn1``: nearest neighbour of every point of ``x`` in ``y``. Kernels in kernels/chamfer.py.

Inputs: ``x (N, 3)`` or ``(B, N, 3)``, ``y (M, 3)`` or ``(B, M, 3)`` (float32/float64, one dtype;
a batch of 1 or an unbatched cloud broadcasts), optional ``x_lengths``, ``y_lengths`` ``(B,)``
integer numbers of valid points per batch (the rest is padding, as in PyTorch3D).
Outputs: ``dist2 (B, N)`` squared distance to the nearest ``y`` point (differentiable w.r.t. x and
y), ``idx (B, N)`` int32 its index (not differentiable). Padding x points get ``dist2 = 0``,
``idx = -1`` and no gradient. An empty ``y`` (``M == 0``, or a batch with ``y_lengths[b] == 0``
but valid x points) raises ``ValueError``; an empty ``x`` gives empty outputs.
"""
from __future__ import annotations

from .. import _array as A
from .. import _validate as V
from .._primitive import Prepared, Primitive
from ..runtime import ensure_init

FN = "knn1"


def lengths(fn, name, L, kind, like, B, limit):
    """Optional per-batch lengths ``(B,)`` in ``[0, limit]`` -> int32 (``limit`` everywhere if None)."""
    if L is None:
        return A.full(like, (B,), limit, "int32")
    L = V.array(fn, name, L, kind, like)
    dt = A.dtype_name(L)
    if not (dt.startswith("int") or dt.startswith("uint")):
        raise TypeError(f"{fn}: {name} must be an integer array, got {dt}")
    if tuple(L.shape) != (B,):
        raise ValueError(f"{fn}: {name} must have shape ({B},), got {tuple(L.shape)}")
    if B and (int(L.min()) < 0 or int(L.max()) > limit):
        raise ValueError(f"{fn}: {name} must be in [0, {limit}], got values in [{int(L.min())}, {int(L.max())}]")
    if A.is_torch(L) and A.is_torch(like) and L.device != like.device:
        raise ValueError(f"{fn}: {name} is on {L.device} but the points are on {like.device}")
    return A.astype(L, "int32")


def check_clouds(fn, x, y, x_lengths=None, y_lengths=None, names=("x", "y")):
    """Validate two point clouds; returns ``(x (Bx,N,3), y (By,M,3), xlen (B,), ylen (B,), B)``."""
    kind = V.kind_of(x, y, x_lengths, y_lengths)
    nx, ny = names
    x = V.verts(fn, nx, x, kind)
    y = V.verts(fn, ny, y, kind, x)
    V.same_float(fn, **{nx: x, ny: y})
    B = V.batch(fn, {nx: x.shape[0], ny: y.shape[0]})
    xl = lengths(fn, nx + "_lengths", x_lengths, kind, x, B, x.shape[1])
    yl = lengths(fn, ny + "_lengths", y_lengths, kind, x, B, y.shape[1])
    if y.shape[1] == 0:
        raise ValueError(f"{fn}: {ny} is empty (shape {tuple(y.shape)}); a nearest neighbour needs at least one point")
    if B and x.shape[1] and bool(((yl == 0) & (xl > 0)).any()):
        raise ValueError(f"{fn}: {ny}_lengths has a batch with no {ny} points but some {nx} points")
    return x, y, xl, yl, B


def knn1(x, y, x_lengths=None, y_lengths=None):
    x, y, xl, yl, B = check_clouds(FN, x, y, x_lengths, y_lengths)
    return Prepared(inputs=[x, y, xl, yl], sources=["x", "y", None, None], params={"B": B})


def forward(inputs, params):
    from taichirast.kernels import chamfer, real_type

    ensure_init()
    x, y, xl, yl = inputs
    fwd, _ = chamfer.build(real_type(A.dtype_name(x)))
    B, N = params["B"], x.shape[1]
    dist2 = A.empty(x, (B, N))
    idx = A.empty(x, (B, N), "int32")
    if B * N > 0:
        fwd(x, y, xl, yl, dist2, idx)
    return (dist2, idx), (x, y, idx)


def backward(saved, params, grads, needs):
    from taichirast.kernels import chamfer, real_type

    x, y, idx = saved
    g = grads[0]
    if g is None:
        return [None] * 4
    _, bwd = chamfer.build(real_type(A.dtype_name(x)))
    gx = A.zeros(x, x.shape)
    gy = A.zeros(y, y.shape)
    if g.shape[0] * g.shape[1] > 0:
        bwd(x, y, idx, A.contiguous(g), gx, gy)
    return [gx, gy, None, None]


PRIM = Primitive(FN, knn1, forward, backward, differentiable=("x", "y"))
