"""rasterize_layers (depth peeling) and splat (rasterize-then-splat, Cole et al. 2021).

References: brute-force per-pixel face sorting for the layers; a loop-per-pixel NumPy splat; a
direct NumPy port of TF Graphics' ``splat_at_pixel_centers`` tensor code (independent of our
gather formulation and of our reading of its layer rules). Gradients: float64 gradcheck,
float32 vs float64, torch vs NumPy bridges, and an end-to-end check against finite differences.
"""
import math

import numpy as np
import pytest
import torch

import taichirast as tr
import taichirast._prims.raster as raster_prim
import taichirast._prims.raster_layers as layers_prim
from taichirast._prims.interpolate import PRIM as INTERP
from taichirast._prims.raster import PRIM as RAST
from taichirast._prims.raster_layers import PRIM as LAYERS
from taichirast._prims.splat import PRIM as SPLAT
from taichirast.fragments import Fragments
from test_rasterize import random_scene, reference as raster_reference


@pytest.fixture(params=["face", "pixel"])
def schedule(request, monkeypatch):
    monkeypatch.setattr(raster_prim, "SCHEDULE", request.param)
    monkeypatch.setattr(layers_prim, "SCHEDULE", request.param)
    return request.param


# ------------------------------------------------------------------------------ rasterize_layers
def layers_reference(sv, faces, H, W, K, persp=True, cull=False, near=0.01):
    """Per pixel, every covering face sorted by (depth, id) -- from the single-face reference rasterizer."""
    sv = np.asarray(sv, np.float64)
    B = sv.shape[0]
    hits = [[[[] for _ in range(W)] for _ in range(H)] for _ in range(B)]
    for f in range(len(faces)):
        fid, _, depth = raster_reference(sv, faces[f:f + 1], H, W, persp=persp, cull=cull, near=near)
        for b, y, x in zip(*np.nonzero(fid >= 0)):
            hits[b][y][x].append((depth[b, y, x], f))
    out = np.full((B, K, H, W), -1, np.int32)
    for b in range(B):
        for y in range(H):
            for x in range(W):
                for k, (_, f) in enumerate(sorted(hits[b][y][x])[:K]):
                    out[b, k, y, x] = f
    return out


@pytest.mark.parametrize("cull", [False, True])
def test_layers_match_sorted_faces(schedule, cull):
    deep = 0
    # seed 1: a vertex behind the camera and the near plane through the scene (clipped bboxes)
    for seed, persp, near in ((0, True, 0.01), (1, True, 2.0), (2, False, 0.01)):
        sv, faces = random_scene(seed, B=2, V=14, F=12, H=13, W=17, persp=persp, behind=seed == 1)
        for dt in (np.float64, np.float32):
            fr = LAYERS.numpy_call(sv.astype(dt), faces, (13, 17), num_layers=4, perspective_correct=persp,
                                   cull_backfaces=cull, near=near)
            assert fr.face_id.shape == (2, 4, 13, 17) and fr.face_id.dtype == np.int32
            assert fr.bary.shape == (2, 4, 13, 17, 3) and fr.depth.shape == (2, 4, 13, 17)
            ref = layers_reference(sv.astype(dt), faces, 13, 17, 4, persp=persp, cull=cull, near=near)
            np.testing.assert_array_equal(fr.face_id, ref)
            # layer 0 is rasterize, bit for bit; layers are front to back; background is -1 / 0 / inf
            for a, b in zip(fr, RAST.numpy_call(sv.astype(dt), faces, (13, 17), perspective_correct=persp,
                                                cull_backfaces=cull, near=near)):
                np.testing.assert_array_equal(a[:, 0], b)
            valid = fr.face_id >= 0
            assert not (valid[:, 1:] & ~valid[:, :-1]).any()
            assert (np.diff(np.where(valid, fr.depth, 1e30), axis=1)[valid[:, 1:]] >= 0).all()
            assert (fr.bary[~valid] == 0).all() and np.isinf(fr.depth[~valid]).all()
            # each layer's barycentrics / depth are rasterize's for that face alone
            for k in range(4):
                for f in np.unique(fr.face_id[:, k][valid[:, k]]):
                    one = RAST.numpy_call(sv.astype(dt), faces[f:f + 1], (13, 17), perspective_correct=persp,
                                          near=near)
                    m = fr.face_id[:, k] == f
                    np.testing.assert_array_equal(fr.bary[:, k][m], one[1][m])
                    np.testing.assert_array_equal(fr.depth[:, k][m], one[2][m])
            deep += valid[:, 2:].sum()
    assert deep > 50  # the scenes really have 3+ overlapping faces


