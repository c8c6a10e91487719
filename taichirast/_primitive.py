"""One definition per primitive, two bridges (torch autograd and NumPy vjp) over it.

A :class:`Primitive` bundles

* ``prepare(*args, **kw) -> Prepared``: validation and normalisation of the user's arguments,
  written against :mod:`taichirast._array` so it works on NumPy arrays and torch tensors. It only
  reshapes/converts (views that torch autograd sees through), never computes.
* ``forward(inputs, params) -> (outputs, saved)`` and
  ``backward(saved, params, grads, needs) -> input grads``: they launch the Taichi kernels.
  ``saved`` is a tuple of arrays (torch keeps them with ``ctx.save_for_backward``).

The torch bridge wraps forward/backward in one ``torch.autograd.Function``; the NumPy bridge
calls them directly and exposes ``vjp(fn, *args, **kw) -> (outputs, pullback)``.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np

from . import _array as A


@dataclass
class Prepared:
    """Normalised arguments of one call.

    inputs:  arrays handed to ``forward`` (float ones may be differentiable).
    params:  static, hashable-ish parameters (ints, floats, bools, tuples).
    sources: for each input, the name of the user argument it is a (reshaped) view of, or None.
    """

    inputs: list
    params: dict
    sources: list
    pack: Optional[Callable] = None  # outputs tuple -> user-facing value
    extra: dict = field(default_factory=dict)


class Primitive:
    def __init__(self, name: str, prepare, forward, backward, differentiable: Sequence[str]):
        self.name = name
        self.prepare = prepare
        self.forward = forward
        self.backward = backward
        self.differentiable = tuple(differentiable)
        self.signature = inspect.signature(prepare)

    # ---------------------------------------------------------------- torch bridge
    def torch_call(self, *args, **kw):
        from ._torch_function import apply

        prep = self.prepare(*args, **kw)
        outs = apply(self, prep)
        return prep.pack(outs) if prep.pack else (outs[0] if len(outs) == 1 else outs)

    # ---------------------------------------------------------------- NumPy bridge
    def numpy_call(self, *args, **kw):
        outs, _, prep = self._numpy_forward(args, kw)
        return prep.pack(outs) if prep.pack else (outs[0] if len(outs) == 1 else outs)

    def _numpy_forward(self, args, kw):
        for name, v in self.signature.bind(*args, **kw).arguments.items():
            if A.is_torch(v):
                raise TypeError(f"taichirast.np.{self.name}: argument {name!r} is a torch tensor; "
                                f"use taichirast.{self.name} for tensors, or pass a NumPy array")
        prep = self.prepare(*args, **kw)
        inputs = [A.detach(x) if A.is_array(x) else x for x in prep.inputs]
        outs, saved = self.forward(inputs, prep.params)
        return tuple(outs), saved, prep

    def numpy_vjp(self, *args, **kw):
        """(outputs, pullback): pullback(grad_outputs) -> one gradient per differentiable positional arg.

        ``grad_outputs`` has one entry per output (an array or None; None for integer outputs such
        as face ids). The returned tuple has one entry per positional argument of the call that
        is differentiable (in call order); a differentiable input the output does not depend on
        gets zeros.
        """
        bound = self.signature.bind(*args, **kw)
        positional = list(self.signature.parameters)[: len(args)]
        diff_names = [n for n in positional if n in self.differentiable]
        outs, saved, prep = self._numpy_forward(args, kw)
        user = prep.pack(outs) if prep.pack else (outs[0] if len(outs) == 1 else outs)

        def pullback(grads):
            if len(outs) == 1 and not isinstance(grads, (tuple, list)):
                grads = (grads,)
            grads = tuple(grads)
            if len(grads) != len(outs):
                raise ValueError(f"pullback of {self.name} expects {len(outs)} output gradients, got {len(grads)}")
            clean = []
            for i, (g, o) in enumerate(zip(grads, outs)):
                if g is None:
                    clean.append(None)
                    continue
                g = A.as_like(g, o)
                if tuple(g.shape) != tuple(o.shape):
                    raise ValueError(f"pullback of {self.name}: gradient {i} has shape {tuple(g.shape)}, "
                                     f"output has {tuple(o.shape)}")
                clean.append(A.contiguous(g.copy()))
            needs = [src in diff_names for src in prep.sources]
            in_grads = self.backward(saved, prep.params, clean, needs)
            result = []
            for name in diff_names:
                arg = bound.arguments[name]
                total = None
                for src, g in zip(prep.sources, in_grads):
                    if src == name and g is not None:
                        total = g if total is None else total + g
                shape = np.shape(arg)
                if total is None:
                    dt = A.dtype_name(arg) if A.is_array(arg) and A.dtype_name(arg) in A.FLOAT_DTYPES else "float64"
                    total = np.zeros(shape, dtype=dt)
                result.append(total.reshape(shape))
            return tuple(result)

        return user, pullback
