"""The route table: which wire format answers which request path.

A dialect renders scripted replies in one provider's native format.  Each is
an object with a ``path`` pattern, so routing is a walk down one table rather
than a branch per provider, and a new dialect is one module plus one row.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Protocol

from ._anthropic_dialect import ANTHROPIC
from ._azure_dialect import AZURE
from ._bedrock_dialect import BEDROCK
from ._dashscope_dialect import DASHSCOPE
from ._gemini_dialect import GEMINI
from ._ollama_dialect import OLLAMA
from ._openai_dialect import OPENAI
from ._openai_responses_dialect import OPENAI_RESPONSES
from ._plan import Plan
from ._recorded import RecordedRequest
from ._render import IdSequence
from ._script import Reply
from ._vertex_dialect import VERTEX


class Dialect(Protocol):
    """One provider's wire format."""

    @property
    def name(self) -> str:
        """Short name, e.g. ``"gemini"``."""
        ...

    @property
    def path(self) -> re.Pattern[str]:
        """Matches (``fullmatch``) the paths, without query string, this dialect answers."""
        ...

    def render(
        self, reply: Reply, request: RecordedRequest, body: Mapping[str, Any], ids: IdSequence
    ) -> Plan:
        """Answer ``request`` (whose JSON body is ``body``) with ``reply``."""
        ...

    def refuse_key(self, request: RecordedRequest, api_key: str, ids: IdSequence) -> Plan | None:
        """This provider's answer to ``request`` if it lacks ``api_key`` (missing or wrong,
        each answered as the provider answers it), or ``None`` to let it through."""
        ...

    def error(self, status: int, message: str, *, headers: Mapping[str, str] | None = None) -> Plan:
        """This provider's error body, for a request the emulator refuses before scripting."""
        ...


DIALECTS: tuple[Dialect, ...] = (
    AZURE,
    OPENAI,
    OPENAI_RESPONSES,
    DASHSCOPE,
    GEMINI,
    OLLAMA,
    ANTHROPIC,
    BEDROCK,
    VERTEX,
)
"""Every dialect, in matching order: the first whose path matches answers. Only Azure's
deployment paths overlap another (OpenAI's ``.../chat/completions``), so Azure comes first."""


def dialect_for(path: str) -> Dialect | None:
    """The dialect answering ``path`` (without query string), if any."""
    for dialect in DIALECTS:
        if dialect.path.fullmatch(path):
            return dialect
    return None
