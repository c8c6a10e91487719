"""Blender stages: coverage and compositing, ``blender(scene, raster, shader) -> rgba (B, H, W, C + 1)``.

A blender calls its shader (:mod:`.shaders`) on what it needs shaded: one layer of fragments
(hard, DIB-R), each of K layers (splat) or the mesh (SoftRas). :func:`antialias` runs after a
hard-fragment blender.
"""
from __future__ import annotations

import collections
import threading

import torch

from .. import ops
from ..fragments import Fragments
from .rasterizers import layer


def hard_alpha(scene, raster, shader):
    """Shaded colour, alpha = coverage (0 / 1): no silhouette gradients by itself."""
    rgb = shader(scene, raster.screen_verts, raster.fragments)
    return torch.cat([rgb, raster.fragments.mask.to(rgb.dtype)[..., None]], dim=-1)


def dibr_alpha(scene, raster, shader):
    """Shaded colour, alpha = DIB-R's soft silhouette (:func:`taichirast.dibr_silhouette`)."""
    rgb = shader(scene, raster.screen_verts, raster.fragments)
    o = scene.options
    alpha = ops.dibr_silhouette(raster.screen_verts, scene.drawn(scene.faces), raster.fragments, scene.image_size,
                                sigmainv=o["sigmainv"], box_len=o["box_len"], near=scene.camera.near, **scene.tile)
    return torch.cat([rgb, alpha[..., None]], dim=-1)


def softras(scene, raster, shader):
    """SoftRas aggregation (:func:`taichirast.soft_rasterize`) of the shader's :class:`ShadedMesh`."""
    mesh = shader(scene, raster.screen_verts)
    o, cam = scene.options, scene.camera
    return ops.soft_rasterize(mesh.screen_verts, scene.drawn(mesh.faces), mesh.colors, scene.image_size,
                              background=scene.background_for(mesh.colors.shape[-1]), sigma=o["sigma"],
                              gamma=o["gamma"], eps=o["eps"], near=cam.near, far=cam.far, per_face=mesh.per_face,
                              **scene.tile)


def splat_positions(sv, faces, frags, perspective):
    """``(B, K, H, W, 2)`` screen position of each layered fragment's surface point, a function of the
    vertices that equals the pixel centre in the forward pass (perspective-correct barycentrics
    ``b``: ``x = sum b_i z_i x_i / sum b_i z_i``; screen-linear ones: ``x = sum b_i x_i``)."""
    B, K, H, W = frags.face_id.shape
    flat = Fragments(frags.face_id.reshape(B, K * H, W), frags.bary.detach().reshape(B, K * H, W, 3), None)
    if not perspective:
        return ops.interpolate(sv[..., :2], faces, flat).reshape(B, K, H, W, 2)
    hom = ops.interpolate(torch.cat([sv[..., :2] * sv[..., 2:], sv[..., 2:]], -1), faces, flat)
    hom = hom.reshape(B, K, H, W, 3)
    den = torch.where(frags.mask[..., None], hom[..., 2:], torch.ones_like(hom[..., 2:]))
    return hom[..., :2] / den


def splat(scene, raster, shader):
    """Rasterize-then-splat (Cole et al. 2021): each of the K layers shaded at its fragments (with
    their barycentrics held fixed), splatted at its surface points' screen positions
    (:func:`taichirast.splat`), composited over the background."""
    frags, sv = raster.fragments, raster.screen_verts
    K = frags.face_id.shape[1]
    rgbs = []
    for k in range(K):
        fk = layer(frags, k)
        rgbs.append(shader(scene, sv, Fragments(fk.face_id, fk.bary.detach(), fk.depth)))
    rgb = torch.stack(rgbs, 1)
    rgba = torch.cat([rgb, frags.mask[..., None].to(rgb.dtype)], -1)
    xy = splat_positions(sv, scene.faces, frags, not scene.camera.orthographic)
    out = ops.splat(rgba, xy, frags, sigma=scene.options["splat_sigma"])
    alpha = out[..., -1:]
    bg = scene.background_for(rgb.shape[-1])
    return torch.cat([out[..., :-1] + (1 - alpha) * bg, alpha], -1)


# ------------------------------------------------------------------ antialiasing
_TOPOLOGY_CACHE = collections.OrderedDict()
_TOPOLOGY_LOCK = threading.Lock()


def cached_topology(faces):
    """:func:`taichirast.edge_topology` of ``faces``, remembered for the last few meshes (the key is
    the faces' contents, so editing a faces tensor in place never returns a stale topology)."""
    from ..topology import edge_topology

    key = (faces.device, faces.dtype, tuple(faces.shape), faces.data_ptr())
    with _TOPOLOGY_LOCK:
        hit = _TOPOLOGY_CACHE.get(key)
        if hit is not None and torch.equal(hit[0], faces):
            _TOPOLOGY_CACHE.move_to_end(key)
            return hit[1]
    topo = edge_topology(faces)
    with _TOPOLOGY_LOCK:
        _TOPOLOGY_CACHE[key] = (faces.clone(), topo)
        while len(_TOPOLOGY_CACHE) > 8:
            _TOPOLOGY_CACHE.popitem(last=False)
    return topo


def antialias(scene, raster, rgba):
    """Analytic antialiasing of the silhouette edges (:func:`taichirast.antialias`) of every channel,
    alpha included, so coverage gets gradients w.r.t. the vertices and camera."""
    topo = scene.options.get("topology")
    if topo is None:
        topo = cached_topology(scene.faces)
    return ops.antialias(rgba, raster.fragments, raster.screen_verts, scene.faces, topo)
