"""taichirast.nn graph construction and packing, against dense adjacency matrices built here."""
import numpy as np
import pytest
import torch

from taichirast import meshes
from taichirast.nn import Graph, make_graph, mesh_edges, mesh_graph, pack_graphs, pack_meshes, unpack


def dense(g: Graph, dtype=torch.float64):
    A = torch.zeros(g.num_vertices, g.num_vertices, dtype=dtype)
    for (i, j), w in zip(g.edges.tolist(), g.edge_weights(dtype).tolist()):
        A[i, j] += w
    return A


def dense_mesh_adjacency(faces, n):
    A = torch.zeros(n, n, dtype=torch.float64)
    for f in faces.tolist():
        for a in range(3):
            i, j = f[a], f[(a + 1) % 3]
            if i != j:
                A[i, j] = A[j, i] = 1.0
    return A


SQUARE = torch.tensor([[0, 1, 2], [0, 2, 3]])


def test_mesh_edges_square_and_degenerate():
    e = mesh_edges(SQUARE)
    assert e.tolist() == [[0, 1], [0, 2], [0, 3], [1, 2], [2, 3]]
    # a degenerate face contributes only its real edge; int32 faces are accepted
    e2 = mesh_edges(torch.tensor([[0, 1, 1]], dtype=torch.int32))
    assert e2.tolist() == [[0, 1]]
    assert mesh_edges(torch.zeros(0, 3, dtype=torch.long)).shape == (0, 2)


def test_mesh_graph_matches_dense_row_normalised_with_self_loops():
    v, f = meshes.icosphere(1)
    f = torch.as_tensor(f)
    n = v.shape[0]
    g = mesh_graph(f, n)
    A = dense_mesh_adjacency(f, n) + torch.eye(n, dtype=torch.float64)
    ref = A / A.sum(1, keepdim=True)
    torch.testing.assert_close(dense(g), ref)
    # edges sorted by (i, j), unique; rowptr / degree consistent
    key = g.edges[:, 0] * n + g.edges[:, 1]
    assert bool((key[1:] > key[:-1]).all())
    assert g.rowptr[-1].item() == g.num_edges and g.degree.tolist() == (A > 0).sum(1).tolist()


@pytest.mark.parametrize("self_loops", [True, False])
def test_make_graph_sym_normalisation(self_loops):
    n = 5  # vertex 4 isolated
    e = torch.tensor([[0, 1], [1, 2], [2, 0], [2, 3], [1, 0]])  # (1, 0) repeats (0, 1) undirected
    g = make_graph(e, n, symmetric=True, self_loops=self_loops, normalize="sym")
    A = torch.zeros(n, n, dtype=torch.float64)
    for i, j in [[0, 1], [1, 2], [2, 0], [2, 3]]:
        A[i, j] = A[j, i] = 1
    if self_loops:
        A += torch.eye(n, dtype=torch.float64)
    d = A.sum(1)
    dinv = torch.where(d > 0, d.rsqrt(), torch.zeros_like(d))
    torch.testing.assert_close(dense(g), dinv[:, None] * A * dinv[None, :])
    assert torch.isfinite(g.weights).all()
    assert g.degree[4].item() == (1 if self_loops else 0)


def test_make_graph_directed_weighted_duplicates_and_no_normalisation():
    e = torch.tensor([[0, 1], [0, 1], [2, 2], [1, 0]])
    w = torch.tensor([0.5, 0.25, 3.0, 2.0], dtype=torch.float64)
    g = make_graph(e, 3, symmetric=False, self_loops=None, weights=w)
    ref = torch.tensor([[0, 0.75, 0], [2.0, 0, 0], [0, 0, 3.0]], dtype=torch.float64)
    torch.testing.assert_close(dense(g), ref)
    g2 = make_graph(e, 3, symmetric=False, self_loops=False)  # unweighted: duplicates collapse, loops dropped
    assert g2.weights is None and g2.edges.tolist() == [[0, 1], [1, 0]]
    g3 = make_graph(e, 3, symmetric=False, self_loops=None, weights=w, normalize="row")
    torch.testing.assert_close(dense(g3), torch.eye(3, dtype=torch.float64)[[1, 0, 2]])


