"""Bedrock's ConverseStream wire format (``POST /model/{modelId}/converse-stream``):
response bytes → normalised deltas, sans I/O.

The body is an AWS event stream (``application/vnd.amazon.eventstream``, decoded by
``_transport._eventstream``); each message names its event in the ``:event-type`` header
and carries a JSON payload (with a random-length ``"p"`` padding field, ignored)::

    messageStart       {"role": "assistant"}
    contentBlockStart  {"contentBlockIndex", "start": {"toolUse": {"toolUseId", "name"}}}
    contentBlockDelta  {"contentBlockIndex", "delta": {"text"} | {"toolUse": {"input"}}
                        | {"reasoningContent": {"text"} | {"signature"} | {"redactedContent"}}}
    contentBlockStop   {"contentBlockIndex"}
    messageStop        {"stopReason", "additionalModelResponseFields"?}
    metadata           {"usage": {"inputTokens", "outputTokens", "totalTokens",
                        "cacheReadInputTokens"?, "cacheWriteInputTokens"?},
                        "metrics": {"latencyMs"}}

A message whose ``:message-type`` is ``exception`` is an error the service reports inside
the stream (``:exception-type``: ``throttlingException``, ``modelStreamErrorException``,
``validationException``, ``serviceUnavailableException``, ``internalServerException``;
payload ``{"message"}``); one whose type is ``error`` carries ``:error-code`` and
``:error-message`` headers. Both raise :class:`ProviderStreamError` (``code`` = the type),
after the deltas that came before; the wrapper turns the retryable ones that arrive
before any content into the error a refused request gets (see ``_wrapper``).

Decisions worth knowing:

- Only tool use blocks get a ``contentBlockStart``; text and reasoning blocks start with
  their first delta. Calls are numbered 0, 1, ... in the order they start, their input
  fragments joined by block index.
- Reasoning must go back exactly as it came when a tool loop continues (Claude on Bedrock
  rejects the turn otherwise): each reasoning block's text and ``signature`` (a delta of
  its own, at the block's end), and each ``redactedContent`` block, is kept and handed to
  the next tool call as ``extra["thinking_blocks"]``, in the shape ``anthropic_chat``
  uses (``{"type": "thinking", "thinking", "signature"}``, ``{"type":
  "redacted_thinking", "data"}``), so one tool loop's messages work with either wrapper;
  the request builder turns them back into Converse's ``reasoningContent`` blocks.
- Usage: ``inputTokens`` counts only the uncached part of the prompt (as Anthropic's
  ``input_tokens``), so ``input_tokens`` here is ``inputTokens + cacheReadInputTokens +
  cacheWriteInputTokens`` (what OpenAI's ``prompt_tokens``, reported by the other
  wrappers, counts); ``cached_tokens`` is the cache read, ``cache_write_tokens`` the
  write. ``usage.raw`` is the metadata event's ``usage`` object, with the ``latencyMs``
  of its ``metrics`` added.
- The stream is done at ``messageStop`` (the ``metadata`` event after it is read when it
  comes); without it, the end of the body is a cut stream.
- Unknown event types and delta kinds (citations, images, tool results) are skipped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from ..._delta import Delta, Finish, Metadata, ReasoningDelta, TextDelta, ToolCallDelta, UsageReport
from ..._errors import ProviderStreamError, StreamProtocolError
from ..._transport._eventstream import EventStreamDecoder, EventStreamMessage
from ..._transport._wire_mapper import WireMapper
from ..._transport._wire_shape import SHAPE_ERRORS as _SHAPE_ERRORS
from ..._transport._wire_shape import count, error_fields, event_json, label, shape_error
from ..._transport._wire_shape import text as _text
from ..._usage import Usage

__all__ = [
    "THINKING_BLOCKS",
    "ConverseStreamMapper",
    "converse_deltas",
    "stream_exception",
    "usage_from_converse",
]

#: The key of a tool call's ``extra`` that holds the reasoning blocks to send back with it
#: (the same key, and block shape, as ``anthropic_chat``'s).
THINKING_BLOCKS = "thinking_blocks"


def usage_from_converse(raw: Mapping[str, Any], latency: Any = None) -> Usage:
    """A :class:`Usage` from a ``usage`` object (see the module docstring)."""
    uncached = count(raw.get("inputTokens"))
    read = count(raw.get("cacheReadInputTokens"))
    write = count(raw.get("cacheWriteInputTokens"))
    if uncached is None and read is None and write is None:
        prompt = None
    else:
        prompt = (uncached or 0) + (read or 0) + (write or 0)
    kept = dict(raw)
    if count(latency) is not None:
        kept["latencyMs"] = latency
    return Usage.reported(
        prompt,
        count(raw.get("outputTokens")),
        count(raw.get("totalTokens")),
        cached_tokens=read,
        cache_write_tokens=write,
        raw=kept,
    )


def stream_exception(message: EventStreamMessage, provider: str) -> ProviderStreamError | None:
    """The error of an ``exception`` or ``error`` message, ``None`` for an event. Shared
    by both of Bedrock's streaming APIs."""
    headers = message.headers
    kind = headers.get(":message-type", "event")
    if kind == "event":
        return None
    if kind == "exception":
        code = headers.get(":exception-type")
        try:
            text, _ = error_fields(event_json(message.payload, provider, "exception"))
        except StreamProtocolError:
            text = message.payload[:500].decode("utf-8", "replace") or "(no message)"
    else:  # "error", or a type this reader does not know: an error all the same
        code = headers.get(":error-code") or kind
        text = str(headers.get(":error-message") or "(no message)")
    return ProviderStreamError(text, provider=provider, code=None if code is None else str(code))


