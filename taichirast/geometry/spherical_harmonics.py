"""Real spherical harmonics of any band, Lambertian irradiance (Ramamoorthi & Hanrahan 2001) and projection.

Convention (the same as the renderer's 9-coefficient SH lighting, :func:`taichirast.shade`): real
SH without the Condon-Shortley phase, coefficient ``k = l (l + 1) + m`` for band ``l`` and
``m = -l..l``, so bands 0-2 are ``(L00, L1-1, L10, L11, L2-2, L2-1, L20, L21, L22)`` with
``Y1-1 = K1 y, Y10 = K1 z, Y11 = K1 x``. In general, with ``z = cos(theta)`` and
``x + i y = sin(theta) e^{i phi}``::

    Y_l0  = K_l0 P_l(z)
    Y_lm  = sqrt(2) K_lm Re((x + i y)^m) d^m P_l / dz^m(z)     (m > 0)
    Y_l-m = sqrt(2) K_lm Im((x + i y)^m) d^m P_l / dz^m(z)
    K_lm  = sqrt((2l + 1) / (4 pi) (l - m)! / (l + m)!)

evaluated with polynomial recurrences in (x, y, z) (no atan2: smooth everywhere, poles included).
The functions are torch-differentiable and accept NumPy arrays (NumPy out).

For the rendering side: a Lambertian surface's irradiance keeps band ``l`` scaled by ``A_l``
(``A_0 = pi``, ``A_1 = 2 pi / 3``, ``A_l = 0`` for odd ``l > 1``, and for even ``l``
``A_l = 2 pi (-1)^(l/2 - 1) / ((l + 2)(l - 1)) * l! / (2^l ((l/2)!)^2)``; ``A_4 = -pi / 24``,
and ``|A_l|`` falls like ``l^(-5/2)``). Bands 0-2 approximate the irradiance of natural
environments to about 1% on average (Ramamoorthi & Hanrahan), which is why the renderer's
kernels use those 9 coefficients; :func:`sh_irradiance` evaluates any band count.
"""
from __future__ import annotations

import math

import torch

from ._numpy import numpy_compatible

__all__ = ["sh_index", "sh_count", "sh_basis", "lambertian_sh_factors", "sh_irradiance", "sh_project"]


def sh_index(l: int, m: int) -> int:
    """Flat coefficient index of band ``l``, order ``m`` (``-l <= m <= l``): ``l (l + 1) + m``."""
    if l < 0 or abs(m) > l:
        raise ValueError(f"sh_index: need l >= 0 and |m| <= l, got l={l}, m={m}")
    return l * (l + 1) + m


def sh_count(max_band: int) -> int:
    """Number of coefficients of bands ``0..max_band``: ``(max_band + 1)^2``."""
    if max_band < 0:
        raise ValueError(f"sh_count: max_band must be >= 0, got {max_band}")
    return (max_band + 1) ** 2


def _check_band(fn, max_band):
    if isinstance(max_band, bool) or not isinstance(max_band, int) or max_band < 0:
        raise ValueError(f"{fn}: max_band must be an int >= 0, got {max_band!r}")


def _directions(fn, d):
    if not torch.is_tensor(d) or not d.is_floating_point() or d.dim() < 1 or d.shape[-1] != 3:
        got = tuple(d.shape) if torch.is_tensor(d) else type(d).__name__
        raise ValueError(f"{fn}: directions must be a float tensor of shape (..., 3), got {got}")
    if not bool(torch.isfinite(d.detach()).all()):
        raise ValueError(f"{fn}: directions contain NaN or infinite values")
    n2 = (d * d).sum(-1, keepdim=True)
    return d * torch.rsqrt(n2.clamp(min=1e-30))


@numpy_compatible
def sh_basis(directions, max_band: int):
    """Real SH of bands ``0..max_band`` at ``directions (..., 3)``: ``(..., (max_band + 1)^2)``,
    differentiable w.r.t. the directions. Directions are normalised inside (a zero vector stays
    zero and gives the polynomials' values at the origin, never NaN)."""
    _check_band("sh_basis", max_band)
    d = _directions("sh_basis", directions)
    x, y, z = d[..., 0], d[..., 1], d[..., 2]
    L = max_band
    out = [None] * sh_count(L)
    # Re / Im of (x + i y)^m
    re, im = [torch.ones_like(x)], [torch.zeros_like(x)]
    for m in range(1, L + 1):
        re.append(re[-1] * x - im[-1] * y)
        im.append(re[-2] * y + im[-1] * x)
    for m in range(0, L + 1):
        # Q_l^m = d^m P_l / dz^m by the associated Legendre recurrence without sin^m and CS phase
        q_prev = None
        q = torch.full_like(z, float(math.prod(range(1, 2 * m, 2)) if m > 0 else 1.0))  # (2m - 1)!!
        for l in range(m, L + 1):
            if l == m + 1:
                q_prev, q = q, (2 * m + 1) * z * q
            elif l > m + 1:
                q_prev, q = q, ((2 * l - 1) * z * q - (l + m - 1) * q_prev) / (l - m)
            k = math.sqrt((2 * l + 1) / (4 * math.pi) * math.factorial(l - m) / math.factorial(l + m))
            if m == 0:
                out[sh_index(l, 0)] = k * q
            else:
                out[sh_index(l, m)] = math.sqrt(2.0) * k * re[m] * q
                out[sh_index(l, -m)] = math.sqrt(2.0) * k * im[m] * q
    return torch.stack(out, -1)


