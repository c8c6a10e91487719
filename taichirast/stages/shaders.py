"""Shader stages: albedo (colours, texture, materials) then lighting.

* :func:`pixel`: per-pixel colour of hard fragments, background composited (hard, DIB-R, splat);
* :func:`vertex`: per-vertex / per-corner / per-face colour for the SoftRas blender (Gouraud or
  flat, as SoftRas does).
"""
from __future__ import annotations

import torch

from .. import ops, texturing
from . import materials as M
from .scene import ShadedMesh


def _normals(scene):
    from ..geometry.mesh import face_normals, vertex_normals

    if scene.shading == "flat":
        return face_normals(scene.verts, scene.faces), "flat"
    return vertex_normals(scene.verts, scene.faces), "smooth"


# ------------------------------------------------------------------ per pixel (hard fragments)
def pixel_sampler(scene, sv, frags):
    """``sample(map) -> (B, H, W, C)``: a texture or texel map at the pixels' UVs (with the analytic
    per-pixel level of detail for trilinear filtering), or None when the scene has no UVs in use."""
    if scene.texture is None and not (scene.lights is not None and M.has_texels(scene.material)):
        return None
    uvf = scene.uv_faces
    uv_img = ops.interpolate(scene.uvs, uvf, frags)
    J = None
    if scene.tex_kw["filter"] == "trilinear":
        from .. import mipmap

        J = mipmap.pixel_uv_jacobian(sv, scene.faces, scene.uvs, uvf, frags,
                                     perspective=not scene.camera.orthographic)

    def sample(m):
        if J is None:
            return ops.texture(m, uv_img, face_id=frags.face_id, **scene.tex_kw)
        from .. import mipmap

        lod = mipmap.lod_from_jacobian(J, (m.shape[-3], m.shape[-2]))
        return texturing.texture(m, uv_img, face_id=frags.face_id, lod=lod, **scene.tex_kw)

    return sample


def pixel_albedo(scene, frags, sample):
    """``(B, H, W, C)`` diffuse colour of the visible surface (0 on background)."""
    if scene.texture is not None:
        return sample(scene.texture)
    if scene.per_face:
        F = scene.faces.shape[0]
        return ops.interpolate(scene.colors.repeat_interleave(3, dim=-2), M.corner_faces(F, scene.faces.device),
                               frags)
    return ops.interpolate(scene.colors, scene.faces, frags)


def pixel(scene, sv, frags):
    """``(B, H, W, C)`` shaded colour of one layer of fragments, ``scene.background`` where uncovered."""
    sample = pixel_sampler(scene, sv, frags)
    alb = pixel_albedo(scene, frags, sample)
    bg = scene.background_for(alb.shape[-1])
    if scene.lights is None:
        cover = frags.mask.to(alb.dtype)[..., None]
        return alb * cover + bg * (1 - cover)
    vb, faces, F = scene.verts, scene.faces, scene.faces.shape[0]
    nrm, kind = _normals(scene)
    nfaces = (torch.arange(F, dtype=torch.int32, device=faces.device)[:, None].expand(F, 3).contiguous()
              if kind == "flat" else faces)
    mats = M.at_pixels(scene.material, frags, faces, sample, vb)
    if alb.shape[0] != frags.face_id.shape[0]:
        alb = alb.expand(frags.face_id.shape[0], *alb.shape[1:]).contiguous()
    return ops.shade_fragments(frags, vb, faces, nrm, nfaces, alb, scene.eyes, *M.light_tensors(scene.lights, vb),
                               material_ambient=mats["ambient"], specular=mats["specular"],
                               shininess=mats["shininess"], background=bg, model=scene.material.model,
                               attenuation_k=float(scene.lights.attenuation))


# ------------------------------------------------------------------ per vertex (SoftRas)
def shade_points(scene, normals, positions, albedo, mats):
    """``shade`` over a batch: normals / positions / albedo ``(Bx, N, 3)`` (Bx 1 broadcasts), one
    call per view; unlit scenes return the albedo."""
    eyes = scene.eyes
    if scene.lights is None:
        return albedo.expand(max(normals.shape[0], eyes.shape[0]), *albedo.shape[1:])
    B = max(normals.shape[0], positions.shape[0], albedo.shape[0], eyes.shape[0],
            *(m.shape[0] for m in mats.values()))
    lights = M.light_tensors(scene.lights, positions)
    out = []
    for b in range(B):
        def pick(x):
            return x[b if x.shape[0] > 1 else 0]

        cast = {k: pick(v).to(dtype=positions.dtype, device=positions.device) for k, v in mats.items()}
        out.append(ops.shade(pick(normals), pick(positions), pick(albedo), cast["specular"], cast["shininess"],
                             pick(eyes), *lights, model=scene.material.model,
                             attenuation_k=float(scene.lights.attenuation), material_ambient=cast["ambient"]))
    return torch.stack(out, 0)


