"""Point-cloud and point-to-mesh distances: Chamfer, Hausdorff, F-score, point-to-triangle.

Conventions (DESIGN §2): clouds are ``(N, 3)`` or ``(B, N, 3)`` float32/float64 (a batch of 1 or
an unbatched cloud broadcasts against a batch of B); both inputs share one dtype and device.
Functions take torch tensors (differentiable where stated) or NumPy arrays (NumPy out, no
autograd: :func:`knn1` runs the primitive's NumPy bridge, the others go through
``@numpy_compatible``). Unbatched inputs (both 2-D) give unbatched results (scalars instead of
``(B,)``). Nearest neighbours come from the Taichi ``knn1`` primitive (kernels/chamfer.py):
brute force, O(N M) time, O(N + M) memory, so 100k x 100k clouds need no N x M buffer.
"""
from __future__ import annotations

import torch

from .. import _array as A
from .. import _validate as V
from .._prims.chamfer import PRIM as _KNN1
from .._prims.chamfer import check_clouds as _check_clouds
from ._numpy import numpy_compatible

__all__ = ["knn1", "chamfer_distance", "hausdorff_distance", "fscore", "point_to_mesh_distance"]


def knn1(x, y, x_lengths=None, y_lengths=None):
    """Nearest neighbour in ``y`` of every point of ``x``: ``(dist2 (B, N), idx (B, N) int32)``.

    x ``(N, 3)`` / ``(B, N, 3)``, y ``(M, 3)`` / ``(B, M, 3)``; optional ``x_lengths`` /
    ``y_lengths`` ``(B,)`` count the valid (non-padding) points per batch. ``dist2`` is the
    squared Euclidean distance, differentiable w.r.t. ``x`` and ``y`` (torch); ``idx`` is the
    index of the nearest ``y`` point (smallest index on ties), not differentiable. Padding x
    points get ``dist2 = 0``, ``idx = -1``. Outputs are always batched ``(B, N)``.
    NumPy in -> NumPy out (for the vector-Jacobian product use ``PRIM.numpy_vjp``).
    Raises ``ValueError`` for an empty ``y``; an empty ``x`` gives ``(B, 0)`` outputs.

    Example:
        >>> import numpy as np
        >>> d, i = knn1(np.array([[0.0, 0, 0], [2, 0, 0]]), np.array([[0.0, 0, 1], [3, 0, 0]]))
        >>> d.tolist(), i.tolist()
        ([[1.0, 1.0]], [[0, 1]])
    """
    if any(A.is_torch(a) for a in (x, y, x_lengths, y_lengths)):
        return _KNN1.torch_call(x, y, x_lengths, y_lengths)
    return _KNN1.numpy_call(x, y, x_lengths, y_lengths)


def _safe_sqrt(d2):
    # sqrt with gradient 0 (not inf * 0 = NaN) where the distance is exactly 0.
    pos = d2 > 0
    return torch.where(pos, torch.sqrt(torch.where(pos, d2, torch.ones_like(d2))), torch.zeros_like(d2))


def _both_ways(fn, x, y, x_lengths, y_lengths):
    """Validated nearest distances both ways: ``(d_xy (B,N), d_yx (B,M), xl (B,), yl (B,), unbatched)``."""
    x = V.array(fn, "x", x, "torch")  # lists -> tensors (@numpy_compatible converts only NumPy arrays)
    y = V.array(fn, "y", y, "torch", x)
    unbatched = x.ndim == 2 and y.ndim == 2
    xv, yv, xl, yl, _ = _check_clouds(fn, x, y, x_lengths, y_lengths)
    # Emptiness both ways: the x -> y search checked y; check x here, naming it.
    if xv.shape[1] == 0 or bool(((xl == 0) & (yl > 0)).any()):
        raise ValueError(f"{fn}: x is empty (shape {tuple(xv.shape)}); both clouds need at least one point")
    d_xy, _ = _KNN1.torch_call(xv, yv, xl, yl)
    d_yx, _ = _KNN1.torch_call(yv, xv, yl, xl)
    return d_xy, d_yx, xl, yl, unbatched


def _reduce(fn, v, reduction, unbatched):
    if reduction == "mean":
        return v.mean()
    if reduction == "sum":
        return v.sum()
    return v[0] if unbatched else v  # "none" (checked by the caller)


