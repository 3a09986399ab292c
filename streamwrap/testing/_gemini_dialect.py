"""The Gemini dialect: ``POST /v1beta/models/{model}:streamGenerateContent?alt=sse``.

``:streamGenerateContent?alt=sse`` streams ``data: {json}`` events with CRLF
line endings and no end marker; ``:generateContent`` (and
``:streamGenerateContent`` without ``alt=sse``, a JSON array of the chunks)
answers at once.  Each chunk holds one candidate whose parts are text, thought
text (``{"text": ..., "thought": true}``) or, all in one chunk,
``functionCall`` parts (the first with a ``thoughtSignature``).  The last
content chunk carries ``finishReason``; ``usageMetadata`` is restated
cumulatively on every chunk.  JSON is spaced like Google's (``": "`` after
keys), whole bodies indented by two.  Errors are
``{"error": {"code", "message", "status"}}``; mid-stream, that object is
sent as an ordinary data event (Gemini has no event types).  The key travels as
``x-goog-api-key: KEY`` (or ``?key=KEY``); a wrong one gets Google's HTTP 400
``API_KEY_INVALID`` (not a 401), a missing one its 403 ``PERMISSION_DENIED``.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

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

_END = b"\r\n\r\n"
_JSON_HEADERS = {"content-type": "application/json; charset=UTF-8"}
# A streaming request's error arrives as JSON under the content type of the stream it asked for.
_SSE_ERROR_HEADERS = {"content-type": "text/event-stream"}

# (status, message) of the default error body of common HTTP statuses, as Google sends them.
_DEFAULT_ERRORS: dict[int, tuple[str, str]] = {
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    401: ("UNAUTHENTICATED", "Request had invalid authentication credentials."),
    403: ("PERMISSION_DENIED", "The caller does not have permission"),
    404: ("NOT_FOUND", "Requested entity was not found."),
    429: ("RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
    500: ("INTERNAL", "An internal error has occurred. Please retry or report it."),
    503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
    504: ("DEADLINE_EXCEEDED", "Deadline expired before operation could complete."),
}
_STATUS_CODES = {status: code for code, (status, _) in _DEFAULT_ERRORS.items()}
# Google's answers to a request without a key and with a wrong one.
_NO_KEY: dict[str, Any] = {
    "code": 403,
    "message": (
        "Method doesn't allow unregistered callers (callers without established identity)."
        " Please use API Key or other form of API consumer identity to call this API."
    ),
    "status": "PERMISSION_DENIED",
}
_WRONG_KEY_MESSAGE = "API key not valid. Please pass a valid API key."
_WRONG_KEY: dict[str, Any] = {
    "code": 400,
    "message": _WRONG_KEY_MESSAGE,
    "status": "INVALID_ARGUMENT",
    "details": [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "API_KEY_INVALID",
            "domain": "googleapis.com",
            "metadata": {"service": "generativelanguage.googleapis.com"},
        },
        {
            "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
            "locale": "en-US",
            "message": _WRONG_KEY_MESSAGE,
        },
    ],
}
# OpenAI's finish reasons in Gemini's words; anything else is sent as scripted.
_FINISH_REASONS = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP", "content_filter": "SAFETY"}


def _dumps(value: object, *, indent: int | None = None) -> bytes:
    # Google spaces keys from values but not items from each other: {"a": 1,"b": 2}.
    separators = (",", ": ") if indent is None else None
    return json.dumps(value, ensure_ascii=False, separators=separators, indent=indent).encode()


def _error(status: int, message: str | None = None) -> dict[str, Any]:
    name, default = _DEFAULT_ERRORS.get(status) or _DEFAULT_ERRORS[500 if status >= 500 else 400]
    return {"code": status, "message": message or default, "status": name}


def _fault_error(fault: Fault) -> bytes:
    # OpenAI's generic default means "something broke": Google calls that INTERNAL.
    name = "INTERNAL" if fault.code in (None, "server_error") else fault.code
    error = {"code": _STATUS_CODES.get(name, 500), "message": fault.message, "status": name}
    return b"data: " + _dumps({"error": error}) + _END


_WIRE = Wire(
    headers={"content-type": "text/event-stream", "cache-control": "no-cache"},
    keepalive=b": keep-alive" + _END,
    malformed=b"data: {not json" + _END,
    truncated=b'data: {"candidates": [{"content": {"par' + _END,
    error_event=_fault_error,
    inband_error=_fault_error,
)


class GeminiDialect:
    """Renders replies as Gemini ``generateContent`` responses."""

    name = "gemini"
    path = re.compile(
        r".*/(?:v1beta|v1alpha|v1)/models/(?P<model>[^/:]+):(?P<method>streamGenerateContent|generateContent)"
    )

    def render(
        self, reply: Reply, request: RecordedRequest, body: Mapping[str, Any], ids: IdSequence
    ) -> Plan:
        """Answer the ``generateContent`` request ``body`` with ``reply``."""
        streaming, sse = self._mode(request)
        error_headers = _SSE_ERROR_HEADERS if sse else _JSON_HEADERS
        if reply.status != 200:
            error = (
                dict(reply.error) if reply.error is not None else self.default_error(reply.status, request)
            )
            body_bytes = _dumps({"error": error}, indent=2)
            return fixed_plan(
                reply.status, body_bytes, reply.headers, reply.first_delay, defaults=error_headers
            )
        completion = Completion.build(
            reply, ids, id=reply.id or ids.response_id(), prompt_words=_prompt_words(body)
        )
        try:
            renderer = self.renderer(completion)
        except ValueError as exc:
            return fixed_plan(
                500, _dumps({"error": _error(500, str(exc))}, indent=2), {}, defaults=error_headers
            )
        if sse:
            return renderer.stream(reply)
        return renderer.whole(reply, as_array=streaming)

    def default_error(self, status: int, request: RecordedRequest) -> dict[str, Any]:
        """The error object of a scripted ``Reply(status=...)`` without its own ``error``."""
        return _error(status)

    def renderer(self, completion: Completion) -> _Renderer:
        """What renders ``completion``'s chunks (``ValueError`` if it cannot be sent)."""
        return _Renderer(completion)

    def _mode(self, request: RecordedRequest) -> tuple[bool, bool]:
        """Whether ``request`` streams, and whether as SSE (``alt=sse``)."""
        target, _, query = request.path.partition("?")
        match = self.path.fullmatch(target)
        streaming = match is not None and match["method"] == "streamGenerateContent"
        return streaming, streaming and parse_qs(query).get("alt") == ["sse"]

    def refuse_key(self, request: RecordedRequest, api_key: str, ids: IdSequence) -> Plan | None:
        """Google's refusal unless ``request`` carries ``x-goog-api-key: <api_key>`` (or
        ``?key=<api_key>``)."""
        _, _, query = request.path.partition("?")
        sent = request.headers.get("x-goog-api-key") or next(iter(parse_qs(query).get("key", [])), None)
        if sent == api_key:
            return None
        error = _NO_KEY if not sent else _WRONG_KEY
        headers = _SSE_ERROR_HEADERS if self._mode(request)[1] else _JSON_HEADERS
        return fixed_plan(error["code"], _dumps({"error": error}, indent=2), {}, defaults=headers)

    def error(self, status: int, message: str, *, headers: Mapping[str, str] | None = None) -> Plan:
        """A Google error body for a request the emulator refuses."""
        return fixed_plan(
            status,
            _dumps({"error": _error(status, message)}, indent=2),
            headers or {},
            defaults=_JSON_HEADERS,
        )


