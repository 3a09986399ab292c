"""Anthropic's Messages API wire format (``POST /v1/messages``, ``"stream": true``): response
bytes → normalised deltas, sans I/O.

The stream is SSE; every event's ``data`` is a JSON object whose ``type`` names it::

    message_start        {"message": {"id", "model", "usage": {...}}}
    content_block_start  {"index", "content_block": {"type": "text" | "thinking" | "tool_use"
                          | "redacted_thinking" | ..., ...}}
    content_block_delta  {"index", "delta": {"type": "text_delta" | "thinking_delta"
                          | "signature_delta" | "input_json_delta", ...}}
    content_block_stop   {"index"}
    message_delta        {"delta": {"stop_reason", "stop_sequence"}, "usage": {...}}
    message_stop
    ping                 (a keep-alive)
    error                {"error": {"type": "overloaded_error", "message": ...}}

Blocks map to deltas: ``text_delta`` → :class:`TextDelta`; ``thinking_delta`` →
:class:`ReasoningDelta`; each ``tool_use`` block → one call (:class:`ToolCallDelta`, its id
and name from ``content_block_start``, then its ``input_json_delta`` fragments, joined by
block index, so several blocks in one reply stay apart). Calls are numbered 0, 1, ... in
the order they start, as OpenAI numbers parallel calls.

Decisions worth knowing:

- Thinking must go back exactly as it came when a tool loop continues (the API rejects the
  turn otherwise): each ``thinking`` block (its text and its ``signature``, from
  ``signature_delta``) and each ``redacted_thinking`` block (opaque ``data``, whole in
  ``content_block_start``) is kept, and handed to the next tool call as
  ``extra["thinking_blocks"]``: a list of the API's own block objects, in order, which the
  wrapper puts back in front of that call's ``tool_use`` block. (LiteLLM's name for the
  same list.) Thinking of a reply without tool calls is not kept: the API ignores thinking
  of earlier turns outside a tool loop.
- Usage: ``message_start`` reports the input side (and an early output count);
  ``message_delta`` restates output tokens cumulatively and may revise the input and cache
  counts, so the readings are merged, key by key, and the last wins. ``input_tokens`` is
  the whole prompt, ``input_tokens + cache_read_input_tokens +
  cache_creation_input_tokens`` (Anthropic's ``input_tokens`` counts only the uncached
  part; OpenAI's ``prompt_tokens``, which the other wrappers report, counts all of it);
  ``cached_tokens`` is the cache read, ``cache_write_tokens`` the cache write. The raw
  merged object stays in ``usage.raw``. Thinking tokens are billed inside
  ``output_tokens``; the API does not count them apart.
- ``ping`` yields nothing, so it does not count as progress for the idle timeout.
- An ``error`` event raises :class:`ProviderStreamError` (``code`` = the error's ``type``,
  such as ``overloaded_error``), after the deltas that came before it.
- The stream is done at ``message_stop`` or at a ``message_delta`` with a stop reason;
  without either, the end of the body is a cut stream (:class:`StreamInterruptedError`).
  Events after ``message_stop`` are ignored.
- Unknown event and block types (server tools' results, citations) are skipped: the API
  adds them often, and they carry no text of the answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from ..._delta import Delta, Finish, Metadata, ReasoningDelta, TextDelta, ToolCallDelta, UsageReport
from ..._errors import ProviderStreamError, StreamProtocolError
from ..._transport._sse import ServerSentEvent, SSEDecoder
from ..._transport._wire_mapper import WireMapper
from ..._transport._wire_shape import SHAPE_ERRORS as _SHAPE_ERRORS
from ..._transport._wire_shape import count, error_fields, event_json, label, shape_error
from ..._transport._wire_shape import text as _text
from ..._usage import Usage

__all__ = ["THINKING_BLOCKS", "AnthropicStreamMapper", "message_deltas", "usage_from_anthropic"]

#: The key of a tool call's ``extra`` that holds the thinking blocks to send back with it.
THINKING_BLOCKS = "thinking_blocks"

# An error object names its kind in `type` (overloaded_error, api_error, ...).
_ERROR_CODE_KEYS = ("type",)


def usage_from_anthropic(raw: Mapping[str, Any]) -> Usage:
    """A :class:`Usage` from a (merged) ``usage`` object (see the module docstring)."""
    uncached = count(raw.get("input_tokens"))
    read = count(raw.get("cache_read_input_tokens"))
    write = count(raw.get("cache_creation_input_tokens"))
    if uncached is None and read is None and write is None:
        prompt = None
    else:
        prompt = (uncached or 0) + (read or 0) + (write or 0)
    return Usage.reported(
        prompt,
        count(raw.get("output_tokens")),
        cached_tokens=read,
        cache_write_tokens=write,
        raw=raw,
    )


class _Block:
    """What is kept of one open content block, by its index."""

    __slots__ = ("call", "fragments", "input", "kind", "signature", "thinking")

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.call = -1  # the call number of a tool_use block
        self.fragments = False  # whether a tool_use block got input_json_delta fragments
        self.input: Any = None  # a tool_use block's input in content_block_start
        self.thinking: list[str] = []
        self.signature = ""


class AnthropicStreamMapper(WireMapper[ServerSentEvent]):
    """Feeds the bytes of a Messages API stream; returns deltas.

    Holds what carries over from one event to the next: the open blocks by index, the
    thinking blocks waiting for the next tool call, the merged usage.
    """

    __slots__ = ("_blocks", "_calls", "_stopped", "_thinking", "_usage", "finished")

    expected_shape = "the Anthropic Messages stream event shape"
    unfinished_message = "the stream ended before the provider finished (no message_stop)"

    def __init__(self, provider: str) -> None:
        super().__init__(provider, SSEDecoder())
        self._blocks: dict[int, _Block] = {}
        self._calls = 0
        self._thinking: list[dict[str, Any]] = []  # complete blocks not yet given to a call
        self._usage: dict[str, Any] = {}
        self._stopped = False  # message_stop seen: later events are ignored
        self.finished = False

    def ended(self) -> bool:
        return self.finished

    def map_event(self, event: ServerSentEvent, out: list[Delta]) -> None:
        data = event.data
        if self._stopped or not data.strip():
            return
        obj = event_json(data, self.provider)
        kind = obj["type"]
        if kind == "content_block_delta":
            delta = obj["delta"]
            dkind = delta["type"]
            if dkind == "text_delta":
                piece = _text(delta["text"])
                if piece:
                    out.append(TextDelta(piece))
            elif dkind == "input_json_delta":
                piece = _text(delta["partial_json"])
                block = self._blocks[obj["index"]]
                block.fragments = True
                if piece:
                    out.append(ToolCallDelta(block.call, None, None, piece))
            elif dkind == "thinking_delta":
                piece = _text(delta["thinking"])
                if piece:
                    self._blocks[obj["index"]].thinking.append(piece)
                    out.append(ReasoningDelta(piece))
            elif dkind == "signature_delta":
                self._blocks[obj["index"]].signature += _text(delta["signature"])
            # (citations_delta and other kinds carry no text of the answer)
        elif kind == "content_block_start":
            self._start_block(obj["index"], obj["content_block"], out)
        elif kind == "content_block_stop":
            self._stop_block(obj["index"], out)
        elif kind == "message_start":
            message = obj["message"]
            out.append(Metadata(label(message.get("id")), label(message.get("model"))))
            self._report(message.get("usage"), out)
        elif kind == "message_delta":
            self._report(obj.get("usage"), out)
            reason = (obj.get("delta") or {}).get("stop_reason")
            if reason:
                self.finished = True
                out.append(Finish(_text(reason)))
        elif kind == "message_stop":
            self.finished = True
            self._stopped = True
        elif kind == "error":
            raise _error(obj.get("error"), self.provider)
        # "ping" and unknown event types: nothing

    def _start_block(self, index: int, content: Any, out: list[Delta]) -> None:
        kind = content["type"]
        block = self._blocks[index] = _Block(_text(kind))
        if kind == "tool_use":
            block.call = n = self._calls
            self._calls += 1
            block.input = content.get("input")
            extra: dict[str, object] | None = None
            if self._thinking:
                extra = {THINKING_BLOCKS: self._thinking}
                self._thinking = []
            out.append(ToolCallDelta(n, _text(content["id"]), _text(content["name"]), "", extra))
        elif kind == "text":
            # (A text block may start with its first text; the API sends "" there.)
            piece = content.get("text")
            if piece:
                out.append(TextDelta(_text(piece)))
        elif kind == "thinking":
            piece = content.get("thinking")
            if piece:
                block.thinking.append(_text(piece))
                out.append(ReasoningDelta(piece))
            block.signature = _text(content.get("signature") or "")
        elif kind == "redacted_thinking":
            self._thinking.append({"type": "redacted_thinking", "data": _text(content["data"])})

    def _stop_block(self, index: int, out: list[Delta]) -> None:
        block = self._blocks.pop(index, None)
        if block is None:
            return
        if block.kind == "thinking":
            self._thinking.append(
                {"type": "thinking", "thinking": "".join(block.thinking), "signature": block.signature}
            )
        elif block.kind == "tool_use" and not block.fragments and block.input:
            # A call whose input came whole in content_block_start, with no fragments.
            out.append(ToolCallDelta(block.call, None, None, orjson.dumps(block.input).decode()))

    def _report(self, usage: Any, out: list[Delta]) -> None:
        if not usage:
            return
        merged = self._usage
        for key, value in usage.items():  # (a list or text here is a shape error)
            if value is not None:
                merged[key] = value
        out.append(UsageReport(usage_from_anthropic(dict(merged))))


def _error(err: Any, provider: str) -> ProviderStreamError:
    message, code = error_fields(err, _ERROR_CODE_KEYS)
    return ProviderStreamError(message, provider=provider, code=code)


def message_deltas(obj: Any, provider: str) -> list[Delta]:
    """Deltas of a non-streaming Messages API body (a ``message`` object, already parsed)."""
    try:
        return _message_deltas(obj, provider)
    except _SHAPE_ERRORS as exc:
        raise shape_error(exc, provider, "the Anthropic Messages response shape") from None


def _message_deltas(obj: Any, provider: str) -> list[Delta]:
    if type(obj) is not dict:
        raise StreamProtocolError(f"expected a JSON object, got {type(obj).__name__}", provider=provider)
    if obj.get("type") == "error":
        raise _error(obj.get("error"), provider)
    out: list[Delta] = [Metadata(label(obj.get("id")), label(obj.get("model")))]
    thinking: list[dict[str, Any]] = []
    calls = 0
    for block in obj["content"] or ():
        kind = block["type"]
        if kind == "text":
            if block["text"]:
                out.append(TextDelta(_text(block["text"])))
        elif kind == "thinking":
            if block["thinking"]:
                out.append(ReasoningDelta(_text(block["thinking"])))
            thinking.append(
                {"type": "thinking", "thinking": block["thinking"], "signature": block.get("signature") or ""}
            )
        elif kind == "redacted_thinking":
            thinking.append({"type": "redacted_thinking", "data": _text(block["data"])})
        elif kind == "tool_use":
            extra: dict[str, object] | None = {THINKING_BLOCKS: thinking} if thinking else None
            thinking = []
            arguments = orjson.dumps(block.get("input") or {}).decode()
            out.append(ToolCallDelta(calls, _text(block["id"]), _text(block["name"]), arguments, extra))
            calls += 1
    usage = obj.get("usage")
    if usage:
        out.append(UsageReport(usage_from_anthropic(dict(usage))))
    reason = obj.get("stop_reason")
    if reason:
        out.append(Finish(_text(reason)))
    return out
