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
so per-face buffers are O(faces). The per-entry buffers hold the entries in *slots*: slot f holds
entry ``eperm[f]``, each image's entries in the Morton order of their centroids' pixel cells
(``spatial_keys``, taichirast/_prims/soft.py ``spatial_order``), so the backward's consecutive faces
share pixel blocks and a tile's faces sit in nearby rows whatever the mesh's face order (bunny 512²:
forward kernel 0.91-0.94x, backward 0.87-0.91x). ``setup`` writes per-slot constants ``fs (E, K)``
(``FS_*`` offsets: vertices, 1 / z, the linear forms of ``a_i`` and of the edge parameters in a frame
centred on vertex 0, the nearest depth) and a box for tile binning: the vertex box grown by the
cull radius, intersected with the box of the disk ``|p - centroid| <= R + r`` (R: largest
centroid-vertex distance), which holds every pixel a face can reach (``inside | d2 <= d2cull``).
Faces with a vertex at ``z <= near`` or zero screen area get an empty box (``xmin > xmax``) and
are never visited.

The forward runs one thread per block of pixels of a screen tile (below); the block keeps its
pixels' running sums (zm, Z, sum of max(x, 0), T, colour) in registers while it walks its tile's
faces, passing over those whose box and disk hold none of its cell's pixel centres
(``cell_mask``: a bit per cell of the tile for each tile entry, computed by the tile binning's
fill as it writes the entry, read in list order, so a face's row of fs is touched only when it is
used). Per
pixel it saves ``aux = (zm, Z, w_b / Z, exp(S) = 1 - alpha)``. The backward runs one thread per
*face* over the rows of blocks its disk reaches, so a face's vertex gradients accumulate in
registers (no per-pixel atomics), added to its vertices at the end (``scatter_*``). A pair is
summed when ``inside | d2 <= d2cull`` (and the pixel is not cut; the backward also passes over
the pairs that add exactly 0, "The backward's pairs" below); the disks, boxes and the
backward's row spans hold every such pixel and only spare work (which blocks, and in the backward
which lanes, are computed), so the two passes sum the same pairs whatever their blocks. Taichi's
autodiff is not used (wrong through per-pixel face loops in 1.7.4, DESIGN §5).

