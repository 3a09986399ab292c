"""Ctrl-C in the ``streamwrap`` command: a prompt, clean stop, whatever the command is doing.

Python's own handling raises ``KeyboardInterrupt`` in the main thread wherever it happens
to be, and nothing else stops: the runtime's thread goes on pumping the stream (or
importing a provider SDK, which takes seconds the first time), a local model's worker goes
on computing, and the interrupt surfaces as a traceback from whichever line it hit.

The handler installed here first cancels every in-flight stream through the runtime, so
that the provider connection closes and a local model stops at once (see ``_providers/llamacpp/_engine``), then
raises ``KeyboardInterrupt`` to unwind the command to :func:`stopped`, which reports it.
Further Ctrl-Cs are ignored while the command winds down: it takes a fraction of a second,
and a second interrupt landing in that clean-up would only leave a traceback behind.

The command installs it before anything slow (importing SDKs, loading a model), so that a
Ctrl-C during those stops just as cleanly.

Then :func:`exit_process` ends the process. After Ctrl-C it runs the exit handlers (they
close connections and stop local models, see ``_runtime`` and ``_providers/llamacpp/_engine``) and leaves
without the interpreter's teardown of every module: with a provider SDK loaded that alone
takes 0.3-0.4 s (measured with ``openai``), which a person waiting for the prompt notices.
(Nor does it wait for non-daemon threads: the library's own threads are all daemons.)
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import sys
import threading
from types import FrameType, TracebackType
from typing import Any, NoReturn, TextIO

from ._runtime import runtime

__all__ = ["EXIT_INTERRUPTED", "QuietCutOff", "SigintStops", "exit_process", "stopped"]

#: The exit status of a command stopped by Ctrl-C: 128 + SIGINT, as shells report it.
EXIT_INTERRUPTED = 130


class SigintStops:
    """While active (``with``), Ctrl-C cancels every stream and raises ``KeyboardInterrupt``
    once. Only the main thread can handle signals: elsewhere (the CLI run from a test's
    thread) this does nothing."""

    def __init__(self) -> None:
        self._previous: Any = None
        self._installed = False
        self.interrupted = False

    def __enter__(self) -> SigintStops:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # After a Ctrl-C the handler stays, ignoring further ones: the process is about to
        # exit (see exit_process), and Python's own handler would raise in its clean-up.
        if self._installed and not self.interrupted:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        global _interrupted
        if self.interrupted:
            return  # winding down already
        self.interrupted = _interrupted = True
        runtime.cancel_all()
        raise KeyboardInterrupt


# Whether Ctrl-C has stopped the command in this process (read by exit_process).
_interrupted = False


def stopped(stderr: TextIO, message: str, *, stdout: TextIO | None = None) -> None:
    """Report a command stopped by Ctrl-C: what it printed stays (flushed, for a pipe),
    and ``message`` goes to stderr on a line of its own."""
    # First the work outside the runtime's loop, such as a local model's generations: stop
    # it and wait for it (a load, or the current batch of a prompt). The exit handlers would
    # do it too, but then after "interrupted" was printed, as if the command had stopped
    # already. Not freed: exit_process ends the process without the interpreter's teardown.
    runtime.run_stop_hooks()
    for stream in (stdout, stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass  # a closed pipe or file: nothing more to keep
    try:
        print(message, file=stderr, flush=True)
    except (OSError, ValueError):
        pass


class QuietCutOff(logging.Filter):
    """For uvicorn's error log in ``streamwrap serve``: a text reply cut off because it was
    cancelled (Ctrl-C cancels the replies in flight) is one line, not a traceback.

    Raising is the only way an ASGI app can have the server close a connection without
    ending the body (so that the client knows the text is incomplete); uvicorn logs any
    such exception as "Exception in ASGI application", with its traceback.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        from .web._responses import TextCutOff

        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, TextCutOff):
            record.msg, record.args, record.exc_info, record.exc_text = str(error), None, None, None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def exit_process(status: int) -> NoReturn:
    """End the process with ``status``: the command's entry points call this."""
    if not _interrupted:
        sys.exit(status)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the clean-up below is short: let it finish
    run_exit_handlers: Any = getattr(atexit, "_run_exitfuncs", None)  # (CPython, PyPy)
    if run_exit_handlers is None:
        sys.exit(status)
    run_exit_handlers()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status)
