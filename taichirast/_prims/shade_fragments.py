"""``shade_fragments``: deferred shading of a rasterized image in one pass. Kernels in kernels/shade.py.

Per pixel with ``face_id >= 0`` the world position and the normal are interpolated with the
barycentrics inside the kernel (no ``(B, H, W, 3)`` position / normal images), shaded exactly as
:func:`taichirast.shade` does, and background pixels get ``background``. It is the fused form of
``interpolate(positions) + interpolate(normals) + shade + composite``, and the backward sums the
per-mesh gradients (lights, camera, material, background) in registers per segment of an image row
(64 pixels on CPUs, 16 on GPUs: ``SEGMENT``) instead of per pixel, and scatters position / normal gradients to the
vertices once per run of pixels on one face.

Inputs:

* ``face_id (B, H, W)`` int, ``bary (B, H, W, 3)``: the rasterizer's fragments.
* ``positions (V, 3)`` / ``(Bp, V, 3)`` world positions, ``position_faces (F, 3)`` indexing them.
* ``normals (Vn, 3)`` / ``(Bn, Vn, 3)`` (need not be unit length), ``normal_faces (F, 3)``
  indexing them: vertex normals with the mesh's faces (smooth shading), or face normals
  ``(F, 3)`` with ``normal_faces[f] = (f, f, f)`` (flat shading).
* ``albedo (B, H, W, 3)``: per-pixel diffuse colour (interpolated colours or a sampled texture).
* ``camera_center (3,)`` / ``(Bc, 3)``.
* lights as in :func:`taichirast.shade` (``ambient``, ``light_dirs``/``light_colors``,
  ``point_positions``/``point_colors``, ``sh_coeffs``, ``attenuation_k``, ``model``).
* material: ``material_ambient`` and ``specular`` ``(3,)`` / ``(Bm, 3)`` per mesh or
  ``(B, H, W, 3)`` per pixel, ``shininess`` ``()`` / ``(Bm,)`` or ``(B, H, W)``; defaults 1, 0, 1.
* ``background (3,)`` (default 0).

Batches of 1 broadcast (positions, normals, camera, material). Output ``(B, H, W, 3)``.
Differentiable in every float input (``bary`` included, so gradients flow on into the rasterizer).
"""
from __future__ import annotations

from .. import _array as A
from .. import _validate as V
from .. import packed
from .._primitive import Prepared, Primitive
from .interpolate import _int_image
from .shade import LIGHT_DUMMIES, _kernels, check_lights, vec3

FN = "shade_fragments"

_NAMES = ("face_id", "bary", "positions", "position_faces", "normals", "normal_faces", "albedo", "camera_center",
          "ambient", "light_dirs", "light_colors", "point_positions", "point_colors", "sh_coeffs",
          "material_ambient", "specular", "shininess", "background")
_DIFF = tuple(n for n in _NAMES if n not in ("face_id", "position_faces", "normal_faces"))
_SOURCE = {"bary": "fragments.bary"}  # kernel input -> the public argument it comes from


def _batched(name, x, kind, like, B, nd):
    """``(N, 3)``-like (``nd`` dims) or batched ``(Bx, ...)`` with Bx in (1, B) -> batched."""
    x = V.float_array(FN, name, x, kind, like, ndims=(nd, nd + 1), last=3)
    if x.ndim == nd:
        x = x.reshape((1,) + tuple(x.shape))
    if x.shape[0] not in (1, B):
        raise ValueError(f"{FN}: {name} has batch {x.shape[0]} but the image batch is {B} (must be 1 or equal)")
    return x


def _material(name, x, kind, like, B, H, W, C, default):
    """Per mesh ``(C,)``/``(Bm, C)`` (C = 3) or ``()``/``(Bm,)`` (C = 1), or per pixel ``(B, H, W[, 3])``
    -> ``((Bm, 1, 1, C) or (B, H, W, C), per_pixel)``."""
    if x is None:
        return A.full(like, (1, 1, 1, C), default, A.dtype_name(like)), 0, False
    x = V.float_array(FN, name, x, kind, like)
    mesh_nd = 1 if C == 3 else 0
    if x.ndim in (mesh_nd, mesh_nd + 1):
        if C == 3 and x.shape[-1] != 3:
            raise ValueError(f"{FN}: {name} must have shape (3,), (Bm, 3) or (B, H, W, 3), got {tuple(x.shape)}")
        xb = x.reshape((-1, 1, 1, C)) if x.ndim > mesh_nd else x.reshape((1, 1, 1, C))
        if xb.shape[0] not in (1, B):
            raise ValueError(f"{FN}: {name} has batch {xb.shape[0]} but the image batch is {B} (must be 1 or equal)")
        return xb, 0, True
    want = (B, H, W) + ((3,) if C == 3 else ())
    if tuple(x.shape) != want:
        per_mesh = "(3,) or (Bm, 3)" if C == 3 else "() or (Bm,)"
        raise ValueError(f"{FN}: {name} must have shape {per_mesh} per mesh or {want} per pixel, got {tuple(x.shape)}")
    return x.reshape((B, H, W, C)), 1, True


