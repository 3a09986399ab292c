"""The ``streamwrap`` command: ``streamwrap chat "prompt"`` streams a reply to the terminal;
``streamwrap serve`` serves a chat page and its API over HTTP; ``streamwrap pull`` fetches a
local model ahead of time."""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import ipaddress
import logging
import os
import re
import socket
import sys
import threading
import urllib.parse
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO

from ._config import get_model, load_model, load_model_configs
from ._errors import ConfigError, MissingDependencyError, StreamwrapError
from ._events import EndEvent
from ._interrupt import EXIT_INTERRUPTED, QuietCutOff, SigintStops, exit_process, stopped
from ._providers._default_model import (
    BASE_URL_HELP,
    CHOICE_HELP,
    COMMAND_LINE_MODEL_TYPE,
    DEFAULT_MODEL,
    LOCAL_MODEL_TYPE,
    NO_MODEL_HELP,
    fetch_if_missing,
    model_from_environment,
    resolve_model,
)
from ._registry import model_types
from ._runtime import runtime
from ._sinks import ConsoleSink
from ._version import __version__
from ._wrapper import ModelWrapper

if TYPE_CHECKING:
    from .web import StreamStore

__all__ = ["main"]


class _NoModel(Exception):
    """No model was chosen and none could be picked from the environment."""