class _Block:
    """What is kept of one open content block, by its index."""

    __slots__ = ("call", "redacted", "signature", "thinking")

    def __init__(self) -> None:
        self.call = -1  # the call number of a tool use block
        self.thinking: list[str] = []
        self.signature = ""
        self.redacted: list[str] = []


class ConverseStreamMapper(WireMapper[EventStreamMessage]):
    """Feeds the bytes of a ConverseStream body; returns deltas.

    ``response_id`` and ``model`` (the request id the service sent in a header, the model
    asked for: Converse's events carry neither) label the response at ``messageStart``.
    """

    __slots__ = ("_blocks", "_calls", "_frames", "_identity", "_thinking", "finished")

    expected_shape = "the Bedrock ConverseStream event shape"
    unfinished_message = "the stream ended before the provider finished (no messageStop)"

    def __init__(self, provider: str, response_id: str | None = None, model: str | None = None) -> None:
        self._frames = EventStreamDecoder(provider)
        super().__init__(provider, self._frames)
        self._identity = Metadata(response_id, model) if response_id or model else None
        self._blocks: dict[int, _Block] = {}
        self._calls = 0
        self._thinking: list[dict[str, str]] = []  # complete blocks not yet given to a call
        self.finished = False

    def after_read(self, out: list[Delta]) -> None:
        # A read whose good messages the decoder returned before a broken one: its error
        # is raised right after their deltas (BodyUpstream raises a held mapper error),
        # not at the next read, which may never come.
        if self.error is None and self._frames.error is not None:
            self.error = self._frames.error

    def ended(self) -> bool:
        return self.finished

    def map_event(self, event: EventStreamMessage, out: list[Delta]) -> None:
        headers = event.headers
        if headers.get(":message-type", "event") != "event":
            error = stream_exception(event, self.provider)
            assert error is not None
            raise error
        kind = headers.get(":event-type")
        if kind == "contentBlockDelta":
            obj = event_json(event.payload, self.provider)
            delta = obj["delta"]
            index = obj["contentBlockIndex"]
            if "text" in delta:
                piece = _text(delta["text"])
                if piece:
                    out.append(TextDelta(piece))
            elif "toolUse" in delta:
                piece = _text(delta["toolUse"]["input"])
                block = self._blocks.get(index)
                if block is None or block.call < 0:
                    raise KeyError(f"toolUse input for block {index}, which started no tool use")
                if piece:
                    out.append(ToolCallDelta(block.call, None, None, piece))
            elif "reasoningContent" in delta:
                self._reasoning(index, delta["reasoningContent"], out)
            # (citation, image and tool result deltas carry no text of the answer)
        elif kind == "contentBlockStart":
            obj = event_json(event.payload, self.provider)
            start = obj["start"]
            block = self._blocks[obj["contentBlockIndex"]] = _Block()
            if "toolUse" in start:
                tool = start["toolUse"]
                block.call = n = self._calls
                self._calls += 1
                extra: dict[str, object] | None = None
                if self._thinking:
                    extra = {THINKING_BLOCKS: self._thinking}
                    self._thinking = []
                out.append(ToolCallDelta(n, _text(tool["toolUseId"]), _text(tool["name"]), "", extra))
        elif kind == "contentBlockStop":
            obj = event_json(event.payload, self.provider)
            self._stop_block(obj["contentBlockIndex"])
        elif kind == "messageStart":
            if self._identity is not None:
                out.append(self._identity)
        elif kind == "messageStop":
            obj = event_json(event.payload, self.provider)
            self.finished = True
            out.append(Finish(_text(obj["stopReason"])))
        elif kind == "metadata":
            obj = event_json(event.payload, self.provider)
            usage = obj.get("usage")
            if usage:
                metrics = obj.get("metrics")
                latency = metrics.get("latencyMs") if isinstance(metrics, Mapping) else None
                out.append(UsageReport(usage_from_converse(usage, latency)))
        # Unknown event types: nothing.

    def _reasoning(self, index: Any, content: Any, out: list[Delta]) -> None:
        block = self._blocks.get(index)
        if block is None:
            block = self._blocks[index] = _Block()
        if "text" in content:
            piece = _text(content["text"])
            if piece:
                block.thinking.append(piece)
                out.append(ReasoningDelta(piece))
        elif "signature" in content:
            block.signature += _text(content["signature"])
        elif "redactedContent" in content:
            # Opaque bytes, base64 in the JSON: kept as they came.
            block.redacted.append(_text(content["redactedContent"]))

    def _stop_block(self, index: Any) -> None:
        block = self._blocks.pop(index, None)
        if block is None:
            return
        if block.thinking or block.signature:
            self._thinking.append(
                {"type": "thinking", "thinking": "".join(block.thinking), "signature": block.signature}
            )
        if block.redacted:
            self._thinking.append({"type": "redacted_thinking", "data": "".join(block.redacted)})


