"""``ModelResponse``: what every wrapper returns, streaming or not."""

from __future__ import annotations

import sys
import uuid
import warnings
import weakref
from collections.abc import AsyncGenerator, Callable, Generator, Iterable, Iterator
from types import TracebackType
from typing import Any, NamedTuple

from ._channel import Channel, State
from ._cost import Cost, PriceRef, Pricing
from ._delta import Delta, ReasoningDelta, TextDelta, ToolCallDelta
from ._errors import StreamwrapError
from ._events import EndEvent, EndStatus, ReasoningEvent, ResponseEvent, StartEvent, TextEvent, ToolCallEvent
from ._finish import FinishReason, final_finish_reason
from ._runtime import runtime
from ._tools import ToolCall
from ._usage import Usage
from ._waiters import async_waiter, thread_waiter

__all__ = ["ModelResponse", "StreamChunk", "StreamDelta"]

StreamDelta = TextDelta | ReasoningDelta | ToolCallDelta


class StreamChunk(NamedTuple):
    """One item of ``response.stream``: unpacks as ``is_last, text_so_far``."""

    is_last: bool
    text_so_far: str


# tuple.__new__ directly, on the per-chunk path: the NamedTuple's own __new__ is a Python
# function, one more frame per chunk.
_new_chunk = tuple.__new__


class BlockingReadWarning(RuntimeWarning):
    """``response.text`` (or another final field) blocked a running event loop."""


_warned_blocking = False
_END_STATUS: dict[State, EndStatus] = {"done": "finished", "failed": "failed", "cancelled": "cancelled"}


class _Cursor:
    """One consumer's position in a channel. ``step()`` returns what is new since the
    last step, and whether the consumer must wait before there is more."""

    __slots__ = ("ch", "finished", "idx", "state")

    def __init__(self, ch: Channel) -> None:
        self.ch = ch
        self.idx = 0
        self.finished = False
        self.state: State = "pending"

    def step(self) -> Iterable[Any]:
        ch = self.ch
        # Read the state before the length: a terminal state seen here guarantees that
        # every item was appended before it, so nothing can be missed.
        state = self.state = ch.state
        n = len(ch.items)
        if self.idx < n:
            start, self.idx = self.idx, n
            return self.render(ch.items, start, n)
        if state == "done" or state == "cancelled":
            self.finished = True
            return self.final()
        if state == "failed":
            self.finished = True
            return self.failed()
        return []

    def failed(self) -> list[Any]:
        assert self.ch.error is not None
        raise self.ch.error

    def render(self, items: list[Delta], start: int, stop: int) -> Iterable[Any]:
        raise NotImplementedError

    def final(self) -> list[Any]:
        return []


class _TextCursor(_Cursor):
    __slots__ = ("text",)

    def __init__(self, ch: Channel) -> None:
        super().__init__(ch)
        self.text = ""

    def render(self, items: list[Delta], start: int, stop: int) -> Iterable[Any]:
        if not self.ch.streaming:
            return ()  # a non-streaming response offers exactly one, final, item
        return self._snapshots(items, start, stop)

    def _snapshots(self, items: list[Delta], start: int, stop: int) -> Iterator[StreamChunk]:
        # A generator, not a list: one text_so_far snapshot exists at a time. Building a
        # batch's snapshots together made a late consumer's memory quadratic.
        for i in range(start, stop):
            d = items[i]
            if d.__class__ is TextDelta:
                self.text += d
                yield _new_chunk(StreamChunk, (False, self.text))

    def final(self) -> list[Any]:
        if not self.ch.streaming:
            self.text = "".join(self.ch.text_parts)
        return [StreamChunk(True, self.text)]


class _DeltaCursor(_Cursor):
    __slots__ = ()

    def render(self, items: list[Delta], start: int, stop: int) -> Iterable[Any]:
        return [d for d in items[start:stop] if d.__class__ in _PUBLIC_DELTAS]


_PUBLIC_DELTAS = frozenset((TextDelta, ReasoningDelta, ToolCallDelta))


