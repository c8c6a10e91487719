"""Mesh and image files. Meshes are parsed by ``trimesh`` (no hand-written parsers); nothing is
executed or unpickled. Errors name the file.
"""
from __future__ import annotations

import os

import numpy as np

MESH_EXTENSIONS = (".obj", ".ply", ".stl", ".glb", ".gltf", ".off")


class MeshLoadError(ValueError):
    """A mesh file exists but could not be read as a triangle mesh."""


def load_mesh(path, process: bool = False):
    """Load a triangle mesh: ``(verts (V, 3) float32, faces (F, 3) int32)`` NumPy arrays.

    Formats: OBJ, PLY, STL, GLB/glTF, OFF (via trimesh). Multi-part scenes (GLB, OBJ groups) are
    merged into one mesh in world coordinates; polygons are triangulated. ``process=False``
    keeps vertices exactly as stored (no merging), so indices match the file.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError (:class:`MeshLoadError`): unknown extension, unreadable / malformed file, or a
            file with no triangles; the message names the file.
    """
    import trimesh

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"load_mesh: no such file: {path}")
    ext = os.path.splitext(path)[1].lower()
    if ext not in MESH_EXTENSIONS:
        raise MeshLoadError(f"load_mesh: {path}: unsupported extension {ext!r} (supported: {', '.join(MESH_EXTENSIONS)})")
    try:
        loaded = trimesh.load(path, force="mesh", process=process, skip_materials=True)
    except Exception as e:  # trimesh raises many types for malformed files
        raise MeshLoadError(f"load_mesh: {path}: could not parse {ext[1:].upper()} file: {type(e).__name__}: {e}") from e
    if isinstance(loaded, list) or not hasattr(loaded, "faces"):
        raise MeshLoadError(f"load_mesh: {path}: no triangle mesh found (got {type(loaded).__name__})")
    verts = np.asarray(loaded.vertices, dtype=np.float64)
    faces = np.asarray(loaded.faces, dtype=np.int64)
    if faces.ndim != 2 or faces.shape[0] == 0 or faces.shape[1] != 3:
        raise MeshLoadError(f"load_mesh: {path}: the file contains no triangles")
    if not np.isfinite(verts).all():
        raise MeshLoadError(f"load_mesh: {path}: vertex coordinates contain NaN or infinity")
    if faces.min() < 0 or faces.max() >= verts.shape[0]:
        raise MeshLoadError(f"load_mesh: {path}: face indices out of range [0, {verts.shape[0]})")
    return np.ascontiguousarray(verts, dtype=np.float32), np.ascontiguousarray(faces, dtype=np.int32)


def normalize_mesh(verts, radius: float = 1.0):
    """Centre ``verts (V, 3)`` on its bounding-box centre and scale it into a sphere of ``radius`` (float32)."""
    v = np.asarray(verts, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != 3 or v.shape[0] == 0:
        raise ValueError(f"normalize_mesh: verts must have shape (V, 3) with V > 0, got {v.shape}")
    c = (v.min(0) + v.max(0)) / 2.0
    r = np.linalg.norm(v - c, axis=1).max()
    return ((v - c) * (radius / max(r, 1e-12))).astype(np.float32)


def to_uint8(image):
    """Float image in [0, 1] (NumPy or torch; ``(H, W)``, ``(H, W, C)``) -> uint8 NumPy array."""
    if hasattr(image, "detach"):
        image = image.detach().cpu().numpy()
    a = np.asarray(image, dtype=np.float64)
    a = np.nan_to_num(a, nan=0.0, posinf=1.0, neginf=0.0)
    return (np.clip(a, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def save_image(path, image):
    """Write a float image in [0, 1] (``(H, W)``, ``(H, W, 1|3|4)``; NumPy or torch) as PNG/JPG (imageio)."""
    import imageio.v2 as imageio

    a = to_uint8(image)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    d = os.path.dirname(os.fspath(path))
    if d:
        os.makedirs(d, exist_ok=True)
    imageio.imwrite(path, a)
    return path


def save_gif(path, frames, fps: int = 15):
    """Write float frames in [0, 1] (each ``(H, W[, C])``) as an animated GIF (imageio)."""
    import imageio.v2 as imageio

    frames = [to_uint8(f) for f in frames]
    if not frames:
        raise ValueError("save_gif: no frames")
    d = os.path.dirname(os.fspath(path))
    if d:
        os.makedirs(d, exist_ok=True)
    imageio.mimsave(path, frames, duration=1.0 / fps, loop=0)
    return path


SAVE_MESH_EXTENSIONS = (".obj", ".ply", ".stl", ".glb", ".off")


def save_mesh(path, verts, faces):
    """Write a triangle mesh ``verts (V, 3)``, ``faces (F, 3)`` (NumPy or torch) with trimesh.

    Formats by extension: OBJ, PLY, STL, GLB, OFF. Vertices are written as given (no merging or
    reordering; STL stores per-triangle corners, so it round-trips triangles, not indices).
    Parent folders are created. Returns ``path``.

    Raises:
        ValueError: bad ``verts``/``faces`` shapes, face indices out of range, non-finite
            vertices, an unsupported extension, or a failed write; the message names the file.
    """
    import trimesh

    path = os.fspath(path)
    to_np = lambda a: a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)  # noqa: E731
    v = to_np(verts).astype(np.float64)
    f = to_np(faces)
    ext = os.path.splitext(path)[1].lower()
    if ext not in SAVE_MESH_EXTENSIONS:
        raise ValueError(f"save_mesh: {path}: unsupported extension {ext!r} (supported: {', '.join(SAVE_MESH_EXTENSIONS)})")
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"save_mesh: {path}: verts must have shape (V, 3), got {v.shape}")
    if f.ndim != 2 or f.shape[1] != 3 or not np.issubdtype(f.dtype, np.integer):
        raise ValueError(f"save_mesh: {path}: faces must be an integer array of shape (F, 3), got {f.shape} {f.dtype}")
    if f.size and (f.min() < 0 or f.max() >= v.shape[0]):
        raise ValueError(f"save_mesh: {path}: face indices out of range [0, {v.shape[0]})")
    if not np.isfinite(v).all():
        raise ValueError(f"save_mesh: {path}: verts contain NaN or infinity")
    mesh = trimesh.Trimesh(vertices=v, faces=f.astype(np.int64), process=False)
    d = os.path.dirname(path)
    try:
        if d:
            os.makedirs(d, exist_ok=True)
        if ext == ".obj":  # no normals/uvs, so indices come back unchanged
            data = trimesh.exchange.obj.export_obj(mesh, include_normals=False, include_color=False,
                                                   include_texture=False)
            with open(path, "w") as fh:
                fh.write(data)
        else:
            mesh.export(path)
    except Exception as e:
        raise ValueError(f"save_mesh: {path}: could not write {ext[1:].upper()} file: {type(e).__name__}: {e}") from e
    return path
