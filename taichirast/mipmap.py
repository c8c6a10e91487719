"""Mip-mapped (trilinear) texture filtering, differentiable in the texture, the UVs and the level of detail.

Three pieces, all compositions of checked primitives and torch ops (torch only):

* :func:`mipmaps`: the pyramid ``[tex, tex/2, ..., 1x1]`` by 2x2 box averaging (an odd size keeps its
  last row / column averaged with what exists: level ``k + 1`` has ``ceil(H_k / 2)`` rows). Linear
  in the texture, so its gradient is the transposed averaging.
* :func:`sample_trilinear`: ``sum_k hat(lod - k) bilinear(level_k, uv)`` with ``hat(t) = max(0, 1 - |t|)``
  and ``lod`` clamped to ``[0, K - 1]``: the OpenGL ``LINEAR_MIPMAP_LINEAR`` filter. Each level is
  sampled only at the pixels whose LOD reaches it (at most two per pixel). Gradients: to every
  level (hence the texture) and to ``uv`` through the bilinear primitive
  (:func:`taichirast.texture`), and to ``lod`` through the hat weights (piecewise constant slope,
  exact away from integer LODs and the clamp).
* :func:`pixel_uv_jacobian` / :func:`lod_from_jacobian`: the level of detail per pixel from the
  screen-space UV derivatives, computed analytically from the fragments (perspective-correct
  barycentrics), so the LOD is a differentiable function of the vertices and UVs:
  ``lod = log2(rho)``, ``rho = max(|d(u Wt, v Ht)/dx|, |d(u Wt, v Ht)/dy|)`` (the OpenGL spec's
  scale factor, in texels per pixel).
"""
from __future__ import annotations

import torch

from . import _validate as V
from . import ops


def mipmaps(tex, max_levels=None):
    """Mip pyramid of ``tex`` ``(Ht, Wt, C)`` or ``(B, Ht, Wt, C)`` -> list of ``(B, Hk, Wk, C)``.

    Level 0 is the texture; each next level halves both sizes (rounding up) by averaging 2x2
    blocks (1x2 / 2x1 / 1x1 at an odd edge), down to 1x1 or ``max_levels`` levels.
    """
    if not torch.is_tensor(tex) or not tex.is_floating_point():
        raise TypeError(f"mipmaps: tex must be a float tensor, got {type(tex).__name__}")
    if tex.dim() not in (3, 4) or tex.shape[-2] == 0 or tex.shape[-3] == 0:
        raise ValueError(f"mipmaps: tex must have shape (Ht, Wt, C) or (B, Ht, Wt, C) with Ht, Wt >= 1, "
                         f"got {tuple(tex.shape)}")
    t = tex if tex.dim() == 4 else tex[None]
    levels = [t]
    while max(levels[-1].shape[1:3]) > 1 and (max_levels is None or len(levels) < max_levels):
        x = levels[-1].permute(0, 3, 1, 2)
        x = torch.nn.functional.avg_pool2d(x, 2, stride=2, ceil_mode=True, count_include_pad=False)
        levels.append(x.permute(0, 2, 3, 1).contiguous())
    return levels


def sample_trilinear(levels, uv, lod, wrap="repeat", face_id=None):
    """Trilinear (mip-mapped) lookup.

    Args:
        levels: a pyramid from :func:`mipmaps` (each ``(Bt, Hk, Wk, C)``, Bt 1 or B).
        uv: ``(B, H, W, 2)`` UVs (OpenGL convention, as :func:`taichirast.texture`).
        lod: ``(B, H, W)`` level of detail (0 = full resolution; clamped to ``[0, K - 1]``).
        wrap: ``"repeat"`` or ``"clamp"``.
        face_id: optional ``(B, H, W)``: pixels with ``face_id < 0`` get 0 and no gradient.

    Returns:
        ``(B, H, W, C)``, differentiable w.r.t. the levels, ``uv`` and ``lod``.
    """
    if uv.dim() != 4 or uv.shape[-1] != 2:
        raise ValueError(f"sample_trilinear: uv must have shape (B, H, W, 2), got {tuple(uv.shape)}")
    B, H, W, _ = uv.shape
    if tuple(lod.shape) != (B, H, W):
        raise ValueError(f"sample_trilinear: lod must have shape {(B, H, W)}, got {tuple(lod.shape)}")
    if not bool(torch.isfinite(lod.detach()).all()):
        raise ValueError("sample_trilinear: lod contains NaN or infinite values")
    K = len(levels)
    C = levels[0].shape[-1]
    lod = lod.to(uv.dtype).clamp(0.0, K - 1)
    valid = torch.ones(B, H, W, dtype=torch.bool, device=uv.device) if face_id is None else face_id >= 0
    out = torch.zeros(B * H * W, C, dtype=uv.dtype, device=uv.device)
    uv_f, lod_f, valid_f = uv.reshape(-1, 2), lod.reshape(-1), valid.reshape(-1)
    batch_of = torch.arange(B, device=uv.device).repeat_interleave(H * W)
    for k, lev in enumerate(levels):
        w = (1.0 - (lod_f - k).abs()).clamp(min=0.0)
        m = (w > 0) & valid_f
        groups = [(0, m)] if lev.shape[0] == 1 else [(b, m & (batch_of == b)) for b in range(B)]
        for b, mb in groups:
            sel = mb.nonzero().reshape(-1)
            if sel.numel() == 0:
                continue
            smp = ops.texture(lev[b], uv_f[sel][None, None], wrap=wrap)[0, 0]
            out = out.index_add(0, sel, w[sel, None] * smp)
    return out.reshape(B, H, W, C)


