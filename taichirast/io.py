"""Mesh and image files. Meshes are parsed by ``trimesh`` (no hand-written parsers); nothing is
executed or unpickled. Errors name the file.
"""
from __future__ import annotations

import os
from typing import NamedTuple, Optional

import numpy as np

MESH_EXTENSIONS = (".obj", ".ply", ".stl", ".glb", ".gltf", ".off")


class MeshLoadError(ValueError):
    """A mesh file exists but could not be read as a triangle mesh."""


def load_mesh(path, process: bool = False):
    """Load a triangle mesh: ``(verts (V, 3) float32, faces (F, 3) int32)`` NumPy arrays.

    Formats: OBJ, PLY, STL, GLB/glTF, OFF (via trimesh). Multi-part scenes (GLB, OBJ groups) are
    merged into one mesh in world coordinates; polygons are triangulated. ``process=False``
    does no vertex merging; for an OBJ with texture coordinates trimesh makes one vertex per
    distinct ``v/vt`` pair (so indices need not match the file's ``v`` lines: use
    :func:`load_textured_mesh` for the file's own positions, UVs and per-corner UV indices).

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


# ----------------------------------------------------------------------------------------------
# Textured meshes (OBJ + MTL + map_Kd)
# ----------------------------------------------------------------------------------------------

class TexturedMesh(NamedTuple):
    """Result of :func:`load_textured_mesh`.

    verts:    (V, 3) float32 positions, exactly the file's ``v`` lines (count and order kept).
    faces:    (F, 3) int32 indices into ``verts`` (the OBJ ``f v/..`` indices, 0-based).
    uvs:      (T, 2) float32 texture coordinates, exactly the file's ``vt`` lines (u right, v up,
              OpenGL convention, as stored), or None if the mesh has no UVs.
    uv_faces: (F, 3) int32 indices into ``uvs`` per face corner (the OBJ ``f ../vt`` indices), so
              UV seams are separate from the position topology; None if the mesh has no UVs.
    texture:  (Ht, Wt, C) float32 in [0, 1] diffuse texture (MTL ``map_Kd``), row 0 = top row of
              the image file, C = channels of the file (1 grey, 3 RGB, 4 RGBA); or None.
    """

    verts: np.ndarray
    faces: np.ndarray
    uvs: Optional[np.ndarray]
    uv_faces: Optional[np.ndarray]
    texture: Optional[np.ndarray]


def load_texture_image(path):
    """Read an image file as float32 ``(H, W, C)`` in [0, 1] (row 0 = top row of the file).

    Integer images are divided by their dtype's maximum (uint8 / 255, uint16 / 65535); grey
    images get ``C = 1``; alpha is kept. Raises FileNotFoundError / ValueError naming the file.
    """
    import imageio.v2 as imageio

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"load_texture_image: no such file: {path}")
    try:
        a = np.asarray(imageio.imread(path))
    except Exception as e:
        raise ValueError(f"load_texture_image: {path}: could not read image: {type(e).__name__}: {e}") from e
    if np.issubdtype(a.dtype, np.integer):
        a = a.astype(np.float64) / float(np.iinfo(a.dtype).max)
    elif a.dtype == np.bool_:
        a = a.astype(np.float64)
    else:
        a = np.clip(np.nan_to_num(a.astype(np.float64), nan=0.0), 0.0, 1.0)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"load_texture_image: {path}: expected a 2D image, got shape {a.shape}")
    return np.ascontiguousarray(a, dtype=np.float32)


def _triangulate_pair(faces, faces_tex):
    """Triangulate (n, k) polygon index arrays with trimesh, applying the same split to both."""
    from trimesh.geometry import triangulate_quads

    f = triangulate_quads(faces)
    ft = None if faces_tex is None else triangulate_quads(faces_tex)
    return np.asarray(f, dtype=np.int64).reshape(-1, 3), (None if ft is None else np.asarray(ft, dtype=np.int64).reshape(-1, 3))


def _obj_parse(path, text):
    """Positions, UVs and per-corner ``(v, vt)`` indices of an OBJ, using trimesh's OBJ parser
    internals (``trimesh.exchange.obj``) without trimesh's (v, vt) vertex unmerging.

    Face chunks are taken in file order (one per ``usemtl`` run). Returns
    ``(v, vt, faces, faces_tex, face_material)``; ``vt``/``faces_tex`` are None without UVs.
    """
    import re

    from trimesh.exchange import obj as tobj

    # same text normalisation as trimesh.exchange.obj.load_obj
    text = "\n{}\n".format(text.strip().replace("\r\n", "\n")).replace("\\\n", "")
    v, _vn, vt, _vc = tobj._parse_vertices(text=text)
    if v is None or len(v) == 0:
        raise MeshLoadError(f"load_textured_mesh: {path}: the file contains no vertices")
    chunks = tobj._preprocess_faces(text)  # [(material, object, group, chunk)] in file order
    f_all, ft_all, mats = [], [], []
    any_missing_tex = False
    for material, _obj, _grp, chunk in chunks:
        lines = [i.split("\n", 1)[0].strip() for i in re.split("^f", chunk, flags=re.MULTILINE)[1:]]
        lines = [ln for ln in lines if ln]
        if not lines:
            continue
        columns = len(lines[0].replace("/", " ").split())
        flat = all(columns == len(ln.replace("/", " ").split()) for ln in lines)
        if flat:
            arr = np.array(" ".join(lines).replace("/", " ").split(), dtype=np.int64)
            arr[arr > 0] -= 1
            f, ft, _fn = tobj._parse_faces_vectorized(array=arr, columns=columns, sample_line=lines[0])
            f, ft = _triangulate_pair(f, ft)
        else:
            f, ft, _fn = tobj._parse_faces_fallback(lines)
            f = np.asarray(f, dtype=np.int64).reshape(-1, 3)
        if ft is None or ft.shape != f.shape:
            ft = None
            any_missing_tex = True
        f_all.append(f)
        ft_all.append(ft)
        mats.extend([material] * len(f))
    if not f_all:
        raise MeshLoadError(f"load_textured_mesh: {path}: the file contains no triangles")
    faces = np.concatenate(f_all)
    faces_tex = None if (any_missing_tex or vt is None) else np.concatenate(ft_all)
    return v, vt, faces, faces_tex, mats


def _resolve_index(idx, n, what, path):
    idx = np.where(idx < 0, idx + n, idx)  # OBJ negative (relative) indices, as trimesh/numpy do
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise MeshLoadError(f"load_textured_mesh: {path}: {what} indices out of range [0, {n})")
    return idx


def _obj_texture(path, text, face_materials):
    """Diffuse texture (``map_Kd``) of the first used material that has one, or None.

    The MTL is parsed by ``trimesh.exchange.obj.parse_mtl``; the image itself is read with
    imageio (exact file values). Missing MTL / texture files raise FileNotFoundError naming them.
    """
    import re

    from trimesh.exchange import obj as tobj

    m = re.search(r"^[ \t]*mtllib[ \t]+(.+?)[ \t]*$", text, flags=re.MULTILINE)
    if m is None:
        return None
    mtl_path = os.path.join(os.path.dirname(path), m.group(1).strip())
    if not os.path.isfile(mtl_path):
        raise FileNotFoundError(f"load_textured_mesh: {path}: material library not found: {mtl_path}")
    mtl_dir = os.path.dirname(mtl_path)

    class _Recorder:  # minimal resolver: records every map_Kd name trimesh asks for
        def __init__(self):
            self.requested = []

        def get(self, name):
            self.requested.append(name)
            with open(os.path.join(mtl_dir, name), "rb") as fh:
                return fh.read()

    rec = _Recorder()
    try:
        with open(mtl_path, "rb") as fh:
            materials = tobj.parse_mtl(fh.read(), resolver=rec)
    except Exception as e:
        raise MeshLoadError(f"load_textured_mesh: {mtl_path}: could not parse MTL file: {type(e).__name__}: {e}") from e
    # a map_Kd that trimesh could not open: name the missing file
    for name in rec.requested:
        full = os.path.join(mtl_dir, name)
        if not os.path.isfile(full):
            raise FileNotFoundError(f"load_textured_mesh: {mtl_path}: texture file (map_Kd) not found: {full}")
    used = list(dict.fromkeys(mm for mm in face_materials if mm is not None))
    order = used + [k for k in materials if k not in used]  # used materials first, then the rest
    for name in order:
        mat = materials.get(name)
        if mat is not None and "image" in mat:
            tex_name = mat["image"].info.get("file_path")
            return load_texture_image(os.path.join(mtl_dir, tex_name))
    return None


def load_textured_mesh(path, require_uvs: bool = False) -> TexturedMesh:
    """Load a textured OBJ: positions + faces exactly as in the file, UVs with their own faces,
    and the MTL ``map_Kd`` diffuse texture. Returns a :class:`TexturedMesh`.

    * ``verts``/``faces``: the OBJ ``v`` lines and ``f v/..`` indices (count, order kept; no
      merging or splitting). Polygons are triangulated as trimesh does (quads 012/230, fans).
    * ``uvs``/``uv_faces``: the ``vt`` lines and ``f ../vt`` indices. Unlike ``trimesh.load``
      (which splits one vertex per (v, vt) pair, or with ``maintain_order`` keeps one UV per
      vertex and loses seams), positions and UVs keep separate index buffers, so seams are exact.
      UV convention as stored: u right, v up (OpenGL); sample texel row ``(1 - v) * Ht``.
    * ``texture``: float32 ``(Ht, Wt, C)`` in [0, 1], row 0 = top of the image file; the first
      material used by the faces that has a ``map_Kd``; None if there is none.
    * Without UVs (or if only some faces have them), ``uvs`` and ``uv_faces`` are None.

    Parsing uses trimesh's OBJ loader internals (``trimesh.exchange.obj``), not a custom parser.

    Raises:
        FileNotFoundError: ``path``, its ``mtllib`` file or a ``map_Kd`` texture is missing
            (the message names the missing file).
        ValueError (:class:`MeshLoadError`): not an OBJ, malformed file, no triangles, indices
            out of range, or ``require_uvs=True`` and the mesh has no UVs; names the file.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"load_textured_mesh: no such file: {path}")
    ext = os.path.splitext(path)[1].lower()
    if ext != ".obj":
        raise MeshLoadError(f"load_textured_mesh: {path}: unsupported extension {ext!r} (only .obj with .mtl)")
    try:
        with open(path, "rb") as fh:
            import trimesh.util

            text = trimesh.util.decode_text(fh.read())
        v, vt, faces, faces_tex, mats = _obj_parse(path, text)
    except MeshLoadError:
        raise
    except Exception as e:
        raise MeshLoadError(f"load_textured_mesh: {path}: could not parse OBJ file: {type(e).__name__}: {e}") from e
    v = np.asarray(v, dtype=np.float64)
    if not np.isfinite(v).all():
        raise MeshLoadError(f"load_textured_mesh: {path}: vertex coordinates contain NaN or infinity")
    faces = _resolve_index(faces, len(v), "face (v)", path)
    uvs = uv_faces = None
    if faces_tex is not None and vt is not None and len(vt):
        vt = np.asarray(vt, dtype=np.float64)
        if vt.ndim != 2 or vt.shape[1] < 2:
            raise MeshLoadError(f"load_textured_mesh: {path}: malformed vt lines (shape {vt.shape})")
        if not np.isfinite(vt[:, :2]).all():
            raise MeshLoadError(f"load_textured_mesh: {path}: texture coordinates contain NaN or infinity")
        uv_faces = np.ascontiguousarray(_resolve_index(faces_tex, len(vt), "face (vt)", path), dtype=np.int32)
        uvs = np.ascontiguousarray(vt[:, :2], dtype=np.float32)
    if require_uvs and uvs is None:
        raise MeshLoadError(f"load_textured_mesh: {path}: the mesh has no texture coordinates (vt / f v/vt)")
    texture = _obj_texture(path, text, mats)
    return TexturedMesh(np.ascontiguousarray(v, dtype=np.float32), np.ascontiguousarray(faces, dtype=np.int32),
                        uvs, uv_faces, texture)
