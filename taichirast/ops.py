"""The torch API: one function per primitive, each a ``torch.autograd.Function`` over Taichi kernels.

All functions take torch tensors on the device Taichi runs on (CPU tensors for the CPU backend,
CUDA tensors for ``TAICHIRAST_ARCH=cuda``; anything else is a ``ValueError``), in float32 or
float64 (all float inputs of one call share a dtype). Outputs are always batched. Every gradient
is a hand-written Taichi kernel checked against finite differences in float64 (tests/).
The same kernels are reachable from NumPy through :mod:`taichirast.np`.
"""
from __future__ import annotations

from .fragments import Fragments


def project(verts, camera):
    """Project world vertices to screen pixels with ``camera``.

    Args:
        verts: ``(V, 3)`` or ``(B, V, 3)`` float world positions.
        camera: :class:`~taichirast.PerspectiveCamera` or :class:`~taichirast.OrthographicCamera`
            (batch 1 or B).

    Returns:
        ``(B, V, 3)``: ``x, y`` in pixels (x right, y down, pixel centres at half-integers) and
        ``z`` = camera depth (> 0 in front of a perspective camera). Differentiable w.r.t.
        ``verts`` and every camera tensor (R, t, fx, fy, cx, cy).
    """
    from ._prims.project import PRIM

    R, t = camera.extrinsics()
    return PRIM.torch_call(verts, R, t, camera.intrinsics(), orthographic=camera.orthographic)


def project_points(verts, R, t, intrinsics, orthographic=False):
    """:func:`project` with raw camera tensors: ``R (B,3,3)``, ``t (B,3)``, ``intrinsics (B,4)`` = fx, fy, cx, cy."""
    from ._prims.project import PRIM

    return PRIM.torch_call(verts, R, t, intrinsics, orthographic=orthographic)


def rasterize(screen_verts, faces, image_size, perspective_correct=True, cull_backfaces=False, near=0.01,
              tile_size=8):
    """Hard rasterization: visible face, barycentrics and depth per pixel.

    Each pixel keeps the nearest face whose interior contains its centre, ties going to the
    smaller face id (deterministic). On CPU each face scans the pixels of its own bounding box
    (depth test by atomic-min on packed depth/id keys); on GPU triangles are binned into
    ``tile_size``-pixel tiles (CSR lists sized from counts, so nothing is ever dropped) and each
    pixel walks its tile's list. Both schedules give bitwise-identical results. Triangles crossing
    the near plane are clipped exactly (2D homogeneous rasterization); points behind the camera
    never show.

    Args:
        screen_verts: ``(V, 3)`` or ``(B, V, 3)`` from :func:`project` (x, y pixels, z camera depth).
        faces: ``(F, 3)`` int32/int64 vertex indices, counter-clockwise seen from the camera =
            front-facing; shared by the batch.
        image_size: ``(H, W)`` or an int, any positive size.
        perspective_correct: barycentrics and depth for a perspective projection (``True``) or
            screen-linear (``False``; use it for orthographic cameras).
        cull_backfaces: drop faces that are clockwise on screen.
        near: minimum camera depth; nearer parts of triangles are clipped.
        tile_size: binning tile edge in pixels on GPU (a speed knob, never a limit).

    Returns:
        :class:`~taichirast.Fragments` ``(face_id (B,H,W) int32, bary (B,H,W,3), depth (B,H,W))``
        with ``-1`` / 0 / ``+inf`` on background. ``bary`` and ``depth`` are differentiable
        w.r.t. ``screen_verts`` (not through visibility changes: use soft modes or
        :func:`dibr_silhouette` for silhouette gradients).
    """
    from ._prims.raster import PRIM

    return Fragments(*PRIM.torch_call(screen_verts, faces, image_size, perspective_correct=perspective_correct,
                                      cull_backfaces=cull_backfaces, near=near, tile_size=tile_size))


