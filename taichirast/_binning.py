"""Host side of tile binning (kernels/binning.py): counts -> prefix sum -> CSR lists."""
from __future__ import annotations

from . import _array as A


def bin_faces(bbox, H: int, W: int, tile: int, order=None):
    """CSR tile lists for face boxes ``bbox (B, F, 4)`` (xmin, xmax, ymin, ymax in pixels).

    With ``order (B, F)`` int32 (a permutation of the faces per batch), every tile lists its faces
    in that order (deterministic); without it, in an order that depends on thread timing.

    Returns ``(offsets, tile_faces)``: int32 arrays of sizes ``B * n_tiles + 1`` and the total
    number of (tile, face) pairs; tiles are row-major per batch with ``ceil(W / tile)`` columns.
    """
    from taichirast.kernels import binning, real_type

    count, fill, fill_ordered = binning.build(real_type(A.dtype_name(bbox)))
    B = bbox.shape[0]
    n_tiles = ((H + tile - 1) // tile) * ((W + tile - 1) // tile)
    counts = A.zeros(bbox, (B * n_tiles,), "int32")
    if bbox.shape[1] > 0:
        count(bbox, counts, H, W, tile)
    offsets = A.cumsum_exclusive(counts)
    total = int(offsets[-1])
    tile_faces = A.zeros(bbox, (max(total, 1),), "int32")
    if total > 0:
        cursor = A.zeros(bbox, (B * n_tiles,), "int32")
        if order is None:
            fill(bbox, offsets, cursor, tile_faces, H, W, tile)
        else:
            fill_ordered(bbox, order, offsets, cursor, tile_faces, H, W, tile)
    return offsets, tile_faces
