"""The OpenAI Responses dialect: ``POST .../responses``.

A stream is typed server-sent events (``event: <type>`` and ``data: {"type": <type>,
..., "sequence_number": n}``) with no ``[DONE]``: ``response.created`` and
``response.in_progress``; per output item ``response.output_item.added`` ... ``done`` (a
``reasoning`` item with its summary part and ``response.reasoning_summary_text.delta`` s, a
``message`` item with its ``output_text`` part and ``response.output_text.delta`` s, a
``function_call`` item per tool call with ``response.function_call_arguments.delta`` s);
then ``response.completed`` with usage, or ``response.incomplete`` (finish reason
``length`` → ``max_output_tokens``, ``content_filter`` → ``content_filter``).
``"stream": false`` gets the ``response`` object. Keys and HTTP errors are OpenAI's
(``Authorization: Bearer``, ``{"error": {...}}`` bodies); a mid-stream error is an
``error`` event, an in-band one a ``response.failed`` event.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from ._openai_dialect import OPENAI, default_error, error_plan
from ._plan import KEEPALIVE_COMMENT, Plan
from ._recorded import RecordedRequest
from ._render import Completion, IdSequence, Wire, count_words, json_plan, stream_plan
from ._script import Fault, Reply

# Finish reasons (OpenAI's words) that end a response as incomplete, with the reason given.
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def _event(kind: str, fields: Mapping[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **fields}) + b"\n\n"


def _error_event(fault: Fault) -> bytes:
    return _event("error", {"code": fault.code, "message": fault.message, "param": None})


def _failed_event(fault: Fault) -> bytes:
    response: dict[str, Any] = {
        "id": "resp_emu_failed",
        "object": "response",
        "status": "failed",
        "error": {"code": fault.code or fault.error_type, "message": fault.message},
        "incomplete_details": None,
        "output": [],
        "usage": None,
    }
    return _event("response.failed", {"response": response})


_WIRE = Wire(
    headers={"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"},
    keepalive=KEEPALIVE_COMMENT,
    malformed=b"event: response.output_text.delta\ndata: {not json\n\n",
    truncated=b'event: response.output_text.delta\ndata: {"type": "response.output_text.de\n\n',
    error_event=_error_event,
    inband_error=_failed_event,
)


class OpenAIResponsesDialect:
    """Renders replies as OpenAI Responses API streams and objects."""

    name = "openai_responses"
    path = re.compile(r".*/responses")

    def render(
        self, reply: Reply, request: RecordedRequest, body: Mapping[str, Any], ids: IdSequence
    ) -> Plan:
        """Answer the Responses API request ``body`` with ``reply``."""
        if reply.status != 200:
            scripted = reply.error if reply.error is not None else default_error(reply.status)
            return error_plan(reply.status, scripted, reply.headers, reply.first_delay)
        completion = Completion.build(
            reply, ids, id=reply.id or ids.openai_response_id(), prompt_words=_prompt_words(body)
        )
        if body.get("stream") is True:
            return _stream(reply, completion)
        items = _Items(completion)
        content_events = len(completion.reasoning) + len(completion.text)
        content_events += sum(len(call.fragments) for call in completion.tool_calls)
        return json_plan(
            reply, orjson.dumps(_response(completion, items.output)), content_events=content_events
        )

    def refuse_key(self, request: RecordedRequest, api_key: str, ids: IdSequence) -> Plan | None:
        """OpenAI's 401 unless ``request`` carries ``Authorization: Bearer <api_key>``."""
        return OPENAI.refuse_key(request, api_key, ids)

    def error(self, status: int, message: str, *, headers: Mapping[str, str] | None = None) -> Plan:
        """An OpenAI error body for a request the emulator refuses."""
        return OPENAI.error(status, message, headers=headers)


def _prompt_words(body: Mapping[str, Any]) -> int:
    items = body.get("input")
    if isinstance(items, str):
        return len(items.split())
    contents: list[object] = [body.get("instructions")]
    if isinstance(items, list):
        contents.extend(item.get("content") or item.get("output") for item in items if isinstance(item, dict))
    return count_words(contents)


def _usage(completion: Completion) -> dict[str, Any]:
    if completion.raw_usage is not None:
        return completion.raw_usage
    return {
        "input_tokens": completion.prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": completion.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": completion.reasoning_tokens},
        "total_tokens": completion.prompt_tokens + completion.completion_tokens,
    }


def _response(completion: Completion, output: list[dict[str, Any]], *, final: bool = True) -> dict[str, Any]:
    incomplete = _INCOMPLETE.get(completion.finish_reason)
    status = "in_progress" if not final else "incomplete" if incomplete else "completed"
    return {
        "id": completion.id,
        "object": "response",
        "created_at": completion.created,
        "status": status,
        "error": None,
        "incomplete_details": {"reason": incomplete} if final and incomplete else None,
        "model": completion.model,
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": _usage(completion) if final else None,
    }


