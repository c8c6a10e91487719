"""Camera models: pinhole / orthographic projection, lens distortion, convention conversions.

Pure torch, batch-first ``(..., k)``, differentiable in every float input, float32 and float64;
every public function also takes NumPy arrays (then returns NumPy arrays, forward only).
Mirrors TensorFlow Graphics ``rendering.camera`` (``perspective``, ``orthographic``,
``quadratic_radial_distortion``) with this package's conventions (DESIGN.md §2):

- **OpenCV camera axes**: a camera-space point ``(X, Y, Z)`` has x right, y down and the camera looks
  down ``+Z`` (``Z > 0`` in front). World-to-camera is ``X_cam = R @ X_world + t`` (column vectors).
- **Pixels**: ``(x, y)`` with x to the right and y down, pixel centres at half-integers (the centre
  of the top-left pixel is ``(0.5, 0.5)``, the image centre ``(W / 2, H / 2)``).
- **Intrinsics** in pixels: ``focal = (fx, fy)``, ``principal = (cx, cy)``, optional ``skew`` ``s``;
  the matrix is ``K = [[fx, s, cx], [0, fy, cy], [0, 0, 1]]``, so
  ``x = fx X/Z + s Y/Z + cx`` and ``y = fy Y/Z + cy``.
- **Normalized coordinates** (used by the distortion models) are ``(X/Z, Y/Z)`` before ``K``.
- **Orthographic**: ``x = sx X + cx``, ``y = sy Y + cy`` with ``scale = (sx, sy)`` in pixels per
  world unit.

Other conventions (conversions below):

- **OpenGL** camera: x right, y up, the camera looks down ``-Z``. Its camera axes are OpenCV's with
  y and z flipped: ``X_gl = F X_cv`` with ``F = diag(1, -1, -1)``, hence ``R_gl = F R_cv``,
  ``t_gl = F t_cv`` (and the same map back, ``F`` being its own inverse).
- **PyTorch3D** camera: +X left, +Y up, +Z into the scene, and *row vectors*:
  ``X_cam = X_world @ R + T``. Its camera axes are OpenCV's with x and y flipped,
  ``X_p3d = G X_cv`` with ``G = diag(-1, -1, 1)``. Writing ``X_p3d = G R_cv X_w + G t_cv`` as a row
  vector gives ``X_p3d^T = X_w^T (G R_cv)^T + (G t_cv)^T``, so ``R_p3d = R_cv^T G`` and
  ``T_p3d = G t_cv``; back: ``R_cv = G R_p3d^T``, ``t_cv = G T_p3d``.
- **PyTorch3D NDC**: for an ``(H, W)`` image with ``s = min(H, W)``, the shorter side spans
  ``[-1, 1]`` (the longer one ``[-L/s, L/s]``), +X left and +Y up:
  ``x_ndc = (W/2 - x_px) * 2/s``, ``y_ndc = (H/2 - y_px) * 2/s``. Pixel intrinsics map to NDC ones
  as ``f_ndc = f_px * 2/s`` and ``p_ndc = (size/2 - c_px) * 2/s`` (the same formula per axis).

Iterative inverses (``quadratic_undistortion_factor``, ``quadratic_undistort``,
``brown_conrady_undistort``) run their iterations without autograd and then take one last
differentiable Newton step from the converged value, which yields the exact implicit-function
gradient (no back-propagation through the iterations).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ._numpy import numpy_compatible
from .transforms import _as_float, _check_mat, _check_vec

__all__ = [
    "perspective_project",
    "perspective_unproject",
    "perspective_ray",
    "orthographic_project",
    "orthographic_unproject",
    "orthographic_ray",
    "fov_to_focal",
    "focal_to_fov",
    "intrinsics_matrix",
    "matrix_to_intrinsics",
    "quadratic_distortion_factor",
    "quadratic_undistortion_factor",
    "quadratic_distort",
    "quadratic_undistort",
    "brown_conrady_distort",
    "brown_conrady_undistort",
    "opencv_to_opengl",
    "opengl_to_opencv",
    "opencv_to_pytorch3d",
    "pytorch3d_to_opencv",
    "pixel_to_pytorch3d_ndc",
    "pytorch3d_ndc_to_pixel",
    "intrinsics_to_pytorch3d_ndc",
    "intrinsics_from_pytorch3d_ndc",
]


# ----------------------------------------------------------------------------------------- checks
def _like(fn, name, x, ref):
    """A scalar / array argument as a float tensor (python numbers take ``ref``'s dtype and device)."""
    if not torch.is_tensor(x):
        try:
            x = torch.as_tensor(x, dtype=ref.dtype, device=ref.device)
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(f"{fn}: {name} must be a number or a float tensor, got {x!r}") from None
    x = _as_float(fn, name, x)
    return x


def _scalar_field(fn, name, x, ref, trailing_one=False):
    """A per-point scalar: shape ``(...)`` (or ``(..., 1)`` with ``trailing_one``); returns ``(...)``."""
    x = _like(fn, name, x, ref)
    if trailing_one and x.dim() >= 1:
        if x.shape[-1] != 1:
            raise ValueError(f"{fn}: {name} must be a scalar or have shape (..., 1), got {tuple(x.shape)}")
        x = x[..., 0]
    return x


def _bcast(fn, **named):
    try:
        # NumPy's rule: torch.broadcast_shapes imports sympy on first use (0.5 s of start-up)
        return np.broadcast_shapes(*(tuple(v.shape) for v in named.values()))
    except ValueError:
        shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in named.items())
        raise ValueError(f"{fn}: batch shapes of {', '.join(named)} do not broadcast: {shapes}") from None


