"""Where the per-pixel backward kernels (hard rasterizer, interpolation) add their gradients.

Those kernels sum a run of pixels of one face in registers and add the sums to the face's three
vertices (or attribute rows) when the face changes: for the bunny at 512², ~60,000 runs of 9 (or
3 C) adds. Pixels of many rows share a vertex, so parallel threads must not lose each other's adds.
On GPUs they use atomics. On the CPU an atomic float add is a ``lock cmpxchg`` loop: single-threaded,
the interpolation backward's scatter took 3.4 ms with atomics and 1.5 ms with plain adds (bunny
512²). So there each worker (one per Taichi CPU thread, kernels/common.py ``CHUNK_STRIDE``) takes
a fixed, interleaved set of row blocks (``common.worker_row``) and adds with plain adds into a
private copy of the output, and a last kernel sums the copies in worker order: the gradients are
then the same in every run (with atomics the order of the adds followed thread timing).

``MODE``: ``"private"``, ``"atomic"`` or None (private on the CPU while the copies fit in
``PRIVATE_BYTES``, atomic otherwise); tests run both.
"""
from __future__ import annotations

from . import _array as A
from .runtime import cpu_threads, ensure_init

MODE = None
# The private copies together may take up to this many bytes (beyond it: atomics), so that memory
# stays O(pixels + faces) with many threads and wide attributes.
PRIVATE_BYTES = 64 << 20


class Target:
    """The gradient a backward kernel adds into: ``(R, C)`` zeros like ``like``.

    Pass ``dst``, ``workers`` (NW) and ``private`` to the kernel; :meth:`result` afterwards gives
    the gradient (``dst`` itself, or the sum of the NW private copies ``dst (NW * R, C)``)."""

    def __init__(self, like, rows: int, cols: int, image_rows: int):
        self.workers = _workers(like, rows * cols, image_rows)
        self.private = self.workers > 0
        self.shape = (rows, cols)
        self.dst = A.zeros(like, (max(1, self.workers) * rows, cols))

    def result(self):
        if self.workers <= 1:
            return self.dst
        from .kernels import scatter

        out = A.empty(self.dst, self.shape)
        scatter.sum_copies(self.dst, out, self.workers)
        return out


def _threads() -> int:
    return cpu_threads()


def _workers(like, size: int, image_rows: int) -> int:
    """Private copies of a ``size``-value output for a kernel over ``image_rows`` rows: one per CPU
    thread (at most one per row block), or 0 for atomics (GPUs, ``MODE``, more than
    ``PRIVATE_BYTES`` of copies)."""
    from .kernels.common import WORKER_ROWS

    mode = MODE
    n = max(1, min(_threads(), -(-image_rows // WORKER_ROWS)))
    if mode is None:
        on_cpu = ensure_init() == "cpu" and A.device_type(like) == "cpu"
        fits = n * size * (8 if A.dtype_name(like).endswith("64") else 4) <= PRIVATE_BYTES
        mode = "private" if on_cpu and fits else "atomic"
    return n if mode == "private" else 0
