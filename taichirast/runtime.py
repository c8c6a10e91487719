"""Taichi runtime: the only place that calls ``ti.init`` (DESIGN §6).

The runtime starts lazily, on the first kernel launch. The backend comes from the environment
variable ``TAICHIRAST_ARCH``:

==========  ==================================================================================
``cpu``     Taichi's LLVM CPU backend (x64 / arm64). The default when no CUDA device is visible.
``cuda``    NVIDIA GPUs. Torch tensors must then live on ``cuda``.
``vulkan``  Vulkan (AMD, Intel, Apple through MoltenVK). Tensors are copied by Taichi.
``metal``   Apple GPUs.
``auto``    (default) follows the data: the backend that reads the first tensors taichirast is
            given in place -- CUDA for CUDA tensors, the CPU for CPU tensors. When Taichi starts
            without a tensor (the NumPy bridge, ``taichirast.info()``): CUDA when a CUDA device
            is visible, else the CPU.
==========  ==================================================================================

So on a machine with an NVIDIA GPU, code written with CPU tensors runs on the CPU and code written
with CUDA tensors on the GPU, without setting anything; a later call with tensors on the other
device is refused with a ``ValueError`` naming both (Taichi runs one backend per process).

``ti.gpu`` is never used: its OpenGL probe segfaults on headless machines. The offline kernel
cache is on (compiled kernels survive the process), ``TI_SKIP_VERSION_CHECK=ON`` avoids a
network call at start, and Taichi logs at WARN level.

Threads: Taichi's compiler and launcher keep global state (the kernel being compiled, the LLVM
struct module, the runtime's result buffers), so taichirast runs every kernel launch, and the
compilation it may trigger, under one re-entrant process-wide lock (:func:`serialized`); each
kernel still runs on all cores. ``ensure_init`` builds Taichi's (empty) struct module right after
``ti.init`` on the same thread, as Taichi's LLVM backend requires.

Memory: Taichi's first launch of a kernel keeps the launch's arrays in reference cycles (its AST
transformer's objects) until Python's collector runs; a top-level :func:`serialized` call whose
compiling launches passed at least ``GC_AFTER_COMPILE_BYTES`` collects once when it returns, so a
large first call's temporaries do not stay into the next call.
"""
from __future__ import annotations

import functools
import os
import threading

_ARCHES = ("cpu", "cuda", "vulkan", "metal", "auto")
_lock = threading.RLock()  # re-entrant: a primitive's forward calls ensure_init and other launches
_state = {"arch": None, "depth": 0}