def _image_size(fn, image_size):
    try:
        h, w = (int(s) for s in image_size)
        if any(float(s) != int(s) for s in image_size):
            raise TypeError
    except (TypeError, ValueError):
        raise ValueError(f"{fn}: image_size must be a pair (H, W) of ints, got {image_size!r}") from None
    if h <= 0 or w <= 0:
        raise ValueError(f"{fn}: image_size must be positive, got {(h, w)}")
    return h, w


def _intrinsics(fn, ref, focal, principal, skew):
    focal = _check_vec(fn, "focal", focal, 2)
    principal = _check_vec(fn, "principal", principal, 2)
    skew = _scalar_field(fn, "skew", skew, ref, trailing_one=True)
    return focal, principal, skew


# ------------------------------------------------------------------------------------ perspective
@numpy_compatible
def perspective_project(points, focal, principal, skew=0.0):
    """Pinhole projection of camera-space points to pixels (TF Graphics ``perspective.project``).

    ``x = fx X/Z + skew Y/Z + cx``, ``y = fy Y/Z + cy`` (OpenCV axes: x right, y down, +Z forward;
    pixel centres at half-integers). No clipping: points with ``Z <= 0`` give meaningless values.

    Args:
        points: ``(..., 3)`` camera-space points.
        focal: ``(..., 2)`` ``(fx, fy)`` in pixels.
        principal: ``(..., 2)`` ``(cx, cy)`` in pixels.
        skew: scalar or ``(..., 1)``.

    Returns:
        ``(..., 2)`` pixel coordinates (leading dims broadcast).
    """
    fn = "perspective_project"
    points = _check_vec(fn, "points", points, 3)
    focal, principal, skew = _intrinsics(fn, points, focal, principal, skew)
    _bcast(fn, points=points[..., 0], focal=focal[..., 0], principal=principal[..., 0], skew=skew)
    z = points[..., 2]
    xn, yn = points[..., 0] / z, points[..., 1] / z
    x = focal[..., 0] * xn + skew * yn + principal[..., 0]
    y = focal[..., 1] * yn + principal[..., 1]
    return torch.stack(torch.broadcast_tensors(x, y), -1)


