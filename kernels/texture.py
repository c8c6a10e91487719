"""Texture lookup (nearest / bilinear, repeat / clamp) + hand-written backward. DESIGN §3, §5.

Conventions (see also taichirast/_prims/texture.py):

* texture ``(Bt, Ht, Wt, C)``, texel row 0 at the top, texel centres at half-integers;
* ``u`` in [0, 1] runs left to right, ``v`` in [0, 1] bottom to top (OBJ / OpenGL), so in
  texel-centre units ``x = u * Wt - 0.5`` (column) and ``y = (1 - v) * Ht - 0.5`` (row): texel
  ``(i, j)`` (row, column) is sampled exactly at ``u = (j + 0.5) / Wt``, ``v = 1 - (i + 0.5) / Ht``;
* wrap ``repeat``: ``u``, ``v`` are first reduced to their fractional part (``u - floor(u)``) and
  texel indices wrap modulo ``Wt`` / ``Ht``; ``clamp``: indices clamp to ``[0, Wt - 1]`` /
  ``[0, Ht - 1]`` (clamp-to-edge: constant beyond the outer texel centres).

Bilinear, with ``x0 = floor(x)``, ``fx = x - x0`` (same for y) and ``T_ab = tex[y0 + a, x0 + b]``
(indices wrapped/clamped):

    out = (1-fx)(1-fy) T00 + fx (1-fy) T01 + (1-fx) fy T10 + fx fy T11

Backward (given ``g = dL/d out``, per pixel):

    dL/d tex[T_ab] += w_ab * g                         (atomic scatter, w_ab the weight above)
    dout/dx = (1-fy)(T01 - T00) + fy (T11 - T10),     dx/du =  Wt
    dout/dy = (1-fx)(T10 - T00) + fx (T11 - T01),     dy/dv = -Ht
    dL/du = Wt * sum_c g_c dout_c/dx,  dL/dv = -Ht * sum_c g_c dout_c/dy

The blend is continuous but only piecewise smooth: on a texel-centre line (``fx == 0`` or
``fy == 0``) the derivative returned is the one-sided derivative of the cell
``[x0, x0 + 1] x [y0, y0 + 1]``, i.e. towards larger ``x`` (larger ``u``) and larger ``y``
(smaller ``v``). With ``clamp`` beyond the outer texel centres both taps of an axis are the same
texel, so that axis' derivative is exactly 0 (the output is constant there). ``repeat`` reduces
``u`` with ``u - floor(u)``, whose derivative is 1 almost everywhere, so ``dL/du`` is unchanged.

Nearest: texel ``(floor(y + 0.5), floor(x + 0.5))`` = ``(floor((1 - v) Ht), floor(u Wt))``
(on a texel boundary the larger index wins), wrapped/clamped; ``dL/d tex`` scatters ``g`` into
that texel and ``dL/d uv = 0`` (the lookup is piecewise constant).

Pixels with ``mask[p] < 0`` (background face id) output 0 and receive / send no gradient.

Buffers are flat: ``uv (N, 2)``, ``out / g_out (N, C)``, ``mask (N,)`` (or ``(1,)`` unused),
``tex (Bt * Ht * Wt, C)``; ``HW = H * W`` gives a pixel's image ``p // HW``; ``shared`` = texture
batch of 1 used by every image.
"""
import functools

import taichi as ti

from . import kernel


