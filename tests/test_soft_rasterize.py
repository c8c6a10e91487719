"""soft_rasterize (SoftRas): dense pure-torch reference, gradcheck, no per-pixel cap, bridges, bad input."""
import math

import numpy as np
import pytest
import torch

from taichirast._prims.soft import PRIM


def soft(*args, **kw):
    """The exact sum (these tests compare with a dense reference to rounding; the depth-ordered
    cut-off's bound is tested in tests/test_soft_cutoff.py)."""
    return PRIM.torch_call(*args, **{"exact": True, **kw})


# ----------------------------------------------------------------------------- dense reference
def ref_soft(sv, faces, colors, image_size, background=None, sigma=1e-4, gamma=1e-4, eps=1e-10, near=0.01,
             far=100.0, per_face=False, cull_eps=1e-4):
    """All pixels x all faces in plain torch, the formulas of kernels/soft.py (autograd gives its gradients)."""
    H, W = image_size
    sv = sv[None] if sv.ndim == 2 else sv
    colors = colors[None] if colors.ndim == 2 else colors
    B = max(sv.shape[0], colors.shape[0])
    sv = sv.expand(B, -1, -1)
    colors = colors.expand(B, -1, -1)
    C = colors.shape[-1]
    bg = torch.zeros(C, dtype=sv.dtype) if background is None else background
    faces = torch.as_tensor(faces, dtype=torch.long)
    tri = sv[:, faces]  # (B, F, 3, 3)
    X, Y, Zv = tri[..., 0][:, None], tri[..., 1][:, None], tri[..., 2][:, None]  # (B, 1, F, 3)
    ys, xs = torch.meshgrid(torch.arange(H, dtype=sv.dtype) + 0.5, torch.arange(W, dtype=sv.dtype) + 0.5,
                            indexing="ij")
    px = xs.reshape(1, -1, 1)
    py = ys.reshape(1, -1, 1)

    def edge(ax, ay, bx, by, qx, qy):
        return (ax - qx) * (by - qy) - (bx - qx) * (ay - qy)

    Aw = edge(X[..., 0], Y[..., 0], X[..., 1], Y[..., 1], X[..., 2], Y[..., 2])  # (B, 1, F)
    valid = (Zv > near).all(-1) & (Aw.abs() > 1e-12)
    Aw = torch.where(valid, Aw, torch.ones_like(Aw))
    Zv = torch.where(valid[..., None], Zv, torch.ones_like(Zv))
    E = torch.stack([edge(X[..., 1], Y[..., 1], X[..., 2], Y[..., 2], px, py),
                     edge(X[..., 2], Y[..., 2], X[..., 0], Y[..., 0], px, py),
                     edge(X[..., 0], Y[..., 0], X[..., 1], Y[..., 1], px, py)], -1)  # (B, P, F, 3)
    a = E / Aw[..., None]
    inside = (a >= 0).all(-1)
    d2s, ts = [], []
    for k in range(3):
        k1 = (k + 1) % 3
        ex, ey = X[..., k1] - X[..., k], Y[..., k1] - Y[..., k]
        rx, ry = px - X[..., k], py - Y[..., k]
        ee = ex * ex + ey * ey
        ee = torch.where(ee > 0, ee, torch.ones_like(ee))
        t = ((rx * ex + ry * ey) / ee).clamp(0, 1)
        d2s.append((rx - t * ex) ** 2 + (ry - t * ey) ** 2)
        ts.append(t)
    d2s, ts = torch.stack(d2s, -1), torch.stack(ts, -1)
    d2, ke = d2s.min(-1)
    t = ts.gather(-1, ke[..., None])[..., 0]
    s = 2.0 / min(H, W)
    x = torch.where(inside, d2, -d2) * s * s / sigma
    D = torch.sigmoid(x)
    inc = valid & (D >= cull_eps)
    oh = torch.nn.functional.one_hot
    abar_out = oh(ke, 3) * (1 - t)[..., None] + oh((ke + 1) % 3, 3) * t[..., None]
    abar = torch.where(inside[..., None], a, abar_out)
    q = abar / Zv
    Q = q.sum(-1)
    b = q / Q[..., None]
    zp = 1.0 / Q
    if per_face:
        cj = colors[:, None].expand(-1, H * W, -1, -1)
    else:
        cj = torch.einsum("bpfi,bfic->bpfc", b, colors[:, faces])
    zj = (far - zp) / (far - near)
    Dm = torch.where(inc, D, torch.zeros_like(D))
    alpha = 1 - torch.prod(1 - Dm, -1)
    v = zj / gamma
    m = torch.maximum(torch.where(inc, v, torch.full_like(v, -math.inf)).amax(-1),
                      torch.full_like(v[..., 0], eps / gamma)).detach()
    w = torch.where(inc, D * torch.exp(torch.where(inc, v, m[..., None]) - m[..., None]), torch.zeros_like(D))
    wb = torch.exp(eps / gamma - m)
    Z = w.sum(-1) + wb
    rgb = (torch.einsum("bpf,bpfc->bpc", w, cj) + wb[..., None] * bg) / Z[..., None]
    return torch.cat([rgb, alpha[..., None]], -1).reshape(B, H, W, C + 1)


