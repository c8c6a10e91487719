"""Shared by the demo smoke tests: load a demo script as a module, check the files it wrote."""
import importlib.util
import os

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
OUTPUTS = ("target.png", "before.png", "after.png", "optimization.gif")


def load_demo(name):
    """``demos/<name>.py`` as a module (its ``main(argv)`` runs the demo)."""
    spec = importlib.util.spec_from_file_location(f"demo_{name}", os.path.join(ROOT, "demos", f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def assert_outputs_written(path, names=OUTPUTS):
    """Every file of ``names`` exists under ``path`` and is not empty."""
    for name in names:
        assert (path / name).stat().st_size > 0, name
