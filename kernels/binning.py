"""Tile binning: a CSR of face ids per screen tile, built with atomics (DESIGN §4).

Callers compute each face entry's screen bounding box (pixels, already grown by whatever margin
the consumer needs, e.g. the soft rasterizer's sigma-dependent one) into ``bbox (E, 4)`` =
``xmin, xmax, ymin, ymax`` (or the first four columns of a wider array, as SoftRas's ``reach``);
an entry with ``xmin > xmax`` is skipped (culled, degenerate, behind the camera). Entry e belongs
to image b of ``tab (B, 3)`` (kernels/common.entry_face: the E entries are the B images' faces one
after the other, ``sum`` of their counts, so memory is O(faces) whatever the meshes' sizes). Then

1. ``count``: each entry adds 1 to every tile of its image that its bbox touches
   (``counts (B * n_tiles,)``);
2. the caller takes an exclusive prefix sum -> ``offsets (B * n_tiles + 1,)``;
3. ``fill``: each entry claims a slot in each of its tiles with an atomic cursor and writes its
   index e at ``offsets[tile] + slot``.

``fill_ordered`` is the deterministic variant: one thread walks the entries in a given order
(``order (E,)``, each image's entries in the order wanted), so every tile's list is in that order, run to run (the soft
rasterizer's depth-ordered walk, kernels/soft.py). Serial, it costs a few ns per entry on a CPU
core -- and one GPU thread at memory latency per entry on a GPU (on an H200 the soft pass took
163 ms for the bunny at 512², forward nearly all of it, growing with faces rather than pixels).
On GPUs the same lists come from ``fill`` (parallel, timing-dependent order) followed by
``sort_tiles``: one thread per tile heap-sorts its list by ``rank[e]`` (the entry's place in
``order``, from ``ranks``; a tile holds one image's entries). Ranks are a permutation, so the sorted list is exactly
``fill_ordered``'s, entry for entry (tests/test_binning.py).

List storage is sized from the counts, so no face is ever dropped (no fixed per-tile capacity).
With ``fill`` the order of faces inside one tile depends on thread timing; the hard rasterizer
breaks depth ties by face id, and the soft and DIB-R passes use ``fill_ordered``.

A pixel ``(py, px)`` of batch ``b`` lies in tile ``b * n_tiles + (py // T) * ntx + px // T`` and
its candidate entries are ``tile_faces[offsets[tile] : offsets[tile + 1]]``. Pixel centres are at
half-integers: the bbox ``[xmin, xmax]`` covers pixel columns ``ceil(xmin - 0.5) ..
floor(xmax - 0.5)``.
"""
import functools
import types

import taichi as ti

from . import kernel
from .common import entry_face


