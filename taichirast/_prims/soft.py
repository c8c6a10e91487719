"""``soft_rasterize``: SoftRas (Liu et al. 2019) soft rasterization. Kernels in kernels/soft.py.

Inputs
    screen_verts  (B, V, 3) or (V, 3) float32/float64: x, y in pixels (x right, y down, pixel (r, c)
                  centred at (c + 0.5, r + 0.5)), z = camera depth (> 0 in front). Differentiable.
    faces         (F, 3) int32/int64, shared by the batch.
    colors        per-vertex (V, C) / (B, V, C), or per-face (F, C) / (B, F, C) with ``per_face=True``.
                  Differentiable.
    image_size    (H, W) or an int.
    background    (C,) colour, default zeros. Differentiable.
    sigma, gamma  coverage sharpness and depth-softmax temperature (> 0). sigma scales squared distances
                  in NDC units (the image's shorter side spans [-1, 1], one pixel = 2 / min(H, W)), as in
                  the SoftRas paper and PyTorch3D, so published values mean the same here. Lower bounds
                  per dtype (ValueError below them): ``(2 / min(H, W))^2 / sigma`` and
                  ``1 / ((far - near) gamma)`` at most ``finfo(dtype).max / 1e8`` (3.4e30 for float32,
                  1.8e300 for float64). When ``gamma (far - near)`` nears the depths' rounding
                  (float32: ~6e-8 x depth) the softmax is a z-buffer and depth gradients where
                  surfaces meet are dominated by rounding (large, finite): use float64 there.
    eps           background depth for the softmax (``w_b = exp(eps / gamma)``).
    near, far     depth range: ``z_j = (far - zp) / (far - near)``. Faces with any vertex at
                  ``z <= near`` are dropped (their screen projection is meaningless). far > near >= 0.
    cull_eps      a face whose coverage at a pixel is ``D < cull_eps`` is skipped there, in both passes;
                  faces are binned with their box grown by ``sqrt(sigma ln(1 / cull_eps - 1))`` NDC, so
                  binning only drops faces that test would skip. In (0, 0.5].
    tile_size     binning tile edge in pixels (performance only: with exact=True results are bitwise the
                  same for every tile size, otherwise within the cut-off's tolerance). 16 measured best
                  (or on par) for a 70k-face mesh at 512 x 512 on CPU.
    exact         False (default): each pixel stops once the faces left, in depth order, would change its
                  alpha and colour by at most ``CUT_TOL`` = 9e-5, a pixel whose 1 - alpha is at most
                  ``CUT_TOL`` has alpha = 1 exactly, and faces whose softmax weight is provably below
                  ``DROP_TOL`` = 1e-6 in total add no colour (bounds proved in kernels/soft.py); True:
                  every face within the cull radius is summed. Both are deterministic run to run.

The channel count C is a compile-time constant of the kernels (colours live in registers): each new C
compiles the kernels once.

Output: RGBA ``(B, H, W, C + 1)``, dtype of ``screen_verts``; channels ``0..C-1`` colour, ``C`` alpha.
Zero-area faces are skipped (never NaN). Memory is O(pixels + faces) whatever the overlap: there is no
faces-per-pixel cap.
"""
from __future__ import annotations

import math

import numpy as np

from .. import _array as A
from .. import _validate as V
from .. import packed as P
from .._binning import bin_faces, ranks_of, tile_schedule
from .._primitive import Prepared, Primitive
from ..runtime import ensure_init

FN = "soft_rasterize"
# Tolerance of the depth-ordered cut-off and of the saturation snap (exact=False): max |Δalpha| and
# max |Δrgb| per pixel. The soft-raster issue allows 1e-4; 9e-5 keeps 1e-5 of it for float32 rounding
# of the compared images (bunny 512² fwd+bwd 279 -> 255 ms against 1e-5, interleaved).
CUT_TOL = 9e-5
# The colour floor's share of the bound (exact=False): a pair whose softmax weight is provably below
# exp(-U) of the pixel's front gets weight 0, with U (``colour_floor``) chosen so the pairs dropped at
# a pixel change its colour by at most DROP_TOL; max |Δrgb| <= CUT_TOL + DROP_TOL = 9.1e-5.
DROP_TOL = 1e-6


