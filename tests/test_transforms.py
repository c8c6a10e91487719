"""Rotation / rigid-transform conversions against SciPy, gradients, properties, NumPy I/O, errors."""
import doctest
import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

import taichirast.geometry.transforms as T

ORDERS = T.EULER_ORDERS
HYP = settings(max_examples=25, deadline=None)


def _rotations():
    """~2000 random rotations plus angles at and near 0 and pi (random axes)."""
    rng = np.random.default_rng(0)
    rand = Rotation.random(2000, random_state=1)
    axes = rng.normal(size=(16, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    angles = np.array([0.0, 1e-12, 1e-9, 1e-6, 1e-4, 1e-2, 0.5,
                       math.pi - 1e-2, math.pi - 1e-4, math.pi - 1e-6, math.pi - 1e-9, math.pi,
                       1.0, 2.0, 3.0, 1e-3])
    special = Rotation.from_rotvec(axes * angles[:, None])
    return Rotation.concatenate([rand, special])


ROTS = _rotations()
MATS = torch.from_numpy(ROTS.as_matrix())
QUATS = torch.from_numpy(ROTS.as_quat()[:, [3, 0, 1, 2]].copy())  # scipy is (x, y, z, w)
ROTVECS = torch.from_numpy(ROTS.as_rotvec())


def _same_quat(a, b, atol):
    s = torch.sign((a * b).sum(-1, keepdim=True))
    s[s == 0] = 1
    torch.testing.assert_close(a, s * b, atol=atol, rtol=0)


def _wrap(x):
    return (x + math.pi) % (2 * math.pi) - math.pi


# ------------------------------------------------------------------------------ SciPy parity
def test_quaternion_to_matrix_vs_scipy():
    torch.testing.assert_close(T.quaternion_to_matrix(QUATS), MATS, atol=1e-12, rtol=0)
    # Unnormalised quaternions are normalised.
    torch.testing.assert_close(T.quaternion_to_matrix(3.0 * QUATS), MATS, atol=1e-12, rtol=0)
    torch.testing.assert_close(T.quaternion_to_matrix(QUATS.float()), MATS.float(), atol=1e-5, rtol=0)


def test_matrix_to_quaternion_vs_scipy():
    q = T.matrix_to_quaternion(MATS)
    assert (q[:, 0] >= 0).all()
    _same_quat(q, QUATS, 1e-10)
    _same_quat(T.matrix_to_quaternion(MATS.float()), QUATS.float(), 1e-5)


def test_axis_angle_to_quaternion_and_matrix_vs_scipy():
    _same_quat(T.axis_angle_to_quaternion(ROTVECS), QUATS, 1e-12)
    torch.testing.assert_close(T.axis_angle_to_matrix(ROTVECS), MATS, atol=1e-12, rtol=0)
    torch.testing.assert_close(T.axis_angle_to_matrix(ROTVECS.float()), MATS.float(), atol=1e-5, rtol=0)


def test_to_axis_angle_vs_scipy():
    for fn, x in ((T.matrix_to_axis_angle, MATS), (T.quaternion_to_axis_angle, QUATS)):
        v = fn(x)
        angle = ROTVECS.norm(dim=-1)
        torch.testing.assert_close(v.norm(dim=-1), angle, atol=1e-7, rtol=0)
        ok = angle < math.pi - 1e-3  # at pi, v and -v are the same rotation
        torch.testing.assert_close(v[ok], ROTVECS[ok], atol=1e-9, rtol=0)
        torch.testing.assert_close(T.axis_angle_to_matrix(v), MATS, atol=1e-9, rtol=0)
    v32 = T.matrix_to_axis_angle(MATS.float())
    torch.testing.assert_close(T.axis_angle_to_matrix(v32).double(), MATS, atol=1e-5, rtol=0)


@pytest.mark.parametrize("extrinsic", [False, True])
def test_euler_vs_scipy_all_orders(extrinsic):
    rng = np.random.default_rng(2)
    n = 300
    for order in ORDERS:
        seq = order.lower() if extrinsic else order
        ang = rng.uniform(-math.pi, math.pi, size=(n, 3))
        ref = Rotation.from_euler(seq, ang).as_matrix()
        m = T.euler_to_matrix(torch.from_numpy(ang), order, extrinsic=extrinsic)
        np.testing.assert_allclose(m.numpy(), ref, atol=1e-12)
        # matrix -> euler against scipy on the 2000 random rotations
        mats = MATS[:2000]
        ours = T.matrix_to_euler(mats, order, extrinsic=extrinsic).numpy()
        theirs = ROTS[:2000].as_euler(seq)
        np.testing.assert_allclose(_wrap(ours - theirs), 0, atol=1e-8, err_msg=f"{order} {extrinsic}")
        # round trip through our own pair, float32 too
        back = T.euler_to_matrix(T.matrix_to_euler(MATS, order, extrinsic), order, extrinsic)
        torch.testing.assert_close(back, MATS, atol=1e-9, rtol=0)
        back32 = T.euler_to_matrix(T.matrix_to_euler(MATS.float(), order, extrinsic), order, extrinsic)
        torch.testing.assert_close(back32, MATS.float(), atol=5e-3, rtol=0)


@pytest.mark.parametrize("extrinsic", [False, True])
@pytest.mark.parametrize("order", ORDERS)
def test_euler_gimbal_lock_round_trip(order, extrinsic):
    proper = order[0] == order[2]
    mids = [0.0, math.pi] if proper else [math.pi / 2, -math.pi / 2]
    rng = np.random.default_rng(3)
    for mid in mids:
        ang = torch.from_numpy(rng.uniform(-3, 3, size=(20, 3)))
        ang[:, 1] = mid
        R = T.euler_to_matrix(ang, order, extrinsic)
        out = T.matrix_to_euler(R, order, extrinsic)
        assert torch.isfinite(out).all()
        torch.testing.assert_close(T.euler_to_matrix(out, order, extrinsic), R, atol=1e-7, rtol=0)
        assert (out[:, 2] == 0).all()  # documented, as in SciPy: the third angle is set to 0
        seq = order.lower() if extrinsic else order
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy warns about the gimbal lock
            ref = Rotation.from_matrix(R.numpy()).as_euler(seq)
        np.testing.assert_allclose(_wrap(out.numpy() - ref), 0, atol=1e-6)


def test_euler_quaternion_wrappers():
    ang = torch.tensor([[0.3, -0.2, 1.1]], dtype=torch.float64)
    q = T.euler_to_quaternion(ang, "ZYX", extrinsic=True)
    _same_quat(q, torch.from_numpy(Rotation.from_euler("zyx", ang.numpy()).as_quat()[:, [3, 0, 1, 2]]), 1e-12)
    torch.testing.assert_close(T.quaternion_to_euler(q, "ZYX", extrinsic=True), ang)


def test_rotate_points_vs_scipy():
    pts = torch.from_numpy(np.random.default_rng(4).normal(size=(len(ROTS), 3)))
    ref = torch.from_numpy(ROTS.apply(pts.numpy()))
    torch.testing.assert_close(T.quaternion_rotate_points(QUATS, pts), ref, atol=1e-12, rtol=0)
    torch.testing.assert_close(T.matrix_rotate_points(MATS, pts), ref, atol=1e-12, rtol=0)
    torch.testing.assert_close(T.axis_angle_rotate_points(ROTVECS, pts), ref, atol=1e-12, rtol=0)
    # broadcasting: one rotation, many points
    out = T.quaternion_rotate_points(QUATS[5], pts[:7])
    torch.testing.assert_close(out, torch.from_numpy(ROTS[5].apply(pts[:7].numpy())))


def test_geodesic_angle_vs_scipy():
    r1 = Rotation.random(500, random_state=5)
    small = Rotation.from_rotvec(np.tile([[1e-7, 0, 0], [0, 0, math.pi - 1e-7]], (250, 1)))
    r2s = [Rotation.random(500, random_state=6), r1 * small, r1]
    for r2 in r2s:
        ref = (r1.inv() * r2).magnitude()
        a = T.rotation_geodesic_angle(torch.from_numpy(r1.as_matrix()), torch.from_numpy(r2.as_matrix()))
        np.testing.assert_allclose(a.numpy(), ref, atol=1e-9)
        q1 = torch.from_numpy(r1.as_quat()[:, [3, 0, 1, 2]].copy())
        q2 = torch.from_numpy(r2.as_quat()[:, [3, 0, 1, 2]].copy())
        np.testing.assert_allclose(T.quaternion_geodesic_angle(q1, -q2).numpy(), ref, atol=1e-9)


def test_compose_inverse_relative_identities():
    R1, R2 = MATS[:500], MATS[500:1000]
    q1, q2 = QUATS[:500], QUATS[500:1000]
    eye = torch.eye(3, dtype=torch.float64).expand(500, 3, 3)
    torch.testing.assert_close(T.compose_rotations(R1, T.invert_rotation(R1)), eye)
    ref = torch.from_numpy((ROTS[:500] * ROTS[500:1000]).as_matrix())
    torch.testing.assert_close(T.compose_rotations(R1, R2), ref)
    torch.testing.assert_close(T.quaternion_to_matrix(T.quaternion_multiply(q1, q2)), ref)
    ident = torch.tensor([1.0, 0, 0, 0], dtype=torch.float64).expand(500, 4)
    torch.testing.assert_close(T.quaternion_multiply(q1, T.quaternion_inverse(q1)), ident)
    torch.testing.assert_close(T.quaternion_multiply(2 * q1, T.quaternion_inverse(2 * q1)), ident)
    torch.testing.assert_close(T.quaternion_conjugate(q1), T.quaternion_inverse(q1))
    rel = T.relative_rotation(R1, R2)
    torch.testing.assert_close(rel @ R1, R2)
    qrel = T.quaternion_relative_rotation(q1, q2)
    torch.testing.assert_close(T.quaternion_to_matrix(qrel), rel)
    torch.testing.assert_close(T.quaternion_normalize(3 * q1), q1)


def test_rotation_6d_and_2d():
    d6 = T.matrix_to_rotation_6d(MATS)
    torch.testing.assert_close(d6[:, :3], MATS[:, :, 0])
    torch.testing.assert_close(T.rotation_6d_to_matrix(d6), MATS)
    noisy = torch.randn(100, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    R = T.rotation_6d_to_matrix(noisy)
    torch.testing.assert_close(R @ R.transpose(-1, -2), torch.eye(3, dtype=torch.float64).expand(100, 3, 3))
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(100, dtype=torch.float64))
    a = torch.linspace(-3.1, 3.1, 50, dtype=torch.float64)
    M = T.angle_to_matrix_2d(a)
    assert M.shape == (50, 2, 2)
    torch.testing.assert_close(M[:, 1, 0], torch.sin(a))
    torch.testing.assert_close(T.matrix_2d_to_angle(M), a)
    ref3 = T.euler_to_matrix(torch.stack([0 * a, 0 * a, a], -1), "XYZ")[:, :2, :2]
    torch.testing.assert_close(M, ref3)


def test_random_rotations_seeded_and_uniform():
    g = lambda s: torch.Generator().manual_seed(s)  # noqa: E731
    q = T.random_quaternions(20000, generator=g(0), dtype=torch.float64)
    assert q.shape == (20000, 4) and q.dtype == torch.float64
    torch.testing.assert_close(q, T.random_quaternions(20000, generator=g(0), dtype=torch.float64))
    assert not torch.equal(q, T.random_quaternions(20000, generator=g(1), dtype=torch.float64))
    torch.testing.assert_close(q.norm(dim=-1), torch.ones(20000, dtype=torch.float64))
    R = T.quaternion_to_matrix(q)
    assert R.mean(0).abs().max() < 0.02  # Haar measure: E[R] = 0
    # angle distribution of a uniform rotation: CDF (x - sin x) / pi
    from scipy.stats import kstest

    ang = T.quaternion_geodesic_angle(torch.tensor([1.0, 0, 0, 0], dtype=torch.float64), q).numpy()
    assert kstest(ang, lambda x: (x - np.sin(x)) / np.pi).pvalue > 1e-3
    assert T.random_rotation_matrices((2, 3), generator=g(0)).shape == (2, 3, 3, 3)


def test_slerp():
    q0, q1 = QUATS[:500], QUATS[500:1000]
    torch.testing.assert_close(T.quaternion_slerp(q0, q1, 0.0), q0)
    _same_quat(T.quaternion_slerp(q0, q1, 1.0), q1, 1e-12)
    t = torch.rand(500, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    mid = T.quaternion_slerp(q0, q1, t)
    total = T.quaternion_geodesic_angle(q0, q1)
    torch.testing.assert_close(T.quaternion_geodesic_angle(q0, mid), t * total)
    torch.testing.assert_close(T.quaternion_geodesic_angle(mid, q1), (1 - t) * total)
    # shortest path: -q1 gives the same result
    torch.testing.assert_close(T.quaternion_slerp(q0, -q1, t), mid)
    # nearly identical and identical inputs
    near = T.quaternion_normalize(q0 + 1e-9)
    out = T.quaternion_slerp(q0, near, 0.3)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, q0, atol=1e-8, rtol=0)
    torch.testing.assert_close(T.quaternion_slerp(q0, q0, 0.7), q0)


def test_rigid_and_dual_quaternions():
    R, t = MATS[:300], torch.randn(300, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    M = T.rigid_from_rotation_translation(R, t)
    assert M.shape == (300, 4, 4)
    R2, t2 = T.rigid_to_rotation_translation(M)
    torch.testing.assert_close(R2, R)
    torch.testing.assert_close(t2, t)
    eye4 = torch.eye(4, dtype=torch.float64).expand(300, 4, 4)
    torch.testing.assert_close(T.compose_rigid(M, T.invert_rigid(M)), eye4)
    torch.testing.assert_close(T.invert_rigid(M), torch.linalg.inv(M))
    p = torch.randn(300, 3, dtype=torch.float64)
    torch.testing.assert_close(T.rigid_transform_points(M, p), (R @ p[..., None])[..., 0] + t)
    M2 = T.rigid_from_rotation_translation(MATS[300:600], t.flip(0))
    torch.testing.assert_close(T.rigid_transform_points(T.compose_rigid(M, M2), p),
                               T.rigid_transform_points(M, T.rigid_transform_points(M2, p)))
    # dual quaternions
    dq, dq2 = T.dual_quaternion_from_rigid(M), T.dual_quaternion_from_rigid(M2)
    torch.testing.assert_close(T.dual_quaternion_to_rigid(dq), M)
    torch.testing.assert_close(T.dual_quaternion_transform_points(dq, p), T.rigid_transform_points(M, p))
    torch.testing.assert_close(T.dual_quaternion_to_rigid(T.dual_quaternion_multiply(dq, dq2)),
                               T.compose_rigid(M, M2))


def test_batched_leading_dims_and_float32():
    q = T.random_quaternions((2, 3, 5), generator=torch.Generator().manual_seed(0))
    assert q.dtype == torch.float32
    R = T.quaternion_to_matrix(q)
    assert R.shape == (2, 3, 5, 3, 3) and R.dtype == torch.float32
    for fn, x, shape in [(T.matrix_to_quaternion, R, (2, 3, 5, 4)), (T.matrix_to_axis_angle, R, (2, 3, 5, 3)),
                         (T.matrix_to_rotation_6d, R, (2, 3, 5, 6)), (T.quaternion_to_axis_angle, q, (2, 3, 5, 3))]:
        out = fn(x)
        assert out.shape == shape and out.dtype == torch.float32
    e = T.matrix_to_euler(R, "ZXZ")
    assert e.shape == (2, 3, 5, 3) and e.dtype == torch.float32


# ---------------------------------------------------------------------------------- gradients
def _gc(fn, *inputs):
    inputs = tuple(x.detach().clone().double().requires_grad_(True) for x in inputs)
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)


def _axis_angles():
    axis = torch.tensor([0.3, -0.5, 0.8], dtype=torch.float64)
    axis = axis / axis.norm()
    return torch.stack([axis * 0.0, axis * 1e-5, axis * 1e-2, axis * 1.3, axis * (math.pi - 1e-3)])


def test_gradcheck_axis_angle_conversions():
    aa = _axis_angles()
    _gc(T.axis_angle_to_quaternion, aa)
    _gc(T.axis_angle_to_matrix, aa)
    _gc(T.axis_angle_rotate_points, aa, torch.randn(5, 3, dtype=torch.float64))
    _gc(T.quaternion_to_axis_angle, T.axis_angle_to_quaternion(aa))
    _gc(T.matrix_to_axis_angle, T.axis_angle_to_matrix(aa))
    # exactly zero: gradient equals the derivative of the Taylor series (identity-like Jacobians)
    z = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    J = torch.autograd.functional.jacobian(T.axis_angle_to_quaternion, z)
    torch.testing.assert_close(J, torch.cat([torch.zeros(1, 3), 0.5 * torch.eye(3)]).double())
    J = torch.autograd.functional.jacobian(T.quaternion_to_axis_angle,
                                           torch.tensor([1.0, 0, 0, 0], dtype=torch.float64))
    torch.testing.assert_close(J, torch.cat([torch.zeros(3, 1), 2 * torch.eye(3)], 1).double())
    J = torch.autograd.functional.jacobian(T.matrix_to_axis_angle, torch.eye(3, dtype=torch.float64))
    assert torch.isfinite(J).all()


def test_gradcheck_quaternion_matrix_euler_6d():
    q = T.axis_angle_to_quaternion(_axis_angles())
    _gc(T.quaternion_to_matrix, 1.7 * q)
    _gc(T.quaternion_multiply, q, q.flip(0))
    _gc(T.quaternion_inverse, q + 0.1)
    _gc(T.quaternion_rotate_points, q, torch.randn(5, 3, dtype=torch.float64))
    R = T.axis_angle_to_matrix(_axis_angles())
    _gc(T.matrix_to_quaternion, R)
    _gc(T.matrix_to_rotation_6d, R)
    _gc(T.rotation_6d_to_matrix, T.matrix_to_rotation_6d(R) + 0.05)
    ang = torch.tensor([[0.3, -0.4, 1.2], [-2.0, 0.7, 0.1]], dtype=torch.float64)
    for order in ("XYZ", "ZYZ", "YXZ", "XZX"):
        for ex in (False, True):
            _gc(lambda a: T.euler_to_matrix(a, order, ex), ang)
            _gc(lambda m: T.matrix_to_euler(m, order, ex), T.euler_to_matrix(ang.abs() + 0.2, order, ex))
    _gc(T.angle_to_matrix_2d, torch.tensor([0.0, 1.0, -3.0], dtype=torch.float64))
    _gc(T.matrix_2d_to_angle, T.angle_to_matrix_2d(torch.tensor([0.0, 1.0, -3.0], dtype=torch.float64)))


def test_gradcheck_geodesic_slerp_rigid():
    R = T.axis_angle_to_matrix(_axis_angles()[1:])
    I = torch.eye(3, dtype=torch.float64).expand(3, 3, 3)  # noqa: E741
    # the angle is |x|-like at 0, so finite differences need angle >> eps: use 1e-2, 1.3, pi - 1e-3
    _gc(T.rotation_geodesic_angle, I, R[1:])
    _gc(T.quaternion_geodesic_angle, T.matrix_to_quaternion(I), T.matrix_to_quaternion(R[1:]))
    q = T.matrix_to_quaternion(R)
    _gc(T.quaternion_geodesic_angle, q, q.flip(0))
    # gradient of the geodesic angle at identical inputs is finite (0)
    R0 = R.clone().requires_grad_(True)
    T.rotation_geodesic_angle(R0, R.detach()).sum().backward()
    assert torch.isfinite(R0.grad).all()
    q0 = T.random_quaternions(4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    q1 = T.random_quaternions(4, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    t = torch.tensor([0.0, 0.3, 0.7, 1.0], dtype=torch.float64)
    _gc(T.quaternion_slerp, q0, q1, t)
    _gc(T.quaternion_slerp, q0, T.quaternion_normalize(q0 + 1e-4), t)  # nearly identical
    qq = q0.clone().requires_grad_(True)
    T.quaternion_slerp(qq, q0, t).sum().backward()  # identical: finite gradient
    assert torch.isfinite(qq.grad).all()
    M = T.rigid_from_rotation_translation(R, torch.randn(4, 3, dtype=torch.float64))
    _gc(T.invert_rigid, M)
    _gc(T.rigid_transform_points, M, torch.randn(4, 3, dtype=torch.float64))
    _gc(T.dual_quaternion_to_rigid, T.dual_quaternion_from_rigid(M))
    _gc(T.dual_quaternion_transform_points, T.dual_quaternion_from_rigid(M), torch.randn(4, 3, dtype=torch.float64))


# --------------------------------------------------------------------------------- hypothesis
unit = st.floats(-1.0, 1.0, allow_nan=False)
quat_st = st.lists(unit, min_size=4, max_size=4).filter(lambda v: np.linalg.norm(v) > 0.1)
vec_st = st.lists(st.floats(-3.0, 3.0, allow_nan=False), min_size=3, max_size=3)


@HYP
@given(quat_st)
def test_prop_quaternion_matrix_round_trip(v):
    q = T.quaternion_normalize(torch.tensor(v, dtype=torch.float64))
    R = T.quaternion_to_matrix(q)
    torch.testing.assert_close(R @ R.T, torch.eye(3, dtype=torch.float64))
    _same_quat(T.matrix_to_quaternion(R)[None], q[None], 1e-9)
    _same_quat(T.axis_angle_to_quaternion(T.quaternion_to_axis_angle(q))[None], q[None], 1e-9)


@HYP
@given(vec_st)
def test_prop_axis_angle_round_trip(v):
    aa = torch.tensor(v, dtype=torch.float64)
    assume_ok = aa.norm() < math.pi - 1e-3
    back = T.matrix_to_axis_angle(T.axis_angle_to_matrix(aa))
    if assume_ok:
        torch.testing.assert_close(back, aa, atol=1e-9, rtol=0)
    torch.testing.assert_close(T.axis_angle_to_matrix(back), T.axis_angle_to_matrix(aa), atol=1e-9, rtol=0)


@HYP
@given(vec_st, st.sampled_from(ORDERS), st.booleans())
def test_prop_euler_round_trip(v, order, extrinsic):
    R = T.euler_to_matrix(torch.tensor(v, dtype=torch.float64), order, extrinsic)
    back = T.euler_to_matrix(T.matrix_to_euler(R, order, extrinsic), order, extrinsic)
    torch.testing.assert_close(back, R, atol=1e-7, rtol=0)


@HYP
@given(quat_st, quat_st, quat_st, vec_st)
def test_prop_invariances(a, b, c, p):
    qa, qb, qc = (T.quaternion_normalize(torch.tensor(x, dtype=torch.float64)) for x in (a, b, c))
    p = torch.tensor(p, dtype=torch.float64)
    # geodesic angle is invariant under a common left rotation and symmetric
    d = T.quaternion_geodesic_angle(qa, qb)
    torch.testing.assert_close(T.quaternion_geodesic_angle(T.quaternion_multiply(qc, qa),
                                                           T.quaternion_multiply(qc, qb)), d)
    torch.testing.assert_close(T.quaternion_geodesic_angle(qb, qa), d)
    Ra, Rb = T.quaternion_to_matrix(qa), T.quaternion_to_matrix(qb)
    torch.testing.assert_close(T.rotation_geodesic_angle(Ra, Rb), d)
    # rotations preserve norms; all three point-rotation paths agree
    rp = T.quaternion_rotate_points(qa, p)
    torch.testing.assert_close(rp.norm(), p.norm())
    torch.testing.assert_close(T.matrix_rotate_points(Ra, p), rp)
    torch.testing.assert_close(T.axis_angle_rotate_points(T.quaternion_to_axis_angle(qa), p), rp)
    # 6D round trip
    torch.testing.assert_close(T.rotation_6d_to_matrix(T.matrix_to_rotation_6d(Ra)), Ra)


# ---------------------------------------------------------------------------- NumPy and errors
def test_numpy_in_numpy_out():
    q = np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
    R = T.quaternion_to_matrix(q)
    assert isinstance(R, np.ndarray) and R.dtype == np.float64 and R.shape == (2, 3, 3)
    q32 = T.matrix_to_quaternion(R.astype(np.float32))
    assert isinstance(q32, np.ndarray) and q32.dtype == np.float32
    e = T.matrix_to_euler(R, "ZYX")
    assert isinstance(e, np.ndarray)
    Rr, t = T.rigid_to_rotation_translation(np.eye(4))
    assert isinstance(Rr, np.ndarray) and isinstance(t, np.ndarray)
    np.testing.assert_allclose(T.axis_angle_to_matrix(np.zeros(3)), np.eye(3))


@pytest.mark.parametrize("fn,args,name", [
    (T.quaternion_to_matrix, (torch.zeros(5, 3),), "q"),
    (T.matrix_to_quaternion, (torch.zeros(5, 3, 4),), "matrix"),
    (T.axis_angle_to_matrix, (torch.zeros(5, 4),), "axis_angle"),
    (T.euler_to_matrix, (torch.zeros(5, 2),), "angles"),
    (T.rotation_6d_to_matrix, (torch.zeros(5, 5),), "d6"),
    (T.quaternion_rotate_points, (torch.zeros(4), torch.zeros(2)), "points"),
    (T.rigid_transform_points, (torch.zeros(3, 3), torch.zeros(3)), "transform"),
    (T.dual_quaternion_to_rigid, (torch.zeros(4),), "dq"),
])
def test_bad_shapes_raise_value_error(fn, args, name):
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        fn(*args)


@pytest.mark.parametrize("order", ["XYY", "xyz", "ABC", "XY", 3])
def test_bad_euler_order(order):
    with pytest.raises(ValueError, match="order"):
        T.euler_to_matrix(torch.zeros(3), order)
    with pytest.raises(ValueError, match="order"):
        T.matrix_to_euler(torch.eye(3), order)


def test_doctests():
    res = doctest.testmod(T, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert res.failed == 0 and res.attempted > 30


def test_public_api_is_numpy_compatible():
    for name in T.__all__:
        obj = getattr(T, name)
        if callable(obj):
            assert getattr(obj, "__wrapped_numpy__", False), name
            assert "Example:" in obj.__doc__, name


def test_float32_gradients_finite_at_zero_and_pi():
    for fn, x in [(T.axis_angle_to_matrix, torch.zeros(3)), (T.axis_angle_to_quaternion, torch.zeros(3)),
                  (T.quaternion_to_axis_angle, torch.tensor([1.0, 0, 0, 0])),
                  (T.matrix_to_axis_angle, torch.eye(3)),
                  (T.matrix_to_quaternion, T.axis_angle_to_matrix(torch.tensor([0.0, 3.1415925, 0.0])))]:
        x = x.clone().requires_grad_(True)
        fn(x).sum().backward()
        assert torch.isfinite(x.grad).all(), fn.__name__
