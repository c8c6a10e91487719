"""Composition: project -> rasterize -> interpolate / soft aggregate -> RGBA (DESIGN §3).

Three modes, all returning RGBA ``(B, H, W, C + 1)`` (colour channels, then alpha):

* ``"hard"``: hard rasterization + interpolation of vertex colours. Gradients reach colours and,
  through barycentrics, vertex positions and the camera, but not silhouettes (alpha is a hard
  0/1 mask).
* ``"soft"``: SoftRas aggregation (:func:`taichirast.soft_rasterize`), gradients everywhere
  including silhouettes and occlusion.
* ``"dibr"``: DIB-R: the hard foreground (interpolated colours, composited over the background
  on uncovered pixels) and the DIB-R soft silhouette as alpha, so silhouette gradients come from
  the pixels around the mesh.

Lighting (``lights=`` a :class:`~taichirast.Lights`, ``material=`` a :class:`~taichirast.Material`,
``texture=`` with ``uvs=`` / ``uv_faces=``) shades the albedo (colours or texture) with
:func:`taichirast.shade`:

* ``"hard"`` and ``"dibr"`` shade per pixel (:func:`taichirast.shade_fragments`, one fused pass
  over the covered pixels): interpolated world position, normal (``shading="smooth"``:
  interpolated area-weighted vertex normals; ``"flat"``: face normals) and albedo (interpolated
  colours, or the texture sampled at interpolated UVs: nearest, bilinear or trilinear with a
  per-pixel level of detail from the analytic UV derivatives). Gradients reach vertices (through
  positions, normals, barycentrics and, for trilinear, the level of detail), colours / texture /
  UVs, every light and material parameter and the camera.
* ``"soft"`` shades per vertex (Gouraud, as SoftRas does) or per face (``"flat"``), then
  aggregates. With a texture (or per-face colours with smooth shading) each face's corners get
  their own vertices and the texture is sampled at the corner UVs, so texture detail is limited to
  the mesh resolution in this mode. Same gradients, plus silhouettes.

Materials (:class:`~taichirast.Material`: ambient reflectance, specular colour, shininess) are
per mesh, per vertex (interpolated per pixel in hard / DIB-R mode) or per texel (maps sampled at
the UVs like the texture). Without ``lights`` the colours are used as they are (unlit).
"""
from __future__ import annotations

import torch

from . import ops, texturing
from .fragments import Fragments

MODES = ("hard", "soft", "dibr")


def _shade_points(normals, positions, albedo, eyes, lights, model, mats):
    """``shade`` over a batch: normals / positions / albedo ``(Bx, N, 3)`` (Bx 1 broadcasts), eyes ``(Be, 3)``,
    ``mats``: material ``ambient``, ``specular`` ``(Bm, N, 3)`` and ``shininess`` ``(Bm, N)`` per point."""
    B = max(normals.shape[0], positions.shape[0], albedo.shape[0], eyes.shape[0],
            *(m.shape[0] for m in mats.values()))
    like = positions
    cast = (lambda x: None if x is None else x.to(dtype=like.dtype, device=like.device))  # noqa: E731
    out = []
    for b in range(B):
        pick = (lambda x: x[b if x.shape[0] > 1 else 0])  # noqa: E731
        n, x, a = pick(normals), pick(positions), pick(albedo)
        out.append(ops.shade(n, x, a, cast(pick(mats["specular"])), cast(pick(mats["shininess"])), pick(eyes),
                             cast(lights.ambient), cast(lights.directions), cast(lights.colors),
                             cast(lights.point_positions), cast(lights.point_colors), cast(lights.sh), model=model,
                             attenuation_k=float(lights.attenuation),
                             material_ambient=cast(pick(mats["ambient"]))))
    return torch.stack(out, 0)


_MAT_FIELDS = (("ambient", 3), ("specular", 3), ("shininess", 1))


