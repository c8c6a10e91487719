"""Every ```python block in README.md runs as written, each in a fresh interpreter.

Each block runs in its own subprocess (no state shared between blocks) with a temporary
directory as the working directory, so a block that needs a file it did not make, or a name it
did not define, fails here. On failure the message shows the block and its output.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)


def python_blocks():
    text = README.read_text(encoding="utf-8")
    blocks = []
    for m in BLOCK.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        blocks.append(pytest.param(m.group(1), id=f"README.md:{line}"))
    return blocks


def test_readme_has_python_blocks():
    assert len(python_blocks()) >= 4, "README.md lost its ```python examples (or the fence format changed)"


@pytest.mark.parametrize("code", python_blocks())
def test_readme_block_runs(code, tmp_path):
    env = dict(os.environ)
    env.setdefault("TAICHIRAST_ARCH", "cpu")
    env["MPLBACKEND"] = "Agg"
    # a fresh install has no checkout on sys.path: the block sees only what is installed
    env.pop("PYTHONPATH", None)
    try:
        proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=600)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"README block timed out after {e.timeout} s:\n{code}")
    if proc.returncode != 0:
        pytest.fail(f"README block failed (exit {proc.returncode}):\n--- code ---\n{code}"
                    f"--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}",
                    pytrace=False)
