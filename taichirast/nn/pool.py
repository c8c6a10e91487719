"""Mesh pooling: pool / unpool over a vertex-to-cluster map, transposed-convolution upsampling and
a vertex-clustering hierarchy for U-Net-style mesh networks (after TF Graphics' ``graph_pooling``).

A pooling level is a map ``cluster (N,)`` int64 from each fine vertex to one of ``K`` coarse
vertices (TF Graphics' ``pool_map`` with one entry per column). Packed batches work as long as no
cluster mixes meshes (:func:`vertex_clustering` guarantees it).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence

import torch
from torch import nn

from .graph import Graph, _check_range, _int_tensor, make_graph

POOL_REDUCTIONS = ("max", "mean", "sum")


def _cluster(fn, cluster, n, num_clusters, device):
    c = _int_tensor(fn, "cluster", cluster, "(N,)", 1).to(device)
    if c.shape[0] != n:
        raise ValueError(f"{fn}: cluster must have shape ({n},) (one entry per vertex), got {tuple(c.shape)}")
    if num_clusters is None:
        num_clusters = int(c.max()) + 1 if c.numel() else 0
    if isinstance(num_clusters, bool) or int(num_clusters) < 0:
        raise ValueError(f"{fn}: num_clusters must be a non-negative int, got {num_clusters}")
    _check_range(fn, "cluster", c, int(num_clusters))
    return c, int(num_clusters)


def _features(fn, x):
    if not torch.is_tensor(x) or x.dtype not in (torch.float32, torch.float64) or x.dim() != 2:
        got = f"{tuple(x.shape)} {x.dtype}" if torch.is_tensor(x) else type(x).__name__
        raise TypeError(f"{fn}: x must be a float32/float64 tensor of shape (N, C), got {got}")


def graph_pool(x, cluster, num_clusters: Optional[int] = None, reduce: str = "max"):
    """Pool vertex features into clusters: ``x (N, C)``, ``cluster (N,)`` in ``[0, K)`` -> ``(K, C)``.

    ``reduce``: ``"max"`` (TF Graphics' default), ``"mean"`` (TF's ``'weighted'`` with a
    row-normalised pool map) or ``"sum"``. ``num_clusters`` ``K`` defaults to ``cluster.max() + 1``.
    Clusters with no member get zeros. Differentiable w.r.t. ``x`` (max: to the arg-max members).
    """
    fn = "graph_pool"
    if reduce not in POOL_REDUCTIONS:
        raise ValueError(f"{fn}: reduce must be one of {POOL_REDUCTIONS}, got {reduce!r}")
    _features(fn, x)
    c, K = _cluster(fn, cluster, x.shape[0], num_clusters, x.device)
    C = x.shape[1]
    if reduce == "max":
        return x.new_zeros(K, C).scatter_reduce(0, c.unsqueeze(1).expand(-1, C), x, "amax", include_self=False)
    y = x.new_zeros(K, C).index_add_(0, c, x)
    if reduce == "mean":
        y = y / torch.bincount(c, minlength=K).clamp_min(1).to(x.dtype).unsqueeze(1)
    return y


def graph_unpool(x, cluster):
    """Copy coarse features back to the fine vertices: ``x (K, C)``, ``cluster (N,)`` -> ``(N, C)``.

    TF Graphics' ``unpool`` (the transposed, row-normalised pool map; with one cluster per vertex
    every fine vertex takes its cluster's features).
    """
    fn = "graph_unpool"
    _features(fn, x)
    c, _ = _cluster(fn, cluster, _int_tensor(fn, "cluster", cluster, "(N,)", 1).shape[0], x.shape[0], x.device)
    return x.index_select(0, c)


def cluster_rank(cluster, num_clusters: Optional[int] = None):
    """``(N,)`` int64 rank of each vertex among its cluster's members (in vertex order: 0, 1, ...)."""
    c, K = _cluster("cluster_rank", cluster, _int_tensor("cluster_rank", "cluster", cluster, "(N,)", 1).shape[0],
                    num_clusters, cluster.device if torch.is_tensor(cluster) else None)
    order = torch.argsort(c * max(c.shape[0], 1) + torch.arange(c.shape[0], device=c.device))
    counts = torch.bincount(c, minlength=K)
    start = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(c)
    rank[order] = torch.arange(c.shape[0], device=c.device) - start[c[order]]
    return rank