class _UsageError(Exception):
    """A command line that cannot be run, reported as argparse reports its own (exit 2)."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamwrap", description="Stream LLM replies to the terminal.")
    parser.add_argument("--version", action="version", version=f"streamwrap {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    chat = sub.add_parser("chat", help="stream a reply to a prompt (argument or stdin)")
    chat.add_argument("prompt", nargs="?", help="the prompt; '-' or absent reads stdin")
    _add_model_options(chat)
    chat.add_argument("--system", help="a system message")
    chat.add_argument("--max-tokens", type=int, help="the longest reply, in tokens")
    chat.add_argument("--no-stream", action="store_true", help="ask for the whole reply at once")
    chat.add_argument("--hide-reasoning", action="store_true", help="do not print reasoning text")
    chat.add_argument("--quiet", "-q", action="store_true", help="no status lines on stderr")
    chat.set_defaults(usage=chat.format_usage)
    serve = sub.add_parser(
        "serve",
        help="serve a chat page and its API (SSE, websocket) over HTTP",
        description="Serve a chat page at / and its API: POST /api/chat (the Vercel AI SDK's UI "
        "message stream), GET|POST /api/chat/text, WS /ws, GET /healthz. Needs streamwrap[web].",
    )
    _add_model_options(serve)
    serve.add_argument(
        "--host", default="127.0.0.1", help="the address to listen on (default: 127.0.0.1, this machine only)"
    )
    serve.add_argument("--port", type=int, default=8000, help="the port (default: 8000; 0 picks a free one)")
    serve.add_argument(
        "--token",
        help="require this token on every request (default: $STREAMWRAP_TOKEN; the environment "
        "keeps it out of the process list)",
    )
    serve.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="an origin whose pages may call the API, e.g. http://localhost:5173 (repeatable; '*' allows any, and needs --token)",
    )
    serve.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="HOST",
        help="a hostname this server may be reached by without a token (IP addresses and localhost always may)",
    )
    serve.add_argument(
        "--redis",
        metavar="URL",
        help="keep replies in this Redis (redis:// or rediss://), shared by every worker and server "
        "that uses it (default: in this process's memory); needs streamwrap[redis]",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes sharing the listening socket (default: 1; more need --redis)",
    )
    serve.add_argument("--title", default="streamwrap", help="the chat page's title")
    serve.add_argument("--open", action="store_true", help="open the chat page in a browser")
    serve.add_argument("--quiet", "-q", action="store_true", help="no request log")
    pull = sub.add_parser(
        "pull",
        help="fetch a local model into the cache ahead of time, and print its path",
        description=f"Fetch a {LOCAL_MODEL_TYPE} model into the cache (once) and print its path. Exit status: "
        "0 fetched or already there, 1 the fetch failed, 2 an unknown name.",
    )
    pull.add_argument(
        "name",
        nargs="?",
        default=DEFAULT_MODEL,
        help=f"{DEFAULT_MODEL} (the default), the path of a .gguf file, or hf:<owner>/<repo>/<file>",
    )
    sub.add_parser("model-types", help="list the known model_type values")
    return parser


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    """The options that choose a model, shared by ``chat`` and ``serve`` (see :func:`_pick_model`)."""
    group = parser.add_argument_group("model", CHOICE_HELP)
    group.add_argument("--config", help="a JSON or YAML file of model configs")
    group.add_argument("--name", help="config_name of the model to use from --config")
    group.add_argument("--model-type", help=f"one of: {', '.join(model_types())}")
    group.add_argument("--model-name", help="the provider's model name")
    group.add_argument("--base-url", help=BASE_URL_HELP)


def _pick_model(args: argparse.Namespace, stderr: TextIO) -> tuple[ModelWrapper, str]:
    model, origin = _configured_model(args, stderr)
    fetch_if_missing(model, stderr)
    return model, origin


def _configured_model(args: argparse.Namespace, stderr: TextIO) -> tuple[ModelWrapper, str]:
    if args.config:
        wrappers = load_model_configs(args.config)
        if args.name:
            return get_model(args.name), f"{args.name} from {args.config}"
        if len(wrappers) == 1:
            return wrappers[0], f"the model in {args.config}"
        raise StreamwrapError(f"{args.config} holds {len(wrappers)} models: pick one with --name")
    if args.name:
        raise StreamwrapError("--name needs --config")
    if args.model_type or args.model_name or args.base_url:
        config: dict[str, Any] = {"model_type": args.model_type or COMMAND_LINE_MODEL_TYPE}
        if args.model_name:
            config["model_name"] = args.model_name
        if args.base_url:
            config["base_url"] = args.base_url
        return load_model(config), "the command line"
    found = model_from_environment(stderr, chat=args.command == "chat")
    if found is None:
        raise _NoModel(NO_MODEL_HELP)
    return found


def _read_prompt(args: argparse.Namespace, stdin: TextIO) -> str:
    if args.prompt is not None and args.prompt != "-":
        prompt = str(args.prompt)
    elif stdin.isatty() and args.prompt is None:
        raise _UsageError("no prompt: pass it as an argument or on stdin")
    else:
        prompt = stdin.read()
    if not prompt.strip():
        raise _UsageError(
            "the prompt is empty" + (" (nothing on stdin)" if args.prompt in (None, "-") else "")
        )
    return prompt


def _chat(args: argparse.Namespace, stdout: TextIO, stderr: TextIO, stdin: TextIO) -> int:
    # The prompt first: picking a model may fetch or load one, which is slow to learn nothing.
    prompt = _read_prompt(args, stdin)
    model, origin = _pick_model(args, stderr)
    messages: list[dict[str, str]] = []
    if args.system:
        messages.append({"role": "system", "content": args.system})
    messages.append({"role": "user", "content": prompt})
    if not args.quiet:
        print(f"streamwrap: {model.model_type} {model.model_name} ({origin})", file=stderr, flush=True)
    generate: dict[str, Any] = {}
    if args.max_tokens is not None:
        if args.max_tokens <= 0:
            raise ConfigError("--max-tokens must be > 0.", key="max_tokens")
        generate["max_tokens"] = args.max_tokens
    # The SDK's import and client before the call: the "first token" figure is the model's.
    model.prepare()
    response = model.call_sync(messages, stream=not args.no_stream, **generate)
    # The answer alone on stdout (pipes get just that); reasoning, errors and the final
    # line on stderr, dimmed on a terminal.
    console = ConsoleSink(stdout, info_file=stderr, reasoning=not args.hide_reasoning, stats=not args.quiet)
    status = "finished"
    try:
        for event in response.events_sync():
            console.write(event)
            if isinstance(event, EndEvent):
                status = event.status
    except KeyboardInterrupt:
        response.close()
        stdout.write("\n")
        print("streamwrap: interrupted", file=stderr)
        return 130
    return 1 if status == "failed" else 0


def _pull(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """``streamwrap pull [NAME]``: the model's path on stdout (for scripts), progress on stderr."""
    print(resolve_model(args.name, progress=stderr), file=stdout)
    return 0


