"""The values that flow between render stages."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple, Optional

import torch


@dataclass
class Scene:
    """What one render draws, checked once by :func:`taichirast.render` (stages trust it).

    ``verts`` ``(B, V, 3)`` world positions, ``faces`` ``(F, 3)`` int32, ``colors`` per-vertex
    ``(V, C)`` / ``(B, V, C)`` or per-face (``per_face``), ``background`` ``(C,)``, a scalar or None; ``texture`` /
    ``uvs`` / ``uv_faces`` (``uv_faces`` defaults to ``faces``), ``lights`` /
    ``material`` (a :class:`~taichirast.Material` whenever ``lights`` is set), ``shading``
    (``"smooth"`` / ``"flat"``), ``tex_kw`` (texture filter and wrap), ``tile`` (tile-size keyword
    for the primitives) and ``options`` (the mode's own numbers: sigma, gamma, ...).

    ``packing``: the :class:`~taichirast.Meshes` of a batch of different meshes, else None. Then
    ``verts`` ``(1, sum V_i, 3)`` and ``faces`` (global vertex indices) hold the whole batch as
    one mesh, which every stage shades as it is; only the primitives that loop over faces take
    :meth:`drawn` faces (image i draws mesh i's range) and projection :meth:`project` (camera i).
    """

    verts: torch.Tensor
    faces: torch.Tensor
    camera: Any
    colors: torch.Tensor
    background: Optional[torch.Tensor] = None
    per_face: bool = False
    texture: Optional[torch.Tensor] = None
    uvs: Optional[torch.Tensor] = None
    uv_faces: Optional[torch.Tensor] = None
    lights: Any = None
    material: Any = None
    shading: str = "smooth"
    tex_kw: dict = field(default_factory=lambda: {"filter": "bilinear", "wrap": "repeat"})
    tile: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)
    cull_backfaces: bool = False
    packing: Any = None

    def drawn(self, faces):
        """``faces`` (``self.faces`` or a mesh with the same face order) as the face-looping
        primitives take them: with the batch's per-image face ranges when there is a batch."""
        if self.packing is None:
            return faces
        from ..packed import FaceRanges

        return FaceRanges.of(faces, self.packing)

    def project(self):
        """``(B, V, 3)`` screen vertices (:func:`taichirast.project`); mesh i by camera i for a batch."""
        from .. import ops

        if self.packing is None:
            return ops.project(self.verts, self.camera)
        return ops.project(self.packing.with_verts(self.verts[0]), self.camera).verts_packed[None]

    @property
    def image_size(self):
        return tuple(self.camera.image_size)

    @property
    def channels(self) -> int:
        return self.colors.shape[-1]

    @property
    def eyes(self):
        """``(Bc, 3)`` camera centres in the vertices' dtype."""
        return self.camera.center().to(dtype=self.verts.dtype)

    def background_for(self, C):
        """``(C,)`` background colour for a ``C``-channel image (default 0; a scalar broadcasts)."""
        like = self.verts
        if self.background is None:
            return torch.zeros(C, dtype=like.dtype, device=like.device)
        bg = self.background.to(dtype=like.dtype, device=like.device).reshape(-1)
        if bg.numel() == 1:
            bg = bg.expand(C)
        if bg.shape[0] != C:
            raise ValueError(f"render: background must have {C} channels (or 1), got shape {tuple(bg.shape)}")
        return bg


class Raster(NamedTuple):
    """A rasterizer's output: ``screen_verts (B, V, 3)`` and :class:`~taichirast.Fragments`
    (``None`` when the mode needs none; fields with a layer axis ``(B, K, H, W)`` for layered
    rasterizers)."""

    screen_verts: torch.Tensor
    fragments: Any


class ShadedMesh(NamedTuple):
    """A per-vertex (or per-face) shader's output, what the SoftRas blender aggregates."""

    screen_verts: torch.Tensor
    faces: torch.Tensor
    colors: torch.Tensor
    per_face: bool