# ----------------------------------------------------------------------------- scenes
def scene(seed=0, B=2, n_tri=4, H=12, W=10, C=3, dtype=torch.float64, per_face=False):
    """Separate random triangles (some partly off-screen) plus a two-triangle quad sharing an edge."""
    g = np.random.default_rng(seed)
    pts = []
    for _ in range(n_tri):
        c = g.uniform([-1, -1], [W + 1, H + 1])
        pts.append(c + g.normal(0, 0.45 * min(H, W), (3, 2)))
    quad = g.uniform([0, 0], [W, H]) + np.array([[0, 0], [5, 0.5], [4.5, 4], [-0.5, 3.5]])
    xy = np.concatenate(pts + [quad])
    Vn = xy.shape[0]
    sv = np.concatenate([np.broadcast_to(xy, (B, Vn, 2)) + g.normal(0, 0.3, (B, Vn, 2)),
                         g.uniform(1.0, 4.0, (B, Vn, 1))], -1)
    faces = np.concatenate([np.arange(3 * n_tri).reshape(-1, 3), 3 * n_tri + np.array([[0, 1, 2], [0, 2, 3]])])
    n_col = faces.shape[0] if per_face else Vn
    colors = g.uniform(0, 1, (B, n_col, C))
    bg = g.uniform(0, 1, C)
    t = lambda a: torch.tensor(a, dtype=dtype)
    return t(sv), torch.tensor(faces, dtype=torch.int32), t(colors), t(bg)


SMOOTH = dict(sigma=3e-2, gamma=5e-2, near=0.5, far=10.0)


def _grads(fn, inputs, weight):
    inputs = [x.detach().clone().requires_grad_() for x in inputs]
    out = fn(*inputs)
    (out * weight).sum().backward()
    return out.detach(), [x.grad for x in inputs]


@pytest.mark.parametrize("per_face", [False, True])
@pytest.mark.parametrize("kw", [SMOOTH, dict(sigma=1e-3, gamma=1e-2, near=0.5, far=10.0),
                                dict(sigma=1e-4, gamma=1e-4)])
