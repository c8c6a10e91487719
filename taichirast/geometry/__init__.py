"""Geometry: mesh utilities and losses (torch, batch-first, differentiable).

Rotations and rigid transforms (axis-angle, quaternions (w, x, y, z), 12 Euler orders intrinsic
and extrinsic, 6D, 2D, dual quaternions, slerp, random rotations) live in :mod:`.transforms`;
slerp, B-splines, trilinear and weighted interpolation in :mod:`.interpolation`.
Camera models (pinhole with skew, orthographic, rays, fov/focal, quadratic and Brown-Conrady
distortion, OpenCV <-> OpenGL / PyTorch3D conventions) live in :mod:`.camera_models`; the camera
classes of :mod:`taichirast.camera` build on them.
Deformation energies (as-conformal-as-possible, as-rigid-as-possible, an ARAP solver) live in
:mod:`.deformation`.
Every public function takes torch tensors (differentiable) or NumPy arrays (NumPy out).
Mesh utilities (normals, areas, adjacency, sampling, subdivision, cotangent Laplacian, ``Mesh``)
live in :mod:`.mesh`; regularisers and silhouette metrics in :mod:`.losses`; point-cloud and point-to-mesh distances
(chamfer on a Taichi nearest-neighbour kernel with a hand-written backward) in :mod:`.distances`.
Real spherical harmonics of any band, Lambertian SH irradiance and SH projection live in
:mod:`.spherical_harmonics`.
"""
from .camera_models import *  # noqa: F401,F403
from .interpolation import *  # noqa: F401,F403
from .transforms import *  # noqa: F401,F403
from .deformation import acap_energy, arap_energy, arap_solve, arap_weights  # noqa: F401
from .distances import chamfer_distance, fscore, hausdorff_distance, knn1, point_to_mesh_distance  # noqa: F401
from .spherical_harmonics import (  # noqa: F401
    lambertian_sh_factors, sh_basis, sh_count, sh_index, sh_irradiance, sh_project,
)
from .losses import edge_length_loss, laplacian_smoothing, mesh_edges, silhouette_iou  # noqa: F401
from .mesh import (  # noqa: F401
    Mesh, cotangent_laplacian, cotangent_laplacian_loss, edges, face_adjacency, face_areas, face_normals,
    normal_consistency, normalize_verts, sample_points, subdivide_loop, subdivide_midpoint, vertex_adjacency,
    vertex_normals, vertex_to_faces,
)
