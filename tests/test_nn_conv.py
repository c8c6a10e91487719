"""taichirast.nn layers against dense references written here; gradients; equivariance; batching."""
import pytest
import torch
from torch import nn

from taichirast import meshes
from taichirast.nn import (EdgeConv, FeatureSteeredConv, GraphConv, aggregate, feast_aggregate, feast_aggregate_taichi,
                           feast_aggregate_torch, make_graph, mesh_graph, pack_graphs)

D64 = torch.float64


def dense(g, dtype=D64):
    A = torch.zeros(g.num_vertices, g.num_vertices, dtype=dtype)
    for (i, j), w in zip(g.edges.tolist(), g.edge_weights(dtype).tolist()):
        A[i, j] += w
    return A


def small_graph(seed=0, n=9):
    """A random weighted directed graph with an isolated vertex (the last one) and self-loops."""
    g = torch.Generator().manual_seed(seed)
    e = torch.randint(0, n - 1, (3 * n, 2), generator=g)
    w = torch.rand(3 * n, generator=g, dtype=D64) + 0.1
    return make_graph(e, n, symmetric=False, self_loops=None, weights=w)


def ico_graph(level=1, **kw):
    v, f = meshes.icosphere(level)
    return torch.as_tensor(v, dtype=D64), mesh_graph(torch.as_tensor(f), v.shape[0], **kw)


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=D64)


# ----------------------------------------------------------------------------- fused kernel
def test_feast_aggregate_fused_equals_torch_forward_backward():
    g = small_graph()
    N, M, D = g.num_vertices, 3, 4
    ins = [rand(N, M, seed=1), rand(N, M, seed=2), rand(M, seed=3), rand(N, M, D, seed=4)]
    gy = rand(N, D, seed=5)
    outs = {}
    for name, fn in (("torch", feast_aggregate_torch), ("taichi", feast_aggregate_taichi)):
        leaves = [t.clone().requires_grad_() for t in ins]
        y = fn(*leaves, g)
        outs[name] = (y.detach(),) + torch.autograd.grad(y, leaves, gy)
    for a, b in zip(outs["torch"], outs["taichi"]):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    assert outs["taichi"][0][-1].abs().max() == 0  # the isolated vertex receives nothing


def test_feast_aggregate_gradcheck_fused_float64():
    g = small_graph(seed=1, n=6)
    N, M, D = g.num_vertices, 2, 3
    ins = [rand(N, M, seed=1).requires_grad_(), rand(N, M, seed=2).requires_grad_(), rand(M, seed=3).requires_grad_(),
           rand(N, M, D, seed=4).requires_grad_()]
    assert torch.autograd.gradcheck(lambda *t: feast_aggregate_taichi(*t, g), ins)


def test_feast_aggregate_float32_and_dispatch():
    g = small_graph(seed=2)
    N, M, D = g.num_vertices, 8, 5
    ins = [rand(N, M, seed=1).float(), rand(N, M, seed=2).float(), rand(M, seed=3).float(), rand(N, M, D, seed=4).float()]
    y = feast_aggregate(*ins, g)  # auto -> fused on the CPU backend
    torch.testing.assert_close(y, feast_aggregate(*ins, g, backend="torch"), rtol=1e-5, atol=1e-5)
    assert y.dtype == torch.float32
    with pytest.raises(ValueError, match="backend must be one of"):
        feast_aggregate(*ins, g, backend="cuda")


def test_aggregate_is_the_adjacency_product():
    x = rand(9, 3)
    g = small_graph(seed=6)  # weighted
    torch.testing.assert_close(aggregate(x, g), dense(g) @ x)
    gu = make_graph(g.edges, g.num_vertices, symmetric=False, self_loops=None)  # unweighted
    assert gu.weights is None
    torch.testing.assert_close(aggregate(x, gu), (dense(g) != 0).double() @ x)


# ----------------------------------------------------------------------------- dense references
def feast_dense(layer, x, A):
    u = layer.u.detach().to(D64)
    diff = x[None, :, :] - x[:, None, :]  # (i, j, C): x_j - x_i
    if layer.translation_invariant:
        logits = diff @ u
    else:
        logits = (x @ u)[:, None, :] + (x @ layer.v.detach().to(D64))[None, :, :]
    Q = torch.softmax(logits + layer.c.detach().to(D64), -1)  # (i, j, M)
    XW = torch.einsum("jc,mcd->jmd", x, layer.weight.detach().to(D64))
    return torch.einsum("ij,ijm,jmd->id", A, Q, XW) + layer.bias.detach().to(D64)