def bits_dtype(sv) -> str:
    """The integer dtype as wide as ``sv``'s floats (kernels/soft.py ``BITS``): setup's depth keys
    and entry_colours' largest-colour bits."""
    return "int32" if A.dtype_name(sv) == "float32" else "int64"


def tile_size_arg(fn, tile_size):
    if isinstance(tile_size, bool) or not isinstance(tile_size, (int, np.integer)):
        raise TypeError(f"{fn}: tile_size must be a positive int, got {tile_size!r}")
    t = int(tile_size)
    if t <= 0 or t > 4096:
        raise ValueError(f"{fn}: tile_size must be in [1, 4096], got {t}")
    return t


def soft_rasterize(screen_verts, faces, colors, image_size, background=None, sigma=1e-4, gamma=1e-4, eps=1e-10,
            near=0.01, far=100.0, per_face=False, cull_eps=1e-4, tile_size=16, exact=False):
    """Soft rasterization and aggregation (SoftRas, Liu et al. 2019), O(1) memory per pixel.

    Each face j covers pixel p with probability ``D_j = sigmoid(±d_j^2 / sigma)`` (+ inside,
    - outside), ``d_j`` the distance from p to the triangle in NDC units (the shorter image side
    spans [-1, 1], as in PyTorch3D, so published sigma values apply). Alpha is
    ``1 - prod_j (1 - D_j)``; colour is the softmax over depth
    ``sum_j w_j c_j + w_b background`` with ``w_j ∝ D_j exp(z_j / gamma)``,
    ``w_b ∝ exp(eps / gamma)``, ``z_j = (far - depth) / (far - near)``. Faces with
    ``D_j < cull_eps`` at a pixel are skipped (and binned away); there is no faces-per-pixel cap.
    Faces with a vertex at ``z <= near`` are dropped.

    Faces are visited nearest first (deterministic: the same result run to run). Unless
    ``exact=True``, a pixel stops once the faces left would change it by less than
    ``CUT_TOL = 9e-5`` (its ``1 - alpha`` is below 9e-5 and the softmax weight they can still add
    is below 9e-5 of its total, scaled by the colour range); a pixel whose ``1 - alpha`` is at
    most 9e-5 gets alpha = 1 exactly (saturated: alpha's gradient is 0 there); and faces so far
    behind a pixel's front that their colour weights move it by at most 1e-6 in all add none. So
    ``max |Δalpha|`` and ``max |Δrgb|`` against the exact sum are at most 9e-5 and 9.1e-5
    (kernels/soft.py); gradients are those of what was computed.

    Args:
        screen_verts: ``(V, 3)`` or ``(B, V, 3)`` from :func:`project`.
        faces: ``(F, 3)`` int indices.
        colors: per-vertex ``(V, C)`` / ``(B, V, C)``, or per-face ``(F, C)`` / ``(B, F, C)``
            with ``per_face=True``. Outside a face, a pixel takes the colour of the face's
            nearest point.

            A packed batch of different meshes (:mod:`taichirast.packed`) draws mesh i into image
            i: ``screen_verts`` a :class:`~taichirast.Meshes` of screen vertices with
            ``faces=None``, or packed ``(sum V_i, 3)`` / per-mesh lists with ``faces`` a ``Meshes``
            / list; ``colors`` then packed ``(sum V_i, C)`` (``(sum F_i, C)`` per face) or a list.
        image_size: ``(H, W)``.
        background: ``(C,)`` background colour (default zeros); differentiable.
        sigma, gamma: sharpness of coverage and of the depth softmax (> 0).
        eps: background depth offset in the softmax.
        near, far: depth normalisation (the camera's near / far).
        exact: sum every face within the cull radius (no depth cut-off; several times slower).

    Returns:
        ``(B, H, W, C + 1)`` RGBA (colour channels then alpha). Differentiable w.r.t.
        ``screen_verts`` (x, y and z), ``colors`` and ``background``.
    """
    screen_verts, faces, meshes = P.mesh_args(FN, "screen_verts", screen_verts, faces)
    colors = P.pack_values(meshes, colors, "face" if per_face else "vertex", FN, "colors")
    kind = V.kind_of(screen_verts, faces, colors, background)
    sv = V.screen_verts(FN, "screen_verts", screen_verts, kind)
    faces = V.faces(FN, "faces", faces, kind, sv.shape[1], like=sv)
    H, W = V.image_size(FN, image_size)
    V.camera_size_matches(FN, screen_verts, (H, W))
    per_face = bool(per_face)
    colors = V.float_array(FN, "colors", colors, kind, sv, ndims=(2, 3))
    colors = colors[None] if colors.ndim == 2 else colors
    n_want, what = (faces.shape[0], "F faces (per_face=True)") if per_face else (sv.shape[1], "V vertices")
    if colors.shape[1] != n_want:
        raise ValueError(f"{FN}: colors must have shape ({n_want}, C) or (B, {n_want}, C), one row for each of the "
                         f"{n_want} {what}; got shape {tuple(colors.shape)}")
    C = colors.shape[2]
    if C < 1:
        raise ValueError(f"{FN}: colors must have at least one channel, got shape {tuple(colors.shape)}")
    if background is None:
        background = A.zeros(colors, (C,))
        bg_source = None
    else:
        background = V.float_array(FN, "background", background, kind, sv, ndims=(1,))
        if background.shape[0] != C:
            raise ValueError(f"{FN}: background must have shape ({C},) to match colors, got {tuple(background.shape)}")
        bg_source = "background"
    V.same_float(FN, screen_verts=sv, colors=colors, background=background)
    sigma = V.positive(FN, "sigma", sigma)
    gamma = V.positive(FN, "gamma", gamma)
    eps = V.number(FN, "eps", eps, lo=-1e30, hi=1e30)
    near = V.number(FN, "near", near, lo=0.0)
    far = V.number(FN, "far", far)
    if not far > near or math.isinf(far):
        raise ValueError(f"{FN}: far must be finite and greater than near, got near={near}, far={far}")
    _check_scales(A.dtype_name(sv), H, W, sigma, gamma, far - near)
    cull_eps = V.number(FN, "cull_eps", cull_eps, lo=0.0, hi=0.5, lo_open=True)
    tile = tile_size_arg(FN, tile_size)
    B = P.batch(FN, meshes, {"screen_verts": sv.shape[0], "colors": colors.shape[0]})
    ent = P.entries_for(meshes, B, faces.shape[0], sv)
    params = dict(B=B, H=H, W=W, C=C, sigma=sigma, gamma=gamma, eps=eps, near=near, far=far,
                  per_face=per_face, cull_eps=cull_eps, tile=tile, exact=bool(exact), E=ent.total, counts=ent.counts)
    return Prepared(inputs=[sv, faces, colors, background, ent.tab],
                    sources=["screen_verts", None, "colors", bg_source, None], params=params)


