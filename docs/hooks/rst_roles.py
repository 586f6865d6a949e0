"""mkdocs hook: the docstrings are written in reST habits (``:class:`Name```, a paragraph
ending in ``::`` before a literal block); mkdocstrings renders them as Markdown, which
would show the role names and the double colon. This drops both from the rendered page,
so the source docstrings stay as they are for Python's help() and for editors."""

from __future__ import annotations

import re

_ROLE = re.compile(r":(?:class|mod|func|meth|attr|exc|data|obj|const|py:\w+):(?=<code>)")
_LITERAL_INTRO = re.compile(r"::</p>")


def on_page_content(html: str, **kwargs) -> str:
    return _LITERAL_INTRO.sub(":</p>", _ROLE.sub("", html))
