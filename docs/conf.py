"""Sphinx configuration of virtplane's documentation site.

Build: ``make docs`` (``sphinx-build -W --keep-going``: every warning fails the build).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "core", "src")))

from virtplane import __version__  # noqa: E402

project = "virtplane"
author = "the virtplane developers"
copyright = "2026, the virtplane developers"
version = release = __version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.graphviz",
    "sphinx.ext.viewcode",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True, "show-inheritance": True}
# libvirt is a C extension that the docs build does not need
autodoc_mock_imports = ["libvirt"]

graphviz_output_format = "svg"
html_theme = "furo"
html_title = f"virtplane {release}"
