"""Primitive definitions (public function / forward / backward), one module per kernel stage.

Each module exports ``PRIM``, a :class:`taichirast._primitive.Primitive` whose ``prepare`` is the
public function. :data:`PUBLIC` is the table both bridges are made from: :mod:`taichirast.ops`
exports ``PRIM.torch`` and :mod:`taichirast.np` ``PRIM.numpy`` (with its vjp) under each name, so
adding a primitive is one module here plus one row below.
"""
import importlib

# public name -> module in this package
PUBLIC = {
    "project_points": "project",
    "rasterize": "raster",
    "interpolate": "interpolate",
    "soft_rasterize": "soft",
    "dibr_silhouette": "dibr",
    "texture": "texture",
    "shade": "shade",
    "shade_fragments": "shade_fragments",
    "antialias": "antialias",
    "rasterize_layers": "raster_layers",
    "splat": "splat",
}


def load(module):
    """The :class:`~taichirast._primitive.Primitive` defined in ``taichirast._prims.<module>``."""
    return importlib.import_module(f"{__name__}.{module}").PRIM


def exports(bridge):
    """``{public name: function}`` for one bridge (``"torch"`` or ``"numpy"``)."""
    return {name: getattr(load(mod), bridge) for name, mod in PUBLIC.items()}
