"""Graph convolutions and mesh pooling as ``torch.nn.Module`` subclasses (imports torch).

Graphs (:mod:`taichirast.nn.graph`): :class:`Graph`, :func:`mesh_edges`, :func:`make_graph`,
:func:`mesh_graph`, :func:`pack_graphs`, :func:`pack_meshes`, :func:`unpack`.
Layers (:mod:`taichirast.nn.conv`): :class:`GraphConv`, :class:`FeatureSteeredConv`,
:class:`EdgeConv`, :func:`aggregate`.
Pooling (:mod:`taichirast.nn.pool`): :func:`graph_pool`, :func:`graph_unpool`,
:class:`UpsampleTransposedConv`, :func:`cluster_rank`, :func:`vertex_clustering`,
:func:`coarsen_graph`, :func:`mesh_hierarchy`.
Kernels: :func:`feast_aggregate` (fused Taichi op with a hand-written backward, or the torch
reference).

Example:
    >>> import torch, taichirast.nn as tnn
    >>> from taichirast import meshes
    >>> v, f = meshes.icosphere(1)
    >>> g = tnn.mesh_graph(torch.as_tensor(f), v.shape[0])     # 1-ring + self, row-normalised
    >>> conv = tnn.FeatureSteeredConv(3, 16, num_weights=8)
    >>> conv(torch.as_tensor(v), g).shape
    torch.Size([42, 16])
"""
from ._fused import feast_aggregate, feast_aggregate_taichi, feast_aggregate_torch
from .conv import EdgeConv, FeatureSteeredConv, GraphConv, aggregate
from .graph import Graph, make_graph, mesh_edges, mesh_graph, pack_graphs, pack_meshes, unpack
from .pool import (PoolLevel, UpsampleTransposedConv, cluster_rank, coarsen_graph, graph_pool, graph_unpool,
                   mesh_hierarchy, vertex_clustering)

__all__ = [
    "Graph", "make_graph", "mesh_edges", "mesh_graph", "pack_graphs", "pack_meshes", "unpack",
    "GraphConv", "FeatureSteeredConv", "EdgeConv", "aggregate",
    "feast_aggregate", "feast_aggregate_taichi", "feast_aggregate_torch",
    "graph_pool", "graph_unpool", "UpsampleTransposedConv", "cluster_rank", "vertex_clustering",
    "coarsen_graph", "mesh_hierarchy", "PoolLevel",
]
