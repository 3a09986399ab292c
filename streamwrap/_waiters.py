"""Cross-thread wake-ups: how a consumer on any thread or async library waits for news
from the runtime thread. Each waiter is a (wake, wait) pair: ``wake`` may be called from
any thread, once; ``wait`` blocks (threads) or is awaited (asyncio, trio).

Blocking waits are built on bare locks, not on ``threading.Event``: Ctrl-C raises
``KeyboardInterrupt`` wherever the main thread happens to be, and when that is inside
``Event.wait`` (Python code around a ``Condition``) it can land between the condition
releasing its lock and taking it back, and the caller then gets ``RuntimeError: release
unlocked lock`` instead. An interrupted ``Lock.acquire`` changes nothing: the lock is
simply not taken.
"""

from __future__ import annotations

import sys
import threading
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from ._errors import StreamwrapError

__all__ = ["Latch", "async_waiter", "fire", "thread_waiter"]


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
    # Locked until woken: the waker releases it, the waiter's acquire then succeeds.
    lock = threading.Lock()
    lock.acquire()

    def wake() -> None:
        try:
            lock.release()
        except RuntimeError:
            pass  # woken twice: once is enough

    def wait() -> None:
        # A timeout loop keeps Ctrl-C deliverable on the main thread where a plain
        # acquire() is not interruptible (Windows).
        while not lock.acquire(timeout=0.5):
            pass

    return wake, wait


class Latch:
    """A one-shot event for any number of blocking waiters: once set, it stays set.

    Each waiter blocks on a lock of its own, which ``set`` releases; a waiter interrupted
    by Ctrl-C just leaves its lock behind, and nothing else is disturbed.
    """

    __slots__ = ("_is_set", "_mutex", "_waiters")

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._waiters: list[threading.Lock] = []
        self._is_set = False

    def is_set(self) -> bool:
        return self._is_set

    def set(self) -> None:
        with self._mutex:
            self._is_set = True
            waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.release()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until set, or for ``timeout`` seconds at most; returns whether it is set."""
        if self._is_set:
            return True
        waiter = threading.Lock()
        waiter.acquire()
        with self._mutex:
            if self._is_set:
                return True
            self._waiters.append(waiter)
        got = waiter.acquire(timeout=-1 if timeout is None else max(timeout, 0.0))
        if not got:
            with self._mutex:
                try:
                    self._waiters.remove(waiter)
                except ValueError:
                    pass  # set meanwhile: its release went to a lock nobody waits on
        return got or self._is_set


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
    wakeups = _wakeups.get(loop) or _wakeups_of(loop)

    def resolve() -> None:
        if not future.done():
            future.set_result(None)

    def wake() -> None:
        wakeups.add(resolve)

    async def wait() -> None:
        await future

    return wake, wait


class _LoopWakeups:
    """The wake-ups due on one asyncio loop from other threads, run by one callback.

    ``call_soon_threadsafe`` writes to the loop's self-pipe every time it is called: with
    many responses streaming into one loop (a web server's), that was a system call on
    each side per chunk of each response. The first wake-up schedules the callback; those
    that come before it has run join it, in order.
    """

    __slots__ = ("__weakref__", "_due", "_lock", "_loop")

    def __init__(self, loop: Any) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._due: list[Callable[[], None]] = []

    def add(self, resolve: Callable[[], None]) -> None:
        with self._lock:
            self._due.append(resolve)
            if len(self._due) > 1:
                return  # the callback is scheduled and has not taken the list yet
        try:
            self._loop.call_soon_threadsafe(self._run)
        except RuntimeError:
            # The loop has closed (see fire()): nobody is left to wake.
            with self._lock:
                self._due.clear()
            raise

    def _run(self) -> None:
        with self._lock:
            due, self._due = self._due, []
        for resolve in due:
            resolve()


_wakeups: weakref.WeakKeyDictionary[Any, _LoopWakeups] = weakref.WeakKeyDictionary()
_wakeups_lock = threading.Lock()


def _wakeups_of(loop: Any) -> _LoopWakeups:
    with _wakeups_lock:
        wakeups = _wakeups.get(loop)
        if wakeups is None:
            wakeups = _wakeups[loop] = _LoopWakeups(loop)
        return wakeups


def _trio_waiter() -> tuple[Callable[[], None], Callable[[], Awaitable[None]]]:
    trio: Any = sys.modules.get("trio")
    if trio is None:
        raise StreamwrapError("no running event loop: use asyncio or trio, or the *_sync methods")
    try:
        token = trio.lowlevel.current_trio_token()
    except RuntimeError:
        raise StreamwrapError("no running event loop: use asyncio or trio, or the *_sync methods") from None
    event = trio.Event()

    def wake() -> None:
        try:
            token.run_sync_soon(event.set)
        except trio.RunFinishedError:
            pass

    return wake, event.wait
