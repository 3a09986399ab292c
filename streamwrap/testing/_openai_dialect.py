"""The OpenAI chat-completions dialect: ``POST .../chat/completions``.

Streams are ``data: {chunk}`` server-sent events ending in ``data: [DONE]``;
``"stream": false`` gets one ``chat.completion`` object; errors are
``{"error": {"message", "type", "param", "code"}}``.  The key travels as
``Authorization: Bearer KEY``; a missing or wrong one is answered with OpenAI's own
401 bodies.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from ._plan import KEEPALIVE_COMMENT, Plan
from ._recorded import RecordedRequest
from ._render import (
    Completion,
    IdSequence,
    Wire,
    count_words,
    field_values,
    fixed_plan,
    json_plan,
    stream_plan,
)
from ._script import Fault, Reply

_DONE = b"data: [DONE]\n\n"

# (message, type, code) for the default error body of common statuses, as OpenAI sends them.
_DEFAULT_ERRORS: dict[int, tuple[str, str, str | None]] = {
    400: ("Invalid request.", "invalid_request_error", None),
    401: ("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
    403: ("You are not allowed to access this resource.", "invalid_request_error", None),
    404: (
        "The model does not exist or you do not have access to it.",
        "invalid_request_error",
        "model_not_found",
    ),
    408: ("Request timed out.", "timeout_error", None),
    409: ("The request conflicts with another request.", "invalid_request_error", None),
    422: ("The request could not be processed.", "invalid_request_error", None),
    429: ("Rate limit reached for requests.", "requests", "rate_limit_exceeded"),
    500: ("The server had an error while processing your request.", "server_error", None),
    502: ("Bad gateway.", "server_error", None),
    503: ("The server is overloaded or not ready yet.", "server_error", None),
    504: ("Gateway timeout.", "server_error", None),
}


# OpenAI's answers to a request without a key and with a wrong one (the key masked as
# OpenAI masks it: its first 8 and last 4 characters).
_NO_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header"
    " using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank"
    " username) if you're accessing the API from your browser and are prompted for a username. You"
    " can obtain an API key from https://platform.openai.com/account/api-keys."
)
_WRONG_KEY = (
    "Incorrect API key provided: {key}. You can find your API key at"
    " https://platform.openai.com/account/api-keys."
)


def masked_key(key: str) -> str:
    """``key`` as OpenAI shows it in an error: ``"invalid-key-12345"`` → ``"invalid-*****2345"``.
    A key of 12 characters or fewer is all stars (the two ends would show all of it)."""
    if len(key) <= 12:
        return "*" * len(key)
    return key[:8] + "*" * (len(key) - 12) + key[-4:]


def error_object(
    message: str, type: str, *, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """An OpenAI-shaped error object (the value of the body's ``"error"`` key)."""
    return {"message": message, "type": type, "param": param, "code": code}


def default_error(status: int) -> dict[str, Any]:
    if status in _DEFAULT_ERRORS:
        message, type_, code = _DEFAULT_ERRORS[status]
    elif status >= 500:
        message, type_, code = _DEFAULT_ERRORS[500]
    else:
        message, type_, code = f"Request failed with status {status}.", "invalid_request_error", None
    return error_object(message, type_, code=code)


def error_plan(
    status: int, error: Mapping[str, Any], headers: Mapping[str, str], head_delay: float = 0.0
) -> Plan:
    return fixed_plan(status, orjson.dumps({"error": dict(error)}), headers, head_delay)


def _fault_error(fault: Fault) -> bytes:
    error = {"message": fault.message, "type": fault.error_type, "code": fault.code}
    return b"data: " + orjson.dumps({"error": error}) + b"\n\n"


_WIRE = Wire(
    headers={"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"},
    keepalive=KEEPALIVE_COMMENT,
    malformed=b"data: {not json\n\n",
    truncated=b'data: {"id": "chatcmpl-emu", "choi\n\n',
    error_event=lambda fault: b"event: error\n" + _fault_error(fault),
    inband_error=_fault_error,
)


class OpenAIDialect:
    """Renders replies as OpenAI chat completions."""

    name = "openai"
    path = re.compile(r".*/chat/completions")

    def render(
        self, reply: Reply, request: RecordedRequest, body: Mapping[str, Any], ids: IdSequence
    ) -> Plan:
        """Answer the chat-completions request ``body`` with ``reply``."""
        if reply.reject_stream_options and "stream_options" in body:
            error = error_object(
                "Unrecognized request argument supplied: stream_options",
                "invalid_request_error",
                param="stream_options",
            )
            return error_plan(400, error, reply.headers, reply.first_delay)
        if reply.status != 200:
            scripted = reply.error if reply.error is not None else self.default_error(reply.status)
            return error_plan(reply.status, scripted, reply.headers, reply.first_delay)
        prompt_words = count_words(field_values(body.get("messages"), "content"))
        completion = Completion.build(
            reply, ids, id=reply.id or ids.completion_id(), prompt_words=prompt_words
        )
        if body.get("stream") is True:
            send_usage = reply.stream_usage if reply.stream_usage is not None else _asks_for_usage(body)
            return self.stream(reply, completion, send_usage=send_usage)
        return _json(reply, completion)

    # A server that speaks this dialect with quirks (Azure) overrides these two.

    def default_error(self, status: int) -> dict[str, Any]:
        """The error object of a reply scripted with ``status`` and no ``error``."""
        return default_error(status)

    def stream(self, reply: Reply, completion: Completion, *, send_usage: bool) -> Plan:
        """The SSE stream of ``completion``."""
        return stream(reply, completion, send_usage=send_usage)

    def refuse_key(self, request: RecordedRequest, api_key: str, ids: IdSequence) -> Plan | None:
        """OpenAI's 401 unless ``request`` carries ``Authorization: Bearer <api_key>``."""
        sent = request.bearer_token
        if sent == api_key:
            return None
        if sent is None:
            error = error_object(_NO_KEY, "invalid_request_error")
        else:
            message = _WRONG_KEY.format(key=masked_key(sent))
            error = error_object(message, "invalid_request_error", code="invalid_api_key")
        return error_plan(401, error, {})

    def error(self, status: int, message: str, *, headers: Mapping[str, str] | None = None) -> Plan:
        """An OpenAI error body for a request the emulator refuses."""
        return error_plan(status, error_object(message, "invalid_request_error"), headers or {})


def _asks_for_usage(body: Mapping[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def _usage(completion: Completion) -> dict[str, Any]:
    if completion.raw_usage is not None:
        return completion.raw_usage
    return {
        "prompt_tokens": completion.prompt_tokens,
        "completion_tokens": completion.completion_tokens,
        "total_tokens": completion.prompt_tokens + completion.completion_tokens,
    }


def _deltas(completion: Completion, reasoning_field: str) -> list[dict[str, Any]]:
    """The ``delta`` of every content chunk, in stream order."""
    deltas: list[dict[str, Any]] = [{reasoning_field: piece} for piece in completion.reasoning]
    deltas.extend({"content": piece} for piece in completion.text)
    for index, call in enumerate(completion.tool_calls):
        head = {
            "index": index,
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        deltas.append({"tool_calls": [head]})
        deltas.extend(
            {"tool_calls": [{"index": index, "function": {"arguments": f}}]} for f in call.fragments
        )
    return deltas


class _ChunkEncoder:
    """Encodes one completion's ``data:`` events around pre-encoded constant parts.

    Only the ``delta`` differs between chunks, so it is the only part that goes
    through ``orjson`` per chunk.
    """

    __slots__ = ("_finish_extra", "_head", "_prefix", "_tail", "_usage_null")

    def __init__(
        self,
        completion: Completion,
        *,
        usage_null: bool,
        choice_extra: bytes = b"",
        finish_extra: bytes = b"",
    ) -> None:
        common = orjson.dumps(
            {
                "id": completion.id,
                "object": "chat.completion.chunk",
                "created": completion.created,
                "model": completion.model,
            }
        )
        self._head = b"data: " + common[:-1]  # without the closing brace, so fields can follow
        self._prefix = self._head + b',"choices":[{"index":0,"delta":'
        # OpenAI marks every chunk with "usage":null when a usage chunk will follow.
        self._usage_null = b',"usage":null' if usage_null else b""
        # Members a server adds to each choice (Azure's content_filter_results), as JSON
        # text that starts with a comma: ``choice_extra`` on content chunks, ``finish_extra``
        # on the finish chunk.
        self._tail = (
            b',"logprobs":null,"finish_reason":null' + choice_extra + b"}]" + self._usage_null + b"}\n\n"
        )
        self._finish_extra = finish_extra

    def delta(self, delta: Mapping[str, Any]) -> bytes:
        return self._prefix + orjson.dumps(delta) + self._tail

    def finish(self, delta: Mapping[str, Any], reason: str) -> bytes:
        return (
            self._prefix
            + orjson.dumps(delta)
            + b',"logprobs":null,"finish_reason":'
            + orjson.dumps(reason)
            + self._finish_extra
            + b"}]"
            + self._usage_null
            + b"}\n\n"
        )

    def usage(self, usage: Mapping[str, Any]) -> bytes:
        return self._head + b',"choices":[],"usage":' + orjson.dumps(usage) + b"}\n\n"


def stream(
    reply: Reply,
    completion: Completion,
    *,
    send_usage: bool,
    opening: Sequence[bytes] = (),
    choice_extra: bytes = b"",
    finish_extra: bytes = b"",
) -> Plan:
    """The SSE stream of ``completion``; ``opening`` and the ``*_extra`` members are the
    additions of a server that speaks this dialect with quirks (see ``_azure_dialect``)."""
    encoder = _ChunkEncoder(
        completion, usage_null=send_usage, choice_extra=choice_extra, finish_extra=finish_extra
    )
    deltas = _deltas(completion, reply.reasoning_field)
    if deltas:
        deltas[0] = {"role": "assistant", **deltas[0]}
    content = [encoder.delta(delta) for delta in deltas]
    # With no content at all, the finish chunk is the first one and carries the role.
    closing = [encoder.finish({} if deltas else {"role": "assistant"}, completion.finish_reason)]
    if send_usage:
        closing.append(encoder.usage(_usage(completion)))
    if reply.done:
        closing.append(_DONE)
    return stream_plan(reply, _WIRE, content, closing, opening=opening)


def _json(reply: Reply, completion: Completion) -> Plan:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(completion.text) if completion.text or not completion.tool_calls else None,
    }
    if completion.reasoning:
        message[reply.reasoning_field] = "".join(completion.reasoning)
    if completion.tool_calls:
        message["tool_calls"] = [
            {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
            for call in completion.tool_calls
        ]
    body = orjson.dumps(
        {
            "id": completion.id,
            "object": "chat.completion",
            "created": completion.created,
            "model": completion.model,
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": completion.finish_reason}
            ],
            "usage": _usage(completion),
        }
    )
    content_events = len(_deltas(completion, reply.reasoning_field))
    return json_plan(reply, body, content_events=content_events)


OPENAI = OpenAIDialect()
"""The dialect instance the route table uses."""
