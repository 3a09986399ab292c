"""Sinks: where a response's events go. The :class:`Sink` protocol (anything with
``async def send(event)``), and the two sinks streamwrap ships: :class:`CallbackSink` (a
response's progress and outcome as callbacks) and :class:`ConsoleSink` (a response typed out
on a terminal as it arrives)."""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TextIO, runtime_checkable

from ._cost import format_money
from ._errors import InputError
from ._events import EndEvent, ReasoningEvent, ResponseEvent, StartEvent, TextEvent, ToolCallEvent

__all__ = ["CallbackSink", "ConsoleSink", "Sink", "summary_line"]


# -- the protocol -------------------------------------------------------------------------------


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


# -- callbacks ----------------------------------------------------------------------------------


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
        for name, fn in (
            ("on_chunk", on_chunk),
            ("on_finish", on_finish),
            ("on_error", on_error),
            ("on_cancel", on_cancel),
            ("on_start", on_start),
        ):
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
            fn = {"finished": self.on_finish, "failed": self.on_error, "cancelled": self.on_cancel}[
                event.status
            ]
        elif isinstance(event, StartEvent):
            fn = self.on_start
        else:
            fn = self.on_chunk
        if fn is not None:
            result = fn(event)
            if isinstance(result, Awaitable):
                await result


# -- the console --------------------------------------------------------------------------------


_DIM, _RESET = "\x1b[2m", "\x1b[0m"


@dataclass
class _Progress:
    printed: int = 0  # characters of the answer written so far
    in_reasoning: bool = False
    reasoned: bool = False


class ConsoleSink:
    """Types a response out on a terminal: each new piece of the answer as it arrives
    (only the new suffix of ``text_so_far``, so nothing is ever printed twice), reasoning
    dimmed and apart from the answer, tool calls, and a final line with tokens/s and usage.

    ``file`` gets the answer (default ``sys.stdout``); ``info_file`` the reasoning and the
    final line (default: ``file``; the CLI sends them to stderr, so that a pipe gets the
    answer alone). When a stream is not a terminal, or ``NO_COLOR`` is set, output is plain
    text. ``reasoning=None`` shows reasoning only when ``info_file`` is a terminal.

    Responses delivered at the same time interleave: give each its own sink.
    """

    def __init__(
        self,
        file: TextIO | None = None,
        *,
        info_file: TextIO | None = None,
        reasoning: bool | None = None,
        stats: bool = True,
        color: bool | None = None,
    ) -> None:
        self._file_arg = file
        self._info_arg = info_file
        self.reasoning = reasoning
        self.stats = stats
        self.color = color
        self._progress: dict[str, _Progress] = {}

    @property
    def file(self) -> TextIO:
        # Looked up at write time: sys.stdout may be replaced (pytest's capture, redirection).
        return self._file_arg or sys.stdout

    @property
    def info_file(self) -> TextIO:
        return self._info_arg or self.file

    def _styled(self, stream: TextIO) -> bool:
        if self.color is not None:
            return self.color
        return _isatty(stream) and os.environ.get("NO_COLOR") is None

    async def send(self, event: ResponseEvent) -> None:
        self.write(event)

    def write(self, event: ResponseEvent) -> None:
        """Print one event (the synchronous form of :meth:`send`)."""
        rid = event.response_id
        if event.type == "start":
            self._progress[rid] = _Progress()
            return
        progress = self._progress.setdefault(rid, _Progress())
        if event.type == "reasoning":
            if self._shows_reasoning():
                info = self.info_file
                if not progress.in_reasoning:
                    progress.in_reasoning = progress.reasoned = True
                    if self._styled(info):
                        info.write(_DIM)
                info.write(event.delta)
                info.flush()
        elif event.type == "text":
            self._answer(progress, event.text_so_far)
        elif event.type == "end":
            del self._progress[rid]
            self._end(progress, event)

    def _shows_reasoning(self) -> bool:
        return self.reasoning if self.reasoning is not None else _isatty(self.info_file)

    def _close_reasoning(self, progress: _Progress) -> None:
        if progress.in_reasoning:
            progress.in_reasoning = False
            info = self.info_file
            # A blank line keeps the reasoning apart from the answer, also in plain text.
            info.write((_RESET if self._styled(info) else "") + "\n\n")
            info.flush()

    def _answer(self, progress: _Progress, text_so_far: str) -> None:
        new = text_so_far[progress.printed :]
        if not new:
            return
        self._close_reasoning(progress)
        progress.printed = len(text_so_far)
        self.file.write(new)
        self.file.flush()

    def _end(self, progress: _Progress, end: EndEvent) -> None:
        # A non-streaming response arrives whole with the end event; so may a last piece.
        self._answer(progress, end.text)
        self._close_reasoning(progress)
        out = self.file
        if progress.printed:
            out.write("\n")
        for call in end.tool_calls:
            out.write(f"-> {call.name}({call.arguments})\n")
        out.flush()
        lines = []
        if end.status == "failed":
            lines.append(f"[error: {end.error}]")
        elif end.status == "cancelled":
            lines.append("[cancelled]")
        if self.stats:
            lines.append(summary_line(end))
        if lines:
            info = self.info_file
            dim, reset = (_DIM, _RESET) if self._styled(info) else ("", "")
            for line in lines:
                info.write(f"{dim}{line}{reset}\n")
            info.flush()


def summary_line(end: EndEvent) -> str:
    """``[12 tokens in 0.40 s · 35.1 tokens/s · first token 0.06 s · usage: ... · cost $0.0001 · finish: stop]``

    The cost when it is known (``genai-prices`` installed, the model in its table, usage
    reported by the provider)."""
    usage = end.usage
    out = usage.output_tokens
    parts = []
    if out is not None:
        parts.append(f"{out} tokens in {end.duration or 0.0:.2f} s")
        rate = end.tokens_per_second
        if rate is not None:
            parts.append(f"{rate:.1f} tokens/s")
    if end.time_to_first_token is not None:
        parts.append(f"first token {end.time_to_first_token:.2f} s")
    parts.append(
        f"usage: {usage.input_tokens if usage.input_tokens is not None else '?'} in / "
        f"{out if out is not None else '?'} out ({usage.source})"
    )
    cost = end.cost
    if cost is not None:
        parts.append(
            f"cost {format_money(cost.amount, cost.currency)}" + (" (partial)" if cost.partial else "")
        )
    parts.append(f"finish: {end.finish_reason}")
    return "[" + " · ".join(parts) + "]"


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # (closed or not a real stream)
        return False