def shade_fragments(fragments, positions, faces, normals, normal_faces, albedo, camera_center, ambient=None,
                    light_dirs=None, light_colors=None, point_positions=None, point_colors=None, sh_coeffs=None,
                    material_ambient=None, specular=None, shininess=None, background=None, *, model="blinn_phong",
                    attenuation_k=0.0):
    """Deferred shading of rasterized fragments in one fused pass (what :func:`render` uses when lit).

    Equal to ``shade(interpolate(normals, normal_faces, fragments), interpolate(positions, faces,
    fragments), albedo, ...)`` on covered pixels and ``background`` elsewhere, without the
    position / normal images and with per-mesh gradients summed per row segment (no per-pixel
    gradient buffers for lights, camera or material).

    A packed batch of different meshes (:mod:`taichirast.packed`; fragments of ``rasterize``
    on it): ``faces`` (and ``normal_faces``) a :class:`~taichirast.Meshes` or a list of
    per-mesh faces, with ``positions`` (and ``normals``) packed ``(sum V_i, 3)`` or lists;
    ``camera_center`` ``(N, 3)`` for a camera per mesh.

    Args:
        fragments: :class:`~taichirast.Fragments` (``face_id (B, H, W)``, ``bary (B, H, W, 3)``).
        positions: ``(V, 3)`` / ``(B, V, 3)`` world positions; ``faces (F, 3)`` index them.
        normals: ``(Vn, 3)`` / ``(B, Vn, 3)`` normals (normalised inside) indexed by
            ``normal_faces (F, 3)``: vertex normals with ``faces`` (smooth shading) or face normals
            with ``normal_faces[f] = (f, f, f)`` (flat shading).
        albedo: ``(B, H, W, 3)`` diffuse colour per pixel.
        camera_center: ``(3,)`` / ``(B, 3)`` eye position (world).
        ambient, light_dirs, light_colors, point_positions, point_colors, sh_coeffs, model, attenuation_k:
            the lights and reflectance model, as in :func:`shade`.
        material_ambient, specular: ``(3,)`` / ``(B, 3)`` per mesh or ``(B, H, W, 3)`` per pixel
            (defaults 1 and 0); shininess: scalar / ``(B,)`` per mesh or ``(B, H, W)`` per pixel
            (default 1).
        background: ``(3,)`` colour of pixels with ``face_id < 0`` (default 0).

    Returns:
        ``(B, H, W, 3)`` RGB, differentiable w.r.t. ``fragments.bary``, positions, normals, albedo,
        camera centre, every light and material parameter and the background.
    """
    from taichirast.kernels.shade import MODELS

    face_id, bary = V.fragment_fields(FN, "fragments", fragments, ("face_id", "bary"))
    positions, position_faces, meshes = packed.mesh_args(FN, "positions", positions, faces)
    normals, normal_faces, nmeshes = packed.mesh_args(FN, "normals", normals, normal_faces, "normal_faces")
    kind = V.kind_of(face_id, bary, positions, normals, albedo, camera_center, ambient, light_dirs, light_colors,
                     point_positions, point_colors, sh_coeffs, material_ambient, specular, shininess, background)
    if not isinstance(model, str) or model not in MODELS:
        raise ValueError(f"{FN}: model must be one of {sorted(MODELS)}, got {model!r}")
    k = V.number(FN, "attenuation_k", attenuation_k, lo=0.0)
    bary = V.float_array(FN, "fragments.bary", bary, kind, ndims=(4,), last=3, finite=False)
    like = bary
    face_id = _int_image("fragments.face_id", face_id, kind, like)
    if tuple(bary.shape[:3]) != tuple(face_id.shape):
        raise ValueError(f"{FN}: bary must have shape face_id.shape + (3,) = {tuple(face_id.shape) + (3,)}, "
                         f"got {tuple(bary.shape)}")
    if A.is_torch(face_id) and A.is_torch(like) and face_id.device != like.device:
        raise ValueError(f"{FN}: face_id is on {face_id.device} but bary is on {like.device}")
    B, H, W = face_id.shape
    packed.images(FN, meshes if meshes is not None else nmeshes, "fragments", B)
    positions = _batched("positions", positions, kind, like, B, 2)
    normals = _batched("normals", normals, kind, like, B, 2)
    position_faces = V.faces(FN, "faces", position_faces, kind, n_verts=positions.shape[1], like=like)
    normal_faces = V.faces(FN, "normal_faces", normal_faces, kind, n_verts=normals.shape[1], like=like)
    F = position_faces.shape[0]
    if normal_faces.shape[0] != F:
        raise ValueError(f"{FN}: normal_faces must have one row per face ({F}), got {tuple(normal_faces.shape)}")
    n = B * H * W
    if n and not V.is_trusted():
        lo, hi = A.min_max(face_id)
        if lo < -1 or hi >= F:
            raise ValueError(f"{FN}: face_id has values in [{lo}, {hi}] but there are {F} faces "
                             f"(valid: -1 for background, or [0, {F - 1}])")
    face_id = A.astype(face_id, "int32")
    albedo = V.float_array(FN, "albedo", albedo, kind, like, ndims=(4,), last=3)
    if tuple(albedo.shape) != (B, H, W, 3):
        raise ValueError(f"{FN}: albedo must have shape {(B, H, W, 3)}, got {tuple(albedo.shape)}")
    cam = _batched("camera_center", camera_center, kind, like, B, 1)
    arrs = {"face_id": face_id, "bary": bary, "positions": positions, "position_faces": position_faces,
            "normals": normals, "normal_faces": normal_faces, "albedo": albedo, "camera_center": cam}
    lights, L, P = check_lights(FN, kind, like, ambient, light_dirs, light_colors, point_positions, point_colors,
                                sh_coeffs)
    arrs.update(lights)
    flags, given = {}, {}
    for name, x, C, default in (("material_ambient", material_ambient, 3, 1.0), ("specular", specular, 3, 0.0),
                                ("shininess", shininess, 1, 1.0)):
        arrs[name], flags[name], given[name] = _material(name, x, kind, like, B, H, W, C, default)
    if given["shininess"] and float(A.detach(arrs["shininess"]).min()) < 0:
        raise ValueError(f"{FN}: shininess must be >= 0")
    arrs["background"] = None if background is None else vec3(FN, "background", background, kind, like)
    V.same_float(FN, **{k_: v for k_, v in arrs.items() if k_ not in ("face_id", "position_faces", "normal_faces")})
    dummies = dict(LIGHT_DUMMIES, background=(3,))
    inputs, sources = [], []
    for name in _NAMES:
        x = arrs[name]
        if name in given:
            inputs.append(x)
            sources.append(name if given[name] else None)
        elif x is None:
            inputs.append(A.zeros(like, dummies[name]))
            sources.append(None)
        else:
            inputs.append(x)
            sources.append(_SOURCE.get(name, name) if name in _DIFF else None)
    params = {"L": L, "P": P, "k": k, "model": MODELS[model], "use_sh": int(sh_coeffs is not None),
              "pix": (flags["material_ambient"], flags["specular"], flags["shininess"])}
    return Prepared(inputs=inputs, sources=sources, params=params)


