"""Nearest neighbour in a point set (``knn1``): forward and hand-written backward.

For points ``x (Bx, N, 3)`` and ``y (By, M, 3)`` (``Bx``, ``By`` each 1 or B; 1 broadcasts), per
``x_i`` of batch ``b`` the forward finds ``j* = argmin_j |x_i - y_j|^2`` over the first
``ylen[b]`` points of ``y`` (ties: smallest ``j``) and writes ``dist2[b, i] = |x_i - y_j*|^2``
and ``idx[b, i] = j*``. Points ``i >= xlen[b]`` (padding) get ``dist2 = 0``, ``idx = -1``.

Brute force, O(N M) time and O(N + M) memory: one thread owns a tile of ``TILE`` consecutive
x points held in registers and streams over y once for the whole tile (each y point loaded once
per tile, ``TILE`` independent min-chains for the CPU's pipelines). No N x M buffer exists.
Distances use the difference form ``sum_c (x_c - y_c)^2`` (never ``|x|^2 - 2 x.y + |y|^2``,
which cancels catastrophically for nearby points far from the origin).

Backward (DESIGN §5: the argmin inner loop is not something Taichi autodiff gets right, and the
gradient is simple): with ``j* `` fixed (the min is piecewise smooth),
``d dist2 / d x_i = 2 (x_i - y_j*)`` and ``d dist2 / d y_j* = -2 (x_i - y_j*)``, so each x point
adds ``2 (x_i - y_j*) g_i`` to ``grad_x[i]`` and subtracts it from ``grad_y[j*]`` with atomics
(several x points may share a nearest y; a broadcast batch shares x or y).
"""
import functools

import taichi as ti

from . import kernel

TILE = 4


@functools.lru_cache(maxsize=None)
def build(real):
    """Kernels ``(forward, backward)`` for float type ``real`` (ti.f32 or ti.f64)."""
    arr = ti.types.ndarray(dtype=real)
    iarr = ti.types.ndarray(dtype=ti.i32)

    @kernel
    def forward(x: arr, y: arr, xlen: iarr, ylen: iarr, dist2: arr, idx: iarr):
        # dist2, idx: (B, N); xlen, ylen: (B,)
        n_tiles = (dist2.shape[1] + TILE - 1) // TILE
        for b, t in ti.ndrange(dist2.shape[0], n_tiles):
            bx = b if x.shape[0] > 1 else 0
            by = b if y.shape[0] > 1 else 0
            nx = xlen[b]
            ny = ylen[b]
            q0 = ti.Vector.zero(real, TILE)
            q1 = ti.Vector.zero(real, TILE)
            q2 = ti.Vector.zero(real, TILE)
            best = ti.Vector([ti.math.inf] * TILE, real)
            arg = ti.Vector([-1] * TILE, ti.i32)
            for k in ti.static(range(TILE)):
                i = t * TILE + k
                if i < nx:
                    q0[k] = x[bx, i, 0]
                    q1[k] = x[bx, i, 1]
                    q2[k] = x[bx, i, 2]
            for j in range(ny):
                y0 = y[by, j, 0]
                y1 = y[by, j, 1]
                y2 = y[by, j, 2]
                for k in ti.static(range(TILE)):
                    d0 = q0[k] - y0
                    d1 = q1[k] - y1
                    d2 = q2[k] - y2
                    d = d0 * d0 + d1 * d1 + d2 * d2
                    if d < best[k]:
                        best[k] = d
                        arg[k] = j
            for k in ti.static(range(TILE)):
                i = t * TILE + k
                if i < dist2.shape[1]:
                    if i < nx:
                        dist2[b, i] = best[k]
                        idx[b, i] = arg[k]
                    else:
                        dist2[b, i] = real(0.0)
                        idx[b, i] = -1

    @kernel
    def backward(x: arr, y: arr, idx: iarr, g: arr, grad_x: arr, grad_y: arr):
        # g: (B, N) gradient of dist2; grad_x (Bx, N, 3), grad_y (By, M, 3) zero-initialised.
        for b, i in ti.ndrange(g.shape[0], g.shape[1]):
            j = idx[b, i]
            if j >= 0:
                bx = b if x.shape[0] > 1 else 0
                by = b if y.shape[0] > 1 else 0
                gi = g[b, i]
                for c in ti.static(range(3)):
                    d = real(2.0) * (x[bx, i, c] - y[by, j, c]) * gi
                    ti.atomic_add(grad_x[bx, i, c], d)
                    ti.atomic_add(grad_y[by, j, c], -d)

    return forward, backward