class _EventCursor(_Cursor):
    """Renders a channel as :mod:`events <._events>`: a start, the chunks, one end.

    A failure is an end event here, not an exception: delivery must tell every sink how
    the response ended, whatever happened."""

    __slots__ = ("response", "seq", "text")

    def __init__(self, response: ModelResponse) -> None:
        super().__init__(response._ch)
        self.response = response
        self.seq = 0
        self.text = ""

    def step(self) -> Iterable[Any]:
        if self.seq == 0:
            self.seq = 1
            r = self.response
            return [StartEvent(r.id, 0, r.model, r.provider, r.streaming)]
        return super().step()

    def render(self, items: list[Delta], start: int, stop: int) -> Iterable[Any]:
        if not self.ch.streaming:
            return ()  # a non-streaming response is one final message: the end event
        return self._chunks(items, start, stop)

    def _chunks(self, items: list[Delta], start: int, stop: int) -> Iterator[ResponseEvent]:
        rid = self.response.id
        for i in range(start, stop):
            d = items[i]
            cls = d.__class__
            if cls is TextDelta:
                self.text += d  # type: ignore[operator]
                event: ResponseEvent = TextEvent(rid, self.seq, d, self.text)  # type: ignore[arg-type]
            elif cls is ReasoningDelta:
                event = ReasoningEvent(rid, self.seq, d)  # type: ignore[arg-type]
            elif cls is ToolCallDelta:
                event = ToolCallEvent(rid, self.seq, d.index, d.id, d.name, d.arguments)  # type: ignore[union-attr,arg-type]
            else:
                continue
            self.seq += 1
            yield event

    def final(self) -> list[Any]:
        return [self.response._end_event(self.seq)]

    def failed(self) -> list[Any]:
        return [self.response._end_event(self.seq)]


