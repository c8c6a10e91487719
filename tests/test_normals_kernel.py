"""The Taichi area-weighted vertex-normal kernel against the torch reference, gradients, edge cases."""
import numpy as np
import pytest
import torch

import taichirast as tr
from taichirast.geometry import mesh as M
from taichirast._prims.normals import PRIM


def _mesh(B=2, seed=0):
    v, f = tr.meshes.icosphere(2)
    g = torch.Generator().manual_seed(seed)
    v = torch.from_numpy(v).double()
    verts = torch.stack([v + 0.05 * torch.randn(v.shape, generator=g, dtype=torch.float64) for _ in range(B)])
    # an isolated vertex (in no face) and a degenerate face (two equal corners)
    verts = torch.cat([verts, torch.zeros(B, 1, 3, dtype=torch.float64)], 1)
    faces = torch.cat([torch.from_numpy(f), torch.tensor([[0, 0, 1]], dtype=torch.int32)])
    return verts, faces


def test_kernel_matches_torch_reference_and_is_used_by_default(monkeypatch):
    verts, faces = _mesh()
    ref = M._vertex_normals_torch(verts, faces.long(), "area")
    out = PRIM.torch_call(verts, faces)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    calls = []
    real_call = PRIM.torch_call
    monkeypatch.setattr(PRIM, "torch_call", lambda *a, **k: calls.append(1) or real_call(*a, **k))
    torch.testing.assert_close(M.vertex_normals(verts, faces), ref, rtol=1e-12, atol=1e-12)
    assert calls == [1]                                   # "auto" on a CPU tensor runs the kernel
    torch.testing.assert_close(M.vertex_normals(verts, faces, backend="torch"), ref)
    assert calls == [1]                                   # "torch" does not
    with pytest.raises(ValueError, match="backend"):
        M.vertex_normals(verts, faces, backend="cuda")
    assert float(out[:, -1].abs().max()) == 0.0          # the isolated vertex: zero, not NaN
    assert torch.allclose(out[:, :-1].norm(dim=-1), torch.ones(2, out.shape[1] - 1, dtype=torch.float64))


def test_gradient_matches_reference_and_gradcheck():
    verts, faces = _mesh(B=2, seed=1)
    w = torch.randn(verts.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    grads = []
    for fn in (lambda v: PRIM.torch_call(v, faces), lambda v: M._vertex_normals_torch(v, faces.long(), "area")):
        v = verts.clone().requires_grad_()
        (fn(v) * w).sum().backward()
        grads.append(v.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-10, atol=1e-10)
    small_v, small_f = tr.meshes.icosahedron()
    sv = torch.from_numpy(small_v).double().requires_grad_()
    assert torch.autograd.gradcheck(lambda v: PRIM.torch_call(v, torch.from_numpy(small_f)), (sv,))


def test_numpy_and_bad_input():
    v, f = tr.meshes.icosphere(1)
    n = PRIM.numpy_call(v.astype(np.float64), f)   # the NumPy bridge runs the same kernel
    ref = M.vertex_normals(torch.from_numpy(v).double(), torch.from_numpy(f)).numpy()
    np.testing.assert_allclose(n[0], ref, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="faces"):
        PRIM.torch_call(torch.from_numpy(v), torch.from_numpy(f) + 1000)
    with pytest.raises(ValueError, match="NaN"):
        PRIM.torch_call(torch.from_numpy(v) * float("nan"), torch.from_numpy(f))
    empty = PRIM.torch_call(torch.zeros(0, 3), torch.zeros(0, 3, dtype=torch.int32))
    assert empty.shape == (1, 0, 3)


def test_torch_backend_is_twice_differentiable():
    verts, faces = _mesh(B=1)
    v = verts.clone().requires_grad_()
    (g,) = torch.autograd.grad(M.vertex_normals(v, faces, backend="torch")[..., 0].sum(), v, create_graph=True)
    g.sum().backward()
    assert v.grad is not None and torch.isfinite(v.grad).all()
