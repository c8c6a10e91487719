"""SoftRas soft rasterization (Liu et al. 2019, "Soft Rasterizer", eqs. 1-6), forward + hand-written backward.

Conventions (DESIGN §2-4). Screen vertices ``sv (Bs, V, 3)``: x, y in pixels (x right, y down,
pixel ``(r, c)`` has its centre at ``(c + 0.5, r + 0.5)``), z = camera depth. Distances that
``sigma`` scales are in NDC units where the image's shorter side spans [-1, 1]: one pixel is
``s = 2 / min(H, W)``; the kernels work in pixels and take ``k2 = s^2 / sigma``.

Per pixel p and face j (vertices s0, s1, s2):

* screen barycentrics ``a_i = E_i / A`` with ``E0 = edge(s1, s2, p)``, ``E1 = edge(s2, s0, p)``,
  ``E2 = edge(s0, s1, p)``, ``A = edge(s0, s1, s2)`` (= E0 + E1 + E2); inside iff all ``a_i >= 0``;
* ``d^2``: squared distance from p to the nearest of the edges (s0,s1), (s1,s2), (s2,s0) (first one
  on ties), with ``t`` the clamped parameter of the nearest point ``N = P + t (Q - P)``;
* ``x_j = sgn d^2 k2`` (sgn = +1 inside, -1 outside), ``D_j = sigmoid(x_j)`` (eq. 1);
* colour barycentrics ``abar``: ``a`` inside; outside those of N (``1 - t`` at P, ``t`` at Q);
  perspective correction ``q_i = abar_i / z_i``, ``Q = sum q_i``, ``b_i = q_i / Q``, ``zp = 1 / Q``;
* ``c_j = sum_i b_i colors[v_i]`` (or ``colors[j]`` per face), ``z_j = (far - zp) / (far - near)``.

Faces with ``D_j < cull_eps`` (outside with ``d^2 > d2cull``) are skipped in both passes, by the
same test. Aggregation in sum form (eqs. 4-6), O(1) memory per pixel and no faces-per-pixel cap:

* ``alpha = 1 - prod(1 - D_j) = 1 - exp(S)``, ``S = -sum softplus(x_j)``; softplus(x) =
  max(x, 0) + log1p(e), e = exp(-|x|), and ``sum log1p(e_j) = log1p(T)`` with
  ``T <- T + e (1 + T)`` (= prod(1 + e) - 1, all terms positive: no cancellation, one exp per face);
* ``rgb = (sum_j w_j c_j + w_b bg) / Z``, ``w_j = D_j exp(z_j / gamma - m)``,
  ``w_b = exp(eps / gamma - m)``, ``Z = sum_j w_j + w_b``, with ``m`` the running max of
  ``{eps / gamma, z_j / gamma}`` (online softmax rescaling; m cancels mathematically).
  The kernels keep m as a depth: ``z_j / gamma = (far - zp_j) cz`` with ``cz = 1 / ((far - near)
  gamma)`` and the background at depth ``zb = far - eps (far - near)``, so ``m <-> zm`` (the
  nearest depth so far) and ``z_j / gamma - m = (zm - zp_j) cz``: a difference of depths, which
  keeps float32 exponents accurate when 1 / gamma is large.

Work layout. The kernels visit face *entries*: image b draws faces ``tab[b, 0] .. tab[b, 0] + tab[b, 1]
- 1`` (all F faces for every image of a shared topology, the mesh's own range in a packed batch of
different meshes), its entries being ``tab[b, 2] ..`` (kernels/common.entry_face); E entries in all,
so per-face buffers are O(faces). ``setup`` writes per-entry constants ``fs (E, K)`` (``FS_*``
offsets) and a box for
tile binning: the vertex box grown by the cull radius, intersected with the box of the disk
``|p - centroid| <= R + r`` (R: largest centroid-vertex distance), which holds every pixel a face
can reach. Faces with a vertex at ``z <= near`` or zero screen area get an empty box (``xmin >
xmax``) and are never visited. The forward runs one thread per screen tile; the thread walks its
tile's faces and, for each, only the pixels of the disk inside the tile, keeping each pixel's
running sums (zm, Z, sum of max(x, 0), T, colour) in the output buffers. Geometry is evaluated in
a frame centred on vertex 0 with linear forms for ``a_i`` and the edge parameters.
Per pixel the forward saves ``aux = (zm, Z, w_b / Z, exp(S) = 1 - alpha)``.

The backward runs one thread per *face* over the same disk pixels, so a face's vertex gradients
accumulate in registers (no per-pixel atomics); ``scatter_*`` then add face gradients to vertices.
Taichi's autodiff is not used (wrong through per-pixel face loops in 1.7.4, DESIGN §5).

Depth order and the cut-off. Every tile lists its faces in one global order per batch, nearest
vertex depth ``zmin_j`` first (ties by face id; ``rank (E,)`` is each entry's place, built by
``binning.fill_ordered``), so a pixel sums its faces in the same order whatever the tile size or
thread timing: the forward is bitwise deterministic. With ``approx``, before visiting face f at
pixel p (``nrem`` faces, f included, left in the tile's list, none nearer than ``zmin_f``) the
walk stops for p (``cut[p] = rank[f]``) when

* ``1 - alpha = exp(S) <= tol``: the skipped faces can only lower ``1 - alpha`` further, so
  ``|Δalpha| <= tol``; and
* ``nrem exp((zm - zmin_f) cz) 2 cmax <= tol Z`` (``kc = 2 cmax / tol``, cmax = max |colour| over
  colours and background): each skipped weight is ``w_j = D_j exp((zm - zp_j) cz) <=
  exp((zm - zmin_f) cz)`` (D <= 1, zp_j >= zmin_j >= zmin_f > zm), so the skipped weight sum
  ``Z_s`` is bounded and ``|Δrgb| = |A_s - rgb Z_s| / (Z + Z_s) <= Z_s 2 cmax / Z <= tol``.

A cut pixel is never touched again, and the tile stops once all its pixels are cut. The backward
uses exactly the pairs the forward used (``rank[f] < cut[p]``), so its gradients are those of the
function computed. The alpha test rarely passes in one surface layer at common settings (faces of
a few pixels at sigma 1e-4 leave ``1 - alpha`` ~ 1e-3 after the front layer): the cut mostly
removes the layers behind (measured: bunny 512² fwd+bwd 17% faster, BENCHMARKS.md).

Exact shortcuts: ``w_j <= exp((zm - zmin_j) cz)`` with ``zmin_j`` the face's nearest vertex depth
(zp is a weighted harmonic mean of the vertex depths), and ``exp_`` is exactly 0 below
``-(U - 1)`` (``underflow``), so when ``(zm - zmin_j) cz < -U`` the weight is exactly 0 and the
colour part of the pair is skipped (forward: running zm; backward: final zm); a backward pair whose
colour part is skipped and whose alpha gradient is 0 contributes exactly 0 and is skipped before
its geometry.

Backward derivation (g_* are gradients of the loss; G = g_rgb . rgb):

* ``g_w_j = g_rgb . (c_j - rgb) / Z``; ``g_c_j = g_rgb w_j / Z``;
* ``g_x_j = g_alpha (1 - alpha) D_j + g_w_j w_j (1 - D_j)`` (d alpha/d x_j = prod_{k!=j}(1 - D_k)
  D_j (1 - D_j), dw_j/dx_j = w_j (1 - D_j));
* ``g_z_j = g_w_j w_j / gamma``, ``g_zp = -g_z_j / (far - near)``;
* ``g_b_i = g_c_j . colors[v_i]``; ``db_i/dq_k = (delta_ik - b_i) / Q``, ``dzp/dQ = -zp^2`` so
  ``g_q_k = (g_b_k - sum_i g_b_i b_i) zp - g_zp zp^2``; ``g_abar_k = g_q_k / z_k``,
  ``g_z_k -= g_q_k abar_k / z_k^2``; ``g_colors[v_i] += g_c_j b_i``;
* ``g_d2 = g_x_j sgn k2``; envelope theorem on the nearest edge:
  ``d(d^2)/dP = -2 (p - N)(1 - t)``, ``d(d^2)/dQ = -2 (p - N) t``;
* outside: ``g_t = g_abar_Q - g_abar_P``; when 0 < t < 1, with e = Q - P, r = p - P:
  ``dt/dP = (-e - r + 2 t e) / (e.e)``, ``dt/dQ = (r - 2 t e) / (e.e)``;
* inside: ``g_E_k = (g_a_k - sum_i g_a_i a_i) / A``; for E_i with (j, k) = (i+1, i+2) mod 3:
  ``dE_i/dx_j = y_k - py``, ``dE_i/dy_k = x_j - px``, ``dE_i/dx_k = -(y_j - py)``,
  ``dE_i/dy_j = -(x_k - px)``.
"""
import functools

