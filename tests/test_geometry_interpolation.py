"""B-splines, trilinear and weighted interpolation, slerp wrapper: SciPy parity, gradients, properties."""
import doctest

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.interpolate import BSpline, RegularGridInterpolator

import taichirast.geometry.interpolation as I
from taichirast.geometry import transforms as T

HYP = settings(max_examples=25, deadline=None)
f64 = torch.float64


def _gc(fn, *inputs):
    inputs = tuple(x.detach().clone().double().requires_grad_(True) for x in inputs)
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)


# ---------------------------------------------------------------------------------------- slerp
def test_slerp_wraps_quaternion_slerp():
    q0 = T.random_quaternions(10, generator=torch.Generator().manual_seed(0), dtype=f64)
    q1 = T.random_quaternions(10, generator=torch.Generator().manual_seed(1), dtype=f64)
    t = torch.linspace(0, 1, 10, dtype=f64)
    torch.testing.assert_close(I.slerp(q0, q1, t), T.quaternion_slerp(q0, q1, t))
    _gc(I.slerp, q0[:3], q1[:3], t[3:6])


# ------------------------------------------------------------------------------------ B-splines
@pytest.mark.parametrize("degree", [0, 1, 2, 3, 4, 5])
def test_bspline_weights_vs_scipy(degree):
    K = 9
    x = np.linspace(0, K - degree, 101)[:-1]
    w = I.bspline_weights(torch.from_numpy(x), K, degree)
    assert w.shape == (100, K)
    # control point i's basis is the cardinal B-spline on knots i-d .. i+1
    knots = np.arange(-degree, K + 1, dtype=float)
    for i in range(K):
        c = np.zeros(K)
        c[i] = 1
        ref = BSpline(knots, c, degree, extrapolate=False)(x)
        np.testing.assert_allclose(w[:, i].numpy(), ref, atol=1e-10, err_msg=f"knot {i}")
    torch.testing.assert_close(w.sum(-1), torch.ones(100, dtype=f64))
    assert (w >= -1e-12).all()


def test_bspline_tf_graphics_cubic_and_quadratic_pieces():
    t = torch.tensor(0.3, dtype=f64)
    w, shift = I.bspline_weights(t + 2, 8, 3, sparse_mode=True)
    assert int(shift) == 2
    ref = [(1 - t) ** 3 / 6, (3 * t**3 - 6 * t**2 + 4) / 6, (-3 * t**3 + 3 * t**2 + 3 * t + 1) / 6, t**3 / 6]
    torch.testing.assert_close(w, torch.stack(ref))
    w2, _ = I.bspline_weights(t, 5, 2, sparse_mode=True)
    torch.testing.assert_close(w2, torch.stack([(1 - t) ** 2 / 2, (-2 * t**2 + 2 * t + 1) / 2, t**2 / 2]))


def test_bspline_cyclical_sparse_and_end():
    # cyclical linear: halfway between the last and the first knot
    w = I.bspline_weights(torch.tensor([4.5]), 5, 1, cyclical=True)
    torch.testing.assert_close(w, torch.tensor([[0.5, 0, 0, 0, 0.5]]))
    # cyclical cubic wraps the support
    pos = torch.tensor([0.0, 1.7, 3.2, 4.9], dtype=f64)
    dense = I.bspline_weights(pos, 5, 3, cyclical=True)
    sw, shift = I.bspline_weights(pos, 5, 3, cyclical=True, sparse_mode=True)
    for b in range(4):
        ref = torch.zeros(5, dtype=f64)
        for j in range(4):
            ref[(int(shift[b]) + j) % 5] += sw[b, j]
        torch.testing.assert_close(dense[b], ref)
    torch.testing.assert_close(dense.sum(-1), torch.ones(4, dtype=f64))
    # shifting by one knot rotates the weights
    torch.testing.assert_close(I.bspline_weights(pos + 1, 5, 3, cyclical=True), dense.roll(1, -1))
    # open spline: the right end is the last segment at t = 1 (continuous)
    end = I.bspline_weights(torch.tensor([3.0, 3.0 - 1e-9], dtype=f64), 6, 3)
    torch.testing.assert_close(end[0], end[1])


