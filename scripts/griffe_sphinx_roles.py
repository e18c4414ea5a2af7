"""A griffe extension for the API reference: Sphinx cross-reference roles as code.

The docstrings use Sphinx's roles (``:class:`~tokenguard.config.Settings```), which Markdown
would show as a stray ``:class:`` before the name. This turns each into inline code, as Sphinx
displays it: the last part of the name after ``~``, the whole name otherwise. mkdocs.yml loads
it for mkdocstrings; the source keeps its docstrings as they are.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|data|exc|obj|const):`(~?)([^`]+)`")


def _code(match: re.Match[str]) -> str:
    tilde, name = match.groups()
    return f"`{name.rsplit('.', 1)[-1] if tilde else name}`"


def plain(docstring: str) -> str:
    """``docstring`` with every Sphinx role replaced by inline code."""
    return ROLE.sub(_code, docstring)


class SphinxRoles(griffe.Extension):
    """Rewrites the roles of every object's docstring as it is loaded."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = plain(obj.docstring.value)
