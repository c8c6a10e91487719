"""Graphs for mesh convolutions: construction from faces, normalisation, packed batching.

Conventions (used by every layer in :mod:`taichirast.nn`):

* A graph over ``N`` vertices holds directed edges ``edges (E, 2)`` int64 where row ``(i, j)``
  means *vertex i receives from vertex j* (the sparse adjacency entry ``A[i, j]``). Edges are
  sorted by ``(i, j)`` and unique, so rows form a CSR (``Graph.rowptr``). A symmetric graph holds
  both ``(i, j)`` and ``(j, i)``.
* ``weights (E,)`` are the adjacency values (float, on the edges' device), e.g. ``1 / |N_i|`` for a
  row-normalised adjacency (TF Graphics' FeaStNet convention) or ``1 / sqrt(d_i d_j)`` (Kipf &
  Welling). ``None`` means all ones. Weights are constants: no gradient flows into them.
* Packed batches (PyTorch3D's packed representation): several meshes' vertices concatenated,
  edges offset, ``vertex_offsets (B + 1,)`` so that mesh ``b`` owns vertices
  ``vertex_offsets[b]:vertex_offsets[b + 1]``; ``Graph.batch (N,)`` gives each vertex's mesh.
  Edges never cross meshes, so one layer call on the packed graph equals calls on each mesh.

Features are ``x (N, C)`` float32/float64 on the graph's device (CPU for the Taichi path with the
CPU backend).
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import torch

NORMALIZATIONS = (None, "row", "sym")


def _int_tensor(fn, name, t, shape_desc, ndim, last=None):
    if not torch.is_tensor(t):
        try:
            import numpy as np

            t = torch.as_tensor(np.asarray(t))
        except Exception:  # noqa: BLE001 - anything not array-like
            raise TypeError(f"{fn}: {name} must be an integer tensor of shape {shape_desc}, got {type(t).__name__}")
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"{fn}: {name} must be an integer tensor of shape {shape_desc}, got dtype {t.dtype}")
    if t.dim() != ndim or (last is not None and t.shape[-1] != last):
        if not (t.numel() == 0 and ndim == 2):
            raise ValueError(f"{fn}: {name} must have shape {shape_desc}, got {tuple(t.shape)}")
        t = t.reshape(0, last)
    return t.long()


def _check_range(fn, name, t, n):
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= n):
        raise ValueError(f"{fn}: {name} must index in [0, {n}), got values in [{int(t.min())}, {int(t.max())}]")


def _num(fn, name, n):
    if isinstance(n, bool) or not isinstance(n, int) and not (torch.is_tensor(n) and n.numel() == 1):
        raise TypeError(f"{fn}: {name} must be an int, got {type(n).__name__}")
    n = int(n)
    if n < 0:
        raise ValueError(f"{fn}: {name} must be >= 0, got {n}")
    return n


class Graph:
    """A (packed) directed graph with CSR rows; see the module docstring for the conventions.

    Args:
        edges: ``(E, 2)`` int64, sorted by ``(i, j)``, unique (use :func:`make_graph` to build one
            from arbitrary edges; this constructor only checks shape and range).
        num_vertices: ``N``.
        weights: ``(E,)`` float adjacency values, or ``None`` for ones.
        vertex_offsets: ``(B + 1,)`` int64 mesh boundaries of a packed batch (default one mesh:
            ``[0, N]``).

    Derived, cached: ``rowptr (N + 1,)``, ``batch (N,)``, ``degree (N,)`` (edges per row),
    ``colptr``/``perm`` (the transposed CSR: edge ids sorted by column).
    """

    def __init__(self, edges, num_vertices: int, weights=None, vertex_offsets=None):
        fn = "Graph"
        self.num_vertices = _num(fn, "num_vertices", num_vertices)
        self.edges = _int_tensor(fn, "edges", edges, "(E, 2)", 2, 2)
        _check_range(fn, "edges", self.edges, self.num_vertices)
        if self.edges.shape[0] > 1:
            key = self.edges[:, 0] * max(self.num_vertices, 1) + self.edges[:, 1]
            if not bool((key[1:] > key[:-1]).all()):  # the CSR rows (and the fused kernel) rely on it
                raise ValueError(f"{fn}: edges must be sorted by (i, j) and unique; build graphs with make_graph")
        dev = self.edges.device
        if weights is not None:
            if not torch.is_tensor(weights) or not weights.is_floating_point():
                raise TypeError(f"{fn}: weights must be a float tensor of shape (E,), got "
                                f"{weights.dtype if torch.is_tensor(weights) else type(weights).__name__}")
            if tuple(weights.shape) != (self.edges.shape[0],):
                raise ValueError(f"{fn}: weights must have shape ({self.edges.shape[0]},), got {tuple(weights.shape)}")
            weights = weights.detach().to(dev)
        self.weights = weights
        if vertex_offsets is None:
            vertex_offsets = torch.tensor([0, self.num_vertices], dtype=torch.long, device=dev)
        vo = _int_tensor(fn, "vertex_offsets", vertex_offsets, "(B + 1,)", 1).to(dev)
        if vo.numel() < 1 or int(vo[0]) != 0 or int(vo[-1]) != self.num_vertices or bool((vo[1:] < vo[:-1]).any()):
            raise ValueError(f"{fn}: vertex_offsets must be non-decreasing from 0 to num_vertices={self.num_vertices}, "
                             f"got {vo.tolist()}")
        self.vertex_offsets = vo
        self._cache = {}

    # ---------------------------------------------------------------- derived
    @property
    def device(self):
        return self.edges.device

    @property
    def num_edges(self) -> int:
        return int(self.edges.shape[0])

    @property
    def num_graphs(self) -> int:
        """Number of meshes ``B`` in the packed batch."""
        return int(self.vertex_offsets.numel()) - 1

    def _cached(self, key, make):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    @property
    def degree(self):
        """``(N,)`` int64 number of edges received by each vertex (self-loops count once)."""
        return self._cached("degree", lambda: torch.bincount(self.edges[:, 0], minlength=self.num_vertices))

    @property
    def rowptr(self):
        """``(N + 1,)`` int64 CSR row pointer: row ``i`` is edges ``rowptr[i]:rowptr[i + 1]``."""
        return self._cached("rowptr", lambda: torch.cat([self.degree.new_zeros(1), torch.cumsum(self.degree, 0)]))

    @property
    def batch(self):
        """``(N,)`` int64 mesh index of each vertex."""
        def make():
            sizes = self.vertex_offsets[1:] - self.vertex_offsets[:-1]
            return torch.repeat_interleave(torch.arange(self.num_graphs, device=self.device), sizes)
        return self._cached("batch", make)

    def transposed_csr(self):
        """``(colptr (N + 1,), perm (E,))`` int64: edges whose source is ``j`` are ``perm[colptr[j]:colptr[j + 1]]``."""
        def make():
            j = self.edges[:, 1]
            perm = torch.argsort(j * max(self.num_vertices, 1) + self.edges[:, 0])
            cnt = torch.bincount(j, minlength=self.num_vertices)
            return torch.cat([cnt.new_zeros(1), torch.cumsum(cnt, 0)]), perm
        return self._cached("tcsr", make)

    def edge_weights(self, dtype=torch.float32):
        """``(E,)`` adjacency values in ``dtype`` (ones when the graph is unweighted)."""
        key = ("w", dtype)
        if self.weights is None:
            return self._cached(key, lambda: torch.ones(self.num_edges, dtype=dtype, device=self.device))
        return self._cached(key, lambda: self.weights.to(dtype))

    def to(self, device):
        """A copy on ``device``."""
        w = None if self.weights is None else self.weights.to(device)
        return Graph(self.edges.to(device), self.num_vertices, w, self.vertex_offsets.to(device))

    def to_sparse(self, dtype=torch.float32):
        """The adjacency as a ``(N, N)`` sparse COO tensor (``A[i, j]`` = weight of edge ``i <- j``)."""
        return torch.sparse_coo_tensor(self.edges.t(), self.edge_weights(dtype), (self.num_vertices,) * 2,
                                       check_invariants=True).coalesce()

    def unpack(self, x):
        """Split packed per-vertex values ``x (N, ...)`` into a list of ``B`` tensors, one per mesh."""
        if x.shape[0] != self.num_vertices:
            raise ValueError(f"Graph.unpack: x must have {self.num_vertices} rows, got {tuple(x.shape)}")
        sizes = (self.vertex_offsets[1:] - self.vertex_offsets[:-1]).tolist()
        return list(torch.split(x, sizes, 0))

    def check_features(self, fn, x):
        """Validate node features ``x (N, C)`` against this graph (float, finite, same device)."""
        if not torch.is_tensor(x) or not x.is_floating_point() or x.dtype not in (torch.float32, torch.float64):
            got = x.dtype if torch.is_tensor(x) else type(x).__name__
            raise TypeError(f"{fn}: x must be a float32/float64 tensor of shape (N, C), got {got}")
        if x.dim() != 2 or x.shape[0] != self.num_vertices:
            raise ValueError(f"{fn}: x must have shape ({self.num_vertices}, C) for this graph, got {tuple(x.shape)}")
        if x.device != self.device:
            raise ValueError(f"{fn}: x is on {x.device} but the graph is on {self.device}; move one with .to()")
        if x.numel() and not bool(torch.isfinite(x.detach()).all()):
            raise ValueError(f"{fn}: x contains NaN or infinite values")

    def __repr__(self):
        return (f"Graph(num_vertices={self.num_vertices}, num_edges={self.num_edges}, num_graphs={self.num_graphs}, "
                f"weighted={self.weights is not None})")


def as_graph(fn, graph, num_vertices=None) -> Graph:
    """``graph`` as a :class:`Graph`: a Graph, or raw edges ``(E, 2)`` (used as given, unit weights)."""
    if isinstance(graph, Graph):
        return graph
    if num_vertices is None:
        raise TypeError(f"{fn}: graph must be a taichirast.nn.Graph (or edges with num_vertices), got {type(graph).__name__}")
    return make_graph(graph, num_vertices, symmetric=False, self_loops=None, normalize=None)  # checks edges


def mesh_edges(faces, num_vertices: Optional[int] = None):
    """Unique undirected edges ``(E, 2)`` int64 (``i < j``, sorted) of a triangle mesh ``faces (F, 3)``.

    ``faces`` int32/int64; with ``num_vertices`` given, indices are checked to be in range.
    """
    fn = "mesh_edges"
    f = _int_tensor(fn, "faces", faces, "(F, 3)", 2, 3)
    if num_vertices is not None:
        _check_range(fn, "faces", f, _num(fn, "num_vertices", num_vertices))
    if f.numel() == 0:
        return torch.zeros(0, 2, dtype=torch.long, device=f.device)
    e = torch.cat([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]], 0)
    e = torch.sort(e, dim=1).values
    e = e[e[:, 0] != e[:, 1]]  # degenerate faces repeat a vertex
    return torch.unique(e, dim=0)


def make_graph(edges, num_vertices: int, symmetric: bool = True, self_loops: Optional[bool] = False,
               normalize: Optional[str] = None, weights=None, vertex_offsets=None) -> Graph:
    """Build a :class:`Graph` from arbitrary edges.

    Args:
        edges: ``(E, 2)`` integer pairs ``(i, j)`` (``i`` receives from ``j``), any order.
            Duplicates are merged: their weights add up (unweighted: one edge of weight 1).
        num_vertices: ``N`` (vertices without edges are isolated).
        symmetric: treat every pair as undirected (for a mesh edge list): ``A[i, j] = A[j, i]`` =
            the summed weight of all listed ``(i, j)`` and ``(j, i)``.
        self_loops: ``True`` gives every vertex exactly one self-loop ``(i, i)`` (weight 1 before
            normalisation), ``False`` removes self-loops, ``None`` keeps the edges as given.
        normalize: ``None`` (weights as given / ones), ``"row"`` (each row sums to 1:
            ``w_ij / sum_k w_ik``, the mean over neighbours; TF Graphics' FeaStNet convention) or
            ``"sym"`` (``w_ij / sqrt(d_i d_j)`` with ``d`` the row sums: Kipf & Welling). Rows with
            no edges stay empty (no NaN).
        weights: optional ``(E,)`` float edge weights (default ones).
        vertex_offsets: optional ``(B + 1,)`` packed-batch boundaries.

    Returns:
        A :class:`Graph` with sorted, unique edges.
    """
    fn = "make_graph"
    N = _num(fn, "num_vertices", num_vertices)
    e = _int_tensor(fn, "edges", edges, "(E, 2)", 2, 2)
    _check_range(fn, "edges", e, N)
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"{fn}: normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
    dt = torch.float32
    if weights is not None:
        if not torch.is_tensor(weights) or not weights.is_floating_point() or tuple(weights.shape) != (e.shape[0],):
            raise ValueError(f"{fn}: weights must be a float tensor of shape ({e.shape[0]},)")
        if not bool(torch.isfinite(weights).all()):
            raise ValueError(f"{fn}: weights contains NaN or infinite values")
        dt = weights.dtype
        w = weights.detach().to(e.device)
    else:
        w = torch.ones(e.shape[0], dtype=dt, device=e.device)
    M = max(N, 1)
    if symmetric:
        # canonical unordered pairs {i, j}: weights listed for either direction add up, then mirror
        lo, hi = e.min(1).values, e.max(1).values
        uniq, inv = torch.unique(lo * M + hi, return_inverse=True)
        ws = torch.zeros(uniq.shape[0], dtype=w.dtype, device=w.device).index_add_(0, inv, w)
        lo, hi = uniq // M, uniq % M
        off = lo != hi
        e = torch.cat([torch.stack([lo, hi], 1), torch.stack([hi[off], lo[off]], 1)], 0)
        w = torch.cat([ws, ws[off]], 0)
    if self_loops is not None:
        keep = e[:, 0] != e[:, 1]
        e, w = e[keep], w[keep]
        if self_loops:
            ar = torch.arange(N, device=e.device)
            e = torch.cat([e, torch.stack([ar, ar], 1)], 0)
            w = torch.cat([w, torch.ones(N, dtype=w.dtype, device=w.device)], 0)
    uniq, inv = torch.unique(e[:, 0] * M + e[:, 1], return_inverse=True)
    w = torch.zeros(uniq.shape[0], dtype=w.dtype, device=w.device).index_add_(0, inv, w)
    e = torch.stack([uniq // M, uniq % M], 1)
    if weights is None:
        w = torch.ones_like(w)  # unweighted: duplicates collapse to one edge of weight 1
    if normalize is not None:
        d = torch.zeros(N, dtype=w.dtype, device=w.device).index_add_(0, e[:, 0], w)
        if normalize == "row":
            w = w / d[e[:, 0]]
        else:
            w = w * torch.rsqrt(d[e[:, 0]]) * torch.rsqrt(d[e[:, 1]])
        w = torch.nan_to_num(w, nan=0.0, posinf=0.0, neginf=0.0)
    unweighted = weights is None and normalize is None
    return Graph(e, N, None if unweighted else w, vertex_offsets)


def mesh_graph(faces, num_vertices: int, self_loops: bool = True, normalize: Optional[str] = "row") -> Graph:
    """The symmetric vertex graph of a triangle mesh ``faces (F, 3)`` over ``num_vertices`` vertices.

    Defaults give TF Graphics' FeaStNet neighbourhood: 1-ring plus self, row-normalised
    (``w_ij = 1 / |N_i|``). Vertices no face uses are isolated (with ``self_loops=True`` they keep
    only their self-loop). See :func:`make_graph` for ``self_loops`` and ``normalize``.
    """
    N = _num("mesh_graph", "num_vertices", num_vertices)
    return make_graph(mesh_edges(faces, N), N, symmetric=True, self_loops=self_loops, normalize=normalize)


def pack_graphs(graphs: Sequence[Graph]) -> Graph:
    """Concatenate graphs into one packed :class:`Graph` (vertex ids offset, ``vertex_offsets`` set).

    All graphs must be on one device and either all weighted or all unweighted. Nested packs are
    flattened (their own mesh boundaries are kept).
    """
    fn = "pack_graphs"
    graphs = list(graphs)
    if not graphs or not all(isinstance(g, Graph) for g in graphs):
        raise TypeError(f"{fn}: graphs must be a non-empty sequence of taichirast.nn.Graph")
    if len({str(g.device) for g in graphs}) > 1:
        raise ValueError(f"{fn}: graphs must be on one device, got {[str(g.device) for g in graphs]}")
    weighted = [g.weights is not None for g in graphs]
    if any(weighted) and not all(weighted):
        raise ValueError(f"{fn}: graphs must be all weighted or all unweighted")
    edges, weights, offs, start = [], [], [torch.zeros(1, dtype=torch.long, device=graphs[0].device)], 0
    for g in graphs:
        edges.append(g.edges + start)
        if g.weights is not None:
            weights.append(g.weights)
        offs.append(g.vertex_offsets[1:] + start)
        start += g.num_vertices
    w = torch.cat(weights) if all(weighted) else None
    return Graph(torch.cat(edges, 0), start, w, torch.cat(offs))


def pack_meshes(verts_list: Sequence[torch.Tensor], faces_list: Sequence[torch.Tensor], self_loops: bool = True,
                normalize: Optional[str] = "row"):
    """Pack meshes of different sizes into one graph (PyTorch3D's packed representation).

    Args:
        verts_list: ``B`` tensors ``(V_b, C)`` (positions or any per-vertex features).
        faces_list: ``B`` integer tensors ``(F_b, 3)`` indexing their own mesh's vertices.
        self_loops, normalize: see :func:`mesh_graph`.

    Returns:
        ``(verts (sum V_b, C), faces (sum F_b, 3) int64 with offset indices, graph)``.
    """
    fn = "pack_meshes"
    if len(verts_list) != len(faces_list) or not len(verts_list):
        raise ValueError(f"{fn}: verts_list and faces_list must be non-empty and of one length, got "
                         f"{len(verts_list)} and {len(faces_list)}")
    graphs, faces, start = [], [], 0
    for b, (v, f) in enumerate(zip(verts_list, faces_list)):
        if not torch.is_tensor(v) or v.dim() != 2:
            raise ValueError(f"{fn}: verts_list[{b}] must be a tensor of shape (V, C)")
        f = _int_tensor(fn, f"faces_list[{b}]", f, "(F, 3)", 2, 3).to(v.device)
        _check_range(fn, f"faces_list[{b}]", f, v.shape[0])
        graphs.append(mesh_graph(f, v.shape[0], self_loops, normalize))
        faces.append(f + start)
        start += v.shape[0]
    return torch.cat(list(verts_list), 0), torch.cat(faces, 0), pack_graphs(graphs)


def unpack(x, graph: Graph) -> List[torch.Tensor]:
    """Split packed per-vertex values ``x (N, ...)`` into one tensor per mesh of ``graph``."""
    return graph.unpack(x)
