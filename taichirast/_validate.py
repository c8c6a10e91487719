"""Input validation shared by every public function (DESIGN §7).

Each check raises ``TypeError`` (wrong kind or dtype) or ``ValueError`` (wrong shape, range,
device, non-finite values) naming the function, the argument and what was expected. They work on
NumPy arrays and torch tensors and return normalised (contiguous, batched) views.
"""
from __future__ import annotations

import contextlib
import math
import numbers
import threading
import warnings
import weakref

import numpy as np

from . import _array as A


_STATE = threading.local()


def is_trusted() -> bool:
    """True inside :func:`trusted`: whole-array scans (NaN / index-range checks) are skipped."""
    return getattr(_STATE, "trusted", False)


@contextlib.contextmanager
def trusted():
    """Skip the whole-array NaN and index-range scans of the primitives inside this block.

    For compositions (``render``) that validated the user's arrays once on entry and then pass
    intermediates they produced themselves between primitives; shape, dtype and device checks
    still run. Thread-local; nests.
    """
    prev = is_trusted()
    _STATE.trusted = True
    try:
        yield
    finally:
        _STATE.trusted = prev


def kind_of(*xs) -> str:
    """'torch' if any argument is a torch tensor, else 'numpy'."""
    return "torch" if any(A.is_torch(x) for x in xs) else "numpy"


def array(fn: str, name: str, x, kind: str, like=None):
    """``x`` as an array of ``kind`` ('torch' / 'numpy'); lists and NumPy arrays are converted."""
    if x is None:
        raise TypeError(f"{fn}: {name} is required, got None")
    if kind == "torch":
        import torch

        if torch.is_tensor(x):
            from .runtime import check_tensor_device

            check_tensor_device(fn, name, x)
            return x
        if isinstance(x, (np.ndarray, list, tuple)) or np.isscalar(x):
            a = np.asarray(x)
            dev = like.device if like is not None and torch.is_tensor(like) else None
            return torch.as_tensor(a, device=dev)
        raise TypeError(f"{fn}: {name} must be a torch.Tensor, got {type(x).__name__}")
    if A.is_torch(x):
        raise TypeError(f"{fn}: {name} is a torch tensor; the NumPy API takes NumPy arrays")
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, (list, tuple)) or np.isscalar(x):
        return np.asarray(x)
    raise TypeError(f"{fn}: {name} must be a NumPy array, got {type(x).__name__}")


def float_array(fn, name, x, kind, like=None, ndims=None, last=None, finite=True):
    """A float32/float64 array with ``ndim in ndims`` and trailing size ``last`` (if given)."""
    x = array(fn, name, x, kind, like)
    dt = A.dtype_name(x)
    if dt not in A.FLOAT_DTYPES:
        raise TypeError(f"{fn}: {name} must be float32 or float64, got {dt}")
    if ndims is not None and x.ndim not in ndims:
        raise ValueError(f"{fn}: {name} must have {' or '.join(map(str, ndims))} dimensions, got shape {tuple(x.shape)}")
    if last is not None and (x.ndim == 0 or x.shape[-1] != last):
        raise ValueError(f"{fn}: {name} must have size {last} in its last dimension, got shape {tuple(x.shape)}")
    n = x.numel() if A.is_torch(x) else x.size
    if finite and n and not is_trusted():
        if not A.all_finite(x):
            raise ValueError(f"{fn}: {name} contains NaN or infinite values")
    return x


def same_float(fn, **arrays):
    """All given float arrays share one dtype (and, for tensors, one device)."""
    items = [(k, v) for k, v in arrays.items() if v is not None]
    dts = {k: A.dtype_name(v) for k, v in items}
    if len(set(dts.values())) > 1:
        cam = {"R", "t", "intrinsics"} & set(dts)
        hint = ("; the camera's tensors have its dtype: build the camera with dtype=torch.float64 (or the verts' "
                "dtype), or convert it with camera.to(dtype=...)") if cam else "; convert them to one dtype"
        raise TypeError(f"{fn}: float inputs must share one dtype, got "
                        + ", ".join(f"{k}={d}" for k, d in dts.items()) + hint)
    devs = {k: str(v.device) for k, v in items if A.is_torch(v)}
    if len(set(devs.values())) > 1:
        raise ValueError(f"{fn}: inputs must be on one device, got " + ", ".join(f"{k} on {d}" for k, d in devs.items()))


def verts(fn, name, x, kind, like=None):
    """Vertices ``(V, 3)`` or ``(B, V, 3)`` -> ``(B, V, 3)`` view, float, finite."""
    x = float_array(fn, name, x, kind, like, ndims=(2, 3), last=3)
    return x[None] if x.ndim == 2 else x


