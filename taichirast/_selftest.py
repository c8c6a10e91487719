"""Driver self-test: known-answer kernels run at the first Vulkan or Metal initialisation.

Some GPU drivers compile Taichi's SPIR-V wrongly without any error. Mesa 22.3's lavapipe (Debian 12)
runs only 2 iterations of a serial loop that holds an ``atomic_add`` inside a parallel ``for``:
the tile binning and the rasterizers would silently produce wrong images there. Before
taichirast launches anything on such a backend, :func:`run` checks the patterns its kernels rely
on against answers computed in Python:

* a serial loop with atomics inside a parallel loop (the Mesa 22.3 failure);
* tile binning: per-tile counts with atomics, then a fill through atomic cursors
  (kernels/binning.py's pattern), compared as per-tile sets;
* float32 transcendental functions (``exp``, ``log``, ``sqrt``) and an atomic min.

``runtime.ensure_init`` falls back to the CPU, with a warning that names the failed check, when
any answer is wrong. The kernels are tiny (well under a millisecond once compiled; Taichi's offline
cache keeps them between processes).
"""
# (no `from __future__ import annotations`: Taichi reads the kernels' annotations as objects)
import numpy as np


def _kernels(ti):
    iarr = ti.types.ndarray(dtype=ti.i32)
    farr = ti.types.ndarray(dtype=ti.f32)

    @ti.kernel
    def loop_atomic(n: ti.i32, out: iarr, counts: iarr):
        for i in range(out.shape[0]):
            s = 0
            for k in range(n):
                ti.atomic_add(counts[(i + k) % counts.shape[0]], 1)
                s += k
            out[i] = s

    @ti.kernel
    def bin_count(box: iarr, counts: iarr):
        for f in range(box.shape[0]):
            for t in range(box[f, 0], box[f, 1] + 1):
                ti.atomic_add(counts[t], 1)

    @ti.kernel
    def bin_fill(box: iarr, offsets: iarr, cursor: iarr, items: iarr):
        for f in range(box.shape[0]):
            for t in range(box[f, 0], box[f, 1] + 1):
                slot = ti.atomic_add(cursor[t], 1)
                items[offsets[t] + slot] = f

    @ti.kernel
    def math32(x: farr, out: farr, amin: iarr):
        for i in range(x.shape[0]):
            out[i, 0] = ti.exp(-x[i])
            out[i, 1] = ti.log(1.0 + x[i])
            out[i, 2] = ti.sqrt(x[i])
            ti.atomic_min(amin[0], ti.cast(x[i] * 1000.0, ti.i32))

    return loop_atomic, bin_count, bin_fill, math32


def run(ti):
    """None when every known answer matches on the current Taichi arch, else what went wrong."""
    loop_atomic, bin_count, bin_fill, math32 = _kernels(ti)
    out, counts = np.zeros(64, np.int32), np.zeros(16, np.int32)
    loop_atomic(10, out, counts)
    if not (out == 45).all() or counts.sum() != 640:
        return (f"a serial loop with atomics inside a parallel loop ran wrongly (loop sum {int(out[0])}, "
                f"expected 45; {int(counts.sum())} atomic adds, expected 640)")
    g = np.random.default_rng(0)
    lo = g.integers(0, 40, 300)
    box = np.stack([lo, np.minimum(lo + g.integers(0, 6, 300), 39)], 1).astype(np.int32)
    counts = np.zeros(40, np.int32)
    bin_count(box, counts)
    want = np.bincount(np.concatenate([np.arange(a, b + 1) for a, b in box]), minlength=40)
    if not np.array_equal(counts, want):
        return "tile binning counted wrongly (atomic adds in a loop over each face's tiles)"
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    items = np.full(int(offsets[-1]), -1, np.int32)
    bin_fill(box, offsets, np.zeros(40, np.int32), items)
    for t in range(40):
        got = np.sort(items[offsets[t]:offsets[t + 1]])
        if not np.array_equal(got, np.flatnonzero((box[:, 0] <= t) & (box[:, 1] >= t))):
            return f"tile binning filled tile {t} wrongly (atomic cursors)"
    x = np.linspace(0.001, 5.0, 97).astype(np.float32)
    res, amin = np.zeros((97, 3), np.float32), np.full(1, 2**30, np.int32)
    math32(x, res, amin)
    ref = np.stack([np.exp(-x), np.log1p(x), np.sqrt(x)], 1)
    if not np.allclose(res, ref, rtol=1e-5, atol=1e-6) or amin[0] != 1:
        return "float32 exp / log / sqrt or atomic min gave wrong values"
    return None
