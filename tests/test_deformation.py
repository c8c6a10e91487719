"""ACAP / ARAP deformation energies, the ARAP local/global solver and the non-rigid deformation demo."""
import math

import numpy as np
import pytest
import torch

from taichirast import meshes
from taichirast.geometry.deformation import acap_energy, arap_energy, arap_solve, arap_weights
from taichirast.geometry.transforms import (
    matrix_to_quaternion, quaternion_conjugate, quaternion_multiply, random_rotation_matrices,
)

WEIGHTS = ["uniform", "cotangent"]


def plane(res=4):
    v, f = meshes.plane(2.0, res)
    return torch.from_numpy(v).double(), torch.from_numpy(f)


def bend(v):
    out = v.clone()
    out[:, 2] = 0.5 * v[:, 0] ** 2
    return out


def rigid(v, seed=0):
    g = torch.Generator().manual_seed(seed)
    R = random_rotation_matrices(1, generator=g, dtype=torch.float64)[0]
    return v @ R.T + torch.tensor([0.3, -1.0, 2.0], dtype=torch.float64), R


# ----------------------------------------------------------------------------- zero / positive
@pytest.mark.parametrize("weights", WEIGHTS)
def test_arap_zero_for_rest_and_rigid_positive_for_bend(weights):
    v, f = plane()
    moved, _ = rigid(v)
    assert arap_energy(v, v, f, weights).item() < 1e-20
    assert arap_energy(v, moved, f, weights).item() < 1e-20
    assert arap_energy(v, bend(v), f, weights).item() > 1e-2
    # ARAP is not scale invariant
    assert arap_energy(v, 1.5 * v, f, weights).item() > 1e-2


def test_acap_zero_for_rest_rigid_and_uniform_scale_positive_for_bend():
    v, f = plane()
    moved, R = rigid(v)
    for d in (v, moved, 2.5 * moved, 0.3 * v):
        assert acap_energy(v, d, f).item() < 1e-20
    assert acap_energy(v, bend(v), f).item() > 1e-4
    # explicit quaternions: |q|^2 = scale, rotation R
    q = matrix_to_quaternion(R).expand(v.shape[0], 4) * math.sqrt(2.5)
    assert acap_energy(v, 2.5 * moved, f, quaternions=q).item() < 1e-20
    # without the conformal scale the same quaternions only rotate: scaled pose costs
    assert acap_energy(v, 2.5 * moved, f, quaternions=q, conformal=False).item() > 1e-2
    assert acap_energy(v, moved, f, quaternions=q, conformal=False).item() < 1e-20
    assert acap_energy(v, 2.0 * v, f, conformal=False).item() > 1e-2


def test_acap_matches_tf_graphics_definition():
    """Reference implementation of TF Graphics' energy, written out edge by edge."""
    g = torch.Generator().manual_seed(1)
    v, f = plane(2)
    d = v + 0.1 * torch.randn(v.shape, generator=g, dtype=torch.float64)
    q = torch.randn(v.shape[0], 4, generator=g, dtype=torch.float64)
    e = torch.tensor([[0, 1], [1, 4], [4, 3], [0, 4], [2, 5], [5, 8]])
    wv = torch.rand(v.shape[0], generator=g, dtype=torch.float64)
    we = torch.rand(e.shape[0], generator=g, dtype=torch.float64)

    def rot(qq, p):  # q p q* with Hamilton products
        w, u = qq[0], qq[1:]
        qp = torch.cat([-(u * p).sum()[None], w * p + torch.cross(u, p, dim=0)])
        a, b = qp[0], qp[1:]
        return -a * u + w * b - torch.cross(b, u, dim=0)  # (qp) q*, vector part

    tij, tji = [], []
    for k, (i, j) in enumerate(e.tolist()):
        tij.append(((wv[i] * we[k] * ((d[i] - d[j]) - rot(q[i], v[i] - v[j]))) ** 2).sum())
        tji.append(((wv[j] * we[k] * ((d[j] - d[i]) - rot(q[j], v[j] - v[i]))) ** 2).sum())
    ref = (torch.stack(tij).mean() + torch.stack(tji).mean()) / 2
    got = acap_energy(v, d, e, quaternions=q, vertex_weight=wv, edge_weight=we)
    assert torch.allclose(got, ref, rtol=1e-12)
    terms = acap_energy(v, d, e, quaternions=q, vertex_weight=wv, edge_weight=we, aggregate=False)
    assert terms.shape == (2 * e.shape[0],)
    assert torch.allclose(terms, torch.stack(tij + tji), rtol=1e-12)


