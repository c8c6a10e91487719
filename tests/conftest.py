import os

import pytest

os.environ.setdefault("TAICHIRAST_ARCH", "cpu")


def _cuda_tensors_by_default():
    """``TAICHIRAST_ARCH=cuda`` (scripts/test_cuda.sh): Taichi's CUDA backend reads CUDA tensors in
    place and refuses CPU ones, so the suite -- written with CPU tensors -- makes its tensors on the
    GPU: factory functions default to ``cuda`` (``torch.set_default_device``), ``torch.from_numpy``
    and ``torch.Generator()`` give CUDA tensors / generators, and ``Tensor.numpy()`` (and with it
    ``np.asarray``) reads a CUDA tensor back through the host. Tests that name ``device="cpu"``
    themselves keep it. ``gradcheck``'s reentrancy check gets a tolerance of 1e-10: atomic sums on a
    GPU add in a varying order, so two backward passes differ by float64 rounding (~1e-16 relative).

    Taichi is started on CUDA here; subprocesses (demos, the CLI, README blocks: CPU tensors) get
    ``TAICHIRAST_ARCH=auto``, whose backend follows their tensors. Returns whether it applied:
    nothing changes when torch sees no GPU (Taichi then falls back to the CPU)."""
    try:
        import torch
    except ImportError:
        return False
    if not torch.cuda.is_available():
        return False
    torch.set_default_device("cuda")
    from_numpy, to_numpy, generator = torch.from_numpy, torch.Tensor.numpy, torch.Generator
    gradcheck, gradgradcheck = torch.autograd.gradcheck, torch.autograd.gradgradcheck

    def cuda_from_numpy(a):
        return from_numpy(a).to("cuda")

    def numpy(self, *, force=False):
        return to_numpy(self.cpu() if self.is_cuda else self, force=force)

    class CudaGenerator(generator):
        def __new__(cls, device=None):
            return generator.__new__(cls, device=device or "cuda")

    def with_nondet_tol(check):
        def run(*args, **kw):
            kw.setdefault("nondet_tol", 1e-10)
            return check(*args, **kw)
        return run

    torch.from_numpy, torch.Tensor.numpy, torch.Generator = cuda_from_numpy, numpy, CudaGenerator
    torch.autograd.gradcheck = with_nondet_tol(gradcheck)
    torch.autograd.gradgradcheck = with_nondet_tol(gradgradcheck)
    import taichirast

    assert taichirast.ensure_init(prefer="cuda") == "cuda", "TAICHIRAST_ARCH=cuda: Taichi did not start on CUDA"
    # pytest-xdist's workers start after this ran in the controller and inherit its environment
    os.environ["TAICHIRAST_ARCH"], os.environ["TAICHIRAST_TEST_CUDA"] = "auto", "1"
    return True


CUDA_TENSORS = ((os.environ["TAICHIRAST_ARCH"] == "cuda" or os.environ.get("TAICHIRAST_TEST_CUDA") == "1")
                and _cuda_tensors_by_default())


def pytest_collection_modifyitems(config, items):
    if not CUDA_TENSORS:
        return
    skip = pytest.mark.skip(reason="doctest outputs print CPU tensors; the CUDA run makes its tensors on the GPU")
    for item in items:
        if item.name == "test_doctests":
            item.add_marker(skip)

# On Vulkan / Metal, float64 is refused up front (kernels.real_type: Taichi's SPIR-V code generator
# has no 64-bit exp / log / pow). A test that needs float64 is reported as skipped there, with the
# reason, instead of failing: tests/test_vulkan.py checks every render path in float32 on Vulkan
# against float64 references computed on the CPU (the float32 counterpart of these tests).
_FLOAT64_REFUSED = "float64 arrays are not supported on the"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    outcome = yield
    if os.environ.get("TAICHIRAST_ARCH") not in ("vulkan", "metal") or outcome.excinfo is None:
        return
    exc = outcome.excinfo[1]
    if isinstance(exc, TypeError) and _FLOAT64_REFUSED in str(exc):
        outcome.force_exception(pytest.skip.Exception(
            f"float64 on {os.environ['TAICHIRAST_ARCH']}: refused by design; tests/test_vulkan.py checks float32 "
            f"there against float64 CPU references", _use_item_location=True))
