"""The face schedule's visiting order (taichirast/_face_order.py): a cached permutation of the faces
that never changes a result, only the kernel's cache behaviour."""
import numpy as np
import pytest

import taichirast._face_order as FO
from taichirast import meshes
from taichirast._prims import raster as raster_prim
from taichirast._prims.raster import PRIM as RAST
from taichirast._prims.raster_layers import PRIM as LAYERS


@pytest.fixture(autouse=True)
def _face_schedule_fresh_cache(monkeypatch):
    monkeypatch.setattr(raster_prim, "SCHEDULE", "face")
    monkeypatch.setattr(FO, "_cache", type(FO._cache)())
    monkeypatch.setattr(FO, "_last", [None])


def _order(sv, faces):
    """The order of a topology drawn twice in a row (the first call gets none)."""
    FO.face_order(sv, faces)
    return FO.face_order(sv, faces)


def _scene(B=2, H=48, W=40, dtype=np.float64, seed=0):
    """Two interpenetrating bumpy spheres of 5,120 faces each (faces in a shuffled order), seen by B
    cameras: > MIN_FACES faces, overdraw, faces of ~1-4 pixels."""
    rng = np.random.default_rng(seed)
    v, f = meshes.icosphere(4)
    v = v * (1 + 0.05 * rng.standard_normal((v.shape[0], 1)))
    verts = np.concatenate([v, v * 0.8 + [0.3, 0.1, 0.2]])
    faces = np.concatenate([f, f + v.shape[0]])[rng.permutation(2 * f.shape[0])].astype(np.int32)
    sv = np.empty((B,) + verts.shape)
    for b in range(B):
        z = verts[:, 2] + 3.0 + 0.3 * b
        sv[b, :, 0] = W / 2 + 0.9 * W * (verts[:, 0] + 0.1 * b) / z
        sv[b, :, 1] = H / 2 + 0.9 * H * verts[:, 1] / z
        sv[b, :, 2] = z
    return sv.astype(dtype), faces


def _without_order(monkeypatch, fn):
    with monkeypatch.context() as m:
        m.setattr(FO, "MIN_FACES", 10**9)
        return fn()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cull", [False, True])
def test_order_changes_no_result_bitwise(monkeypatch, dtype, cull):
    sv, faces = _scene(dtype=dtype)
    assert faces.shape[0] >= FO.MIN_FACES
    RAST.numpy_call(sv, faces, (48, 40), cull_backfaces=cull)
    ordered = RAST.numpy_call(sv, faces, (48, 40), cull_backfaces=cull)
    assert len(FO._cache) == 1  # the second call in a row used the order
    plain = _without_order(monkeypatch, lambda: RAST.numpy_call(sv, faces, (48, 40), cull_backfaces=cull))
    assert (ordered[0] >= 0).sum() > 1000
    for a, b in zip(ordered, plain):
        np.testing.assert_array_equal(a, b)
    layers = LAYERS.numpy_call(sv, faces, (48, 40), num_layers=3, cull_backfaces=cull)
    plain_layers = _without_order(monkeypatch, lambda: LAYERS.numpy_call(sv, faces, (48, 40), num_layers=3,
                                                                         cull_backfaces=cull))
    assert (layers[0][:, 2] >= 0).sum() > 100  # a third layer exists (the inner sphere's far side)
    for a, b in zip(layers, plain_layers):
        np.testing.assert_array_equal(a, b)


def test_order_is_cached_per_topology_and_bounded():
    sv, faces = _scene(B=1)
    assert FO.face_order(sv, faces) is None  # a topology's first call: no sort
    o1 = FO.face_order(sv, faces)
    assert np.array_equal(np.sort(o1), np.arange(faces.shape[0]))
    assert FO.face_order(sv * 1.5, faces.copy()) is o1  # same topology (a copy), other vertices: cached
    other = faces[::-1].copy()
    assert _order(sv, other) is not o1 and len(FO._cache) == 2
    for k in range(FO.CACHE_SIZE + 2):  # more topologies than the cache keeps: the oldest go
        _order(sv, np.roll(faces, k + 1, axis=0))
    assert len(FO._cache) == FO.CACHE_SIZE
    assert _order(sv[:, :10], faces[:100]) is None  # small meshes get no order


def test_meshes_drawn_in_turn_are_not_sorted():
    sv, faces = _scene(B=1)
    meshes_ = [np.roll(faces, k, axis=0) for k in range(3)]
    for _ in range(2):  # a pass over a dataset, twice
        for f in meshes_:
            assert FO.face_order(sv, f) is None
    assert len(FO._cache) == 0


def test_a_topology_mistaken_for_another_still_rasterizes_right(monkeypatch):
    sv, faces = _scene(B=1)
    _order(sv, faces)
    # same count and the same sampled rows, other faces elsewhere: the fingerprint matches
    rows = np.linspace(0, faces.shape[0] - 1, FO.SAMPLES).astype(np.int64)
    keep = np.zeros(faces.shape[0], bool)
    keep[rows] = True
    other = faces.copy()
    other[~keep] = np.roll(faces[~keep], 7, axis=1)[::-1]
    assert FO.face_order(sv, other) is FO.face_order(sv, faces)
    got = RAST.numpy_call(sv, other, (48, 40))
    want = _without_order(monkeypatch, lambda: RAST.numpy_call(sv, other, (48, 40)))
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


def test_morton_order_keeps_neighbours_together():
    sv, faces = _scene(B=1)
    c = sv[0][faces].mean(1)
    step = np.linalg.norm(np.diff(c[FO.morton_order(sv[0], faces)], axis=0), axis=1).mean()
    shuffled = np.linalg.norm(np.diff(c, axis=0), axis=1).mean()  # _scene's faces are shuffled
    assert step < shuffled / 5, (step, shuffled)


def test_packed_batches_keep_their_own_order():
    sv, faces = _scene(B=1)
    rows, order, ordered = FO.visit_order(None, sv, faces, 2, faces.shape[0])  # E != B * F: packed
    assert rows is faces and ordered == 0
