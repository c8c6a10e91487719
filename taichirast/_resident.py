"""Device residency on Vulkan and Metal: intermediates of a ``render`` live in Taichi ndarrays.

Taichi copies a NumPy array or torch tensor passed to a kernel to the device before the launch and
back after it on its SPIR-V backends (DESIGN §6), so a render chaining primitives through torch
tensors moves every pixel buffer across twice per kernel that touches it (BENCHMARKS.md: 172 MB
per lit hard step of the bunny at 512²). Inside :func:`scope` (which :func:`taichirast.render` opens
on those backends):

* The arrays the primitives allocate (of at least :data:`MIN_BYTES`) are :class:`Resident` tensors:
  a torch tensor subclass without host storage whose data is a :class:`_Buffer`, a Taichi ndarray
  on the device allocated at the first kernel launch that uses it (in the shape that kernel sees;
  reused once released). Kernels read and write it in place.
* The user's tensors entering a primitive are uploaded once per render (:func:`upload`), however
  many kernels and primitives read them; their gradients come back as ordinary tensors.
* A Resident is a real torch tensor for autograd: primitives' autograd Functions take, return and
  save them, and gradients a backward allocates "like" a resident input are resident too (the
  autograd engine's sums of two resident gradients run on the device). So a chain project ->
  raster -> interpolate -> shade keeps its fragments, images and their gradients on the device
  between the primitives and between forward and backward.
* Reshaping (``view`` / ``reshape`` / ``unsqueeze`` / ``squeeze`` / ``detach`` of the whole array)
  shares the buffer; a kernel that sees it in another shape gets it through a device-side copy
  (:data:`COUNTS` ``reshapes``).
* Any other torch operation first downloads the buffer ("escape": one download, counted) and runs
  on the host copy. An operation that writes an argument or returns a view of one (aten schema
  alias info) makes the host copy the data for good: results, in-place writes and views are those
  of an ordinary tensor, so nothing is ever silently stale, and kernels get the host copy (copied
  per launch, as before). After a read-only operation a *frozen* buffer (a primitive's input or
  finished output, which no kernel writes again) keeps using its device array. The glue between
  stages (the blender's compositing, a loss) escapes what it reads.

:func:`taichirast.render` returns ordinary tensors. On the CPU and CUDA backends, where Taichi reads
tensors in place, :func:`scope` does nothing unless forced (the tests force it on the CPU, where
ndarrays work too, to check the mechanism against the ordinary path).
"""
from __future__ import annotations

import contextlib
import math
import os
import threading

import torch
from torch.utils._pytree import tree_map

COUNTS = {"allocations": 0, "reshapes": 0, "uploads": 0, "uploaded_bytes": 0, "escapes": 0, "escaped_bytes": 0}
"""Process-wide counters (benchmarks.vulkan_copies reads them): device arrays created, device-side reshape copies, user tensors uploaded, buffers moved to the host, and
the bytes of the last two."""

ENABLED = os.environ.get("TAICHIRAST_RESIDENT", "1").strip() != "0"
"""``False`` turns residency off everywhere: ``TAICHIRAST_RESIDENT=0`` in the environment, or set
here (benchmarks.vulkan_copies does for its "before" rows)."""

MIN_BYTES = int(os.environ.get("TAICHIRAST_RESIDENT_MIN_BYTES", 1 << 18))
"""Arrays smaller than this (default 256 KiB; ``TAICHIRAST_RESIDENT_MIN_BYTES``) stay ordinary
tensors: a device array's fill or download costs a kernel launch (~1 ms on lavapipe), more than
copying a small array with each launch. CI's Vulkan lane sets 0, so every array is resident."""

POOL_BYTES = 1 << 28
"""Released device arrays kept for reuse (see :func:`_release`): at most this many bytes (256 MiB)."""

_TI_DTYPES = {torch.float32: "f32", torch.float64: "f64", torch.int32: "i32", torch.int64: "i64"}
_local = threading.local()

aten = torch.ops.aten
# Ops that only re-view the whole array: the result shares the buffer when it is contiguous.
_VIEWS = {aten.view.default, aten._unsafe_view.default, aten.reshape.default, aten.detach.default,
          aten.alias.default, aten.unsqueeze.default, aten.squeeze.default, aten.squeeze.dim,
          aten.squeeze.dims, aten.flatten.using_ints}


