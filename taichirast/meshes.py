"""Procedural meshes for demos and tests (no files needed).

Every function returns ``(verts, faces)`` as NumPy arrays: ``verts (V, 3) float32``,
``faces (F, 3) int32``, counter-clockwise seen from outside (outward normals by the right-hand
rule), watertight where the shape is closed. Use ``torch.from_numpy`` for the torch API.
"""
from __future__ import annotations

import numpy as np


def _out(v, f):
    return np.ascontiguousarray(v, dtype=np.float32), np.ascontiguousarray(f, dtype=np.int32)


def icosahedron(radius: float = 1.0):
    """Regular icosahedron inscribed in a sphere of ``radius``: 12 vertices, 20 faces."""
    p = (1.0 + 5.0**0.5) / 2.0
    v = np.array([[-1, p, 0], [1, p, 0], [-1, -p, 0], [1, -p, 0], [0, -1, p], [0, 1, p],
                  [0, -1, -p], [0, 1, -p], [p, 0, -1], [p, 0, 1], [-p, 0, -1], [-p, 0, 1]], np.float64)
    f = np.array([[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9], [5, 11, 4],
                  [11, 10, 2], [10, 7, 6], [7, 1, 8], [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8],
                  [3, 8, 9], [4, 9, 5], [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1]], np.int64)
    v = v / np.linalg.norm(v, axis=1, keepdims=True) * radius
    return _out(v, f)


def icosphere(level: int = 3, radius: float = 1.0):
    """Sphere by ``level`` midpoint subdivisions of an icosahedron, projected to the sphere.

    ``level`` 0..8; faces = 20 * 4**level (level 4: 5,120 faces, 2,562 vertices).
    """
    level = int(level)
    if not 0 <= level <= 8:
        raise ValueError(f"icosphere: level must be in [0, 8], got {level}")
    v, f = icosahedron(1.0)
    v = v.astype(np.float64)
    f = f.astype(np.int64)
    for _ in range(level):
        v, f = _subdivide_midpoint(v, f)
        v = v / np.linalg.norm(v, axis=1, keepdims=True)
    return _out(v * radius, f)


def _subdivide_midpoint(v, f):
    """Split each triangle into four at edge midpoints (shared midpoints deduplicated)."""
    edges = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]], axis=0)
    key = np.sort(edges, axis=1)
    uniq, inv = np.unique(key, axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    mid = (v[uniq[:, 0]] + v[uniq[:, 1]]) / 2.0
    nv = v.shape[0]
    F = f.shape[0]
    m01, m12, m20 = (inv[:F] + nv, inv[F:2 * F] + nv, inv[2 * F:] + nv)
    a, b, c = f[:, 0], f[:, 1], f[:, 2]
    nf = np.concatenate([np.stack([a, m01, m20], 1), np.stack([m01, b, m12], 1), np.stack([m20, m12, c], 1),
                         np.stack([m01, m12, m20], 1)], axis=0)
    return np.concatenate([v, mid], axis=0), nf


def cube(size: float = 2.0):
    """Axis-aligned cube centred at the origin with edge ``size``: 8 vertices, 12 faces."""
    h = size / 2.0
    v = np.array([[x, y, z] for x in (-h, h) for y in (-h, h) for z in (-h, h)], np.float64)
    # vertex index = 4 * (x > 0) + 2 * (y > 0) + (z > 0)
    f = np.array([[0, 1, 3], [0, 3, 2],  # -x
                  [4, 6, 7], [4, 7, 5],  # +x
                  [0, 4, 5], [0, 5, 1],  # -y
                  [2, 3, 7], [2, 7, 6],  # +y
                  [0, 2, 6], [0, 6, 4],  # -z
                  [1, 5, 7], [1, 7, 3]])  # +z
    return _out(v, f)


def plane(size: float = 2.0, segments: int = 1):
    """Square in the z = 0 plane, ``size`` wide, ``segments`` x ``segments`` quads, normal +z."""
    segments = int(segments)
    if segments < 1:
        raise ValueError(f"plane: segments must be >= 1, got {segments}")
    s = np.linspace(-size / 2.0, size / 2.0, segments + 1)
    xx, yy = np.meshgrid(s, s, indexing="xy")
    v = np.stack([xx.ravel(), yy.ravel(), np.zeros(xx.size)], axis=1)
    n = segments + 1
    i, j = np.meshgrid(np.arange(segments), np.arange(segments), indexing="xy")
    a = (j * n + i).ravel()
    b, c, d = a + 1, a + n + 1, a + n
    f = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)], axis=0)
    return _out(v, f)
