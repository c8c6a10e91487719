"""Pure Taichi kernels of taichirast (installed as ``taichirast.kernels``).

Rules (DESIGN §1, §5, §6): no torch, no module-level Taichi fields (``ti.init`` resets them);
kernels take ndarrays (NumPy arrays or torch tensors). Each module has a ``build(real)`` factory,
cached per float type, returning kernels whose locals are all of type ``real`` so that float64
gradient checks are float64 end to end. Backward kernels are hand-written (DESIGN §5).

Taichi 1.7's SPIR-V backends (Vulkan, Metal) add three rules, each found by tests/test_vulkan.py:

* ``VULKAN_IO``: an external array that a kernel only writes is not uploaded; the entries it does
  not write come back as stale device memory. A kernel that writes part of an array whose other
  entries must keep their values reads it (``x[i] = max(x[i], v)``, ``|=``, ``+ (x[i] - old)``).
* No top-level ``continue`` in a parallel loop: it ends the thread's whole grid-stride loop, so
  iterations are silently dropped once the range exceeds the threads launched (wrap in ``if``).
* No parallel-loop range computed from an array's shape with ``//``: "Not supported" by the
  code generator (pass the count as an argument).
"""
import functools

import taichi as ti

from ._launch import FastLaunch


# Bytes of the array arguments of launches that compiled a kernel since the last
# ``take_compiled_bytes()``: Taichi 1.7's first launch of a kernel instantiation leaves its arguments
# in reference cycles of its AST-transformer objects, alive until Python's collector runs
# (taichirast.runtime.serialized collects after a primitive whose compiling launches held many).
_compiled_bytes = [0]


def take_compiled_bytes() -> int:
    """The bytes counted in ``_compiled_bytes``, then 0."""
    n = _compiled_bytes[0]
    _compiled_bytes[0] = 0
    return n


def kernel(fn):
    """``ti.kernel(fn)`` whose launches accept taichirast's resident tensors
    (:mod:`taichirast._resident`): an argument with ``__taichi_ndarray__`` is replaced by the Taichi
    ndarray (or host tensor) holding its data. Every taichirast kernel is defined with it. A launch
    that compiles (a new instantiation) adds its arrays' bytes to ``_compiled_bytes``. Repeat
    launches of a signature skip Taichi's per-argument Python work (``_launch.FastLaunch``)."""
    compiled = ti.kernel(fn)
    fast = FastLaunch(compiled)

    @functools.wraps(fn)
    def launch(*args):
        args = [a.__taichi_ndarray__() if hasattr(type(a), "__taichi_ndarray__") else a for a in args]
        if fast(args):
            return None
        n = len(compiled._primal.compiled_kernels)
        out = compiled(*args)
        if len(compiled._primal.compiled_kernels) != n:
            _compiled_bytes[0] += sum(int(getattr(a, "nbytes", 0) or 0) for a in args)
        fast.record(fast.signature(args), args)
        return out

    launch.taichi_kernel = compiled
    return launch


def real_type(dtype_name: str):
    """Taichi float type for a dtype name ('float32' / 'float64'); every primitive's kernels are
    chosen through it, so float64 on a backend that cannot compile it is refused here, clearly."""
    if dtype_name == "float64" and ti.lang.impl.current_cfg().arch in (ti.vulkan, ti.metal):
        arch = "vulkan" if ti.lang.impl.current_cfg().arch == ti.vulkan else "metal"
        raise TypeError(f"taichirast: float64 arrays are not supported on the {arch} backend (Taichi 1.7's "
                        f"SPIR-V code generator has no 64-bit exp, log or pow). Use float32 (tensor.float() or "
                        f"array.astype(np.float32)), or run float64 on the CPU or CUDA backend "
                        f"(TAICHIRAST_ARCH=cpu or cuda)")
    return {"float32": ti.f32, "float64": ti.f64}[dtype_name]


def tile_block_dim() -> int:
    """Threads per block for the one-thread-per-tile loops (kernels/soft.py, kernels/dibr.py), for
    the arch Taichi runs on now: 1 on the CPU, which Taichi 1.7 ignores there (its adaptive CPU
    block size makes tasks of at least 512 consecutive iterations, whatever ``loop_config`` says;
    measured, see kernels/binning.py ``fill_chunks``: honouring 1 by turning the adaptation off
    made no difference to the soft passes), 64 on GPUs (with one thread per block Taichi
    dispatches 131,072 workgroups, above the 65,535 per dispatch that every Vulkan device
    guarantees: lavapipe refuses with ``Dispatch error: RhiResult(not_supported)``)."""
    return 1 if ti.lang.impl.current_cfg().arch in (ti.x64, ti.arm64) else 64
