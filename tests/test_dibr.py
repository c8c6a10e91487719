"""dibr_silhouette (DIB-R soft mask): dense pure-torch reference, gradcheck, zero factors, bridges, bad input."""
import numpy as np
import pytest
import torch

from taichirast._prims.dibr import PRIM

dibr = PRIM.torch_call


# ----------------------------------------------------------------------------- references
def hard_face_id(sv, faces, H, W, near=0.01):
    """Brute-force hard rasterization in NumPy: the nearest face (perspective-correct depth) whose
    screen triangle holds the pixel centre, -1 elsewhere. sv (B, V, 3) -> (B, H, W) int32."""
    sv = np.asarray(sv, dtype=np.float64)
    faces = np.asarray(faces)
    B = sv.shape[0]
    out = np.full((B, H, W), -1, dtype=np.int32)
    ys, xs = np.meshgrid(np.arange(H) + 0.5, np.arange(W) + 0.5, indexing="ij")
    for b in range(B):
        best = np.full((H, W), np.inf)
        for j, (i0, i1, i2) in enumerate(faces):
            (x0, y0, z0), (x1, y1, z1), (x2, y2, z2) = sv[b, i0], sv[b, i1], sv[b, i2]
            if min(z0, z1, z2) <= near:
                continue
            A = (x0 - x2) * (y1 - y2) - (x1 - x2) * (y0 - y2)
            if abs(A) <= 1e-12:
                continue
            a0 = ((x1 - xs) * (y2 - ys) - (x2 - xs) * (y1 - ys)) / A
            a1 = ((x2 - xs) * (y0 - ys) - (x0 - xs) * (y2 - ys)) / A
            a2 = 1 - a0 - a1
            inside = (a0 >= 0) & (a1 >= 0) & (a2 >= 0)
            zp = 1 / (a0 / z0 + a1 / z1 + a2 / z2)
            take = inside & (zp < best)
            best[take] = zp[take]
            out[b][take] = j
    return out


def ref_dibr(sv, faces, face_id, image_size, sigmainv=7000.0, box_len=0.02, near=0.01):
    """All pixels x all faces in plain torch (autograd gives its gradients)."""
    H, W = image_size
    sv = sv[None] if sv.ndim == 2 else sv
    faces = torch.as_tensor(faces, dtype=torch.long)
    tri = sv[:, faces]
    X, Y, Zv = tri[..., 0][:, None], tri[..., 1][:, None], tri[..., 2][:, None]  # (B, 1, F, 3)
    ys, xs = torch.meshgrid(torch.arange(H, dtype=sv.dtype) + 0.5, torch.arange(W, dtype=sv.dtype) + 0.5,
                            indexing="ij")
    px, py = xs.reshape(1, -1, 1), ys.reshape(1, -1, 1)

    def edge(ax, ay, bx, by, qx, qy):
        return (ax - qx) * (by - qy) - (bx - qx) * (ay - qy)

    Aw = edge(X[..., 0], Y[..., 0], X[..., 1], Y[..., 1], X[..., 2], Y[..., 2])
    valid = (Zv > near).all(-1) & (Aw.abs() > 1e-12)
    Aw = torch.where(valid, Aw, torch.ones_like(Aw))
    E = torch.stack([edge(X[..., 1], Y[..., 1], X[..., 2], Y[..., 2], px, py),
                     edge(X[..., 2], Y[..., 2], X[..., 0], Y[..., 0], px, py),
                     edge(X[..., 0], Y[..., 0], X[..., 1], Y[..., 1], px, py)], -1)
    inside = (E / Aw[..., None] >= 0).all(-1)
    d2s = []
    for k in range(3):
        k1 = (k + 1) % 3
        ex, ey = X[..., k1] - X[..., k], Y[..., k1] - Y[..., k]
        rx, ry = px - X[..., k], py - Y[..., k]
        ee = ex * ex + ey * ey
        t = ((rx * ex + ry * ey) / torch.where(ee > 0, ee, torch.ones_like(ee))).clamp(0, 1)
        d2s.append((rx - t * ex) ** 2 + (ry - t * ey) ** 2)
    d2 = torch.where(inside, torch.zeros_like(px.expand_as(inside), dtype=sv.dtype), torch.stack(d2s, -1).amin(-1))
    s = 2.0 / min(H, W)
    P = torch.exp(-sigmainv * d2 * s * s)
    g = box_len / s
    inbox = ((px >= X.amin(-1) - g) & (px <= X.amax(-1) + g) & (py >= Y.amin(-1) - g) & (py <= Y.amax(-1) + g))
    inc = valid & inbox
    A = 1 - torch.prod(torch.where(inc, 1 - P, torch.ones_like(P)), -1)
    fid = torch.as_tensor(face_id).reshape(-1, H * W)
    A = torch.where(fid >= 0, torch.ones_like(A), A)
    return A.reshape(-1, H, W)


