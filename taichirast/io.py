"""Mesh and image files. Meshes are parsed by ``trimesh``; nothing is executed or unpickled.
Errors name the file. Text formats (OBJ, MTL, ASCII PLY) are first read as UTF-8 and checked line
by line (:func:`_check_text_mesh`), so a malformed line is an error naming the file and line
number rather than a silently wrong mesh; only regular files are opened (a FIFO or a device such
as ``/dev/zero`` is refused without reading it).
"""
from __future__ import annotations

import os
import re
import stat
from typing import NamedTuple, Optional

import numpy as np

MESH_EXTENSIONS = (".obj", ".ply", ".stl", ".glb", ".gltf", ".off")


class MeshLoadError(ValueError):
    """A mesh file exists but could not be read as a triangle mesh."""


def _regular_file(fn, path):
    """``os.fspath(path)`` if it names a regular file (links followed): FileNotFoundError if
    nothing is there, MeshLoadError for a directory, FIFO, device or socket (never opened)."""
    path = os.fspath(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise FileNotFoundError(f"{fn}: no such file: {path}") from None
    except OSError as e:
        raise MeshLoadError(f"{fn}: {path}: cannot access the file: {e.strerror}") from None
    if not stat.S_ISREG(mode):
        kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                 (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                 (stat.S_ISSOCK, "a socket"))
        kind = next((k for test, k in kinds if test(mode)), "not a regular file")
        raise MeshLoadError(f"{fn}: {path} is {kind}, not a regular file; pass a mesh file")
    return path


def _read_text(fn, path, what):
    """The file as UTF-8 text (a BOM is allowed); binary or non-UTF-8 data is a MeshLoadError naming the line."""
    with open(path, "rb") as fh:
        data = fh.read()
    bad, why = data.find(b"\0"), f"binary data (a NUL byte) in what should be a text {what} file"
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        bad, why = e.start, f"not UTF-8 text (byte 0x{data[e.start]:02x}); {what} files must be UTF-8 (or ASCII) text"
    if bad >= 0:
        line = data[:bad].count(b"\n") + 1
        raise MeshLoadError(f"{fn}: {path}: line {line}: {why}")
    return text


def _bad_line(fn, path, no, line, why):
    return MeshLoadError(f"{fn}: {path}: line {no}: {why}: {line.strip()[:80]!r}")


def _numbers(args, lo, hi):
    """Whether ``args`` are between lo and hi numbers."""
    try:
        [float(a) for a in args]
    except ValueError:
        return False
    return lo <= len(args) <= hi


_OBJ_NUMBERS = {"v": (3, 7), "vt": (1, 3), "vn": (3, 3)}


def _check_obj_face(args, n_v):
    """Why an OBJ ``f`` line's arguments are malformed, or None."""
    if len(args) < 3:
        return "a face needs at least 3 corners"
    for a in args:
        parts = a.split("/")
        try:
            idx = [int(p) for p in parts if p]
        except ValueError:
            return "face corners are v, v/vt, v//vn or v/vt/vn with integer indices"
        if len(parts) > 3 or not parts[0] or 0 in idx:
            return "face corners are v, v/vt, v//vn or v/vt/vn; OBJ indices start at 1 (0 is not valid)"
        if not -n_v <= idx[0] <= n_v:
            return f"vertex index {idx[0]} is out of range: the file has {n_v} vertices (1..{n_v}, or -1..-{n_v})"
    return None


def _check_obj(fn, path, text):
    lines = text.splitlines()
    n_v = sum(1 for ln in lines if ln.split()[:1] == ["v"])
    for no, line in enumerate(lines, 1):
        tok = line.split("#", 1)[0].split()
        if not tok or line.rstrip().endswith("\\"):
            continue
        key, args = tok[0], tok[1:]
        if key in _OBJ_NUMBERS and not _numbers(args, *_OBJ_NUMBERS[key]):
            lo, hi = _OBJ_NUMBERS[key]
            raise _bad_line(fn, path, no, line, f"'{key}' takes {lo}" + (f" to {hi}" if hi > lo else "") + " numbers")
        why = _check_obj_face(args, n_v) if key == "f" else None
        if why:
            raise _bad_line(fn, path, no, line, why)


_MTL_NUMBERS = {"Ka": (1, 3), "Kd": (1, 3), "Ks": (1, 3), "Ke": (1, 3), "Tf": (1, 3), "Ns": (1, 1),
                "Ni": (1, 1), "Tr": (1, 1), "illum": (1, 1), "d": (1, 1)}


def _check_mtl(fn, path, text):
    for no, line in enumerate(text.splitlines(), 1):
        tok = line.split("#", 1)[0].split()
        if not tok:
            continue
        key, args = tok[0], [a for a in tok[1:] if a != "-halo"]
        if key in _MTL_NUMBERS and args[:1] not in (["spectral"], ["xyz"]) and not _numbers(args, *_MTL_NUMBERS[key]):
            raise _bad_line(fn, path, no, line, f"'{key}' takes numbers")
        if key.startswith("map_") and not args:
            raise _bad_line(fn, path, no, line, f"'{key}' needs an image file name")


def _ply_header(fn, path, lines):
    """(elements [(name, count, [is_list per property])], index of the first data line) of an ASCII PLY."""
    elements = []
    for i, line in enumerate(lines):
        tok = line.split()
        if tok[:1] == ["end_header"]:
            return elements, i + 1
        if tok[:1] == ["element"]:
            if len(tok) != 3 or not tok[2].isdigit():
                raise _bad_line(fn, path, i + 1, line, "expected 'element NAME COUNT'")
            elements.append((tok[1], int(tok[2]), []))
        elif tok[:1] == ["property"]:
            if not elements or len(tok) < 3 or (tok[1] == "list" and len(tok) != 5):
                raise _bad_line(fn, path, i + 1, line, "expected 'property TYPE NAME' after an element line")
            elements[-1][2].append(tok[1] == "list")
    raise MeshLoadError(f"{fn}: {path}: the PLY header has no 'end_header' line")


def _ply_row(tok, props, n_vertex, is_face):
    """Why one ASCII PLY data row is malformed, or None."""
    try:
        vals = [float(t) for t in tok]
    except ValueError:
        return "non-numeric value"
    i = 0
    for is_list in props:
        if i >= len(vals):
            return f"too few values for the {len(props)} properties"
        if is_list:
            n = vals[i]
            if n != int(n) or n < 0 or i + 1 + int(n) > len(vals):
                return "a list property's count does not match its values"
            if is_face and any(v != int(v) or not 0 <= v < n_vertex for v in vals[i + 1:i + 1 + int(n)]):
                return f"face indices must be integers in [0, {n_vertex})"
            i += 1 + int(n)
        else:
            i += 1
    return None if i == len(vals) else f"{len(vals) - i} values more than the {len(props)} properties"


def _check_ply(fn, path):
    with open(path, "rb") as fh:
        head = fh.read(65536)
    if not any(ln.split()[:2] == [b"format", b"ascii"] for ln in head.split(b"end_header")[0].splitlines()):
        return  # binary PLY: trimesh reads it by the header's counts
    lines = _read_text(fn, path, "ASCII PLY").splitlines()
    elements, no = _ply_header(fn, path, lines)
    n_vertex = next((c for name, c, _ in elements if name == "vertex"), 0)
    for name, count, props in elements:
        for _ in range(count):
            while no < len(lines) and not lines[no].strip():
                no += 1
            if no >= len(lines):
                raise MeshLoadError(f"{fn}: {path}: the file ends at line {len(lines)} before its {count} "
                                    f"'{name}' rows are complete")
            why = _ply_row(lines[no].split(), props, n_vertex, name == "face")
            if why:
                raise _bad_line(fn, path, no + 1, lines[no], f"'{name}' row: {why}")
            no += 1


def _check_text_mesh(fn, path, ext):
    """Line checks of the text formats before trimesh parses them (module docstring)."""
    if ext == ".obj":
        _check_obj(fn, path, _read_text(fn, path, "OBJ"))
    elif ext == ".ply":
        _check_ply(fn, path)


def load_mesh(path, process: bool = False):
    """Load a triangle mesh: ``(verts (V, 3) float32, faces (F, 3) int32)`` NumPy arrays.

    Formats: OBJ, PLY, STL, GLB/glTF, OFF (via trimesh). Multi-part scenes (GLB, OBJ groups) are
    merged into one mesh in world coordinates; polygons are triangulated. ``process=False``
    does no vertex merging; for an OBJ with texture coordinates trimesh makes one vertex per
    distinct ``v/vt`` pair (so indices need not match the file's ``v`` lines: use
    :func:`load_textured_mesh` for the file's own positions, UVs and per-corner UV indices).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        MeshLoadError: (a ``ValueError``) unknown extension, unreadable / malformed file, or a
            file with no triangles; the message names the file.
    """
    import trimesh

    path = _regular_file("load_mesh", path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in MESH_EXTENSIONS:
        raise MeshLoadError(f"load_mesh: {path}: unsupported extension {ext!r} (supported: {', '.join(MESH_EXTENSIONS)})")
    _check_text_mesh("load_mesh", path, ext)
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

    * ``verts``: (V, 3) float32 positions, exactly the file's ``v`` lines (count and order kept).
    * ``faces``: (F, 3) int32 indices into ``verts`` (the OBJ ``f v/..`` indices, 0-based).
    * ``uvs``: (T, 2) float32 texture coordinates, exactly the file's ``vt`` lines (u right, v up,
      OpenGL convention, as stored), or None if the mesh has no UVs.
    * ``uv_faces``: (F, 3) int32 indices into ``uvs`` per face corner (the OBJ ``f ../vt``
      indices), so UV seams are separate from the position topology; None if the mesh has no UVs.
    * ``texture``: (Ht, Wt, C) float32 in [0, 1] diffuse texture (MTL ``map_Kd``), row 0 = top row
      of the image file, C = channels of the file (1 grey, 3 RGB, 4 RGBA); or None.
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


# The fast OBJ path (:func:`_obj_parse_fast`): rows it reads, and any other line (which sends the
# file to the general path): leading blanks, tabs, other keywords, comments after data.
_FAST_OBJ_OTHER = re.compile(r"^(?!(?:(?:v|vt|vn|f|o|g|s|mtllib|usemtl) [^#\n]*|#.*|)$).*$", re.M)
_FAST_OBJ_CORNER = {0: r"(\d+)", 1: r"(\d+)/(\d+)", 2: r"(\d+)/(\d+)/(\d+)", 3: r"(\d+)//(\d+)"}


def _fast_obj_rows(text, key, pattern, dtype):
    """Every ``key`` row of ``text`` as an array (one row per line, one column per group of
    ``pattern``), or None unless every such row matches ``pattern`` exactly."""
    n = text.count(f"\n{key} ") + text.startswith(f"{key} ")
    rows = re.findall(rf"^{key} +{pattern} *$", text, re.M) if n else []
    if len(rows) != n:
        return None
    return np.array(rows, dtype=dtype).reshape(n, pattern.count("("))


def _fast_obj_faces(text, n_v, n_vt):
    """``(faces, faces_tex or None, rows)`` of uniform ``f`` rows (all triangles or all quads, one
    corner form v, v/vt, v/vt/vn or v//vn, indices in 1..count), or None for anything else."""
    first = re.search(r"^f +(\S+)((?: +\S+)*)", text, re.M)
    corner = first.group(1)
    form = 3 if "//" in corner else corner.count("/")
    k = 1 + len(first.group(2).split())
    if k not in (3, 4) or form > 2 and corner.count("/") != 2:
        return None
    idx = _fast_obj_rows(text, "f", " +".join([_FAST_OBJ_CORNER[form]] * k), np.int64)
    if idx is None or not len(idx):
        return None
    idx = idx.reshape(len(idx), k, -1) - 1
    has_vt = form in (1, 2)
    if idx.min() < 0 or idx[..., 0].max() >= n_v or has_vt and idx[..., 1].max() >= n_vt:
        return None   # index 0 or out of range: the general path names the line
    tri = np.array([[0, 1, 2]] if k == 3 else [[0, 1, 2], [2, 3, 0]])  # trimesh's quad split
    return idx[:, tri, 0].reshape(-1, 3), (idx[:, tri, 1].reshape(-1, 3) if has_vt else None), len(idx)


def _obj_parse_fast(text):
    """What :func:`_obj_parse` returns, for the common OBJ (``v``/``vt``/``vn`` rows of 3, 2 and 3
    numbers; uniform triangle or quad ``f`` rows of non-negative indices; ``o``/``g``/``s``/
    ``mtllib``/``usemtl``; whole-line comments), parsed by regular expressions and NumPy alone
    (about 10x faster than the general path, and trimesh is not imported); None for anything
    else, which the general path then checks and parses.
    """
    if "\\" in text or "\t" in text or _FAST_OBJ_OTHER.search(text) or not re.search(r"^f ", text, re.M):
        return None
    num = r"(\S+)"
    try:
        v, vt, vn = (_fast_obj_rows(text, key, " +".join([num] * n), np.float64)
                     for key, n in (("v", 3), ("vt", 2), ("vn", 3)))
    except ValueError:   # a token that is not a number
        return None
    if v is None or vt is None or vn is None or not len(v):
        return None
    parsed = _fast_obj_faces(text, len(v), len(vt))
    if parsed is None:
        return None
    f, ft, n_rows = parsed
    mats = np.full(n_rows, None, dtype=object)
    for m in re.finditer(r"^usemtl (.*)$", text, re.M):   # a run of faces per usemtl, in file order
        mats[text.count("\nf ", 0, m.start()) + text.startswith("f "):] = m.group(1).strip() or None
    vt = vt if len(vt) else None
    return v, vt, f, (ft if vt is not None else None), list(np.repeat(mats, len(f) // n_rows))


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
    m = re.search(r"^[ \t]*mtllib[ \t]+(.+?)[ \t]*$", text, flags=re.MULTILINE)
    if m is None:
        return None
    from trimesh.exchange import obj as tobj

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
    _regular_file("load_textured_mesh", mtl_path)
    mtl_text = _read_text("load_textured_mesh", mtl_path, "MTL")
    _check_mtl("load_textured_mesh", mtl_path, mtl_text)
    try:
        materials = tobj.parse_mtl(mtl_text, resolver=rec)
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


def _obj_parse_checked(path, text):
    """:func:`_obj_parse` after the line checks, with its failures as MeshLoadError naming the file."""
    _check_obj("load_textured_mesh", path, text)
    try:
        return _obj_parse(path, text)
    except MeshLoadError:
        raise
    except Exception as e:
        raise MeshLoadError(f"load_textured_mesh: {path}: could not parse OBJ file: {type(e).__name__}: {e}") from e


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

    Common OBJs (uniform triangle or quad rows) are parsed with NumPy alone; anything else, and
    every malformed file, goes through trimesh's OBJ loader internals (``trimesh.exchange.obj``)
    after line checks that name the file and line of a malformed line.

    Raises:
        FileNotFoundError: ``path``, its ``mtllib`` file or a ``map_Kd`` texture is missing
            (the message names the missing file).
        MeshLoadError: (a ``ValueError``) not an OBJ, malformed file, no triangles, indices
            out of range, or ``require_uvs=True`` and the mesh has no UVs; names the file.
    """
    path = _regular_file("load_textured_mesh", path)
    ext = os.path.splitext(path)[1].lower()
    if ext != ".obj":
        raise MeshLoadError(f"load_textured_mesh: {path}: unsupported extension {ext!r} (only .obj with .mtl)")
    text = _read_text("load_textured_mesh", path, "OBJ")
    v, vt, faces, faces_tex, mats = _obj_parse_fast(text) or _obj_parse_checked(path, text)
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
