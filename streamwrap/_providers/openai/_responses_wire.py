"""The OpenAI Responses API wire format (``POST /v1/responses``): typed SSE events →
normalised deltas, and the non-streaming ``response`` object too.

Each event's ``data`` is a JSON object whose ``type`` names it (the ``event:`` line repeats
it, but a proxy may drop that line, so ``type`` is what is read). There is no ``[DONE]``:
``response.completed`` or ``response.incomplete`` ends the stream, ``response.failed`` and
``error`` break it. The API adds event types often; those not read here are skipped.

Pure functions over bytes and dicts, no SDK (as for chat completions, the SDK's per-event
pydantic objects are where its time goes).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson

from ..._delta import Delta, Finish, Metadata, ReasoningDelta, TextDelta, ToolCallDelta, UsageReport
from ..._errors import ProviderStreamError, StreamProtocolError
from ..._transport._sse import ServerSentEvent, SSEDecoder
from ..._transport._wire_mapper import WireMapper
from ..._transport._wire_shape import SHAPE_ERRORS as _SHAPE_ERRORS
from ..._transport._wire_shape import count, error_fields, event_json, label, optional_text, shape_error
from ..._transport._wire_shape import text as _text
from ..._usage import Usage

__all__ = ["REASONING_ITEMS", "ResponsesStreamMapper", "response_deltas", "usage_from_responses"]

# Reasoning summary parts (and reasoning items) have no separator on the wire: joined with
# a blank line, as OpenAI's own tools show them.
_PART_SEPARATOR = "\n\n"
# The finish reason of a reply that refused: "refusal" is normalised to content_filter.
_REFUSAL = "refusal"
# The key of a tool call's `extra` that carries the reasoning items before it (JSON text).
REASONING_ITEMS = "reasoning_items"
# An error object names its kind in `code`, or only in `type`.
_ERROR_CODE_KEYS = ("code", "type")


def usage_from_responses(raw: Mapping[str, Any]) -> Usage:
    """The usage object of a response: ``input_tokens``, ``output_tokens``, ``total_tokens``,
    with ``input_tokens_details.cached_tokens`` and ``output_tokens_details.reasoning_tokens``."""
    input_details = raw.get("input_tokens_details")
    output_details = raw.get("output_tokens_details")
    return Usage.reported(
        count(raw.get("input_tokens")),
        count(raw.get("output_tokens")),
        count(raw.get("total_tokens")),
        reasoning_tokens=count(output_details.get("reasoning_tokens"))
        if isinstance(output_details, Mapping)
        else None,
        cached_tokens=count(input_details.get("cached_tokens"))
        if isinstance(input_details, Mapping)
        else None,
        raw=raw,
    )


def _failure(err: Any, provider: str, default: str) -> ProviderStreamError:
    if not err:
        return ProviderStreamError(default, provider=provider)
    message, code = error_fields(err, _ERROR_CODE_KEYS)
    return ProviderStreamError(message, provider=provider, code=code)


def _index(obj: Mapping[str, Any]) -> int:
    """An event's ``output_index``: an integer, else a shape error."""
    index = obj["output_index"]
    if type(index) is not int:
        raise TypeError(f"output_index must be an integer, got {type(index).__name__}")
    return index


def _incomplete_reason(response: Mapping[str, Any]) -> str:
    """``incomplete_details.reason`` (``max_output_tokens`` → length, ``content_filter``),
    or ``"incomplete"`` when the API gives none."""
    details = response.get("incomplete_details")
    reason = details.get("reason") if isinstance(details, Mapping) else None
    return reason if type(reason) is str and reason else "incomplete"


