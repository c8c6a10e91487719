"""load_textured_mesh: OBJ positions + separate UV topology + MTL map_Kd texture."""
import os

import numpy as np
import pytest

from taichirast import io as trio

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "meshes")
SPOT = os.path.join(SHARED, "spot", "spot_triangulated.obj")
needs_spot = pytest.mark.skipif(not os.path.isfile(SPOT), reason="shared Spot mesh not available")


@pytest.fixture(scope="module")
def spot():
    return trio.load_textured_mesh(SPOT)


@needs_spot
def test_spot_loads(spot):
    m = spot
    assert isinstance(m, trio.TexturedMesh)
    assert m.verts.dtype == np.float32 and m.faces.dtype == np.int32
    assert m.uvs.dtype == np.float32 and m.uv_faces.dtype == np.int32
    assert m.faces.shape == (5856, 3) and m.uv_faces.shape == (5856, 3)
    # counts exactly as the file's v / vt lines
    with open(SPOT) as fh:
        lines = fh.read().splitlines()
    assert m.verts.shape == (sum(ln.startswith("v ") for ln in lines), 3) == (2930, 3)
    assert m.uvs.shape == (sum(ln.startswith("vt ") for ln in lines), 2) == (3225, 2)
    assert m.faces.min() >= 0 and m.faces.max() < len(m.verts)
    assert m.uv_faces.min() >= 0 and m.uv_faces.max() < len(m.uvs)
    # UVs in the unit square; the file stores 4 of 3225 a hair outside (|excess| < 0.06), kept as stored
    assert m.uvs.min() >= -0.06 and m.uvs.max() <= 1.01
    assert np.mean((m.uvs >= 0) & (m.uvs <= 1)) > 0.999
    # first face line "f 739/1 735/2 736/3": 1-based -> 0-based, verbatim
    np.testing.assert_array_equal(m.faces[0], [738, 734, 735])
    np.testing.assert_array_equal(m.uv_faces[0], [0, 1, 2])
    t = m.texture
    assert t is not None and t.ndim == 3 and t.shape[2] == 3 and t.shape[:2] == (1024, 1024)
    assert t.dtype == np.float32 and t.min() >= 0.0 and t.max() <= 1.0 and t.max() > 0.5


@needs_spot
def test_spot_same_surface_as_load_mesh(spot):
    v, f = trio.load_mesh(SPOT)
    assert f.shape == spot.faces.shape
    np.testing.assert_array_equal(spot.verts[spot.faces], v[f])
    # the UV topology really has seams (more UV corners than positions)
    assert len(spot.uvs) > len(spot.verts)


@needs_spot
def test_spot_texture_matches_file(spot):
    import imageio.v2 as imageio

    raw = np.asarray(imageio.imread(os.path.join(SHARED, "spot", "spot_texture.png")))[..., :3]
    np.testing.assert_allclose(spot.texture, raw.astype(np.float32) / 255.0, atol=1e-7)


def _write_seam_obj(d, with_mtl=True, texture_name="tex.png", write_png=True):
    import imageio.v2 as imageio

    tex = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255]],
                    [[10, 20, 30], [128, 64, 32], [255, 255, 255]]], dtype=np.uint8)  # 2 x 3 RGB
    if write_png:
        imageio.imwrite(os.path.join(d, "tex.png"), tex)
    if with_mtl:
        with open(os.path.join(d, "m.mtl"), "w") as fh:
            fh.write(f"newmtl mat0\nKd 1 1 1\nmap_Kd {texture_name}\n")
    # two triangles sharing the edge (v2, v3); the shared corners use different vt on each side (a seam)
    obj = (("mtllib m.mtl\n" if with_mtl else "")
           + "v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\n"
           + "vt 0.0 0.0\nvt 0.5 0.0\nvt 0.5 1.0\nvt 0.0 1.0\nvt 0.6 1.0\nvt 0.6 0.0\nvt 1.0 1.0\n"
           + ("usemtl mat0\n" if with_mtl else "")
           + "f 1/1 2/2 3/3\nf 1/6 3/7 4/5\n")
    p = os.path.join(d, "seam.obj")
    with open(p, "w") as fh:
        fh.write(obj)
    return p, tex


def test_small_obj_roundtrip(tmp_path):
    p, tex = _write_seam_obj(str(tmp_path))
    m = trio.load_textured_mesh(p)
    np.testing.assert_array_equal(m.verts, [[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]])
    np.testing.assert_array_equal(m.faces, [[0, 1, 2], [0, 2, 3]])
    np.testing.assert_array_equal(m.uv_faces, [[0, 1, 2], [5, 6, 4]])
    np.testing.assert_array_equal(m.uvs, np.array([[0, 0], [.5, 0], [.5, 1], [0, 1], [.6, 1], [.6, 0], [1, 1]],
                                                  dtype=np.float32))
    # vertex 0 and 2 have different UVs in the two faces: the seam is kept
    assert not np.array_equal(m.uvs[m.uv_faces[0, 0]], m.uvs[m.uv_faces[1, 0]])
    assert m.texture.shape == (2, 3, 3) and m.texture.dtype == np.float32
    np.testing.assert_array_equal(m.texture, tex.astype(np.float32) / 255.0)  # row 0 = top row of the file
    v, f = trio.load_mesh(p)
    np.testing.assert_array_equal(m.verts[m.faces], v[f])


def test_quads_triangulated_consistently(tmp_path):
    p = str(tmp_path / "quad.obj")
    with open(p, "w") as fh:
        fh.write("v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nvt 0 0\nvt 1 0\nvt 1 1\nvt 0 1\nf 1/4 2/3 3/2 4/1\n")
    m = trio.load_textured_mesh(p)
    assert m.faces.shape == (2, 3) and m.texture is None
    np.testing.assert_array_equal(3 - m.uv_faces, m.faces)  # vt index = 3 - v index at every corner
    v, f = trio.load_mesh(p)
    np.testing.assert_array_equal(m.verts[m.faces], v[f])


