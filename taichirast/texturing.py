"""``taichirast.texture``: the texture primitive plus mip-mapped (trilinear) sampling above it.

Nearest and bilinear sampling are the primitive :func:`taichirast.ops.texture` (torch and NumPy);
``filter="trilinear"`` composes that primitive over a mip pyramid (:mod:`taichirast.mipmap`,
torch only), so it lives here, above the bridge, and the bridge never imports it.
"""
from __future__ import annotations

import torch

from . import _validate as V
from . import mipmap, ops

FILTERS = ("nearest", "bilinear", "trilinear")


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
    if filter not in FILTERS:
        raise ValueError(f"texture: filter must be one of 'nearest', 'bilinear', 'trilinear', got {filter!r}")
    if filter != "trilinear":
        if lod is not None:
            raise ValueError(f"texture: lod is only used with filter='trilinear', got filter={filter!r}")
        return ops.texture(tex, uv, filter=filter, wrap=wrap, face_id=face_id)
    if lod is None:
        raise ValueError("texture: filter='trilinear' needs lod= (B, H, W) levels of detail")
    uv4 = _check_trilinear(tex, uv, face_id, lod)
    return mipmap.sample_trilinear(mipmap.mipmaps(tex), uv4, lod.reshape(uv4.shape[:3]), wrap=wrap, face_id=face_id)


def _check_trilinear(tex, uv, face_id, lod):
    """Argument checks of the trilinear path (the primitive checks its own); returns ``uv`` batched."""
    for name, x in (("tex", tex), ("uv", uv), ("lod", lod)):
        if not torch.is_tensor(x) or not x.is_floating_point():
            raise TypeError(f"texture: filter='trilinear' takes float torch tensors; {name} is "
                            f"{type(x).__name__}" + (f" {x.dtype}" if torch.is_tensor(x) else ""))
    if uv.dim() not in (3, 4) or uv.shape[-1] != 2:
        raise ValueError(f"texture: uv must have shape (H, W, 2) or (B, H, W, 2), got {tuple(uv.shape)}")
    uv4 = V.uvs("texture", "uv", uv if uv.dim() == 4 else uv[None])
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
    return uv4
