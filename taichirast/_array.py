"""Array helpers that work on NumPy arrays and torch tensors alike.

Every primitive's forward and backward is written once against these helpers, so the torch and
NumPy bridges call the very same kernels with the very same buffers. torch is never imported
here: a tensor is recognised by its type's module.
"""
from __future__ import annotations

import functools

import numpy as np

FLOAT_DTYPES = ("float32", "float64")


def is_torch(x) -> bool:
    return _torch_type(type(x))


@functools.lru_cache(maxsize=None)
def _torch_type(t) -> bool:
    """A torch tensor type, subclasses included (taichirast._resident.Resident)."""
    return any(c.__module__.split(".")[0] == "torch" and c.__name__ == "Tensor" for c in t.__mro__)


def is_array(x) -> bool:
    return isinstance(x, np.ndarray) or is_torch(x)


def dtype_name(x) -> str:
    """'float32', 'float64', 'int32', 'int64', 'bool', ... for a NumPy array or a torch tensor."""
    if is_torch(x):
        return str(x.dtype).replace("torch.", "")
    return np.dtype(x.dtype).name


def device_type(x) -> str:
    return x.device.type if is_torch(x) else "cpu"


def _torch_dtype(name):
    import torch

    return getattr(torch, name)


def _resident(like, shape, dtype: str):
    """The :mod:`taichirast._resident` module when a torch array of ``shape`` / ``dtype`` made like
    ``like`` is to be device-resident (Vulkan / Metal inside ``render``), else None."""
    from . import _resident as R

    return R if R.wants(like, tuple(shape), _torch_dtype(dtype)) else None


def zeros(like, shape, dtype: str | None = None):
    """Zeros of ``shape``; dtype name defaults to ``like``'s; same library and device as ``like``."""
    dtype = dtype or dtype_name(like)
    if is_torch(like):
        import torch

        if (R := _resident(like, shape, dtype)) is not None:
            return R.empty(tuple(shape), _torch_dtype(dtype), fill=0)
        return torch.zeros(tuple(shape), dtype=_torch_dtype(dtype), device=like.device)
    return np.zeros(tuple(shape), dtype=dtype)


def empty(like, shape, dtype: str | None = None):
    dtype = dtype or dtype_name(like)
    if is_torch(like):
        import torch

        if (R := _resident(like, shape, dtype)) is not None:
            return R.empty(tuple(shape), _torch_dtype(dtype))
        return torch.empty(tuple(shape), dtype=_torch_dtype(dtype), device=like.device)
    return np.empty(tuple(shape), dtype=dtype)


def empty_blocks(like, n: int, lanes: int, dtype: str | None = None):
    """``n`` blocks of ``lanes`` values for a kernel parameter typed as an ndarray of
    ``lanes``-vectors (kernels/soft.py): ``(n, lanes)``, a plain array (a device-resident buffer
    holds scalar Taichi ndarrays, which such a parameter refuses); ``lanes == 1``: ``(n,)`` as
    :func:`empty` makes it (device-resident where wanted)."""
    if lanes == 1:
        return empty(like, (n,), dtype)
    dtype = dtype or dtype_name(like)
    if is_torch(like):
        import torch

        return torch.empty((n, lanes), dtype=_torch_dtype(dtype), device=like.device)
    return np.empty((n, lanes), dtype=dtype)


def full(like, shape, value, dtype: str | None = None):
    dtype = dtype or dtype_name(like)
    if is_torch(like):
        import torch

        if (R := _resident(like, shape, dtype)) is not None:
            return R.empty(tuple(shape), _torch_dtype(dtype), fill=value)
        return torch.full(tuple(shape), value, dtype=_torch_dtype(dtype), device=like.device)
    return np.full(tuple(shape), value, dtype=dtype)


def astype(x, dtype: str):
    """``x`` converted to ``dtype`` (no copy when it already has it), made contiguous."""
    if is_torch(x):
        return x.to(_torch_dtype(dtype)).contiguous()
    return np.ascontiguousarray(x, dtype=dtype)


def columns(x, lo: int, hi: int):
    """A copy of columns ``lo .. hi - 1`` of the 2-D ``x`` (a copy, not a view: reading a
    device-resident array through it leaves the array on the device, :mod:`taichirast._resident`)."""
    if is_torch(x):
        import torch

        return x.index_select(1, torch.arange(lo, hi, device=x.device))
    return np.array(x[:, lo:hi])


def freeze(x):
    """Declare ``x`` read-only for kernels from now on (lets a device-resident array keep its device
    copy when the host reads it: :mod:`taichirast._resident`); returns ``x``."""
    if is_torch(x):
        from . import _resident

        _resident.freeze(x)
    return x


def contiguous(x):
    if is_torch(x):
        return x.contiguous()
    return np.ascontiguousarray(x)


def detach(x):
    """The data of ``x`` with no autograd history, contiguous (Taichi must not see ``requires_grad``)."""
    if is_torch(x):
        return x.detach().contiguous()
    return np.ascontiguousarray(x)


def cumsum_exclusive(counts):
    """Exclusive prefix sum of a 1-D int32 array: ``(offsets, total)``, offsets int32 with one extra
    element (the total), and the total as a Python int (read once: on a GPU each read waits for the
    device)."""
    if is_torch(counts):
        import torch

        out = torch.zeros(counts.shape[0] + 1, dtype=torch.int64, device=counts.device)
        torch.cumsum(counts, 0, out=out[1:])
        total = int(out[-1])
        out = out.to(torch.int32)
    else:
        out = np.zeros(counts.shape[0] + 1, dtype=np.int64)
        np.cumsum(counts, out=out[1:])
        total = int(out[-1])
        out = out.astype(np.int32)
    if total >= 2**31:
        raise MemoryError("taichirast: more than 2^31 tile entries; render in smaller batches")
    return out, total


