"""The callback sink: a response's progress and its outcome, as four callbacks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ._errors import InputError
from ._events import EndEvent, ReasoningEvent, ResponseEvent, StartEvent, TextEvent, ToolCallEvent

__all__ = ["CallbackSink"]

ChunkEvent = TextEvent | ReasoningEvent | ToolCallEvent


class CallbackSink:
    """Calls ``on_chunk`` for each text, reasoning and tool-call event, then exactly one of
    ``on_finish``, ``on_error`` or ``on_cancel`` with the :class:`EndEvent` (final text,
    usage, finish reason, and the error for ``on_error``). Each may be a plain function or
    an ``async def``; any may be left out.

    Delivered by :func:`streamwrap.deliver`, a ``response_callback`` or
    :func:`streamwrap.default_output`, exactly one terminal callback fires for every
    response: also when the stream breaks, when it is cancelled (``break``, a client that
    went away, a cancelled task), and when ``on_chunk`` itself raised (no more chunks
    then, but the end still comes).
    """

    def __init__(
        self,
        on_chunk: Callable[[ChunkEvent], Any] | None = None,
        on_finish: Callable[[EndEvent], Any] | None = None,
        on_error: Callable[[EndEvent], Any] | None = None,
        on_cancel: Callable[[EndEvent], Any] | None = None,
        *,
        on_start: Callable[[StartEvent], Any] | None = None,
    ) -> None:
        for name, fn in (("on_chunk", on_chunk), ("on_finish", on_finish), ("on_error", on_error),
                         ("on_cancel", on_cancel), ("on_start", on_start)):
            if fn is not None and not callable(fn):
                raise InputError(f"CallbackSink({name}=...) must be callable, got {type(fn).__name__}")
        self.on_chunk = on_chunk
        self.on_finish = on_finish
        self.on_error = on_error
        self.on_cancel = on_cancel
        self.on_start = on_start

    async def send(self, event: ResponseEvent) -> None:
        fn: Any
        if isinstance(event, EndEvent):
            fn = {"finished": self.on_finish, "failed": self.on_error, "cancelled": self.on_cancel}[event.status]
        elif isinstance(event, StartEvent):
            fn = self.on_start
        else:
            fn = self.on_chunk
        if fn is not None:
            result = fn(event)
            if isinstance(result, Awaitable):
                await result
