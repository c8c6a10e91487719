"""knn1 primitive and geometry distances: Chamfer, Hausdorff, F-score, point-to-mesh."""
import math

import numpy as np
import pytest
import torch

from taichirast._prims.chamfer import PRIM
from taichirast.geometry.distances import (chamfer_distance, fscore, hausdorff_distance, knn1,
                                           point_to_mesh_distance)


def _cloud(*shape, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(*shape, generator=g, dtype=dtype)


def _ref_chamfer(x, y):
    D = torch.cdist(x, y) ** 2
    return D.min(-1).values.mean(-1) + D.min(-2).values.mean(-1)


def _rot(seed=3):
    q, _ = torch.linalg.qr(_cloud(3, 3, seed=seed))
    return q * torch.sign(torch.linalg.det(q))


# ------------------------------------------------------------------ knn1 vs brute force
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_knn1_matches_cdist(dtype):
    x, y = _cloud(2, 37, 3, seed=1, dtype=dtype), _cloud(2, 23, 3, seed=2, dtype=dtype)
    d, i = knn1(x, y)
    D = ((x[:, :, None] - y[:, None]) ** 2).sum(-1)
    m, a = D.min(-1)
    assert d.shape == (2, 37) and i.dtype == torch.int32 and d.dtype == dtype
    assert torch.equal(i.long(), a)
    torch.testing.assert_close(d, m)


def test_knn1_backward_matches_brute_force():
    x = _cloud(2, 17, 3, seed=4).requires_grad_()
    y = _cloud(2, 9, 3, seed=5).requires_grad_()
    w = _cloud(2, 17, seed=6)
    (knn1(x, y)[0] * w).sum().backward()
    x2, y2 = x.detach().clone().requires_grad_(), y.detach().clone().requires_grad_()
    ((torch.cdist(x2, y2) ** 2).min(-1).values * w).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad)
    torch.testing.assert_close(y.grad, y2.grad)


def test_knn1_lengths_broadcast_and_empty_x():
    x, y = _cloud(2, 11, 3, seed=7), _cloud(1, 8, 3, seed=8)  # y broadcasts over the batch
    d, i = knn1(x, y, x_lengths=torch.tensor([11, 5]), y_lengths=torch.tensor([8, 3]))
    full = ((x[:, :, None] - y[:, None]) ** 2).sum(-1)
    m0, a0 = full[0].min(-1)
    m1, a1 = full[1, :5, :3].min(-1)
    torch.testing.assert_close(d[0], m0)
    torch.testing.assert_close(d[1, :5], m1)
    assert torch.equal(i[1, :5].long(), a1) and (i[1, 5:] == -1).all() and (d[1, 5:] == 0).all()
    d, i = knn1(np.zeros((2, 0, 3)), np.ones((2, 4, 3)))
    assert isinstance(d, np.ndarray) and d.shape == (2, 0) and i.shape == (2, 0)


def test_knn1_numpy_vjp_agrees_with_torch():
    x, y = _cloud(2, 13, 3, seed=9), _cloud(2, 7, 3, seed=10)
    g = _cloud(2, 13, seed=11)
    (d, i), pullback = PRIM.numpy_vjp(x.numpy(), y.numpy())
    gx, gy = pullback((g.numpy(), None))
    xt, yt = x.clone().requires_grad_(), y.clone().requires_grad_()
    dt, it = knn1(xt, yt)
    (dt * g).sum().backward()
    np.testing.assert_allclose(d, dt.detach().numpy(), rtol=1e-12)
    np.testing.assert_array_equal(i, it.numpy())
    np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(gy, yt.grad.numpy(), rtol=1e-12)


# ------------------------------------------------------------------ chamfer
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_chamfer_matches_cdist(dtype):
    x, y = _cloud(2, 41, 3, seed=12, dtype=dtype), _cloud(2, 29, 3, seed=13, dtype=dtype)
    ref = _ref_chamfer(x, y)
    torch.testing.assert_close(chamfer_distance(x, y, reduction="none"), ref)
    torch.testing.assert_close(chamfer_distance(x, y), ref.mean())
    torch.testing.assert_close(chamfer_distance(x, y, reduction="sum"), ref.sum())
    D = torch.cdist(x, y)
    total, cx, cy = chamfer_distance(x, y, reduction="none", squared=False, return_parts=True)
    torch.testing.assert_close(cx, D.min(-1).values.mean(-1))
    torch.testing.assert_close(cy, D.min(-2).values.mean(-1))
    torch.testing.assert_close(total, cx + cy)
    c = chamfer_distance(x[0], y[0], reduction="none")  # unbatched -> scalar
    assert c.dim() == 0
    torch.testing.assert_close(c, ref[0])


def test_chamfer_lengths_equal_unpadded():
    x, y = _cloud(2, 15, 3, seed=14), _cloud(2, 10, 3, seed=15)
    c = chamfer_distance(x, y, reduction="none", x_lengths=torch.tensor([15, 6]), y_lengths=torch.tensor([4, 10]))
    torch.testing.assert_close(c[0], _ref_chamfer(x[0], y[0, :4]))
    torch.testing.assert_close(c[1], _ref_chamfer(x[1, :6], y[1]))


