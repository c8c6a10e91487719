"""Let a torch geometry function accept and return NumPy arrays (forward only).

``@numpy_compatible`` wraps a function written for torch tensors: when its arguments contain NumPy
arrays and no torch tensor, the arrays become tensors (dtype kept; float arrays stay float32 /
float64), the function runs under ``torch.no_grad()``, and every tensor in the result (also inside
tuples, lists, dicts and named tuples) comes back as a NumPy array. With tensors in, nothing
changes, so gradients flow as usual.
"""
from __future__ import annotations

import functools

import numpy as np


def _has(obj, pred):
    if pred(obj):
        return True
    if isinstance(obj, (list, tuple)):
        return any(_has(o, pred) for o in obj)
    if isinstance(obj, dict):
        return any(_has(o, pred) for o in obj.values())
    return False


def _to_torch(obj):
    import torch

    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*(_to_torch(o) for o in obj))
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_torch(o) for o in obj)
    if isinstance(obj, dict):
        return {k: _to_torch(v) for k, v in obj.items()}
    return obj


def _to_numpy(obj):
    import torch

    if torch.is_tensor(obj):
        return obj.detach().cpu().numpy()
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*(_to_numpy(o) for o in obj))
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_numpy(o) for o in obj)
    if isinstance(obj, dict):
        return {k: _to_numpy(v) for k, v in obj.items()}
    return obj


def numpy_compatible(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kw):
        is_np = lambda x: isinstance(x, np.ndarray)  # noqa: E731
        is_t = lambda x: type(x).__module__.split(".")[0] == "torch"  # noqa: E731
        if (_has(args, is_np) or _has(kw, is_np)) and not (_has(args, is_t) or _has(kw, is_t)):
            import torch

            with torch.no_grad():
                return _to_numpy(fn(*_to_torch(args), **_to_torch(kw)))
        return fn(*args, **kw)

    wrapper.__wrapped_numpy__ = True
    return wrapper