def _check_material(material, V, uvs):
    for name, _ in _MAT_FIELDS:
        lay, x = material.layout(name), getattr(material, name)
        if lay == "vertex" and x.shape[0] != V:
            raise ValueError(f"render: material.{name} has {x.shape[0]} per-vertex values but the mesh has {V} "
                             f"vertices")
        if lay == "texel" and uvs is None:
            raise ValueError(f"render: material.{name} is a texel map ({tuple(x.shape)}); it needs uvs= "
                             f"(and uv_faces= unless the UVs are per vertex)")


def _material_points(material, n_points, like, vertex_idx=None, face_mean=None, sampler=None):
    """Material per shading point ``(Bx, N, C)`` / ``(Bx, N)`` (Bx = 1, or one per view when a texel
    map is sampled with a per-view level of detail). Points are vertices (``vertex_idx`` None),
    vertices picked by ``vertex_idx (N,)``, or faces (``face_mean (F, 3)`` vertex / corner indices,
    averaged). Texel maps go through ``sampler(map) -> (Bx, N, C)`` (face corners)."""
    out = {}
    for name, C in _MAT_FIELDS:
        x = getattr(material, name).to(dtype=like.dtype, device=like.device)
        lay = material.layout(name)
        if lay == "mesh":
            v = x.reshape(1, 1, C).expand(1, n_points, C)
        elif lay == "vertex":
            x = x.reshape(-1, C)
            v = (x[face_mean.long()].mean(1) if face_mean is not None else
                 (x if vertex_idx is None else x[vertex_idx]))[None]
        else:
            smp = sampler(x.reshape(x.shape[0], x.shape[1], C))
            v = smp.reshape(smp.shape[0], -1, 3, C).mean(2) if face_mean is not None else smp
        out[name] = v.contiguous() if C == 3 else v.reshape(v.shape[0], -1).contiguous()
    return out


def _material_pixels(material, frags, faces, sampler, like):
    """Material for ``shade_fragments``: per mesh as is, per vertex interpolated, per texel sampled
    with ``sampler(map) -> (B, H, W, C)``."""
    out = {}
    for name, C in _MAT_FIELDS:
        x = getattr(material, name).to(dtype=like.dtype, device=like.device)
        lay = material.layout(name)
        if lay == "vertex":
            x = ops.interpolate(x.reshape(-1, C), faces, frags)
        elif lay == "texel":
            x = sampler(x.reshape(x.shape[0], x.shape[1], C))
        if lay != "mesh" and C == 1:
            x = x[..., 0]
        out[name] = x
    return out


def _sample_corners(tex, uv_c, sv, faces, uvs, uvf, tex_kw):
    """A map sampled at the face corners ``uv_c (3F, 2)`` (soft mode) -> ``(Bx, 3F, C)``; trilinear
    filtering uses each face's isotropic level of detail (:func:`taichirast.mipmap.face_lod`)."""
    if tex_kw["filter"] != "trilinear":
        return ops.texture(tex, uv_c[None, None], **tex_kw)[:, 0]
    from . import mipmap

    lod = mipmap.face_lod(sv, faces, uvs, uvf, (tex.shape[-3], tex.shape[-2])).repeat_interleave(3, dim=-1)
    B = lod.shape[0]
    uv = uv_c[None, None].expand(B, 1, *uv_c.shape).contiguous()
    return mipmap.sample_trilinear(mipmap.mipmaps(tex), uv, lod[:, None], wrap=tex_kw["wrap"])[:, 0]


def _corner_faces(F, device):
    return torch.arange(3 * F, dtype=torch.int32, device=device).reshape(F, 3)


def _vertex_colors(colors, verts, faces, per_face):
    """Colours fed to rasterization: given colours, or white. (The seam where shading will go.)"""
    if colors is None:
        n = faces.shape[0] if per_face else verts.shape[-2]
        return torch.ones(n, 3, dtype=verts.dtype, device=verts.device)
    return colors


def _background(background, C, like):
    if background is None:
        return torch.zeros(C, dtype=like.dtype, device=like.device)
    bg = background if torch.is_tensor(background) else torch.as_tensor(background, dtype=like.dtype)
    bg = bg.to(dtype=like.dtype, device=like.device).reshape(-1)
    if bg.numel() == 1:
        bg = bg.expand(C)
    if bg.shape[0] != C:
        raise ValueError(f"render: background must have {C} channels (or 1), got shape {tuple(bg.shape)}")
    return bg


