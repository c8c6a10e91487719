"""Private per-worker gradient copies of the CPU backward kernels (taichirast/_scatter.py) against
the atomic path: equal to rounding, bitwise the same run to run, any worker count."""
import numpy as np
import pytest
import taichi as ti
import torch
from test_face_order import _scene

import taichirast._scatter as S
from taichirast import ensure_init
from taichirast._prims.interpolate import PRIM as INTERP
from taichirast._prims.raster import PRIM as RAST
from taichirast.kernels import common as C
from taichirast.kernels import scatter as K


def _grads(sv, faces, attrs, size, dtype=torch.float64):
    """Gradients of a random weighting of rasterize + interpolate w.r.t. the screen vertices (through
    the barycentrics and the depth) and the attributes."""
    s = torch.tensor(sv, dtype=dtype, requires_grad=True)
    a = torch.tensor(attrs, dtype=dtype, requires_grad=True)
    frags = RAST.torch_call(s, torch.from_numpy(faces), size)
    fid, depth = frags.face_id, frags.depth
    out = INTERP.torch_call(a, torch.from_numpy(faces), frags)
    g = torch.Generator().manual_seed(1)
    loss = (out * torch.rand(out.shape, generator=g, dtype=dtype)).sum()
    loss = loss + (torch.where(fid >= 0, depth, 0) * torch.rand(depth.shape, generator=g, dtype=dtype)).sum()
    loss.backward()
    return s.grad, a.grad


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("threads", [2, 3])
def test_private_copies_match_atomics_and_repeat_bitwise(monkeypatch, dtype, threads):
    if ensure_init() != "cpu":  # GPUs add by atomics
        assert S._workers(torch.zeros(1, dtype=dtype), 100, 2 * 45) == 0
        pytest.skip("private copies are the CPU's")
    sv, faces = _scene(B=2, H=45, W=40)  # 90 rows: 11 blocks of 8 and a short one
    attrs = np.random.default_rng(0).normal(size=(sv.shape[1], 5))
    monkeypatch.setattr(S, "_threads", lambda: threads)
    monkeypatch.setattr(S, "MODE", "atomic")
    ref = _grads(sv, faces, attrs, (45, 40), dtype)
    monkeypatch.setattr(S, "MODE", None)
    assert S._workers(torch.zeros(1, dtype=dtype), 100, 2 * 45) == threads
    got = _grads(sv, faces, attrs, (45, 40), dtype)
    again = _grads(sv, faces, attrs, (45, 40), dtype)
    tol = 1e-11 if dtype == torch.float64 else 2e-5
    for r, a, b in zip(ref, got, again):
        assert torch.equal(a, b)  # a fixed schedule: the same sums in every run
        assert (r.abs().max() > 0.1) and torch.allclose(a, r, rtol=tol, atol=tol * r.abs().max())


def test_worker_count():
    x = torch.zeros(1)
    S.MODE = None
    cpu = ensure_init() == "cpu"
    try:
        assert S._workers(x, 3000, 512) == (S._threads() if cpu else 0)
        assert S._workers(x, 3000, 8) == (1 if cpu else 0)  # one row block: one worker
        assert S._workers(x, S.PRIVATE_BYTES, 512) == 0  # copies over the budget: atomics
        S.MODE = "atomic"
        assert S._workers(x, 3000, 512) == 0
    finally:
        S.MODE = None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sum_copies(dtype):
    rng = np.random.default_rng(0)
    dst = rng.normal(size=(3 * 7, 4)).astype(dtype)
    out = np.zeros((7, 4), dtype)
    K.sum_copies(dst, out, 3)
    np.testing.assert_array_equal(out, (dst[:7] + dst[7:14]) + dst[14:])


@ti.kernel
def _visit_rows(count: ti.types.ndarray(), owner: ti.types.ndarray(), NW: ti.i32):
    for it in range(NW * C.CHUNK_STRIDE):
        if it % C.CHUNK_STRIDE == 0:
            for j in range(C.worker_rows(it, NW, count.shape[0])):
                r = C.worker_row(it, j, NW)
                count[r] = count[r] + 1
                owner[r] = it // C.CHUNK_STRIDE


@pytest.mark.parametrize("n_rows", [1, 7, 8, 9, 45, 90, 512])
@pytest.mark.parametrize("NW", [1, 2, 3, 5])
def test_worker_rows_cover_every_row_once_in_interleaved_blocks(n_rows, NW):
    ensure_init()
    count, owner = np.zeros(n_rows, np.int32), np.full(n_rows, -1, np.int32)
    _visit_rows(count, owner, NW)
    assert (count == 1).all()
    np.testing.assert_array_equal(owner, (np.arange(n_rows) // C.WORKER_ROWS) % NW)