def screen_limit(dtype: str) -> float:
    """Largest ``|x|``, ``|y|`` (pixels) the rasterizers take in ``dtype``: their edge functions
    multiply coordinate differences (and divide by depths), which must stay finite."""
    return math.sqrt(float(np.finfo(dtype).max)) / 256.0


def bounded(fn, name, x, limit, why):
    """``x`` if ``max |x| <= limit`` (and no NaN), else ValueError naming ``name``, the magnitude, the
    limit and ``why`` (what goes wrong, what to do)."""
    m = A.abs_max(x if A.is_array(x) else np.asarray(x))
    if not m <= limit:
        raise ValueError(f"{fn}: {name} has magnitudes up to {m:.3g}, beyond the limit {limit:.3g}: {why}")
    return x


def screen_verts(fn, name, x, kind, like=None):
    """Screen vertices (:func:`verts`) with ``|x|, |y| <= screen_limit``. Checked in trusted mode
    too: render hands the rasterizers projected vertices that no one has checked."""
    sv = verts(fn, name, x, kind, like)
    dt = A.dtype_name(sv)
    more = f", or use float64 (limit {screen_limit('float64'):.3g})" if dt == "float32" else ""
    h = A.host_view(sv)  # else a copy: a device-resident sv stays on the device
    limit = screen_limit(dt)
    if h is not None and A.abs_max(h) <= limit:
        # x, y and z all within the limit: one pass over the contiguous array, where the strided
        # (V, 2) view below reduces ~8x slower in NumPy (0.65 ms for the bunny's 35k vertices)
        return sv
    xy = h.reshape(-1, 3)[:, :2] if h is not None else A.columns(sv.reshape(-1, 3), 0, 2)
    bounded(fn, f"{name} (x, y in pixels)", xy, limit,
            f"{dt} rasterization's edge functions would overflow and faces vanish. If they are projected "
            f"verts (render, project), the mesh reaches that far on screen: scale or move the verts, or cut "
            f"the mesh to the view{more}")
    return sv


def uv_limit(dtype: str) -> float:
    """Beyond ``2^(mantissa bits + 1)`` a UV of ``dtype`` has no fractional part (float32: 1.7e7)."""
    return float(2 ** (np.finfo(dtype).nmant + 1))


def uvs(fn, name, x):
    """Texture coordinates whose magnitude still resolves positions within one repeat of the texture."""
    dt = A.dtype_name(x)
    return bounded(fn, name, x, uv_limit(dt),
                   f"{dt} UVs that large have no fractional part, so texture lookups and mip levels of "
                   f"detail are meaningless; subtract whole numbers (wrap='repeat' repeats every 1.0)"
                   + (" or use float64" if dt == "float32" else ""))


def faces(fn, name, f, kind, n_verts: int, like=None):
    """Faces ``(F, 3)`` int32/int64 with indices in ``[0, n_verts)`` -> contiguous int32."""
    f = array(fn, name, f, kind, like)
    dt = A.dtype_name(f)
    if not (dt.startswith("int") or dt.startswith("uint")):
        raise TypeError(f"{fn}: {name} must be an integer array (int32 or int64), got {dt}")
    if f.ndim != 2 or f.shape[1] != 3:
        raise ValueError(f"{fn}: {name} must have shape (F, 3), got {tuple(f.shape)}")
    if f.shape[0] > 0 and not is_trusted():
        lo, hi = A.min_max(f)
        if lo < 0 or hi >= n_verts:
            raise ValueError(f"{fn}: {name} has indices in [{lo}, {hi}] but there are {n_verts} vertices "
                             f"(valid range [0, {n_verts - 1}])")
    if like is not None and A.is_torch(f) and A.is_torch(like) and f.device != like.device:
        raise ValueError(f"{fn}: {name} is on {f.device} but the vertices are on {like.device}")
    return A.astype(f, "int32")


