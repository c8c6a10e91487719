"""demos/_common.progress: a tqdm bar, or a plain range when quiet or when tqdm is not installed."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "demos"))

from _common import progress  # noqa: E402


def test_progress_quiet_and_without_tqdm(monkeypatch):
    assert progress(3, "x", quiet=True) == range(3)
    bar = progress(3, "x")
    assert list(bar) == [0, 1, 2] and type(bar) is not range
    monkeypatch.setitem(sys.modules, "tqdm", None)      # import tqdm now raises ImportError
    assert progress(4, "x") == range(4)
