"""The NumPy API: the same primitives and kernels as :mod:`taichirast.ops`, on NumPy arrays.

Each function mirrors its torch twin (see its docstring there for shapes and conventions) but
takes and returns NumPy arrays and does no autograd. :func:`vjp` gives the vector-Jacobian
product, ``jax.vjp``-style::

    out, pullback = tr.np.vjp(tr.np.soft_rasterize, sv, faces, colors, image_size=(H, W))
    g_sv, g_colors = pullback(grad_out)

``pullback`` takes one gradient per output (``None`` for outputs you do not use, or for integer
outputs such as face ids) and returns one gradient per *differentiable positional argument* of
the call, in call order (arguments passed by keyword, such as ``background=``, get none).
Functions returning :class:`~taichirast.Fragments` take a Fragments-shaped tuple of gradients
``(None, g_bary, g_depth)``; :func:`interpolate`'s pullback returns ``(g_attrs, Fragments(None,
g_bary, None))`` so pullbacks chain.

Importing this module does not import torch. With ``TAICHIRAST_ARCH=cuda`` NumPy arrays are
copied to and from the GPU by Taichi at each call (host arrays by definition).
"""
from __future__ import annotations

from .fragments import Fragments

import numpy as _np

__all__ = ["project", "rasterize", "interpolate", "soft_rasterize", "dibr_silhouette", "texture", "shade",
           "shade_fragments", "look_at",
           "fov_intrinsics", "vjp"]


def look_at(eye, at=(0.0, 0.0, 0.0), up=(0.0, 1.0, 0.0)):
    """World-to-camera ``(R (3, 3), t (3,))`` float64 for a camera at ``eye`` looking at ``at``.

    OpenCV axes (camera looks down +Z, x right, y down, image up = ``up``), the same as
    :meth:`taichirast.PerspectiveCamera.look_at`. Raises ``ValueError`` if ``eye == at`` or ``up``
    is parallel to the viewing direction.
    """
    eye, at, up = (_np.asarray(x, dtype=_np.float64).reshape(3) for x in (eye, at, up))
    z = at - eye
    if _np.linalg.norm(z) == 0:
        raise ValueError("look_at: eye and at coincide")
    z = z / _np.linalg.norm(z)
    x = _np.cross(z, up)
    if _np.linalg.norm(x) <= 1e-12:
        raise ValueError("look_at: up is parallel to the viewing direction")
    x = x / _np.linalg.norm(x)
    y = _np.cross(z, x)
    R = _np.stack([x, y, z])
    return R, -R @ eye


def fov_intrinsics(fov_y, image_size):
    """``(4,)`` float64 intrinsics ``fx, fy, cx, cy`` for a vertical field of view in degrees, square
    pixels and the principal point at the image centre (as :meth:`PerspectiveCamera.from_fov`)."""
    from . import _validate as V

    H, W = V.image_size("fov_intrinsics", image_size)
    if not 0 < float(fov_y) < 180:
        raise ValueError(f"fov_intrinsics: fov_y must be in (0, 180) degrees, got {fov_y}")
    f = (H / 2.0) / _np.tan(_np.radians(float(fov_y)) / 2.0)
    return _np.array([f, f, W / 2.0, H / 2.0])


def _prim(name):
    import importlib

    return importlib.import_module(f"taichirast._prims.{name}").PRIM


def project(verts, R, t, intrinsics, orthographic=False):
    """``(B, V, 3)`` screen vertices; see :func:`taichirast.ops.project_points` (intrinsics = fx, fy, cx, cy)."""
    return _prim("project").numpy_call(verts, R, t, intrinsics, orthographic=orthographic)


def _project_vjp(verts, R, t, intrinsics, orthographic=False):
    return _prim("project").numpy_vjp(verts, R, t, intrinsics, orthographic=orthographic)


def rasterize(screen_verts, faces, image_size, perspective_correct=True, cull_backfaces=False, near=0.01, tile_size=8):
    """:class:`Fragments` of NumPy arrays; see :func:`taichirast.ops.rasterize`."""
    return Fragments(*_prim("raster").numpy_call(screen_verts, faces, image_size, perspective_correct=perspective_correct,
                                                 cull_backfaces=cull_backfaces, near=near, tile_size=tile_size))


def _rasterize_vjp(screen_verts, faces, image_size, *args, **kw):
    out, pullback = _prim("raster").numpy_vjp(screen_verts, faces, image_size, *args, **kw)
    return Fragments(*out), pullback


def interpolate(attrs, faces, fragments):
    """``(B, H, W, C)``; see :func:`taichirast.ops.interpolate`."""
    return _prim("interpolate").numpy_call(attrs, faces, fragments.face_id, fragments.bary)


