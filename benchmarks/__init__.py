"""Benchmarks: ``python -m benchmarks`` (or ``python benchmarks/run.py``)."""
