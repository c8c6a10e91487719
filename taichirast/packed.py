"""A batch of different triangle meshes, packed (PyTorch3D's ``Meshes``, nvdiffrast's range mode).

``Meshes`` holds N meshes of different vertex and face counts as one packed vertex array
``(sum V_i, 3)`` and one packed face array ``(sum F_i, 3)`` whose indices are local to each mesh
(``0 <= faces_i < V_i``), with per-mesh offsets. Torch tensors or NumPy arrays.

Every primitive takes such a batch in one call, at kernel level: image i draws mesh i. A primitive's
``faces`` argument may be a ``Meshes`` (its topology) or a list of per-mesh ``(F_i, 3)`` faces; its
per-vertex arguments are then packed ``(sum V_i, C)`` arrays or lists of per-mesh ``(V_i, C)``, and a
vertex argument may be the ``Meshes`` itself (with ``faces=None``). Internally (:func:`mesh_args`)
the batch becomes one mesh with *global* vertex indices (:attr:`Meshes.faces_global`, mesh i's
faces shifted by its vertex offset) plus per-image face ranges (:attr:`Meshes.ranges`, ``(N, 2)``
int32 = first face, count): the kernels that loop over faces (projection by camera i, hard
rasterization, SoftRas, DIB-R) draw only image i's range into image i, and everything indexed by
face id (interpolate, shade_fragments, antialias, texture) works unchanged, since face ids are
packed (global) face indices and the vertex arrays are one shared ``(sum V_i, C)`` batch.
``tr.render(meshes, None, cameras)`` renders mesh i with camera i (or one shared camera) through the
same stages. One mesh seen by N cameras needs no ``Meshes``: pass its ``(V, 3)`` vertices and a
batch of N cameras.
"""
from __future__ import annotations

import numpy as np

from . import _array as A


def _cat(xs):
    if A.is_torch(xs[0]):
        import torch

        return torch.cat(list(xs))
    return np.concatenate([np.asarray(x) for x in xs])


def _rows_desc(x):
    return getattr(x, "shape", type(x).__name__)


