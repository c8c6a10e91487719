"""Benchmark helpers: benchmarks.peers (the conversions that give nvdiffrast and PyTorch3D our scene,
and the table's plumbing: on a machine without the peers they are reported, not timed),
benchmarks.vulkan_copies' traffic counter, benchmarks.packed's batch (the two ways it times
draw the same pictures) and benchmarks.launch's switch between launch plans and Taichi's launch."""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import launch, packed, peers, vulkan_copies  # noqa: E402


def test_clip_space_puts_pixel_centres_and_depths_where_nvdiffrast_reads_them():
    H, W = 32, 64
    sv = torch.tensor([[[0.5, 0.5, peers.NEAR], [W - 0.5, H - 0.5, peers.FAR], [W / 2, H / 2, 1.0]]],
                      dtype=torch.float64)
    c = peers.to_clip(sv, (H, W))
    ndc = c[..., :3] / c[..., 3:]
    # nvdiffrast: column c, row r at NDC x = 2 (c + 0.5) / W - 1, y = 2 (r + 0.5) / H - 1; z in [-1, 1]
    torch.testing.assert_close(ndc[0, 0], torch.tensor([1 / W - 1, 1 / H - 1, -1.0], dtype=torch.float64))
    torch.testing.assert_close(ndc[0, 1], torch.tensor([1 - 1 / W, 1 - 1 / H, 1.0], dtype=torch.float64))
    torch.testing.assert_close(ndc[0, 2, :2], torch.zeros(2, dtype=torch.float64))
    assert torch.equal(c[..., 3], sv[..., 2])  # w = camera depth: perspective-correct interpolation


def test_pytorch3d_ndc_is_flipped_and_keeps_depth():
    sv = torch.tensor([[[0.0, 0.0, 2.0], [64.0, 32.0, 3.0]]])
    out = peers.to_pytorch3d_ndc(sv, (32, 64))
    torch.testing.assert_close(out[0, 0], torch.tensor([2.0, 1.0, 2.0]))  # top left: +x left, +y up
    torch.testing.assert_close(out[0, 1], torch.tensor([-2.0, -1.0, 3.0]))


def test_measure_times_ours_and_reports_missing_peers():
    faces, table, notes = peers.measure("icosphere4", 32, 1, device="cpu")
    assert faces == 5120
    assert set(table) == {"raster+interp fwd", "raster+interp fwd+bwd", "+ antialias fwd+bwd"}
    assert all(row["taichirast"] > 0 for row in table.values())
    for peer, note in notes.items():
        if peer not in next(iter(table.values())):
            assert note.startswith(("not importable", "failed")), note
        else:
            assert "coverage agrees with ours" in note


def test_traffic_counts_launches_external_arrays_and_bytes():
    import numpy as np
    import taichi as ti

    import taichirast as tr

    tr.ensure_init()

    @ti.kernel
    def axpy(x: ti.types.ndarray(), y: ti.types.ndarray(), a: ti.f32):
        for i in range(x.shape[0]):
            y[i] += a * x[i]

    x, y = np.ones(10, np.float32), torch.zeros(10)
    axpy(x, y, 1.0)  # compile outside the count
    with vulkan_copies.Traffic() as t:
        axpy(x, y, 2.0)
        axpy(x, y, 3.0)
    assert (t.launches, t.arrays, t.bytes) == (2, 4, 4 * 40)
    assert float(y[0]) == 6.0
    axpy(x, y, 1.0)  # unwrapped again: nothing more is counted
    assert t.launches == 2


def test_packed_benchmark_batch_is_different_meshes_and_both_ways_draw_the_same_pictures():
    import taichirast as tr

    vs, fs, cols, cams = packed.batch(5, "cpu", 24)
    assert cams.batch_size == 5 and len({f.shape[0] for f in fs}) >= 4
    assert all(not (vs[i].shape == vs[j].shape and torch.equal(vs[i], vs[j])) for i in range(5) for j in range(i))
    for kw in (dict(mode="hard", **packed.LIGHTS), dict(mode="soft")):
        one_call = tr.render(tr.Meshes(vs, fs), None, cams, colors=cols, **kw)
        for i in range(5):
            single = tr.render(vs[i], fs[i], cams[i], colors=cols[i], **kw)
            assert float(single[..., 3].mean()) > 0.02  # each mesh is in view
            torch.testing.assert_close(one_call[i:i + 1], single, rtol=0, atol=1e-6)
    assert set(packed.cases(vs, fs, cols, cams, 24)) == {
        (m, c) for m in ("hard lit", "soft")
        for c in ("one mesh, N cameras (reference)", "Meshes batch, one call", "mesh by mesh (loop)")}


def test_launch_benchmark_times_both_ways_and_leaves_the_plans_on(monkeypatch):
    from taichirast.kernels import _launch

    launch.empty_launch(1)  # the kernel's first launch of this signature (Taichi's) makes the plan
    seen = []
    call = _launch.FastLaunch.__call__
    monkeypatch.setattr(_launch.FastLaunch, "__call__", lambda self, args: seen.append(call(self, args)) or seen[-1])
    on, off = launch.empty_launch(2)
    assert on > 0 and off > 0 and _launch.ENABLED
    # a warm-up and 2 rounds of 200 launches each way: by plan exactly when the plans are on
    assert seen.count(True) == 1 + 2 * 200 and seen.count(False) == 1 + 2 * 200