def _residency_arch() -> bool:
    from .runtime import ensure_init

    return ensure_init() in ("vulkan", "metal")


@contextlib.contextmanager
def scope(force: bool = False):
    """Within it, arrays allocated like a CPU torch tensor are :class:`Resident` and user tensors
    entering a primitive are uploaded once (on Vulkan / Metal, or anywhere with ``force=True``).
    Nested scopes keep the outer one's choice."""
    outer = getattr(_local, "on", False)
    _local.on = outer or (ENABLED and (force or _residency_arch()))
    try:
        yield
    finally:
        _local.on = outer
        if not outer:
            _local.__dict__.pop("uploads", None)


def active() -> bool:
    return getattr(_local, "on", False)


def wants(like, shape, dtype: torch.dtype) -> bool:
    """Whether an array of ``shape`` / ``dtype`` allocated like ``like`` is made resident: ``like``
    is resident, or a CPU tensor inside an active :func:`scope`; and it is not small."""
    if dtype not in _TI_DTYPES or len(shape) == 0 or math.prod(shape) * dtype.itemsize < MIN_BYTES:
        return False
    if dtype == torch.float64 and _residency_arch():
        return False  # no float64 on SPIR-V: the primitive refuses it clearly (kernels.real_type)
    return isinstance(like, Resident) or (active() and like.device.type == "cpu")


def _program():
    """Taichi's current runtime: ``ti.init`` / ``ti.reset`` make a new one and invalidate the
    ndarrays of the old one. (The Python runtime object, not its C++ ``prog``: pybind11 may hand
    back a stale wrapper for a new program allocated at the old one's address.)"""
    import taichi as ti

    return ti.lang.impl.get_runtime()


_pool: dict = {}  # (dtype, shape) -> released ndarrays of the current runtime, for reuse
_state = {"runtime": None, "pooled": 0}
_pending: list = []  # ndarrays dropped from the pool, freed at the next synchronisation
_retired: list = []  # ndarrays of finished Taichi runtimes, never collected


def _current_runtime():
    """The current runtime; a new one (``ti.init`` / ``ti.reset``) starts with an empty pool."""
    rt = _program()
    if _state["runtime"] is not rt:
        _retired.extend(nd for free in _pool.values() for nd in free)
        _retired.extend(_pending)
        _pool.clear()
        _pending.clear()
        _state.update(runtime=rt, pooled=0)
    return rt


def _new_ndarray(dtype: torch.dtype, shape):
    """``(ndarray, zeroed)``: a released one of this dtype and shape when there is one (contents
    undefined), else a new one (Taichi zero-fills it)."""
    import taichi as ti

    _current_runtime()
    free = _pool.get((dtype, shape))
    if free:
        _state["pooled"] -= math.prod(shape) * dtype.itemsize
        return free.pop(), False
    COUNTS["allocations"] += 1
    return ti.ndarray(getattr(ti, _TI_DTYPES[dtype]), shape), True


def _release(nd, dtype: torch.dtype, prog):
    """Give back ``nd`` (made by Taichi runtime ``prog``) for reuse.

    Reuse, not freeing, is the rule: creating an ndarray costs ~1 ms on lavapipe, and Taichi 1.7
    never frees an ndarray collected while a queued kernel uses it (``Program::delete_ndarray``
    skips it: measured, 64 MB leaked per step). A released array is reused by
    later launches only, which run after the earlier ones on the same queue. Past
    :data:`POOL_BYTES` the oldest released arrays wait in ``_pending`` for the next
    synchronisation (every escape and upload is one) and are freed then. Arrays of a finished
    runtime are kept for good: their memory went with it, and collecting them would run Taichi's
    ``Ndarray.__del__``, which asks the *new* program to delete the old address."""
    if prog is not _current_runtime():
        _retired.append(nd)
        return
    shape = tuple(nd.shape)
    _pool.setdefault((dtype, shape), []).append(nd)
    _state["pooled"] += math.prod(shape) * dtype.itemsize
    while _state["pooled"] > POOL_BYTES:
        key = max(_pool, key=lambda k: math.prod(k[1]) * k[0].itemsize)  # the largest arrays first
        _pending.append(_pool[key].pop(0))
        _state["pooled"] -= math.prod(key[1]) * key[0].itemsize
        if not _pool[key]:
            del _pool[key]