def _cuda_visible() -> bool:
    """True when a CUDA device looks usable, without importing torch or initialising Taichi."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    return any(os.path.exists(p) for p in ("/dev/nvidia0", "/dev/nvidiactl")) or os.path.exists(
        "/proc/driver/nvidia/version"
    )


def requested_arch(prefer: str | None = None) -> str:
    """The architecture named by ``TAICHIRAST_ARCH``, without starting Taichi. ``auto`` resolves to
    ``prefer`` (``"cpu"`` or ``"cuda"``: the device of the data at hand) when given, else to CUDA
    when a CUDA device is visible, else the CPU."""
    name = os.environ.get("TAICHIRAST_ARCH", "auto").strip().lower() or "auto"
    if name not in _ARCHES:
        raise ValueError(f"TAICHIRAST_ARCH must be one of {_ARCHES}, got {name!r}")
    if name == "auto":
        if prefer in ("cpu", "cuda"):
            return prefer
        name = "cuda" if _cuda_visible() else "cpu"
    return name


def ensure_init(prefer: str | None = None) -> str:
    """Start Taichi once (thread-safe) and return the arch name in use (``'cpu'``, ``'cuda'``, ...).

    ``prefer`` (``"cpu"`` / ``"cuda"``, the device of the tensors about to be used) picks the backend
    under ``TAICHIRAST_ARCH=auto``; it is ignored once Taichi runs, and when the variable names an
    arch. Calling it again is free. taichirast owns ``ti.init``: choose the backend with
    ``TAICHIRAST_ARCH`` rather than calling ``ti.init`` yourself (a later ``ti.init`` resets the
    Taichi runtime under taichirast's compiled kernels, which then recompile on next use).
    """
    if _state["arch"] is not None:
        return _state["arch"]
    with _lock:
        if _state["arch"] is not None:
            return _state["arch"]
        os.environ.setdefault("TI_SKIP_VERSION_CHECK", "ON")
        import taichi as ti

        name = requested_arch(prefer)
        arch = {"cpu": ti.cpu, "cuda": ti.cuda, "vulkan": ti.vulkan, "metal": ti.metal}[name]
        ti.init(arch=arch, log_level=ti.WARN, offline_cache=True, default_fp=ti.f32, default_ip=ti.i32)
        # Finalise the (empty) root field tree now, on the thread that made the LLVM context: Taichi
        # asserts they match, and would otherwise do it at the first launch, on any thread.
        ti.lang.impl.get_runtime().materialize()
        got = ti.lang.impl.current_cfg().arch
        actual = {ti.cpu: "cpu", ti.x64: "cpu", ti.arm64: "cpu", ti.cuda: "cuda", ti.vulkan: "vulkan",
                  ti.metal: "metal"}.get(got, str(got))
        if actual != name:
            # Taichi falls back to CPU silently when the requested backend is missing; say so.
            import warnings

            warnings.warn(f"taichirast: TAICHIRAST_ARCH={name} is not available here, running on {actual}")
        if actual in ("vulkan", "metal"):
            actual = _driver_self_test(ti, actual)
        _state["arch"] = actual
        return actual


def _driver_self_test(ti, name: str) -> str:
    """Run the known-answer kernels of :mod:`taichirast._selftest` on ``name``; on a wrong answer,
    restart Taichi on the CPU with a warning saying why (never a silently wrong image)."""
    from . import _selftest
    from ._validate import _caller_level

    why = _selftest.run(ti)
    if why is None:
        return name
    import warnings

    warnings.warn(f"taichirast: the {name} driver failed taichirast's self-test: {why}. It would produce "
                  f"wrong images, so taichirast runs on the CPU instead. Update the driver (for Mesa's "
                  f"lavapipe: Mesa >= 24), or set TAICHIRAST_ARCH=cpu to choose the CPU without this check",
                  DriverSelfTestWarning, stacklevel=_caller_level())
    ti.reset()
    ti.init(arch=ti.cpu, log_level=ti.WARN, offline_cache=True, default_fp=ti.f32, default_ip=ti.i32)
    ti.lang.impl.get_runtime().materialize()
    return "cpu"


class DriverSelfTestWarning(RuntimeWarning):
    """A GPU driver gave wrong answers to taichirast's known-answer kernels; running on the CPU."""


def serialized(fn):
    """``fn`` run under taichirast's runtime lock (re-entrant, process-wide).

    Wrap every function that launches Taichi kernels (and so may compile them): Taichi's compiler
    and launcher are not thread-safe. Primitives' forward and backward are wrapped by
    :class:`~taichirast._primitive.Primitive`; code launching kernels by hand uses this too.
    """
    @functools.wraps(fn)
    def locked(*args, **kw):
        with _lock:
            _state["depth"] += 1
            try:
                return fn(*args, **kw)
            finally:
                _state["depth"] -= 1
                if _state["depth"] == 0:
                    _collect_after_compiling()

    return locked


# A collection after a (top-level) serialized call whose compiling launches passed at least this
# many bytes of arrays (see kernels.take_compiled_bytes): the sphere at 2048² left ~0.7 GB of a soft
# call's temporaries to the next call otherwise (its peak 1.33 -> 2.0 GB); small calls skip the
# collection's ~80 ms.
GC_AFTER_COMPILE_BYTES = 256 * 2**20


def _collect_after_compiling():
    from taichirast import kernels

    if kernels.take_compiled_bytes() >= GC_AFTER_COMPILE_BYTES:
        import gc

        gc.collect()


def reset_if_initialized() -> None:
    """``ti.reset()`` if taichirast started Taichi (it writes newly compiled kernels to the offline
    cache); the next launch starts the runtime again. For a process about to end without the
    interpreter's normal teardown (``taichirast``'s console script)."""
    with _lock:
        if _state["arch"] is None:
            return
        import taichi as ti

        ti.reset()
        _state["arch"] = None


def arch() -> str | None:
    """The arch in use, or ``None`` before the first kernel launch."""
    return _state["arch"]


def cpu_threads() -> int:
    """The threads Taichi's CPU backend runs a parallel loop on (``cpu_max_num_threads``)."""
    import taichi as ti

    return int(ti.lang.impl.current_cfg().cpu_max_num_threads)


def torch_device(prefer: str | None = None) -> str:
    """The torch device (``"cuda"`` or ``"cpu"``) whose tensors Taichi reads in place on the arch in
    use; starts Taichi (``prefer`` as in :func:`ensure_init`). Vulkan and Metal read CPU tensors."""
    return "cuda" if ensure_init(prefer) == "cuda" else "cpu"


def torch_device_ok(device_type: str) -> bool:
    """Whether Taichi on the current arch reads tensors on ``device_type`` ('cpu' / 'cuda') in place."""
    a = ensure_init(prefer=device_type)
    # Taichi would silently copy a CPU tensor to the GPU and back (or fail on a CUDA tensor on the
    # CPU backend): we refuse both rather than hide a slow path (DESIGN §6).
    return device_type == ("cuda" if a == "cuda" else "cpu")


def check_tensor_device(fn: str, name: str, x) -> None:
    """Raise ``ValueError`` naming ``fn``, ``name`` and both devices if Taichi cannot read tensor ``x`` in place."""
    dev = x.device.type
    if not torch_device_ok(dev):
        a = arch()
        want = "cuda" if a == "cuda" else "cpu"
        raise ValueError(
            f"{fn}: {name} is on device {x.device}, but Taichi runs on arch {a!r}, which reads tensors on "
            f"{want!r}; move it with .to({want!r}) or choose the backend with TAICHIRAST_ARCH")
    why = cuda_index_problem(dev, x.device.index)
    if why:
        raise ValueError(f"{fn}: {name} is on device {x.device}: {why}")


# ------------------------------------------------------------------ CUDA: one GPU per process
# Taichi 1.7's CUDA backend always runs on the first *visible* device (ordinal 0 of
# CUDA_VISIBLE_DEVICES); it has no device argument. So the GPU Taichi uses is the one torch calls
# cuda:0 in the same process, and a process meant for another GPU (torchrun's LOCAL_RANK) must make
# that GPU its only visible one before CUDA starts: bind_local_gpu() does that.


def cuda_index_problem(device_type: str, index) -> str | None:
    """Why Taichi cannot read a CUDA tensor on ``cuda:index`` in place, or None (index 0 or None:
    the first visible device, the one Taichi uses)."""
    if device_type != "cuda" or index in (None, 0):
        return None
    return (f"Taichi's CUDA backend runs on the first visible GPU (cuda:0 in this process), not cuda:{index}. "
            f"Run one process per GPU with only its GPU visible: call taichirast.runtime.bind_local_gpu() "
            f"before anything uses CUDA (it sets CUDA_VISIBLE_DEVICES from LOCAL_RANK under torchrun), "
            f"then use device 'cuda'")


def _nvidia_gpu_count() -> int | None:
    """GPUs the NVIDIA driver lists (``/proc/driver/nvidia/gpus``), without starting CUDA; None if unknown."""
    try:
        return len(os.listdir("/proc/driver/nvidia/gpus"))
    except OSError:
        return None


def local_gpu_visible_devices(env, gpu_count=None) -> str | None:
    """The ``CUDA_VISIBLE_DEVICES`` value that leaves only this process's GPU visible, or None when
    nothing is to change. ``env`` is a mapping like ``os.environ``: ``LOCAL_RANK`` (set by torchrun)
    picks the GPU among those already visible (all of them when ``CUDA_VISIBLE_DEVICES`` is unset;
    ``gpu_count``, if known, bounds the rank then); without ``LOCAL_RANK``, or with one GPU visible
    already, None."""
    rank = env.get("LOCAL_RANK")
    if rank is None or rank.strip() == "":
        return None
    try:
        r = int(rank)
    except ValueError:
        raise ValueError(f"LOCAL_RANK must be a non-negative integer, got {rank!r}") from None
    if r < 0:
        raise ValueError(f"LOCAL_RANK must be a non-negative integer, got {rank!r}")
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        if gpu_count is not None and r >= gpu_count:
            raise ValueError(f"LOCAL_RANK={r} but this machine has {gpu_count} GPU(s): start at most {gpu_count} "
                             f"processes per node (torchrun --nproc_per_node), or run them on the CPU "
                             f"(TAICHIRAST_ARCH=cpu, gloo)")
        return str(r)
    devices = [d.strip() for d in visible.split(",") if d.strip()]
    if len(devices) <= 1:
        return None  # already one GPU (or none) per process
    if r >= len(devices):
        raise ValueError(f"LOCAL_RANK={r} but CUDA_VISIBLE_DEVICES lists only {len(devices)} GPUs ({visible!r})")
    return devices[r]


def bind_local_gpu() -> str:
    """Make this process's GPU (``LOCAL_RANK`` under ``torchrun``) its only visible CUDA device, so
    that torch's ``cuda`` and Taichi's CUDA backend are the same GPU; returns the torch device to
    use (``"cuda"``, or ``"cpu"`` when no CUDA backend is requested).

    Call it at the top of a training script, before torch or Taichi touch CUDA::

        device = taichirast.runtime.bind_local_gpu()   # under torchrun --nproc_per_node=N
        model.to(device)

    Raises RuntimeError if CUDA is already initialised in this process with another GPU visible.
    """
    value = local_gpu_visible_devices(os.environ, _nvidia_gpu_count() if requested_arch() == "cuda" else None)
    if value is not None and os.environ.get("CUDA_VISIBLE_DEVICES") != value:
        import sys

        torch = sys.modules.get("torch")
        if _state["arch"] == "cuda" or (torch is not None and torch.cuda.is_initialized()):
            raise RuntimeError("bind_local_gpu: CUDA is already initialised in this process; call it before "
                               "anything uses CUDA (first thing in the script)")
        os.environ["CUDA_VISIBLE_DEVICES"] = value
    return "cuda" if requested_arch() == "cuda" else "cpu"


def info() -> dict:
    """Versions, arch and devices, for bug reports (``taichirast.info()``). Starts Taichi."""
    import platform

    import numpy as np
    import taichi as ti

    a = ensure_init()
    out = {
        "taichirast": __import__("taichirast").__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "taichi": ".".join(map(str, ti.__version__)),
        "numpy": np.__version__,
        "arch": a,
        "requested_arch": os.environ.get("TAICHIRAST_ARCH", "auto"),
        "cpu_count": os.cpu_count(),
    }
    try:
        import torch

        out["torch"] = torch.__version__
        out["torch_cuda"] = bool(torch.cuda.is_available())
        if torch.cuda.is_available():
            out["cuda_devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except ImportError:
        out["torch"] = None
    return out