class _Items:
    """The output items of a completion: finished (``output``), and as stream events."""

    def __init__(self, completion: Completion) -> None:
        self.output: list[dict[str, Any]] = []
        self.events: list[tuple[str, dict[str, Any]]] = []  # (type, fields), content last of each kind
        n = completion.id
        if completion.reasoning:
            summary = "".join(completion.reasoning)
            item_id = f"rs_{n}"
            index = len(self.output)
            done = {
                "id": item_id,
                "type": "reasoning",
                "summary": [{"type": "summary_text", "text": summary}],
            }
            at = {"item_id": item_id, "output_index": index, "summary_index": 0}
            self._open(index, {**done, "summary": []})
            self.events.append(("response.reasoning_summary_part.added", {**at, "part": _summary("")}))
            self.events.extend(
                ("response.reasoning_summary_text.delta", {**at, "delta": piece})
                for piece in completion.reasoning
            )
            self.events.append(("response.reasoning_summary_text.done", {**at, "text": summary}))
            self.events.append(("response.reasoning_summary_part.done", {**at, "part": _summary(summary)}))
            self._close(index, done)
        if completion.text or not completion.tool_calls:
            text = "".join(completion.text)
            item_id = f"msg_{n}"
            index = len(self.output)
            done = {
                "id": item_id,
                "type": "message",
                "status": "completed",
                "role": "assistant",
                "content": [_text_part(text)],
            }
            at = {"item_id": item_id, "output_index": index, "content_index": 0}
            self._open(index, {**done, "status": "in_progress", "content": []})
            self.events.append(("response.content_part.added", {**at, "part": _text_part("")}))
            self.events.extend(
                ("response.output_text.delta", {**at, "delta": piece, "logprobs": []})
                for piece in completion.text
            )
            self.events.append(("response.output_text.done", {**at, "text": text, "logprobs": []}))
            self.events.append(("response.content_part.done", {**at, "part": _text_part(text)}))
            self._close(index, done)
        for k, call in enumerate(completion.tool_calls):
            item_id = f"fc_{n}_{k}"
            index = len(self.output)
            done = {
                "id": item_id,
                "type": "function_call",
                "status": "completed",
                "call_id": call.id,
                "name": call.name,
                "arguments": call.arguments,
            }
            at = {"item_id": item_id, "output_index": index}
            self._open(index, {**done, "status": "in_progress", "arguments": ""})
            self.events.extend(
                ("response.function_call_arguments.delta", {**at, "delta": piece}) for piece in call.fragments
            )
            self.events.append(("response.function_call_arguments.done", {**at, "arguments": call.arguments}))
            self._close(index, done)

    def _open(self, index: int, item: dict[str, Any]) -> None:
        self.events.append(("response.output_item.added", {"output_index": index, "item": item}))

    def _close(self, index: int, item: dict[str, Any]) -> None:
        self.events.append(("response.output_item.done", {"output_index": index, "item": item}))
        self.output.append(item)


_CONTENT_EVENTS = frozenset(
    {
        "response.reasoning_summary_text.delta",
        "response.output_text.delta",
        "response.function_call_arguments.delta",
    }
)


def _summary(text: str) -> dict[str, Any]:
    return {"type": "summary_text", "text": text}


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _stream(reply: Reply, completion: Completion) -> Plan:
    items = _Items(completion)
    sequence = 0

    def event(kind: str, fields: Mapping[str, Any]) -> bytes:
        nonlocal sequence
        sequence += 1
        return _event(kind, {**fields, "sequence_number": sequence - 1})

    opening = _response(completion, [], final=False)
    head = [
        event("response.created", {"response": opening}),
        event("response.in_progress", {"response": opening}),
    ]
    # The scripted fault goes after `after` content chunks: the bookkeeping events (item
    # and part added/done) travel with the content chunk they follow or precede.
    content: list[bytes] = []
    pending = b"".join(head)
    for kind, fields in items.events:
        encoded = event(kind, fields)
        if kind in _CONTENT_EVENTS:
            content.append(pending + encoded)
            pending = b""
        elif content and not pending and kind.endswith(".done"):
            content[-1] += encoded
        else:
            pending += encoded
    final = _response(completion, items.output)
    terminal = "response.incomplete" if final["status"] == "incomplete" else "response.completed"
    closing = [pending + event(terminal, {"response": final})]
    return stream_plan(reply, _WIRE, content, closing)


OPENAI_RESPONSES = OpenAIResponsesDialect()
"""The dialect instance the route table uses."""
