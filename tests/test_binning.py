"""Tile binning (kernels/binning.py, taichirast/_binning.py): the GPUs' ordered fill (parallel fill,
then every tile's list heap-sorted by rank) gives exactly the lists of the CPU's chunked ordered fill
for any number of chunks, and renders that use either are bitwise the same."""
import numpy as np
import pytest
import torch

import taichirast as tr
from taichirast import _binning


@pytest.fixture(autouse=True)
def _taichi():
    tr.ensure_init()  # bin_faces is internal: the primitives calling it have started Taichi


def _boxes(seed, counts=(420, 180), H=37, W=53):
    """Face-entry boxes of images with ``counts`` entries each (one after the other, as the kernels
    lay them out), their entry table and an order: a random permutation of each image's entries."""
    g = np.random.default_rng(seed)
    E = sum(counts)
    x0, y0 = g.uniform(-10, W + 5, E), g.uniform(-10, H + 5, E)
    w, h = g.exponential(6, E), g.exponential(6, E)
    bbox = np.stack([x0, x0 + w, y0, y0 + h], -1).astype(np.float32)
    bbox[::17, 1] = bbox[::17, 0] - 1  # skipped faces (xmin > xmax)
    bbox[5] = [-1e30, 1e30, -1e30, 1e30]  # a near-plane face with a huge box
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    tab = np.stack([np.zeros(len(counts)), counts, starts], 1).astype(np.int32)
    order = np.concatenate([s + g.permutation(n) for s, n in zip(starts, counts)]).astype(np.int32)
    return bbox, tab, order, H, W


