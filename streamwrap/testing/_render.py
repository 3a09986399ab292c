"""The machinery every dialect shares: resolving a reply, pacing, faults, plans.

A dialect (one module per wire format) resolves a scripted reply against a
request into a :class:`Completion`, encodes its content chunks and closing
events as bytes in its own format, and hands them to :func:`stream_plan` or
:func:`json_plan`.  Those add the reply's pacing and fault the same way for
every dialect, with the fault's bytes framed by the dialect's :class:`Wire`.
Everything is encoded up front, so the connection spends one write per event.
"""

from __future__ import annotations

import itertools
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from ._eventstream import EVENTSTREAM_CONTENT_TYPE, eventstream_frames
from ._plan import Abort, Pause, Plan, Step
from ._script import Fault, RawReply, Reply, Split

_WORD_CHUNKS = re.compile(r"\S+\s*|\s+")
# One line including its terminator; SSE allows CRLF, LF and lone CR.
_LINES = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")
_BLANK_LINES = frozenset({b"\r\n", b"\n", b"\r"})
_ARGUMENT_FRAGMENTS = 3

JSON_HEADERS = {"content-type": "application/json"}
# The emulator decides how bodies are framed; a scripted header must not contradict it.
_FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding"})


class IdSequence:
    """Hands out deterministic response and tool-call ids for one emulator.

    All response ids share one counter, so ids stay unique across dialects.
    """

    def __init__(self) -> None:
        self._responses = itertools.count(1)
        self._tool_calls = itertools.count(1)

    def completion_id(self) -> str:
        """The next ``chatcmpl-emu-<n>`` (OpenAI)."""
        return f"chatcmpl-emu-{next(self._responses)}"

    def request_id(self) -> str:
        """The next UUID-shaped request id (DashScope)."""
        return f"00000000-0000-4000-8000-{next(self._responses):012d}"

    def response_id(self) -> str:
        """The next ``emuresp<n>`` (Gemini's ``responseId``)."""
        return f"emuresp{next(self._responses)}"

    def openai_response_id(self) -> str:
        """The next ``resp_emu_<n>`` (OpenAI's Responses API)."""
        return f"resp_emu_{next(self._responses)}"

    def tool_call_id(self) -> str:
        """The next ``call_emu_<n>``."""
        return f"call_emu_{next(self._tool_calls)}"


# -- resolving a reply ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A scripted tool call with its id fixed and its arguments cut into fragments."""

    id: str
    name: str
    fragments: list[str]

    @property
    def arguments(self) -> str:
        """The whole argument string."""
        return "".join(self.fragments)


@dataclass(frozen=True, slots=True)
class Completion:
    """A reply resolved against one request: ids, chunks and token counts fixed.

    ``finish_reason`` is in OpenAI's vocabulary; dialects translate it.  Token
    counts follow OpenAI: ``completion_tokens`` includes the reasoning tokens.
    ``raw_usage`` is the reply's usage mapping, which a dialect sends verbatim
    as its own usage object instead of the counts.
    """

    id: str
    created: int
    model: str
    reasoning: list[str]
    text: list[str]
    tool_calls: list[ToolCall]
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    raw_usage: dict[str, Any] | None

    @classmethod
    def build(cls, reply: Reply, ids: IdSequence, *, id: str, prompt_words: int) -> Completion:
        """Resolve ``reply``; ``prompt_words`` is the default prompt token count."""
        reasoning, text = chunks(reply.reasoning), chunks(reply.text)
        calls = [
            ToolCall(spec.id or ids.tool_call_id(), spec.name, argument_fragments(spec.arguments))
            for spec in reply.tool_calls
        ]
        spec = reply.usage
        raw_usage = dict(spec) if isinstance(spec, Mapping) else None
        prompt_tokens, completion_tokens = (
            spec if isinstance(spec, tuple) else (prompt_words, len(reasoning) + len(text))
        )
        return cls(
            id=id,
            created=reply.created if reply.created is not None else int(time.time()),
            model=reply.model,
            reasoning=reasoning,
            text=text,
            tool_calls=calls,
            finish_reason=reply.finish_reason or ("tool_calls" if calls else "stop"),
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            raw_usage=raw_usage,
        )

    @property
    def reasoning_tokens(self) -> int:
        """The part of ``completion_tokens`` spent reasoning: one per reasoning chunk, at most all."""
        return min(len(self.reasoning), self.completion_tokens)