def _prompt_words(body: Mapping[str, Any]) -> int:
    parts: list[object] = []
    for content in field_values(body.get("contents"), "parts"):
        parts.extend(field_values(content, "text"))
    instruction = body.get("systemInstruction")
    if isinstance(instruction, dict):
        parts.extend(field_values(instruction.get("parts"), "text"))
    return count_words(parts)


class _Renderer:
    """Builds one completion's chunks."""

    def __init__(
        self,
        completion: Completion,
        *,
        usage_fields: dict[str, Any] | None = None,
        fields: dict[str, Any] | None = None,
    ) -> None:
        self._completion = completion
        # With usage_fields, the chunks before the last carry only these in usageMetadata
        # (not the running count), and the last one the counts and these; fields are more
        # top-level fields of every chunk.
        self._usage_fields = usage_fields
        self._fields = fields or {}
        self._finish = _FINISH_REASONS.get(completion.finish_reason, completion.finish_reason)
        self._thoughts = completion.reasoning_tokens
        self._candidates = completion.completion_tokens - self._thoughts
        signature = base64.b64encode(f"emulator thought signature {completion.id}".encode()).decode()
        # Parsed now so that arguments that are not a JSON object fail before anything is sent.
        self._calls: list[dict[str, Any]] = [
            {"functionCall": {"name": call.name, "args": arguments_object(call)}}
            for call in completion.tool_calls
        ]
        if self._calls:
            self._calls[0]["thoughtSignature"] = signature

    def _usage(self, candidates: int, thoughts: int) -> dict[str, Any]:
        completion = self._completion
        if completion.raw_usage is not None:
            return completion.raw_usage
        prompt = completion.prompt_tokens
        usage: dict[str, Any] = {"promptTokenCount": prompt}
        if candidates:
            usage["candidatesTokenCount"] = candidates
        usage["totalTokenCount"] = prompt + candidates + thoughts
        usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": prompt}]
        if thoughts:
            usage["thoughtsTokenCount"] = thoughts
        return usage

    def _chunk(self, parts: list[dict[str, Any]], usage: dict[str, Any], *, final: bool) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
        if final:
            candidate["finishReason"] = self._finish
        candidate["index"] = 0
        if self._usage_fields is not None:
            usage = {**usage, **self._usage_fields} if final else self._usage_fields
        return {
            "candidates": [candidate],
            "usageMetadata": usage,
            "modelVersion": self._completion.model,
            **self._fields,
            "responseId": self._completion.id,
        }

    def _chunks(self) -> list[tuple[list[dict[str, Any]], dict[str, Any]]]:
        """Every content chunk's parts and usage, in stream order."""
        completion = self._completion
        out: list[tuple[list[dict[str, Any]], dict[str, Any]]] = []
        thoughts = 0
        for thoughts, piece in enumerate(completion.reasoning, 1):
            out.append(([{"text": piece, "thought": True}], self._usage(0, min(thoughts, self._thoughts))))
        for count, piece in enumerate(completion.text, 1):
            usage = self._usage(min(count, self._candidates), min(thoughts, self._thoughts))
            out.append(([{"text": piece}], usage))
        if self._calls:
            out.append((self._calls, self._usage(self._candidates, self._thoughts)))
        return out

    def stream(self, reply: Reply) -> Plan:
        """The SSE answer; the finish reason rides on the last content chunk."""
        chunks = self._chunks()
        final_usage = self._usage(self._candidates, self._thoughts)
        content = [_event(self._chunk(parts, usage, final=False)) for parts, usage in chunks]
        closing = [_event(self._chunk([{"text": ""}], final_usage, final=True))]
        merged = [_event(self._chunk(chunks[-1][0], final_usage, final=True))] if chunks else None
        return stream_plan(reply, _WIRE, content, closing, merged_closing=merged)

    def whole(self, reply: Reply, *, as_array: bool) -> Plan:
        """The answer in one body: one response, or (``as_array``) the array of stream chunks."""
        completion = self._completion
        final_usage = self._usage(self._candidates, self._thoughts)
        chunks = self._chunks()
        if as_array:
            last = len(chunks) - 1
            items = [
                self._chunk(parts, final_usage if i == last else usage, final=i == last)
                for i, (parts, usage) in enumerate(chunks)
            ]
            items = items or [self._chunk([{"text": ""}], final_usage, final=True)]
            body = b"[" + b"\r\n,\r\n".join(_dumps(item, indent=2) for item in items) + b"]"
        else:
            parts: list[dict[str, Any]] = []
            if completion.reasoning:
                parts.append({"text": "".join(completion.reasoning), "thought": True})
            if completion.text:
                parts.append({"text": "".join(completion.text)})
            parts.extend(self._calls)
            body = _dumps(self._chunk(parts or [{"text": ""}], final_usage, final=True), indent=2)
        return json_plan(reply, body, content_events=len(chunks), defaults=_JSON_HEADERS)


def _event(chunk: dict[str, Any]) -> bytes:
    return b"data: " + _dumps(chunk) + _END


GEMINI = GeminiDialect()
"""The dialect instance the route table uses."""