class Meshes:
    """N triangle meshes of different sizes, packed.

    Build it from lists (``Meshes([v0, v1], [f0, f1])``, each ``(V_i, 3)`` float / ``(F_i, 3)``
    int, torch tensors or NumPy arrays) or from packed arrays with offsets (:meth:`from_packed`).
    Indexing gives ``(verts_i, faces_i)`` views; ``len`` is N. Gradients reach the arrays it was
    built from (torch: through ``torch.cat``).
    """

    def __init__(self, verts, faces):
        self._from_lists("Meshes", "verts", verts, "faces", faces, channels=3)

    @classmethod
    def lists(cls, fn, vname, verts, fname, faces):
        """A batch from lists of per-vertex arrays ``(V_i, C)`` (any C) and faces ``(F_i, 3)``."""
        self = cls.__new__(cls)
        self._from_lists(fn, vname, verts, fname, faces, channels=None)
        return self

    def _from_lists(self, fn, vname, verts, fname, faces, channels):
        if not isinstance(verts, (list, tuple)) or not isinstance(faces, (list, tuple)):
            raise TypeError(f"{fn}: {vname} and {fname} must both be lists of per-mesh arrays (or use "
                            f"Meshes.from_packed), got {type(verts).__name__} and {type(faces).__name__}")
        if len(verts) != len(faces) or not verts:
            raise ValueError(f"{fn}: need one {fname} array per {vname} array and at least one mesh, got "
                             f"{len(verts)} {vname} and {len(faces)} {fname}")
        kinds = {A.is_torch(x) for x in (*verts, *faces)}
        for i, (v, f) in enumerate(zip(verts, faces)):
            if not (A.is_array(v) and v.ndim == 2 and (channels is None or v.shape[1] == channels)
                    and A.dtype_name(v) in A.FLOAT_DTYPES):
                want = f"(V, {channels})" if channels else "(V, C)"
                raise ValueError(f"{fn}: {vname}[{i}] must be a float32/float64 array of shape {want}, got "
                                 f"{_rows_desc(v)}")
            if not (A.is_array(f) and f.ndim == 2 and f.shape[1] == 3 and A.dtype_name(f).startswith("int")):
                raise ValueError(f"{fn}: {fname}[{i}] must be an int array of shape (F, 3), got {_rows_desc(f)}")
        if len(kinds) > 1:
            raise TypeError(f"{fn}: {vname} and {fname} mix torch tensors and NumPy arrays; pass one kind")
        vo, fo = [0], [0]
        for v, f in zip(verts, faces):
            vo.append(vo[-1] + int(v.shape[0]))
            fo.append(fo[-1] + int(f.shape[0]))
        self._set(_cat(verts), A.astype(_cat(faces), "int64"), vo, fo, fn)

    @classmethod
    def from_packed(cls, verts_packed, faces_packed, verts_offsets, faces_offsets):
        """From packed arrays: ``verts_packed (sum V_i, 3)``, ``faces_packed (sum F_i, 3)`` with
        indices local to each mesh, and ``verts_offsets`` / ``faces_offsets`` of N + 1 ints from 0
        to the packed lengths (mesh i is rows ``offsets[i]:offsets[i + 1]``)."""
        self = cls.__new__(cls)
        vo = [int(x) for x in verts_offsets]
        fo = [int(x) for x in faces_offsets]
        fn = "Meshes.from_packed"
        if not (A.is_array(verts_packed) and verts_packed.ndim == 2 and verts_packed.shape[1] == 3):
            raise ValueError(f"{fn}: verts_packed must have shape (sum V_i, 3), got {_rows_desc(verts_packed)}")
        if not (A.is_array(faces_packed) and faces_packed.ndim == 2 and faces_packed.shape[1] == 3):
            raise ValueError(f"{fn}: faces_packed must have shape (sum F_i, 3), got {_rows_desc(faces_packed)}")
        for name, off, total in (("verts_offsets", vo, verts_packed.shape[0]),
                                 ("faces_offsets", fo, faces_packed.shape[0])):
            if len(off) < 2 or off[0] != 0 or off[-1] != total or any(b < a for a, b in zip(off, off[1:])):
                raise ValueError(f"{fn}: {name} must rise from 0 to {total} (the packed length), got {off}")
        if len(vo) != len(fo):
            raise ValueError(f"{fn}: verts_offsets and faces_offsets must both have N + 1 entries, "
                             f"got {len(vo)} and {len(fo)}")
        self._set(verts_packed, A.astype(faces_packed, "int64"), vo, fo, fn)
        return self

    def _set(self, verts_packed, faces_packed, vo, fo, fn, check=True):
        if check and faces_packed.shape[0]:
            # one pass over the faces: each face's mesh-local range check against its mesh's size
            n = np.repeat(np.diff(vo), np.diff(fo))
            f = faces_packed.detach().cpu().numpy() if A.is_torch(faces_packed) else np.asarray(faces_packed)
            bad = (f.min(axis=1) < 0) | (f.max(axis=1) >= n)
            if bad.any():
                i = int(np.searchsorted(fo, int(np.argmax(bad)), side="right") - 1)
                fi = f[fo[i]:fo[i + 1]]
                raise ValueError(f"{fn}: mesh {i} has {n[fo[i]]} vertices but its faces use indices "
                                 f"{int(fi.min())}..{int(fi.max())}; face indices are local to each mesh "
                                 f"(0..{n[fo[i]] - 1})")
        self.verts_packed, self.faces_packed = verts_packed, faces_packed
        self.verts_offsets, self.faces_offsets = tuple(vo), tuple(fo)
        self._global = self._ranges = None

    def with_verts(self, verts_packed):
        """The same meshes (faces, offsets) with other packed per-vertex values ``(sum V_i, C)``
        (what :func:`taichirast.project` returns for a batch: the screen vertices)."""
        if not (A.is_array(verts_packed) and verts_packed.ndim == 2 and verts_packed.shape[0] == self.verts_offsets[-1]):
            raise ValueError(f"Meshes.with_verts: need ({self.verts_offsets[-1]}, C) values, got "
                             f"{_rows_desc(verts_packed)}")
        out = Meshes.__new__(Meshes)
        out._set(verts_packed, self.faces_packed, self.verts_offsets, self.faces_offsets, "", check=False)
        out._global, out._ranges = self._global, self._ranges
        return out

    @property
    def faces_global(self):
        """``(sum F_i, 3)`` int32: the packed faces with *global* vertex indices (mesh i's shifted by
        ``verts_offsets[i]``), i.e. the batch as one mesh; cached."""
        if self._global is None:
            shift = np.repeat(np.asarray(self.verts_offsets[:-1], dtype=np.int64), np.diff(self.faces_offsets))
            shift = A.as_like(shift, self.faces_packed, "int64")
            self._global = A.astype(self.faces_packed + shift[:, None], "int32")
        return self._global

    @property
    def ranges(self):
        """``(N, 2)`` int32 per-image face ranges ``(first face, count)`` into :attr:`faces_global`; cached."""
        if self._ranges is None:
            fo = np.asarray(self.faces_offsets, dtype=np.int32)
            self._ranges = A.as_like(np.stack([fo[:-1], np.diff(fo)], axis=1), self.faces_packed, "int32")
        return self._ranges

    def host_ranges(self):
        """``(firsts, counts)``: the per-image face ranges as Python ints (no device read)."""
        fo = self.faces_offsets
        return fo[:-1], tuple(b - a for a, b in zip(fo, fo[1:]))

    def vertex_mesh(self):
        """``(sum V_i,)`` int32: the mesh of every packed vertex."""
        idx = np.repeat(np.arange(len(self), dtype=np.int32), np.diff(self.verts_offsets))
        return A.as_like(idx, self.faces_packed, "int32")

    def to(self, *args, **kwargs):
        """The batch with its vertices converted by ``Tensor.to(*args, **kwargs)`` (device and/or float
        dtype) and its faces moved to the same device (torch tensors only)."""
        if not A.is_torch(self.verts_packed):
            raise TypeError("Meshes.to: the batch holds NumPy arrays; build it from torch tensors")
        v = self.verts_packed.to(*args, **kwargs)
        out = Meshes.__new__(Meshes)
        out._set(v, self.faces_packed.to(v.device), self.verts_offsets, self.faces_offsets, "", check=False)
        return out

    def verts_list(self):
        """The N per-mesh vertex arrays (views of the packed one)."""
        return [self[i][0] for i in range(len(self))]

    def faces_list(self):
        """The N per-mesh face arrays, local indices (views of the packed one)."""
        return [self[i][1] for i in range(len(self))]

    def __len__(self):
        return len(self.verts_offsets) - 1

    def __getitem__(self, i):
        """``(verts_i (V_i, 3), faces_i (F_i, 3))``: views of the packed arrays."""
        vo, fo = self.verts_offsets, self.faces_offsets
        return self.verts_packed[vo[i]:vo[i + 1]], self.faces_packed[fo[i]:fo[i + 1]]

    def split(self, x, per="vertex", fn="Meshes", name="values"):
        """A packed per-vertex ``(sum V_i, C)`` (or per-face, ``per="face"``) array as per-mesh views;
        a list of N arrays is checked and returned as is."""
        off = self.verts_offsets if per == "vertex" else self.faces_offsets
        sizes = [b - a for a, b in zip(off, off[1:])]
        if isinstance(x, (list, tuple)):
            if len(x) != len(self) or any(not A.is_array(t) or t.shape[0] != n for t, n in zip(x, sizes)):
                raise ValueError(f"{fn}: per-{per} {name} must be N = {len(self)} arrays with {sizes} rows, got "
                                 f"{[tuple(getattr(t, 'shape', ())) for t in x]}")
            return list(x)
        if not A.is_array(x) or x.shape[0] != off[-1]:
            raise ValueError(f"{fn}: packed per-{per} {name} must have {off[-1]} rows (one per {per} of all "
                             f"meshes), got {_rows_desc(x)}")
        return [x[a:b] for a, b in zip(off, off[1:])]

    def pack(self, x, per="vertex", fn="Meshes", name="values"):
        """Per-vertex (or per-face) values of the batch as one packed array: a list of per-mesh
        arrays is checked and concatenated (torch: differentiably); a packed ``(sum, C)`` array is
        checked, and so is a ``(B, sum, C)`` batch of them (one per image, or 1 shared)."""
        if isinstance(x, (list, tuple)):
            return _cat(self.split(x, per, fn, name))
        self.split(x[0] if A.is_array(x) and x.ndim == 3 else x, per, fn, name)
        return x

    def __repr__(self):
        return (f"Meshes(N={len(self)}, verts={self.verts_packed.shape[0]}, faces={self.faces_packed.shape[0]}, "
                f"dtype={A.dtype_name(self.verts_packed)})")


