"""Camera models: projection vs taichirast.project, round trips, rays, distortion, conventions, grads."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import taichirast as tr
import taichirast.geometry.camera_models as C
from taichirast.geometry.transforms import random_rotation_matrices

HYP = settings(max_examples=25, deadline=None)
D = torch.float64


def _cam(seed=0, n=6, dtype=D):
    g = torch.Generator().manual_seed(seed)
    pts = torch.randn(n, 3, generator=g, dtype=dtype)
    pts[:, 2] = pts[:, 2].abs() + 1.0
    focal = torch.rand(n, 2, generator=g, dtype=dtype) * 200 + 50
    principal = torch.rand(n, 2, generator=g, dtype=dtype) * 100
    skew = torch.randn(n, 1, generator=g, dtype=dtype)
    return pts, focal, principal, skew


def _t(x, dtype=D):
    return torch.tensor(x, dtype=dtype)


# --------------------------------------------------------------------------------- perspective
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_project_matches_taichirast_project(dtype):
    pts, focal, principal, _ = _cam(dtype=dtype)
    K = torch.cat([focal[:1], principal[:1]], -1)  # (1, 4) fx, fy, cx, cy
    R = torch.eye(3, dtype=dtype)[None]
    t = torch.zeros(1, 3, dtype=dtype)
    ref = tr.ops.project_points(pts[None], R, t, K)[0]
    out = C.perspective_project(pts, focal[0], principal[0])
    assert out.dtype == dtype and out.shape == (6, 2)
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    assert torch.allclose(out, ref[:, :2], atol=tol, rtol=tol)


def test_project_closed_form_with_skew():
    p = _t([[1.0, 2.0, 4.0]])
    out = C.perspective_project(p, _t([100.0, 120.0]), _t([32.0, 24.0]), skew=_t([5.0]))
    assert torch.allclose(out, _t([[100 * 0.25 + 5 * 0.5 + 32, 120 * 0.5 + 24]]))
    K = C.intrinsics_matrix(_t(100.0), 120.0, 32.0, 24.0, 5.0)
    h = K @ p[0]
    assert torch.allclose(out[0], h[:2] / h[2])


@HYP
@given(x=st.floats(-3, 3), y=st.floats(-3, 3), z=st.floats(0.1, 10), fx=st.floats(10, 1000),
       fy=st.floats(10, 1000), cx=st.floats(-100, 600), cy=st.floats(-100, 600), s=st.floats(-5, 5))
def test_project_unproject_round_trip(x, y, z, fx, fy, cx, cy, s):
    p = _t([x, y, z])
    f, c, sk = _t([fx, fy]), _t([cx, cy]), _t([s])
    px = C.perspective_project(p, f, c, sk)
    back = C.perspective_unproject(px, p[2:], f, c, sk)
    assert torch.allclose(back, p, atol=1e-9, rtol=1e-9)
    # the ray through the projected pixel passes through the point
    ray = C.perspective_ray(px, f, c, sk)
    assert abs(float(ray.norm()) - 1) < 1e-12 and ray[2] > 0
    assert torch.allclose(ray, p / p.norm(), atol=1e-9)
    raw = C.perspective_ray(px, f, c, sk, normalize=False)
    assert torch.allclose(raw * z, p, atol=1e-8)


def test_batched_broadcasting():
    pts, focal, principal, skew = _cam(n=4)
    out = C.perspective_project(pts[:, None].expand(4, 3, 3), focal[:, None], principal[:, None], skew[:, None])
    assert out.shape == (4, 3, 2)
    single = C.perspective_project(pts[1], focal[1], principal[1], skew[1])
    assert torch.allclose(out[1, 2], single)


@HYP
@given(x=st.floats(-3, 3), y=st.floats(-3, 3), z=st.floats(-5, 5), sx=st.floats(0.5, 100),
       sy=st.floats(0.5, 100), cx=st.floats(-50, 50), cy=st.floats(-50, 50))
def test_orthographic_round_trip(x, y, z, sx, sy, cx, cy):
    p = _t([x, y, z])
    s, c = _t([sx, sy]), _t([cx, cy])
    px = C.orthographic_project(p, s, c)
    assert torch.allclose(px, _t([sx * x + cx, sy * y + cy]))
    assert torch.allclose(C.orthographic_unproject(px, p[2:], s, c), p, atol=1e-9)
    assert torch.equal(C.orthographic_ray(px), _t([0.0, 0.0, 1.0]))


def test_orthographic_matches_taichirast_project():
    pts, scale, principal, _ = _cam()
    K = torch.cat([scale[:1], principal[:1]], -1)
    ref = tr.ops.project_points(pts[None], torch.eye(3, dtype=D)[None], torch.zeros(1, 3, dtype=D), K,
                                orthographic=True)[0]
    assert torch.allclose(C.orthographic_project(pts, scale[0], principal[0]), ref[:, :2], atol=1e-10)


@HYP
@given(fov=st.floats(1, 179), size=st.integers(1, 4096))
def test_fov_focal_round_trip(fov, size):
    f = C.fov_to_focal(_t(fov), size)
    assert math.isclose(float(C.focal_to_fov(f, size)), fov, rel_tol=1e-10)


def test_fov_matches_camera():
    cam = tr.PerspectiveCamera.from_fov(torch.eye(3), torch.zeros(3), fov_y=50.0, image_size=(40, 30))
    assert torch.allclose(C.fov_to_focal(torch.tensor(50.0), 40), cam.fy[0])
    assert torch.allclose(C.focal_to_fov(cam.fy, 40), cam.fov_y())


def test_intrinsics_matrix_round_trip():
    fx = torch.rand(2, 3, dtype=D) + 1
    K = C.intrinsics_matrix(fx, 2.0, 3.0, 4.0, skew=torch.zeros(3, dtype=D))
    assert K.shape == (2, 3, 3, 3) and K.dtype == D
    fx2, fy2, cx2, cy2, s2 = C.matrix_to_intrinsics(K)
    assert torch.equal(fx2, fx) and (fy2 == 2).all() and (cx2 == 3).all() and (cy2 == 4).all() and (s2 == 0).all()
    assert torch.equal(K[..., 2, :], _t([0.0, 0.0, 1.0]).expand(2, 3, 3))


# ---------------------------------------------------------------------------------- distortion
@HYP
@given(x=st.floats(-1, 1), y=st.floats(-1, 1), k=st.floats(-0.3, 1.0))
def test_quadratic_round_trip(x, y, k):
    p = _t([x, y])
    d, mask = C.quadratic_distort(p, k)
    fac, _ = C.quadratic_distortion_factor((p * p).sum(), k)
    assert torch.allclose(d, p * fac)
    assert bool(mask) == (1 + 3 * k * float((p * p).sum()) > 0)
    if 1 + 3 * k * float((p * p).sum()) > 1e-3:  # away from the fold, where Newton is quadratic
        u, umask = C.quadratic_undistort(d, k)
        assert bool(umask)
        assert torch.allclose(u, p, atol=1e-9)


def test_quadratic_masks():
    # k < 0: monotonic while r^2 < -1/(3k); distorted radii valid while k r_d^2 > -4/27
    _, m = C.quadratic_distortion_factor(_t([0.0, 0.5, 1.0, 2.0]), -0.25)
    assert m.tolist() == [True, True, True, False]
    u, m = C.quadratic_undistortion_factor(_t([0.0, 0.5, 10.0]), _t(-0.1))
    assert m.tolist() == [True, True, False]
    assert float(u[0]) == 1.0 and float(u[2]) == 1.0
    r = 0.5 ** 0.5 * float(u[1])
    assert math.isclose(r * (1 - 0.1 * r * r), 0.5 ** 0.5, rel_tol=1e-12)


_small = st.floats(-0.5, 0.5)


@HYP
@given(x=_small, y=_small, k1=st.floats(-0.3, 0.3), k2=st.floats(-0.1, 0.1), k3=st.floats(-0.05, 0.05),
       p1=st.floats(-0.01, 0.01), p2=st.floats(-0.01, 0.01))
def test_brown_conrady_round_trip(x, y, k1, k2, k3, p1, p2):
    p = _t([x, y])
    d = C.brown_conrady_distort(p, k1, k2, k3, p1, p2)
    u = C.brown_conrady_undistort(d, k1, k2, k3, p1, p2)
    assert torch.allclose(u, p, atol=1e-10)


def test_brown_conrady_closed_form():
    x, y, k1, k2, k3, p1, p2 = 0.3, -0.2, 0.1, -0.05, 0.01, 0.002, -0.003
    r2 = x * x + y * y
    rad = 1 + k1 * r2 + k2 * r2 ** 2 + k3 * r2 ** 3
    want = [x * rad + 2 * p1 * x * y + p2 * (r2 + 2 * x * x), y * rad + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y]
    out = C.brown_conrady_distort(_t([x, y]), k1, k2, k3, p1, p2)
    assert torch.allclose(out, _t(want), atol=1e-15)


def test_brown_conrady_batched_coefficients():
    g = torch.Generator().manual_seed(3)
    p = (torch.rand(5, 2, generator=g, dtype=D) - 0.5)
    k1 = torch.linspace(-0.2, 0.2, 5, dtype=D)
    d = C.brown_conrady_distort(p, k1, 0.01)
    for i in range(5):
        assert torch.allclose(d[i], C.brown_conrady_distort(p[i], float(k1[i]), 0.01))
    assert torch.allclose(C.brown_conrady_undistort(d, k1, 0.01), p, atol=1e-12)


# -------------------------------------------------------------------------------- conventions
def _rt(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    R = random_rotation_matrices(n, generator=g, dtype=D)
    t = torch.randn(n, 3, generator=g, dtype=D)
    X = torch.randn(n, 3, generator=g, dtype=D)
    return R, t, X


def test_opengl_conversion():
    R, t, X = _rt()
    cv = torch.einsum("nij,nj->ni", R, X) + t
    Rg, tg = C.opencv_to_opengl(R, t)
    gl = torch.einsum("nij,nj->ni", Rg, X) + tg
    assert torch.allclose(gl, cv * _t([1.0, -1.0, -1.0]))
    assert torch.allclose(torch.linalg.det(Rg), torch.ones(4, dtype=D))
    R2, t2 = C.opengl_to_opencv(Rg, tg)
    assert torch.allclose(R2, R) and torch.allclose(t2, t)


def test_pytorch3d_conversion():
    R, t, X = _rt()
    cv = torch.einsum("nij,nj->ni", R, X) + t
    Rp, Tp = C.opencv_to_pytorch3d(R, t)
    p3d = torch.einsum("ni,nij->nj", X, Rp) + Tp  # row vectors: X @ R + T
    assert torch.allclose(p3d, cv * _t([-1.0, -1.0, 1.0]))
    assert torch.allclose(torch.linalg.det(Rp), torch.ones(4, dtype=D))
    R2, t2 = C.pytorch3d_to_opencv(Rp, Tp)
    assert torch.allclose(R2, R) and torch.allclose(t2, t)


@pytest.mark.parametrize("size", [(40, 30), (30, 40), (32, 32)])
def test_pytorch3d_ndc(size):
    H, W = size
    s = min(H, W)
    corners = _t([[0.0, 0.0], [W, H], [W / 2, H / 2]])
    ndc = C.pixel_to_pytorch3d_ndc(corners, size)
    assert torch.allclose(ndc, _t([[W / s, H / s], [-W / s, -H / s], [0.0, 0.0]]))
    assert min(float(ndc[0].max()), 1.0) == 1.0  # the shorter side reaches exactly +-1
    assert torch.allclose(C.pytorch3d_ndc_to_pixel(ndc, size), corners)
    # full chain: PyTorch3D extrinsics + NDC intrinsics reproduce OpenCV pixels
    R, t, X = _rt(n=3, seed=1)
    X = X + torch.einsum("nji,nj->ni", R, _t([0.0, 0.0, 6.0]) - t)  # put points in front of the camera
    focal, principal = _t([35.0, 38.0]), _t([W / 2 + 1.5, H / 2 - 2.0])
    px = C.perspective_project(torch.einsum("nij,nj->ni", R, X) + t, focal, principal)
    Rp, Tp = C.opencv_to_pytorch3d(R, t)
    Xp = torch.einsum("ni,nij->nj", X, Rp) + Tp
    fn, pn = C.intrinsics_to_pytorch3d_ndc(focal, principal, size)
    ndc = fn * Xp[:, :2] / Xp[:, 2:] + pn  # PyTorch3D's NDC projection
    assert torch.allclose(C.pytorch3d_ndc_to_pixel(ndc, size), px, atol=1e-9)
    f2, p2 = C.intrinsics_from_pytorch3d_ndc(fn, pn, size)
    assert torch.allclose(f2, focal) and torch.allclose(p2, principal)


# ------------------------------------------------------------------------------------ gradients
def _req(*xs):
    return [x.detach().clone().requires_grad_() for x in xs]


def test_gradcheck_project_unproject_ray():
    pts, focal, principal, skew = _cam(n=3)
    args = _req(pts, focal, principal, skew)
    assert torch.autograd.gradcheck(C.perspective_project, args)
    px = C.perspective_project(pts, focal, principal, skew)
    args = _req(px, pts[:, 2:], focal, principal, skew)
    assert torch.autograd.gradcheck(C.perspective_unproject, args)
    assert torch.autograd.gradcheck(C.perspective_ray, _req(px, focal, principal, skew))
    assert torch.autograd.gradcheck(C.orthographic_project, _req(pts, focal, principal))
    assert torch.autograd.gradcheck(C.orthographic_unproject, _req(px, pts[:, 2:], focal, principal))
    assert torch.autograd.gradcheck(C.fov_to_focal, _req(_t([30.0, 60.0]), _t([64.0, 48.0])))
    assert torch.autograd.gradcheck(C.focal_to_fov, _req(_t([30.0, 60.0]), _t([64.0, 48.0])))


def test_gradcheck_distortions():
    g = torch.Generator().manual_seed(1)
    p = (torch.rand(4, 2, generator=g, dtype=D) - 0.5) * 0.8
    k = _t([0.2, -0.3, 0.5, -0.1])
    qd = lambda p, k: C.quadratic_distort(p, k)[0]  # noqa: E731
    qu = lambda p, k: C.quadratic_undistort(p, k)[0]  # noqa: E731
    qf = lambda r, k: C.quadratic_undistortion_factor(r, k)[0]  # noqa: E731
    assert torch.autograd.gradcheck(qd, _req(p, k))
    assert torch.autograd.gradcheck(qu, _req(p, k))
    assert torch.autograd.gradcheck(qf, _req((p * p).sum(-1), k))
    co = _req(_t([0.1, -0.2, 0.05, 0.0]), _t(0.03), _t(-0.01), _t(0.004), _t(-0.002))
    assert torch.autograd.gradcheck(C.brown_conrady_distort, _req(p) + co)
    assert torch.autograd.gradcheck(C.brown_conrady_undistort, _req(p) + co)


def test_undistort_gradient_is_inverse_jacobian():
    p = _t([[0.3, -0.2]]).requires_grad_()
    d = C.brown_conrady_distort(p, 0.1, -0.05, 0.0, 0.003, 0.001)
    J = torch.autograd.functional.jacobian(lambda q: C.brown_conrady_distort(q, 0.1, -0.05, 0.0, 0.003, 0.001),
                                           p[0].detach())
    Ji = torch.autograd.functional.jacobian(lambda q: C.brown_conrady_undistort(q, 0.1, -0.05, 0.0, 0.003, 0.001),
                                            d[0].detach())
    assert torch.allclose(J @ Ji, torch.eye(2, dtype=D), atol=1e-12)


# -------------------------------------------------------------------------------- numpy / errors
def test_numpy_in_numpy_out():
    pts, focal, principal, skew = (x.numpy() for x in _cam())
    px = C.perspective_project(pts, focal, principal, skew)
    assert isinstance(px, np.ndarray) and px.dtype == np.float64
    back = C.perspective_unproject(px, pts[:, 2:], focal, principal, skew)
    assert isinstance(back, np.ndarray) and np.allclose(back, pts)
    ray = C.perspective_ray(px.astype(np.float32), focal.astype(np.float32), principal.astype(np.float32))
    assert isinstance(ray, np.ndarray) and ray.dtype == np.float32
    d, m = C.quadratic_distort(pts[:, :2] * 0.1, -0.2)
    assert isinstance(d, np.ndarray) and isinstance(m, np.ndarray)
    u = C.brown_conrady_undistort(C.brown_conrady_distort(pts[:, :2] * 0.1, 0.1), 0.1)
    assert isinstance(u, np.ndarray) and np.allclose(u, pts[:, :2] * 0.1)
    R, t = C.opencv_to_pytorch3d(np.eye(3), np.zeros(3))
    assert isinstance(R, np.ndarray) and isinstance(t, np.ndarray)
    K = C.intrinsics_matrix(np.float64(1.0), 2.0, 3.0, 4.0)
    assert isinstance(C.fov_to_focal(np.array([60.0]), 100), np.ndarray)
    assert isinstance(C.pixel_to_pytorch3d_ndc(np.zeros((3, 2)), (4, 5)), np.ndarray)
    assert K.shape == (3, 3)


@pytest.mark.parametrize("call, name", [
    (lambda: C.perspective_project(torch.zeros(4, 2), torch.ones(2), torch.zeros(2)), "points"),
    (lambda: C.perspective_project(torch.ones(4, 3), torch.ones(3), torch.zeros(2)), "focal"),
    (lambda: C.perspective_project(torch.ones(4, 3), torch.ones(2), torch.zeros(1, 2, 2)), "principal"),
    (lambda: C.perspective_project(torch.ones(4, 3), torch.ones(5, 2), torch.zeros(2)), "focal"),
    (lambda: C.perspective_project(torch.ones(4, 3), torch.ones(2), torch.zeros(2), torch.ones(4, 2)), "skew"),
    (lambda: C.perspective_unproject(torch.ones(4, 2), torch.ones(4), torch.ones(2), torch.zeros(2)), "depth"),
    (lambda: C.perspective_ray(torch.ones(4, 3), torch.ones(2), torch.zeros(2)), "pixels"),
    (lambda: C.orthographic_project(torch.ones(4, 3), torch.ones(4), torch.zeros(2)), "scale"),
    (lambda: C.fov_to_focal(torch.tensor(180.0), 10), "fov_deg"),
    (lambda: C.fov_to_focal(torch.tensor(60.0), -1), "size_px"),
    (lambda: C.focal_to_fov(torch.tensor(0.0), 10), "focal"),
    (lambda: C.intrinsics_matrix(torch.ones(3), torch.ones(2), 0.0, 0.0), "fy"),
    (lambda: C.matrix_to_intrinsics(torch.ones(3, 4)), "K"),
    (lambda: C.quadratic_distort(torch.ones(3), 0.1), "xy_normalized"),
    (lambda: C.quadratic_undistort(torch.ones(2), 0.1, num_iterations=-1), "num_iterations"),
    (lambda: C.brown_conrady_distort(torch.ones(3, 2), k1=torch.ones(2)), "k1"),
    (lambda: C.brown_conrady_undistort(torch.ones(3, 3)), "xy_distorted"),
    (lambda: C.opencv_to_opengl(torch.eye(4), torch.zeros(3)), "R"),
    (lambda: C.opencv_to_pytorch3d(torch.eye(3), torch.zeros(2)), "t"),
    (lambda: C.pixel_to_pytorch3d_ndc(torch.zeros(2), (0, 4)), "image_size"),
    (lambda: C.pytorch3d_ndc_to_pixel(torch.zeros(2), "ab"), "image_size"),
])
def test_bad_input_raises_value_error(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_exported():
    for n in C.__all__:
        assert callable(getattr(C, n))