@pytest.mark.parametrize("seed, tile, chunks", [(0, 8, 1), (1, 5, 2), (2, 16, 3), (3, 7, 599), (4, 8, None)])
@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_sorted_fill_equals_the_chunked_ordered_fill(seed, tile, chunks, kind):
    bbox, tab, order, H, W = _boxes(seed)
    if kind == "torch":
        bbox, tab, order = torch.from_numpy(bbox), torch.from_numpy(tab), torch.from_numpy(order)
    off_s, faces_s = _binning.bin_faces(bbox, tab, H, W, tile, order=order, ordered_fill="chunks", chunks=chunks)
    off_p, faces_p = _binning.bin_faces(bbox, tab, H, W, tile, order=order, ordered_fill="sort")
    off_s, faces_s, off_p, faces_p = (np.asarray(x) for x in (off_s, faces_s, off_p, faces_p))
    assert np.array_equal(off_s, off_p) and np.array_equal(faces_s, faces_p)
    # each tile lists only its own image's entries, in the given order (ranks strictly increasing)
    order, tab = np.asarray(order), np.asarray(tab)
    rank = np.empty_like(order)
    rank[order] = np.arange(order.shape[0])
    n_tiles = (len(off_s) - 1) // tab.shape[0]
    assert off_s[-1] > 500  # enough (tile, entry) pairs to mean something
    # and exactly the entries whose pixel range meets the tile (integer division by the tile size in
    # NumPy; the kernels divide without integer division, kernels/binning.py ``_div``)
    bb = np.asarray(bbox, np.float64)
    lo = lambda v, n: np.maximum(np.ceil(np.clip(v, -1, n + 1) - 0.5), 0).astype(int)  # noqa: E731
    hi = lambda v, n: np.minimum(np.floor(np.clip(v, -1, n + 1) - 0.5), n - 1).astype(int)  # noqa: E731
    x0, x1, y0, y1 = lo(bb[:, 0], W), hi(bb[:, 1], W), lo(bb[:, 2], H), hi(bb[:, 3], H)
    ok = (x0 <= x1) & (y0 <= y1) & (bb[:, 0] <= bb[:, 1])
    ntx = -(-W // tile)
    for t in range(len(off_s) - 1):
        entries = faces_s[off_s[t]:off_s[t + 1]]
        b = t // n_tiles
        assert np.all((entries >= tab[b, 2]) & (entries < tab[b, 2] + tab[b, 1])), t
        assert np.all(np.diff(rank[entries]) > 0), t
        ty, tx = divmod(t - b * n_tiles, ntx)
        own = np.arange(tab[b, 2], tab[b, 2] + tab[b, 1])
        meets = own[ok[own] & (x0[own] // tile <= tx) & (x1[own] // tile >= tx) & (y0[own] // tile <= ty)
                    & (y1[own] // tile >= ty)]
        assert np.array_equal(np.sort(entries), meets), t


def test_ranks_of_inverts_the_order():
    _, _, order, _, _ = _boxes(3)
    rank = np.asarray(_binning.ranks_of(order))
    assert np.array_equal(order[rank], np.arange(order.shape[0]))


def test_bad_ordered_fill_is_a_clear_error():
    bbox, tab, order, H, W = _boxes(4, counts=(10,))
    with pytest.raises(ValueError, match="ordered_fill must be 'chunks', 'sort' or None, got 'fast'"):
        _binning.bin_faces(bbox, tab, H, W, 8, order=order, ordered_fill="fast")


@pytest.mark.parametrize("tile, lanes, rows", [(16, 16, 4), (16, 1, 1), (9, 16, 4), (24, 1, 1)])
def test_cell_masks_from_either_fill_hold_the_reached_pixels(tile, lanes, rows):
    """The soft forward's cell masks (kernels/soft.py ``cell_mask``), computed by the chunked fill as it
    writes each entry and by ``visit_entries`` after the GPUs' sorted fill: the same bits, each bit the
    float64 value of the cell-versus-box-and-disk test (the boxes' edges are kept off the pixel-centre
    lattice), and set for every cell with a pixel centre in the entry's box and disk."""
    import taichi as ti

    from taichirast.kernels import soft

    bbox, tab, order, H, W = _boxes(7, counts=(300, 140))
    g = np.random.default_rng(8)
    cx, cy = (bbox[:, 0] + bbox[:, 1]) / 2, (bbox[:, 2] + bbox[:, 3]) / 2
    rad = g.uniform(1.0, 9.0, len(bbox)).astype(np.float32)
    rad[::5] = -1.0  # no disk: the box alone
    reach = np.zeros((len(bbox), soft.NREACH), np.float32)
    reach[:, :4], reach[:, 4], reach[:, 5], reach[:, 6] = bbox, cx, cy, rad
    # move every box edge off the pixel-centre lattice (fractional parts near 0 and 0.5 pushed 0.15-0.2 away)
    for j in range(4):
        fr = reach[:, j] - np.floor(reach[:, j])
        reach[:, j] += np.where(np.abs(fr - 0.5) < 0.1, 0.2, 0.0) + np.where(fr < 0.1, 0.15, 0.0) - \
            np.where(fr > 0.9, 0.15, 0.0)
    K = soft.build(ti.f32, lanes, rows)
    masks = [_binning.bin_faces(reach, tab, H, W, tile, order=order, ordered_fill=fill, chunks=2, visit=K.cell_mask)
             for fill in ("chunks", "sort")]
    (off, faces, emask), (off_s, faces_s, emask_s) = (tuple(np.asarray(x) for x in m) for m in masks)
    assert np.array_equal(faces, faces_s) and np.array_equal(emask, emask_s)
    TBr, TBc = -(-tile // rows), -(-tile // (lanes // rows))
    CR, CC = min(TBr, soft.MASK_SIDE), min(TBc, soft.MASK_SIDE)
    ntx, nty = -(-W // tile), -(-H // tile)
    checked = 0
    for t in range(len(off) - 1):
        ty, tx = (t % (ntx * nty)) // ntx, t % ntx
        for k in range(off[t], off[t + 1]):
            x0, x1, y0, y1, dcx, dcy, r = reach[faces[k], :7].astype(np.float64)
            for a in range(CR):
                for c in range(CC):
                    # the cell's block rows / columns (tile_cells), then its pixel centres
                    rr = np.arange(ty * tile + (a * TBr + CR - 1) // CR * rows,
                                   ty * tile + ((a + 1) * TBr + CR - 1) // CR * rows) + 0.5
                    cc = np.arange(tx * tile + (c * TBc + CC - 1) // CC * (lanes // rows),
                                   tx * tile + ((c + 1) * TBc + CC - 1) // CC * (lanes // rows)) + 0.5
                    py, px = np.meshgrid(rr, cc, indexing="ij")
                    reached = (px >= x0) & (px <= x1) & (py >= y0) & (py <= y1)
                    # the test: the centres' rectangle meets the box, and its nearest point to the
                    # disk's centre is within the radius (conservative: it may pass with no centre in
                    # both)
                    want = rr[-1] >= y0 and rr[0] <= y1 and cc[-1] >= x0 and cc[0] <= x1
                    if r >= 0:
                        reached &= (px - dcx) ** 2 + (py - dcy) ** 2 <= r * r
                        nx, ny = np.clip(dcx, cc[0], cc[-1]), np.clip(dcy, rr[0], rr[-1])
                        want = want and (nx - dcx) ** 2 + (ny - dcy) ** 2 <= r * r
                    bit = bool(emask[k] >> (a * CC + c) & 1)
                    assert bit == want, (t, k, a, c)
                    assert bit or not reached.any(), (t, k, a, c)  # every reached centre's cell is set
                    checked += bool(reached.any())
    assert checked > 500  # (tile, entry, cell) triples with a reached pixel centre


def test_soft_and_dibr_renders_equal_with_either_fill(monkeypatch):
    """The GPU path on the CPU: soft_rasterize's output and the DIB-R silhouette are bitwise the same
    whichever way the ordered lists were made, and the gradients equal to float32 rounding."""
    v, f = tr.meshes.icosphere(3)
    v, f = torch.from_numpy(v), torch.from_numpy(f)
    cam = tr.PerspectiveCamera.look_at([0.6, 0.4, 2.6], image_size=(40, 48), near=0.1, far=10.0)
    sv = tr.project(v, cam).detach()
    cols = (v + 1) / 2
    w = torch.rand(1, 40, 48, 4, generator=torch.Generator().manual_seed(0))

    def run():
        s, c = sv.clone().requires_grad_(), cols.clone().requires_grad_()
        out = tr.soft_rasterize(s, f, c, (40, 48), sigma=1e-4, gamma=1e-4, near=0.1, far=10.0)
        (out * w).sum().backward()
        fr = tr.rasterize(sv, f, (40, 48))
        return out.detach(), s.grad, c.grad, tr.dibr_silhouette(sv, f, fr, (40, 48))

    real = _binning._ordered_fill
    monkeypatch.setattr(_binning, "_ordered_fill", lambda choice: "chunks")
    chunked = run()
    monkeypatch.setattr(_binning, "_ordered_fill", lambda choice: "sort")
    sort = run()
    monkeypatch.setattr(_binning, "_ordered_fill", real)
    (out_a, gs_a, gc_a, dibr_a), (out_b, gs_b, gc_b, dibr_b) = chunked, sort
    assert torch.equal(out_a, out_b) and torch.equal(dibr_a, dibr_b)
    # gradients are scattered to vertices with atomic adds: their order varies run to run (seen in CI)
    for a, b in ((gs_a, gs_b), (gc_a, gc_b)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6 * float(b.abs().max()))


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_cumsum_exclusive_gives_offsets_and_total_and_refuses_int32_overflow(kind):
    from taichirast import _array as A

    wrap = torch.from_numpy if kind == "torch" else (lambda a: a)
    offsets, total = A.cumsum_exclusive(wrap(np.array([3, 0, 5, 1], np.int32)))
    assert np.array_equal(np.asarray(offsets), [0, 3, 3, 8, 9]) and total == 9 and isinstance(total, int)
    assert str(offsets.dtype).endswith("int32")
    with pytest.raises(MemoryError, match="more than 2\\^31 tile entries"):
        A.cumsum_exclusive(wrap(np.array([2**30, 2**30], np.int32)))


@pytest.mark.parametrize("threads", [2, 3, 8])
def test_tile_schedule_balances_contiguous_chunks(threads):
    """Taichi's CPU backend gives each of P threads a contiguous chunk of a range-for: every chunk of
    the schedule gets near-equal work, even when all the work sits in the first tiles, and visits
    its tiles in image order."""
    from taichirast._binning import tile_schedule

    g = np.random.default_rng(threads)
    n = 1024
    cost = np.zeros(n, np.int64)
    cost[: n // 3] = g.integers(0, 2000, n // 3)  # the mesh covers the top third of the image
    offsets = np.concatenate([[0], np.cumsum(cost)]).astype(np.int32)
    order = tile_schedule(offsets, threads=threads)
    assert order.dtype == np.int32 and sorted(order.tolist()) == list(range(n))
    sizes = [n // threads + (i < n % threads) for i in range(threads)]
    ends = np.cumsum(sizes)
    chunks = [order[e - k:e] for e, k in zip(ends, sizes)]
    work = np.array([cost[c].sum() for c in chunks])
    assert work.max() <= 1.02 * work.mean() + cost.max()
    assert all(np.all(np.diff(c) > 0) for c in chunks)
    natural = np.array([cost[e - k:e].sum() for e, k in zip(ends, sizes)])
    assert natural.max() > 1.4 * natural.mean()  # image order would not have been balanced


def test_tile_schedule_torch_and_one_thread():
    from taichirast._binning import tile_schedule

    offsets = torch.tensor([0, 5, 5, 9, 20], dtype=torch.int32)
    order = tile_schedule(offsets, threads=2)
    assert order.dtype == torch.int32 and sorted(order.tolist()) == [0, 1, 2, 3]
    assert tile_schedule(offsets, threads=1).tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("lib", ["numpy", "torch"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_setup_depth_keys_sort_nearest_first_ties_by_slot(lib, dtype):
    """kernels/soft.py ``setup``'s dkey: a stable ascending sort of the keys gives the slots by their
    largest 1 / z (nearest vertex) first, ties in slot order, and faces setup skips (a vertex at or
    before near) last."""
    import taichi as ti

    from taichirast import _array as A
    from taichirast.kernels import soft

    g = np.random.default_rng(1)
    F = 400
    sv = np.concatenate([g.uniform(0, 60, (1, 3 * F, 2)), g.uniform(0.5, 9.0, (1, 3 * F, 1))], -1)
    sv[0, 3 * 7:3 * 9:2, 2] = sv[0, 3 * 5, 2]  # equal nearest depths: ties
    sv[0, 3 * 11, 2] = 0.05  # behind near: skipped
    sv = sv.astype(dtype)
    faces = np.arange(3 * F, dtype=np.int32).reshape(F, 3)
    tab = np.array([[0, F, 0]], np.int32)
    eperm = g.permutation(F).astype(np.int32)
    bits = "int32" if dtype == "float32" else "int64"
    fs, reach, key = np.empty((F, soft.K), dtype), np.empty((F, soft.NREACH), dtype), np.empty(F, bits)
    wrap = torch.from_numpy if lib == "torch" else (lambda a: a)
    fs, reach, key = wrap(fs), wrap(reach), wrap(key)
    soft.build(ti.f32 if dtype == "float32" else ti.f64).setup(wrap(sv), wrap(faces), wrap(tab), wrap(eperm), fs,
                                                               reach, key, 0.1, 3.0, 1)
    got = np.asarray(A.segmented_argsort(key))
    iz = 1.0 / sv[0, faces[eperm], 2].astype(np.float64)
    nearest = np.where((sv[0, faces[eperm], 2] > 0.1).all(1), iz.max(1), 0.0)
    want = np.lexsort((np.arange(F), -nearest))
    assert np.array_equal(got, want)
    assert got[-1] == np.flatnonzero(eperm == 11)[0]  # the skipped face sorts last