def test_layers_schedules_agree_bitwise(monkeypatch):
    sv, faces = random_scene(5, B=2, V=30, F=25, H=23, W=29)
    for dt in (np.float32, np.float64):
        outs = []
        for sched, tile in (("face", 8), ("pixel", 8), ("pixel", 5)):
            monkeypatch.setattr(layers_prim, "SCHEDULE", sched)
            outs.append(LAYERS.numpy_call(sv.astype(dt), faces, (23, 29), num_layers=3, tile_size=tile))
        for o in outs[1:]:
            for a, b in zip(outs[0], o):
                np.testing.assert_array_equal(a, b)
        for sched in ("face", "pixel"):  # one layer is rasterize
            monkeypatch.setattr(layers_prim, "SCHEDULE", sched)
            one = LAYERS.numpy_call(sv.astype(dt), faces, (23, 29), num_layers=1)
            for a, b in zip(one, RAST.numpy_call(sv.astype(dt), faces, (23, 29))):
                assert a.shape[1] == 1
                np.testing.assert_array_equal(a[:, 0], b)


def test_layers_exact_depth_ties_peel_by_id(schedule):
    # two coincident squares (4 triangles at the same depth) -> every pixel's layers list both
    # triangles covering it, smaller id first (all quantities exact in binary)
    sv = np.array([[[0, 0, 2], [8, 0, 2], [8, 8, 2], [0, 8, 2]]], np.float64)
    tris = np.array([[0, 2, 1], [0, 3, 2], [0, 2, 1], [0, 3, 2]], np.int32)
    for dt in (np.float64, np.float32):
        fid = LAYERS.numpy_call(sv.astype(dt), tris, (8, 8), num_layers=3).face_id[0]
        np.testing.assert_array_equal(fid, layers_reference(sv, tris, 8, 8, 3)[0])
        assert fid[0, 0, 7] == 0 and fid[1, 0, 7] == 2 and fid[2, 0, 7] == -1
        assert fid[0, 7, 0] == 1 and fid[1, 7, 0] == 3
        assert fid[0, 3, 3] == 0 and fid[1, 3, 3] == 1 and fid[2, 3, 3] == 2  # diagonal: all four