def test_make_graph_symmetric_weights_add_over_directions():
    g = make_graph(torch.tensor([[0, 1], [1, 0]]), 2, symmetric=True,
                   weights=torch.tensor([1.0, 2.0], dtype=torch.float64))
    torch.testing.assert_close(dense(g), torch.tensor([[0, 3.0], [3.0, 0]], dtype=torch.float64))


def test_pack_meshes_is_block_diagonal_and_unpacks():
    v1, f1 = meshes.icosahedron()
    v2 = torch.rand(4, 3)
    f2 = SQUARE
    v1, f1 = torch.as_tensor(v1), torch.as_tensor(f1)
    V, F, g = pack_meshes([v1, v2], [f1, f2])
    n1 = v1.shape[0]
    assert V.shape == (n1 + 4, 3) and F.shape == (f1.shape[0] + 2, 3)
    assert g.num_graphs == 2 and g.vertex_offsets.tolist() == [0, n1, n1 + 4]
    assert g.batch.tolist() == [0] * n1 + [1] * 4
    ref = torch.block_diag(dense(mesh_graph(f1, n1)), dense(mesh_graph(f2, 4)))
    torch.testing.assert_close(dense(g), ref)
    parts = unpack(V, g)
    assert torch.equal(parts[0], v1) and torch.equal(parts[1], v2)
    # packing packs flattens, keeping all mesh boundaries
    gg = pack_graphs([g, mesh_graph(f2, 4)])
    assert gg.vertex_offsets.tolist() == [0, n1, n1 + 4, n1 + 8]


def test_graph_helpers_sparse_transposed_csr_to():
    g = make_graph(torch.tensor([[0, 1], [2, 1], [1, 2]]), 3, symmetric=False)
    torch.testing.assert_close(g.to_sparse(torch.float64).to_dense(), dense(g))
    colptr, perm = g.transposed_csr()
    cols = g.edges[perm, 1]
    assert bool((cols[1:] >= cols[:-1]).all()) and colptr.tolist() == [0, 0, 2, 3]
    assert g.to("cpu").edges.tolist() == g.edges.tolist()
    assert "num_vertices=3" in repr(g)


def test_empty_graphs():
    g = mesh_graph(torch.zeros(0, 3, dtype=torch.long), 0)
    assert g.num_vertices == 0 and g.num_edges == 0 and g.rowptr.tolist() == [0]
    g = mesh_graph(torch.zeros(0, 3, dtype=torch.long), 3)  # no faces: only self-loops
    torch.testing.assert_close(dense(g), torch.eye(3, dtype=torch.float64))


def test_bad_input_errors():
    with pytest.raises(ValueError, match="faces must index in"):
        mesh_graph(torch.tensor([[0, 1, 5]]), 3)
    with pytest.raises(TypeError, match="edges must be an integer tensor"):
        make_graph(torch.zeros(2, 2), 3)
    with pytest.raises(ValueError, match=r"edges must have shape \(E, 2\)"):
        make_graph(torch.zeros(2, 3, dtype=torch.long), 3)
    with pytest.raises(ValueError, match="edges must index in"):
        make_graph(torch.tensor([[0, -1]]), 3)
    with pytest.raises(ValueError, match="normalize must be one of"):
        make_graph(torch.tensor([[0, 1]]), 3, normalize="col")
    with pytest.raises(ValueError, match="num_vertices must be >= 0"):
        make_graph(torch.tensor([[0, 1]]), -1)
    with pytest.raises(ValueError, match="sorted by"):
        Graph(torch.tensor([[1, 0], [0, 1]]), 2)
    with pytest.raises(ValueError, match="vertex_offsets"):
        Graph(torch.tensor([[0, 1]]), 3, vertex_offsets=torch.tensor([0, 2]))
    with pytest.raises(ValueError, match="same length|one length"):
        pack_meshes([torch.rand(3, 3)], [])
    with pytest.raises(TypeError, match="non-empty sequence"):
        pack_graphs([])
    g = mesh_graph(SQUARE, 4)
    with pytest.raises(ValueError, match=r"x must have shape \(4, C\)"):
        g.check_features("f", torch.rand(5, 2))
    with pytest.raises(TypeError, match="float32/float64"):
        g.check_features("f", torch.zeros(4, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="NaN"):
        g.check_features("f", torch.full((4, 2), float("nan")))
    # NumPy faces are accepted
    assert mesh_graph(np.asarray(SQUARE), 4).num_edges == g.num_edges
