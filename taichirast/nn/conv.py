"""Graph convolution layers over (packed) mesh graphs: ``GraphConv``, ``FeatureSteeredConv``, ``EdgeConv``.

Every layer is a ``torch.nn.Module`` called as ``layer(x, graph)`` with node features
``x (N, C)`` float32/float64 and a :class:`~taichirast.nn.Graph` (edge ``(i, j)``: ``i`` receives
from ``j``, weight ``w_ij``; see :mod:`taichirast.nn.graph`), or raw directed edges ``(E, 2)``
(used as given, unit weights; build a Graph once with :func:`~taichirast.nn.make_graph` /
:func:`~taichirast.nn.mesh_graph` to normalise and to reuse its cached CSR arrays). Output ``(N, D)``. Packed batches of
meshes go through in one call; results equal per-mesh calls. Layers are permutation equivariant:
relabelling the vertices (and the graph accordingly) permutes the output rows.
"""
from __future__ import annotations

import math
from typing import Callable, Union

import torch
from torch import nn

from ._fused import BACKENDS, feast_aggregate
from .graph import Graph, as_graph


def _rows(x):
    return x.shape[0] if torch.is_tensor(x) and x.dim() == 2 else None


def _check_channels(fn, x, c):
    if x.shape[1] != c:
        raise ValueError(f"{fn}: x must have {c} channels (in_channels), got shape {tuple(x.shape)}")


def aggregate(x, graph: Graph):
    """``y[i] = sum_{(i <- j)} w_ij x[j]``: the sparse adjacency times ``x (N, C)`` -> ``(N, C)``."""
    i, j = graph.edges[:, 0], graph.edges[:, 1]
    msg = x.index_select(0, j)
    if graph.weights is not None:
        msg = msg * graph.edge_weights(x.dtype).unsqueeze(-1)
    return x.new_zeros(graph.num_vertices, x.shape[1]).index_add_(0, i, msg)


class GraphConv(nn.Module):
    """Graph convolution (Kipf & Welling 2017; PyTorch3D's ``GraphConv`` variant by default).

    ``separate_self=True`` (PyTorch3D): ``y_i = W0 x_i + sum_{(i <- j)} w_ij W1 x_j + b`` -- use a
    graph *without* self-loops (PyTorch3D sums unweighted neighbours: ``mesh_graph(faces, V,
    self_loops=False, normalize=None)``).
    ``separate_self=False`` (Kipf & Welling): ``y_i = sum_{(i <- j)} w_ij W x_j + b`` -- use
    ``mesh_graph(faces, V, self_loops=True, normalize="sym")`` for ``D^-1/2 (A + I) D^-1/2``.

    Args:
        in_channels ``C``, out_channels ``D``; bias; separate_self.
    Shapes: ``x (N, C)`` -> ``(N, D)``.
    """

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True, separate_self: bool = True):
        super().__init__()
        self.in_channels, self.out_channels, self.separate_self = in_channels, out_channels, separate_self
        self.w1 = nn.Linear(in_channels, out_channels, bias=False)
        self.w0 = nn.Linear(in_channels, out_channels, bias=False) if separate_self else None
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None

    def forward(self, x, graph: Graph):
        graph = as_graph("GraphConv", graph, _rows(x))
        graph.check_features("GraphConv", x)
        _check_channels("GraphConv", x, self.in_channels)
        # project first when it shrinks the gathered width (E x min(C, D) intermediate)
        if self.out_channels <= self.in_channels:
            y = aggregate(self.w1(x), graph)
        else:
            y = self.w1(aggregate(x, graph))
        if self.w0 is not None:
            y = y + self.w0(x)
        if self.bias is not None:
            y = y + self.bias
        return y


