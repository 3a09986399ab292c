"""Delivering responses to sinks: explicitly (:func:`deliver`), per model or call
(``response_callback``), and to the default output of the current context
(:func:`default_output`, AutoGen's ``IOStream`` idea scoped per request, not per process).

Each sink reads its own replay of the response (``response.events()``), so a slow sink
lags behind without slowing the others, the caller's own iteration, or the network reads
(those run on the library's thread). Every sink gets exactly one end event, however the
response ends and whatever the sink did: a sink whose ``send`` raised gets no more chunks,
but still hears the end; a delivery that is cancelled cancels the response and then tells
its sinks so, within a short grace period.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import threading
from collections.abc import Awaitable, Callable, Generator
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeAlias

from ._errors import InputError
from ._events import EndEvent, ResponseEvent
from ._sinks import Sink
from ._waiters import async_waiter, fire

if TYPE_CHECKING:
    from ._response import ModelResponse

__all__ = [
    "Delivery",
    "ResponseCallback",
    "as_sink",
    "default_output",
    "deliver",
    "get_default_output",
    "observe",
]

logger = logging.getLogger("streamwrap.delivery")

ResponseCallback: TypeAlias = Sink | Callable[[ResponseEvent], Any]
"""A sink, or a function (sync or async) called with each chunk event and then once with
the end event (a non-streaming response: the end event only)."""

# How long a cancelled delivery waits for the response to close before it gives up on
# telling its sinks (closing a connection takes milliseconds; this only bounds a stuck one).
_END_GRACE_SECONDS = 5.0

_default_output: contextvars.ContextVar[default_output | None] = contextvars.ContextVar(
    "streamwrap_default_output", default=None
)
# Background deliveries on asyncio loops, kept referenced until they finish (the loop
# holds tasks weakly).
_background: set[Any] = set()


class _FunctionSink:
    """A plain callback as a sink: chunks and the end event, not the start."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[ResponseEvent], Any]) -> None:
        self.fn = fn

    async def send(self, event: ResponseEvent) -> None:
        if event.type != "start":
            await _maybe_await(self.fn(event))

    def __repr__(self) -> str:
        return f"<callback {getattr(self.fn, '__qualname__', self.fn)!r}>"


def as_sink(target: Any, *, what: str = "a sink") -> Sink:
    """``target`` as a sink: a sink as it is, a callable wrapped."""
    send = getattr(target, "send", None)
    if callable(send):
        return target  # type: ignore[no-any-return]
    if callable(target):
        return _FunctionSink(target)
    raise InputError(
        f"{what} must be a sink (an object with `async def send(event)`) or a callable "
        f"taking an event, got {type(target).__name__}"
    )


class default_output:  # (lower case: used like contextlib's suppress or closing)
    """Deliver every response started in this context to ``sinks`` as well.

    Scoped by a context variable: set it in a request handler and the model calls made by
    that request (however deep in an agent) stream to that request's sink, and to no other
    request's. It follows the context into tasks started inside the block and into
    streamwrap's own thread. ``default_output()`` with no sink turns delivery off inside
    the block. Nests; the previous output comes back on exit.

    ``with`` sets it; ``async with`` also waits, on exit, until the sinks have had the end
    event of every response started inside (a handler that closes its websocket next must
    not cut off the last events).
    """

    def __init__(self, *sinks: ResponseCallback) -> None:
        self.sinks = tuple(as_sink(s, what="default_output()'s argument") for s in sinks)
        self._pending: set[_Completion] = set()
        self._tokens: list[contextvars.Token[default_output | None]] = []

    def __enter__(self) -> tuple[Sink, ...]:
        self._tokens.append(_default_output.set(self))
        return self.sinks

    def __exit__(self, *exc_info: object) -> None:
        _default_output.reset(self._tokens.pop())

    async def __aenter__(self) -> tuple[Sink, ...]:
        return self.__enter__()

    async def __aexit__(self, *exc_info: object) -> None:
        self.__exit__()
        while self._pending:
            await next(iter(self._pending)).wait()

    def _track(self) -> _Completion:
        done = _Completion(self._pending.discard)
        self._pending.add(done)
        return done


class _Completion:
    """Set once, from any thread; awaited from asyncio or trio."""

    def __init__(self, on_set: Callable[[_Completion], None]) -> None:
        self._lock = threading.Lock()
        self._done = False
        self._wakers: list[Callable[[], None]] = []
        self._on_set = on_set

    def set(self) -> None:
        with self._lock:
            self._done = True
            wakers, self._wakers = self._wakers, []
        self._on_set(self)
        fire(wakers)

    async def wait(self) -> None:
        wake, wait = async_waiter()
        with self._lock:
            if self._done:
                return
            self._wakers.append(wake)
        await wait()


def get_default_output() -> tuple[Sink, ...]:
    """The sinks :func:`default_output` set for the current context (empty: none)."""
    output = _default_output.get()
    return () if output is None else output.sinks