def _pixels_to_normalized(fn, pixels, focal, principal, skew):
    yn = (pixels[..., 1] - principal[..., 1]) / focal[..., 1]
    xn = (pixels[..., 0] - principal[..., 0] - skew * yn) / focal[..., 0]
    return xn, yn


@numpy_compatible
def perspective_unproject(pixels, depth, focal, principal, skew=0.0):
    """Inverse of :func:`perspective_project` at a given depth (TF Graphics ``perspective.unproject``).

    Args:
        pixels: ``(..., 2)`` pixel coordinates (x right, y down).
        depth: ``(..., 1)`` camera-space ``Z`` (> 0 in front of the camera).
        focal, principal: ``(..., 2)`` in pixels; skew: scalar or ``(..., 1)``.

    Returns:
        ``(..., 3)`` camera-space points ``(xn Z, yn Z, Z)``.
    """
    fn = "perspective_unproject"
    pixels = _check_vec(fn, "pixels", pixels, 2)
    depth = _check_vec(fn, "depth", depth, 1)
    focal, principal, skew = _intrinsics(fn, pixels, focal, principal, skew)
    _bcast(fn, pixels=pixels[..., 0], depth=depth[..., 0], focal=focal[..., 0], principal=principal[..., 0],
           skew=skew)
    xn, yn = _pixels_to_normalized(fn, pixels, focal, principal, skew)
    d = depth[..., 0]
    return torch.stack(torch.broadcast_tensors(xn * d, yn * d, d), -1)


@numpy_compatible
def perspective_ray(pixels, focal, principal, skew=0.0, normalize=True):
    """Camera-space direction of the ray through ``pixels`` (TF Graphics ``perspective.ray``).

    Args:
        pixels: ``(..., 2)``; focal, principal: ``(..., 2)`` in pixels; skew: scalar or ``(..., 1)``.
        normalize: return unit vectors (default); ``False`` returns ``(xn, yn, 1)`` as TF Graphics does.

    Returns:
        ``(..., 3)`` directions from the camera centre, ``z > 0`` (OpenCV axes). The point at depth
        ``Z`` on the ray is ``ray * Z / ray_z``.
    """
    fn = "perspective_ray"
    pixels = _check_vec(fn, "pixels", pixels, 2)
    focal, principal, skew = _intrinsics(fn, pixels, focal, principal, skew)
    _bcast(fn, pixels=pixels[..., 0], focal=focal[..., 0], principal=principal[..., 0], skew=skew)
    xn, yn = _pixels_to_normalized(fn, pixels, focal, principal, skew)
    xn, yn = torch.broadcast_tensors(xn, yn)
    ray = torch.stack([xn, yn, torch.ones_like(xn)], -1)
    if normalize:
        ray = ray / ray.norm(dim=-1, keepdim=True)  # norm >= 1, always safe
    return ray


# ---------------------------------------------------------------------------------- orthographic
@numpy_compatible
def orthographic_project(points, scale, principal):
    """Orthographic projection: ``x = sx X + cx``, ``y = sy Y + cy`` (``scale`` in pixels per unit).

    Args:
        points: ``(..., 3)`` camera-space points (OpenCV axes); ``Z`` is ignored.
        scale: ``(..., 2)`` ``(sx, sy)`` pixels per world unit; principal: ``(..., 2)`` pixels.

    Returns:
        ``(..., 2)`` pixels.
    """
    fn = "orthographic_project"
    points = _check_vec(fn, "points", points, 3)
    scale = _check_vec(fn, "scale", scale, 2)
    principal = _check_vec(fn, "principal", principal, 2)
    _bcast(fn, points=points[..., 0], scale=scale[..., 0], principal=principal[..., 0])
    return points[..., :2] * scale + principal


