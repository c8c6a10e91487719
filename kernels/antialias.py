"""Analytic antialiasing of silhouette edges (+ hand-written backward). DESIGN §4, §5.

Laine et al. 2020, "Modular Primitives for High-Performance Differentiable Rendering", §3.4
(nvdiffrast's ``antialias`` op); our own formulation, written for one thread per pixel.

Conventions (DESIGN §2): screen vertices ``sv``: x, y in pixels (x right, y down, the pixel in row
r, column c has its centre at (c + 0.5, r + 0.5)), z = camera depth (> 0 in front). Faces
``(F, 3)`` int32. Edge topology from taichirast/topology.py: edge k of face f joins its vertices
``(k + 1) % 3`` and ``(k + 2) % 3`` (the edge opposite vertex k); ``link[f, k] = 8 g + 4 s + j``
names the face g across it, the index j of the same edge in g, and s = 1 if g runs along the edge
in the same direction as f (winding inconsistent across the edge); -1 on a mesh boundary.

Forward, per pixel pair (p0, p1) with p1 the right (d = 0) or lower (d = 1) neighbour of p0 and
``face_id[p0] != face_id[p1]``:

1. The *front* face: the one of the two pixels' faces that is nearer (smaller depth; a background
   pixel, face -1, is farthest; depth ties go to p1's face). Its pixel is the *reference* pixel
   r; ``ds = +1`` if r = p0 (the other pixel lies at +1 along the pair's axis), ``ds = -1`` if
   r = p1.
2. Canonical frame: coordinates relative to r's centre, ``(u, v) = (x, y)`` for d = 0 and
   ``(u, v) = (y, x)`` for d = 1, so the pair's segment lies on the line v = 0 and the other
   pixel's centre is at u = ds.
3. Crossings. Edge (a, b) of a face, with both vertices at z > EDGE_NEAR (its screen projection
   is a true segment), crosses the line where it straddles it (``(v_a < 0) != (v_b < 0)``,
   half-open so a vertex on the line counts once), at ``u_c = u_a + t (u_b - u_a)``,
   ``t = v_a / (v_a - v_b)``, at distance ``s = ds u_c`` from r's centre towards the other pixel.
   A face's *exit* edge is its crossing edge with the largest s (the first edge wins ties): r's
   centre being inside the front face, that is where the pair's segment leaves it.
4. Fast path: if the other pixel's face is across an edge of the front face that crosses at
   ``s >= 0``, the segment passes from the front face straight into the other pixel's face:
   nothing to blend. (The walk below finds the same, one exit computation later; this settles
   most pairs inside a mesh's image.)
5. Walk to the silhouette. If the front face's exit edge is a *silhouette* edge on screen -- a
   boundary edge, or one whose two faces face opposite ways as seen by the camera -- it is the
   pair's edge. A face's orientation is the sign of its projective screen area,
   ``edge(s0, s1, s2) * sign(z0 z1 z2)`` (right also for a vertex behind the camera, whose
   projection is mirrored; > 0 is one orientation, <= 0 the other), and the two faces of an edge
   face opposite ways iff their orientations differ (s = 0 in the link) or agree (s = 1: the
   winding flips across the edge) -- equivalently, the neighbour's third vertex lies on the same
   side of the edge as the face's own: the mesh folds over there. Otherwise the surface goes on
   across that edge: step into the neighbouring face and take its exit edge (never the edge just
   crossed), up to MAX_WALK faces. The walk ends without an edge when the exit crossing is past
   the other pixel's centre (``s >= 1 + AA_EPS``), when it would enter the other pixel's own
   face, at a dead end (no crossing), or after MAX_WALK steps.
   nvdiffrast tests the front face's edges only (no walk): on any dense mesh the faces along a
   contour are foreshortened slivers thinner than a pixel, and the silhouette edge is then
   usually an edge of a neighbouring face. On a 70k-face bunny at 512^2, 85 % of the blended
   pairs are found only by walking, and on the icosphere of the tests the visibility gradient of
   the coverage comes out 20x too small without it.
6. The edge counts only if it is *steep* for this pair, ``|v_b - v_a| >= |u_b - u_a|`` (so every
   edge is handled by horizontal pairs or by vertical pairs, never both), and ``s > -AA_EPS``
   (nvdiffrast's 1/16 px tolerance for rasterization round-off). Then ``dc = clamp(s, 0, 1)``
   and the pair's blend weight is ``alpha = ds (1/2 - dc)``; otherwise alpha = 0.
7. Blend (the pixel whose square holds the crossing takes a share of the other's colour equal to
   the distance of the crossing from the midpoint):
       alpha > 0:  out[p0] += alpha (c[p1] - c[p0])
       alpha < 0:  out[p1] += alpha (c[p1] - c[p0])  (= |alpha| (c[p0] - c[p1]))
   ``blend`` gathers, per pixel, the contributions of its four pairs in a fixed order, so the
   forward is deterministic and free of races (no atomics).

Schedule (host side in taichirast/_prims/antialias.py):

* ``setup`` (one thread per face) stores each face's bit set ``fbits (Bs * F,)``: bit 0 =
  orientation > 0, bit 1 + k = edge k is valid (both vertices at z > EDGE_NEAR).
* ``mark`` (one thread per face) draws every valid silhouette edge along the rows (steep edges)
  or columns (shallow ones) it spans, marking the pairs whose segment, extended by
  AA_EPS + MARK_SLOP at both ends, holds its crossing (alpha = MARK) and their row segments
  (``seg``). Only those pairs can blend: the hit of step 5 is such a crossing.
* ``analyse`` (pixels, in row segments; marked segments only) runs steps 1-6 on the marked pairs:
  ``alpha (N, 2)`` (slot 0: the pixel's right pair, slot 1: its down pair) and, where alpha != 0,
  ``code (N, 2) = 1 + t1 + 2 (k + 3 g)`` for edge k of face g, t1 = 1 if the front face is p1's.
* ``blend`` (step 7) writes the pixels of touched segments into a copy of the colour.
So the cost follows the length of the silhouette in pixels, not the number of pixels or faces,
beyond one pass over the faces (setup, mark) and a few over a small per-segment flag array.

Backward, given ``g = dL/d out`` (the target pixel t is p0 if alpha >= 0, else p1):
    colour:  dL/dc[p] = g[p] - sum_{pairs targeting p} |alpha| g[p] + sum_{pairs whose other
             pixel is p} |alpha| g[t]      (a per-pixel gather over the four pairs, like blend,
             into a copy of g)
    alpha:   dL/dalpha = g[t] . (c[p1] - c[p0])
    alpha = ds/2 - u_c  (from ds^2 = 1), so dL/du_c = -dL/dalpha; with dy = v_b - v_a,
    dx = u_b - u_a and u_c = u_a - v_a dx / dy:
        du_c/du_a = v_b / dy        du_c/du_b = -v_a / dy
        du_c/dv_a = -(dx / dy)(v_b / dy)    du_c/dv_b = (dx / dy)(v_a / dy)
    All four are bounded by 1 in magnitude (steep edge: |dx| <= |dy|; straddling: |v_a|, |v_b| <=
    |dy|), so no gradient is ever inf/NaN. A clamped crossing (|alpha| = 1/2) has no position
    gradient, nor (as in nvdiffrast) one exactly at the midpoint (alpha = 0). The (u, v) gradients
    map back to (x, y) by undoing the swap and are scattered with atomics into ``g_sv``; pairs
    with zero ``dL/dalpha`` are skipped. The choice of the edge (walk, silhouette and steepness
    tests) is piecewise constant and has no gradient.

Buffers are flat (see kernels/raster.py: 3-D indexing is far slower on the CPU backend): pixels
``p = (b * H + row) * W + col`` in ``[0, N = B * H * W)``: ``face_id (N,)``, ``depth (N,)``,
``color / out / g (N, C)``, ``alpha (N, 2)``, ``code (N, 2)``, ``seg (B * H * ROW_SEGMENTS,)``;
vertices ``sv (Bs * V, 3)`` and face bits ``fbits (Bs * F,)`` with ``Bs`` 1 (shared by the
batch) or B. Per-pixel kernels loop over row segments (ROW_SEGMENTS, as in kernels/raster.py).
"""
import functools

