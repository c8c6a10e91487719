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

``count_chunks`` / ``fill_chunks`` are the deterministic variant: ``order (E,)`` (each image's
entries in the order wanted) is cut into NC contiguous chunks; ``count_chunks`` counts each chunk's
entries per tile (``ccount (NC, B * n_tiles)``, parallel over entries like ``count``), the counts'
per-tile prefix over chunks gives each chunk its own cursor in each tile (``chunk_cursors``), and
in ``fill_chunks`` one thread per chunk writes the chunk's entries in order from there: every
tile's list is in ``order``, the same lists for any NC, run to run (the soft rasterizer's
depth-ordered walk, kernels/soft.py). On a CPU core an entry costs a few ns at memory latency,
so NC = the CPU threads (bunny at 512², 2 cores: count + fill 2.6 + 4.3 ms; one thread walking
``order`` took 8.5 ms after a 2.9 ms count). On GPUs, where one thread at memory latency per
entry is the whole pass (on an H200 the soft pass took 163 ms for the bunny at 512², forward
nearly all of it, growing with faces rather than pixels), the same lists come from ``fill``
(parallel, timing-dependent order) followed by ``sort_tiles``: one thread per tile heap-sorts its list by ``rank[e]`` (the entry's
place in ``order``, from ``ranks``; a tile holds one image's entries). Ranks are a permutation, so
the sorted list is exactly the chunked fill's, entry for entry (tests/test_binning.py).

A ``visit`` ti.func given to ``build`` computes an int32 value per tile entry (the soft
rasterizer's cell masks, kernels/soft.py ``cell_mask``): ``visit(bbox, f, ty, tx, k, values, T)``
for entry f at place k of the list of tile (ty, tx) of its image, writing ``values[k]``. The chunked
fill calls it as it writes each entry (the entry's bbox row is in cache then: a pass over the
lists afterwards loads the rows in list order, a cache miss per entry); ``visit_entries`` is that
pass, for lists made otherwise.

List storage is sized from the counts, so no face is ever dropped (no fixed per-tile capacity).
With ``fill`` the order of faces inside one tile depends on thread timing; the hard rasterizer
breaks depth ties by face id, and the soft and DIB-R passes use the ordered fills.

A pixel ``(py, px)`` of batch ``b`` lies in tile ``b * n_tiles + (py // T) * ntx + px // T`` and
its candidate entries are ``tile_faces[offsets[tile] : offsets[tile + 1]]``. Pixel centres are at
half-integers: the bbox ``[xmin, xmax]`` covers pixel columns ``ceil(xmin - 0.5) ..
floor(xmax - 0.5)``.
"""
import functools
import types

import taichi as ti

from . import kernel
from .common import CHUNK_STRIDE, entry_face


@functools.lru_cache(maxsize=None)
def build(real, visit=None):
    """Kernels for float type ``real``; ``visit`` (None or a ti.func, module docstring) is what
    ``fill_chunks`` and ``visit_entries`` compute per tile entry."""
    has_visit = visit is not None
    arr = ti.types.ndarray(dtype=real)
    iarr = ti.types.ndarray(dtype=ti.i32)

    @ti.func
    def _div(x, d, rd):
        """``x // d`` for ints 0 <= x < 2^24, d >= 1, given ``rd = 1 / d`` in ``real``: the rounded
        quotient is off by at most one, and the two tests put it right (``_tile_range``: for a tile
        size that is not a power of two)."""
        q = ti.cast(real(x) * rd, ti.i32)
        q -= ti.select(q * d > x, 1, 0)
        q += ti.select((q + 1) * d <= x, 1, 0)
        return q

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
            # tile indices without an integer division by the runtime T (~25-40 cycles each, four
            # per entry in the count and the fill): bin_faces 0.89-0.95x single-threaded (bunny
            # 512², 298k tile entries, old and new interleaved)
            if T & (T - 1) == 0:
                sh = 31 - ti.math.clz(T)
                tx0, tx1, ty0, ty1 = x0 >> sh, x1 >> sh, y0 >> sh, y1 >> sh
            else:
                rT = real(1.0) / real(T)
                tx0, tx1, ty0, ty1 = _div(x0, T, rT), _div(x1, T, rT), _div(y0, T, rT), _div(y1, T, rT)
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

    @ti.func
    def _chunk(n, NC, c):
        """Places [lo, hi) of chunk c when n places are cut into NC contiguous chunks (the first
        n % NC one longer)."""
        q = n // NC
        r = n % NC
        lo = q * c + ti.min(c, r)
        return lo, lo + q + ti.select(c < r, 1, 0)

    @ti.func
    def _chunk_of(i, n, NC):
        """The chunk of place i (``_chunk``'s inverse; NC <= n)."""
        q = n // NC
        r = n % NC
        c = i // (q + 1)
        if i >= r * (q + 1):
            c = r + (i - r * (q + 1)) // q
        return c

    @kernel
    def count_chunks(bbox: arr, tab: iarr, rank: iarr, ccount: iarr, H: ti.i32, W: ti.i32, T: ti.i32):
        """ccount (NC, B * n_tiles), zero on entry: how many of each tile's entries the chunk c of
        ``order`` holds (entry f is at place rank[f] of order); parallel over entries."""
        ntx = (W + T - 1) // T
        nty = (H + T - 1) // T
        NC = ccount.shape[0]
        for f in range(bbox.shape[0]):
            b, _ = entry_face(tab, f)
            c = _chunk_of(rank[f], bbox.shape[0], NC)
            tx0, tx1, ty0, ty1 = _tile_range(bbox, f, H, W, T)
            for ty in range(ty0, ty1 + 1):
                for tx in range(tx0, tx1 + 1):
                    ti.atomic_add(ccount[c, (b * nty + ty) * ntx + tx], 1)

    @kernel
    def chunk_totals(ccount: iarr, counts: iarr):
        """counts[tile] = the sum over chunks of ccount[:, tile]."""
        for t in range(counts.shape[0]):
            s = 0
            for c in range(ccount.shape[0]):
                s += ccount[c, t]
            counts[t] = s

    @kernel
    def chunk_cursors(ccount: iarr, offsets: iarr):
        """ccount (NC, n) -> each chunk's first slot in each tile, in place: ``offsets[tile]`` plus
        the entries of the chunks before it."""
        for t in range(ccount.shape[1]):
            s = offsets[t]
            for c in range(ccount.shape[0]):
                k = ccount[c, t]
                ccount[c, t] = s
                s += k

    @kernel
    def fill_chunks(bbox: arr, tab: iarr, order: iarr, cursor: iarr, tile_faces: iarr, values: iarr, H: ti.i32,
                    W: ti.i32, T: ti.i32):
        """Each chunk of ``order`` (one thread each) writes its entries, in order, from its own cursor
        (``chunk_cursors``) in every tile: each tile's list is in ``order``, whatever NC. Chunk c is
        iteration c * CHUNK_STRIDE of the loop (the others are empty): Taichi 1.7's CPU backend
        runs at least 512 consecutive iterations of a parallel loop as one task (its adaptive
        block size ignores ``loop_config(block_dim=...)``; measured: a 2-iteration loop of two
        equal halves took the time of both), so NC consecutive iterations would run on one
        thread. With ``visit``, values (N,) gets its value for each entry written (module docstring)."""
        ntx = (W + T - 1) // T
        nty = (H + T - 1) // T
        NC = cursor.shape[0]
        for it in range(NC * CHUNK_STRIDE):
            if it % CHUNK_STRIDE == 0:
                c = it // CHUNK_STRIDE
                lo, hi = _chunk(order.shape[0], NC, c)
                for i in range(lo, hi):
                    f = order[i]
                    b, _ = entry_face(tab, f)
                    tx0, tx1, ty0, ty1 = _tile_range(bbox, f, H, W, T)
                    for ty in range(ty0, ty1 + 1):
                        for tx in range(tx0, tx1 + 1):
                            tile = (b * nty + ty) * ntx + tx
                            k = cursor[c, tile]
                            tile_faces[k] = f
                            cursor[c, tile] = k + 1
                            if ti.static(has_visit):
                                visit(bbox, f, ty, tx, k, values, T)

    @kernel
    def visit_entries(bbox: arr, offsets: iarr, tile_faces: iarr, values: iarr, H: ti.i32, W: ti.i32, T: ti.i32):
        """values (N,) = ``visit``'s value for every entry of the lists (offsets, tile_faces); one
        thread per tile."""
        ntx = (W + T - 1) // T
        nty = (H + T - 1) // T
        for tile in range(offsets.shape[0] - 1):
            t = tile % (ntx * nty)
            for k in range(offsets[tile], offsets[tile + 1]):
                if ti.static(has_visit):
                    visit(bbox, tile_faces[k], t // ntx, t % ntx, k, values, T)

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

    return types.SimpleNamespace(count=count, fill=fill, count_chunks=count_chunks, chunk_totals=chunk_totals,
                                 chunk_cursors=chunk_cursors, fill_chunks=fill_chunks, ranks=ranks,
                                 visit_entries=visit_entries,
                                 sort_tiles=sort_tiles)