@numpy_compatible
def orthographic_unproject(pixels, depth, scale, principal):
    """Inverse of :func:`orthographic_project`: ``((x - cx)/sx, (y - cy)/sy, depth)``.

    Args:
        pixels: ``(..., 2)``; depth: ``(..., 1)``; scale, principal: ``(..., 2)``.

    Returns:
        ``(..., 3)`` camera-space points.
    """
    fn = "orthographic_unproject"
    pixels = _check_vec(fn, "pixels", pixels, 2)
    depth = _check_vec(fn, "depth", depth, 1)
    scale = _check_vec(fn, "scale", scale, 2)
    principal = _check_vec(fn, "principal", principal, 2)
    shape = _bcast(fn, pixels=pixels[..., 0], depth=depth[..., 0], scale=scale[..., 0],
                   principal=principal[..., 0])
    xy = ((pixels - principal) / scale).expand(shape + (2,))
    return torch.cat([xy, depth.expand(shape + (1,))], -1)


@numpy_compatible
def orthographic_ray(pixels):
    """Ray direction of an orthographic camera: ``(0, 0, 1)`` for every pixel, shape ``(..., 3)``."""
    pixels = _check_vec("orthographic_ray", "pixels", pixels, 2)
    out = torch.zeros(pixels.shape[:-1] + (3,), dtype=pixels.dtype, device=pixels.device)
    out[..., 2] = 1
    return out + 0 * pixels.sum(-1, keepdim=True)  # keeps a (zero) graph edge to pixels


# ------------------------------------------------------------------------------ fov / intrinsics
@numpy_compatible
def fov_to_focal(fov_deg, size_px):
    """Focal length in pixels for a field of view: ``f = (size / 2) / tan(fov / 2)``.

    Args:
        fov_deg: field of view in degrees, in ``(0, 180)``, any shape.
        size_px: image extent along the same axis in pixels (> 0), broadcastable.
    """
    fn = "fov_to_focal"
    fov = _as_float(fn, "fov_deg", fov_deg)
    size = _like(fn, "size_px", size_px, fov)
    _bcast(fn, fov_deg=fov, size_px=size)
    if not bool(((fov.detach() > 0) & (fov.detach() < 180)).all()):
        raise ValueError(f"{fn}: fov_deg must be in (0, 180) degrees")
    if not bool((size.detach() > 0).all()):
        raise ValueError(f"{fn}: size_px must be positive")
    return (size / 2) / torch.tan(fov * (math.pi / 360.0))


@numpy_compatible
def focal_to_fov(focal, size_px):
    """Field of view in degrees for a focal length in pixels: ``fov = 2 atan(size / (2 f))``.

    Args:
        focal: focal length in pixels (> 0), any shape; size_px: image extent in pixels (> 0).
    """
    fn = "focal_to_fov"
    focal = _as_float(fn, "focal", focal)
    size = _like(fn, "size_px", size_px, focal)
    _bcast(fn, focal=focal, size_px=size)
    if not bool((focal.detach() > 0).all()):
        raise ValueError(f"{fn}: focal must be positive")
    if not bool((size.detach() > 0).all()):
        raise ValueError(f"{fn}: size_px must be positive")
    return torch.rad2deg(2 * torch.atan(size / (2 * focal)))


@numpy_compatible
def intrinsics_matrix(fx, fy, cx, cy, skew=0.0):
    """``K = [[fx, skew, cx], [0, fy, cy], [0, 0, 1]]`` of shape ``(..., 3, 3)``.

    Each argument is a number or a tensor of shape ``(...)``; they broadcast together.
    """
    fn = "intrinsics_matrix"
    ref = next((v for v in (fx, fy, cx, cy, skew) if torch.is_tensor(v)), None)
    if ref is None:
        ref = torch.zeros((), dtype=torch.get_default_dtype())
    vals = {n: _like(fn, n, v, ref) for n, v in zip(("fx", "fy", "cx", "cy", "skew"), (fx, fy, cx, cy, skew))}
    shape = _bcast(fn, **vals)
    fx, fy, cx, cy, s = (v.expand(shape) for v in vals.values())
    o, one = torch.zeros_like(fx), torch.ones_like(fx)
    return torch.stack([fx, s, cx, o, fy, cy, o, o, one], -1).reshape(shape + (3, 3))


