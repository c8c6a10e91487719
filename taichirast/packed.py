"""A batch of different triangle meshes, packed (PyTorch3D's ``Meshes``, nvdiffrast's range mode).

``Meshes`` holds N meshes of different vertex and face counts as one packed vertex tensor
``(sum V_i, 3)`` and one packed face tensor ``(sum F_i, 3)`` whose indices are local to each mesh
(``0 <= faces_i < V_i``), with per-mesh offsets. ``tr.render(meshes, None, cameras)`` renders mesh
i with camera i (or one shared camera) in one call and returns ``(N, H, W, C + 1)``; gradients
reach the packed vertices (and through them the per-mesh tensors it was built from).

As built, :func:`render_packed` renders the meshes one after the other (one set of kernel launches
per mesh, on views of the packed tensors: nothing is copied); the primitives themselves still take
one topology per call. One mesh seen by N cameras needs no ``Meshes``: pass its ``(V, 3)`` vertices
and a batch of N cameras.
"""
from __future__ import annotations

import torch


class Meshes:
    """N triangle meshes of different sizes, packed.

    Build it from lists (``Meshes([v0, v1], [f0, f1])``, each ``(V_i, 3)`` float / ``(F_i, 3)``
    int) or from packed tensors with counts or offsets (:meth:`from_packed`). Indexing gives
    ``(verts_i, faces_i)`` views; ``len`` is N.
    """

    def __init__(self, verts, faces):
        if not isinstance(verts, (list, tuple)) or not isinstance(faces, (list, tuple)):
            raise TypeError("Meshes: verts and faces must be lists of per-mesh tensors (or use Meshes.from_packed), "
                            f"got {type(verts).__name__} and {type(faces).__name__}")
        if len(verts) != len(faces) or not verts:
            raise ValueError(f"Meshes: need one faces tensor per verts tensor and at least one mesh, got "
                             f"{len(verts)} verts and {len(faces)} faces")
        for i, (v, f) in enumerate(zip(verts, faces)):
            if not (torch.is_tensor(v) and v.ndim == 2 and v.shape[1] == 3 and v.is_floating_point()):
                raise ValueError(f"Meshes: verts[{i}] must be a float tensor of shape (V, 3), got "
                                 f"{getattr(v, 'shape', type(v).__name__)}")
            if not (torch.is_tensor(f) and f.ndim == 2 and f.shape[1] == 3 and not f.is_floating_point()):
                raise ValueError(f"Meshes: faces[{i}] must be an int tensor of shape (F, 3), got "
                                 f"{getattr(f, 'shape', type(f).__name__)}")
        vo = [0]
        fo = [0]
        for v, f in zip(verts, faces):
            vo.append(vo[-1] + v.shape[0])
            fo.append(fo[-1] + f.shape[0])
        self._set(torch.cat(list(verts)), torch.cat([f.long() for f in faces]), vo, fo)

    @classmethod
    def from_packed(cls, verts_packed, faces_packed, verts_offsets, faces_offsets):
        """From packed tensors: ``verts_packed (sum V_i, 3)``, ``faces_packed (sum F_i, 3)`` with
        indices local to each mesh, and ``verts_offsets`` / ``faces_offsets`` of N + 1 ints from 0
        to the packed lengths (mesh i is rows ``offsets[i]:offsets[i + 1]``)."""
        self = cls.__new__(cls)
        vo = [int(x) for x in verts_offsets]
        fo = [int(x) for x in faces_offsets]
        if not (torch.is_tensor(verts_packed) and verts_packed.ndim == 2 and verts_packed.shape[1] == 3):
            raise ValueError(f"Meshes.from_packed: verts_packed must have shape (sum V_i, 3), got "
                             f"{getattr(verts_packed, 'shape', None)}")
        if not (torch.is_tensor(faces_packed) and faces_packed.ndim == 2 and faces_packed.shape[1] == 3):
            raise ValueError(f"Meshes.from_packed: faces_packed must have shape (sum F_i, 3), got "
                             f"{getattr(faces_packed, 'shape', None)}")
        for name, off, total in (("verts_offsets", vo, verts_packed.shape[0]),
                                 ("faces_offsets", fo, faces_packed.shape[0])):
            if len(off) < 2 or off[0] != 0 or off[-1] != total or any(b < a for a, b in zip(off, off[1:])):
                raise ValueError(f"Meshes.from_packed: {name} must rise from 0 to {total} (the packed length), "
                                 f"got {off}")
        if len(vo) != len(fo):
            raise ValueError(f"Meshes.from_packed: verts_offsets and faces_offsets must both have N + 1 entries, "
                             f"got {len(vo)} and {len(fo)}")
        self._set(verts_packed, faces_packed.long(), vo, fo)
        return self

    def _set(self, verts_packed, faces_packed, vo, fo):
        for i in range(len(vo) - 1):
            f = faces_packed[fo[i]:fo[i + 1]]
            n = vo[i + 1] - vo[i]
            if f.numel() and (int(f.min()) < 0 or int(f.max()) >= n):
                raise ValueError(f"Meshes: mesh {i} has {n} vertices but its faces use indices "
                                 f"{int(f.min())}..{int(f.max())}; face indices are local to each mesh (0..{n - 1})")
        self.verts_packed, self.faces_packed = verts_packed, faces_packed
        self.verts_offsets, self.faces_offsets = tuple(vo), tuple(fo)

    def __len__(self):
        return len(self.verts_offsets) - 1

    def __getitem__(self, i):
        """``(verts_i (V_i, 3), faces_i (F_i, 3))``: views of the packed tensors."""
        vo, fo = self.verts_offsets, self.faces_offsets
        return self.verts_packed[vo[i]:vo[i + 1]], self.faces_packed[fo[i]:fo[i + 1]]

    def split(self, x, per="vertex"):
        """A packed per-vertex ``(sum V_i, C)`` (or per-face, ``per="face"``) tensor as per-mesh views;
        a list of N tensors is checked and returned as is."""
        off = self.verts_offsets if per == "vertex" else self.faces_offsets
        sizes = [b - a for a, b in zip(off, off[1:])]
        if isinstance(x, (list, tuple)):
            if len(x) != len(self) or any(t.shape[0] != n for t, n in zip(x, sizes)):
                raise ValueError(f"Meshes: per-{per} values must be N = {len(self)} tensors with {sizes} rows, got "
                                 f"{[tuple(t.shape) for t in x]}")
            return list(x)
        if not torch.is_tensor(x) or x.shape[0] != off[-1]:
            raise ValueError(f"Meshes: packed per-{per} values must have {off[-1]} rows (one per {per} of all "
                             f"meshes), got {getattr(x, 'shape', type(x).__name__)}")
        return [x[a:b] for a, b in zip(off, off[1:])]

    def __repr__(self):
        return (f"Meshes(N={len(self)}, verts={self.verts_packed.shape[0]}, faces={self.faces_packed.shape[0]}, "
                f"dtype={self.verts_packed.dtype})")


