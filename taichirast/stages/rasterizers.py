"""Rasterizer stages: ``rasterizer(scene) -> Raster(screen_verts, fragments)``."""
from __future__ import annotations

import torch

from .. import _array as A
from .. import ops
from ..fragments import Fragments
from ..packed import Meshes
from .scene import Raster


def clip_far(frags, far, sv):
    """Fragments beyond the far plane become background (nothing is visible there). Nothing to do
    when every screen vertex of ``sv`` is nearer than far: a fragment's depth is a weighted mean of
    its face's vertex depths (the margin covers rounding), and reading the small ``sv`` leaves the
    fragments where they are (on the device, in a render on Vulkan / Metal)."""
    z = A.columns((sv.verts_packed if isinstance(sv, Meshes) else sv).detach().reshape(-1, 3), 2, 3)
    if z.numel() == 0 or float(z.max()) < far - 1e-4 * abs(far):
        return frags
    if not bool(((frags.depth > far) & (frags.face_id >= 0)).any()):
        return frags
    keep = frags.depth <= far
    return Fragments(torch.where(keep, frags.face_id, torch.full_like(frags.face_id, -1)),
                     frags.bary * keep[..., None],
                     torch.where(keep, frags.depth, torch.full_like(frags.depth, float("inf"))))


def project_only(scene):
    """Screen vertices, no fragments (SoftRas needs none)."""
    return Raster(scene.project(), None)


def hard(scene):
    """Projection and one layer of hard fragments (:func:`taichirast.rasterize`), clipped at far."""
    cam = scene.camera
    sv = scene.project()
    frags = ops.rasterize(sv, scene.drawn(scene.faces), scene.image_size, perspective_correct=not cam.orthographic,
                          cull_backfaces=scene.cull_backfaces, near=cam.near, **scene.tile)
    return Raster(sv, clip_far(frags, cam.far, sv))


def layered(scene):
    """Projection and ``options["splat_layers"]`` depth layers of fragments
    (:func:`taichirast.rasterize_layers`), fields ``(B, K, H, W)``, clipped at far."""
    cam = scene.camera
    sv = scene.project()
    frags = ops.rasterize_layers(sv, scene.drawn(scene.faces), scene.image_size, num_layers=scene.options["splat_layers"],
                                 perspective_correct=not cam.orthographic, cull_backfaces=scene.cull_backfaces,
                                 near=cam.near, **scene.tile)
    return Raster(sv, clip_far(frags, cam.far, sv))


def layer(frags, k):
    """Layer ``k`` of layered fragments as ordinary ``(B, H, W)`` Fragments."""
    return Fragments(frags.face_id[:, k].contiguous(), frags.bary[:, k], frags.depth[:, k])
