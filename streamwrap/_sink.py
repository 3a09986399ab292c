"""The sink protocol: anything with ``async def send(event)`` receives a response's events."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ._events import ResponseEvent

__all__ = ["Sink"]


@runtime_checkable
class Sink(Protocol):
    """Where a response is delivered: a terminal, callbacks, a websocket, a queue.

    Structural: any object with this method is a sink; no base class to inherit. ``send``
    receives each event of a response in order (``StartEvent``, the chunks, then exactly one
    ``EndEvent``); a sink used for several responses tells them apart by
    ``event.response_id``. An exception from ``send`` stops the chunks to that sink, which
    still receives the end event.
    """

    async def send(self, event: ResponseEvent) -> None: ...
