"""DIB-R soft silhouette (Chen et al. 2019, "DIB-R", eq. 6; Kaolin's ``dibr_soft_mask``), forward +
hand-written backward.

Conventions as in kernels/soft.py (pixels, x right, y down, centres at half-integers; NDC unit
``s = 2 / min(H, W)`` per pixel). For a pixel p whose hard-rasterized face id is ``>= 0`` the alpha
is 1 (no gradient). Otherwise

    A = 1 - prod_j (1 - P_j),   P_j = exp(-sigmainv d_j^2),

with ``d_j`` the NDC distance from p to triangle j (0 inside it), over the faces whose vertex box
grown by ``box_len`` NDC contains p's centre; the kernels take ``kd = sigmainv s^2`` and work with
squared pixel distances. Faces with a vertex at ``z <= near`` or zero area are skipped
(kernels/soft.py ``setup``).

Forward: one thread per screen tile walks the tile's faces and, for each, the pixels of its box
inside the tile, updating per pixel ``alpha <- alpha + P (1 - alpha)`` (no cancellation when alpha is
small) and, for the backward, the number ``nz`` of exact zero factors ``1 - P_k == 0`` and the
product of the non-zero ones, kept as ``mant * 1e-30^ex`` so that it never underflows.

Backward (one thread per face over its box; vertex gradients accumulate in registers):
``dA/dP_j = prod_{k != j} (1 - P_k)``, which is ``prod_nz / (1 - P_j)`` when ``nz == 0``,
``prod_nz`` for the zero factor itself when ``nz == 1`` and 0 otherwise; ``dP_j/d(d^2) = -kd P_j``;
``d^2`` is constant (0) inside the triangle, and outside the envelope theorem on the nearest edge
(P, Q) with nearest point N = P + t (Q - P) gives ``d(d^2)/dP = -2 (p - N)(1 - t)``,
``d(d^2)/dQ = -2 (p - N) t``.
"""
import functools

import taichi as ti

from . import kernel, soft, tile_block_dim
from .common import entry_face

RESCALE = 1e30  # prod_nz is kept as mant * RESCALE^-ex with mant >= 1 / RESCALE


