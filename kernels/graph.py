"""Fused feature-steered aggregation (FeaStNet) over a CSR graph: forward and hand-written backward.

The op (Verma et al. 2018, eq. 3-4, in the form of TF Graphics' ``feature_steered_convolution``):
for every directed edge ``e = (i <- j)`` with weight ``w_e`` (the sparse adjacency value, e.g.
``1 / |N_i|`` for a row-normalised adjacency),

    logit_e[m] = a[i, m] + b[j, m] + c[m]                  (a = x U, b = x V; translation-invariant:
                                                             V = -U, i.e. u_m . (x_j - x_i))
    q_e        = softmax_m(logit_e)                         (M weights per edge)
    y[i, d]    = sum_{e in row i} w_e sum_m q_e[m] xw[j, d, m]   (xw = x W_m, projected per m)

``xw`` is laid out ``(N, D, M)`` (m fastest) so that the M products of one output channel are
one contiguous load, in the forward and in the backward.

The E x M x C (or E x M x D) intermediate of a gather/scatter implementation never exists: one
thread per output vertex ``i`` walks its CSR row and accumulates ``y[i, :]`` in place (no atomics,
deterministic). The forward also writes ``q (E, M)`` (small: M floats per edge) for the backward.

Backward (DESIGN §5: hand-written, Taichi autodiff is unreliable through these loops). With
``g = dL/dy``:

    dL/dxw[j, d, m] = sum_{e: col j} w_e q_e[m] g[i, d]
    s_e[m]          = sum_d g[i, d] xw[j, d, m]
    dL/dlogit_e[m]  = w_e q_e[m] (s_e[m] - sum_k q_e[k] s_e[k])        (softmax Jacobian)
    dL/da[i] = sum_{e in row i} dlogit_e,  dL/db[j] = sum_{e: col j} dlogit_e,  dL/dc = sum_e dlogit_e

One thread per source vertex ``j`` walks the transposed CSR (``colptr``, ``perm`` = edge ids
sorted by column) and writes ``dxw[j]`` and ``db[j]`` in place (no atomics); it also stores
``dlogit (E, M)`` per edge so that ``da`` (a row sum) and ``dc`` are reduced by the caller.

Kernels are built per float type and per ``M`` (a compile-time size: the softmax lives in registers).
"""
import functools

import taichi as ti

from . import kernel


@functools.lru_cache(maxsize=None)
def build(real, M: int):
    """Kernels ``(forward, backward)`` of the fused FeaSt aggregation for ``real`` and ``M`` weights."""
    arr = ti.types.ndarray(dtype=real)
    iarr = ti.types.ndarray(dtype=ti.i32)
    vec = ti.types.vector(M, real)

    @kernel
    def forward(a: arr, b: arr, c: arr, xw: arr, w: arr, rowptr: iarr, col: iarr, y: arr, q_out: arr):
        # a, b: (N, M); c: (M,); xw: (N, D, M); w: (E,); rowptr: (N + 1,); col: (E,) sorted by row.
        # y: (N, D) zero-initialised; q_out: (E, M).
        D = y.shape[1]
        for i in range(y.shape[0]):
            for e in range(rowptr[i], rowptr[i + 1]):
                j = col[e]
                z = vec(0.0)
                for m in ti.static(range(M)):
                    z[m] = a[i, m] + b[j, m] + c[m]
                q = ti.exp(z - z.max())  # max-shifted softmax: no overflow
                q = q / q.sum()
                for m in ti.static(range(M)):
                    q_out[e, m] = q[m]
                we = w[e]
                qw = q * we
                for d in range(D):
                    acc = real(0.0)
                    for m in ti.static(range(M)):
                        acc += qw[m] * xw[j, d, m]
                    y[i, d] = y[i, d] + acc  # row i is owned by this thread: no atomic

    @kernel
    def backward(xw: arr, w: arr, q: arr, g: arr, row: iarr, colptr: iarr, perm: iarr,
                 dxw: arr, db: arr, dlogit: arr):
        # g: (N, D); row: (E,) row of each edge; colptr: (N + 1,); perm: (E,) edge ids sorted by column.
        # dxw: (N, D, M), db: (N, M) zero-initialised; dlogit: (E, M) written for every edge.
        D = g.shape[1]
        for j in range(dxw.shape[0]):
            for t in range(colptr[j], colptr[j + 1]):
                e = perm[t]
                i = row[e]
                we = w[e]
                qe = vec(0.0)
                s = vec(0.0)
                for m in ti.static(range(M)):
                    qe[m] = q[e, m]
                qw = qe * we
                for d in range(D):
                    gd = g[i, d]
                    for m in ti.static(range(M)):
                        s[m] += gd * xw[j, d, m]
                        dxw[j, d, m] = dxw[j, d, m] + qw[m] * gd  # column j is owned by this thread
                sbar = (qe * s).sum()
                for m in ti.static(range(M)):
                    gl = we * qe[m] * (s[m] - sbar)
                    dlogit[e, m] = gl
                    db[j, m] = db[j, m] + gl

    return forward, backward
