"""A griffe extension for the API pages: the reStructuredText in docstrings, as Markdown.

anynet's docstrings are numpydoc, read in terminals and by ``help()`` as well as here. Their
Sphinx roles (``:func:`anynet.save```, ``:class:`~anynet.layers.Layer```) become inline
code (the ``~`` form shows the last name only), and a paragraph ending in ``::`` before
an indented example ends in ``:`` (Markdown shows the indented block as code).
Loaded by mkdocs.yml (``extensions: [docs/griffe_rst.py]``); changes nothing in the package.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|data|attr|exc|obj|const|ref):`(~?)([^`]+)`")
_LITERAL = re.compile(r"(?<=\S)::[ \t]*$", re.M)


def _role(match: re.Match[str]) -> str:
    short, target = match.group(1), match.group(2)
    if short:
        target = target.rsplit(".", 1)[-1]
    return f"`{target}`"


def markdown(text: str) -> str:
    """``text`` with roles as inline code and ``::`` paragraph endings as ``:``."""
    return _LITERAL.sub(":", _ROLE.sub(_role, text))


class RstToMarkdown(griffe.Extension):
    """Rewrite each docstring once, as griffe loads it."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown(obj.docstring.value)