def _synchronised():
    """Every queued kernel has run: arrays dropped from the pool can go."""
    _pending.clear()


class _Buffer:
    """The data of resident tensors: Taichi ndarrays on the device (``layouts``: shape -> ndarray),
    or after an escape a flat host tensor (``host``). ``fill``: the value of a never-written buffer
    (None: undefined).

    While a primitive may still write it (its own outputs and scratch), a buffer has one layout,
    and a kernel seeing it in another shape gets a re-laid out copy that replaces it. Once it is
    ``frozen`` (handed to a primitive as an input, or a user tensor uploaded: primitives never write
    their inputs) every shape asked for is kept, so each re-layout happens once.
    """

    __slots__ = ("dtype", "numel", "fill", "layouts", "host", "shared", "prog", "frozen")

    def __init__(self, dtype: torch.dtype, numel: int, fill=None):
        self.dtype, self.numel, self.fill = dtype, numel, fill
        self.layouts, self.host, self.shared, self.prog, self.frozen = {}, None, False, None, False

    def on_device(self) -> bool:
        """Whether kernels get device arrays: not escaped, or escaped while frozen with its host copy
        never handed out writable (then both copies hold the same data)."""
        return self.host is None or (self.frozen and bool(self.layouts) and not self.shared)

    def __del__(self):
        try:
            self._drop()
        except Exception:  # interpreter shutdown: nothing to free
            pass

    def _drop(self):
        for nd in self.layouts.values():
            _release(nd, self.dtype, self.prog)
        self.layouts = {}

    def _add(self, shape, nd):
        if not self.frozen:
            self._drop()
        self.layouts[shape], self.prog = nd, _program()
        return nd

    def ndarray(self, shape):
        """The device array in ``shape`` (allocated, or re-laid out by a device copy, as needed)."""
        from taichirast.kernels import relayout

        shape = tuple(shape)
        nd = self.layouts.get(shape)
        if nd is not None:
            return nd
        new, zeroed = _new_ndarray(self.dtype, shape)
        if self.layouts:
            relayout.copy(next(iter(self.layouts.values())), new)
            COUNTS["reshapes"] += 1
        elif self.fill is not None and not (zeroed and self.fill == 0):
            import taichi as ti

            relayout.filler(getattr(ti, _TI_DTYPES[self.dtype]))(new, self.fill)
        return self._add(shape, new)

    def escape(self, writable: bool = True) -> torch.Tensor:
        """The flat host tensor of the data (one download the first time). ``writable``: the caller
        may write it or keep views of it, so from now on it is the data; otherwise (an operation
        that reads it into new tensors) a frozen buffer's device arrays stay in use."""
        downloaded = self.host is None and bool(self.layouts)
        if self.host is None:
            if self.layouts:
                self.host = torch.from_numpy(next(iter(self.layouts.values())).to_numpy()).reshape(-1)
                COUNTS["escapes"] += 1
                COUNTS["escaped_bytes"] += self.host.element_size() * self.numel
            elif self.fill is not None:
                self.host = torch.full((self.numel,), self.fill, dtype=self.dtype)
            else:
                self.host = torch.empty((self.numel,), dtype=self.dtype)
        if writable or not self.frozen:
            self.shared = True
            self._drop()
        if downloaded:
            _synchronised()  # to_numpy waited for the queue: what was released until now can go
        return self.host


