"""The ``streamwrap`` command: ``streamwrap chat "prompt"`` streams a reply to the terminal;
``streamwrap serve`` serves a chat page and its API over HTTP; ``streamwrap pull`` fetches a
local model ahead of time."""

from __future__ import annotations

import argparse
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
from typing import Any, TextIO

from ._config import get_model, load_model, load_model_configs
from ._errors import ConfigError, MissingDependencyError, StreamwrapError
from ._events import EndEvent
from ._interrupt import EXIT_INTERRUPTED, QuietCutOff, SigintStops, exit_process, stopped
from ._providers.llamacpp._model_source import DEFAULT_MODEL, resolve_model
from ._registry import model_types
from ._runtime import runtime
from ._sinks import ConsoleSink
from ._version import __version__
from ._wrapper import ModelWrapper

__all__ = ["main"]

# Providers the CLI can pick from the environment, in order of preference: the variable
# that must be set, and the config it implies (STREAMWRAP_MODEL overrides the model name).
# After these: a reachable Ollama server, then the embedded local model.
_ENV_PROVIDERS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("OPENAI_API_KEY", {"model_type": "openai_chat", "model_name": "gpt-4o-mini"}),
    ("DASHSCOPE_API_KEY", {"model_type": "dashscope_chat", "model_name": "qwen-plus"}),
    ("GEMINI_API_KEY", {"model_type": "gemini_chat", "model_name": "gemini-2.5-flash"}),
    ("GOOGLE_API_KEY", {"model_type": "gemini_chat", "model_name": "gemini-2.5-flash"}),
    ("ZHIPUAI_API_KEY", {"model_type": "zhipuai_chat", "model_name": "glm-4.7-flash"}),
    ("ZAI_API_KEY", {"model_type": "zhipuai_chat", "model_name": "glm-4.7-flash"}),
)
_KEY_NAMES = "OPENAI_API_KEY, DASHSCOPE_API_KEY, GEMINI_API_KEY or ZHIPUAI_API_KEY"
# The embedded default: SmolLM2-135M-Instruct in-process. A CLI reply is capped, so that a
# tiny model that rambles does not keep the terminal for a minute.
_LOCAL_CONFIG: dict[str, Any] = {
    "model_type": "local_chat",
    "model_name": "SmolLM2-135M-Instruct",
    "generate_args": {"max_tokens": 512},
}
# `streamwrap chat` runs one stream: one slot instead of llama.cpp's four saves their KV
# cache (46 MB each for SmolLM2 at 2048 tokens) and some of the load. `serve` keeps four.
_LOCAL_CHAT_CONFIG: dict[str, Any] = {**_LOCAL_CONFIG, "n_parallel": 1}
# Probing Ollama must not slow down a CLI that falls back to the local model.
_OLLAMA_PROBE_SECONDS = 0.3

