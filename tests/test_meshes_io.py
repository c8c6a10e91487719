"""Procedural meshes (closed, outward, counts) and mesh/image files."""
import os

import numpy as np
import pytest

from taichirast import io as trio
from taichirast import meshes

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "meshes")


def _signed_volume(v, f):
    a, b, c = v[f[:, 0]].astype(np.float64), v[f[:, 1]].astype(np.float64), v[f[:, 2]].astype(np.float64)
    return np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0


def _is_closed_manifold(f):
    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    # every directed edge appears once and its reverse appears once
    fwd = {tuple(x) for x in e}
    return len(fwd) == len(e) and all((b, a) in fwd for a, b in fwd)


@pytest.mark.parametrize("level", [0, 1, 3])
def test_icosphere(level):
    v, f = meshes.icosphere(level, radius=2.0)
    assert v.dtype == np.float32 and f.dtype == np.int32
    assert f.shape == (20 * 4**level, 3) and v.shape == (10 * 4**level + 2, 3)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 2.0, rtol=1e-6)
    assert _is_closed_manifold(f)
    assert _signed_volume(v, f) > 0  # outward (counter-clockwise from outside)
    # volume converges to the sphere's
    if level == 3:
        assert _signed_volume(v, f) == pytest.approx(4 / 3 * np.pi * 8, rel=0.02)


def test_cube_and_plane():
    v, f = meshes.cube(2.0)
    assert _is_closed_manifold(f)
    assert _signed_volume(v, f) == pytest.approx(8.0)
    v, f = meshes.plane(2.0, segments=3)
    assert f.shape == (18, 3) and v.shape == (16, 3)
    n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    assert (n[:, 2] > 0).all() and np.abs(n[:, :2]).max() == 0
    with pytest.raises(ValueError, match="segments"):
        meshes.plane(segments=0)
    with pytest.raises(ValueError, match="level"):
        meshes.icosphere(9)


@pytest.mark.parametrize("ext", [".obj", ".ply", ".stl", ".glb"])
def test_load_mesh_roundtrip(tmp_path, ext):
    import trimesh

    v, f = meshes.icosphere(1)
    path = tmp_path / f"sphere{ext}"
    trimesh.Trimesh(v, f, process=False).export(path)
    v2, f2 = trio.load_mesh(path)
    assert v2.dtype == np.float32 and f2.dtype == np.int32
    assert f2.shape == f.shape
    # same surface: same set of triangles as coordinates (STL stores unindexed triangles)
    tri = np.sort(np.round(v[f], 5).reshape(len(f), -1), axis=0)
    tri2 = np.sort(np.round(v2[f2], 5).reshape(len(f2), -1), axis=0)
    np.testing.assert_allclose(tri, tri2, atol=1e-4)


def test_load_mesh_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.obj"):
        trio.load_mesh(tmp_path / "nope.obj")
    bad = tmp_path / "bad.xyz"
    bad.write_text("1 2 3\n")
    with pytest.raises(ValueError, match="bad.xyz"):
        trio.load_mesh(bad)
    empty = tmp_path / "empty.obj"
    empty.write_text("# nothing\nv 0 0 0\n")
    with pytest.raises(ValueError, match="empty.obj"):
        trio.load_mesh(empty)
    garbage = tmp_path / "garbage.ply"
    garbage.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 99999\nproperty float x\nend_header\n\x00")
    with pytest.raises(ValueError, match="garbage.ply"):
        trio.load_mesh(garbage)


@pytest.mark.skipif(not os.path.exists(os.path.join(SHARED, "bunny.obj")), reason="shared meshes absent")
def test_load_bunny():
    v, f = trio.load_mesh(os.path.join(SHARED, "bunny.obj"))
    assert f.shape[0] == 69630 and f.max() < v.shape[0]
    n = trio.normalize_mesh(v)
    assert np.linalg.norm(n - (n.min(0) + n.max(0)) / 2, axis=1).max() == pytest.approx(1.0, rel=1e-5)


def test_save_image_and_gif(tmp_path):
    import imageio.v2 as imageio

    img = np.zeros((6, 5, 3))
    img[1, 2] = [1.0, 0.5, 2.0]
    p = trio.save_image(tmp_path / "a" / "x.png", img)
    back = imageio.imread(p)
    assert back.shape == (6, 5, 3) and tuple(back[1, 2]) == (255, 128, 255)
    g = trio.save_gif(tmp_path / "y.gif", [img, img * 0.5])
    assert len(imageio.mimread(g)) == 2
    with pytest.raises(ValueError, match="no frames"):
        trio.save_gif(tmp_path / "z.gif", [])
