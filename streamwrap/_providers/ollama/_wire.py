"""Ollama's native ``/api/chat`` wire format: NDJSON lines → normalised deltas, and the
non-streaming body too.

Every line is one whole ``ChatResponse`` object::

    {"model": "llama3", "created_at": "...", "message": {"role": "assistant",
     "content": "Hel", "thinking": "...", "tool_calls": [...]}, "done": false}

and the last one has ``"done": true`` with ``done_reason`` and the token counts
(``prompt_eval_count``, ``eval_count``). Tool calls arrive complete (never in fragments),
their ``arguments`` as a JSON object, without ids. An error after the stream started is
a line ``{"error": "..."}``. Pure functions over bytes and dicts, no SDK.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from ..._delta import Delta, Finish, Metadata, ReasoningDelta, TextDelta, ToolCallDelta, UsageReport
from ..._errors import ProviderStreamError, StreamInterruptedError, StreamProtocolError
from ..._transport._ndjson import NDJSONDecoder
from ..._transport._wire_mapper import WireMapper
from ..._transport._wire_shape import SHAPE_ERRORS as _SHAPE_ERRORS
from ..._transport._wire_shape import count, event_json, shape_error
from ..._transport._wire_shape import text as _text
from ..._usage import Usage

__all__ = ["OllamaStreamMapper", "chat_deltas", "usage_from_ollama"]

# Counts and timings of the `done` line, kept as the usage's raw record.
_USAGE_FIELDS = (
    "prompt_eval_count",
    "eval_count",
    "total_duration",
    "load_duration",
    "prompt_eval_duration",
    "eval_duration",
)


def usage_from_ollama(obj: Mapping[str, Any]) -> Usage:
    """Usage of a ``done`` line: ``prompt_eval_count`` in, ``eval_count`` out."""
    raw = {k: obj[k] for k in _USAGE_FIELDS if k in obj}
    return Usage.reported(count(obj.get("prompt_eval_count")), count(obj.get("eval_count")), raw=raw)


class OllamaStreamMapper(WireMapper[bytes]):
    """Feeds the NDJSON bytes of a streaming ``/api/chat`` response; returns deltas.

    ``done`` is set by the line with ``"done": true``; the end of the body without it is
    a cut stream. Lines after it are ignored. Carries what one response's lines share:
    model seen, tool calls numbered.
    """

    __slots__ = ("_seen_model", "_tool_indexes", "done")

    expected_shape = "Ollama's chat response shape"
    unfinished_message = 'the stream ended before the provider finished (no line with "done": true)'

    def __init__(self, provider: str) -> None:
        super().__init__(provider, NDJSONDecoder())
        self._seen_model = False
        self._tool_indexes: set[int] = set()
        self.done = False

    def ended(self) -> bool:
        return self.done

    def map_event(self, event: bytes, out: list[Delta]) -> None:
        if self.done:
            return  # nothing after the done line belongs to the response
        self.object(event_json(event, self.provider, "line"), out)

    def map_last_event(self, event: bytes, out: list[Delta]) -> None:
        # A last line without its newline: complete (a server that omits the final
        # newline) or cut off by a dropped connection, which is not a protocol error.
        try:
            self.map_event(event, out)
        except StreamProtocolError:
            raise StreamInterruptedError(
                f"the stream ended in the middle of a line ({event[:120]!r})", provider=self.provider
            ) from None

    def object(self, obj: Any, out: list[Delta]) -> None:
        if type(obj) is not dict:
            raise StreamProtocolError(
                f"expected a JSON object per line, got {type(obj).__name__}", provider=self.provider
            )
        error = obj.get("error")
        if error:
            # Ollama's in-band errors are plain strings; tolerate an OpenAI-style object.
            if isinstance(error, Mapping):
                message = error.get("message") or orjson.dumps(error).decode()
            else:
                message = error
            raise ProviderStreamError(str(message), provider=self.provider)
        if not self._seen_model:
            model = obj.get("model")
            if model:
                self._seen_model = True
                # Ollama gives a response no id of its own: the response's id is ours.
                out.append(Metadata(None, _text(model)))
        message = obj.get("message")
        if message:
            # Thinking comes before the answer on the wire; keep that order in the deltas.
            thinking = message.get("thinking")
            if thinking:
                out.append(ReasoningDelta(_text(thinking)))
            content = message.get("content")
            if content:
                out.append(TextDelta(_text(content)))
            tool_calls = message.get("tool_calls")
            if tool_calls:
                self._tool_calls(tool_calls, out)
        if obj.get("done") is True:
            self.done = True
            out.append(UsageReport(usage_from_ollama(obj)))
            # "stop" after tool calls is kept as sent: the response reports "tool_calls"
            # for it, as for Gemini, and finish_reason_raw stays Ollama's own.
            reason = obj.get("done_reason")
            if reason:
                out.append(Finish(_text(reason)))

    def _tool_calls(self, calls: list[Any], out: list[Delta]) -> None:
        used = self._tool_indexes
        for call in calls:
            fn = call["function"]
            index = fn.get("index", call.get("index"))
            # Calls come whole, one per index; an index already taken (or none at all, as
            # older Ollama versions send) gets the next free one so calls never merge.
            if type(index) is not int or index in used:
                index = max(used) + 1 if used else 0
            used.add(index)
            arguments = fn.get("arguments")
            if arguments is None:
                args = "{}"
            elif isinstance(arguments, str):
                args = arguments  # a proxy that already serialised them
            else:
                args = orjson.dumps(arguments).decode()
            # Ollama has no call ids (newer versions may send one): a stable id per index
            # lets the caller pair the tool result with its call as with OpenAI.
            call_id = call.get("id") or f"call_{index}"
            out.append(ToolCallDelta(index, _text(call_id), _text(fn["name"]), args))


def chat_deltas(obj: Any, provider: str) -> list[Delta]:
    """Deltas of a non-streaming ``/api/chat`` body (already parsed)."""
    out: list[Delta] = []
    try:
        OllamaStreamMapper(provider).object(obj, out)
    except _SHAPE_ERRORS as exc:
        raise shape_error(exc, provider, OllamaStreamMapper.expected_shape) from None
    return out
