"""Response events: what delivery (sinks, callbacks, web responders) sees of a response.

``response.events()`` replays a response as a ``StartEvent``, then its chunks (text,
reasoning, tool-call fragments) as they arrived, then exactly one ``EndEvent``, which is
the last. Every event carries the response id and its sequence number (0 for the start,
then 1, 2, ...), so a UI can key on the id and order by ``seq``.

The end event holds the final text in memory (callbacks want it), but its wire form
(``to_dict()``) leaves the text out: a client that appends the deltas it received already
has it, and must never be able to append it twice. A non-streaming response has no chunks:
its events are a start and an end, the one final message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from ._cost import Cost
from ._finish import FinishReason
from ._tools import ToolCall
from ._usage import Usage

__all__ = [
    "EndEvent",
    "EndStatus",
    "ReasoningEvent",
    "ResponseEvent",
    "StartEvent",
    "TextEvent",
    "ToolCallEvent",
]

EndStatus = Literal["finished", "failed", "cancelled"]


@dataclass(frozen=True, slots=True)
class StartEvent:
    """The first event of every response (``seq == 0``)."""

    type: ClassVar[Literal["start"]] = "start"
    final: ClassVar[bool] = False

    response_id: str
    seq: int
    model: str
    provider: str
    streaming: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "start",
            "id": self.response_id,
            "seq": self.seq,
            "final": False,
            "model": self.model,
            "provider": self.provider,
            "streaming": self.streaming,
        }


@dataclass(frozen=True, slots=True)
class TextEvent:
    """New answer text: ``delta`` is the new piece, ``text_so_far`` everything so far."""

    type: ClassVar[Literal["text"]] = "text"
    final: ClassVar[bool] = False

    response_id: str
    seq: int
    delta: str
    text_so_far: str = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        # Only the delta travels: sending text_so_far would make the bytes quadratic.
        return {"type": "text", "id": self.response_id, "seq": self.seq, "final": False, "delta": self.delta}


@dataclass(frozen=True, slots=True)
class ReasoningEvent:
    """New reasoning ("thinking") text."""

    type: ClassVar[Literal["reasoning"]] = "reasoning"
    final: ClassVar[bool] = False

    response_id: str
    seq: int
    delta: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "reasoning",
            "id": self.response_id,
            "seq": self.seq,
            "final": False,
            "delta": self.delta,
        }


@dataclass(frozen=True, slots=True)
class ToolCallEvent:
    """A fragment of a tool call. Fragments with the same ``index`` belong to one call;
    ``call_id`` and ``name`` usually come with the first fragment only."""

    type: ClassVar[Literal["tool_call"]] = "tool_call"
    final: ClassVar[bool] = False

    response_id: str
    seq: int
    index: int
    call_id: str | None
    name: str | None
    arguments_delta: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "tool_call",
            "id": self.response_id,
            "seq": self.seq,
            "final": False,
            "index": self.index,
            "call_id": self.call_id,
            "name": self.name,
            "arguments_delta": self.arguments_delta,
        }


@dataclass(frozen=True, slots=True)
class EndEvent:
    """The last event, exactly once: how the response ended, with its final state.

    ``status`` is ``"finished"``, ``"failed"`` (``error`` says why) or ``"cancelled"``;
    ``text`` is the whole text (after a failure or cancel, what had arrived).
    """

    type: ClassVar[Literal["end"]] = "end"
    final: ClassVar[bool] = True

    response_id: str
    seq: int
    status: EndStatus
    text: str = field(repr=False)
    reasoning: str | None = field(repr=False)
    tool_calls: list[ToolCall]
    usage: Usage
    finish_reason: FinishReason
    error: BaseException | None
    model: str
    duration: float | None
    time_to_first_token: float | None
    # The response's pricing, asked only if somebody reads cost: the price table is not
    # loaded for a response nobody prices.
    _price: Callable[[], Cost | str] | None = field(default=None, repr=False, compare=False)

    @property
    def cost(self) -> Cost | None:
        """The response's :attr:`~streamwrap.ModelResponse.cost`, computed on first access."""
        result = None if self._price is None else self._price()
        return result if isinstance(result, Cost) else None

    @property
    def cost_unavailable_reason(self) -> str | None:
        """Why :attr:`cost` is ``None`` (``None`` when there is a cost)."""
        if self._price is None:
            return "no price source for this event"
        result = self._price()
        return None if isinstance(result, Cost) else result

    @property
    def tokens_per_second(self) -> float | None:
        """Output tokens per second of generation (from the first token to the end)."""
        out = self.usage.output_tokens
        if out is None or self.duration is None:
            return None
        generating = self.duration - (self.time_to_first_token or 0.0)
        return out / generating if generating > 0 and out > 1 else None

    def to_dict(self) -> dict[str, Any]:
        """The wire form: no text or reasoning (the deltas carried them), the rest in full."""
        return {
            "type": "end",
            "id": self.response_id,
            "seq": self.seq,
            "final": True,
            "status": self.status,
            "finish_reason": self.finish_reason,
            "usage": self.usage.as_dict(),
            "tool_calls": [
                {"id": tc.id, "name": tc.name, "arguments": tc.arguments} for tc in self.tool_calls
            ],
            "error": None if self.error is None else _error_dict(self.error),
            "model": self.model,
            "duration": self.duration,
            "time_to_first_token": self.time_to_first_token,
            "cost": _cost_dict(self.cost),
        }


ResponseEvent = StartEvent | TextEvent | ReasoningEvent | ToolCallEvent | EndEvent
"""Any event of a response; ``event.type`` tells which, ``event.final`` marks the end."""


def _cost_dict(cost: Cost | None) -> dict[str, Any] | None:
    return None if cost is None else cost.as_dict()


def _error_dict(error: BaseException) -> dict[str, Any]:
    return {
        "type": type(error).__name__,
        "message": str(error),  # (errors leaving a response are redacted already)
        "status_code": getattr(error, "status_code", None),
    }