def lambertian_sh_factors(max_band: int, dtype=torch.float64, device=None):
    """``A_l`` of the Lambertian (clamped cosine) kernel per coefficient: ``((max_band + 1)^2,)``
    (Ramamoorthi & Hanrahan 2001, eq. 8; each band's factor repeated over its ``2 l + 1`` orders)."""
    _check_band("lambertian_sh_factors", max_band)
    a = []
    for l in range(max_band + 1):
        if l == 0:
            v = math.pi
        elif l == 1:
            v = 2.0 * math.pi / 3.0
        elif l % 2:
            v = 0.0
        else:
            h = l // 2
            v = 2.0 * math.pi * (-1) ** (h - 1) / ((l + 2) * (l - 1)) * math.factorial(l) / (
                2 ** l * math.factorial(h) ** 2)
        a += [v] * (2 * l + 1)
    return torch.tensor(a, dtype=dtype, device=device)


@numpy_compatible
def sh_irradiance(coeffs, normals):
    """Irradiance ``E(n) = sum_lm A_l L_lm Y_lm(n)`` of an environment with radiance coefficients
    ``coeffs (K, C)`` (``K = (L + 1)^2``, any band count; or batched ``(B, K, C)`` with
    ``normals (B, ..., 3)``) at unit ``normals (..., 3)``: ``(..., C)``. A white Lambertian
    surface's radiance is ``E / pi`` (what :func:`taichirast.shade` adds for bands 0-2).
    Differentiable w.r.t. both."""
    if not torch.is_tensor(coeffs) or not coeffs.is_floating_point() or coeffs.dim() not in (2, 3):
        got = tuple(coeffs.shape) if torch.is_tensor(coeffs) else type(coeffs).__name__
        raise ValueError(f"sh_irradiance: coeffs must be a float tensor (K, C) or (B, K, C), got {got}")
    K = coeffs.shape[-2]
    L = int(round(math.sqrt(K))) - 1
    if K == 0 or (L + 1) ** 2 != K:
        raise ValueError(f"sh_irradiance: the number of coefficients must be a square (L + 1)^2, got {K}")
    Y = sh_basis(normals, L) * lambertian_sh_factors(L, coeffs.dtype, coeffs.device)
    if coeffs.dim() == 2:
        return Y @ coeffs
    if normals.dim() < 2 or normals.shape[0] != coeffs.shape[0]:
        raise ValueError(f"sh_irradiance: batched coeffs {tuple(coeffs.shape)} need normals (B, ..., 3) with the "
                         f"same B, got {tuple(normals.shape)}")
    Yf = Y.reshape(Y.shape[0], -1, K)
    return (Yf @ coeffs).reshape(*Y.shape[:-1], coeffs.shape[-1])


@numpy_compatible
def sh_project(values, directions, max_band: int, weights=None):
    """SH coefficients ``((max_band + 1)^2, C)`` of a function sampled as ``values (N, C)`` at
    ``directions (N, 3)``: ``sum_i w_i f_i Y(d_i)`` with quadrature weights ``weights (N,)``
    (default ``4 pi / N``: uniform samples over the sphere). Differentiable."""
    _check_band("sh_project", max_band)
    if not torch.is_tensor(values) or values.dim() != 2:
        got = tuple(values.shape) if torch.is_tensor(values) else type(values).__name__
        raise ValueError(f"sh_project: values must be a tensor (N, C), got {got}")
    Y = sh_basis(directions, max_band)
    if Y.dim() != 2 or Y.shape[0] != values.shape[0]:
        raise ValueError(f"sh_project: directions must have shape ({values.shape[0]}, 3), got {tuple(directions.shape)}")
    if weights is None:
        w = torch.full((values.shape[0],), 4.0 * math.pi / max(values.shape[0], 1), dtype=Y.dtype, device=Y.device)
    else:
        w = weights.to(Y.dtype)
        if tuple(w.shape) != (values.shape[0],):
            raise ValueError(f"sh_project: weights must have shape ({values.shape[0]},), got {tuple(w.shape)}")
    return (Y * w[:, None]).T @ values.to(Y.dtype)
