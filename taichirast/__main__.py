"""``python -m taichirast`` runs the ``taichirast`` command (see :mod:`taichirast.cli`)."""
from .cli import console

console()