class ResponsesStreamMapper(WireMapper[ServerSentEvent]):
    """Feeds SSE bytes of a Responses API stream; returns deltas.

    Tool calls are keyed by their ``output_index`` (the position of the ``function_call``
    item in the response's output, unique within a reply); a call's id is its ``call_id``,
    the id a ``function_call_output`` answers, not the item's ``fc_…`` id.
    """

    __slots__ = ("_calls", "_carried", "_gap", "_reasoned", "_refused", "_seen_meta", "finished")

    expected_shape = "the OpenAI Responses event shape"
    unfinished_message = (
        "the stream ended before the provider finished (no response.completed or response.incomplete)"
    )

    def __init__(self, provider: str) -> None:
        super().__init__(provider, SSEDecoder())
        self._seen_meta = False
        # output_index -> whether argument deltas arrived for that call (else its `done`
        # event, or its finished item, carries them whole)
        self._calls: dict[int, bool] = {}
        self._reasoned = False  # reasoning text has arrived
        self._gap = False  # a new summary part began after some: the next piece opens with a separator
        self._refused = False
        # reasoning items with encrypted content, not yet attached to a tool call
        self._carried = _CarriedReasoning()
        self.finished = False

    def ended(self) -> bool:
        return self.finished

    def map_event(self, event: ServerSentEvent, out: list[Delta]) -> None:
        if self.finished:
            return  # nothing after the terminal event belongs to the response
        data = event.data
        if not data.strip():
            return
        obj = event_json(data, self.provider)
        if type(obj) is not dict:
            raise StreamProtocolError(
                f"expected a JSON object in the stream, got {type(obj).__name__}", provider=self.provider
            )
        kind = obj.get("type") or event.event
        handler = _HANDLERS.get(kind) if type(kind) is str else None
        if handler is not None:
            handler(self, obj, out)
        elif event.event == "error":
            self._error(obj, out)

    # -- the events ---------------------------------------------------------------------

    def _created(self, obj: dict[str, Any], out: list[Delta]) -> None:
        if not self._seen_meta:
            response = obj["response"]
            provider_id, model = label(response.get("id")), label(response.get("model"))
            if provider_id is not None or model is not None:
                self._seen_meta = True
                out.append(Metadata(provider_id, model))

    def _text(self, obj: dict[str, Any], out: list[Delta]) -> None:
        delta = obj["delta"]
        if delta:
            out.append(TextDelta(_text(delta)))

    def _refusal(self, obj: dict[str, Any], out: list[Delta]) -> None:
        # A refusal is the model's answer, in a content part of its own: it is the text
        # the caller sees, and the reply finishes as "refusal" (content_filter).
        self._refused = True
        self._text(obj, out)

    def _reasoning(self, obj: dict[str, Any], out: list[Delta]) -> None:
        delta = obj["delta"]
        if delta:
            piece = _text(delta)
            if self._gap:
                self._gap = False
                piece = _PART_SEPARATOR + piece
            self._reasoned = True
            out.append(ReasoningDelta(piece))

    def _reasoning_part(self, obj: dict[str, Any], out: list[Delta]) -> None:
        if self._reasoned:
            self._gap = True

    def _item_added(self, obj: dict[str, Any], out: list[Delta]) -> None:
        item = obj["item"]
        if item.get("type") == "function_call":
            index = _index(obj)
            arguments = optional_text(item.get("arguments")) or ""
            self._calls[index] = bool(arguments)
            out.append(
                ToolCallDelta(
                    index,
                    optional_text(item.get("call_id")),
                    optional_text(item.get("name")),
                    arguments,
                    self._carried.take(),
                )
            )

    def _arguments(self, obj: dict[str, Any], out: list[Delta]) -> None:
        delta = obj["delta"]
        if delta:
            index = _index(obj)
            self._calls[index] = True
            out.append(ToolCallDelta(index, None, None, _text(delta)))

    def _arguments_done(self, obj: dict[str, Any], out: list[Delta]) -> None:
        index = _index(obj)
        if not self._calls.get(index, False):
            # No deltas came (the whole arguments only here): deliver them now.
            arguments = optional_text(obj.get("arguments"))
            if arguments:
                self._calls[index] = True
                out.append(ToolCallDelta(index, None, None, arguments))

    def _item_done(self, obj: dict[str, Any], out: list[Delta]) -> None:
        item = obj["item"]
        kind = item.get("type")
        if kind == "reasoning":
            self._carried.add(item)
        if kind != "function_call":
            return
        index = _index(obj)
        streamed = self._calls.get(index)
        if streamed is None:  # a call whose `added` event never came
            self._item_added(obj, out)
        elif not streamed:
            self._arguments_done({"output_index": index, "arguments": item.get("arguments")}, out)

    def _completed(self, obj: dict[str, Any], out: list[Delta]) -> None:
        response = obj["response"]
        self._created(obj, out)
        self.finished = True
        usage = response.get("usage")
        if usage:
            out.append(UsageReport(usage_from_responses(usage)))
        status = response.get("status")
        out.append(Finish(_REFUSAL if self._refused else _text(status) if status else "completed"))

    def _incomplete(self, obj: dict[str, Any], out: list[Delta]) -> None:
        response = obj["response"]
        self._created(obj, out)
        self.finished = True
        usage = response.get("usage")
        if usage:
            out.append(UsageReport(usage_from_responses(usage)))
        out.append(Finish(_incomplete_reason(response)))

    def _failed(self, obj: dict[str, Any], out: list[Delta]) -> None:
        response = obj["response"]
        raise _failure(response.get("error"), self.provider, "the provider reported the response failed")

    def _error(self, obj: dict[str, Any], out: list[Delta]) -> None:
        # `{"type": "error", "code", "message", "param"}`, or the error nested in "error".
        err = obj.get("error") or {k: v for k, v in obj.items() if k != "type"}
        raise _failure(err, self.provider, "the provider reported an error")