def render(verts, faces, camera, colors=None, mode="soft", background=None, per_face=False, sigma=1e-4, gamma=1e-4,
           eps=1e-10, sigmainv=7000.0, box_len=0.02, cull_backfaces=False, return_fragments=False, tile_size=None,
           lights=None, material=None, texture=None, uvs=None, uv_faces=None, shading="smooth",
           texture_filter="bilinear", texture_wrap="repeat"):
    """Render a triangle mesh to RGBA.

    Args:
        verts: ``(V, 3)`` or ``(B, V, 3)`` world positions (float32 / float64 tensor).
        faces: ``(F, 3)`` int vertex indices, counter-clockwise = front-facing.
        camera: :class:`~taichirast.PerspectiveCamera` / :class:`~taichirast.OrthographicCamera`;
            its ``image_size``, ``near`` and ``far`` are used.
        colors: per-vertex ``(V, C)`` / ``(B, V, C)`` colours (default white), or per-face
            ``(F, C)`` / ``(B, F, C)`` with ``per_face=True``.
        mode: ``"hard"``, ``"soft"`` or ``"dibr"`` (see the module docstring for the gradients
            each one gives).
        background: ``(C,)`` colour or a scalar (default 0).
        sigma, gamma, eps: soft mode parameters (:func:`taichirast.soft_rasterize`).
        sigmainv, box_len: DIB-R silhouette parameters (:func:`taichirast.dibr_silhouette`).
        cull_backfaces: drop back faces (hard and DIB-R foreground).
        return_fragments: also return the hard :class:`~taichirast.Fragments` (computed for soft
            mode too).
        tile_size: binning tile size passed to every primitive (default: each one's own).
        lights: :class:`~taichirast.Lights` to shade with (default: unlit colours).
        material: :class:`~taichirast.Material` (default: Blinn-Phong, no specular); needs ``lights``.
        texture: ``(Ht, Wt, 3)`` / ``(B, Ht, Wt, 3)`` albedo texture (replaces ``colors``), sampled
            at ``uvs (T, 2)`` indexed per face corner by ``uv_faces (F, 3)`` (default ``faces``,
            i.e. one UV per vertex). OpenGL UV convention (see :func:`taichirast.texture`).
        shading: ``"smooth"`` (vertex normals) or ``"flat"`` (face normals), when lit.
        texture_filter, texture_wrap: see :func:`taichirast.texture`. ``"trilinear"`` mip-maps
            the texture and texel materials: per pixel in hard / DIB-R mode (level of detail from
            the analytic screen-space UV derivatives), per face in soft mode (texel-to-pixel area
            ratio); see :mod:`taichirast.mipmap`.

    Returns:
        ``rgba (B, H, W, C + 1)``, or ``(rgba, fragments)`` with ``return_fragments=True``.
    """
    from . import _validate as V

    if mode not in MODES:
        raise ValueError(f"render: mode must be one of {MODES}, got {mode!r}")
    if texture_filter not in ("nearest", "bilinear", "trilinear"):
        raise ValueError(f"render: texture_filter must be 'nearest', 'bilinear' or 'trilinear', got {texture_filter!r}")
    if not torch.is_tensor(verts):
        verts = torch.as_tensor(verts, dtype=camera.dtype, device=camera.device)
    if not torch.is_tensor(faces):
        faces = torch.as_tensor(faces, device=verts.device)
    # Validate the user's arrays once (NaN scans, index ranges); the primitives below then run in
    # trusted mode and skip those whole-array scans on the intermediates this function makes.
    vb = V.verts("render", "verts", verts, "torch")
    faces = V.faces("render", "faces", faces, "torch", n_verts=vb.shape[1], like=vb)
    checked = {}
    for name, x in (("colors", colors), ("texture", texture), ("background", background)):
        if x is not None:
            if not torch.is_tensor(x):  # NumPy arrays / lists: as tensors in the vertices' dtype
                x = torch.as_tensor(x, dtype=vb.dtype, device=vb.device)
            checked[name] = V.float_array("render", name, x, "torch", vb)
    colors, texture, background = (checked.get(n) for n in ("colors", "texture", "background"))
    if uvs is not None:
        uvs = V.float_array("render", "uvs", uvs, "torch", vb, ndims=(2,), last=2)
        uv_faces = V.faces("render", "uv_faces", uv_faces if uv_faces is not None else faces, "torch",
                           n_verts=uvs.shape[0], like=vb)
        if uv_faces.shape[0] != faces.shape[0]:
            raise ValueError(f"render: uv_faces must have one row per face ({faces.shape[0]}), "
                             f"got {tuple(uv_faces.shape)}")
    for owner, obj in (("camera", camera), ("lights", lights), ("material", material)):
        for x in (obj.parameters() if obj is not None else []):
            if not bool(torch.isfinite(x.detach()).all()):
                raise ValueError(f"render: the {owner}'s tensors contain NaN or infinite values")
    with V.trusted():
        return _render(verts, faces, camera, colors=colors, mode=mode, background=background, per_face=per_face,
                       sigma=sigma, gamma=gamma, eps=eps, sigmainv=sigmainv, box_len=box_len,
                       cull_backfaces=cull_backfaces, return_fragments=return_fragments, tile_size=tile_size,
                       lights=lights, material=material, texture=texture, uvs=uvs, uv_faces=uv_faces,
                       shading=shading, texture_filter=texture_filter, texture_wrap=texture_wrap)


