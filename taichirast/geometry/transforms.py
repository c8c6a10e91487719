"""Rotation and rigid-transform conversions (torch, batch-first, differentiable).

Conventions (DESIGN.md §2):

- Every function is batched over any leading dims ``(..., k)`` and runs in float32 and float64.
- Quaternions are ``(w, x, y, z)``, unit-norm. ``q`` and ``-q`` are the same rotation; functions that
  *return* a quaternion from a matrix / axis-angle return the one with ``w >= 0``.
- Axis-angle is a 3-vector whose direction is the axis and whose norm is the angle (radians).
- Rotation matrices ``(..., 3, 3)`` act on column vectors: ``p' = R @ p``.
- Euler angles name their axis order in the ``order`` argument (one of the 12 orders ``"XYZ"``,
  ``"XZY"``, ``"YXZ"``, ``"YZX"``, ``"ZXY"``, ``"ZYX"``, ``"XYX"``, ``"XZX"``, ``"YXY"``, ``"YZY"``,
  ``"ZXZ"``, ``"ZYZ"``); ``extrinsic=False`` (default) means rotations about the moving (body) axes,
  ``R = R_1(a) @ R_2(b) @ R_3(c)``; ``extrinsic=True`` means about the fixed axes,
  ``R = R_3(c) @ R_2(b) @ R_1(a)``. These match SciPy's ``"XYZ"`` (intrinsic) and ``"xyz"``
  (extrinsic) conventions.
- Rigid transforms are ``(..., 4, 4)`` matrices ``[[R, t], [0, 1]]``; dual quaternions are
  ``(..., 8)``: real part ``(w, x, y, z)`` then dual part ``(w, x, y, z)``.

Axis-angle <-> quaternion / matrix use Taylor expansions below a small angle so values *and*
gradients are finite and exact at angle 0. Every public function accepts NumPy arrays too (then it
returns NumPy arrays, forward only).
"""
from __future__ import annotations

import math  # noqa: F401  (used by the Example: doctests, which run in this module's namespace)

import numpy as np
import torch

from ._numpy import numpy_compatible

__all__ = [
    "EULER_ORDERS",
    "quaternion_normalize",
    "quaternion_conjugate",
    "quaternion_inverse",
    "quaternion_multiply",
    "quaternion_to_matrix",
    "matrix_to_quaternion",
    "axis_angle_to_quaternion",
    "quaternion_to_axis_angle",
    "axis_angle_to_matrix",
    "matrix_to_axis_angle",
    "axis_angle_rotate_points",
    "quaternion_rotate_points",
    "matrix_rotate_points",
    "euler_to_matrix",
    "matrix_to_euler",
    "euler_to_quaternion",
    "quaternion_to_euler",
    "matrix_to_rotation_6d",
    "rotation_6d_to_matrix",
    "angle_to_matrix_2d",
    "matrix_2d_to_angle",
    "compose_rotations",
    "invert_rotation",
    "relative_rotation",
    "quaternion_relative_rotation",
    "rotation_geodesic_angle",
    "quaternion_geodesic_angle",
    "random_quaternions",
    "random_rotation_matrices",
    "quaternion_slerp",
    "rigid_from_rotation_translation",
    "rigid_to_rotation_translation",
    "compose_rigid",
    "invert_rigid",
    "rigid_transform_points",
    "dual_quaternion_from_rigid",
    "dual_quaternion_to_rigid",
    "dual_quaternion_multiply",
    "dual_quaternion_transform_points",
]

EULER_ORDERS = ("XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX", "XYX", "XZX", "YXY", "YZY", "ZXZ", "ZYZ")

# Below these squared angles the closed forms lose accuracy (0/0); a 3-term Taylor series is exact
# to machine precision there.
_SMALL_ANGLE2 = {torch.float64: 1e-6, torch.float32: 1e-3, torch.float16: 1e-2, torch.bfloat16: 1e-2}


# ----------------------------------------------------------------------------------------- checks
def _as_float(fn, name, x):
    if not torch.is_tensor(x):
        x = torch.as_tensor(x)
    if not x.is_floating_point():
        x = x.to(torch.get_default_dtype())
    return x


def _check_vec(fn, name, x, k):
    x = _as_float(fn, name, x)
    if x.dim() < 1 or x.shape[-1] != k:
        raise ValueError(f"{fn}: {name} must have shape (..., {k}), got {tuple(x.shape)}")
    return x


def _check_mat(fn, name, x, n):
    x = _as_float(fn, name, x)
    if x.dim() < 2 or x.shape[-2:] != (n, n):
        raise ValueError(f"{fn}: {name} must have shape (..., {n}, {n}), got {tuple(x.shape)}")
    return x


def _check_order(fn, order):
    if not isinstance(order, str) or order not in EULER_ORDERS:
        raise ValueError(f"{fn}: order must be one of {EULER_ORDERS} (upper case; pass extrinsic=True "
                         f"for fixed-axis rotations), got {order!r}")
    return order


def _small(x):
    return _SMALL_ANGLE2.get(x.dtype, 1e-3)


def _safe_norm(x, dim=-1, keepdim=False):
    """Euclidean norm whose gradient at 0 is 0 instead of NaN."""
    n2 = (x * x).sum(dim, keepdim=keepdim)
    tiny = torch.finfo(x.dtype).tiny
    return torch.where(n2 > tiny, n2.clamp_min(tiny).sqrt(), torch.zeros_like(n2))