def test_layers_gradcheck():
    sv, faces = random_scene(3, B=2, V=12, F=8, H=9, W=11)
    ref = layers_reference(sv, faces, 9, 11, 3)
    assert (ref[:, 1] >= 0).sum() > 20
    x = torch.tensor(sv, requires_grad=True)
    f = torch.from_numpy(faces)
    wb = torch.linspace(-1, 1, 3 * 9 * 11 * 3, dtype=torch.float64).reshape(3, 9, 11, 3)

    def fn(v):
        fr = LAYERS.torch_call(v, f, (9, 11), num_layers=3)
        assert torch.equal(fr.face_id, torch.from_numpy(ref))  # no visibility change under perturbation
        return (fr.bary * wb).sum() + torch.where(fr.face_id >= 0, fr.depth, 0).sum()

    assert torch.autograd.gradcheck(fn, (x,), eps=1e-6, atol=1e-6, rtol=1e-5)
    # layer 0's gradient is rasterize's
    g_layers = torch.autograd.grad(LAYERS.torch_call(x, f, (9, 11), num_layers=3).bary[:, 0].mul(wb[0]).sum(), x)[0]
    g_rast = torch.autograd.grad(RAST.torch_call(x, f, (9, 11)).bary.mul(wb[0]).sum(), x)[0]
    torch.testing.assert_close(g_layers, g_rast, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------------------------ splat
SIGMA = 0.5


def splat_reference(rgba, xy, face_id, depth, sigma=SIGMA):
    """The documented splat, one target pixel at a time (float64)."""
    rgba, xy, depth = (np.asarray(a, np.float64) for a in (rgba, xy, depth))
    B, K, H, W, C = rgba.shape
    s2 = 2 * sigma * sigma
    coef = 1.05 / sum(math.exp(-(u * u + v * v) / s2) for u in (-1, 0, 1) for v in (-1, 0, 1))
    out = np.zeros((B, H, W, C))
    for b in range(B):
        for ty in range(H):
            for tx in range(W):
                nt = int((face_id[b, :, ty, tx] >= 0).sum())
                zt = depth[b, :nt, ty, tx]
                acc = np.zeros((3, C))
                for oy in (-1, 0, 1):
                    for ox in (-1, 0, 1):
                        sy, sx = ty - oy, tx - ox
                        if not (0 <= sy < H and 0 <= sx < W):
                            continue
                        ns = int((face_id[b, :, sy, sx] >= 0).sum())
                        if ns == 0:
                            continue
                        zs = depth[b, :ns, sy, sx]
                        sig = 0
                        if nt > 0:
                            dc, dd = np.abs(zs - zt[0]), np.abs(zt - zs[0])
                            c, d = int(np.argmin(dc)), int(np.argmin(dd))
                            sig = -d if dd[d] < dc[c] else c
                        for l in range(ns):
                            x, y = xy[b, l, sy, sx]
                            d2 = (tx + 0.5 - x) ** 2 + (ty + 0.5 - y) ** 2
                            w = coef * rgba[b, l, sy, sx, -1] * math.exp(-d2 / s2)
                            j = 0 if sig > l else (1 if sig == l else 2)
                            acc[j, :-1] += w * rgba[b, l, sy, sx, :-1]
                            acc[j, -1] += w
                L = acc / np.maximum(1.0, acc[:, -1:])
                out[b, ty, tx] = L[0] + (1 - L[0, -1]) * (L[1] + (1 - L[1, -1]) * L[2])
    return out


def tf_splat_at_pixel_centers(xyz_layers, rgba_layers):
    """Line-by-line NumPy port of TF Graphics' ``splat_at_pixel_centers`` (one image, sigma 0.5)."""
    gaussian_exp_scale = -1.0 / (2 * 0.5 ** 2)
    weight_sum = sum(math.exp(gaussian_exp_scale * (u ** 2 + v ** 2)) for u in (-1, 0, 1) for v in (-1, 0, 1))
    gaussian_coef = 1.05 / weight_sum
    L, H, W = rgba_layers.shape[:3]
    accumulate_rgba = np.zeros((3, H + 2, W + 2, 4))
    accumulate_weights = np.zeros((3, H + 2, W + 2, 1))
    padded_center_z = np.pad(xyz_layers[..., 2:3], ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=1.0)
    surface_idx_uv_map = {}
    for u in (-1, 0, 1):
        for v in (-1, 0, 1):
            padding = [[max(v + 1, 0), abs(min(v - 1, 0))], [max(u + 1, 0), abs(min(u - 1, 0))], [0, 0]]
            tap_z_layers = np.pad(xyz_layers[..., 2:3], [[0, 0]] + padding, constant_values=1.0)
            dist_center_to_tap_layers = np.abs(tap_z_layers - padded_center_z[0])
            best_center_surface_idx = np.argmin(dist_center_to_tap_layers, axis=0)
            best_center_surface_z = np.min(dist_center_to_tap_layers, axis=0)
            dist_tap_to_center_layers = np.abs(padded_center_z - tap_z_layers[0])
            best_tap_surface_idx = np.argmin(dist_tap_to_center_layers, axis=0)
            best_tap_surface_z = np.min(dist_tap_to_center_layers, axis=0)
            surface_idx_uv_map[(u, v)] = np.where(best_tap_surface_z < best_center_surface_z,
                                                  -best_tap_surface_idx, best_center_surface_idx)
    for l in range(L):
        rgba = rgba_layers[l]
        alpha = rgba[..., 3:4]
        xyz = xyz_layers[l]
        splat_to_center_pixel = np.floor(xyz[..., :2]) + 0.5 - xyz[..., :2]
        for u in (-1, 0, 1):
            for v in (-1, 0, 1):
                splat_to_pixel = splat_to_center_pixel + (u, v)
                dist_sqr = np.sum(splat_to_pixel ** 2, axis=-1, keepdims=True)
                tap_weights = alpha * gaussian_coef * np.exp(gaussian_exp_scale * dist_sqr)
                tap_rgba = tap_weights * rgba
                padding = [[max(v + 1, 0), abs(min(v - 1, 0))], [max(u + 1, 0), abs(min(u - 1, 0))], [0, 0]]
                tap_rgba = np.pad(tap_rgba, padding)
                tap_weights = np.pad(tap_weights, padding)
                surface_idx = surface_idx_uv_map[(u, v)]
                layer_mask = np.stack([surface_idx > l, surface_idx == l, surface_idx < l]).astype(np.float64)
                accumulate_rgba += tap_rgba[None] * layer_mask
                accumulate_weights += tap_weights[None] * layer_mask
    accumulate_rgba = accumulate_rgba[:, 1:-1, 1:-1]
    accumulate_weights = accumulate_weights[:, 1:-1, 1:-1]
    normalized_rgba = accumulate_rgba / (np.maximum(accumulate_weights - 1.0, 0.0) + 1.0)
    output_rgba = normalized_rgba[-1]
    for i in (2, 3):
        output_rgba = normalized_rgba[-i] + (1.0 - normalized_rgba[-i][..., 3:4]) * output_rgba
    return output_rgba


def random_layers(seed, B=2, K=2, H=7, W=9, C=4, binary_alpha=False, jitter=0.45):
    """Random K-layer fragment stacks: valid layers first, increasing depth, xy near the pixel centres."""
    rng = np.random.default_rng(seed)
    n = rng.integers(0, K + 1, size=(B, 1, H, W))
    n[rng.random((B, 1, H, W)) < 0.5] = K  # mostly full stacks, some holes
    valid = np.arange(K)[None, :, None, None] < n
    face_id = np.where(valid, rng.integers(0, 50, size=(B, K, H, W)), -1).astype(np.int32)
    depth = np.where(valid, np.cumsum(rng.uniform(0.02, 0.1, size=(B, K, H, W)), axis=1) + 0.1, np.inf)
    yy, xx = np.mgrid[0:H, 0:W] + 0.5
    xy = np.stack([np.broadcast_to(xx, (B, K, H, W)), np.broadcast_to(yy, (B, K, H, W))], -1)
    xy = xy + rng.uniform(-jitter, jitter, size=xy.shape)
    rgba = rng.uniform(0.0, 1.0, size=(B, K, H, W, C))
    rgba[..., -1] = 1.0 if binary_alpha else rng.uniform(0.3, 1.0, size=(B, K, H, W))
    rgba[~valid] = 0.0
    xy[~valid] = 0.0
    return rgba, xy, Fragments(face_id, np.zeros(face_id.shape + (3,)), depth)


@pytest.mark.parametrize("K,C", [(1, 4), (2, 4), (3, 2), (2, 1)])
def test_splat_matches_reference(K, C):
    rgba, xy, fr = random_layers(K * 10 + C, K=K, C=C)
    out = SPLAT.numpy_call(rgba, xy, fr)
    assert out.shape == (2, 7, 9, C) and out.dtype == np.float64
    np.testing.assert_allclose(out, splat_reference(rgba, xy, fr.face_id, fr.depth), rtol=1e-12, atol=1e-14)
    if (K, C) == (2, 4):  # (each K, C, dtype compiles its own kernels)
        depth32 = fr.depth.astype(np.float32)
        out32 = SPLAT.numpy_call(rgba.astype(np.float32), xy.astype(np.float32), fr._replace(depth=depth32))
        assert out32.dtype == np.float32
        np.testing.assert_allclose(out32, out, atol=2e-6)
        # sigma is a parameter
        np.testing.assert_allclose(SPLAT.numpy_call(rgba, xy, fr, sigma=0.7),
                                   splat_reference(rgba, xy, fr.face_id, fr.depth, sigma=0.7), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("K", [1, 2])
def test_splat_matches_tf_graphics_port(K):
    # TF Graphics' conventions: depth in (0, 1) with empty layers at the far value 1.0, alpha 0 / 1, RGBA
    for seed in range(3):
        rgba, xy, fr = random_layers(100 + seed, B=1, K=K, H=8, W=10, binary_alpha=True)
        z = np.where(fr.face_id >= 0, fr.depth, 1.0)
        ours = SPLAT.numpy_call(rgba, xy, fr)[0]
        tf = tf_splat_at_pixel_centers(np.concatenate([xy[0], z[0][..., None]], -1), rgba[0])
        np.testing.assert_allclose(ours, tf, rtol=1e-12, atol=1e-14)


def test_splat_surface_layers_occlude():
    # a red square in front of a green wall (both alpha 1): inside the square the output is red,
    # on the wall far from the square green, and at the square's edge a blend that is not darker
    # than either (the three layers composite, they do not average with the background)
    H = W = 12
    K = 2
    face_id = np.zeros((1, K, H, W), np.int32)
    depth = np.empty((1, K, H, W))
    rgba = np.zeros((1, K, H, W, 4))
    sq = np.zeros((H, W), bool)
    sq[3:8, 3:8] = True
    depth[0, 0] = np.where(sq, 1.0, 5.0)
    depth[0, 1] = np.where(sq, 5.0, np.inf)
    face_id[0, 1][~sq] = -1
    rgba[0, 0][sq] = (1, 0, 0, 1)
    rgba[0, 0][~sq] = (0, 1, 0, 1)
    rgba[0, 1][sq] = (0, 1, 0, 1)
    yy, xx = np.mgrid[0:H, 0:W] + 0.5
    xy = np.broadcast_to(np.stack([xx, yy], -1), (1, K, H, W, 2)).copy()
    out = SPLAT.numpy_call(rgba, xy, Fragments(face_id, None, depth))[0]
    # everything is covered (image-border pixels lose the splats that fall outside the image)
    np.testing.assert_allclose(out[1:-1, 1:-1, 3], 1.0, atol=1e-12)
    assert (out[0, :, 3] < 1).all()
    np.testing.assert_allclose(out[5, 5], (1, 0, 0, 1), atol=1e-12)
    np.testing.assert_allclose(out[1, 1], (0, 1, 0, 1), atol=1e-12)
    edge = out[5, 2]  # wall pixel next to the square: red splats in front of the green surface
    assert 0.05 < edge[0] < 0.5 and abs(edge[0] + edge[1] - 1) < 1e-12
    np.testing.assert_allclose(out, splat_reference(rgba, xy, face_id, depth)[0], rtol=1e-12, atol=1e-14)


def rasterized_layers(seed, K=3, C=2, H=6, W=7, B=2):
    """Splat inputs on the fragments of a rasterized random scene (overlapping, partly off-screen faces)."""
    sv, faces = random_scene(seed, B=B, V=12, F=10, H=H, W=W)
    fr = LAYERS.numpy_call(sv, faces, (H, W), num_layers=K)
    rng = np.random.default_rng(seed)
    valid = fr.face_id >= 0
    yy, xx = np.mgrid[0:H, 0:W] + 0.5
    xy = np.broadcast_to(np.stack([xx, yy], -1), valid.shape + (2,)) + rng.uniform(-0.3, 0.3, valid.shape + (2,))
    rgba = rng.uniform(0.2, 1.0, valid.shape + (C,))
    return np.where(valid[..., None], rgba, 0), np.where(valid[..., None], xy, 0), fr


def test_splat_on_rasterized_scene_matches_reference():
    rgba, xy, fr = rasterized_layers(12, K=3, H=9, W=11)
    assert (fr.face_id[:, 1] >= 0).sum() > 20 and (fr.face_id[:, 2] >= 0).sum() > 5
    np.testing.assert_allclose(SPLAT.numpy_call(rgba, xy, fr), splat_reference(rgba, xy, fr.face_id, fr.depth),
                               rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("scene", ["synthetic", "rasterized"])
def test_splat_gradcheck(scene):
    cases = ((2, 4), (3, 2)) if scene == "synthetic" else ((3, 2),)
    for K, C in cases:
        if scene == "synthetic":
            rgba, xy, fr = random_layers(7 + K, B=2 if K == 2 else 1, K=K, H=4, W=5, C=C)
        else:
            rgba, xy, fr = rasterized_layers(13, K=K, C=C, H=5, W=6, B=1)
            assert (fr.face_id[:, 1] >= 0).sum() > 5 and (fr.face_id[:, 0] < 0).any()
        fr = Fragments(*(torch.from_numpy(np.asarray(a)) for a in fr))
        r = torch.tensor(rgba, requires_grad=True)
        p = torch.tensor(xy, requires_grad=True)
        assert torch.autograd.gradcheck(lambda r, p: SPLAT.torch_call(r, p, fr), (r, p), eps=1e-6, atol=1e-8,
                                        rtol=1e-6)
        # invalid fragments get exactly zero gradient
        out = SPLAT.torch_call(r, p, fr)
        gr, gp = torch.autograd.grad((out * torch.randn_like(out)).sum(), (r, p))
        assert (gr[fr.face_id < 0] == 0).all() and (gp[fr.face_id < 0] == 0).all()
        assert gp[fr.face_id >= 0].abs().max() > 1e-3


def test_splat_float32_gradients_match_float64():
    rgba, xy, fr = random_layers(3, B=2, K=2, H=9, W=8)
    w = torch.from_numpy(np.random.default_rng(0).normal(size=(2, 9, 8, 4)))
    grads = []
    for dt in (torch.float32, torch.float64):
        frt = Fragments(torch.from_numpy(fr.face_id), None, torch.from_numpy(fr.depth).to(dt))
        r = torch.tensor(rgba, dtype=dt, requires_grad=True)
        p = torch.tensor(xy, dtype=dt, requires_grad=True)
        (SPLAT.torch_call(r, p, frt) * w.to(dt)).sum().backward()
        grads.append((r.grad.double(), p.grad.double()))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_splat_numpy_vjp_matches_torch():
    # through the public names: taichirast.np.vjp(taichirast.np.splat, ...) and taichirast.splat
    rgba, xy, fr = random_layers(4, B=1, K=2, H=6, W=7)
    g = np.random.default_rng(1).normal(size=(1, 6, 7, 4))
    out, pullback = tr.np.vjp(tr.np.splat, rgba, xy, fr)
    g_rgba, g_xy = pullback(g)
    frt = Fragments(*(torch.from_numpy(np.asarray(a)) for a in fr))
    r = torch.tensor(rgba, requires_grad=True)
    p = torch.tensor(xy, requires_grad=True)
    out_t = tr.splat(r, p, frt)
    (out_t * torch.from_numpy(g)).sum().backward()
    np.testing.assert_array_equal(out, out_t.detach().numpy())
    np.testing.assert_allclose(g_rgba, r.grad.numpy(), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(g_xy, p.grad.numpy(), rtol=1e-13, atol=1e-15)
    # deterministic (gather, no atomics): bitwise equal on a second run
    np.testing.assert_array_equal(pullback(g)[1], g_xy)


def test_rasterize_layers_numpy_vjp_matches_torch():
    sv, faces = random_scene(6, B=2, V=12, F=10, H=9, W=11)
    fr, pullback = tr.np.vjp(tr.np.rasterize_layers, sv, faces, (9, 11), num_layers=3)
    rng = np.random.default_rng(2)
    gb, gd = rng.normal(size=fr.bary.shape), np.where(fr.face_id >= 0, rng.normal(size=fr.depth.shape), 0)
    (g_sv,) = pullback(Fragments(None, gb, gd))
    x = torch.tensor(sv, requires_grad=True)
    frt = tr.rasterize_layers(x, torch.from_numpy(faces), (9, 11), num_layers=3)
    for a, b in zip(fr, frt):
        np.testing.assert_array_equal(a, b.detach().numpy())
    torch.autograd.backward([frt.bary, frt.depth], [torch.from_numpy(gb), torch.from_numpy(gd)])
    np.testing.assert_allclose(g_sv, x.grad.numpy(), rtol=1e-12, atol=1e-12)
    assert np.abs(g_sv).max() > 0


# ---------------------------------------------------------------------------------- end to end
def _rts_image(verts, faces, cam, H, W, K=2, frozen=None):
    """Rasterize-then-splat of an unlit constant-colour mesh, following splat's docstring recipe."""
    sv = tr.project(verts, cam)
    fr = LAYERS.torch_call(sv, faces, (H, W), num_layers=K, cull_backfaces=True) if frozen is None else frozen
    B = fr.face_id.shape[0]
    # the K layers seen as B images of height K * H; barycentrics held fixed (samples on the surface)
    flat = Fragments(fr.face_id.reshape(B, K * H, W), fr.bary.detach().reshape(B, K * H, W, 3), None)
    hom = INTERP.torch_call(torch.cat([sv[..., :2] * sv[..., 2:], sv[..., 2:]], -1), faces, flat)
    hom = hom.reshape(B, K, H, W, 3)
    mask = (fr.face_id >= 0)[..., None]
    xy = hom[..., :2] / torch.where(mask, hom[..., 2:], torch.ones_like(hom[..., 2:]))
    rgba = torch.cat([torch.full_like(xy[..., :1], 0.7).expand(B, K, H, W, 3), mask.to(xy.dtype)], -1)
    return SPLAT.torch_call(rgba, xy, fr), fr, xy


def test_end_to_end_translation_gradient():
    """Mean alpha of a sphere vs a global translation t: RtS gradient vs finite differences.

    (1) With the fragments frozen (samples attached to the surface, as the method models them) the
    gradient is exact: it equals central differences of that function to 1e-6. (2) Against the
    real forward image (re-rasterized, so piecewise constant in t; its slope over a few pixels of
    motion is the coverage change) the RtS estimate has the right direction (cosine > 0.99) but is
    biased low by the method itself: at sigma 0.5 a straight silhouette edge moving by 1 px adds
    1 px of coverage per unit length while the splat derivative gives 2 * coef * (e^-2 + 2 e^-4) / sigma^2
    = 0.894 (the two pixel columns whose 3x3 neighbourhoods the edge cuts), less for diagonal
    edges; this sphere measures ~0.87. A 2 % match is not reachable by rasterize-then-splat.
    """
    H = W = 96
    v, f = tr.meshes.icosphere(3)
    # a second, smaller sphere behind and beside the first: layer 1 and an occlusion boundary
    v = np.concatenate([v, 0.7 * v + np.array([0.9, 0.1, -1.3], np.float32)])
    f = np.concatenate([f, f + len(f) // 2 + 2])  # icosphere: V = F / 2 + 2
    verts, faces = torch.tensor(v, dtype=torch.float64), torch.from_numpy(f)
    cam = tr.PerspectiveCamera.look_at(torch.tensor([0.4, 1.5, 3.2]), image_size=(H, W), fov_y=50.0,
                                       dtype=torch.float64)
    t = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    out, fr, xy = _rts_image(verts + t, faces, cam, H, W)
    valid = fr.face_id >= 0
    assert valid[:, 1].sum() > 100  # layer 1 (the back sphere behind the front one) is populated
    yy, xx = torch.meshgrid(torch.arange(H) + 0.5, torch.arange(W) + 0.5, indexing="ij")
    torch.testing.assert_close(xy[..., 0][valid], xx.expand_as(valid)[valid].double(), rtol=0, atol=1e-10)
    torch.testing.assert_close(xy[..., 1][valid], yy.expand_as(valid)[valid].double(), rtol=0, atol=1e-10)
    (grad,) = torch.autograd.grad(out[..., 3].mean(), t)

    frozen = Fragments(*(x.detach() for x in fr))
    h = 1e-6
    for i in range(3):
        d = torch.zeros(3, dtype=torch.float64)
        d[i] = h
        lp = _rts_image(verts + d, faces, cam, H, W, frozen=frozen)[0][..., 3].mean()
        lm = _rts_image(verts - d, faces, cam, H, W, frozen=frozen)[0][..., 3].mean()
        assert abs(float((lp - lm) / (2 * h)) - float(grad[i])) <= 1e-6 * float(grad.abs().max())

    # slope of the real forward by least squares over +-2 px of silhouette motion
    ts = np.linspace(-0.12, 0.12, 9)
    fd = []
    for i in range(3):
        vals = []
        for s in ts:
            d = torch.zeros(3, dtype=torch.float64)
            d[i] = float(s)
            vals.append(float(_rts_image(verts + d, faces, cam, H, W)[0][..., 3].mean()))
        fd.append(np.polyfit(ts, vals, 1)[0])
    fd = np.array(fd)
    g = grad.numpy()
    cos = g @ fd / (np.linalg.norm(g) * np.linalg.norm(fd))
    ratio = np.linalg.norm(g) / np.linalg.norm(fd)
    assert cos > 0.99, (g, fd)
    assert 0.8 < ratio < 0.95, (g, fd, ratio)


# ---------------------------------------------------------------------------------- bad input
def test_bad_input():
    sv, faces = random_scene(0, B=1)
    with pytest.raises(ValueError, match="num_layers must be a positive int"):
        LAYERS.numpy_call(sv, faces, (8, 8), num_layers=0)
    with pytest.raises(TypeError, match="num_layers must be a positive int"):
        LAYERS.numpy_call(sv, faces, (8, 8), num_layers=2.0)
    with pytest.raises(ValueError, match="faces has indices"):
        LAYERS.numpy_call(sv, faces + 100, (8, 8))
    with pytest.raises(ValueError, match="more than 2\\^31 pixels"):
        LAYERS.numpy_call(sv, faces, (2**15, 2**15), num_layers=2)
    with pytest.raises(TypeError, match="tile_size"):
        LAYERS.numpy_call(sv, faces, (8, 8), tile_size=0.5)

    rgba, xy, fr = random_layers(0, B=1, K=2, H=4, W=5)
    with pytest.raises(TypeError, match="fragments must be"):
        SPLAT.numpy_call(rgba, xy, (fr.face_id, fr.depth))
    with pytest.raises(ValueError, match="xy must have shape"):
        SPLAT.numpy_call(rgba, xy[:, :, :3], fr)
    with pytest.raises(ValueError, match="size 2 in its last dimension"):
        SPLAT.numpy_call(rgba, xy[..., :1], fr)
    with pytest.raises(ValueError, match="fragments.face_id must have shape"):
        SPLAT.numpy_call(rgba, xy, fr._replace(face_id=fr.face_id[:, :1]))
    with pytest.raises(TypeError, match="fragments.face_id must be an integer"):
        SPLAT.numpy_call(rgba, xy, fr._replace(face_id=fr.face_id.astype(np.float32)))
    with pytest.raises(TypeError, match="share one dtype"):
        SPLAT.numpy_call(rgba.astype(np.float32), xy, fr)
    with pytest.raises(ValueError, match="sigma must be positive"):
        SPLAT.numpy_call(rgba, xy, fr, sigma=0.0)
    with pytest.raises(ValueError, match="at most 8 layers"):
        r9, p9, f9 = random_layers(0, B=1, K=9, H=2, W=2)
        SPLAT.numpy_call(r9, p9, f9)
    with pytest.raises(ValueError, match="1 to 16 channels"):
        SPLAT.numpy_call(np.zeros(rgba.shape[:4] + (17,)), xy, fr)
    holes = fr.face_id.copy()
    holes[0, 0, 0, 0], holes[0, 1, 0, 0] = -1, 3
    with pytest.raises(ValueError, match="valid layer behind an empty one"):
        SPLAT.numpy_call(rgba, xy, fr._replace(face_id=holes))
    bad = xy.copy()
    bad[fr.face_id >= 0] = np.nan
    with pytest.raises(ValueError, match="xy has NaN or infinite values on valid fragments"):
        SPLAT.numpy_call(rgba, bad, fr)
    bad = xy.copy()
    bad[fr.face_id < 0] = np.nan  # ignored where there is no fragment
    np.testing.assert_array_equal(SPLAT.numpy_call(rgba, bad, fr), SPLAT.numpy_call(rgba, xy, fr))
    with pytest.raises(TypeError, match="torch tensor"):
        SPLAT.numpy_call(torch.from_numpy(rgba), xy, fr)
    # empty images: nothing valid -> transparent black, zero gradients
    empty = fr._replace(face_id=np.full_like(fr.face_id, -1))
    out, pullback = SPLAT.numpy_vjp(rgba, xy, empty)
    assert (out == 0).all()
    assert all((g == 0).all() for g in pullback(np.ones_like(out)))
