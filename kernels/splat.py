"""Rasterize-then-splat (Cole et al. 2021, "Differentiable Surface Rendering via Non-Differentiable
Sampling"; TensorFlow Graphics ``rendering/splat.py``), forward and hand-written backward. DESIGN §4.

Inputs, flattened (pixel order ``(B, K, H, W)``, fragment ``q = (b * K + l) * H * W + y * W + x``):
``rgba (B*K*H*W, C)`` per-fragment straight colour + alpha (last channel), ``xy (B*K*H*W, 2)`` the
fragments' screen positions (pixels), ``face_id (B*K*H*W,)`` (valid iff >= 0; valid layers first)
and ``depth (B*K*H*W,)`` (used only to sort splats into layers; not differentiated).

Splat (paper §3.2). Fragment (s, l) -- source pixel s, layer l -- has the weight, at a target pixel
t of its 3x3 neighbourhood (pixel centre c_t),

    w_{t,s,l} = coef * alpha_{s,l} * exp(-|c_t - xy_{s,l}|^2 / (2 sigma^2)),
    coef = (1 + EPS) / sum_{u,v in {-1,0,1}} exp(-(u^2 + v^2) / (2 sigma^2)),

so a fully covered neighbourhood of fragments at their pixel centres sums to 1 + EPS (TF Graphics'
``gaussian_coef``: normalisation triggers inside surfaces but not at boundaries with background).

Layers (TF Graphics ``splat_at_pixel_centers``). For the pair (t, s) the *surface index* sig says
which source layer is the target's surface (its layer 0): with z the layers' depths,
``c = argmin_{l valid at s} |z_s[l] - z_t[0]|``, ``d = argmin_{l valid at t} |z_t[l] - z_s[0]|``,
``sig = -d if |z_t[d] - z_s[0]| < |z_s[c] - z_t[0]| else c`` (first index on ties). Source layer
l goes to output layer ``j = 0`` (in front) if ``sig > l``, ``1`` (at the surface) if ``sig == l``,
``2`` (behind) if ``sig < l``. A target with no valid layer (background) takes the source's top
layer as its surface (``sig = 0``): the nearest splats composite over the deeper ones. TF Graphics
gives empty layers the far-plane depth instead; for K <= 2 the two groupings are the same (TF
shifts them by one layer, which "over" does not see), unless an empty layer's far depth is nearer
to a surface than any valid layer. sig is piecewise constant: no gradient.

Per target and output layer (v = (colour, 1): the colour channels and a 1 in the alpha channel):

    A_j = sum_{(s,l) -> j} w_{t,s,l} v_{s,l},  W_j = A_j[alpha] (the weight sum),
    N_j = A_j / m_j,  m_j = max(1, W_j)                      (normalise only when over-covered)
    out = N_0 + (1 - a_0) (N_1 + (1 - a_1) N_2),  a_j = N_j[alpha]   ("over", front to back)

The output is premultiplied: colour channels = alpha * colour; for alpha in {0, 1} this is TF
Graphics' result exactly (TF also weights the alpha channel by alpha: a_j = sum w alpha / m_j).

Backward, given g = dL/d out per target (``backward_targets``, one thread per target pixel):

    gN_0 = g,  gN_1 = (1 - a_0) g,  gN_2 = (1 - a_0)(1 - a_1) g
    gN_0[alpha] -= g . (N_1 + (1 - a_1) N_2),  gN_1[alpha] -= (1 - a_0) g . N_2
    G_j = gN_j / m_j,  and G_j[alpha] -= (gN_j . N_j) / m_j  if W_j > 1      (dm_j/dW_j = [W_j > 1])

so dL/dA_j = G_j (W_j is A_j's alpha entry). Then per fragment (``backward_sources``, one thread
per source pixel gathering its <= 9 targets, so no atomics and a deterministic result), with
``gamma = G_j . v_{s,l}`` = dL/dw_{t,s,l}:

    dL/dcolour_{s,l}[c] = sum_t w G_j[c]
    dL/dalpha_{s,l}     = sum_t coef exp(...) gamma                (w is linear in alpha)
    dL/dxy_{s,l}        = sum_t w gamma (c_t - xy_{s,l}) / sigma^2

Invalid fragments (face_id < 0) contribute nothing and get zero gradients. Targets outside the
image receive nothing (TF pads and crops alike).
"""
import functools

import taichi as ti

from . import kernel

# Accumulated weight of a full 3x3 neighbourhood is 1 + EPS (TF Graphics' extra_accumulation_epsilon).
EPS = 0.05
# Static unrolling limits (layers x channels registers per thread).
MAX_LAYERS = 8
MAX_CHANNELS = 16


