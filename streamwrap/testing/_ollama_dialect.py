"""The Ollama dialect: ``POST /api/chat``.

Streams (``"stream"`` defaults to true) as NDJSON, one JSON object per line:
``message.content``, ``message.thinking`` or ``message.tool_calls`` (each
call complete, one per line, arguments as an object), then a ``"done": true``
line with ``done_reason``, ``prompt_eval_count``, ``eval_count`` and the
durations.  ``"stream": false`` gets one object.  JSON is escaped like Go's
encoder (``<``, ``>``, ``&`` as ``\\u003c`` …).  Errors are
``{"error": "..."}``, mid-stream as such a line.  NDJSON has no comments, so a
keep-alive is a blank line (Ollama itself sends none while it stalls).  Ollama has no API
keys, so an emulator that requires one lets Ollama requests through unchecked.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from typing import Any

import orjson

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

_JSON_HEADERS = {"content-type": "application/json; charset=utf-8"}
# Go's encoder escapes these so that JSON is safe inside HTML; orjson leaves them as they are.
_GO_ESCAPES = (
    (b"<", b"\\u003c"),
    (b">", b"\\u003e"),
    (b"&", b"\\u0026"),
    ("\u2028".encode(), b"\\u2028"),
    ("\u2029".encode(), b"\\u2029"),
)
# Ollama finishes tool calls with "stop"; anything else is sent as scripted.
_DONE_REASONS = {"tool_calls": "stop"}
_NANOSECONDS = 1_000_000_000
_MIN_STEP = 0.001  # seconds: durations are never zero, clients divide by them


def _dumps(value: object) -> bytes:
    data = orjson.dumps(value)
    for raw, escaped in _GO_ESCAPES:
        if raw in data:
            data = data.replace(raw, escaped)
    return data


def _line(value: object) -> bytes:
    return _dumps(value) + b"\n"


def _default_error(status: int, body: Mapping[str, Any]) -> str:
    if status == 404:
        return f'model "{body.get("model", "")}" not found, try pulling it first'
    if status == 503:
        return "server busy, please try again.  maximum pending requests exceeded"
    return {400: "invalid request", 401: "unauthorized", 403: "forbidden", 429: "too many requests"}.get(
        status, "internal server error" if status >= 500 else "bad request"
    )


def _fault_line(fault: Fault) -> bytes:
    return _line({"error": fault.message})


_WIRE = Wire(
    headers={"content-type": "application/x-ndjson"},
    keepalive=b"\n",
    malformed=b"{not json\n",
    truncated=b'{"model":"emulator-1","created_at":"2025-01-01T00:00:00Z","mess\n',
    error_event=_fault_line,
    inband_error=_fault_line,
)


class OllamaDialect:
    """Renders replies as Ollama ``/api/chat`` responses."""

    name = "ollama"
    path = re.compile(r".*/api/chat")

    def render(
        self, reply: Reply, request: RecordedRequest, body: Mapping[str, Any], ids: IdSequence
    ) -> Plan:
        """Answer the chat request ``body`` with ``reply``."""
        if reply.status != 200:
            error = (
                dict(reply.error)
                if reply.error is not None
                else {"error": _default_error(reply.status, body)}
            )
            return fixed_plan(
                reply.status, _dumps(error), reply.headers, reply.first_delay, defaults=_JSON_HEADERS
            )
        prompt_words = count_words(field_values(body.get("messages"), "content"))
        # Ollama has no response id; the completion's id is never sent.
        completion = Completion.build(reply, ids, id="", prompt_words=prompt_words)
        try:
            renderer = _Renderer(reply, completion)
        except ValueError as exc:
            return self.error(500, str(exc))
        return renderer.stream() if body.get("stream") is not False else renderer.whole()

    def refuse_key(self, request: RecordedRequest, api_key: str, ids: IdSequence) -> Plan | None:
        """Never: an Ollama server has no API keys to check (streamwrap's ``ollama_chat``
        sends one only for a proxy in front of it)."""
        return None

    def error(self, status: int, message: str, *, headers: Mapping[str, str] | None = None) -> Plan:
        """An Ollama error body for a request the emulator refuses."""
        return fixed_plan(status, _dumps({"error": message}), headers or {}, defaults=_JSON_HEADERS)


def _timestamp(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _Renderer:
    """Builds one completion's lines."""

    def __init__(self, reply: Reply, completion: Completion) -> None:
        self._reply = reply
        self._completion = completion
        # Parsed now so that arguments that are not a JSON object fail before anything is sent.
        self._calls = [
            {"function": {"name": call.name, "arguments": arguments_object(call)}}
            for call in completion.tool_calls
        ]

    def _messages(self) -> list[dict[str, Any]]:
        """The ``message`` of every content line, in stream order."""
        completion = self._completion
        messages: list[dict[str, Any]] = [
            {"role": "assistant", "content": "", "thinking": piece} for piece in completion.reasoning
        ]
        messages.extend({"role": "assistant", "content": piece} for piece in completion.text)
        messages.extend({"role": "assistant", "content": "", "tool_calls": [call]} for call in self._calls)
        return messages

    def _head(self, position: int) -> dict[str, Any]:
        # Lines are stamped as if each took the reply's delay to generate.
        at = self._completion.created + position * self._reply.delay
        return {"model": self._completion.model, "created_at": _timestamp(at)}

    def _done(self, message: dict[str, Any], position: int) -> dict[str, Any]:
        completion, reply = self._completion, self._reply
        prompt_eval = int(max(reply.first_delay, _MIN_STEP) * _NANOSECONDS)
        evaluation = int(max(reply.delay, _MIN_STEP) * max(position, 1) * _NANOSECONDS)
        load = int(_MIN_STEP * _NANOSECONDS)
        done: dict[str, Any] = {
            **self._head(position),
            "message": message,
            "done_reason": _DONE_REASONS.get(completion.finish_reason, completion.finish_reason),
            "done": True,
            "total_duration": load + prompt_eval + evaluation,
            "load_duration": load,
            "prompt_eval_count": completion.prompt_tokens,
            "prompt_eval_duration": prompt_eval,
            "eval_count": completion.completion_tokens,
            "eval_duration": evaluation,
        }
        if completion.raw_usage is not None:
            done.update(completion.raw_usage)
        return done

    def stream(self) -> Plan:
        """The NDJSON answer: content lines, then the ``done`` line."""
        messages = self._messages()
        content = [
            _line({**self._head(i), "message": message, "done": False}) for i, message in enumerate(messages)
        ]
        closing = [_line(self._done({"role": "assistant", "content": ""}, len(messages)))]
        return stream_plan(self._reply, _WIRE, content, closing)

    def whole(self) -> Plan:
        """The non-streaming answer: one object with the whole message."""
        completion = self._completion
        message: dict[str, Any] = {"role": "assistant", "content": "".join(completion.text)}
        if completion.reasoning:
            message["thinking"] = "".join(completion.reasoning)
        if self._calls:
            message["tool_calls"] = self._calls
        events = len(self._messages())
        return json_plan(
            self._reply, _dumps(self._done(message, events)), content_events=events, defaults=_JSON_HEADERS
        )


OLLAMA = OllamaDialect()
"""The dialect instance the route table uses."""
