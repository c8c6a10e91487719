"""NumPy bridge: public wrappers, chained pullbacks equal torch autograd, vjp errors."""
import numpy as np
import pytest
import torch

import taichirast as tr
from taichirast import meshes
from taichirast import np as trnp


def _scene():
    v, f = meshes.icosphere(1)
    cam = tr.PerspectiveCamera.look_at(torch.tensor([0.2, 0.3, 3.0], dtype=torch.float64), image_size=(13, 11))
    sv = tr.project(torch.from_numpy(v).double(), cam).detach()
    cols = np.random.default_rng(0).random((v.shape[0], 3))
    return sv.numpy(), f, cols


def test_rasterize_interpolate_pullbacks_chain_like_autograd():
    sv, f, cols = _scene()
    frags, pb_r = trnp.vjp(trnp.rasterize, sv, f, (13, 11))
    img, pb_i = trnp.vjp(trnp.interpolate, cols, f, frags)
    g = np.random.default_rng(1).standard_normal(img.shape)
    g_cols, g_frags = pb_i(g)
    (g_sv,) = pb_r(g_frags)

    s = torch.from_numpy(sv).requires_grad_()
    c = torch.from_numpy(cols).requires_grad_()
    out = tr.interpolate(c, torch.from_numpy(f), tr.rasterize(s, torch.from_numpy(f), (13, 11)))
    out.backward(torch.from_numpy(g))
    np.testing.assert_allclose(img, out.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(g_cols, c.grad.numpy(), atol=1e-10)
    np.testing.assert_allclose(g_sv, s.grad.numpy(), atol=1e-10)
    assert g_sv.shape == sv.shape and np.abs(g_sv).max() > 0


def test_soft_and_dibr_numpy_match_torch():
    sv, f, cols = _scene()
    rgba, pb = trnp.vjp(trnp.soft_rasterize, sv, f, cols, (13, 11), sigma=1e-3)
    g = np.random.default_rng(2).standard_normal(rgba.shape)
    g_sv, g_cols = pb(g)
    s = torch.from_numpy(sv).requires_grad_()
    c = torch.from_numpy(cols).requires_grad_()
    out = tr.soft_rasterize(s, torch.from_numpy(f), c, (13, 11), sigma=1e-3)
    out.backward(torch.from_numpy(g))
    np.testing.assert_allclose(rgba, out.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(g_sv, s.grad.numpy(), rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(g_cols, c.grad.numpy(), rtol=1e-8, atol=1e-9)

    frags = trnp.rasterize(sv, f, (13, 11))
    alpha, pb = trnp.vjp(trnp.dibr_silhouette, sv, f, frags, (13, 11))
    ga = np.random.default_rng(3).standard_normal(alpha.shape)
    (g_sv,) = pb(ga)
    s = torch.from_numpy(sv).requires_grad_()
    tfr = tr.rasterize(s, torch.from_numpy(f), (13, 11))
    a = tr.dibr_silhouette(s, torch.from_numpy(f), tfr, (13, 11))
    a.backward(torch.from_numpy(ga))
    np.testing.assert_allclose(alpha, a.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(g_sv, s.grad.numpy(), rtol=1e-8, atol=1e-9)


def test_vjp_errors():
    sv, f, cols = _scene()
    with pytest.raises(TypeError, match="not a taichirast.np primitive"):
        trnp.vjp(np.sum, sv)
    out, pb = trnp.vjp(trnp.soft_rasterize, sv, f, cols, (13, 11))
    with pytest.raises(ValueError, match="shape"):
        pb(np.zeros((1, 2, 3, 4)))
    with pytest.raises(TypeError, match="torch"):
        trnp.soft_rasterize(torch.from_numpy(sv), f, cols, (13, 11))


def test_numpy_camera_helpers_match_torch_camera():
    eye = [0.4, -0.3, 2.5]
    cam = tr.PerspectiveCamera.look_at(torch.tensor(eye, dtype=torch.float64), at=[0.1, 0.0, 0.0], fov_y=50.0,
                                       image_size=(30, 40))
    R, t = trnp.look_at(eye, at=[0.1, 0.0, 0.0])
    K = trnp.fov_intrinsics(50.0, (30, 40))
    np.testing.assert_allclose(R, cam.R[0].numpy(), atol=1e-12)
    np.testing.assert_allclose(t, cam.t[0].numpy(), atol=1e-12)
    np.testing.assert_allclose(K, cam.intrinsics()[0].numpy(), atol=1e-12)
    with pytest.raises(ValueError, match="parallel"):
        trnp.look_at([0, 2.0, 0], up=[0, 1, 0])
    with pytest.raises(ValueError, match="fov_y"):
        trnp.fov_intrinsics(0.0, (8, 8))