import taichi as ti

from . import kernel
from .common import edge_function
from .raster import ROW_SEGMENTS, row_segment

# Edges with a vertex at camera depth <= EDGE_NEAR are never antialiased (their screen projection
# is not a segment); any value > 0 keeps every quantity finite (project.py clamps |z| to 1e-8).
EDGE_NEAR = 1e-6
# Tolerance on the crossing position, in pixels (nvdiffrast's: rasterization round-off).
AA_EPS = 1.0 / 16.0
# Longest walk across non-silhouette edges from the pixel's own triangle to a silhouette edge.
MAX_WALK = 32
# Marks a candidate pair in alpha before analyse (any value outside [-1/2, 1/2]).
MARK = 2.0
# Extra reach (pixels) of the pair marking beyond AA_EPS, for round-off between mark and analyse.
MARK_SLOP = 1.0 / 64.0


@functools.lru_cache(maxsize=None)
def build(real):
    """Kernels for float type ``real`` (ti.f32 or ti.f64): dict with setup, mark, analyse, blend, backward."""
    arr = ti.types.ndarray(dtype=real)
    iarr = ti.types.ndarray(dtype=ti.i32)

    @ti.func
    def _uv(sv: arr, i, cx, cy, d):
        """Canonical (u, v) of vertex row i relative to the reference centre (cx, cy), and its z."""
        x = sv[i, 0] - cx
        y = sv[i, 1] - cy
        u, v = x, y
        if d == 1:
            u, v = y, x
        return u, v, sv[i, 2]

    @ti.func
    def _ref(p0, p1, f0, f1, depth: arr):
        """(front face, 1 if it is p1's face) for a pair with different face ids."""
        tri, t1 = f0, 0
        if f0 < 0:
            tri, t1 = f1, 1
        elif f1 >= 0:
            if not depth[p0] < depth[p1]:
                tri, t1 = f1, 1
        return tri, t1

    @kernel
    def setup(sv: arr, faces: iarr, fbits: iarr, V: ti.i32):
        """fbits (Bs * F,): bit 0 = orientation > 0, bit 1 + k = edge k valid (both z > EDGE_NEAR)."""
        F = faces.shape[0]
        for i in range(fbits.shape[0]):
            b = i // F
            f = i - b * F
            vb = b * V
            i0, i1, i2 = vb + faces[f, 0], vb + faces[f, 1], vb + faces[f, 2]
            z0, z1, z2 = sv[i0, 2], sv[i1, 2], sv[i2, 2]
            area = edge_function(sv[i0, 0], sv[i0, 1], sv[i1, 0], sv[i1, 1], sv[i2, 0], sv[i2, 1])
            neg = (1 if z0 < 0 else 0) ^ (1 if z1 < 0 else 0) ^ (1 if z2 < 0 else 0)
            if neg == 1:
                area = -area
            near = real(EDGE_NEAR)
            v0 = 1 if z0 > near else 0
            v1 = 1 if z1 > near else 0
            v2 = 1 if z2 > near else 0
            fbits[i] = (1 if area > 0 else 0) | ((v1 & v2) << 1) | ((v2 & v0) << 2) | ((v0 & v1) << 3)

    @ti.func
    def _face(sv: arr, faces: iarr, g, vb):
        """Screen x and y of face g's vertices."""
        i0, i1, i2 = vb + faces[g, 0], vb + faces[g, 1], vb + faces[g, 2]
        xs = ti.Vector([sv[i0, 0], sv[i1, 0], sv[i2, 0]], real)
        ys = ti.Vector([sv[i0, 1], sv[i1, 1], sv[i2, 1]], real)
        return xs, ys

    @ti.func
    def _links(link: iarr, g):
        links = ti.Vector([link[g, 0], link[g, 1], link[g, 2]])
        for q in ti.static(range(3)):
            if (links[q] & 3) == 3:  # corrupt: never index with it
                links[q] = -1
        return links

    @ti.func
    def _exit(us, vs, bits, skip, ds):
        """(edge, s = ds u_c) where the line v = 0 leaves the face towards ds (step 3), or (-1, 0).

        ``bits``: the face's bit set; ``skip``: an edge not to consider (the one the walk came in through).
        """
        best = real(0.0)
        di = -1
        for k in ti.static(range(3)):
            a, b = (k + 1) % 3, (k + 2) % 3
            if k != skip and (bits >> (1 + k)) & 1 and (vs[a] < 0) != (vs[b] < 0):
                t = vs[a] / (vs[a] - vs[b])
                s = ds * (us[a] + t * (us[b] - us[a]))
                if di < 0 or s > best:
                    best = s
                    di = k
        return di, best

    @ti.func
    def _pair(sv: arr, faces: iarr, link: iarr, fbits: iarr, depth: arr, p0, p1, f0, f1, col, r, d, vb, fb):
        """(alpha, code) of the pair (p0, p1) along axis d; see the module docstring, steps 1-6."""
        tri, t1 = _ref(p0, p1, f0, f1, depth)
        cx = real(col) + real(0.5)
        cy = real(r) + real(0.5)
        if t1 == 1:
            if d == 0:
                cx += real(1.0)
            else:
                cy += real(1.0)
        ds = real(1.0) - real(2.0) * real(t1)
        g = tri
        skip = -1
        hit_k = -1
        hit_s = real(0.0)
        xs, ys = _face(sv, faces, g, vb)
        bits = fbits[fb + g]
        links = _links(link, g)
        us, vs = xs - cx, ys - cy
        if d == 1:
            us, vs = ys - cy, xs - cx
        # Fast path (step 4): the other pixel's face is across an edge e of the front face and the
        # pair's line crosses e ahead of the reference centre: the surface passes straight into the
        # other pixel's face, nothing to blend.
        other = f1 + f0 - tri
        walk = 1
        for q in ti.static(range(3)):
            if links[q] >= 0 and (links[q] >> 3) == other:
                a, b = (q + 1) % 3, (q + 2) % 3
                if (bits >> (1 + q)) & 1 and (vs[a] < 0) != (vs[b] < 0):
                    t = vs[a] / (vs[a] - vs[b])
                    if ds * (us[a] + t * (us[b] - us[a])) >= 0:
                        walk = 0
        for step in range(MAX_WALK + 1):  # the walk (step 5)
            if walk == 0:
                break
            if step > 0:
                us, vs = xs - cx, ys - cy
                if d == 1:
                    us, vs = ys - cy, xs - cx
            k, s = _exit(us, vs, bits, skip, ds)
            if k < 0 or s >= real(1.0) + real(AA_EPS):
                break
            lk = links[k]
            if lk < 0:  # boundary edge
                hit_k, hit_s = k, s
                break
            n = lk >> 3
            if n == f0 or n == f1:  # the surface reaches the other pixel's face: no silhouette between
                break
            nbits = fbits[fb + n]
            if ((bits ^ nbits) & 1) ^ ((lk >> 2) & 1):  # the two faces face opposite ways
                hit_k, hit_s = k, s
                break
            # not a silhouette: the surface goes on across edge k into face n
            g = n
            skip = lk & 3
            xs, ys = _face(sv, faces, g, vb)
            bits = nbits
            links = _links(link, g)
        alpha = real(0.0)
        code = 0
        if hit_k >= 0:
            a, b = (hit_k + 1) % 3, (hit_k + 2) % 3
            ua, va, ub, v_b = us[0], vs[0], us[0], vs[0]
            for q in ti.static(range(3)):  # select without dynamic vector indexing
                if a == q:
                    ua, va = us[q], vs[q]
                if b == q:
                    ub, v_b = us[q], vs[q]
            if ti.abs(v_b - va) >= ti.abs(ub - ua) and hit_s > -real(AA_EPS):  # step 6
                dc = ti.min(ti.max(hit_s, real(0.0)), real(1.0))
                alpha = ds * (real(0.5) - dc)
                code = 1 + t1 + 2 * (hit_k + 3 * g)
        return alpha, code

    @ti.func
    def _span(lo, hi, top):
        """The integers in [lo, hi] and in [0, top], as (first, last) (floats clamped before the cast)."""
        first = ti.max(ti.cast(ti.ceil(ti.min(ti.max(lo, real(-1.0)), real(top + 1))), ti.i32), 0)
        last = ti.min(ti.cast(ti.floor(ti.min(ti.max(hi, real(-1.0)), real(top + 1))), ti.i32), top)
        return first, last

    @ti.func
    def _mark_edge(alpha: arr, seg: iarr, ax, ay, bx, by, b, H, W):
        """alpha[p, slot] = MARK for every pair whose extended segment this edge may cross (see mark)."""
        e = real(AA_EPS) + real(MARK_SLOP)
        cw = (W + ROW_SEGMENTS - 1) // ROW_SEGMENTS
        dx = bx - ax
        dy = by - ay
        # conservative on every test (steepness, rows or columns spanned, crossing): analyse
        # repeats them in other coordinates, with other round-off
        lax = real(1.0) - real(1e-3)
        if ti.abs(dy) >= lax * ti.abs(dx) and dy != 0:  # steep: horizontal pairs along the rows it spans
            r0, r1 = _span(ti.min(ay, by) - real(0.5 + MARK_SLOP), ti.max(ay, by) - real(0.5 - MARK_SLOP), H - 1)
            for r in range(r0, r1 + 1):
                xc = ax + (real(r) + real(0.5) - ay) / dy * dx
                c0, c1 = _span(xc - real(1.5) - e, xc - real(0.5) + e, W - 2)
                for c in range(c0, c1 + 1):
                    alpha[(b * H + r) * W + c, 0] = ti.max(alpha[(b * H + r) * W + c, 0], real(MARK))  # read: VULKAN_IO
                    seg[(b * H + r) * ROW_SEGMENTS + c // cw] |= 1
        if ti.abs(dx) >= lax * ti.abs(dy) and dx != 0:  # shallow: vertical pairs along the columns it spans
            c0, c1 = _span(ti.min(ax, bx) - real(0.5 + MARK_SLOP), ti.max(ax, bx) - real(0.5 - MARK_SLOP), W - 1)
            for c in range(c0, c1 + 1):
                yc = ay + (real(c) + real(0.5) - ax) / dx * dy
                r0, r1 = _span(yc - real(1.5) - e, yc - real(0.5) + e, H - 2)
                for r in range(r0, r1 + 1):
                    alpha[(b * H + r) * W + c, 1] = ti.max(alpha[(b * H + r) * W + c, 1], real(MARK))
                    seg[(b * H + r) * ROW_SEGMENTS + c // cw] |= 1

    @kernel
    def mark(sv: arr, faces: iarr, link: iarr, fbits: iarr, alpha: arr, seg: iarr, B: ti.i32, H: ti.i32, W: ti.i32,
             V: ti.i32):
        """alpha (N, 2), zero on entry: MARK for the pairs a silhouette edge may cross.

        seg (B * H * ROW_SEGMENTS,), zero on entry: 1 for the row segments holding a marked pair
        (the per-pixel kernels skip the others).

        One thread per face; each silhouette edge (valid, boundary or between faces facing opposite
        ways; an edge shared by two faces is drawn by the one with the smaller id) is walked along
        the rows (steep edges) or columns (shallow ones) it spans, marking the pairs whose segment,
        extended by AA_EPS + MARK_SLOP at both ends, holds its crossing. No other pair can blend,
        so ``analyse`` visits the marked pairs only. Concurrent threads only ever write MARK.
        """
        F = faces.shape[0]
        Bs = fbits.shape[0] // F
        for i in range(fbits.shape[0]):
            bf = i // F
            f = i - bf * F
            bits = fbits[i]
            links = _links(link, f)
            for k in ti.static(range(3)):
                lk = links[k]
                if (bits >> (1 + k)) & 1:
                    sil = 0
                    if lk < 0:
                        sil = 1
                    else:
                        n = lk >> 3
                        if n > f:
                            sil = ((bits ^ fbits[bf * F + n]) & 1) ^ ((lk >> 2) & 1)
                    if sil:
                        ia = bf * V + faces[f, (k + 1) % 3]
                        ib = bf * V + faces[f, (k + 2) % 3]
                        ax, ay, bx, by = sv[ia, 0], sv[ia, 1], sv[ib, 0], sv[ib, 1]
                        if Bs == B:
                            _mark_edge(alpha, seg, ax, ay, bx, by, bf, H, W)
                        else:  # vertices shared by the batch: every image
                            for b in range(B):
                                _mark_edge(alpha, seg, ax, ay, bx, by, b, H, W)

    @kernel
    def analyse(sv: arr, faces: iarr, link: iarr, fbits: iarr, face_id: iarr, depth: arr, alpha: arr, code: iarr,
                seg: iarr, H: ti.i32, W: ti.i32, V: ti.i32, shared: ti.i32):
        """alpha (N, 2) from mark: each marked pair gets its alpha (0 if it does not blend) and code.

        Slot 0: the pixel's right pair, slot 1: its down pair. ``code`` is only written (and only
        read, by backward) where alpha != 0.
        """
        B = face_id.shape[0] // (H * W)
        for t in range(B * H * ROW_SEGMENTS):
            row, b, r, x0, x1 = row_segment(t, H, W)
            vb = 0 if shared else b * V
            fb = 0 if shared else b * faces.shape[0]
            if seg[t] != 0:  # not a top-level `continue` (Vulkan)
                for col in range(x0, x1):
                    p = row * W + col
                    for k in ti.static(range(2)):
                        if alpha[p, k] == real(MARK):
                            inside = col + 1 < W if k == 0 else r + 1 < H
                            q = p + 1 if k == 0 else p + W
                            f0 = face_id[p]
                            f1 = f0
                            if inside:
                                f1 = face_id[q]
                            a, c = real(0.0), 0
                            if f1 != f0:
                                a, c = _pair(sv, faces, link, fbits, depth, p, q, f0, f1, col, r, k, vb, fb)
                            alpha[p, k] = a
                            if a != 0:
                                code[p, k] = c

    @ti.func
    def _touched(seg: iarr, t, x0, r):
        """Whether a pair may change a pixel of row segment t: its own pairs, the left pair of its
        first pixel (previous segment) or the up pairs (the segment above)."""
        hit = seg[t]
        if x0 > 0:
            hit |= seg[t - 1]
        if r > 0:
            hit |= seg[t - ROW_SEGMENTS]
        return hit != 0

    @kernel
    def blend(color: arr, alpha: arr, out: arr, seg: iarr, H: ti.i32, W: ti.i32):
        """out (N, C), a copy of color on entry, += the contributions of each pixel's four pairs.

        A gather (fixed order, no atomics): only pixels that some pair blends are written.
        """
        C = color.shape[1]
        B = color.shape[0] // (H * W)
        for t in range(B * H * ROW_SEGMENTS):
            row, _b, r, x0, x1 = row_segment(t, H, W)
            if _touched(seg, t, x0, r):  # not a top-level `continue` (Vulkan)
                for col in range(x0, x1):
                    p = row * W + col
                    ar = ti.max(alpha[p, 0], real(0.0))    # right pair, p is p0: its share if alpha > 0
                    ad = ti.max(alpha[p, 1], real(0.0))    # down pair
                    al = real(0.0)
                    au = real(0.0)
                    if col > 0:
                        al = ti.max(-alpha[p - 1, 0], real(0.0))  # left pair, p is p1: its share if alpha < 0
                    if r > 0:
                        au = ti.max(-alpha[p - W, 1], real(0.0))  # up pair
                    if ar > 0 or ad > 0 or al > 0 or au > 0:
                        for c in range(C):
                            cp = color[p, c]
                            o = cp
                            if ar > 0:
                                o += ar * (color[p + 1, c] - cp)
                            if ad > 0:
                                o += ad * (color[p + W, c] - cp)
                            if al > 0:
                                o += al * (color[p - 1, c] - cp)
                            if au > 0:
                                o += au * (color[p - W, c] - cp)
                            out[p, c] = o + (out[p, c] - cp)  # + 0 exactly (out = color on entry): VULKAN_IO

    @ti.func
    def _edge_grad(sv: arr, faces: iarr, g_sv: arr, tri, di, t1, col, r, d, vb, dd):
        """g_sv += dL/d(x, y) of the pair's edge vertices, given dd = dL/dalpha (module docstring)."""
        cx = real(col) + real(0.5)
        cy = real(r) + real(0.5)
        if t1 == 1:
            if d == 0:
                cx += real(1.0)
            else:
                cy += real(1.0)
        ia = vb + faces[tri, (di + 1) % 3]
        ib = vb + faces[tri, (di + 2) % 3]
        ua, va, _za = _uv(sv, ia, cx, cy, d)
        ub, vb_, _zb = _uv(sv, ib, cx, cy, d)
        dy = vb_ - va
        dx = ub - ua
        ry = dx / dy
        # dL/du_c = -dd
        gua = -dd * (vb_ / dy)
        gub = dd * (va / dy)
        gva = dd * ry * (vb_ / dy)
        gvb = -dd * ry * (va / dy)
        if d == 0:
            ti.atomic_add(g_sv[ia, 0], gua)
            ti.atomic_add(g_sv[ia, 1], gva)
            ti.atomic_add(g_sv[ib, 0], gub)
            ti.atomic_add(g_sv[ib, 1], gvb)
        else:
            ti.atomic_add(g_sv[ia, 0], gva)
            ti.atomic_add(g_sv[ia, 1], gua)
            ti.atomic_add(g_sv[ib, 0], gvb)
            ti.atomic_add(g_sv[ib, 1], gub)

    @kernel
    def backward(sv: arr, faces: iarr, color: arr, alpha: arr, code: iarr, seg: iarr, g: arr,
                 g_color: arr, g_sv: arr, H: ti.i32, W: ti.i32, V: ti.i32, shared: ti.i32,
                 need_color: ti.template(), need_sv: ti.template()):
        """g_color (N, C), a copy of g on entry, gets the pairs' terms (if need_color); g_sv (Bs * V, 3) +=."""
        C = color.shape[1]
        B = color.shape[0] // (H * W)
        for t in range(B * H * ROW_SEGMENTS):
            row, b, r, x0, x1 = row_segment(t, H, W)
            vb = 0 if shared else b * V
            if _touched(seg, t, x0, r):  # not a top-level `continue` (Vulkan)
                for col in range(x0, x1):
                    p = row * W + col
                    if ti.static(need_color):
                        # shares p takes (p is the target): out[p] = (1 - sum s) c[p] + ...
                        ar = ti.max(alpha[p, 0], real(0.0))
                        ad = ti.max(alpha[p, 1], real(0.0))
                        al = real(0.0)
                        au = real(0.0)
                        # shares p gives (p is the other pixel of a pair targeting its neighbour)
                        gr = ti.max(-alpha[p, 0], real(0.0))
                        gd = ti.max(-alpha[p, 1], real(0.0))
                        gl = real(0.0)
                        gu = real(0.0)
                        if col > 0:
                            al = ti.max(-alpha[p - 1, 0], real(0.0))
                            gl = ti.max(alpha[p - 1, 0], real(0.0))
                        if r > 0:
                            au = ti.max(-alpha[p - W, 1], real(0.0))
                            gu = ti.max(alpha[p - W, 1], real(0.0))
                        keep = real(1.0) - ar - ad - al - au
                        if gr > 0 or gd > 0 or gl > 0 or gu > 0 or keep != 1:  # else g_color = g (copied)
                            for c in range(C):
                                s = keep * g[p, c]
                                if gr > 0:
                                    s += gr * g[p + 1, c]
                                if gd > 0:
                                    s += gd * g[p + W, c]
                                if gl > 0:
                                    s += gl * g[p - 1, c]
                                if gu > 0:
                                    s += gu * g[p - W, c]
                                g_color[p, c] = s + (g_color[p, c] - g[p, c])  # + 0 exactly: VULKAN_IO
                    if ti.static(need_sv):
                        for k in ti.static(range(2)):
                            a = alpha[p, k]
                            if a != 0 and ti.abs(a) < real(0.5):
                                cd = code[p, k]
                                step = 1 if k == 0 else W
                                p1 = p + step
                                tp = p if a >= 0 else p1
                                dd = real(0.0)
                                for c in range(C):
                                    dd += g[tp, c] * (color[p1, c] - color[p, c])
                                if dd != 0:
                                    c0 = cd - 1
                                    t1 = c0 % 2
                                    ek = (c0 // 2) % 3
                                    tri = c0 // 6
                                    _edge_grad(sv, faces, g_sv, tri, ek, t1, col, r, k, vb, dd)

    return {"setup": setup, "mark": mark, "analyse": analyse, "blend": blend, "backward": backward}
