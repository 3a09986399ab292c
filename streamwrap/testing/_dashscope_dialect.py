"""The DashScope native dialect: ``POST /api/v1/services/aigc/text-generation/generation``.

Also answers ``.../multimodal-generation/generation``, where message content
is a list of ``{"text": ...}`` parts.  A request streams when it sends
``X-DashScope-SSE: enable`` or ``Accept: text/event-stream``.  Each frame is::

    id:1
    event:result
    :HTTP_STATUS/200
    data:{"output":{...},"usage":{...},"request_id":"..."}

with no end marker.  ``parameters.result_format`` picks the output shape:
``"text"`` (the default) puts the text in ``output.text`` with
``finish_reason`` the string ``"null"`` until the last frame and carries
neither reasoning nor tool calls; ``"message"`` puts ``content``,
``reasoning_content`` and ``tool_calls`` in ``output.choices[0].message``,
tool calls by index with continuation fragments carrying ``id: ""``.  Unless
``parameters.incremental_output`` is true every frame restates everything so
far (the text, the reasoning, each tool call's arguments), as DashScope does.
Usage is restated cumulatively on every frame.  Errors are
``{"code", "message", "request_id"}``, mid-stream as an ``event:error`` frame.  The key
travels as ``Authorization: Bearer KEY``; a missing or wrong one gets HTTP 401
``InvalidApiKey`` ("No API-key provided." / "Invalid API-key provided.").
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
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

_RESULT = b"event:result\n:HTTP_STATUS/200\ndata:"
_END = b"\n\n"
# A refusal happens before any request id is handed out.
_NO_REQUEST_ID = "00000000-0000-4000-8000-000000000000"

# (code, message) for the default error body of common statuses, as DashScope sends them.
_DEFAULT_ERRORS: dict[int, tuple[str, str]] = {
    400: ("InvalidParameter", "The request is invalid."),
    401: ("InvalidApiKey", "Invalid API-key provided."),
    403: ("AccessDenied", "Access denied."),
    404: ("ModelNotFound", "Model not exist."),
    408: ("RequestTimeOut", "Request timed out, please try again later."),
    429: ("Throttling.RateQuota", "Requests rate limit exceeded, please try again later."),
    500: (
        "InternalError",
        "An internal error has occured, please try again later or contact service support.",
    ),
    503: ("ServiceUnavailable", "The service is temporarily unavailable, please try again later."),
}
# The HTTP status a mid-stream error frame announces for a code (unknown codes: 500).
_CODE_STATUS = {code: status for status, (code, _) in _DEFAULT_ERRORS.items()} | {"DataInspectionFailed": 400}


def _default_error(status: int, request_id: str) -> dict[str, Any]:
    if status in _DEFAULT_ERRORS:
        code, message = _DEFAULT_ERRORS[status]
    elif status >= 500:
        code, message = _DEFAULT_ERRORS[500]
    else:
        code, message = _DEFAULT_ERRORS[400]
    return {"code": code, "message": message, "request_id": request_id}


def _fault_code(fault: Fault) -> str:
    # OpenAI's generic default means "something broke": DashScope calls that InternalError.
    return "InternalError" if fault.code in (None, "server_error") else fault.code


def _wire(request_id: str) -> Wire:
    def error_body(fault: Fault) -> bytes:
        return orjson.dumps({"code": _fault_code(fault), "message": fault.message, "request_id": request_id})

    def error_event(fault: Fault) -> bytes:
        status = _CODE_STATUS.get(_fault_code(fault), 500)
        return b"event:error\n:HTTP_STATUS/%d\ndata:" % status + error_body(fault) + _END

    return Wire(
        headers={
            "content-type": "text/event-stream;charset=UTF-8",
            "cache-control": "no-cache",
            "x-request-id": request_id,
        },
        keepalive=KEEPALIVE_COMMENT,
        malformed=_RESULT + b"{not json" + _END,
        truncated=_RESULT + b'{"output":{"choi' + _END,
        error_event=error_event,
        # Without the error event type, only the JSON tells it is an error.
        inband_error=lambda fault: _RESULT + error_body(fault) + _END,
        numbered=b"id:%d\n",
    )


@dataclass(frozen=True, slots=True)
class _Format:
    """What the request asked the output to look like."""

    message: bool  # result_format "message" (else "text")
    incremental: bool
    parts: bool  # multimodal: message content is a list of {"text"} parts


@dataclass(frozen=True, slots=True)
class _Frame:
    """One content frame before encoding: its output and the counts sent so far."""

    output: dict[str, Any]
    tokens: int  # content chunks (reasoning and text) so far
    reasoning: int  # reasoning chunks so far


class DashScopeDialect:
    """Renders replies in DashScope's native text-generation format."""

    name = "dashscope"
    path = re.compile(r".*/services/aigc/(?P<kind>text|multimodal)-generation/generation")

    def render(
        self, reply: Reply, request: RecordedRequest, body: Mapping[str, Any], ids: IdSequence
    ) -> Plan:
        """Answer the generation request ``body`` with ``reply``."""
        request_id = reply.id or ids.request_id()
        if reply.status != 200:
            error = dict(reply.error) if reply.error is not None else _default_error(reply.status, request_id)
            return fixed_plan(reply.status, orjson.dumps(error), reply.headers, reply.first_delay)
        input_ = body.get("input")
        input_ = input_ if isinstance(input_, dict) else {}
        prompt_words = count_words([*field_values(input_.get("messages"), "content"), input_.get("prompt")])
        completion = Completion.build(reply, ids, id=request_id, prompt_words=prompt_words)
        parameters = body.get("parameters")
        parameters = parameters if isinstance(parameters, dict) else {}
        match = self.path.fullmatch(request.path.split("?", 1)[0])
        multimodal = match is not None and match["kind"] == "multimodal"
        form = _Format(
            message=multimodal or parameters.get("result_format") == "message",
            incremental=parameters.get("incremental_output") is True,
            parts=multimodal,
        )
        renderer = _Renderer(completion, form)
        return renderer.stream(reply) if _wants_stream(request.headers) else renderer.json(reply)

    def refuse_key(self, request: RecordedRequest, api_key: str, ids: IdSequence) -> Plan | None:
        """DashScope's 401 unless ``request`` carries ``Authorization: Bearer <api_key>``."""
        sent = request.bearer_token
        if sent == api_key:
            return None
        message = "No API-key provided." if sent is None else "Invalid API-key provided."
        request_id = ids.request_id()
        body = {"code": "InvalidApiKey", "message": message, "request_id": request_id}
        return fixed_plan(401, orjson.dumps(body), {"x-request-id": request_id})

    def error(self, status: int, message: str, *, headers: Mapping[str, str] | None = None) -> Plan:
        """A DashScope error body for a request the emulator refuses."""
        code = _default_error(status, _NO_REQUEST_ID)["code"]
        body = {"code": code, "message": message, "request_id": _NO_REQUEST_ID}
        return fixed_plan(status, orjson.dumps(body), headers or {})