@numpy_compatible
def matrix_to_intrinsics(K):
    """Inverse of :func:`intrinsics_matrix`: ``(fx, fy, cx, cy, skew)``, each ``(...)``.

    ``K`` must be upper triangular with ``K[2, 2] = 1`` (rows beyond the pattern are not checked).
    """
    K = _check_mat("matrix_to_intrinsics", "K", K, 3)
    return K[..., 0, 0], K[..., 1, 1], K[..., 0, 2], K[..., 1, 2], K[..., 0, 1]


# ------------------------------------------------------------------------------------ distortion
def _quadratic_coeff(fn, r2, k):
    r2 = _as_float(fn, "squared_radius", r2)
    k = _like(fn, "distortion_coefficient", k, r2)
    _bcast(fn, squared_radius=r2, distortion_coefficient=k)
    return r2, k


@numpy_compatible
def quadratic_distortion_factor(squared_radius, distortion_coefficient):
    """TF Graphics quadratic radial distortion: ``factor = 1 + k r^2``.

    A normalized point ``p`` (``(X/Z, Y/Z)``) with ``r^2 = |p|^2`` distorts to ``factor * p``.
    The distorted radius ``r (1 + k r^2)`` increases with ``r`` only while ``1 + 3 k r^2 > 0``; for
    barrel distortion (``k < 0``) that is ``r^2 < -1 / (3k)``.

    Args:
        squared_radius: ``(...)`` undistorted ``r^2 >= 0``.
        distortion_coefficient: ``k``, scalar or broadcastable to ``(...)``.

    Returns:
        ``(factor, mask)``: the ``(...)`` factor and a bool mask, ``True`` where the distortion is
        monotonic (invertible), i.e. ``1 + 3 k r^2 > 0``.
    """
    r2, k = _quadratic_coeff("quadratic_distortion_factor", squared_radius, distortion_coefficient)
    factor = 1 + k * r2
    mask = (1 + 3 * k * r2) > 0
    return factor, mask


def _quadratic_newton(c, u):
    # solve f(u) = u + c u^3 - 1 = 0
    return u - (u + c * u ** 3 - 1) / (1 + 3 * c * u ** 2)


@numpy_compatible
def quadratic_undistortion_factor(distorted_squared_radius, distortion_coefficient, num_iterations=20):
    """Inverse of :func:`quadratic_distortion_factor` (TF Graphics ``undistortion_factor``).

    Finds ``u`` with ``r = u r_d`` and ``r (1 + k r^2) = r_d``, i.e. the root of
    ``u + c u^3 = 1`` with ``c = k r_d^2``, by Newton iterations from ``u = 1`` (monotone
    convergence). **Validity range**: a root on the monotonic branch exists iff ``c > -4/27``
    (always for ``k >= 0``); convergence is quadratic except close to ``c = -4/27`` where the root
    becomes double (20 iterations then still give ~1e-6). Outside the range ``mask`` is ``False``
    and the factor is 1. Gradients are implicit (exact at the root), not unrolled.

    Args:
        distorted_squared_radius: ``(...)`` ``r_d^2 >= 0``.
        distortion_coefficient: ``k``, broadcastable.
        num_iterations: Newton iterations (without autograd) before the final differentiable step.

    Returns:
        ``(undistortion, mask)``, each ``(...)``.
    """
    fn = "quadratic_undistortion_factor"
    rd2, k = _quadratic_coeff(fn, distorted_squared_radius, distortion_coefficient)
    if not isinstance(num_iterations, int) or num_iterations < 0:
        raise ValueError(f"{fn}: num_iterations must be a non-negative int, got {num_iterations!r}")
    c = k * rd2
    mask = c > -4.0 / 27.0
    c = torch.where(mask, c, torch.zeros_like(c))
    with torch.no_grad():
        u = torch.ones_like(c)
        cd = c.detach()
        for _ in range(num_iterations):
            u = _quadratic_newton(cd, u)
    return _quadratic_newton(c, u), mask