@pytest.mark.parametrize("squared", [True, False])
def test_chamfer_gradcheck(squared):
    x = _cloud(2, 7, 3, seed=16).requires_grad_()
    y = _cloud(2, 5, 3, seed=17).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: chamfer_distance(a, b, reduction="none", squared=squared), (x, y))


def test_chamfer_float32_smoke_and_zero_distance_grad():
    x = _cloud(2, 50, 3, seed=18, dtype=torch.float32).requires_grad_()
    chamfer_distance(x, x.detach().clone(), squared=False).backward()  # all distances 0: grad 0, not NaN
    assert torch.isfinite(x.grad).all() and (x.grad == 0).all()
    y = _cloud(2, 30, 3, seed=19, dtype=torch.float32).requires_grad_()
    loss = chamfer_distance(x, y)
    loss.backward()
    assert torch.isfinite(y.grad).all()


def test_chamfer_rotation_invariant():
    x, y = _cloud(2, 31, 3, seed=20), _cloud(2, 19, 3, seed=21)
    R = _rot()
    torch.testing.assert_close(chamfer_distance(x @ R.T, y @ R.T, reduction="none"),
                               chamfer_distance(x, y, reduction="none"))


def test_chamfer_numpy_in_numpy_out_agrees_with_torch():
    x, y = _cloud(2, 21, 3, seed=22), _cloud(2, 12, 3, seed=23)
    c_np = chamfer_distance(x.numpy(), y.numpy(), reduction="none")
    assert isinstance(c_np, np.ndarray) and c_np.dtype == np.float64
    np.testing.assert_allclose(c_np, chamfer_distance(x, y, reduction="none").numpy(), rtol=1e-12)
    h = hausdorff_distance(x.numpy(), y.numpy())
    assert isinstance(h, np.ndarray)
    np.testing.assert_allclose(h, hausdorff_distance(x, y).numpy(), rtol=1e-12)


# ------------------------------------------------------------------ hausdorff, fscore
def test_hausdorff_known_values():
    x = torch.tensor([[0.0, 0, 0], [1, 0, 0]], dtype=torch.float64)
    y = torch.tensor([[0.0, 0, 0], [1, 0, 0], [1, 3, 0]], dtype=torch.float64)
    assert float(hausdorff_distance(x, y)) == pytest.approx(3.0)  # y's (1,3,0) is 3 from (1,0,0)
    assert float(hausdorff_distance(x, y, squared=True)) == pytest.approx(9.0)
    assert float(hausdorff_distance(x, x)) == 0.0
    xb = torch.stack([x, x + torch.tensor([0.0, 0.0, 2.0], dtype=torch.float64)])
    yb = torch.stack([x, x])
    torch.testing.assert_close(hausdorff_distance(xb, yb), torch.tensor([0.0, 2.0], dtype=torch.float64))
    xg = x.clone().requires_grad_()
    hausdorff_distance(xg, y).backward()  # d/dx of |y2 - x1| = (x1 - y2) / 3 = (0, -1, 0)
    torch.testing.assert_close(xg.grad, torch.tensor([[0.0, 0, 0], [0, -1, 0]], dtype=torch.float64))


def test_fscore_known_values():
    gt = np.array([[0.0, 0, 0], [1, 0, 0], [2, 0, 0], [3, 0, 0]])
    pred = np.array([[0.0, 0, 0.05], [1, 0, 0.05], [10, 0, 0]])
    p, r, f = fscore(pred, gt, threshold=0.1)
    assert isinstance(p, np.ndarray)
    assert float(p) == pytest.approx(2 / 3) and float(r) == pytest.approx(0.5)
    assert float(f) == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    p, r, f = fscore(torch.tensor(pred), torch.tensor(gt), threshold=0.01)
    assert float(p) == 0.0 and float(r) == 0.0 and float(f) == 0.0
    p, r, f = fscore(torch.tensor(gt)[None], torch.tensor(gt)[None], threshold=1e-6)
    assert p.shape == (1,) and float(f[0]) == 1.0


