"""taichirast.nn pooling, unpooling, transposed-convolution upsampling and the clustering hierarchy."""
import pytest
import torch

from taichirast import meshes
from taichirast.nn import (FeatureSteeredConv, UpsampleTransposedConv, cluster_rank, coarsen_graph, graph_pool,
                           graph_unpool, make_graph, mesh_graph, mesh_hierarchy, pack_meshes, vertex_clustering)

D64 = torch.float64


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=D64)


CLUSTER = torch.tensor([2, 0, 2, 2, 0, 3])  # cluster 1 is empty


@pytest.mark.parametrize("reduce", ["max", "mean", "sum"])
def test_graph_pool_matches_loop_reference(reduce):
    x = rand(6, 3)
    y = graph_pool(x, CLUSTER, 4, reduce=reduce)
    ref = torch.zeros(4, 3, dtype=D64)
    for k in range(4):
        members = x[CLUSTER == k]
        if len(members):
            ref[k] = {"max": members.max(0).values, "mean": members.mean(0), "sum": members.sum(0)}[reduce]
    torch.testing.assert_close(y, ref)
    assert graph_pool(x, CLUSTER, reduce=reduce).shape == (4, 3)  # K from the map
    xx = x.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda t: graph_pool(t, CLUSTER, 4, reduce=reduce), [xx])


def test_graph_unpool_and_gradcheck():
    x = rand(4, 2).requires_grad_()
    y = graph_unpool(x, CLUSTER)
    torch.testing.assert_close(y, x.detach()[CLUSTER])
    assert torch.autograd.gradcheck(lambda t: graph_unpool(t, CLUSTER), [x])
    # unpool(pool_mean) is a projection: applying it twice changes nothing
    p = graph_unpool(graph_pool(y.detach(), CLUSTER, 4, "mean"), CLUSTER)
    torch.testing.assert_close(p, y.detach())


def test_cluster_rank():
    assert cluster_rank(CLUSTER).tolist() == [0, 0, 1, 2, 1, 0]
    assert cluster_rank(torch.zeros(0, dtype=torch.long)).tolist() == []


def test_upsample_transposed_conv_matches_loop_reference_and_gradcheck():
    torch.manual_seed(0)
    up = UpsampleTransposedConv(2, 3, kernel_size=2).double()
    with torch.no_grad():
        up.bias.normal_()
    x = rand(4, 2).requires_grad_()
    y = up(x, CLUSTER)
    rank = [0, 0, 1, 2, 1, 0]
    ref = torch.stack([x[CLUSTER[v]] @ up.weight[min(rank[v], 1)] + up.bias for v in range(6)])
    torch.testing.assert_close(y, ref)
    assert torch.autograd.gradcheck(lambda t, w, b: up(t, CLUSTER), [x, up.weight, up.bias])


def test_pool_errors():
    with pytest.raises(ValueError, match=r"cluster must index in \[0, 3\)"):
        graph_pool(rand(6, 3), CLUSTER, 3)
    with pytest.raises(ValueError, match=r"cluster must have shape \(5,\)"):
        graph_pool(rand(5, 3), CLUSTER)
    with pytest.raises(ValueError, match="reduce must be one of"):
        graph_pool(rand(6, 3), CLUSTER, reduce="min")
    with pytest.raises(TypeError, match="cluster must be an integer tensor"):
        graph_unpool(rand(4, 3), CLUSTER.double())
    with pytest.raises(ValueError, match=r"cluster must index in \[0, 2\)"):
        graph_unpool(rand(2, 3), CLUSTER)
    with pytest.raises(TypeError, match="x must be a float32/float64"):
        graph_pool(torch.zeros(6, 3, dtype=torch.long), CLUSTER)
    with pytest.raises(ValueError, match="voxel_size must be > 0"):
        vertex_clustering(rand(4, 3), 0.0)
    with pytest.raises(ValueError, match="kernel_size"):
        UpsampleTransposedConv(2, 2, 0)
    assert graph_pool(rand(0, 3), torch.zeros(0, dtype=torch.long)).shape == (0, 3)  # empty