_NO_PROVIDER = """\
streamwrap: no model is configured. Choose one of:
  pip install 'streamwrap[local]'   (runs SmolLM2-135M-Instruct in-process: no key; its 98 MB
                                     are fetched on first use, or ahead with `streamwrap pull`)
  export OPENAI_API_KEY=...   (uses openai_chat; likewise DASHSCOPE_API_KEY, GEMINI_API_KEY,
                               ZHIPUAI_API_KEY; STREAMWRAP_MODEL picks the model)
  start Ollama                (OLLAMA_HOST, OLLAMA_MODEL)
  streamwrap chat --config models.json --name NAME "prompt"
  streamwrap chat --model-type openai_chat --model-name MODEL --base-url http://127.0.0.1:8000/v1 "prompt"
"""


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
    serve.add_argument("--host", default="127.0.0.1", help="the address to listen on (default: 127.0.0.1, this machine only)")
    serve.add_argument("--port", type=int, default=8000, help="the port (default: 8000; 0 picks a free one)")
    serve.add_argument(
        "--token",
        help="require this token on every request (default: $STREAMWRAP_TOKEN; the environment "
        "keeps it out of the process list)",
    )
    serve.add_argument(
        "--allow-origin", action="append", default=[], metavar="ORIGIN",
        help="an origin whose pages may call the API, e.g. http://localhost:5173 (repeatable; '*' allows any, and needs --token)",
    )
    serve.add_argument(
        "--allow-host", action="append", default=[], metavar="HOST",
        help="a hostname this server may be reached by without a token (IP addresses and localhost always may)",
    )
    serve.add_argument("--title", default="streamwrap", help="the chat page's title")
    serve.add_argument("--open", action="store_true", help="open the chat page in a browser")
    serve.add_argument("--quiet", "-q", action="store_true", help="no request log")
    pull = sub.add_parser(
        "pull",
        help="fetch a local model into the cache ahead of time, and print its path",
        description="Fetch a local_chat model into the cache (once) and print its path. Exit status: "
        "0 fetched or already there, 1 the fetch failed, 2 an unknown name.",
    )
    pull.add_argument(
        "name", nargs="?", default=DEFAULT_MODEL,
        help=f"{DEFAULT_MODEL} (the default), the path of a .gguf file, or hf:<owner>/<repo>/<file>",
    )
    sub.add_parser("model-types", help="list the known model_type values")
    return parser


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    """The options that choose a model, shared by ``chat`` and ``serve`` (see :func:`_pick_model`)."""
    group = parser.add_argument_group(
        "model", "default: an API key in the environment, else a running Ollama, else the local model"
    )
    group.add_argument("--config", help="a JSON or YAML file of model configs")
    group.add_argument("--name", help="config_name of the model to use from --config")
    group.add_argument("--model-type", help=f"one of: {', '.join(model_types())}")
    group.add_argument("--model-name", help="the provider's model name")
    group.add_argument("--base-url", help="the server's base URL (any OpenAI-compatible server)")


def _pick_model(args: argparse.Namespace, stderr: TextIO) -> tuple[ModelWrapper, str]:
    model, origin = _configured_model(args, stderr)
    if model.model_type == "local_chat" and getattr(model, "model_path", "") is None:
        # A local model not fetched yet: fetched now, in view, rather than in silence
        # inside prepare().
        resolve_model(model.model_name, progress=stderr)
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
        config: dict[str, Any] = {"model_type": args.model_type or "openai_chat"}
        if args.model_name:
            config["model_name"] = args.model_name
        if args.base_url:
            config["base_url"] = args.base_url
        return load_model(config), "the command line"
    return _model_from_environment(stderr, chat=args.command == "chat")


def _model_from_environment(stderr: TextIO, *, chat: bool) -> tuple[ModelWrapper, str]:
    """An API key in the environment, else a running Ollama, else the embedded local model."""
    chosen = os.environ.get("STREAMWRAP_MODEL")
    for variable, config in _ENV_PROVIDERS:
        if os.environ.get(variable):
            return load_model({**config, "model_name": chosen or config["model_name"]}), f"${variable}"
    ollama = _probe_ollama()
    if ollama is not None:
        base_url, model_name = ollama
        return (
            load_model({"model_type": "ollama_chat", "model_name": chosen or model_name}),
            f"Ollama at {base_url}",
        )
    from ._providers.llamacpp._wrapper import embedded_model_path, local_runtime_installed

    if local_runtime_installed():
        if embedded_model_path() is None:
            # First use: fetched now, in view (98 MB), rather than inside load_model in silence.
            print(f"streamwrap: no provider is configured: using the local model {DEFAULT_MODEL}, "
                  "not fetched yet", file=stderr, flush=True)
            resolve_model(DEFAULT_MODEL, progress=stderr)
        return (
            load_model(_LOCAL_CHAT_CONFIG if chat else _LOCAL_CONFIG),
            f"in-process; set {_KEY_NAMES}, or start Ollama, to use a provider",
        )
    raise _NoModel(_NO_PROVIDER)