class FaceRanges:
    """Faces with per-image ranges, nvdiffrast's range mode: image i draws ``faces[ranges[i, 0] :
    ranges[i, 0] + ranges[i, 1]]``, whose vertex indices are global (into one shared vertex array).

    What a :class:`Meshes` batch becomes inside the kernels (:attr:`Meshes.faces_global` with
    :attr:`Meshes.ranges`); pass one as a primitive's ``faces`` to draw other ranges of one mesh
    (or of the corner mesh ``render``'s shaders build). ``faces (F, 3)`` int, ``ranges (N, 2)`` int
    (first face, count), each within ``[0, F]``; face ids in the output are indices into ``faces``.
    """

    def __init__(self, faces, ranges):
        r = np.asarray(ranges.detach().cpu() if A.is_torch(ranges) else ranges)
        F = int(faces.shape[0]) if A.is_array(faces) and faces.ndim == 2 else -1
        if F < 0 or faces.shape[1] != 3:
            raise ValueError(f"FaceRanges: faces must have shape (F, 3), got {_rows_desc(faces)}")
        if r.ndim != 2 or r.shape[1] != 2 or r.shape[0] < 1 or not np.issubdtype(r.dtype, np.integer):
            raise ValueError(f"FaceRanges: ranges must be an int array of shape (N, 2) = (first face, count) "
                             f"per image, got {getattr(r, 'shape', r)} {r.dtype}")
        if (r < 0).any() or (r[:, 0] + r[:, 1] > F).any():
            raise ValueError(f"FaceRanges: every range (first, count) must lie within the {F} faces, got "
                             f"{r.tolist()}")
        self.faces = faces
        self.ranges = A.as_like(r, faces, "int32")
        self._host = (tuple(int(x) for x in r[:, 0]), tuple(int(x) for x in r[:, 1]))
        self._n = int(r.shape[0])

    @classmethod
    def of(cls, faces, batch):
        """``faces`` (with as many rows as ``batch``'s faces, in the same order, e.g. its corner
        mesh) drawn with the ranges of ``batch`` (a :class:`Meshes`); nothing is copied or checked."""
        self = cls.__new__(cls)
        self.faces, self.ranges, self._host, self._n = faces, batch.ranges, batch.host_ranges(), len(batch)
        return self

    def host_ranges(self):
        """``(firsts, counts)`` as Python ints."""
        return self._host

    def __len__(self):
        return self._n

    def __repr__(self):
        return f"FaceRanges(N={self._n}, faces={int(self.faces.shape[0])})"


