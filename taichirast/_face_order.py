"""A spatially coherent order in which the CPU face schedule visits a mesh's faces, cached per topology.

The face schedule of the hard rasterizer (kernels/raster.py ``raster_faces``: one thread per face,
depth test by atomic-min on a per-pixel key) reads and writes the keys of each face's pixels. In
a mesh's own face order, consecutive faces are often far apart on screen (the bunny: 36% of
consecutive centroids more than 16 px apart at 512², as slow as a random order), so most key and
vertex reads miss the caches. Visiting the faces in the 3-D Morton order of their centroids made
that kernel 0.78-0.80x (bunny 512², measured interleaved).

The result does not depend on the order (the keys pack depth and face id, and atomic-min is
order-free), so an order only has to be a permutation of the faces, and need not be exact: it is
computed once per topology, from the screen vertices of the first image of the second call in a
row that draws it (x, y and depth, each axis scaled to the range of its central 98%), and reused
while the faces look the same: their count and a sample of their indices. A camera or mesh that
moves keeps faces that are near in 3-D near on screen, and faces that merely look the same get a
valid, perhaps less coherent, order.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from . import _array as A

# Below this many faces everything a kernel touches stays in cache: no order.
MIN_FACES = 2048
# Topologies remembered (least recently used dropped first); each costs 4 bytes a face.
CACHE_SIZE = 8
# Face rows sampled for a topology's fingerprint.
SAMPLES = 64

_cache: OrderedDict = OrderedDict()
_last = [None]  # the fingerprint of the last call that found no order


def face_order(sv, faces):
    """``(F,)`` int32 permutation of the faces (same library and device as ``faces``), or None: for
    small meshes, and on a topology's first call unless the call before had it too (so the sort,
    13 ms for the bunny, is paid by loops that draw one mesh again and again, not by a pass over a
    dataset of meshes drawn once each). ``sv (B, V, 3)`` screen vertices, ``faces (F, 3)`` int32
    (checked)."""
    F = faces.shape[0]
    if F < MIN_FACES:
        return None
    fp = (F, A.is_torch(faces), A.device_type(faces),
          A.to_numpy(faces)[np.linspace(0, F - 1, SAMPLES).astype(np.int64)].tobytes())
    hit = _cache.get(fp)
    if hit is not None:
        _cache.move_to_end(fp)
        return hit
    seen, _last[0] = _last[0] == fp, fp
    if not seen:  # a topology's first call in a row: a loop over many meshes pays no sort
        return None
    order = A.as_like(morton_order(A.to_numpy(sv[0]), A.to_numpy(faces)), faces, "int32")
    _cache[fp] = order
    while len(_cache) > CACHE_SIZE:
        _cache.popitem(last=False)
    return order


def _spread(q):
    """The 10 low bits of ``q`` (int64) moved to every third bit."""
    q = q & 0x3FF
    q = (q | (q << 16)) & 0x030000FF
    q = (q | (q << 8)) & 0x0300F00F
    q = (q | (q << 4)) & 0x030C30C3
    return (q | (q << 2)) & 0x09249249


def morton_order(verts, faces):
    """Face indices ``(F,)`` int32 sorted by the 30-bit Morton code of their centroids in ``verts (V,
    3)`` (NumPy), each axis scaled to the range of its central 98% (so that a few far vertices, e.g.
    near the camera plane, do not squeeze the rest into one cell) and clipped."""
    c = verts[faces].mean(axis=1, dtype=np.float64)
    sample = c[::max(1, c.shape[0] >> 16)]  # quantiles of <= 2^17 centroids
    lo, hi = np.quantile(sample, 0.01, axis=0), np.quantile(sample, 0.99, axis=0)
    q = np.clip((c - lo) / np.maximum(hi - lo, 1e-30) * 1023.0, 0, 1023).astype(np.int64)
    code = _spread(q[:, 0]) | (_spread(q[:, 1]) << 1) | (_spread(q[:, 2]) << 2)
    return np.argsort(code).astype(np.int32)  # ties in the sort's own (deterministic) order


def visit_order(k, sv, faces, B, E):
    """``(rows, order, ordered)`` for kernels/raster.py ``raster_faces`` (``k``: its kernels): when each
    of the B images draws all the faces (``E == B * F``, a shared topology), the faces in their
    cached order (``faces[order]``, gathered anew each call: the cache holds only the permutation,
    so a topology it mistook for another still rasterizes right), that order and 1; else ``faces``,
    a dummy and 0."""
    order = face_order(sv, faces) if E == B * faces.shape[0] else None
    if order is None:
        return faces, A.zeros(faces, (1,), "int32"), 0
    rows = A.empty(faces, tuple(faces.shape), "int32")
    k["faces_in_order"](faces, order, rows)
    return rows, order, 1
