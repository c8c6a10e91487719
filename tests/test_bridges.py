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
    g_sv, g_cols, g_bg = pb(g)
    assert g_bg is None  # background not given: no gradient entry
    s = torch.from_numpy(sv).requires_grad_()
    c = torch.from_numpy(cols).requires_grad_()
    out = tr.soft_rasterize(s, torch.from_numpy(f), c, (13, 11), sigma=1e-3)
    out.backward(torch.from_numpy(g))
    np.testing.assert_allclose(rgba, out.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(g_sv, s.grad.numpy(), rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(g_cols, c.grad.numpy(), rtol=1e-8, atol=1e-9)
    # a differentiable argument given by keyword gets its gradient in signature order
    bg = np.array([0.2, 0.3, 0.4])
    _, pb = trnp.vjp(trnp.soft_rasterize, sv, f, cols, (13, 11), sigma=1e-3, background=bg)
    tbg = torch.from_numpy(bg).requires_grad_()
    tr.soft_rasterize(torch.from_numpy(sv), torch.from_numpy(f), torch.from_numpy(cols), (13, 11), sigma=1e-3,
                      background=tbg).backward(torch.from_numpy(g))
    np.testing.assert_allclose(pb(g)[2], tbg.grad.numpy(), rtol=1e-10)

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


def test_public_texture_and_shade_wrappers_match_numpy():
    rng = np.random.default_rng(4)
    tex = rng.random((5, 7, 3))
    uv = rng.random((1, 4, 6, 2))
    out_t = tr.texture(torch.from_numpy(tex), torch.from_numpy(uv), filter="bilinear", wrap="clamp")
    out_n, pb = trnp.vjp(trnp.texture, tex, uv, filter="bilinear", wrap="clamp")
    np.testing.assert_allclose(out_t.numpy(), out_n, atol=1e-12)
    g_tex, g_uv = pb(np.ones_like(out_n))
    assert g_tex.shape == tex.shape and g_uv.shape == uv.shape
    # a texel-centre grid reproduces the texture exactly
    i, j = np.meshgrid(np.arange(5), np.arange(7), indexing="ij")
    centres = np.stack([(j + 0.5) / 7, 1 - (i + 0.5) / 5], -1)
    np.testing.assert_allclose(trnp.texture(tex, centres, wrap="clamp")[0], tex, atol=1e-12)

    n = rng.standard_normal((6, 3))
    x = rng.standard_normal((6, 3))
    args = (n, x, rng.random((6, 3)), rng.random((6, 3)), rng.random(6) * 20, np.array([0.0, 0.0, 5.0]),
            np.array([0.1, 0.1, 0.1]), np.array([[0.0, -1.0, -1.0]]), np.array([[1.0, 0.9, 0.8]]))
    rgb_n = trnp.shade(*args, model="phong")
    rgb_t = tr.shade(*(torch.from_numpy(a) for a in args), model="phong")
    np.testing.assert_allclose(rgb_t.numpy(), rgb_n, atol=1e-12)
    assert rgb_n.shape == (6, 3) and (rgb_n >= 0.1 * args[2] - 1e-12).all()  # at least the ambient term