@pytest.mark.parametrize("backend", ["torch", "taichi"])
@pytest.mark.parametrize("ti_", [True, False])
def test_feature_steered_conv_matches_dense(backend, ti_):
    v, g = ico_graph(1)
    torch.manual_seed(0)
    layer = FeatureSteeredConv(3, 5, num_weights=4, translation_invariant=ti_, backend=backend).double()
    with torch.no_grad():
        layer.c.normal_()
        layer.bias.normal_()
    torch.testing.assert_close(layer(v, g), feast_dense(layer, v, dense(g)))


def test_graph_conv_matches_dense_both_variants():
    v, g = ico_graph(1, self_loops=False, normalize=None)
    x = rand(v.shape[0], 4)
    torch.manual_seed(0)
    layer = GraphConv(4, 6).double()
    with torch.no_grad():
        layer.bias.normal_()
    A = dense(g)
    ref = x @ layer.w0.weight.T + A @ x @ layer.w1.weight.T + layer.bias
    torch.testing.assert_close(layer(x, g), ref)
    small = GraphConv(4, 2).double()  # projection before aggregation (D < C)
    torch.testing.assert_close(small(x, g), x @ small.w0.weight.T + A @ x @ small.w1.weight.T + small.bias)
    _, gk = ico_graph(1, self_loops=True, normalize="sym")
    kipf = GraphConv(4, 6, separate_self=False).double()
    torch.testing.assert_close(kipf(x, gk), dense(gk) @ x @ kipf.w1.weight.T + kipf.bias)


@pytest.mark.parametrize("reduction", ["max", "mean", "sum", "weighted"])
def test_edge_conv_matches_loop_reference(reduction):
    g = small_graph(seed=3)
    x = rand(g.num_vertices, 3)
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 4)).double()
    layer = EdgeConv(mlp, reduction=reduction)
    y = layer(x, g)
    A = dense(g)
    ref = torch.zeros(g.num_vertices, 4, dtype=D64)
    for i in range(g.num_vertices):
        js = torch.nonzero(A[i] != 0).flatten()
        if len(js) == 0:
            continue
        h = mlp(torch.cat([x[i].expand(len(js), 3), x[js] - x[i]], 1))
        ref[i] = {"max": lambda: h.max(0).values, "mean": lambda: h.mean(0), "sum": lambda: h.sum(0),
                  "weighted": lambda: (A[i, js, None] * h).sum(0)}[reduction]()
    torch.testing.assert_close(y, ref)
    assert y[-1].abs().max() == 0  # isolated vertex


def test_edge_conv_feature_modes():
    g = small_graph(seed=4)
    x = rand(g.num_vertices, 2)
    lin = nn.Linear(2, 3).double()
    # "neighbor" + "weighted" is the adjacency times the per-vertex network: sum_j w_ij (W x_j + b)
    y = EdgeConv(lin, edge_features="neighbor", reduction="weighted")(x, g)
    torch.testing.assert_close(y, dense(g) @ lin(x))
    net = nn.Linear(4, 3).double()
    pair = EdgeConv(net, edge_features="pair", reduction="sum")(x, g)
    cust = EdgeConv(net, edge_features=lambda a, b: torch.cat([a, b], 1), reduction="sum")(x, g)
    torch.testing.assert_close(pair, cust)
    xi = x.index_select(0, g.edges[:, 0])
    xj = x.index_select(0, g.edges[:, 1])
    ref = torch.zeros(g.num_vertices, 3, dtype=D64).index_add_(0, g.edges[:, 0], net(torch.cat([xi, xj], 1)))
    torch.testing.assert_close(pair, ref)
    with pytest.raises(ValueError, match="must return"):
        EdgeConv(lambda h: h.sum(), edge_features="neighbor")(x, g)


# ----------------------------------------------------------------------------- gradients
def test_layers_gradcheck_float64():
    g = small_graph(seed=5, n=6)
    x = rand(g.num_vertices, 3).requires_grad_()
    torch.manual_seed(0)
    layers = [FeatureSteeredConv(3, 2, num_weights=3, backend="taichi").double(),
              FeatureSteeredConv(3, 2, num_weights=2, translation_invariant=False, backend="taichi").double(),
              GraphConv(3, 2).double(),
              EdgeConv(nn.Sequential(nn.Linear(6, 4), nn.Tanh(), nn.Linear(4, 2)).double(), reduction="mean")]
    for layer in layers:
        params = [p for p in layer.parameters()]
        assert torch.autograd.gradcheck(lambda x, *ps: layer(x, g), [x] + params), type(layer).__name__


# ----------------------------------------------------------------------------- structure
def permuted(g, perm):
    """The graph with vertex ``perm[k]`` renamed ``k``."""
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(len(perm))
    return make_graph(inv[g.edges], g.num_vertices, symmetric=False, self_loops=None, weights=g.edge_weights(D64))