def _face_screen(screen_verts, faces, face_id):
    """Per covered pixel: the face's screen corners ``(N, 3, 2)`` and depths ``(N, 3)``; N = covered pixels."""
    B, H, W = face_id.shape
    fid = face_id.reshape(B, -1)
    out_xy, out_w, pix = [], [], []
    sv = screen_verts if screen_verts.shape[0] == B else screen_verts.expand(B, *screen_verts.shape[1:])
    for b in range(B):
        p = (fid[b] >= 0).nonzero().reshape(-1)
        corners = sv[b][faces[fid[b, p]].long()]  # (n, 3, 3)
        out_xy.append(corners[..., :2])
        out_w.append(corners[..., 2])
        pix.append(p + b * H * W)
    return torch.cat(out_xy), torch.cat(out_w), torch.cat(pix)


def pixel_uv_jacobian(screen_verts, faces, uvs, uv_faces, fragments, perspective=True):
    """Screen-space derivatives of the interpolated UVs, per pixel: ``(B, H, W, 2, 2)`` with
    ``J[..., i, j] = d uv_i / d p_j`` (p = pixel x, y), 0 on background pixels.

    With screen-linear barycentrics ``l`` (``d l / d p`` constant per face, from the screen corners)
    and perspective-correct ones ``b_i = (l_i / w_i) / sum_j (l_j / w_j)`` (``w`` = depth),
    ``d b_i / d p = (g_i / w_i - b_i sum_j g_j / w_j) * sum_j b_j w_j`` where ``g = d l / d p``.
    Differentiable w.r.t. ``screen_verts`` and ``uvs`` (and the barycentrics).
    """
    V.uvs("pixel_uv_jacobian", "uvs", uvs)
    face_id, bary = fragments.face_id, fragments.bary
    B, H, W = face_id.shape
    xy, wdepth, pix = _face_screen(screen_verts, faces, face_id)
    b = bary.reshape(-1, 3)[pix]
    if not perspective:
        wdepth = torch.ones_like(wdepth)
    e1, e2 = xy[:, 1] - xy[:, 0], xy[:, 2] - xy[:, 0]
    det = e1[:, 0] * e2[:, 1] - e2[:, 0] * e1[:, 1]
    tiny = torch.finfo(det.dtype).tiny ** 0.5
    det = torch.where(det.abs() < tiny, torch.full_like(det, tiny), det)
    g1 = torch.stack([e2[:, 1], -e2[:, 0]], -1) / det[:, None]   # d l1 / d p
    g2 = torch.stack([-e1[:, 1], e1[:, 0]], -1) / det[:, None]   # d l2 / d p
    g = torch.stack([-(g1 + g2), g1, g2], 1)                     # (N, 3, 2)
    gw = g / wdepth[..., None]
    inv_d = (b * wdepth).sum(-1)                                 # 1 / sum_j l_j / w_j
    db = (gw - b[..., None] * gw.sum(1, keepdim=True)) * inv_d[:, None, None]   # (N, 3, 2)
    fid = face_id.reshape(-1)[pix]
    uv_c = uvs[uv_faces[fid].long()]                             # (N, 3, 2)
    J = torch.einsum("nki,nkj->nij", uv_c, db)
    out = torch.zeros(B * H * W, 2, 2, dtype=J.dtype, device=J.device)
    return out.index_put((pix,), J).reshape(B, H, W, 2, 2)


def lod_from_jacobian(J, tex_size, bias=0.0):
    """``(B, H, W)`` level of detail ``log2(rho) + bias`` for a texture of ``tex_size = (Ht, Wt)``:
    ``rho = max(|(Wt du/dx, Ht dv/dx)|, |(Wt du/dy, Ht dv/dy)|)`` (texels per pixel), floored at
    ``2^-20`` (magnification: level 0) and capped where it overflows (the coarsest level)."""
    Ht, Wt = tex_size
    scale = torch.tensor([Wt, Ht], dtype=J.dtype, device=J.device)
    Jt = J * scale[:, None]
    rx = (Jt[..., 0] ** 2).sum(-1)
    ry = (Jt[..., 1] ** 2).sum(-1)
    # an overflowing footprint (inf) means the coarsest level, as a finite LOD past the last one
    rho2 = torch.maximum(rx, ry).clamp(min=2.0 ** -40, max=torch.finfo(J.dtype).max)
    return 0.5 * torch.log2(rho2) + bias


def face_lod(screen_verts, faces, uvs, uv_faces, tex_size, bias=0.0):
    """Isotropic level of detail per face ``(B, F)``: ``0.5 log2(texel area / pixel area)`` of the
    triangle (for soft mode, which samples textures at face corners rather than per pixel)."""
    V.uvs("face_lod", "uvs", uvs)
    Ht, Wt = tex_size
    sv = screen_verts[..., :2]
    p = sv[:, faces.long()]                                      # (B, F, 3, 2)
    a_px = 0.5 * ((p[:, :, 1] - p[:, :, 0])[..., 0] * (p[:, :, 2] - p[:, :, 0])[..., 1]
                  - (p[:, :, 2] - p[:, :, 0])[..., 0] * (p[:, :, 1] - p[:, :, 0])[..., 1]).abs()
    t = uvs[uv_faces.long()] * torch.tensor([Wt, Ht], dtype=uvs.dtype, device=uvs.device)
    a_tx = 0.5 * ((t[:, 1] - t[:, 0])[:, 0] * (t[:, 2] - t[:, 0])[:, 1]
                  - (t[:, 2] - t[:, 0])[:, 0] * (t[:, 1] - t[:, 0])[:, 1]).abs()
    return 0.5 * torch.log2(a_tx.clamp(min=2.0 ** -40) / a_px.clamp(min=2.0 ** -40)) + bias


__all__ = ["mipmaps", "sample_trilinear", "pixel_uv_jacobian", "lod_from_jacobian", "face_lod"]