def interpolate(attrs, faces, fragments):
    """Interpolate per-vertex attributes at every pixel with the fragments' barycentrics.

    Args:
        attrs: ``(V, C)`` or ``(B, V, C)`` float attributes.
        faces: ``(F, 3)`` indices into ``attrs`` with the same face order as the rasterized mesh.
            For face-varying data (UV seams, per-corner normals) pass the attribute topology,
            e.g. ``uv_faces``, or ``arange(3F).reshape(F, 3)`` with ``attrs`` of shape ``(3F, C)``.
        fragments: :class:`~taichirast.Fragments` from :func:`rasterize`.

    Returns:
        ``(B, H, W, C)``; 0 on background. Differentiable w.r.t. ``attrs`` and, through
        ``fragments.bary``, the screen vertices.
    """
    from ._prims.interpolate import PRIM

    return PRIM.torch_call(attrs, faces, fragments.face_id, fragments.bary)


def soft_rasterize(screen_verts, faces, colors, image_size, background=None, sigma=1e-4, gamma=1e-4, eps=1e-10,
                   near=0.01, far=100.0, per_face=False, cull_eps=1e-4, tile_size=16):
    """Soft rasterization and aggregation (SoftRas, Liu et al. 2019), O(1) memory per pixel.

    Each face j covers pixel p with probability ``D_j = sigmoid(±d_j^2 / sigma)`` (+ inside,
    - outside), ``d_j`` the distance from p to the triangle in NDC units (the shorter image side
    spans [-1, 1], as in PyTorch3D, so published sigma values apply). Alpha is
    ``1 - prod_j (1 - D_j)``; colour is the softmax over depth
    ``sum_j w_j c_j + w_b background`` with ``w_j ∝ D_j exp(z_j / gamma)``,
    ``w_b ∝ exp(eps / gamma)``, ``z_j = (far - depth) / (far - near)``. Faces with
    ``D_j < cull_eps`` at a pixel are skipped (and binned away); there is no faces-per-pixel cap.
    Faces with a vertex at ``z <= near`` are dropped.

    Args:
        screen_verts: ``(V, 3)`` or ``(B, V, 3)`` from :func:`project`.
        faces: ``(F, 3)`` int indices.
        colors: per-vertex ``(V, C)`` / ``(B, V, C)``, or per-face ``(F, C)`` / ``(B, F, C)``
            with ``per_face=True``. Outside a face, a pixel takes the colour of the face's
            nearest point.
        image_size: ``(H, W)``.
        background: ``(C,)`` background colour (default zeros); differentiable.
        sigma, gamma: sharpness of coverage and of the depth softmax (> 0).
        eps: background depth offset in the softmax.
        near, far: depth normalisation (the camera's near / far).

    Returns:
        ``(B, H, W, C + 1)`` RGBA (colour channels then alpha). Differentiable w.r.t.
        ``screen_verts`` (x, y and z), ``colors`` and ``background``.
    """
    from ._prims.soft import PRIM

    return PRIM.torch_call(screen_verts, faces, colors, image_size, background=background, sigma=sigma, gamma=gamma,
                           eps=eps, near=near, far=far, per_face=per_face, cull_eps=cull_eps, tile_size=tile_size)


def dibr_silhouette(screen_verts, faces, fragments, image_size, sigmainv=7000.0, box_len=0.02, near=0.01,
                    tile_size=16):
    """DIB-R soft silhouette (Chen et al. 2019): alpha with gradients from pixels outside the mesh.

    Covered pixels (``fragments.face_id >= 0``) get alpha 1; every other pixel gets
    ``1 - prod_j (1 - exp(-sigmainv * d_j^2))`` over the faces within ``box_len`` (NDC, of the
    face's bounding box), ``d_j`` the NDC distance from the pixel centre to face j.

    Args:
        screen_verts: ``(V, 3)`` or ``(B, V, 3)``; faces ``(F, 3)``.
        fragments: :class:`~taichirast.Fragments` of the same mesh from :func:`rasterize`.
        image_size: ``(H, W)``.
        sigmainv: sharpness (Kaolin's default 7000, NDC units).
        box_len: neighbourhood half-size in NDC units.

    Returns:
        ``(B, H, W)`` alpha, differentiable w.r.t. ``screen_verts`` (x, y).
    """
    from ._prims.dibr import PRIM

    return PRIM.torch_call(screen_verts, faces, fragments.face_id, image_size, sigmainv=sigmainv, box_len=box_len,
                           near=near, tile_size=tile_size)


