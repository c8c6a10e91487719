"""Area-weighted vertex normals (+ hand-written backward). DESIGN §5.

Per face ``f = (i0, i1, i2)`` of a batch ``b``: ``a = v1 - v0``, ``c = v2 - v0``, ``n_f = a x c``
(length = twice the area, so summing weights faces by area). ``S[i] = sum of n_f over the faces
of vertex i`` (atomic scatter), ``out[i] = S[i] * rsqrt(max(S[i].S[i], eps^2))`` (a vertex in no
face gets 0, never NaN).

Backward with ``g = dL/d out``:

    per vertex:  |S| > eps:  g_S = (g - (g.y) y) / |S|   (y = out)
                 otherwise:  g_S = g / eps               (the clamp's constant branch)
    per face:    g_n = g_S[i0] + g_S[i1] + g_S[i2]
                 dL/da = c x g_n,  dL/dc = g_n x a       (g . (a x c) = a . (c x g) = c . (g x a))
                 g_v[i1] += dL/da,  g_v[i2] += dL/dc,  g_v[i0] -= dL/da + dL/dc   (atomics)

Arrays: ``v (B, V, 3)``, ``faces (F, 3)`` int32, ``S``/``out``/``g_*`` like ``v``.
"""
import functools

import taichi as ti

from . import kernel


@functools.lru_cache(maxsize=None)
def build(real):
    arr = ti.types.ndarray(dtype=real)
    iarr = ti.types.ndarray(dtype=ti.i32)
    vec3 = ti.types.vector(3, real)

    @ti.func
    def _v(a: ti.template(), b, i):
        return vec3(a[b, i, 0], a[b, i, 1], a[b, i, 2])

    @kernel
    def forward(v: arr, faces: iarr, S: arr, out: arr, eps: real):
        """S zero-initialised; out fully written."""
        B, V, F = v.shape[0], v.shape[1], faces.shape[0]
        for b, f in ti.ndrange(B, F):
            p0 = _v(v, b, faces[f, 0])
            n = (_v(v, b, faces[f, 1]) - p0).cross(_v(v, b, faces[f, 2]) - p0)
            for k in ti.static(range(3)):
                for d in ti.static(range(3)):
                    ti.atomic_add(S[b, faces[f, k], d], n[d])
        for b, i in ti.ndrange(B, V):
            s = _v(S, b, i)
            r = real(1.0) / ti.sqrt(ti.max(s.dot(s), eps * eps))
            for d in ti.static(range(3)):
                out[b, i, d] = s[d] * r

    @kernel
    def backward(v: arr, faces: iarr, S: arr, g_out: arr, g_S: arr, g_v: arr, eps: real):
        """g_S fully written (scratch); g_v zero-initialised."""
        B, V, F = v.shape[0], v.shape[1], faces.shape[0]
        for b, i in ti.ndrange(B, V):
            s = _v(S, b, i)
            g = _v(g_out, b, i)
            q = s.dot(s)
            gs = g / eps
            if q > eps * eps:
                r = real(1.0) / ti.sqrt(q)
                y = s * r
                gs = (g - g.dot(y) * y) * r
            for d in ti.static(range(3)):
                g_S[b, i, d] = gs[d]
        for b, f in ti.ndrange(B, F):
            i0, i1, i2 = faces[f, 0], faces[f, 1], faces[f, 2]
            p0 = _v(v, b, i0)
            a = _v(v, b, i1) - p0
            c = _v(v, b, i2) - p0
            gn = _v(g_S, b, i0) + _v(g_S, b, i1) + _v(g_S, b, i2)
            ga = c.cross(gn)
            gc = gn.cross(a)
            for d in ti.static(range(3)):
                ti.atomic_add(g_v[b, i1, d], ga[d])
                ti.atomic_add(g_v[b, i2, d], gc[d])
                ti.atomic_add(g_v[b, i0, d], -ga[d] - gc[d])

    return forward, backward
