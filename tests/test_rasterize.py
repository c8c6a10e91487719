"""rasterize: brute-force reference, independent ray casting, schedules, ties, gradients, bridges, bad input."""
import numpy as np
import pytest
import torch

import taichirast._prims.raster as raster_prim
import taichirast._scatter as scatter_mod
from taichirast._prims.interpolate import PRIM as INTERP
from taichirast._prims.raster import PRIM as RAST
from taichirast.fragments import Fragments

Z_TINY = 1e-8


def _edge(ax, ay, bx, by, px, py):
    return (ax - px) * (by - py) - (bx - px) * (ay - py)


def reference(sv, faces, H, W, persp=True, cull=False, near=0.01):
    """Every pixel against every face with the documented formulas; nearest wins, ties -> smaller id."""
    sv = np.asarray(sv, np.float64)
    B = sv.shape[0]
    py, px = np.mgrid[0:H, 0:W] + 0.5
    fid = np.full((B, H, W), -1, np.int32)
    bary = np.zeros((B, H, W, 3))
    depth = np.full((B, H, W), np.inf)
    for b in range(B):
        for f, (i0, i1, i2) in enumerate(np.asarray(faces)):
            (x0, y0, z0), (x1, y1, z1), (x2, y2, z2) = sv[b, i0], sv[b, i1], sv[b, i2]
            det = _edge(x0, y0, x1, y1, x2, y2)
            if det == 0:
                continue
            if cull:
                orient = det * (np.prod([-1.0 if z < 0 else 1.0 for z in (z0, z1, z2)]) if persp else 1.0)
                if orient >= 0:
                    continue
            E = np.stack([_edge(x1, y1, x2, y2, px, py), _edge(x2, y2, x0, y0, px, py), _edge(x0, y0, x1, y1, px, py)])
            z = np.array([z0, z1, z2])
            with np.errstate(all="ignore"):
                if persp:
                    zc = np.where(np.abs(z) < Z_TINY, np.where(z >= 0, Z_TINY, -Z_TINY), z)
                    q = E / zc[:, None, None]
                    Q = q.sum(0)
                    iQ = 1.0 / Q
                    bb = q * iQ
                    d = E.sum(0) * iQ
                    ok = Q != 0
                else:
                    A = E.sum(0)
                    bb = E * (1.0 / A)
                    d = (bb * z[:, None, None]).sum(0)
                    ok = A != 0
                inside = ok & (bb >= 0).all(0) & (d >= near)
            win = inside & (d < depth[b])  # faces in increasing id: strict < keeps the smaller id on ties
            fid[b][win] = f
            depth[b][win] = d[win]
            bary[b][win] = np.moveaxis(bb, 0, -1)[win]
    return fid, bary, depth


def random_scene(seed, B=2, V=12, F=6, H=12, W=16, persp=True, behind=False):
    """Overlapping triangles, some partly off-screen; z in [1, 4] (one vertex behind the camera if asked)."""
    rng = np.random.default_rng(seed)
    xy = rng.uniform([-3, -3], [W + 3, H + 3], size=(B, V, 2))
    z = rng.uniform(1.0, 4.0, size=(B, V, 1))
    if behind:
        z[:, 0] = -0.7
    faces = []
    while len(faces) < F:  # distinct vertex sets: coplanar duplicates would make "nearest" a rounding call
        tri = rng.choice(V, 3, replace=False)
        if all(set(tri) != set(t) for t in faces):
            faces.append(tri)
    faces = np.array(faces, np.int32)
    return np.concatenate([xy, z], -1), faces


@pytest.fixture(params=["face", "pixel"])
def schedule(request, monkeypatch):
    monkeypatch.setattr(raster_prim, "SCHEDULE", request.param)
    return request.param