def _skew(v):
    """``(..., 3)`` -> ``(..., 3, 3)`` cross-product matrix ``[v]_x``."""
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], -1).reshape(v.shape + (3,))


# ------------------------------------------------------------------------------------ quaternions
@numpy_compatible
def quaternion_normalize(q, eps: float = 1e-12):
    """Scale quaternions ``(..., 4)`` to unit norm (norm clamped below by ``eps``).

    Example:
        >>> quaternion_normalize(torch.tensor([2.0, 0.0, 0.0, 0.0]))
        tensor([1., 0., 0., 0.])
    """
    q = _check_vec("quaternion_normalize", "q", q, 4)
    return q / q.norm(dim=-1, keepdim=True).clamp_min(eps)


@numpy_compatible
def quaternion_conjugate(q):
    """Conjugate ``(w, -x, -y, -z)`` of quaternions ``(..., 4)``.

    Example:
        >>> quaternion_conjugate(torch.tensor([1.0, 2.0, 3.0, 4.0]))
        tensor([ 1., -2., -3., -4.])
    """
    q = _check_vec("quaternion_conjugate", "q", q, 4)
    return q * q.new_tensor([1.0, -1.0, -1.0, -1.0])


@numpy_compatible
def quaternion_inverse(q, eps: float = 1e-12):
    """Multiplicative inverse ``conj(q) / |q|^2`` of quaternions ``(..., 4)`` (any norm).

    Example:
        >>> quaternion_inverse(torch.tensor([2.0, 0.0, 0.0, 0.0]))
        tensor([0.5000, -0.0000, -0.0000, -0.0000])
    """
    q = _check_vec("quaternion_inverse", "q", q, 4)
    return quaternion_conjugate(q) / (q * q).sum(-1, keepdim=True).clamp_min(eps)


@numpy_compatible
def quaternion_multiply(q1, q2):
    """Hamilton product ``q1 * q2`` of ``(..., 4)`` quaternions (broadcast); rotates by ``q2`` first.

    Example:
        >>> i = torch.tensor([0.0, 1.0, 0.0, 0.0]); j = torch.tensor([0.0, 0.0, 1.0, 0.0])
        >>> quaternion_multiply(i, j)  # i * j = k
        tensor([0., 0., 0., 1.])
    """
    q1 = _check_vec("quaternion_multiply", "q1", q1, 4)
    q2 = _check_vec("quaternion_multiply", "q2", q2, 4)
    w1, x1, y1, z1 = q1.unbind(-1)
    w2, x2, y2, z2 = q2.unbind(-1)
    return torch.stack([
        w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
        w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
        w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
        w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
    ], -1)


@numpy_compatible
def quaternion_to_matrix(q):
    """Quaternions ``(..., 4)`` ``(w, x, y, z)`` -> rotation matrices ``(..., 3, 3)``.

    Unnormalised quaternions are normalised first (so any non-zero ``q`` gives a rotation, and the
    gradient is that of ``quaternion_to_matrix(q / |q|)``).

    Example:
        >>> quaternion_to_matrix(torch.tensor([1.0, 0.0, 0.0, 0.0]))
        tensor([[1., 0., 0.],
                [0., 1., 0.],
                [0., 0., 1.]])
    """
    q = _check_vec("quaternion_to_matrix", "q", q, 4)
    w, x, y, z = quaternion_normalize(q).unbind(-1)
    m = torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
        2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
        2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y),
    ], -1)
    return m.reshape(q.shape[:-1] + (3, 3))


def _sqrt_positive(x):
    pos = x > 0
    return torch.where(pos, torch.where(pos, x, torch.ones_like(x)).sqrt(), torch.zeros_like(x))


def _standardize(q):
    return torch.where(q[..., :1] < 0, -q, q)