@functools.lru_cache(maxsize=None)
def build(real):
    arr = ti.types.ndarray(dtype=real)
    iarr = ti.types.ndarray(dtype=ti.i32)

    @ti.func
    def _tile_range(bbox: arr, f, H, W, T):
        # Clamp in float before converting: near-plane faces may carry huge boxes.
        x0 = ti.ceil(ti.max(ti.min(bbox[f, 0], real(W + 1)), real(-1.0)) - real(0.5), ti.i32)
        x1 = ti.floor(ti.max(ti.min(bbox[f, 1], real(W + 1)), real(-1.0)) - real(0.5), ti.i32)
        y0 = ti.ceil(ti.max(ti.min(bbox[f, 2], real(H + 1)), real(-1.0)) - real(0.5), ti.i32)
        y1 = ti.floor(ti.max(ti.min(bbox[f, 3], real(H + 1)), real(-1.0)) - real(0.5), ti.i32)
        x0 = ti.max(x0, 0)
        y0 = ti.max(y0, 0)
        x1 = ti.min(x1, W - 1)
        y1 = ti.min(y1, H - 1)
        tx0, tx1, ty0, ty1 = 0, -1, 0, -1
        if x0 <= x1 and y0 <= y1 and bbox[f, 0] <= bbox[f, 1]:
            tx0, tx1, ty0, ty1 = x0 // T, x1 // T, y0 // T, y1 // T
        return tx0, tx1, ty0, ty1

    @kernel
    def count(bbox: arr, tab: iarr, counts: iarr, H: ti.i32, W: ti.i32, T: ti.i32):
        ntx = (W + T - 1) // T
        nty = (H + T - 1) // T
        for f in range(bbox.shape[0]):
            b, _ = entry_face(tab, f)
            tx0, tx1, ty0, ty1 = _tile_range(bbox, f, H, W, T)
            for ty in range(ty0, ty1 + 1):
                for tx in range(tx0, tx1 + 1):
                    ti.atomic_add(counts[(b * nty + ty) * ntx + tx], 1)

    @kernel
    def fill(bbox: arr, tab: iarr, offsets: iarr, cursor: iarr, tile_faces: iarr, H: ti.i32, W: ti.i32, T: ti.i32):
        ntx = (W + T - 1) // T
        nty = (H + T - 1) // T
        for f in range(bbox.shape[0]):
            b, _ = entry_face(tab, f)
            tx0, tx1, ty0, ty1 = _tile_range(bbox, f, H, W, T)
            for ty in range(ty0, ty1 + 1):
                for tx in range(tx0, tx1 + 1):
                    tile = (b * nty + ty) * ntx + tx
                    slot = ti.atomic_add(cursor[tile], 1)
                    tile_faces[offsets[tile] + slot] = f

    @kernel
    def fill_ordered(bbox: arr, tab: iarr, order: iarr, offsets: iarr, cursor: iarr, tile_faces: iarr, H: ti.i32,
                     W: ti.i32, T: ti.i32):
        ntx = (W + T - 1) // T
        nty = (H + T - 1) // T
        ti.loop_config(serialize=True)
        for i in range(order.shape[0]):
            f = order[i]
            b, _ = entry_face(tab, f)
            tx0, tx1, ty0, ty1 = _tile_range(bbox, f, H, W, T)
            for ty in range(ty0, ty1 + 1):
                for tx in range(tx0, tx1 + 1):
                    tile = (b * nty + ty) * ntx + tx
                    tile_faces[offsets[tile] + cursor[tile]] = f
                    cursor[tile] += 1

    @kernel
    def ranks(order: iarr, rank: iarr):
        """rank[order[i]] = i: each entry's place in ``order``."""
        for i in range(order.shape[0]):
            rank[order[i]] = i

    @ti.func
    def _sift_down(tile_faces: iarr, rank: iarr, lo, root0, size):
        # max-heap on rank over tile_faces[lo : lo + size], pushing the entry at root0 down
        root = root0
        while 2 * root + 1 < size:
            child = 2 * root + 1
            if child + 1 < size and rank[tile_faces[lo + child]] < rank[tile_faces[lo + child + 1]]:
                child += 1
            if rank[tile_faces[lo + root]] < rank[tile_faces[lo + child]]:
                tmp = tile_faces[lo + root]
                tile_faces[lo + root] = tile_faces[lo + child]
                tile_faces[lo + child] = tmp
                root = child
            else:
                break

    @kernel
    def sort_tiles(offsets: iarr, tile_faces: iarr, rank: iarr):
        """Heap-sort every tile's list by ascending ``rank[e]`` (one thread per tile; in place,
        O(n log n) for a tile of n entries, no scratch memory)."""
        for tile in range(offsets.shape[0] - 1):
            lo = offsets[tile]
            n = offsets[tile + 1] - lo
            for k in range(n // 2):
                _sift_down(tile_faces, rank, lo, n // 2 - 1 - k, n)
            for k in range(n - 1):
                end = n - 1 - k
                tmp = tile_faces[lo]
                tile_faces[lo] = tile_faces[lo + end]
                tile_faces[lo + end] = tmp
                _sift_down(tile_faces, rank, lo, 0, end)

    return types.SimpleNamespace(count=count, fill=fill, fill_ordered=fill_ordered, ranks=ranks,
                                 sort_tiles=sort_tiles)
