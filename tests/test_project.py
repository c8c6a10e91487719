"""project: closed form, gradcheck (verts + every camera tensor), batching, bridges, bad input."""
import numpy as np
import pytest
import torch

import taichirast as tr
from taichirast import np as trnp


def _ref_project(v, R, t, K, ortho):
    P = torch.einsum("bij,bvj->bvi", R, v) + t[:, None]
    fx, fy, cx, cy = (K[:, i, None] for i in range(4))
    if ortho:
        return torch.stack([fx * P[..., 0] + cx, fy * P[..., 1] + cy, P[..., 2]], -1)
    return torch.stack([fx * P[..., 0] / P[..., 2] + cx, fy * P[..., 1] / P[..., 2] + cy, P[..., 2]], -1)


def _scene(B=2, V=7, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(B, V, 3, generator=g, dtype=dtype)
    eye = torch.randn(B, 3, generator=g, dtype=dtype) * 0.5 + torch.tensor([0, 0, -5.0], dtype=dtype)
    cam = tr.PerspectiveCamera.look_at(eye, image_size=(40, 30), fov_y=50.0)
    return v, cam


@pytest.mark.parametrize("ortho", [False, True])
def test_matches_closed_form(ortho):
    v, cam = _scene()
    R, t = cam.extrinsics()
    K = cam.intrinsics()
    out = tr.ops.project_points(v, R, t, K, orthographic=ortho)
    assert out.shape == (2, 7, 3)
    assert torch.allclose(out, _ref_project(v, R, t, K, ortho), atol=1e-12)


@pytest.mark.parametrize("ortho", [False, True])
def test_gradcheck_all_inputs(ortho):
    v, cam = _scene(B=2, V=5)
    R, t = cam.extrinsics()
    args = [x.detach().clone().requires_grad_() for x in (v, R, t, cam.intrinsics())]
    assert torch.autograd.gradcheck(lambda *a: tr.ops.project_points(*a, orthographic=ortho), args)


def test_camera_broadcast_and_gradients_reduce():
    # one camera, batch-2 verts: camera grads must sum over the batch
    v, _ = _scene(B=2, V=6)
    cam = tr.PerspectiveCamera.look_at(torch.tensor([0.3, -0.2, -4.0], dtype=torch.float64), image_size=32)
    R, t = cam.extrinsics()
    args = [x.detach().clone().requires_grad_() for x in (v, R, t, cam.intrinsics())]
    assert torch.autograd.gradcheck(lambda *a: tr.ops.project_points(*a), args)
    # batch-2 camera, unbatched verts
    _, cam2 = _scene(B=2)
    R2, t2 = cam2.extrinsics()
    v1 = v[0].detach().clone().requires_grad_()
    args = [v1] + [x.detach().clone().requires_grad_() for x in (R2, t2, cam2.intrinsics())]
    assert torch.autograd.gradcheck(lambda *a: tr.ops.project_points(*a), args)


def test_project_with_camera_object_learns_intrinsics():
    v, _ = _scene(B=1, V=4)
    cam = tr.PerspectiveCamera.look_at(torch.tensor([0.0, 0.0, -5.0], dtype=torch.float64), image_size=(20, 30))
    cam.requires_grad_()
    out = tr.project(v, cam)
    out[..., 0].sum().backward()
    # d(sum x)/d cx = number of vertices; d/d cy = 0
    assert cam.cx.grad.item() == pytest.approx(4.0)
    assert cam.cy.grad.item() == pytest.approx(0.0)
    assert cam.fx.grad is not None and cam.R.grad is not None and cam.t.grad is not None
    P = torch.einsum("ij,vj->vi", cam.R[0].detach(), v[0]) + cam.t[0].detach()
    assert cam.fx.grad.item() == pytest.approx((P[:, 0] / P[:, 2]).sum().item())


def test_float32_and_numpy_bridge_agree():
    v, cam = _scene(B=2, V=9, dtype=torch.float32)
    R, t = cam.extrinsics()
    K = cam.intrinsics()
    out_t = tr.ops.project_points(v, R, t, K)
    out_n = trnp.project(v.numpy(), R.numpy(), t.numpy(), K.numpy())
    assert out_t.dtype == torch.float32 and out_n.dtype == np.float32
    np.testing.assert_allclose(out_n, out_t.numpy(), rtol=1e-6)
    g = np.random.default_rng(0).standard_normal(out_n.shape).astype(np.float32)
    out, pullback = trnp.vjp(trnp.project, v.numpy(), R.numpy(), t.numpy(), K.numpy())
    gv, gR, gt, gK = pullback(g)
    args = [x.detach().clone().requires_grad_() for x in (v, R, t, K)]
    tr.ops.project_points(*args).backward(torch.from_numpy(g))
    for a, b in zip((gv, gR, gt, gK), args):
        assert a.shape == tuple(b.shape)
        np.testing.assert_allclose(a, b.grad.numpy(), rtol=1e-4, atol=1e-4)


def test_camera_plane_points_stay_finite():
    v = torch.tensor([[[0.5, 0.5, 0.0], [1.0, 0.0, -2.0]]], dtype=torch.float64)
    out = tr.ops.project_points(v, torch.eye(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64),
                                torch.tensor([10.0, 10.0, 5.0, 5.0], dtype=torch.float64))
    assert torch.isfinite(out).all()
    # behind the camera: homogeneous coordinates (x z, y z, z) are recovered exactly
    assert out[0, 1, 0].item() * out[0, 1, 2].item() == pytest.approx(10 * 1.0 + 5 * -2.0)


def test_bad_input():
    v, cam = _scene(B=2)
    R, t = cam.extrinsics()
    K = cam.intrinsics()
    with pytest.raises(ValueError, match="verts"):
        tr.ops.project_points(v[..., :2], R, t, K)
    with pytest.raises(TypeError, match="verts"):
        tr.ops.project_points(v.to(torch.int32), R, t, K)
    with pytest.raises(ValueError, match="NaN"):
        bad = v.clone()
        bad[0, 0, 0] = float("nan")
        tr.ops.project_points(bad, R, t, K)
    with pytest.raises(TypeError, match="dtype"):
        tr.ops.project_points(v.float(), R, t, K)
    with pytest.raises(ValueError, match="batch"):
        tr.ops.project_points(torch.randn(3, 4, 3, dtype=torch.float64), R, t, K)
    with pytest.raises(ValueError, match="intrinsics"):
        tr.ops.project_points(v, R, t, K[:, :3])
    with pytest.raises(TypeError, match="torch"):
        trnp.project(v, R.numpy(), t.numpy(), K.numpy())


def test_empty_vertex_set():
    v = torch.zeros(1, 0, 3, dtype=torch.float64, requires_grad=True)
    out = tr.ops.project_points(v, torch.eye(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64),
                                torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=torch.float64))
    assert out.shape == (1, 0, 3)
    out.sum().backward()
    assert v.grad.shape == (1, 0, 3)
