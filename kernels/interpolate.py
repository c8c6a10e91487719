"""Per-pixel attribute interpolation from barycentrics (+ hand-written backward). DESIGN §3, §5.

``out[b, y, x, c] = sum_i bary[b, y, x, i] * attrs[ba, faces[f, i], c]`` with ``f = face_id[b, y, x]``
and ``ba = b`` (or 0 when the attributes are shared by the batch); background pixels (``f < 0``)
get 0. ``faces`` is any index table with one row per face id (vertex indices, UV indices, ...).

Backward (given ``g = dL/d out``):
    dL/d bary[b, y, x, i]        = sum_c g[b, y, x, c] * attrs[ba, faces[f, i], c]
    dL/d attrs[ba, faces[f, i], c] += bary[b, y, x, i] * g[b, y, x, c]    (scatter, summed in registers
                                                                         along runs of one face)
The scatter adds into per-worker copies with plain adds on the CPU, by atomics on GPUs
(taichirast/_scatter.py).

Buffers are passed flattened (cheaper indexing, see kernels/raster.py): pixels ``p`` in
``[0, N = B * H * W)`` with ``face_id (N,)``, ``bary (N, 3)``, ``out / g_out (N, C)``;
attributes ``(Ba * V, C)`` with ``Ba`` 1 (shared) or B; ``HW = H * W`` gives a pixel's image.
"""
import functools

import taichi as ti

from . import kernel
from .common import CHUNK_STRIDE, worker_row, worker_rows
from .raster import ROW_SEGMENTS, row_segment

# Channels per register block in the backward (its adds are issued per run of equal face ids).
CHANNEL_BLOCK = 4


