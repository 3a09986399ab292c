"""streamwrap's own events as JSON frames: what the websocket sends (:mod:`._websocket`,
:mod:`._chat_session`) and what the ``events`` protocol of
:func:`~streamwrap.web.sse_response` sends as the ``data`` of each event, so that both
carry the same objects.

* :class:`EventEncoder`: one response's events, ``event.to_dict()``, with the text rule
  (text the end event holds but no delta carried comes as one more ``text`` frame).
* :func:`error_frame`: an ``error`` frame, and :func:`error_code`, the code a failed call
  gets in one.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

# Only the public API: web is a client of streamwrap like any application.
from streamwrap import (
    ConfigError,
    EndEvent,
    InputError,
    ProviderError,
    ReasoningEvent,
    ResponseEvent,
    StreamwrapError,
    TextEvent,
)

__all__ = ["EventEncoder", "error_code", "error_frame"]


class EventEncoder:
    """One response's events as JSON frames (``event.to_dict()``), with the text rule: text
    (and reasoning) the end event holds but no delta carried is sent as one more ``text``
    (``reasoning``) event before the end, whose ``seq`` moves up accordingly."""

    def __init__(self) -> None:
        self._text = ""
        self._reasoning: list[str] = []

    def encode(self, event: ResponseEvent) -> list[dict[str, Any]]:
        if isinstance(event, TextEvent):
            self._text = event.text_so_far
        elif isinstance(event, ReasoningEvent):
            self._reasoning.append(event.delta)
        elif isinstance(event, EndEvent):
            return self._end(event)
        return [event.to_dict()]

    def _end(self, end: EndEvent) -> list[dict[str, Any]]:
        frames: list[dict[str, Any]] = []
        seq = end.seq
        sent_reasoning = "".join(self._reasoning)
        if (
            end.reasoning
            and len(end.reasoning) > len(sent_reasoning)
            and end.reasoning.startswith(sent_reasoning)
        ):
            frames.append(
                ReasoningEvent(end.response_id, seq, end.reasoning[len(sent_reasoning) :]).to_dict()
            )
            seq += 1
        if len(end.text) > len(self._text) and end.text.startswith(self._text):
            frames.append(TextEvent(end.response_id, seq, end.text[len(self._text) :], end.text).to_dict())
            seq += 1
        frames.append((replace(end, seq=seq) if seq != end.seq else end).to_dict())
        return frames


def error_code(error: StreamwrapError) -> str:
    """The ``code`` of the error frame for a call that raised ``error``: ``bad_request``
    (the input or the config was refused), ``provider_error`` (HTTP 401/429/5xx,
    unreachable) or ``internal_error`` (any other of streamwrap's errors)."""
    if isinstance(error, InputError | ConfigError):
        return "bad_request"
    if isinstance(error, ProviderError):
        return "provider_error"
    return "internal_error"


def error_frame(
    code: str,
    message: str,
    *,
    final: bool,
    error: BaseException | None = None,
    response_id: str | None = None,
) -> dict[str, Any]:
    """An ``error`` frame. ``final`` tells the client whether the request it answers is over
    (no response will follow); ``error_type``, ``status_code`` and ``retry_after`` come from
    the exception, when there is one (``retry_after``: the provider's, for a rate limit)."""
    return {
        "type": "error",
        "id": response_id,
        "final": final,
        "code": code,
        "message": message,
        "error_type": None if error is None else type(error).__name__,
        "status_code": getattr(error, "status_code", None),
        "retry_after": getattr(error, "retry_after", None),
    }
