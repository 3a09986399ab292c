"""``local_chat``: a GGUF model run in-process by llama.cpp's own server engine (``xllamacpp``).

This is the embedded default: ``model_name="smollm2"`` runs SmolLM2-135M-Instruct, with no
account and no key; its GGUF file is fetched once into the user's cache (see
:mod:`._model_source`). Any other GGUF file works too: give its path (or
``hf:<owner>/<repo>/<file>``) as ``model_name``.

Loading. A file that is not on disk yet is fetched when the model is loaded, not when the
wrapper is made: ``load_model`` stays quick and never downloads on the caller's thread.
The load (fetch included) runs on a worker thread, in :meth:`LocalChatWrapper.prepare` or
else before the first call's request goes out, so that it is not counted in that call's
``time_to_first_token`` (as for the SDK import of the other wrappers).

How it fits the runtime. llama.cpp's server engine (see :mod:`._engine`) is blocking
C++, so generation never runs on the runtime's event loop: each call runs on a worker
thread, which receives the reply chunk by chunk (OpenAI ``chat.completion.chunk`` JSON,
read by the shared OpenAI mapping, see :mod:`._wire`) and hands the deltas to the
producer task through a :class:`~._thread_feed.ThreadFeed` (one wake-up per batch, not per
token). Cancelling the response (``break``, ``aclose()``, garbage collection, a timeout)
sets a flag that the worker reads at the next token: llama.cpp then cancels the request
and frees its slot.

Concurrency. One loaded model serves ``n_parallel`` streams at once (llama.cpp's slots,
continuous batching); further calls queue, still cancellable while they wait.

Usage is exact, counted by llama.cpp with the model's own tokenizer (``source`` is
``"provider"``), and current after every token, so a cancelled reply reports what it
generated. Tool calls and reasoning are llama.cpp's own parsing of what the model's
(Jinja) chat template defines: a template without tools refuses a call with tools.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, ClassVar

import orjson

from ..._errors import ConfigError, InputError, MissingDependencyError, ModelFetchError
from ..._wrapper import ChatRequest, ModelWrapper, Upstream
from ._engine import Engine, EngineSettings, engine, unload_models
from ._model_source import DEFAULT_MODEL, resolve_model
from ._thread_feed import FeedUpstream, ThreadFeed
from ._wire import LlamaChunkMapper

__all__ = [
    "EMBEDDED_MODEL",
    "LocalChatWrapper",
    "embedded_model_path",
    "local_runtime_installed",
    "unload_models",
]

#: The embedded default model, and the names ``model_name`` accepts for it.
EMBEDDED_MODEL = "SmolLM2-135M-Instruct"
_EMBEDDED_ALIASES = frozenset(("smollm2", "smollm2-135m-instruct"))

_DEFAULT_N_CTX = 2048
# Four streams at once, as llama-server's own default. Each slot holds n_ctx tokens of KV
# cache: for SmolLM2-135M that is 46 MB per 2048 tokens, for a 7B model about 1 GB.
_DEFAULT_N_PARALLEL = 4

# The embedded default's sampling: SmolLM2-135M-Instruct's model card generates with
# temperature=0.2 and top_p=0.9. The card sets no repetition penalty, but at that
# temperature the 135M model falls into loops ("la femme femme, la femme femme, ...", a
# haiku line repeated to the token limit) in about one reply in four; 1.1 ends most of them,
# while 1.2 and 1.3 make the replies ramble and garble facts (the capital of France becomes
# "L'Étoile"). Chosen by reading the replies to six everyday prompts, two seeds each, at
# 1.0/1.1/1.15/1.2/1.3 (the figures are in the project's notes on this change). Only
# defaults: a value in generate_args or in the call wins.
_EMBEDDED_SAMPLING: dict[str, Any] = {"temperature": 0.2, "top_p": 0.9, "repeat_penalty": 1.1}
# Without a system message SmolLM2's template puts in "You are a helpful AI assistant named
# SmolLM, trained by Hugging Face"; asking for short, accurate answers instead gave the small
# model fewer rambles and more right answers ("The capital of France is Paris." in both
# seeds, against "Uncle Sam, the capital of France is Paris."). Only when the conversation
# has no system message of its own.
_EMBEDDED_SYSTEM_PROMPT = "You are a helpful assistant. Keep answers short and accurate."

# generate_args name -> what it must be
_NUMBER_ARGS = (
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "typical_p",
    "repeat_penalty",
    "presence_penalty",
    "frequency_penalty",
)
_TOOL_CHOICES = ("auto", "none", "required")
_ACCEPTED_ARGS = (*_NUMBER_ARGS, "max_tokens", "stop", "seed", "tool_choice")
# chat_format names llama.cpp knows itself; anything else must be a Jinja template.
_CHAT_FORMAT_NAMES = ("chatml",)


def local_runtime_installed() -> bool:
    """Whether ``xllamacpp`` (llama.cpp's prebuilt engine) is installed, checked without
    importing it."""
    import importlib.util

    return importlib.util.find_spec("xllamacpp") is not None


def embedded_model_path() -> str | None:
    """The path of the embedded SmolLM2 GGUF file in the model cache, or ``None`` while it
    is not fetched yet (``streamwrap pull`` fetches it; so does the first use of
    ``model_name="smollm2"``). Never downloads anything."""
    try:
        return str(resolve_model(DEFAULT_MODEL, fetch=False))
    except ModelFetchError:
        return None


def _is_embedded(model_name: str) -> bool:
    return model_name.strip().lower() in _EMBEDDED_ALIASES


def _model_source(model_name: str, config_name: str | None) -> tuple[str, str | None]:
    """What the engine loads for ``model_name`` (the name :func:`resolve_model` takes, one
    per file: ``"smollm2"`` for every alias of the embedded model, an absolute path, an
    ``hf:`` name), and the file's path when it is on disk already.

    A name that can never work (no such file, an unknown name, ``hf:`` without
    huggingface_hub) raises here, from ``load_model``; a model not fetched yet is not an
    error until fetching it fails."""
    name = model_name.strip()
    try:
        path: str | None = str(resolve_model(name, fetch=False))
    except ModelFetchError:
        path = None  # fetched when the model is loaded
    except ConfigError as exc:
        exc.config_name = config_name
        raise
    if _is_embedded(name):
        return DEFAULT_MODEL, path
    return (path or name), path


class LocalChatWrapper(ModelWrapper):
    """A GGUF chat model run in-process by llama.cpp's server engine (``xllamacpp``).

    ``model_name`` is ``"smollm2"`` (or ``"SmolLM2-135M-Instruct"``: the embedded default,
    fetched once into the model cache), the path of any GGUF file, or
    ``hf:<owner>/<repo>/<file>``. Extra config keys: ``n_ctx`` (context length of each
    stream, default 2048), ``n_parallel`` (streams generated at once on the loaded model,
    default 4; more calls queue), ``n_threads`` (default: llama.cpp's, the physical
    cores), ``chat_format`` (default: the chat template stored in the GGUF file; or
    ``"chatml"``, or a Jinja template: one that renders tools enables tool calls),
    ``seed`` (default seed of every call). ``client_args`` set further
    ``xllamacpp.CommonParams`` attributes (e.g. ``{"n_batch": 512}``).
    ``generate_args``: ``max_tokens``, ``temperature``, ``top_p``, ``top_k``, ``min_p``,
    ``typical_p``, ``repeat_penalty``, ``presence_penalty``, ``frequency_penalty``,
    ``stop``, ``seed``, ``tool_choice``. Unset ones are llama.cpp's defaults (which follow
    the GGUF's own recommendations where it has them), except for the embedded model,
    which uses its model card's (temperature 0.2, top_p 0.9) and a short system prompt.
    """

    model_type: ClassVar[str] = "local_chat"
    provider: ClassVar[str] = "local"
    gen_ai_provider_name: ClassVar[str] = "llama_cpp"
    extra: ClassVar[str] = "local"
    api_key_optional: ClassVar[bool] = True
    config_keys: ClassVar[Mapping[str, tuple[tuple[type, ...], str]]] = {
        "n_ctx": ((int,), "an integer number of tokens > 0"),
        "n_parallel": ((int,), "an integer number of streams > 0"),
        "n_threads": ((int,), "an integer > 0"),
        "chat_format": ((str,), "'chatml' or a Jinja chat template"),
        "seed": ((int,), "an integer"),
    }

    def __init__(self, model_name: str, **options: Any) -> None:
        super().__init__(model_name, **options)
        if self.base_url:
            raise ConfigError(
                "local_chat runs the model in-process and has no 'base_url'; to use a llama.cpp "
                "server, use model_type 'openai_chat' with its base_url.",
                key="base_url",
                config_name=self.config_name,
            )
        for key in ("n_ctx", "n_parallel", "n_threads"):
            value = self.extra_options.get(key)
            if value is not None and (isinstance(value, bool) or value <= 0):
                raise ConfigError(
                    f"{key!r} must be an integer > 0, got {value!r}.", key=key, config_name=self.config_name
                )
        chat_format: str | None = self.extra_options.get("chat_format")
        if chat_format is not None and chat_format not in _CHAT_FORMAT_NAMES and not _is_jinja(chat_format):
            raise ConfigError(
                f"unknown chat_format {chat_format!r}: give 'chatml' or a Jinja chat template "
                "(a string with {% ... %} or {{ ... }}).",
                key="chat_format",
                accepted=_CHAT_FORMAT_NAMES,
                config_name=self.config_name,
            )
        if not local_runtime_installed():
            raise MissingDependencyError("xllamacpp", self.extra)
        source, self.model_path = _model_source(model_name, self.config_name)
        self.embedded = _is_embedded(model_name)
        self.seed: int | None = self.extra_options.get("seed")
        self._settings = EngineSettings(
            model=source,
            n_ctx=self.extra_options.get("n_ctx", _DEFAULT_N_CTX),
            n_parallel=self.extra_options.get("n_parallel", _DEFAULT_N_PARALLEL),
            n_threads=self.extra_options.get("n_threads"),
            chat_template=chat_format,
            client_args=tuple(sorted(self.client_args.items())),
        )
        stem = os.path.basename(source.rstrip("/\\")).removesuffix(".gguf")
        self._label = EMBEDDED_MODEL if self.embedded else stem

    @property
    def n_ctx(self) -> int:
        return self._settings.n_ctx

    @property
    def n_parallel(self) -> int:
        return self._settings.n_parallel

    def _engine(self) -> Engine:
        return engine(self._settings, self.config_name)

    # -- preparing: the model's load (and fetch), ahead of the first call -----------------

    def _prepared(self) -> bool:
        return self._engine().loaded

    async def _prepare_async(self) -> None:
        # On a worker thread of the engine's (fetching and loading block for seconds): the
        # runtime's loop goes on serving other streams meanwhile.
        import asyncio

        feed = ThreadFeed(asyncio.get_running_loop())
        self._engine().load_in_background(feed)
        try:
            await FeedUpstream(feed).wait_started()
        except BaseException:
            feed.cancelled.set()
            raise

    def _prepare_here(self) -> None:
        # prepare() called on the runtime's own thread, where it cannot await: load here.
        self._engine().load()

    async def _open(self, request: ChatRequest) -> Upstream:
        import asyncio

        body = self._body(request)
        feed = ThreadFeed(asyncio.get_running_loop())
        mapper = LlamaChunkMapper(self.provider, self._label)

        def on_chunk(chunk: bytes) -> bool:
            # On the worker thread, once per token. Returning True stops the generation.
            if feed.cancelled.is_set():
                return True
            try:
                deltas, usage = mapper.feed(chunk)
            except Exception as exc:
                feed.end(exc)
                return True
            feed.put(deltas, usage)
            return feed.cancelled.is_set()

        self._engine().start(feed, body, on_chunk, tools=bool(request.tools))
        upstream = FeedUpstream(feed)
        try:
            # Like an HTTP call that returns once the status is known: return once the model
            # is loaded and has produced its first chunk, so that those errors raise here.
            await upstream.wait_started()
        except BaseException:
            feed.cancelled.set()
            raise
        return upstream

    def _body(self, request: ChatRequest) -> bytes:
        """The request for llama.cpp's chat-completions handler (OpenAI's shape)."""
        params = dict(request.params)
        messages = _messages(request.messages)
        if self.embedded:
            params = {**_EMBEDDED_SAMPLING, **{k: v for k, v in params.items() if v is not None}}
            if not any(m["role"] in ("system", "developer") for m in messages):
                messages.insert(0, {"role": "system", "content": _EMBEDDED_SYSTEM_PROMPT})
        body: dict[str, Any] = {
            "model": self._label,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
            # Token counts on every chunk: usage stays exact when a reply is cancelled.
            "timings_per_token": True,
            # A chunk after each batch of the prompt: a chance to cancel a long prompt midway.
            "return_progress": True,
            **_sampling(params, self.seed),
        }
        if request.tools:
            body["tools"] = request.tools
        return orjson.dumps(body)


def _is_jinja(template: str) -> bool:
    return "{%" in template or "{{" in template


def _sampling(params: Mapping[str, Any], default_seed: int | None) -> dict[str, Any]:
    """Validated generation arguments, as llama.cpp's request fields."""
    unknown = sorted(set(params) - set(_ACCEPTED_ARGS))
    if unknown:
        raise InputError(
            f"local_chat does not accept the argument {unknown[0]!r}; accepted: {', '.join(_ACCEPTED_ARGS)}"
        )
    out: dict[str, Any] = {}
    for name in _NUMBER_ARGS:
        value = params.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(f"{name!r} must be a number, got {type(value).__name__}")
        out[name] = int(value) if name == "top_k" else float(value)
    if out.get("temperature", 0) < 0:
        raise InputError(f"'temperature' must be >= 0, got {out['temperature']}")
    max_tokens = params.get("max_tokens")
    if max_tokens is not None:
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens <= 0:
            raise InputError(f"'max_tokens' must be an integer > 0, got {max_tokens!r}")
        out["max_tokens"] = max_tokens
    stop = params.get("stop")
    if stop is not None:
        if isinstance(stop, str):
            stop = [stop]
        if not isinstance(stop, (list, tuple)) or not all(isinstance(s, str) for s in stop):
            raise InputError("'stop' must be a string or a list of strings")
        if any(stop):
            out["stop"] = [s for s in stop if s]
    seed = params.get("seed", default_seed)
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise InputError(f"'seed' must be an integer, got {type(seed).__name__}")
        out["seed"] = seed
    tool_choice = params.get("tool_choice")
    if tool_choice is not None:
        if tool_choice not in _TOOL_CHOICES:
            raise InputError(f"'tool_choice' must be one of {', '.join(_TOOL_CHOICES)}; got {tool_choice!r}")
        out["tool_choice"] = tool_choice
    return out


