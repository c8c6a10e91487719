"""Mesh regularisers and silhouette metrics (torch)."""
from __future__ import annotations

import torch


def mesh_edges(faces):
    """Unique undirected edges of a triangle mesh: ``faces (F, 3)`` -> ``(E, 2)`` int64, ``i < j``, sorted.

    Alias of :func:`taichirast.geometry.mesh.edges` (kept for its name).
    """
    from .mesh import edges

    return edges(torch.as_tensor(faces))


def _check_verts(fn, verts):
    if not torch.is_tensor(verts) or not verts.is_floating_point() or verts.dim() not in (2, 3) or verts.shape[-1] != 3:
        raise ValueError(f"{fn}: verts must be a float tensor of shape (V, 3) or (B, V, 3), got "
                         f"{tuple(verts.shape) if torch.is_tensor(verts) else type(verts).__name__}")


def laplacian_smoothing(verts, faces):
    """Uniform Laplacian smoothing loss: mean over vertices of ``|v_i - mean_{j in N(i)} v_j|^2``.

    verts ``(V, 3)`` or ``(B, V, 3)``; faces ``(F, 3)``. Returns a scalar (mean over the batch).
    Isolated vertices contribute 0.
    """
    _check_verts("laplacian_smoothing", verts)
    v = verts if verts.dim() == 3 else verts[None]
    e = mesh_edges(faces).to(v.device)
    V = v.shape[1]
    if V == 0:
        return v.sum() * 0
    i = torch.cat([e[:, 0], e[:, 1]])
    j = torch.cat([e[:, 1], e[:, 0]])
    deg = torch.zeros(V, dtype=v.dtype, device=v.device).index_add_(0, i, torch.ones_like(i, dtype=v.dtype))
    nbr_sum = torch.zeros_like(v).index_add_(1, i, v[:, j])
    mean = nbr_sum / deg.clamp(min=1)[None, :, None]
    lap = torch.where(deg[None, :, None] > 0, v - mean, torch.zeros_like(v))
    return (lap**2).sum(-1).mean()


def edge_length_loss(verts, faces, target: float = 0.0):
    """Mean squared deviation of edge lengths from ``target`` (0 penalises long edges): scalar."""
    _check_verts("edge_length_loss", verts)
    v = verts if verts.dim() == 3 else verts[None]
    e = mesh_edges(faces).to(v.device)
    if e.shape[0] == 0:
        return v.sum() * 0
    d = (v[:, e[:, 0]] - v[:, e[:, 1]]).norm(dim=-1)
    return ((d - target) ** 2).mean()


def silhouette_iou(pred, target, threshold: float = 0.5):
    """Intersection over union of two silhouettes ``(..., H, W)`` thresholded at ``threshold``.

    Returns a float tensor of the leading shape (1 where both masks are empty). Not differentiable.
    """
    if pred.shape != target.shape:
        raise ValueError(f"silhouette_iou: shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    a = pred > threshold
    b = target > threshold
    inter = (a & b).flatten(-2).sum(-1).double()
    union = (a | b).flatten(-2).sum(-1).double()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))
