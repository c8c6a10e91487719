"""The sum of a CPU backward kernel's private copies of its output (taichirast/_scatter.py)."""
import taichi as ti

from . import kernel


@kernel
def sum_copies(dst: ti.types.ndarray(), out: ti.types.ndarray(), NW: ti.i32):
    """``out (R, C) = sum over w < NW of dst[w * R + i, c]`` (dst ``(NW * R, C)``, any float type), in
    worker order. A Taichi kernel rather than a torch sum: torch's OpenMP threads would spin on the
    cores the next kernels need."""
    R = out.shape[0]
    for i, c in ti.ndrange(R, out.shape[1]):
        s = dst[i, c]
        for w in range(1, NW):
            s += dst[w * R + i, c]
        out[i, c] = s