def test_bspline_interpolate_shapes_and_evaluate_vs_scipy():
    rng = np.random.default_rng(0)
    cp = torch.from_numpy(rng.normal(size=(7, 2)))
    x = torch.from_numpy(rng.uniform(0, 4, size=(3, 5)))
    out = I.bspline_evaluate(cp, x, degree=3)
    assert out.shape == (3, 5, 2)
    ref = BSpline(np.arange(-3, 8, dtype=float), cp.numpy(), 3)(x.numpy())
    np.testing.assert_allclose(out.numpy(), ref, atol=1e-12)
    # TF Graphics layout: knots (B..., K) -> (A..., B...)
    out2 = I.bspline_interpolate(cp.T, x, degree=3)
    assert out2.shape == (3, 5, 2)
    torch.testing.assert_close(out2, out)
    w = I.bspline_weights(x, 7, 3)
    torch.testing.assert_close(I.bspline_interpolate_with_weights(cp.T, w), out)


def test_bspline_gradcheck():
    cp = torch.randn(6, 2, dtype=f64, generator=torch.Generator().manual_seed(0))
    x = torch.tensor([0.2, 1.5, 2.7], dtype=f64)
    for degree in (1, 2, 3):
        _gc(lambda c, p: I.bspline_evaluate(c, p, degree), cp, x)
        _gc(lambda p: I.bspline_weights(p, 6, degree, cyclical=True), x + 2.1)


@HYP
@given(st.integers(0, 5), st.integers(0, 4), st.floats(0.0, 1.0, exclude_max=True), st.booleans())
def test_prop_bspline_partition_of_unity(degree, extra, frac, cyclical):
    K = degree + 1 + extra
    span = K if cyclical else K - degree
    pos = torch.tensor([frac * span], dtype=f64)
    w = I.bspline_weights(pos, K, degree, cyclical=cyclical)
    torch.testing.assert_close(w.sum(-1), torch.ones(1, dtype=f64))
    assert (w >= -1e-12).all() and int((w > 0).sum()) <= degree + 1
    # affine reproduction (open splines, degree >= 1): knots at Greville abscissae i - (d-1)/2
    if not cyclical and degree >= 1:
        knots = torch.arange(K, dtype=f64) - (degree - 1) / 2
        torch.testing.assert_close(I.bspline_interpolate(knots, pos, degree), pos)


def test_bspline_errors():
    with pytest.raises(ValueError, match="num_knots"):
        I.bspline_weights(torch.zeros(3), 3, 3)
    with pytest.raises(ValueError, match="degree"):
        I.bspline_weights(torch.zeros(3), 3, -1)
    with pytest.raises(ValueError, match="control_points"):
        I.bspline_evaluate(torch.zeros(5), torch.zeros(3), 1)


# ------------------------------------------------------------------------------------ trilinear
def test_trilinear_vs_scipy_and_exactness():
    rng = np.random.default_rng(1)
    D, H, W, C = 4, 5, 6, 2
    grid = rng.normal(size=(D, H, W, C))
    pts = rng.uniform(0, 1, size=(200, 3)) * np.array([D - 1, H - 1, W - 1])
    ref = RegularGridInterpolator((np.arange(D), np.arange(H), np.arange(W)), grid)(pts)
    out = I.trilinear_interpolate(torch.from_numpy(grid), torch.from_numpy(pts))
    assert out.shape == (200, C)
    np.testing.assert_allclose(out.numpy(), ref, atol=1e-12)
    # grid nodes are exact
    nodes = torch.tensor([[0, 0, 0], [3, 4, 5], [1, 2, 3]], dtype=f64)
    torch.testing.assert_close(I.trilinear_interpolate(torch.from_numpy(grid), nodes),
                               torch.from_numpy(grid[[0, 3, 1], [0, 4, 2], [0, 5, 3]]))
    # outside the grid: clamped to the border (TF Graphics behaviour)
    outside = torch.tensor([[-2.0, 1.5, 2.5], [9.0, 1.5, 7.0]], dtype=f64)
    clamped = torch.tensor([[0.0, 1.5, 2.5], [3.0, 1.5, 5.0]], dtype=f64)
    torch.testing.assert_close(I.trilinear_interpolate(torch.from_numpy(grid), outside),
                               I.trilinear_interpolate(torch.from_numpy(grid), clamped))


