"""texture: known patterns, texel centres, NumPy reference, gradients, background, bridges, bad input."""
import numpy as np
import pytest
import torch

from taichirast._prims.texture import PRIM as TEX


def _ref(tex, uv, filter="bilinear", wrap="repeat", face_id=None):
    """NumPy reference of the documented convention: x = u Wt - 0.5, y = (1 - v) Ht - 0.5."""
    tex = tex if tex.ndim == 4 else tex[None]
    uv = uv if uv.ndim == 4 else uv[None]
    B = uv.shape[0]
    _, Ht, Wt, C = tex.shape
    u, t = uv[..., 0], 1.0 - uv[..., 1]
    if wrap == "repeat":
        u, t = u - np.floor(u), t - np.floor(t)
    x, y = u * Wt - 0.5, t * Ht - 0.5

    def idx(i, n):
        return np.mod(i, n) if wrap == "repeat" else np.clip(i, 0, n - 1)

    bt = np.arange(B)[:, None, None] * (tex.shape[0] > 1)
    if filter == "nearest":
        out = tex[bt, idx(np.floor(y + 0.5).astype(int), Ht), idx(np.floor(x + 0.5).astype(int), Wt)]
    else:
        x0, y0 = np.floor(x), np.floor(y)
        fx, fy = (x - x0)[..., None], (y - y0)[..., None]
        x0, y0 = x0.astype(int), y0.astype(int)
        xa, xb, ya, yb = idx(x0, Wt), idx(x0 + 1, Wt), idx(y0, Ht), idx(y0 + 1, Ht)
        out = ((1 - fx) * (1 - fy) * tex[bt, ya, xa] + fx * (1 - fy) * tex[bt, ya, xb]
               + (1 - fx) * fy * tex[bt, yb, xa] + fx * fy * tex[bt, yb, xb])
    if face_id is not None:
        out = np.where(face_id[..., None] < 0, 0.0, out)
    return out


def _centres(Ht, Wt):
    """UV image (Ht, Wt, 2) of the texel centres: texel (i, j) at u = (j + .5) / Wt, v = 1 - (i + .5) / Ht."""
    j, i = np.meshgrid(np.arange(Wt), np.arange(Ht))
    return np.stack([(j + 0.5) / Wt, 1.0 - (i + 0.5) / Ht], -1)


def _nudge(uv, Ht, Wt, margin=0.05):
    """Move uv away from texel-centre lines (integer x or y), where the bilinear cell changes."""
    uv = uv.copy()
    for k, n, sign in ((0, Wt, 1.0), (1, Ht, -1.0)):
        c = (uv[..., k] if k == 0 else 1.0 - uv[..., k]) * n - 0.5
        frac = c - np.floor(c)
        bad = (frac < margin) | (frac > 1 - margin)
        uv[..., k] += np.where(bad, sign * 0.3 / n, 0.0)
    return uv


