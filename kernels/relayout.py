"""Kernels of taichirast._resident's device buffers: re-layout, fill and add, for any dtype and
number of dimensions (Taichi compiles one instance per dtype and ndim of the arguments).

A resident buffer is allocated in the shape of the first kernel that uses it; a kernel that sees
it in another shape of the same size gets a copy in row-major element order (what a torch
``reshape`` of a contiguous tensor means).
"""
import functools

import taichi as ti


@ti.func
def _linear(I, shape):
    lin = 0
    for k in ti.static(range(I.n)):
        lin = lin * shape[k] + I[k]
    return lin


def copy(src, dst):
    """``dst`` (same number of elements as ``src``, another shape) = ``src`` in row-major order:
    by index when the shapes differ only in dimensions of size 1, else through the linear index."""
    kept_src = [k for k, n in enumerate(src.shape) if n != 1]
    kept_dst = [k for k, n in enumerate(dst.shape) if n != 1]
    if [src.shape[k] for k in kept_src] == [dst.shape[k] for k in kept_dst]:
        pick = [-1] * len(src.shape)  # dst dimension giving each src index (-1: size 1, index 0)
        for ks, kd in zip(kept_src, kept_dst):
            pick[ks] = kd
        _copy_unit_dims(src, dst, tuple(pick))
    else:
        _copy_linear(src, dst)


@ti.kernel
def _copy_unit_dims(src: ti.types.ndarray(), dst: ti.types.ndarray(), pick: ti.template()):
    for I in ti.grouped(dst):
        J = ti.Vector.zero(ti.i32, ti.static(len(pick)))
        for k in ti.static(range(len(pick))):
            if ti.static(pick[k] >= 0):
                J[k] = I[pick[k]]
        dst[I] = src[J]


@ti.kernel
def _copy_linear(src: ti.types.ndarray(), dst: ti.types.ndarray()):
    for I in ti.grouped(dst):
        lin = _linear(I, dst.shape)
        J = ti.Vector.zero(ti.i32, ti.static(len(src.shape)))
        for k in ti.static(range(len(src.shape))):
            kk = ti.static(len(src.shape) - 1 - k)
            J[kk] = lin % src.shape[kk]
            lin = lin // src.shape[kk]
        dst[I] = src[J]


@ti.kernel
def add(a: ti.types.ndarray(), b: ti.types.ndarray(), out: ti.types.ndarray()):
    """``out = a + b`` elementwise (all three of one shape)."""
    for I in ti.grouped(out):
        out[I] = a[I] + b[I]


@functools.lru_cache(maxsize=None)
def filler(dtype):
    """A kernel ``(dst, value)`` setting every element of an ndarray of ``dtype`` (a Taichi
    primitive type) to ``value`` (Taichi's own ``Ndarray.fill`` takes integers as the default i32)."""

    @ti.kernel
    def fill(dst: ti.types.ndarray(), value: dtype):
        for I in ti.grouped(dst):
            dst[I] = value

    return fill