def test_acap_optimal_quaternions_lower_bound():
    """quaternions=None gives the minimum over quaternions: any explicit choice is no lower."""
    g = torch.Generator().manual_seed(2)
    v, f = plane(3)
    d = bend(v) + 0.05 * torch.randn(v.shape, generator=g, dtype=torch.float64)
    e_opt = acap_energy(v, d, f).item()
    q = torch.zeros(v.shape[0], 4, dtype=torch.float64)
    q[:, 0] = 1
    q.requires_grad_(True)
    opt = torch.optim.Adam([q], lr=0.05)
    for _ in range(200):
        loss = acap_energy(v, d, f, quaternions=q)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert acap_energy(v, d, f, quaternions=q).item() >= e_opt - 1e-12
    assert acap_energy(v, d, f, quaternions=q).item() < 1.2 * e_opt  # and Adam gets close to it


# ------------------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("weights", WEIGHTS)
def test_arap_gradcheck(weights):
    g = torch.Generator().manual_seed(3)
    v, f = plane(2)
    d = (bend(v) + 0.1 * torch.randn(v.shape, generator=g, dtype=torch.float64)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: arap_energy(v, x, f, weights), (d,), atol=1e-6, rtol=1e-5)


def test_acap_gradcheck_vertices_and_quaternions():
    g = torch.Generator().manual_seed(4)
    v, f = plane(2)
    d = (bend(v) + 0.1 * torch.randn(v.shape, generator=g, dtype=torch.float64)).requires_grad_(True)
    q = torch.randn(v.shape[0], 4, generator=g, dtype=torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x, qq: acap_energy(v, x, f, quaternions=qq), (d, q))
    assert torch.autograd.gradcheck(lambda x, qq: acap_energy(v, x, f, quaternions=qq, conformal=False), (d, q))
    # optimal similarities chosen inside: envelope-theorem gradient is exact
    assert torch.autograd.gradcheck(lambda x: acap_energy(v, x, f), (d,), atol=1e-6, rtol=1e-5)


