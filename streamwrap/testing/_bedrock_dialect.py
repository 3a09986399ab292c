"""The Amazon Bedrock dialect: ``POST /model/{modelId}/converse-stream`` (and ``/converse``),
and ``/model/{modelId}/invoke-with-response-stream`` (and ``/invoke``) for Claude.

Streams are real AWS event streams (``application/vnd.amazon.eventstream``: binary
messages with headers and CRC32 checksums, framed by ``_eventstream``), as boto3's and
botocore's readers read them. ConverseStream's events, in order: ``messageStart`` (sent with the headers); the
reasoning as one block (``reasoningContent.text`` deltas, then a ``signature`` delta, no
``contentBlockStart``, as Bedrock sends it), the text as the next block (``text``
deltas), each tool call as a block opened by ``contentBlockStart`` (``toolUse`` id and
name) with its input fragments; each block closed by ``contentBlockStop``; then
``messageStop`` (the stop reason) and ``metadata`` (usage, latency). Every payload carries
a ``"p"`` padding field, as Bedrock's do. Without ``-stream``, one Converse response body.

InvokeModelWithResponseStream carries Anthropic's Messages events (rendered by the
Anthropic dialect), each base64 in the ``bytes`` of a ``chunk`` event; ``message_stop``
adds ``amazon-bedrock-invocationMetrics``. Without ``-with-response-stream``, Anthropic's
``message`` body.

OpenAI's finish reasons are translated (``stop`` → ``end_turn``, ``length`` →
``max_tokens``, ``tool_calls`` → ``tool_use``, ``content_filter`` → ``content_filtered``).
A raw usage mapping is sent as Converse's ``usage`` object.

Errors are Bedrock's: a JSON body ``{"message"}`` with the error's type in the
``x-amzn-ErrorType`` header (``ValidationException`` for 400, ``AccessDeniedException``
403, ``ResourceNotFoundException`` 404, ``ThrottlingException`` 429,
``InternalServerException`` 500, ``ServiceUnavailableException`` 503); a scripted error
object's ``type`` (or ``code``) names another. Mid-stream, a fault's error is an
exception message (``:message-type: exception``, ``:exception-type``: the fault's code
when it is one of Bedrock's, such as ``throttlingException``, else
``modelStreamErrorException``). ``Fault.malformed_line_after`` sends a message whose
checksum is wrong, ``Fault.truncated_json_after`` the first half of a message, then ends
the body. A paused stream sends nothing (Bedrock has no keep-alive event). With a
required key, a request must carry ``Authorization: Bearer KEY`` (a Bedrock API key) or
a SigV4 signature whose access key id is KEY (the signature itself is not checked);
otherwise it gets Bedrock's 403.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from typing import Any

from ._anthropic_dialect import ANTHROPIC
from ._eventstream import EVENTSTREAM_CONTENT_TYPE, eventstream_message
from ._plan import Plan
from ._recorded import RecordedRequest
from ._render import (
    Completion,
    IdSequence,
    Wire,
    arguments_object,
    count_words,
    fixed_plan,
    json_plan,
    stream_plan,
)
from ._script import Fault, Reply

_JSON_HEADERS = {"content-type": "application/json"}
_STREAM_HEADERS = {"content-type": EVENTSTREAM_CONTENT_TYPE}
_EVENT_HEADERS = {":content-type": "application/json", ":message-type": "event"}

# The error type of each HTTP status, with a message Bedrock sends for it.
_DEFAULT_ERRORS: dict[int, tuple[str, str]] = {
    400: ("ValidationException", "The provided request is not valid"),
    # (Bedrock answers a bad signature or key with a 403; a scripted 401 says the same.)
    401: ("UnrecognizedClientException", "The security token included in the request is invalid."),
    403: ("AccessDeniedException", "You don't have access to the model with the specified model ID."),
    404: ("ResourceNotFoundException", "The requested resource could not be found."),
    408: ("ModelTimeoutException", "The model took too long to respond."),
    424: ("ModelErrorException", "The model failed to process the request."),
    429: ("ThrottlingException", "Too many requests, please wait before trying again."),
    500: ("InternalServerException", "The server encountered an internal error."),
    503: ("ServiceUnavailableException", "The service is temporarily unavailable."),
}
_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "content_filtered",
}
# The exception types of ConverseStream's events (a fault's code names one of them).
_STREAM_EXCEPTIONS = frozenset(
    (
        "internalServerException",
        "modelStreamErrorException",
        "validationException",
        "throttlingException",
        "serviceUnavailableException",
    )
)
_PATH = re.compile(
    r"(?:.*/)?model/(?P<model>[^/]+)/(?P<api>converse-stream|converse|invoke-with-response-stream|invoke)"
)
_PADDING = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def _dumps(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _event(kind: str, payload: dict[str, Any], n: int = 0) -> bytes:
    """One event message, its payload padded as Bedrock pads it (a varying ``p``)."""
    payload = {**payload, "p": _PADDING[: 1 + n % len(_PADDING)]}
    return eventstream_message({":event-type": kind, **_EVENT_HEADERS}, _dumps(payload))


def _exception(kind: str, message: str) -> bytes:
    headers = {":exception-type": kind, ":content-type": "application/json", ":message-type": "exception"}
    return eventstream_message(headers, _dumps({"message": message}))


def _fault_exception(fault: Fault) -> bytes:
    kind = fault.code if fault.code in _STREAM_EXCEPTIONS else "modelStreamErrorException"
    return _exception(kind, fault.message)


def _corrupt(frame: bytes) -> bytes:
    """``frame`` with its last byte (its message checksum's) changed."""
    return frame[:-1] + bytes([frame[-1] ^ 0xFF])


_TRUNCATED = _event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "cut"}})

