"""Host side of tile binning (kernels/binning.py): counts -> prefix sum -> CSR lists."""
from __future__ import annotations

from . import _array as A


def bin_faces(bbox, tab, H: int, W: int, tile: int, order=None, rank=None, ordered_fill=None, chunks=None,
              visit=None):
    """CSR tile lists for face-entry boxes ``bbox (E, 4)`` (xmin, xmax, ymin, ymax in pixels) of the
    images of ``tab (B, 3)`` (kernels/common.entry_face: image b owns entries ``tab[b, 2] ..
    tab[b, 2] + tab[b, 1] - 1``).

    With ``order (E,)`` int32 (a permutation of the entries, each image's in the order wanted),
    every tile lists its entries in that order (deterministic); without it, in an order that depends
    on thread timing. ``rank (E,)``, the inverse permutation (``rank[order[i]] = i``), may be passed
    when the caller has it. ``ordered_fill`` picks how ordered lists are made -- ``"chunks"``
    (``order`` cut into ``chunks`` pieces, default the CPU threads, each counted and filled by one
    thread: the CPU's default) or ``"sort"`` (parallel fill, then every tile's list sorted by rank:
    the GPUs' default); all give the same lists (kernels/binning.py).

    ``visit``: None, or a ti.func computing an int32 value per (tile, entry) pair (kernels/binning.py,
    e.g. kernels/soft.py ``cell_mask``), returned as a third array, aligned with ``tile_faces``.

    Returns ``(offsets, tile_faces)``, with ``visit`` ``(offsets, tile_faces, values)``: int32
    arrays of sizes ``B * n_tiles + 1`` and the total number N of (tile, entry) pairs (at least 1);
    tiles are row-major per image with ``ceil(W / tile)`` columns.
    """
    from taichirast.kernels import binning, real_type

    K = binning.build(real_type(A.dtype_name(bbox)), visit)
    B = tab.shape[0]
    n_tiles = ((H + tile - 1) // tile) * ((W + tile - 1) // tile)
    counts = A.zeros(bbox, (B * n_tiles,), "int32")
    if order is not None and _ordered_fill(ordered_fill) == "chunks":
        rank = ranks_of(order) if rank is None else rank
        out = _chunked_fill(K, bbox, tab, order, rank, counts, H, W, tile, _chunk_count(chunks, order.shape[0]),
                            visit is not None)
        return out if visit is not None else out[:2]
    if bbox.shape[0] > 0:
        K.count(bbox, tab, counts, H, W, tile)
    offsets, total = A.cumsum_exclusive(counts)
    tile_faces = A.zeros(bbox, (max(total, 1),), "int32")
    if total > 0:
        cursor = A.zeros(bbox, (B * n_tiles,), "int32")
        K.fill(bbox, tab, offsets, cursor, tile_faces, H, W, tile)
        if order is not None:
            K.sort_tiles(offsets, tile_faces, ranks_of(order) if rank is None else rank)
    if visit is None:
        return offsets, tile_faces
    values = A.zeros(bbox, tuple(tile_faces.shape), "int32")
    if total > 0:
        K.visit_entries(bbox, offsets, tile_faces, values, H, W, tile)
    return offsets, tile_faces, values


def _chunked_fill(K, bbox, tab, order, rank, counts, H, W, tile, NC, with_values):
    """``bin_faces``' ordered lists by NC chunks of ``order`` (kernels/binning.py ``count_chunks``),
    and the visit's values (a (1,) placeholder without ``with_values``)."""
    cursor = A.zeros(bbox, (NC, counts.shape[0]), "int32")
    if order.shape[0] > 0:
        K.count_chunks(bbox, tab, rank, cursor, H, W, tile)
        K.chunk_totals(cursor, counts)
    offsets, total = A.cumsum_exclusive(counts)
    tile_faces = A.zeros(bbox, (max(total, 1),), "int32")
    values = A.zeros(bbox, tuple(tile_faces.shape) if with_values else (1,), "int32")
    if total > 0:
        K.chunk_cursors(cursor, offsets)
        K.fill_chunks(bbox, tab, order, cursor, tile_faces, values, H, W, tile)
    return offsets, tile_faces, values


def _chunk_count(chunks, n):
    if chunks is None:
        from .runtime import cpu_threads

        chunks = cpu_threads()
    return max(1, min(int(chunks), n))


def tile_schedule(offsets, threads=None):
    """The order ``(n,)`` int32 in which a one-thread-per-tile kernel visits the n tiles of a CSR
    ``offsets (n + 1,)`` (same library and device).

    Taichi 1.7's CPU backend runs a parallel range-for of n iterations as tasks of min(1024,
    max(512, n / (32 P))) consecutive iterations, whatever ``loop_config(block_dim=...)`` says
    (measured: with the first half of 1024 iterations heavy, one of two threads runs them all and
    the other idles). Tiles in image order then load the threads by how much of the mesh lies in
    their part of the image (bunny 512² soft forward: 1.5 of 2 cores busy). On the CPU the tiles
    are dealt, longest list first, to P chunks in a snake (0 .. P - 1, P - 1 .. 0, ...), so the
    chunks get equal counts and near-equal work, and each chunk visits its tiles in image order
    (neighbouring tiles share faces in cache). On GPUs, which schedule dynamically: image order.
    ``threads`` overrides P (tests)."""
    import numpy as np

    from .runtime import cpu_threads, ensure_init

    n = offsets.shape[0] - 1
    on_cpu = ensure_init() == "cpu"
    if threads is None:
        threads = cpu_threads() if on_cpu else 1
    P = max(1, min(int(threads), n))
    if P == 1:
        return A.index_rows(offsets, 1, n)[0]
    cost = np.diff(A.to_numpy(offsets).astype(np.int64))
    by_cost = np.argsort(-cost, kind="stable")
    turn = np.arange(n) % (2 * P)
    deal = np.where(turn < P, turn, 2 * P - 1 - turn)
    full = n - n % P
    deal[full:] = np.arange(n - full)  # the last, cheapest, round in order: chunks 0 .. n % P - 1 get one more
    chunk = np.empty(n, dtype=np.int64)
    chunk[by_cost] = deal
    order = np.lexsort((np.arange(n), chunk)).astype(np.int32)
    return A.as_like(order, offsets, "int32")


def ranks_of(order):
    """``rank (E,)`` int32 with ``rank[order[i]] = i``: each entry's place in ``order``."""
    from taichirast.kernels import binning, real_type

    rank = A.empty(order, tuple(order.shape), "int32")
    binning.build(real_type("float32")).ranks(order, rank)
    return rank


def _ordered_fill(choice):
    if choice in ("chunks", "sort"):
        return choice
    if choice is not None:
        raise ValueError(f"bin_faces: ordered_fill must be 'chunks', 'sort' or None, got {choice!r}")
    from .runtime import ensure_init

    # one thread at memory latency per entry is cheap on a CPU core, the whole pass on a GPU
    return "chunks" if ensure_init() == "cpu" else "sort"
