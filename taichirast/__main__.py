"""``python -m taichirast`` runs the ``taichirast`` command (see :mod:`taichirast.cli`)."""
import sys

from .cli import main

sys.exit(main())