def _interpolate_vjp(attrs, faces, fragments):
    out, pb = _prim("interpolate").numpy_vjp(attrs, faces, fragments.face_id, fragments.bary)

    def pullback(grad):
        g_attrs, g_bary = pb(grad)
        return g_attrs, Fragments(None, g_bary, None)

    return out, pullback


def soft_rasterize(screen_verts, faces, colors, image_size, **kw):
    """``(B, H, W, C + 1)`` RGBA; see :func:`taichirast.ops.soft_rasterize` for the keywords."""
    return _prim("soft").numpy_call(screen_verts, faces, colors, image_size, **kw)


def _soft_rasterize_vjp(*args, **kw):
    return _prim("soft").numpy_vjp(*args, **kw)


def dibr_silhouette(screen_verts, faces, fragments, image_size, **kw):
    """``(B, H, W)`` alpha; see :func:`taichirast.ops.dibr_silhouette`."""
    return _prim("dibr").numpy_call(screen_verts, faces, fragments.face_id, image_size, **kw)


def _dibr_silhouette_vjp(screen_verts, faces, fragments, image_size, **kw):
    return _prim("dibr").numpy_vjp(screen_verts, faces, fragments.face_id, image_size, **kw)


def texture(tex, uv, **kw):
    """``(B, H, W, C)``; see :func:`taichirast.ops.texture` for the keywords."""
    return _prim("texture").numpy_call(tex, uv, **kw)


def _texture_vjp(*args, **kw):
    return _prim("texture").numpy_vjp(*args, **kw)


def shade(*args, **kw):
    """``(N, 3)`` RGB; see :func:`taichirast.ops.shade` for the arguments."""
    return _prim("shade").numpy_call(*args, **kw)


def _shade_vjp(*args, **kw):
    return _prim("shade").numpy_vjp(*args, **kw)


_SF_OPTIONAL = ("ambient", "light_dirs", "light_colors", "point_positions", "point_colors", "sh_coeffs",
                "material_ambient", "specular", "shininess", "background")


def shade_fragments(fragments, positions, faces, normals, normal_faces, albedo, camera_center, ambient=None,
                    light_dirs=None, light_colors=None, point_positions=None, point_colors=None, sh_coeffs=None,
                    material_ambient=None, specular=None, shininess=None, background=None, *, model="blinn_phong",
                    attenuation_k=0.0):
    """``(B, H, W, 3)`` RGB; see :func:`taichirast.ops.shade_fragments`."""
    return _prim("shade_fragments").numpy_call(
        fragments.face_id, fragments.bary, positions, faces, normals, normal_faces, albedo, camera_center, ambient,
        light_dirs, light_colors, point_positions, point_colors, sh_coeffs, material_ambient, specular, shininess,
        background, model=model, attenuation_k=attenuation_k)


def _shade_fragments_vjp(fragments, positions, faces, normals, normal_faces, albedo, camera_center, ambient=None,
                         light_dirs=None, light_colors=None, point_positions=None, point_colors=None,
                         sh_coeffs=None, material_ambient=None, specular=None, shininess=None, background=None, *,
                         model="blinn_phong", attenuation_k=0.0):
    opt = (ambient, light_dirs, light_colors, point_positions, point_colors, sh_coeffs, material_ambient, specular,
           shininess, background)
    out, pb = _prim("shade_fragments").numpy_vjp(
        fragments.face_id, fragments.bary, positions, faces, normals, normal_faces, albedo, camera_center, *opt,
        model=model, attenuation_k=attenuation_k)

    def pullback(grad):
        """-> ``(Fragments(None, g_bary, None), g_positions, g_normals, g_albedo, g_camera_center,
        g_ambient, g_light_dirs, g_light_colors, g_point_positions, g_point_colors, g_sh_coeffs,
        g_material_ambient, g_specular, g_shininess, g_background)`` (None for arguments not given)."""
        g = pb(grad)
        head = (Fragments(None, g[0], None),) + tuple(g[1:5])
        return head + tuple(None if a is None else ga for a, ga in zip(opt, g[5:]))

    return out, pullback


project._vjp = _project_vjp
texture._vjp = _texture_vjp
shade._vjp = _shade_vjp
shade_fragments._vjp = _shade_fragments_vjp
rasterize._vjp = _rasterize_vjp
interpolate._vjp = _interpolate_vjp
soft_rasterize._vjp = _soft_rasterize_vjp
dibr_silhouette._vjp = _dibr_silhouette_vjp


def vjp(fn, *args, **kw):
    """``(outputs, pullback)`` for a function of this module called as ``fn(*args, **kw)``."""
    f = getattr(fn, "_vjp", None)
    if f is None:
        raise TypeError(f"vjp: {getattr(fn, '__name__', fn)!r} is not a taichirast.np primitive "
                        f"(expected one of {', '.join(__all__[:-1])})")
    return f(*args, **kw)