class FeatureSteeredConv(nn.Module):
    """Feature-steered graph convolution (FeaStNet; Verma, Boyer & Verbeek, CVPR 2018).

    Matches TF Graphics' ``feature_steered_convolution``
    (``tensorflow_graphics/geometry/convolution/graph_convolution.py``)::

        q_m(x_i, x_j) = softmax_m(u_m . x_i + v_m . x_j + c_m)
        y_i = b + sum_{(i <- j)} w_ij sum_m q_m(x_i, x_j) W_m x_j

    where ``w_ij`` are the graph's weights; TF Graphics (and the paper's ``1 / |N_i|``) use the
    row-normalised adjacency with self-loops, which :func:`~taichirast.nn.mesh_graph` builds by
    default. ``translation_invariant=True`` (the paper's choice, TF's Keras layer default) ties
    ``v = -u``, written here as ``softmax_m(u_m . (x_j - x_i) + c_m)``.

    Args:
        in_channels ``C``, out_channels ``D``, num_weights ``M`` (weight matrices ``W_m``).
        translation_invariant: see above (else separate ``u`` and ``v``).
        bias: learn ``b``.
        backend: ``"auto"`` (fused Taichi kernel when Taichi can read the tensors in place),
            ``"taichi"`` or ``"torch"`` (reference: gather / softmax / scatter, which keeps an
            ``E x M x D`` tensor for the backward).
    Shapes: ``x (N, C)`` -> ``(N, D)``. Vertices with no edges get ``b``.
    Parameters: ``u (C, M)``, ``v (C, M)`` (if not translation-invariant), ``c (M,)``,
    ``weight (M, C, D)``, ``bias (D,)``.
    """

    def __init__(self, in_channels: int, out_channels: int, num_weights: int = 8, translation_invariant: bool = True,
                 bias: bool = True, backend: str = "auto"):
        super().__init__()
        if backend not in BACKENDS:
            raise ValueError(f"FeatureSteeredConv: backend must be one of {BACKENDS}, got {backend!r}")
        if num_weights < 1:
            raise ValueError(f"FeatureSteeredConv: num_weights must be >= 1, got {num_weights}")
        C, D, M = in_channels, out_channels, num_weights
        self.in_channels, self.out_channels, self.num_weights = C, D, M
        self.translation_invariant, self.backend = translation_invariant, backend
        s = 1.0 / math.sqrt(max(C, 1))
        self.u = nn.Parameter(torch.empty(C, M).uniform_(-s, s))
        self.v = None if translation_invariant else nn.Parameter(torch.empty(C, M).uniform_(-s, s))
        self.c = nn.Parameter(torch.zeros(M))
        self.weight = nn.Parameter(torch.empty(M, C, D).uniform_(-s, s))
        self.bias = nn.Parameter(torch.zeros(D)) if bias else None

    def forward(self, x, graph: Graph):
        graph = as_graph("FeatureSteeredConv", graph, _rows(x))
        graph.check_features("FeatureSteeredConv", x)
        _check_channels("FeatureSteeredConv", x, self.in_channels)
        N, C, M, D = x.shape[0], self.in_channels, self.num_weights, self.out_channels
        xu = x @ self.u
        a, b = (-xu, xu) if self.translation_invariant else (xu, x @ self.v)
        # (N, D, M) in memory (the fused kernel's layout), seen as (N, M, D)
        xw = (x @ self.weight.permute(1, 2, 0).reshape(C, D * M)).reshape(N, D, M).permute(0, 2, 1)
        y = feast_aggregate(a, b, self.c, xw, graph, self.backend)
        return y + self.bias if self.bias is not None else y


REDUCTIONS = ("max", "mean", "sum", "weighted")


class EdgeConv(nn.Module):
    """Edge convolution (Wang et al. 2019, DGCNN; TF Graphics' ``edge_convolution_template``).

    ``y_i = R_{(i <- j)} f(x_i, x_j)`` with a user network ``f`` and reduction ``R``:
    ``"max"`` (DGCNN, TF's ``'max'``), ``"mean"``, ``"sum"``, or ``"weighted"``
    (``sum_j w_ij f(x_i, x_j)`` with the graph's weights, TF's ``'weighted'``).

    Args:
        nn_module: maps edge features ``(E, F)`` to ``(E, D)`` (e.g. an MLP).
        edge_features: ``"diff"`` (DGCNN: ``[x_i, x_j - x_i]``, ``F = 2C``), ``"pair"``
            (``[x_i, x_j]``, ``F = 2C``), ``"neighbor"`` (``x_j``, ``F = C``), or a callable
            ``f(x_i (E, C), x_j (E, C)) -> (E, F)``.
        reduction: one of ``"max"``, ``"mean"``, ``"sum"``, ``"weighted"``.
    Shapes: ``x (N, C)`` -> ``(N, D)``. Vertices with no edges get zeros.
    Note: the edge network runs on ``E`` rows (torch ops; a user network cannot be fused).
    """

    def __init__(self, nn_module: Callable, edge_features: Union[str, Callable] = "diff", reduction: str = "max"):
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"EdgeConv: reduction must be one of {REDUCTIONS}, got {reduction!r}")
        if not callable(edge_features) and edge_features not in ("diff", "pair", "neighbor"):
            raise ValueError(f"EdgeConv: edge_features must be 'diff', 'pair', 'neighbor' or a callable, got {edge_features!r}")
        if not callable(nn_module):
            raise TypeError(f"EdgeConv: nn_module must be callable, got {type(nn_module).__name__}")
        self.nn = nn_module
        self.edge_features, self.reduction = edge_features, reduction

    def forward(self, x, graph: Graph):
        graph = as_graph("EdgeConv", graph, _rows(x))
        graph.check_features("EdgeConv", x)
        i, j = graph.edges[:, 0], graph.edges[:, 1]
        xi, xj = x.index_select(0, i), x.index_select(0, j)
        ef = self.edge_features
        feats = (ef(xi, xj) if callable(ef) else torch.cat([xi, xj - xi], 1) if ef == "diff"
                 else torch.cat([xi, xj], 1) if ef == "pair" else xj)
        h = self.nn(feats)
        if h.dim() != 2 or h.shape[0] != graph.num_edges:
            raise ValueError(f"EdgeConv: nn_module must return (E, D) = ({graph.num_edges}, D), got {tuple(h.shape)}")
        N, D = graph.num_vertices, h.shape[1]
        if self.reduction == "max":
            # include_self=False: rows without edges keep the zero they start with
            return h.new_zeros(N, D).scatter_reduce(0, i.unsqueeze(1).expand(-1, D), h, "amax", include_self=False)
        if self.reduction == "weighted":
            h = h * graph.edge_weights(h.dtype).unsqueeze(-1)
        y = h.new_zeros(N, D).index_add_(0, i, h)
        if self.reduction == "mean":
            y = y / graph.degree.clamp_min(1).to(h.dtype).unsqueeze(-1)
        return y