def _split_xy(fn, name, xy):
    return _check_vec(fn, name, xy, 2)


@numpy_compatible
def quadratic_distort(xy_normalized, distortion_coefficient):
    """Distort normalized points ``(..., 2)``: ``p * (1 + k |p|^2)``. Returns ``(points, mask)``.

    See :func:`quadratic_distortion_factor` for ``mask`` (monotonic region).
    """
    xy = _split_xy("quadratic_distort", "xy_normalized", xy_normalized)
    factor, mask = quadratic_distortion_factor((xy * xy).sum(-1), distortion_coefficient)
    return xy * factor[..., None], mask


@numpy_compatible
def quadratic_undistort(xy_distorted, distortion_coefficient, num_iterations=20):
    """Inverse of :func:`quadratic_distort`; returns ``(points, mask)``.

    Valid where ``k |p_d|^2 > -4/27`` (see :func:`quadratic_undistortion_factor`).
    """
    xy = _split_xy("quadratic_undistort", "xy_distorted", xy_distorted)
    u, mask = quadratic_undistortion_factor((xy * xy).sum(-1), distortion_coefficient, num_iterations)
    return xy * u[..., None], mask


def _bc_coeffs(fn, xy, k1, k2, k3, p1, p2):
    vals = {n: _like(fn, n, v, xy) for n, v in zip(("k1", "k2", "k3", "p1", "p2"), (k1, k2, k3, p1, p2))}
    _bcast(fn, xy_normalized=xy[..., 0], **vals)
    return tuple(vals.values())


def _bc_forward(x, y, k1, k2, k3, p1, p2, jacobian=False):
    r2 = x * x + y * y
    radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    if not jacobian:
        return xd, yd
    g = k1 + r2 * (2 * k2 + 3 * k3 * r2)  # d radial / d r2
    j_xx = radial + 2 * x * x * g + 2 * p1 * y + 6 * p2 * x
    j_xy = 2 * x * y * g + 2 * p1 * x + 2 * p2 * y
    j_yy = radial + 2 * y * y * g + 6 * p1 * y + 2 * p2 * x
    return xd, yd, j_xx, j_xy, j_yy


@numpy_compatible
def brown_conrady_distort(xy_normalized, k1=0.0, k2=0.0, k3=0.0, p1=0.0, p2=0.0):
    """Brown-Conrady (OpenCV ``k1, k2, p1, p2, k3``) distortion of normalized points.

    With ``r^2 = x^2 + y^2`` and ``radial = 1 + k1 r^2 + k2 r^4 + k3 r^6``::

        x_d = x radial + 2 p1 x y + p2 (r^2 + 2 x^2)
        y_d = y radial + p1 (r^2 + 2 y^2) + 2 p2 x y

    Args:
        xy_normalized: ``(..., 2)`` normalized camera coordinates ``(X/Z, Y/Z)`` (OpenCV axes).
        k1, k2, k3: radial coefficients; p1, p2: tangential; each a number or ``(...)``-broadcastable.

    Returns:
        ``(..., 2)`` distorted normalized coordinates (pixels = ``K`` applied to them).
    """
    fn = "brown_conrady_distort"
    xy = _check_vec(fn, "xy_normalized", xy_normalized, 2)
    co = _bc_coeffs(fn, xy, k1, k2, k3, p1, p2)
    xd, yd = _bc_forward(xy[..., 0], xy[..., 1], *co)
    return torch.stack(torch.broadcast_tensors(xd, yd), -1)


def _bc_newton(x, y, xd_t, yd_t, co):
    xd, yd, a, b, d = _bc_forward(x, y, *co, jacobian=True)
    ex, ey = xd - xd_t, yd - yd_t
    det = a * d - b * b
    det = torch.where(det.abs() > 1e-12, det, torch.full_like(det, 1e-12))
    return x - (d * ex - b * ey) / det, y - (a * ey - b * ex) / det