class UpsampleTransposedConv(nn.Module):
    """Upsampling by transposed convolution (TF Graphics' ``upsample_transposed_convolution``).

    Each coarse vertex ``k`` emits ``kernel_size`` learned rows ``W_r^T x_k + b``
    (``r = 0 .. kernel_size - 1``); the ``r``-th member of cluster ``k`` (:func:`cluster_rank`)
    takes row ``r``. Members past ``kernel_size`` reuse the last row (TF repeats the last entry
    for short clusters and truncates long ones, leaving those vertices at zero; repeating is the
    choice here so that every fine vertex gets a value).

    Shapes: ``x (K, C)``, ``cluster (N,)`` -> ``(N, D)``. Parameters: ``weight (kernel_size, C, D)``,
    ``bias (D,)``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True):
        super().__init__()
        if kernel_size < 1:
            raise ValueError(f"UpsampleTransposedConv: kernel_size must be >= 1, got {kernel_size}")
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        s = 1.0 / (in_channels ** 0.5)
        self.weight = nn.Parameter(torch.empty(kernel_size, in_channels, out_channels).uniform_(-s, s))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None

    def forward(self, x, cluster):
        fn = "UpsampleTransposedConv"
        _features(fn, x)
        if x.shape[1] != self.in_channels:
            raise ValueError(f"{fn}: x must have {self.in_channels} channels, got shape {tuple(x.shape)}")
        c, K = _cluster(fn, cluster, _int_tensor(fn, "cluster", cluster, "(N,)", 1).shape[0], x.shape[0], x.device)
        R, C, D = self.kernel_size, self.in_channels, self.out_channels
        rows = (x @ self.weight.permute(1, 0, 2).reshape(C, R * D)).reshape(K, R, D)
        r = cluster_rank(c, K).clamp_max(R - 1)
        y = rows[c, r]
        return y + self.bias if self.bias is not None else y


def vertex_clustering(verts, voxel_size: float, batch=None):
    """Cluster vertices by a voxel grid (Rossignac & Borrel vertex clustering).

    Args:
        verts: ``(N, 3)`` float positions (a packed batch is fine).
        voxel_size: grid cell edge length (> 0).
        batch: optional ``(N,)`` int64 mesh index per vertex (``Graph.batch``); clusters never mix
            meshes and are numbered mesh by mesh.

    Returns:
        ``(cluster (N,) int64, num_clusters K, centers (K, 3))``, centers the members' mean.
        Clusters are numbered in order of ``(mesh, voxel)``, so mesh ``b``'s clusters are a
        contiguous range.
    """
    fn = "vertex_clustering"
    if not torch.is_tensor(verts) or not verts.is_floating_point() or verts.dim() != 2 or verts.shape[1] != 3:
        got = tuple(verts.shape) if torch.is_tensor(verts) else type(verts).__name__
        raise ValueError(f"{fn}: verts must be a float tensor of shape (N, 3), got {got}")
    if not float(voxel_size) > 0:
        raise ValueError(f"{fn}: voxel_size must be > 0, got {voxel_size}")
    if verts.numel() and not bool(torch.isfinite(verts).all()):
        raise ValueError(f"{fn}: verts contains NaN or infinite values")
    N = verts.shape[0]
    if N == 0:
        return torch.zeros(0, dtype=torch.long, device=verts.device), 0, verts.new_zeros(0, 3)
    if batch is None:
        batch = torch.zeros(N, dtype=torch.long, device=verts.device)
    batch = _int_tensor(fn, "batch", batch, "(N,)", 1).to(verts.device)
    if batch.shape[0] != N:
        raise ValueError(f"{fn}: batch must have shape ({N},), got {tuple(batch.shape)}")
    cell = torch.floor(verts.detach() / float(voxel_size)).long()
    cell = cell - cell.min(0).values
    key = torch.cat([batch.unsqueeze(1), cell], 1)
    uniq, cluster = torch.unique(key, dim=0, return_inverse=True)  # lexicographic: mesh first
    K = uniq.shape[0]
    counts = torch.bincount(cluster, minlength=K).to(verts.dtype).unsqueeze(1)
    centers = verts.new_zeros(K, 3).index_add_(0, cluster, verts.detach()) / counts
    return cluster, K, centers


def coarsen_graph(graph: Graph, cluster, num_clusters: Optional[int] = None, self_loops: bool = True,
                  normalize: Optional[str] = "row") -> Graph:
    """The graph over clusters: ``k <- l`` whenever some fine edge joins a member of ``k`` and one of ``l``.

    Symmetric when ``graph`` is; ``self_loops`` / ``normalize`` as in :func:`~taichirast.nn.make_graph`.
    Mesh boundaries carry over (``vertex_offsets`` of the coarse graph), which needs every cluster's
    members in one mesh and clusters numbered mesh by mesh (as :func:`vertex_clustering` does).
    """
    fn = "coarsen_graph"
    if not isinstance(graph, Graph):
        raise TypeError(f"{fn}: graph must be a taichirast.nn.Graph, got {type(graph).__name__}")
    c, K = _cluster(fn, cluster, graph.num_vertices, num_clusters, graph.device)
    B = graph.num_graphs
    if B > 1 and c.numel():
        bmax = torch.full((K,), -1, dtype=torch.long, device=c.device).scatter_reduce(0, c, graph.batch, "amax")
        bmin = torch.full((K,), B, dtype=torch.long, device=c.device).scatter_reduce(0, c, graph.batch, "amin")
        used = bmax >= 0
        if bool((bmax[used] != bmin[used]).any()):
            raise ValueError(f"{fn}: a cluster has members in more than one mesh of the packed batch")
        cb = torch.cummax(torch.where(used, bmax, torch.zeros_like(bmax)), 0).values
        if bool((cb[used] != bmax[used]).any()):
            raise ValueError(f"{fn}: clusters must be numbered mesh by mesh (mesh 0's first, then mesh 1's, ...)")
        counts = torch.bincount(cb, minlength=B)
        offsets = torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)])
    else:
        offsets = torch.tensor([0] * B + [K], dtype=torch.long, device=c.device)
    ce = c[graph.edges]
    return make_graph(ce, K, symmetric=False, self_loops=self_loops, normalize=normalize, vertex_offsets=offsets)


@dataclass
class PoolLevel:
    """One level of a pooling hierarchy: ``cluster (N_fine,)`` into this level's ``num_vertices``
    vertices at ``verts (N, 3)`` with graph ``graph``."""

    cluster: torch.Tensor
    verts: torch.Tensor
    graph: Graph

    @property
    def num_vertices(self) -> int:
        return self.graph.num_vertices


def mesh_hierarchy(verts, graph: Graph, voxel_sizes: Sequence[float], self_loops: bool = True,
                   normalize: Optional[str] = "row") -> List[PoolLevel]:
    """A pooling hierarchy by repeated vertex clustering, for U-Net-style mesh networks.

    Args:
        verts: ``(N, 3)`` positions of the (packed) fine mesh.
        graph: its :class:`~taichirast.nn.Graph`.
        voxel_sizes: increasing voxel sizes, one per coarser level.
        self_loops, normalize: for the coarse graphs (see :func:`coarsen_graph`).

    Returns:
        ``[PoolLevel, ...]`` from finer to coarser; level ``l``'s ``cluster`` maps level ``l - 1``'s
        vertices (the input mesh for ``l = 0``) to its own. Use ``graph_pool(x, lvl.cluster,
        lvl.num_vertices)`` going down and ``graph_unpool(x, lvl.cluster)`` coming back up.
    """
    levels, v, g = [], verts, graph
    for s in voxel_sizes:
        cluster, K, centers = vertex_clustering(v, s, g.batch)
        g = coarsen_graph(g, cluster, K, self_loops=self_loops, normalize=normalize)
        levels.append(PoolLevel(cluster, centers, g))
        v = centers
    return levels