def segmented_argsort(key, seg=None):
    """Stable argsort of the 1-D ``key`` within each segment ``seg`` (a non-decreasing segment id
    per element, or None for one segment), as int32: segment by segment, each in key order, ties
    in index order (deterministic).

    int32 keys in host memory, one segment: a sort of ``key * 2^32 + index`` as int64 (unique, so
    any sort gives the stable order), the indices its low bits. For 70k keys on 2 cores NumPy's
    sort took 0.9 ms, torch's stable argsort 0.9 ms on one thread and 1.4-4 ms on two (its pool
    wakes up, OMP_WAIT_POLICY=PASSIVE), NumPy's stable argsort of int32 6.4 ms (a timsort)."""
    hv = host_view(key) if seg is None else None
    if hv is not None and hv.dtype == np.int32 and hv.ndim == 1:
        packed = (hv.astype(np.int64) << 32) + np.arange(hv.shape[0], dtype=np.int64)
        order = np.ascontiguousarray((np.sort(packed) & 0xFFFFFFFF).astype(np.int32))
        return as_like(order, key, "int32") if is_torch(key) else order
    if is_torch(key):
        import torch

        order = torch.argsort(key, stable=True)
        if seg is not None:
            order = order[torch.argsort(seg[order], stable=True)]
        return order.to(torch.int32).contiguous()
    order = np.argsort(key, kind="stable")
    if seg is not None:
        order = order[np.argsort(np.asarray(seg)[order], kind="stable")]
    return np.ascontiguousarray(order.astype(np.int32))


def index_rows(like, rows: int, n: int):
    """``(rows, n)`` int32 with every row ``0 .. n - 1`` (on ``like``'s device)."""
    if is_torch(like):
        import torch

        return torch.arange(n, dtype=torch.int32, device=like.device).repeat(rows, 1).contiguous()
    return np.ascontiguousarray(np.broadcast_to(np.arange(n, dtype=np.int32), (rows, n)))


_HOST_DTYPES = frozenset({"float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool"})


def host_view(x):
    """A NumPy view (no copy) of ``x`` when its data is in host memory: a NumPy array, or a plain
    CPU torch tensor; None otherwise (a GPU tensor, a device-resident one, a dtype NumPy lacks).

    The validation reductions below read through it: on CPU each torch reduction wakes torch's
    thread pool (~0.2-1 ms per call on 2 cores with OMP_WAIT_POLICY=PASSIVE, ~0.05 ms in NumPy),
    and a rasterize + interpolate step made six of them (BENCHMARKS.md, sixth session)."""
    if isinstance(x, np.ndarray):
        return x
    if not is_torch(x) or x.device.type != "cpu" or type(x).__module__.split(".")[0] != "torch":
        return None
    if dtype_name(x) not in _HOST_DTYPES:
        return None
    try:
        return x.detach().numpy()
    except (RuntimeError, TypeError):  # e.g. a tensor with a conjugate / negative bit, a functorch wrapper
        return None


def all_finite(x) -> bool:
    """Whether every value of the float array ``x`` is finite (True for an empty one)."""
    h = host_view(x)
    if h is not None:
        return bool(np.isfinite(h).all())
    return bool(x.detach().isfinite().all())


def min_max(x) -> tuple:
    """``(min, max)`` of a non-empty array as Python ints (integer ``x``) or floats."""
    h = host_view(x)
    if h is not None:
        lo, hi = h.min(), h.max()
    else:
        import torch

        lo, hi = torch.aminmax(x.detach())
    cast = int if dtype_name(x).startswith(("int", "uint")) else float
    return cast(lo), cast(hi)


def abs_max(x) -> float:
    """``max |x|`` as a Python float (0 for an empty array; NaN if ``x`` holds one)."""
    if x.shape.numel() == 0 if is_torch(x) else x.size == 0:
        return 0.0
    h = host_view(x)
    if h is not None:
        return float(max(-h.min(), h.max())) if h.dtype.kind == "f" else float(np.abs(h).max())
    return float(x.detach().abs().max())


def to_numpy(x):
    """A NumPy copy (torch) or view (NumPy) of ``x``; a device-resident tensor
    (:mod:`taichirast._resident`) is read without giving up its device arrays."""
    if not is_torch(x):
        return np.asarray(x)
    from ._resident import Resident

    if isinstance(x, Resident):
        return x.host(writable=False).detach().numpy().copy()
    return x.detach().cpu().numpy()


def item(x) -> float:
    return float(x.item()) if is_torch(x) else float(x)


def as_like(value, like, dtype: str | None = None):
    """A NumPy array / Python sequence ``value`` as an array of ``like``'s library and device."""
    dtype = dtype or dtype_name(like)
    if is_torch(like):
        import torch

        if is_torch(value):
            return value.to(device=like.device, dtype=_torch_dtype(dtype))
        return torch.as_tensor(np.asarray(value), dtype=_torch_dtype(dtype), device=like.device)
    if is_torch(value):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=dtype)


def sum_axes(x, axes):
    """Sum over ``axes`` (tuple of ints), keeping no dims."""
    if is_torch(x):
        return x.sum(dim=tuple(axes))
    return x.sum(axis=tuple(axes))


def segment_sum(x, seg, n: int):
    """``(n, ...)`` sums of the rows of ``x`` by segment id ``seg`` (int, one per row of ``x``)."""
    if is_torch(x):
        import torch

        out = torch.zeros((n,) + tuple(x.shape[1:]), dtype=x.dtype, device=x.device)
        return out.index_add_(0, seg.long(), x)
    out = np.zeros((n,) + tuple(x.shape[1:]), dtype=x.dtype)
    np.add.at(out, np.asarray(seg), x)
    return out
