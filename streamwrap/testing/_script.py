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
    """One function call the assistant makes.

    ``arguments`` is the JSON argument string; a ``str`` is cut into a few
    fragments, a sequence gives exactly one fragment per item.  OpenAI and
    DashScope stream the fragments; Gemini and Ollama send each call whole,
    with the joined arguments parsed into an object (if they are not a JSON
    object, such a request is answered with a 500 saying so).  ``id`` defaults
    to a fresh ``call_emu_<n>``; Gemini and Ollama send no ids.
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

    Each dialect sends a fault the way its provider would:

    ==================  ===========================  ==========================  ====================
    fault               DashScope                    Gemini                      Ollama
    ==================  ===========================  ==========================  ====================
    error event         ``event:error`` frame with   ``data: {"error": {code,``  ``{"error": message}``
                        ``:HTTP_STATUS/<status>``    ``message, status}}``       line
                        and ``{code, message,``      (Gemini has no event
                        request_id}``                types)
    in-band error       the same JSON in an          as the error event          as the error event
                        ``event:result`` frame
    keep-alive          ``: keep-alive`` comment     ``: keep-alive`` comment    a blank line
    malformed line      ``data:{not json``           ``data: {not json``         ``{not json``
    truncated JSON      cut-off ``data:`` frame      cut-off ``data:`` event     cut-off line
    end without finish  no ``finish_reason`` frame   no ``finishReason``         no ``done`` line
    ==================  ===========================  ==========================  ====================

    ``code`` is the provider's error code (DashScope ``code``, Gemini
    ``status``); the default ``"server_error"`` becomes ``InternalError`` /
    ``INTERNAL``, and known codes set the HTTP status announced (e.g.
    ``Throttling.RateQuota`` → 429, ``UNAVAILABLE`` → 503; unknown ones 500).
    The official google-genai client reads an SSE comment as a broken chunk
    and the ollama client a blank line, so keep-alives are for testing clients
    that tolerate them.
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
        """Send the dialect's error event after ``n`` chunks, then end the body.

        OpenAI: ``event: error`` with ``data: {"error": {...}}``.
        """
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
        """Send the error as an ordinary data event after ``n`` chunks, then end the body.

        OpenAI: ``data: {"error": {...}}`` without an event type.
        """
        return cls(kind="inband_error", after=n, message=message, code=code, error_type=error_type)

    @classmethod
    def stall_after(cls, n: int, seconds: float) -> Fault:
        """Send nothing for ``seconds`` after ``n`` chunks, then carry on normally."""
        return cls(kind="stall", after=n, seconds=seconds)

    @classmethod
    def stall_with_keepalive_after(cls, n: int, seconds: float, every: float = 0.5) -> Fault:
        """Like :meth:`stall_after`, but send keep-alives every ``every`` seconds.

        ``: keep-alive`` SSE comments; blank lines for Ollama's NDJSON.
        """
        return cls(kind="stall_with_keepalive", after=n, seconds=seconds, every=every)

    @classmethod
    def malformed_line_after(cls, n: int) -> Fault:
        """Send an event whose payload is not JSON (``data: {not json``) after ``n`` chunks, then carry on."""
        return cls(kind="malformed_line", after=n)

    @classmethod
    def truncated_json_after(cls, n: int) -> Fault:
        """Send a cut-off JSON chunk after ``n`` chunks, then end the body (no finish, no end marker)."""
        return cls(kind="truncated_json", after=n)

    @classmethod
    def end_without_finish_after(cls, n: int) -> Fault:
        """End the body cleanly after ``n`` chunks: no finish chunk, no usage chunk, no end marker."""
        return cls(kind="end_without_finish", after=n)

    @classmethod
    def slow_trickle(cls, per_byte_delay: float) -> Fault:
        """Write every event one byte at a time, ``per_byte_delay`` seconds apart."""
        return cls(kind="slow_trickle", per_byte_delay=per_byte_delay)


@dataclass(frozen=True, kw_only=True)
class Reply:
    """One scripted answer, rendered in the dialect of the request's path.

    For OpenAI, streaming requests (``"stream": true``) get SSE chunks in this
    order: reasoning, text, tool calls, the finish chunk, the usage chunk (only
    when asked for, see ``stream_usage``) and ``data: [DONE]``; non-streaming
    requests get the equivalent ``chat.completion`` object.  The native
    dialects (DashScope, Gemini, Ollama) stream the same content in the same
    order in their own format, one event per chunk, restating usage as their
    provider does; see ``streamwrap/testing/_*_dialect.py``.  A ``status``
    other than 200 answers with the provider's JSON error instead.

    Attributes:
        text: A ``str`` is cut into word-sized chunks (whitespace stays attached
            to the preceding word); a sequence gives exactly one event per item.
        reasoning: Streamed before the text: OpenAI ``delta.<reasoning_field>``,
            DashScope ``reasoning_content`` (message format only), Gemini thought
            parts, Ollama ``message.thinking``.
        reasoning_field: OpenAI only: ``"reasoning_content"`` (DeepSeek, vLLM) or e.g. ``"reasoning"``.
        tool_calls: Sent after the text, see :class:`ToolCallSpec`.
        usage: ``(prompt_tokens, completion_tokens)`` or a raw usage object.  When
            ``None`` a deterministic one is computed: prompt tokens are the
            words in the request's messages, completion tokens the number of
            text and reasoning chunks.  Completion tokens include the reasoning
            ones, as OpenAI counts them; Gemini reports one thought token per
            reasoning chunk (at most all) and the rest as candidates.  A raw
            mapping is sent verbatim as the dialect's usage object (Ollama:
            merged into the ``done`` line).
        stream_usage: OpenAI only: whether a stream ends with a usage chunk.
            ``None`` follows the request's ``stream_options.include_usage`` like
            OpenAI; ``True`` and ``False`` imitate servers that always or never
            send one.  The native dialects always report usage.
        finish_reason: In OpenAI's words; defaults to ``"tool_calls"`` when there
            are tool calls, else ``"stop"``.  Native dialects translate it
            (Gemini ``length`` → ``MAX_TOKENS``, ``content_filter`` → ``SAFETY``,
            ``tool_calls`` → ``STOP``; Ollama ``tool_calls`` → ``stop``) and send
            any other value as given.
        model: Echoed in every chunk (Gemini ``modelVersion``; DashScope sends none).
        id: Completion id (DashScope ``request_id``, Gemini ``responseId``);
            defaults to a fresh one (``chatcmpl-emu-<n>`` for OpenAI).
        created: Unix timestamp (Ollama ``created_at``); defaults to the current time.
        delay: Seconds between consecutive stream events.  A non-streaming reply
            waits ``first_delay`` plus ``delay`` per content chunk, so it takes
            as long as the stream would.
        first_delay: Seconds before the first event (response headers go out at once).
        keepalive: While waiting out a delay, send keep-alives this often
            (``: keep-alive`` SSE comments; blank lines for Ollama's NDJSON).
        status: HTTP status; anything but 200 sends the provider's JSON error.
        error: The error, in the provider's shape; defaults to one matching
            ``status``.  OpenAI and Gemini put it under ``"error"``; DashScope
            (``{"code", "message", "request_id"}``) and Ollama
            (``{"error": "..."}``) send it as the whole body.
        headers: Extra response headers (e.g. ``Retry-After``), sent on any outcome.
            They override the emulator's defaults except the body framing headers
            (``content-length``, ``transfer-encoding``), which the emulator owns.
        reject_stream_options: OpenAI only: answer 400 when the request carries
            ``stream_options``, like servers that do not know the parameter.
        done: OpenAI only: whether a stream ends with ``data: [DONE]``.
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