@numpy_compatible
def chamfer_distance(x, y, reduction="mean", squared=True, return_parts=False, x_lengths=None, y_lengths=None):
    """Chamfer distance between point clouds (PyTorch3D semantics).

    Per batch element ``b``: ``cd_b = mean_i min_j d(x_i, y_j) + mean_j min_i d(y_j, x_i)``, with
    ``d`` the squared Euclidean distance (``squared=True``, PyTorch3D's default) or the distance
    itself (``squared=False``; its gradient at a zero distance is taken as 0). Means run over the
    valid points (``x_lengths`` / ``y_lengths``, ``(B,)``, for padded batches).

    x ``(N, 3)`` / ``(B, N, 3)``, y ``(M, 3)`` / ``(B, M, 3)``. ``reduction`` over the batch:
    ``"mean"`` (scalar), ``"sum"`` (scalar) or ``"none"`` (``(B,)``; a scalar for unbatched
    inputs). Differentiable w.r.t. ``x`` and ``y``. With ``return_parts=True`` returns
    ``(total, cd_x, cd_y)``, the two directed terms reduced the same way. Raises ``ValueError``
    if a cloud is empty, ``TypeError`` / ``ValueError`` for wrong dtype, shape or NaN.

    Example:
        >>> import numpy as np
        >>> float(chamfer_distance(np.zeros((1, 3)), np.array([[0.0, 0.0, 2.0]])))
        8.0
    """
    fn = "chamfer_distance"
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{fn}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    d_xy, d_yx, xl, yl, unbatched = _both_ways(fn, x, y, x_lengths, y_lengths)
    if not squared:
        d_xy, d_yx = _safe_sqrt(d_xy), _safe_sqrt(d_yx)
    cx = d_xy.sum(1) / xl.clamp(min=1).to(d_xy.dtype)
    cy = d_yx.sum(1) / yl.clamp(min=1).to(d_yx.dtype)
    total = _reduce(fn, cx + cy, reduction, unbatched)
    if return_parts:
        return total, _reduce(fn, cx, reduction, unbatched), _reduce(fn, cy, reduction, unbatched)
    return total


@numpy_compatible
def hausdorff_distance(x, y, squared=False):
    """Symmetric Hausdorff distance ``max(max_i min_j |x_i - y_j|, max_j min_i |y_j - x_i|)``.

    x ``(N, 3)`` / ``(B, N, 3)``, y ``(M, 3)`` / ``(B, M, 3)``; returns ``(B,)`` (a scalar for
    unbatched inputs), Euclidean (``squared=True``: its square). Differentiable w.r.t. ``x`` and
    ``y`` (through the attaining pair). Raises ``ValueError`` if a cloud is empty.
    """
    d_xy, d_yx, _, _, unbatched = _both_ways("hausdorff_distance", x, y, None, None)
    h = torch.maximum(d_xy.max(1).values, d_yx.max(1).values)
    if not squared:
        h = _safe_sqrt(h)
    return h[0] if unbatched else h


@numpy_compatible
def fscore(x, y, threshold):
    """Precision, recall and F-score at distance ``threshold`` (Tatarchenko et al. 2019).

    ``x`` is the prediction, ``y`` the ground truth. precision = fraction of x points whose
    nearest y point is closer than ``threshold`` (strictly); recall = fraction of y points whose
    nearest x point is; ``F = 2 P R / (P + R)`` (0 when both are 0). Returns
    ``(precision, recall, f)``, each ``(B,)`` (scalars for unbatched inputs), in the cloud's
    float dtype. Not differentiable.
    """
    fn = "fscore"
    t = V.positive(fn, "threshold", threshold)
    with torch.no_grad():
        d_xy, d_yx, _, _, unbatched = _both_ways(fn, x, y, None, None)
        p = (d_xy < t * t).to(d_xy.dtype).mean(1)
        r = (d_yx < t * t).to(d_yx.dtype).mean(1)
        f = torch.where(p + r > 0, 2 * p * r / (p + r).clamp(min=torch.finfo(p.dtype).tiny), torch.zeros_like(p))
    if unbatched:
        return p[0], r[0], f[0]
    return p, r, f


def _cross(a, b):
    return torch.linalg.cross(a, b, dim=-1)


def _dot(a, b):
    return (a * b).sum(-1)


def _seg_dist2(p, a, b, tiny):
    ab = b - a
    t = (_dot(p - a, ab) / _dot(ab, ab).clamp(min=tiny)).clamp(0.0, 1.0)
    d = p - a - t[..., None] * ab
    return _dot(d, d)


