"""Materials per shading point or per pixel (the shaders' helpers)."""
from __future__ import annotations

import torch

from .. import ops

FIELDS = (("ambient", 3), ("specular", 3), ("shininess", 1))


def check(material, V, uvs):
    """Per-vertex fields must match the mesh; texel maps need UVs."""
    for name, _ in FIELDS:
        lay, x = material.layout(name), getattr(material, name)
        if lay == "vertex" and x.shape[0] != V:
            raise ValueError(f"render: material.{name} has {x.shape[0]} per-vertex values but the mesh has {V} "
                             f"vertices")
        if lay == "texel" and uvs is None:
            raise ValueError(f"render: material.{name} is a texel map ({tuple(x.shape)}); it needs uvs= "
                             f"(and uv_faces= unless the UVs are per vertex)")


def has_texels(material):
    return material is not None and any(material.layout(n) == "texel" for n, _ in FIELDS)


def at_points(material, n_points, like, vertex_idx=None, face_mean=None, sampler=None):
    """Material per shading point ``(Bx, N, C)`` / ``(Bx, N)`` (Bx = 1, or one per view when a texel
    map is sampled with a per-view level of detail). Points are vertices (``vertex_idx`` None),
    vertices picked by ``vertex_idx (N,)``, or faces (``face_mean (F, 3)`` vertex / corner indices,
    averaged). Texel maps go through ``sampler(map) -> (Bx, N, C)`` (face corners)."""
    out = {}
    for name, C in FIELDS:
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


def at_pixels(material, frags, faces, sampler, like):
    """Material for ``shade_fragments``: per mesh as is, per vertex interpolated, per texel sampled
    with ``sampler(map) -> (B, H, W, C)``."""
    out = {}
    for name, C in FIELDS:
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


def light_tensors(lights, like):
    """The lights' tensors in ``like``'s dtype and device, in :func:`taichirast.shade`'s order."""
    def cast(x):
        return None if x is None else x.to(dtype=like.dtype, device=like.device)

    return [cast(x) for x in (lights.ambient, lights.directions, lights.colors, lights.point_positions,
                              lights.point_colors, lights.sh)]


def corner_faces(F, device):
    """``(F, 3)`` indices ``arange(3F)``: the topology of a mesh split into one vertex per face corner."""
    return torch.arange(3 * F, dtype=torch.int32, device=device).reshape(F, 3)