_UNSUPPORTED = ("texture", "uvs", "uv_faces", "topology", "return_fragments", "stages")


def render_packed(meshes: Meshes, faces, camera, colors=None, **kw):
    """:func:`taichirast.render` of each mesh of ``meshes`` with camera i (``camera`` of batch N, or
    1 shared), stacked: ``(N, H, W, C + 1)``. ``colors``: packed per-vertex ``(sum V_i, C)`` (per
    face with ``per_face=True``) or a list of per-mesh tensors. Other keywords as ``render``;
    textures, ``topology``, ``return_fragments`` and ``stages`` are not supported with ``Meshes``."""
    from .render import render

    if faces is not None:
        raise ValueError("render: with a Meshes batch pass faces=None (each mesh carries its own faces)")
    bad = [k for k in _UNSUPPORTED if kw.get(k) is not None and kw.get(k) is not False]
    if bad:
        raise ValueError(f"render: {', '.join(bad)} not supported with a Meshes batch yet; render the meshes one by one")
    N = len(meshes)
    if camera.batch_size not in (1, N):
        raise ValueError(f"render: a Meshes batch of {N} needs {N} cameras (one per mesh) or 1 shared, got a camera "
                         f"batch of {camera.batch_size}")
    cols = [None] * N if colors is None else meshes.split(colors, "face" if kw.get("per_face") else "vertex")
    out = []
    for i in range(N):
        v, f = meshes[i]
        out.append(render(v, f, camera if camera.batch_size == 1 else camera[i], colors=cols[i], **kw))
    return torch.cat(out, 0)