@numpy_compatible
def brown_conrady_undistort(xy_distorted, k1=0.0, k2=0.0, k3=0.0, p1=0.0, p2=0.0, num_iterations=20):
    """Inverse of :func:`brown_conrady_distort` by Newton iterations (2x2 analytic Jacobian).

    Starts from the distorted point and runs ``num_iterations`` Newton steps without autograd,
    then one differentiable step (exact implicit gradients w.r.t. the points and every coefficient).

    **Convergence range**: the answer is the undistorted point on the monotonic part of the lens
    model, i.e. where the Jacobian of the distortion stays positive definite between the distorted
    and the undistorted point. That holds for realistic lenses inside the calibrated field, e.g.
    ``|k1| <= 0.3, |k2| <= 0.1, |k3| <= 0.05, |p1|, |p2| <= 0.01`` with ``|x|, |y| <= 0.5``
    (``r^2 <= 0.5``), where 20 iterations reach machine precision (the tests cover that box). Far
    outside it (strong barrel distortion beyond the fold radius) there is no unique inverse and the
    result is meaningless; check it with :func:`brown_conrady_distort` if in doubt.

    Args:
        xy_distorted: ``(..., 2)`` distorted normalized coordinates.
        k1, k2, k3, p1, p2: as in :func:`brown_conrady_distort`.
        num_iterations: Newton iterations (non-negative int).

    Returns:
        ``(..., 2)`` undistorted normalized coordinates.
    """
    fn = "brown_conrady_undistort"
    xy = _check_vec(fn, "xy_distorted", xy_distorted, 2)
    if not isinstance(num_iterations, int) or num_iterations < 0:
        raise ValueError(f"{fn}: num_iterations must be a non-negative int, got {num_iterations!r}")
    co = _bc_coeffs(fn, xy, k1, k2, k3, p1, p2)
    xd_t, yd_t = xy[..., 0], xy[..., 1]
    with torch.no_grad():
        cod = tuple(c.detach() for c in co)
        x, y = xd_t.detach(), yd_t.detach()
        for _ in range(num_iterations):
            x, y = _bc_newton(x, y, xd_t.detach(), yd_t.detach(), cod)
    x, y = _bc_newton(x, y, xd_t, yd_t, co)
    return torch.stack(torch.broadcast_tensors(x, y), -1)


# ---------------------------------------------------------------------------- convention changes
def _diag_flip(ref, signs):
    return torch.tensor(signs, dtype=ref.dtype, device=ref.device)


def _Rt(fn, R, t):
    R = _check_mat(fn, "R", R, 3)
    t = _check_vec(fn, "t", t, 3)
    _bcast(fn, R=R[..., 0, 0], t=t[..., 0])
    return R, t


@numpy_compatible
def opencv_to_opengl(R, t):
    """OpenCV world-to-camera ``(R, t)`` -> OpenGL ``(R_gl, t_gl)`` (column vectors, ``X = R X_w + t``).

    OpenGL camera axes: x right, y up, looking down ``-Z``; ``R_gl = F R``, ``t_gl = F t`` with
    ``F = diag(1, -1, -1)``. ``R (..., 3, 3)``, ``t (..., 3)``.
    """
    R, t = _Rt("opencv_to_opengl", R, t)
    f = _diag_flip(R, (1.0, -1.0, -1.0))
    return R * f[:, None], t * f


@numpy_compatible
def opengl_to_opencv(R, t):
    """Inverse of :func:`opencv_to_opengl` (the same flip of the camera y and z axes)."""
    R, t = _Rt("opengl_to_opencv", R, t)
    f = _diag_flip(R, (1.0, -1.0, -1.0))
    return R * f[:, None], t * f


