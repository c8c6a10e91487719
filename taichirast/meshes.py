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


def _ring_quads(r0, r1, n):
    """Two triangles per quad between index rings ``r0`` and ``r1`` (each ``(n,)``, wrapping)."""
    j = np.arange(n)
    a, b = r0[j], r0[(j + 1) % n]
    c, d = r1[(j + 1) % n], r1[j]
    return np.concatenate([np.stack([a, d, c], 1), np.stack([a, c, b], 1)], axis=0)


def _fan(center, ring, n, up: bool):
    """Triangle fan from ``center`` to the wrapping index ``ring``; ``up`` picks the winding for a
    fan whose outward side faces +z (rings are counter-clockwise seen from +z)."""
    j = np.arange(n)
    c = np.full(n, center)
    a, b = ring[j], ring[(j + 1) % n]
    return np.stack([c, a, b], 1) if up else np.stack([c, b, a], 1)


def uv_sphere(n_lat: int = 16, n_lon: int = 32, radius: float = 1.0):
    """Latitude/longitude sphere around the z axis, one vertex per pole (closed, manifold).

    ``n_lat >= 2`` latitude bands and ``n_lon >= 3`` longitude segments:
    ``V = (n_lat - 1) * n_lon + 2``, ``F = 2 * (n_lat - 1) * n_lon``.
    """
    n_lat, n_lon = int(n_lat), int(n_lon)
    if n_lat < 2:
        raise ValueError(f"uv_sphere: n_lat must be >= 2, got {n_lat}")
    if n_lon < 3:
        raise ValueError(f"uv_sphere: n_lon must be >= 3, got {n_lon}")
    theta = np.pi * np.arange(1, n_lat) / n_lat
    phi = 2.0 * np.pi * np.arange(n_lon) / n_lon
    t, p = np.meshgrid(theta, phi, indexing="ij")
    ring = np.stack([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)], -1).reshape(-1, 3)
    v = np.concatenate([[[0.0, 0.0, 1.0]], ring, [[0.0, 0.0, -1.0]]], axis=0) * radius
    north, south = 0, v.shape[0] - 1
    rings = [1 + i * n_lon + np.arange(n_lon) for i in range(n_lat - 1)]
    f = [_fan(north, rings[0], n_lon, up=True)]
    f += [_ring_quads(rings[i], rings[i + 1], n_lon) for i in range(n_lat - 2)]
    f.append(_fan(south, rings[-1], n_lon, up=False))
    return _out(v, np.concatenate(f, axis=0))


def cylinder(n: int = 32, height: float = 2.0, radius: float = 1.0, capped: bool = True):
    """Cylinder along z from ``-height/2`` to ``height/2`` with an ``n``-gon cross-section.

    ``capped=True`` (default) closes both ends with triangle fans around a centre vertex:
    closed manifold, ``V = 2n + 2``, ``F = 4n``. ``capped=False`` is an open tube (``V = 2n``,
    ``F = 2n``; not closed).
    """
    n = int(n)
    if n < 3:
        raise ValueError(f"cylinder: n must be >= 3, got {n}")
    phi = 2.0 * np.pi * np.arange(n) / n
    circle = np.stack([radius * np.cos(phi), radius * np.sin(phi)], 1)
    h = height / 2.0
    v = [np.concatenate([circle, np.full((n, 1), h)], 1), np.concatenate([circle, np.full((n, 1), -h)], 1)]
    top, bot = np.arange(n), n + np.arange(n)
    f = [_ring_quads(top, bot, n)]
    if capped:
        v.append([[0.0, 0.0, h], [0.0, 0.0, -h]])
        f += [_fan(2 * n, top, n, up=True), _fan(2 * n + 1, bot, n, up=False)]
    return _out(np.concatenate(v, axis=0), np.concatenate(f, axis=0))


def cone(n: int = 32, height: float = 2.0, radius: float = 1.0):
    """Closed cone along z: base ``n``-gon at ``z = -height/2``, apex at ``z = height/2``.

    ``V = n + 2``, ``F = 2n`` (side fan to the apex, base fan around a centre vertex).
    """
    n = int(n)
    if n < 3:
        raise ValueError(f"cone: n must be >= 3, got {n}")
    phi = 2.0 * np.pi * np.arange(n) / n
    h = height / 2.0
    base = np.stack([radius * np.cos(phi), radius * np.sin(phi), np.full(n, -h)], 1)
    v = np.concatenate([base, [[0.0, 0.0, h], [0.0, 0.0, -h]]], axis=0)
    ring = np.arange(n)
    f = np.concatenate([_fan(n, ring, n, up=True), _fan(n + 1, ring, n, up=False)], axis=0)
    return _out(v, f)


def torus(R: float = 1.0, r: float = 0.25, n_major: int = 32, n_minor: int = 16):
    """Torus around the z axis: tube radius ``r`` at distance ``R`` (``R > r > 0``) from the axis.

    ``V = n_major * n_minor``, ``F = 2 * n_major * n_minor``; closed manifold of genus 1.
    """
    n_major, n_minor = int(n_major), int(n_minor)
    if n_major < 3 or n_minor < 3:
        raise ValueError(f"torus: n_major and n_minor must be >= 3, got {n_major}, {n_minor}")
    if not (R > r > 0):
        raise ValueError(f"torus: need R > r > 0, got R={R}, r={r}")
    u = 2.0 * np.pi * np.arange(n_major) / n_major
    w = 2.0 * np.pi * np.arange(n_minor) / n_minor
    uu, ww = np.meshgrid(u, w, indexing="ij")
    rho = R + r * np.cos(ww)
    v = np.stack([rho * np.cos(uu), rho * np.sin(uu), r * np.sin(ww)], -1).reshape(-1, 3)
    i, j = np.meshgrid(np.arange(n_major), np.arange(n_minor), indexing="ij")
    a = i * n_minor + j
    b = ((i + 1) % n_major) * n_minor + j
    c = ((i + 1) % n_major) * n_minor + (j + 1) % n_minor
    d = i * n_minor + (j + 1) % n_minor
    a, b, c, d = a.ravel(), b.ravel(), c.ravel(), d.ravel()
    f = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)], axis=0)
    return _out(v, f)
