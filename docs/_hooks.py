"""mkdocs hook: the docstrings are written for Sphinx-style readers (``:func:`name```,
``::`` before a literal block); mkdocstrings renders them as Markdown, which leaves the
roles as text. Strip them from the rendered API pages, as Sphinx would show them: the
name in code, ``~a.b`` as ``b``, a paragraph's closing ``::`` as ``:``."""

from __future__ import annotations

import re
from typing import Any

_ROLE = re.compile(r":(?:func|class|meth|attr|mod|data|exc|obj):(?=<code>)")
_TILDE = re.compile(r"<code>~(?:[\w.]*\.)?(\w+)</code>")


def on_page_content(html: str, page: Any, **kwargs: Any) -> str:
    if not page.file.src_uri.startswith("reference/"):
        return html
    html = _ROLE.sub("", html)
    html = _TILDE.sub(r"<code>\1</code>", html)
    return html.replace("::</p>", ":</p>")