def _wants_stream(headers: Mapping[str, str]) -> bool:
    return (
        headers.get("x-dashscope-sse", "").strip().lower() == "enable"
        or "text/event-stream" in headers.get("accept", "").lower()
    )


class _Renderer:
    """Builds one completion's outputs in the requested format."""

    def __init__(self, completion: Completion, form: _Format) -> None:
        self._completion = completion
        self._form = form
        self._has_reasoning = form.message and bool(completion.reasoning)

    def frames(self) -> list[_Frame]:
        """Every content frame, in stream order (the text format carries only the text)."""
        if not self._form.message:
            return self._text_frames()
        return self._message_frames()

    def _text_frames(self) -> list[_Frame]:
        frames, so_far = [], ""
        for count, piece in enumerate(self._completion.text, 1):
            so_far += piece
            text = piece if self._form.incremental else so_far
            frames.append(_Frame({"finish_reason": "null", "text": text}, count, 0))
        return frames

    def _message_frames(self) -> list[_Frame]:
        completion = self._completion
        frames: list[_Frame] = []
        text = reasoning = ""
        tokens = thought = 0
        calls: list[dict[str, Any]] = []  # every call so far, arguments so far

        def add(new_text: str, new_reasoning: str, new_calls: list[dict[str, Any]]) -> None:
            # Incremental frames carry what is new; the others restate everything so far.
            if self._form.incremental:
                message = self._message(new_text, new_reasoning, new_calls)
            else:
                message = self._message(text, reasoning, calls)
            frames.append(_Frame(self._choice(message, "null"), tokens, thought))

        for piece in completion.reasoning:
            reasoning, tokens, thought = reasoning + piece, tokens + 1, thought + 1
            add("", piece, [])
        for piece in completion.text:
            text, tokens = text + piece, tokens + 1
            add(piece, "", [])
        for index, call in enumerate(completion.tool_calls):
            arguments = ""
            for position, fragment in enumerate(call.fragments or [""]):
                arguments += fragment
                function = {"name": call.name, "arguments": arguments}
                calls = [
                    *calls[:index],
                    {"index": index, "id": call.id, "type": "function", "function": function},
                ]
                # Only a call's first fragment names it; the others carry an empty id.
                head = position == 0
                delta_function = (
                    {"name": call.name, "arguments": fragment} if head else {"arguments": fragment}
                )
                delta = {
                    "index": index,
                    "id": call.id if head else "",
                    "type": "function",
                    "function": delta_function,
                }
                add("", "", [delta])
        return frames

    def _message(self, content: str, reasoning: str, tool_calls: list[dict[str, Any]]) -> dict[str, Any]:
        parts = [{"text": content}] if content else []
        message: dict[str, Any] = {"content": parts if self._form.parts else content}
        if self._has_reasoning:
            message["reasoning_content"] = reasoning
        if tool_calls:
            message["tool_calls"] = tool_calls
        message["role"] = "assistant"
        return message

    def _choice(self, message: dict[str, Any], finish_reason: str) -> dict[str, Any]:
        return {"choices": [{"message": message, "index": 0, "finish_reason": finish_reason}]}

    def final_output(self, *, cumulative: bool) -> dict[str, Any]:
        """The output of the frame that carries the finish reason."""
        completion = self._completion
        finish = completion.finish_reason
        text = "".join(completion.text) if cumulative else ""
        if not self._form.message:
            return {"finish_reason": finish, "text": text}
        reasoning = "".join(completion.reasoning) if cumulative else ""
        calls = (
            [
                {
                    "index": i,
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                }
                for i, c in enumerate(completion.tool_calls)
            ]
            if cumulative
            else []
        )
        return self._choice(self._message(text, reasoning, calls), finish)

    def _finished(self, frame: _Frame) -> dict[str, Any]:
        """``frame``'s output carrying the finish reason (DashScope ends tool calls that way)."""
        choice = dict(frame.output["choices"][0])
        choice["finish_reason"] = self._completion.finish_reason
        return {"choices": [choice]}

    def usage(self, frame: _Frame | None) -> dict[str, Any]:
        """The usage restated on ``frame``, or the final one when ``frame`` is ``None``."""
        completion = self._completion
        if completion.raw_usage is not None:
            return completion.raw_usage
        output_tokens, reasoning_tokens = completion.completion_tokens, completion.reasoning_tokens
        if frame is not None:
            output_tokens, reasoning_tokens = (
                min(frame.tokens, output_tokens),
                min(frame.reasoning, reasoning_tokens),
            )
        usage: dict[str, Any] = {
            "total_tokens": completion.prompt_tokens + output_tokens,
            "output_tokens": output_tokens,
            "input_tokens": completion.prompt_tokens,
        }
        if self._has_reasoning:
            usage["output_tokens_details"] = {"reasoning_tokens": reasoning_tokens}
        return usage

    def stream(self, reply: Reply) -> Plan:
        """The SSE answer: content frames, then the frame with the finish reason."""
        frames = self.frames()
        encode = self._encode
        content = [encode(frame.output, self.usage(frame)) for frame in frames]
        closing = [encode(self.final_output(cumulative=not self._form.incremental), self.usage(None))]
        merged = None
        if self._form.message and self._completion.tool_calls:
            # DashScope puts finish_reason "tool_calls" on the last argument fragment.
            merged = [encode(self._finished(frames[-1]), self.usage(None))]
        return stream_plan(reply, _wire(self._completion.id), content, closing, merged_closing=merged)

    def json(self, reply: Reply) -> Plan:
        """The non-streaming answer: one JSON object with everything."""
        payload = {
            "output": self.final_output(cumulative=True),
            "usage": self.usage(None),
            "request_id": self._completion.id,
        }
        return json_plan(reply, orjson.dumps(payload), content_events=len(self.frames()))

    def _encode(self, output: dict[str, Any], usage: dict[str, Any]) -> bytes:
        payload = {"output": output, "usage": usage, "request_id": self._completion.id}
        return _RESULT + orjson.dumps(payload) + _END


DASHSCOPE = DashScopeDialect()
"""The dialect instance the route table uses."""