@functools.lru_cache(maxsize=None)
def build(real):
    """Kernels for float type ``real``; returns a dict. ``K`` (layers) and ``C`` (channels) are
    compile-time (one compiled variant per value)."""
    arr = ti.types.ndarray(dtype=real)
    iarr = ti.types.ndarray(dtype=ti.i32)

    @ti.func
    def _stack(face_id: iarr, depth: arr, base, HW, K: ti.template()):
        """Depths of a pixel's layers and its number of valid layers (valid ones come first)."""
        z = ti.Vector([real(0.0)] * K, real)
        n = 0
        for l in ti.static(range(K)):
            if face_id[base + l * HW] >= 0 and n == l:
                n = l + 1
                z[l] = depth[base + l * HW]
        return z, n

    @ti.func
    def _surface(zt, nt, zs, ns, K: ti.template()):
        """Surface index sig of source stack (zs, ns > 0) at target stack (zt, nt): module docstring."""
        sig = 0
        if nt > 0:
            c = 0
            dc = ti.abs(zs[0] - zt[0])
            for l in ti.static(range(1, K)):
                if l < ns:
                    dl = ti.abs(zs[l] - zt[0])
                    if dl < dc:
                        dc = dl
                        c = l
            d = 0
            dd = dc  # |z_t[0] - z_s[0]|
            for l in ti.static(range(1, K)):
                if l < nt:
                    dl = ti.abs(zt[l] - zs[0])
                    if dl < dd:
                        dd = dl
                        d = l
            sig = c
            if dd < dc:
                sig = -d
        return sig

    @ti.func
    def _out_layer(sig, l):
        j = 2
        if sig > l:
            j = 0
        elif sig == l:
            j = 1
        return j

    @kernel
    def forward(rgba: arr, xy: arr, face_id: iarr, depth: arr, out: arr, layers: arr, wsum: arr, H: ti.i32,
                W: ti.i32, coef: real, inv_2s2: real, K: ti.template(), C: ti.template()):
        """One thread per target pixel gathers the K fragments of its 3x3 neighbours.

        ``out (B*H*W, C)``; saved for the backward: ``layers (B*H*W*3, C)`` = N_j and
        ``wsum (B*H*W*3,)`` = W_j.
        """
        HW = H * W
        for p in range(out.shape[0]):
            b = p // HW
            r = p - b * HW
            y = r // W
            x = r - y * W
            tb = b * K * HW + r
            zt, nt = _stack(face_id, depth, tb, HW, K)
            tcx = real(x) + real(0.5)
            tcy = real(y) + real(0.5)
            acc = ti.Matrix([[real(0.0)] * C for _ in ti.static(range(3))], real)
            for oy in ti.static(range(-1, 2)):
                for ox in ti.static(range(-1, 2)):
                    # source s = t - (ox, oy)
                    if 0 <= y - oy < H and 0 <= x - ox < W:
                        sb = tb - oy * W - ox
                        zs, ns = _stack(face_id, depth, sb, HW, K)
                        if ns > 0:
                            sig = _surface(zt, nt, zs, ns, K)
                            for l in ti.static(range(K)):
                                if l < ns:
                                    q = sb + l * HW
                                    dx = tcx - xy[q, 0]
                                    dy = tcy - xy[q, 1]
                                    w = coef * rgba[q, C - 1] * ti.exp(-(dx * dx + dy * dy) * inv_2s2)
                                    j = _out_layer(sig, l)
                                    for jj in ti.static(range(3)):
                                        if j == jj:
                                            for c in ti.static(range(C - 1)):
                                                acc[jj, c] += w * rgba[q, c]
                                            acc[jj, C - 1] += w
            res = ti.Vector([real(0.0)] * C, real)
            trans = real(1.0)  # prod_{i < j} (1 - a_i)
            for jj in ti.static(range(3)):
                wj = acc[jj, C - 1]
                inv_m = real(1.0) / ti.max(real(1.0), wj)
                wsum[p * 3 + jj] = wj
                for c in ti.static(range(C)):
                    n = acc[jj, c] * inv_m
                    layers[p * 3 + jj, c] = n
                    res[c] += trans * n
                trans *= real(1.0) - acc[jj, C - 1] * inv_m
            for c in ti.static(range(C)):
                out[p, c] = res[c]

    @kernel
    def backward_targets(g_out: arr, layers: arr, wsum: arr, G: arr, C: ti.template()):
        """Per target pixel: G (B*H*W*3, C) = dL/dA_j from g_out (module docstring)."""
        for p in range(g_out.shape[0]):
            g = ti.Vector([g_out[p, c] for c in ti.static(range(C))], real)
            N0 = ti.Vector([layers[p * 3, c] for c in ti.static(range(C))], real)
            N1 = ti.Vector([layers[p * 3 + 1, c] for c in ti.static(range(C))], real)
            N2 = ti.Vector([layers[p * 3 + 2, c] for c in ti.static(range(C))], real)
            a0 = N0[C - 1]
            a1 = N1[C - 1]
            gN0 = g
            gN1 = (real(1.0) - a0) * g
            gN2 = (real(1.0) - a0) * (real(1.0) - a1) * g
            gN0[C - 1] -= g.dot(N1 + (real(1.0) - a1) * N2)
            gN1[C - 1] -= (real(1.0) - a0) * g.dot(N2)
            for jj in ti.static(range(3)):
                gN = gN0
                Nj = N0
                if ti.static(jj == 1):
                    gN = gN1
                    Nj = N1
                if ti.static(jj == 2):
                    gN = gN2
                    Nj = N2
                wj = wsum[p * 3 + jj]
                inv_m = real(1.0) / ti.max(real(1.0), wj)
                for c in ti.static(range(C)):
                    val = gN[c] * inv_m
                    if ti.static(c == C - 1):
                        if wj > real(1.0):
                            val -= gN.dot(Nj) * inv_m
                    # one plain store (a global `-=` is an atomic subtract, which Taichi's SPIR-V
                    # code generator does not support on floats)
                    G[p * 3 + jj, c] = val

    @kernel
    def backward_sources(rgba: arr, xy: arr, face_id: iarr, depth: arr, G: arr, g_rgba: arr, g_xy: arr,
                         N: ti.i32, H: ti.i32, W: ti.i32, coef: real, inv_2s2: real, K: ti.template(),
                         C: ti.template()):
        """One thread per source pixel gathers dL/dw from its <= 9 targets; writes every fragment's
        g_rgba (B*K*H*W, C) and g_xy (B*K*H*W, 2) (zeros for invalid fragments)."""
        HW = H * W
        # N = B*H*W source pixels is an argument: a range end computed from an array's shape
        # (face_id.shape[0] // K) is "Not supported" by Taichi's SPIR-V code generator
        for p in range(N):
            b = p // HW
            r = p - b * HW
            y = r // W
            x = r - y * W
            sb = b * K * HW + r
            zs, ns = _stack(face_id, depth, sb, HW, K)
            gc = ti.Matrix([[real(0.0)] * C for _ in ti.static(range(K))], real)
            gp = ti.Matrix([[real(0.0)] * 2 for _ in ti.static(range(K))], real)
            if ns > 0:
                for oy in ti.static(range(-1, 2)):
                    for ox in ti.static(range(-1, 2)):
                        # target t = s + (ox, oy)
                        if 0 <= y + oy < H and 0 <= x + ox < W:
                            tb = sb + oy * W + ox
                            pt = p + oy * W + ox  # target's output pixel
                            zt, nt = _stack(face_id, depth, tb, HW, K)
                            sig = _surface(zt, nt, zs, ns, K)
                            tcx = real(x + ox) + real(0.5)
                            tcy = real(y + oy) + real(0.5)
                            for l in ti.static(range(K)):
                                if l < ns:
                                    q = sb + l * HW
                                    gi = pt * 3 + _out_layer(sig, l)
                                    dx = tcx - xy[q, 0]
                                    dy = tcy - xy[q, 1]
                                    e = coef * ti.exp(-(dx * dx + dy * dy) * inv_2s2)
                                    w = e * rgba[q, C - 1]
                                    gamma = G[gi, C - 1]
                                    for c in ti.static(range(C - 1)):
                                        gc_ = G[gi, c]
                                        gamma += gc_ * rgba[q, c]
                                        gc[l, c] += w * gc_
                                    gc[l, C - 1] += e * gamma
                                    s = w * gamma * real(2.0) * inv_2s2  # dw/dxy = w (c_t - xy) / sigma^2
                                    gp[l, 0] += s * dx
                                    gp[l, 1] += s * dy
            for l in ti.static(range(K)):
                q = sb + l * HW
                for c in ti.static(range(C)):
                    g_rgba[q, c] = gc[l, c]
                g_xy[q, 0] = gp[l, 0]
                g_xy[q, 1] = gp[l, 1]

    return {"forward": forward, "backward_targets": backward_targets, "backward_sources": backward_sources}