def texture(tex, uv, filter="bilinear", wrap="repeat", face_id=None, lod=None):
    """Sample a texture at per-pixel UVs (nearest, bilinear or trilinear), differentiable in texture and UVs.

    Args:
        tex: ``(Ht, Wt, C)`` or ``(B, Ht, Wt, C)`` float texture, texel row 0 at the top (a batch
            of 1 is shared by every image).
        uv: ``(H, W, 2)`` or ``(B, H, W, 2)``; OBJ/OpenGL convention: u left to right, v bottom
            to top, texel (i, j) centred at ``u = (j + .5) / Wt``, ``v = 1 - (i + .5) / Ht``.
        filter: ``"nearest"``, ``"bilinear"`` or ``"trilinear"`` (mip-mapped, needs ``lod``; see
            :mod:`taichirast.mipmap`: the pyramid is rebuilt from ``tex`` on each call).
        wrap: ``"repeat"`` (bilinear blends across the seam) or ``"clamp"`` (clamp to edge).
        face_id: optional ``(B, H, W)`` int: pixels with ``face_id < 0`` get 0 and no gradient.
        lod: ``(B, H, W)`` level of detail for ``"trilinear"`` (0 = full resolution), e.g. from
            :func:`taichirast.mipmap.lod_from_jacobian`.

    Returns:
        ``(B, H, W, C)``. Gradients to ``tex`` (scatter of the bilinear weights) and ``uv``
        (bilinear: the blend's slope, one-sided exactly on texel-centre lines, 0 beyond a
        clamped edge; nearest: 0); trilinear also to ``lod``.
    """
    from ._prims.texture import PRIM

    if filter not in ("nearest", "bilinear", "trilinear"):
        raise ValueError(f"texture: filter must be one of 'nearest', 'bilinear', 'trilinear', got {filter!r}")
    if filter == "trilinear":
        import torch

        from . import mipmap

        if lod is None:
            raise ValueError("texture: filter='trilinear' needs lod= (B, H, W) levels of detail")
        for name, x in (("tex", tex), ("uv", uv), ("lod", lod)):
            if not torch.is_tensor(x) or not x.is_floating_point():
                raise TypeError(f"texture: filter='trilinear' takes float torch tensors; {name} is "
                                f"{type(x).__name__}" + (f" {x.dtype}" if torch.is_tensor(x) else ""))
        if uv.dim() not in (3, 4) or uv.shape[-1] != 2:
            raise ValueError(f"texture: uv must have shape (H, W, 2) or (B, H, W, 2), got {tuple(uv.shape)}")
        uv4 = uv if uv.dim() == 4 else uv[None]
        B = uv4.shape[0]
        if tuple(lod.shape) not in (tuple(uv.shape[:-1]), tuple(uv4.shape[:3])):
            raise ValueError(f"texture: lod must have shape {tuple(uv4.shape[:3])} (uv's without the last axis), "
                             f"got {tuple(lod.shape)}")
        if tex.dim() not in (3, 4) or (tex.dim() == 4 and tex.shape[0] not in (1, B)):
            raise ValueError(f"texture: tex must have shape (Ht, Wt, C) or (B, Ht, Wt, C) with B 1 or uv's batch {B}, "
                             f"got {tuple(tex.shape)}")
        if face_id is not None and (not torch.is_tensor(face_id) or face_id.is_floating_point()
                                    or tuple(face_id.shape) != tuple(uv4.shape[:3])):
            got = (f"{tuple(face_id.shape)} {face_id.dtype}" if torch.is_tensor(face_id) else type(face_id).__name__)
            raise ValueError(f"texture: face_id must be an integer tensor of shape {tuple(uv4.shape[:3])}, got {got}")
        return mipmap.sample_trilinear(mipmap.mipmaps(tex), uv4, lod.reshape(uv4.shape[:3]), wrap=wrap,
                                       face_id=face_id)
    if lod is not None:
        raise ValueError(f"texture: lod is only used with filter='trilinear', got filter={filter!r}")

    return PRIM.torch_call(tex, uv, filter=filter, wrap=wrap, face_id=face_id)