def scene(seed=0, B=2, n_tri=4, H=12, W=10, dtype=torch.float64):
    g = np.random.default_rng(seed)
    pts = []
    for _ in range(n_tri):
        c = g.uniform([-1, -1], [W + 1, H + 1])
        pts.append(c + g.normal(0, 0.3 * min(H, W), (3, 2)))
    xy = np.concatenate(pts)
    Vn = xy.shape[0]
    sv = np.concatenate([np.broadcast_to(xy, (B, Vn, 2)) + g.normal(0, 0.3, (B, Vn, 2)),
                         g.uniform(1.0, 4.0, (B, Vn, 1))], -1)
    faces = np.arange(3 * n_tri).reshape(-1, 3)
    fid = hard_face_id(sv, faces, H, W)
    return torch.tensor(sv, dtype=dtype), torch.tensor(faces, dtype=torch.int32), torch.tensor(fid)


SMOOTH = dict(sigmainv=30.0, box_len=0.5)


def _grads(fn, sv, weight):
    sv = sv.detach().clone().requires_grad_()
    out = fn(sv)
    (out * weight).sum().backward()
    return out.detach(), sv.grad


@pytest.mark.parametrize("kw", [SMOOTH, dict(sigmainv=200.0, box_len=0.1), dict()])
def test_matches_dense_reference(kw):
    H, W = 24, 19
    sv, faces, fid = scene(seed=1, H=H, W=W, n_tri=6)
    assert (fid >= 0).any() and (fid < 0).any()
    weight = torch.randn(2, H, W, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    ours, g_ours = _grads(lambda s: dibr(s, faces, fid, (H, W), **kw), sv, weight)
    ref, g_ref = _grads(lambda s: ref_dibr(s, faces, fid, (H, W), **kw), sv, weight)
    assert ours.shape == (2, H, W)
    assert torch.allclose(ours, ref, atol=1e-12, rtol=0)
    soft_px = (ours > 1e-6) & (ours < 1 - 1e-6)
    assert soft_px.sum() > 10  # some pixels are genuinely soft
    assert torch.allclose(g_ours, g_ref, atol=1e-9, rtol=1e-9)


def test_gradcheck():
    sv, faces, fid = scene(seed=2, n_tri=4)
    assert torch.autograd.gradcheck(lambda s: dibr(s, faces, fid, (12, 10), **SMOOTH), [sv.clone().requires_grad_()],
                                    eps=1e-6, atol=1e-5, rtol=1e-4)


def test_gradcheck_broadcast_face_id():
    # batch-2 vertices, one (H, W) face-id map for both
    sv, faces, fid = scene(seed=3, n_tri=3)
    assert torch.autograd.gradcheck(lambda s: dibr(s, faces, fid[0], (12, 10), **SMOOTH),
                                    [sv.clone().requires_grad_()], eps=1e-6, atol=1e-5, rtol=1e-4)


def test_zero_factors_without_face_id():
    # all face ids -1: pixels inside triangles make exact zero factors 1 - P = 0 (one or two of them)
    H, W = 14, 14
    sv = torch.tensor([[2.0, 2.0, 2.0], [11.0, 3.0, 2.0], [4.0, 12.0, 2.0],
                       [3.0, 3.0, 3.0], [12.5, 6.0, 3.0], [6.0, 12.5, 3.0],
                       [9.0, 9.0, 1.5], [13.5, 10.0, 1.5], [10.0, 13.5, 1.5]], dtype=torch.float64)
    faces = torch.arange(9, dtype=torch.int32).reshape(3, 3)
    fid = torch.full((H, W), -1, dtype=torch.int32)
    weight = torch.randn(1, H, W, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    ours, g_ours = _grads(lambda s: dibr(s, faces, fid, (H, W), **SMOOTH), sv, weight)
    ref, g_ref = _grads(lambda s: ref_dibr(s, faces, fid, (H, W), **SMOOTH), sv, weight)
    assert torch.isfinite(g_ours).all()
    assert (ours == 1).sum() > 20  # covered pixels saturate
    assert torch.allclose(ours, ref, atol=1e-12, rtol=0)
    assert torch.allclose(g_ours, g_ref, atol=1e-9, rtol=1e-9)


def test_tile_size_does_not_change_the_result():
    sv, faces, fid = scene(seed=4, H=19, W=23, n_tri=5)
    outs = [dibr(sv, faces, fid, (19, 23), tile_size=t, **SMOOTH) for t in (1, 5, 8, 64)]
    for o in outs[1:]:
        assert torch.allclose(o, outs[0], atol=1e-14, rtol=0)


def test_near_plane_faces_are_dropped():
    sv, faces, fid = scene(seed=5, B=1, n_tri=3)
    base = dibr(sv, faces, fid, (12, 10), **SMOOTH)
    extra = torch.tensor([[[2.0, 2.0, 0.005], [8.0, 3.0, 2.0], [4.0, 9.0, 2.0]]], dtype=torch.float64)
    sv2 = torch.cat([sv, extra], 1).requires_grad_()
    faces2 = torch.cat([faces, torch.tensor([[9, 10, 11]], dtype=torch.int32)])
    out = dibr(sv2, faces2, fid, (12, 10), **SMOOTH)
    assert torch.allclose(out, base, atol=1e-15, rtol=0)
    out.sum().backward()
    assert torch.equal(sv2.grad[:, 9:], torch.zeros(1, 3, 3, dtype=torch.float64))


def test_empty_mesh():
    sv = torch.rand(4, 3, dtype=torch.float64, requires_grad=True)
    out = dibr(sv, torch.zeros(0, 3, dtype=torch.int32), torch.full((1, 5, 6), -1, dtype=torch.int32), (5, 6))
    assert torch.equal(out, torch.zeros(1, 5, 6, dtype=torch.float64))
    out.sum().backward()
    assert torch.equal(sv.grad, torch.zeros_like(sv))


def test_torch_and_numpy_bridges_agree():
    sv, faces, fid = scene(seed=6, B=1)
    out_np = PRIM.numpy_call(sv.numpy(), faces.numpy(), fid.numpy(), (12, 10), **SMOOTH)
    weight = np.random.default_rng(0).normal(size=out_np.shape)
    out_t, g_t = _grads(lambda s: dibr(s, faces, fid, (12, 10), **SMOOTH), sv, torch.tensor(weight))
    np.testing.assert_allclose(out_np, out_t.numpy(), atol=1e-14, rtol=0)
    out2, pullback = PRIM.numpy_vjp(sv.numpy()[0], faces.numpy(), fid.numpy()[0], (12, 10), **SMOOTH)
    np.testing.assert_allclose(out2, out_np, atol=1e-14, rtol=0)
    (g_sv,) = pullback(weight)
    assert g_sv.shape == (sv.shape[1], 3)
    np.testing.assert_allclose(g_sv, g_t.numpy()[0], atol=1e-12, rtol=1e-12)


def test_float32_matches_float64():
    sv, faces, fid = scene(seed=7, H=16, W=16, n_tri=5)
    weight = torch.randn(2, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    o64, g64 = _grads(lambda s: dibr(s, faces, fid, 16, **SMOOTH), sv, weight)
    o32, g32 = _grads(lambda s: dibr(s, faces, fid, 16, **SMOOTH), sv.float(), weight.float())
    assert o32.dtype == torch.float32 and g32.dtype == torch.float32
    assert torch.allclose(o32.double(), o64, atol=1e-5, rtol=0)
    assert torch.allclose(g32.double(), g64, atol=1e-4 * float(g64.abs().max()), rtol=0)


def _bad(**kw):
    sv, faces, fid = scene(seed=0, B=1, n_tri=2)
    args = dict(screen_verts=sv, faces=faces, fragments=fid, image_size=(12, 10))
    args.update(kw)
    return args


@pytest.mark.parametrize("kw, exc, word", [
    (dict(sigmainv=0.0), ValueError, "sigmainv"),
    (dict(box_len=-0.1), ValueError, "box_len"),
    (dict(fragments=torch.zeros(1, 12, 9, dtype=torch.int32)), ValueError, "face_id"),
    (dict(fragments=torch.full((1, 12, 10), 5, dtype=torch.int32)), ValueError, "face_id"),
    (dict(fragments=torch.zeros(1, 12, 10)), TypeError, "face_id"),
    (dict(screen_verts=torch.full((6, 3), float("inf"), dtype=torch.float64)), ValueError, "screen_verts"),
    (dict(faces=torch.tensor([[0, 1, 6]])), ValueError, "faces"),
    (dict(image_size=(12, 0)), ValueError, "image_size"),
    (dict(tile_size=2.5), TypeError, "tile_size"),
])
def test_bad_input(kw, exc, word):
    with pytest.raises(exc, match=word):
        dibr(**_bad(**kw))
