"""Geometry: mesh utilities and losses (torch, batch-first, differentiable).

This package starts with what mesh fitting needs (edges, Laplacian smoothing, edge length,
silhouette IoU); rotations, camera models and more losses join it in the geometry issue.
"""
from .losses import edge_length_loss, laplacian_smoothing, mesh_edges, silhouette_iou  # noqa: F401
