"""Hard rasterizer: triangle setup, depth test, barycentrics (+ hand-written backward). DESIGN §4.

Conventions (DESIGN §2). Screen vertices ``sv (B, V, 3)``: x, y in pixels (x right, y down, the
pixel in row r, column c has its centre at (c + 0.5, r + 0.5)), z = camera depth (> 0 in front).
Faces ``(F, 3)`` int32 shared by the batch. Outputs per pixel: face id (int32, -1 = background),
barycentrics ``(B, H, W, 3)`` (0 on background) and depth (``+inf`` on background).

Edge functions (kernels/common.edge_function) at a pixel centre p, s_i = (x_i, y_i):
``E0 = edge(s1, s2, p)``, ``E1 = edge(s2, s0, p)``, ``E2 = edge(s0, s1, p)``,
``A = E0 + E1 + E2 = edge(s0, s1, s2) = det`` (twice the signed screen area).

Perspective-correct (2D homogeneous rasterization, Olano & Greer 1997). A vertex has homogeneous
screen coordinates ``h_i = (x_i z_i, y_i z_i, z_i)`` (exact also for z_i <= 0, see project.py), so
the homogeneous edge function opposite vertex i is ``z_j z_k E_i``; dividing by ``z0 z1 z2``:
``q_i = E_i / z_i``, ``Q = sum q_i``, ``b_i = q_i / Q`` are the 3D (perspective-correct)
barycentrics of the point where the pixel's ray meets the triangle's plane, and its camera depth
is ``depth = sum b_i z_i = A / Q``. The pixel is covered iff ``Q != 0``, all ``b_i >= 0`` and
``depth >= near``. No clipping is needed for vertices behind the camera: the sign of ``Q`` takes
care of the projective wrap-around, and ``depth >= near`` drops everything behind the near plane.
Non-perspective (orthographic cameras): ``b_i = E_i / A``, ``depth = sum b_i z_i``, covered iff
all ``b_i >= 0`` and ``depth >= near``.

Front-facing is counter-clockwise as seen by the camera: ``det < 0`` with y down. For a
perspective triangle with vertices behind the camera the orientation is that of
``det(h0, h1, h2) = z0 z1 z2 det``, so the test uses ``det * sign(z0 z1 z2)``. Degenerate faces
(``det == 0``) are always skipped.

Z_TINY: like project.py, a |z| below Z_TINY is replaced by ``±Z_TINY`` (perspective only), which
keeps every quantity finite; project.py divided by the same clamped value, so ``x z`` stays exact.

Buffers: every per-pixel buffer is passed flattened, pixel ``p = (b * H + row) * W + col``:
``face_id (N,)``, ``bary (N, 3)``, ``depth (N,)`` with ``N = B * H * W`` (views of the
``(B, H, W, ...)`` outputs), and vertices as ``sv (B * V, 3)``: Taichi recomputes a
multi-dimensional index from the array's shape at every access, which doubled the cost of these
memory-bound kernels on CPU.

Batches: image b draws the faces ``tab[b, 0] .. tab[b, 0] + tab[b, 1] - 1`` (all F faces for every
image of a shared topology, each mesh's own range in a packed batch of different meshes,
taichirast/packed.py), with vertex indices offset by ``b * Vs`` rows of ``sv`` (``Vs`` = V for
per-image vertices, 0 for one shared vertex array, e.g. a packed batch whose faces hold global
vertex indices). Face-loop kernels visit the E = sum of the counts face *entries* (image b's are
``tab[b, 2] ..``; kernels/common.entry_face), so per-face buffers are O(faces); face ids are
indices into ``faces``.

Pipeline (host side in taichirast/_prims/raster.py), two schedules with identical results:

* face schedule (CPU): ``raster_faces`` (one thread per face: setup, then the pixels of its own
  bbox, so the cost is the sum of the faces' bbox areas and nothing needs binning; faces of a
  shared topology visited in a cached spatial order, taichirast/_face_order.py; depth test by
  ``atomic_min`` on a per-pixel key packing (depth, face id) -- two passes in float64 -- so the
  result does not depend on thread order), then ``resolve`` (per pixel: face id from the key,
  then barycentrics and depth).
* binned schedule (GPU): ``setup`` (one thread per face entry: bbox + per-face data ``fdata (E, 9) =
  x0, y0, x1, y1, x2, y2, w0, w1, w2``), tile binning (kernels/binning.py, a CSR of face ids per
  tile), ``raster_pixels`` (one thread per pixel walking its tile's list), then ``bary``.

Either way the depth test keeps the nearest face, ties going to the smaller face id, and face id and
depth are not differentiable. ``resolve`` / ``bary`` recompute barycentrics and depth of the kept
face from ``sv`` with the very same ``_cover`` function (the differentiable part,
nvdiffrast-style), and ``backward`` (per pixel, hand-written) scatters ``+=`` into ``grad_sv``
(per-worker copies with plain adds on the CPU, atomics on GPUs: taichirast/_scatter.py). The
bbox of a triangle crossing the near plane comes from clipping it against ``z = near`` in
homogeneous coordinates, so it stays tight.

Depth peeling (K layers, taichirast/_prims/raster_layers.py): buffers laid out ``(B, K, H, W)``.
Layer 0 is the plain depth test above; layer k >= 1 keeps, per pixel, the nearest fragment whose
(depth, face id) key is strictly greater than layer k - 1's (``raster_faces_peel`` /
``raster_pixels_peel``: same coverage and depth arithmetic, plus that test), so layer k is the
k-th entry of the pixel's faces sorted by (depth, id). Both schedules compare depths as ordered
ints (the face schedule's keys), so they peel alike; ``resolve`` / ``bary`` / ``backward`` then
run unchanged on the ``B * K`` layer images with the vertices repeated per layer.
"""
import functools

