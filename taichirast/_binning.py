"""Host side of tile binning (kernels/binning.py): counts -> prefix sum -> CSR lists."""
from __future__ import annotations

from . import _array as A


def bin_faces(bbox, tab, H: int, W: int, tile: int, order=None, rank=None, ordered_fill=None):
    """CSR tile lists for face-entry boxes ``bbox (E, 4)`` (xmin, xmax, ymin, ymax in pixels) of the
    images of ``tab (B, 3)`` (kernels/common.entry_face: image b owns entries ``tab[b, 2] ..
    tab[b, 2] + tab[b, 1] - 1``).

    With ``order (E,)`` int32 (a permutation of the entries, each image's in the order wanted),
    every tile lists its entries in that order (deterministic); without it, in an order that depends
    on thread timing. ``rank (E,)``, the inverse permutation (``rank[order[i]] = i``), may be passed
    when the caller has it. ``ordered_fill`` picks how ordered lists are made -- ``"serial"`` (one
    thread walks ``order``: the CPU's default) or ``"sort"`` (parallel fill, then every tile's list
    sorted by rank: the GPUs' default); both give the same lists.

    Returns ``(offsets, tile_faces)``: int32 arrays of sizes ``B * n_tiles + 1`` and the total
    number of (tile, entry) pairs; tiles are row-major per image with ``ceil(W / tile)`` columns.
    """
    from taichirast.kernels import binning, real_type

    K = binning.build(real_type(A.dtype_name(bbox)))
    B = tab.shape[0]
    n_tiles = ((H + tile - 1) // tile) * ((W + tile - 1) // tile)
    counts = A.zeros(bbox, (B * n_tiles,), "int32")
    if bbox.shape[0] > 0:
        K.count(bbox, tab, counts, H, W, tile)
    offsets, total = A.cumsum_exclusive(counts)
    tile_faces = A.zeros(bbox, (max(total, 1),), "int32")
    if total > 0:
        cursor = A.zeros(bbox, (B * n_tiles,), "int32")
        if order is not None and _ordered_fill(ordered_fill) == "serial":
            K.fill_ordered(bbox, tab, order, offsets, cursor, tile_faces, H, W, tile)
        else:
            K.fill(bbox, tab, offsets, cursor, tile_faces, H, W, tile)
            if order is not None:
                K.sort_tiles(offsets, tile_faces, ranks_of(order) if rank is None else rank)
    return offsets, tile_faces


def ranks_of(order):
    """``rank (E,)`` int32 with ``rank[order[i]] = i``: each entry's place in ``order``."""
    from taichirast.kernels import binning, real_type

    rank = A.empty(order, tuple(order.shape), "int32")
    binning.build(real_type("float32")).ranks(order, rank)
    return rank


def _ordered_fill(choice):
    if choice in ("serial", "sort"):
        return choice
    if choice is not None:
        raise ValueError(f"bin_faces: ordered_fill must be 'serial', 'sort' or None, got {choice!r}")
    from .runtime import ensure_init

    # one thread at memory latency per entry is cheap on a CPU core, the whole pass on a GPU
    return "serial" if ensure_init() == "cpu" else "sort"
