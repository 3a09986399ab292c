"""The scripting vocabulary: what a test tells the emulator to answer with.

Everything here is an immutable description; nothing is rendered or sent until a
request arrives.  Constructors validate eagerly so that a scripting mistake
raises in the test that made it rather than later inside the server thread.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import h11
import orjson

FaultKind = Literal[
    "drop",
    "error_event",
    "inband_error",
    "stall",
    "stall_with_keepalive",
    "malformed_line",
    "truncated_json",
    "end_without_finish",
    "slow_trickle",
]

Split = Literal["event", "line"] | int | None

_DEFAULT_FAULT_MESSAGE = "The server had an error while processing your request."


def _require_non_negative(**values: float) -> None:
    for name, value in values.items():
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value!r}")


def _require_json(name: str, value: object) -> None:
    try:
        orjson.dumps(value)
    except orjson.JSONEncodeError as exc:
        raise ValueError(f"{name} must be JSON-serialisable: {exc}") from None


def _require_status(status: int) -> None:
    # 1xx, 204 and 304 responses cannot carry the body every reply sends.
    if not 200 <= status <= 599 or status in (204, 304):
        raise ValueError(f"status must be 200-599 and not 204/304, got {status!r}")


@dataclass(frozen=True)
class ToolCallSpec:
    """One function call the assistant makes, streamed as OpenAI tool-call fragments.

    ``arguments`` is the JSON argument string; a ``str`` is cut into a few
    fragments, a sequence gives exactly one fragment per item.  ``id`` defaults
    to a fresh ``call_emu_<n>``.
    """

    name: str
    arguments: str | Sequence[str]
    id: str | None = None


@dataclass(frozen=True, kw_only=True)
class Fault:
    """A misbehaviour injected into a streamed reply.

    Build one with the classmethods.  ``after`` counts content chunks (text,
    reasoning and tool-call events) sent before the fault; a count beyond the
    reply's content places the fault just before the finish chunk.  Faults
    that only make sense in a stream are ignored for non-streaming requests,
    except ``drop`` (headers are sent, then the connection is aborted) and the
    stalls (the response is delayed).
    """

    kind: FaultKind
    after: int = 0
    seconds: float = 0.0
    every: float = 0.5
    per_byte_delay: float = 0.0
    message: str = _DEFAULT_FAULT_MESSAGE
    code: str | None = "server_error"
    error_type: str = "server_error"

    def __post_init__(self) -> None:
        _require_non_negative(after=self.after, seconds=self.seconds, per_byte_delay=self.per_byte_delay)
        if self.every <= 0:
            raise ValueError(f"every must be > 0, got {self.every!r}")

    @classmethod
    def drop_after(cls, n: int) -> Fault:
        """Abort the TCP connection after ``n`` content chunks (no chunked terminator)."""
        return cls(kind="drop", after=n)

    @classmethod
    def error_event_after(
        cls,
        n: int,
        message: str = _DEFAULT_FAULT_MESSAGE,
        code: str | None = "server_error",
        *,
        error_type: str = "server_error",
    ) -> Fault:
        """Send ``event: error`` with an OpenAI-shaped error after ``n`` chunks, then end the body."""
        return cls(kind="error_event", after=n, message=message, code=code, error_type=error_type)

    @classmethod
    def inband_error_after(
        cls,
        n: int,
        message: str = _DEFAULT_FAULT_MESSAGE,
        code: str | None = "server_error",
        *,
        error_type: str = "server_error",
    ) -> Fault:
        """Send ``data: {"error": {...}}`` after ``n`` chunks, then end the body."""
        return cls(kind="inband_error", after=n, message=message, code=code, error_type=error_type)

    @classmethod
    def stall_after(cls, n: int, seconds: float) -> Fault:
        """Send nothing for ``seconds`` after ``n`` chunks, then carry on normally."""
        return cls(kind="stall", after=n, seconds=seconds)

    @classmethod
    def stall_with_keepalive_after(cls, n: int, seconds: float, every: float = 0.5) -> Fault:
        """Like :meth:`stall_after`, but send ``: keep-alive`` comments every ``every`` seconds."""
        return cls(kind="stall_with_keepalive", after=n, seconds=seconds, every=every)

    @classmethod
    def malformed_line_after(cls, n: int) -> Fault:
        """Send ``data: {not json`` after ``n`` chunks, then carry on normally."""
        return cls(kind="malformed_line", after=n)

    @classmethod
    def truncated_json_after(cls, n: int) -> Fault:
        """Send a cut-off JSON chunk after ``n`` chunks, then end the body (no finish, no ``[DONE]``)."""
        return cls(kind="truncated_json", after=n)

    @classmethod
    def end_without_finish_after(cls, n: int) -> Fault:
        """End the body cleanly after ``n`` chunks: no finish chunk, no usage, no ``[DONE]``."""
        return cls(kind="end_without_finish", after=n)

    @classmethod
    def slow_trickle(cls, per_byte_delay: float) -> Fault:
        """Write every SSE event one byte at a time, ``per_byte_delay`` seconds apart."""
        return cls(kind="slow_trickle", per_byte_delay=per_byte_delay)


@dataclass(frozen=True, kw_only=True)
class Reply:
    """One scripted chat-completions answer.

    Streaming requests (``"stream": true``) get SSE chunks in this order:
    reasoning, text, tool calls, the finish chunk, the usage chunk (only when
    asked for, see ``stream_usage``) and ``data: [DONE]``.  Non-streaming
    requests get the equivalent ``chat.completion`` object.  A ``status`` other
    than 200 answers with an OpenAI-shaped JSON error instead.

    Attributes:
        text: A ``str`` is cut into word-sized chunks (whitespace stays attached
            to the preceding word); a sequence gives exactly one event per item.
        reasoning: Streamed before the text as ``delta.<reasoning_field>``.
        reasoning_field: ``"reasoning_content"`` (DeepSeek, vLLM) or e.g. ``"reasoning"``.
        tool_calls: Streamed after the text as OpenAI tool-call fragments.
        usage: ``(prompt_tokens, completion_tokens)`` or a raw usage object.  When
            ``None`` a deterministic one is computed: prompt tokens are the
            words in the request's messages, completion tokens the number of
            text and reasoning chunks.
        stream_usage: Whether a stream ends with a usage chunk.  ``None`` follows
            the request's ``stream_options.include_usage`` like OpenAI; ``True``
            and ``False`` imitate servers that always or never send one.
        finish_reason: Defaults to ``"tool_calls"`` when there are tool calls, else ``"stop"``.
        model: Echoed in every chunk.
        id: Completion id; defaults to a fresh ``chatcmpl-emu-<n>``.
        created: Unix timestamp; defaults to the current time.
        delay: Seconds between consecutive SSE events.  A non-streaming reply
            waits ``first_delay`` plus ``delay`` per content chunk, so it takes
            as long as the stream would.
        first_delay: Seconds before the first event (response headers go out at once).
        keepalive: While waiting out a delay, send ``: keep-alive`` comments this often.
        status: HTTP status; anything but 200 sends ``{"error": ...}`` as JSON.
        error: The object put under ``"error"``; defaults to one matching ``status``.
        headers: Extra response headers (e.g. ``Retry-After``), sent on any outcome.
            They override the emulator's defaults except the body framing headers
            (``content-length``, ``transfer-encoding``), which the emulator owns.
        reject_stream_options: Answer 400 when the request carries ``stream_options``,
            like servers that do not know the parameter.
        done: Whether a stream ends with ``data: [DONE]``.
        fault: A misbehaviour to inject, see :class:`Fault`.
    """

    text: str | Sequence[str] = ""
    reasoning: str | Sequence[str] = ()
    reasoning_field: str = "reasoning_content"
    tool_calls: Sequence[ToolCallSpec] = ()
    usage: tuple[int, int] | Mapping[str, Any] | None = None
    stream_usage: bool | None = None
    finish_reason: str | None = None
    model: str = "emulator-1"
    id: str | None = None
    created: int | None = None
    delay: float = 0.0
    first_delay: float = 0.0
    keepalive: float | None = None
    status: int = 200
    error: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    reject_stream_options: bool = False
    done: bool = True
    fault: Fault | None = None

    def __post_init__(self) -> None:
        _require_non_negative(delay=self.delay, first_delay=self.first_delay)
        if self.keepalive is not None and self.keepalive <= 0:
            raise ValueError(f"keepalive must be > 0, got {self.keepalive!r}")
        _require_status(self.status)
        _require_json("usage", dict(self.usage) if isinstance(self.usage, Mapping) else self.usage)
        if self.error is not None:
            _require_json("error", dict(self.error))
        try:
            # h11 validates header names and values when an event is built.
            h11.Response(status_code=self.status, headers=list(self.headers.items()))
        except h11.LocalProtocolError as exc:
            raise ValueError(f"invalid headers: {exc}") from None


@dataclass(frozen=True, kw_only=True)
class RawReply:
    """A recorded body replayed verbatim, queued by :meth:`Emulator.replay`."""

    body: bytes
    status: int = 200
    content_type: str = "text/event-stream"
    split: Split = "event"

    def __post_init__(self) -> None:
        _require_status(self.status)
        if isinstance(self.split, int) and (isinstance(self.split, bool) or self.split <= 0):
            raise ValueError(f"split must be 'event', 'line', None or a positive int, got {self.split!r}")
        if isinstance(self.split, str) and self.split not in ("event", "line"):
            raise ValueError(f"split must be 'event', 'line', None or a positive int, got {self.split!r}")
