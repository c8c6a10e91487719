"""Lights and materials: plain containers of (learnable) torch tensors, no kernels (DESIGN §1).

Conventions (see :func:`taichirast.shade`): a directional light's ``direction`` is where the
light travels (a light shining down has direction ``(0, -1, 0)`` in a y-up world); point lights
fall off as ``1 / (1 + attenuation d^2)``; ``sh`` holds 9 RGB spherical-harmonics coefficients
(bands 0-2, real SH ordered L00, L1-1, L10, L11, L2-2, L2-1, L20, L21, L22). Every tensor may
require grad; :meth:`parameters` lists them for an optimiser.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Optional

import torch

MODELS = ("lambert", "phong", "blinn_phong")


def _t(name, x, shape):
    if x is None:
        return None
    x = x if torch.is_tensor(x) else torch.as_tensor(x, dtype=torch.float32)
    if not x.is_floating_point():
        x = x.float()
    if shape == "L3":
        if x.dim() == 1:
            x = x[None]
        if x.dim() != 2 or x.shape[1] != 3:
            raise ValueError(f"Lights: {name} must have shape (L, 3) or (3,), got {tuple(x.shape)}")
    elif tuple(x.shape) != tuple(shape):
        raise ValueError(f"Lights: {name} must have shape {tuple(shape)}, got {tuple(x.shape)}")
    if not bool(torch.isfinite(x.detach()).all()):
        raise ValueError(f"Lights: {name} contains NaN or infinite values")
    return x


@dataclass
class Lights:
    """A set of lights shared by a batch.

    ambient: ``(3,)`` colour. directions / colors: ``(L, 3)`` directional lights.
    point_positions / point_colors: ``(P, 3)`` point lights (world space). attenuation: the ``k``
    of ``1 / (1 + k d^2)``. sh: ``(9, 3)`` spherical-harmonics environment (Lambertian irradiance).
    """

    ambient: Optional[torch.Tensor] = None
    directions: Optional[torch.Tensor] = None
    colors: Optional[torch.Tensor] = None
    point_positions: Optional[torch.Tensor] = None
    point_colors: Optional[torch.Tensor] = None
    attenuation: float = 0.0
    sh: Optional[torch.Tensor] = None

    def __post_init__(self):
        self.ambient = _t("ambient", self.ambient, (3,))
        self.directions = _t("directions", self.directions, "L3")
        self.colors = _t("colors", self.colors, "L3")
        self.point_positions = _t("point_positions", self.point_positions, "L3")
        self.point_colors = _t("point_colors", self.point_colors, "L3")
        if self.sh is not None and torch.is_tensor(self.sh) and self.sh.dim() == 2 and self.sh.shape[0] > 9:
            raise ValueError(f"Lights: sh must have shape (9, 3) (bands 0-2, which approximate a Lambertian "
                             f"surface's irradiance to about 1% on average), got {tuple(self.sh.shape)}; truncate "
                             f"to the first 9 coefficients, or evaluate any band count with "
                             f"taichirast.geometry.sh_irradiance")
        self.sh = _t("sh", self.sh, (9, 3))
        for a, b in (("directions", "colors"), ("point_positions", "point_colors")):
            x, y = getattr(self, a), getattr(self, b)
            if (x is None) != (y is None) or (x is not None and x.shape != y.shape):
                raise ValueError(f"Lights: {a} and {b} must be given together with equal shapes")
        if float(self.attenuation) < 0:
            raise ValueError(f"Lights: attenuation must be >= 0, got {self.attenuation}")

    def parameters(self):
        """The light tensors that are set (for an optimiser)."""
        return [getattr(self, f.name) for f in fields(self) if torch.is_tensor(getattr(self, f.name))]

    def to(self, device=None, dtype=None):
        kw = {f.name: getattr(self, f.name) for f in fields(self)}
        for k, v in kw.items():
            if torch.is_tensor(v):
                kw[k] = v.to(device=device or v.device, dtype=dtype or v.dtype)
        return Lights(**kw)


def _material_value(name, x, default, colour):
    """A material field as a float tensor; its layout follows from its number of dimensions."""
    x = default if x is None else x
    x = x if torch.is_tensor(x) else torch.as_tensor(x, dtype=torch.float32)
    if not x.is_floating_point():
        x = x.float()
    nd = x.dim() - (1 if colour else 0)
    if nd not in (0, 1, 2) or (colour and x.shape[-1] != 3):
        want = ("(3,) per mesh, (V, 3) per vertex or (Ht, Wt, 3) per texel" if colour
                else "() per mesh, (V,) per vertex or (Ht, Wt) per texel")
        raise ValueError(f"Material: {name} must have shape {want}, got {tuple(x.shape)}")
    if not bool(torch.isfinite(x.detach()).all()):
        raise ValueError(f"Material: {name} contains NaN or infinite values")
    return x


LAYOUTS = ("mesh", "vertex", "texel")


@dataclass
class Material:
    """Reflectance of a mesh (:func:`taichirast.shade` gives the formulas).

    * ``model``: ``"lambert"``, ``"phong"`` or ``"blinn_phong"``.
    * ``specular``: specular colour, default 0 (no highlight).
    * ``shininess``: specular exponent (>= 0), default 32.
    * ``ambient``: ambient reflectance, multiplies ``albedo * lights.ambient``, default 1.

    Each field is per mesh (``(3,)``, or ``()`` for shininess), per vertex (``(V, 3)`` / ``(V,)``:
    interpolated over faces in hard / DIB-R mode, taken at the vertices in soft mode) or per texel
    (``(Ht, Wt, 3)`` / ``(Ht, Wt)``: a map sampled at the mesh's UVs like the albedo texture, so it
    needs ``uvs=`` in :func:`taichirast.render`). :meth:`layout` tells which. The diffuse colour
    (albedo) is the mesh's ``colors`` or ``texture``. Every field may require grad.
    """

    specular: Optional[torch.Tensor] = None
    shininess: Optional[torch.Tensor] = None
    model: str = "blinn_phong"
    ambient: Optional[torch.Tensor] = None

    def __post_init__(self):
        if self.model not in MODELS:
            raise ValueError(f"Material: model must be one of {MODELS}, got {self.model!r}")
        self.specular = _material_value("specular", self.specular, [0.0, 0.0, 0.0], True)
        self.shininess = _material_value("shininess", self.shininess, 32.0, False)
        self.ambient = _material_value("ambient", self.ambient, [1.0, 1.0, 1.0], True)
        if float(self.shininess.detach().min()) < 0:
            raise ValueError(f"Material: shininess must be >= 0, got min {float(self.shininess.detach().min())}")

    def layout(self, name):
        """``"mesh"``, ``"vertex"`` or ``"texel"`` for the field ``name``."""
        x = getattr(self, name)
        return LAYOUTS[x.dim() - (1 if name != "shininess" else 0)]

    def parameters(self):
        """The material tensors (for an optimiser)."""
        return [self.specular, self.shininess, self.ambient]