@numpy_compatible
def matrix_to_quaternion(matrix):
    """Rotation matrices ``(..., 3, 3)`` -> unit quaternions ``(..., 4)`` ``(w, x, y, z)``, ``w >= 0``.

    Uses the best-conditioned of the four Shepperd candidates (largest diagonal term), so it is
    accurate and differentiable near angle pi too.

    Example:
        >>> matrix_to_quaternion(torch.eye(3))
        tensor([1., 0., 0., 0.])
    """
    m = _check_mat("matrix_to_quaternion", "matrix", matrix, 3)
    m00, m01, m02, m10, m11, m12, m20, m21, m22 = m.reshape(m.shape[:-2] + (9,)).unbind(-1)
    q_abs = _sqrt_positive(torch.stack([
        1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1))
    cand = torch.stack([
        torch.stack([q_abs[..., 0] ** 2, m21 - m12, m02 - m20, m10 - m01], -1),
        torch.stack([m21 - m12, q_abs[..., 1] ** 2, m10 + m01, m02 + m20], -1),
        torch.stack([m02 - m20, m10 + m01, q_abs[..., 2] ** 2, m12 + m21], -1),
        torch.stack([m10 - m01, m20 + m02, m21 + m12, q_abs[..., 3] ** 2], -1),
    ], -2)
    cand = cand / (2.0 * q_abs[..., None].clamp_min(0.1))
    pick = torch.nn.functional.one_hot(q_abs.argmax(-1), 4).to(m.dtype)
    q = (cand * pick[..., None]).sum(-2)
    return _standardize(q)


# ----------------------------------------------------------------------------------- axis-angle
@numpy_compatible
def axis_angle_to_quaternion(axis_angle):
    """Axis-angle ``(..., 3)`` (angle = norm) -> unit quaternions ``(..., 4)`` ``(w, x, y, z)``.

    Exact and differentiable at angle 0 (Taylor series below a small angle).

    Example:
        >>> axis_angle_to_quaternion(torch.tensor([math.pi, 0.0, 0.0]))
        tensor([-4.3711e-08,  1.0000e+00,  0.0000e+00,  0.0000e+00])
    """
    v = _check_vec("axis_angle_to_quaternion", "axis_angle", axis_angle, 3)
    a2 = (v * v).sum(-1, keepdim=True)
    small = a2 < _small(v)
    a = torch.where(small, torch.ones_like(a2), a2).sqrt()
    half = 0.5 * a
    w = torch.where(small, 1 - a2 / 8 + a2 * a2 / 384, torch.cos(half))
    k = torch.where(small, 0.5 - a2 / 48 + a2 * a2 / 3840, torch.sin(half) / a)
    return torch.cat([w, k * v], -1)


@numpy_compatible
def quaternion_to_axis_angle(q):
    """Quaternions ``(..., 4)`` (normalised first) -> axis-angle ``(..., 3)``, angle in ``[0, pi]``.

    Exact and differentiable at angle 0. At exactly pi, ``v`` and ``-v`` are the same rotation; the
    sign follows the sign of ``q``'s vector part after choosing ``w >= 0``.

    Example:
        >>> quaternion_to_axis_angle(torch.tensor([0.0, 0.0, 0.0, 1.0]))
        tensor([0.0000, 0.0000, 3.1416])
    """
    q = _check_vec("quaternion_to_axis_angle", "q", q, 4)
    q = _standardize(quaternion_normalize(q))
    w, xyz = q[..., :1], q[..., 1:]
    s2 = (xyz * xyz).sum(-1, keepdim=True)
    small = s2 < _small(q)
    s = torch.where(small, torch.ones_like(s2), s2).sqrt()
    w_safe = torch.where(small, w, torch.ones_like(w))  # w ~ 1 when small
    # angle / sin(angle/2) = 2 atan(s/w) / s  ~  (2/w) (1 - (s/w)^2 / 3 + (s/w)^4 / 5)
    r2 = s2 / (w_safe * w_safe)
    k = torch.where(small, (2 / w_safe) * (1 - r2 / 3 + r2 * r2 / 5), 2 * torch.atan2(s, w) / s)
    return k * xyz


@numpy_compatible
def axis_angle_to_matrix(axis_angle):
    """Axis-angle ``(..., 3)`` -> rotation matrices ``(..., 3, 3)`` (Rodrigues' formula).

    ``R = I + A [v]_x + B [v]_x^2`` with ``A = sin(a)/a``, ``B = (1 - cos a)/a^2`` (Taylor series
    below a small angle, so exact and differentiable at angle 0).

    Example:
        >>> axis_angle_to_matrix(torch.tensor([0.0, 0.0, math.pi / 2])).round(decimals=4) + 0.0
        tensor([[ 0., -1.,  0.],
                [ 1.,  0.,  0.],
                [ 0.,  0.,  1.]])
    """
    v = _check_vec("axis_angle_to_matrix", "axis_angle", axis_angle, 3)
    a2 = (v * v).sum(-1)[..., None, None]
    small = a2 < _small(v)
    a = torch.where(small, torch.ones_like(a2), a2).sqrt()
    A = torch.where(small, 1 - a2 / 6 + a2 * a2 / 120, torch.sin(a) / a)
    B = torch.where(small, 0.5 - a2 / 24 + a2 * a2 / 720, (1 - torch.cos(a)) / (a * a))
    K = _skew(v)
    eye = torch.eye(3, dtype=v.dtype, device=v.device)
    return eye + A * K + B * (K @ K)


@numpy_compatible
def matrix_to_axis_angle(matrix):
    """Rotation matrices ``(..., 3, 3)`` -> axis-angle ``(..., 3)``, angle in ``[0, pi]``.

    Goes through :func:`matrix_to_quaternion`, so it is stable near 0 and near pi.

    Example:
        >>> matrix_to_axis_angle(torch.eye(3))
        tensor([0., 0., 0.])
    """
    m = _check_mat("matrix_to_axis_angle", "matrix", matrix, 3)
    return quaternion_to_axis_angle(matrix_to_quaternion(m))


@numpy_compatible
def axis_angle_rotate_points(axis_angle, points):
    """Rotate points ``(..., 3)`` by axis-angle ``(..., 3)`` (leading dims broadcast).

    Example:
        >>> axis_angle_rotate_points(torch.tensor([0.0, 0.0, math.pi / 2]), torch.tensor([1.0, 0.0, 0.0])).round(decimals=4) + 0.0
        tensor([0., 1., 0.])
    """
    v = _check_vec("axis_angle_rotate_points", "axis_angle", axis_angle, 3)
    p = _check_vec("axis_angle_rotate_points", "points", points, 3)
    return matrix_rotate_points(axis_angle_to_matrix(v), p)


@numpy_compatible
def quaternion_rotate_points(q, points):
    """Rotate points ``(..., 3)`` by quaternions ``(..., 4)`` (normalised first; dims broadcast).

    Computes ``q p q^*`` as ``p + 2w (u x p) + 2 u x (u x p)`` with ``q = (w, u)``.

    Example:
        >>> q = axis_angle_to_quaternion(torch.tensor([0.0, 0.0, math.pi / 2]))
        >>> quaternion_rotate_points(q, torch.tensor([1.0, 0.0, 0.0])).round(decimals=4) + 0.0
        tensor([0., 1., 0.])
    """
    q = _check_vec("quaternion_rotate_points", "q", q, 4)
    p = _check_vec("quaternion_rotate_points", "points", points, 3)
    q = quaternion_normalize(q)
    w, u = q[..., :1], q[..., 1:]
    u, p_b = torch.broadcast_tensors(u, p)
    uxp = torch.linalg.cross(u, p_b, dim=-1)
    return p_b + 2 * w * uxp + 2 * torch.linalg.cross(u, uxp, dim=-1)


@numpy_compatible
def matrix_rotate_points(matrix, points):
    """Rotate points ``(..., 3)`` by matrices ``(..., 3, 3)``: ``R @ p`` (leading dims broadcast).

    Example:
        >>> matrix_rotate_points(torch.eye(3), torch.tensor([1.0, 2.0, 3.0]))
        tensor([1., 2., 3.])
    """
    m = _check_mat("matrix_rotate_points", "matrix", matrix, 3)
    p = _check_vec("matrix_rotate_points", "points", points, 3)
    return (m @ p[..., None])[..., 0]


# ---------------------------------------------------------------------------------------- Euler
_AXIS = {"X": 0, "Y": 1, "Z": 2}


def _axis_rotation(axis, angle):
    c, s = torch.cos(angle), torch.sin(angle)
    o, l = torch.zeros_like(angle), torch.ones_like(angle)
    if axis == "X":
        m = [l, o, o, o, c, -s, o, s, c]
    elif axis == "Y":
        m = [c, o, s, o, l, o, -s, o, c]
    else:
        m = [c, -s, o, s, c, o, o, o, l]
    return torch.stack(m, -1).reshape(angle.shape + (3, 3))


@numpy_compatible
def euler_to_matrix(angles, order: str = "XYZ", extrinsic: bool = False):
    """Euler angles ``(..., 3)`` (radians) -> rotation matrices ``(..., 3, 3)``.

    ``order`` is one of the 12 axis orders (e.g. ``"XYZ"``, ``"ZYZ"``); ``angles[..., i]`` is the
    rotation about axis ``order[i]``. Intrinsic (``extrinsic=False``, moving axes):
    ``R = R_{order[0]}(a0) @ R_{order[1]}(a1) @ R_{order[2]}(a2)``; extrinsic (fixed axes):
    ``R = R_{order[2]}(a2) @ R_{order[1]}(a1) @ R_{order[0]}(a0)``. Same as SciPy's
    ``Rotation.from_euler(order, ...)`` (intrinsic) / ``from_euler(order.lower(), ...)`` (extrinsic).

    Example:
        >>> euler_to_matrix(torch.tensor([0.0, 0.0, math.pi / 2]), "XYZ").round(decimals=4) + 0.0
        tensor([[ 0., -1.,  0.],
                [ 1.,  0.,  0.],
                [ 0.,  0.,  1.]])
    """
    a = _check_vec("euler_to_matrix", "angles", angles, 3)
    _check_order("euler_to_matrix", order)
    r = [_axis_rotation(ax, a[..., i]) for i, ax in enumerate(order)]
    if extrinsic:
        return r[2] @ r[1] @ r[0]
    return r[0] @ r[1] @ r[2]


def _angle_about(M, axis):
    """Angle of a (near-)rotation ``M`` about coordinate ``axis`` from its in-plane 2x2 block."""
    i1, i2 = (axis + 1) % 3, (axis + 2) % 3
    return torch.atan2(M[..., i2, i1] - M[..., i1, i2], M[..., i1, i1] + M[..., i2, i2])


def _intrinsic_from_matrix(m, order, lock_zero_first=False):
    i, j = _AXIS[order[0]], _AXIS[order[1]]
    proper = order[0] == order[2]
    k = 3 - i - j
    s = 1.0 if (j - i) % 3 == 1 else -1.0  # parity of (i, j, k)
    R = lambda r, c: m[..., r, c]  # noqa: E731
    tiny = torch.finfo(m.dtype).eps ** 2
    lock_tol = 100 * torch.finfo(m.dtype).eps
    if proper:
        sin_b = (R(i, j) ** 2 + R(i, k) ** 2).clamp_min(tiny).sqrt()
        b = torch.atan2(sin_b, R(i, i))
        a = torch.atan2(R(j, i), -s * R(k, i))
        lock = sin_b < lock_tol
    else:
        cos_b = (R(i, i) ** 2 + R(i, j) ** 2).clamp_min(tiny).sqrt()
        b = torch.atan2(s * R(i, k), cos_b)
        a = torch.atan2(-s * R(j, k), R(k, k))
        lock = cos_b < lock_tol
    # Gimbal lock: only a +/- c is determined. Set c = 0 and read a from R @ R_j(b)^T = R_i(a)
    # (or, for extrinsic angles, set a = 0 and let the residual below give c).
    if lock_zero_first:
        a_lock = torch.zeros_like(a)
    else:
        a_lock = _angle_about(m @ _axis_rotation(order[1], b).transpose(-1, -2), i)
    a = torch.where(lock, a_lock, a)
    # Read c from the residual (R_i(a) R_j(b))^T R = R_k(c) rather than from the (tiny, noisy near
    # the lock) entries of R directly: c then absorbs the error of a and R is reproduced to ~eps.
    first = _axis_rotation(order[0], a) @ _axis_rotation(order[1], b)
    c = _angle_about(first.transpose(-1, -2) @ m, _AXIS[order[2]])
    if not lock_zero_first:
        c = torch.where(lock, torch.zeros_like(c), c)
    return torch.stack([a, b, c], -1)


@numpy_compatible
def matrix_to_euler(matrix, order: str = "XYZ", extrinsic: bool = False):
    """Rotation matrices ``(..., 3, 3)`` -> Euler angles ``(..., 3)``, the inverse of :func:`euler_to_matrix`.

    Ranges: first and third angle in ``(-pi, pi]``; middle angle in ``[-pi/2, pi/2]`` for
    Tait-Bryan orders (three different axes) and in ``[0, pi]`` for proper Euler orders (``"ZYZ"``...).
    Angles are read with ``atan2`` (no ``asin``/``acos``), so they are accurate everywhere.

    Gimbal lock (middle angle at +/-pi/2 for Tait-Bryan, 0 or pi for proper Euler, detected when
    the relevant sine/cosine is below ``100 eps`` of the dtype): only the sum/difference of the
    outer angles is defined. As in SciPy, the third angle ``angles[..., 2]`` is then set to 0 (both
    intrinsic and extrinsic) and the whole rotation goes into ``angles[..., 0]``, so
    ``euler_to_matrix(matrix_to_euler(R))`` still equals ``R``.
    Gradients there are not meaningful (the map is not differentiable at the lock).

    Example:
        >>> matrix_to_euler(euler_to_matrix(torch.tensor([0.1, 0.2, 0.3]), "ZYX"), "ZYX")
        tensor([0.1000, 0.2000, 0.3000])
    """
    m = _check_mat("matrix_to_euler", "matrix", matrix, 3)
    _check_order("matrix_to_euler", order)
    if extrinsic:
        return _intrinsic_from_matrix(m, order[::-1], lock_zero_first=True).flip(-1)
    return _intrinsic_from_matrix(m, order)


@numpy_compatible
def euler_to_quaternion(angles, order: str = "XYZ", extrinsic: bool = False):
    """Euler angles ``(..., 3)`` -> unit quaternions ``(..., 4)`` (``w >= 0``); see :func:`euler_to_matrix`.

    Example:
        >>> euler_to_quaternion(torch.zeros(3), "ZYZ")
        tensor([1., 0., 0., 0.])
    """
    a = _check_vec("euler_to_quaternion", "angles", angles, 3)
    return matrix_to_quaternion(euler_to_matrix(a, order, extrinsic))


@numpy_compatible
def quaternion_to_euler(q, order: str = "XYZ", extrinsic: bool = False):
    """Quaternions ``(..., 4)`` -> Euler angles ``(..., 3)``; see :func:`matrix_to_euler` (gimbal lock).

    Example:
        >>> quaternion_to_euler(torch.tensor([1.0, 0.0, 0.0, 0.0]), "XYZ") + 0.0
        tensor([0., 0., 0.])
    """
    q = _check_vec("quaternion_to_euler", "q", q, 4)
    return matrix_to_euler(quaternion_to_matrix(q), order, extrinsic)


# ---------------------------------------------------------------------------------- 6D and 2D
@numpy_compatible
def matrix_to_rotation_6d(matrix):
    """Rotation matrices ``(..., 3, 3)`` -> 6D representation ``(..., 6)`` (Zhou et al. 2019).

    The 6D vector is the first two *columns* of ``R``: ``(R[:, 0], R[:, 1])``.

    Example:
        >>> matrix_to_rotation_6d(torch.eye(3))
        tensor([1., 0., 0., 0., 1., 0.])
    """
    m = _check_mat("matrix_to_rotation_6d", "matrix", matrix, 3)
    return torch.cat([m[..., :, 0], m[..., :, 1]], -1)


@numpy_compatible
def rotation_6d_to_matrix(d6, eps: float = 1e-12):
    """6D representation ``(..., 6)`` -> rotation matrices ``(..., 3, 3)`` by Gram-Schmidt.

    ``b1 = a1/|a1|``, ``b2 = normalise(a2 - (b1.a2) b1)``, ``b3 = b1 x b2`` are the columns
    (Zhou et al. 2019, eq. 16). Any ``d6`` with non-parallel halves gives a rotation.

    Example:
        >>> rotation_6d_to_matrix(torch.tensor([2.0, 0.0, 0.0, 1.0, 3.0, 0.0]))
        tensor([[1., 0., 0.],
                [0., 1., 0.],
                [0., 0., 1.]])
    """
    d6 = _check_vec("rotation_6d_to_matrix", "d6", d6, 6)
    a1, a2 = d6[..., :3], d6[..., 3:]
    b1 = a1 / a1.norm(dim=-1, keepdim=True).clamp_min(eps)
    b2 = a2 - (b1 * a2).sum(-1, keepdim=True) * b1
    b2 = b2 / b2.norm(dim=-1, keepdim=True).clamp_min(eps)
    b3 = torch.linalg.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], -1)


