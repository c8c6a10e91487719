"""Interpolation: slerp, uniform B-splines, trilinear grid sampling, weighted gather (torch).

Batch-first and differentiable (float32 and float64); every public function accepts NumPy arrays
too (then it returns NumPy arrays, forward only). The B-spline, trilinear and weighted functions
follow TensorFlow Graphics' ``math.interpolation`` (``bspline``, ``trilinear``, ``weighted``).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ._numpy import numpy_compatible
from .transforms import quaternion_slerp


__all__ = [
    "slerp",
    "bspline_weights",
    "bspline_interpolate_with_weights",
    "bspline_interpolate",
    "bspline_evaluate",
    "trilinear_interpolate",
    "weighted_interpolate",
]


def _as_float(x):
    x = x if torch.is_tensor(x) else torch.as_tensor(x)
    return x if x.is_floating_point() else x.to(torch.get_default_dtype())


@numpy_compatible
def slerp(q0, q1, t):
    """Quaternion slerp ``(..., 4), (..., 4), t (...) -> (..., 4)``; see :func:`transforms.quaternion_slerp`.

    Shortest path, inputs normalised, stable for nearly identical inputs.

    Example:
        >>> slerp(torch.tensor([1.0, 0, 0, 0]), torch.tensor([0.0, 0, 0, 1]), 0.5)
        tensor([0.7071, 0.0000, 0.0000, 0.7071])
    """
    return quaternion_slerp(q0, q1, t)


# ------------------------------------------------------------------------------------ B-splines
def _basis_pieces(t, degree):
    """The ``degree + 1`` non-zero uniform B-spline weights at fractional position ``t`` in [0, 1).

    Weight ``j`` is the cardinal B-spline ``N_d(t + d - j)`` written as its truncated-power sum
    ``sum_k (-1)^k C(d+1, k) (t + d - j - k)^d / d!`` over the ``k`` where the power is positive,
    an exact polynomial in ``t`` (cubic: ``(1-t)^3/6, (3t^3-6t^2+4)/6, ...``).
    """
    if degree == 0:
        return [torch.ones_like(t)]
    f = math.factorial(degree)
    out = []
    for j in range(degree + 1):
        w = torch.zeros_like(t)
        for k in range(degree - j + 1):
            w = w + ((-1) ** k * math.comb(degree + 1, k) / f) * (t + (degree - j - k)) ** degree
        out.append(w)
    return out


def _check_spline(fn, num_knots, degree, cyclical):
    if not isinstance(degree, int) or degree < 0:
        raise ValueError(f"{fn}: degree must be a non-negative int, got {degree!r}")
    if not isinstance(num_knots, int) or num_knots < degree + 1:
        raise ValueError(f"{fn}: num_knots must be an int >= degree + 1 = {degree + 1}, got {num_knots!r}")


@numpy_compatible
def bspline_weights(positions, num_knots: int, degree: int, cyclical: bool = False, sparse_mode: bool = False):
    """Uniform B-spline knot weights at ``positions`` (TF Graphics ``bspline.knot_weights``).

    Args:
        positions: ``(...)`` float. Valid range ``[0, num_knots - degree]`` for open splines and
            ``[0, num_knots)`` for cyclical ones (wrapped modulo ``num_knots``). Open splines clamp
            the segment index, so the right end ``num_knots - degree`` evaluates the last segment
            at ``t = 1`` (TF Graphics only allows it when ``num_knots - degree == 1``).
        num_knots: number of control points ``K`` (``>= degree + 1``).
        degree: any non-negative int (0 constant, 1 linear, 3 cubic, ...).
        cyclical: whether the spline wraps around.
        sparse_mode: if True return ``(weights (..., degree + 1), shift (...) int64)``: the non-zero
            weights apply to knots ``(shift + j) mod K``.

    Returns:
        ``(..., K)`` dense weights (sum to 1), differentiable w.r.t. ``positions``.

    Example:
        >>> bspline_weights(torch.tensor([0.5]), num_knots=4, degree=1)
        tensor([[0.5000, 0.5000, 0.0000, 0.0000]])
    """
    fn = "bspline_weights"
    _check_spline(fn, num_knots, degree, cyclical)
    pos = _as_float(positions)
    if cyclical:
        shift = torch.floor(pos).detach()
    else:
        shift = torch.floor(pos).detach().clamp(0, num_knots - degree - 1)
    t = pos - shift
    w = torch.stack(_basis_pieces(t, degree), -1)
    shift = shift.long()
    if cyclical:
        shift = shift % num_knots
    if sparse_mode:
        return w, shift
    idx = shift[..., None] + torch.arange(degree + 1, device=pos.device)
    if cyclical:
        idx = idx % num_knots
    out = torch.zeros(pos.shape + (num_knots,), dtype=w.dtype, device=w.device)
    return out.scatter_add(-1, idx, w)


@numpy_compatible
def bspline_interpolate_with_weights(knots, weights):
    """Combine knot values with dense weights (TF Graphics ``bspline.interpolate_with_weights``).

    knots ``(B1, ..., Bk, K)`` (knot index last), weights ``(A1, ..., An, K)`` ->
    ``(A1, ..., An, B1, ..., Bk)``.

    Example:
        >>> bspline_interpolate_with_weights(torch.tensor([0.0, 2.0]), torch.tensor([0.25, 0.75]))
        tensor(1.5000)
    """
    knots = _as_float(knots)
    weights = _as_float(weights)
    if knots.dim() < 1 or weights.dim() < 1 or knots.shape[-1] != weights.shape[-1]:
        raise ValueError(f"bspline_interpolate_with_weights: knots (..., K) and weights (..., K) must share "
                         f"the last dim, got {tuple(knots.shape)} and {tuple(weights.shape)}")
    return torch.tensordot(weights, knots, dims=([-1], [-1]))


@numpy_compatible
def bspline_interpolate(knots, positions, degree: int, cyclical: bool = False):
    """Evaluate a uniform B-spline (TF Graphics ``bspline.interpolate``).

    knots ``(B1, ..., Bk, K)`` (knot index last), positions ``(A1, ..., An)`` ->
    ``(A1, ..., An, B1, ..., Bk)``. See :func:`bspline_weights` for the valid position range.
    For batch-first control points ``(K, C)`` use :func:`bspline_evaluate`.

    Example:
        >>> bspline_interpolate(torch.tensor([0.0, 1.0, 2.0]), torch.tensor([0.5, 1.5]), degree=1)
        tensor([0.5000, 1.5000])
    """
    knots = _as_float(knots)
    if knots.dim() < 1:
        raise ValueError(f"bspline_interpolate: knots must have shape (..., K), got {tuple(knots.shape)}")
    w = bspline_weights(positions, knots.shape[-1], degree, cyclical)
    return bspline_interpolate_with_weights(knots, w.to(knots.dtype))


@numpy_compatible
def bspline_evaluate(control_points, positions, degree: int, cyclical: bool = False):
    """Evaluate a uniform B-spline curve, batch-first: control points ``(K, C)``, positions ``(...)`` -> ``(..., C)``.

    Example:
        >>> cp = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
        >>> bspline_evaluate(cp, torch.tensor([0.0, 1.0]), degree=2)
        tensor([[0.5000, 0.0000],
                [1.0000, 0.5000]])
    """
    cp = _as_float(control_points)
    if cp.dim() != 2:
        raise ValueError(f"bspline_evaluate: control_points must have shape (K, C), got {tuple(cp.shape)}")
    w = bspline_weights(positions, cp.shape[0], degree, cyclical)
    return w.to(cp.dtype) @ cp


# ------------------------------------------------------------------------------------ trilinear
@numpy_compatible
def trilinear_interpolate(grid, points):
    """Trilinear interpolation of a 3D grid at points (TF Graphics ``trilinear.interpolate``).

    Args:
        grid: ``(..., D, H, W, C)`` values; ``grid[..., i, j, k, :]`` sits at point ``(i, j, k)``.
        points: ``(..., N, 3)`` continuous voxel indices ``(d, h, w)`` -- the same order as the grid
            axes, no normalisation. Leading dims broadcast with the grid's.

    Returns:
        ``(..., N, C)``. Outside the grid the corner indices are clamped to the edge (TF Graphics
        behaviour), i.e. the border value is repeated. Differentiable w.r.t. ``grid`` and ``points``.

    Example:
        >>> grid = torch.arange(8.0).reshape(2, 2, 2, 1)
        >>> trilinear_interpolate(grid, torch.tensor([[0.5, 0.5, 0.5], [1.0, 0.0, 1.0]]))
        tensor([[3.5000],
                [5.0000]])
    """
    fn = "trilinear_interpolate"
    grid = _as_float(grid)
    points = _as_float(points).to(grid.dtype)
    if grid.dim() < 4:
        raise ValueError(f"{fn}: grid must have shape (..., D, H, W, C), got {tuple(grid.shape)}")
    if points.dim() < 2 or points.shape[-1] != 3:
        raise ValueError(f"{fn}: points must have shape (..., N, 3), got {tuple(points.shape)}")
    D, H, W, C = grid.shape[-4:]
    N = points.shape[-2]
    batch = np.broadcast_shapes(tuple(grid.shape[:-4]), tuple(points.shape[:-2]))  # torch's imports sympy
    g = grid.expand(batch + (D, H, W, C)).reshape(-1, D * H * W, C)
    p = points.expand(batch + (N, 3)).reshape(-1, N, 3)
    p0 = torch.floor(p).detach()
    f1 = p - p0  # distance to the lower corner
    f0 = 1 - f1
    i0 = p0.long()
    size = torch.tensor([D, H, W], device=p.device)
    out = 0
    for corner in range(8):
        bits = [(corner >> s) & 1 for s in (2, 1, 0)]
        idx = torch.minimum(torch.clamp(i0 + torch.tensor(bits, device=p.device), min=0), size - 1)
        lin = (idx[..., 0] * H + idx[..., 1]) * W + idx[..., 2]  # (B, N)
        vals = torch.gather(g, 1, lin[..., None].expand(-1, -1, C))
        wt = 1
        for a, b in enumerate(bits):
            wt = wt * (f1[..., a] if b else f0[..., a])
        out = out + wt[..., None] * vals
    return out.reshape(batch + (N, C))


# ------------------------------------------------------------------------------------- weighted
@numpy_compatible
def weighted_interpolate(points, weights, indices, normalize: bool = True, allow_negative_weights: bool = False):
    """Weighted sum of gathered points (TF Graphics ``weighted.interpolate``).

    Args:
        points: ``(B1, ..., Bk, M)`` point set of rank ``R = k + 1``.
        weights: ``(A1, ..., An, P)`` weights of the ``P`` points combined for each output.
        indices: ``(A1, ..., An, P, k)`` integer index of each point into ``points``' first ``k`` dims
            (gather_nd). Leading dims of ``weights`` and ``indices`` broadcast.
        normalize: divide the weights by their sum over ``P`` (a zero sum raises ValueError).
        allow_negative_weights: if False, negative weights raise ValueError.

    Returns:
        ``(A1, ..., An, M)``, differentiable w.r.t. ``points`` and ``weights``.

    Example:
        >>> pts = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0]])
        >>> weighted_interpolate(pts, torch.tensor([1.0, 1.0]), torch.tensor([[1], [2]]))
        tensor([1., 1.])
    """
    fn = "weighted_interpolate"
    points = _as_float(points)
    weights = _as_float(weights).to(points.dtype)
    indices = indices if torch.is_tensor(indices) else torch.as_tensor(indices)
    if points.dim() < 2:
        raise ValueError(f"{fn}: points must have shape (B1, ..., Bk, M) with k >= 1, got {tuple(points.shape)}")
    k = points.dim() - 1
    if indices.is_floating_point() or indices.dim() < 2 or indices.shape[-1] != k:
        raise ValueError(f"{fn}: indices must be integer with shape (..., P, {k}), got "
                         f"{tuple(indices.shape)} {indices.dtype}")
    if weights.dim() < 1 or weights.shape[-1] != indices.shape[-2]:
        raise ValueError(f"{fn}: weights must have shape (..., P) with P = {indices.shape[-2]}, got {tuple(weights.shape)}")
    if not allow_negative_weights and bool((weights < 0).any()):
        raise ValueError(f"{fn}: weights must be non-negative (pass allow_negative_weights=True)")
    if normalize:
        sums = weights.sum(-1, keepdim=True)
        if bool((sums == 0).any()):
            raise ValueError(f"{fn}: weights sum to zero for some output; cannot normalize")
        weights = weights / sums
    bshape = points.shape[:-1]
    strides = torch.tensor([math.prod(bshape[i + 1:]) for i in range(k)], device=points.device)
    lin = (indices.long() * strides).sum(-1)
    gathered = points.reshape(-1, points.shape[-1])[lin]  # (..., P, M)
    return (gathered * weights[..., None]).sum(-2)
