"""Primitive definitions (prepare / forward / backward), one module per kernel stage.

Each module exports ``PRIM``, a :class:`taichirast._primitive.Primitive`. The public torch
functions live in :mod:`taichirast.ops`, the NumPy ones in :mod:`taichirast.np`.
"""