_WIRE = Wire(
    headers=_STREAM_HEADERS,
    keepalive=b"",  # (Bedrock sends none: a pause is silence)
    malformed=_corrupt(_event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "x"}})),
    truncated=_TRUNCATED[: len(_TRUNCATED) // 2],
    error_event=_fault_exception,
    inband_error=_fault_exception,
)


def _error_headers(kind: str) -> dict[str, str]:
    # (Bedrock appends its service's namespace after a colon; clients read the part before.)
    return {
        **_JSON_HEADERS,
        "x-amzn-errortype": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/",
    }


def _error_plan(
    status: int,
    message: str | None = None,
    kind: str | None = None,
    extra: Mapping[str, str] | None = None,
    head_delay: float = 0.0,
) -> Plan:
    default_kind, default_message = (
        _DEFAULT_ERRORS.get(status) or _DEFAULT_ERRORS[500 if status >= 500 else 400]
    )
    body = _dumps({"message": message or default_message})
    return fixed_plan(status, body, extra or {}, head_delay, defaults=_error_headers(kind or default_kind))


class BedrockDialect:
    """Renders replies as Bedrock Converse (or InvokeModel) responses."""

    name = "bedrock"
    path = _PATH

    def render(
        self, reply: Reply, request: RecordedRequest, body: Mapping[str, Any], ids: IdSequence
    ) -> Plan:
        """Answer the request ``body`` (Converse's, or Anthropic's for invoke) with ``reply``."""
        match = _PATH.fullmatch(request.path.split("?", 1)[0])
        assert match is not None  # (routed here by the path)
        api = match["api"]
        if reply.status != 200:
            error = dict(reply.error) if reply.error is not None else {}
            kind = error.get("type") or error.get("code")
            return _error_plan(
                reply.status,
                error.get("message"),
                kind if isinstance(kind, str) else None,
                reply.headers,
                reply.first_delay,
            )
        if api.startswith("invoke"):
            return _invoke(reply, request, body, ids, stream=api == "invoke-with-response-stream")
        completion = Completion.build(
            reply, ids, id=reply.id or ids.request_id(), prompt_words=_prompt_words(body)
        )
        try:
            renderer = _Renderer(completion)
        except ValueError as exc:
            return _error_plan(500, str(exc))
        if api == "converse-stream":
            return renderer.stream(reply)
        return renderer.whole(reply)

    def refuse_key(self, request: RecordedRequest, api_key: str, ids: IdSequence) -> Plan | None:
        """Bedrock's 403 unless ``request`` carries ``Authorization: Bearer <api_key>`` or a
        SigV4 signature with the access key id ``<api_key>``."""
        authorization = request.headers.get("authorization", "")
        if authorization[:7].lower() == "bearer ":
            if authorization[7:] == api_key:
                return None
            return _error_plan(
                403,
                "Invalid API Key format: Must start with pre-defined prefix",
                "UnrecognizedClientException",
            )
        signed = re.match(r"AWS4-HMAC-SHA256 Credential=([^/,]+)/", authorization)
        if signed is not None:
            if signed[1] == api_key:
                return None
            return _error_plan(
                403, "The security token included in the request is invalid.", "UnrecognizedClientException"
            )
        return _error_plan(403, "Missing Authentication Token", "MissingAuthenticationTokenException")

    def error(self, status: int, message: str, *, headers: Mapping[str, str] | None = None) -> Plan:
        """A Bedrock error body for a request the emulator refuses."""
        return _error_plan(status, message, None, headers)


