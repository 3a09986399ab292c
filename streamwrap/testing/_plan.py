"""Response plans: the contract between rendering a reply and writing it.

The renderer turns a scripted reply into a :class:`Plan` up front (all bytes
pre-encoded), so the connection only has to walk the steps: write bytes,
pause, or abort.  Each ``bytes`` step is exactly one write on the wire.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

KEEPALIVE_COMMENT = b": keep-alive\n\n"
"""The SSE comment a paused stream sends to show it is still alive (the default ping)."""


@dataclass(frozen=True, slots=True)
class Pause:
    """Wait ``seconds``; if ``keepalive`` is set, send ``ping`` that often meanwhile.

    ``ping`` is whatever the dialect's framing tolerates between events: an SSE
    comment for SSE streams, a blank line for NDJSON.
    """

    seconds: float
    keepalive: float | None = None
    ping: bytes = KEEPALIVE_COMMENT


class Abort(enum.Enum):
    """Abort the TCP connection without finishing the response."""

    ABORT = "abort"


Step = bytes | Pause | Abort


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything one response consists of.

    Attributes:
        status: HTTP status code.
        headers: Response headers; without ``content-length`` the body is chunked.
        body: Steps executed in order after the headers are sent.
        head_delay: Seconds to wait before sending the headers.
        byte_delay: If positive, each ``bytes`` step is written one byte at a
            time with this many seconds between bytes.
    """

    status: int
    headers: Sequence[tuple[str, str]]
    body: Sequence[Step]
    head_delay: float = 0.0
    byte_delay: float = 0.0
