"""The stages :func:`taichirast.render` is composed of (DESIGN §3), usable on their own.

A render is ``rasterizer -> shader -> blender`` over one :class:`Scene` (the validated inputs):

* **rasterizer** (:mod:`.rasterizers`): ``rasterizer(scene) -> Raster(screen_verts, fragments)``:
  projection plus hard fragments (one layer, ``K`` depth layers, or none for pure SoftRas);
* **shader** (:mod:`.shaders`): albedo (colours / texture / materials) then lighting (unlit, per
  pixel through :func:`taichirast.shade_fragments`, or per vertex for SoftRas): per-pixel colour
  images, or a :class:`ShadedMesh` for the soft blender;
* **blender** (:mod:`.blenders`): coverage and compositing: hard alpha, DIB-R silhouette,
  SoftRas aggregation, rasterize-then-splat; ``antialias`` runs after any hard blender.

A mode of :func:`taichirast.render` is a row of :data:`taichirast.render.MODES` naming one stage of
each kind; adding a mode or a shading model is one new stage plus one table row.
"""
from .scene import Raster, Scene, ShadedMesh  # noqa: F401
from . import blenders, rasterizers, shaders  # noqa: F401,E402