@functools.lru_cache(maxsize=None)
def build(real):
    arr = ti.types.ndarray(dtype=real)
    iarr = ti.types.ndarray(dtype=ti.i32)

    @ti.func
    def _attr_base(p, HW, V, shared):
        base = 0
        if not shared:
            base = (p // HW) * V
        return base

    @kernel
    def forward(attrs: arr, faces: iarr, face_id: iarr, bary: arr, out: arr, HW: ti.i32, V: ti.i32,
                shared: ti.i32):
        C = out.shape[1]
        for p in range(out.shape[0]):
            f = face_id[p]
            if f >= 0:
                base = _attr_base(p, HW, V, shared)
                i0, i1, i2 = base + faces[f, 0], base + faces[f, 1], base + faces[f, 2]
                b0, b1, b2 = bary[p, 0], bary[p, 1], bary[p, 2]
                for c in range(C):
                    out[p, c] = b0 * attrs[i0, c] + b1 * attrs[i1, c] + b2 * attrs[i2, c]
            else:
                for c in range(C):
                    out[p, c] = real(0.0)

    @ti.func
    def _scatter(dst: arr, i0, i1, i2, c0, C, acc, atomic: ti.template()):
        for c in ti.static(range(CHANNEL_BLOCK)):
            if c0 + c < C:
                if ti.static(atomic):
                    ti.atomic_add(dst[i0, c0 + c], acc[0, c])
                    ti.atomic_add(dst[i1, c0 + c], acc[1, c])
                    ti.atomic_add(dst[i2, c0 + c], acc[2, c])
                else:  # written out: Taichi makes ``+=`` on an array an atomic add
                    dst[i0, c0 + c] = dst[i0, c0 + c] + acc[0, c]
                    dst[i1, c0 + c] = dst[i1, c0 + c] + acc[1, c]
                    dst[i2, c0 + c] = dst[i2, c0 + c] + acc[2, c]

    @ti.func
    def _backward_pixels(attrs: arr, faces: iarr, face_id: iarr, bary: arr, g_out: arr, dst: arr, g_bary: arr, row,
                         x0, x1, W, base, off, need_attrs: ti.template(), need_bary: ti.template(),
                         atomic: ti.template()):
        """Pixels x0 .. x1 - 1 of row ``row`` (over the batch), attributes from row ``base`` of
        ``attrs``: adds into rows ``off + base + faces[f, i]`` of ``dst`` and writes their g_bary.
        Channels in register blocks of CHANNEL_BLOCK; consecutive pixels of one face add their
        ``bary_i * g`` into registers, added to ``dst`` only when the face changes."""
        C = g_out.shape[1]
        n_blocks = (C + CHANNEL_BLOCK - 1) // CHANNEL_BLOCK
        for blk in range(n_blocks):
            c0 = blk * CHANNEL_BLOCK
            cur = -1
            i0, i1, i2 = 0, 0, 0
            acc = ti.Matrix([[real(0.0)] * CHANNEL_BLOCK for _ in ti.static(range(3))], real)
            for px in range(x0, x1 + 1):  # one step past the end flushes the last run
                p = row * W + px
                f = -1
                if px < x1:
                    f = face_id[p]
                if f != cur:
                    if ti.static(need_attrs):
                        if cur >= 0:
                            _scatter(dst, off + i0, off + i1, off + i2, c0, C, acc, atomic)
                        acc = ti.Matrix([[real(0.0)] * CHANNEL_BLOCK for _ in ti.static(range(3))], real)
                    cur = f
                    if f >= 0:
                        i0, i1, i2 = base + faces[f, 0], base + faces[f, 1], base + faces[f, 2]
                gb = ti.Vector([real(0.0), real(0.0), real(0.0)], real)
                if f >= 0:
                    bb = ti.Vector([bary[p, 0], bary[p, 1], bary[p, 2]], real)
                    for c in ti.static(range(CHANNEL_BLOCK)):
                        if c0 + c < C:
                            g = g_out[p, c0 + c]
                            if ti.static(need_attrs):
                                for k in ti.static(range(3)):
                                    acc[k, c] += bb[k] * g
                            if ti.static(need_bary):
                                gb += g * ti.Vector([attrs[i0, c0 + c], attrs[i1, c0 + c], attrs[i2, c0 + c]], real)
                if ti.static(need_bary):
                    if px < x1:
                        for k in ti.static(range(3)):
                            if blk == 0:
                                g_bary[p, k] = gb[k]
                            else:  # the pixel's own entry: a plain add (``+=`` would be atomic)
                                g_bary[p, k] = g_bary[p, k] + gb[k]

    @kernel
    def backward(attrs: arr, faces: iarr, face_id: iarr, bary: arr, g_out: arr, dst: arr, g_bary: arr, H: ti.i32,
                 W: ti.i32, V: ti.i32, shared: ti.i32, NW: ti.i32, need_attrs: ti.template(), need_bary: ti.template(),
                 private: ti.template()):
        """g_attrs += scatter into ``dst``; g_bary (N, 3) written for every pixel.

        ``private`` (CPU): NW workers, one per thread, each taking blocks of whole image rows
        (common.worker_row) and adding with plain adds into its own copy, rows ``w * R .. (w + 1)
        * R - 1`` of ``dst (NW * R, C)``, R = rows of attrs (the host sums the copies:
        taichirast/_scatter.py). Otherwise (GPUs) ``dst (R, C)`` (zero-initialised) += by atomics,
        row segments in parallel (see kernels/raster.py, ROW_SEGMENTS).
        """
        B = face_id.shape[0] // (H * W)
        if ti.static(private):
            R = attrs.shape[0]
            for it in range(NW * CHUNK_STRIDE):
                if it % CHUNK_STRIDE == 0:  # worker it // CHUNK_STRIDE
                    for j in range(worker_rows(it, NW, B * H)):
                        row = worker_row(it, j, NW)
                        _backward_pixels(attrs, faces, face_id, bary, g_out, dst, g_bary, row, 0, W, W,
                                         0 if shared else (row // H) * V, it // CHUNK_STRIDE * R, need_attrs,
                                         need_bary, False)
        else:
            for t in range(B * H * ROW_SEGMENTS):
                row, b, _r, x0, x1 = row_segment(t, H, W)
                base = 0 if shared else b * V
                _backward_pixels(attrs, faces, face_id, bary, g_out, dst, g_bary, row, x0, x1, W, base, 0,
                                 need_attrs, need_bary, True)

    return forward, backward