def converse_deltas(obj: Any, provider: str, response_id: str | None, model: str | None) -> list[Delta]:
    """Deltas of a non-streaming Converse body (``POST /model/{modelId}/converse``)."""
    try:
        return _converse_deltas(obj, provider, response_id, model)
    except _SHAPE_ERRORS as exc:
        raise shape_error(exc, provider, "the Bedrock Converse response shape") from None


def _converse_deltas(obj: Any, provider: str, response_id: str | None, model: str | None) -> list[Delta]:
    if type(obj) is not dict:
        raise StreamProtocolError(f"expected a JSON object, got {type(obj).__name__}", provider=provider)
    out: list[Delta] = [Metadata(label(response_id), label(model))]
    thinking: list[dict[str, str]] = []
    calls = 0
    for block in obj["output"]["message"]["content"] or ():
        if "text" in block:
            if block["text"]:
                out.append(TextDelta(_text(block["text"])))
        elif "reasoningContent" in block:
            content = block["reasoningContent"]
            if "reasoningText" in content:
                reasoning = content["reasoningText"]
                if reasoning.get("text"):
                    out.append(ReasoningDelta(_text(reasoning["text"])))
                thinking.append(
                    {
                        "type": "thinking",
                        "thinking": _text(reasoning.get("text") or ""),
                        "signature": _text(reasoning.get("signature") or ""),
                    }
                )
            elif "redactedContent" in content:
                thinking.append({"type": "redacted_thinking", "data": _text(content["redactedContent"])})
        elif "toolUse" in block:
            tool = block["toolUse"]
            extra: dict[str, object] | None = {THINKING_BLOCKS: thinking} if thinking else None
            thinking = []
            arguments = orjson.dumps(tool.get("input") or {}).decode()
            out.append(ToolCallDelta(calls, _text(tool["toolUseId"]), _text(tool["name"]), arguments, extra))
            calls += 1
    usage = obj.get("usage")
    if usage:
        metrics = obj.get("metrics")
        latency = metrics.get("latencyMs") if isinstance(metrics, Mapping) else None
        out.append(UsageReport(usage_from_converse(usage, latency)))
    reason = obj.get("stopReason")
    if reason:
        out.append(Finish(_text(reason)))
    return out
