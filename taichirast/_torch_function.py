"""The torch side of :mod:`taichirast._primitive`: one generic ``autograd.Function``.

Bridge hygiene (DESIGN §5): kernels see ``tensor.detach().contiguous()`` (a ``requires_grad``
tensor would make Taichi allocate ``.grad``). Output gradients are made contiguous but not
cloned: DESIGN's clone rule protects buffers from Taichi's own ``kernel.grad`` (which zeroes
them), and no taichirast kernel uses Taichi autodiff or writes into an output gradient
(a profiled 1.5 ms per 3 MB buffer saved).
"""
from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from . import _array as A
from . import _resident
from . import runtime


def _check_devices(prim, prep):
    # prepare() already checked the user's arguments; this catches arrays it created itself.
    for x, src in zip(prep.inputs, list(prep.sources) + [None] * len(prep.inputs)):
        if torch.is_tensor(x):
            runtime.check_tensor_device(prim.name, src or "input", x)


class _PrimitiveFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, prim, prep, *inputs):
        # in render on Vulkan / Metal user tensors are uploaded once, and a primitive's inputs are
        # never written by its kernels (taichirast._resident: frozen buffers keep their layouts)
        data = [A.detach(_resident.freeze(_resident.upload(x))) if torch.is_tensor(x) else x for x in inputs]
        ctx.user_inputs = [torch.is_tensor(x) and not isinstance(x, _resident.Resident) for x in inputs]
        outs, saved = prim.forward(data, prep.params)
        outs = tuple(_resident.freeze(o) for o in outs)  # finished: no kernel writes them again
        ctx.prim, ctx.params, ctx.n_inputs = prim, prep.params, len(inputs)
        ctx.save_for_backward(*saved)
        nondiff = [o for o in outs if torch.is_tensor(o) and not o.is_floating_point()]
        if nondiff:
            ctx.mark_non_differentiable(*nondiff)
        ctx.set_materialize_grads(False)
        return outs

    @staticmethod
    @once_differentiable
    def backward(ctx, *grads):
        needs = list(ctx.needs_input_grad[2:])
        if not any(needs):
            return (None, None) + (None,) * ctx.n_inputs
        grads = [None if g is None else _resident.freeze(g.detach().contiguous()) for g in grads]
        saved = tuple(_resident.freeze(t) for t in ctx.saved_tensors)
        in_grads = ctx.prim.backward(saved, ctx.params, grads, needs)
        # a user's tensor gets an ordinary tensor as its gradient, never a resident one
        in_grads = [(_resident.host_data(g) if user else _resident.freeze(g)) if (g is not None and n) else None
                    for g, n, user in zip(in_grads, needs, ctx.user_inputs)]
        return (None, None) + tuple(in_grads)


def apply(prim, prep):
    _check_devices(prim, prep)
    outs = _PrimitiveFunction.apply(prim, prep, *prep.inputs)
    return outs if isinstance(outs, tuple) else (outs,)
