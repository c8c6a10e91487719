"""soft_rasterize's pixel blocks (kernels/soft.py, "Pixel blocks"): every block shape gives the same
images and gradients (1 x 1 is the GPUs' block, so the CPU checks it here too), including image
sizes and tile sizes that are not multiples of it; the vectorised float32 exp against NumPy's."""
import numpy as np
import pytest
import taichi as ti
import torch

import taichirast as tr
from taichirast.kernels import soft
from taichirast.runtime import ensure_init


def _scene(seed, n=40, size=(29, 37), B=2, dtype=torch.float64):
    g = np.random.default_rng(seed)
    H, W = size
    cen = g.uniform(0, [W, H], (B, n, 1, 2))
    xy = cen + g.normal(0, 4.0, (B, n, 3, 2))
    z = g.uniform(2.0, 4.0, (B, n, 3, 1))
    sv = torch.tensor(np.concatenate([xy, z], -1).reshape(B, 3 * n, 3), dtype=dtype)
    faces = torch.arange(3 * n).reshape(n, 3)
    colors = torch.tensor(g.uniform(0, 1, (3 * n, 3)), dtype=dtype)
    return sv, faces, colors


def _run(sv, faces, colors, size, **kw):
    s = sv.detach().requires_grad_()
    c = colors.detach().requires_grad_()
    out = tr.soft_rasterize(s, faces, c, size, sigma=3e-3, gamma=1e-2, near=0.5, far=10.0, **kw)
    w = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=out.dtype)
    (out * w).sum().backward()
    return out.detach(), s.grad, c.grad


def _blocks(monkeypatch, forward, backward):
    """Force the forward's and the backward's blocks to (lanes, rows) each."""
    monkeypatch.setattr(soft, "CPU_LANES", {"forward": forward[0], "backward": backward[0]})
    monkeypatch.setattr(soft, "CPU_ROWS", {"forward": forward[1], "backward": backward[1]})


# (forward, backward) blocks as (lanes, rows): the GPUs' 1 x 1, rows of pixels, and blocks of 2 and
# 4 rows (the CPU's default is among them); the reference is the CPU's default.
SHAPES = [((1, 1), (1, 1)), ((4, 1), (8, 1)), ((16, 2), (2, 2)), ((16, 4), (4, 4)), ((8, 4), (4, 1))]


@pytest.mark.parametrize("shapes", SHAPES)
@pytest.mark.parametrize("tile_size", [5, 16])
@pytest.mark.parametrize("exact", [False, True])
def test_every_block_shape_gives_the_same_images_and_gradients(monkeypatch, shapes, tile_size, exact):
    ensure_init()
    sv, faces, colors = _scene(0)
    size = (29, 37)
    ref = _run(sv, faces, colors, size, tile_size=tile_size, exact=exact)
    _blocks(monkeypatch, *shapes)
    got = _run(sv, faces, colors, size, tile_size=tile_size, exact=exact)
    # float64: the same pairs in the same order, so only the blocks' summation order differs (in
    # float32 a pixel at the cull radius may flip with the rounding of one block shape's code)
    assert torch.allclose(got[0], ref[0], rtol=1e-12, atol=1e-13)
    for g, r in zip(got[1:], ref[1:]):
        assert (g - r).norm() <= 1e-11 * r.norm()


def test_block_widths_agree_per_face_and_one_channel(monkeypatch):
    ensure_init()
    sv, faces, colors = _scene(3)
    size = (29, 37)
    grey = torch.rand(faces.shape[0], 1, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    ref = _run(sv, faces, grey, size, per_face=True)
    _blocks(monkeypatch, (1, 1), (1, 1))
    got = _run(sv, faces, grey, size, per_face=True)
    # float64: the same pairs in the same order, so only the blocks' summation order differs (in
    # float32 a pixel at the cull radius may flip with the rounding of one block shape's code)
    assert torch.allclose(got[0], ref[0], rtol=1e-12, atol=1e-13)
    for g, r in zip(got[1:], ref[1:]):
        assert (g - r).norm() <= 1e-11 * r.norm()


def test_vectorised_float32_exp_matches_numpy():
    ensure_init()
    lanes = 8
    K = soft.build(ti.f32, lanes)

    @ti.kernel
    def run(x: ti.types.ndarray(dtype=ti.f32), y: ti.types.ndarray(dtype=ti.f32), blocks: ti.i32):
        for i in range(blocks):  # (a range from a shape with // does not compile on Vulkan)
            v = ti.Vector([x[i * lanes + k] for k in ti.static(range(lanes))], ti.f32)
            r = K.vexp(v)
            for k in ti.static(range(lanes)):
                y[i * lanes + k] = r[k]

    x = np.concatenate([np.linspace(-87.0, 88.0, 200_000), [-87.5, -100.0, -1e30, 0.0, 1e-8, -1e-8]])
    x = x[: len(x) // lanes * lanes].astype(np.float32)
    y = np.empty_like(x)
    run(x, y, len(x) // lanes)
    want = np.exp(x.astype(np.float64))
    live = x >= -87.0
    assert np.all(y[~live] == 0.0)  # exactly 0 below -(UF - 1), like exp_
    assert np.max(np.abs(y[live] - want[live]) / want[live]) < 4e-7


@pytest.mark.parametrize("shapes", [((1, 1), (1, 1)), ((16, 4), (4, 4)), ((8, 1), (4, 2))])
def test_float64_gradcheck_at_every_block_shape(monkeypatch, shapes):
    """The backward with the GPUs' blocks (1 x 1) and with the CPU's (4 x 4 / 4 x 1, and 1 x 8 /
    2 x 2) is the gradient of the forward, checked by finite differences in float64 (cut-off on,
    faces overlapping in depth)."""
    ensure_init()
    _blocks(monkeypatch, *shapes)
    g = np.random.default_rng(7)
    n = 5
    cen = g.uniform(3, [10, 8], (n, 1, 2))
    xy = cen + g.normal(0, 3.0, (n, 3, 2))
    z = g.uniform(2.0, 3.0, (n, 3, 1))
    sv = torch.tensor(np.concatenate([xy, z], -1).reshape(1, 3 * n, 3), dtype=torch.float64, requires_grad=True)
    faces = torch.arange(3 * n).reshape(n, 3)
    colors = torch.tensor(g.uniform(0, 1, (3 * n, 2)), dtype=torch.float64, requires_grad=True)
    fn = lambda s, c: tr.soft_rasterize(s, faces, c, (9, 13), sigma=2e-2, gamma=5e-2, near=0.5,  # noqa: E731
                                        far=10.0)
    assert torch.autograd.gradcheck(fn, (sv, colors), eps=1e-6, atol=1e-7, rtol=1e-5)