def test_matches_dense_reference(per_face, kw):
    H, W = 21, 17
    sv, faces, colors, bg = scene(seed=1, H=H, W=W, n_tri=6, per_face=per_face)
    weight = torch.randn(2, H, W, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    ours, g_ours = _grads(lambda s, c, b: soft(s, faces, c, (H, W), b, per_face=per_face, **kw),
                          (sv, colors, bg), weight)
    ref, g_ref = _grads(lambda s, c, b: ref_soft(s, faces, c, (H, W), b, per_face=per_face, **kw),
                        (sv, colors, bg), weight)
    assert ours.shape == (2, H, W, 4)
    assert torch.allclose(ours, ref, atol=1e-10, rtol=0)
    assert 0.2 < float(ours[..., 3].mean()) < 1.0  # the scene is actually covered
    for a, b in zip(g_ours, g_ref):
        assert torch.allclose(a, b, atol=1e-8, rtol=1e-8), (a - b).abs().max()


def test_pixels_with_zero_rgb_or_zero_gradient_match_dense_reference():
    """The backward passes over the pairs of pixels whose gradient is all 0 (their cut is set to
    0) and over the colour part at pixels whose rgb gradient is 0 (an alpha-only loss, as in
    silhouette fitting): the gradients still match the dense reference."""
    H, W = 21, 17
    sv, faces, colors, bg = scene(seed=6, H=H, W=W, n_tri=6)
    weight = torch.randn(2, H, W, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    rows = torch.arange(H)[:, None].expand(H, W)
    weight[:, rows % 3 == 0, :3] = 0.0  # alpha gradient only
    weight[:, rows % 3 == 1, :] = 0.0   # no gradient at all
    kw = dict(sigma=1e-3, gamma=1e-2, near=0.5, far=10.0)
    for w in (weight, torch.cat([torch.zeros_like(weight[..., :3]), weight[..., 3:]], -1)):
        ours, g_ours = _grads(lambda s, c, b: soft(s, faces, c, (H, W), b, **kw), (sv, colors, bg), w)
        ref, g_ref = _grads(lambda s, c, b: ref_soft(s, faces, c, (H, W), b, **kw), (sv, colors, bg), w)
        assert float(g_ref[0].abs().max()) > 1e-3
        for a, b in zip(g_ours, g_ref):
            assert torch.allclose(a, b, atol=1e-10, rtol=1e-8), (a - b).abs().max()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("exact", [True, False])
def test_huge_and_far_centred_faces_match_dense_reference(exact, dtype):
    """The forward passes over a face in the blocks whose cell of the tile its box and disk miss
    (kernels/soft.py ``cell_mask``, float tests of pixel centres against the disk): a face of
    radius ~3e4 px covering the image and a sliver from the image to 9000 px out still reach every
    pixel they should (with and without the cut-off, which is tested at faces that do not reach a
    pixel)."""
    H, W = 21, 17
    xy = np.array([[-2e4, -2e4], [3e4, -2e4], [-2e4, 3e4],      # covers the image, radius ~3e4 px
                   [3.0, 5.0], [8.0, 6.0], [9e3, 5.5],          # a sliver from the image to 9000 px out
                   [4.0, 4.0], [12.0, 5.0], [6.0, 15.0]])       # small, nearest
    z = np.array([3.0, 3.2, 3.4, 2.5, 2.5, 2.6, 2.0, 2.1, 2.2])[:, None]
    sv = torch.tensor(np.concatenate([xy, z], -1)[None], dtype=torch.float64)
    faces = torch.arange(9).reshape(3, 3)
    colors = torch.rand(1, 9, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    weight = torch.randn(1, H, W, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    kw = dict(sigma=1e-3, gamma=1e-2, near=0.5, far=10.0)
    ours, g_ours = _grads(lambda s, c: soft(s, faces, c, (H, W), **{**kw, "exact": exact}),
                          (sv.to(dtype), colors.to(dtype)), weight.to(dtype))
    ref, g_ref = _grads(lambda s, c: ref_soft(s, faces, c, (H, W), **kw), (sv, colors), weight)
    assert float(ours[..., 3].min()) > 0.99  # the big face covers every pixel
    # float32 (what Vulkan runs): edge functions of a vertex 9000 px out cost ~1e-5 in the image and
    # ~2e-3 in the gradients; a face passed over where it reaches would cost O(1)
    f64 = dtype == torch.float64
    assert torch.allclose(ours.double(), ref, atol=1e-10 if f64 and exact else 2e-4, rtol=0)
    for a, b in zip(g_ours, g_ref):
        assert (a.double() - b).norm() <= (1e-9 if f64 and exact else 1e-3 if f64 else 1e-2) * b.norm()


def test_gradcheck_per_vertex():
    sv, faces, colors, bg = scene(seed=2, n_tri=4)
    args = [x.clone().requires_grad_() for x in (sv, colors, bg)]
    assert torch.autograd.gradcheck(lambda s, c, b: soft(s, faces, c, (12, 10), b, **SMOOTH), args,
                                    eps=1e-6, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("wanted", ["screen_verts", "colors"])
def test_one_wanted_gradient_equals_its_value_when_both_are_wanted(wanted):
    # the backward adds a face's gradients to its vertices only for the inputs that want them
    sv, faces, colors, bg = scene(seed=2, n_tri=4)
    g = torch.randn(2, 12, 10, 4, generator=torch.Generator().manual_seed(3), dtype=sv.dtype)

    def grads(need_sv, need_col):
        s, c = sv.clone().requires_grad_(need_sv), colors.clone().requires_grad_(need_col)
        (soft(s, faces, c, (12, 10), bg, **SMOOTH) * g).sum().backward()
        return s.grad, c.grad

    both = grads(True, True)
    one = grads(wanted == "screen_verts", wanted == "colors")
    k = 0 if wanted == "screen_verts" else 1
    assert one[1 - k] is None and float(both[k].abs().max()) > 0
    torch.testing.assert_close(one[k], both[k], rtol=1e-12, atol=1e-14)


def test_gradcheck_per_face_and_broadcast_verts():
    # one set of vertices (batch 1) rendered with batch-2 per-face colours: vertex grads sum over the batch
    sv, faces, colors, bg = scene(seed=4, n_tri=3, per_face=True)
    args = [sv[:1].clone().requires_grad_(), colors.clone().requires_grad_(), bg.clone().requires_grad_()]
    assert torch.autograd.gradcheck(lambda s, c, b: soft(s, faces, c, (12, 10), b, per_face=True, **SMOOTH),
                                    args, eps=1e-6, atol=1e-5, rtol=1e-4)


def test_no_faces_per_pixel_cap():
    # 200 stacked triangles over the same pixels, at distinct depths: all of them count
    g = np.random.default_rng(5)
    n = 200
    base = np.array([[1.2, 1.1], [7.7, 2.3], [3.1, 8.4]])
    xy = base[None] + g.normal(0, 0.2, (n, 3, 2))
    z = g.uniform(1.0, 3.0, (n, 3, 1))
    sv = torch.tensor(np.concatenate([xy, z], -1).reshape(-1, 3))
    faces = torch.arange(3 * n, dtype=torch.int32).reshape(n, 3)
    colors = torch.tensor(g.uniform(0, 1, (3 * n, 2)))
    kw = dict(sigma=2e-2, gamma=1e-2, near=0.5, far=10.0)
    weight = torch.randn(1, 9, 9, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    ours, g_ours = _grads(lambda s, c: soft(s, faces, c, 9, **kw), (sv, colors), weight)
    ref, g_ref = _grads(lambda s, c: ref_soft(s, faces, c, (9, 9), **kw), (sv, colors), weight)
    assert torch.allclose(ours, ref, atol=1e-10, rtol=0)
    for a, b in zip(g_ours, g_ref):
        assert torch.allclose(a, b, atol=1e-8, rtol=1e-8)
    # a far-away pixel still sees the faint tails of all the faces: alpha = 1 - prod(1 - D) over 200 faces
    assert float(ours[0, 4, 4, 2]) == pytest.approx(1.0, abs=1e-12)


def test_tile_size_does_not_change_the_result():
    sv, faces, colors, bg = scene(seed=6, H=19, W=23, n_tri=5)
    outs = [soft(sv, faces, colors, (19, 23), bg, tile_size=t, **SMOOTH) for t in (1, 3, 8, 64)]
    for o in outs[1:]:
        assert torch.allclose(o, outs[0], atol=1e-12, rtol=0)


def test_near_plane_and_degenerate_faces_are_dropped():
    sv, faces, colors, bg = scene(seed=7, n_tri=3)
    base = soft(sv, faces, colors, (12, 10), bg, **SMOOTH)
    sv2 = sv.clone()
    # a face behind the near plane (one vertex at z = 0.2 < near) and a zero-area face
    extra = torch.tensor([[[2.0, 2.0, 0.2], [8.0, 3.0, 2.0], [4.0, 9.0, 2.0],
                           [1.0, 1.0, 2.0], [5.0, 5.0, 2.0], [9.0, 9.0, 2.0]]], dtype=torch.float64).expand(2, -1, -1)
    sv2 = torch.cat([sv2, extra], 1).requires_grad_()
    Vn = sv.shape[1]
    faces2 = torch.cat([faces, torch.tensor([[Vn, Vn + 1, Vn + 2], [Vn + 3, Vn + 4, Vn + 5]], dtype=torch.int32)])
    colors2 = torch.cat([colors, torch.rand(2, 6, 3, dtype=torch.float64)], 1)
    out = soft(sv2, faces2, colors2, (12, 10), bg, **SMOOTH)
    assert torch.isfinite(out).all()
    assert torch.allclose(out, base, atol=1e-14, rtol=0)
    out.square().sum().backward()
    assert torch.isfinite(sv2.grad).all()
    assert torch.equal(sv2.grad[:, Vn:], torch.zeros(2, 6, 3, dtype=torch.float64))
    assert sv2.grad[:, :Vn].abs().max() > 1e-3


def test_empty_mesh_renders_background_with_zero_gradients():
    sv = torch.rand(1, 4, 3, dtype=torch.float64, requires_grad=True)
    colors = torch.rand(4, 3, dtype=torch.float64, requires_grad=True)
    bg = torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64, requires_grad=True)
    faces = torch.zeros(0, 3, dtype=torch.int64)
    out = soft(sv, faces, colors, (5, 6), bg)
    assert out.shape == (1, 5, 6, 4)
    assert torch.equal(out[..., :3], bg.detach().expand(1, 5, 6, 3))
    assert torch.equal(out[..., 3], torch.zeros(1, 5, 6, dtype=torch.float64))
    weight = torch.rand(1, 5, 6, 4, dtype=torch.float64)
    (out * weight).sum().backward()
    assert torch.equal(sv.grad, torch.zeros_like(sv))
    assert torch.equal(colors.grad, torch.zeros_like(colors))
    assert torch.allclose(bg.grad, weight[..., :3].sum((0, 1, 2)))


def test_torch_and_numpy_bridges_agree():
    sv, faces, colors, bg = scene(seed=8, B=1)
    kw = dict(image_size=(12, 10), background=bg.numpy(), **SMOOTH)
    out_np = PRIM.numpy_call(sv.numpy(), faces.numpy(), colors.numpy(), **kw)
    assert isinstance(out_np, np.ndarray)
    weight = np.random.default_rng(0).normal(size=out_np.shape)
    out_t, (gs, gc) = _grads(lambda s, c: soft(s, faces, c, (12, 10), bg, **SMOOTH), (sv, colors),
                             torch.tensor(weight))
    np.testing.assert_allclose(out_np, out_t.numpy(), atol=1e-13, rtol=0)
    out2, pullback = PRIM.numpy_vjp(sv.numpy()[0], faces.numpy(), colors.numpy()[0], **kw)
    np.testing.assert_allclose(out2, out_np, atol=1e-13, rtol=0)
    g_sv, g_col, g_bg = pullback(weight)  # background given by keyword: its gradient comes third
    assert g_sv.shape == (sv.shape[1], 3) and g_col.shape == (colors.shape[1], 3) and g_bg.shape == bg.shape
    np.testing.assert_allclose(g_sv, gs.numpy()[0], atol=1e-11, rtol=1e-11)
    np.testing.assert_allclose(g_col, gc.numpy()[0], atol=1e-11, rtol=1e-11)


def test_float32_matches_float64():
    sv, faces, colors, bg = scene(seed=9, H=16, W=16, n_tri=5)
    weight = torch.randn(2, 16, 16, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    o64, g64 = _grads(lambda s, c: soft(s, faces, c, 16, bg, **SMOOTH), (sv, colors), weight)
    o32, g32 = _grads(lambda s, c: soft(s, faces, c, 16, bg.float(), **SMOOTH), (sv.float(), colors.float()),
                      weight.float())
    assert o32.dtype == torch.float32 and g32[0].dtype == torch.float32
    assert torch.allclose(o32.double(), o64, atol=2e-5, rtol=0)
    for a, b in zip(g32, g64):
        assert torch.allclose(a.double(), b, atol=2e-3 * float(b.abs().max()), rtol=0)


def test_default_parameters_large_depth_range():
    # published settings (sigma = gamma = 1e-4) at a larger image: softmax needs the running max m
    sv, faces, colors, bg = scene(seed=10, B=1, H=48, W=40, n_tri=6)
    out = soft(sv, faces, colors, (48, 40), bg)
    ref = ref_soft(sv, faces, colors, (48, 40), bg)
    assert torch.isfinite(out).all()
    assert torch.allclose(out, ref, atol=1e-10, rtol=0)


def _bad(**kw):
    sv, faces, colors, bg = scene(seed=0, B=1, n_tri=2)
    args = dict(screen_verts=sv, faces=faces, colors=colors, image_size=(12, 10))
    args.update(kw)
    return args


@pytest.mark.parametrize("kw, exc, word", [
    (dict(sigma=0.0), ValueError, "sigma"),
    (dict(sigma=-1.0), ValueError, "sigma"),
    (dict(gamma=0.0), ValueError, "gamma"),
    (dict(per_face=True), ValueError, "colors"),
    (dict(colors=torch.rand(1, 5, 3, dtype=torch.float64)), ValueError, "colors"),
    (dict(colors=torch.rand(10, 3)), TypeError, "dtype"),
    (dict(screen_verts=torch.full((10, 3), float("nan"), dtype=torch.float64)), ValueError, "screen_verts"),
    (dict(screen_verts=torch.rand(10, 2, dtype=torch.float64)), ValueError, "screen_verts"),
    (dict(faces=torch.tensor([[0, 1, 12]])), ValueError, "faces"),
    (dict(faces=torch.tensor([[0.0, 1.0, 2.0]])), TypeError, "faces"),
    (dict(image_size=(0, 10)), ValueError, "image_size"),
    (dict(image_size=(-3, 10)), ValueError, "image_size"),
    (dict(background=torch.zeros(4, dtype=torch.float64)), ValueError, "background"),
    (dict(far=0.001), ValueError, "far"),
    (dict(cull_eps=0.0), ValueError, "cull_eps"),
    (dict(tile_size=0), ValueError, "tile_size"),
])
def test_bad_input(kw, exc, word):
    with pytest.raises(exc, match=word):
        soft(**_bad(**kw))