def _probe_ollama() -> tuple[str, str] | None:
    """(base URL, model) of an Ollama server that answers quickly, or ``None``.

    The model is ``$OLLAMA_MODEL``, else the first one the server has pulled.
    """
    import json
    import urllib.error
    import urllib.request

    from ._providers.ollama._wrapper import parse_ollama_host

    try:
        base_url = parse_ollama_host(os.environ.get("OLLAMA_HOST"))
    except StreamwrapError:
        return None
    # No proxy: Ollama is usually on this machine, and a proxy would only add delay.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(base_url + "/api/tags", timeout=_OLLAMA_PROBE_SECONDS) as reply:
            tags = json.loads(reply.read())
    except (OSError, ValueError):
        return None
    wanted = os.environ.get("OLLAMA_MODEL")
    if wanted:
        return base_url, wanted
    models = tags.get("models") if isinstance(tags, dict) else None
    for model in models if isinstance(models, list) else ():
        name = model.get("name") or model.get("model") if isinstance(model, dict) else None
        if isinstance(name, str) and name:
            return base_url, name
    return None  # a server with no model pulled cannot answer


def _read_prompt(args: argparse.Namespace, stdin: TextIO) -> str:
    if args.prompt is not None and args.prompt != "-":
        prompt = str(args.prompt)
    elif stdin.isatty() and args.prompt is None:
        raise _UsageError("no prompt: pass it as an argument or on stdin")
    else:
        prompt = stdin.read()
    if not prompt.strip():
        raise _UsageError("the prompt is empty" + (" (nothing on stdin)" if args.prompt in (None, "-") else ""))
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
        print("streamwrap: note: neither 'websockets' nor 'wsproto' is installed: /ws will not work "
              "(pip install \"streamwrap[web]\")", file=stderr)

    _check_origins(args.allow_origin, token)
    model, origin = _pick_model(args, stderr)
    # Before listening: the first request must not wait for the SDK's import.
    model.prepare()
    app = chat_app(model, token=token, allowed_origins=args.allow_origin, allowed_hosts=args.allow_host,
                   title=args.title)
    loopback = _is_loopback(args.host)
    if not loopback and token is None:
        print(
            f"streamwrap: WARNING: listening on {args.host}, which other machines may reach, WITHOUT A TOKEN:\n"
            "  anyone who can connect can use this model (and spend its API quota).\n"
            "  Set STREAMWRAP_TOKEN (or pass --token), or listen on 127.0.0.1.",
            file=stderr, flush=True,
        )
    try:
        sock = _listen(args.host, args.port)
    except OSError as exc:
        raise StreamwrapError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    port = sock.getsockname()[1]
    # The token travels in the fragment, which the browser never sends: no server, proxy or
    # access log sees it (the page reads it, keeps it in the tab and clears the address bar).
    url = f"http://{_url_host(args.host)}:{port}/" + (f"#token={urllib.parse.quote(token, safe='')}" if token else "")

    def started() -> None:
        print(f"streamwrap: {model.model_type} {model.model_name} ({origin})", file=stderr)
        print(f"streamwrap: serving at {url}  (Ctrl-C stops)", file=stderr, flush=True)
        if args.open:
            import webbrowser

            # A browser can take a while to launch; the server must not wait for it.
            threading.Thread(target=webbrowser.open, args=(url,), daemon=True).start()

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                started()

        def handle_exit(self, sig: int, frame: Any) -> None:
            # uvicorn's Ctrl-C waits for open responses: end the replies in flight now.
            runtime.cancel_all()
            super().handle_exit(sig, frame)

    config = uvicorn.Config(
        app,
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
    try:
        Server(config).run(sockets=[sock])
    except KeyboardInterrupt:
        pass  # uvicorn shut down gracefully, then re-raised the Ctrl-C it had captured
    finally:
        sock.close()
    stopped(stderr, "streamwrap: stopped")
    return 0


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
        sock.listen(128)  # connections made before uvicorn accepts wait in the backlog
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


def main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None,
         stdin: TextIO | None = None) -> int:
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
