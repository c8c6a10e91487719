"""Mesh geometry (normals, areas, adjacency, sampling, subdivision, Laplacians), new primitives
and save_mesh: known values, float64 gradchecks, invariants."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from taichirast import io as trio
from taichirast import meshes
from taichirast.geometry import mesh as M


def _t(v, f, dtype=torch.float64):
    return torch.from_numpy(v).to(dtype), torch.from_numpy(f)


def _signed_volume(v, f):
    v = np.asarray(v, np.float64)
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    return np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0


def _is_closed_manifold(f):
    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    fwd = {tuple(x) for x in np.asarray(e).tolist()}
    return len(fwd) == len(e) and all((b, a) in fwd for a, b in fwd)


def _perturbed_sphere(level=0, seed=0):
    v, f = _t(*meshes.icosphere(level))
    g = torch.Generator().manual_seed(seed)
    return (v + 0.05 * torch.randn(v.shape, generator=g, dtype=v.dtype)).requires_grad_(), f


# ----------------------------------------------------------------------------- normals and areas
def test_cube_face_normals_axis_aligned_and_areas():
    v, f = _t(*meshes.cube(2.0))
    n = M.face_normals(v, f)
    centroids = v[f].mean(1)
    # each normal is a unit axis vector pointing away from the centre
    assert torch.allclose(n.abs().sum(-1), torch.ones(12, dtype=v.dtype))
    assert torch.allclose(n, torch.sign(centroids) * (centroids.abs() > 0.99))
    assert torch.allclose(M.face_normals(v, f, unit=False).norm(dim=-1), 2 * M.face_areas(v, f))
    assert M.face_areas(v, f).sum().item() == pytest.approx(24.0)


def test_sphere_areas_and_vertex_normals_radial():
    v, f = _t(*meshes.icosphere(4, radius=2.0))
    assert M.face_areas(v, f).sum().item() == pytest.approx(4 * math.pi * 4, rel=5e-3)
    for w in ("area", "angle", "uniform"):
        n = M.vertex_normals(v, f, weighting=w)
        assert torch.allclose(n, v / 2.0, atol=1e-2), w  # projected icosphere: not exactly radial
    # batch of two: the same as one at a time
    vb = torch.stack([v, 2 * v])
    assert torch.allclose(M.vertex_normals(vb, f)[1], M.vertex_normals(v, f), atol=1e-12)
    assert M.face_areas(vb, f).shape == (2, f.shape[0])


def test_gradcheck_normals_and_areas():
    v, f = _perturbed_sphere()
    assert torch.autograd.gradcheck(lambda x: M.face_normals(x, f), (v,))
    assert torch.autograd.gradcheck(lambda x: M.face_normals(x, f, unit=False), (v,))
    assert torch.autograd.gradcheck(lambda x: M.face_areas(x, f), (v,))
    for w in ("area", "angle", "uniform"):
        assert torch.autograd.gradcheck(lambda x: M.vertex_normals(x, f, weighting=w), (v,)), w


@settings(max_examples=15, deadline=None)
@given(st.lists(st.floats(-1.0, 1.0), min_size=4, max_size=4).filter(lambda q: sum(x * x for x in q) > 1e-2))
def test_rotating_mesh_rotates_normals(q):
    w, x, y, z = np.asarray(q) / np.linalg.norm(q)
    R = torch.tensor([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                      [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                      [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]], dtype=torch.float64)
    v, f = _perturbed_sphere(level=1, seed=3)
    v = v.detach()
    assert torch.allclose(M.face_normals(v @ R.T, f), M.face_normals(v, f) @ R.T, atol=1e-10)
    for wgt in ("area", "angle"):
        assert torch.allclose(M.vertex_normals(v @ R.T, f, wgt), M.vertex_normals(v, f, wgt) @ R.T, atol=1e-10)


# ------------------------------------------------------------------------------------- adjacency
def test_adjacency_helpers():
    v, f = _t(*meshes.icosphere(1))
    V, F = v.shape[0], f.shape[0]
    e, fe = M.edges(f, return_face_edges=True)
    assert e.shape == (3 * F // 2, 2) and fe.shape == (F, 3)
    assert torch.equal(torch.sort(e[fe], -1).values, torch.sort(torch.stack([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]], 1).long(), -1).values)
    adj = M.vertex_adjacency(f)
    assert adj.shape == (2, 2 * e.shape[0])
    deg = torch.bincount(adj[0], minlength=V)
    assert set(deg.tolist()) == {5, 6}
    A = torch.sparse_coo_tensor(adj, torch.ones(adj.shape[1]), (V, V), check_invariants=True).to_dense()
    assert torch.equal(A, A.T)
    offsets, fids = M.vertex_to_faces(f)
    assert offsets.shape == (V + 1,) and fids.shape == (3 * F,)
    for i in (0, 17, V - 1):
        mine = fids[offsets[i]:offsets[i + 1]]
        assert set(mine.tolist()) == set(torch.nonzero((f == i).any(1)).flatten().tolist())
    pairs, shared = M.face_adjacency(f, return_edges=True)
    assert pairs.shape == (e.shape[0], 2) and (pairs[:, 0] < pairs[:, 1]).all()
    for (a, b), (i, j) in zip(pairs.tolist()[:10], shared.tolist()[:10]):
        assert {i, j} <= set(f[a].tolist()) & set(f[b].tolist())
    # two triangles sharing one edge, plus a boundary: one pair
    assert M.face_adjacency(torch.tensor([[0, 1, 2], [0, 2, 3]])).tolist() == [[0, 1]]


# -------------------------------------------------------------------------------------- sampling
def test_sample_points_on_surface_and_reproducible():
    v, f = _t(*meshes.icosphere(3, radius=1.5), dtype=torch.float32)
    g = torch.Generator().manual_seed(0)
    p, n = M.sample_points(v, f, 2000, generator=g, return_normals=True)
    assert p.shape == (2000, 3) and n.shape == (2000, 3)
    r = p.norm(dim=-1)
    assert (r <= 1.5 + 1e-5).all() and (r > 1.5 * 0.99).all()  # on the flat faces of the icosphere
    assert ((n * p).sum(-1) / r > 0.99).all()  # face normals ~ radial
    p2 = M.sample_points(v, f, 2000, generator=torch.Generator().manual_seed(0))
    assert torch.equal(p, p2)
    pb = M.sample_points(torch.stack([v, 2 * v]), f, 100, generator=g)
    assert pb.shape == (2, 100, 3)


def test_sample_density_area_proportional():
    # two disjoint triangles with areas 1 and 3
    v = torch.tensor([[0, 0, 0], [1, 0, 0], [0, 2, 0], [5, 0, 0], [8, 0, 0], [5, 2, 0]], dtype=torch.float64)
    f = torch.tensor([[0, 1, 2], [3, 4, 5]])
    assert M.face_areas(v, f).tolist() == pytest.approx([1.0, 3.0])
    p = M.sample_points(v, f, 20000, generator=torch.Generator().manual_seed(1))
    big = (p[:, 0] >= 5).sum().item()
    assert (big / (20000 - big)) == pytest.approx(3.0, rel=0.08)


def test_sample_points_gradcheck():
    v, f = _perturbed_sphere()
    assert torch.autograd.gradcheck(lambda x: M.sample_points(x, f, 20, generator=torch.Generator().manual_seed(2)), (v,))


# ----------------------------------------------------------------------------------- subdivision
def test_subdivide_midpoint_counts_and_attributes():
    v, f = _t(*meshes.cube())
    e = M.edges(f)
    uv = torch.rand(v.shape[0], 2, dtype=torch.float64)
    nv, nf, attrs = M.subdivide_midpoint(v, f, attributes={"uv": uv})
    assert nv.shape == (8 + e.shape[0], 3) and nf.shape == (48, 3)
    assert torch.equal(nv[:8], v)
    assert torch.allclose(attrs["uv"][8:], 0.5 * (uv[e[:, 0]] + uv[e[:, 1]]))
    assert _is_closed_manifold(nf.numpy())
    assert M.face_areas(nv, nf).sum().item() == pytest.approx(24.0)
    assert torch.allclose(M.face_normals(nv, nf)[:12], M.face_normals(v, f))  # corner faces keep orientation
    # same layout as meshes.icosphere's subdivision
    v0, f0 = meshes.icosahedron()
    v1, f1 = M.subdivide_midpoint(v0, f0)
    assert isinstance(v1, np.ndarray) and np.array_equal(f1, meshes._subdivide_midpoint(v0, f0)[1])


def test_subdivide_loop_sphere():
    v, f = _t(*meshes.icosphere(1))
    nv, nf = M.subdivide_loop(v, f)
    assert nv.shape == (v.shape[0] + 3 * f.shape[0] // 2, 3) and nf.shape == (4 * f.shape[0], 3)
    assert _is_closed_manifold(nf.numpy())
    for _ in range(2):
        nv, nf = M.subdivide_loop(nv, nf)
    r = nv.norm(dim=-1)
    assert (r.max() - r.min()).item() < 0.02 * r.mean().item() and 0.85 < r.mean().item() < 1.0  # Loop shrinks a little
    assert _signed_volume(nv.numpy(), nf.numpy()) > 0
    # Loop on a regular (valence-6) flat grid's interior leaves it flat; boundary rules keep the square
    pv, pf = _t(*meshes.plane(2.0, 3))
    qv, qf = M.subdivide_loop(pv, pf)
    assert torch.allclose(qv[:, 2], torch.zeros(qv.shape[0], dtype=qv.dtype))
    assert qv[:, :2].abs().max().item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="non-manifold"):
        M.subdivide_loop(torch.rand(5, 3), torch.tensor([[0, 1, 2], [0, 1, 3], [0, 1, 4]]))


# ------------------------------------------------------------------------------ normalisation etc.
def test_normalize_verts():
    v = torch.tensor([[0.0, 0, 0], [4, 0, 0], [0, 2, 0], [0, 0, 1]])
    s = M.normalize_verts(v, "sphere")
    assert s.norm(dim=-1).max().item() == pytest.approx(1.0)
    b, c, k = M.normalize_verts(torch.stack([v, 3 * v + 1]), "box", radius=2.0, return_transform=True)
    assert b.shape == (2, 4, 3) and c.shape == (2, 3) and k.shape == (2,)
    assert torch.allclose(b.amax(1) - b.amin(1), torch.tensor([4.0, 2.0, 1.0]).expand(2, 3))
    assert torch.allclose(b[0], b[1], atol=1e-5)


def test_cotangent_laplacian_and_losses():
    # Laplacian of a flat grid vanishes at interior vertices; rows of L sum to 0
    pv, pf = _t(*meshes.plane(2.0, 4))
    L, areas = M.cotangent_laplacian(pv, pf)
    assert L.shape == (25, 25) and L.is_sparse
    Lx = torch.sparse.mm(L, pv)
    interior = (pv[:, :2].abs() < 0.99).all(1)
    assert torch.allclose(Lx[interior], torch.zeros_like(Lx[interior]), atol=1e-12)
    assert torch.allclose(torch.sparse.sum(L, dim=1).to_dense(), torch.zeros(25, dtype=pv.dtype), atol=1e-12)
    assert areas.sum().item() == pytest.approx(4.0)
    # on a sphere L v / area ~ -2 H n = -(2 / r) n
    sv, sf = _t(*meshes.icosphere(3))
    L, areas = M.cotangent_laplacian(sv, sf)
    hn = torch.sparse.mm(L, sv) / areas[:, None]
    assert (hn * sv).sum(-1).mean().item() == pytest.approx(-2.0, rel=0.05)
    Lb, ab = M.cotangent_laplacian(torch.stack([sv, sv]), sf)
    assert Lb.shape == (2, sv.shape[0], sv.shape[0]) and ab.shape == (2, sv.shape[0])
    # NumPy in -> scipy sparse + NumPy out
    Ln, an = M.cotangent_laplacian(*meshes.icosphere(1))
    assert Ln.shape == (42, 42) and isinstance(an, np.ndarray)
    # losses: flat plane ~0 normal consistency, a bumpy sphere is rougher than a smooth one
    assert M.normal_consistency(pv, pf).item() == pytest.approx(0.0, abs=1e-12)
    bumpy = sv * (1 + 0.1 * torch.rand(sv.shape[0], 1, generator=torch.Generator().manual_seed(0), dtype=sv.dtype))
    assert M.normal_consistency(bumpy, sf) > M.normal_consistency(sv, sf)
    assert M.cotangent_laplacian_loss(bumpy, sf) > M.cotangent_laplacian_loss(sv, sf)
    v, f = _perturbed_sphere()
    assert torch.autograd.gradcheck(lambda x: M.normal_consistency(x, f), (v,))
    assert torch.autograd.gradcheck(lambda x: M.cotangent_laplacian_loss(x, f), (v,))
    assert torch.autograd.gradcheck(lambda x: torch.sparse.mm(M.cotangent_laplacian(x, f)[0], x), (v,))


# ---------------------------------------------------------------------------- NumPy, errors, Mesh
def test_numpy_in_numpy_out():
    v, f = meshes.icosphere(1)
    assert isinstance(M.face_normals(v, f), np.ndarray) and M.face_normals(v, f).dtype == np.float32
    assert isinstance(M.vertex_normals(v, f), np.ndarray)
    assert isinstance(M.face_areas(v, f), np.ndarray)
    assert isinstance(M.edges(f), np.ndarray)
    assert all(isinstance(x, np.ndarray) for x in M.vertex_to_faces(f))
    assert isinstance(M.sample_points(v, f, 10), np.ndarray)
    assert all(isinstance(x, np.ndarray) for x in M.subdivide_loop(v, f))
    assert isinstance(M.normalize_verts(v), np.ndarray)
    assert isinstance(M.normal_consistency(v, f), np.ndarray)


def test_bad_input_value_errors():
    v, f = _t(*meshes.cube())
    with pytest.raises(ValueError, match="verts"):
        M.face_normals(v[:, :2], f)
    with pytest.raises(ValueError, match="verts"):
        M.vertex_normals(v.long(), f)
    with pytest.raises(ValueError, match="faces"):
        M.face_areas(v, f[:, :2])
    with pytest.raises(ValueError, match="faces"):
        M.face_normals(v, f + 8)  # out of range
    with pytest.raises(ValueError, match="faces"):
        M.edges(f.double())
    with pytest.raises(ValueError, match="weighting"):
        M.vertex_normals(v, f, weighting="cot")
    with pytest.raises(ValueError, match="n must"):
        M.sample_points(v, f, 0)
    with pytest.raises(ValueError, match="zero surface area"):
        M.sample_points(torch.zeros(3, 3), torch.tensor([[0, 1, 2]]), 5)
    with pytest.raises(ValueError, match="mode"):
        M.normalize_verts(v, mode="cube")
    with pytest.raises(ValueError, match="attributes"):
        M.subdivide_midpoint(v, f, attributes=torch.zeros(3, 2))


def test_mesh_dataclass():
    m = M.Mesh.from_numpy(*meshes.icosphere(1))
    assert m.num_verts == 42 and m.num_faces == 80
    m64 = m.to("cpu", dtype=torch.float64)
    assert m64.verts.dtype == torch.float64 and m64.faces.dtype == torch.int32
    assert torch.allclose(m64.vertex_normals(), m64.verts, atol=0.05)
    with pytest.raises(ValueError, match="faces"):
        M.Mesh(torch.zeros(3, 3), torch.tensor([[0, 1, 5]]))


# -------------------------------------------------------------------------------- new primitives
@pytest.mark.parametrize("name,make,volume,counts", [
    ("uv_sphere", lambda: meshes.uv_sphere(24, 48, radius=2.0), 4 / 3 * math.pi * 8, (23 * 48 + 2, 2 * 23 * 48)),
    ("cylinder", lambda: meshes.cylinder(64, 3.0, 0.5), math.pi * 0.25 * 3.0, (130, 256)),
    ("cone", lambda: meshes.cone(64, 3.0, 1.0), math.pi * 3.0 / 3, (66, 128)),
    ("torus", lambda: meshes.torus(1.0, 0.3, 64, 32), 2 * math.pi**2 * 1.0 * 0.09, (2048, 4096)),
])
def test_primitives_closed_outward(name, make, volume, counts):
    v, f = make()
    assert v.dtype == np.float32 and f.dtype == np.int32
    assert (v.shape[0], f.shape[0]) == counts
    assert _is_closed_manifold(f), name
    assert _signed_volume(v, f) == pytest.approx(volume, rel=0.02)
    n = M.face_normals(v, f)
    c = v[f].mean(1)
    if name == "uv_sphere":
        assert (np.einsum("ij,ij->i", n, c) > 0).all()


def test_open_cylinder_and_primitive_errors():
    v, f = meshes.cylinder(8, capped=False)
    assert v.shape == (16, 3) and f.shape == (16, 3)
    for bad in (lambda: meshes.uv_sphere(1, 8), lambda: meshes.cylinder(2), lambda: meshes.cone(2),
                lambda: meshes.torus(0.2, 0.3)):
        with pytest.raises(ValueError):
            bad()


# ---------------------------------------------------------------------------------------- save_mesh
@pytest.mark.parametrize("ext", ["obj", "ply", "stl", "glb", "off"])
def test_save_load_round_trip(tmp_path, ext):
    v, f = meshes.torus(1.0, 0.3, 12, 8)
    path = tmp_path / "sub" / f"m.{ext}"
    assert trio.save_mesh(path, torch.from_numpy(v), f) == str(path)
    v2, f2 = trio.load_mesh(path)
    assert f2.shape == f.shape
    np.testing.assert_allclose(v2[f2], v[f], atol=1e-6)  # same triangles (STL duplicates corners)
    if ext != "stl":
        np.testing.assert_array_equal(f2, f)


def test_save_mesh_errors_name_file(tmp_path):
    v, f = meshes.cube()
    with pytest.raises(ValueError, match=r"m\.xyz"):
        trio.save_mesh(tmp_path / "m.xyz", v, f)
    with pytest.raises(ValueError, match=r"m\.obj.*verts"):
        trio.save_mesh(tmp_path / "m.obj", v[:, :2], f)
    with pytest.raises(ValueError, match=r"m\.ply.*out of range"):
        trio.save_mesh(tmp_path / "m.ply", v, f + 8)
