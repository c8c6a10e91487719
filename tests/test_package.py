"""Package contract: import without torch and without starting Taichi; info(); arch selection."""
import os
import subprocess
import sys

import pytest

import taichirast as tr
from taichirast import runtime

BLOCK_TORCH = """
import sys
class _Block:
    def find_module(self, name, path=None):
        return self if name == 'torch' or name.startswith('torch.') else None
    def find_spec(self, name, path=None, target=None):
        if name == 'torch' or name.startswith('torch.'):
            raise ImportError('torch blocked for this test')
        return None
sys.meta_path.insert(0, _Block())
"""


def _run(code, **env):
    e = dict(os.environ)
    e.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=e, timeout=300)


def test_import_does_not_init_taichi_or_import_torch():
    r = _run("import sys, taichirast, taichirast.np; import taichirast.runtime as rt;"
             "print(rt.arch(), 'torch' in sys.modules, 'taichi' in sys.modules)")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["None", "False", "False"]


def test_numpy_api_works_without_torch():
    code = BLOCK_TORCH + """
import numpy as np, taichirast as tr
from taichirast import np as trnp
v = np.array([[[0.0, 0, 3], [1, 0, 3], [0, 1, 3]]])
out, pb = trnp.vjp(trnp.project, v, np.eye(3), np.zeros(3), np.array([10.0, 10, 5, 5]))
g = pb(np.ones_like(out))
print(out.shape, len(g), 'torch' in sys.modules)
"""
    r = _run(code, TAICHIRAST_ARCH="cpu")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith("(1, 3, 3) 4 False")


def test_info_reports_arch_and_versions():
    d = tr.info()
    assert d["arch"] == runtime.arch() and d["arch"] in ("cpu", "cuda", "vulkan", "metal")
    assert d["taichi"].startswith("1.7") and d["taichirast"] == tr.__version__
    assert "numpy" in d and "torch" in d


def test_bad_arch_env():
    r = _run("import taichirast.runtime as rt; rt.requested_arch()", TAICHIRAST_ARCH="quantum")
    assert r.returncode != 0 and "TAICHIRAST_ARCH" in r.stderr


def test_kernels_subpackage_installed_under_taichirast():
    import taichirast.kernels as k

    assert os.path.basename(os.path.dirname(k.__file__)) == "kernels"
    with pytest.raises(AttributeError):
        tr.does_not_exist  # noqa: B018


def test_cuda_tensor_rejected_on_cpu_arch():
    torch = pytest.importorskip("torch")
    if runtime.ensure_init() != "cpu":
        pytest.skip("runs on the CPU backend")
    if not torch.cuda.is_available():
        # a 'meta' tensor stands in for a tensor on a device Taichi cannot read
        v = torch.zeros(1, 3, 3, device="meta")
    else:
        v = torch.zeros(1, 3, 3, device="cuda")
    with pytest.raises(ValueError, match="device"):
        tr.ops.project_points(v, torch.eye(3, device=v.device), torch.zeros(3, device=v.device),
                              torch.ones(4, device=v.device))


def test_pyproject_lists_every_subpackage():
    """A wheel (non-editable) install only ships the packages pyproject names: each folder with an
    __init__.py under taichirast/ must be listed (a missing one imports fine from a checkout)."""
    tomllib = pytest.importorskip("tomllib")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "pyproject.toml"), "rb") as fh:
        listed = set(tomllib.load(fh)["tool"]["setuptools"]["packages"])
    found = {"taichirast.kernels"}
    for dirpath, dirnames, filenames in os.walk(os.path.join(root, "taichirast")):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        if "__init__.py" in filenames:
            found.add(os.path.relpath(dirpath, root).replace(os.sep, "."))
    assert found == listed, f"missing from pyproject: {sorted(found - listed)}, extra: {sorted(listed - found)}"