def all_layers():
    torch.manual_seed(1)
    return [FeatureSteeredConv(3, 4, num_weights=3).double(), GraphConv(3, 4).double(),
            EdgeConv(nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 4)).double(), reduction="max")]


def test_permutation_equivariance():
    v, g = ico_graph(1)
    perm = torch.randperm(g.num_vertices, generator=torch.Generator().manual_seed(0))
    gp = permuted(g, perm)
    for layer in all_layers():
        torch.testing.assert_close(layer(v[perm], gp), layer(v, g)[perm])


def test_batching_equals_one_by_one():
    v1, g1 = ico_graph(1)
    v2, f2 = meshes.cylinder(6, capped=True)
    v2 = torch.as_tensor(v2, dtype=D64)
    g2 = mesh_graph(torch.as_tensor(f2), v2.shape[0])
    gb = pack_graphs([g1, g2])
    vb = torch.cat([v1, v2])
    for layer in all_layers():
        y = layer(vb, gb)
        torch.testing.assert_close(y, torch.cat([layer(v1, g1), layer(v2, g2)]))


def test_empty_graph_and_isolated_vertices():
    for layer in all_layers():
        g0 = make_graph(torch.zeros(0, 2, dtype=torch.long), 0)
        x0 = torch.zeros(0, 3, dtype=D64, requires_grad=True)
        y0 = layer(x0, g0)
        assert y0.shape == (0, 4)
        y0.sum().backward()
        # three vertices, no edges at all: finite outputs (bias or self term), zero-size edge path
        g3 = make_graph(torch.zeros(0, 2, dtype=torch.long), 3, self_loops=False)
        x3 = rand(3, 3).requires_grad_()
        y3 = layer(x3, g3)
        assert y3.shape == (3, 4) and torch.isfinite(y3).all()
        y3.sum().backward()
        assert torch.isfinite(x3.grad).all()
    fs = FeatureSteeredConv(3, 4, num_weights=3, backend="taichi").double()
    with torch.no_grad():
        fs.bias.fill_(0.5)
    torch.testing.assert_close(fs(rand(3, 3), g3), torch.full((3, 4), 0.5, dtype=D64))


def test_layer_input_errors():
    v, g = ico_graph(1)
    layer = FeatureSteeredConv(3, 4).double()
    with pytest.raises(ValueError, match="3 channels"):
        layer(rand(g.num_vertices, 2), g)
    with pytest.raises(ValueError, match="NaN"):
        layer(torch.full((g.num_vertices, 3), float("nan"), dtype=D64), g)
    with pytest.raises(ValueError, match=r"x must have shape \(42, C\)"):
        GraphConv(3, 4).double()(rand(5, 3), g)
    with pytest.raises(TypeError, match="edges must be an integer tensor"):
        layer(v, torch.zeros(3, 2))
    with pytest.raises(ValueError, match="edges must index in"):
        layer(v, torch.tensor([[0, 42]]))
    # raw edges are used as given (directed, unit weights)
    raw = g.edges.flip(0)
    gu = make_graph(raw, g.num_vertices, symmetric=False, self_loops=None)
    torch.testing.assert_close(layer(v, raw), layer(v, gu))
    with pytest.raises(ValueError, match="backend"):
        FeatureSteeredConv(3, 4, backend="jax")
    with pytest.raises(ValueError, match="reduction"):
        EdgeConv(nn.Identity(), reduction="min")


def test_package_doctest():
    import doctest

    import taichirast.nn
    from taichirast import runtime

    runtime.ensure_init()  # Taichi's start-up banner would otherwise land in the doctest's output
    res = doctest.testmod(taichirast.nn, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert res.attempted >= 5 and res.failed == 0


def test_feast_aggregate_checks_shapes_before_the_kernel():
    import taichirast.nn as tnn

    v, f = meshes.icosphere(1)
    g = tnn.mesh_graph(torch.from_numpy(f), v.shape[0])
    N, M, D = v.shape[0], 4, 3
    a, b, c, xw = torch.randn(N, M), torch.randn(N, M), torch.randn(M), torch.randn(N, M, D)
    for backend in ("taichi", "torch"):
        with pytest.raises(ValueError, match="a must have shape"):
            tnn.feast_aggregate(a[:2], b, c, xw, g, backend=backend)
        with pytest.raises(ValueError, match="xw must have shape"):
            tnn.feast_aggregate(a, b, c, xw[:5], g, backend=backend)
        with pytest.raises(ValueError, match="c must have shape"):
            tnn.feast_aggregate(a, b, c[:2], xw, g, backend=backend)
        with pytest.raises(ValueError, match="float64"):
            tnn.feast_aggregate(a.double(), b, c, xw, g, backend=backend)