import taichi as ti

from . import kernel, tile_block_dim
from .common import entry_face

# Layout of the per-entry setup buffer fs (E, K).
FS_XY = 0      # x0, y0, x1, y1, x2, y2 (pixels)
FS_IZ = 6      # 1 / z0, 1 / z1, 1 / z2
FS_IA = 9      # 1 / A (A = twice the signed area, in the frame of vertex 0)
FS_IEE = 10    # 1 / |e|^2 for the edges (s0,s1), (s1,s2), (s2,s0)
FS_BOX = 13    # box xmin, xmax, ymin, ymax (pixels); xmin > xmax marks a skipped face
FS_DISK = 17   # disk centre x, y and radius (pixels); radius < 0: no disk (box only)
K = 20

# cut[p] of a pixel the depth-ordered walk never stopped early (every rank is below it).
NO_CUT = 2**31 - 1
# The cut-off test (``saturated``) is tried only for faces this many softmax units behind the
# pixel's front (exp(-8) ~ 3e-4: nearer faces can rarely pass it, and the test costs two exps).
CUT_PREFILTER = 8.0
# Faces whose twice-signed screen area is at most this (pixels^2) are degenerate and skipped.
AREA_EPS = 1e-12
# Above this, the running product (1 + T) is folded into a log (keeps float32 finite).
T_FOLD = 1e30


