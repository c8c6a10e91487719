"""Repeat launches of a Taichi kernel without Taichi 1.7's per-argument Python work.

Taichi 1.7's ``Kernel.__call__`` spends ~55 us of Python per array argument on every launch (it
recomputes the instantiation key from each argument's dtype and rank, reads ``os.environ`` through
``has_pytorch()`` twice, builds ``np.iinfo`` and formats the torch device), ~35 us per launch
besides: a kernel of seven arrays took 0.61 ms to launch with nothing to do against 0.15 ms in
Taichi's C++ ``launch_kernel``. A hard raster + interpolate step makes five such launches, SoftRas
a dozen; at small image sizes they are most of the step.

``FastLaunch`` keeps, per *plan* (a kernel's argument signature: each array's type, dtype, rank
and device, each template argument's value), the compiled instantiation Taichi chose for the
first launch of that signature, and launches it directly: one launch context, one setter per
argument, Taichi's own compile-cache lookup and launch. Every launch it cannot prove equivalent
goes through Taichi's ``__call__`` unchanged (``FastLaunch.__call__`` returns False for it):

* an argument that is not a C-contiguous NumPy array or a contiguous torch tensor with
  ``requires_grad=False`` (Taichi copies other layouts, allocates ``.grad`` for tensors that
  require it, and resolves Taichi ndarrays differently), or an array of more than 2**31 - 1
  elements (Taichi warns about those);
* a torch tensor on a device Taichi's arch does not read directly (anything but ``cpu``, or
  ``cuda`` on the CUDA arch: Taichi copies it through the host);
* a scalar of a type Taichi would refuse, a template value that cannot be hashed;
* a kernel with a return value or ``print`` (Taichi syncs after those), Taichi's autodiff tape or
  forward mode active, a kernel whose instantiation Taichi no longer holds (``ti.init`` or
  ``ti.reset`` cleared it).

The first launch of every signature also goes through Taichi, so compiling, its checks and its
errors are Taichi's own. Argument setters follow ``taichi/lang/kernel_impl.py``
``Kernel.launch_kernel`` of Taichi 1.7.4 (``set_arg_ext_array``, ``recursive_set_args``); tests
compare every path (tests/test_launch.py).
"""
import numpy as np
from taichi._lib import core as _ti_core
from taichi.lang import impl
from taichi.lang.exception import handle_exception_from_cpp
from taichi.lang.matrix import MatrixType
from taichi.types import ndarray_type, primitive_types
from taichi.types.annotations import template
from taichi.types.utils import is_signed

# False: every launch goes through Taichi's ``Kernel.__call__`` (for tools that count launches by
# wrapping Taichi's ``Kernel.launch_kernel``: tests/test_resident.py, benchmarks/vulkan_copies.py).
ENABLED = True
_ARRAY, _INT, _UINT, _FLOAT, _TEMPLATE = range(5)
_INT32_MAX = 2**31 - 1


def _kind(anno):
    """(kind, element rank) of a kernel argument annotation; kind None: not handled here."""
    if isinstance(anno, template):
        return _TEMPLATE, 0
    if isinstance(anno, ndarray_type.NdarrayType):
        return _ARRAY, anno.dtype.ndim if isinstance(anno.dtype, MatrixType) else 0
    if id(anno) in primitive_types.real_type_ids:
        return _FLOAT, 0
    if id(anno) in primitive_types.integer_type_ids:
        return (_INT if is_signed(anno) else _UINT), 0
    return None, 0


def _is_tensor(a):
    """A torch tensor, told without importing torch (kernels never import it)."""
    return type(a).__module__.startswith("torch") and hasattr(a, "data_ptr")


class FastLaunch:
    """Launches of one kernel (``ti.kernel`` object) by plan; see the module docstring."""

    def __init__(self, compiled):
        self.primal = compiled._primal
        kinds = [_kind(a.annotation) for a in self.primal.arguments]
        self.usable = all(k is not None for k, _ in kinds)
        self.kinds = [k for k, _ in kinds]
        self.edims = [e for _, e in kinds]
        slots, n = [], 0
        for k in self.kinds:
            slots.append((n,))
            n += k != _TEMPLATE
        self.slots = slots
        self.plans = {}  # signature -> (instantiation key, compiled kernel)

    def signature(self, args):
        """Hashable signature of ``args``, or None when they need Taichi's own launch."""
        if len(args) != len(self.kinds):
            return None
        sig = []
        for a, kind in zip(args, self.kinds):
            if kind == _ARRAY:
                if type(a) is np.ndarray:
                    if not a.flags.c_contiguous or a.size > _INT32_MAX:
                        return None
                    sig.append((a.dtype, a.ndim))
                elif _is_tensor(a):
                    if a.requires_grad or not a.is_contiguous() or a.numel() > _INT32_MAX:
                        return None
                    sig.append((a.dtype, a.dim(), a.device.type))
                else:
                    return None
            elif kind == _TEMPLATE:
                sig.append(a)
            elif kind == _FLOAT:
                if not isinstance(a, (float, int, np.floating, np.integer)):
                    return None
            elif not isinstance(a, (int, np.integer)):
                return None
        sig = tuple(sig)
        try:
            hash(sig)
        except TypeError:
            return None
        return sig

    def _direct_devices(self):
        arch = impl.current_cfg().arch
        return ("cpu", "cuda") if arch == _ti_core.Arch.cuda else ("cpu",)

    def record(self, sig, args):
        """After Taichi launched ``args`` (signature ``sig``): keep its instantiation as a plan."""
        p = self.primal
        if sig is None or not self.usable or p.return_type is not None or p.has_print:
            return
        devices = self._direct_devices()
        for s, kind in zip(sig, (k for k in self.kinds if k in (_ARRAY, _TEMPLATE))):
            if kind == _ARRAY and len(s) == 3 and s[2] not in devices:
                return
        key = p.ensure_compiled(*args)
        self.plans[sig] = (key, p.compiled_kernels[key])

    def __call__(self, args):
        """Launch ``args`` by its plan and return True, or return False (no plan: use Taichi)."""
        if not (ENABLED and self.usable):
            return False
        rt = impl.get_runtime()
        if rt.target_tape or rt.fwd_mode_manager:
            return False
        sig = self.signature(args)
        plan = self.plans.get(sig) if sig is not None else None
        if plan is None or self.primal.compiled_kernels.get(plan[0]) is not plan[1]:
            return False
        kernel_cpp = plan[1]
        ctx = kernel_cpp.make_launch_context()
        for a, kind, slot, edim in zip(args, self.kinds, self.slots, self.edims):
            if kind == _ARRAY:
                shape = tuple(a.shape)
                if edim:
                    shape = shape[:-edim]
                if type(a) is np.ndarray:
                    ctx.set_arg_external_array_with_shape(slot, int(a.ctypes.data), a.nbytes, shape, 0)
                else:
                    ctx.set_arg_external_array_with_shape(slot, int(a.data_ptr()), a.element_size() * a.numel(),
                                                          shape, 0)
            elif kind == _INT:
                ctx.set_arg_int(slot, int(a))
            elif kind == _FLOAT:
                ctx.set_arg_float(slot, float(a))
            elif kind == _UINT:
                ctx.set_arg_uint(slot, int(a))
        prog = rt.prog
        try:
            prog.launch_kernel(prog.compile_kernel(prog.config(), prog.get_device_caps(), kernel_cpp), ctx)
        except Exception as e:  # the same translation as Taichi's launch
            raise handle_exception_from_cpp(e) from None
        return True
