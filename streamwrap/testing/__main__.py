"""Run the emulator in the foreground: ``python -m streamwrap.testing``.

For trying a client against it by hand, and for benchmarks that need the server in
another process.  Listens on 127.0.0.1:8090 by default (not 8000, where ``streamwrap
serve`` listens; ``--port 0`` picks a free port).  Its first line is always
``streamwrap-emulator listening on http://HOST:PORT`` (scripts read the address from it);
then it prints, one line each, the exact ``base_url`` to give each dialect's client, and
which API key it accepts.  It serves a default reply of ``--chunks`` copies of
``--chunk-text`` until SIGTERM or SIGINT, and exits 0.  Every dialect answers with that
reply: OpenAI at ``/v1/chat/completions`` (and its Responses API at ``/v1/responses``), DashScope at
``/api/v1/services/aigc/text-generation/generation``, Gemini at
``/v1beta/models/{model}:streamGenerateContent?alt=sse`` and Ollama at ``/api/chat``.
``--api-key KEY`` makes it refuse any other key as each provider does.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from types import FrameType
from typing import NoReturn

from ._emulator import Emulator
from ._script import Reply

# Not 8000: that is `streamwrap serve`'s port, and both are often run side by side.
DEFAULT_PORT = 8090

# (dialect, its base_url on a running emulator, the streamwrap model_type and client that take it)
_BASE_URLS: tuple[tuple[str, Callable[[Emulator], str], str], ...] = (
    ("openai", lambda emu: emu.openai_base_url, "openai_chat, openai_responses; openai.OpenAI(base_url=...)"),
    ("dashscope", lambda emu: emu.dashscope_base_url, "dashscope_chat; dashscope.base_http_api_url"),
    ("gemini", lambda emu: emu.gemini_base_url, "gemini_chat; genai.Client(http_options={'base_url': ...})"),
    ("ollama", lambda emu: emu.ollama_base_url, "ollama_chat; ollama.Client(host=...)"),
)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m streamwrap.testing",
        description=(
            "Serve an LLM provider emulator until SIGTERM/SIGINT. Every request gets the same default"
            " reply, in the wire format of its path: OpenAI (/v1/chat/completions, /v1/responses), DashScope native"
            " (/api/v1/services/aigc/text-generation/generation), Gemini"
            " (/v1beta/models/MODEL:streamGenerateContent?alt=sse) or Ollama (/api/chat)."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: %(default)s)")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="port; 0 picks a free one (default: %(default)s)"
    )
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
    parser.add_argument(
        "--api-key",
        metavar="KEY",
        help=(
            "require this API key, refusing a missing or wrong one as each provider does"
            " (Ollama has no keys: never checked); default: any key is accepted"
        ),
    )
    args = parser.parse_args(argv)
    if args.api_key == "":
        parser.error("--api-key needs a non-empty KEY")
    return args


def _banner(emulator: Emulator) -> str:
    """What the command prints once it listens: the address, each dialect's base_url, the key rule."""
    lines = [f"streamwrap-emulator listening on {emulator.url}"]
    rows = [(f"{name}:", base_url(emulator), takers) for name, base_url, takers in _BASE_URLS]
    name_width = max(len(name) for name, _, _ in rows)
    url_width = max(len(url) for _, url, _ in rows)
    for name, url, takers in rows:
        lines.append(f"  base_url for {name:<{name_width}} {url:<{url_width}}  ({takers})")
    if emulator.api_key is None:
        lines.append("  API key: any key is accepted (--api-key KEY requires one)")
    else:
        lines.append("  API key: only the one given with --api-key (Ollama requests are not checked)")
    return "\n".join(lines)


def _interrupt(signum: int, frame: FrameType | None) -> NoReturn:
    # Both signals unwind like Ctrl-C.  Installed explicitly for SIGINT too,
    # because a parent shell may have started us with SIGINT ignored.
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator until SIGTERM or SIGINT; return the exit status."""
    args = _parse_args(argv)
    emulator = Emulator(args.host, args.port, api_key=args.api_key)
    emulator.default = Reply(
        text=[args.chunk_text] * args.chunks,
        delay=args.delay,
        stream_usage=True if args.usage else None,
    )
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        try:
            emulator.start()
        except OSError as exc:
            print(
                f"python -m streamwrap.testing: cannot listen on {args.host}:{args.port}:"
                f" {exc.strerror or exc} (--port 0 picks a free port)",
                file=sys.stderr,
            )
            return 1
        print(_banner(emulator), flush=True)
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
