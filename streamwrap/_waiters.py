"""Cross-thread wake-ups: how a consumer on any thread or async library waits for news
from the runtime thread. Each waiter is a (wake, wait) pair: ``wake`` may be called from
any thread, once; ``wait`` blocks (threads) or is awaited (asyncio, trio)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from ._errors import StreamwrapError

__all__ = ["async_waiter", "fire", "thread_waiter"]


def fire(waiters: list[Callable[[], None]]) -> None:
    """Call each waker; a consumer whose event loop has closed is skipped."""
    for wake in waiters:
        try:
            wake()
        except RuntimeError:
            # The consumer's event loop has closed (its program moved on): nothing to wake.
            pass


def thread_waiter() -> tuple[Callable[[], None], Callable[[], None]]:
    """A (wake, wait) pair for a blocking consumer thread."""
    event = threading.Event()

    def wait() -> None:
        # A timeout loop keeps Ctrl-C deliverable on the main thread.
        while not event.wait(0.5):
            pass

    return event.set, wait


def async_waiter() -> tuple[Callable[[], None], Callable[[], Awaitable[None]]]:
    """A (wake, wait) pair for the running async library: asyncio or trio.

    ``wake`` may be called from any thread; ``wait`` is awaited by the consumer.
    """
    # If asyncio was never imported, no asyncio loop can be running: skip importing it.
    asyncio: Any = sys.modules.get("asyncio")
    try:
        loop = asyncio.get_running_loop() if asyncio else None
    except RuntimeError:
        loop = None
    if loop is None:
        return _trio_waiter()
    future = loop.create_future()

    def resolve() -> None:
        if not future.done():
            future.set_result(None)

    def wake() -> None:
        loop.call_soon_threadsafe(resolve)

    async def wait() -> None:
        await future

    return wake, wait


def _trio_waiter() -> tuple[Callable[[], None], Callable[[], Awaitable[None]]]:
    trio: Any = sys.modules.get("trio")
    if trio is None:
        raise StreamwrapError("no running event loop: use asyncio or trio, or the *_sync methods")
    try:
        token = trio.lowlevel.current_trio_token()
    except RuntimeError:
        raise StreamwrapError(
            "no running event loop: use asyncio or trio, or the *_sync methods"
        ) from None
    event = trio.Event()

    def wake() -> None:
        try:
            token.run_sync_soon(event.set)
        except trio.RunFinishedError:
            pass

    return wake, event.wait
