"""The ``streamwrap`` command: ``streamwrap chat "prompt"`` streams a reply to the terminal."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from ._config import get_model, load_model, load_model_configs
from ._delta import ReasoningDelta, TextDelta
from ._errors import ConfigError, StreamwrapError
from ._registry import model_types
from ._response import ModelResponse
from ._version import __version__
from ._wrapper import ModelWrapper

__all__ = ["main"]

# Providers the CLI can pick from the environment, in order of preference: the variable
# that must be set, and the config it implies. (The embedded local model joins this list.)
_ENV_PROVIDERS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("OPENAI_API_KEY", {"model_type": "openai_chat", "model_name": "gpt-4o-mini"}),
)

_NO_PROVIDER = """\
streamwrap: no model is configured. Choose one of:
  streamwrap chat --config models.json --name NAME "prompt"
  streamwrap chat --model-type openai_chat --model-name MODEL --base-url http://127.0.0.1:8000/v1 "prompt"
  export OPENAI_API_KEY=...   (uses openai_chat; STREAMWRAP_MODEL picks the model)
"""


class _NoModel(Exception):
    """No model was chosen and none could be picked from the environment."""


class _Dim:
    """ANSI dim for reasoning text, only when the stream is a terminal."""

    def __init__(self, stream: TextIO) -> None:
        on = stream.isatty() and os.environ.get("NO_COLOR") is None
        self.start = "\x1b[2m" if on else ""
        self.end = "\x1b[0m" if on else ""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamwrap", description="Stream LLM replies to the terminal.")
    parser.add_argument("--version", action="version", version=f"streamwrap {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    chat = sub.add_parser("chat", help="stream a reply to a prompt (argument or stdin)")
    chat.add_argument("prompt", nargs="?", help="the prompt; '-' or absent reads stdin")
    chat.add_argument("--config", help="a JSON or YAML file of model configs")
    chat.add_argument("--name", help="config_name of the model to use from --config")
    chat.add_argument("--model-type", help=f"one of: {', '.join(model_types())}")
    chat.add_argument("--model-name", help="the provider's model name")
    chat.add_argument("--base-url", help="the server's base URL (any OpenAI-compatible server)")
    chat.add_argument("--system", help="a system message")
    chat.add_argument("--no-stream", action="store_true", help="ask for the whole reply at once")
    chat.add_argument("--hide-reasoning", action="store_true", help="do not print reasoning text")
    chat.add_argument("--quiet", "-q", action="store_true", help="no status lines on stderr")
    sub.add_parser("model-types", help="list the known model_type values")
    return parser


def _pick_model(args: argparse.Namespace) -> tuple[ModelWrapper, str]:
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
    for variable, config in _ENV_PROVIDERS:
        if os.environ.get(variable):
            config = {**config, "model_name": os.environ.get("STREAMWRAP_MODEL") or config["model_name"]}
            return load_model(config), f"${variable}"
    raise _NoModel(_NO_PROVIDER)


def _read_prompt(args: argparse.Namespace, stdin: TextIO) -> str:
    if args.prompt and args.prompt != "-":
        return str(args.prompt)
    if stdin.isatty() and args.prompt is None:
        raise StreamwrapError("no prompt: pass it as an argument or on stdin")
    return stdin.read()


def _summary(response: ModelResponse) -> str:
    usage = response.usage
    parts = []
    out = usage.output_tokens
    duration = response.duration or 0.0
    ttft = response.time_to_first_token
    if out is not None:
        parts.append(f"{out} tokens in {duration:.2f} s")
        generating = duration - (ttft or 0.0)
        if generating > 0 and out > 1:
            parts.append(f"{out / generating:.1f} tokens/s")
    if ttft is not None:
        parts.append(f"first token {ttft:.2f} s")
    parts.append(
        f"usage: {usage.input_tokens if usage.input_tokens is not None else '?'} in / "
        f"{out if out is not None else '?'} out ({usage.source})"
    )
    parts.append(f"finish: {response.finish_reason}")
    return "[" + " · ".join(parts) + "]"


def _chat(args: argparse.Namespace, stdout: TextIO, stderr: TextIO, stdin: TextIO) -> int:
    model, origin = _pick_model(args)
    prompt = _read_prompt(args, stdin)
    messages: list[dict[str, str]] = []
    if args.system:
        messages.append({"role": "system", "content": args.system})
    messages.append({"role": "user", "content": prompt})
    if not args.quiet:
        print(f"streamwrap: {model.model_type} {model.model_name} ({origin})", file=stderr, flush=True)
    response = model.call_sync(messages, stream=not args.no_stream)
    dim = _Dim(stderr)
    in_reasoning = False
    try:
        for delta in response.deltas_sync():
            cls = delta.__class__
            if cls is ReasoningDelta and not args.hide_reasoning:
                if not in_reasoning:
                    stderr.write(dim.start)
                    in_reasoning = True
                stderr.write(delta)  # type: ignore[arg-type]
                stderr.flush()
            elif cls is TextDelta:
                if in_reasoning:
                    stderr.write(dim.end + "\n")
                    stderr.flush()
                    in_reasoning = False
                stdout.write(delta)  # type: ignore[arg-type]
                stdout.flush()
    except KeyboardInterrupt:
        response.close()
        stdout.write("\n")
        print("streamwrap: interrupted", file=stderr)
        return 130
    finally:
        if in_reasoning:
            stderr.write(dim.end + "\n")
    stdout.write("\n")
    stdout.flush()
    if not args.quiet:
        print(_summary(response), file=stderr, flush=True)
    return 0


def main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None,
         stdin: TextIO | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 1 error, 2 usage or configuration)."""
    out, err, inp = stdout or sys.stdout, stderr or sys.stderr, stdin or sys.stdin
    args = _parser().parse_args(argv)
    if args.command == "model-types":
        print("\n".join(model_types()), file=out)
        return 0
    try:
        return _chat(args, out, err, inp)
    except _NoModel as exc:
        print(exc.args[0], file=err, end="")
        return 2
    except ConfigError as exc:
        print(f"streamwrap: configuration error: {exc}", file=err)
        return 2
    except StreamwrapError as exc:
        print(f"streamwrap: error: {exc}", file=err)
        return 1


def main_entry() -> None:
    """Console-script entry point."""
    sys.exit(main())
