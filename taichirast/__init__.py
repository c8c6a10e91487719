"""taichirast: differentiable rasterization in Taichi, with PyTorch and NumPy bridges.

``import taichirast`` neither starts Taichi nor imports torch: the runtime starts on the first
kernel launch (:func:`taichirast.runtime.ensure_init`) and the torch API (``project``,
``rasterize``, ``render``, cameras, ...) is loaded on first access. The NumPy API lives in
:mod:`taichirast.np`.
"""
__version__ = "0.1.0"

import importlib as _importlib

from .runtime import ensure_init, info  # noqa: F401

# public name -> module that defines it (loaded lazily; these modules import torch)
_LAZY = {
    "project": "ops", "rasterize": "ops", "interpolate": "ops", "soft_rasterize": "ops",
    "dibr_silhouette": "ops", "texture": "texturing", "shade": "ops", "shade_fragments": "ops", "Fragments": "fragments",
    "antialias": "ops", "rasterize_layers": "ops", "splat": "ops", "edge_topology": "topology",
    "EdgeTopology": "topology", "CameraSizeWarning": "_validate", "Meshes": "packed", "FaceRanges": "packed",
    "project_points": "ops",
    "PerspectiveCamera": "camera", "OrthographicCamera": "camera",
    "render": "render", "Renderer": "render", "MeshRasterizer": "render", "MeshShader": "render", "Lights": "lights", "Material": "lights",
}
# (`taichirast.render` is the function; its module is reached as `taichirast.render_module`
# or `import taichirast.render`.)
_SUBMODULES = ("np", "io", "meshes", "ops", "camera", "runtime", "geometry", "fragments", "lights", "stages",
               "topology", "texturing", "tensorboard", "distributed", "packed")


def _load(module):
    """Import a submodule; importing ``render`` binds the package attribute ``render`` to the module
    (whichever name was asked for), so rebind the public function of that name at once."""
    mod = _importlib.import_module(f".{module}", __name__)
    if _LAZY.get(module) == module:
        globals()[module] = getattr(mod, module)
    return mod


def __getattr__(name):
    if name in _LAZY:
        value = getattr(_load(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name == "render_module":
        return _load("render")
    if name in _SUBMODULES:
        return _importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'taichirast' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY) + list(_SUBMODULES))