# Pixels per backward thread along an image row: None = 64 on CPU backends, 16 on GPUs (enough
# threads to fill them). Not whole rows on the CPU: Taichi 1.7's CPU backend runs at least 512
# consecutive iterations of a parallel loop as one task (kernels/common.py CHUNK_STRIDE), so a
# 512-row image's rows all ran on one thread (bunny 512² lit: the backward kernel 18 ms on 1 or 2).
SEGMENT = None


def _segment(W):
    from ..runtime import arch, requested_arch

    running = arch() or requested_arch()   # the arch Taichi actually runs on (it may have fallen back to CPU)
    S = SEGMENT if SEGMENT is not None else (64 if running in ("cpu", "x64", "arm64") else 16)
    S = max(1, min(int(S), max(W, 1)))
    return S, -(-max(W, 1) // S)


def _flat(inputs, params):
    """Flat views for the kernels (kernels/shade.py: pixels first, vertices of all batches stacked)
    and the sizes they need: ``(views, HW, W, V, Vn)``."""
    face_id, bary, pos, pf, nrm, nf, alb, cam = inputs[:8]
    B, H, W = face_id.shape
    N = B * H * W
    mats = []
    for x, pix in zip(inputs[14:17], params["pix"]):
        C = x.shape[-1]
        mats.append(x.reshape(N, C) if pix else x.reshape(x.shape[0], C))
    views = [face_id.reshape(N), bary.reshape(N, 3), pos.reshape(-1, 3), pf, nrm.reshape(-1, 3), nf,
             alb.reshape(N, 3), cam] + list(inputs[8:14]) + mats + [inputs[17]]
    return views, H * W, W, max(pos.shape[1], 1), max(nrm.shape[1], 1)


def forward(inputs, params):
    fwd = _kernels(inputs[1])[2]
    B, H, W = inputs[0].shape
    out = A.empty(inputs[1], (B, H, W, 3))
    if B * H * W > 0:
        views, HW, _, Vp, Vn = _flat(inputs, params)
        fwd(*views, out.reshape(B * H * W, 3), HW, Vp, Vn, params["L"], params["P"], params["k"],
            params["model"], params["use_sh"], *params["pix"])
    return (out,), tuple(inputs)


def backward(saved, params, grads, needs):
    (g,) = grads
    if g is None or not any(needs):
        return [None] * len(saved)
    bwd = _kernels(saved[1])[3]
    face_id, bary, pos, _, nrm = saved[:5]
    ka, spc, shin, cam = saved[14], saved[15], saved[16], saved[7]
    B, H, W = face_id.shape
    N = B * H * W
    S, nseg = _segment(W)
    R = max(1, B * H * nseg)
    L, P = params["L"], params["P"]
    like = bary
    # _NAMES order: needs[1] bary, needs[2] positions, needs[4] normals
    need_geom = bool(needs[1] or needs[2] or needs[4])
    g_bary = A.empty(like, (B, H, W, 3)) if need_geom else A.zeros(like, (1, 1, 1, 3))
    g_pos = A.zeros(like, tuple(pos.shape)) if need_geom else A.zeros(like, (1, 1, 3))
    g_nrm = A.zeros(like, tuple(nrm.shape)) if need_geom else A.zeros(like, (1, 1, 3))
    g_alb = A.empty(like, (B, H, W, 3))
    mats = []
    for x, pix in zip((ka, spc, shin), params["pix"]):
        mats.append(A.empty(like, tuple(x.shape)) if pix else A.zeros(like, (R, x.shape[-1])))
    g_cam, g_bg, g_amb = (A.zeros(like, (R, 3)) for _ in range(3))
    g_ld, g_lc = A.zeros(like, (R, max(L, 1), 3)), A.zeros(like, (R, max(L, 1), 3))
    g_pp, g_pc = A.zeros(like, (R, max(P, 1), 3)), A.zeros(like, (R, max(P, 1), 3))
    g_sh = A.zeros(like, (R, 9, 3))
    if N > 0:
        views, HW, W_, Vp, Vn = _flat(saved, params)
        flat_mats = [m.reshape(N, m.shape[-1]) if pix else m for m, pix in zip(mats, params["pix"])]
        bwd(*views, g.reshape(N, 3), g_bary.reshape(-1, 3), g_pos.reshape(-1, 3), g_nrm.reshape(-1, 3),
            g_alb.reshape(N, 3), *flat_mats, g_cam, g_bg, g_amb, g_ld, g_lc, g_pp, g_pc, g_sh, HW, W_, S, nseg, Vp, Vn,
            L, P, params["k"], params["model"], params["use_sh"], *params["pix"], int(need_geom))

    def per_batch(rows, Bx, shape):
        """(R, C) segment partials -> summed per image batch, then over the batch if Bx == 1."""
        s = A.sum_axes(rows.reshape((B, H * nseg) + tuple(rows.shape[1:])), (1,)) if B * H else \
            A.zeros(like, (B,) + tuple(rows.shape[1:]))
        if Bx == 1:
            s = A.sum_axes(s, (0,))
        return s.reshape(shape)

    g_mats = [m if pix else per_batch(m, x.shape[0], tuple(x.shape))
              for m, x, pix in zip(mats, (ka, spc, shin), params["pix"])]
    total = (lambda x: A.sum_axes(x, (0,)))  # noqa: E731
    out = [None, g_bary, g_pos, None, g_nrm, None, g_alb, per_batch(g_cam, cam.shape[0], tuple(cam.shape)),
           total(g_amb), total(g_ld), total(g_lc), total(g_pp), total(g_pc), total(g_sh)] + g_mats + [total(g_bg)]
    return [o if n else None for o, n in zip(out, needs)]


PRIM = Primitive(FN, shade_fragments, forward, backward,
                 differentiable=tuple(_SOURCE.get(n, n).split(".")[0] for n in _DIFF))
