"""Geometry: mesh utilities and losses (torch, batch-first, differentiable).

Every public function takes torch tensors (differentiable) or NumPy arrays (NumPy out).
Mesh utilities (normals, areas, adjacency, sampling, subdivision, cotangent Laplacian, ``Mesh``)
live in :mod:`.mesh`; regularisers and silhouette metrics in :mod:`.losses`.
"""
from .losses import edge_length_loss, laplacian_smoothing, mesh_edges, silhouette_iou  # noqa: F401
from .mesh import (  # noqa: F401
    Mesh, cotangent_laplacian, cotangent_laplacian_loss, edges, face_adjacency, face_areas, face_normals,
    normal_consistency, normalize_verts, sample_points, subdivide_loop, subdivide_midpoint, vertex_adjacency,
    vertex_normals, vertex_to_faces,
)
