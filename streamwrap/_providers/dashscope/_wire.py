"""DashScope's native text-generation wire format (``/services/aigc/text-generation/generation``):
SSE bytes → normalised deltas, and the non-streaming body too. Sans-I/O, no SDK.

What the native protocol does differently from OpenAI's (see the recordings in
``../shared/recordings/dashscope/native_*``):

- Every frame is ``id:N`` / ``event:result`` / ``:HTTP_STATUS/200`` / ``data:{...}``; there
  is no ``data: [DONE]``: the frame whose ``finish_reason`` is not the string ``"null"``
  ends the response.
- ``result_format="text"`` puts the text in ``output.text`` and the finish reason in
  ``output.finish_reason``; ``"message"`` uses ``output.choices[0].message`` (``content``,
  ``reasoning_content``, ``tool_calls``) like OpenAI's non-streaming shape.
- Without ``incremental_output=true`` every frame restates the whole text so far; the mapper
  is told which mode was asked for and turns cumulative frames into deltas (new suffix only).
- Tool-call continuations carry ``"id": ""`` and no name: same ``index``, same call.
- ``usage`` (``input_tokens``/``output_tokens``/``total_tokens``) is repeated, cumulative,
  on every frame: reported at most once per network read, only when it changed, never summed.
- Errors mid-stream are ``event:error`` frames whose data is ``{"code", "message",
  "request_id"}``, the same object as the JSON body of an HTTP error.
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
from ..._transport._wire_shape import count, error_fields, event_json, label, optional_text, shape_error
from ..._transport._wire_shape import text as _text
from ..._usage import Usage

__all__ = ["DashScopeStreamMapper", "error_from_sse_body", "generation_deltas", "usage_from_dashscope"]

# A choice's finish_reason is the *string* "null" until the last frame.
_NOT_FINISHED = frozenset(("", "null"))


def usage_from_dashscope(raw: Mapping[str, Any]) -> Usage:
    """DashScope's usage object → :class:`Usage` (its own names, OpenAI's as a fallback)."""
    output_details = raw.get("output_tokens_details") or raw.get("completion_tokens_details")
    prompt_details = raw.get("prompt_tokens_details") or raw.get("input_tokens_details")
    reasoning = count(output_details.get("reasoning_tokens")) if isinstance(output_details, Mapping) else None
    cached = count(prompt_details.get("cached_tokens")) if isinstance(prompt_details, Mapping) else None
    return Usage.reported(
        count(raw.get("input_tokens", raw.get("prompt_tokens"))),
        count(raw.get("output_tokens", raw.get("completion_tokens"))),
        count(raw.get("total_tokens")),
        reasoning_tokens=reasoning,
        cached_tokens=cached,
        raw=raw,
    )


def error_from_sse_body(text: str) -> dict[str, Any] | None:
    """The error object of an HTTP error whose body is an SSE ``event:error`` frame (what
    DashScope sends for a failed streaming request), or ``None`` if there is none."""
    decoder = SSEDecoder()
    events = decoder.feed(text.encode())
    events += decoder.close()
    for event in events:
        try:
            obj = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            continue
        if isinstance(obj, dict) and (obj.get("code") or obj.get("message")):
            return obj
    return None


class DashScopeStreamMapper(WireMapper[ServerSentEvent]):
    """Feeds the SSE bytes of a native text-generation stream; returns deltas.

    ``incremental`` says whether ``incremental_output=true`` was sent: when it was not, each
    frame restates everything so far (text, reasoning, tool-call arguments) and only the new
    suffix becomes a delta. ``finished`` is set by the first real finish reason; a body that
    ends without one was cut short.
    """

    __slots__ = (
        "_args",
        "_incremental",
        "_model",
        "_reasoning",
        "_reported_usage",
        "_seen_meta",
        "_text",
        "_usage",
        "finished",
    )

    expected_shape = "DashScope's response shape"
    unfinished_message = "the stream ended before DashScope reported a finish_reason"

    def __init__(self, provider: str, *, incremental: bool = True, model: str | None = None) -> None:
        super().__init__(provider, SSEDecoder())
        self._incremental = incremental
        self._model = model
        self._seen_meta = False
        # Cumulative mode only: what the previous frames already said.
        self._text = ""
        self._reasoning = ""
        self._args: dict[int, str] = {}
        self._usage: Any = None  # the latest usage object seen
        self._reported_usage: Any = None
        self.finished = False

    def ended(self) -> bool:
        return self.finished

    def after_read(self, out: list[Delta]) -> None:
        # Usage is restated on every frame (see frame()): one report per read, when it changed.
        usage = self._usage
        if usage is not None and usage != self._reported_usage:
            self._reported_usage = usage
            out.append(UsageReport(usage_from_dashscope(usage)))

    def map_event(self, event: ServerSentEvent, out: list[Delta]) -> None:
        data = event.data
        if not data.strip():
            return
        obj = event_json(data, self.provider)
        if event.event == "error":
            message, code = error_fields(obj)
            # (`"code": ""` is no code.)
            raise ProviderStreamError(message, provider=self.provider, code=code or None)
        self.frame(obj, out)

    def frame(self, obj: Any, out: list[Delta]) -> None:
        """Map one parsed frame (or a whole non-streaming body) to deltas."""
        if type(obj) is not dict:
            raise StreamProtocolError(
                f"expected a JSON object from DashScope, got {type(obj).__name__}", provider=self.provider
            )
        output = obj.get("output")
        if output is None and obj.get("code"):
            # An error object outside an `event:error` frame (or as a 200 body).
            message, code = error_fields(obj)
            # (`"code": ""` is no code.)
            raise ProviderStreamError(message, provider=self.provider, code=code or None)
        if not self._seen_meta:
            self._seen_meta = True
            out.append(Metadata(label(obj.get("request_id")), self._model))
        if output:
            choices = output.get("choices")
            if choices is not None:
                for choice in choices:
                    # Only the first choice is followed (n > 1 streams interleave them).
                    if choice.get("index", 0) == 0:
                        self._message(choice.get("message") or {}, out)
                        self._finish(choice.get("finish_reason"), out)
                        break
            else:  # result_format="text"
                self._content(output.get("reasoning_content"), out, reasoning=True)
                self._content(output.get("text"), out, reasoning=False)
                self._finish(output.get("finish_reason"), out)
        usage = obj.get("usage")
        if usage:
            if type(usage) is not dict:
                # (Checked here: it is read later, in after_read, outside the shape check.)
                raise TypeError(f"usage must be an object, got {type(usage).__name__}")
            # Restated on every frame: keep the latest, report it once per read (after_read).
            self._usage = usage

    def _finish(self, reason: Any, out: list[Delta]) -> None:
        if reason is None:
            return
        reason = _text(reason)
        if reason.lower() in _NOT_FINISHED:
            return
        self.finished = True
        out.append(Finish(reason))

    def _message(self, message: Mapping[str, Any], out: list[Delta]) -> None:
        self._content(message.get("reasoning_content"), out, reasoning=True)
        self._content(message.get("content"), out, reasoning=False)
        tool_calls = message.get("tool_calls")
        if tool_calls:
            self._tool_calls(tool_calls, out)

    def _content(self, value: Any, out: list[Delta], *, reasoning: bool) -> None:
        if not value:
            return
        text = _joined(value)
        if not self._incremental:
            seen = self._reasoning if reasoning else self._text
            text, now = _new_suffix(seen, text, "reasoning_content" if reasoning else "text", self.provider)
            if reasoning:
                self._reasoning = now
            else:
                self._text = now
        if text:
            out.append(ReasoningDelta(text) if reasoning else TextDelta(text))

    def _tool_calls(self, tool_calls: list[Any], out: list[Delta]) -> None:
        for n, call in enumerate(tool_calls):
            fn = call.get("function") or {}
            index = call.get("index")
            if type(index) is not int:
                index = n
            arguments = fn.get("arguments") or ""
            if arguments:
                arguments = _text(arguments)
            call_id = optional_text(call.get("id"))  # "" marks a continuation, never a new call
            name = optional_text(fn.get("name"))
            if not self._incremental:
                seen = self._args.get(index)
                if seen is not None:
                    arguments, self._args[index] = _new_suffix(
                        seen, arguments, "tool_calls.arguments", self.provider
                    )
                    if not arguments:
                        continue  # a restatement of a call already announced
                else:
                    self._args[index] = arguments
            if call_id or name or arguments:
                out.append(ToolCallDelta(index, call_id, name, arguments))


def _new_suffix(seen: str, now: str, field: str, provider: str) -> tuple[str, str]:
    """(delta, new state) for a cumulative field: the part of ``now`` after ``seen``."""
    if now.startswith(seen):
        return now[len(seen) :], now
    if seen.startswith(now):
        return "", seen  # a shorter restatement (e.g. an empty closing frame) adds nothing
    # Appending would double text the caller already has, and it cannot be taken back.
    raise StreamProtocolError(
        f"a cumulative frame (incremental_output=false) does not extend the previous {field}",
        provider=provider,
    )


def _joined(value: Any) -> str:
    # Multimodal models send content as a list of parts ([{"text": ...}, {"image": ...}]).
    if type(value) is list:
        return "".join(_text(part["text"]) for part in value if isinstance(part, Mapping) and "text" in part)
    return _text(value)


def generation_deltas(obj: Any, provider: str, model: str | None = None) -> list[Delta]:
    """Deltas of a non-streaming text-generation body (already parsed)."""
    out: list[Delta] = []
    mapper = DashScopeStreamMapper(provider, model=model)
    try:
        mapper.frame(obj, out)
    except _SHAPE_ERRORS as exc:
        raise shape_error(exc, provider, DashScopeStreamMapper.expected_shape) from None
    mapper.after_read(out)
    return out
