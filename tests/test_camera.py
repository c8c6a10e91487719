"""Cameras: look_at conventions (OpenCV), from_fov, orthographic, learnable tensors, bad input."""
import math

import pytest
import torch

import taichirast as tr


def test_look_at_axes_opencv():
    cam = tr.PerspectiveCamera.look_at([0.0, 0.0, 5.0], at=[0, 0, 0], up=[0, 1, 0], image_size=(100, 200))
    R, t = cam.extrinsics()
    # camera looks down -Z world; image x = world +x, image y (down) = world -y
    assert torch.allclose(R[0], torch.tensor([[1.0, 0, 0], [0, -1, 0], [0, 0, -1]]), atol=1e-6)
    assert torch.allclose(cam.center()[0], torch.tensor([0.0, 0.0, 5.0]), atol=1e-6)
    assert torch.allclose(R[0] @ R[0].T, torch.eye(3), atol=1e-6)
    assert torch.det(R[0]).item() == pytest.approx(1.0, abs=1e-6)
    # the look-at point projects to the image centre, a point above it (world +y) to a smaller row
    sv = tr.project(torch.tensor([[0.0, 0, 0], [0, 1, 0], [1, 0, 0]]), cam)
    assert sv[0, 0, 0].item() == pytest.approx(100.0) and sv[0, 0, 1].item() == pytest.approx(50.0)
    assert sv[0, 1, 1].item() < 50.0
    assert sv[0, 2, 0].item() > 100.0
    assert sv[0, 0, 2].item() == pytest.approx(5.0)


def test_from_fov_focal_length():
    cam = tr.PerspectiveCamera.look_at([0.0, 0.0, -3.0], fov_y=90.0, image_size=(64, 32))
    assert cam.fy.item() == pytest.approx(32.0)
    assert cam.fx.item() == pytest.approx(32.0)
    assert (cam.cx.item(), cam.cy.item()) == (16.0, 32.0)
    assert cam.fov_y().item() == pytest.approx(90.0, abs=1e-4)
    # a point at the edge of the vertical fov lands on the image border
    sv = tr.project(torch.tensor([[0.0, 3.0, 0.0]]), cam)
    assert sv[0, 0, 1].item() == pytest.approx(0.0, abs=1e-4)


def test_orthographic_scale():
    cam = tr.OrthographicCamera.look_at([0.0, 0.0, 5.0], height=4.0, image_size=(40, 60))
    sv = tr.project(torch.tensor([[1.0, 1.0, 0.0]]), cam)
    assert sv[0, 0, 0].item() == pytest.approx(30.0 + 10.0)
    assert sv[0, 0, 1].item() == pytest.approx(20.0 - 10.0)
    assert cam.orthographic and not tr.PerspectiveCamera.look_at([0, 0, 1.0]).orthographic


def test_look_at_is_differentiable_in_eye():
    eye = torch.tensor([0.3, 0.2, -4.0], dtype=torch.float64, requires_grad=True)
    pts = torch.tensor([[0.1, 0.2, 0.3], [-0.4, 0.1, 0.0]], dtype=torch.float64)

    def f(e):
        return tr.project(pts, tr.PerspectiveCamera.look_at(e, image_size=32))

    assert torch.autograd.gradcheck(f, (eye,))


def test_batched_cameras_and_to():
    eyes = torch.tensor([[0.0, 0, -4], [4.0, 0, 0], [0.0, 4, 0.01]])
    cam = tr.PerspectiveCamera.look_at(eyes, image_size=16)
    assert cam.batch_size == 3
    assert torch.allclose(cam.center(), eyes, atol=1e-5)
    cam64 = cam.to(dtype=torch.float64)
    assert cam64.R.dtype == torch.float64 and cam64.image_size == (16, 16)
    params = cam.requires_grad_().parameters()
    assert len(params) == 6 and all(p.requires_grad for p in params)


def test_bad_camera_input():
    with pytest.raises(ValueError, match="image_size"):
        tr.PerspectiveCamera.look_at([0, 0, -1.0], image_size=(0, 10))
    with pytest.raises(ValueError, match="fov_y"):
        tr.PerspectiveCamera.look_at([0, 0, -1.0], fov_y=180.0)
    with pytest.raises(ValueError, match="parallel"):
        tr.PerspectiveCamera.look_at([0, 1.0, 0], up=[0, 1.0, 0])
    with pytest.raises(ValueError, match="near"):
        tr.PerspectiveCamera(torch.eye(3), torch.zeros(3), 1.0, 1.0, 0.0, 0.0, (8, 8), near=2.0, far=1.0)
    with pytest.raises(ValueError, match="R must have shape"):
        tr.PerspectiveCamera(torch.eye(4), torch.zeros(3), 1.0, 1.0, 0.0, 0.0, (8, 8))
    with pytest.raises(ValueError, match="NaN"):
        tr.PerspectiveCamera(torch.eye(3), torch.tensor([0, 0, math.nan]), 1.0, 1.0, 0.0, 0.0, (8, 8))
    with pytest.raises(ValueError, match="batch"):
        tr.PerspectiveCamera(torch.eye(3).expand(2, 3, 3), torch.zeros(3, 3), 1.0, 1.0, 0.0, 0.0, (8, 8))


def test_convention_round_trips_through_camera():
    cam = tr.PerspectiveCamera.look_at(torch.tensor([0.5, 1.0, -3.0], dtype=torch.float64), image_size=(20, 30))
    R_gl, t_gl = cam.to_opengl()
    back = tr.PerspectiveCamera.from_opengl(R_gl, t_gl, cam.fx, cam.fy, cam.cx, cam.cy, cam.image_size)
    assert torch.allclose(back.R, cam.R) and torch.allclose(back.t, cam.t)
    R3, T3 = cam.to_pytorch3d()
    back = tr.PerspectiveCamera.from_pytorch3d(R3, T3, cam.fx, cam.fy, cam.cx, cam.cy, cam.image_size)
    assert torch.allclose(back.R, cam.R) and torch.allclose(back.t, cam.t)
    # a point in front of the camera has negative z in OpenGL camera space
    X = torch.tensor([0.1, 0.2, 0.0], dtype=torch.float64)
    assert (R_gl[0] @ X + t_gl[0])[2].item() < 0