def _check_scales(dtype, H, W, sigma, gamma, depth_range):
    """sigma and gamma small enough to overflow the kernels' k2 = s^2 / sigma or
    cz = 1 / ((far - near) gamma) in ``dtype`` are a ValueError (DESIGN §7)."""
    lim = V.dtype_limit(dtype)
    s2 = (2.0 / min(H, W)) ** 2
    V.in_dtype_range(FN, "sigma", sigma, dtype, lo=s2 / lim,
                     why=f"(2 / min(H, W))^2 / sigma must stay below {lim:.3g}")
    V.in_dtype_range(FN, "gamma", gamma, dtype, lo=1.0 / (depth_range * lim),
                     why=f"1 / ((far - near) * gamma) must stay below {lim:.3g}")


def _scalars(p):
    s = 2.0 / min(p["H"], p["W"])  # one pixel in NDC units
    d2cull = p["sigma"] * math.log(1.0 / p["cull_eps"] - 1.0) / (s * s)  # pixels^2
    fn = p["far"] - p["near"]
    # The softmax works on depths: z_j / gamma = (far - zp) cz, and the background's eps / gamma is the
    # depth zb = far - eps (far - near); differences of depths keep float32 exponents accurate.
    return dict(k2=s * s / p["sigma"], d2cull=d2cull, cz=1.0 / (fn * p["gamma"]), zb=p["far"] - p["eps"] * fn)


