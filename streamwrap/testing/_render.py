"""Rendering scripted replies into OpenAI chat-completions wire bytes.

Every reply is rendered into a :class:`~._plan.Plan` as soon as its request
arrives, with all SSE events encoded up front: the connection then spends one
write per event and nothing else, which keeps long streams cheap to serve.
"""

from __future__ import annotations

import itertools
import math
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from ._plan import Abort, Pause, Plan, Step
from ._script import Fault, RawReply, Reply, Split

_WORD_CHUNKS = re.compile(r"\S+\s*|\s+")
# One line including its terminator; SSE allows CRLF, LF and lone CR.
_LINES = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")
_BLANK_LINES = frozenset({b"\r\n", b"\n", b"\r"})
_ARGUMENT_FRAGMENTS = 3

_SSE_HEADERS = {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"}
_JSON_HEADERS = {"content-type": "application/json"}
# The emulator decides how bodies are framed; a scripted header must not contradict it.
_FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding"})

_DONE = b"data: [DONE]\n\n"
_MALFORMED = b"data: {not json\n\n"
_TRUNCATED = b'data: {"id": "chatcmpl-emu", "choi\n\n'

# (message, type, code) for the default error body of common statuses, as OpenAI sends them.
_DEFAULT_ERRORS: dict[int, tuple[str, str, str | None]] = {
    400: ("Invalid request.", "invalid_request_error", None),
    401: ("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
    403: ("You are not allowed to access this resource.", "invalid_request_error", None),
    404: (
        "The model does not exist or you do not have access to it.",
        "invalid_request_error",
        "model_not_found",
    ),
    408: ("Request timed out.", "timeout_error", None),
    409: ("The request conflicts with another request.", "invalid_request_error", None),
    422: ("The request could not be processed.", "invalid_request_error", None),
    429: ("Rate limit reached for requests.", "requests", "rate_limit_exceeded"),
    500: ("The server had an error while processing your request.", "server_error", None),
    502: ("Bad gateway.", "server_error", None),
    503: ("The server is overloaded or not ready yet.", "server_error", None),
    504: ("Gateway timeout.", "server_error", None),
}


class IdSequence:
    """Hands out deterministic completion and tool-call ids for one emulator."""

    def __init__(self) -> None:
        self._completions = itertools.count(1)
        self._tool_calls = itertools.count(1)

    def completion_id(self) -> str:
        """The next ``chatcmpl-emu-<n>``."""
        return f"chatcmpl-emu-{next(self._completions)}"

    def tool_call_id(self) -> str:
        """The next ``call_emu_<n>``."""
        return f"call_emu_{next(self._tool_calls)}"


def error_object(
    message: str, type: str, *, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """An OpenAI-shaped error object (the value of the body's ``"error"`` key)."""
    return {"message": message, "type": type, "param": param, "code": code}


def render_error(
    status: int,
    error: Mapping[str, Any] | None = None,
    *,
    headers: Mapping[str, str] | None = None,
    head_delay: float = 0.0,
) -> Plan:
    """A JSON ``{"error": ...}`` response; ``error`` defaults to one matching ``status``."""
    body = orjson.dumps({"error": dict(error) if error is not None else _default_error(status)})
    return _fixed_plan(status, body, headers or {}, head_delay)


def render_raw(raw: RawReply) -> Plan:
    """Replay a raw body verbatim, one write per piece of ``raw.split``."""
    return Plan(raw.status, [("content-type", raw.content_type)], split_body(raw.body, raw.split))


def render_chat(reply: Reply, request: Mapping[str, Any], ids: IdSequence) -> Plan:
    """Render ``reply`` as the answer to the chat-completions request body ``request``."""
    if reply.reject_stream_options and "stream_options" in request:
        error = error_object(
            "Unrecognized request argument supplied: stream_options",
            "invalid_request_error",
            param="stream_options",
        )
        return render_error(400, error, headers=reply.headers, head_delay=reply.first_delay)
    if reply.status != 200:
        return render_error(reply.status, reply.error, headers=reply.headers, head_delay=reply.first_delay)
    completion = _Completion.build(reply, request, ids)
    if request.get("stream") is True:
        send_usage = reply.stream_usage if reply.stream_usage is not None else _asks_for_usage(request)
        return _stream_plan(reply, completion, send_usage=send_usage)
    return _json_plan(reply, completion)


def split_body(body: bytes, split: Split) -> list[bytes]:
    """Cut ``body`` into the pieces written one by one; they concatenate back to ``body``."""
    if split is None:
        return [body] if body else []
    if isinstance(split, int):
        return [body[start : start + split] for start in range(0, len(body), split)]
    if split == "line":
        return _LINES.findall(body)
    return _sse_events(body)


def _sse_events(body: bytes) -> list[bytes]:
    # An SSE event ends at a blank line; the blank line stays with its event.
    events: list[bytes] = []
    start = 0
    for line in _LINES.finditer(body):
        if line.group() in _BLANK_LINES:
            events.append(body[start : line.end()])
            start = line.end()
    if start < len(body):
        events.append(body[start:])
    return events


def _default_error(status: int) -> dict[str, Any]:
    if status in _DEFAULT_ERRORS:
        message, type_, code = _DEFAULT_ERRORS[status]
    elif status >= 500:
        message, type_, code = _DEFAULT_ERRORS[500]
    else:
        message, type_, code = f"Request failed with status {status}.", "invalid_request_error", None
    return error_object(message, type_, code=code)


def _asks_for_usage(request: Mapping[str, Any]) -> bool:
    options = request.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def _chunks(value: str | Sequence[str]) -> list[str]:
    return _WORD_CHUNKS.findall(value) if isinstance(value, str) else list(value)


def _argument_fragments(arguments: str | Sequence[str]) -> list[str]:
    if not isinstance(arguments, str):
        return list(arguments)
    size = max(1, math.ceil(len(arguments) / _ARGUMENT_FRAGMENTS))
    return [arguments[start : start + size] for start in range(0, len(arguments), size)]


def _prompt_words(request: Mapping[str, Any]) -> int:
    messages = request.get("messages")
    if not isinstance(messages, list):
        return 0
    words = 0
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            words += len(content.split())
        elif isinstance(content, list):  # content parts: count the text ones
            for part in content:
                text = part.get("text") if isinstance(part, dict) else None
                if isinstance(text, str):
                    words += len(text.split())
    return words


def _usage(
    spec: tuple[int, int] | Mapping[str, Any] | None, request: Mapping[str, Any], chunks: int
) -> dict[str, Any]:
    if spec is None:
        prompt_tokens, completion_tokens = _prompt_words(request), chunks
    elif isinstance(spec, tuple):
        prompt_tokens, completion_tokens = spec
    else:
        return dict(spec)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _merged_headers(defaults: Mapping[str, str], extra: Mapping[str, str]) -> list[tuple[str, str]]:
    merged = dict(defaults)
    for name, value in extra.items():
        if name.lower() not in _FRAMING_HEADERS:
            merged[name.lower()] = value
    return list(merged.items())


def _fixed_plan(
    status: int, body: bytes, extra_headers: Mapping[str, str], head_delay: float, *, abort: bool = False
) -> Plan:
    headers = [*_merged_headers(_JSON_HEADERS, extra_headers), ("content-length", str(len(body)))]
    steps: list[Step] = [Abort.ABORT] if abort else [body]
    return Plan(status, headers, steps, head_delay=head_delay)


def _data(payload: object) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


@dataclass(frozen=True, slots=True)
class _ToolCall:
    id: str
    name: str
    fragments: list[str]


@dataclass(frozen=True, slots=True)
class _Completion:
    """A reply resolved against one request: ids, chunks and usage fixed."""

    id: str
    created: int
    model: str
    reasoning: list[str]
    text: list[str]
    tool_calls: list[_ToolCall]
    finish_reason: str
    usage: dict[str, Any]

    @classmethod
    def build(cls, reply: Reply, request: Mapping[str, Any], ids: IdSequence) -> _Completion:
        reasoning, text = _chunks(reply.reasoning), _chunks(reply.text)
        calls = [
            _ToolCall(spec.id or ids.tool_call_id(), spec.name, _argument_fragments(spec.arguments))
            for spec in reply.tool_calls
        ]
        return cls(
            id=reply.id or ids.completion_id(),
            created=reply.created if reply.created is not None else int(time.time()),
            model=reply.model,
            reasoning=reasoning,
            text=text,
            tool_calls=calls,
            finish_reason=reply.finish_reason or ("tool_calls" if calls else "stop"),
            usage=_usage(reply.usage, request, len(reasoning) + len(text)),
        )

    def deltas(self, reasoning_field: str) -> list[dict[str, Any]]:
        """The ``delta`` of every content chunk, in stream order."""
        deltas: list[dict[str, Any]] = [{reasoning_field: piece} for piece in self.reasoning]
        deltas.extend({"content": piece} for piece in self.text)
        for index, call in enumerate(self.tool_calls):
            head = {
                "index": index,
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
            deltas.append({"tool_calls": [head]})
            deltas.extend(
                {"tool_calls": [{"index": index, "function": {"arguments": f}}]} for f in call.fragments
            )
        return deltas

    def event_count(self) -> int:
        """How many content chunks a stream of this completion has."""
        return len(self.reasoning) + len(self.text) + sum(1 + len(call.fragments) for call in self.tool_calls)


class _ChunkEncoder:
    """Encodes one completion's ``data:`` events around pre-encoded constant parts.

    Only the ``delta`` differs between chunks, so it is the only part that goes
    through ``orjson`` per chunk.
    """

    __slots__ = ("_head", "_prefix", "_tail", "_usage_null")

    def __init__(self, completion: _Completion, *, usage_null: bool) -> None:
        common = orjson.dumps(
            {
                "id": completion.id,
                "object": "chat.completion.chunk",
                "created": completion.created,
                "model": completion.model,
            }
        )
        self._head = b"data: " + common[:-1]  # without the closing brace, so fields can follow
        self._prefix = self._head + b',"choices":[{"index":0,"delta":'
        # OpenAI marks every chunk with "usage":null when a usage chunk will follow.
        self._usage_null = b',"usage":null' if usage_null else b""
        self._tail = b',"logprobs":null,"finish_reason":null}]' + self._usage_null + b"}\n\n"

    def delta(self, delta: Mapping[str, Any]) -> bytes:
        return self._prefix + orjson.dumps(delta) + self._tail

    def finish(self, delta: Mapping[str, Any], reason: str) -> bytes:
        return (
            self._prefix
            + orjson.dumps(delta)
            + b',"logprobs":null,"finish_reason":'
            + orjson.dumps(reason)
            + b"}]"
            + self._usage_null
            + b"}\n\n"
        )

    def usage(self, usage: Mapping[str, Any]) -> bytes:
        return self._head + b',"choices":[],"usage":' + orjson.dumps(usage) + b"}\n\n"


class _StreamSteps:
    """Collects a stream's steps, inserting the reply's pacing between events."""

    def __init__(self, reply: Reply) -> None:
        self.steps: list[Step] = []
        self._delay = reply.delay
        self._keepalive = reply.keepalive
        self._gap = reply.first_delay  # before the first event; ``delay`` after that

    def event(self, data: bytes) -> None:
        if self._gap > 0:
            self.steps.append(Pause(self._gap, self._keepalive))
        self.steps.append(data)
        self._gap = self._delay

    def events(self, events: Iterable[bytes]) -> None:
        for data in events:
            self.event(data)

    def pause(self, seconds: float, keepalive: float | None) -> None:
        self.steps.append(Pause(seconds, keepalive))

    def abort(self) -> None:
        self.steps.append(Abort.ABORT)


def _fault_error(fault: Fault) -> bytes:
    return _data({"error": {"message": fault.message, "type": fault.error_type, "code": fault.code}})


def _inject(fault: Fault, steps: _StreamSteps) -> bool:
    """Add ``fault``'s steps; return whether the stream carries on afterwards."""
    kind = fault.kind
    match kind:
        case "drop":
            steps.abort()
            return False
        case "error_event":
            steps.event(b"event: error\n" + _fault_error(fault))
            return False
        case "inband_error":
            steps.event(_fault_error(fault))
            return False
        case "stall":
            steps.pause(fault.seconds, None)
            return True
        case "stall_with_keepalive":
            steps.pause(fault.seconds, fault.every)
            return True
        case "malformed_line":
            steps.event(_MALFORMED)
            return True
        case "truncated_json":
            steps.event(_TRUNCATED)
            return False
        case "end_without_finish":
            return False
        case "slow_trickle":  # applied to every write through Plan.byte_delay
            return True


def _stream_plan(reply: Reply, completion: _Completion, *, send_usage: bool) -> Plan:
    encoder = _ChunkEncoder(completion, usage_null=send_usage)
    deltas = completion.deltas(reply.reasoning_field)
    if deltas:
        deltas[0] = {"role": "assistant", **deltas[0]}
    content = [encoder.delta(delta) for delta in deltas]
    headers = _merged_headers(_SSE_HEADERS, reply.headers)
    steps = _StreamSteps(reply)
    fault = reply.fault
    cut = len(content) if fault is None else min(fault.after, len(content))
    steps.events(content[:cut])
    if fault is not None and not _inject(fault, steps):
        return Plan(200, headers, steps.steps)
    steps.events(content[cut:])
    # With no content at all, the finish chunk is the first one and carries the role.
    steps.event(encoder.finish({} if deltas else {"role": "assistant"}, completion.finish_reason))
    if send_usage:
        steps.event(encoder.usage(completion.usage))
    if reply.done:
        steps.event(_DONE)
    return Plan(200, headers, steps.steps, byte_delay=fault.per_byte_delay if fault is not None else 0.0)


def _json_plan(reply: Reply, completion: _Completion) -> Plan:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(completion.text) if completion.text or not completion.tool_calls else None,
    }
    if completion.reasoning:
        message[reply.reasoning_field] = "".join(completion.reasoning)
    if completion.tool_calls:
        message["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": "".join(call.fragments)},
            }
            for call in completion.tool_calls
        ]
    body = orjson.dumps(
        {
            "id": completion.id,
            "object": "chat.completion",
            "created": completion.created,
            "model": completion.model,
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": completion.finish_reason}
            ],
            "usage": completion.usage,
        }
    )
    # Take as long as the equivalent stream would, so timeouts behave alike.
    wait = reply.first_delay + reply.delay * completion.event_count()
    fault = reply.fault
    if fault is not None and fault.kind in ("stall", "stall_with_keepalive"):
        wait += fault.seconds
    abort = fault is not None and fault.kind == "drop"
    return _fixed_plan(200, body, reply.headers, wait, abort=abort)