def _serve(args: argparse.Namespace, stderr: TextIO) -> int:
    """``streamwrap serve``: :func:`streamwrap.web.chat_app` under uvicorn, until Ctrl-C."""
    token = args.token if args.token is not None else os.environ.get("STREAMWRAP_TOKEN") or None
    if token is not None and not token.strip():
        raise ConfigError("--token must not be empty.", key="token")
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be 0-65535, got {args.port}.", key="port")
    if not 1 <= args.workers <= 64:
        raise ConfigError(f"--workers must be 1-64, got {args.workers}.", key="workers")
    if args.workers > 1 and args.redis is None:
        raise ConfigError(
            "--workers above 1 needs --redis URL: a reply must be readable from every worker "
            "(a reload or a reconnect may reach any of them).",
            key="workers",
        )
    if args.workers > 1 and not hasattr(os, "fork"):
        raise ConfigError("--workers above 1 needs a system with fork().", key="workers")
    # The dependencies first: picking a model may load one, which is slow to learn nothing.
    try:
        import uvicorn
    except ImportError:
        raise MissingDependencyError("uvicorn", "web") from None
    try:
        from .web import chat_app
    except MissingDependencyError:
        raise
    except ImportError as exc:
        if exc.name is None or exc.name.startswith("streamwrap"):
            raise  # our own module is broken: not a missing dependency
        raise MissingDependencyError(exc.name.partition(".")[0], "web") from None
    if importlib.util.find_spec("websockets") is None and importlib.util.find_spec("wsproto") is None:
        print(
            "streamwrap: note: neither 'websockets' nor 'wsproto' is installed: /ws will not work "
            '(pip install "streamwrap[web]")',
            file=stderr,
        )

    _check_origins(args.allow_origin, token)
    if args.redis is not None:
        from .web import RedisStreamStore  # (here: a missing redis-py is reported before the model loads)

        RedisStreamStore(args.redis)  # checks the URL
    model, origin = _pick_model(args, stderr)

    def make_app() -> Any:
        # Each worker its own store: a Redis client and its connections belong to one process.
        # (RedisStreamStore is imported only when asked for: it needs redis-py, an extra that
        # plain `serve` does not.)
        store: StreamStore
        if args.redis is None:
            from .web import MemoryStreamStore

            store = MemoryStreamStore()
        else:
            from .web import RedisStreamStore

            store = RedisStreamStore(args.redis)
        return chat_app(
            model,
            token=token,
            allowed_origins=args.allow_origin,
            allowed_hosts=args.allow_host,
            title=args.title,
            store=store,
        )

    if args.workers == 1:
        # Before listening: the first request must not wait for the SDK's import.
        model.prepare()
    loopback = _is_loopback(args.host)
    if not loopback and token is None:
        print(
            f"streamwrap: WARNING: listening on {args.host}, which other machines may reach, WITHOUT A TOKEN:\n"
            "  anyone who can connect can use this model (and spend its API quota).\n"
            "  Set STREAMWRAP_TOKEN (or pass --token), or listen on 127.0.0.1.",
            file=stderr,
            flush=True,
        )
    try:
        sock = _listen(args.host, args.port)
    except OSError as exc:
        raise StreamwrapError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    port = sock.getsockname()[1]
    # The token travels in the fragment, which the browser never sends: no server, proxy or
    # access log sees it (the page reads it, keeps it in the tab and clears the address bar).
    url = f"http://{_url_host(args.host)}:{port}/" + (
        f"#token={urllib.parse.quote(token, safe='')}" if token else ""
    )

    def started() -> None:
        print(f"streamwrap: {model.model_type} {model.model_name} ({origin})", file=stderr)
        if args.workers > 1:
            print(f"streamwrap: {args.workers} workers, replies in Redis", file=stderr)
        print(f"streamwrap: serving at {url}  (Ctrl-C stops)", file=stderr, flush=True)
        if args.open:
            import webbrowser

            # A browser can take a while to launch; the server must not wait for it.
            threading.Thread(target=webbrowser.open, args=(url,), daemon=True).start()

    class Server(uvicorn.Server):
        announce = True  # (the workers of --workers N do not: their parent does, once)

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started and self.announce:
                started()

        def handle_exit(self, sig: int, frame: Any) -> None:
            # uvicorn's Ctrl-C waits for open responses: end the replies in flight now.
            runtime.cancel_all()
            super().handle_exit(sig, frame)

    config = uvicorn.Config(
        make_app(),
        log_level="warning" if args.quiet else "info",
        lifespan="off",  # chat_app has no startup work; skips three lines of log
        # The access log would write every ?token= URL (the page, the websocket) to the terminal.
        access_log=token is None and not args.quiet,
        # Streams and websockets stay open; Ctrl-C must not wait for them for long.
        timeout_graceful_shutdown=2,
        ws_max_size=1024 * 1024,
    )
    if token is not None:
        # uvicorn logs websocket handshakes, query string included, outside the access log.
        for name in ("uvicorn.error", "uvicorn.access"):
            logging.getLogger(name).addFilter(_RedactToken())
    logging.getLogger("uvicorn.error").addFilter(QuietCutOff())
    if args.workers > 1:
        _run_workers(args.workers, lambda: _serve_worker(Server, config, sock, make_app), started)
        sock.close()
        stopped(stderr, "streamwrap: stopped")
        return 0
    try:
        Server(config).run(sockets=[sock])
    except KeyboardInterrupt:
        pass  # uvicorn shut down gracefully, then re-raised the Ctrl-C it had captured
    finally:
        sock.close()
    stopped(stderr, "streamwrap: stopped")
    return 0