def is_batch(x) -> bool:
    return isinstance(x, Meshes)


def mesh_args(fn, vname, verts, faces, fname="faces"):
    """``(verts, faces, meshes)`` of a primitive's vertex / faces arguments, packed batch or not.

    * ``verts`` a :class:`Meshes` (then ``faces`` must be None): its packed vertices;
    * ``faces`` a :class:`Meshes`: ``verts`` packed ``(sum V_i, C)`` or a list of per-mesh arrays;
    * ``faces`` a list of per-mesh ``(F_i, 3)``: ``verts`` a list of per-mesh ``(V_i, C)``;
    * otherwise ``(verts, faces, None)`` unchanged.

    For a batch, ``faces`` comes back as :attr:`Meshes.faces_global` and ``meshes`` is the batch
    (its ``ranges`` are the kernels' per-image face ranges).
    """
    if is_batch(verts):
        if faces is not None:
            raise ValueError(f"{fn}: {vname} is a Meshes batch, so {fname} must be None (each mesh carries its "
                             f"own faces); got {type(faces).__name__}")
        return verts.verts_packed, verts.faces_global, verts
    if is_batch(faces):
        return faces.pack(verts, "vertex", fn, vname), faces.faces_global, faces
    if isinstance(faces, FaceRanges):
        if isinstance(verts, (list, tuple)):
            raise TypeError(f"{fn}: with {fname} given as FaceRanges, {vname} must be one array (global vertex "
                            f"indices), got a list")
        return verts, faces.faces, faces
    if isinstance(faces, (list, tuple)):
        m = Meshes.lists(fn, vname, verts, fname, faces)
        return m.verts_packed, m.faces_global, m
    if isinstance(verts, (list, tuple)):
        raise TypeError(f"{fn}: {vname} is a list of per-mesh arrays, so {fname} must be the matching list of "
                        f"per-mesh faces (or a Meshes); got {type(faces).__name__}")
    return verts, faces, None


def images(fn, meshes, name, n):
    """Check that an image batch ``n`` (of ``name``) matches a packed batch of ``len(meshes)``."""
    if meshes is not None and n != len(meshes):
        raise ValueError(f"{fn}: {name} has a batch of {n} images but the packed batch has {len(meshes)} meshes "
                         f"(image i draws mesh i)")


def batch(fn, meshes, sizes: dict) -> int:
    """The image count: ``len(meshes)`` for a packed batch (every array's batch must be 1 or that),
    else the arrays' common batch (1 broadcasts)."""
    if meshes is None:
        from ._validate import batch as common

        return common(fn, sizes)
    N = len(meshes)
    bad = {k: v for k, v in sizes.items() if v not in (1, N)}
    if bad:
        raise ValueError(f"{fn}: with a packed batch of {N} meshes, " + ", ".join(f"{k}" for k in bad) +
                         f" must have a batch of 1 (shared, packed) or {N} (one per image), got " +
                         ", ".join(f"{k}={v}" for k, v in bad.items()))
    return N