# ----------------------------------------------------------------------------------- invariance
def test_rotating_rest_and_deformed_together_leaves_energies_unchanged():
    v, f = plane(4)
    d = bend(v)
    _, R = rigid(v, seed=5)
    vr, dr = v @ R.T + 1.0, d @ R.T - 2.0
    for w in WEIGHTS:
        assert math.isclose(arap_energy(v, d, f, w).item(), arap_energy(vr, dr, f, w).item(), rel_tol=1e-9)
    assert math.isclose(acap_energy(v, d, f).item(), acap_energy(vr, dr, f).item(), rel_tol=1e-9)
    # explicit quaternions must be conjugated by the rotation too: q -> q_R q q_R*
    q = torch.randn(v.shape[0], 4, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    qR = matrix_to_quaternion(R).expand_as(q)
    qr = quaternion_multiply(quaternion_multiply(qR, q), quaternion_conjugate(qR))
    assert math.isclose(acap_energy(v, d, f, quaternions=q).item(), acap_energy(vr, dr, f, quaternions=qr).item(),
                        rel_tol=1e-9)


def test_batched_matches_unbatched():
    v, f = plane(3)
    d = torch.stack([bend(v), 1.3 * v, rigid(v)[0]])
    for fn in (lambda x: arap_energy(v, x, f, "cotangent"), lambda x: acap_energy(v, x, f)):
        out = fn(d)
        assert out.shape == (3,)
        assert torch.allclose(out, torch.stack([fn(x) for x in d]), atol=1e-12)


def test_float32_default():
    v, f = plane(3)
    out = arap_energy(v.float(), bend(v).float(), f)
    assert out.dtype == torch.float32 and out.item() > 0
    assert acap_energy(v.float(), v.float(), f).dtype == torch.float32


# --------------------------------------------------------------------------------------- solver
def test_arap_solve_reaches_handles_and_beats_naive():
    v, f = plane(6)
    x = v[:, 0]
    pinned = torch.nonzero(x < -1 + 1e-6).flatten()
    handles = torch.nonzero(x > 1 - 1e-6).flatten()
    target = v[handles].clone()
    target[:, 2] += 0.8
    idx = torch.cat([pinned, handles])
    pos = torch.cat([v[pinned], target])
    out, hist = arap_solve(v, f, idx, pos, iterations=8, return_history=True)
    assert out.shape == v.shape and out.dtype == v.dtype
    assert (out[idx] - pos).abs().max().item() < 1e-12
    naive = v.clone()
    naive[idx] = pos
    e_out = arap_energy(v, out, f, "cotangent").item()
    assert e_out < 0.1 * arap_energy(v, naive, f, "cotangent").item()
    energies = [arap_energy(v, h, f, "cotangent").item() for h in hist]
    assert all(b <= a + 1e-10 for a, b in zip(energies, energies[1:]))  # local/global never increases it
    # a rigid motion of the rest pose is a fixed point of the iteration (zero energy)
    moved, _ = rigid(v, seed=7)
    out = arap_solve(v, f, idx, moved[idx], iterations=3, weights="uniform", init=moved)
    assert (out - moved).abs().max().item() < 1e-10


def test_numpy_in_numpy_out():
    v, f = plane(3)
    vn, dn, fn = v.numpy(), bend(v).numpy(), f.numpy()
    a = arap_energy(vn, dn, fn, "cotangent")
    c = acap_energy(vn, dn, fn)
    assert isinstance(a, np.ndarray) and isinstance(c, np.ndarray)
    assert math.isclose(float(a), arap_energy(v, bend(v), f, "cotangent").item(), rel_tol=1e-12)
    e, w = arap_weights(vn, fn)
    assert isinstance(e, np.ndarray) and isinstance(w, np.ndarray) and w.shape == (e.shape[0],)
    out = arap_solve(vn, fn, np.array([0, 1, 15]), vn[[0, 1, 15]] + 0.1, iterations=2)
    assert isinstance(out, np.ndarray) and out.shape == vn.shape


def test_bad_input_raises_naming_argument():
    v, f = plane(2)
    with pytest.raises(ValueError, match="verts_deformed"):
        arap_energy(v, v[:, :2], f)
    with pytest.raises(ValueError, match="verts_rest"):
        acap_energy(v[:, :2], v, f)
    with pytest.raises(ValueError, match="verts_rest and verts_deformed"):
        arap_energy(v, v[:-1], f)
    with pytest.raises(ValueError, match="faces"):
        arap_energy(v, v, f.double())
    with pytest.raises(ValueError, match="faces"):
        arap_energy(v, v, f + 100)
    with pytest.raises(ValueError, match="weights"):
        arap_energy(v, v, f, "harmonic")
    with pytest.raises(ValueError, match="faces_or_neighbors"):
        acap_energy(v, v, torch.zeros(3, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="quaternions"):
        acap_energy(v, v, f, quaternions=torch.zeros(v.shape[0], 3))
    with pytest.raises(ValueError, match="edge_weight"):
        acap_energy(v, v, f, edge_weight=torch.ones(2))
    with pytest.raises(ValueError, match="handle_idx"):
        arap_solve(v, f, torch.tensor([0, 0]), v[[0, 0]])
    with pytest.raises(ValueError, match="handle_pos"):
        arap_solve(v, f, torch.tensor([0, 1]), v[[0]])
    with pytest.raises(ValueError, match="iterations"):
        arap_solve(v, f, torch.tensor([0]), v[[0]], iterations=0)


# ----------------------------------------------------------------------------------------- demo
def test_demo_smoke(tmp_path, capsys):
    from demo_support import assert_outputs_written, load_demo

    demo = load_demo("non_rigid_deformation")
    out = tmp_path / "nrd"
    res = demo.main(["--steps", "4", "--res", "6", "--size", "48", "--out", str(out), "--quiet"])
    assert_outputs_written(out, ("before.png", "after.png", "optimization.gif"))
    assert res["handle_error"] < 1e-9
    assert res["energy"] < 0.25 * res["naive_energy"]
    assert "final energy" in capsys.readouterr().out
    res = demo.main(["--method", "acap", "--steps", "5", "--res", "4", "--size", "32", "--out", str(out), "--quiet"])
    assert res["handle_error"] < 1e-9 and np.isfinite(res["energy"])