def _serve_worker(server_class: Any, config: Any, sock: socket.socket, make_app: Any) -> None:
    """One worker process of ``serve --workers N``: its own app, store and model client,
    on the listening socket it inherited (the kernel hands each connection to one of the
    workers blocked in accept())."""
    config.app = make_app()
    server = server_class(config)
    server.announce = False
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass


def _run_workers(count: int, work: Any, started: Any) -> None:
    """Fork ``count`` workers that run ``work()``; replace one that dies (killed, crashed)
    until Ctrl-C or SIGTERM, which every worker gets too (Ctrl-C reaches the process group;
    SIGTERM is passed on)."""
    import signal
    import time

    def fork() -> int:
        pid = os.fork()
        if pid == 0:  # the worker: Python's own signal handling, until uvicorn sets its own
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            code = 0
            try:
                work()
            except Exception:  # reported, then the worker exits
                logging.getLogger("streamwrap").exception("a worker failed")
                code = 1
            finally:
                sys.stderr.flush()
                os._exit(code)  # (never back into the parent's code)
        return pid

    stopping = False

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for pid in workers:
            # SIGTERM, which uvicorn handles as it does Ctrl-C: a worker that also got the
            # terminal's Ctrl-C then stops without waiting for its open streams.
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    workers: list[int] = []
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        workers.extend(fork() for _ in range(count))
        started()
        while workers:
            try:
                pid, _ = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            except InterruptedError:  # pragma: no cover - PEP 475 retries
                continue
            if pid in workers:
                workers.remove(pid)
                if not stopping:
                    time.sleep(0.1)  # (a worker failing at once must not spin)
                    workers.append(fork())
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _check_origins(origins: list[str], token: str | None) -> None:
    from .web._guard import open_origins

    anyone = open_origins(origins)
    if anyone and token is None:
        raise ConfigError(
            f"--allow-origin {anyone[0]!r} without a token would let every web page you visit use this "
            "model (and spend its API quota). Either add --token (or set STREAMWRAP_TOKEN) and give it "
            "to the pages that may call the API, or name those pages' origins instead, e.g. "
            "--allow-origin http://localhost:5173.",
            key="allow_origin",
        )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a hostname: it may well resolve to a public interface


def _url_host(host: str) -> str:
    """The host to print in the URL: a wildcard address is not one a browser can open."""
    host = host.strip("[]")
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket, bound here rather than by uvicorn: errors are ours to report,
    and the real port of ``--port 0`` is known before the URL is printed."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host.strip("[]") or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        # Connections made before a worker accepts wait in the backlog: uvicorn's own
        # default (2048; the kernel caps it at somaxconn), not 128, which a burst of a few
        # hundred connecting clients overflows into SYN retries (a second's stall each).
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


class _RedactToken(logging.Filter):
    _TOKEN = re.compile(r"([?&]token=)[^&\s\"']*")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "token=" in message:
            record.msg, record.args = self._TOKEN.sub(r"\1***", message), None
        return True


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    stdin: TextIO | None = None,
) -> int:
    """Run the CLI; returns the exit status (0 ok, 1 error, 2 usage or configuration,
    130 interrupted by Ctrl-C; ``serve`` stopped by Ctrl-C: 0)."""
    out, err, inp = stdout or sys.stdout, stderr or sys.stderr, stdin or sys.stdin
    # Before anything slow (SDK imports, model loading): Ctrl-C there stops as cleanly as mid-reply.
    with SigintStops():
        command = None
        try:
            args = _parser().parse_args(argv)
            command = args.command
            return _run(args, out, err, inp)
        except KeyboardInterrupt:
            if command == "serve":
                stopped(err, "streamwrap: stopped")
                return 0
            stopped(err, "streamwrap: interrupted", stdout=out)
            return EXIT_INTERRUPTED


def _run(args: argparse.Namespace, out: TextIO, err: TextIO, inp: TextIO) -> int:
    if args.command == "model-types":
        print("\n".join(model_types()), file=out)
        return 0
    try:
        if args.command == "serve":
            return _serve(args, err)
        if args.command == "pull":
            return _pull(args, out, err)
        return _chat(args, out, err, inp)
    except _UsageError as exc:
        print(args.usage(), file=err, end="")
        print(f"streamwrap {args.command}: error: {exc}", file=err)
        return 2
    except _NoModel as exc:
        print(exc.args[0], file=err, end="")
        return 2
    except MissingDependencyError as exc:
        print(f"streamwrap: {exc}", file=err)
        return 2
    except ConfigError as exc:
        print(f"streamwrap: configuration error: {exc}", file=err)
        return 2
    except StreamwrapError as exc:
        print(f"streamwrap: error: {exc}", file=err)
        return 1


def main_entry() -> None:
    """Console-script entry point."""
    exit_process(main())
