"""Per-point shading: Lambert / Phong / Blinn-Phong + ambient + SH irradiance (+ hand-written backward).

DESIGN §3 (``shade``), §5 (hand-written backward kernels; Taichi autodiff is not used).

One thread per shading point ``p`` (flattened, ``N`` points). Notation (all 3-vectors):

    n = normalize(normals[p])            (a zero-length normal gives n = 0: no diffuse/specular term)
    v = normalize(cam - positions[p])    (direction to the camera)
    directional light j:  l = -normalize(dirs[j])    (``dirs`` is the direction the light travels)
                          c = colors[j]
    point light j:        w = ppos[j] - positions[p],  d2 = w.w,  l = w / sqrt(d2)
                          c = pcol[j] * att,  att = 1 / (1 + k d2)
    per light, where n.l > 0 (TF Graphics' reflectance conventions):
        diffuse  = albedo * c * (n.l)
        specular = specular * c * s,  s = max(n.h, 0)^shininess,  h = normalize(l + v)   (Blinn-Phong)
                                      s = max(r.v, 0)^shininess,  r = 2 (n.l) n - l       (Phong: reflect(-l, n))
                                      s = 0                                               (Lambert)
    out = albedo * ka * ambient + sum over lights (diffuse + specular) [+ albedo * E(n) / pi]
    (ka: the material's ambient reflectance, 1 by default)
    (products of colours are per channel). E(n) is the SH irradiance (Ramamoorthi & Hanrahan 2001):
        E(n) = sum_{l<=2, m} A_l L_lm Y_lm(n),  A_0 = pi, A_1 = 2 pi / 3, A_2 = pi / 4,
    real SH without the Condon-Shortley phase, coefficient order
        (L00, L1-1, L10, L11, L2-2, L2-1, L20, L21, L22),
        Y00 = 0.5 sqrt(1/pi), Y1-1 = K1 y, Y10 = K1 z, Y11 = K1 x  (K1 = sqrt(3 / (4 pi))),
        Y2-2 = K2 xy, Y2-1 = K2 yz, Y21 = K2 xz  (K2 = 0.5 sqrt(15/pi)),
        Y20 = K20 (3 z^2 - 1)  (K20 = 0.25 sqrt(5/pi)),  Y22 = K22 (x^2 - y^2)  (K22 = 0.25 sqrt(15/pi)).
    (A_2 K2 = 2 c1 = 2 * 0.429043, A_0 Y00 = c4 = 0.886227, ... as in the paper.) The colour term is
    albedo * E / pi, so a white (albedo 1) surface in a constant environment of radiance L00 Y00
    has radiance L00 Y00 (energy conserving).

Backward, per point (given g = dL/d out[p]; the kernels below decide the threads): with ``G = sum_channels``,
    normalize backward:  u = a / |a|,  du -> da = (du - (du.u) u) / |a|   (0 when |a| = 0)
    diffuse:   g_albedo += g c (n.l);  g_c += g albedo (n.l);  g_nl = G(g albedo c):  g_n += g_nl l,  g_l += g_nl n
    specular:  g_specular += g c s;  g_c += g specular s;  g_s = G(g specular c)
               Blinn (t = n.h > 0): g_shin += g_s s log t;  g_t = g_s shin t^(shin-1);  g_n += g_t h;
                                    g_(l+v) = normalize_bwd(l + v, g_t n);  g_l, g_v += g_(l+v)
               Phong (t = r.v > 0): g_shin += g_s s log t;  g_t = g_s shin t^(shin-1);  g_v += g_t r;
                                    g_r = g_t v;  g_n += 2 (n.l) g_r + 2 (g_r.n) l;  g_l += 2 (g_r.n) n - g_r
    directional: g_dirs[j] = -normalize_bwd(dirs[j], g_l);  g_colors[j] = g_c
    point:       g_pcol[j] = g_c att;  g_d2 = -k att^2 G(g_c pcol[j]);  g_w = normalize_bwd(w, g_l) + 2 g_d2 w
                 g_ppos[j] = g_w;  g_positions -= g_w
    view:        g_cam = normalize_bwd(cam - x, g_v);  g_positions -= g_cam
    ambient:     g_ambient = g albedo ka;  g_albedo += g ka ambient;  g_ka = g albedo ambient
    SH:          g_sh[k] = g albedo B_k(n) / pi  (B_k = A_l Y_lm);  g_albedo += g E / pi;
                 g_n += sum_k G(g albedo sh[k]) / pi grad B_k(n)
    normals:     g_normals = normalize_bwd(normals[p], g_n)
Light, ambient, SH (and, in ``shade_fragments``, camera, background and per-mesh material)
gradients are summed in registers over a "row" of points (``CHUNK`` flat points, or one image
row) by one thread and written once per row into ``(rows, ...)`` partial buffers that the caller
sums with array ops: deterministic, no atomics, and buffers ~100x smaller than one entry per
point. The numbers of lights ``L`` and ``P`` are compile-time constants (the light loops unroll). The gradient of ``max(., 0)``
and of the ``n.l > 0`` switch is taken as 0 at the kink.

Two kernel pairs share the per-point math (``_point_fwd`` / ``_point_bwd``):

* ``forward`` / ``backward``: flat points (``shade``), normals/positions/albedo/material per point.
* ``frag_forward`` / ``frag_backward`` (``shade_fragments``, deferred shading of a rasterized
  image): per pixel with ``face_id >= 0`` the world position ``x = sum_k w_k pos[pf[f, k]]`` and
  the unnormalised normal ``nr = sum_k w_k nrm[nf[f, k]]`` are interpolated with the
  barycentrics ``w`` inside the kernel, shaded, and background pixels get ``bg``. Backward:
  ``g_w_k = g_x . pos_k + g_nr . nrm_k`` (written per pixel), ``g_pos[pf_k] += w_k g_x`` and
  ``g_nrm[nf_k] += w_k g_nr`` (summed over each run of consecutive pixels on one face, then one
  atomic add per run and corner), albedo / per-pixel material per pixel, everything per-mesh into
  the segment partials (one thread per segment of an image row: 64 pixels on CPUs, 16 on GPUs).
"""
import functools
import math

