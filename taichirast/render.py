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

* ``"hard"`` and ``"dibr"`` shade per pixel: interpolated world position, normal (``shading=
  "smooth"``: interpolated area-weighted vertex normals; ``"flat"``: face normals) and albedo
  (interpolated colours, or the texture sampled at interpolated UVs). Gradients reach vertices
  (through positions, normals and barycentrics), colours / texture / UVs, every light and
  material parameter and the camera.
* ``"soft"`` shades per vertex (Gouraud, as SoftRas does) or per face (``"flat"``), then
  aggregates. With a texture (or per-face colours with smooth shading) each face's corners get
  their own vertices and the texture is sampled at the corner UVs, so texture detail is limited to
  the mesh resolution in this mode. Same gradients, plus silhouettes.

Without ``lights`` the colours are used as they are (unlit).
"""
from __future__ import annotations

import torch

from . import ops
from .fragments import Fragments

MODES = ("hard", "soft", "dibr")


def _shade_points(normals, positions, albedo, eyes, lights, material):
    """``shade`` over a batch: normals / positions / albedo ``(Bx, N, 3)`` (Bx 1 broadcasts), eyes ``(Be, 3)``."""
    B = max(normals.shape[0], positions.shape[0], albedo.shape[0], eyes.shape[0])
    like = positions
    cast = (lambda x: None if x is None else x.to(dtype=like.dtype, device=like.device))  # noqa: E731
    spec = cast(material.specular)
    shin = cast(material.shininess)
    out = []
    for b in range(B):
        pick = (lambda x: x[b if x.shape[0] > 1 else 0])  # noqa: E731
        n, x, a = pick(normals), pick(positions), pick(albedo)
        N = n.shape[0]
        out.append(ops.shade(n, x, a, spec.expand(N, 3), shin.expand(N), pick(eyes), cast(lights.ambient),
                             cast(lights.directions), cast(lights.colors), cast(lights.point_positions),
                             cast(lights.point_colors), cast(lights.sh), model=material.model,
                             attenuation_k=float(lights.attenuation)))
    return torch.stack(out, 0)


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
        texture_filter, texture_wrap: see :func:`taichirast.texture`.

    Returns:
        ``rgba (B, H, W, C + 1)``, or ``(rgba, fragments)`` with ``return_fragments=True``.
    """
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
        far_cut = frags.face_id >= 0
        if bool((frags.depth[far_cut] > camera.far).any()):
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
        if texture is not None:
            from . import _validate as V

            uvs = V.float_array("render", "uvs", uvs, "torch", vb, ndims=(2,), last=2)
            uvf = V.faces("render", "uv_faces", uvf, "torch", n_verts=uvs.shape[0], like=vb)
            if uvf.shape[0] != F:
                raise ValueError(f"render: uv_faces must have one row per face ({F}), got {tuple(uvf.shape)}")
        eyes = camera.center().to(dtype=vb.dtype)
        shade = (lambda n, x, a: _shade_points(n, x, a, eyes, lights, material)) if lights is not None \
            else (lambda n, x, a: a.expand(max(n.shape[0], eyes.shape[0]), *a.shape[1:]))
        need_normals = lights is not None
        if mode == "soft":
            if texture is not None or (per_face and shading == "smooth"):
                # one vertex per face corner: albedo per corner, then Gouraud over the split mesh
                corners = faces.reshape(-1).long()
                if texture is not None:
                    uv_c = uvs[uvf.reshape(-1).long()]
                    alb = ops.texture(texture, uv_c[None, None], filter=texture_filter, wrap=texture_wrap)[:, 0]
                elif per_face:
                    alb = cols.repeat_interleave(3, dim=-2)
                else:
                    alb = cols[..., corners, :]
                alb = alb if alb.dim() == 3 else alb[None]
                nrm = None
                if need_normals:
                    nrm = (face_normals(vb, faces).repeat_interleave(3, dim=-2) if shading == "flat"
                           else vertex_normals(vb, faces)[:, corners])
                lit = shade(nrm if nrm is not None else alb, vb[:, corners], alb)
                rgba = ops.soft_rasterize(sv[:, corners], _corner_faces(F, faces.device), lit, (H, W), **soft_kw)
            elif shading == "flat":
                alb = cols if per_face else cols[..., faces.long(), :].mean(-2)
                alb = alb if alb.dim() == 3 else alb[None]
                lit = shade(face_normals(vb, faces), vb[:, faces.long()].mean(-2), alb)
                rgba = ops.soft_rasterize(sv, faces, lit, (H, W), per_face=True, **soft_kw)
            else:
                alb = cols if cols.dim() == 3 else cols[None]
                lit = shade(vertex_normals(vb, faces), vb, alb)
                rgba = ops.soft_rasterize(sv, faces, lit, (H, W), **soft_kw)
        else:
            if texture is not None:
                uv_img = ops.interpolate(uvs, uvf, frags)
                alb = ops.texture(texture, uv_img, filter=texture_filter, wrap=texture_wrap, face_id=frags.face_id)
            elif per_face:
                alb = ops.interpolate(cols.repeat_interleave(3, dim=-2), _corner_faces(F, faces.device), frags)
            else:
                alb = ops.interpolate(cols, faces, frags)
            Bi = alb.shape[0]
            if need_normals:
                nrm_attr = (face_normals(vb, faces).repeat_interleave(3, dim=-2), _corner_faces(F, faces.device)) \
                    if shading == "flat" else (vertex_normals(vb, faces), faces)
                n_img = ops.interpolate(nrm_attr[0], nrm_attr[1], frags)
                x_img = ops.interpolate(vb, faces, frags)
                rgb = shade(n_img.reshape(n_img.shape[0], -1, 3), x_img.reshape(x_img.shape[0], -1, 3),
                            alb.reshape(Bi, -1, alb.shape[-1])).reshape(-1, H, W, 3)
            else:
                rgb = alb
            cover = frags.mask.to(rgb.dtype)[..., None]
            bg3 = _background(background, rgb.shape[-1], sv)
            rgb = rgb * cover + bg3 * (1 - cover)
            alpha = cover if mode == "hard" else ops.dibr_silhouette(
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
