"""The mapper: OpenAI chat-completions chunks, as SSE bytes, to streamwrap's deltas.

A stream is a series of ``data: {chunk}`` events ending with ``data: [DONE]``::

    data: {"id": "chatcmpl-1", "model": "m", "choices": [{"index": 0, "delta": {"content": "Hel"}}]}
    data: {"id": "chatcmpl-1", "model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    data: {"id": "chatcmpl-1", "model": "m", "choices": [], "usage": {"prompt_tokens": 5, ...}}
    data: [DONE]

and an error after the stream started is an event whose JSON has an ``"error"`` object.
"""

from __future__ import annotations

from typing import Any

from streamwrap import ProviderStreamError, StreamProtocolError
from streamwrap.providers import (
    SHAPE_ERRORS,
    Delta,
    Finish,
    Metadata,
    ReasoningDelta,
    ServerSentEvent,
    SSEDecoder,
    TextDelta,
    ToolCallDelta,
    Usage,
    UsageReport,
    WireMapper,
    event_json,
)


class ExampleStreamMapper(WireMapper[ServerSentEvent]):
    """Feeds the SSE bytes of one streaming response; returns its deltas.

    ``finished`` is set by a finish reason or ``[DONE]``: the body ending without either is
    a cut stream.
    """

    expected_shape = "the shape of a chat.completion.chunk"
    unfinished_message = "the stream ended before the server finished (no finish_reason, no [DONE])"

    def __init__(self, provider: str) -> None:
        super().__init__(provider, SSEDecoder())
        self._seen_metadata = False
        self.finished = False

    def ended(self) -> bool:
        return self.finished

    def map_event(self, event: ServerSentEvent, out: list[Delta]) -> None:
        """One decoded event -> deltas, appended to ``out``."""
        if event.data == b"[DONE]":
            self.finished = True
            return
        chunk = event_json(event.data, self.provider)  # malformed JSON: StreamProtocolError
        error = chunk.get("error")
        if error:
            raise ProviderStreamError(str(error["message"]), provider=self.provider, code=error.get("code"))
        if not self._seen_metadata:
            self._seen_metadata = True
            out.append(Metadata(chunk.get("id"), chunk.get("model")))
        for choice in chunk["choices"][:1]:  # the first choice only
            delta = choice.get("delta") or {}
            if delta.get("reasoning_content"):
                out.append(ReasoningDelta(_text(delta["reasoning_content"])))
            if delta.get("content"):
                out.append(TextDelta(_text(delta["content"])))
            for call in delta.get("tool_calls") or ():
                out.append(_tool_call(call))
            if choice.get("finish_reason"):
                self.finished = True
                out.append(Finish(_text(choice["finish_reason"])))
        if chunk.get("usage"):
            out.append(UsageReport(_usage(chunk["usage"])))


def completion_deltas(obj: Any, provider: str) -> list[Delta]:
    """The deltas of a whole (``"stream": false``) response, already parsed from JSON."""
    try:
        if obj.get("error"):
            error = obj["error"]
            raise ProviderStreamError(str(error["message"]), provider=provider, code=error.get("code"))
        out: list[Delta] = [Metadata(obj.get("id"), obj.get("model"))]
        choice = obj["choices"][0]
        message = choice["message"]
        if message.get("reasoning_content"):
            out.append(ReasoningDelta(_text(message["reasoning_content"])))
        if message.get("content"):
            out.append(TextDelta(_text(message["content"])))
        for call in message.get("tool_calls") or ():
            out.append(_tool_call(call))
        if choice.get("finish_reason"):
            out.append(Finish(_text(choice["finish_reason"])))
        if obj.get("usage"):
            out.append(UsageReport(_usage(obj["usage"])))
    except SHAPE_ERRORS as exc:
        raise StreamProtocolError(
            f"a response of the wrong shape ({type(exc).__name__}: {exc})", provider=provider
        ) from None
    return out


def _tool_call(call: Any) -> ToolCallDelta:
    # A streamed call comes in fragments of one index: the id and name with the first.
    function = call.get("function") or {}
    return ToolCallDelta(
        index=call.get("index", 0),
        id=call.get("id"),
        name=function.get("name"),
        arguments=function.get("arguments") or "",
    )


def _usage(raw: Any) -> Usage:
    return Usage.reported(
        raw.get("prompt_tokens"), raw.get("completion_tokens"), raw.get("total_tokens"), raw=raw
    )


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {type(value).__name__}")  # a shape error
    return value