@pytest.mark.parametrize("filter", ["nearest", "bilinear"])
@pytest.mark.parametrize("wrap", ["repeat", "clamp"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_texel_centres_reproduce_texture(filter, wrap, dtype):
    rng = np.random.default_rng(0)
    tex = rng.normal(size=(2, 4, 8, 3)).astype(dtype)  # power-of-two sizes: centres are exact floats
    out = TEX.numpy_call(tex, np.broadcast_to(_centres(4, 8), (2, 4, 8, 2)).astype(dtype), filter, wrap)
    assert out.shape == (2, 4, 8, 3) and out.dtype == dtype
    np.testing.assert_array_equal(out, tex)
    # other sizes: exact up to the rounding of (i + .5) / Ht
    tex = rng.normal(size=(3, 5, 2))
    out = TEX.numpy_call(tex, _centres(3, 5), filter, wrap)
    np.testing.assert_allclose(out[0], tex, rtol=0, atol=1e-12)


def test_known_values_2x2():
    a, b, c, d = 1.0, 2.0, 4.0, 8.0
    tex = np.array([[[a], [b]], [[c], [d]]])  # row 0 (top) = a b, row 1 (bottom) = c d
    pts = {  # (u, v): (nearest repeat, nearest clamp, bilinear repeat, bilinear clamp)
        (0.25, 0.75): (a, a, a, a),                        # centre of the top-left texel
        (0.75, 0.25): (d, d, d, d),                        # centre of the bottom-right texel
        (0.5, 0.75): (b, b, (a + b) / 2, (a + b) / 2),     # midpoint of a row: two texels; tie -> larger index
        (0.25, 0.5): (c, c, (a + c) / 2, (a + c) / 2),     # midpoint of a column (v up: bottom row wins tie)
        (0.5, 0.5): (d, d, (a + b + c + d) / 4, (a + b + c + d) / 4),
        (0.0, 0.75): (a, a, (a + b) / 2, a),               # left border: repeat blends across the seam
        (0.125, 0.75): (a, a, 0.75 * a + 0.25 * b, a),
        (1.25, 0.75): (a, b, a, b),                        # outside [0, 1]: tile vs clamp to edge
        (-0.75, 1.25): (c, a, c, a),                       # v = 1.25 tiles to 0.25 (bottom row)
        (0.75, -3.25): (b, d, b, d),
        (0.375, 0.75): (a, a, 0.75 * a + 0.25 * b, 0.75 * a + 0.25 * b),
        (0.375, 0.625): (a, a, (0.75 * a + 0.25 * b) * 0.75 + (0.75 * c + 0.25 * d) * 0.25,
                         (0.75 * a + 0.25 * b) * 0.75 + (0.75 * c + 0.25 * d) * 0.25),
    }
    uv = np.array(list(pts))[None, None]  # (1, 1, P, 2)
    want = np.array(list(pts.values()))  # (P, 4)
    for k, (f, w) in enumerate([("nearest", "repeat"), ("nearest", "clamp"), ("bilinear", "repeat"),
                                ("bilinear", "clamp")]):
        out = TEX.numpy_call(tex, uv, filter=f, wrap=w)
        np.testing.assert_allclose(out[0, 0, :, 0], want[:, k], rtol=0, atol=1e-12, err_msg=f"{f} {w}")


def test_checkerboard_and_reference():
    n = 8
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    board = ((i + j) % 2).astype(np.float64)[..., None]  # (8, 8, 1)
    rng = np.random.default_rng(1)
    uv = rng.uniform(-1.5, 2.5, size=(2, 9, 7, 2))
    nearest = TEX.numpy_call(board, uv, filter="nearest", wrap="repeat")
    u, v = uv[..., 0], uv[..., 1]
    want = (np.floor(u * n) + np.floor((1 - v) * n)) % 2  # column floor(u n), row floor((1 - v) n), tiled
    np.testing.assert_array_equal(nearest[..., 0], want)
    # a 2-texel-wide border of a clamped checkerboard is the edge texel
    out = TEX.numpy_call(board, np.array([[[-3.0, 0.99], [5.0, 0.99]]]), filter="bilinear", wrap="clamp")
    np.testing.assert_array_equal(out[0, 0, :, 0], [board[0, 0, 0], board[0, n - 1, 0]])
    # random texture, random uv (both sides of [0, 1]), batched and broadcast: NumPy reference
    for tex in (rng.normal(size=(5, 6, 3)), rng.normal(size=(2, 5, 6, 3)), rng.normal(size=(1, 5, 6, 3))):
        for f in ("nearest", "bilinear"):
            for w in ("repeat", "clamp"):
                np.testing.assert_allclose(TEX.numpy_call(tex, uv, f, w), _ref(tex, uv, f, w), rtol=1e-12,
                                           atol=1e-12)


@pytest.mark.parametrize("wrap", ["repeat", "clamp"])
def test_gradcheck_bilinear(wrap):
    rng = np.random.default_rng(2)
    Ht, Wt = 3, 4
    uv_np = _nudge(rng.uniform(-0.4, 1.4, size=(2, 3, 4, 2)), Ht, Wt)
    fid = torch.from_numpy(rng.integers(-1, 2, size=(2, 3, 4)).astype(np.int32))
    uv = torch.tensor(uv_np, requires_grad=True)
    for shape in ((Ht, Wt, 2), (2, Ht, Wt, 2), (1, Ht, Wt, 3)):
        tex = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(lambda t, q: TEX.torch_call(t, q, "bilinear", wrap), (tex, uv),
                                        eps=1e-6, atol=1e-7)
    tex = torch.randn(2, Ht, Wt, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t, q: TEX.torch_call(t, q, "bilinear", wrap, face_id=fid), (tex, uv),
                                    eps=1e-6, atol=1e-7)


def test_uv_gradient_closed_form_and_borders():
    """Directional derivative rules: interior slope, one-sided on centre lines, 0 beyond clamp edges."""
    tex = np.array([[[0.0], [1.0], [3.0]], [[10.0], [20.0], [40.0]]])  # Ht=2, Wt=3
    # u * 3 - 0.5 = x; v: y = (1 - v) * 2 - 0.5
    uv = np.array([[[0.25, 0.75],      # x = 0.25, y = 0    (on the row-0 centre line)
                    [0.5, 0.75],       # x = 1 exactly (column centre line), y = 0
                    [0.05, 0.75],      # x = -0.35: clamp -> constant in x; repeat -> blends col 2 / col 0
                    [0.5, 0.95]]])     # y = -0.4: clamp -> constant in y
    g = np.ones((1, 1, 4, 1))
    for wrap in ("clamp", "repeat"):
        _, pb = TEX.numpy_vjp(tex, uv, "bilinear", wrap)
        _, guv = pb(g)
        guv = guv[0]  # uv was (H=1, W=4, 2)
        # pixel 0: cell x in [0, 1], y in [0, 1] (one-sided towards larger y = smaller v)
        fx = 0.25
        assert guv[0, 0] == pytest.approx(3 * (1.0 - 0.0))
        assert guv[0, 1] == pytest.approx(-2 * ((1 - fx) * (10 - 0) + fx * (20 - 1)))
        # pixel 1: x = 1 -> the cell [1, 2] (towards larger u)
        assert guv[1, 0] == pytest.approx(3 * (3.0 - 1.0))
        assert guv[1, 1] == pytest.approx(-2 * (20 - 1))
        if wrap == "clamp":
            assert guv[2, 0] == 0.0 and guv[3, 1] == 0.0
        else:
            assert guv[2, 0] == pytest.approx(3 * (0.0 - 3.0))  # seam: column 2 -> column 0
            assert guv[3, 1] != 0.0


@pytest.mark.parametrize("wrap", ["repeat", "clamp"])
def test_nearest_gradients(wrap):
    rng = np.random.default_rng(3)
    tex = rng.normal(size=(2, 3, 5, 2))
    uv = rng.uniform(-0.5, 1.5, size=(2, 4, 6, 2))
    g = rng.normal(size=(2, 4, 6, 2))
    out, pb = TEX.numpy_vjp(tex, uv, "nearest", wrap)
    gt, guv = pb(g)
    assert (guv == 0).all() and guv.shape == uv.shape
    # scatter of g into the looked-up texels
    u, t = uv[..., 0], 1.0 - uv[..., 1]
    if wrap == "repeat":
        cols, rows = np.floor((u - np.floor(u)) * 5).astype(int) % 5, np.floor((t - np.floor(t)) * 3).astype(int) % 3
    else:
        cols, rows = np.clip(np.floor(u * 5).astype(int), 0, 4), np.clip(np.floor(t * 3).astype(int), 0, 2)
    ref = np.zeros_like(tex)
    bidx = np.broadcast_to(np.arange(2)[:, None, None], rows.shape)
    np.add.at(ref, (bidx, rows, cols), g)
    np.testing.assert_allclose(gt, ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(out, tex[bidx, rows, cols])
    # broadcast texture: the scatter sums over the batch
    _, pb = TEX.numpy_vjp(tex[:1], uv, "nearest", wrap)
    gt1, _ = pb(g)
    ref1 = np.zeros_like(tex[:1])
    np.add.at(ref1, (np.zeros_like(rows), rows, cols), g)
    np.testing.assert_allclose(gt1, ref1, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("filter", ["nearest", "bilinear"])
def test_background_pixels(filter):
    rng = np.random.default_rng(4)
    tex = rng.normal(size=(4, 4, 3))
    uv = _nudge(rng.uniform(0, 1, size=(2, 5, 3, 2)), 4, 4)
    fid = rng.integers(-1, 3, size=(2, 5, 3)).astype(np.int64)
    fid[0, 0, 0], fid[1, 4, 2] = -1, 5
    bg = fid < 0
    g = rng.normal(size=(2, 5, 3, 3))
    out, pb = TEX.numpy_vjp(tex, uv, filter, "repeat", fid)
    assert (out[bg] == 0).all() and (out[~bg] != 0).all()
    np.testing.assert_allclose(out, _ref(tex, uv, filter, "repeat", fid), rtol=1e-12, atol=1e-12)
    gt, guv = pb(g)
    assert (guv[bg] == 0).all()
    # same as the unmasked lookup with g zeroed on the background
    _, pb0 = TEX.numpy_vjp(tex, uv, filter, "repeat")
    gt0, guv0 = pb0(np.where(bg[..., None], 0.0, g))
    np.testing.assert_allclose(gt, gt0, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(guv, guv0, rtol=1e-12, atol=1e-12)
    # all background
    t = torch.tensor(tex, requires_grad=True)
    q = torch.tensor(uv, requires_grad=True)
    o = TEX.torch_call(t, q, filter, face_id=torch.full((2, 5, 3), -1))
    assert (o == 0).all()
    o.sum().backward()
    assert (t.grad == 0).all() and (q.grad == 0).all()


@pytest.mark.parametrize("filter, wrap", [("bilinear", "repeat"), ("bilinear", "clamp"), ("nearest", "clamp")])
def test_torch_numpy_bridges_agree(filter, wrap):
    rng = np.random.default_rng(5)
    for dtype, tol in ((np.float64, 1e-12), (np.float32, 1e-5)):
        tex = rng.normal(size=(1, 6, 5, 4)).astype(dtype)
        uv = rng.uniform(-0.2, 1.2, size=(2, 3, 7, 2)).astype(dtype)
        fid = rng.integers(-1, 4, size=(2, 3, 7)).astype(np.int32)
        g = rng.normal(size=(2, 3, 7, 4)).astype(dtype)
        out_np = TEX.numpy_call(tex, uv, filter, wrap, fid)
        out, pb = TEX.numpy_vjp(tex, uv, filter, wrap, fid)
        np.testing.assert_array_equal(out, out_np)
        gt, guv = pb(g)
        assert gt.dtype == dtype and gt.shape == tex.shape and guv.shape == uv.shape
        t = torch.tensor(tex, requires_grad=True)
        q = torch.tensor(uv, requires_grad=True)
        o = TEX.torch_call(t, q, filter, wrap, torch.from_numpy(fid))
        np.testing.assert_array_equal(o.detach().numpy(), out)
        o.backward(torch.from_numpy(g))
        np.testing.assert_allclose(t.grad.numpy(), gt, rtol=tol, atol=tol)
        np.testing.assert_allclose(q.grad.numpy(), guv, rtol=tol, atol=tol)
        # only one input needs a gradient; unbatched texture and uv
        q2 = torch.tensor(uv[0], requires_grad=True)
        o2 = TEX.torch_call(torch.tensor(tex[0]), q2, filter, wrap)
        assert o2.shape == (1, 3, 7, 4)  # output is always batched
        o2.backward(torch.from_numpy(g[:1]))
        _, pb2 = TEX.numpy_vjp(tex[0], uv[0], filter, wrap)
        gt2, guv2 = pb2(g[:1])
        assert gt2.shape == (6, 5, 4) and guv2.shape == (3, 7, 2)
        np.testing.assert_allclose(q2.grad.numpy(), guv2, rtol=tol, atol=tol)


def test_far_uv_and_empty_channels():
    tex = np.arange(6, dtype=np.float32).reshape(2, 3, 1)
    uv = np.array([[[1e6 + 0.5, 0.75], [-1e7, 1e9]]], np.float32)
    np.testing.assert_array_equal(TEX.numpy_call(tex, uv, "bilinear", "clamp")[0, 0, :, 0], [2.0, 0.0])
    out = TEX.numpy_call(tex, uv, "bilinear", "repeat")
    assert np.isfinite(out).all()
    assert TEX.numpy_call(np.ones((2, 3, 0)), np.zeros((1, 4, 5, 2)), "nearest").shape == (1, 4, 5, 0)


@pytest.mark.parametrize("kw, exc, msg", [
    ({"tex": np.zeros((3, 4))}, ValueError, "tex"),
    ({"tex": np.zeros((3, 0, 2))}, ValueError, "tex"),
    ({"tex": np.zeros((3, 4, 2), np.int64)}, TypeError, "tex"),
    ({"tex": np.zeros((3, 3, 4, 2))}, ValueError, "tex"),
    ({"tex": np.full((3, 4, 2), np.nan)}, ValueError, "tex"),
    ({"uv": np.zeros((2, 5, 6, 3))}, ValueError, "uv"),
    ({"uv": np.zeros((5, 6))}, ValueError, "uv"),
    ({"uv": np.zeros((2, 5, 6, 2), np.float32)}, TypeError, "dtype"),
    ({"uv": np.full((2, 5, 6, 2), np.nan)}, ValueError, "uv"),
    ({"uv": np.zeros((2, 5, 6, 2), np.int32)}, TypeError, "uv"),
    ({"filter": "linear"}, ValueError, "filter"),
    ({"filter": None}, ValueError, "filter"),
    ({"wrap": "mirror"}, ValueError, "wrap"),
    ({"face_id": np.zeros((2, 5, 6), np.float32)}, TypeError, "face_id"),
    ({"face_id": np.zeros((2, 5), np.int32)}, ValueError, "face_id"),
    ({"face_id": np.zeros((1, 5, 6), np.int32)}, ValueError, "face_id"),
])
def test_bad_input(kw, exc, msg):
    args = {"tex": np.zeros((3, 4, 2)), "uv": np.zeros((2, 5, 6, 2)), "filter": "bilinear", "wrap": "repeat",
            "face_id": np.zeros((2, 5, 6), np.int32)}
    args.update(kw)
    with pytest.raises(exc, match=msg):
        TEX.numpy_call(**args)
    with pytest.raises(exc, match=msg):
        TEX.torch_call(**{k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in args.items()})