def arguments_object(call: ToolCall) -> dict[str, Any]:
    """``call``'s arguments parsed, for providers that send them as a JSON object.

    Raises ``ValueError`` (with a message meant for the test author) if they are not one.
    """
    try:
        parsed = orjson.loads(call.arguments)
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise ValueError(
            f"ToolCallSpec {call.name!r}: this provider sends arguments as a JSON object, "
            f"but {call.arguments!r} is not one"
        )
    return parsed


def chunks(value: str | Sequence[str]) -> list[str]:
    """A ``str`` cut into word-sized chunks (whitespace stays with the word before); a sequence as is."""
    return _WORD_CHUNKS.findall(value) if isinstance(value, str) else list(value)


def argument_fragments(arguments: str | Sequence[str]) -> list[str]:
    """A ``str`` cut into a few fragments; a sequence as is."""
    if not isinstance(arguments, str):
        return list(arguments)
    size = max(1, math.ceil(len(arguments) / _ARGUMENT_FRAGMENTS))
    return [arguments[start : start + size] for start in range(0, len(arguments), size)]


def count_words(contents: Iterable[object]) -> int:
    """Words in message contents: strings, or lists of parts whose ``text`` counts."""
    words = 0
    for content in contents:
        if isinstance(content, str):
            words += len(content.split())
        elif isinstance(content, list):
            for part in content:
                text = part.get("text") if isinstance(part, dict) else None
                if isinstance(text, str):
                    words += len(text.split())
    return words


def field_values(items: object, key: str) -> list[object]:
    """``item[key]`` of every dict in ``items`` (anything else in a request body counts as nothing)."""
    if not isinstance(items, list):
        return []
    return [item.get(key) for item in items if isinstance(item, dict)]


# -- plans ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Wire:
    """How one dialect frames a stream and the events the fault machinery injects.

    Attributes:
        headers: Default response headers of a stream.
        keepalive: What a paused stream sends to stay alive.
        malformed: An event whose payload is not JSON.
        truncated: An event whose JSON is cut off.
        error_event: The dialect's mid-stream error event for a fault.
        inband_error: The error sent as an ordinary data event.
        numbered: If set, every event is prefixed with this ``%d`` template
            filled with its 1-based position (DashScope's ``id:N`` lines).
    """

    headers: Mapping[str, str]
    keepalive: bytes
    malformed: bytes
    truncated: bytes
    error_event: Callable[[Fault], bytes]
    inband_error: Callable[[Fault], bytes]
    numbered: bytes | None = None


def merged_headers(defaults: Mapping[str, str], extra: Mapping[str, str]) -> list[tuple[str, str]]:
    """``defaults`` overridden by the scripted ``extra`` headers, except the framing ones."""
    merged = dict(defaults)
    for name, value in extra.items():
        if name.lower() not in _FRAMING_HEADERS:
            merged[name.lower()] = value
    return list(merged.items())


def fixed_plan(
    status: int,
    body: bytes,
    extra_headers: Mapping[str, str],
    head_delay: float = 0.0,
    *,
    defaults: Mapping[str, str] = JSON_HEADERS,
    abort: bool = False,
) -> Plan:
    """A whole body sent in one write with a ``content-length`` (or the connection aborted instead)."""
    headers = [*merged_headers(defaults, extra_headers), ("content-length", str(len(body)))]
    steps: list[Step] = [Abort.ABORT] if abort else [body]
    return Plan(status, headers, steps, head_delay=head_delay)


def json_plan(
    reply: Reply, body: bytes, *, content_events: int, defaults: Mapping[str, str] = JSON_HEADERS
) -> Plan:
    """A non-streaming answer that takes as long as the stream of ``content_events`` chunks would.

    Of the faults only the delaying and the dropping ones apply: the stalls add
    their time, ``drop`` sends the headers and aborts.
    """
    # Take as long as the equivalent stream would, so timeouts behave alike.
    wait = reply.first_delay + reply.delay * content_events
    fault = reply.fault
    if fault is not None and fault.kind in ("stall", "stall_with_keepalive"):
        wait += fault.seconds
    abort = fault is not None and fault.kind == "drop"
    return fixed_plan(200, body, reply.headers, wait, defaults=defaults, abort=abort)