def _prompt_words(body: Mapping[str, Any]) -> int:
    parts: list[object] = []
    for message in body.get("messages") or ():
        if isinstance(message, dict):
            parts.append(message.get("content"))
    system = body.get("system")
    parts.append(system if isinstance(system, list) else [])
    return count_words(parts)


class _Renderer:
    """Builds one completion's ConverseStream events."""

    def __init__(self, completion: Completion) -> None:
        self._completion = completion
        self._stop = _STOP_REASONS.get(completion.finish_reason, completion.finish_reason)
        self._signature = base64.b64encode(f"emulator reasoning signature {completion.id}".encode()).decode()
        # Parsed now so that arguments that are not a JSON object fail before anything is sent.
        self._inputs = [arguments_object(call) for call in completion.tool_calls]

    def _usage(self) -> dict[str, Any]:
        completion = self._completion
        if completion.raw_usage is not None:
            return completion.raw_usage
        return {
            "inputTokens": completion.prompt_tokens,
            "outputTokens": completion.completion_tokens,
            "totalTokens": completion.prompt_tokens + completion.completion_tokens,
        }

    def _content(self) -> list[bytes]:
        """One write per content chunk: a block's start rides with its first chunk, its
        stop with its last, so a fault after ``n`` chunks lands between two chunks."""
        completion = self._completion
        out: list[bytes] = []
        index = 0
        n = 0

        def block(start: bytes, deltas: list[dict[str, Any]], tail: list[dict[str, Any]]) -> None:
            nonlocal index, n
            events = []
            for delta in deltas:
                n += 1
                events.append(_event("contentBlockDelta", {"contentBlockIndex": index, "delta": delta}, n))
            events = events or [b""]
            events[0] = start + events[0]
            closing = b"".join(
                _event("contentBlockDelta", {"contentBlockIndex": index, "delta": d}, n) for d in tail
            )
            events[-1] += closing + _event("contentBlockStop", {"contentBlockIndex": index}, n)
            out.extend(events)
            index += 1

        if completion.reasoning:
            block(
                b"",
                [{"reasoningContent": {"text": piece}} for piece in completion.reasoning],
                [{"reasoningContent": {"signature": self._signature}}],
            )
        if completion.text:
            block(b"", [{"text": piece} for piece in completion.text], [])
        for call in completion.tool_calls:
            start = _event(
                "contentBlockStart",
                {"contentBlockIndex": index, "start": {"toolUse": {"toolUseId": call.id, "name": call.name}}},
            )
            block(start, [{"toolUse": {"input": f}} for f in call.fragments], [])
        return out

    def _closing(self) -> list[bytes]:
        metadata = {"usage": self._usage(), "metrics": {"latencyMs": 1}}
        return [_event("messageStop", {"stopReason": self._stop}) + _event("metadata", metadata)]

    def stream(self, reply: Reply) -> Plan:
        """The event stream answer: ``messageStart`` goes out with the headers (before any
        pause: it is not content), except when the scripted error comes before any
        content, which is then the stream's first message, as when Bedrock throttles a
        request it has accepted."""
        fault = reply.fault
        refused = fault is not None and fault.after == 0 and fault.kind in ("error_event", "inband_error")
        opening = [] if refused else [_event("messageStart", {"role": "assistant"})]
        plan = stream_plan(reply, _WIRE, self._content(), self._closing(), opening=opening)
        return _with_request_id(plan, self._completion.id)

    def whole(self, reply: Reply) -> Plan:
        """The Converse answer, one JSON object."""
        completion = self._completion
        blocks: list[dict[str, Any]] = []
        if completion.reasoning:
            text = "".join(completion.reasoning)
            blocks.append(
                {"reasoningContent": {"reasoningText": {"text": text, "signature": self._signature}}}
            )
        if completion.text:
            blocks.append({"text": "".join(completion.text)})
        for call, arguments in zip(completion.tool_calls, self._inputs, strict=True):
            blocks.append({"toolUse": {"toolUseId": call.id, "name": call.name, "input": arguments}})
        message = {
            "output": {"message": {"role": "assistant", "content": blocks}},
            "stopReason": self._stop,
            "usage": self._usage(),
            "metrics": {"latencyMs": 1},
        }
        content_events = len(completion.reasoning) + len(completion.text) + len(completion.tool_calls)
        plan = json_plan(reply, _dumps(message), content_events=content_events, defaults=_JSON_HEADERS)
        return _with_request_id(plan, completion.id)