# ------------------------------------------------------------------ point to mesh
def _tet():
    verts = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=torch.float64)
    faces = torch.tensor([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    return verts, faces


def test_point_to_mesh_known_values_and_brute_force():
    verts, faces = _tet()
    pts = torch.tensor([[0.2, 0.2, -0.5],   # below face 0: plane distance 0.5
                        [-1.0, -1.0, 0.0],  # nearest the corner (0,0,0): 2
                        [0.5, -2.0, -2.0],  # nearest the edge (0,0,0)-(1,0,0): 8
                        [0.1, 0.1, 0.1]],   # inside, nearest faces 0/1/2 at 0.1: 0.01
                       dtype=torch.float64)
    d, fid = point_to_mesh_distance(pts, verts, faces, return_face_ids=True)
    torch.testing.assert_close(d, torch.tensor([0.25, 2.0, 8.0, 0.01], dtype=torch.float64))
    assert fid[0] == 0 and fid[3] == 0  # ties -> smallest face index
    # brute force: dense sampling of the surface bounds the exact distance from above, closely
    g = torch.linspace(0, 1, 201, dtype=torch.float64)
    u, v = torch.meshgrid(g, g, indexing="ij")
    keep = (u + v) <= 1
    u, v = u[keep], v[keep]
    tri = verts[faces]
    samples = (tri[:, 0, None] * (1 - u - v)[:, None] + tri[:, 1, None] * u[:, None]
               + tri[:, 2, None] * v[:, None]).reshape(-1, 3)
    q = _cloud(40, 3, seed=24) * 3 - 1
    dense = (torch.cdist(q, samples) ** 2).min(-1).values
    exact = point_to_mesh_distance(q, verts, faces, chunk_elems=7)  # tiny chunks exercise the tiling
    assert (exact <= dense + 1e-12).all() and (dense - exact).max() < 2e-2


def test_point_to_mesh_gradcheck_batched_and_numpy():
    verts, faces = _tet()
    verts = (verts + 0.1 * _cloud(4, 3, seed=25)).requires_grad_()
    pts = (_cloud(2, 6, 3, seed=26) * 2 - 0.5).requires_grad_()
    assert torch.autograd.gradcheck(lambda p, v: point_to_mesh_distance(p, v, faces), (pts, verts))
    d_np = point_to_mesh_distance(pts.detach().numpy(), verts.detach().numpy(), faces.numpy())
    assert isinstance(d_np, np.ndarray) and d_np.shape == (2, 6)
    np.testing.assert_allclose(d_np, point_to_mesh_distance(pts, verts, faces).detach().numpy(), rtol=1e-12)
    # degenerate (zero-area) triangle: finite distance and gradient
    vd = torch.tensor([[0.0, 0, 0], [1, 0, 0], [2, 0, 0]], dtype=torch.float64, requires_grad=True)
    d = point_to_mesh_distance(torch.tensor([[0.5, 1.0, 0.0]], dtype=torch.float64), vd, torch.tensor([[0, 1, 2]]))
    d.sum().backward()
    assert float(d.detach()) == pytest.approx(1.0) and torch.isfinite(vd.grad).all()


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("call, exc, words", [
    (lambda: chamfer_distance(torch.zeros(4, 2), torch.zeros(3, 3)), ValueError,
     "chamfer_distance: x must have size 3"),
    (lambda: chamfer_distance(torch.zeros(4, 3), torch.zeros(2, 3, 3, 3)), ValueError, "chamfer_distance: y must"),
    (lambda: chamfer_distance(torch.zeros(4, 3, dtype=torch.int64), torch.zeros(3, 3)), TypeError, "x must be float"),
    (lambda: chamfer_distance(torch.zeros(4, 3), torch.zeros(3, 3, dtype=torch.float64)), TypeError,
     "x=float32, y=float64"),
    (lambda: chamfer_distance(torch.tensor([[0.0, math.nan, 0]]), torch.zeros(3, 3)), ValueError, "x contains NaN"),
    (lambda: chamfer_distance(torch.zeros(4, 3), torch.zeros(0, 3)), ValueError, "y is empty"),
    (lambda: chamfer_distance(torch.zeros(0, 3), torch.zeros(3, 3)), ValueError, "x is empty"),
    (lambda: chamfer_distance(torch.zeros(2, 4, 3), torch.zeros(3, 3, 3)), ValueError, "batch sizes must agree"),
    (lambda: chamfer_distance(torch.zeros(4, 3), torch.zeros(3, 3), reduction="max"), ValueError, "reduction"),
    (lambda: chamfer_distance(torch.zeros(4, 3), torch.zeros(3, 3), x_lengths=torch.tensor([5])), ValueError,
     "x_lengths"),
    (lambda: knn1(np.zeros((4, 3)), np.zeros((0, 3))), ValueError, "y is empty"),
    (lambda: knn1(np.zeros((4, 3)), np.full((2, 3), np.inf)), ValueError, "knn1: y contains NaN or inf"),
    (lambda: knn1(np.zeros((4, 3)), np.zeros((2, 3), dtype=np.int32)), TypeError, "knn1: y must be float"),
    (lambda: hausdorff_distance(torch.zeros(4, 3), torch.zeros(0, 3)), ValueError, "y is empty"),
    (lambda: fscore(torch.zeros(4, 3), torch.zeros(3, 3), threshold=-1.0), ValueError, "threshold"),
    (lambda: point_to_mesh_distance(torch.zeros(4, 3), torch.zeros(3, 3), torch.tensor([[0, 1, 3]])), ValueError,
     "faces has indices"),
    (lambda: point_to_mesh_distance(torch.zeros(4, 3), torch.zeros(3, 3), torch.zeros(0, 3, dtype=torch.long)),
     ValueError, "faces is empty"),
    (lambda: point_to_mesh_distance(torch.zeros(4, 2), torch.zeros(3, 3), torch.tensor([[0, 1, 2]])), ValueError,
     "points must have size 3"),
])
def test_bad_input(call, exc, words):
    with pytest.raises(exc, match=words):
        call()
