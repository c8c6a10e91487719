"""kernels/_launch.py: repeat launches by plan give what Taichi's own launch gives, and every launch
the plan cannot cover (other layouts, dtypes, ranks, scalars, a cleared instantiation) still goes
through Taichi, with Taichi's checks and errors."""
import numpy as np
import pytest
import taichi as ti
import torch

from taichirast import runtime
from taichirast.kernels import _launch, kernel


@pytest.fixture(scope="module")
def k():
    runtime.ensure_init()
    vec2 = ti.types.vector(2, ti.f32)

    @kernel
    def axpy(x: ti.types.ndarray(dtype=ti.f32), v: ti.types.ndarray(dtype=vec2, ndim=1),
             out: ti.types.ndarray(dtype=ti.f32), a: ti.f32, n: ti.i32, neg: ti.template()):
        """out[i] = a * x[i] + v[i][0] * v[i][1] + n (negated when ``neg``), i < len(out)."""
        for i in range(out.shape[0]):
            r = a * x[i] + v[i][0] * v[i][1] + n
            out[i] = -r if ti.static(neg) else r

    return axpy


def _expected(x, v, a, n, neg):
    r = a * np.asarray(x) + np.asarray(v)[:, 0] * np.asarray(v)[:, 1] + n
    return -r if neg else r


def _fast(k):
    return next(c.cell_contents for c in k.__closure__ if isinstance(c.cell_contents, _launch.FastLaunch))


def _spy(monkeypatch):
    """Counts launches taken by plan (True) and handed to Taichi (False)."""
    seen = []
    call = _launch.FastLaunch.__call__

    def spy(self, args):
        r = call(self, args)
        seen.append(r)
        return r

    monkeypatch.setattr(_launch.FastLaunch, "__call__", spy)
    return seen


@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_repeat_launches_go_by_plan_and_give_taichis_result(k, lib, monkeypatch):
    seen = _spy(monkeypatch)
    rng = np.random.default_rng(0)
    conv = np.asarray if lib == "numpy" else torch.from_numpy
    for neg in (False, True, False):  # a template value picks its own instantiation and plan
        x = rng.standard_normal(37).astype(np.float32)
        v = rng.standard_normal((37, 2)).astype(np.float32)
        for _ in range(2):
            out = conv(np.zeros(37, np.float32))
            k(conv(x), conv(v), out, 1.5, 3, neg)
            np.testing.assert_allclose(np.asarray(out), _expected(x, v, 1.5, 3, neg), rtol=1e-6, atol=1e-6)
    # first launch of each signature by Taichi (neg False, then True); every other by plan
    assert seen == [False, True, False, True, True, True]


def test_a_shorter_array_by_plan_reads_its_own_shape(k):
    x, v = np.arange(9, dtype=np.float32), np.ones((9, 2), np.float32)
    for n in (9, 4, 9):  # the same signature, other lengths: the shape is set at every launch
        out = np.zeros(n, np.float32)
        k(x[:n].copy(), v[:n].copy(), out, 2.0, 0, False)
        np.testing.assert_array_equal(out, 2 * x[:n] + 1)


def test_launches_the_plan_cannot_cover_go_through_taichi(k, monkeypatch):
    x, v, out = np.ones(8, np.float32), np.ones((8, 2), np.float32), np.zeros(8, np.float32)
    k(x, v, out, 1.0, 0, False)  # a plan for C-contiguous float32 NumPy arrays
    seen = _spy(monkeypatch)
    # Fortran-ordered (Taichi copies it in and back), requiring grad (Taichi allocates .grad)
    vf = np.asfortranarray(np.full((8, 2), 2.0, np.float32))
    k(x, vf, out, 1.0, 0, False)
    np.testing.assert_array_equal(out, np.full(8, 5.0))
    xt = torch.ones(8, requires_grad=True)
    k(xt, v, out, 1.0, 0, False)
    assert xt.grad is not None and seen == [False, False]
    # Taichi's own errors: a float64 array, a wrong rank, a float for an int argument
    with pytest.raises(ValueError, match="dtype"):
        k(x.astype(np.float64), v, out, 1.0, 0, False)
    with pytest.raises(ValueError, match="ndim"):
        k(x, v.reshape(8, 1, 2), out, 1.0, 0, False)
    with pytest.raises(ti.TaichiRuntimeTypeError):
        k(x, v, out, 1.0, 0.5, False)


def test_an_instantiation_taichi_dropped_is_not_launched_by_plan(k, monkeypatch):
    x, v, out = np.ones(5, np.float32), np.ones((5, 2), np.float32), np.zeros(5, np.float32)
    k(x, v, out, 1.0, 0, False)
    seen = _spy(monkeypatch)
    k(x, v, out, 1.0, 0, False)
    _fast(k).primal.compiled_kernels.clear()  # what ti.init / clear_compiled_functions do
    k(x, v, out, 3.0, 1, False)
    np.testing.assert_array_equal(out, np.full(5, 5.0))
    k(x, v, out, 1.0, 0, False)
    assert seen == [True, False, True]


def test_signature_tells_arrays_apart_by_dtype_rank_and_device():
    f = _launch.FastLaunch.__new__(_launch.FastLaunch)
    f.kinds = [_launch._ARRAY, _launch._INT, _launch._TEMPLATE]
    a = np.zeros((3, 2), np.float32)
    assert f.signature((a, 1, True)) == ((np.dtype(np.float32), 2), True)
    assert f.signature((a, np.int64(1), True)) == f.signature((a, 1, True))
    assert f.signature((a.astype(np.float64), 1, True)) != f.signature((a, 1, True))
    assert f.signature((a[None], 1, True)) != f.signature((a, 1, True))
    t = torch.zeros(3, 2)  # on CUDA where the suite runs with CUDA tensors (tests/conftest.py)
    assert f.signature((t, 1, True)) == ((torch.float32, 2, t.device.type), True)
    assert f.signature((a.T, 1, True)) is None  # not C-contiguous
    assert f.signature((a, 1.0, True)) is None  # a float for an int argument
    assert f.signature((a, 1, [1])) is None  # a template value that cannot be hashed
    assert f.signature((a.tolist(), 1, True)) is None  # not an array
    assert f.signature((a, 1)) is None


def test_switched_off_every_launch_goes_through_taichi(k, monkeypatch):
    x, v, out = np.ones(6, np.float32), np.ones((6, 2), np.float32), np.zeros(6, np.float32)
    k(x, v, out, 1.0, 0, False)
    seen = _spy(monkeypatch)
    monkeypatch.setattr(_launch, "ENABLED", False)
    k(x, v, out, 2.0, 0, False)
    monkeypatch.setattr(_launch, "ENABLED", True)
    k(x, v, out, 3.0, 0, False)
    np.testing.assert_array_equal(out, np.full(6, 4.0))
    assert seen == [False, True]