def _with_request_id(plan: Plan, request_id: str) -> Plan:
    return Plan(
        plan.status,
        [*plan.headers, ("x-amzn-requestid", request_id)],
        plan.body,
        plan.head_delay,
        plan.byte_delay,
    )


# -- InvokeModelWithResponseStream -----------------------------------------------------------


def _invoke(
    reply: Reply, request: RecordedRequest, body: Mapping[str, Any], ids: IdSequence, *, stream: bool
) -> Plan:
    """Anthropic's answer (the Anthropic dialect's), its SSE events re-framed as chunks."""
    anthropic_body = {**body, "stream": stream}
    plan = ANTHROPIC.render(reply, request, anthropic_body, ids)
    if not stream or plan.status != 200:
        return plan
    headers = [
        (k, EVENTSTREAM_CONTENT_TYPE if k == "content-type" else v)
        for k, v in plan.headers
        if k != "cache-control"
    ]
    chunker = _Chunker()
    steps = [chunker.frames(step) if isinstance(step, bytes) else step for step in plan.body]
    return Plan(plan.status, headers, steps, plan.head_delay, plan.byte_delay)


_SSE_DATA = re.compile(rb"^data: ?(.*)$", re.MULTILINE)


class _Chunker:
    """Re-frames one stream's Anthropic SSE writes as Bedrock's chunk messages, counting the
    tokens Anthropic's events report for the invocation metrics of ``message_stop``."""

    def __init__(self) -> None:
        self._input = 0
        self._output = 0

    def frames(self, sse: bytes) -> bytes:
        """The events of one write: each ``data`` a chunk (an ``error`` event an exception
        message). Data that is not JSON (the faults' malformed and cut events) is framed
        as it is, so that the client finds it broken inside its chunk."""
        out: list[bytes] = []
        for match in _SSE_DATA.finditer(sse):
            data = match[1]
            try:
                event = json.loads(data)
            except ValueError:
                event = None
            if isinstance(event, dict):
                if event.get("type") == "error":
                    error = event.get("error") or {}
                    kind = error.get("type")
                    kind = kind if kind in _STREAM_EXCEPTIONS else "modelStreamErrorException"
                    out.append(_exception(kind, str(error.get("message", ""))))
                    continue
                data = self._count(event, data)
            payload = _dumps({"bytes": base64.b64encode(data).decode(), "p": _PADDING[:8]})
            out.append(eventstream_message({":event-type": "chunk", **_EVENT_HEADERS}, payload))
        return b"".join(out)

    def _count(self, event: dict[str, Any], data: bytes) -> bytes:
        kind = event.get("type")
        usage = (event.get("message") or {}).get("usage") if kind == "message_start" else event.get("usage")
        if isinstance(usage, dict):
            self._input = usage.get("input_tokens", self._input)
            self._output = usage.get("output_tokens", self._output)
        if kind != "message_stop":
            return data
        event["amazon-bedrock-invocationMetrics"] = {
            "inputTokenCount": self._input,
            "outputTokenCount": self._output,
            "invocationLatency": 1,
            "firstByteLatency": 1,
        }
        return _dumps(event)


BEDROCK = BedrockDialect()
"""The dialect instance the route table uses."""
