"""One definition per primitive, two bridges (torch autograd and NumPy vjp) over it.

A :class:`Primitive` bundles

* ``prepare(*args, **kw) -> Prepared``: validation and normalisation of the user's arguments,
  written against :mod:`taichirast._array` so it works on NumPy arrays and torch tensors. It only
  reshapes/converts (views that torch autograd sees through), never computes.
* ``forward(inputs, params) -> (outputs, saved)`` and
  ``backward(saved, params, grads, needs) -> input grads``: they launch the Taichi kernels.
  ``saved`` is a tuple of arrays (torch keeps them with ``ctx.save_for_backward``).

``prepare`` is the public function: ``Primitive.torch`` (what :mod:`taichirast.ops` exports),
``Primitive.numpy`` (:mod:`taichirast.np`) and ``Primitive.numpy_vjp`` are made from it, so its
signature and docstring are written once. The torch bridge wraps forward/backward in one
``torch.autograd.Function``; the NumPy bridge calls them directly.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np

from . import _array as A
from .packed import gradient_like, is_batch
from .runtime import serialized


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


def _given(value):
    return value is not None


class Primitive:
    """One primitive: the public function (``prepare``), its kernels and the two bridges made from them.

    ``prepare`` *is* the public function: its name, signature and docstring are those of
    ``taichirast.NAME`` (:attr:`torch`), ``taichirast.np.NAME`` (:attr:`numpy`) and the NumPy
    vector-Jacobian product (:attr:`numpy_vjp`, reached as ``taichirast.np.vjp(taichirast.np.NAME,
    ...)``), so no bridge repeats a signature. ``differentiable`` names the parameters of ``prepare``
    that get gradients; ``Prepared.sources`` maps each kernel input back to one of them, dotted
    (``"fragments.bary"``) for a field of a named-tuple argument such as
    :class:`~taichirast.Fragments`.
    """

    def __init__(self, name: str, prepare, forward, backward, differentiable: Sequence[str]):
        self.name = name
        self.prepare = prepare
        # Taichi compiles and launches under one lock: both bridges call these (runtime.serialized)
        self.forward = serialized(forward)
        self.backward = serialized(backward)
        self.signature = inspect.signature(prepare)
        unknown = [n for n in differentiable if n not in self.signature.parameters]
        if unknown:
            raise TypeError(f"Primitive {name}: differentiable names {unknown} are not parameters of "
                            f"{prepare.__name__}{self.signature}")
        # in signature order: the order of the NumPy pullback's gradients
        self.differentiable = tuple(n for n in self.signature.parameters if n in differentiable)
        self.torch = self._public(self.torch_call, "taichirast.ops")
        self.numpy = self._public(self.numpy_call, "taichirast.np")
        self.numpy._vjp = self.numpy_vjp

    def _public(self, call, module):
        """A plain function named and documented like ``prepare`` that calls one bridge."""
        def fn(*args, **kw):
            return call(*args, **kw)

        fn.__name__ = fn.__qualname__ = self.prepare.__name__
        fn.__doc__ = self.prepare.__doc__
        fn.__signature__ = self.signature
        fn.__module__ = module
        fn.__wrapped_primitive__ = self
        return fn

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
            parts = (v.verts_packed,) if is_batch(v) else v if isinstance(v, (tuple, list)) else (v,)
            if any(A.is_torch(x) for x in parts):
                raise TypeError(f"taichirast.np.{self.name}: argument {name!r} is a torch tensor; "
                                f"use taichirast.{self.name} for tensors, or pass a NumPy array")
        prep = self.prepare(*args, **kw)
        inputs = [A.detach(x) if A.is_array(x) else x for x in prep.inputs]
        outs, saved = self.forward(inputs, prep.params)
        return tuple(outs), saved, prep

    def numpy_vjp(self, *args, **kw):
        """(outputs, pullback): pullback(grad_outputs) -> one gradient per differentiable parameter.

        ``grad_outputs`` has one entry per output (an array or None; None for integer outputs such
        as face ids; a :class:`~taichirast.Fragments` output takes a Fragments-shaped tuple). The
        returned tuple has one entry per differentiable parameter of the function, in signature
        order, whether given by position or keyword: None where the call did not give that
        argument (or gave None), zeros where the output does not depend on it, and for a
        named-tuple argument (Fragments) the same named tuple with a gradient per differentiable
        field (None elsewhere).
        """
        bound = self.signature.bind(*args, **kw)
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
            given = {n for n in self.differentiable if _given(bound.arguments.get(n))}
            needs = [src is not None and src.split(".")[0] in given for src in prep.sources]
            in_grads = self.backward(saved, prep.params, clean, needs)
            return tuple(self._gather(name, bound.arguments.get(name), prep.sources, in_grads)
                         if name in given else None for name in self.differentiable)

        return user, pullback

    @staticmethod
    def _gather(name, arg, sources, in_grads):
        """Sum the kernel-input gradients whose source is ``name`` (or ``name.field``) into its shape."""
        if isinstance(arg, tuple) and hasattr(arg, "_fields"):
            fields = {}
            for src, g in zip(sources, in_grads):
                if src is not None and g is not None and src.startswith(name + "."):
                    f = src.split(".", 1)[1]
                    fields[f] = g if f not in fields else fields[f] + g
            return type(arg)(*(fields[f].reshape(np.shape(getattr(arg, f))) if f in fields else None
                               for f in arg._fields))
        total = None
        for src, g in zip(sources, in_grads):
            if src == name and g is not None:
                total = g if total is None else total + g
        if total is not None and (is_batch(arg) or isinstance(arg, (list, tuple))):
            return gradient_like(arg, total)  # a packed batch: packed, or split like the user's list
        shape = np.shape(arg)
        if total is None:
            dt = A.dtype_name(arg) if A.is_array(arg) and A.dtype_name(arg) in A.FLOAT_DTYPES else "float64"
            total = np.zeros(shape, dtype=dt)
        return total.reshape(shape)