import taichi as ti

from . import kernel

LAMBERT, PHONG, BLINN_PHONG = 0, 1, 2
MODELS = {"lambert": LAMBERT, "phong": PHONG, "blinn_phong": BLINN_PHONG}

_Y00 = 0.5 * math.sqrt(1.0 / math.pi)
_K1 = math.sqrt(3.0 / (4.0 * math.pi))
_K2 = 0.5 * math.sqrt(15.0 / math.pi)
_K20 = 0.25 * math.sqrt(5.0 / math.pi)
_K22 = 0.25 * math.sqrt(15.0 / math.pi)
_A0, _A1, _A2 = math.pi, 2.0 * math.pi / 3.0, math.pi / 4.0
# B_k(n) = A_l Y_lm(n), divided by pi (the colour term is albedo * E / pi).
SH_C0 = _A0 * _Y00 / math.pi
SH_C1 = _A1 * _K1 / math.pi
SH_C2 = _A2 * _K2 / math.pi
SH_C20 = _A2 * _K20 / math.pi
SH_C22 = _A2 * _K22 / math.pi


CHUNK = 64  # flat points summed serially per row of light-gradient partials


@functools.lru_cache(maxsize=None)
def build(real):
    arr = ti.types.ndarray(dtype=real)
    iarr = ti.types.ndarray(dtype=ti.i32)
    vec3 = ti.types.vector(3, real)

    @ti.func
    def _load(a: ti.template(), i):
        return vec3(a[i, 0], a[i, 1], a[i, 2])

    @ti.func
    def _inv_norm(a):
        q = a.dot(a)
        r = real(0.0)
        if q > 0:
            r = real(1.0) / ti.sqrt(q)
        return r

    @ti.func
    def _norm_bwd(u, inv, gu):
        """u = a * inv (inv = 1/|a|); returns dL/da given dL/du = gu."""
        return (gu - gu.dot(u) * u) * inv

    @ti.func
    def _sh_basis(n):
        """B_k(n) / pi for the 9 coefficients (order L00, L1-1, L10, L11, L2-2, L2-1, L20, L21, L22)."""
        x, y, z = n[0], n[1], n[2]
        return ti.Vector([real(SH_C0), real(SH_C1) * y, real(SH_C1) * z, real(SH_C1) * x,
                          real(SH_C2) * x * y, real(SH_C2) * y * z,
                          real(SH_C20) * (real(3.0) * z * z - real(1.0)), real(SH_C2) * x * z,
                          real(SH_C22) * (x * x - y * y)], real)

    @ti.func
    def _sh_grad(n, w):
        """d/dn of sum_k w[k] B_k(n) / pi (w: 9 weights)."""
        x, y, z = n[0], n[1], n[2]
        gx = real(SH_C1) * w[3] + real(SH_C2) * (w[4] * y + w[7] * z) + real(SH_C22) * real(2.0) * x * w[8]
        gy = real(SH_C1) * w[1] + real(SH_C2) * (w[4] * x + w[5] * z) - real(SH_C22) * real(2.0) * y * w[8]
        gz = real(SH_C1) * w[2] + real(SH_C2) * (w[5] * y + w[7] * x) + real(SH_C20) * real(6.0) * z * w[6]
        return vec3(gx, gy, gz)

    @ti.func
    def _spec_s(n, v, l, ndl, shin, model: ti.template()):
        """(s, t, h_or_r, inv_hraw): s = t^shin for t > 0 (else 0)."""
        t = real(0.0)
        hr = vec3(0.0, 0.0, 0.0)
        inv_h = real(0.0)
        if ti.static(model == BLINN_PHONG):
            hraw = l + v
            inv_h = _inv_norm(hraw)
            hr = hraw * inv_h
            t = n.dot(hr)
        elif ti.static(model == PHONG):
            hr = real(2.0) * ndl * n - l
            t = hr.dot(v)
        s = real(0.0)
        if t > 0:
            s = ti.pow(t, shin)
        return s, t, hr, inv_h

    @ti.func
    def _point_fwd(nr, x, cam, alb, ka, spc, shin, ambient: ti.template(), ldir: ti.template(),
                   lcol: ti.template(), ppos: ti.template(), pcol: ti.template(), sh: ti.template(),
                   L: ti.template(), P: ti.template(), k, model: ti.template(), use_sh: ti.template()):
        n = nr * _inv_norm(nr)
        vr = cam - x
        v = vr * _inv_norm(vr)
        acc = alb * ka * vec3(ambient[0], ambient[1], ambient[2])
        for j in ti.static(range(L + P)):
            l = vec3(0.0, 0.0, 0.0)
            c = vec3(0.0, 0.0, 0.0)
            if ti.static(j < L):
                d = _load(ldir, j)
                l = -d * _inv_norm(d)
                c = _load(lcol, j)
            else:
                w = _load(ppos, j - L) - x
                l = w * _inv_norm(w)
                c = _load(pcol, j - L) / (real(1.0) + k * w.dot(w))
            ndl = n.dot(l)
            if ndl > 0:
                acc += alb * c * ndl
                if ti.static(model != LAMBERT):
                    s, t, hr, inv_h = _spec_s(n, v, l, ndl, shin, model)
                    acc += spc * c * s
        if ti.static(use_sh):
            bk = _sh_basis(n)
            e = vec3(0.0, 0.0, 0.0)
            for q in ti.static(range(9)):
                e += bk[q] * _load(sh, q)
            acc += alb * e
        return acc

    @ti.func
    def _point_bwd(g, nr, x, cam, alb, ka, spc, shin, ambient: ti.template(), ldir: ti.template(),
                   lcol: ti.template(), ppos: ti.template(), pcol: ti.template(), sh: ti.template(),
                   L: ti.template(), P: ti.template(), k, model: ti.template(), use_sh: ti.template()):
        """Gradients of one point: (g_nr, g_x, g_cam, g_alb, g_ka, g_spc, g_shin) and the light
        gradients G_amb (3,), G_ld / G_lc (max(L,1), 3), G_pp / G_pc (max(P,1), 3), G_sh (9, 3), which
        the caller accumulates in registers over its row (L and P are compile-time constants)."""
        inv_n = _inv_norm(nr)
        n = nr * inv_n
        vr = cam - x
        inv_v = _inv_norm(vr)
        v = vr * inv_v
        amb = vec3(ambient[0], ambient[1], ambient[2])
        g_n = vec3(0.0, 0.0, 0.0)
        g_v = vec3(0.0, 0.0, 0.0)
        g_x = vec3(0.0, 0.0, 0.0)
        g_alb = g * ka * amb
        g_ka = g * alb * amb
        G_amb = g * alb * ka
        G_ld = ti.Matrix.zero(real, ti.static(max(L, 1)), 3)
        G_lc = ti.Matrix.zero(real, ti.static(max(L, 1)), 3)
        G_pp = ti.Matrix.zero(real, ti.static(max(P, 1)), 3)
        G_pc = ti.Matrix.zero(real, ti.static(max(P, 1)), 3)
        G_sh = ti.Matrix.zero(real, 9, 3)
        g_spc = vec3(0.0, 0.0, 0.0)
        g_shin = real(0.0)
        for j in ti.static(range(L + P)):
            l = vec3(0.0, 0.0, 0.0)
            c = vec3(0.0, 0.0, 0.0)
            c0 = vec3(0.0, 0.0, 0.0)
            w = vec3(0.0, 0.0, 0.0)
            inv_l = real(0.0)
            att = real(1.0)
            if ti.static(j < L):
                d = _load(ldir, j)
                inv_l = _inv_norm(d)
                l = -d * inv_l
                c = _load(lcol, j)
            else:
                w = _load(ppos, j - L) - x
                inv_l = _inv_norm(w)
                l = w * inv_l
                c0 = _load(pcol, j - L)
                att = real(1.0) / (real(1.0) + k * w.dot(w))
                c = c0 * att
            ndl = n.dot(l)
            if ndl > 0:
                g_l = vec3(0.0, 0.0, 0.0)
                g_c = vec3(0.0, 0.0, 0.0)
                g_alb += g * c * ndl
                g_c += g * alb * ndl
                g_nl = (g * alb * c).sum()
                g_n += g_nl * l
                g_l += g_nl * n
                if ti.static(model != LAMBERT):
                    s, t, hr, inv_h = _spec_s(n, v, l, ndl, shin, model)
                    if t > 0:
                        g_spc += g * c * s
                        g_c += g * spc * s
                        g_s = (g * spc * c).sum()
                        g_shin += g_s * s * ti.log(t)
                        g_t = g_s * shin * s / t  # d(t^shin)/dt = shin t^(shin-1) = shin s / t (t > 0)
                        if ti.static(model == BLINN_PHONG):
                            g_n += g_t * hr
                            g_hraw = _norm_bwd(hr, inv_h, g_t * n)
                            g_l += g_hraw
                            g_v += g_hraw
                        else:
                            g_v += g_t * hr
                            g_r = g_t * v
                            grn = g_r.dot(n)
                            g_n += real(2.0) * ndl * g_r + real(2.0) * grn * l
                            g_l += real(2.0) * grn * n - g_r
                if ti.static(j < L):
                    # l = -u with u = normalize(d): g_u = -g_l, g_d = normalize_bwd(u, -g_l)
                    g_d = _norm_bwd(-l, inv_l, -g_l)
                    for i in ti.static(range(3)):
                        G_ld[j, i] = g_d[i]
                        G_lc[j, i] = g_c[i]
                else:
                    g_d2 = -k * att * att * (g_c * c0).sum()
                    g_w = _norm_bwd(l, inv_l, g_l) + real(2.0) * g_d2 * w
                    g_x -= g_w
                    for i in ti.static(range(3)):
                        G_pp[j - L, i] = g_w[i]
                        G_pc[j - L, i] = g_c[i] * att
        if ti.static(use_sh):
            bk = _sh_basis(n)
            e = vec3(0.0, 0.0, 0.0)
            ga = g * alb
            wk = ti.Vector([real(0.0)] * 9, real)
            for q in ti.static(range(9)):
                shq = _load(sh, q)
                e += bk[q] * shq
                wk[q] = (ga * shq).sum()
                for i in ti.static(range(3)):
                    G_sh[q, i] = ga[i] * bk[q]
            g_alb += g * e
            g_n += _sh_grad(n, wk)
        g_cam = _norm_bwd(v, inv_v, g_v)
        g_x -= g_cam
        g_nr = _norm_bwd(n, inv_n, g_n)
        return g_nr, g_x, g_cam, g_alb, g_ka, g_spc, g_shin, G_amb, G_ld, G_lc, G_pp, G_pc, G_sh

    @ti.func
    def _lights_acc(L: ti.template(), P: ti.template()):
        """Zeroed register accumulators for one row: amb (3,), ld, lc (max(L,1), 3), pp, pc (max(P,1), 3), sh (9, 3)."""
        return (vec3(0.0, 0.0, 0.0), ti.Matrix.zero(real, ti.static(max(L, 1)), 3),
                ti.Matrix.zero(real, ti.static(max(L, 1)), 3), ti.Matrix.zero(real, ti.static(max(P, 1)), 3),
                ti.Matrix.zero(real, ti.static(max(P, 1)), 3), ti.Matrix.zero(real, 9, 3))

    @ti.func
    def _lights_store(r, A_amb, A_ld, A_lc, A_pp, A_pc, A_sh, g_amb: ti.template(), g_ldir: ti.template(),
                      g_lcol: ti.template(), g_ppos: ti.template(), g_pcol: ti.template(), g_sh: ti.template(),
                      L: ti.template(), P: ti.template(), use_sh: ti.template()):
        """Write one row's accumulated light gradients (row r is owned by the calling thread)."""
        for i in ti.static(range(3)):
            g_amb[r, i] = A_amb[i]
            for j in ti.static(range(L)):
                g_ldir[r, j, i] = A_ld[j, i]
                g_lcol[r, j, i] = A_lc[j, i]
            for j in ti.static(range(P)):
                g_ppos[r, j, i] = A_pp[j, i]
                g_pcol[r, j, i] = A_pc[j, i]
            if ti.static(use_sh):
                for q in ti.static(range(9)):
                    g_sh[r, q, i] = A_sh[q, i]

    # ------------------------------------------------------------------ flat points
    @kernel
    def forward(normals: arr, positions: arr, albedo: arr, ka: arr, specular: arr, shininess: arr, cam: arr,
                ambient: arr, ldir: arr, lcol: arr, ppos: arr, pcol: arr, sh: arr, out: arr,
                L: ti.template(), P: ti.template(), k: real, model: ti.template(), use_sh: ti.template()):
        for p in range(out.shape[0]):
            acc = _point_fwd(_load(normals, p), _load(positions, p), vec3(cam[0], cam[1], cam[2]),
                             _load(albedo, p), _load(ka, p), _load(specular, p), shininess[p], ambient,
                             ldir, lcol, ppos, pcol, sh, L, P, k, model, use_sh)
            for i in ti.static(range(3)):
                out[p, i] = acc[i]

    @kernel
    def backward(normals: arr, positions: arr, albedo: arr, ka: arr, specular: arr, shininess: arr, cam: arr,
                 ambient: arr, ldir: arr, lcol: arr, ppos: arr, pcol: arr, sh: arr, g_out: arr,
                 g_normals: arr, g_positions: arr, g_albedo: arr, g_ka: arr, g_specular: arr, g_shininess: arr,
                 g_cam: arr, g_amb: arr, g_ldir: arr, g_lcol: arr, g_ppos: arr, g_pcol: arr, g_sh: arr,
                 L: ti.template(), P: ti.template(), k: real, model: ti.template(), use_sh: ti.template()):
        """Per point (fully written): g_normals/g_positions/g_albedo/g_ka/g_specular (N, 3),
        g_shininess (N,). Per row of CHUNK points (fully written, summed in registers): g_cam/g_amb
        (R, 3), g_ldir/g_lcol (R, max(L,1), 3), g_ppos/g_pcol (R, max(P,1), 3), g_sh (R, 9, 3)."""
        N = g_out.shape[0]
        for r in range(g_cam.shape[0]):
            A_amb, A_ld, A_lc, A_pp, A_pc, A_sh = _lights_acc(L, P)
            A_cam = vec3(0.0, 0.0, 0.0)
            for q in range(CHUNK):
                p = r * CHUNK + q
                if p < N:
                    g_nr, g_x, g_c, g_alb, g_k, g_spc, g_shin, G_amb, G_ld, G_lc, G_pp, G_pc, G_sh = _point_bwd(
                        _load(g_out, p), _load(normals, p), _load(positions, p), vec3(cam[0], cam[1], cam[2]),
                        _load(albedo, p), _load(ka, p), _load(specular, p), shininess[p], ambient,
                        ldir, lcol, ppos, pcol, sh, L, P, k, model, use_sh)
                    A_amb += G_amb
                    A_ld += G_ld
                    A_lc += G_lc
                    A_pp += G_pp
                    A_pc += G_pc
                    if ti.static(use_sh):
                        A_sh += G_sh
                    A_cam += g_c
                    for i in ti.static(range(3)):
                        g_normals[p, i] = g_nr[i]
                        g_positions[p, i] = g_x[i]
                        g_albedo[p, i] = g_alb[i]
                        g_ka[p, i] = g_k[i]
                        g_specular[p, i] = g_spc[i]
                    g_shininess[p] = g_shin
            _lights_store(r, A_amb, A_ld, A_lc, A_pp, A_pc, A_sh, g_amb, g_ldir, g_lcol, g_ppos, g_pcol, g_sh,
                          L, P, use_sh)
            for i in ti.static(range(3)):
                g_cam[r, i] = A_cam[i]

    # ------------------------------------------------------------------ rasterized fragments
    # Flat layout (multi-dimensional ndarray indexing costs ~3x more per access on the CPU backend):
    # pixels p = (b * H + y) * W + x of N = B*H*W; face_id (N,), bary/albedo/out (N, 3);
    # pos (Bp*V, 3), nrm (Bn*Vn, 3); cam (Bc, 3); a material is (N, C) per pixel or (Bm, C) per mesh.
    @ti.func
    def _frag_geom(face_id: ti.template(), bary: ti.template(), pos: ti.template(), pfaces: ti.template(),
                   nrm: ti.template(), nfaces: ti.template(), p, b, V, Vn):
        f = face_id[p]
        pb = ti.min(b, pos.shape[0] // V - 1) * V
        nb = ti.min(b, nrm.shape[0] // Vn - 1) * Vn
        xw = vec3(0.0, 0.0, 0.0)
        nr = vec3(0.0, 0.0, 0.0)
        for c in ti.static(range(3)):
            w = bary[p, c]
            xw += w * _load(pos, pb + pfaces[f, c])
            nr += w * _load(nrm, nb + nfaces[f, c])
        return xw, nr, pb, nb

    @ti.func
    def _mat(ka: ti.template(), spc: ti.template(), shin: ti.template(), p, b, ka_pix: ti.template(),
             spc_pix: ti.template(), shin_pix: ti.template()):
        i1 = p if ti.static(ka_pix) else ti.min(b, ka.shape[0] - 1)
        i2 = p if ti.static(spc_pix) else ti.min(b, spc.shape[0] - 1)
        i3 = p if ti.static(shin_pix) else ti.min(b, shin.shape[0] - 1)
        return _load(ka, i1), _load(spc, i2), shin[i3, 0]

    @ti.func
    def _flush(g_pos: ti.template(), g_nrm: ti.template(), vi, ni, Fp, Fn):
        for c in ti.static(range(3)):
            for i in ti.static(range(3)):
                ti.atomic_add(g_pos[vi[c], i], Fp[c, i])
                ti.atomic_add(g_nrm[ni[c], i], Fn[c, i])

    @kernel
    def frag_forward(face_id: iarr, bary: arr, pos: arr, pfaces: iarr, nrm: arr, nfaces: iarr, albedo: arr,
                     cam: arr, ambient: arr, ldir: arr, lcol: arr, ppos: arr, pcol: arr, sh: arr,
                     ka: arr, spc: arr, shin: arr, bg: arr, out: arr, HW: ti.i32, V: ti.i32, Vn: ti.i32,
                     L: ti.template(), P: ti.template(), k: real, model: ti.template(), use_sh: ti.template(),
                     ka_pix: ti.template(), spc_pix: ti.template(), shin_pix: ti.template()):
        for p in range(face_id.shape[0]):
            res = vec3(bg[0], bg[1], bg[2])
            if face_id[p] >= 0:
                b = p // HW
                xw, nr, pb, nb = _frag_geom(face_id, bary, pos, pfaces, nrm, nfaces, p, b, V, Vn)
                m_ka, m_spc, m_shin = _mat(ka, spc, shin, p, b, ka_pix, spc_pix, shin_pix)
                res = _point_fwd(nr, xw, _load(cam, ti.min(b, cam.shape[0] - 1)), _load(albedo, p), m_ka, m_spc,
                                 m_shin, ambient, ldir, lcol, ppos, pcol, sh, L, P, k, model, use_sh)
            for i in ti.static(range(3)):
                out[p, i] = res[i]

    @kernel
    def frag_backward(face_id: iarr, bary: arr, pos: arr, pfaces: iarr, nrm: arr, nfaces: iarr, albedo: arr,
                      cam: arr, ambient: arr, ldir: arr, lcol: arr, ppos: arr, pcol: arr, sh: arr,
                      ka: arr, spc: arr, shin: arr, bg: arr, g_out: arr,
                      g_bary: arr, g_pos: arr, g_nrm: arr, g_albedo: arr, g_ka: arr, g_spc: arr, g_shin: arr,
                      g_cam: arr, g_bg: arr, g_amb: arr, g_ldir: arr, g_lcol: arr, g_ppos: arr, g_pcol: arr,
                      g_sh: arr, HW: ti.i32, W: ti.i32, S: ti.i32, nseg: ti.i32, V: ti.i32, Vn: ti.i32,
                      L: ti.template(), P: ti.template(),
                      k: real, model: ti.template(), use_sh: ti.template(), ka_pix: ti.template(),
                      spc_pix: ti.template(), shin_pix: ti.template(), need_geom: ti.template()):
        """One thread per segment of S pixels of an image row (nseg = ceil(W / S) segments per row;
        segment r covers row r // nseg, columns (r % nseg) * S up to S of them, in order): S = 64 on
        CPUs (whole rows ran on one thread: _prims/shade_fragments.py), 16 on GPUs. Written per pixel:
        g_bary (N,3), g_albedo (N,3), and the per-pixel materials (``*_pix``) g_ka/g_spc (N,3),
        g_shin (N,1). Atomics (zero-initialised), once per run of pixels on one face: g_pos, g_nrm.
        Segment partials, summed in registers and written once per segment (R = B*H*nseg):
        g_cam/g_bg/g_amb (R,3), light buffers (R, ., 3),
        g_sh (R,9,3) and the per-mesh materials g_ka/g_spc (R,3), g_shin (R,1). Without need_geom
        (no gradient wanted for bary, positions or normals) g_bary, g_pos and g_nrm are not touched."""
        for r in range(g_cam.shape[0]):
            A_amb, A_ld, A_lc, A_pp, A_pc, A_sh = _lights_acc(L, P)
            A_cam = vec3(0.0, 0.0, 0.0)
            A_bg = vec3(0.0, 0.0, 0.0)
            A_ka = vec3(0.0, 0.0, 0.0)
            A_spc = vec3(0.0, 0.0, 0.0)
            A_shin = real(0.0)
            row = r // nseg
            x0 = (r % nseg) * S
            b = (row * W) // HW
            # Position / normal gradients of the current run of pixels on one face, per corner: flushed
            # to the vertices (atomics) when the face changes, not per pixel.
            cur_f = -1
            cur_vi = ti.Vector([0, 0, 0], ti.i32)
            cur_ni = ti.Vector([0, 0, 0], ti.i32)
            Fp = ti.Matrix.zero(real, 3, 3)
            Fn = ti.Matrix.zero(real, 3, 3)
            for x in range(x0, ti.min(x0 + S, W)):
                p = row * W + x
                g = _load(g_out, p)
                f = face_id[p]
                if f < 0:
                    A_bg += g
                    for i in ti.static(range(3)):
                        g_albedo[p, i] = real(0.0)
                        if ti.static(need_geom):
                            g_bary[p, i] = real(0.0)
                        if ti.static(ka_pix):
                            g_ka[p, i] = real(0.0)
                        if ti.static(spc_pix):
                            g_spc[p, i] = real(0.0)
                    if ti.static(shin_pix):
                        g_shin[p, 0] = real(0.0)
                else:
                    xw, nr, pb, nb = _frag_geom(face_id, bary, pos, pfaces, nrm, nfaces, p, b, V, Vn)
                    m_ka, m_spc, m_shin = _mat(ka, spc, shin, p, b, ka_pix, spc_pix, shin_pix)
                    g_nr, g_x, g_c, g_alb, g_k, g_s, g_sh1, G_amb, G_ld, G_lc, G_pp, G_pc, G_sh = _point_bwd(
                        g, nr, xw, _load(cam, ti.min(b, cam.shape[0] - 1)), _load(albedo, p), m_ka, m_spc, m_shin,
                        ambient, ldir, lcol, ppos, pcol, sh, L, P, k, model, use_sh)
                    A_amb += G_amb
                    A_ld += G_ld
                    A_lc += G_lc
                    A_pp += G_pp
                    A_pc += G_pc
                    if ti.static(use_sh):
                        A_sh += G_sh
                    A_cam += g_c
                    if ti.static(need_geom):
                        if f != cur_f:
                            if cur_f >= 0:
                                _flush(g_pos, g_nrm, cur_vi, cur_ni, Fp, Fn)
                            cur_f = f
                            for c in ti.static(range(3)):
                                cur_vi[c] = pb + pfaces[f, c]
                                cur_ni[c] = nb + nfaces[f, c]
                            Fp = ti.Matrix.zero(real, 3, 3)
                            Fn = ti.Matrix.zero(real, 3, 3)
                        for c in ti.static(range(3)):
                            w = bary[p, c]
                            g_bary[p, c] = g_x.dot(_load(pos, cur_vi[c])) + g_nr.dot(_load(nrm, cur_ni[c]))
                            for i in ti.static(range(3)):
                                Fp[c, i] += w * g_x[i]
                                Fn[c, i] += w * g_nr[i]
                    for i in ti.static(range(3)):
                        g_albedo[p, i] = g_alb[i]
                        if ti.static(ka_pix):
                            g_ka[p, i] = g_k[i]
                        if ti.static(spc_pix):
                            g_spc[p, i] = g_s[i]
                    if ti.static(not ka_pix):
                        A_ka += g_k
                    if ti.static(not spc_pix):
                        A_spc += g_s
                    if ti.static(shin_pix):
                        g_shin[p, 0] = g_sh1
                    else:
                        A_shin += g_sh1
            if ti.static(need_geom):
                if cur_f >= 0:
                    _flush(g_pos, g_nrm, cur_vi, cur_ni, Fp, Fn)
            _lights_store(r, A_amb, A_ld, A_lc, A_pp, A_pc, A_sh, g_amb, g_ldir, g_lcol, g_ppos, g_pcol, g_sh,
                          L, P, use_sh)
            for i in ti.static(range(3)):
                g_cam[r, i] = A_cam[i]
                g_bg[r, i] = A_bg[i]
                if ti.static(not ka_pix):
                    g_ka[r, i] = A_ka[i]
                if ti.static(not spc_pix):
                    g_spc[r, i] = A_spc[i]
            if ti.static(not shin_pix):
                g_shin[r, 0] = A_shin

    return forward, backward, frag_forward, frag_backward