def underflow(real):
    """Skip bound U: ``exp_`` (in build) is exactly 0 below -(U - 1), so a weight whose exponent is
    provably below -U is exactly 0 and may be skipped."""
    return 88.0 if real == ti.f32 else 709.0


@functools.lru_cache(maxsize=None)
def build(real):
    """Kernels and shared ``ti.func`` helpers for float type ``real`` (ti.f32 / ti.f64)."""
    arr = ti.types.ndarray(dtype=real)
    iarr = ti.types.ndarray(dtype=ti.i32)
    vec3 = ti.types.vector(3, real)
    mat3 = ti.types.matrix(3, 3, real)
    UF = underflow(real)
    tile_block = tile_block_dim()  # one tile per task on the CPU; Vulkan's dispatch limit on GPUs

    @ti.func
    def edge(ax, ay, bx, by, px, py):
        return (ax - px) * (by - py) - (bx - px) * (ay - py)

    @ti.func
    def exp_(x):
        """exp(x), forced to exactly 0 below -(UF - 1): the exact skips rely on it, whatever libm
        does with subnormals. (An inlined polynomial exp measured slower than libm's here.)"""
        res = ti.exp(x)
        if x < real(1.0 - UF):
            res = real(0.0)
        return res

    @ti.func
    def log1p(x):
        """log(1 + x) for x >= 0, accurate for small x (series below 1e-3)."""
        r = ti.log(real(1.0) + x)
        if x < real(1e-3):
            r = x * (real(1.0) - x * (real(1 / 2) - x * (real(1 / 3) - x * (real(1 / 4) - x * real(1 / 5)))))
        return r

    @ti.func
    def expm1(x):
        """exp(x) - 1, accurate for small |x| (series below 1e-3)."""
        r = ti.exp(x) - real(1.0)
        if ti.abs(x) < real(1e-3):
            r = x * (real(1.0) + x * (real(1 / 2) + x * (real(1 / 6) + x * (real(1 / 24) + x * real(1 / 120)))))
        return r

    @ti.func
    def face_frame(fs: arr, f):
        """Face constants in the frame of vertex 0: (ox, oy, xs, ys, ab, tc) with local vertex
        coordinates xs, ys, barycentric planes ``a_i = ab[i, 0] + ab[i, 1] x + ab[i, 2] y`` and
        unclamped edge parameters ``t_k = tc[k, 0] + tc[k, 1] x + tc[k, 2] y`` (local x, y)."""
        ox = fs[f, 0]
        oy = fs[f, 1]
        xs = vec3(0.0, fs[f, 2] - ox, fs[f, 4] - ox)
        ys = vec3(0.0, fs[f, 3] - oy, fs[f, 5] - oy)
        iA = fs[f, FS_IA]
        ab = mat3(0.0)
        tc = mat3(0.0)
        for i in ti.static(range(3)):
            j = (i + 1) % 3
            k = (i + 2) % 3
            # E_i = edge(s_j, s_k, p) = x_j y_k - x_k y_j + x (y_j - y_k) + y (x_k - x_j)
            ab[i, 0] = (xs[j] * ys[k] - xs[k] * ys[j]) * iA
            ab[i, 1] = (ys[j] - ys[k]) * iA
            ab[i, 2] = (xs[k] - xs[j]) * iA
            ex = xs[j] - xs[i]
            ey = ys[j] - ys[i]
            iee = fs[f, FS_IEE + i]
            tc[i, 0] = -(xs[i] * ex + ys[i] * ey) * iee
            tc[i, 1] = ex * iee
            tc[i, 2] = ey * iee
        return ox, oy, xs, ys, ab, tc

    @ti.func
    def geometry(xs, ys, ab, tc, x, y):
        """(inside, a, d2, ke, t) at local point (x, y): screen barycentrics, squared pixel distance
        to the nearest edge ke (from vertex ke to ke + 1, first on ties) and the clamped parameter t
        of the nearest point on it."""
        a = vec3(ab[0, 0] + ab[0, 1] * x + ab[0, 2] * y,
                 ab[1, 0] + ab[1, 1] * x + ab[1, 2] * y,
                 ab[2, 0] + ab[2, 1] * x + ab[2, 2] * y)
        inside = (a[0] >= 0) & (a[1] >= 0) & (a[2] >= 0)
        d2 = real(0.0)
        ke = 0
        tb = real(0.0)
        for k in ti.static(range(3)):
            k1 = (k + 1) % 3
            t = ti.min(ti.max(tc[k, 0] + tc[k, 1] * x + tc[k, 2] * y, real(0.0)), real(1.0))
            dx = x - xs[k] - t * (xs[k1] - xs[k])
            dy = y - ys[k] - t * (ys[k1] - ys[k])
            dd = dx * dx + dy * dy
            if ti.static(k == 0):
                d2 = dd
                tb = t
            else:
                if dd < d2:
                    d2 = dd
                    ke = k
                    tb = t
        return inside, a, d2, ke, tb

    @ti.func
    def abar_of(inside, a, ke, t):
        """Colour barycentrics: a inside; outside those of the nearest point (1 - t at P, t at Q)."""
        ab = a
        if not inside:
            if ke == 0:
                ab = vec3(real(1.0) - t, t, real(0.0))
            elif ke == 1:
                ab = vec3(real(0.0), real(1.0) - t, t)
            else:
                ab = vec3(t, real(0.0), real(1.0) - t)
        return ab

    @ti.func
    def sigmoid_pair(x):
        """(D, 1 - D, e = exp(-|x|)) for D = sigmoid(x), without cancellation."""
        e = exp_(-ti.abs(x))
        inv = real(1.0) / (real(1.0) + e)
        D = inv
        om = e * inv
        if x < 0:
            D = e * inv
            om = inv
        return D, om, e

    @ti.func
    def to_col(v, lim, up: ti.template()):
        """First/last pixel index whose centre is >= v (up) / <= v (not up), clamped like binning.py."""
        v = ti.max(ti.min(v, real(lim + 1)), real(-1.0)) - real(0.5)
        r = 0
        if ti.static(up):
            r = ti.ceil(v, ti.i32)
        else:
            r = ti.floor(v, ti.i32)
        return r

    @ti.func
    def in_box(fs: arr, f, px, py):
        return (px >= fs[f, FS_BOX]) & (px <= fs[f, FS_BOX + 1]) & \
               (py >= fs[f, FS_BOX + 2]) & (py <= fs[f, FS_BOX + 3])

    @ti.func
    def rows_of(fs: arr, f, H, r_lo, r_hi):
        """Pixel rows [r0, r1] of a face box, within [r_lo, r_hi] (as kernels/binning.py counts them)."""
        r0 = ti.max(to_col(fs[f, FS_BOX + 2], H, True), r_lo)
        r1 = ti.min(to_col(fs[f, FS_BOX + 3], H, False), r_hi)
        return r0, r1

    @ti.func
    def row_span(fs: arr, f, py, W, c_lo, c_hi):
        """Pixel columns [c0, c1] of row centre py that the face can reach: its box, cut to the disk."""
        c0 = ti.max(to_col(fs[f, FS_BOX], W, True), c_lo)
        c1 = ti.min(to_col(fs[f, FS_BOX + 1], W, False), c_hi)
        rad = fs[f, FS_DISK + 2]
        if rad >= 0:
            dy = py - fs[f, FS_DISK + 1]
            h2 = rad * rad - dy * dy
            if h2 < 0:
                c1 = c0 - 1
            else:
                half = ti.sqrt(h2)
                cx = fs[f, FS_DISK]
                c0 = ti.max(c0, to_col(cx - half, W, True))
                c1 = ti.min(c1, to_col(cx + half, W, False))
        return c0, c1

    @kernel
    def setup(sv: arr, faces: iarr, tab: iarr, fs: arr, bbox: arr, near: real, margin: real, use_disk: ti.i32):
        """Per-entry constants into fs (E, K) and the binning box into bbox (E, 4): the vertex box
        grown by ``margin`` pixels, cut to the disk of radius R + margin around the centroid if use_disk."""
        for f in range(fs.shape[0]):
            b, g = entry_face(tab, f)
            bs = b if sv.shape[0] > 1 else 0
            xs = vec3(0.0)
            ys = vec3(0.0)
            zs = vec3(0.0)
            for i in ti.static(range(3)):
                v = faces[g, i]
                xs[i] = sv[bs, v, 0]
                ys[i] = sv[bs, v, 1]
                zs[i] = sv[bs, v, 2]
            lx = xs - xs[0]
            ly = ys - ys[0]
            A = edge(lx[0], ly[0], lx[1], ly[1], lx[2], ly[2])
            ok = (zs[0] > near) & (zs[1] > near) & (zs[2] > near) & (ti.abs(A) > real(AREA_EPS))
            for i in ti.static(range(3)):
                fs[f, 2 * i] = xs[i]
                fs[f, 2 * i + 1] = ys[i]
                fs[f, FS_IZ + i] = real(1.0) / zs[i] if ok else real(0.0)
                ex = lx[(i + 1) % 3] - lx[i]
                ey = ly[(i + 1) % 3] - ly[i]
                fs[f, FS_IEE + i] = real(1.0) / (ex * ex + ey * ey) if ok else real(0.0)
            fs[f, FS_IA] = real(1.0) / A if ok else real(0.0)
            box = ti.Vector([xs.min() - margin, xs.max() + margin, ys.min() - margin, ys.max() + margin], real)
            cx = (xs[0] + xs[1] + xs[2]) / real(3.0)
            cy = (ys[0] + ys[1] + ys[2]) / real(3.0)
            rad = real(-1.0)
            if use_disk:
                R2 = ti.max(ti.max((xs[0] - cx) ** 2 + (ys[0] - cy) ** 2, (xs[1] - cx) ** 2 + (ys[1] - cy) ** 2),
                            (xs[2] - cx) ** 2 + (ys[2] - cy) ** 2)
                # slack for rounding: the disk must hold every pixel within `margin` of the triangle
                rad = ti.sqrt(R2) * real(1.0 + 1e-5) + margin + real(1e-5) * (ti.abs(cx) + ti.abs(cy))
                box = ti.Vector([ti.max(box[0], cx - rad), ti.min(box[1], cx + rad),
                                 ti.max(box[2], cy - rad), ti.min(box[3], cy + rad)], real)
            if not ok:
                box = ti.Vector([1.0, -1.0, 1.0, -1.0], real)
            for k in ti.static(range(4)):
                fs[f, FS_BOX + k] = box[k]
                bbox[f, k] = box[k]
            fs[f, FS_DISK] = cx
            fs[f, FS_DISK + 1] = cy
            fs[f, FS_DISK + 2] = rad

    @ti.func
    def saturated(aux: arr, b, r, c, zmin, nrem, cz, kc, lnia):
        """The depth-ordered cut-off (module docstring): whether every face from here on in the
        tile's list (``nrem`` of them, none nearer than ``zmin``) may be skipped at pixel (r, c)."""
        zm = aux[b, r, c, 0]
        dz = (zm - zmin) * cz
        res = False
        if dz < real(-CUT_PREFILTER):  # cheap test first: the face is well behind the pixel's front
            if ti.exp(dz) * real(nrem) * kc <= aux[b, r, c, 1]:
                res = aux[b, r, c, 2] + log1p(aux[b, r, c, 3]) >= lnia
        return res

    @kernel
    def tile_max_cut(cut: iarr, tmax: iarr, T: ti.i32):
        """tmax (B, ntiles) = the largest cut[p] over each T x T tile's pixels."""
        H, W = cut.shape[1], cut.shape[2]
        ntx = (W + T - 1) // T
        for b, tile in ti.ndrange(tmax.shape[0], tmax.shape[1]):
            r_lo = (tile // ntx) * T
            c_lo = (tile % ntx) * T
            m = 0
            for r in range(r_lo, ti.min(r_lo + T, H)):
                for c in range(c_lo, ti.min(c_lo + T, W)):
                    m = ti.max(m, cut[b, r, c])
            tmax[b, tile] = m

    @ti.func
    def used_somewhere(fs: arr, tmax: iarr, b, f, rank_f, H, W, T):
        """Whether any tile under face f's box has a pixel the forward did not cut before f: a
        face behind every pixel's cut (most of the hidden side of a dense mesh) is skipped whole."""
        r0, r1 = rows_of(fs, f, H, 0, H - 1)
        c0 = ti.max(to_col(fs[f, FS_BOX], W, True), 0)
        c1 = ti.min(to_col(fs[f, FS_BOX + 1], W, False), W - 1)
        ntx = (W + T - 1) // T
        used = False
        if r0 <= r1 and c0 <= c1:
            for ty in range(r0 // T, r1 // T + 1):
                for tx in range(c0 // T, c1 // T + 1):
                    if tmax[b, ty * ntx + tx] > rank_f:
                        used = True
        return used

    @kernel
    def forward(fs: arr, faces: iarr, tab: iarr, colors: arr, bg: arr, offsets: iarr, tile_faces: iarr, rank: iarr,
                out: arr, aux: arr, cut: iarr, T: ti.i32, k2: real, d2cull: real, cz: real, zb: real,
                kc: real, lnia: real, per_face: ti.i32, C: ti.template(), approx: ti.template()):
        """One thread per T x T tile; out (B, H, W, C + 1), aux (B, H, W, 4), cut (B, H, W). While
        the thread walks the tile's faces (in depth order), aux holds each pixel's (zm, Z,
        sum max(x, 0) + folded logs, T) and out[..., :C] its unnormalised colour sum. With
        ``approx``, a pixel whose remaining faces provably change it by less than the tolerance
        stops (cut[p] = the rank of the first face it skips; NO_CUT otherwise), and the tile stops
        when all its pixels have."""
        H, W = out.shape[1], out.shape[2]
        ntx = (W + T - 1) // T
        nty = (H + T - 1) // T
        uf = real(UF)
        ti.loop_config(block_dim=tile_block)
        for b, tile in ti.ndrange(out.shape[0], ntx * nty):
            r_lo = (tile // ntx) * T
            c_lo = (tile % ntx) * T
            r_hi = ti.min(r_lo + T, H) - 1
            c_hi = ti.min(c_lo + T, W) - 1
            bc = b if colors.shape[0] > 1 else 0
            for r in range(r_lo, r_hi + 1):
                for c in range(c_lo, c_hi + 1):
                    for ch in ti.static(range(C)):
                        out[b, r, c, ch] = bg[ch]
                    aux[b, r, c, 0] = zb
                    aux[b, r, c, 1] = real(1.0)  # w_b = exp((zm - zb) cz) = 1 while zm = zb
                    aux[b, r, c, 2] = real(0.0)
                    aux[b, r, c, 3] = real(0.0)
                    cut[b, r, c] = NO_CUT
            tid = b * (ntx * nty) + tile
            n_open = (r_hi - r_lo + 1) * (c_hi - c_lo + 1)  # pixels not cut yet
            for k in range(offsets[tid], offsets[tid + 1]):
                if ti.static(approx):
                    if n_open == 0:
                        break
                f = tile_faces[k]
                nrem = offsets[tid + 1] - k
                ox, oy, xs, ys, ab, tc = face_frame(fs, f)
                iz = vec3(fs[f, FS_IZ], fs[f, FS_IZ + 1], fs[f, FS_IZ + 2])
                zmin = real(1.0) / iz.max()  # the face's nearest depth: its largest z_j / gamma
                col = ti.Matrix.zero(real, 3, C)  # corner colours (all = the face colour per face)
                g = tab[b, 0] + f - tab[b, 2]  # the face of entry f
                for i in ti.static(range(3)):
                    vc = g if per_face else faces[g, i]
                    for ch in ti.static(range(C)):
                        col[i, ch] = colors[bc, vc, ch]
                r0, r1 = rows_of(fs, f, H, r_lo, r_hi)
                for r in range(r0, r1 + 1):
                    py = real(r) + real(0.5)
                    c0, c1 = row_span(fs, f, py, W, c_lo, c_hi)
                    y = py - oy
                    for c in range(c0, c1 + 1):
                        go = cut[b, r, c] == NO_CUT
                        if ti.static(approx):
                            if go and saturated(aux, b, r, c, zmin, nrem, cz, kc, lnia):
                                cut[b, r, c] = rank[f]
                                n_open -= 1
                                go = False
                        if not go:
                            continue
                        inside, a, d2, ke, t = geometry(xs, ys, ab, tc, real(c) + real(0.5) - ox, y)
                        if inside or d2 <= d2cull:
                            # Pixel state: read once, update in registers, write once (a global `+=`
                            # would be an atomic add in Taichi).
                            zm = aux[b, r, c, 0]
                            Z = aux[b, r, c, 1]
                            L = aux[b, r, c, 2]
                            Tp = aux[b, r, c, 3]
                            acc = ti.Vector([out[b, r, c, ch] for ch in ti.static(range(C))], real)
                            x = d2 * k2
                            if not inside:
                                x = -x
                            D, _, e = sigmoid_pair(x)
                            L += ti.max(x, real(0.0))
                            Tp += e * (real(1.0) + Tp)
                            if Tp > real(T_FOLD):
                                L += ti.log(Tp)
                                Tp = real(0.0)
                            if (zm - zmin) * cz >= -uf:  # else w = D exp((zm - zp) cz) is exactly 0
                                q = abar_of(inside, a, ke, t) * iz
                                zp = real(1.0) / q.sum()
                                if zp < zm:  # new softmax max: rescale the sums
                                    sc = exp_((zp - zm) * cz)
                                    Z *= sc
                                    acc *= sc
                                    zm = zp
                                w = D * exp_((zm - zp) * cz)
                                Z += w
                                if per_face:
                                    for ch in ti.static(range(C)):
                                        acc[ch] += w * col[0, ch]
                                else:
                                    wb = q * (zp * w)
                                    for ch in ti.static(range(C)):
                                        acc[ch] += wb[0] * col[0, ch] + wb[1] * col[1, ch] + wb[2] * col[2, ch]
                            aux[b, r, c, 0] = zm
                            aux[b, r, c, 1] = Z
                            aux[b, r, c, 2] = L
                            aux[b, r, c, 3] = Tp
                            for ch in ti.static(range(C)):
                                out[b, r, c, ch] = acc[ch]
            for r in range(r_lo, r_hi + 1):
                for c in range(c_lo, c_hi + 1):
                    S = -(aux[b, r, c, 2] + log1p(aux[b, r, c, 3]))
                    iZ = real(1.0) / aux[b, r, c, 1]
                    for ch in ti.static(range(C)):
                        out[b, r, c, ch] = out[b, r, c, ch] * iZ
                    out[b, r, c, C] = -expm1(S)
                    aux[b, r, c, 2] = exp_((aux[b, r, c, 0] - zb) * cz) * iZ
                    aux[b, r, c, 3] = ti.exp(S)

    @kernel
    def pixel_prep(out: arr, aux: arr, gout: arr, pb: arr):
        """Per-pixel backward constants pb (B, H, W, 5 + C): zm, 1 / Z, g_alpha (1 - alpha), g_rgb . rgb,
        active (any non-zero gradient), g_rgb."""
        C = out.shape[3] - 1
        for b, r, c in ti.ndrange(out.shape[0], out.shape[1], out.shape[2]):
            G = real(0.0)
            act = 0
            for ch in range(C):
                g = gout[b, r, c, ch]
                G += g * out[b, r, c, ch]
                pb[b, r, c, 5 + ch] = g
                if g != 0:
                    act = 1
            ga = gout[b, r, c, C] * aux[b, r, c, 3]
            if ga != 0:
                act = 1
            pb[b, r, c, 0] = aux[b, r, c, 0]
            pb[b, r, c, 1] = real(1.0) / aux[b, r, c, 1]
            pb[b, r, c, 2] = ga
            pb[b, r, c, 3] = G
            pb[b, r, c, 4] = real(act)

    @kernel
    def backward(fs: arr, faces: iarr, tab: iarr, colors: arr, pb: arr, rank: iarr, cut: iarr, tmax: iarr,
                 gface: arr,
                 gcolf: arr, T: ti.i32, k2: real, d2cull: real, cz: real, per_face: ti.i32,
                 C: ti.template()):
        """One thread per face entry over its disk pixels. gface (E, 9) = d/d(x_i, y_i, z_i) per corner;
        gcolf (E, 3, C) colour gradients per corner (per face: their sum is the face's). Both written."""
        H, W = pb.shape[1], pb.shape[2]
        uf = real(UF)
        for f in range(gface.shape[0]):
            b, g = entry_face(tab, f)
            gx = vec3(0.0)
            gy = vec3(0.0)
            gz = vec3(0.0)
            gcol = ti.Matrix.zero(real, 3, C)
            rank_f = rank[f]
            if fs[f, FS_BOX] <= fs[f, FS_BOX + 1] and used_somewhere(fs, tmax, b, f, rank_f, H, W, T):
                bc = b if colors.shape[0] > 1 else 0
                ox, oy, xs, ys, ab, tc = face_frame(fs, f)
                iz = vec3(fs[f, FS_IZ], fs[f, FS_IZ + 1], fs[f, FS_IZ + 2])
                iA = fs[f, FS_IA]
                zmin = real(1.0) / iz.max()
                col = ti.Matrix.zero(real, 3, C)
                for i in ti.static(range(3)):
                    vc = g if per_face else faces[g, i]
                    for ch in ti.static(range(C)):
                        col[i, ch] = colors[bc, vc, ch]
                r0, r1 = rows_of(fs, f, H, 0, H - 1)
                for r in range(r0, r1 + 1):
                    py = real(r) + real(0.5)
                    c0, c1 = row_span(fs, f, py, W, 0, W - 1)
                    y = py - oy
                    for c in range(c0, c1 + 1):
                        if rank_f >= cut[b, r, c]:  # the forward skipped this pair (cut-off)
                            continue
                        ga = pb[b, r, c, 2]
                        zm = pb[b, r, c, 0]
                        colour = (zm - zmin) * cz >= -uf  # else w = 0 exactly: no colour/depth gradient
                        if pb[b, r, c, 4] != 0 and (colour or ga != 0):
                            x = real(c) + real(0.5) - ox
                            inside, a, d2, ke, t = geometry(xs, ys, ab, tc, x, y)
                            if inside or d2 <= d2cull:
                                sgn = real(1.0) if inside else real(-1.0)
                                D, omD, _ = sigmoid_pair(sgn * d2 * k2)
                                g_x = ga * D
                                g_ab = vec3(0.0)
                                if colour:
                                    ab_ = abar_of(inside, a, ke, t)
                                    q = ab_ * iz
                                    zp = real(1.0) / q.sum()
                                    bb = q * zp
                                    # zm is the forward's min over faces of zp: (zm - zp) <= 0 exactly, but
                                    # zp recomputed here may round below zm, and times a large cz (small
                                    # gamma) that would overflow exp: clamp at the exact bound.
                                    w = D * exp_(ti.min((zm - zp) * cz, real(0.0)))
                                    invZ = pb[b, r, c, 1]
                                    wZ = w * invZ
                                    # gcv_i = g_rgb . colors[v_i]; g_c_j . c_j = sum_i b_i gcv_i
                                    grgb = ti.Vector([pb[b, r, c, 5 + ch] for ch in ti.static(range(C))], real)
                                    gcv = col @ grgb
                                    gcol += (bb * wZ).outer_product(grgb)
                                    g_w = (gcv.dot(bb) - pb[b, r, c, 3]) * invZ
                                    g_x += g_w * w * omD
                                    g_zp = -g_w * w * cz  # z_j / gamma = (far - zp) cz
                                    # perspective correction: q_i = abar_i / z_i, b = q / Q, zp = 1 / Q
                                    g_q = vec3(1.0) * (-g_zp * zp * zp)
                                    if not per_face:  # per face, c_j does not depend on b
                                        gb = gcv * wZ
                                        g_q += (gb - gb.dot(bb)) * zp
                                    g_ab = g_q * iz
                                    gz -= g_q * ab_ * iz * iz
                                # coverage: x = sgn d^2 k2, envelope theorem on the nearest edge ke
                                g_d2 = g_x * sgn * k2
                                for k in ti.static(range(3)):
                                    if ke == k:
                                        k1 = (k + 1) % 3
                                        ex = xs[k1] - xs[k]
                                        ey = ys[k1] - ys[k]
                                        nx = x - (xs[k] + t * ex)
                                        ny = y - (ys[k] + t * ey)
                                        s0 = real(-2.0) * g_d2 * (real(1.0) - t)
                                        s1 = real(-2.0) * g_d2 * t
                                        gx[k] += s0 * nx
                                        gy[k] += s0 * ny
                                        gx[k1] += s1 * nx
                                        gy[k1] += s1 * ny
                                        if not inside and colour and t > 0 and t < 1:
                                            # abar_P = 1 - t, abar_Q = t, t = (r . e) / (e . e)
                                            g_t = (g_ab[k1] - g_ab[k]) * fs[f, FS_IEE + k]
                                            rx = x - xs[k]
                                            ry = y - ys[k]
                                            gx[k] += g_t * (-ex - rx + real(2.0) * t * ex)
                                            gy[k] += g_t * (-ey - ry + real(2.0) * t * ey)
                                            gx[k1] += g_t * (rx - real(2.0) * t * ex)
                                            gy[k1] += g_t * (ry - real(2.0) * t * ey)
                                if inside and colour:
                                    gE = (g_ab - g_ab.dot(a)) * iA
                                    for i in ti.static(range(3)):
                                        j = (i + 1) % 3
                                        k = (i + 2) % 3
                                        gx[j] += gE[i] * (ys[k] - y)
                                        gy[k] += gE[i] * (xs[j] - x)
                                        gx[k] -= gE[i] * (ys[j] - y)
                                        gy[j] -= gE[i] * (xs[k] - x)
            for i in ti.static(range(3)):
                gface[f, 3 * i] = gx[i]
                gface[f, 3 * i + 1] = gy[i]
                gface[f, 3 * i + 2] = gz[i]
                for ch in ti.static(range(C)):
                    gcolf[f, i, ch] = gcol[i, ch]

    @kernel
    def scatter_verts(faces: iarr, tab: iarr, gface: arr, gsv: arr):
        """gsv (Bs, V, 3) += face-corner gradients gface (E, 9) (Bs = 1 sums over the batch)."""
        for f in range(gface.shape[0]):
            b, g = entry_face(tab, f)
            bs = b if gsv.shape[0] > 1 else 0
            for i in ti.static(range(3)):
                v = faces[g, i]
                for k in ti.static(range(3)):
                    ti.atomic_add(gsv[bs, v, k], gface[f, 3 * i + k])

    @kernel
    def scatter_colors(faces: iarr, tab: iarr, gcolf: arr, gcol: arr, per_face: ti.i32):
        """gcol (Bc, V or F, C) += gcolf (E, 3, C) (per face: the sum of the three corners)."""
        C = gcol.shape[2]
        for f in range(gcolf.shape[0]):
            b, g = entry_face(tab, f)
            bc = b if gcol.shape[0] > 1 else 0
            if per_face:
                for ch in range(C):
                    ti.atomic_add(gcol[bc, g, ch], gcolf[f, 0, ch] + gcolf[f, 1, ch] + gcolf[f, 2, ch])
            else:
                for i in ti.static(range(3)):
                    v = faces[g, i]
                    for ch in range(C):
                        ti.atomic_add(gcol[bc, v, ch], gcolf[f, i, ch])

    class Kernels:
        """The kernels, and the ti.func helpers kernels/dibr.py shares."""

    ns = Kernels()
    for name, obj in dict(setup=setup, forward=forward, pixel_prep=pixel_prep, backward=backward,
                          scatter_verts=scatter_verts, scatter_colors=scatter_colors, face_frame=face_frame,
                          tile_max_cut=tile_max_cut,
                          geometry=geometry, in_box=in_box, rows_of=rows_of, row_span=row_span,
                          expm1=expm1).items():
        setattr(ns, name, obj)
    return ns
