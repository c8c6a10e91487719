"""Mesh regularisers: values on known meshes and float64 gradchecks."""
import pytest
import torch

from taichirast import meshes
from taichirast.geometry import edge_length_loss, laplacian_smoothing, mesh_edges, silhouette_iou


def test_mesh_edges_counts():
    v, f = meshes.icosphere(2)
    e = mesh_edges(torch.from_numpy(f))
    assert e.shape == (3 * f.shape[0] // 2, 2)  # closed mesh: E = 3F/2
    assert (e[:, 0] < e[:, 1]).all()
    with pytest.raises(ValueError, match="faces"):
        mesh_edges(torch.zeros(4, 2, dtype=torch.long))


def test_laplacian_values_and_grad():
    # a flat regular grid has zero Laplacian at interior vertices
    v, f = meshes.plane(2.0, segments=4)
    v = torch.from_numpy(v).double()
    f = torch.from_numpy(f)
    base = laplacian_smoothing(v, f)
    bumped = v.clone()
    bumped[12, 2] = 0.5  # interior vertex lifted
    assert laplacian_smoothing(bumped, f) > base
    # scaling the mesh by s scales the loss by s^2
    vs, fs = meshes.icosphere(1)
    vs = torch.from_numpy(vs).double()
    assert laplacian_smoothing(2 * vs, torch.from_numpy(fs)).item() == pytest.approx(
        4 * laplacian_smoothing(vs, torch.from_numpy(fs)).item())
    x = (vs + 0.01 * torch.randn_like(vs)).requires_grad_()
    assert torch.autograd.gradcheck(lambda a: laplacian_smoothing(a, torch.from_numpy(fs)), (x,))


def test_edge_length_loss():
    v = torch.tensor([[0.0, 0, 0], [2, 0, 0], [0, 2, 0]], dtype=torch.float64, requires_grad=True)
    f = torch.tensor([[0, 1, 2]])
    expected = (4 + 4 + 8) / 3
    assert edge_length_loss(v, f).item() == pytest.approx(expected)
    assert edge_length_loss(v, f, target=2.0).item() == pytest.approx((8**0.5 - 2) ** 2 / 3)
    assert torch.autograd.gradcheck(lambda a: edge_length_loss(a, f, 1.0), (v,))


def test_silhouette_iou():
    a = torch.zeros(2, 4, 4)
    b = torch.zeros(2, 4, 4)
    a[0, :2] = 1
    b[0, 1:3] = 1
    iou = silhouette_iou(a, b)
    assert iou[0].item() == pytest.approx(4 / 12) and iou[1].item() == 1.0
    with pytest.raises(ValueError, match="shapes"):
        silhouette_iou(a, b[:, :3])
