"""The Vercel AI SDK's UI message stream protocol (v1), sans-I/O: a response's events in,
UI message chunks (JSON-ready dicts) out.

The AI SDK client validates every chunk against a schema; from ``ai`` 5.0.0 to 6.0.x it
is strict (``z.strictObject``): a chunk with a field it does not know is rejected, and
``useChat`` shows an error. So chunks here carry exactly the fields of their type that
**every** ``ai`` release from 5.0.0 on accepts, and only chunk types 5.0.0 knows:

* ``finish`` has no ``finishReason`` (5.0.92 added it; 5.0.0-5.0.91 reject it): the
  reason travels in ``messageMetadata.finishReason`` (streamwrap's words), where the
  client keeps it on the message;
* a tool call that failed or was cut off is closed with ``tool-output-error`` (which
  every 5.x reads as a tool part in the ``output-error`` state), not ``tool-input-error``
  (which 5.0.0-5.0.6 do not know).

The client's ordering rules, kept here:

* a ``text-delta`` follows a ``text-start`` with the same ``id`` and precedes its
  ``text-end`` (likewise ``reasoning-*``; ``tool-input-delta`` follows ``tool-input-start``);
* parts are closed before the terminal chunk;
* the stream ends with one terminal chunk: ``finish`` (finished), ``error`` (failed) or
  ``abort`` (cancelled).

A finished response is ``start``, ``start-step``, its reasoning, text and tool-call parts
in the order they arrived (one text or reasoning part is open at a time, so the client's
parts keep that order), ``finish-step``, then ``finish`` with ``messageMetadata``
(``responseId``, ``model``, ``usage``, ``finishReason`` in streamwrap's words,
``duration``, ``timeToFirstToken``, and ``cost``: the call's price as
``Cost.as_dict()`` gives it, or ``null`` when it is not known). The end event's text that never arrived as deltas
(all of it for a non-streaming response) is sent as one more text part just before the
terminal chunk; the terminal chunk itself never carries text, so a client cannot append
the answer twice.
"""

from __future__ import annotations

from typing import Any

# Only the public API: web is a client of streamwrap like any application.
from streamwrap import (
    EndEvent,
    ReasoningEvent,
    ResponseEvent,
    StartEvent,
    TextEvent,
    ToolArgumentsError,
    ToolCall,
    ToolCallEvent,
)

__all__ = ["UIMessageEncoder"]


class _ToolSlot:
    """One tool call as the client sees it. Fragments are grouped by index exactly as
    :class:`~streamwrap._tools.ToolCallAssembler` groups them, so the n-th slot here is the
    n-th call of the end event."""

    __slots__ = ("call_id", "closed", "name", "parts", "started", "tool_call_id")

    def __init__(self) -> None:
        self.call_id: str | None = None
        self.name: str | None = None
        self.parts: list[str] = []
        self.started = False
        self.closed = False
        # Fixed when the client is told about the call, and used for every later chunk:
        # the client matches chunks by it.
        self.tool_call_id = ""

    @property
    def arguments(self) -> str:
        return "".join(self.parts)