def _render(verts, faces, camera, colors=None, mode="soft", background=None, per_face=False, sigma=1e-4, gamma=1e-4,
           eps=1e-10, sigmainv=7000.0, box_len=0.02, cull_backfaces=False, return_fragments=False, tile_size=None,
           lights=None, material=None, texture=None, uvs=None, uv_faces=None, shading="smooth",
           texture_filter="bilinear", texture_wrap="repeat"):
    """:func:`render` after its entry checks (runs in trusted mode)."""
    if mode not in MODES:
        raise ValueError(f"render: mode must be one of {MODES}, got {mode!r}")
    tile = {} if tile_size is None else {"tile_size": tile_size}
    if shading not in ("smooth", "flat"):
        raise ValueError(f"render: shading must be 'smooth' or 'flat', got {shading!r}")
    if material is not None and lights is None:
        raise ValueError("render: material needs lights (without lights the colours are drawn unlit)")
    if mode == "soft" and camera.orthographic:
        raise ValueError("render: mode='soft' needs a PerspectiveCamera (SoftRas's depth interpolation is "
                         "perspective-correct); use mode='hard' or 'dibr' with an OrthographicCamera")
    if texture is not None and uvs is None:
        raise ValueError("render: texture needs uvs (and uv_faces unless the UVs are per vertex)")
    if not torch.is_tensor(verts):
        verts = torch.as_tensor(verts, dtype=camera.dtype, device=camera.device)
    if not torch.is_tensor(faces):
        faces = torch.as_tensor(faces, device=verts.device)
    H, W = camera.image_size
    sv = ops.project(verts, camera)
    cols = _vertex_colors(colors, verts, faces, per_face)
    if not torch.is_tensor(cols):
        cols = torch.as_tensor(cols, dtype=verts.dtype, device=verts.device)
    C = cols.shape[-1]
    bg = _background(background, C, sv)
    persp = not camera.orthographic
    frags = None
    if mode != "soft" or return_fragments:
        frags = ops.rasterize(sv, faces, (H, W), perspective_correct=persp, cull_backfaces=cull_backfaces,
                              near=camera.near, **tile)
        # Far clipping: the nearest surface beyond `far` means nothing is visible there.
        if bool(((frags.depth > camera.far) & (frags.face_id >= 0)).any()):
            keep = frags.depth <= camera.far
            frags = Fragments(torch.where(keep, frags.face_id, torch.full_like(frags.face_id, -1)),
                              frags.bary * keep[..., None], torch.where(keep, frags.depth, torch.full_like(frags.depth, float("inf"))))
    soft_kw = dict(background=bg, sigma=sigma, gamma=gamma, eps=eps, near=camera.near, far=camera.far, **tile)
    if lights is not None or texture is not None:
        from .lights import Material
        from .geometry.mesh import face_normals, vertex_normals

        material = material if material is not None else Material()
        vb = verts if verts.dim() == 3 else verts[None]
        F = faces.shape[0]
        uvf = uv_faces if uv_faces is not None else faces
        if lights is not None:
            _check_material(material, vb.shape[1], uvs)
            if texture is None and C != 3:
                raise ValueError(f"render: lit rendering needs RGB colours (C = 3), got C = {C}")
        tex_kw = dict(filter=texture_filter, wrap=texture_wrap)
        texel_mat = lights is not None and any(material.layout(n) == "texel" for n, _ in _MAT_FIELDS)
        eyes = camera.center().to(dtype=vb.dtype)
        need_normals = lights is not None
        if mode == "soft":
            def shade(n, x, a, mats):
                if lights is None:
                    return a.expand(max(n.shape[0], eyes.shape[0]), *a.shape[1:])
                return _shade_points(n, x, a, eyes, lights, material.model, mats)

            if texture is not None or texel_mat or (per_face and shading == "smooth"):
                # one vertex per face corner: albedo per corner, then Gouraud over the split mesh
                corners = faces.reshape(-1).long()
                uv_c = uvs[uvf.reshape(-1).long()] if uvs is not None else None
                sample_c = (lambda m: _sample_corners(m, uv_c, sv, faces, uvs, uvf, tex_kw))  # noqa: E731
                if texture is not None:
                    alb = sample_c(texture)
                elif per_face:
                    alb = cols.repeat_interleave(3, dim=-2)
                else:
                    alb = cols[..., corners, :]
                alb = alb if alb.dim() == 3 else alb[None]
                nrm, mats = None, None
                if need_normals:
                    nrm = (face_normals(vb, faces).repeat_interleave(3, dim=-2) if shading == "flat"
                           else vertex_normals(vb, faces)[:, corners])
                    mats = _material_points(material, 3 * F, vb, vertex_idx=corners, sampler=sample_c)
                lit = shade(nrm if nrm is not None else alb, vb[:, corners], alb, mats)
                rgba = ops.soft_rasterize(sv[:, corners], _corner_faces(F, faces.device), lit, (H, W), **soft_kw)
            elif shading == "flat":
                alb = cols if per_face else cols[..., faces.long(), :].mean(-2)
                alb = alb if alb.dim() == 3 else alb[None]
                mats = _material_points(material, F, vb, face_mean=faces) if need_normals else None
                lit = shade(face_normals(vb, faces), vb[:, faces.long()].mean(-2), alb, mats)
                rgba = ops.soft_rasterize(sv, faces, lit, (H, W), per_face=True, **soft_kw)
            else:
                alb = cols if cols.dim() == 3 else cols[None]
                mats = _material_points(material, vb.shape[1], vb) if need_normals else None
                lit = shade(vertex_normals(vb, faces), vb, alb, mats)
                rgba = ops.soft_rasterize(sv, faces, lit, (H, W), **soft_kw)
        else:
            uv_img = ops.interpolate(uvs, uvf, frags) if (texture is not None or texel_mat) else None
            J = None
            if uv_img is not None and texture_filter == "trilinear":
                from . import mipmap

                J = mipmap.pixel_uv_jacobian(sv, faces, uvs, uvf, frags, perspective=persp)

            def sample_pix(m):
                if J is None:
                    return ops.texture(m, uv_img, face_id=frags.face_id, **tex_kw)
                lod = mipmap.lod_from_jacobian(J, (m.shape[-3], m.shape[-2]))
                return texturing.texture(m, uv_img, face_id=frags.face_id, lod=lod, **tex_kw)

            if texture is not None:
                alb = sample_pix(texture)
            elif per_face:
                alb = ops.interpolate(cols.repeat_interleave(3, dim=-2), _corner_faces(F, faces.device), frags)
            else:
                alb = ops.interpolate(cols, faces, frags)
            bg3 = _background(background, alb.shape[-1], sv)
            if need_normals:
                if shading == "flat":
                    nrm = face_normals(vb, faces)
                    nfaces = torch.arange(F, dtype=torch.int32, device=faces.device)[:, None].expand(F, 3).contiguous()
                else:
                    nrm, nfaces = vertex_normals(vb, faces), faces
                mats = _material_pixels(material, frags, faces, sample_pix, vb)
                if alb.shape[0] != frags.face_id.shape[0]:
                    alb = alb.expand(frags.face_id.shape[0], *alb.shape[1:]).contiguous()
                cast = (lambda x: None if x is None else x.to(dtype=vb.dtype, device=vb.device))  # noqa: E731
                rgb = ops.shade_fragments(
                    frags, vb, faces, nrm, nfaces, alb, eyes, cast(lights.ambient), cast(lights.directions),
                    cast(lights.colors), cast(lights.point_positions), cast(lights.point_colors), cast(lights.sh),
                    material_ambient=mats["ambient"], specular=mats["specular"], shininess=mats["shininess"],
                    background=bg3, model=material.model, attenuation_k=float(lights.attenuation))
            else:
                cover = frags.mask.to(alb.dtype)[..., None]
                rgb = alb * cover + bg3 * (1 - cover)
            alpha = frags.mask.to(rgb.dtype)[..., None] if mode == "hard" else ops.dibr_silhouette(
                sv, faces, frags, (H, W), sigmainv=sigmainv, box_len=box_len, near=camera.near, **tile)[..., None]
            rgba = torch.cat([rgb, alpha], dim=-1)
    elif mode == "soft":
        rgba = ops.soft_rasterize(sv, faces, cols, (H, W), per_face=per_face, **soft_kw)
    else:
        if per_face:
            # Per-face colours through interpolation: each face's three corners carry its colour.
            F = faces.shape[0]
            cols_c = cols.repeat_interleave(3, dim=-2)
            corner_faces = torch.arange(3 * F, dtype=torch.int32, device=faces.device).reshape(F, 3)
            rgb = ops.interpolate(cols_c, corner_faces, frags)
        else:
            rgb = ops.interpolate(cols, faces, frags)
        cover = frags.mask.to(rgb.dtype)[..., None]
        rgb = rgb * cover + bg * (1 - cover)
        if mode == "hard":
            alpha = cover
        else:
            alpha = ops.dibr_silhouette(sv, faces, frags, (H, W), sigmainv=sigmainv, box_len=box_len,
                                        near=camera.near, **tile)[..., None]
        rgba = torch.cat([rgb, alpha], dim=-1)
    return (rgba, frags) if return_fragments else rgba


class Renderer(torch.nn.Module):
    """``nn.Module`` wrapper of :func:`render` holding a camera and the mode's settings.

    Example::

        renderer = tr.Renderer(camera, mode="soft", sigma=1e-4)
        rgba = renderer(verts, faces, colors)          # (B, H, W, 4)

    ``forward(verts, faces, colors=None, camera=None, **overrides)``: ``camera`` and keyword
    arguments of :func:`render` override the stored ones for that call. The camera is a plain
    container: its tensors are not registered as module parameters (pass them to your
    optimiser with ``camera.parameters()`` if you learn them).
    """

    def __init__(self, camera, mode="soft", background=None, **settings):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"Renderer: mode must be one of {MODES}, got {mode!r}")
        self.camera = camera
        self.mode = mode
        self.background = background
        self.settings = dict(settings)

    def forward(self, verts, faces, colors=None, camera=None, **overrides):
        kw = dict(self.settings)
        kw.update(overrides)
        kw.setdefault("mode", self.mode)
        kw.setdefault("background", self.background)
        return render(verts, faces, camera if camera is not None else self.camera, colors=colors, **kw)

    def extra_repr(self):
        return f"mode={self.mode!r}, camera={self.camera!r}, settings={self.settings}"