def test_trilinear_batched_broadcast_float32_and_gradcheck():
    g = torch.randn(2, 3, 4, 5, 3, generator=torch.Generator().manual_seed(0))
    p = torch.rand(2, 7, 3, generator=torch.Generator().manual_seed(1)) * torch.tensor([2.0, 3.0, 4.0])
    out = I.trilinear_interpolate(g, p)
    assert out.shape == (2, 7, 3) and out.dtype == torch.float32
    torch.testing.assert_close(out[1], I.trilinear_interpolate(g[1], p[1]))
    shared = I.trilinear_interpolate(g[0], p)  # grid broadcast over the points' batch
    torch.testing.assert_close(shared[1], I.trilinear_interpolate(g[0], p[1]))
    _gc(I.trilinear_interpolate, g[:, :2, :3, :3, :1], torch.tensor([[[0.3, 0.6, 1.2], [0.7, 1.5, 0.4]]] * 2))


@HYP
@given(st.lists(st.floats(-2.0, 2.0), min_size=4, max_size=4),
       st.lists(st.floats(0.0, 1.0), min_size=3, max_size=3))
def test_prop_trilinear_reproduces_affine(coef, u):
    D, H, W = 3, 4, 5
    idx = torch.stack(torch.meshgrid(torch.arange(D), torch.arange(H), torch.arange(W), indexing="ij"), -1).to(f64)
    a = torch.tensor(coef[:3], dtype=f64)
    grid = (idx @ a + coef[3])[..., None]
    p = torch.tensor(u, dtype=f64) * torch.tensor([D - 1, H - 1, W - 1], dtype=f64)
    torch.testing.assert_close(I.trilinear_interpolate(grid, p[None])[0, 0], p @ a + coef[3])


def test_trilinear_errors():
    with pytest.raises(ValueError, match="grid"):
        I.trilinear_interpolate(torch.zeros(3, 3, 3), torch.zeros(1, 3))
    with pytest.raises(ValueError, match="points"):
        I.trilinear_interpolate(torch.zeros(3, 3, 3, 1), torch.zeros(1, 2))


# ------------------------------------------------------------------------------------- weighted
def test_weighted_interpolate():
    pts = torch.randn(4, 5, 3, dtype=f64, generator=torch.Generator().manual_seed(0))  # k = 2 batch dims
    idx = torch.tensor([[[0, 1], [3, 4], [2, 2]], [[1, 1], [1, 1], [0, 0]]])  # (2, P=3, 2)
    w = torch.tensor([[1.0, 2.0, 1.0], [0.5, 0.0, 0.5]], dtype=f64)
    out = I.weighted_interpolate(pts, w, idx)
    assert out.shape == (2, 3)
    ref0 = (pts[0, 1] + 2 * pts[3, 4] + pts[2, 2]) / 4
    ref1 = (pts[1, 1] + pts[0, 0]) / 2
    torch.testing.assert_close(out, torch.stack([ref0, ref1]))
    raw = I.weighted_interpolate(pts, w, idx, normalize=False)
    torch.testing.assert_close(raw[0], 4 * ref0)
    neg = I.weighted_interpolate(pts, -w, idx, normalize=False, allow_negative_weights=True)
    torch.testing.assert_close(neg, -raw)
    with pytest.raises(ValueError, match="non-negative"):
        I.weighted_interpolate(pts, -w, idx)
    with pytest.raises(ValueError, match="zero"):
        I.weighted_interpolate(pts, torch.zeros(2, 3, dtype=f64), idx)
    with pytest.raises(ValueError, match="indices"):
        I.weighted_interpolate(pts, w, idx[..., :1])
    with pytest.raises(ValueError, match="weights"):
        I.weighted_interpolate(pts, w[:, :2], idx)
    _gc(lambda p, ww: I.weighted_interpolate(p, ww, idx), pts, w + 0.1)


# --------------------------------------------------------------------------------- NumPy, docs
def test_numpy_in_numpy_out():
    w = I.bspline_weights(np.array([0.5, 1.5]), 4, 2)
    assert isinstance(w, np.ndarray) and w.dtype == np.float64 and w.shape == (2, 4)
    out = I.trilinear_interpolate(np.zeros((2, 2, 2, 1), np.float32), np.full((3, 3), 0.5, np.float32))
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == (3, 1)
    wi = I.weighted_interpolate(np.eye(3), np.array([1.0, 1.0]), np.array([[0], [1]]))
    np.testing.assert_allclose(wi, [0.5, 0.5, 0.0])


def test_doctests():
    res = doctest.testmod(I, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert res.failed == 0 and res.attempted >= 8


def test_public_api_is_numpy_compatible():
    for name in I.__all__:
        fn = getattr(I, name)
        assert getattr(fn, "__wrapped_numpy__", False), name
        assert "Example:" in fn.__doc__, name
