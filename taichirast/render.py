"""Composition: ``render`` = rasterizer -> shader -> blender (DESIGN §3; stages in :mod:`taichirast.stages`).

Four modes (rows of :data:`MODES`), all returning RGBA ``(B, H, W, C + 1)`` (colour channels,
then alpha):

* ``"hard"``: hard rasterization + interpolation of vertex colours. Gradients reach colours and,
  through barycentrics, vertex positions and the camera, but not silhouettes (alpha is a hard
  0/1 mask) -- unless ``antialias=True``, which adds nvdiffrast's analytic antialiasing of
  silhouette edges (:func:`taichirast.antialias`) to every channel, alpha included: silhouette
  and occlusion gradients at about the cost of the hard path.
* ``"soft"``: SoftRas aggregation (:func:`taichirast.soft_rasterize`), gradients everywhere
  including silhouettes and occlusion.
* ``"dibr"``: DIB-R: the hard foreground (interpolated colours, composited over the background
  on uncovered pixels) and the DIB-R soft silhouette as alpha, so silhouette gradients come from
  the pixels around the mesh.
* ``"splat"``: rasterize-then-splat (Cole et al. 2021): ``splat_layers`` hard depth layers, each
  shaded per pixel, splatted with a ``splat_sigma``-pixel Gaussian at its surface points' screen
  positions (:func:`taichirast.splat`) and composited front to back: smooth silhouette and
  occlusion gradients from hard fragments.

Lighting (``lights=`` a :class:`~taichirast.Lights`, ``material=`` a :class:`~taichirast.Material`,
``texture=`` with ``uvs=`` / ``uv_faces=``) shades the albedo (colours or texture) with
:func:`taichirast.shade`:

* ``"hard"``, ``"dibr"`` and ``"splat"`` shade per pixel (:func:`taichirast.shade_fragments`, one fused pass
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

import sys
from typing import Callable, NamedTuple

import torch

from . import _resident
from .stages import Scene, blenders, rasterizers, shaders
from .stages import materials as _materials


class Mode(NamedTuple):
    """One row of :data:`MODES`: the stages a mode is composed of.

    ``rasterizer(scene) -> Raster``; ``shader``: what the blender calls to colour fragments or the
    mesh; ``blender(scene, raster, shader) -> rgba``; ``hard_fragments``: its blender works on one
    layer of hard fragments (so ``antialias=True`` applies); ``perspective_only``: refuses an
    orthographic camera; ``cull_backfaces``: the mode's default for :func:`render`'s
    ``cull_backfaces=None``.
    """

    rasterizer: Callable
    shader: Callable
    blender: Callable
    hard_fragments: bool = False
    perspective_only: bool = False
    cull_backfaces: bool = False


MODES = {
    "hard": Mode(rasterizers.hard, shaders.pixel, blenders.hard_alpha, hard_fragments=True),
    "dibr": Mode(rasterizers.hard, shaders.pixel, blenders.dibr_alpha, hard_fragments=True),
    "soft": Mode(rasterizers.project_only, shaders.vertex, blenders.softras, perspective_only=True),
    # splat culls back faces by default so that layer 1 of a closed mesh is the surface behind (as
    # TF Graphics does), not the inside of the front surface
    "splat": Mode(rasterizers.layered, shaders.pixel, blenders.splat, cull_backfaces=True),
}


class MeshRasterizer(torch.nn.Module):
    """The rasterizer stage as a module: ``forward(scene) -> Raster(screen_verts, fragments)``."""

    def __init__(self, rasterizer=rasterizers.hard):
        super().__init__()
        self.rasterizer = rasterizer

    def forward(self, scene):
        return self.rasterizer(scene)


class MeshShader(torch.nn.Module):
    """The shader stage as a module (a shading function plus a blend function, as in PyTorch3D),
    optionally followed by analytic antialiasing: ``forward(scene, raster) -> rgba``."""

    def __init__(self, shader=shaders.pixel, blender=blenders.hard_alpha, antialias=False):
        super().__init__()
        self.shader, self.blender, self.antialias = shader, blender, bool(antialias)

    def forward(self, scene, raster):
        rgba = self.blender(scene, raster, self.shader)
        return blenders.antialias(scene, raster, rgba) if self.antialias else rgba


def compose(mode="soft", antialias=False):
    """``(MeshRasterizer, MeshShader)`` for a mode name of :data:`MODES` (checks the combination)."""
    if mode not in MODES:
        raise ValueError(f"render: mode must be one of {tuple(MODES)}, got {mode!r}")
    m = MODES[mode]
    if antialias and not m.hard_fragments:
        hard = [k for k, v in MODES.items() if v.hard_fragments]
        raise ValueError(f"render: antialias=True needs one layer of hard fragments (mode {' or '.join(map(repr, hard))}); "
                         f"mode={mode!r} gets its silhouette gradients its own way")
    return MeshRasterizer(m.rasterizer), MeshShader(m.shader, m.blender, antialias)


def render(verts, faces, camera, colors=None, mode="soft", background=None, per_face=False, sigma=1e-4, gamma=1e-4,
           eps=1e-10, sigmainv=7000.0, box_len=0.02, cull_backfaces=None, return_fragments=False, tile_size=None,
           lights=None, material=None, texture=None, uvs=None, uv_faces=None, shading="smooth",
           texture_filter="bilinear", texture_wrap="repeat", antialias=False, topology=None, splat_layers=2,
           splat_sigma=0.5, *, stages=None):
    """Render a triangle mesh to RGBA.

    Args:
        verts: ``(V, 3)`` or ``(B, V, 3)`` world positions (float32 / float64 tensor), or a
            :class:`~taichirast.Meshes` batch of different meshes (then ``faces=None``): mesh i is
            drawn into image i with camera i (or one shared camera), in one pass of the stages
            (:mod:`taichirast.packed`); ``colors`` then packed ``(sum V_i, C)`` (``(sum F_i, C)``
            per face) or a list of per-mesh tensors, ``uvs`` per vertex (packed or a list) or
            lists of per-mesh ``uvs`` / ``uv_faces``, and ``texture`` one map or one per mesh
            ``(N, Ht, Wt, 3)``.
        faces: ``(F, 3)`` int vertex indices, counter-clockwise = front-facing.
        camera: :class:`~taichirast.PerspectiveCamera` / :class:`~taichirast.OrthographicCamera`;
            its ``image_size``, ``near`` and ``far`` are used.
        colors: per-vertex ``(V, C)`` / ``(B, V, C)`` colours (default white), or per-face
            ``(F, C)`` / ``(B, F, C)`` with ``per_face=True``.
        mode: ``"hard"``, ``"soft"``, ``"dibr"`` or ``"splat"`` (a row of :data:`MODES`; see the
            module docstring for the gradients each one gives).
        background: ``(C,)`` colour or a scalar (default 0).
        sigma, gamma, eps: soft mode parameters (:func:`taichirast.soft_rasterize`).
        sigmainv, box_len: DIB-R silhouette parameters (:func:`taichirast.dibr_silhouette`).
        cull_backfaces: drop back faces from the hard fragments (hard, DIB-R, splat); default
            (None): the mode's own choice, True for splat (so the second layer of a closed mesh
            is the surface behind), False otherwise.
        return_fragments: also return the hard :class:`~taichirast.Fragments` (computed for soft
            mode too; layered ``(B, K, H, W)`` ones in splat mode).
        tile_size: binning tile size passed to every primitive (default: each one's own).
        lights: :class:`~taichirast.Lights` to shade with (default: unlit colours).
        material: :class:`~taichirast.Material` (default: Blinn-Phong, no specular); needs ``lights``.
        texture: ``(Ht, Wt, 3)`` / ``(B, Ht, Wt, 3)`` albedo texture (replaces ``colors``), sampled
            at ``uvs (T, 2)`` indexed per face corner by ``uv_faces (F, 3)`` (default ``faces``,
            i.e. one UV per vertex). OpenGL UV convention (see :func:`taichirast.texture`).
        shading: ``"smooth"`` (vertex normals) or ``"flat"`` (face normals), when lit.
        texture_filter, texture_wrap: see :func:`taichirast.texture`. ``"trilinear"`` mip-maps
            the texture and texel materials: per pixel in hard / DIB-R / splat mode (level of
            detail from the analytic screen-space UV derivatives), per face in soft mode
            (texel-to-pixel area ratio); see :mod:`taichirast.mipmap`.
        antialias: hard and DIB-R modes: antialias silhouette edges analytically
            (:func:`taichirast.antialias`), which gives the colour and alpha gradients w.r.t.
            vertices and camera at silhouettes and occlusion boundaries.
        topology: the :func:`taichirast.edge_topology` of ``faces`` for ``antialias`` (default:
            built on first use and cached for the last few meshes).
        splat_layers, splat_sigma: splat mode's number of depth layers (>= 1) and Gaussian
            standard deviation in pixels.
        stages: ``(rasterizer, shader)`` to run instead of the mode's own (what
            :class:`Renderer` passes; see :func:`compose`).

    Returns:
        ``rgba (B, H, W, C + 1)``, or ``(rgba, fragments)`` with ``return_fragments=True``.
    """
    from . import _validate as V

    rasterizer, shader = compose(mode, antialias) if stages is None else stages
    if cull_backfaces is None:
        cull_backfaces = MODES[mode].cull_backfaces
    options = dict(sigma=sigma, gamma=gamma, eps=eps, sigmainv=sigmainv, box_len=box_len, topology=topology,
                   splat_layers=splat_layers, splat_sigma=splat_sigma)
    scene = make_scene(verts, faces, camera, colors=colors, background=background, per_face=per_face,
                       cull_backfaces=cull_backfaces, tile_size=tile_size, lights=lights, material=material,
                       texture=texture, uvs=uvs, uv_faces=uv_faces, shading=shading, texture_filter=texture_filter,
                       texture_wrap=texture_wrap, options=options)
    if topology is not None and not _same_faces(topology, scene.faces):
        raise ValueError("render: topology was built from different faces than the faces passed; build it with "
                         "tr.edge_topology(faces) for this mesh (or leave topology=None: render caches it)")
    if MODES[mode].perspective_only and camera.orthographic:
        raise ValueError(f"render: mode={mode!r} needs a PerspectiveCamera (SoftRas's depth interpolation is "
                         f"perspective-correct); use mode='hard' or 'dibr' with an OrthographicCamera")
    with V.trusted(), _resident.scope():
        # on Vulkan / Metal the stages' intermediates stay on the device; the results come back once
        return _resident.host(run(scene, rasterizer, shader, return_fragments))


def run(scene, rasterizer, shader, return_fragments=False):
    """Run composed stages on a checked :class:`~taichirast.stages.Scene`."""
    raster = rasterizer(scene)
    rgba = shader(scene, raster)
    if not return_fragments:
        return rgba
    frags = raster.fragments if raster.fragments is not None else rasterizers.hard(scene).fragments
    return rgba, frags


def _same_faces(topology, faces):
    tf = getattr(topology, "faces", None)
    if tf is None:
        raise TypeError(f"render: topology must be an EdgeTopology from tr.edge_topology(faces), "
                        f"got {type(topology).__name__}")
    tf = torch.as_tensor(tf, device=faces.device)
    return tuple(tf.shape) == tuple(faces.shape) and bool((tf.to(faces.dtype) == faces).all())


def _as_tensor(x, like):
    return x if torch.is_tensor(x) else torch.as_tensor(x, dtype=like.dtype, device=like.device)


def _checked_arrays(verts, faces, camera, arrays, uvs, uv_faces):
    """The user's arrays, validated once (NaN scans, index ranges): the primitives then run in
    trusted mode and skip those whole-array scans on the intermediates the stages make."""
    from . import _validate as V

    if not torch.is_tensor(verts):
        verts = torch.as_tensor(verts, dtype=camera.dtype, device=camera.device)
    if not torch.is_tensor(faces):
        faces = torch.as_tensor(faces, device=verts.device)
    vb = V.verts("render", "verts", verts, "torch")
    faces = V.faces("render", "faces", faces, "torch", n_verts=vb.shape[1], like=vb)
    checked = {name: V.float_array("render", name, _as_tensor(x, vb), "torch", vb)
               for name, x in arrays.items() if x is not None}
    if uvs is not None:
        uvs = V.float_array("render", "uvs", uvs, "torch", vb, ndims=(2,), last=2)
        uv_faces = V.faces("render", "uv_faces", uv_faces if uv_faces is not None else faces, "torch",
                           n_verts=uvs.shape[0], like=vb)
        if uv_faces.shape[0] != faces.shape[0]:
            raise ValueError(f"render: uv_faces must have one row per face ({faces.shape[0]}), "
                             f"got {tuple(uv_faces.shape)}")
    return vb, faces, checked, uvs, uv_faces


def _check_settings(camera, lights, material, texture, uvs, shading, texture_filter):
    if texture_filter not in ("nearest", "bilinear", "trilinear"):
        raise ValueError(f"render: texture_filter must be 'nearest', 'bilinear' or 'trilinear', got {texture_filter!r}")
    if shading not in ("smooth", "flat"):
        raise ValueError(f"render: shading must be 'smooth' or 'flat', got {shading!r}")
    if material is not None and lights is None:
        raise ValueError("render: material needs lights (without lights the colours are drawn unlit)")
    if texture is not None and uvs is None:
        raise ValueError("render: texture needs uvs (and uv_faces unless the UVs are per vertex)")
    for owner, obj in (("camera", camera), ("lights", lights), ("material", material)):
        for x in (obj.parameters() if obj is not None else []):
            if not bool(torch.isfinite(x.detach()).all()):
                raise ValueError(f"render: the {owner}'s tensors contain NaN or infinite values")


def make_scene(verts, faces, camera, colors=None, background=None, per_face=False, cull_backfaces=False,
               tile_size=None, lights=None, material=None, texture=None, uvs=None, uv_faces=None,
               shading="smooth", texture_filter="bilinear", texture_wrap="repeat", options=None):
    """Check :func:`render`'s arguments and gather them into a :class:`~taichirast.stages.Scene`
    (the input of every stage; arguments as in :func:`render`)."""
    from .lights import Material

    from .packed import Meshes, scene_args

    _check_settings(camera, lights, material, texture, uvs, shading, texture_filter)
    packing = verts if isinstance(verts, Meshes) else None
    if packing is not None:
        verts, faces, colors, uvs, uv_faces = scene_args(packing, faces, camera, colors, per_face, uvs, uv_faces)
    vb, faces, arr, uvs, uv_faces = _checked_arrays(
        verts, faces, camera, {"colors": colors, "texture": texture, "background": background}, uvs, uv_faces)
    cols = arr.get("colors")
    if cols is None:
        n = faces.shape[0] if per_face else vb.shape[1]
        cols = torch.ones(n, 3, dtype=vb.dtype, device=vb.device)
    if lights is not None:
        material = material if material is not None else Material()
        _materials.check(material, vb.shape[1], uvs)
        if texture is None and cols.shape[-1] != 3:
            raise ValueError(f"render: lit rendering needs RGB colours (C = 3), got C = {cols.shape[-1]}")
    scene = Scene(verts=vb, faces=faces, camera=camera, colors=cols, background=arr.get("background"),
                  per_face=bool(per_face), texture=arr.get("texture"), uvs=uvs,
                  uv_faces=uv_faces if uv_faces is not None else faces, lights=lights, material=material,
                  shading=shading, tex_kw={"filter": texture_filter, "wrap": texture_wrap},
                  tile={} if tile_size is None else {"tile_size": tile_size}, options=dict(options or {}),
                  cull_backfaces=bool(cull_backfaces), packing=packing)
    scene.background_for(scene.channels)  # a wrong channel count is an error before any kernel runs
    return scene


class Renderer(torch.nn.Module):
    """``nn.Module`` renderer: a :class:`MeshRasterizer` and a :class:`MeshShader` plus the settings
    of :func:`render`.

    Example::

        renderer = tr.Renderer(camera, mode="soft", sigma=1e-4)
        rgba = renderer(verts, faces, colors)          # (B, H, W, 4)
        scene = tr.render_module.make_scene(verts, faces, camera, colors=colors)
        rgba = renderer.shader(scene, renderer.rasterizer(scene))   # the same, stage by stage

    ``forward(verts, faces, colors=None, camera=None, **overrides)``: ``camera`` and keyword
    arguments of :func:`render` override the stored ones for that call. The camera is a plain
    container: its tensors are not registered as module parameters (pass them to your
    optimiser with ``camera.parameters()`` if you learn them).
    """

    def __init__(self, camera, mode="soft", background=None, antialias=False, **settings):
        super().__init__()
        self.rasterizer, self.shader = compose(mode, antialias)
        self.camera = camera
        self.mode = mode
        self.antialias = bool(antialias)
        self.background = background
        self.settings = dict(settings)

    def forward(self, verts, faces, colors=None, camera=None, **overrides):
        kw = dict(self.settings)
        kw.update(overrides)
        kw.setdefault("mode", self.mode)
        kw.setdefault("antialias", self.antialias)
        kw.setdefault("background", self.background)
        if kw["mode"] == self.mode and bool(kw["antialias"]) == self.antialias:
            kw["stages"] = (self.rasterizer, self.shader)
        return render(verts, faces, camera if camera is not None else self.camera, colors=colors, **kw)

    def extra_repr(self):
        return f"mode={self.mode!r}, antialias={self.antialias}, camera={self.camera!r}, settings={self.settings}"


class _CallableModule(type(sys.modules[__name__])):
    """``import taichirast.render`` binds the package attribute ``render`` to this module (Python's
    import system does that for every submodule), which would shadow the function of the same
    name; calling the module calls the function, so ``tr.render(...)`` works whatever was imported
    first."""

    def __call__(self, *args, **kw):
        return render(*args, **kw)


sys.modules[__name__].__class__ = _CallableModule