@numpy_compatible
def angle_to_matrix_2d(angle):
    """2D rotation angles ``(...)`` (radians, counter-clockwise) -> matrices ``(..., 2, 2)`` ``[[c, -s], [s, c]]``.

    Example:
        >>> angle_to_matrix_2d(torch.tensor(math.pi / 2)).round(decimals=4) + 0.0
        tensor([[ 0., -1.],
                [ 1.,  0.]])
    """
    a = _as_float("angle_to_matrix_2d", "angle", angle)
    c, s = torch.cos(a), torch.sin(a)
    return torch.stack([c, -s, s, c], -1).reshape(a.shape + (2, 2))


@numpy_compatible
def matrix_2d_to_angle(matrix):
    """2D rotation matrices ``(..., 2, 2)`` -> angles ``(...)`` in ``(-pi, pi]`` via ``atan2``.

    Example:
        >>> matrix_2d_to_angle(torch.tensor([[0.0, -1.0], [1.0, 0.0]]))
        tensor(1.5708)
    """
    m = _check_mat("matrix_2d_to_angle", "matrix", matrix, 2)
    return torch.atan2(m[..., 1, 0] - m[..., 0, 1], m[..., 0, 0] + m[..., 1, 1])


# ------------------------------------------------------------------- compose, inverse, distance
@numpy_compatible
def compose_rotations(r1, r2):
    """Compose rotation matrices ``(..., 3, 3)``: ``r1 @ r2`` (applies ``r2`` first; dims broadcast).

    Example:
        >>> compose_rotations(torch.eye(3), torch.eye(3)).shape
        torch.Size([3, 3])
    """
    r1 = _check_mat("compose_rotations", "r1", r1, 3)
    r2 = _check_mat("compose_rotations", "r2", r2, 3)
    return r1 @ r2