def _check_against_reference(sv, faces, H, W, **kw):
    fid, bary, depth = RAST.numpy_call(sv, faces, (H, W), **kw)
    rf, rb, rd = reference(sv, faces, H, W, persp=kw.get("perspective_correct", True),
                           cull=kw.get("cull_backfaces", False), near=kw.get("near", 0.01))
    assert fid.dtype == np.int32 and fid.shape == (sv.shape[0], H, W)
    assert bary.shape == (sv.shape[0], H, W, 3) and depth.shape == (sv.shape[0], H, W)
    np.testing.assert_array_equal(fid, rf)
    np.testing.assert_allclose(bary, rb, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(depth, rd, rtol=1e-9, atol=0)
    return fid, rf


@pytest.mark.parametrize("persp", [True, False])
@pytest.mark.parametrize("cull", [False, True])
def test_matches_reference(schedule, persp, cull):
    covered = 0
    for seed in range(3):
        sv, faces = random_scene(seed, H=23, W=37, F=8, persp=persp)
        # seed 2: the near plane (z = 2.5) cuts through most triangles (clipped bboxes)
        fid, _ = _check_against_reference(sv, faces, 23, 37, perspective_correct=persp, cull_backfaces=cull,
                                          tile_size=5 if seed == 1 else 8, near=2.5 if seed == 2 else 0.01)
        covered += (fid >= 0).sum()
        if cull:  # every kept face is counter-clockwise on screen (det < 0)
            for b in range(sv.shape[0]):
                for f in np.unique(fid[b][fid[b] >= 0]):
                    s = sv[b][faces[f]]
                    assert _edge(*s[0, :2], *s[1, :2], *s[2, :2]) < 0
    assert covered > 100  # the scenes are not trivially empty


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_orthographic_negative_depths(schedule, dtype):
    # orthographic cameras may put geometry at z < 0 (near < 0): the depth keys must order negatives
    sv, faces = random_scene(4, H=23, W=37, F=8)
    sv[..., 2] -= 6.0  # z in [-5, -2]
    fid, bary, depth = RAST.numpy_call(sv.astype(dtype), faces, (23, 37), perspective_correct=False, near=-10.0)
    rf, rb, rd = reference(sv.astype(dtype), faces, 23, 37, persp=False, near=-10.0)
    np.testing.assert_array_equal(fid, rf)
    m = rf >= 0
    assert m.sum() > 100 and (depth[m] < 0).all()
    np.testing.assert_allclose(depth[m], rd[m], rtol=1e-5 if dtype == np.float32 else 1e-12)


def test_schedules_and_tiles_agree_bitwise(monkeypatch):
    sv, faces = random_scene(7, H=29, W=31, F=10)
    outs = []
    for sched, tile in (("face", 8), ("pixel", 8), ("pixel", 3), ("pixel", 64)):
        monkeypatch.setattr(raster_prim, "SCHEDULE", sched)
        outs.append(RAST.numpy_call(sv, faces, (29, 31), tile_size=tile))
    for o in outs[1:]:
        for a, b in zip(outs[0], o):
            np.testing.assert_array_equal(a, b)


def test_deterministic_bitwise(schedule):
    sv, faces = random_scene(3, B=1, V=40, F=30, H=21, W=19)
    a = RAST.numpy_call(sv.astype(np.float32), faces, (21, 19))
    b = RAST.numpy_call(sv.astype(np.float32), faces, (21, 19))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("swap", [False, True])
def test_shared_edge_tie_goes_to_smaller_id(schedule, swap):
    # Square split along its diagonal; pixel centres (k + .5, k + .5) lie exactly on the shared edge,
    # where both triangles cover them at exactly the same depth (all quantities exact in binary).
    sv = np.array([[[0, 0, 2], [8, 0, 2], [8, 8, 2], [0, 8, 2]]], np.float64)
    tris = np.array([[0, 2, 1], [0, 3, 2]], np.int32)  # both counter-clockwise on screen (det < 0)
    if swap:
        tris = tris[::-1].copy()
    for persp in (True, False):
        for dt in (np.float64, np.float32):
            fid, bary, depth = RAST.numpy_call(sv.astype(dt), tris, (8, 8), perspective_correct=persp)
            diag = fid[0, np.arange(8), np.arange(8)]
            np.testing.assert_array_equal(diag, 0)
            assert (fid[0] >= 0).all() and (depth[0] == 2).all()
            assert fid[0, 0, 7] == (1 if swap else 0)  # triangle (0, 2, 1) covers the upper-right half
            assert fid[0, 7, 0] == (0 if swap else 1)
            np.testing.assert_allclose(bary.sum(-1), 1.0, atol=1e-6)


def _pinhole(P, f=20.0, cx=8.0, cy=6.0):
    Z = P[..., 2]
    Zc = np.where(np.abs(Z) < Z_TINY, np.where(Z >= 0, Z_TINY, -Z_TINY), Z)
    return np.stack([f * P[..., 0] / Zc + cx, f * P[..., 1] / Zc + cy, Z], -1)


def _ray_cast(P, faces, H, W, near, keep, f=20.0, cx=8.0, cy=6.0):
    """Independent ground truth in camera space: ray through each pixel centre vs each triangle."""
    fid = np.full((H, W), -1)
    bary = np.zeros((H, W, 3))
    depth = np.full((H, W), np.inf)
    for r in range(H):
        for c in range(W):
            d = np.array([(c + 0.5 - cx) / f, (r + 0.5 - cy) / f, 1.0])
            for k, tri in enumerate(faces):
                if not keep[k]:
                    continue
                beta = np.linalg.solve(P[tri].T, d)  # sum beta_i P_i = d  ->  point = d / sum beta
                t = 1.0 / beta.sum()
                beta = beta * t
                if (beta >= 0).all() and t >= near and t < depth[r, c]:
                    fid[r, c], bary[r, c], depth[r, c] = k, beta, t
    return fid, bary, depth


@pytest.mark.parametrize("cull", [False, True])
def test_vertex_behind_camera_matches_ray_casting(schedule, cull):
    # camera-space triangles; the first has a vertex behind the camera, the second one on the camera plane
    P = np.array([[-1.0, -0.6, 2.0], [1.2, -0.3, 3.0], [0.3, 0.9, -1.5],
                  [-0.9, 0.5, 1.5], [0.4, 0.6, 0.0], [0.6, -0.8, 2.5]])
    faces = np.array([[0, 2, 1], [3, 5, 4]], np.int32)
    sv = _pinhole(P)[None]
    near = 0.5
    fid, bary, depth = RAST.numpy_call(sv, faces, (12, 16), near=near, cull_backfaces=cull)
    assert np.isfinite(bary).all() and not np.isnan(depth).any()
    keep = np.ones(len(faces), bool)
    if cull:  # front-facing = counter-clockwise on the displayed image = normal towards the camera
        keep = np.array([np.cross(P[t[1]] - P[t[0]], P[t[2]] - P[t[0]]) @ P[t[0]] < 0 for t in faces])
        assert keep.any() and not keep.all()
    rf, rb, rd = _ray_cast(P, faces, 12, 16, near, keep=keep)
    # (the vertex on the camera plane went through the Z_TINY clamp: ~1e-8 relative error)
    np.testing.assert_array_equal(fid[0], rf)
    np.testing.assert_allclose(bary[0], rb, atol=1e-7)
    np.testing.assert_allclose(depth[0][rf >= 0], rd[rf >= 0], rtol=1e-7)
    assert set(np.flatnonzero(keep)) == set(np.unique(fid[fid >= 0]))  # crossing triangles are visible
    _check_against_reference(sv, faces, 12, 16, near=near, cull_backfaces=cull)


def test_empty_mesh_and_degenerate_faces():
    sv = torch.tensor(random_scene(0, B=2)[0], requires_grad=True)
    fid, bary, depth = RAST.torch_call(sv, torch.zeros(0, 3, dtype=torch.int64), (7, 9))
    assert (fid == -1).all() and (bary == 0).all() and torch.isinf(depth).all()
    (bary.sum() + torch.where(fid >= 0, depth, 0).sum()).backward()
    assert sv.grad is not None and torch.equal(sv.grad, torch.zeros_like(sv))
    # collinear and repeated-vertex faces are skipped, without NaN
    dv = torch.tensor([[[1.0, 1.0, 2.0], [5.0, 5.0, 2.0], [9.0, 9.0, 2.0], [3.0, 7.0, 1.0]]], dtype=torch.float64)
    fid, bary, depth = RAST.torch_call(dv, torch.tensor([[0, 1, 2], [0, 0, 3], [0, 3, 1]]), (10, 10))
    assert set(fid.unique().tolist()) <= {-1, 2} and (fid == 2).any()
    assert torch.isfinite(bary).all()


def test_float32_smoke_against_float64():
    sv, faces = random_scene(11, H=23, W=37, F=8)
    fid32, bary32, depth32 = RAST.numpy_call(sv.astype(np.float32), faces, (23, 37))
    assert bary32.dtype == np.float32 and depth32.dtype == np.float32
    rf, rb, rd = reference(sv.astype(np.float32), faces, 23, 37)
    np.testing.assert_array_equal(fid32, rf)
    np.testing.assert_allclose(bary32, rb, atol=1e-4)
    m = rf >= 0
    np.testing.assert_allclose(depth32[m], rd[m], rtol=1e-5)
    # float32 gradients agree with float64 ones
    out = []
    for dt in (torch.float32, torch.float64):
        x = torch.tensor(sv, dtype=dt, requires_grad=True)
        f, b, d = RAST.torch_call(x, torch.from_numpy(faces), (23, 37))
        w = torch.linspace(-1, 1, 3, dtype=dt)
        ((b * w).sum() + torch.where(f >= 0, d, 0).sum()).backward()
        out.append(x.grad.double())
    torch.testing.assert_close(out[0], out[1], rtol=1e-3, atol=1e-3)
    assert out[1].abs().max() > 1e-3


# ------------------------------------------------------------------------------------- gradients
def stable_scene(seed, H, W, persp, **kw):
    """A random scene whose reference face ids do not change under 1e-5 perturbations (so finite
    differences never cross an edge)."""
    for s in range(seed, seed + 50):
        sv, faces = random_scene(s, H=H, W=W, persp=persp, **kw)
        ref = reference(sv, faces, H, W, persp=persp)[0]
        rng = np.random.default_rng(s)
        if all(np.array_equal(ref, reference(sv + rng.uniform(-1e-5, 1e-5, sv.shape), faces, H, W,
                                             persp=persp)[0]) for _ in range(4)) and (ref >= 0).sum() > 20:
            return sv, faces
    raise AssertionError("no stable scene")


@pytest.mark.parametrize("persp", [True, False])
def test_gradcheck_bary_and_depth(persp):
    sv, faces = stable_scene(0, 10, 8, persp, B=1, V=8, F=4, behind=persp)
    x = torch.tensor(sv, requires_grad=True)
    ft = torch.from_numpy(faces)

    def fn(x):
        fid, bary, depth = RAST.torch_call(x, ft, (10, 8), perspective_correct=persp)
        return bary, torch.where(fid >= 0, depth, 0)

    fid = RAST.torch_call(x, ft, (10, 8), perspective_correct=persp)[0]
    assert (fid >= 0).sum() > 20
    assert torch.autograd.gradcheck(fn, (x,), eps=1e-6, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("persp", [True, False])
@pytest.mark.parametrize("scatter", ["private", "atomic"])  # taichirast/_scatter.py
def test_gradcheck_rasterize_interpolate_chain(persp, scatter, monkeypatch):
    monkeypatch.setattr(scatter_mod, "MODE", scatter)
    sv, faces = stable_scene(5, 12, 16, persp, B=2, V=10, F=6)
    x = torch.tensor(sv, requires_grad=True)
    ft = torch.from_numpy(faces)
    attrs = torch.randn(10, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))

    def fn(x):
        fid, bary, depth = RAST.torch_call(x, ft, (12, 16), perspective_correct=persp)
        return INTERP.torch_call(attrs, ft, Fragments(fid, bary, depth))

    assert torch.autograd.gradcheck(fn, (x,), eps=1e-6, atol=1e-6, rtol=1e-4)


def test_numpy_bridge_matches_torch():
    sv, faces = stable_scene(20, 12, 16, True, B=2, V=10, F=6)
    x = torch.tensor(sv, requires_grad=True)
    tf, tb, td = RAST.torch_call(x, torch.from_numpy(faces), (12, 16))
    (nf, nb, nd), pullback = RAST.numpy_vjp(sv, faces, (12, 16))
    np.testing.assert_array_equal(nf, tf.numpy())
    np.testing.assert_array_equal(nb, tb.detach().numpy())
    np.testing.assert_array_equal(nd, td.detach().numpy())
    rng = np.random.default_rng(0)
    gb = rng.normal(size=nb.shape)
    gd = np.where(nf >= 0, rng.normal(size=nd.shape), 0.0)
    (g_np,) = pullback((None, gb, gd))
    torch.autograd.backward([tb, td], [torch.from_numpy(gb), torch.from_numpy(gd)])
    np.testing.assert_allclose(g_np, x.grad.numpy(), rtol=1e-12, atol=1e-12)
    assert np.abs(g_np).max() > 1e-3
    # bary-only and depth-only pullbacks add up to the joint one
    (g_b,) = pullback((None, gb, None))
    (g_d,) = pullback((None, None, gd))
    np.testing.assert_allclose(g_b + g_d, g_np, rtol=1e-10, atol=1e-12)
    # (V, 3) input gives (V, 3) gradients
    (_, pb1) = RAST.numpy_vjp(sv[0], faces, (12, 16))
    assert pb1((None, gb[:1], gd[:1]))[0].shape == (10, 3)


# ------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("args, kw, exc, msg", [
    ((np.zeros((4, 2)), np.array([[0, 1, 2]]), (4, 4)), {}, ValueError, "screen_verts"),
    ((np.zeros((4, 3), np.int32), np.array([[0, 1, 2]]), (4, 4)), {}, TypeError, "screen_verts"),
    ((np.array([[0, 0, 1], [1, 0, 1], [0, np.nan, 1.0]]), np.array([[0, 1, 2]]), (4, 4)), {}, ValueError,
     "screen_verts"),
    ((np.zeros((3, 3)), np.array([[0, 1, 3]]), (4, 4)), {}, ValueError, "faces"),
    ((np.zeros((3, 3)), np.array([[0, -1, 2]]), (4, 4)), {}, ValueError, "faces"),
    ((np.zeros((3, 3)), np.array([[0.0, 1, 2]]), (4, 4)), {}, TypeError, "faces"),
    ((np.zeros((3, 3)), np.array([[0, 1, 2, 0]]), (4, 4)), {}, ValueError, "faces"),
    ((np.zeros((3, 3)), np.array([[0, 1, 2]]), (0, 4)), {}, ValueError, "image_size"),
    ((np.zeros((3, 3)), np.array([[0, 1, 2]]), "big"), {}, TypeError, "image_size"),
    ((np.zeros((3, 3)), np.array([[0, 1, 2]]), (4, 4)), {"near": -1.0}, ValueError, "near"),
    ((np.zeros((3, 3)), np.array([[0, 1, 2]]), (4, 4)), {"near": "x"}, TypeError, "near"),
    ((np.zeros((3, 3)), np.array([[0, 1, 2]]), (4, 4)), {"tile_size": 0}, ValueError, "tile_size"),
    ((np.zeros((3, 3)), np.array([[0, 1, 2]]), (4, 4)), {"tile_size": 2.5}, TypeError, "tile_size"),
])
def test_bad_input(args, kw, exc, msg):
    with pytest.raises(exc, match=msg):
        RAST.numpy_call(*args, **kw)
    with pytest.raises(exc, match=msg):
        RAST.torch_call(*[torch.as_tensor(a) if isinstance(a, np.ndarray) else a for a in args], **kw)


def test_numpy_api_rejects_tensors():
    with pytest.raises(TypeError, match="screen_verts"):
        RAST.numpy_call(torch.zeros(3, 3), np.array([[0, 1, 2]]), (4, 4))