def test_vertex_clustering_grid_and_batches():
    pts = torch.tensor([[0.1, 0.1, 0.1], [0.2, 0.3, 0.1], [1.5, 0.1, 0.1], [0.15, 0.2, 0.1]], dtype=D64)
    c, K, centers = vertex_clustering(pts, 1.0)
    assert K == 2 and c.tolist() == [0, 0, 1, 0]
    torch.testing.assert_close(centers[0], pts[[0, 1, 3]].mean(0))
    # same positions in two meshes never share a cluster; numbering goes mesh by mesh
    c2, K2, _ = vertex_clustering(torch.cat([pts, pts]), 1.0, batch=torch.tensor([0] * 4 + [1] * 4))
    assert K2 == 4 and c2.tolist() == [0, 0, 1, 0, 2, 2, 3, 2]


def test_coarsen_graph_matches_dense_pattern():
    v, f = meshes.icosphere(1)
    v, f = torch.as_tensor(v, dtype=D64), torch.as_tensor(f)
    g = mesh_graph(f, v.shape[0])
    c, K, _ = vertex_clustering(v, 0.7)
    cg = coarsen_graph(g, c, K)
    P = torch.zeros(K, v.shape[0], dtype=D64)
    P[c, torch.arange(v.shape[0])] = 1
    A = torch.zeros(v.shape[0], v.shape[0], dtype=D64)
    A[g.edges[:, 0], g.edges[:, 1]] = 1
    pattern = ((P @ A @ P.T) > 0).double()
    ref = pattern / pattern.sum(1, keepdim=True)
    Ac = torch.zeros(K, K, dtype=D64)
    Ac[cg.edges[:, 0], cg.edges[:, 1]] = cg.edge_weights(D64)
    torch.testing.assert_close(Ac, ref)


def test_hierarchy_on_packed_batch_and_unet_roundtrip():
    (v1, f1), (v2, f2) = meshes.icosphere(2), meshes.torus(1.0, 0.3, 16, 8)
    V, F, g = pack_meshes([torch.as_tensor(v1), torch.as_tensor(v2)], [torch.as_tensor(f1), torch.as_tensor(f2)])
    levels = mesh_hierarchy(V, g, [0.3, 0.6])
    sizes = [g.num_vertices] + [lvl.num_vertices for lvl in levels]
    assert sizes[0] > sizes[1] > sizes[2] > 2
    for lvl, prev in zip(levels, [g] + [lv.graph for lv in levels]):
        assert lvl.graph.num_graphs == 2
        # clusters stay inside their mesh
        assert torch.equal(lvl.graph.batch[lvl.cluster], prev.batch)
    # a tiny U-Net: conv -> pool -> conv -> unpool (+ skip) -> conv, one backward pass
    torch.manual_seed(0)
    c1, c2, c3 = FeatureSteeredConv(3, 8, 4), FeatureSteeredConv(8, 8, 4), FeatureSteeredConv(16, 2, 4)
    h = torch.relu(c1(V, g))
    low = torch.relu(c2(graph_pool(h, levels[0].cluster, levels[0].num_vertices), levels[0].graph))
    out = c3(torch.cat([h, graph_unpool(low, levels[0].cluster)], 1), g)
    out.square().mean().backward()
    assert out.shape == (g.num_vertices, 2) and all(p.grad is not None for p in c2.parameters())
    # per-mesh hierarchy equals the packed one restricted to that mesh
    lv1 = mesh_hierarchy(torch.as_tensor(v1), mesh_graph(torch.as_tensor(f1), v1.shape[0]), [0.3])[0]
    n1 = v1.shape[0]
    assert torch.equal(levels[0].cluster[:n1], lv1.cluster)
    assert levels[0].graph.vertex_offsets[1].item() == lv1.num_vertices


def test_coarsen_graph_rejects_clusters_across_meshes():
    e = torch.tensor([[0, 1], [2, 3]])
    g = make_graph(e, 4, vertex_offsets=torch.tensor([0, 2, 4]))
    with pytest.raises(ValueError, match="more than one mesh"):
        coarsen_graph(g, torch.tensor([0, 1, 1, 2]))
    with pytest.raises(ValueError, match="mesh by mesh"):
        coarsen_graph(g, torch.tensor([1, 1, 0, 0]))
    cg = coarsen_graph(g, torch.tensor([0, 0, 1, 1]))
    assert cg.vertex_offsets.tolist() == [0, 1, 2]
