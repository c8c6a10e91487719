"""taichirast._array's validation reductions: the NumPy view of host data and the torch fallback
agree, on every kind of array the primitives receive."""
import numpy as np
import pytest
import torch

from taichirast import _array as A
from taichirast import _resident as R


def _kinds(a):
    """``a`` as a NumPy array, a CPU tensor, one that requires grad, a strided view, and a
    device-resident tensor (no host storage: the torch fallback)."""
    t = torch.from_numpy(a.copy())
    wide = torch.from_numpy(np.repeat(a, 2, axis=-1).copy())[..., ::2]
    res = R.empty(tuple(a.shape), t.dtype)
    res.copy_(t)
    out = [("numpy", a), ("tensor", t), ("strided", wide), ("resident", res)]
    if t.is_floating_point():
        out.append(("requires_grad", t.clone().requires_grad_()))
    return out


def test_host_view_shares_memory_of_host_data_only():
    t = torch.arange(6, dtype=torch.float32).reshape(2, 3).requires_grad_()
    h = A.host_view(t)
    assert isinstance(h, np.ndarray) and h.shape == (2, 3)
    assert h.__array_interface__["data"][0] == t.data_ptr()  # a view, not a copy
    a = np.ones(3)
    assert A.host_view(a) is a
    assert A.host_view(R.empty((2, 3), torch.float32, fill=0)) is None
    assert A.host_view(torch.ones(3, dtype=torch.bfloat16)) is None  # NumPy has no bfloat16
    assert A.host_view(torch.ones(3, device="meta")) is None


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_float_reductions_agree_across_kinds(dtype):
    a = np.array([[0.5, -3.25, 2.0], [1.0, -0.125, 7.5]], dtype=dtype)
    for name, x in _kinds(a):
        assert A.all_finite(x), name
        assert A.min_max(x) == (-3.25, 7.5), name
        assert A.abs_max(x) == 7.5, name
        assert isinstance(A.min_max(x)[0], float), name
    for bad in (np.nan, np.inf, -np.inf):
        b = a.copy()
        b[1, 2] = bad
        for name, x in _kinds(b):
            assert not A.all_finite(x), (name, bad)
            m = A.abs_max(x)
            assert (np.isnan(m) if np.isnan(bad) else m == np.inf), (name, bad, m)


@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_integer_min_max_is_exact_ints(dtype):
    big = 2**40 if dtype == "int64" else 2**30
    a = np.array([[3, -1, big], [0, 7, 2]], dtype=dtype)
    for name, x in _kinds(a):
        lo, hi = A.min_max(x)
        assert (lo, hi) == (-1, big) and type(lo) is int and type(hi) is int, name


def test_abs_max_of_empty_is_zero():
    assert A.abs_max(np.zeros((0, 3))) == 0.0
    assert A.abs_max(torch.zeros(0, 3)) == 0.0


def test_to_numpy_copies_every_kind():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    for name, x in _kinds(a):
        h = A.to_numpy(x)
        assert isinstance(h, np.ndarray) and np.array_equal(h, a), name
    res = R.empty((2, 3), torch.float32, fill=0)
    res.copy_(torch.from_numpy(a))
    h = A.to_numpy(res)
    h[0, 0] = 99.0  # a copy: the resident tensor keeps its data
    assert float(res[0, 0]) == 0.0


@pytest.mark.parametrize("lib", ["numpy", "torch"])
@pytest.mark.parametrize("dtype", [np.int32, np.int64])
@pytest.mark.parametrize("n", [0, 1, 7, 5000])
def test_segmented_argsort_is_a_stable_argsort(lib, dtype, n):
    """One segment (int32 keys on the host take the packed int64 sort) and two segments: each in key
    order, ties in index order, as int32 of the input's library; negative keys and keys of every
    width included."""
    g = np.random.default_rng(n)
    info = np.iinfo(dtype)
    key = g.integers(info.min, info.max, n, dtype=dtype)
    key[: n // 3] = key[n // 3: 2 * (n // 3)]  # ties
    if n > 4:
        key[:4] = [info.min, info.max, -1, 0]
    wrap = torch.from_numpy if lib == "torch" else (lambda a: a)
    got = A.segmented_argsort(wrap(key))
    assert str(got.dtype).endswith("int32") and A.is_torch(got) == (lib == "torch")
    assert np.array_equal(np.asarray(got), np.argsort(key, kind="stable"))
    seg = (np.arange(n) >= n // 2).astype(np.int32)  # two images' entries, one after the other
    got = np.asarray(A.segmented_argsort(wrap(key), wrap(seg)))
    want = np.lexsort((np.arange(n), key, seg))
    assert np.array_equal(got, want)