def test_no_uvs_gives_none(tmp_path):
    p = str(tmp_path / "plain.obj")
    with open(p, "w") as fh:
        fh.write("v 0 0 0\nv 1 0 0\nv 0 1 0\nv 5 5 5\nf 1 2 3\n")
    m = trio.load_textured_mesh(p)
    assert m.uvs is None and m.uv_faces is None and m.texture is None
    assert m.verts.shape == (4, 3)  # unreferenced vertex kept: count/order as in the file
    np.testing.assert_array_equal(m.faces, [[0, 1, 2]])
    with pytest.raises(ValueError, match="plain.obj"):
        trio.load_textured_mesh(p, require_uvs=True)


def test_bad_paths_name_the_file(tmp_path):
    missing = str(tmp_path / "nope.obj")
    with pytest.raises(FileNotFoundError, match="nope.obj"):
        trio.load_textured_mesh(missing)
    # MTL points at a texture that does not exist
    d1 = tmp_path / "a"
    d1.mkdir()
    p, _ = _write_seam_obj(str(d1), texture_name="missing_tex.png")
    with pytest.raises(FileNotFoundError, match="missing_tex.png"):
        trio.load_textured_mesh(p)
    # mtllib file missing
    d2 = tmp_path / "b"
    d2.mkdir()
    p, _ = _write_seam_obj(str(d2))
    os.remove(os.path.join(str(d2), "m.mtl"))
    with pytest.raises(FileNotFoundError, match="m.mtl"):
        trio.load_textured_mesh(p)
    # wrong format
    stl = tmp_path / "x.stl"
    stl.write_text("solid x\nendsolid x\n")
    with pytest.raises(ValueError, match="x.stl"):
        trio.load_textured_mesh(str(stl))
    # face index out of range
    bad = tmp_path / "bad.obj"
    bad.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nf 1/1 2/1 9/1\n")
    with pytest.raises(ValueError, match="bad.obj"):
        trio.load_textured_mesh(str(bad))


_FAST_V = "v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nvt 0 0\nvt 1 0\nvt 1 1\nvt 0 1\nvn 0 0 1\n"
_FAST_CASES = {  # OBJ text -> whether the NumPy fast path takes it (else the general path does)
    "tri": (_FAST_V + "f 1 2 3\nf 1 3 4\n", True),
    "tri v/vt": (_FAST_V + "f 1/1 2/2 3/3\nf 1/1 3/3 4/4\n", True),
    "tri v/vt/vn": (_FAST_V + "f 1/1/1 2/2/1 3/3/1\nf 1/1/1 3/3/1 4/4/1\n", True),
    "tri v//vn": (_FAST_V + "f 1//1 2//1 3//1\nf 1//1 3//1 4//1\n", True),
    "quad v/vt": (_FAST_V + "f 1/4 2/3 3/2 4/1\n", True),
    "materials, groups, comments": ("# c\nmtllib m.mtl\no x\n" + _FAST_V + "\nusemtl A\nf 1/1 2/2 3/3\n"
                                    "usemtl B\ng y\ns 1\nf 1/1 3/3 4/4\n", True),
    "negative indices": (_FAST_V + "f -1 -2 -3\n", False),
    "triangle and quad": (_FAST_V + "f 1 2 3\nf 1 2 3 4\n", False),
    "pentagon": (_FAST_V + "v 2 2 0\nf 1 2 3 4 5\n", False),
    "vertex colours": ("v 0 0 0 1 0 0\nv 1 0 0 1 0 0\nv 1 1 0 1 0 0\nf 1 2 3\n", False),
    "comment after data": (_FAST_V + "f 1 2 3 # tri\n", False),
    "indented": (_FAST_V + "  f 1 2 3\n", False),
    "line continuation": (_FAST_V + "f 1 2 \\\n 3\n", False),
}


@pytest.mark.parametrize("name", list(_FAST_CASES))
def test_fast_obj_path_equals_general_path(name):
    """The NumPy OBJ reader gives exactly what the trimesh-based general path gives, or declines."""
    text, fast = _FAST_CASES[name]
    got = trio._obj_parse_fast(text)
    assert (got is not None) == fast
    if got is None:
        return
    want = trio._obj_parse("x.obj", text)
    for a, b in zip(got[:4], want[:4]):
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_array_equal(a, np.asarray(b)[:, :a.shape[1]])
    assert list(got[4]) == list(want[4])


@pytest.mark.parametrize("line, words", [("f 0 1 2", ["line 5", "0 is not valid"]),
                                         ("f 1 2 9", ["line 5", "out of range"])])
def test_fast_obj_path_leaves_errors_to_the_line_checks(tmp_path, line, words):
    p = tmp_path / "bad.obj"
    p.write_text("v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\n" + line + "\n")
    with pytest.raises(trio.MeshLoadError) as e:
        trio.load_textured_mesh(p)
    for w in words:
        assert w in str(e.value)


@pytest.mark.parametrize("name", ["bunny.obj", "armadillo.obj", os.path.join("spot", "spot_triangulated.obj")])
def test_fast_obj_path_on_shared_meshes(name):
    path = os.path.join(SHARED, name)
    if not os.path.isfile(path):
        pytest.skip("shared meshes not available")
    text = open(path).read()
    got, want = trio._obj_parse_fast(text), trio._obj_parse(path, text)
    assert got is not None
    for a, b in zip(got[:4], want[:4]):
        np.testing.assert_array_equal(a, None if b is None else np.asarray(b)[:, :a.shape[1]])
    assert list(got[4]) == list(want[4])
