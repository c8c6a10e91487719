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

Shading (lights, materials, textures) will plug in where vertex colours are computed today:
:func:`_vertex_colors`.
"""
from __future__ import annotations

import torch

from . import ops
from .fragments import Fragments

MODES = ("hard", "soft", "dibr")


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
           eps=1e-10, sigmainv=7000.0, box_len=0.02, cull_backfaces=False, return_fragments=False, tile_size=None):
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

    Returns:
        ``rgba (B, H, W, C + 1)``, or ``(rgba, fragments)`` with ``return_fragments=True``.
    """
    if mode not in MODES:
        raise ValueError(f"render: mode must be one of {MODES}, got {mode!r}")
    tile = {} if tile_size is None else {"tile_size": tile_size}
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
    if mode == "soft":
        rgba = ops.soft_rasterize(sv, faces, cols, (H, W), background=bg, sigma=sigma, gamma=gamma, eps=eps,
                                  near=camera.near, far=camera.far, per_face=per_face, **tile)
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