class UIMessageEncoder:
    """Encodes one response's events as UI message chunks.

    Feed it every event of ``response.events()`` in order; :meth:`encode` returns the
    chunks each event becomes (possibly none). After the end event, ``done`` is true and the
    last chunk returned was the terminal one.
    """

    def __init__(self) -> None:
        self.done = False
        self._text = ""  # text sent so far (the last TextEvent's text_so_far)
        self._reasoning: list[str] = []
        self._open: tuple[str, str] | None = None  # (kind, id) of the open text/reasoning part
        self._part_count = 0
        self._slots: list[_ToolSlot] = []
        self._slot_by_index: dict[int, _ToolSlot] = {}

    def encode(self, event: ResponseEvent) -> list[dict[str, Any]]:
        if self.done:
            raise RuntimeError("the response has already ended")
        if isinstance(event, TextEvent):
            self._text = event.text_so_far
            return self._delta("text", event.delta)
        if isinstance(event, ReasoningEvent):
            self._reasoning.append(event.delta)
            return self._delta("reasoning", event.delta)
        if isinstance(event, ToolCallEvent):
            return self._tool_fragment(event)
        if isinstance(event, StartEvent):
            return [{"type": "start", "messageId": event.response_id}, {"type": "start-step"}]
        return self._end(event)

    # -- text and reasoning ---------------------------------------------------------------

    def _delta(self, kind: str, delta: str) -> list[dict[str, Any]]:
        if not delta:
            return []  # an empty part would only clutter the message
        chunks: list[dict[str, Any]] = []
        if self._open is None or self._open[0] != kind:
            chunks.extend(self._close_part())
            part_id = f"{kind}-{self._part_count}"
            self._part_count += 1
            self._open = (kind, part_id)
            chunks.append({"type": f"{kind}-start", "id": part_id})
        chunks.append({"type": f"{kind}-delta", "id": self._open[1], "delta": delta})
        return chunks

    def _close_part(self) -> list[dict[str, Any]]:
        if self._open is None:
            return []
        kind, part_id = self._open
        self._open = None
        return [{"type": f"{kind}-end", "id": part_id}]

    # -- tool calls -----------------------------------------------------------------------

    def _tool_fragment(self, event: ToolCallEvent) -> list[dict[str, Any]]:
        slot = self._slot_by_index.get(event.index)
        if slot is None or (event.call_id and slot.call_id and event.call_id != slot.call_id):
            slot = self._new_slot()
            self._slot_by_index[event.index] = slot
        if event.call_id and not slot.call_id:
            slot.call_id = event.call_id
        if event.name and not slot.name:
            slot.name = event.name
        chunks: list[dict[str, Any]] = []
        if event.arguments_delta:
            slot.parts.append(event.arguments_delta)
        if not slot.started:
            if slot.name is None:
                return chunks  # the client needs the name to start the part: hold the arguments
            chunks.extend(self._start_tool(slot, slot.name))
            if slot.arguments:
                chunks.append(_tool_delta(slot, slot.arguments))
        elif event.arguments_delta:
            chunks.append(_tool_delta(slot, event.arguments_delta))
        return chunks

    def _new_slot(self) -> _ToolSlot:
        slot = _ToolSlot()
        self._slots.append(slot)
        return slot

    def _start_tool(self, slot: _ToolSlot, name: str) -> list[dict[str, Any]]:
        chunks = self._close_part()  # text after the call is a new part, shown after it
        slot.started = True
        slot.name = name
        # The assembler's own fallback id: the end event names the call the same way.
        slot.tool_call_id = slot.call_id or f"call_{self._slots.index(slot)}"
        chunks.append({"type": "tool-input-start", "toolCallId": slot.tool_call_id, "toolName": name})
        return chunks

    def _finish_tools(self, calls: list[ToolCall]) -> list[dict[str, Any]]:
        chunks: list[dict[str, Any]] = []
        for n, call in enumerate(calls):
            slot = self._slots[n] if n < len(self._slots) else self._new_slot()
            if not slot.started:  # (a non-streaming response's calls, or one never named)
                slot.call_id = slot.call_id or call.id
                chunks.extend(self._start_tool(slot, slot.name or call.name))
            sent = slot.arguments
            if len(call.arguments) > len(sent) and call.arguments.startswith(sent):
                rest = call.arguments[len(sent) :]
                slot.parts.append(rest)
                chunks.append(_tool_delta(slot, rest))
            slot.closed = True
            try:
                arguments: Any = call.parsed_arguments()
            except ToolArgumentsError as exc:
                chunks.append(_tool_error(slot, str(exc)))
            else:
                chunks.append(
                    {
                        "type": "tool-input-available",
                        "toolCallId": slot.tool_call_id,
                        "toolName": slot.name,
                        "input": arguments,
                    }
                )
        return chunks

    def _abandon_tools(self, why: str) -> list[dict[str, Any]]:
        """Close the calls of a response that failed or was cancelled: their arguments are
        incomplete, which the error says (else the client shows them streaming for ever)."""
        return [
            _tool_error(slot, f"{why} before the tool call was complete")
            for slot in self._slots
            if slot.started and not slot.closed
        ]

    # -- the end --------------------------------------------------------------------------

    def _end(self, end: EndEvent) -> list[dict[str, Any]]:
        self.done = True
        chunks: list[dict[str, Any]] = []
        # What never arrived as deltas: a non-streaming response's whole reasoning and text.
        sent_reasoning = "".join(self._reasoning)
        if end.reasoning and end.reasoning.startswith(sent_reasoning):
            chunks.extend(self._delta("reasoning", end.reasoning[len(sent_reasoning) :]))
        if end.text.startswith(self._text):
            chunks.extend(self._delta("text", end.text[len(self._text) :]))
        chunks.extend(self._close_part())
        if end.status == "finished":
            chunks.extend(self._finish_tools(end.tool_calls))
            chunks.append({"type": "finish-step"})
            chunks.append(
                {
                    "type": "finish",
                    # (No "finishReason" here: ai 5.0.0-5.0.91 reject the whole chunk for it.)
                    "messageMetadata": {
                        "responseId": end.response_id,
                        "model": end.model,
                        "usage": end.usage.as_dict(),
                        "finishReason": end.finish_reason,
                        "duration": end.duration,
                        "timeToFirstToken": end.time_to_first_token,
                        # What the call cost (genai-prices), or None when that is not known.
                        "cost": None if end.cost is None else end.cost.as_dict(),
                    },
                }
            )
        elif end.status == "failed":
            chunks.extend(self._abandon_tools("the response failed"))
            chunks.append({"type": "error", "errorText": str(end.error) or "the response failed"})
        else:
            chunks.extend(self._abandon_tools("the response was cancelled"))
            chunks.append({"type": "abort"})
        return chunks


def _tool_delta(slot: _ToolSlot, text: str) -> dict[str, Any]:
    return {"type": "tool-input-delta", "toolCallId": slot.tool_call_id, "inputTextDelta": text}


def _tool_error(slot: _ToolSlot, why: str) -> dict[str, Any]:
    # The client keeps the arguments that arrived as deltas (tool-output-error takes none).
    slot.closed = True
    return {"type": "tool-output-error", "toolCallId": slot.tool_call_id, "errorText": why}
