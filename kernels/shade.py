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
    out = albedo * ambient + sum over lights (diffuse + specular) [+ albedo * E(n) / pi]
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

Backward (given g = dL/d out[p], one thread per point; no atomics): with ``G = sum_channels``,
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
    ambient:     g_ambient = g albedo;  g_albedo += g ambient
    SH:          g_sh[k] = g albedo B_k(n) / pi  (B_k = A_l Y_lm);  g_albedo += g E / pi;
                 g_n += sum_k G(g albedo sh[k]) / pi grad B_k(n)
    normals:     g_normals = normalize_bwd(normals[p], g_n)
Light, camera, ambient and SH gradients are written per point into ``(N, L, 3)`` / ``(N, 3)`` /
``(N, 9, 3)`` partial buffers that the caller sums over points with array ops (deterministic, no
atomics). The gradient of ``max(., 0)`` and of the ``n.l > 0`` switch is taken as 0 at the kink.
"""
import functools
import math

import taichi as ti

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


@functools.lru_cache(maxsize=None)
def build(real):
    arr = ti.types.ndarray(dtype=real)
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

    @ti.kernel
    def forward(normals: arr, positions: arr, albedo: arr, specular: arr, shininess: arr, cam: arr,
                ambient: arr, ldir: arr, lcol: arr, ppos: arr, pcol: arr, sh: arr, out: arr,
                L: ti.i32, P: ti.i32, k: real, model: ti.template(), use_sh: ti.template()):
        for p in range(out.shape[0]):
            nr = _load(normals, p)
            n = nr * _inv_norm(nr)
            x = _load(positions, p)
            vr = vec3(cam[0], cam[1], cam[2]) - x
            v = vr * _inv_norm(vr)
            alb = _load(albedo, p)
            spc = _load(specular, p)
            shin = shininess[p]
            acc = alb * vec3(ambient[0], ambient[1], ambient[2])
            for j in range(L + P):
                l = vec3(0.0, 0.0, 0.0)
                c = vec3(0.0, 0.0, 0.0)
                if j < L:
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
            for i in ti.static(range(3)):
                out[p, i] = acc[i]

    @ti.kernel
    def backward(normals: arr, positions: arr, albedo: arr, specular: arr, shininess: arr, cam: arr,
                 ambient: arr, ldir: arr, lcol: arr, ppos: arr, pcol: arr, sh: arr, g_out: arr,
                 g_normals: arr, g_positions: arr, g_albedo: arr, g_specular: arr, g_shininess: arr,
                 g_cam: arr, g_ldir: arr, g_lcol: arr, g_ppos: arr, g_pcol: arr, g_sh: arr,
                 L: ti.i32, P: ti.i32, k: real, model: ti.template(), use_sh: ti.template()):
        """Every g_* buffer is fully written (no zero-initialisation needed). Per point:
        g_normals/g_positions/g_albedo/g_specular/g_cam (N, 3), g_shininess (N,),
        g_ldir/g_lcol (N, max(L,1), 3), g_ppos/g_pcol (N, max(P,1), 3), g_sh (N, 9, 3)."""
        for p in range(g_out.shape[0]):
            g = _load(g_out, p)
            nr = _load(normals, p)
            inv_n = _inv_norm(nr)
            n = nr * inv_n
            x = _load(positions, p)
            vr = vec3(cam[0], cam[1], cam[2]) - x
            inv_v = _inv_norm(vr)
            v = vr * inv_v
            alb = _load(albedo, p)
            spc = _load(specular, p)
            shin = shininess[p]
            g_n = vec3(0.0, 0.0, 0.0)
            g_v = vec3(0.0, 0.0, 0.0)
            g_x = vec3(0.0, 0.0, 0.0)
            g_alb = g * vec3(ambient[0], ambient[1], ambient[2])
            g_spc = vec3(0.0, 0.0, 0.0)
            g_shin = real(0.0)
            for j in range(L + P):
                l = vec3(0.0, 0.0, 0.0)
                c = vec3(0.0, 0.0, 0.0)
                c0 = vec3(0.0, 0.0, 0.0)
                w = vec3(0.0, 0.0, 0.0)
                inv_l = real(0.0)
                att = real(1.0)
                if j < L:
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
                g_l = vec3(0.0, 0.0, 0.0)
                g_c = vec3(0.0, 0.0, 0.0)
                if ndl > 0:
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
                            g_t = g_s * shin * ti.pow(t, shin - real(1.0))
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
                if j < L:
                    # l = -u with u = normalize(d): g_u = -g_l, g_d = normalize_bwd(u, -g_l)
                    g_d = _norm_bwd(-l, inv_l, -g_l)
                    for i in ti.static(range(3)):
                        g_ldir[p, j, i] = g_d[i]
                        g_lcol[p, j, i] = g_c[i]
                else:
                    g_d2 = -k * att * att * (g_c * c0).sum()
                    g_w = _norm_bwd(l, inv_l, g_l) + real(2.0) * g_d2 * w
                    g_x -= g_w
                    for i in ti.static(range(3)):
                        g_ppos[p, j - L, i] = g_w[i]
                        g_pcol[p, j - L, i] = g_c[i] * att
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
                        g_sh[p, q, i] = ga[i] * bk[q]
                g_alb += g * e
                g_n += _sh_grad(n, wk)
            g_c_cam = _norm_bwd(v, inv_v, g_v)
            g_x -= g_c_cam
            g_nr = _norm_bwd(n, inv_n, g_n)
            for i in ti.static(range(3)):
                g_normals[p, i] = g_nr[i]
                g_positions[p, i] = g_x[i]
                g_albedo[p, i] = g_alb[i]
                g_specular[p, i] = g_spc[i]
                g_cam[p, i] = g_c_cam[i]
            g_shininess[p] = g_shin

    return forward, backward