class _StreamSteps:
    """Collects a stream's steps, inserting the reply's pacing between events."""

    def __init__(self, reply: Reply, wire: Wire) -> None:
        self.steps: list[Step] = []
        self._delay = reply.delay
        self._keepalive = reply.keepalive
        self._ping = wire.keepalive
        self._numbered = wire.numbered
        self._sent = 0
        self._gap = reply.first_delay  # before the first event; ``delay`` after that

    def event(self, data: bytes) -> None:
        if self._gap > 0:
            self.steps.append(Pause(self._gap, self._keepalive, self._ping))
        if self._numbered is not None:
            self._sent += 1
            data = self._numbered % self._sent + data
        self.steps.append(data)
        self._gap = self._delay

    def events(self, events: Iterable[bytes]) -> None:
        for data in events:
            self.event(data)

    def pause(self, seconds: float, keepalive: float | None) -> None:
        self.steps.append(Pause(seconds, keepalive, self._ping))

    def abort(self) -> None:
        self.steps.append(Abort.ABORT)


def _inject(fault: Fault, steps: _StreamSteps, wire: Wire) -> bool:
    """Add ``fault``'s steps; return whether the stream carries on afterwards."""
    kind = fault.kind
    match kind:
        case "drop":
            steps.abort()
            return False
        case "error_event":
            steps.event(wire.error_event(fault))
            return False
        case "inband_error":
            steps.event(wire.inband_error(fault))
            return False
        case "stall":
            steps.pause(fault.seconds, None)
            return True
        case "stall_with_keepalive":
            steps.pause(fault.seconds, fault.every)
            return True
        case "malformed_line":
            steps.event(wire.malformed)
            return True
        case "truncated_json":
            steps.event(wire.truncated)
            return False
        case "end_without_finish":
            return False
        case "slow_trickle":  # applied to every write through Plan.byte_delay
            return True


def stream_plan(
    reply: Reply,
    wire: Wire,
    content: Sequence[bytes],
    closing: Sequence[bytes],
    *,
    merged_closing: Sequence[bytes] | None = None,
    opening: Sequence[bytes] = (),
) -> Plan:
    """A streamed answer: ``content`` chunks, then ``closing`` (finish, usage, terminator).

    ``opening`` events (Azure's prompt-filter chunk) go out at once with the headers,
    before the first delay: they are not content, so faults do not count them.

    The fault goes after ``reply.fault.after`` content chunks (before the
    closing events if there are fewer).  Providers that put the finish on the
    last content chunk pass ``merged_closing``: it replaces the last content
    chunk and ``closing`` whenever no fault comes between the two.
    """
    headers = merged_headers(wire.headers, reply.headers)
    steps = _StreamSteps(reply, wire)
    steps.steps.extend(opening)
    fault = reply.fault
    cut = len(content) if fault is None else min(fault.after, len(content))
    events = [*content, *closing]
    if merged_closing is not None and content and (fault is None or fault.after < len(content)):
        # The first ``cut`` events are still plain content chunks, so the fault lands in place.
        events = [*content[:-1], *merged_closing]
    steps.events(events[:cut])
    if fault is not None and not _inject(fault, steps, wire):
        return Plan(200, headers, steps.steps)
    steps.events(events[cut:])
    return Plan(200, headers, steps.steps, byte_delay=fault.per_byte_delay if fault is not None else 0.0)


# -- replayed bodies ----------------------------------------------------------------------------


def render_raw(raw: RawReply) -> Plan:
    """Replay a raw body verbatim, one write per piece of ``raw.split``."""
    if raw.split == "event" and raw.content_type.startswith(EVENTSTREAM_CONTENT_TYPE):
        # (A binary AWS event stream: its events are its length-prefixed messages.)
        return Plan(raw.status, [("content-type", raw.content_type)], eventstream_frames(raw.body))
    return Plan(raw.status, [("content-type", raw.content_type)], split_body(raw.body, raw.split))


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
