"""Sphinx configuration for taichirast's API reference (built from the docstrings).

Build (CI runs this with warnings as errors):

    pip install -e ".[docs]" && sphinx-build -W --keep-going -b html docs <out-dir>

Only the ``.rst`` pages here are sources; docs/architecture.md and the images are the README's.
"""
import os
import sys

os.environ.setdefault("TAICHIRAST_ARCH", "cpu")
sys.path.insert(0, os.path.abspath(".."))

import taichirast  # noqa: E402

project = "taichirast"
author = "taichirast contributors"
copyright = "taichirast contributors"
release = version = taichirast.__version__

extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.viewcode"]
source_suffix = {".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build"]
templates_path = []
html_theme = "alabaster"
html_static_path = []
html_title = f"taichirast {release}"

# The docstrings are Google style (Args / Returns / Raises) with reST inline markup.
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True, "show-inheritance": False}
# Cross-references to objects without a page (torch, numpy, private helpers) stay plain text
# rather than warnings; every docstring problem Sphinx does report fails the build (-W).
nitpicky = False