@numpy_compatible
def invert_rotation(matrix):
    """Inverse (transpose) of rotation matrices ``(..., 3, 3)``.

    Example:
        >>> invert_rotation(torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]))
        tensor([[ 0.,  1.,  0.],
                [-1.,  0.,  0.],
                [ 0.,  0.,  1.]])
    """
    m = _check_mat("invert_rotation", "matrix", matrix, 3)
    return m.transpose(-1, -2)


@numpy_compatible
def relative_rotation(r1, r2):
    """Rotation ``r2 @ r1^T`` ``(..., 3, 3)`` that takes ``r1`` to ``r2`` (``rel @ r1 == r2``).

    Example:
        >>> relative_rotation(torch.eye(3), torch.eye(3))
        tensor([[1., 0., 0.],
                [0., 1., 0.],
                [0., 0., 1.]])
    """
    r1 = _check_mat("relative_rotation", "r1", r1, 3)
    r2 = _check_mat("relative_rotation", "r2", r2, 3)
    return r2 @ r1.transpose(-1, -2)


@numpy_compatible
def quaternion_relative_rotation(q1, q2):
    """Quaternion ``q2 * q1^{-1}`` ``(..., 4)`` taking ``q1`` to ``q2`` (inputs normalised first).

    Example:
        >>> quaternion_relative_rotation(torch.tensor([1.0, 0, 0, 0]), torch.tensor([0.0, 1, 0, 0]))
        tensor([0., 1., 0., 0.])
    """
    q1 = _check_vec("quaternion_relative_rotation", "q1", q1, 4)
    q2 = _check_vec("quaternion_relative_rotation", "q2", q2, 4)
    return quaternion_multiply(quaternion_normalize(q2), quaternion_conjugate(quaternion_normalize(q1)))