@functools.lru_cache(maxsize=None)
def build(real):
    arr = ti.types.ndarray(dtype=real)
    iarr = ti.types.ndarray(dtype=ti.i32)

    @ti.func
    def _coord(t, n, repeat: ti.template()):
        """Texel-centre coordinate along one axis of n texels from a [0, 1] coordinate t."""
        s = t
        if ti.static(repeat):
            s = t - ti.floor(t)
        x = s * real(n) - real(0.5)
        if ti.static(not repeat):
            # Constant beyond [-1, n] anyway (both taps clamp to one texel); this bounds the int cast.
            x = ti.min(ti.max(x, real(-1.0)), real(n))
        return x

    @ti.func
    def _index(i, n, repeat: ti.template()):
        j = i
        if ti.static(repeat):
            j = i % n
            if j < 0:
                j += n
        else:
            j = ti.min(ti.max(i, 0), n - 1)
        return j

    @ti.func
    def _taps(uv: arr, p, Ht, Wt, repeat: ti.template()):
        x = _coord(uv[p, 0], Wt, repeat)
        y = _coord(real(1.0) - uv[p, 1], Ht, repeat)
        xf = ti.floor(x)
        yf = ti.floor(y)
        fx = x - xf
        fy = y - yf
        xi = ti.cast(xf, ti.i32)
        yi = ti.cast(yf, ti.i32)
        x0 = _index(xi, Wt, repeat)
        x1 = _index(xi + 1, Wt, repeat)
        y0 = _index(yi, Ht, repeat)
        y1 = _index(yi + 1, Ht, repeat)
        return x0, x1, y0, y1, fx, fy

    @ti.func
    def _bilinear(uv: arr, p, base, Ht, Wt, repeat: ti.template()):
        """Flat indices of the four taps (texture rows start at ``base``), their weights, and (fx, fy)."""
        x0, x1, y0, y1, fx, fy = _taps(uv, p, Ht, Wt, repeat)
        i00, i01 = base + y0 * Wt + x0, base + y0 * Wt + x1
        i10, i11 = base + y1 * Wt + x0, base + y1 * Wt + x1
        w00 = (real(1.0) - fx) * (real(1.0) - fy)
        w01 = fx * (real(1.0) - fy)
        w10 = (real(1.0) - fx) * fy
        w11 = fx * fy
        return i00, i01, i10, i11, w00, w01, w10, w11, fx, fy

    @ti.func
    def _nearest(uv: arr, p, Ht, Wt, repeat: ti.template()):
        x = _coord(uv[p, 0], Wt, repeat)
        y = _coord(real(1.0) - uv[p, 1], Ht, repeat)
        xi = ti.cast(ti.floor(x + real(0.5)), ti.i32)
        yi = ti.cast(ti.floor(y + real(0.5)), ti.i32)
        return _index(xi, Wt, repeat), _index(yi, Ht, repeat)

    @kernel
    def forward(tex: arr, uv: arr, mask: iarr, out: arr, HW: ti.i32, Ht: ti.i32, Wt: ti.i32, shared: ti.i32,
                bilinear: ti.template(), repeat: ti.template(), has_mask: ti.template()):
        C = out.shape[1]
        for p in range(out.shape[0]):
            active = True
            if ti.static(has_mask):
                active = mask[p] >= 0
            if active:
                base = 0
                if not shared:
                    base = (p // HW) * Ht * Wt
                if ti.static(bilinear):
                    i00, i01, i10, i11, w00, w01, w10, w11, fx, fy = _bilinear(uv, p, base, Ht, Wt, repeat)
                    for c in range(C):
                        out[p, c] = w00 * tex[i00, c] + w01 * tex[i01, c] + w10 * tex[i10, c] + w11 * tex[i11, c]
                else:
                    xn, yn = _nearest(uv, p, Ht, Wt, repeat)
                    i = base + yn * Wt + xn
                    for c in range(C):
                        out[p, c] = tex[i, c]
            else:
                for c in range(C):
                    out[p, c] = real(0.0)

    @kernel
    def backward(tex: arr, uv: arr, mask: iarr, g_out: arr, g_tex: arr, g_uv: arr, HW: ti.i32, Ht: ti.i32,
                 Wt: ti.i32, shared: ti.i32, bilinear: ti.template(), repeat: ti.template(),
                 has_mask: ti.template(), need_tex: ti.template(), need_uv: ti.template()):
        """g_tex (like tex, zero-initialised) += scatter; g_uv (N, 2) written for every pixel."""
        C = g_out.shape[1]
        for p in range(g_out.shape[0]):
            active = True
            if ti.static(has_mask):
                active = mask[p] >= 0
            gu = real(0.0)
            gv = real(0.0)
            if active:
                base = 0
                if not shared:
                    base = (p // HW) * Ht * Wt
                if ti.static(bilinear):
                    i00, i01, i10, i11, w00, w01, w10, w11, fx, fy = _bilinear(uv, p, base, Ht, Wt, repeat)
                    dx = real(0.0)
                    dy = real(0.0)
                    for c in range(C):
                        g = g_out[p, c]
                        if ti.static(need_tex):
                            ti.atomic_add(g_tex[i00, c], w00 * g)
                            ti.atomic_add(g_tex[i01, c], w01 * g)
                            ti.atomic_add(g_tex[i10, c], w10 * g)
                            ti.atomic_add(g_tex[i11, c], w11 * g)
                        if ti.static(need_uv):
                            t00, t01, t10, t11 = tex[i00, c], tex[i01, c], tex[i10, c], tex[i11, c]
                            dx += g * ((real(1.0) - fy) * (t01 - t00) + fy * (t11 - t10))
                            dy += g * ((real(1.0) - fx) * (t10 - t00) + fx * (t11 - t01))
                    gu = real(Wt) * dx
                    gv = -real(Ht) * dy
                else:
                    if ti.static(need_tex):
                        xn, yn = _nearest(uv, p, Ht, Wt, repeat)
                        i = base + yn * Wt + xn
                        for c in range(C):
                            ti.atomic_add(g_tex[i, c], g_out[p, c])
            if ti.static(need_uv):
                g_uv[p, 0] = gu
                g_uv[p, 1] = gv

    return forward, backward