import taichi as ti

from . import kernel
from .common import CHUNK_STRIDE, edge_function, entry_face, worker_row, worker_rows
from .project import Z_TINY

# Grows every face's bbox (pixels, plus a relative part) so that rounding in the bbox never
# drops a pixel that the edge test accepts.
BBOX_MARGIN = 1.0 / 256.0
BBOX_MARGIN_REL = 1e-6
N_FDATA = 9
KEY_EMPTY = 2**63 - 1  # depth-key buffer fill (face schedule): no face
FID_EMPTY = 2**31 - 1  # face-id buffer fill (face schedule, f64): no face
# Per-pixel kernels loop over row segments (a row = ROW_SEGMENTS segments, pixels of a segment in
# sequence) rather than rows or pixels: Taichi 1.7's CPU backend hands each thread tasks of at
# least 512 iterations of a dynamic range-for (adaptive block_dim), so a loop over 512 rows would
# run on a single thread, and a loop over pixels pays an integer division per pixel.
ROW_SEGMENTS = 64


@ti.func
def row_segment(t, H, W):
    """Row segment ``t`` of ``B * H * ROW_SEGMENTS`` over a batch of H x W images: ``(row, b, r, x0,
    x1)`` = its row over the batch, image ``b``, row ``r`` in that image and its pixels x0 .. x1 - 1."""
    cw = (W + ROW_SEGMENTS - 1) // ROW_SEGMENTS
    row = t // ROW_SEGMENTS
    x0 = (t - row * ROW_SEGMENTS) * cw
    b = row // H
    return row, b, row - b * H, x0, ti.min(x0 + cw, W)