@numpy_compatible
def rotation_geodesic_angle(r1, r2):
    """Geodesic angle ``(...)`` in ``[0, pi]`` between rotation matrices ``(..., 3, 3)``.

    ``atan2(|sin|, cos)`` of the relative rotation ``r1^T r2``: ``cos = (tr - 1)/2`` and
    ``|sin| = |vee(rel - rel^T)| / 2``, accurate near 0 and pi (unlike ``acos``); the gradient is
    finite everywhere (0 at identical inputs).

    Example:
        >>> rotation_geodesic_angle(torch.eye(3), axis_angle_to_matrix(torch.tensor([0.0, 0.5, 0.0])))
        tensor(0.5000)
    """
    r1 = _check_mat("rotation_geodesic_angle", "r1", r1, 3)
    r2 = _check_mat("rotation_geodesic_angle", "r2", r2, 3)
    rel = r1.transpose(-1, -2) @ r2
    cos = (rel.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2
    vee = torch.stack([rel[..., 2, 1] - rel[..., 1, 2], rel[..., 0, 2] - rel[..., 2, 0],
                       rel[..., 1, 0] - rel[..., 0, 1]], -1)
    return torch.atan2(_safe_norm(vee) / 2, cos)


@numpy_compatible
def quaternion_geodesic_angle(q1, q2):
    """Geodesic rotation angle ``(...)`` in ``[0, pi]`` between quaternions ``(..., 4)`` (normalised first).

    ``2 atan2(|vec(r)|, |w(r)|)`` with ``r = q1^* q2``: accurate near 0 and pi, treats ``q`` and
    ``-q`` as the same rotation.

    Example:
        >>> quaternion_geodesic_angle(torch.tensor([1.0, 0, 0, 0]), torch.tensor([0.0, 0, 0, 1]))
        tensor(3.1416)
    """
    q1 = _check_vec("quaternion_geodesic_angle", "q1", q1, 4)
    q2 = _check_vec("quaternion_geodesic_angle", "q2", q2, 4)
    r = quaternion_multiply(quaternion_conjugate(quaternion_normalize(q1)), quaternion_normalize(q2))
    return 2 * torch.atan2(_safe_norm(r[..., 1:]), r[..., 0].abs())


# ------------------------------------------------------------------------------------- random
@numpy_compatible
def random_quaternions(n, generator=None, dtype=None, device=None):
    """Uniformly distributed unit quaternions ``(*n, 4)`` with ``w >= 0``.

    Normalised 4D Gaussians are uniform on S^3, hence uniform (Haar) rotations. ``n`` is an int or
    a shape tuple; pass a seeded ``torch.Generator`` as ``generator`` for reproducibility.

    Example:
        >>> q = random_quaternions(5, generator=torch.Generator().manual_seed(0))
        >>> q.shape, bool(torch.allclose(q.norm(dim=-1), torch.ones(5)))
        (torch.Size([5, 4]), True)
    """
    shape = (n,) if isinstance(n, int) else tuple(n)
    if any((not isinstance(s, int)) or s < 0 for s in shape):
        raise ValueError(f"random_quaternions: n must be a non-negative int or shape, got {n!r}")
    dtype = dtype or torch.get_default_dtype()
    g = torch.randn(shape + (4,), generator=generator, dtype=dtype, device=device)
    return _standardize(quaternion_normalize(g))


@numpy_compatible
def random_rotation_matrices(n, generator=None, dtype=None, device=None):
    """Uniformly distributed rotation matrices ``(*n, 3, 3)``; see :func:`random_quaternions`.

    Example:
        >>> random_rotation_matrices((2, 3), generator=torch.Generator().manual_seed(0)).shape
        torch.Size([2, 3, 3, 3])
    """
    return quaternion_to_matrix(random_quaternions(n, generator=generator, dtype=dtype, device=device))


# -------------------------------------------------------------------------------------- slerp
@numpy_compatible
def quaternion_slerp(q0, q1, t):
    """Spherical linear interpolation of quaternions ``(..., 4)`` at ``t`` ``(...)`` -> ``(..., 4)``.

    Inputs are normalised; the shortest path is taken (``q1`` is negated when ``q0 . q1 < 0``).
    ``t = 0`` gives ``q0``, ``t = 1`` gives ``q1`` (or ``-q1``). The angle between the inputs is
    ``2 atan2(|q0 - q1|, |q0 + q1|)`` (accurate for nearly identical inputs), and below a small
    angle the weights fall back to linear interpolation plus normalisation, so values and gradients
    stay finite. ``t`` broadcasts against the leading dims (a Python float works too).

    Example:
        >>> q0 = torch.tensor([1.0, 0.0, 0.0, 0.0])
        >>> q1 = axis_angle_to_quaternion(torch.tensor([0.0, 0.0, 1.0]))
        >>> quaternion_to_axis_angle(quaternion_slerp(q0, q1, 0.25))
        tensor([0.0000, 0.0000, 0.2500])
    """
    q0 = _check_vec("quaternion_slerp", "q0", q0, 4)
    q1 = _check_vec("quaternion_slerp", "q1", q1, 4)
    t = torch.as_tensor(t, dtype=q0.dtype, device=q0.device)[..., None]
    q0 = quaternion_normalize(q0)
    q1 = quaternion_normalize(q1)
    dot = (q0 * q1).sum(-1, keepdim=True)
    q1 = torch.where(dot < 0, -q1, q1)
    d = _safe_norm(q0 - q1, keepdim=True)
    theta = 2 * torch.atan2(d, (q0 + q1).norm(dim=-1, keepdim=True))
    small = theta < (1e-6 if q0.dtype == torch.float64 else 1e-3)
    th = torch.where(small, torch.ones_like(theta), theta)
    sin_th = torch.sin(th)
    w0 = torch.where(small, 1 - t, torch.sin((1 - t) * th) / sin_th)
    w1 = torch.where(small, t, torch.sin(t * th) / sin_th)
    return quaternion_normalize(w0 * q0 + w1 * q1)


# ----------------------------------------------------------------------------- rigid transforms
@numpy_compatible
def rigid_from_rotation_translation(rotation, translation):
    """Rotation ``(..., 3, 3)`` and translation ``(..., 3)`` -> rigid transform ``(..., 4, 4)`` (dims broadcast).

    Example:
        >>> rigid_from_rotation_translation(torch.eye(3), torch.tensor([1.0, 2.0, 3.0]))
        tensor([[1., 0., 0., 1.],
                [0., 1., 0., 2.],
                [0., 0., 1., 3.],
                [0., 0., 0., 1.]])
    """
    R = _check_mat("rigid_from_rotation_translation", "rotation", rotation, 3)
    t = _check_vec("rigid_from_rotation_translation", "translation", translation, 3)
    batch = np.broadcast_shapes(tuple(R.shape[:-2]), tuple(t.shape[:-1]))  # torch's imports sympy
    R = R.expand(batch + (3, 3))
    t = t.expand(batch + (3,))
    top = torch.cat([R, t[..., None]], -1)
    bottom = torch.zeros(batch + (1, 4), dtype=R.dtype, device=R.device)
    bottom[..., 0, 3] = 1
    return torch.cat([top, bottom], -2)


@numpy_compatible
def rigid_to_rotation_translation(transform):
    """Rigid transform ``(..., 4, 4)`` -> ``(rotation (..., 3, 3), translation (..., 3))``.

    Example:
        >>> R, t = rigid_to_rotation_translation(torch.eye(4))
        >>> t
        tensor([0., 0., 0.])
    """
    T = _check_mat("rigid_to_rotation_translation", "transform", transform, 4)
    return T[..., :3, :3], T[..., :3, 3]


@numpy_compatible
def compose_rigid(t1, t2):
    """Compose rigid transforms ``(..., 4, 4)``: ``t1 @ t2`` (applies ``t2`` first).

    Example:
        >>> compose_rigid(torch.eye(4), torch.eye(4)).shape
        torch.Size([4, 4])
    """
    t1 = _check_mat("compose_rigid", "t1", t1, 4)
    t2 = _check_mat("compose_rigid", "t2", t2, 4)
    return t1 @ t2


@numpy_compatible
def invert_rigid(transform):
    """Inverse ``[[R^T, -R^T t], [0, 1]]`` of rigid transforms ``(..., 4, 4)`` (no general matrix inverse).

    Example:
        >>> T = rigid_from_rotation_translation(torch.eye(3), torch.tensor([1.0, 2.0, 3.0]))
        >>> invert_rigid(T)[:3, 3]
        tensor([-1., -2., -3.])
    """
    T = _check_mat("invert_rigid", "transform", transform, 4)
    Rt = T[..., :3, :3].transpose(-1, -2)
    t = -(Rt @ T[..., :3, 3:])[..., 0]
    return rigid_from_rotation_translation(Rt, t)


@numpy_compatible
def rigid_transform_points(transform, points):
    """Apply rigid transforms ``(..., 4, 4)`` to points ``(..., 3)``: ``R p + t`` (dims broadcast).

    Example:
        >>> T = rigid_from_rotation_translation(torch.eye(3), torch.tensor([1.0, 2.0, 3.0]))
        >>> rigid_transform_points(T, torch.zeros(3))
        tensor([1., 2., 3.])
    """
    T = _check_mat("rigid_transform_points", "transform", transform, 4)
    p = _check_vec("rigid_transform_points", "points", points, 3)
    return (T[..., :3, :3] @ p[..., None])[..., 0] + T[..., :3, 3]


# ---------------------------------------------------------------------------- dual quaternions
@numpy_compatible
def dual_quaternion_from_rigid(transform):
    """Rigid transforms ``(..., 4, 4)`` -> unit dual quaternions ``(..., 8)`` = ``(q_r, q_d)``.

    ``q_r`` is the rotation (``w >= 0``) and ``q_d = 0.5 (0, t) q_r``.

    Example:
        >>> dual_quaternion_from_rigid(torch.eye(4))
        tensor([1., 0., 0., 0., 0., 0., 0., 0.])
    """
    T = _check_mat("dual_quaternion_from_rigid", "transform", transform, 4)
    qr = matrix_to_quaternion(T[..., :3, :3])
    t = T[..., :3, 3]
    qt = torch.cat([torch.zeros_like(t[..., :1]), t], -1)
    return torch.cat([qr, 0.5 * quaternion_multiply(qt, qr)], -1)


@numpy_compatible
def dual_quaternion_to_rigid(dq):
    """Unit dual quaternions ``(..., 8)`` -> rigid transforms ``(..., 4, 4)``.

    The real part is normalised (and the dual part scaled with it); ``t = vec(2 q_d q_r^*)``.

    Example:
        >>> dual_quaternion_to_rigid(torch.tensor([1.0, 0, 0, 0, 0, 0.5, 0, 0]))[:3, 3]
        tensor([1., 0., 0.])
    """
    dq = _check_vec("dual_quaternion_to_rigid", "dq", dq, 8)
    n = dq[..., :4].norm(dim=-1, keepdim=True).clamp_min(1e-12)
    qr, qd = dq[..., :4] / n, dq[..., 4:] / n
    t = 2 * quaternion_multiply(qd, quaternion_conjugate(qr))[..., 1:]
    return rigid_from_rotation_translation(quaternion_to_matrix(qr), t)


@numpy_compatible
def dual_quaternion_multiply(dq1, dq2):
    """Product of dual quaternions ``(..., 8)``: ``(r1 r2, r1 d2 + d1 r2)`` (applies ``dq2`` first).

    Example:
        >>> a = torch.tensor([1.0, 0, 0, 0, 0, 0.5, 0, 0])
        >>> dual_quaternion_multiply(a, a)  # translate by x twice
        tensor([1., 0., 0., 0., 0., 1., 0., 0.])
    """
    dq1 = _check_vec("dual_quaternion_multiply", "dq1", dq1, 8)
    dq2 = _check_vec("dual_quaternion_multiply", "dq2", dq2, 8)
    r1, d1 = dq1[..., :4], dq1[..., 4:]
    r2, d2 = dq2[..., :4], dq2[..., 4:]
    return torch.cat([quaternion_multiply(r1, r2),
                      quaternion_multiply(r1, d2) + quaternion_multiply(d1, r2)], -1)


@numpy_compatible
def dual_quaternion_transform_points(dq, points):
    """Apply unit dual quaternions ``(..., 8)`` to points ``(..., 3)`` (dims broadcast).

    Example:
        >>> dual_quaternion_transform_points(torch.tensor([1.0, 0, 0, 0, 0, 0.5, 0, 0]), torch.zeros(3))
        tensor([1., 0., 0.])
    """
    dq = _check_vec("dual_quaternion_transform_points", "dq", dq, 8)
    p = _check_vec("dual_quaternion_transform_points", "points", points, 3)
    n = dq[..., :4].norm(dim=-1, keepdim=True).clamp_min(1e-12)
    qr, qd = dq[..., :4] / n, dq[..., 4:] / n
    t = 2 * quaternion_multiply(qd, quaternion_conjugate(qr))[..., 1:]
    return quaternion_rotate_points(qr, p) + t
