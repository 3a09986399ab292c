"""Run the emulator in the foreground: ``python -m streamwrap.testing``.

For benchmarks that need the server in another process.  Prints exactly one
line, ``streamwrap-emulator listening on http://HOST:PORT``, then serves a
default reply of ``--chunks`` copies of ``--chunk-text`` until SIGTERM or
SIGINT, and exits 0.  Every dialect answers with that reply: OpenAI at
``/v1/chat/completions``, DashScope at
``/api/v1/services/aigc/text-generation/generation``, Gemini at
``/v1beta/models/{model}:streamGenerateContent?alt=sse`` and Ollama at
``/api/chat``.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import NoReturn

from ._emulator import Emulator
from ._script import Reply


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m streamwrap.testing",
        description=(
            "Serve an LLM provider emulator until SIGTERM/SIGINT. Every request gets the same default"
            " reply, in the wire format of its path: OpenAI (/v1/chat/completions), DashScope native"
            " (/api/v1/services/aigc/text-generation/generation), Gemini"
            " (/v1beta/models/MODEL:streamGenerateContent?alt=sse) or Ollama (/api/chat)."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=0, help="port; 0 picks a free one (default: %(default)s)")
    parser.add_argument("--chunks", type=int, default=10, help="text chunks per reply (default: %(default)s)")
    parser.add_argument("--chunk-text", default="tok ", help="text of each chunk (default: %(default)r)")
    parser.add_argument(
        "--delay", type=float, default=0.0, help="seconds between stream events (default: %(default)s)"
    )
    parser.add_argument(
        "--usage",
        action="store_true",
        help="end every OpenAI stream with a usage chunk, even if the request did not ask",
    )
    return parser.parse_args(argv)


def _interrupt(signum: int, frame: FrameType | None) -> NoReturn:
    # Both signals unwind like Ctrl-C.  Installed explicitly for SIGINT too,
    # because a parent shell may have started us with SIGINT ignored.
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator until SIGTERM or SIGINT; return the exit status."""
    args = _parse_args(argv)
    emulator = Emulator(args.host, args.port)
    emulator.default = Reply(
        text=[args.chunk_text] * args.chunks,
        delay=args.delay,
        stream_usage=True if args.usage else None,
    )
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        emulator.start()
        print(f"streamwrap-emulator listening on {emulator.url}", flush=True)
        threading.Event().wait()  # only a signal ends this wait
    except KeyboardInterrupt:
        pass
    finally:
        # A second signal must not interrupt the shutdown.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