@functools.lru_cache(maxsize=None)
def build(real):
    """Kernels for float type ``real``; face setup and scatter are kernels/soft.py's."""
    arr = ti.types.ndarray(dtype=real)
    iarr = ti.types.ndarray(dtype=ti.i32)
    S = soft.build(real)
    tile_block = tile_block_dim()  # see kernels/soft.py

    @kernel
    def forward(fs: arr, face_id: iarr, offsets: iarr, tile_faces: iarr, torder: iarr, alpha: arr, aux: arr,
                T: ti.i32, kd: real):
        """alpha (B, H, W); aux (B, H, W, 3) = (mant, nz, ex) of the product of non-zero 1 - P_k. One
        thread per tile, in the order ``torder`` (taichirast/_binning.py ``tile_schedule``)."""
        H, W = alpha.shape[1], alpha.shape[2]
        ntx = (W + T - 1) // T
        nty = (H + T - 1) // T
        ti.loop_config(block_dim=tile_block)
        for it in range(torder.shape[0]):
            tid = torder[it]
            b = tid // (ntx * nty)
            tile = tid - b * (ntx * nty)
            r_lo = (tile // ntx) * T
            c_lo = (tile % ntx) * T
            r_hi = ti.min(r_lo + T, H) - 1
            c_hi = ti.min(c_lo + T, W) - 1
            fb = b if face_id.shape[0] > 1 else 0
            for r in range(r_lo, r_hi + 1):
                for c in range(c_lo, c_hi + 1):
                    alpha[b, r, c] = real(1.0) if face_id[fb, r, c] >= 0 else real(0.0)
                    aux[b, r, c, 0] = real(1.0)
                    aux[b, r, c, 1] = real(0.0)
                    aux[b, r, c, 2] = real(0.0)
            for k in range(offsets[tid], offsets[tid + 1]):
                f = tile_faces[k]
                ox, oy, xs, ys, ab, tc = S.face_frame(fs, f, False)
                r0, r1 = S.rows_of(fs, f, H, r_lo, r_hi)
                for r in range(r0, r1 + 1):
                    py = real(r) + real(0.5)
                    c0, c1 = S.row_span(fs, f, py, W, c_lo, c_hi)
                    for c in range(c0, c1 + 1):
                        px = real(c) + real(0.5)
                        if face_id[fb, r, c] < 0 and S.in_box(fs, f, px, py):
                            inside, a, d2, ke, t = S.geometry(xs, ys, ab, tc, px - ox, py - oy)
                            if inside:
                                d2 = real(0.0)
                            P = ti.exp(-kd * d2)
                            om = real(1.0) - P
                            A = alpha[b, r, c]
                            alpha[b, r, c] = A + P * (real(1.0) - A)
                            if om == 0:
                                aux[b, r, c, 1] = aux[b, r, c, 1] + real(1.0)
                            else:
                                mant = aux[b, r, c, 0] * om
                                if mant < real(1.0 / RESCALE):
                                    mant *= real(RESCALE)
                                    aux[b, r, c, 2] = aux[b, r, c, 2] + real(1.0)
                                aux[b, r, c, 0] = mant

    @kernel
    def backward(fs: arr, faces: iarr, tab: iarr, eperm: iarr, face_id: iarr, galpha: arr, aux: arr, gsv: arr,
                 kd: real):
        """One thread per face entry over its box pixels; gsv (Bs, V, 3), zero-initialised, += the
        face's corner gradients (z gradients are 0; soft.py's ``scatter_verts``)."""
        H, W = galpha.shape[1], galpha.shape[2]
        for f in range(fs.shape[0]):
            b, fg = entry_face(tab, eperm[f])  # slot f holds entry eperm[f] (soft.py's setup)
            gx = ti.Vector([0.0, 0.0, 0.0], real)
            gy = ti.Vector([0.0, 0.0, 0.0], real)
            if fs[f, soft.FS_BOX] <= fs[f, soft.FS_BOX + 1]:
                fb = b if face_id.shape[0] > 1 else 0
                ox, oy, xs, ys, ab, tc = S.face_frame(fs, f, False)
                r0, r1 = S.rows_of(fs, f, H, 0, H - 1)
                for r in range(r0, r1 + 1):
                    py = real(r) + real(0.5)
                    c0, c1 = S.row_span(fs, f, py, W, 0, W - 1)
                    for c in range(c0, c1 + 1):
                        px = real(c) + real(0.5)
                        g = galpha[b, r, c]
                        if g != 0 and face_id[fb, r, c] < 0 and S.in_box(fs, f, px, py):
                            x = px - ox
                            y = py - oy
                            inside, a, d2, ke, t = S.geometry(xs, ys, ab, tc, x, y)
                            if not inside:  # inside, d^2 = 0 in a neighbourhood: no gradient
                                P = ti.exp(-kd * d2)
                                om = real(1.0) - P
                                nz = aux[b, r, c, 1]
                                others = real(0.0)  # prod_{k != j} (1 - P_k)
                                if nz == 0:
                                    others = aux[b, r, c, 0] / om * ti.pow(real(1.0 / RESCALE), aux[b, r, c, 2])
                                elif nz == 1 and om == 0:
                                    others = aux[b, r, c, 0] * ti.pow(real(1.0 / RESCALE), aux[b, r, c, 2])
                                g_d2 = -g * others * kd * P
                                for k in ti.static(range(3)):
                                    if ke == k:
                                        k1 = (k + 1) % 3
                                        nx = x - (xs[k] + t * (xs[k1] - xs[k]))
                                        ny = y - (ys[k] + t * (ys[k1] - ys[k]))
                                        s0 = real(-2.0) * g_d2 * (real(1.0) - t)
                                        s1 = real(-2.0) * g_d2 * t
                                        gx[k] += s0 * nx
                                        gy[k] += s0 * ny
                                        gx[k1] += s1 * nx
                                        gy[k1] += s1 * ny
                S.scatter_verts(faces, gsv, b, fg, gx, gy, ti.Vector([0.0, 0.0, 0.0], real))

    class Kernels:
        """DIB-R kernels plus the shared setup of kernels/soft.py."""

    ns = Kernels()
    ns.forward, ns.backward, ns.setup, ns.spatial_keys = forward, backward, S.setup, S.spatial_keys
    return ns