def _whole(v) -> int:
    """``v`` as an int: an integer or an integer-valued float, never a bool or string (TypeError)."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (numbers.Real, np.integer, np.floating)):
        raise TypeError
    if not math.isfinite(float(v)) or float(v) != int(v):
        raise TypeError
    return int(v)


def image_size(fn, size):
    """``(H, W)`` positive ints from an int (square) or a pair (tuple / list / 1-D array) of ints."""
    try:
        if isinstance(size, (tuple, list)) or (isinstance(size, np.ndarray) and size.ndim == 1):
            if len(size) != 2:
                raise TypeError
            h, w = (_whole(s) for s in size)
        else:
            h = w = _whole(size)
    except (TypeError, ValueError):
        raise TypeError(f"{fn}: image_size must be a positive int or a pair (H, W) of positive ints, "
                        f"got {size!r} ({type(size).__name__})") from None
    if h <= 0 or w <= 0:
        raise ValueError(f"{fn}: image_size must be positive, got {(h, w)}")
    if h * w > 2**30:
        raise ValueError(f"{fn}: image_size {(h, w)} is too large (more than 2^30 pixels)")
    return h, w


# Screen vertices made by :func:`taichirast.project` remember the camera's image size (by object
# identity, dropped when the array is freed), so a rasterizer given another size can say so.
_PROJECTED = {}


def tag_projected(screen, image_size):
    """Record that ``screen`` (an array or tensor) was projected for a camera of ``image_size``."""
    key = id(screen)
    try:
        ref = weakref.ref(screen, lambda _r, k=key: _PROJECTED.pop(k, None))
    except TypeError:
        return screen
    _PROJECTED[key] = (ref, tuple(int(s) for s in image_size))
    return screen


def camera_size_matches(fn, screen_verts, size):
    """Warn when ``screen_verts`` came from :func:`taichirast.project` with a camera built for a
    different image size than the ``size`` (H, W) being rasterized: its principal point and focal
    length are in that camera's pixels, so the image would be shifted and cropped."""
    entry = _PROJECTED.get(id(screen_verts))
    if entry is None or entry[0]() is not screen_verts or entry[1] == tuple(size):
        return
    (ch, cw), (h, w) = entry[1], size
    warnings.warn(f"{fn}: screen_verts were projected with a camera built for image_size ({ch}, {cw}), but "
                  f"image_size=({h}, {w}) was passed: the picture will be shifted and cropped. Pass "
                  f"image_size=camera.image_size, or build the camera with image_size=({h}, {w})",
                  CameraSizeWarning, stacklevel=_caller_level())


def _caller_level():
    """``stacklevel`` for a warning raised by this module's caller that points at the first frame
    outside the taichirast package (the user's call, however deep the checks are)."""
    import os
    import sys

    pkg, frame, level = os.path.dirname(os.path.abspath(__file__)), sys._getframe(2), 2
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(pkg + os.sep):
        frame, level = frame.f_back, level + 1
    return level


class CameraSizeWarning(UserWarning):
    """Screen vertices projected for one image size are rasterized at another."""


def positive(fn, name, v):
    try:
        v = float(v)
    except (TypeError, ValueError):
        raise TypeError(f"{fn}: {name} must be a positive number, got {v!r}") from None
    if not (v > 0) or not math.isfinite(v):
        raise ValueError(f"{fn}: {name} must be positive and finite, got {v!r}")
    return v


def number(fn, name, v, lo=-math.inf, hi=math.inf, lo_open=False):
    try:
        v = float(v)
    except (TypeError, ValueError):
        raise TypeError(f"{fn}: {name} must be a number, got {v!r}") from None
    if math.isnan(v) or v < lo or v > hi or (lo_open and v == lo):
        raise ValueError(f"{fn}: {name} must be in {'(' if lo_open else '['}{lo}, {hi}], got {v!r}")
    return v


def dtype_limit(dtype: str) -> float:
    """Largest value a kernel's scale constant (``1 / gamma``-like) may take in ``dtype``
    ('float32' / 'float64'): the dtype's maximum / 1e8, headroom for the gradients that multiply it."""
    return float(np.finfo(dtype).max) * 1e-8


def in_dtype_range(fn, name, v, dtype, lo=None, hi=None, why=""):
    """``v`` if ``lo <= v <= hi``, the range where a kernel constant made from it stays finite in
    ``dtype``; else ``ValueError`` naming ``name``, ``v``, the bound and ``why``."""
    if (lo is None or v >= lo) and (hi is None or v <= hi):
        return v
    bound = f">= {lo:.3g}" if lo is not None and v < lo else f"<= {hi:.3g}"
    more = "; or pass float64 inputs" if dtype == "float32" else ""
    raise ValueError(f"{fn}: {name}={v!r} is out of range for {dtype} inputs: it must be {bound} ({why}){more}")


def batch(fn, sizes: dict) -> int:
    """Common batch size of arrays whose batch is 1 or B (1 broadcasts)."""
    bs = {k: v for k, v in sizes.items() if v != 1}
    if len(set(bs.values())) > 1:
        raise ValueError(f"{fn}: batch sizes must agree or be 1, got " + ", ".join(f"{k}={v}" for k, v in sizes.items()))
    return next(iter(bs.values()), 1)


def fragment_fields(fn, name, fragments, fields):
    """The named fields of a :class:`~taichirast.Fragments`-like argument (anything with those attributes)."""
    missing = [f for f in fields if not hasattr(fragments, f)]
    if missing:
        raise TypeError(f"{fn}: {name} must be a taichirast.Fragments (from rasterize) with fields "
                        f"{', '.join(fields)}; got {type(fragments).__name__}")
    return tuple(getattr(fragments, f) for f in fields)