class ModelResponse:
    """The result of ``await model(...)``.

    ``stream`` replays the response as ``(is_last, text_so_far)`` tuples, for any number
    of consumers at any time; ``text`` (and ``reasoning``, ``tool_calls``, ``usage``,
    ``finish_reason``) wait for the end, draining the stream if nobody consumed it, so code
    written for non-streaming responses keeps working. The network reads run on the
    library's own thread, so this works from sync code, worker threads and ``async def``
    alike; inside ``async def`` prefer ``await response.aread()``, which does not block the
    event loop.

    Leaving a ``stream`` loop early, cancelling the consuming task, ``aclose()``, leaving
    ``async with``, or dropping the last reference closes the upstream connection; the
    response then reports ``finish_reason == "cancelled"`` with what had arrived.
    """

    def __init__(
        self,
        channel: Channel,
        *,
        model_name: str,
        response_id: str | None = None,
        pricing: Pricing | None = None,
    ) -> None:
        self._ch = channel
        self.id: str = response_id or f"swr-{uuid.uuid4().hex}"
        self._model_name = model_name
        self._pricing = pricing or Pricing(PriceRef(unpriced="no price source for this response"), model_name)
        # Dropping an unconsumed response closes its connection. The finalizer holds the
        # channel weakly: finalize's registry is global, and a strong reference from it
        # would keep alive all the channel reaches, the response included through its
        # error's traceback (a failed response was never freed). While the producer runs
        # it holds the channel; once it has ended there is nothing to close.
        self._finalizer = weakref.finalize(self, _cancel_if_alive, weakref.ref(channel))
        self._finalizer.atexit = False

    def __repr__(self) -> str:
        return (
            f"<ModelResponse id={self.id!r} provider={self._ch.provider!r} "
            f"model={self.model!r} state={self._ch.state!r}>"
        )

    # -- identity and progress ------------------------------------------------------------

    @property
    def provider(self) -> str:
        return self._ch.provider

    @property
    def model(self) -> str:
        """The model that answered, as the provider reported it (else the one requested)."""
        return self._ch.model or self._model_name

    @property
    def provider_id(self) -> str | None:
        """The provider's own id for this response (e.g. ``chatcmpl-...``), once known."""
        return self._ch.provider_id

    @property
    def streaming(self) -> bool:
        return self._ch.streaming

    @property
    def done(self) -> bool:
        """True once the response has ended: finished, failed or cancelled."""
        return self._ch.terminal

    @property
    def partial_text(self) -> str:
        """The text received so far, without waiting."""
        return "".join(self._ch.text_parts)

    @property
    def time_to_first_token(self) -> float | None:
        """Seconds from the request being sent to the first content delta (text, reasoning
        or a tool-call fragment) reaching the response; ``None`` until one has.

        The clock starts when the wrapper hands the request to the provider's client, after
        the cold start of the first call (importing the SDK, building its client: see
        :meth:`ModelWrapper.prepare`), which is not counted. It includes connecting,
        the provider's queueing and prompt processing, the response headers, and, when the
        first attempt failed and was retried, those attempts and the back-off between them
        (see :attr:`attempts`). Usage reports, ids and keep-alive comments are not content
        and do not stop the clock. The same origin is used by ``first_token_timeout``.
        """
        ch = self._ch
        return None if ch.first_token_at is None else ch.first_token_at - ch.clock_start()

    @property
    def duration(self) -> float | None:
        """Seconds from the request being sent (as for :attr:`time_to_first_token`) to the
        end of the response; ``None`` until it has ended."""
        ch = self._ch
        return None if ch.ended_at is None else ch.ended_at - ch.clock_start()

    @property
    def chunk_count(self) -> int:
        """Number of content deltas (text, reasoning, tool-call fragments) received."""
        return self._ch.chunk_count

    @property
    def attempts(self) -> list[dict[str, Any]]:
        """One entry per HTTP attempt made for this response (retries included)."""
        return list(self._ch.attempts)

    # -- consuming ----------------------------------------------------------------------

    @property
    def stream(self) -> AsyncGenerator[StreamChunk, None]:
        """A fresh async generator of ``(is_last, text_so_far)``, replaying from the start.

        Exactly one item has ``is_last=True``: the last, carrying the full text. A failed
        stream raises its error after the items that arrived; it never ends as if complete.
        """
        return self._drive_async(_TextCursor(self._ch))

    def stream_sync(self) -> Generator[StreamChunk, None, None]:
        """The same items as :attr:`stream`, for synchronous code."""
        return self._drive_sync(_TextCursor(self._ch))

    def deltas(self) -> AsyncGenerator[StreamDelta, None]:
        """A fresh async generator of the raw deltas (``TextDelta``, ``ReasoningDelta``,
        ``ToolCallDelta``), replaying from the start: the cheapest way to follow a stream."""
        return self._drive_async(_DeltaCursor(self._ch))

    def deltas_sync(self) -> Generator[StreamDelta, None, None]:
        return self._drive_sync(_DeltaCursor(self._ch))

    def events(self, *, cancel_on_exit: bool = True) -> AsyncGenerator[ResponseEvent, None]:
        """A fresh async generator of the response's events, replaying from the start:
        a :class:`StartEvent`, the chunks as they arrived, and exactly one :class:`EndEvent`
        (``event.final``), also when the stream fails or is cancelled: it never raises the
        stream's error. What sinks and web responders are built on.

        Leaving the loop early cancels the response, as with :attr:`stream`; pass
        ``cancel_on_exit=False`` to watch without owning it (the response then goes on).
        """
        return self._drive_async(_EventCursor(self), cancel_on_exit=cancel_on_exit)

    def events_sync(self, *, cancel_on_exit: bool = True) -> Generator[ResponseEvent, None, None]:
        """The same events as :meth:`events`, for synchronous code."""
        return self._drive_sync(_EventCursor(self), cancel_on_exit=cancel_on_exit)

    async def _drive_async(
        self, cursor: _Cursor, *, cancel_on_exit: bool = True
    ) -> AsyncGenerator[Any, None]:
        ch = self._ch
        try:
            while True:
                yielded = False
                for item in cursor.step():
                    yielded = True
                    yield item
                if cursor.finished:
                    return
                if not yielded:
                    await _wait_async(ch, cursor.idx, cursor.state)
        finally:
            # Left early (break, cancellation, an error in the consumer's loop body):
            # nobody is reading, so close the upstream rather than leak it.
            if not cursor.finished and cancel_on_exit:
                ch.request_cancel()

    def _drive_sync(self, cursor: _Cursor, *, cancel_on_exit: bool = True) -> Generator[Any, None, None]:
        ch = self._ch
        _refuse_runtime_thread()
        try:
            while True:
                yielded = False
                for item in cursor.step():
                    yielded = True
                    yield item
                if cursor.finished:
                    return
                if not yielded:
                    wake, wait = thread_waiter()
                    if ch.add_waiter(wake, cursor.idx, cursor.state):
                        wait()
        finally:
            if not cursor.finished and cancel_on_exit:
                ch.request_cancel()

    async def aread(self) -> str:
        """Wait for the end without blocking the event loop; return the full text."""
        await self.await_done()
        return self.text

    async def await_done(self) -> None:
        """Wait until the response has ended (finished, failed or cancelled)."""
        ch = self._ch
        try:
            while not ch.terminal:
                await _wait_state_async(ch, ch.state)
        except BaseException:
            if not ch.terminal:
                ch.request_cancel()
            raise

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the response has ended; returns False on timeout."""
        _refuse_runtime_thread()
        if self._ch.terminal:
            return True
        return self._ch.wait_terminal(timeout)

    def _final(self) -> Channel:
        ch = self._ch
        if not ch.terminal:
            _warn_if_blocking_a_loop()
            _refuse_runtime_thread()
            while not ch.wait_terminal(0.5):
                pass
        return ch

    def _raise_if_failed(self, ch: Channel) -> None:
        if ch.state == "failed":
            assert ch.error is not None
            raise ch.error

    @property
    def text(self) -> str:
        """The full text; waits for (drains) the stream. Raises the stream's error if it
        failed. After a cancel, the text that had arrived (``finish_reason == "cancelled"``)."""
        ch = self._final()
        self._raise_if_failed(ch)
        return "".join(ch.text_parts)

    @property
    def reasoning(self) -> str | None:
        """The reasoning ("thinking") text, or None if the model sent none; waits like ``text``."""
        ch = self._final()
        self._raise_if_failed(ch)
        return "".join(ch.reasoning_parts) if ch.reasoning_parts else None

    @property
    def tool_calls(self) -> list[ToolCall]:
        """Complete tool calls, assembled from the streamed fragments; waits like ``text``."""
        ch = self._final()
        self._raise_if_failed(ch)
        return ch.tools.calls()

    @property
    def usage(self) -> Usage:
        """Token usage with provenance; waits for the end but never raises. After a failure
        or cancel it is what the provider had reported; where it had reported nothing, an
        estimate (``source="estimated"``) once the stream had opened, else
        ``source="unknown"``."""
        ch = self._final()
        return ch.usage or Usage()

    @property
    def cost(self) -> Cost | None:
        """What the call cost, priced by ``genai-prices`` from :attr:`usage`, or ``None`` when
        it cannot be known (:attr:`cost_unavailable_reason` says why: the provider or model
        is not in the table, usage was only estimated or not reported, the ``cost`` extra is
        not installed). Waits for the end like ``usage`` and never raises; after a cancel or
        failure it prices the usage the provider had reported (``cost.partial``).

        Computed on first access, once (the first one in a process loads the price table,
        about half a second: :meth:`ModelWrapper.prepare` does it ahead of time).
        """
        result = self._price()
        return result if isinstance(result, Cost) else None

    @property
    def cost_unavailable_reason(self) -> str | None:
        """Why :attr:`cost` is ``None`` (``None`` when there is a cost); waits like ``cost``."""
        result = self._price()
        return None if isinstance(result, Cost) else result

    def _price(self) -> Cost | str:
        ch = self._final()
        return self._pricing.result(ch.usage or Usage(), ch.model, ch.started_at, partial=ch.state != "done")

    @property
    def finish_reason(self) -> FinishReason:
        """``stop``, ``length``, ``tool_calls``, ``content_filter``, ``error`` or ``cancelled``;
        waits for the end but never raises."""
        return _finish_reason(self._final())

    @property
    def finish_reason_raw(self) -> str | None:
        """The provider's own finish reason, as sent."""
        return self._final().finish_raw

    @property
    def error(self) -> BaseException | None:
        """The error the stream failed with, if it did (without waiting)."""
        return self._ch.error

    def _end_event(self, seq: int) -> EndEvent:
        """The end event of a response that has ended."""
        ch = self._ch
        assert ch.terminal
        return EndEvent(
            self.id,
            seq,
            _END_STATUS[ch.state],
            text="".join(ch.text_parts),
            reasoning="".join(ch.reasoning_parts) or None,
            tool_calls=ch.tools.calls(),
            usage=ch.usage or Usage(),
            finish_reason=_finish_reason(ch),
            error=ch.error,
            model=self.model,
            duration=self.duration,
            time_to_first_token=self.time_to_first_token,
            _price=self._price,
        )

    # -- lifecycle ------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the upstream connection now (if still open) and wait until it is closed."""
        ch = self._ch
        if ch.terminal:
            return
        ch.request_cancel()
        await self.await_done()

    def close(self) -> None:
        """Synchronous :meth:`aclose`."""
        ch = self._ch
        if ch.terminal:
            return
        ch.request_cancel()
        self.wait()

    async def __aenter__(self) -> ModelResponse:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __enter__(self) -> ModelResponse:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary of the finished response (waits for the end)."""
        ch = self._final()
        return {
            "id": self.id,
            "provider": self.provider,
            "provider_id": self.provider_id,
            "model": self.model,
            "text": "".join(ch.text_parts),
            "reasoning": "".join(ch.reasoning_parts) or None,
            "tool_calls": [tc.to_openai() for tc in ch.tools.calls()],
            "usage": self.usage.as_dict(),
            "finish_reason": self.finish_reason,
            "finish_reason_raw": ch.finish_raw,
            "time_to_first_token": self.time_to_first_token,
            "duration": self.duration,
            "chunk_count": ch.chunk_count,
            "error": None if ch.error is None else str(ch.error),
        }


def _finish_reason(ch: Channel) -> FinishReason:
    return final_finish_reason(ch.state, ch.finish_raw, bool(ch.tools))


def _cancel_if_alive(channel: weakref.ref[Channel]) -> None:
    ch = channel()
    if ch is not None:
        ch.request_cancel()


async def _wait_async(ch: Channel, seen: int, state: State) -> None:
    """Wait for news after ``seen`` items in ``state``: more items or a state change."""
    await _park(ch, lambda wake: ch.add_waiter(wake, seen, state))


async def _wait_state_async(ch: Channel, state: State) -> None:
    """Wait for the channel to leave ``state``; data arriving meanwhile does not wake us."""
    await _park(ch, lambda wake: ch.add_state_waiter(wake, state))


async def _park(ch: Channel, register: Callable[[Callable[[], None]], bool]) -> None:
    wake, wait = async_waiter()
    if not register(wake):
        return  # there is news already
    try:
        await wait()
    except BaseException:
        ch.remove_waiter(wake)
        raise


def _refuse_runtime_thread() -> None:
    if runtime.in_runtime_thread():
        raise StreamwrapError(
            "cannot wait for a response on streamwrap's own I/O thread "
            "(it would wait for itself): iterate `response.stream` or `await response.aread()`"
        )


def _warn_if_blocking_a_loop() -> None:
    global _warned_blocking
    if _warned_blocking or not _on_event_loop_thread():
        return
    _warned_blocking = True
    warnings.warn(
        "reading response.text (or another final field) before the stream ended blocks this "
        "event loop until it ends; use `await response.aread()` instead. "
        "(This warning is shown once.)",
        BlockingReadWarning,
        stacklevel=4,
    )


def _on_event_loop_thread() -> bool:
    asyncio: Any = sys.modules.get("asyncio")
    if asyncio is not None:
        try:
            asyncio.get_running_loop()
            return True
        except RuntimeError:
            pass
    trio: Any = sys.modules.get("trio")
    if trio is None:
        return False
    try:
        trio.lowlevel.current_task()
        return True
    except RuntimeError:
        return False
