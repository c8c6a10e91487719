"""Pure Taichi kernels of taichirast (installed as ``taichirast.kernels``).

Rules (DESIGN §1, §5, §6): no torch, no module-level Taichi fields (``ti.init`` resets them);
kernels take ndarrays (NumPy arrays or torch tensors). Each module has a ``build(real)`` factory,
cached per float type, returning kernels whose locals are all of type ``real`` so that float64
gradient checks are float64 end to end. Backward kernels are hand-written (DESIGN §5).
"""
import taichi as ti


def real_type(dtype_name: str):
    """Taichi float type for a dtype name ('float32' / 'float64')."""
    return {"float32": ti.f32, "float64": ti.f64}[dtype_name]