Pixel blocks. Both passes compute blocks of LANES pixels, BR rows of BC = LANES / BR (``lanes``,
``block_rows``: 4 x 4 forward and 4 x 2 backward on the CPU, 1 x 1 on GPUs), as straight-line
vector code: every lane is computed, and a lane outside the image, already cut, or beyond the cull
radius is dropped by selects (``lane_*`` helpers), so LLVM emits SIMD instructions on the CPU
(Taichi's CPU backend does not vectorise the per-pixel branches otherwise). Square blocks fit the
disk a face reaches better than a row's (more of the computed lanes are summed). The backward's
per-pixel inputs are laid out in its blocks, a block's values together (``pixel_blocks``;
vector-typed ndarrays), a segment of blocks none of whose pixels has a pair with the face is passed
over (``seg_max_cut``), and a face's 9 + 3 C gradient sums per lane are local arrays kept in
memory (``mem_zero``: in registers they crowded the block's values onto the stack). Any-lane tests are
ORs of the lanes (``any_lane``: a mask move and a test). float32 exps in blocks use an inlined
polynomial (``vexp``, Cephes' expf, relative error ~1e-7) that vectorises; float64 uses ti.exp.

Depth order and the cut-off. Every tile lists its faces in one global order per batch, nearest
vertex depth ``zmin_j`` first (ties by slot; ``rank (E,)`` is each slot's place; the lists are
built by kernels/binning.py's ordered fills), so a pixel sums its faces in the same order whatever
the tile size or thread timing: the forward is bitwise deterministic. With ``approx``, before
visiting face f at pixel p (``nrem`` faces, f included, left in the tile's list, none nearer than
``zmin_f``; f need not reach p) the walk stops for p (``cut[p] = rank[f]``) when

* ``1 - alpha = exp(S) <= tol``: the skipped faces can only lower ``1 - alpha`` further, so
  ``|Δalpha| <= tol``; and
* ``nrem exp((zm - zmin_f) cz) 2 cmax <= tol Z`` (``kc = 2 cmax / tol``, cmax = max |colour| over
  the image's face colours and the background, ``entry_colours``): each skipped weight is
  ``w_j = D_j exp((zm - zp_j) cz) <= exp((zm - zmin_f) cz)`` (D <= 1, zp_j >= zmin_j >= zmin_f > zm), so the skipped weight sum
  ``Z_s`` is bounded and ``|Δrgb| = |A_s - rgb Z_s| / (Z + Z_s) <= Z_s 2 cmax / Z <= tol``.

The saturation snap (also ``approx`` only): a pixel whose final ``1 - alpha = exp(S)`` is at most
``tol`` outputs alpha = 1 exactly and saves ``1 - alpha = 0`` (``block_finish``). The exact alpha
is then within ``[1 - exp(S), 1]`` (the faces the cut skipped only lower ``1 - alpha``), so ``|Δalpha|
<= tol`` still holds; alpha no longer depends on the pixel's pairs, so the backward's alpha
gradient there, ``g_alpha (1 - alpha) D_j``, is exactly 0 and a pair whose colour part is skipped
too is not computed at all (bunny 512²: backward 0.89-0.92x, fwd+bwd 0.93-0.94x, interleaved).
Tracking the snap during the walk to skip such pairs in the forward as well measured 1.12x slower.

A cut pixel is never touched again, and a block stops once all its pixels are cut. Both tests
only loosen along the list (nrem falls, zmin_f rises) and a face that does not reach p leaves its
sums as they are, so testing p at such a face skips exactly the pairs testing it at the next face
that reaches p would: the summed pairs do not depend on the block shape. The backward uses exactly
the pairs the forward used (``rank[f] < cut[p]``; it passes over those that add exactly 0, "The
backward's pairs"), so its gradients are those of the function computed. The alpha test rarely passes in one surface layer at common settings (faces of
a few pixels at sigma 1e-4 leave ``1 - alpha`` ~ 1e-3 after the front layer): the cut mostly
removes the layers behind (measured: bunny 512² fwd+bwd 17% faster, BENCHMARKS.md).

The colour floor: ``w_j <= exp((zm - zmin_j) cz)`` with ``zmin_j`` the face's nearest vertex depth
(zp is a weighted harmonic mean of the vertex depths), and a pair with ``(zm - zmin_j) cz < -uc``
gets colour weight 0 (its colour part is skipped). With ``exact``, uc is the underflow bound
(``underflow``: ``exp_`` is exactly 0 below ``-(U - 1)``, so nothing changes). Otherwise uc =
``ln(E 2 c / (cull_eps tol_d))`` (taichirast/_prims/soft.py ``colour_floor``, capped at the
underflow bound): a pixel drops at most E pairs (its image's faces), each of weight below
``exp(-uc)``, while its softmax sum ``Z`` is at least cull_eps (the face that set zm adds its D >=
cull_eps, or zm = zb and w_b = 1), so its colour moves by at most ``E exp(-uc) 2 c / cull_eps =
tol_d`` (c >= max |colour|, as in the cut-off). The forward tests with the running zm, the backward
with the final one, and they agree: faces come in zmin order, so when ``zm <= zmin_j`` no later face
(zp >= zmin >= zmin_j) lowers zm, and when ``zm > zmin_j`` neither test drops the pair (up to zp
rounding an ulp below zmin: a pair within rounding of the threshold, of weight ~exp(-uc)). A backward
pair whose colour part is skipped and whose alpha gradient is 0 contributes exactly 0 and is
skipped before its geometry. The floor at its default (bunny 512²: uc ~35 instead of 88) measured
backward 0.92x, fwd+bwd 0.92x (interleaved).

The backward's pairs: it sums pair (p, f) when ``rank[f] < ecut[p]`` (``pixel_prep``), and in blocks
and segments, tiles and faces that hold no such pair it does no work (``seg_max_cut``,
``tile_max_cut``, ``used_somewhere``). ``ecut[p]`` is the forward's cut, lowered for a pixel whose
alpha gradient ``g_alpha (1 - alpha)`` is 0 (a saturated pixel under the snap, or no alpha
gradient) to one past ``lastc[p]``, the rank of its last pair with colour weight in the forward:
the colour floor's test gives the same answer in both passes (above), so that pixel's later pairs
add exactly 0 (no colour part, no alpha part). Without it they were the back layers of every
snapped pixel: bunny 512², of the 4.1M blocks the backward entered, 0.8M held only such pairs.

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
FS_AB = 20     # barycentric planes ab (3 x 3, row-major), in the frame of vertex 0 (``face_frame``)
FS_TC = 29     # edge-parameter planes tc (3 x 3, row-major), in the frame of vertex 0
FS_ZMIN = 38   # the nearest vertex depth 1 / max(1 / z_i)
K = 39
# Layout of setup's reach (E, NREACH): where each entry reaches, a row of its own (one cache line for
# two entries: the passes that read it by tile entry miss the cache on each).
REACH_BOX = 0   # xmin, xmax, ymin, ymax (pixels), the binning box (kernels/binning.py reads these)
REACH_DISK = 4  # disk centre x, y and radius, as FS_DISK
NREACH = 8      # (the last column is padding, 0)

# cut[p] of a pixel the depth-ordered walk never stopped early (every rank is below it).
NO_CUT = 2**31 - 1
# The cut-off test (``lane_saturated``) passes only for faces this many softmax units behind the
# pixel's front (exp(-8) ~ 3e-4: nearer faces can rarely pass it, and the test costs two exps).
CUT_PREFILTER = 8.0
# cell_mask: the cells of a tile (a bit each in an int32 mask) are at most MASK_SIDE x MASK_SIDE.
MASK_SIDE = 4
# Pixels per row segment of ``seg_max_cut``: the backward passes over a segment none of whose pixels
# has a pair with a face without loading them (a multiple of every block width; 8 and 32 measured
# 1.04x and 1.00x the backward's time).
SEG = 16
# spatial_keys: the pixel cells (SPATIAL_CELL x SPATIAL_CELL) whose Morton order orders the entries.
SPATIAL_CELL = 4
# Faces whose twice-signed screen area is at most this (pixels^2) are degenerate and skipped.
AREA_EPS = 1e-12
# Above this, the running product (1 + T) is folded into a log (keeps float32 finite).
T_FOLD = 1e30


# Pixels per block on the CPU, for the forward and for the backward (pixel_prep, backward), and the
# rows they span (CPU_ROWS): the shapes LLVM's vectoriser turned into the fastest code, measured old
# against new in one process on the bunny at 512², float32. Forward 4 x 4: 0.74-0.77x the time of
# 1 x 8 (2 x 4: 0.79, 4 x 2: 0.80, 2 x 8: 0.85; square blocks fit the disk a face reaches, so more
# of the computed lanes are summed). Backward 4 x 2 (8 lanes, AVX2): 0.71-0.77x the time of 4 x 1
# (2 x 4: 0.77-0.78, 8 x 1: 0.85, 4 x 4: 1.04, 2 x 2: 1.0), since its per-lane sums live in memory
# (``mem_zero``); while they were registers, 8 lanes were 1.5-1.7x slower than 4 x 1 (LLVM left
# much of the code scalar) and 4 x 1 was 0.83-0.85x of 1 x 4.
CPU_LANES = {"forward": 16, "backward": 8}
CPU_ROWS = {"forward": 4, "backward": 4}


def block_rows(kernel):
    """Rows of the blocks of ``lanes(kernel)`` pixels: CPU_ROWS on the CPU, 1 on GPUs."""
    return CPU_ROWS[kernel] if lanes(kernel) > 1 else 1


def lanes(kernel):
    """Pixels per block of the ``kernel`` ("forward" / "backward") row loops on the arch Taichi runs
    on: CPU_LANES on the CPU (LLVM vectorises a block's straight-line lane code), 1 on GPUs (a
    thread per tile or face already; wider blocks only add registers)."""
    return CPU_LANES[kernel] if ti.lang.impl.current_cfg().arch in (ti.x64, ti.arm64) else 1


def pixel_blocks(B, H, W, C, lanes_, rows):
    """Sizes, in blocks of ``lanes_`` values, of the backward's per-pixel inputs ``(pb, cutb)``
    (``pixel_prep``): 4 + C floats and one int32 for each of the B x ceil(H / rows) x
    ceil(W / (lanes_ / rows)) blocks of rows x lanes_ / rows pixels."""
    n = B * -(-H // rows) * -(-W // (lanes_ // rows))
    return n * (4 + C), n


def underflow(real):
    """Skip bound U: ``exp_`` (in build) is exactly 0 below -(U - 1), so a weight whose exponent is
    provably below -U is exactly 0 and may be skipped."""
    return 88.0 if real == ti.f32 else 709.0


@functools.lru_cache(maxsize=None)
def build(real, LANES=1, BR=1):
    """Kernels and shared ``ti.func`` helpers for float type ``real`` (ti.f32 / ti.f64)."""
    arr = ti.types.ndarray(dtype=real)
    iarr = ti.types.ndarray(dtype=ti.i32)
    vec3 = ti.types.vector(3, real)
    mat3 = ti.types.matrix(3, 3, real)
    UF = underflow(real)
    tile_block = tile_block_dim()  # one iteration per task on the CPU; Vulkan's dispatch limit on GPUs
    BITS = ti.i32 if real == ti.f32 else ti.i64  # a float's bits (entry_colours, setup's dkey)
    karr = ti.types.ndarray(dtype=BITS)

    BC = LANES // BR  # blocks of BR rows of BC pixels (lane l: row l // BC, column l % BC)
    vL = ti.types.vector(LANES, real)
    vM = ti.types.vector(MASK_SIDE * MASK_SIDE, real)
    iM = ti.types.vector(MASK_SIDE * MASK_SIDE, ti.i32)
    iL = ti.types.vector(LANES, ti.i32)
    # Block planes (the backward's inputs): flat arrays of LANES-pixel blocks (torch / NumPy shape
    # (n, LANES)), so a block is one vector load / store; plain flat arrays for LANES = 1.
    sarr = ti.types.ndarray(dtype=vL, ndim=1) if LANES > 1 else ti.types.ndarray(dtype=real, ndim=1)
    siarr = ti.types.ndarray(dtype=iL, ndim=1) if LANES > 1 else ti.types.ndarray(dtype=ti.i32, ndim=1)

    @ti.func
    def load(a: ti.template(), i):
        """Block i of a block array (``pixel_blocks``), as a LANES-vector."""
        if ti.static(LANES == 1):
            return ti.Vector([a[i]])
        else:
            return a[i]

    @ti.func
    def store(a: ti.template(), i, v):
        if ti.static(LANES == 1):
            a[i] = v[0]
        else:
            a[i] = v

    @ti.func
    def any_lane(mask):
        """Whether any lane of a mask is set: an OR of the lanes, which LLVM turns into a mask move
        and a test (a sum of the lanes, 1.7's other spelling, was extracted lane by lane)."""
        v = ti.cast(mask, ti.i32)
        r = v[0]
        for l in ti.static(range(1, LANES)):
            r |= v[l]
        return r != 0

    @ti.func
    def vexp(x):
        """exp(x) lane-wise for the pixel blocks of both passes, exactly 0 below -(UF - 1) like ``exp_``.
        float32: Cephes' expf (range reduction by ln 2 in two parts, degree-6 polynomial, 2^n from
        the exponent bits; relative error ~1e-7), plain arithmetic so LLVM vectorises it (libm's
        expf is a call per lane); float64: ti.exp."""
        res = x
        if ti.static(real == ti.f32):
            xc = ti.min(ti.max(x, real(-87.0)), real(88.0))
            n = ti.floor(xc * real(1.44269504088896341) + real(0.5))
            r = xc - n * real(0.693359375) + n * real(2.12194440e-4)
            # Cephes' polynomial by Estrin's scheme (three short chains, not Horner's six deep: the
            # kernels' lane code waits on these exps)
            r2 = r * r
            pa = real(1.9875691500e-4) * r + real(1.3981999507e-3)
            pb = real(8.3334519073e-3) * r + real(4.1665795894e-2)
            pc = real(1.6666665459e-1) * r + real(5.0000001201e-1)
            p = (pa * r2 + pb) * (r2 * r2) + pc * r2 + r + real(1.0)
            ni = ti.cast(n, ti.i32)
            two_n = vL([ti.bit_cast((ni[l] + 127) << 23, ti.f32) for l in ti.static(range(LANES))])
            res = p * two_n
        else:
            res = ti.exp(x)
        return ti.select(x < real(1.0 - UF), real(0.0), res)

    @ti.func
    def edge(ax, ay, bx, by, px, py):
        return (ax - px) * (by - py) - (bx - px) * (ay - py)

    @ti.func
    def exp_(x):
        """exp(x), forced to exactly 0 below -(UF - 1): the exact skips rely on it, whatever libm
        does with subnormals. Scalar code; the lane code uses ``vexp`` (a polynomial, which
        vectorises; as scalar code it measured slower than libm's exp)."""
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
    def frame_planes(xs, ys, iA, iee):
        """Barycentric planes ``a_i = ab[i, 0] + ab[i, 1] x + ab[i, 2] y`` and unclamped edge
        parameters ``t_k = tc[k, 0] + tc[k, 1] x + tc[k, 2] y`` of a face with local vertex
        coordinates xs, ys (vertex 0 at the origin), 1 / A and the edges' 1 / |e|^2."""
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
            tc[i, 0] = -(xs[i] * ex + ys[i] * ey) * iee[i]
            tc[i, 1] = ex * iee[i]
            tc[i, 2] = ey * iee[i]
        return ab, tc

    @ti.func
    def face_frame(fs: arr, f, stored: ti.template()):
        """Face constants in the frame of vertex 0: (ox, oy, xs, ys, ab, tc) with local vertex
        coordinates xs, ys and the planes of ``frame_planes``: loaded from fs where ``stored``
        (``setup`` wrote them; both SoftRas passes. While the backward's sums filled its registers,
        loading them there made it 1.6x slower; with its sums in memory, ``mem_zero``, computing
        them is the slower way, 1.06x), else computed from fs's vertices, 1 / A and 1 / |e|^2
        (DIB-R's passes, both ways). Both give the same bits (same inputs, same function; checked
        on the bunny)."""
        ox = fs[f, 0]
        oy = fs[f, 1]
        xs = vec3(0.0, fs[f, 2] - ox, fs[f, 4] - ox)
        ys = vec3(0.0, fs[f, 3] - oy, fs[f, 5] - oy)
        ab = mat3(0.0)
        tc = mat3(0.0)
        if ti.static(stored):
            for i in ti.static(range(3)):
                for j in ti.static(range(3)):
                    ab[i, j] = fs[f, FS_AB + 3 * i + j]
                    tc[i, j] = fs[f, FS_TC + 3 * i + j]
        else:
            ab, tc = frame_planes(xs, ys, fs[f, FS_IA], vec3(fs[f, FS_IEE], fs[f, FS_IEE + 1], fs[f, FS_IEE + 2]))
        return ox, oy, xs, ys, ab, tc

    @ti.func
    def lane_geometry(xs, ys, ab, tc, x, y):
        """(a0, a1, a2, inside, d2, ke, t) at local points (x, y), x a scalar or a vector of lanes:
        screen barycentrics, squared pixel distance to the nearest edge ke (from vertex ke to
        ke + 1, first on ties) and the clamped parameter t of the nearest point on it. Branch-free
        (selects), so lanes vectorise."""
        a0 = ab[0, 0] + ab[0, 1] * x + ab[0, 2] * y
        a1 = ab[1, 0] + ab[1, 1] * x + ab[1, 2] * y
        a2 = ab[2, 0] + ab[2, 1] * x + ab[2, 2] * y
        inside = (a0 >= 0) & (a1 >= 0) & (a2 >= 0)
        d2 = x * real(0.0)
        ke = ti.cast(d2, ti.i32)
        tb = d2
        for k in ti.static(range(3)):
            k1 = ti.static((k + 1) % 3)
            t = ti.min(ti.max(tc[k, 0] + tc[k, 1] * x + tc[k, 2] * y, real(0.0)), real(1.0))
            dx = x - xs[k] - t * (xs[k1] - xs[k])
            dy = y - ys[k] - t * (ys[k1] - ys[k])
            dd = dx * dx + dy * dy
            if ti.static(k == 0):
                d2 = dd
                tb = t
            else:
                nearer = dd < d2
                d2 = ti.select(nearer, dd, d2)
                ke = ti.select(nearer, k, ke)
                tb = ti.select(nearer, t, tb)
        return a0, a1, a2, inside, d2, ke, tb

    @ti.func
    def geometry(xs, ys, ab, tc, x, y):
        """``lane_geometry`` at one point, as (inside, a, d2, ke, t) with a the vec3 of barycentrics."""
        a0, a1, a2, inside, d2, ke, t = lane_geometry(xs, ys, ab, tc, x, y)
        return inside, vec3(a0, a1, a2), d2, ke, t

    @ti.func
    def lane_abar(inside, a0, a1, a2, ke, t):
        """Colour barycentrics, lane-wise: a inside; outside those of the nearest point on edge ke
        (1 - t at its first vertex, t at its second)."""
        om = real(1.0) - t
        b0 = ti.select(inside, a0, ti.select(ke == 0, om, ti.select(ke == 2, t, real(0.0))))
        b1 = ti.select(inside, a1, ti.select(ke == 0, t, ti.select(ke == 1, om, real(0.0))))
        b2 = ti.select(inside, a2, ti.select(ke == 1, t, ti.select(ke == 2, om, real(0.0))))
        return b0, b1, b2

    @ti.func
    def lane_sigmoid(x):
        """(D, 1 - D, e = exp(-|x|)) for D = sigmoid(x), lane-wise, without cancellation."""
        e = vexp(-ti.abs(x))
        inv = real(1.0) / (real(1.0) + e)
        return ti.select(x < 0, e * inv, inv), ti.select(x < 0, inv, e * inv), e

    @ti.func
    def to_col(v, lim, up: ti.template()):
        """First/last pixel index whose centre is >= v (up) / <= v (not up), clamped like binning.py
        (v a scalar or a vector)."""
        v = ti.max(ti.min(v, real(lim + 1)), real(-1.0)) - real(0.5)
        r = ti.ceil(v, ti.i32)
        if ti.static(not up):
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
        """Pixel columns [c0, c1] of row centre py that the face can reach: its box, cut to the disk
        (empty: c1 < c0). py a scalar or a vector of rows (the backward's block rows, one sqrt
        instruction for all): branch-free in py, the same bits either way."""
        zero = ti.cast(py * real(0.0), ti.i32)  # 0 in py's shape (py is a finite pixel row centre)
        c0 = ti.max(to_col(fs[f, FS_BOX], W, True), c_lo) + zero
        c1 = ti.min(to_col(fs[f, FS_BOX + 1], W, False), c_hi) + zero
        rad = fs[f, FS_DISK + 2]
        if rad >= 0:
            dy = py - fs[f, FS_DISK + 1]
            h2 = rad * rad - dy * dy
            half = ti.sqrt(ti.max(h2, real(0.0)))
            cx = fs[f, FS_DISK]
            c0 = ti.max(c0, to_col(cx - half, W, True))
            c1 = ti.select(h2 < 0, c0 - 1, ti.min(c1, to_col(cx + half, W, False)))
        return c0, c1

    @kernel
    def spatial_keys(sv: arr, faces: iarr, tab: iarr, key: iarr):
        """key (E,) int32: the Morton code of the SPATIAL_CELL-pixel cell under each entry's screen
        centroid (cell coordinates clamped to [0, 2^15): a face with a NaN vertex gets some key in
        [0, 2^30), which only places it), the key of ``spatial_order`` (cells, not pixels: keys of
        fewer bits, a faster radix sort)."""
        for e in range(key.shape[0]):
            b, g = entry_face(tab, e)
            bs = b if sv.shape[0] > 1 else 0
            cx = real(0.0)
            cy = real(0.0)
            for i in ti.static(range(3)):
                cx += sv[bs, faces[g, i], 0]
                cy += sv[bs, faces[g, i], 1]
            s = real(1.0 / (3 * SPATIAL_CELL))
            ixy = ti.Vector([ti.cast(ti.min(ti.max(cx * s, real(0.0)), real(32767.0)), ti.i32),
                             ti.cast(ti.min(ti.max(cy * s, real(0.0)), real(32767.0)), ti.i32)]) & 32767
            for k in ti.static(range(4)):  # spread the 15 bits to the even bit positions
                sh = ti.static(8 >> k)
                ixy = (ixy | (ixy << sh)) & ti.static([0x00FF00FF, 0x0F0F0F0F, 0x33333333, 0x55555555][k])
            key[e] = ixy[0] | (ixy[1] << 1)

    @kernel
    def setup(sv: arr, faces: iarr, tab: iarr, eperm: iarr, fs: arr, reach: arr, dkey: karr, near: real,
              margin: real, use_disk: ti.i32):
        """Per-entry constants into fs (E, K) and where each entry reaches into reach (E, NREACH):
        the binning box (``REACH_BOX``: the vertex box grown by ``margin`` pixels, cut to the disk
        of radius R + margin around the centroid if use_disk), then the disk (``REACH_DISK``: centre
        and radius, -1 without) as in fs, in rows of their own for the passes that read them by
        tile entry (``cell_mask``, binning). Slot f holds entry ``eperm[f]`` (``spatial_order``:
        a permutation within each image's entries, so slot f's image is entry f's). dkey (E,): the
        depth order's sort key: ascending keys put the largest 1 / z_i first (0 for a skipped face:
        last), ties for a stable sort to break by slot (integer keys: torch's stable argsort of 70k
        took 0.5 ms, of the float values 6 ms)."""
        for f in range(fs.shape[0]):
            b, g = entry_face(tab, eperm[f])
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
            iee = vec3(0.0)
            iz = vec3(0.0)
            for i in ti.static(range(3)):
                fs[f, 2 * i] = xs[i]
                fs[f, 2 * i + 1] = ys[i]
                iz[i] = real(1.0) / zs[i] if ok else real(0.0)
                fs[f, FS_IZ + i] = iz[i]
                ex = lx[(i + 1) % 3] - lx[i]
                ey = ly[(i + 1) % 3] - ly[i]
                iee[i] = real(1.0) / (ex * ex + ey * ey) if ok else real(0.0)
                fs[f, FS_IEE + i] = iee[i]
            iA = real(1.0) / A if ok else real(0.0)
            fs[f, FS_IA] = iA
            ab, tc = frame_planes(lx, ly, iA, iee)
            for i in ti.static(range(3)):
                for j in ti.static(range(3)):
                    fs[f, FS_AB + 3 * i + j] = ab[i, j]
                    fs[f, FS_TC + 3 * i + j] = tc[i, j]
            fs[f, FS_ZMIN] = real(1.0) / iz.max() if ok else real(0.0)
            # non-negative floats order like their bits; ~bits = -1 - bits reverses that order
            dkey[f] = ~ti.bit_cast(iz.max(), BITS)
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
            disk = vec3(cx, cy, rad)
            for k in ti.static(range(4)):
                fs[f, FS_BOX + k] = box[k]
                reach[f, REACH_BOX + k] = box[k]
            for k in ti.static(range(3)):
                fs[f, FS_DISK + k] = disk[k]
                reach[f, REACH_DISK + k] = disk[k]
            reach[f, NREACH - 1] = real(0.0)

    @kernel
    def entry_colours(colors: arr, faces: iarr, tab: iarr, eperm: iarr, fcol: arr, cmaxb: karr, per_face: ti.i32,
                      C: ti.template()):
        """fcol (E, 3, C): each face entry's corner colours (``face_colours``), so the forward reads
        one row per face instead of gathering through faces; cmaxb (B,), zero on entry: the bits
        of image b's largest |colour| over its entries' corners, kept by ``atomic_max`` on the
        bits (non-negative floats order like their bits; integer atomics exist on every backend).
        Per image, so a pixel's cut-off (``kc``) is the same in a batch as alone."""
        for f in range(fcol.shape[0]):  # the E face entry slots (``setup``'s eperm)
            b, g = entry_face(tab, eperm[f])
            bc = b if colors.shape[0] > 1 else 0
            col = face_colours(colors, faces, bc, g, per_face, C)
            m = real(0.0)
            for i in ti.static(range(3)):
                for ch in ti.static(range(C)):
                    fcol[f, i, ch] = col[i, ch]
                    m = ti.max(m, ti.abs(col[i, ch]))
            mb = ti.bit_cast(m, BITS)
            if mb > cmaxb[b]:  # a plain read first (one shared address; bunny 512²: min 2.2 -> 1.5-1.8 ms)
                ti.atomic_max(cmaxb[b], mb)

    @ti.func
    def block_max(cutb: siarr, b, HB, WB, rb, cb):
        """The largest of block (rb, cb)'s lane values in cutb (``pixel_prep``'s layout)."""
        v = load(cutb, (b * HB + rb) * WB + cb)
        m = v[0]
        for l in ti.static(range(1, LANES)):
            m = ti.max(m, v[l])
        return m

    @kernel
    def tile_max_cut(cutb: siarr, tmax: iarr, H: ti.i32, W: ti.i32, T: ti.i32):
        """tmax (B, ntiles) = the largest pair bound (``pixel_prep``'s cutb) over each T x T tile's
        pixels, read from the blocks that hold them: a block across two tiles counts in both (a bound
        at least the tile's own: the backward's skips stay safe)."""
        HB = (H + BR - 1) // BR
        WB = (W + BC - 1) // BC
        ntx = (W + T - 1) // T
        for b, tile in ti.ndrange(tmax.shape[0], tmax.shape[1]):
            r_lo = (tile // ntx) * T
            c_lo = (tile % ntx) * T
            m = 0
            for rb in range(r_lo // BR, (ti.min(r_lo + T, H) - 1) // BR + 1):
                for cb in range(c_lo // BC, (ti.min(c_lo + T, W) - 1) // BC + 1):
                    m = ti.max(m, block_max(cutb, b, HB, WB, rb, cb))
            tmax[b, tile] = m

    @kernel
    def seg_max_cut(cutb: siarr, smax: iarr, W: ti.i32):
        """smax (B, ceil(H / BR), ceil(W / SEG)) = the largest pair bound (``pixel_prep``'s cutb)
        over each segment of BR rows and SEG columns (the backward's rows of blocks; SEG is a
        multiple of BC, so a segment is SEG / BC whole blocks)."""
        HB = smax.shape[1]
        WB = (W + BC - 1) // BC
        for b, rb, sg in smax:
            m = 0
            for cb in range(sg * (SEG // BC), ti.min(sg * (SEG // BC) + SEG // BC, WB)):
                m = ti.max(m, block_max(cutb, b, HB, WB, rb, cb))
            smax[b, rb, sg] = m

    @ti.func
    def used_somewhere(fs: arr, tmax: iarr, b, f, rank_f, H, W, T):
        """Whether any tile under face f's box has a pixel whose pair bound (``ecut``, "The backward's
        pairs") is above f's rank: a face no pixel has a pair with (most of the hidden side of a
        dense mesh) is skipped whole."""
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

    @ti.func
    def face_colours(colors: arr, faces: iarr, bc, g, per_face, C: ti.template()):
        """(3, C) corner colours of face g in colour batch row bc (all = the face colour per face)."""
        col = ti.Matrix.zero(real, 3, C)
        for i in ti.static(range(3)):
            vc = g if per_face else faces[g, i]
            for ch in ti.static(range(C)):
                col[i, ch] = colors[bc, vc, ch]
        return col

    @ti.func
    def lane_saturated(zm, Z, L, Tp, zmin, nrem, cz, kc, tol):
        """The depth-ordered cut-off (module docstring), lane-wise: whether the ``nrem`` faces left
        in the tile's list, none nearer than ``zmin``, may all be skipped. ``1 - alpha =
        exp(-L) / (1 + T) <= tol`` is tested as ``(1 + T) tol >= exp(-L)`` (no log); the cheap
        depth test first (the face well behind the pixel's front)."""
        dz = (zm - zmin) * cz
        sat = dz < real(-CUT_PREFILTER)
        if any_lane(sat):  # the exps only for blocks the cheap test leaves (most blocks: none)
            sat = sat & (vexp(dz) * nrem * kc <= Z) & ((real(1.0) + Tp) * tol >= vexp(-L))
        return sat

    @ti.func
    def lane_coverage(L, Tp, m, xx):
        """Alpha sums of the lanes in m after a face with x = xx: (D, L, T) (module docstring)."""
        D, _, ev = lane_sigmoid(xx)
        L = ti.select(m, L + ti.max(xx, real(0.0)), L)
        Tp = ti.select(m, Tp + ev * (real(1.0) + Tp), Tp)
        big = Tp > real(T_FOLD)
        if any_lane(big):
            L = ti.select(big, L + ti.log(Tp), L)
            Tp = ti.select(big, real(0.0), Tp)
        return D, L, Tp

    @ti.func
    def lane_colour(zm, Z, acc, cm, D, ba0, ba1, ba2, iz, col, cz, per_face, C: ti.template()):
        """Softmax sums of the lanes in cm after a face of coverage D and colour barycentrics ba:
        (zm, Z, acc), acc (C, LANES) the unnormalised colours, rescaled at a new softmax max."""
        qa = ba0 * iz[0]
        qb = ba1 * iz[1]
        qc = ba2 * iz[2]
        zp = real(1.0) / (qa + qb + qc)
        newmax = cm & (zp < zm)
        scl = vL(1.0)
        if any_lane(newmax):  # a new softmax max: rare after a pixel's first faces (depth order)
            scl = ti.select(newmax, vexp((zp - zm) * cz), real(1.0))
        zm = ti.select(newmax, zp, zm)
        w = D * vexp((zm - zp) * cz)
        Z = ti.select(cm, Z * scl + w, Z)
        wz = zp * w
        for ch in ti.static(range(C)):
            add = w * col[0, ch]
            if not per_face:
                add = (qa * wz) * col[0, ch] + (qb * wz) * col[1, ch] + (qc * wz) * col[2, ch]
            for l in ti.static(range(LANES)):
                acc[ch, l] = ti.select(cm[l], acc[ch, l] * scl[l] + add[l], acc[ch, l])
        return zm, Z, acc

    @ti.func
    def block_finish(out: arr, aux: arr, cut: iarr, lastc: iarr, b, rl, cl, inb, zm, Z, L, Tp, acc, cutv, lastv, zb,
                     cz, tol, C: ti.template(), approx: ti.template()):
        """Normalise a block's sums into out, aux, cut and lastc at its lanes' pixels (rl, cl), those in inb.
        With ``approx``, a pixel with ``1 - alpha <= tol`` gets alpha = 1 exactly and aux's 1 - alpha
        = 0 (the saturation snap, module docstring: its alpha gradient is then exactly 0)."""
        for l in ti.static(range(LANES)):
            if inb[l]:
                r = rl[l]
                c = cl[l]
                S = -(L[l] + log1p(Tp[l]))
                iZ = real(1.0) / Z[l]
                for ch in ti.static(range(C)):
                    out[b, r, c, ch] = acc[ch, l] * iZ
                om = ti.exp(S)  # 1 - alpha
                alpha = -expm1(S)
                if ti.static(approx):
                    if om <= tol:
                        om = real(0.0)
                        alpha = real(1.0)
                out[b, r, c, C] = alpha
                aux[b, r, c, 0] = zm[l]
                aux[b, r, c, 1] = Z[l]
                aux[b, r, c, 2] = exp_((zm[l] - zb) * cz) * iZ
                aux[b, r, c, 3] = om
                cut[b, r, c] = cutv[l]
                lastc[b, r, c] = lastv[l]

    @ti.func
    def tile_cells(T):
        """The cell grid of a T x T tile's blocks (``cell_mask``): (TBr, TBc) blocks per tile
        column and row, (CR, CC) cells, at most MASK_SIDE x MASK_SIDE; block (i, j) is in cell
        (i CR // TBr, j CC // TBc)."""
        TBr = (T + BR - 1) // BR
        TBc = (T + BC - 1) // BC
        return TBr, TBc, ti.min(TBr, MASK_SIDE), ti.min(TBc, MASK_SIDE)

    @ti.func
    def cell_mask(reach: arr, f, ty, tx, k, emask: iarr, T):
        """The forward's cell mask of entry f at place k of tile (ty, tx)'s list (a ``visit`` of
        kernels/binning.py: the chunked fill computes it as it writes the entry, with f's reach row in
        cache): emask[k] gets bit ``a CC + c`` when the face's box and disk (``setup``'s reach; they
        hold every pixel it reaches) reach a pixel centre of cell (a, c) of the tile
        (``tile_cells``: on the CPU with 16-pixel tiles a cell is one 4 x 4 block, on GPUs a 4 x 4
        group of pixels). The forward's blocks test their cell's bit, so a face's row of fs is touched
        only by the blocks that use it, and a tile tests each face once per cell instead of once per
        block and face. Vectorised over the cells."""
        TBr, TBc, CR, CC = tile_cells(T)
        r_lo = ty * T
        c_lo = tx * T
        # each cell's pixel-centre rectangle: its first and last block rows / columns, relative to the
        # tile's corner (they depend on T only), then moved to the tile
        x0 = vM(0.0)
        x1 = vM(0.0)
        y0 = vM(0.0)
        y1 = vM(0.0)
        bits = iM(0)  # each cell's bit, 0 for cells beyond the grid
        for q in ti.static(range(MASK_SIDE * MASK_SIDE)):
            a = ti.static(q // MASK_SIDE)
            c = ti.static(q % MASK_SIDE)
            # cell a's blocks are rows ceil(a TBr / CR) .. ceil((a + 1) TBr / CR) - 1, with CR = TBr
            # (a cell per block: a .. a) or MASK_SIDE (a constant divisor): no division by a runtime
            # value, which LLVM may not hoist out of the fill's loops (bin_faces 0.92x without them)
            y0[q] = real(ti.select(CR == TBr, a, (a * TBr + MASK_SIDE - 1) // MASK_SIDE) * BR) + real(0.5)
            y1[q] = real(ti.select(CR == TBr, a + 1, ((a + 1) * TBr + MASK_SIDE - 1) // MASK_SIDE) * BR - 1) + real(0.5)
            x0[q] = real(ti.select(CC == TBc, c, (c * TBc + MASK_SIDE - 1) // MASK_SIDE) * BC) + real(0.5)
            x1[q] = real(ti.select(CC == TBc, c + 1, ((c + 1) * TBc + MASK_SIDE - 1) // MASK_SIDE) * BC - 1) + real(0.5)
            if a < CR and c < CC:
                bits[q] = 1 << (a * CC + c)
        x0 += real(c_lo)  # exact: integers + 0.5
        x1 += real(c_lo)
        y0 += real(r_lo)
        y1 += real(r_lo)
        cur = ti.Vector([reach[f, q] for q in ti.static(range(NREACH - 1))])
        hit = (y1 >= cur[REACH_BOX + 2]) & (y0 <= cur[REACH_BOX + 3]) & (x1 >= cur[REACH_BOX]) & \
            (x0 <= cur[REACH_BOX + 1])
        rad = cur[REACH_DISK + 2]
        if rad >= 0:
            cx = cur[REACH_DISK]
            cy = cur[REACH_DISK + 1]
            dx = ti.max(ti.max(x0 - cx, cx - x1), real(0.0))  # to the cell's nearest pixel centre
            dy = ti.max(ti.max(y0 - cy, cy - y1), real(0.0))
            hit = hit & (dx * dx + dy * dy <= rad * rad)
        mv = ti.select(hit, bits, 0)
        m = mv[0]
        for q in ti.static(range(1, MASK_SIDE * MASK_SIDE)):
            m |= mv[q]
        emask[k] = m

    @kernel
    def forward(fs: arr, fcol: arr, bg: arr, offsets: iarr, tile_faces: iarr, emask: iarr, rank: iarr, out: arr, aux: arr,
                cut: iarr, lastc: iarr, torder: iarr, NB: ti.i32, T: ti.i32, BPT: ti.i32, k2: real, d2cull: real,
                cz: real, zb: real, uc: real, cmaxb: karr, tol: real, per_face: ti.i32, C: ti.template(),
                approx: ti.template()):
        """One thread per block of BR x BC pixels of a T x T tile (NB = len(torder) BPT threads, BPT =
        ceil(T / BR) ceil(T / BC) blocks per tile; the tiles in the order ``torder``); out (B, H,
        W, C + 1), aux (B, H, W, 4), cut (B, H, W), lastc (B, H, W): the rank of each pixel's last
        pair with colour weight (-1 if none; ``pixel_prep``).

        The block keeps its pixels' running sums (zm, Z, sum max(x, 0) + folded logs, T, the C
        unnormalised colour sums, the cut) in registers while it walks its tile's faces in depth
        order. A face whose box and disk hold none of the centres of the block's cell is passed
        over (``cell_mask``); otherwise every lane is computed and kept or dropped by a select (code
        LLVM turns into SIMD instructions on the CPU), with the formulas of the module docstring:
        a lane is summed when its pixel is not cut and ``inside | d2 <= d2cull`` (the disk holds
        every such pixel, so the backward's blocks reach the same pairs). With ``approx``, a
        pixel whose remaining faces provably change it by less than ``tol`` stops (cut = the rank
        of the first face it skips, NO_CUT otherwise; a face the pixel was tested at without
        reaching it is as good as the next one that would, since its sums did not change and the
        test only loosens along the list), and the block stops when all its pixels have."""
        H, W = out.shape[1], out.shape[2]
        ntx = (W + T - 1) // T
        nty = (H + T - 1) // T
        TBr, TB, CR, CC = tile_cells(T)  # TB: blocks per row of blocks of a tile
        lrow = iL([l // BC for l in ti.static(range(LANES))])  # each lane's row and column in its block
        lcol = iL([l % BC for l in ti.static(range(LANES))])
        ti.loop_config(block_dim=tile_block)
        for it in range(NB):  # len(torder) BPT blocks
            tid = torder[it // BPT]  # the tiles, B images' in a row, in the order of _binning.tile_schedule
            b = tid // (ntx * nty)
            tile = tid - b * (ntx * nty)
            rb = it % BPT
            br0 = (rb // TB) * BR  # the block's first row and column in the tile
            bc0 = (rb % TB) * BC
            r_lo = (tile // ntx) * T
            c_lo = (tile % ntx) * T
            r_hi = ti.min(r_lo + T, H) - 1
            c_hi = ti.min(c_lo + T, W) - 1
            cbit = 1 << (((rb // TB) * CR // TBr) * CC + (rb % TB) * CC // TB)  # the block's cell (cell_mask)
            if r_lo + br0 <= r_hi and c_lo + bc0 <= c_hi:
                cmax = ti.bit_cast(cmaxb[b], real)  # image b's largest |colour| (``entry_colours``)
                for ch in ti.static(range(C)):
                    cmax = ti.max(cmax, ti.abs(bg[ch]))
                kc = real(2.0) * cmax / tol  # the cut-off's colour test: |c - rgb| <= 2 cmax
                rl = r_lo + br0 + lrow  # the lanes' pixels
                cl = c_lo + bc0 + lcol
                px = ti.cast(cl, real) + real(0.5)
                py = ti.cast(rl, real) + real(0.5)
                zm = vL(zb)  # zm = zb, Z = 1 (w_b = exp((zm - zb) cz) = 1 while zm = zb), colours = bg
                Z = vL(1.0)
                L = vL(0.0)
                Tp = vL(0.0)
                acc = ti.Matrix([[bg[ch] for _ in ti.static(range(LANES))] for ch in ti.static(range(C))], real)
                cutv = iL(NO_CUT)
                lastv = iL(-1)
                inb = (rl <= r_hi) & (cl <= c_hi)  # lanes in the tile
                go = inb  # lanes still summing: in the tile and not cut
                k1 = offsets[tid + 1]
                # the block's faces are the list entries with its cell's bit; the next one's depth is
                # loaded while this one is computed (its fs row's first touch was the pass's
                # hottest cache miss)
                k = offsets[tid]
                while k < k1 and (emask[k] & cbit) == 0:
                    k += 1
                zn = real(0.0)
                if k < k1:
                    zn = fs[tile_faces[k], FS_ZMIN]
                while k < k1:
                    f = tile_faces[k]
                    zmin = zn  # the face's nearest depth: its largest z_j / gamma
                    kn = k + 1
                    while kn < k1 and (emask[kn] & cbit) == 0:
                        kn += 1
                    if kn < k1:
                        zn = fs[tile_faces[kn], FS_ZMIN]
                    if ti.static(approx):
                        sat = go & lane_saturated(zm, Z, L, Tp, zmin, real(k1 - k), cz, kc, tol)
                        if any_lane(sat):
                            cutv = ti.select(sat, rank[f], cutv)
                            go = go & (sat == 0)
                            if not any_lane(go):
                                break
                    ox, oy, xs, ys, ab, tc = face_frame(fs, f, True)
                    a0, a1, a2, inside, d2, ke, tb = lane_geometry(xs, ys, ab, tc, px - ox, py - oy)
                    m = go & (inside | (d2 <= d2cull))
                    if any_lane(m):
                        D, L, Tp = lane_coverage(L, Tp, m, ti.select(inside, d2 * k2, -d2 * k2))
                        cm = m & ((zm - zmin) * cz >= -uc)  # else w is 0 (the colour floor)
                        if any_lane(cm):
                            iz = vec3(fs[f, FS_IZ], fs[f, FS_IZ + 1], fs[f, FS_IZ + 2])
                            col = ti.Matrix([[fcol[f, i, ch] for ch in ti.static(range(C))]
                                             for i in ti.static(range(3))], real)
                            ba0, ba1, ba2 = lane_abar(inside, a0, a1, a2, ke, tb)
                            zm, Z, acc = lane_colour(zm, Z, acc, cm, D, ba0, ba1, ba2, iz, col, cz, per_face, C)
                            lastv = ti.select(cm, rank[f], lastv)
                    k = kn
                block_finish(out, aux, cut, lastc, b, rl, cl, inb, zm, Z, L, Tp, acc, cutv, lastv, zb, cz, tol, C,
                             approx)

    @kernel
    def pixel_prep(out: arr, aux: arr, gout: arr, cut: iarr, lastc: iarr, pb: sarr, cutb: siarr, C: ti.template()):
        """Per-pixel backward constants, in blocks of BR x BC pixels (lane l: row l // BC, column
        l % BC of its block; the backward's loads): ``pb`` (B, HB, WB, 4 + C) blocks, HB =
        ceil(H / BR), WB = ceil(W / BC), each block's values together (one block's are a few
        cache lines; planes apart measured 10% slower): zm, 1 / Z, g_alpha (1 - alpha), g_rgb .
        rgb, then g_rgb; ``cutb`` (B, HB, WB) each pixel's pair bound ``ecut`` (module docstring, "The
        backward's pairs"), 0 for pixels whose gradient is all zero (no pair of theirs adds
        anything) and for lanes outside the image. A pixel whose rgb gradient
        is 0 gets zm = -1e30 (its colour parts are 0: the backward's underflow test skips them)."""
        B, H, W = out.shape[0], out.shape[1], out.shape[2]
        HB = (H + BR - 1) // BR
        WB = (W + BC - 1) // BC
        for b, rb, cb in ti.ndrange(B, HB, WB):
            base = ((b * HB + rb) * WB + cb) * (4 + C)
            vals = ti.Matrix.zero(real, 4 + C, LANES)
            cv = iL(0)
            for l in ti.static(range(LANES)):
                r = rb * BR + l // BC
                c = cb * BC + l % BC
                if r < H and c < W:
                    G = real(0.0)
                    act_rgb = 0
                    for ch in ti.static(range(C)):
                        G += gout[b, r, c, ch] * out[b, r, c, ch]
                        vals[4 + ch, l] = gout[b, r, c, ch]
                        if gout[b, r, c, ch] != 0:
                            act_rgb = 1
                    ga = gout[b, r, c, C] * aux[b, r, c, 3]
                    act = act_rgb
                    if ga != 0:
                        act = 1
                    # no rgb gradient: every pair's colour part is 0; a front depth no face is behind
                    # by less than the underflow bound makes the backward's colour test skip it
                    vals[0, l] = ti.select(act_rgb != 0, aux[b, r, c, 0], real(-1e30))
                    vals[1, l] = real(1.0) / aux[b, r, c, 1]
                    vals[2, l] = ga
                    vals[3, l] = G
                    # the pixel's pairs worth computing are those ranked below ecut (module docstring,
                    # "The backward's pairs"): the forward's cut, and with no alpha gradient only up
                    # to its last pair with colour weight
                    e = cut[b, r, c]
                    if ga == 0:
                        e = ti.min(e, lastc[b, r, c] + 1)
                    e = ti.select(act != 0, e, 0)
                    cv[l] = e
            for k in ti.static(range(4 + C)):
                store(pb, base + k, vL([vals[k, l] for l in ti.static(range(LANES))]))
            store(cutb, (b * HB + rb) * WB + cb, cv)

    @ti.func
    def pick3(k: ti.template(), v0, v1, v2):
        """v_k for a compile-time k."""
        if ti.static(k == 0):
            return v0
        elif ti.static(k == 1):
            return v1
        else:
            return v2

    @ti.func
    def add_lanes(M: ti.template(), i: ti.template(), v, m0):
        """M[i, :] += v: a row of the face's per-lane sums (gx, gy, gz), indexed through m0 =
        ``mem_zero`` (kept in memory)."""
        for l in ti.static(range(LANES)):
            M[i + m0, l] += v[l]

    @ti.func
    def mem_zero(n):
        """0 for indexing a local matrix that should stay an array in memory (on the CPU's lanes):
        ``min(n, 0)`` for a kernel input n >= 0, which LLVM cannot prove constant, so it keeps the
        matrix as a stack array (in L1) instead of promoting its elements to registers. The
        backward's per-lane sums of a face (9 geometry + 3 C colour lane vectors) in registers
        spilled the block's values; folding the colour ones over the lanes at every block (the
        previous way) cost the sums. With the colour sums in memory the backward kernel took
        0.81-0.85x the folded time, with the geometry sums too a further 0.94-0.97x (bunny 512²,
        1 and 2 threads, old and new interleaved). A literal 0 with one lane (GPUs: nothing to
        spill)."""
        r = 0
        if ti.static(LANES > 1):
            r = ti.min(n, 0)
        return r

    @ti.func
    def lane_total(M: ti.template(), q: ti.template()):
        """The sum of row q of M (n x LANES) over the lanes (a face's sums, at its end)."""
        sm = M[q, 0]
        for l in ti.static(range(1, LANES)):
            sm += M[q, l]
        return sm

    @ti.func
    def lane_colour_grad(gcl: ti.template(), m0, gz: ti.template(), cl, D, omD, ba0, ba1, ba2, iz, zm, invZ, G,
                         grgb, col, cz, per_face, C: ti.template()):
        """Colour / depth part of the lanes in cl (module docstring, "Backward derivation"): adds
        the colour gradients to gcl (3 C x LANES lane sums, row i C + ch) and the depth ones
        (through 1 / z_i) to gz, both indexed through m0 = ``mem_zero`` (kept in memory); returns
        (g_x's colour term, g_abar_0, g_abar_1, g_abar_2), 0 off cl. grgb (C, LANES): the pixels'
        g_rgb."""
        qa = ba0 * iz[0]
        qb = ba1 * iz[1]
        qc = ba2 * iz[2]
        zp = real(1.0) / (qa + qb + qc)
        bb0 = qa * zp
        bb1 = qb * zp
        bb2 = qc * zp
        # zm is the forward's min over faces of zp: (zm - zp) <= 0 exactly, but zp recomputed here
        # may round below zm, and times a large cz (small gamma) that would overflow exp: clamp.
        w = D * vexp(ti.min((zm - zp) * cz, real(0.0)))
        wZ = w * invZ
        # gcv_i = g_rgb . colors[v_i]; g_c_j . c_j = sum_i b_i gcv_i
        gcv0 = vL(0.0)
        gcv1 = vL(0.0)
        gcv2 = vL(0.0)
        s0 = ti.select(cl, bb0 * wZ, real(0.0))  # the colour gradients' weights, 0 off cl
        s1 = ti.select(cl, bb1 * wZ, real(0.0))
        s2 = ti.select(cl, bb2 * wZ, real(0.0))
        for ch in ti.static(range(C)):
            g = vL([grgb[ch, l] for l in ti.static(range(LANES))])
            gcv0 += col[0, ch] * g
            gcv1 += col[1, ch] * g
            gcv2 += col[2, ch] * g
            for i in ti.static(range(3)):
                v = pick3(i, s0, s1, s2) * g  # the lanes' colour gradients s_i g_ch
                for l in ti.static(range(LANES)):
                    gcl[i * C + ch + m0, l] += v[l]
        g_w = (gcv0 * bb0 + gcv1 * bb1 + gcv2 * bb2 - G) * invZ
        g_zp = -g_w * w * cz  # z_j / gamma = (far - zp) cz
        # perspective correction: q_i = abar_i / z_i, b = q / Q, zp = 1 / Q
        gq0 = -g_zp * zp * zp
        gq1 = gq0
        gq2 = gq0
        if not per_face:  # per face, c_j does not depend on b
            gbb = (gcv0 * bb0 + gcv1 * bb1 + gcv2 * bb2) * wZ
            gq0 += (gcv0 * wZ - gbb) * zp
            gq1 += (gcv1 * wZ - gbb) * zp
            gq2 += (gcv2 * wZ - gbb) * zp
        gab0 = ti.select(cl, gq0 * iz[0], real(0.0))
        gab1 = ti.select(cl, gq1 * iz[1], real(0.0))
        gab2 = ti.select(cl, gq2 * iz[2], real(0.0))
        add_lanes(gz, 0, -gab0 * ba0 * iz[0], m0)
        add_lanes(gz, 1, -gab1 * ba1 * iz[1], m0)
        add_lanes(gz, 2, -gab2 * ba2 * iz[2], m0)
        return ti.select(cl, g_w * w * omD, real(0.0)), gab0, gab1, gab2

    @ti.func
    def lane_edge_grad(gx: ti.template(), gy: ti.template(), m0, iee3, xs, ys, x, y, inside, ke, tb, g_d2, gab0,
                       gab1, gab2):
        """Adds to gx, gy the lanes' gradients through the nearest edge ke (P = s_ke, Q = s_ke+1):
        the distance (envelope theorem, ``d(d^2)/dP = -2 (p - N)(1 - t)``, ``d(d^2)/dQ = -2 (p - N)
        t``) and, outside, the colour barycentrics ``abar_P = 1 - t``, ``abar_Q = t`` through
        ``t = (r . e) / (e . e)``, r = p - P, e = Q - P (gab is 0 off colour). Each lane's edge
        is picked by selects, its terms computed once and added to its two vertices."""
        e0 = ke == 0
        e1 = ke == 1
        Px = ti.select(e0, xs[0], ti.select(e1, xs[1], xs[2]))
        Py = ti.select(e0, ys[0], ti.select(e1, ys[1], ys[2]))
        ex = ti.select(e0, xs[1], ti.select(e1, xs[2], xs[0])) - Px
        ey = ti.select(e0, ys[1], ti.select(e1, ys[2], ys[0])) - Py
        gP = ti.select(e0, gab0, ti.select(e1, gab1, gab2))
        gQ = ti.select(e0, gab1, ti.select(e1, gab2, gab0))
        iee = ti.select(e0, iee3[0], ti.select(e1, iee3[1], iee3[2]))
        rx = x - Px
        ry = y - Py
        nx = rx - tb * ex
        ny = ry - tb * ey
        s0 = real(-2.0) * g_d2 * (real(1.0) - tb)
        s1 = real(-2.0) * g_d2 * tb
        g_t = ti.select((inside == 0) & (tb > 0) & (tb < 1), (gQ - gP) * iee, real(0.0))
        cPx = s0 * nx + g_t * (-ex - rx + real(2.0) * tb * ex)
        cPy = s0 * ny + g_t * (-ey - ry + real(2.0) * tb * ey)
        cQx = s1 * nx + g_t * (rx - real(2.0) * tb * ex)
        cQy = s1 * ny + g_t * (ry - real(2.0) * tb * ey)
        for k in ti.static(range(3)):
            isP = ke == k  # vertex k is P of edge k and Q of edge k - 1
            isQ = ke == ti.static((k + 2) % 3)
            add_lanes(gx, k, ti.select(isP, cPx, ti.select(isQ, cQx, real(0.0))), m0)
            add_lanes(gy, k, ti.select(isP, cPy, ti.select(isQ, cQy, real(0.0))), m0)

    @ti.func
    def lane_inside_grad(gx: ti.template(), gy: ti.template(), m0, mi, iA, xs, ys, x, y, a0, a1, a2, gab0, gab1, gab2):
        """Adds to gx, gy the gradients of the lanes in mi (inside, colour) through the screen
        barycentrics: ``g_E_k = (g_a_k - sum_i g_a_i a_i) / A`` and the edge-function derivatives."""
        gdot = gab0 * a0 + gab1 * a1 + gab2 * a2
        for i in ti.static(range(3)):
            j = ti.static((i + 1) % 3)
            k = ti.static((i + 2) % 3)
            gEi = ti.select(mi, (pick3(i, gab0, gab1, gab2) - gdot) * iA, real(0.0))
            add_lanes(gx, j, gEi * (ys[k] - y), m0)
            add_lanes(gy, k, gEi * (xs[j] - x), m0)
            add_lanes(gx, k, -gEi * (ys[j] - y), m0)
            add_lanes(gy, j, -gEi * (xs[k] - x), m0)

    @ti.func
    def scatter_verts(faces: iarr, gsv: arr, b, g, gx, gy, gz):
        """gsv (Bs, V, 3) += the corner gradients (gx, gy, gz)[i] of face g of image b at its
        vertices (atomics; Bs = 1 sums over the batch)."""
        bs = b if gsv.shape[0] > 1 else 0
        for i in ti.static(range(3)):
            v = faces[g, i]
            ti.atomic_add(gsv[bs, v, 0], gx[i])
            ti.atomic_add(gsv[bs, v, 1], gy[i])
            ti.atomic_add(gsv[bs, v, 2], gz[i])

    @ti.func
    def scatter_colors(faces: iarr, gcol: arr, b, g, gc, per_face, C: ti.template()):
        """gcol (Bc, V or F, C) += the corner colour gradients gc (3, C) of face g of image b (per
        face: their sum, at the face)."""
        bc = b if gcol.shape[0] > 1 else 0
        if per_face:
            for ch in ti.static(range(C)):
                ti.atomic_add(gcol[bc, g, ch], gc[0, ch] + gc[1, ch] + gc[2, ch])
        else:
            for i in ti.static(range(3)):
                v = faces[g, i]
                for ch in ti.static(range(C)):
                    ti.atomic_add(gcol[bc, v, ch], gc[i, ch])

    @kernel
    def backward(fs: arr, faces: iarr, tab: iarr, eperm: iarr, colors: arr, pb: sarr, rank: iarr, cutb: siarr,
                 tmax: iarr, smax: iarr, gsv: arr, gcol: arr, H: ti.i32, W: ti.i32, T: ti.i32, k2: real,
                 d2cull: real, cz: real, uc: real, per_face: ti.i32, need_sv: ti.i32, need_col: ti.i32,
                 C: ti.template()):
        """One thread per face entry over the rows of BR x BC blocks its disk reaches (pb, cutb from
        ``pixel_prep``), passing over segments of SEG columns none of whose pixels has a pair with
        it (smax, ``seg_max_cut``): every lane computed, then kept or dropped by a select,
        into lane accumulators (in memory, ``mem_zero``) summed at the end of the face and added
        to the face's vertices: gsv (Bs, V, 3) += d/d(x_i, y_i, z_i) when need_sv, gcol (Bc, V or
        F, C) += the colour gradients when need_col (``scatter_*``; both zero-initialised by the
        caller)."""
        HB = (H + BR - 1) // BR
        WB = (W + BC - 1) // BC
        lrow = iL([l // BC for l in ti.static(range(LANES))])  # each lane's row and column in its block
        lcol = iL([l % BC for l in ti.static(range(LANES))])
        for f in range(fs.shape[0]):  # entry slots, in ``spatial_order``: neighbours share pixel blocks
            b, g = entry_face(tab, eperm[f])
            # the face's sums per lane, stack arrays indexed through m0 (mem_zero): d/dx_i, d/dy_i,
            # d/dz_i, and in row i C + ch of gcl d/dcolour_ch at vertex i
            gx = ti.Matrix.zero(real, 3, LANES)
            gy = ti.Matrix.zero(real, 3, LANES)
            gz = ti.Matrix.zero(real, 3, LANES)
            gcl = ti.Matrix.zero(real, 3 * C, LANES)
            m0 = mem_zero(H)
            rank_f = rank[f]
            if fs[f, FS_BOX] <= fs[f, FS_BOX + 1] and used_somewhere(fs, tmax, b, f, rank_f, H, W, T):
                bc = b if colors.shape[0] > 1 else 0
                ox, oy, xs, ys, ab, tc = face_frame(fs, f, True)
                iee3 = vec3(fs[f, FS_IEE], fs[f, FS_IEE + 1], fs[f, FS_IEE + 2])
                iA = fs[f, FS_IA]
                iz = vec3(fs[f, FS_IZ], fs[f, FS_IZ + 1], fs[f, FS_IZ + 2])
                zmin = real(1.0) / iz.max()
                col = face_colours(colors, faces, bc, g, per_face, C)
                r0, r1 = rows_of(fs, f, H, 0, H - 1)
                for rb in range(r0 // BR, r1 // BR + 1):
                    # the columns the face can reach in each lane's row (all the block's rows at once:
                    # a vector row_span), and in the block's rows
                    rl = rb * BR + lrow
                    s0v, s1v = row_span(fs, f, ti.cast(rl, real) + real(0.5), W, 0, W - 1)
                    live = (rl >= r0) & (rl <= r1) & (s0v <= s1v)
                    c0v = ti.select(live, s0v, W)
                    c1v = ti.select(live, s1v, -1)
                    c0 = c0v.min()
                    c1 = c1v.max()
                    y = ti.cast(rl, real) + real(0.5) - oy
                    for sg in range(c0 // SEG, c1 // SEG + 1):
                        if c0 > c1 or smax[b, rb, sg] <= rank_f:
                            continue  # no pixel of the segment has a pair with f (ecut <= rank)
                        for cb in range(ti.max(c0, sg * SEG) // BC, ti.min(c1, sg * SEG + SEG - 1) // BC + 1):
                            # pairs that may add something (rank below the pixel's ecut, which is 0
                            # outside the image and where the gradient is 0), in their row's span
                            # (which holds every pixel with inside | d2 <= d2cull: the test only
                            # spares lanes the work)
                            ccl = cb * BC + lcol
                            ok = (ccl >= c0v) & (ccl <= c1v) & (rank_f < load(cutb, (b * HB + rb) * WB + cb))
                            if not any_lane(ok):
                                continue
                            q0 = ((b * HB + rb) * WB + cb) * (4 + C)
                            zm = load(pb, q0)
                            ga = load(pb, q0 + 2)
                            # else w = 0 (the colour floor): no colour gradient. A lane in ok with ga = 0
                            # always passes (its rank is at most lastc's, and the test only tightens
                            # along the ranks), so ok needs no second test
                            colour = (zm - zmin) * cz >= -uc
                            x = ti.cast(ccl, real) + real(0.5) - ox
                            a0, a1, a2, inside, d2, ke, tb = lane_geometry(xs, ys, ab, tc, x, y)
                            m = ok & (inside | (d2 <= d2cull))
                            if not any_lane(m):
                                continue
                            sgn = ti.select(inside, real(1.0), real(-1.0))
                            D, omD, _ = lane_sigmoid(sgn * d2 * k2)
                            g_x = ga * D
                            cl = m & colour
                            gab0 = vL(0.0)
                            gab1 = vL(0.0)
                            gab2 = vL(0.0)
                            if any_lane(cl):
                                ba0, ba1, ba2 = lane_abar(inside, a0, a1, a2, ke, tb)
                                grgb = ti.Matrix([[load(pb, q0 + 4 + ch)[l] for l in ti.static(range(LANES))]
                                                  for ch in ti.static(range(C))], real)
                                gxc, gab0, gab1, gab2 = lane_colour_grad(gcl, m0, gz, cl, D, omD, ba0, ba1, ba2, iz,
                                                                         zm, load(pb, q0 + 1), load(pb, q0 + 3),
                                                                         grgb, col, cz, per_face, C)
                                g_x += gxc
                            # coverage: x = sgn d^2 k2, envelope theorem on the nearest edge ke
                            g_d2 = ti.select(m, g_x * sgn * k2, real(0.0))
                            lane_edge_grad(gx, gy, m0, iee3, xs, ys, x, y, inside, ke, tb, g_d2, gab0, gab1, gab2)
                            mi = inside & cl
                            if any_lane(mi):
                                lane_inside_grad(gx, gy, m0, mi, iA, xs, ys, x, y, a0, a1, a2, gab0, gab1, gab2)
                # the face's sums, scattered to its vertices here (a pass over faces and an (E, 9 +
                # 3 C) buffer less than scatter kernels; faces no pixel used add nothing)
                if need_sv:
                    scatter_verts(faces, gsv, b, g, vec3([lane_total(gx, i) for i in ti.static(range(3))]),
                                  vec3([lane_total(gy, i) for i in ti.static(range(3))]),
                                  vec3([lane_total(gz, i) for i in ti.static(range(3))]))
                if need_col:
                    gc = ti.Matrix([[lane_total(gcl, i * C + ch) for ch in ti.static(range(C))]
                                    for i in ti.static(range(3))], real)
                    scatter_colors(faces, gcol, b, g, gc, per_face, C)

    class Kernels:
        """The kernels, and the ti.func helpers kernels/dibr.py shares."""

    ns = Kernels()
    for name, obj in dict(setup=setup, spatial_keys=spatial_keys, forward=forward, pixel_prep=pixel_prep,
                          backward=backward, scatter_verts=scatter_verts, scatter_colors=scatter_colors,
                          face_frame=face_frame, tile_max_cut=tile_max_cut,
                          geometry=geometry, in_box=in_box, rows_of=rows_of, row_span=row_span,
                          expm1=expm1, vexp=vexp, entry_colours=entry_colours, cell_mask=cell_mask,
                          seg_max_cut=seg_max_cut).items():
        setattr(ns, name, obj)
    return ns
