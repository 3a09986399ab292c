"""The library's private event loop, running in a daemon thread.

All provider I/O runs here. That is what lets ``response.text`` drain a stream from any
context (a property cannot await; a thread can wait while this loop keeps reading), gives
a synchronous API over the same objects, lets trio programs use asyncio-only SDKs, and
keeps every stream's reads going while a caller's own loop is blocked.

The loop starts on first use, restarts in a forked child, and shuts down at interpreter
exit after cancelling its producers, so that their HTTP connections are closed.
"""

from __future__ import annotations

import atexit
import contextvars
import os
import sys
import threading
import weakref
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio

__all__ = ["Runtime", "runtime"]


class Runtime:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        # Bumped on fork and restart: SDK clients made for an older loop are unusable.
        self.generation = 0
        self._closers: weakref.WeakSet[Any] = weakref.WeakSet()
        self._stop_hooks: list[Callable[[], None]] = []

    @property
    def thread(self) -> threading.Thread | None:
        return self._thread

    def in_runtime_thread(self) -> bool:
        return self._thread is not None and threading.current_thread() is self._thread

    def loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is not None:
            return loop
        with self._lock:
            if self._loop is None:
                self._start()
            assert self._loop is not None
            return self._loop

    def _start(self) -> None:
        # asyncio is imported on first use, not with streamwrap: it is ~25 ms of import.
        import asyncio

        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        thread = threading.Thread(target=run, name="streamwrap-runtime", daemon=True)
        thread.start()
        ready.wait()
        self._loop = loop
        self._thread = thread
        self.generation += 1

    def spawn(
        self,
        coro_factory: Callable[[], Coroutine[Any, Any, None]],
        context: contextvars.Context,
        on_task: Callable[[Callable[[], None]], None],
    ) -> None:
        """Start ``coro_factory()`` as a task on the runtime loop, in ``context``.

        ``on_task`` receives a thread-safe function that cancels the task.
        """
        loop = self.loop()
        _forget_event_loop_identity(context)

        def start() -> None:
            task = loop.create_task(coro_factory(), context=context)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

            def cancel() -> None:
                if threading.current_thread() is self._thread:
                    task.cancel()
                else:
                    try:
                        loop.call_soon_threadsafe(task.cancel)
                    except RuntimeError:
                        pass  # the loop is closed: the task is gone already

            on_task(cancel)

        loop.call_soon_threadsafe(start)

    async def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run ``coro`` on the runtime loop; await its result from asyncio or trio."""

        from ._waiters import async_waiter

        future = self._submit(coro)
        wake, wait = async_waiter()
        future.add_done_callback(lambda _: wake())
        try:
            await wait()
        except BaseException:
            future.cancel()
            raise
        return future.result()

    def run_sync(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run ``coro`` on the runtime loop and block until it is done."""

        return self._submit(coro).result()

    def _submit(self, coro: Coroutine[Any, Any, Any]) -> Any:
        try:
            import asyncio

            # run_coroutine_threadsafe carries the caller's context: the same cleaning as spawn().
            context = contextvars.copy_context()
            _forget_event_loop_identity(context)
            return context.run(asyncio.run_coroutine_threadsafe, coro, self.loop())
        except BaseException:
            import inspect

            # Ctrl-C before the coroutine reached the loop (while the runtime's thread starts,
            # say): closed, it is not reported as "never awaited" when it is collected. One the
            # loop has started is the loop's to finish.
            if inspect.getcoroutinestate(coro) == inspect.CORO_CREATED:
                coro.close()
            raise

    def cancel_all(self) -> None:
        """Cancel every producer (every in-flight stream) now. Returns at once; callable from
        any thread and from a signal handler (it takes no lock that its caller may hold)."""
        loop = self._loop
        if loop is None:
            return

        def cancel() -> None:
            for task in list(self._tasks):
                task.cancel()

        try:
            loop.call_soon_threadsafe(cancel)
        except RuntimeError:
            pass  # the loop is closed: nothing is in flight

    def add_stop_hook(self, hook: Callable[[], None]) -> None:
        """Register how to stop work that runs outside this loop, which :meth:`cancel_all`
        cannot reach (a local model generates in threads of its own): ``hook()`` stops it
        and waits for it, for a process about to end (see :meth:`run_stop_hooks`). A hook
        registered again is not added twice."""
        if hook not in self._stop_hooks:
            self._stop_hooks.append(hook)

    def run_stop_hooks(self) -> None:
        """Stop the work outside this loop (see :meth:`add_stop_hook`), in the order the
        hooks were registered: the ``streamwrap`` command does this after Ctrl-C, before it
        reports the stop and ends the process without the interpreter's teardown."""
        for hook in list(self._stop_hooks):
            hook()

    def register_closer(self, obj: Any) -> None:
        """Remember an object whose ``_aclose_clients()`` must run at shutdown."""
        self._closers.add(obj)

    def shutdown(self, timeout: float = 2.0) -> None:
        """Cancel every producer, close SDK clients, stop the loop. Idempotent.

        Waits ``timeout`` seconds at most in all. It runs at interpreter exit, often right
        after Ctrl-C: a further Ctrl-C, or a loop stuck in blocking code (the first
        ``import openai`` takes seconds, and runs there), ends the wait early rather than
        hold up the exit; the loop's thread is a daemon, so nothing is left running.
        """
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = None
            self._thread = None
        if loop is None or thread is None or not thread.is_alive():
            return
        import asyncio
        import time

        from ._waiters import Latch

        deadline = time.monotonic() + timeout
        started = Latch()

        async def drain() -> None:
            started.set()
            tasks = [t for t in self._tasks if not t.done()]
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=max(deadline - time.monotonic(), 0.0))
            for obj in list(self._closers):
                try:
                    await obj._aclose_clients()
                except Exception:
                    pass

        try:
            future = asyncio.run_coroutine_threadsafe(drain(), loop)
            # A loop that does not even start the drain soon is busy in blocking code,
            # and would not get far with it before the deadline either.
            if not started.wait(min(timeout, _LOOP_ANSWER_SECONDS)):
                loop.call_soon_threadsafe(loop.stop)  # (whenever it gets there)
                return
            future.result(max(deadline - time.monotonic(), 0.0))
            loop.call_soon_threadsafe(loop.stop)
            thread.join(max(deadline - time.monotonic(), 0.0))
        except (Exception, KeyboardInterrupt):
            return
        if not thread.is_alive():
            loop.close()

    def _after_fork(self) -> None:
        # The thread does not exist in the child; start afresh on next use.
        self._lock = threading.Lock()
        self._loop = None
        self._thread = None
        self._tasks = set()
        self.generation += 1


# How long a healthy loop may take to start running a callback from another thread (an idle
# one takes well under a millisecond).
_LOOP_ANSWER_SECONDS = 0.1

runtime = Runtime()
atexit.register(runtime.shutdown)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=runtime._after_fork)


def _forget_event_loop_identity(context: contextvars.Context) -> None:
    """Clear sniffio's "which async library" variable in ``context``.

    The caller's context travels to the runtime loop (tracing, the default output sink),
    but not its event-loop identity: a trio caller's context says "trio" to sniffio, and
    the HTTP libraries on this asyncio loop would believe it.
    """
    sniffio: Any = sys.modules.get("sniffio")
    if sniffio is not None:
        context.run(sniffio.current_async_library_cvar.set, None)