class _CarriedReasoning:
    """The reasoning items (with encrypted content) that precede a tool call, kept in the
    call's ``extra`` so that sending the call back (with ``store=False``) sends them too:
    the API rejects a reasoning model's function call without the reasoning before it."""

    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: list[Any] = []

    def add(self, item: Mapping[str, Any]) -> None:
        # Only items that carry their reasoning: without it (store=True, the default) the
        # API has them under their id and previous_response_id carries them.
        if item.get("encrypted_content"):
            self.items.append(item)

    def take(self) -> dict[str, object] | None:
        if not self.items:
            return None
        extra: dict[str, object] = {REASONING_ITEMS: orjson.dumps(self.items).decode()}
        self.items = []
        return extra


_Handler = Callable[[ResponsesStreamMapper, dict[str, Any], list[Delta]], None]
_HANDLERS: dict[str, _Handler] = {
    "response.created": ResponsesStreamMapper._created,
    "response.in_progress": ResponsesStreamMapper._created,
    "response.output_text.delta": ResponsesStreamMapper._text,
    "response.refusal.delta": ResponsesStreamMapper._refusal,
    "response.reasoning_summary_text.delta": ResponsesStreamMapper._reasoning,
    "response.reasoning_summary_part.added": ResponsesStreamMapper._reasoning_part,
    # (Raw reasoning text, which open-weight models served over this API stream.)
    "response.reasoning_text.delta": ResponsesStreamMapper._reasoning,
    "response.output_item.added": ResponsesStreamMapper._item_added,
    "response.function_call_arguments.delta": ResponsesStreamMapper._arguments,
    "response.function_call_arguments.done": ResponsesStreamMapper._arguments_done,
    "response.output_item.done": ResponsesStreamMapper._item_done,
    "response.completed": ResponsesStreamMapper._completed,
    "response.incomplete": ResponsesStreamMapper._incomplete,
    "response.failed": ResponsesStreamMapper._failed,
    "error": ResponsesStreamMapper._error,
}


def response_deltas(obj: Any, provider: str) -> list[Delta]:
    """Deltas of a non-streaming ``response`` object (already parsed)."""
    try:
        return _response_deltas(obj, provider)
    except _SHAPE_ERRORS as exc:
        raise shape_error(exc, provider, ResponsesStreamMapper.expected_shape) from None


def _response_deltas(obj: Any, provider: str) -> list[Delta]:
    if type(obj) is not dict:
        raise StreamProtocolError(f"expected a JSON object, got {type(obj).__name__}", provider=provider)
    if obj.get("error") or obj.get("status") == "failed":
        raise _failure(obj.get("error"), provider, "the provider reported the response failed")
    out: list[Delta] = [Metadata(label(obj.get("id")), label(obj.get("model")))]
    reasoning: list[str] = []
    refused = False
    carried = _CarriedReasoning()
    for index, item in enumerate(obj.get("output") or ()):
        kind = item.get("type")
        if kind == "reasoning":
            carried.add(item)
            reasoning.extend(_text(part["text"]) for part in item.get("summary") or () if part.get("text"))
            reasoning.extend(_text(part["text"]) for part in item.get("content") or () if part.get("text"))
        elif kind == "message":
            for part in item.get("content") or ():
                if part.get("type") == "output_text" and part.get("text"):
                    out.append(TextDelta(_text(part["text"])))
                elif part.get("type") == "refusal" and part.get("refusal"):
                    refused = True
                    out.append(TextDelta(_text(part["refusal"])))
        elif kind == "function_call":
            out.append(
                ToolCallDelta(
                    index,
                    optional_text(item.get("call_id")),
                    optional_text(item.get("name")),
                    optional_text(item.get("arguments")) or "",
                    carried.take(),
                )
            )
    if reasoning:
        out.insert(1, ReasoningDelta(_PART_SEPARATOR.join(reasoning)))
    if obj.get("usage"):
        out.append(UsageReport(usage_from_responses(obj["usage"])))
    status = obj.get("status")
    if status == "incomplete":
        out.append(Finish(_incomplete_reason(obj)))
    elif refused:
        out.append(Finish(_REFUSAL))
    elif status:
        out.append(Finish(_text(status)))
    return out
