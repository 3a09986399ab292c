"""The state a response shares with the producer that fills it from the runtime thread.

The producer (on the library's event-loop thread) appends batches of deltas; consumers
(any thread, any async library) read them by index. The buffer holds deltas, never
``text_so_far`` snapshots, so memory stays linear in the response size, and any number of
consumers can replay it from the start. A consumer that finds nothing new registers a
one-shot waker; the producer fires the registered wakers once per pass of its event loop
(however many batches that pass decoded), so a consumer is woken at most once per socket
read and only when it is actually waiting. Consumers that only want the end (``aread``,
the call waiting for the HTTP status) wait on state changes and are not woken by data.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from ._delta import Delta, Finish, Metadata, ReasoningDelta, TextDelta, ToolCallDelta, UsageReport
from ._errors import StreamError
from ._tools import ToolCallAssembler
from ._usage import Usage
from ._waiters import Latch, fire

if TYPE_CHECKING:
    from ._telemetry import CallTelemetry

__all__ = ["Channel", "State"]

State = Literal["pending", "open", "done", "failed", "cancelled"]
_TERMINAL = frozenset(("done", "failed", "cancelled"))


class Channel:
    """Deltas, their running aggregates, and the terminal state of one response."""

    def __init__(self, *, provider: str, streaming: bool, input_chars: int) -> None:
        self.provider = provider
        self.streaming = streaming
        self.input_chars = input_chars
        self.items: list[Delta] = []
        self.state: State = "pending"
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._waiters: list[Callable[[], None]] = []
        self._state_waiters: list[Callable[[], None]] = []
        # The producer's loop, once known: wake-ups are deferred to the end of its pass.
        self.loop: Any = None
        self._flush_scheduled = False
        self._terminal = Latch()
        # Running aggregates, updated by the producer as batches arrive.
        self.text_parts: list[str] = []
        self.reasoning_parts: list[str] = []
        self.tools = ToolCallAssembler()
        self.usage: Usage | None = None
        self.finish_raw: str | None = None
        self.provider_id: str | None = None
        self.model: str | None = None
        self.chunk_count = 0
        # When the call was made, and when its request went out: the cold start in between
        # (importing the SDK, building its client) is not the provider's latency, so the
        # timings a response reports count from ``sent_at`` (see :meth:`clock_start`).
        self.started_at = time.monotonic()
        self.sent_at: float | None = None
        self.first_token_at: float | None = None
        self.last_content_at = self.started_at
        self.opened = False
        self.ended_at: float | None = None
        self.attempts: list[dict[str, Any]] = []
        # Set by the runtime once the producer task exists; used to cancel it.
        self.cancel_upstream: Callable[[], None] | None = None
        self.cancel_requested = False
        # Called once, on the producer's thread, as the response ends, before anybody can
        # see it ended (usage_summary() counts the call there: a block that waited for its
        # calls must find them counted). Set at the call only when somebody listens.
        self.end_hooks: list[Callable[[State], None]] = []
        # The call's OpenTelemetry span and measurements; None (the usual case) when the
        # application has configured no OpenTelemetry SDK (see _telemetry).
        self.telemetry: CallTelemetry | None = None

    # -- producer side (runtime thread) -------------------------------------------------

    def push(self, batch: list[Delta]) -> None:
        """Append a batch of deltas and wake whoever waits for them."""
        content = 0
        for d in batch:
            cls = d.__class__
            if cls is TextDelta:
                self.text_parts.append(d)  # type: ignore[arg-type]
                content += 1
            elif cls is ReasoningDelta:
                self.reasoning_parts.append(d)  # type: ignore[arg-type]
                content += 1
            elif cls is ToolCallDelta:
                self.tools.add(d)  # type: ignore[arg-type]
                content += 1
            elif cls is UsageReport:
                self.usage = d.usage  # type: ignore[union-attr]
            elif cls is Finish:
                self.finish_raw = d.raw  # type: ignore[union-attr]
            elif cls is Metadata:
                self.provider_id = d.provider_id or self.provider_id  # type: ignore[union-attr]
                self.model = d.model or self.model  # type: ignore[union-attr]
        if content:
            # Only content counts as progress for the idle timeout; usage, ids and
            # keep-alives do not.
            self.chunk_count += content
            self.last_content_at = now = time.monotonic()
            if self.first_token_at is None:
                self.first_token_at = now
            telemetry = self.telemetry
            if telemetry is not None:  # telemetry: when content arrived
                telemetry.content(now)
        loop = self.loop
        with self._lock:
            self.items.extend(batch)
            if not self._waiters or self._flush_scheduled:
                return
            if loop is not None:
                # Several HTTP chunks often arrive in one socket read: wake consumers once,
                # after the loop has decoded all of them, not once per chunk.
                self._flush_scheduled = True
            else:
                waiters, self._waiters = self._waiters, []
        if loop is not None:
            loop.call_soon(self._flush)
        else:
            fire(waiters)

    def _flush(self) -> None:
        with self._lock:
            self._flush_scheduled = False
            waiters, self._waiters = self._waiters, []
        fire(waiters)

    def mark_sent(self) -> None:
        """Record that the request is going out now (the first attempt's; retries keep it)."""
        if self.sent_at is None:
            self.sent_at = time.monotonic()

    def clock_start(self) -> float:
        """Where time to first token, duration and the first-token budget count from: the
        request going out, or the call for one that failed before any was sent."""
        return self.started_at if self.sent_at is None else self.sent_at

    def open(self) -> None:
        self.opened = True
        self._transition("open")

    def _estimate_usage(self) -> None:
        if self.usage is None:
            # Only where the provider reported nothing: a local estimate, marked as such.
            out = sum(map(len, self.text_parts)) + sum(map(len, self.reasoning_parts))
            self.usage = Usage.estimate(self.input_chars, out)

    def finish(self) -> None:
        self._estimate_usage()
        self._transition("done")

    def fail(self, error: BaseException) -> None:
        if isinstance(error, StreamError):
            error.partial_text = "".join(self.text_parts)
            error.partial_reasoning = "".join(self.reasoning_parts)
        if self.opened:
            # The request was accepted and output may have been generated (and billed):
            # an estimate says so, where "unknown" would read as nothing spent.
            self._estimate_usage()
        self.error = error
        self._transition("failed")

    def cancelled(self) -> None:
        if self.opened:
            self._estimate_usage()
        self._transition("cancelled")

    def add_attempt(self, attempt: dict[str, Any]) -> None:
        """Record one HTTP attempt (an entry of ``response.attempts``)."""
        self.attempts.append(attempt)
        if self.telemetry is not None:  # telemetry: one event per attempt
            self.telemetry.attempt(attempt)

    def _transition(self, state: State) -> None:
        if state in _TERMINAL and self.telemetry is not None and self.state not in _TERMINAL:
            # telemetry: the span ends (and the metrics are recorded) before any consumer
            # can see that the response has ended, at the end time the response reports.
            # (Terminal states are entered on the producer's thread only, so this cannot
            # run twice at once.)
            self.ended_at = time.monotonic()
            self.telemetry.end(self, state)
        if self.end_hooks and state in _TERMINAL and self.state not in _TERMINAL:
            # (Only the producer ends a channel: no other thread runs these.)
            hooks, self.end_hooks = self.end_hooks, []
            for hook in hooks:
                hook(state)
        with self._lock:
            if self.state in _TERMINAL:
                return
            self.state = state
            if state in _TERMINAL and self.ended_at is None:
                self.ended_at = time.monotonic()
            waiters = self._waiters + self._state_waiters
            self._waiters, self._state_waiters = [], []
        if state in _TERMINAL:
            self._terminal.set()
        fire(waiters)

    # -- consumer side (any thread) ------------------------------------------------------

    @property
    def terminal(self) -> bool:
        return self.state in _TERMINAL

    def request_cancel(self) -> None:
        """Ask the producer to stop and close the upstream connection; returns at once."""
        if self.terminal or self.cancel_requested:
            return
        self.cancel_requested = True
        cancel = self.cancel_upstream
        if cancel is not None:
            cancel()

    def add_waiter(self, waker: Callable[[], None], seen: int, state: State) -> bool:
        """Register ``waker`` unless there is already news for a consumer that has seen
        ``seen`` items in ``state``; returns whether it was registered."""
        with self._lock:
            # A terminal channel never changes again: waiting on it would be forever.
            if len(self.items) != seen or self.state != state or state in _TERMINAL:
                return False
            self._waiters.append(waker)
            return True

    def add_state_waiter(self, waker: Callable[[], None], state: State) -> bool:
        """Register ``waker`` for the next state change, unless the state is no longer
        ``state``; returns whether it was registered."""
        with self._lock:
            if self.state != state or state in _TERMINAL:
                return False
            self._state_waiters.append(waker)
            return True

    def remove_waiter(self, waker: Callable[[], None]) -> None:
        with self._lock:
            for waiters in (self._waiters, self._state_waiters):
                try:
                    waiters.remove(waker)
                except ValueError:
                    pass

    def wait_terminal(self, timeout: float | None = None) -> bool:
        return self._terminal.wait(timeout)