def shade(normals, positions, albedo, specular, shininess, camera_center, ambient=None, light_dirs=None,
          light_colors=None, point_positions=None, point_colors=None, sh_coeffs=None, *, model="blinn_phong",
          attenuation_k=0.0, material_ambient=None):
    """Shade points with Lambert / Phong / Blinn-Phong reflectance and ambient, directional, point and SH lights.

    Args:
        normals, positions, albedo, specular: ``(N, 3)`` (normals are normalised inside; a zero
            normal gets ambient only and zero gradient). Flatten images with ``.reshape(-1, 3)``.
        shininess: ``(N,)`` exponents >= 0.
        camera_center: ``(3,)`` world position of the eye (view vector ``v = normalize(eye - x)``).
        ambient: ``(3,)`` ambient light colour (adds ``albedo * material_ambient * ambient``).
        light_dirs, light_colors: ``(L, 3)`` directional lights; a direction is where the light
            travels (``l = -normalize(d)``).
        point_positions, point_colors: ``(P, 3)`` point lights, attenuated by ``1 / (1 + k d^2)``
            with ``k = attenuation_k``.
        sh_coeffs: ``(9, 3)`` spherical-harmonics environment (bands 0-2, Ramamoorthi & Hanrahan
            irradiance; adds ``albedo * E(n) / pi``).
        model: ``"lambert"``, ``"phong"`` or ``"blinn_phong"`` (TF Graphics' conventions: diffuse
            ``albedo c (n.l)``, specular ``specular c max(n.h, 0)^shininess`` where ``n.l > 0``).
        material_ambient: ``(N, 3)`` ambient reflectance of the material per point (default 1).

    Returns:
        ``(N, 3)`` RGB (not clamped), differentiable w.r.t. every float input.
    """
    from ._prims.shade import PRIM

    return PRIM.torch_call(normals, positions, albedo, specular, shininess, camera_center, ambient, light_dirs,
                           light_colors, point_positions, point_colors, sh_coeffs, model=model,
                           attenuation_k=attenuation_k, material_ambient=material_ambient)


def shade_fragments(fragments, positions, faces, normals, normal_faces, albedo, camera_center, ambient=None,
                    light_dirs=None, light_colors=None, point_positions=None, point_colors=None, sh_coeffs=None,
                    material_ambient=None, specular=None, shininess=None, background=None, *, model="blinn_phong",
                    attenuation_k=0.0):
    """Deferred shading of rasterized fragments in one fused pass (what :func:`render` uses when lit).

    Equal to ``shade(interpolate(normals, normal_faces, fragments), interpolate(positions, faces,
    fragments), albedo, ...)`` on covered pixels and ``background`` elsewhere, without the
    position / normal images and with per-mesh gradients summed per image row (no per-pixel
    gradient buffers for lights, camera or material).

    Args:
        fragments: :class:`~taichirast.Fragments` (``face_id (B, H, W)``, ``bary (B, H, W, 3)``).
        positions: ``(V, 3)`` / ``(B, V, 3)`` world positions; ``faces (F, 3)`` index them.
        normals: ``(Vn, 3)`` / ``(B, Vn, 3)`` normals (normalised inside) indexed by
            ``normal_faces (F, 3)``: vertex normals with ``faces`` (smooth shading) or face normals
            with ``normal_faces[f] = (f, f, f)`` (flat shading).
        albedo: ``(B, H, W, 3)`` diffuse colour per pixel.
        camera_center: ``(3,)`` / ``(B, 3)`` eye position (world).
        ambient, light_dirs, light_colors, point_positions, point_colors, sh_coeffs, model,
            attenuation_k: the lights and reflectance model, as in :func:`shade`.
        material_ambient, specular: ``(3,)`` / ``(B, 3)`` per mesh or ``(B, H, W, 3)`` per pixel
            (defaults 1 and 0); shininess: scalar / ``(B,)`` per mesh or ``(B, H, W)`` per pixel
            (default 1).
        background: ``(3,)`` colour of pixels with ``face_id < 0`` (default 0).

    Returns:
        ``(B, H, W, 3)`` RGB, differentiable w.r.t. ``fragments.bary``, positions, normals, albedo,
        camera centre, every light and material parameter and the background.
    """
    from ._prims.shade_fragments import PRIM

    return PRIM.torch_call(fragments.face_id, fragments.bary, positions, faces, normals, normal_faces, albedo,
                           camera_center, ambient, light_dirs, light_colors, point_positions, point_colors,
                           sh_coeffs, material_ambient, specular, shininess, background, model=model,
                           attenuation_k=attenuation_k)