def _messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages as llama.cpp's chat templates take them: text content, tool calls with
    their arguments as JSON strings."""
    out = []
    for i, message in enumerate(messages):
        content = message.get("content")
        if isinstance(content, list):
            parts = []
            for part in content:
                if not isinstance(part, Mapping) or part.get("type", "text") != "text":
                    raise InputError(f"messages[{i}]: local_chat accepts text content parts only")
                parts.append(str(part.get("text", "")))
            content = "".join(parts)
        converted: dict[str, Any] = {"role": message["role"], "content": content or ""}
        if message.get("tool_calls"):
            converted["tool_calls"] = _tool_calls(i, message["tool_calls"])
        for key in ("tool_call_id", "name"):
            if isinstance(message.get(key), str):
                converted[key] = message[key]
        out.append(converted)
    return out


def _tool_calls(i: int, calls: Any) -> list[dict[str, Any]]:
    if not isinstance(calls, list):
        raise InputError(f"messages[{i}]: 'tool_calls' must be a list")
    out = []
    for j, call in enumerate(calls):
        fn = call.get("function") if isinstance(call, Mapping) else None
        name = fn.get("name") if isinstance(fn, Mapping) else None
        arguments = fn.get("arguments") if isinstance(fn, Mapping) else None
        if not isinstance(name, str) or not name:
            raise InputError(f"messages[{i}].tool_calls[{j}]: 'function.name' must be a non-empty string")
        if isinstance(arguments, Mapping):
            arguments = orjson.dumps(arguments).decode()
        if not isinstance(arguments, str):
            raise InputError(
                f"messages[{i}].tool_calls[{j}]: 'function.arguments' must be a JSON string or a dict"
            )
        call_id = call.get("id")
        out.append(
            {
                "id": call_id if isinstance(call_id, str) else f"call_{i}_{j}",
                "type": "function",
                "function": {"name": name, "arguments": arguments},
            }
        )
    return out
