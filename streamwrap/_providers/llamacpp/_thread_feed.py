"""A feed from a worker thread to the runtime's event loop, for engines that block.

An in-process engine (llama.cpp) generates on a thread of its own and must never block the
runtime's loop. The worker appends deltas under a lock; it calls into the loop only when
the producer is waiting, so a burst of tokens costs one wake-up, not one per token (see
DESIGN.md §2: no cross-thread round trip per item). The latest usage reading is kept
aside and appended once per batch: readings are cumulative, only the last one counts.

Cancelling (``aclose()``: ``break``, a timeout, garbage collection) sets ``cancelled``,
which the worker reads between tokens.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from ..._delta import Delta, Finish, UsageReport
from ..._usage import Usage

if TYPE_CHECKING:
    import asyncio

__all__ = ["FeedUpstream", "ThreadFeed"]


class ThreadFeed:
    """The deltas of one generation, on their way from a worker thread to the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        # Set from the loop thread (or at exit); read by the worker between tokens.
        self.cancelled = threading.Event()
        self.finished = threading.Event()
        self._lock = threading.Lock()
        self._items: list[Delta] = []
        self._usage: Usage | None = None
        self._usage_sent: Usage | None = None
        self._done = False
        self._finished = False  # a Finish delta went through
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None

    # -- worker side -----------------------------------------------------------------------

    def put(self, deltas: list[Delta], usage: Usage | None = None) -> None:
        with self._lock:
            self._items.extend(deltas)
            if not self._finished:
                self._finished = any(type(delta) is Finish for delta in deltas)
            if usage is not None:
                self._usage = usage
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            self._wake(waiter)

    def end(self, error: BaseException | None = None) -> None:
        with self._lock:
            if self._done:
                return
            self._done = True
            self._error = error
            if error is None and not self._finished and self.cancelled.is_set():
                # Stopped from the engine's side (unload_models(cancel=True), exit): the
                # reply ends as cancelled, not as a natural stop.
                self._items.append(Finish("cancelled"))
            waiter, self._waiter = self._waiter, None
        self.finished.set()
        if waiter is not None:
            self._wake(waiter)

    def _wake(self, waiter: asyncio.Future[None]) -> None:
        def resolve() -> None:
            if not waiter.done():
                waiter.set_result(None)

        try:
            self.loop.call_soon_threadsafe(resolve)
        except RuntimeError:
            # The runtime's loop is gone (interpreter exit): nobody is listening any more.
            self.cancelled.set()

    # -- loop side -------------------------------------------------------------------------

    def take(self) -> tuple[list[Delta], bool, BaseException | None, asyncio.Future[None] | None]:
        """Everything that arrived (the latest usage reading last), whether the generation
        ended, its error, and a future to await when there was nothing."""
        with self._lock:
            items, self._items = self._items, []
            if self._usage is not self._usage_sent and self._usage is not None:
                self._usage_sent = self._usage
                items.append(UsageReport(self._usage))
            waiter = None
            if not items and not self._done:
                waiter = self._waiter = self.loop.create_future()
            return items, self._done, self._error, waiter


class FeedUpstream:
    """The producer's view of a :class:`ThreadFeed`: an :class:`~streamwrap._transport._upstream.Upstream`."""

    def __init__(self, feed: ThreadFeed) -> None:
        self._feed = feed
        self._first: list[Delta] = []

    async def wait_started(self) -> None:
        """Wait for the first deltas, or raise the error that ended the feed before them:
        like an HTTP call that returns once the status is known, errors before the first
        token (a bad model file, a prompt too long) raise from the call itself."""
        self._first = await self._next() or []

    async def __aiter__(self) -> AsyncIterator[list[Delta]]:
        first, self._first = self._first, []
        if first:
            yield first
        while (items := await self._next()) is not None:
            yield items

    async def _next(self) -> list[Delta] | None:
        """The next batch, ``None`` once the feed has ended; the error it ended with raises."""
        while True:
            items, done, error, waiter = self._feed.take()
            if items:
                return items
            if done:
                if error is not None:
                    raise error
                return None
            assert waiter is not None
            await waiter

    async def aclose(self) -> None:
        # The worker stops at its next token; waiting for that here would block the
        # runtime's loop on C code.
        self._feed.cancelled.set()