@functools.lru_cache(maxsize=None)
def build(real):
    """Kernels for float type ``real`` (ti.f32 or ti.f64); returns a dict of kernels."""
    arr = ti.types.ndarray(dtype=real)
    iarr = ti.types.ndarray(dtype=ti.i32)
    karr = ti.types.ndarray(dtype=ti.i64)
    INF = float("inf")

    @ti.func
    def _w(z, persp):
        """Per-vertex weight: 1/z (perspective, |z| clamped to Z_TINY) or z."""
        w = z
        if persp:
            zc = z
            if ti.abs(zc) < real(Z_TINY):
                zc = real(Z_TINY) if zc >= 0 else -real(Z_TINY)
            w = real(1.0) / zc
        return w

    @ti.func
    def _from_edges(E0, E1, E2, w0, w1, w2, near, persp):
        """(covered, b0, b1, b2, depth) from the edge functions at a pixel centre (module docstring)."""
        A = E0 + E1 + E2
        b0 = real(0.0)
        b1 = real(0.0)
        b2 = real(0.0)
        d = real(0.0)
        ok = 0
        if persp:
            q0 = E0 * w0
            q1 = E1 * w1
            q2 = E2 * w2
            Q = q0 + q1 + q2
            if Q != 0:
                iQ = real(1.0) / Q
                b0 = q0 * iQ
                b1 = q1 * iQ
                b2 = q2 * iQ
                d = A * iQ
                ok = 1
        else:
            if A != 0:
                iA = real(1.0) / A
                b0 = E0 * iA
                b1 = E1 * iA
                b2 = E2 * iA
                d = b0 * w0 + b1 * w1 + b2 * w2
                ok = 1
        covered = 0
        if ok and b0 >= 0 and b1 >= 0 and b2 >= 0 and d >= near:
            covered = 1
        return covered, b0, b1, b2, d

    @ti.func
    def _cover(x0, y0, x1, y1, x2, y2, w0, w1, w2, px, py, near, persp):
        """(covered, b0, b1, b2, depth) of pixel centre (px, py); see the module docstring.

        Shared by the depth test and the differentiable recompute, so both decide alike.
        """
        E0 = edge_function(x1, y1, x2, y2, px, py)
        E1 = edge_function(x2, y2, x0, y0, px, py)
        E2 = edge_function(x0, y0, x1, y1, px, py)
        return _from_edges(E0, E1, E2, w0, w1, w2, near, persp)

    @ti.func
    def _setup(xs, ys, zs, near, persp, cull):
        """(keep, xmin, xmax, ymin, ymax): whether the face can cover a pixel, and its screen bbox
        (grown by BBOX_MARGIN) containing every pixel centre that ``_cover`` accepts."""
        det = edge_function(xs[0], ys[0], xs[1], ys[1], xs[2], ys[2])
        zmax = ti.max(zs[0], ti.max(zs[1], zs[2]))
        zmin = ti.min(zs[0], ti.min(zs[1], zs[2]))
        # every covered point has depth <= max z_i (depth is a convex combination of the z_i)
        keep = det != 0 and zmax >= near
        if cull:
            orient = det
            if persp:
                for i in ti.static(range(3)):
                    if zs[i] < 0:
                        orient = -orient
            keep = keep and orient < 0  # front-facing (counter-clockwise) only
        xmin, xmax, ymin, ymax = real(1.0), real(-1.0), real(1.0), real(-1.0)
        if keep:
            if (not persp) or zmin >= near:
                xmin = ti.min(xs[0], ti.min(xs[1], xs[2]))
                xmax = ti.max(xs[0], ti.max(xs[1], xs[2]))
                ymin = ti.min(ys[0], ti.min(ys[1], ys[2]))
                ymax = ti.max(ys[0], ti.max(ys[1], ys[2]))
            else:
                # Clip against z = near in homogeneous coordinates h = (x z, y z, z) (linear in
                # camera space, so the clipped polygon's vertices project to h.xy / near): the
                # covered region is the projection of the triangle's part with z >= near.
                xmin, xmax, ymin, ymax = real(INF), real(-INF), real(INF), real(-INF)
                zc = ti.Vector([real(0.0), real(0.0), real(0.0)], real)
                for i in ti.static(range(3)):
                    zc[i] = zs[i]
                    if ti.abs(zs[i]) < real(Z_TINY):
                        zc[i] = real(Z_TINY) if zs[i] >= 0 else -real(Z_TINY)
                for i in ti.static(range(3)):
                    j = (i + 1) % 3
                    if zs[i] >= near:
                        xmin = ti.min(xmin, xs[i])
                        xmax = ti.max(xmax, xs[i])
                        ymin = ti.min(ymin, ys[i])
                        ymax = ti.max(ymax, ys[i])
                    if (zs[i] >= near) != (zs[j] >= near):
                        t = (near - zs[i]) / (zs[j] - zs[i])
                        hxi = xs[i] * zc[i]
                        hyi = ys[i] * zc[i]
                        cx = (hxi + t * (xs[j] * zc[j] - hxi)) / near
                        cy = (hyi + t * (ys[j] * zc[j] - hyi)) / near
                        xmin = ti.min(xmin, cx)
                        xmax = ti.max(xmax, cx)
                        ymin = ti.min(ymin, cy)
                        ymax = ti.max(ymax, cy)
            mx = real(BBOX_MARGIN) + real(BBOX_MARGIN_REL) * ti.max(ti.abs(xmin), ti.abs(xmax))
            my = real(BBOX_MARGIN) + real(BBOX_MARGIN_REL) * ti.max(ti.abs(ymin), ti.abs(ymax))
            xmin -= mx
            xmax += mx
            ymin -= my
            ymax += my
        return keep, xmin, xmax, ymin, ymax

    @ti.func
    def _verts(sv: arr, faces: iarr, vb, f):
        """Screen x, y, z of face f's corners; ``vb = b * V`` (sv is flattened to (B * V, 3))."""
        i0, i1, i2 = vb + faces[f, 0], vb + faces[f, 1], vb + faces[f, 2]
        xs = ti.Vector([sv[i0, 0], sv[i1, 0], sv[i2, 0]], real)
        ys = ti.Vector([sv[i0, 1], sv[i1, 1], sv[i2, 1]], real)
        zs = ti.Vector([sv[i0, 2], sv[i1, 2], sv[i2, 2]], real)
        return xs, ys, zs

    @ti.func
    def _pixel_range(lo, hi, n):
        """Pixel indices whose centres (i + 0.5) lie in [lo, hi], clipped to [0, n - 1]."""
        # float clamp before the int conversion: near-plane faces may carry huge boxes
        a = ti.cast(ti.ceil(ti.max(ti.min(lo, real(n + 1)), real(-1.0)) - real(0.5)), ti.i32)
        c = ti.cast(ti.floor(ti.max(ti.min(hi, real(n + 1)), real(-1.0)) - real(0.5)), ti.i32)
        return ti.max(a, 0), ti.min(c, n - 1)

    # float -> same-width signed int with the same order (for atomic_min on depth keys)
    ORD_INT = ti.i32 if real == ti.f32 else ti.i64
    ORD_MASK = 2**31 - 1 if real == ti.f32 else 2**63 - 1

    @ti.func
    def _ordered(d):
        """IEEE float bits as a signed int, negatives flipped, so int order = float order."""
        k = ti.bit_cast(d, ORD_INT)
        if k < 0:
            k = k ^ ORD_INT(ORD_MASK)
        return k

    @kernel
    def setup(sv: arr, faces: iarr, tab: iarr, bbox: arr, fdata: arr, Vs: ti.i32, near: real, persp: ti.i32,
              cull: ti.i32):
        """Binned schedule, per face entry f: bbox (E, 4) = xmin, xmax, ymin, ymax (xmin > xmax:
        skipped) and fdata (E, 9) of the entry's face."""
        for f in range(bbox.shape[0]):
            b, g = entry_face(tab, f)
            xs, ys, zs = _verts(sv, faces, b * Vs, g)
            keep, xmin, xmax, ymin, ymax = _setup(xs, ys, zs, near, persp, cull)
            bbox[f, 0] = xmin
            bbox[f, 1] = xmax
            bbox[f, 2] = ymin
            bbox[f, 3] = ymax
            for k in ti.static(range(3)):
                fdata[f, 2 * k] = xs[k]
                fdata[f, 2 * k + 1] = ys[k]
                fdata[f, 6 + k] = _w(zs[k], persp)

    @ti.func
    def _face_pass(sv: arr, faces: iarr, key: karr, fid: iarr, b, row, f, vb, K, layer, H, W, near, persp, cull,
                   second, peel: ti.template()):
        """Face f (row ``row`` of ``faces``) in image b, vertices from row ``vb`` of ``sv``, visits its
        bbox pixels (body of ``raster_faces`` / ``raster_faces_peel``).

        Pixel buffers are laid out ``(B, K, H, W)``; this pass writes layer ``layer``. With ``peel``
        a covered pixel p is a candidate only if its (depth, face) key is strictly greater than the
        previous layer's at ``p - H * W`` (and the face differs from the previous layer's).
        """
        xs, ys, zs = _verts(sv, faces, vb, row)
        keep, xmin, xmax, ymin, ymax = _setup(xs, ys, zs, near, persp, cull)
        if keep:
            w0, w1, w2 = _w(zs[0], persp), _w(zs[1], persp), _w(zs[2], persp)
            px0, px1 = _pixel_range(xmin, xmax, W)
            py0, py1 = _pixel_range(ymin, ymax, H)
            # Common case: every w_i > 0 (orthographic, or all vertices in front of the camera),
            # so sign(q_i) = sign(E_i) and sign(Q) = sign(det): a sign test on the E_i rejects
            # uncovered pixels before any division (and agrees with _from_edges' own test).
            fast = (not persp) or (zs.min() > 0)
            s = real(1.0) if edge_function(xs[0], ys[0], xs[1], ys[1], xs[2], ys[2]) > 0 else real(-1.0)
            for py in range(py0, py1 + 1):
                cy = real(py) + real(0.5)
                row = ((b * K + layer) * H + py) * W
                for px in range(px0, px1 + 1):
                    cx = real(px) + real(0.5)
                    E0 = edge_function(xs[1], ys[1], xs[2], ys[2], cx, cy)
                    E1 = edge_function(xs[2], ys[2], xs[0], ys[0], cx, cy)
                    E2 = edge_function(xs[0], ys[0], xs[1], ys[1], cx, cy)
                    cov = 0
                    d = real(0.0)
                    if (not fast) or ti.min(s * E0, ti.min(s * E1, s * E2)) >= 0:
                        cov, _b0, _b1, _b2, d = _from_edges(E0, E1, E2, w0, w1, w2, near, persp)
                    if cov:
                        p = row + px
                        if ti.static(real == ti.f32):
                            k = (ti.cast(_ordered(d), ti.i64) << 32) | ti.cast(f, ti.i64)
                            if k < key[p]:
                                if ti.static(peel):
                                    pk = key[p - H * W]  # KEY_EMPTY (no previous face): nothing is greater
                                    if k > pk and f != ti.cast(pk & ti.i64(0xFFFFFFFF), ti.i32):
                                        ti.atomic_min(key[p], k)
                                else:
                                    ti.atomic_min(key[p], k)
                        else:
                            k = _ordered(d)
                            ok = 1
                            if ti.static(peel):
                                pk = key[p - H * W]
                                pf = fid[p - H * W]
                                ok = f != pf and (k > pk or (k == pk and f > pf))
                            if not second:
                                if k < key[p] and ok:
                                    ti.atomic_min(key[p], k)
                            elif k == key[p] and f < fid[p] and ok:
                                ti.atomic_min(fid[p], f)

    @ti.func
    def _visit(tab: iarr, order: iarr, e, ordered):
        """``(b, row, f)``: image, row of the faces array and face id of the e-th face the face schedule
        visits. Entry e's face is row ``f`` of the faces array, or with ``ordered`` row f of the faces
        in ``order`` (a permutation, taichirast/_face_order.py), which is face ``order[f]``."""
        b, f = entry_face(tab, e)
        row = f
        if ordered:
            f = order[row]
        return b, row, f

    @kernel
    def faces_in_order(faces: iarr, order: iarr, rows: iarr):
        """rows (F, 3) = faces[order]: the faces in the order ``raster_faces`` visits them."""
        for i in range(order.shape[0]):
            g = order[i]
            for k in ti.static(range(3)):
                rows[i, k] = faces[g, k]

    @kernel
    def raster_faces(sv: arr, faces: iarr, tab: iarr, order: iarr, key: karr, fid: iarr, E: ti.i32, Vs: ti.i32,
                     H: ti.i32, W: ti.i32, near: real, persp: ti.i32, cull: ti.i32, second: ti.i32, ordered: ti.i32):
        """Face schedule (CPU): one thread per face visits the pixels of its own bbox; no binning.

        Depth test with ``atomic_min`` on a per-pixel key (N,), so the result is independent of the
        thread order. f32: one pass, ``key = ordered(depth) << 32 | face``. f64 (the depth needs all
        64 bits): pass 0 ``key = ordered(depth)``, pass 1 (``second``) ``fid = min face`` among
        the faces whose depth equals the key (same kernel, so the same rounding in both passes).
        One thread per face entry (E of them) of the images of ``tab``, vertices from row ``b * Vs`` of
        ``sv`` (module docstring, "Batches"); with ``ordered`` (a shared topology), ``faces`` holds
        the faces in ``order`` (F,) (row i is face order[i]), the order in which each image's faces
        are visited, which the result does not depend on.
        """
        for e in range(E):
            b, row, f = _visit(tab, order, e, ordered)
            _face_pass(sv, faces, key, fid, b, row, f, b * Vs, 1, 0, H, W, near, persp, cull, second, False)

    @kernel
    def raster_faces_peel(sv: arr, faces: iarr, tab: iarr, order: iarr, key: karr, fid: iarr, E: ti.i32, Vs: ti.i32,
                          K: ti.i32, layer: ti.i32, H: ti.i32, W: ti.i32, near: real, persp: ti.i32, cull: ti.i32,
                          second: ti.i32, ordered: ti.i32):
        """Face schedule, depth peeling: layer ``layer >= 1`` of key / fid buffers laid out ``(B, K, H, W)``.

        Layer ``layer`` keeps, per pixel, the smallest (depth, face id) key strictly greater than
        layer ``layer - 1``'s (same packing and passes as ``raster_faces``, whose output, copied
        into layer 0, starts the peel). A pixel with no face in the previous layer gets none.
        """
        for e in range(E):
            b, row, f = _visit(tab, order, e, ordered)
            _face_pass(sv, faces, key, fid, b, row, f, b * Vs, K, layer, H, W, near, persp, cull, second, True)

    @ti.func
    def _write_bary(sv: arr, faces: iarr, vb, p, px, py, f, out_bary: arr, out_depth: arr, near, persp):
        b0 = real(0.0)
        b1 = real(0.0)
        b2 = real(0.0)
        d = real(INF)
        if f >= 0:
            xs, ys, zs = _verts(sv, faces, vb, f)
            _c, b0, b1, b2, d = _cover(xs[0], ys[0], xs[1], ys[1], xs[2], ys[2],
                                       _w(zs[0], persp), _w(zs[1], persp), _w(zs[2], persp),
                                       real(px) + real(0.5), real(py) + real(0.5), near, persp)
        out_bary[p, 0] = b0
        out_bary[p, 1] = b1
        out_bary[p, 2] = b2
        out_depth[p] = d

    @kernel
    def resolve(sv: arr, faces: iarr, key: karr, fid: iarr, face_id: iarr, out_bary: arr, out_depth: arr,
                B: ti.i32, Vs: ti.i32, H: ti.i32, W: ti.i32, near: real, persp: ti.i32):
        """Face schedule, per pixel: face id from the key (f32) or the id buffer (f64), then the
        differentiable barycentrics and depth of that face (same ``_cover`` as the depth test)."""
        V = Vs
        for t in range(B * H * ROW_SEGMENTS):  # row segments in parallel, their pixels in sequence
            row, b, py, x0, x1 = row_segment(t, H, W)
            for px in range(x0, x1):
                p = row * W + px
                f = -1
                if ti.static(real == ti.f32):
                    k = key[p]
                    if k != ti.i64(KEY_EMPTY):
                        f = ti.cast(k & ti.i64(0xFFFFFFFF), ti.i32)
                else:
                    if fid[p] != FID_EMPTY:
                        f = fid[p]
                face_id[p] = f
                _write_bary(sv, faces, b * V, p, px, py, f, out_bary, out_depth, near, persp)

    @kernel
    def raster_pixels(bbox: arr, fdata: arr, tab: iarr, offsets: iarr, tile_faces: iarr, face_id: iarr,
                      depth: arr, H: ti.i32, W: ti.i32, T: ti.i32, near: real, persp: ti.i32):
        """Binned schedule (GPU): one thread per pixel walks its tile's list of face entries; bbox
        test before the edge functions; nearest depth wins, ties go to the smaller entry = the
        smaller face id (list-order independent); the face id written is the entry's face."""
        ntx = (W + T - 1) // T
        nty = (H + T - 1) // T
        for p in range(face_id.shape[0]):
            row = p // W
            px = p - row * W
            b = row // H
            py = row - b * H
            tile = (b * nty + py // T) * ntx + px // T
            cx = real(px) + real(0.5)
            cy = real(py) + real(0.5)
            best_d = real(INF)
            best_f = -1
            for k in range(offsets[tile], offsets[tile + 1]):
                f = tile_faces[k]
                if (cx >= bbox[f, 0] and cx <= bbox[f, 1] and cy >= bbox[f, 2]
                        and cy <= bbox[f, 3]):
                    cov, _b0, _b1, _b2, d = _cover(fdata[f, 0], fdata[f, 1], fdata[f, 2],
                                                  fdata[f, 3], fdata[f, 4], fdata[f, 5],
                                                  fdata[f, 6], fdata[f, 7], fdata[f, 8],
                                                  cx, cy, near, persp)
                    if cov and (d < best_d or (d == best_d and (best_f < 0 or f < best_f))):
                        best_d = d
                        best_f = f
            face_id[p] = best_f if best_f < 0 else tab[b, 0] + best_f - tab[b, 2]
            depth[p] = best_d

    @kernel
    def raster_pixels_peel(bbox: arr, fdata: arr, tab: iarr, offsets: iarr, tile_faces: iarr, face_id: iarr,
                           depth: arr, K: ti.i32, layer: ti.i32, H: ti.i32, W: ti.i32, T: ti.i32, near: real,
                           persp: ti.i32):
        """Binned schedule, depth peeling: layer ``layer >= 1`` of ``face_id`` / ``depth`` laid out
        ``(B, K, H, W)`` (layer 0 from ``raster_pixels``). Keeps the smallest (depth, id) strictly
        greater than the previous layer's; depths compare as ordered ints, like the face schedule's
        keys, so both schedules peel alike."""
        ntx = (W + T - 1) // T
        nty = (H + T - 1) // T
        HW = H * W
        B = face_id.shape[0] // (K * HW)
        for p in range(B * HW):
            b = p // HW
            r = p - b * HW
            py = r // W
            px = r - py * W
            q = (b * K + layer) * HW + r
            pf = face_id[q - HW]
            best_f = -1
            best_d = real(INF)
            best_k = ORD_INT(0)
            if pf >= 0:
                pk = _ordered(depth[q - HW])
                tile = (b * nty + py // T) * ntx + px // T
                cx = real(px) + real(0.5)
                cy = real(py) + real(0.5)
                for j in range(offsets[tile], offsets[tile + 1]):
                    e = tile_faces[j]  # entry of image b; f: its face id
                    f = tab[b, 0] + e - tab[b, 2]
                    if (f != pf and cx >= bbox[e, 0] and cx <= bbox[e, 1] and cy >= bbox[e, 2]
                            and cy <= bbox[e, 3]):
                        cov, _b0, _b1, _b2, d = _cover(fdata[e, 0], fdata[e, 1], fdata[e, 2],
                                                      fdata[e, 3], fdata[e, 4], fdata[e, 5],
                                                      fdata[e, 6], fdata[e, 7], fdata[e, 8],
                                                      cx, cy, near, persp)
                        if cov:
                            k = _ordered(d)
                            if (k > pk or (k == pk and f > pf)) and (
                                    best_f < 0 or k < best_k or (k == best_k and f < best_f)):
                                best_f = f
                                best_k = k
                                best_d = d
            face_id[q] = best_f
            depth[q] = best_d

    @kernel
    def bary(sv: arr, faces: iarr, face_id: iarr, out_bary: arr, out_depth: arr, B: ti.i32, Vs: ti.i32, H: ti.i32,
             W: ti.i32, near: real, persp: ti.i32):
        """Binned schedule: barycentrics and depth of the kept face (same ``_cover`` as the test)."""
        V = Vs
        for t in range(B * H * ROW_SEGMENTS):
            row, b, py, x0, x1 = row_segment(t, H, W)
            for px in range(x0, x1):
                p = row * W + px
                _write_bary(sv, faces, b * V, p, px, py, face_id[p], out_bary, out_depth, near, persp)

    @ti.func
    def _scatter(dst: arr, idx, gx, gy, gz, atomic: ti.template()):
        for i in ti.static(range(3)):
            if ti.static(atomic):
                ti.atomic_add(dst[idx[i], 0], gx[i])
                ti.atomic_add(dst[idx[i], 1], gy[i])
                ti.atomic_add(dst[idx[i], 2], gz[i])
            else:  # written out: Taichi makes ``+=`` on an array an atomic add
                dst[idx[i], 0] = dst[idx[i], 0] + gx[i]
                dst[idx[i], 1] = dst[idx[i], 1] + gy[i]
                dst[idx[i], 2] = dst[idx[i], 2] + gz[i]

    @ti.func
    def _backward_pixels(sv: arr, faces: iarr, face_id: iarr, g_bary: arr, g_depth: arr, dst: arr, row, py, x0, x1,
                         vb, off, W, persp, has_gb, has_gd, atomic: ti.template()):
        """Pixels x0 .. x1 - 1 of row ``row`` (over the batch; ``py`` in its image), vertices from row
        ``vb`` of ``sv``: adds their gradients into rows ``off + vb + faces[f, i]`` of ``dst``
        (``backward``'s derivation). Consecutive pixels of one face sum their gradient in registers,
        added (9 adds) only when the face changes."""
        cy = real(py) + real(0.5)
        cur = -1
        idx = ti.Vector([0, 0, 0])
        xs = ti.Vector([real(0.0), real(0.0), real(0.0)], real)
        ys = ti.Vector([real(0.0), real(0.0), real(0.0)], real)
        zs = ti.Vector([real(0.0), real(0.0), real(0.0)], real)
        w = ti.Vector([real(0.0), real(0.0), real(0.0)], real)
        ax = ti.Vector([real(0.0), real(0.0), real(0.0)], real)
        ay = ti.Vector([real(0.0), real(0.0), real(0.0)], real)
        az = ti.Vector([real(0.0), real(0.0), real(0.0)], real)
        for px in range(x0, x1 + 1):
            f = -1
            p = row * W + px
            if px < x1:
                f = face_id[p]
            if f != cur:
                if cur >= 0:
                    _scatter(dst, idx, ax, ay, az, atomic)
                cur = f
                ax = ti.Vector([real(0.0), real(0.0), real(0.0)], real)
                ay = ti.Vector([real(0.0), real(0.0), real(0.0)], real)
                az = ti.Vector([real(0.0), real(0.0), real(0.0)], real)
                if f >= 0:
                    idx = ti.Vector([off + vb + faces[f, 0], off + vb + faces[f, 1], off + vb + faces[f, 2]])
                    xs, ys, zs = _verts(sv, faces, vb, f)
                    w = ti.Vector([_w(zs[0], persp), _w(zs[1], persp), _w(zs[2], persp)], real)
            if f >= 0:
                cx = real(px) + real(0.5)
                E = ti.Vector([edge_function(xs[1], ys[1], xs[2], ys[2], cx, cy),
                               edge_function(xs[2], ys[2], xs[0], ys[0], cx, cy),
                               edge_function(xs[0], ys[0], xs[1], ys[1], cx, cy)], real)
                A = E[0] + E[1] + E[2]
                gb = ti.Vector([real(0.0), real(0.0), real(0.0)], real)
                if has_gb:
                    gb = ti.Vector([g_bary[p, 0], g_bary[p, 1], g_bary[p, 2]], real)
                gd = real(0.0)
                if has_gd:
                    gd = g_depth[p]
                gE = ti.Vector([real(0.0), real(0.0), real(0.0)], real)
                if persp:
                    q = E * w
                    Q = q[0] + q[1] + q[2]
                    iQ = real(1.0) / Q
                    bb = q * iQ
                    s = gb.dot(bb)
                    gq = (gb - s) * iQ - gd * A * iQ * iQ
                    gE = gq * w + gd * iQ
                    for i in ti.static(range(3)):
                        if ti.abs(zs[i]) >= real(Z_TINY):
                            az[i] += -gq[i] * E[i] * w[i] * w[i]
                else:
                    iA = real(1.0) / A
                    bb = E * iA
                    gbt = gb + gd * zs
                    az += gd * bb
                    s = gbt.dot(bb)
                    gE = (gbt - s) * iA
                for i in ti.static(range(3)):
                    j = (i + 1) % 3
                    k = (i + 2) % 3
                    ax[j] += gE[i] * (ys[k] - cy)
                    ay[k] += gE[i] * (xs[j] - cx)
                    ax[k] -= gE[i] * (ys[j] - cy)
                    ay[j] -= gE[i] * (xs[k] - cx)

    @kernel
    def backward(sv: arr, faces: iarr, face_id: iarr, g_bary: arr, g_depth: arr, dst: arr, B: ti.i32, Vs: ti.i32,
                 H: ti.i32, W: ti.i32, persp: ti.i32, has_gb: ti.i32, has_gd: ti.i32, NW: ti.i32,
                 private: ti.template()):
        """Gradient w.r.t. sv (B * V, 3) of the barycentrics and depth, given (g_bary, g_depth), per pixel.

        ``private`` (CPU): NW workers, one per thread, each taking blocks of whole image rows
        (common.worker_row) and adding with plain adds into its own copy, rows ``w * R .. (w + 1)
        * R - 1`` of ``dst (NW * R, 3)``, R = rows of sv (the host sums the copies:
        taichirast/_scatter.py). Otherwise (GPUs) ``dst (R, 3)`` += by atomics, row segments in
        parallel.

        Perspective (q_i = E_i w_i, w_i = 1/z_i, Q = sum q, A = sum E, b_i = q_i/Q, depth = A/Q):
            gq_j = (g_b_j - sum_i g_b_i b_i) / Q - g_depth A / Q^2
            gE_j = gq_j w_j + g_depth / Q                (depth depends on E_j through A too)
            gz_j = -gq_j E_j w_j^2                        (0 where |z_j| was clamped to Z_TINY)
        Non-perspective (b_i = E_i / A, depth = sum b_i z_i):
            gbt_i = g_b_i + g_depth z_i,  gz_i = g_depth b_i
            gE_j = (gbt_j - sum_i gbt_i b_i) / A
        Edge functions, (j, k) = (i + 1, i + 2) mod 3, E_i = (x_j - px)(y_k - py) - (x_k - px)(y_j - py):
            dE_i/dx_j = y_k - py,  dE_i/dy_k = x_j - px,  dE_i/dx_k = -(y_j - py),  dE_i/dy_j = -(x_k - px)
        """
        if ti.static(private):
            R = sv.shape[0]
            for it in range(NW * CHUNK_STRIDE):
                if it % CHUNK_STRIDE == 0:  # worker it // CHUNK_STRIDE
                    for j in range(worker_rows(it, NW, B * H)):
                        row = worker_row(it, j, NW)
                        b = row // H
                        _backward_pixels(sv, faces, face_id, g_bary, g_depth, dst, row, row - b * H, 0, W, b * Vs,
                                         it // CHUNK_STRIDE * R, W, persp, has_gb, has_gd, False)
        else:
            for t in range(B * H * ROW_SEGMENTS):
                row, b, py, x0, x1 = row_segment(t, H, W)
                _backward_pixels(sv, faces, face_id, g_bary, g_depth, dst, row, py, x0, x1, b * Vs, 0, W, persp,
                                 has_gb, has_gd, True)

    return {"setup": setup, "raster_faces": raster_faces, "faces_in_order": faces_in_order, "resolve": resolve,
            "raster_pixels": raster_pixels,
            "bary": bary, "backward": backward, "raster_faces_peel": raster_faces_peel,
            "raster_pixels_peel": raster_pixels_peel}
