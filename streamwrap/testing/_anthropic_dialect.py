"""The Anthropic dialect: ``POST /v1/messages`` (the Messages API).

With ``"stream": true`` the answer is SSE, every event named (``event: <type>``) and its
``data`` a JSON object with the same ``type``: ``message_start`` (id, model, the input
usage), a ``ping``, then one content block per kind, in order, each opened by
``content_block_start`` and closed by ``content_block_stop``: reasoning as a ``thinking``
block (``thinking_delta`` per chunk, then one ``signature_delta``), text as a ``text``
block (``text_delta`` per chunk), and each tool call as a ``tool_use`` block (an empty
``input_json_delta`` first, as the API sends it, then one per argument fragment). Then
``message_delta`` (the stop reason, cumulative ``output_tokens``) and ``message_stop``.
Without ``stream``, one ``message`` object with the same content blocks.

OpenAI's finish reasons are translated (``stop`` → ``end_turn``, ``length`` →
``max_tokens``, ``tool_calls`` → ``tool_use``, ``content_filter`` → ``refusal``); any other
value is sent as scripted. A raw usage mapping is sent as ``message_start``'s usage (and
its ``output_tokens`` restated in ``message_delta``).

Errors are ``{"type": "error", "error": {"type", "message"}, "request_id"}`` with the
API's error types by status (``overloaded_error`` for 529); mid-stream, the same object
as an ``event: error`` (Anthropic has no other in-band error). A paused stream sends
``ping`` events as its keep-alives. The key travels as ``x-api-key: KEY`` (as Anthropic
documents it) or ``Authorization: Bearer KEY`` (what the ``anthropic`` SDK 2.x sends); a
missing or wrong one gets the API's 401 ``authentication_error``.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from typing import Any

from ._plan import Plan
from ._recorded import RecordedRequest
from ._render import (
    Completion,
    IdSequence,
    Wire,
    arguments_object,
    count_words,
    field_values,
    fixed_plan,
    json_plan,
    stream_plan,
)
from ._script import Fault, Reply

_JSON_HEADERS = {"content-type": "application/json"}

# The API's error type and default message of each HTTP status.
_DEFAULT_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "There was an issue with the format or content of your request."),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "The requested resource could not be found."),
    405: ("invalid_request_error", "Method not allowed."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Your account has hit a rate limit."),
    500: ("api_error", "An unexpected error has occurred internal to Anthropic's systems."),
    529: ("overloaded_error", "Overloaded"),
}
# OpenAI's finish reasons in Anthropic's words; anything else is sent as scripted.
_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}


def _dumps(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _sse(obj: dict[str, Any]) -> bytes:
    return b"event: " + str(obj["type"]).encode() + b"\ndata: " + _dumps(obj) + b"\n\n"


def _error_object(status: int, message: str | None = None, kind: str | None = None) -> dict[str, Any]:
    default_kind, default_message = (
        _DEFAULT_ERRORS.get(status) or _DEFAULT_ERRORS[500 if status >= 500 else 400]
    )
    return {"type": kind or default_kind, "message": message or default_message}


def _error_body(error: Mapping[str, Any], ids: IdSequence | None = None) -> bytes:
    body: dict[str, Any] = {"type": "error", "error": dict(error)}
    if ids is not None:
        body["request_id"] = f"req_{ids.response_id()}"
    return _dumps(body)


def _fault_error(fault: Fault) -> bytes:
    # OpenAI's generic default means "something broke": Anthropic calls that api_error.
    kind = "api_error" if fault.code in (None, "server_error") else fault.code
    return _sse({"type": "error", "error": {"type": kind, "message": fault.message}})


_WIRE = Wire(
    headers={"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"},
    keepalive=_sse({"type": "ping"}),
    malformed=b"event: content_block_delta\ndata: {not json\n\n",
    truncated=b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"ty\n\n',
    error_event=_fault_error,
    inband_error=_fault_error,
)


class AnthropicDialect:
    """Renders replies as Anthropic Messages API responses."""

    name = "anthropic"
    path = re.compile(r"(?:.*/)?v1/messages")

    def render(
        self, reply: Reply, request: RecordedRequest, body: Mapping[str, Any], ids: IdSequence
    ) -> Plan:
        """Answer the Messages request ``body`` with ``reply``."""
        if reply.status != 200:
            error = dict(reply.error) if reply.error is not None else _error_object(reply.status)
            return fixed_plan(
                reply.status,
                _error_body(error, ids),
                reply.headers,
                reply.first_delay,
                defaults=_JSON_HEADERS,
            )
        completion = Completion.build(
            reply, ids, id=reply.id or f"msg_{ids.response_id()}", prompt_words=_prompt_words(body)
        )
        try:
            renderer = _Renderer(completion)
        except ValueError as exc:
            return fixed_plan(500, _error_body(_error_object(500, str(exc))), {}, defaults=_JSON_HEADERS)
        if body.get("stream") is True:
            return renderer.stream(reply)
        return renderer.whole(reply)

    def refuse_key(self, request: RecordedRequest, api_key: str, ids: IdSequence) -> Plan | None:
        """The API's 401 unless ``request`` carries ``x-api-key: <api_key>`` (or
        ``Authorization: Bearer <api_key>``)."""
        bearer = request.headers.get("authorization", "")
        sent = request.headers.get("x-api-key") or (bearer[7:] if bearer[:7].lower() == "bearer " else None)
        if sent == api_key:
            return None
        message = "x-api-key header is required" if not sent else "invalid x-api-key"
        return fixed_plan(401, _error_body(_error_object(401, message), ids), {}, defaults=_JSON_HEADERS)

    def error(self, status: int, message: str, *, headers: Mapping[str, str] | None = None) -> Plan:
        """An Anthropic error body for a request the emulator refuses."""
        return fixed_plan(
            status, _error_body(_error_object(status, message)), headers or {}, defaults=_JSON_HEADERS
        )


def _prompt_words(body: Mapping[str, Any]) -> int:
    parts: list[object] = []
    for message in field_values(body.get("messages"), "content"):
        if isinstance(message, str):
            parts.append(message)
        else:
            parts.extend(field_values(message, "text"))
    system = body.get("system")
    parts.extend([system] if isinstance(system, str) else field_values(system, "text"))
    return count_words(parts)


class _Renderer:
    """Builds one completion's events."""

    def __init__(self, completion: Completion) -> None:
        self._completion = completion
        self._stop = _STOP_REASONS.get(completion.finish_reason, completion.finish_reason)
        self._signature = base64.b64encode(f"emulator thinking signature {completion.id}".encode()).decode()
        # Parsed now so that arguments that are not a JSON object fail before anything is sent.
        self._inputs = [arguments_object(call) for call in completion.tool_calls]

    def _usage(self) -> dict[str, Any]:
        completion = self._completion
        if completion.raw_usage is not None:
            return completion.raw_usage
        return {
            "input_tokens": completion.prompt_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": completion.completion_tokens,
        }

    def _start(self) -> bytes:
        completion = self._completion
        usage = dict(self._usage())
        usage["output_tokens"] = min(1, usage.get("output_tokens", 1))  # (an early count, as the API)
        message: dict[str, Any] = {
            "id": completion.id,
            "type": "message",
            "role": "assistant",
            "model": completion.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage,
        }
        return _sse({"type": "message_start", "message": message}) + _sse({"type": "ping"})

    def _content(self) -> list[bytes]:
        """One write per content chunk: a block's start rides with its first chunk, its stop
        with its last, so a fault after ``n`` chunks lands between two chunks."""
        completion = self._completion
        out: list[bytes] = []
        index = 0

        def block(start: dict[str, Any], deltas: list[dict[str, Any]], tail: list[dict[str, Any]]) -> None:
            nonlocal index
            events = [_sse({"type": "content_block_delta", "index": index, "delta": d}) for d in deltas] or [
                b""
            ]
            events[0] = (
                _sse({"type": "content_block_start", "index": index, "content_block": start}) + events[0]
            )
            closing = b"".join(
                _sse({"type": "content_block_delta", "index": index, "delta": d}) for d in tail
            )
            events[-1] += closing + _sse({"type": "content_block_stop", "index": index})
            out.extend(events)
            index += 1

        if completion.reasoning:
            block(
                {"type": "thinking", "thinking": "", "signature": ""},
                [{"type": "thinking_delta", "thinking": piece} for piece in completion.reasoning],
                [{"type": "signature_delta", "signature": self._signature}],
            )
        if completion.text:
            block(
                {"type": "text", "text": ""},
                [{"type": "text_delta", "text": piece} for piece in completion.text],
                [],
            )
        for call in completion.tool_calls:
            fragments = ["", *call.fragments]
            block(
                {"type": "tool_use", "id": call.id, "name": call.name, "input": {}},
                [{"type": "input_json_delta", "partial_json": f} for f in fragments],
                [],
            )
        if out:
            out[0] = self._start() + out[0]
        return out

    def _closing(self, *, started: bool) -> list[bytes]:
        usage = self._usage()
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": self._stop, "stop_sequence": None},
            "usage": {"output_tokens": usage.get("output_tokens", 0)},
        }
        head = b"" if started else self._start()
        return [head + _sse(delta) + _sse({"type": "message_stop"})]

    def stream(self, reply: Reply) -> Plan:
        """The SSE answer."""
        content = self._content()
        return stream_plan(reply, _WIRE, content, self._closing(started=bool(content)))

    def whole(self, reply: Reply) -> Plan:
        """The answer in one ``message`` object."""
        completion = self._completion
        blocks: list[dict[str, Any]] = []
        if completion.reasoning:
            blocks.append(
                {"type": "thinking", "thinking": "".join(completion.reasoning), "signature": self._signature}
            )
        if completion.text:
            blocks.append({"type": "text", "text": "".join(completion.text)})
        for call, arguments in zip(completion.tool_calls, self._inputs, strict=True):
            blocks.append({"type": "tool_use", "id": call.id, "name": call.name, "input": arguments})
        message = {
            "id": completion.id,
            "type": "message",
            "role": "assistant",
            "model": completion.model,
            "content": blocks,
            "stop_reason": self._stop,
            "stop_sequence": None,
            "usage": self._usage(),
        }
        content_events = len(completion.reasoning) + len(completion.text) + len(completion.tool_calls)
        return json_plan(reply, _dumps(message), content_events=content_events, defaults=_JSON_HEADERS)


ANTHROPIC = AnthropicDialect()
"""The dialect instance the route table uses."""