def forward(inputs, params):
    from taichirast.kernels import real_type, soft

    ensure_init()
    sv, faces, colors, bg, tab = inputs
    B, H, W, C = params["B"], params["H"], params["W"], params["C"]
    F = params["E"]
    out = A.empty(sv, (B, H, W, C + 1))
    aux = A.empty(sv, (B, H, W, 4))  # zm, Z, w_b / Z, 1 - alpha
    if F == 0:
        out[..., :C] = bg
        out[..., C] = 0.0
        aux[..., 0] = _scalars(params)["zb"]
        aux[..., 1:] = 1.0
        none = A.zeros(sv, (1, 1), "int32")
        return (out,), (sv, faces, colors, bg, tab, none, A.zeros(sv, (1, soft.K)), out, aux, none, none, none, none)
    lanes, rows = soft.lanes("forward"), soft.block_rows("forward")
    K = soft.build(real_type(A.dtype_name(sv)), lanes, rows)
    sc = _scalars(params)
    fs, offsets, tile_faces, emask, rank, eperm = depth_ordered_setup(K, sv, faces, tab, params, sc["d2cull"])
    cut = A.empty(sv, (B, H, W), "int32")
    lastc = A.empty(sv, (B, H, W), "int32")  # each pixel's last pair with colour weight (kernels/soft.py)
    # each entry's corner colours and the cut-off's colour bound per image (kernels/soft.py `entry_colours`)
    fcol = A.empty(sv, (F, 3, C))
    cmaxb = A.zeros(sv, (B,), bits_dtype(sv))
    K.entry_colours(colors, faces, tab, eperm, fcol, cmaxb, int(params["per_face"]), C)
    T = params["tile"]
    torder = tile_schedule(offsets)
    bpt = -(-T // rows) * -(-T // (lanes // rows))  # blocks of rows x lanes / rows pixels per tile
    K.forward(fs, fcol, bg, offsets, tile_faces, emask, rank, out, aux, cut, lastc, torder, len(torder) * bpt, T, bpt,
              sc["k2"], sc["d2cull"], sc["cz"], sc["zb"], colour_floor(params, cmaxb, bg, sv), cmaxb, CUT_TOL,
              int(params["per_face"]), C, not params["exact"])
    return (out,), (sv, faces, colors, bg, tab, eperm, fs, out, aux, rank, cut, cmaxb, lastc)


def colour_floor(params, cmaxb, bg, like):
    """U of the colour floor (kernels/soft.py, "The colour floor"): a pair whose softmax exponent
    ``(zm - zmin_j) cz`` is below -U gets colour weight 0 in both passes. With ``exact`` (and
    wherever the bound below reaches it) U is the underflow bound, below which the weight is 0
    anyway; otherwise ``U = ln(E 2 c / (cull_eps DROP_TOL))`` with E the most faces of an image and c
    = max(1, the largest |colour| of the images, ``cmaxb``, and of the background): at most E pairs
    of weight below exp(-U) are dropped at a pixel whose softmax sum is at least cull_eps, so its
    colour moves by at most DROP_TOL. A host scalar, so both passes test with the same bits."""
    from taichirast.kernels import real_type, soft

    dt = A.dtype_name(like)
    uf = soft.underflow(real_type(dt))
    if params["exact"] or params["E"] == 0:
        return uf
    bits = A.to_numpy(cmaxb)
    cmax = max(float(bits.view(np.dtype(dt)).max()), A.abs_max(bg), 1.0)
    return min(uf, math.log(max(params["counts"]) * 2.0 * cmax / (params["cull_eps"] * DROP_TOL)))


def spatial_order(K, sv, faces, tab, counts):
    """``eperm (E,)`` int32: each image's face entries in the Morton order of their screen centroids
    (kernels/soft.py ``spatial_keys``; ties in entry order), the entry order of ``setup``'s slots.
    The per-face passes (the backward, DIB-R's backward) then visit faces that share pixel blocks
    one after another, and a tile's faces sit in nearby rows of the per-entry buffers: on the bunny
    at 512² the forward kernel took 0.91-0.94x and the backward 0.87-0.91x the time they take in
    the mesh's order, plus ~3 ms for the keys and their sort."""
    key = A.empty(sv, (int(sum(counts)),), "int32")
    K.spatial_keys(sv, faces, tab, key)
    return A.segmented_argsort(key, None if len(counts) == 1 else P.entry_images(counts, key))


def depth_ordered_setup(K, sv, faces, tab, params, d2cull):
    """Per-entry constants ``fs (E, K)`` (kernels/soft.py ``setup``, entry slots in ``spatial_order``),
    tile lists in depth order (nearest vertex first, then slot) with each tile entry's cell mask
    ``emask`` (kernels/soft.py ``cell_mask``, computed by the fill), each slot's place in that order
    ``rank (E,)`` int32, and the slots' entries ``eperm (E,)``: ``(fs, offsets, tile_faces, emask,
    rank, eperm)``."""
    from taichirast.kernels import soft

    H, W, E = params["H"], params["W"], params["E"]
    fs = A.empty(sv, (E, soft.K))
    reach = A.empty(sv, (E, soft.NREACH))
    # Grow boxes a hair beyond the cull radius so rounding never bins out a face the cull test keeps.
    margin = math.sqrt(d2cull) * (1.0 + 1e-4) + 1e-3
    eperm = spatial_order(K, sv, faces, tab, params["counts"])
    key = A.empty(sv, (E,), bits_dtype(sv))
    K.setup(sv, faces, tab, eperm, fs, reach, key, params["near"], margin, 1)
    A.freeze(fs)  # read-only from here
    # nearest first: the largest 1 / z of the three vertices (0 for a skipped face: last), per image
    counts = params["counts"]
    order = A.segmented_argsort(key, None if len(counts) == 1 else P.entry_images(counts, key))
    rank = ranks_of(order)
    offsets, tile_faces, emask = bin_faces(reach, tab, H, W, params["tile"], order=order, rank=rank, visit=K.cell_mask)
    return fs, offsets, tile_faces, emask, rank, eperm


def backward(saved, params, grads, needs):
    from taichirast.kernels import real_type, soft

    # Detach: the saved output is a requires_grad tensor under torch (Taichi must not see that).
    sv, faces, colors, bg, tab, eperm, fs, out, aux, rank, cut, cmaxb, lastc = (A.detach(x) for x in saved)
    (g,) = grads
    if g is None:
        return [None] * 5
    C = params["C"]
    need_sv, need_col, need_bg = needs[0], needs[2], needs[3]
    gsv = gcol = gbg = None
    F = params["E"]
    if need_sv:
        gsv = A.zeros(sv, sv.shape)
    if need_col:
        gcol = A.zeros(colors, colors.shape)
    if F > 0 and (need_sv or need_col):
        lanes, rows = soft.lanes("backward"), soft.block_rows("backward")
        K = soft.build(real_type(A.dtype_name(sv)), lanes, rows)
        sc = _scalars(params)
        B, H, W = params["B"], params["H"], params["W"]
        n_pb, n_cutb = soft.pixel_blocks(B, H, W, C, lanes, rows)
        pb, cutb = A.empty_blocks(sv, n_pb, lanes), A.empty_blocks(sv, n_cutb, lanes, "int32")
        # cutb: each pixel's pair bound (kernels/soft.py "The backward's pairs"), in blocks
        K.pixel_prep(out, aux, g, cut, lastc, pb, cutb, C)
        T = params["tile"]
        tmax = A.empty(sv, (B, ((H + T - 1) // T) * ((W + T - 1) // T)), "int32")
        K.tile_max_cut(cutb, tmax, H, W, T)
        smax = A.empty(sv, (B, -(-H // rows), -(-W // soft.SEG)), "int32")
        K.seg_max_cut(cutb, smax, W)
        none = A.zeros(sv, (1, 1, 1))  # for the gradient not wanted
        K.backward(fs, faces, tab, eperm, colors, pb, rank, cutb, tmax, smax, gsv if need_sv else none,
                   gcol if need_col else none, H, W, T, sc["k2"], sc["d2cull"], sc["cz"],
                   colour_floor(params, cmaxb, bg, sv), int(params["per_face"]), int(need_sv), int(need_col), C)
    if need_bg:
        # d rgb / d bg = w_b / Z per pixel; alpha does not depend on the background.
        gbg = A.contiguous(A.sum_axes(g[..., :C] * aux[..., 2:3], (0, 1, 2)))
    return [gsv, None, gcol, gbg, None]


PRIM = Primitive(FN, soft_rasterize, forward, backward, differentiable=("screen_verts", "colors", "background"))