@numpy_compatible
def opencv_to_pytorch3d(R, t):
    """OpenCV world-to-camera ``(R, t)`` -> PyTorch3D ``(R_p3d, T_p3d)``.

    PyTorch3D: +X left, +Y up, +Z into the scene, row vectors ``X_cam = X_world @ R_p3d + T_p3d``.
    With ``G = diag(-1, -1, 1)``: ``R_p3d = R^T G`` and ``T_p3d = G t`` (see the module docstring).
    """
    R, t = _Rt("opencv_to_pytorch3d", R, t)
    g = _diag_flip(R, (-1.0, -1.0, 1.0))
    return R.transpose(-1, -2) * g, t * g


@numpy_compatible
def pytorch3d_to_opencv(R, T):
    """Inverse of :func:`opencv_to_pytorch3d`: ``R_cv = G R_p3d^T``, ``t_cv = G T_p3d``."""
    R, T = _Rt("pytorch3d_to_opencv", R, T)
    g = _diag_flip(R, (-1.0, -1.0, 1.0))
    return R.transpose(-1, -2) * g[:, None], T * g


@numpy_compatible
def pixel_to_pytorch3d_ndc(pixels, image_size):
    """Pixels (x right, y down, centres at half-integers) -> PyTorch3D NDC (+X left, +Y up).

    ``x_ndc = (W/2 - x) * 2/s``, ``y_ndc = (H/2 - y) * 2/s`` with ``s = min(H, W)``: the shorter
    side spans ``[-1, 1]``. ``pixels (..., 2)``, ``image_size = (H, W)``.
    """
    fn = "pixel_to_pytorch3d_ndc"
    pixels = _check_vec(fn, "pixels", pixels, 2)
    H, W = _image_size(fn, image_size)
    half = torch.tensor([W / 2.0, H / 2.0], dtype=pixels.dtype, device=pixels.device)
    return (half - pixels) * (2.0 / min(H, W))


@numpy_compatible
def pytorch3d_ndc_to_pixel(ndc, image_size):
    """Inverse of :func:`pixel_to_pytorch3d_ndc`: ``x = W/2 - x_ndc s/2``, ``y = H/2 - y_ndc s/2``."""
    fn = "pytorch3d_ndc_to_pixel"
    ndc = _check_vec(fn, "ndc", ndc, 2)
    H, W = _image_size(fn, image_size)
    half = torch.tensor([W / 2.0, H / 2.0], dtype=ndc.dtype, device=ndc.device)
    return half - ndc * (min(H, W) / 2.0)


@numpy_compatible
def intrinsics_to_pytorch3d_ndc(focal, principal, image_size):
    """Pixel intrinsics -> PyTorch3D NDC ``(focal_length, principal_point)``, each ``(..., 2)``.

    ``f_ndc = f * 2/s``, ``p_ndc = ((W, H)/2 - (cx, cy)) * 2/s``, ``s = min(H, W)``; use them with
    :func:`opencv_to_pytorch3d` extrinsics in ``PerspectiveCameras(in_ndc=True)``.
    """
    fn = "intrinsics_to_pytorch3d_ndc"
    focal = _check_vec(fn, "focal", focal, 2)
    principal = _check_vec(fn, "principal", principal, 2)
    H, W = _image_size(fn, image_size)
    s = 2.0 / min(H, W)
    return focal * s, pixel_to_pytorch3d_ndc(principal, (H, W))


@numpy_compatible
def intrinsics_from_pytorch3d_ndc(focal_ndc, principal_ndc, image_size):
    """Inverse of :func:`intrinsics_to_pytorch3d_ndc`: pixel ``(focal, principal)``, each ``(..., 2)``."""
    fn = "intrinsics_from_pytorch3d_ndc"
    focal_ndc = _check_vec(fn, "focal_ndc", focal_ndc, 2)
    principal_ndc = _check_vec(fn, "principal_ndc", principal_ndc, 2)
    H, W = _image_size(fn, image_size)
    return focal_ndc * (min(H, W) / 2.0), pytorch3d_ndc_to_pixel(principal_ndc, (H, W))