def _triangle_dist2(p, a, b, c):
    """Exact squared distance from points ``p`` to triangles ``(a, b, c)`` (all ``(..., 3)``, broadcast).

    Inside the triangle's prism (the projection lands inside: the three edge orientations agree
    with the normal) the distance is to the plane; otherwise the nearest point lies on an edge,
    so it is the min of three clamped point-to-segment distances. Degenerate triangles (zero
    normal) fall to the edge case, never NaN.
    """
    tiny = torch.finfo(p.dtype).tiny
    n = _cross(b - a, c - a)
    nn = _dot(n, n)
    s0 = _dot(_cross(b - a, p - a), n)
    s1 = _dot(_cross(c - b, p - b), n)
    s2 = _dot(_cross(a - c, p - c), n)
    inside = (s0 >= 0) & (s1 >= 0) & (s2 >= 0) & (nn > 0)
    plane = _dot(p - a, n) ** 2 / torch.where(nn > 0, nn, torch.ones_like(nn))
    edges = torch.minimum(torch.minimum(_seg_dist2(p, a, b, tiny), _seg_dist2(p, b, c, tiny)),
                          _seg_dist2(p, c, a, tiny))
    return torch.where(inside, plane, edges)


@numpy_compatible
def point_to_mesh_distance(points, verts, faces, return_face_ids=False, chunk_elems=1 << 21):
    """Exact squared distance from each point to the nearest triangle of a mesh.

    points ``(P, 3)`` / ``(B, P, 3)``, verts ``(V, 3)`` / ``(B, V, 3)`` (same float dtype, batch 1
    broadcasts), faces ``(F, 3)`` int32/int64 shared by the batch. Returns ``dist2 (B, P)``
    (``(P,)`` when points and verts are both unbatched), differentiable w.r.t. ``points`` and
    ``verts``; with ``return_face_ids=True`` also the nearest face's index (int64, same shape;
    smallest index on ties).

    Brute force in torch: the nearest face is searched without autograd over point x face
    chunks of about ``chunk_elems`` pairs (memory O(chunk_elems), never P x F), then the distance
    to that face alone is recomputed with autograd (the min is piecewise smooth, so this is the
    exact gradient). Raises ``ValueError`` for an empty mesh (no faces).
    """
    fn = "point_to_mesh_distance"
    # Lists become tensors here (@numpy_compatible converts only NumPy arrays).
    points = V.array(fn, "points", points, "torch")
    verts = V.array(fn, "verts", verts, "torch", points)
    unbatched = points.ndim == 2 and verts.ndim == 2
    p = V.verts(fn, "points", points, "torch")
    v = V.verts(fn, "verts", verts, "torch", p)
    V.same_float(fn, points=p, verts=v)
    f = V.faces(fn, "faces", faces, "torch", v.shape[1], like=v).long()
    B = V.batch(fn, {"points": p.shape[0], "verts": v.shape[0]})
    if f.shape[0] == 0:
        raise ValueError(f"{fn}: faces is empty; a distance to a mesh needs at least one triangle")
    P, F = p.shape[1], f.shape[0]
    p = p.expand(B, P, 3)
    tri = v[:, f].expand(B, F, 3, 3)  # (B, F, corner, xyz)
    best = torch.full((B, P), float("inf"), dtype=p.dtype, device=p.device)
    arg = torch.zeros((B, P), dtype=torch.long, device=p.device)
    pc = max(1, min(P, 4096))
    fc = max(1, int(chunk_elems) // (pc * B))
    with torch.no_grad():
        pd, td = p.detach(), tri.detach()
        for i0 in range(0, P, pc):
            q = pd[:, i0:i0 + pc, None, :]
            for f0 in range(0, F, fc):
                t = td[:, None, f0:f0 + fc]
                d = _triangle_dist2(q, t[..., 0, :], t[..., 1, :], t[..., 2, :])  # (B, pc, fc)
                m, a = d.min(-1)
                better = m < best[:, i0:i0 + pc]
                best[:, i0:i0 + pc] = torch.where(better, m, best[:, i0:i0 + pc])
                arg[:, i0:i0 + pc] = torch.where(better, a + f0, arg[:, i0:i0 + pc])
    near = torch.gather(tri, 1, arg[:, :, None, None].expand(B, P, 3, 3))  # (B, P, 3, 3), with autograd
    dist2 = _triangle_dist2(p, near[..., 0, :], near[..., 1, :], near[..., 2, :])
    if unbatched:
        dist2, arg = dist2[0], arg[0]
    return (dist2, arg) if return_face_ids else dist2
