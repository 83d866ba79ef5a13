"""Sphinx configuration of the gru4rec documentation.

Build: ``python -m sphinx -W -b html docs docs/_build/html`` (needs ``pip install -e ".[docs]"``).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import gru4rec  # noqa: E402

project = "gru4rec"
author = "gru4rec contributors"
copyright = "gru4rec contributors"  # noqa: A001
version = release = gru4rec.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
    "numpydoc",
]

source_suffix = {".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "benchmarks"]
templates_path: list[str] = []

autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "none"  # the numpydoc sections already give the types
autodoc_mock_imports: list[str] = []

numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

html_theme = "alabaster"
html_static_path: list[str] = []
html_theme_options = {"description": "Session-based recommendation with GRU4Rec in PyTorch"}
nitpicky = False