class Resident(torch.Tensor):
    """A CPU torch tensor whose data lives in a device :class:`_Buffer` (see the module docstring).
    Contiguous, no host storage; Taichi kernels receive ``__taichi_ndarray__()``."""

    @staticmethod
    def __new__(cls, buf: _Buffer, shape):
        t = torch.Tensor._make_wrapper_subclass(cls, tuple(shape), dtype=buf.dtype, device="cpu")
        t._buf = buf
        return t

    __torch_function__ = torch._C._disabled_torch_function_impl

    def __taichi_ndarray__(self):
        """What a kernel launch is given: the device array in this tensor's shape, or the host
        tensor once the buffer escaped (Taichi copies it per launch then)."""
        buf = self._buf
        return buf.ndarray(self.shape) if buf.on_device() else buf.host.view(self.shape)

    def __repr__(self, *, tensor_contents=None):
        return f"Resident({self.host()!r})"

    def host(self, writable: bool = True) -> torch.Tensor:
        """This tensor's data as an ordinary CPU tensor, a view of the buffer's host copy (escapes
        it; ``writable=False`` promises that nothing writes the view or keeps a view of it)."""
        return self._buf.escape(writable).view(self.shape)

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _VIEWS and isinstance(args[0], Resident):  # shares the buffer, escaped or not
            meta = func(torch.empty(args[0].shape, dtype=args[0].dtype, device="meta"), *args[1:], **kwargs)
            if meta.is_contiguous() and meta.storage_offset() == 0:
                return Resident(args[0]._buf, meta.shape)
        if func is aten.add.Tensor and len(args) == 2 and not kwargs and _same_device_arrays(*args):
            return _add(*args)  # the autograd engine summing two resident gradients
        writable = _aliases_or_writes(func)
        unwrap = lambda x: x.host(writable) if isinstance(x, Resident) else x  # noqa: E731
        return func(*tree_map(unwrap, args), **tree_map(unwrap, kwargs))


def _aliases_or_writes(func) -> bool:
    """Whether ``func`` (an aten overload) writes an argument or returns a view of one: then its
    host arguments become the data (see :meth:`_Buffer.escape`)."""
    schema = func._schema
    return any(a.alias_info is not None for a in list(schema.arguments) + list(schema.returns))


def _on_device(x) -> bool:
    return isinstance(x, Resident) and x._buf.on_device()


def _same_device_arrays(a, b) -> bool:
    return _on_device(a) and _on_device(b) and a.shape == b.shape and a.dtype == b.dtype


def _add(a, b):
    from taichirast.kernels import relayout

    out = empty(tuple(a.shape), a.dtype)
    shape = next(iter(a._buf.layouts), tuple(a.shape))  # a layout a already has: no copy of a
    relayout.add(a._buf.ndarray(shape), b._buf.ndarray(shape), out._buf.ndarray(shape))
    return freeze(out)


def empty(shape, dtype: torch.dtype, fill=None):
    """A new :class:`Resident` of ``shape`` / ``dtype`` (``fill``: its value until written)."""
    return Resident(_Buffer(dtype, math.prod(shape), fill), shape)


def upload(x):
    """Inside an active :func:`scope`, the CPU tensor ``x`` (a user's array entering a primitive) as a
    :class:`Resident` copy, uploaded once per scope however many kernels and primitives read it,
    in whatever shape (``x`` itself is unchanged); anything else is returned as it is."""
    if not active() or isinstance(x, Resident) or x.device.type != "cpu" or not wants(x, tuple(x.shape), x.dtype):
        return x
    cache = _local.__dict__.setdefault("uploads", {})
    x = x.detach().contiguous()
    key = (x.data_ptr(), x.numel(), x.dtype, x._version)
    if key not in cache:
        buf = _Buffer(x.dtype, x.numel())
        buf.frozen = True
        buf._add(tuple(x.shape), _new_ndarray(x.dtype, tuple(x.shape))[0]).from_numpy(x.numpy())
        _synchronised()  # from_numpy waited for the queue
        COUNTS["uploads"] += 1
        COUNTS["uploaded_bytes"] += x.element_size() * x.numel()
        cache[key] = (x, buf)  # x kept alive while cached: its data_ptr stays its own
    return Resident(cache[key][1], x.shape)


def freeze(x):
    """Mark resident ``x`` read-only for kernels (a primitive's input or finished output, never
    written by a kernel again: see :class:`_Buffer`); anything else is returned as it is."""
    if isinstance(x, Resident):
        x._buf.frozen = True
    return x


def host_data(x):
    """The data of ``x`` as an ordinary tensor, no autograd (a gradient handed back to a user's
    tensor)."""
    return x.host() if isinstance(x, Resident) else x


def host(x):
    """``x`` with every :class:`Resident` (also inside tuples and named tuples such as Fragments)
    replaced by an ordinary tensor, autograd-aware (a clone: its backward passes the gradient on)."""
    if isinstance(x, Resident):
        return x.clone()  # escapes the buffer; the clone is a plain tensor
    if isinstance(x, tuple):
        items = [host(v) for v in x]
        return type(x)(*items) if hasattr(x, "_fields") else type(x)(items)
    return x