def _sample_corners(scene, sv, tex, uv_c):
    """A map sampled at the face corners ``uv_c (3F, 2)`` -> ``(Bx, 3F, C)``; trilinear filtering
    uses each face's isotropic level of detail (:func:`taichirast.mipmap.face_lod`)."""
    if scene.tex_kw["filter"] != "trilinear":
        Bt = tex.shape[0] if tex.dim() == 4 else 1  # one texture per image: the corners' UVs for each
        return ops.texture(tex, uv_c[None, None].expand(Bt, 1, *uv_c.shape), **scene.tex_kw)[:, 0]
    from .. import mipmap

    lod = mipmap.face_lod(sv, scene.faces, scene.uvs, scene.uv_faces,
                          (tex.shape[-3], tex.shape[-2])).repeat_interleave(3, dim=-1)
    uv = uv_c[None, None].expand(lod.shape[0], 1, *uv_c.shape).contiguous()
    return mipmap.sample_trilinear(mipmap.mipmaps(tex), uv, lod[:, None], wrap=scene.tex_kw["wrap"])[:, 0]


def _vertex_corners(scene, sv):
    """One vertex per face corner: albedo per corner (texture, texel materials, or per-face colours
    with smooth shading), then Gouraud over the split mesh."""
    vb, faces, F = scene.verts, scene.faces, scene.faces.shape[0]
    corners = faces.reshape(-1).long()
    uv_c = scene.uvs[scene.uv_faces.reshape(-1).long()] if scene.uvs is not None else None

    def sample(m):
        return _sample_corners(scene, sv, m, uv_c)

    if scene.texture is not None:
        alb = sample(scene.texture)
    elif scene.per_face:
        alb = scene.colors.repeat_interleave(3, dim=-2)
    else:
        alb = scene.colors[..., corners, :]
    alb = alb if alb.dim() == 3 else alb[None]
    nrm, mats = alb, None
    if scene.lights is not None:
        from ..geometry.mesh import face_normals, vertex_normals

        nrm = (face_normals(vb, faces).repeat_interleave(3, dim=-2) if scene.shading == "flat"
               else vertex_normals(vb, faces)[:, corners])
        mats = M.at_points(scene.material, 3 * F, vb, vertex_idx=corners, sampler=sample)
    lit = shade_points(scene, nrm, vb[:, corners], alb, mats)
    return ShadedMesh(sv[:, corners], M.corner_faces(F, faces.device), lit, False)


def _vertex_flat(scene, sv):
    """One colour per face: the face's albedo shaded at its centroid with its normal."""
    from ..geometry.mesh import face_normals

    vb, faces, F = scene.verts, scene.faces, scene.faces.shape[0]
    alb = scene.colors if scene.per_face else scene.colors[..., faces.long(), :].mean(-2)
    alb = alb if alb.dim() == 3 else alb[None]
    mats = M.at_points(scene.material, F, vb, face_mean=faces) if scene.lights is not None else None
    lit = shade_points(scene, face_normals(vb, faces), vb[:, faces.long()].mean(-2), alb, mats)
    return ShadedMesh(sv, faces, lit, True)


def _vertex_smooth(scene, sv):
    """Gouraud: colours shaded at the vertices with vertex normals."""
    from ..geometry.mesh import vertex_normals

    vb = scene.verts
    alb = scene.colors if scene.colors.dim() == 3 else scene.colors[None]
    mats = M.at_points(scene.material, vb.shape[1], vb) if scene.lights is not None else None
    lit = shade_points(scene, vertex_normals(vb, scene.faces), vb, alb, mats)
    return ShadedMesh(sv, scene.faces, lit, False)


def vertex(scene, sv):
    """:class:`ShadedMesh` for the SoftRas blender: unlit colours as given; lit or textured scenes
    shaded per corner, per face (flat) or per vertex (smooth)."""
    if scene.lights is None and scene.texture is None:
        return ShadedMesh(sv, scene.faces, scene.colors, scene.per_face)
    if scene.texture is not None or M.has_texels(scene.material) or (scene.per_face and scene.shading == "smooth"):
        return _vertex_corners(scene, sv)
    if scene.shading == "flat":
        return _vertex_flat(scene, sv)
    return _vertex_smooth(scene, sv)