def deliver(response: ModelResponse, *sinks: ResponseCallback) -> Delivery:
    """Deliver ``response`` to each sink, all at once.

    ``await deliver(response, a, b)`` returns when every sink has had the end event.
    ``async with deliver(response, a, b):`` delivers in the background while the body
    iterates the response itself, and waits for the sinks on exit. The first exception a
    sink raised is re-raised at the end (the others are logged); it never stops the other
    sinks. Cancelling the delivery cancels the response.
    """
    return Delivery(response, tuple(as_sink(s) for s in sinks))


class Delivery:
    """The delivery of one response to its sinks: await it, or use it as ``async with``."""

    def __init__(self, response: ModelResponse, sinks: tuple[Sink, ...]) -> None:
        self.response = response
        self.sinks = sinks
        self.errors: list[BaseException] = []
        self._group: Any = None

    def __await__(self) -> Generator[Any, None, None]:
        return self._run().__await__()

    async def _run(self) -> None:
        import anyio

        async with anyio.create_task_group() as group:
            for sink in self.sinks:
                group.start_soon(self._one, sink)
        self._raise_first()

    async def __aenter__(self) -> Delivery:
        import anyio

        self._group = anyio.create_task_group()
        await self._group.__aenter__()
        for sink in self.sinks:
            self._group.start_soon(self._one, sink)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        group, self._group = self._group, None
        if exc is not None:
            # The body failed: stop delivering (which cancels the response, and tells the
            # sinks it was cancelled), and let the body's exception through as it is (a
            # task group would wrap it in an ExceptionGroup).
            group.cancel_scope.cancel()
            await group.__aexit__(None, None, None)
            return
        await group.__aexit__(None, None, None)
        self._raise_first()

    async def _one(self, sink: Sink) -> None:
        error = await feed(self.response, sink)
        if error is not None:
            self.errors.append(error)

    def _raise_first(self) -> None:
        if self.errors:
            raise self.errors[0]


async def feed(response: ModelResponse, sink: Sink) -> BaseException | None:
    """Send every event of ``response`` to ``sink``; return the sink's first exception.

    The sink always gets exactly one end event: after its own failure (chunks stop, the end
    still comes) and after this coroutine is cancelled (the response is cancelled, then the
    end is sent under a shield, within a grace period).
    """
    import anyio

    failure: BaseException | None = None
    next_seq = 0
    ended = False
    events = response.events()
    try:
        async for event in events:
            next_seq = event.seq + 1
            ended = event.final
            if failure is not None and not ended:
                continue
            try:
                await _maybe_await(sink.send(event))
            except Exception as exc:
                if failure is None:
                    failure = exc
                    logger.warning(
                        "sink %r failed on %s event of %s", sink, event.type, response.id, exc_info=True
                    )
    except BaseException:
        if not ended:
            with anyio.CancelScope(shield=True), anyio.move_on_after(_END_GRACE_SECONDS):
                await events.aclose()  # (cancels the response)
                await response.await_done()
                end: EndEvent = response._end_event(next_seq)
                try:
                    await _maybe_await(sink.send(end))
                except Exception:
                    logger.warning("sink %r failed on the end event of %s", sink, response.id, exc_info=True)
        raise
    finally:
        await events.aclose()
    return failure


def observe(response: ModelResponse, callback: Sink | None, *, on_loop: bool) -> None:
    """Deliver ``response`` in the background to ``callback`` and the default output's
    sinks, holding the response until it ends.

    ``on_loop``: the call was made from async code, whose event loop (asyncio or trio) runs
    the sinks: they may touch objects of that loop (a websocket, a queue). From sync code
    the sinks run on a thread of their own with its own event loop.
    """
    output = _default_output.get()
    sinks = () if output is None else output.sinks
    if callback is not None:
        sinks = (callback, *sinks)
    if not sinks:
        return
    done = output._track() if output is not None else None
    context = contextvars.copy_context()
    if on_loop:
        asyncio: Any = sys.modules.get("asyncio")
        loop = None
        if asyncio is not None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                pass
        if loop is not None:
            task = loop.create_task(_observe(response, sinks, done), context=context)
            _background.add(task)
            task.add_done_callback(_background.discard)
            return
        trio: Any = sys.modules.get("trio")
        if trio is not None:
            try:
                trio.lowlevel.spawn_system_task(_observe, response, sinks, done, context=context)
                return
            except RuntimeError:
                pass  # not in a trio run after all

    def run() -> None:
        import asyncio

        asyncio.run(_observe(response, sinks, done))

    threading.Thread(target=context.run, args=(run,), name="streamwrap-delivery", daemon=True).start()


async def _observe(response: ModelResponse, sinks: tuple[Sink, ...], done: _Completion | None) -> None:
    import anyio

    async def one(sink: Sink) -> None:
        try:
            await feed(response, sink)  # (a sink's failure is logged by feed)
        except Exception:
            logger.exception("delivering %s to %r failed", response.id, sink)

    # Never raise out of here: in trio a system task's exception would end the whole run.
    try:
        async with anyio.create_task_group() as group:
            for sink in sinks:
                group.start_soon(one, sink)
    except Exception:
        logger.exception("delivering %s failed", response.id)
    finally:
        if done is not None:
            done.set()


async def _maybe_await(result: Any) -> Any:
    # Sinks and callbacks may be sync or async; an async one returns an awaitable.
    if isinstance(result, Awaitable):
        return await result
    return result