def pack_values(meshes, x, per, fn, name):
    """Per-vertex / per-face values of a :class:`Meshes` batch packed (:meth:`Meshes.pack`);
    anything else as given."""
    return meshes.pack(x, per, fn, name) if is_batch(meshes) else x


class Entries:
    """The face entries the face-looping kernels visit: image b's faces ``firsts[b] ..
    firsts[b] + counts[b] - 1``, one entry each, the images' entries one after the other, so the
    kernels' per-face buffers have ``total = sum(counts)`` rows: O(faces), whatever the meshes'
    sizes. ``tab (B, 3)`` int32 rows (first face, count, first entry) are what the kernels read
    (kernels/common.entry_face); :func:`entry_images` gives each entry's image."""

    def __init__(self, firsts, counts, like):
        counts = np.asarray(counts, dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        self.counts = tuple(int(c) for c in counts)
        self.total = int(counts.sum())
        if self.total >= 2**31:
            raise MemoryError(f"taichirast: {self.total} face entries (images x faces) exceed 2^31; render in "
                              f"smaller batches")
        self.tab = A.as_like(np.stack([np.asarray(firsts, dtype=np.int64), counts, starts], 1), like, "int32")


def entry_images(counts, like):
    """``(sum(counts),)`` int32: the image of every face entry (image b has ``counts[b]``), on
    ``like``'s device."""
    idx = np.repeat(np.arange(len(counts), dtype=np.int32), counts)
    return A.as_like(idx, like, "int32")


def entries_for(meshes, B, F, like):
    """:class:`Entries` of a packed batch (:class:`Meshes` or :class:`FaceRanges`), or of B images
    each drawing all F faces of a shared topology."""
    if meshes is not None:
        return Entries(*meshes.host_ranges(), like)
    return Entries([0] * B, [F] * B, like)


def gradient_like(arg, g):
    """A packed gradient ``g`` in the form of the user's argument: split per mesh for a list, as
    is (packed) for a Meshes or an array (the NumPy bridge's vjp)."""
    if isinstance(arg, (list, tuple)) and arg and A.is_array(arg[0]):
        g = g.reshape((-1,) + tuple(g.shape[-1:])) if g.ndim == 3 and g.shape[0] == 1 else g
        out, a = [], 0
        for t in arg:
            out.append(g[a:a + t.shape[0]].reshape(np.shape(t)))
            a += t.shape[0]
        return out
    if is_batch(arg):
        return g.reshape(np.shape(arg.verts_packed))
    return None


def scene_args(meshes, faces, camera, colors, per_face, uvs, uv_faces):
    """:func:`taichirast.render` of a :class:`Meshes` batch: ``(verts (sum V_i, 3), faces_global,
    colors, uvs, uv_faces)``, the batch drawn as one mesh whose images keep to their own face ranges
    (the render stages pass :meth:`FaceRanges.of` to the face-looping primitives). UVs: per vertex
    (``uv_faces=None``; packed ``(sum V_i, 2)`` or a list), or lists of per-mesh ``uvs (T_i, 2)``
    and ``uv_faces (F_i, 3)`` (local indices); the texture is one shared map or one per mesh."""
    if faces is not None:
        raise ValueError("render: with a Meshes batch pass faces=None (each mesh carries its own faces)")
    N = len(meshes)
    if camera.batch_size not in (1, N):
        raise ValueError(f"render: a Meshes batch of {N} needs {N} cameras (one per mesh) or 1 shared, got a camera "
                         f"batch of {camera.batch_size}")
    if colors is not None:
        colors = meshes.pack(colors, "face" if per_face else "vertex", "render", "colors")
    if uvs is not None and uv_faces is None:
        uvs, uv_faces = meshes.pack(uvs, "vertex", "render", "uvs"), meshes.faces_global
    elif uvs is not None or uv_faces is not None:
        if not isinstance(uv_faces, (list, tuple)):
            raise TypeError("render: with a Meshes batch, uv_faces must be a list of per-mesh (F_i, 3) UV faces "
                            "(local to each mesh's uvs, with uvs a list), or None for one UV per vertex; got "
                            f"{type(uv_faces).__name__}")
        uv = Meshes.lists("render", "uvs", uvs, "uv_faces", uv_faces)
        if uv.faces_offsets != meshes.faces_offsets:
            want, got = (np.diff(m.faces_offsets).tolist() for m in (meshes, uv))
            raise ValueError(f"render: uv_faces must have one row per face of each mesh, {want}, got {got}")
        uvs, uv_faces = uv.verts_packed, uv.faces_global
    return meshes.verts_packed, meshes.faces_global, colors, uvs, uv_faces
