"""``litellm_chat``: every provider LiteLLM speaks, through ``litellm.acompletion``.

``model_name`` is LiteLLM's model string and passes through unchanged (``openai/gpt-4o``,
``ollama_chat/llama3``, ``dashscope/qwen-max``, ...); ``base_url`` becomes ``api_base``,
``api_key`` becomes ``api_key`` (without one LiteLLM reads the provider's own environment
variable), and ``client_args`` and ``generate_args`` are keyword arguments of
``acompletion`` (``extra_headers``, ``api_version``, ``temperature``, ...).

LiteLLM decodes the stream into its own chunk objects; this module only reads a few
attributes of each and turns them into streamwrap's deltas, so it adds little to LiteLLM's
own per-chunk cost. streamwrap retries (before the first token only), so LiteLLM's retries
and those of the SDKs under it are switched off, and LiteLLM's exceptions become
streamwrap's typed errors.

Nothing here reaches the network except the request itself: LiteLLM is imported with
``LITELLM_LOCAL_MODEL_COST_MAP=True`` (it otherwise downloads its price list at import);
its HuggingFace tokenizer download (for counting tokens of streams that report no usage)
is switched off unless the application set it; and an Ollama model missing from LiteLLM's
cost map is added to it (see :func:`_pin_server_model_info`), since LiteLLM would
otherwise ask an Ollama server for the model's details, up to four times a call, and not
the one at ``api_base``.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar

from ..._delta import Delta, Finish, Metadata, ReasoningDelta, TextDelta, ToolCallDelta, UsageReport
from ..._errors import (
    ConfigError,
    MissingDependencyError,
    ProviderConnectionError,
    ProviderHTTPError,
    ProviderStreamError,
    StreamError,
    StreamInterruptedError,
    StreamProtocolError,
    StreamwrapError,
)
from ..._secret import Secret, scrub
from ..._transport._http_error import http_error
from ..._transport._upstream import StaticUpstream
from ..._usage import Usage, UsageSource
from ..._wrapper import ChatRequest, ModelWrapper, Upstream
from ..openai._wire import usage_from_openai

__all__ = ["LiteLLMChatWrapper"]

_litellm: Any = None
# Whether calls with tools must bypass LiteLLM's MCP-gateway check (see _skip_mcp_kwargs).
_skip_mcp: bool | None = None
# Endpoints (api_base, or the model string for LiteLLM's default endpoint) that refused
# `stream_options` once: asked without it from then on.
_NO_STREAM_OPTIONS: set[str] = set()
# LiteLLM routes for which LiteLLM asks a server for a model's details (Ollama's
# `POST /api/show`) when the model is not in its cost map.
_SERVER_MODEL_INFO_ROUTES = frozenset(("ollama", "ollama_chat"))
_pinned_models: set[str] = set()
# How many causes to follow when classifying an exception LiteLLM raised.
_CHAIN_LIMIT = 12


def _import_litellm() -> Any:
    """Import LiteLLM on first use (it takes seconds), never touching the network."""
    global _litellm
    if _litellm is None:
        # Must precede the import: otherwise `import litellm` fetches its model cost map
        # from GitHub (and, offline, retries for seconds before using its bundled copy).
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        import importlib

        try:
            litellm: Any = importlib.import_module("litellm")
        except ImportError:
            raise MissingDependencyError("litellm", "litellm") from None
        # A stream without usage makes LiteLLM count tokens itself, which for some model
        # names (llama-3, command-r, ...) downloads a tokenizer from HuggingFace. None is
        # LiteLLM's "not set"; an application's own choice is kept.
        if getattr(litellm, "disable_hf_tokenizer_download", False) is None:
            litellm.disable_hf_tokenizer_download = True
        # LiteLLM prints "Give Feedback / Get Help" banners to stdout on every exception,
        # which would mix into a streamed reply (`streamwrap chat` writes the reply there);
        # its errors reach the caller as streamwrap's typed errors anyway.
        litellm.suppress_debug_info = True
        _litellm = litellm
    return _litellm


def _skip_mcp_kwargs() -> dict[str, Any]:
    """Keyword arguments that calls with ``tools`` need.

    LiteLLM versions with its MCP gateway (late 2025 on) import the gateway's module for
    every call that has tools, to look for MCP tools; that module needs the optional
    ``mcp`` package, so without it every call with tools fails ("No module named 'mcp'")
    though function tools never use the gateway. LiteLLM's own internal calls bypass the
    check with ``_skip_mcp_handler=True``. It is passed only where the gateway module
    exists and cannot be imported: versions without the gateway do not know the keyword
    and would forward it to the provider.
    """
    global _skip_mcp
    if _skip_mcp is None:
        import importlib

        try:
            importlib.import_module("litellm.responses.mcp.chat_completions_handler")
        except ImportError as exc:
            missing = getattr(exc, "name", None) or ""
            # A missing litellm module: a version without the gateway, nothing to skip.
            _skip_mcp = not missing.startswith("litellm")
        else:
            _skip_mcp = False
    return {"_skip_mcp_handler": True} if _skip_mcp else {}


def _server_model_info_route(model: str) -> str | None:
    """The route (``ollama``, ``ollama_chat``) if LiteLLM looks ``model`` up on a server."""
    route = model.partition("/")[0]
    return route if route in _SERVER_MODEL_INFO_ROUTES else None


def _pin_server_model_info(route: str, name: str) -> None:
    """Give an Ollama model an entry in LiteLLM's cost map, unless it has one.

    For an Ollama model LiteLLM does not know, LiteLLM looks the model up on an Ollama
    server (``POST /api/show``) to decide whether to bridge to its Responses API, to price
    the call and to log it: up to four synchronous requests per call, some on the event
    loop, sent to ``$OLLAMA_API_BASE`` or ``http://localhost:11434`` whatever ``api_base``
    says. The entry added is what LiteLLM itself uses when that lookup fails (a chat model
    at no cost), so only the requests change. ``litellm.register_model`` is not used:
    it performs the same lookup. Called with the model asked for, and again with the name
    the server answered with (LiteLLM prices the call under that one).
    """
    model = f"{route}/{name}"
    if model in _pinned_models:
        return
    _pinned_models.add(model)
    cost = getattr(_litellm, "model_cost", None)
    if not isinstance(cost, dict):
        return
    known = {key.lower() for key in cost if isinstance(key, str)}
    if any(n.lower() in known for n in (model, name, f"ollama/{name}", f"ollama_chat/{name}")):
        return
    cost[model] = {
        "litellm_provider": route,
        "mode": "chat",
        "input_cost_per_token": 0.0,
        "output_cost_per_token": 0.0,
    }


class LiteLLMChatWrapper(ModelWrapper):
    """Chat completions through LiteLLM (``pip install "streamwrap[litellm]"``).

    ``model_name`` is LiteLLM's ``provider/model`` string. Usage is the provider's own
    report when it sent one; LiteLLM is asked for it (``stream_options.include_usage``).
    """

    model_type: ClassVar[str] = "litellm_chat"
    provider: ClassVar[str] = "litellm"
    extra: ClassVar[str] = "litellm"
    # LiteLLM finds each provider's key in that provider's environment variable itself.
    api_key_optional: ClassVar[bool] = True

    def _make_client(self) -> Any:
        # LiteLLM keeps its own HTTP clients; the "client" is its entry point (which has no
        # close(): the base class must not close LiteLLM's shared clients).
        return _import_litellm().acompletion

    def _endpoint(self, request: ChatRequest) -> str:
        return self.base_url or request.model_name

    async def _open(self, request: ChatRequest) -> Upstream:
        kwargs: dict[str, Any] = {**self.client_args, **request.params}
        if request.tools:
            kwargs["tools"] = request.tools
        ask_usage = (
            request.stream
            and "stream_options" not in kwargs
            and self._endpoint(request) not in _NO_STREAM_OPTIONS
        )
        if ask_usage:
            kwargs["stream_options"] = {"include_usage": True}
        try:
            return await self._send(request, kwargs)
        except ProviderHTTPError as exc:
            if not (ask_usage and exc.status_code in (400, 422) and "stream_options" in str(exc.body)):
                raise
        # A compatible server that rejects `stream_options`: ask once more without it, and
        # remember the endpoint. Usage then comes from LiteLLM's own count (estimated).
        del kwargs["stream_options"]
        upstream = await self._send(request, kwargs)
        _NO_STREAM_OPTIONS.add(self._endpoint(request))
        return upstream

    async def _send(self, request: ChatRequest, kwargs: dict[str, Any]) -> Upstream:
        acompletion = self._client()
        route = _server_model_info_route(request.model_name)
        if route is not None:
            _pin_server_model_info(route, request.model_name.partition("/")[2])
        if request.tools:
            kwargs.update(_skip_mcp_kwargs())
        if self.base_url:
            kwargs["api_base"] = self.base_url
        if self._api_key:
            kwargs.pop("api_key", None)  # the configured key wins over one in client_args
        kwargs.setdefault("timeout", self.timeout)
        # streamwrap retries, before the first token only; LiteLLM's retries (num_retries)
        # and the provider SDK's (max_retries) would multiply them.
        kwargs["num_retries"] = 0
        kwargs["max_retries"] = 0
        error: StreamwrapError | None = None
        try:
            # The key is revealed inside the call only, never stored in `kwargs` (a local
            # of this frame and of _open's, see _secret).
            response = await acompletion(
                model=request.model_name,
                messages=request.messages,
                stream=request.stream,
                **kwargs,
                **({"api_key": self._api_key.reveal()} if self._api_key else {}),
            )
        except Exception as exc:
            error = _open_error(exc, self.provider, self._api_key)
        if error is not None:
            # Raised outside the handler, so that LiteLLM's exception is neither the cause
            # nor the context of ours: its messages may quote the key, ours are scrubbed.
            raise error
        if not request.stream:
            return StaticUpstream(_completion_deltas(response, self.provider))
        return LiteLLMStream(response, self.provider, self._api_key, route)


class LiteLLMStream:
    """An open LiteLLM stream (``CustomStreamWrapper``): its chunk objects → deltas."""

    __slots__ = ("_provider", "_route", "_secret", "_stream")

    def __init__(self, stream: Any, provider: str, secret: Secret | None, route: str | None = None) -> None:
        self._stream = stream
        self._provider = provider
        self._secret = secret
        self._route = route  # see _pin_server_model_info

    async def __aiter__(self) -> AsyncIterator[list[Delta]]:
        stream = self._stream
        first = True
        named = False  # whether a chunk has carried the response's id
        error: StreamError | None = None
        try:
            async for chunk in stream:
                batch: list[Delta] = []
                # Azure OpenAI's first chunk (`choices: []`, `prompt_filter_results`) has an
                # empty id and model: the first chunk that has an id names the response.
                if not named and (first or chunk.id):
                    first, named = False, bool(chunk.id)
                    answered = _provider_model(chunk)
                    batch.append(Metadata(chunk.id or None, answered))
                    if self._route is not None and answered:
                        _pin_server_model_info(self._route, answered)
                choices = chunk.choices
                if choices:
                    choice = choices[0]
                    delta = choice.delta
                    # LiteLLM deletes the attribute rather than setting None.
                    reasoning = getattr(delta, "reasoning_content", None)
                    if reasoning:
                        batch.append(ReasoningDelta(reasoning))
                    content = delta.content
                    if content:
                        batch.append(TextDelta(content))
                    tool_calls = delta.tool_calls
                    if tool_calls:
                        _tool_deltas(tool_calls, batch)
                    finish = choice.finish_reason
                    if finish:
                        batch.append(Finish(finish))
                # Only the final chunk has `usage` (LiteLLM strips it from the others).
                usage = getattr(chunk, "usage", None)
                if usage is not None:
                    batch.append(UsageReport(_stream_usage(stream, usage)))
                if batch:
                    yield batch
        except StreamwrapError:
            raise
        except Exception as exc:
            error = _stream_error(exc, self._provider, self._secret)
        if error is not None:
            raise error  # outside the handler: LiteLLM's exception may quote the key
        _check_finished(stream, self._provider)

    async def aclose(self) -> None:
        # Closes the provider response, so leaving early frees the connection at once.
        close = getattr(self._stream, "aclose", None)
        if close is not None:
            await close()


def _provider_model(chunk: Any) -> str | None:
    # LiteLLM sets `chunk.model` to the model string it was called with; the name the
    # provider answered with (e.g. a dated snapshot) is in its hidden params.
    hidden = getattr(chunk, "_hidden_params", None)
    if isinstance(hidden, Mapping):
        answered = hidden.get("provider_response_model")
        if isinstance(answered, str) and answered:
            return answered
    model = getattr(chunk, "model", None)
    return model if isinstance(model, str) else None


def _tool_deltas(tool_calls: Any, out: list[Delta]) -> None:
    for n, call in enumerate(tool_calls):
        fn = call.function
        index = getattr(call, "index", None)  # absent on the calls of a whole message
        out.append(
            ToolCallDelta(
                index if isinstance(index, int) else n,
                call.id or None,
                (fn.name or None) if fn is not None else None,
                (fn.arguments or "") if fn is not None else "",
            )
        )


def _as_usage(reported: Any, source: UsageSource) -> Usage:
    dump = getattr(reported, "model_dump", None)
    raw = dump(exclude_none=True) if dump is not None else dict(reported)
    usage = usage_from_openai(raw)
    return usage if source == "provider" else dataclasses.replace(usage, source=source)


def _stream_usage(stream: Any, final: Any) -> Usage:
    """The usage of a finished stream, with its provenance.

    LiteLLM's final usage is rebuilt by ``stream_chunk_builder``: it drops fields the
    provider sent (DeepSeek's ``prompt_cache_hit_tokens``, Groq's timings), fills
    ``reasoning_tokens`` with its own tiktoken count where the provider gave none, and is
    a complete local count when the provider reported nothing. The provider's own report
    is kept on the chunk LiteLLM parsed it from (in ``stream.chunks``): use that, and
    mark LiteLLM's count as an estimate when there is none.
    """
    chunks = getattr(stream, "chunks", None)
    if not isinstance(chunks, list):
        return _as_usage(final, "provider")  # a LiteLLM that keeps no chunks: trust it
    for chunk in reversed(chunks):
        reported = getattr(chunk, "usage", None)
        if reported is not None:
            return _as_usage(reported, "provider")
    return _as_usage(final, "estimated")


def _check_finished(stream: Any, provider: str) -> None:
    # LiteLLM ends every stream with a finish chunk of its own ("stop" when the provider
    # sent no finish reason), so a body cut short after a clean chunk boundary would look
    # complete; its record of what the provider really sent tells the two apart.
    received = getattr(stream, "received_finish_reason", "")
    if received is None and getattr(stream, "intermittent_finish_reason", None) is None:
        raise StreamInterruptedError(_UNFINISHED, provider=provider)


def _completion_deltas(response: Any, provider: str) -> list[Delta]:
    """Deltas of a non-streaming LiteLLM ``ModelResponse``."""
    try:
        out: list[Delta] = [Metadata(response.id, _provider_model(response))]
        choices = response.choices
        if choices:
            choice = choices[0]
            message = choice.message
            reasoning = getattr(message, "reasoning_content", None)
            if reasoning:
                out.append(ReasoningDelta(reasoning))
            if message.content:
                out.append(TextDelta(message.content))
            if message.tool_calls:
                _tool_deltas(message.tool_calls, out)
            if choice.finish_reason:
                out.append(Finish(choice.finish_reason))
        usage = getattr(response, "usage", None)
        # LiteLLM fills in all-zero usage when the provider sent none: no real response
        # has zero prompt tokens, so that is "not reported" (streamwrap then estimates).
        counts = (getattr(usage, "prompt_tokens", None), getattr(usage, "completion_tokens", None))
        if usage is not None and any(counts):
            out.append(UsageReport(_as_usage(usage, "provider")))
    except (AttributeError, TypeError, KeyError, IndexError, ValueError) as exc:
        raise StreamProtocolError(
            f"LiteLLM returned a response of an unexpected shape ({type(exc).__name__}: {exc})",
            provider=provider,
        ) from None
    return out


# -- LiteLLM's exceptions → streamwrap's ----------------------------------------------------


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and its causes, outermost first (LiteLLM wraps the provider's error)."""
    out: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(out) < _CHAIN_LIMIT and current not in out:
        out.append(current)
        # Newer LiteLLM re-raises mid-stream failures as MidStreamFallbackError, which keeps
        # the error it replaces in `original_exception` rather than as the cause.
        original = getattr(current, "original_exception", None)
        current = original if isinstance(original, BaseException) else current.__cause__ or current.__context__
    return out


# LiteLLM (1.10x) reports a stream that ended without a finish reason by raising an
# httpx.RemoteProtocolError that it then drops from the chain: only its message is left.
_ENDED_UNFINISHED = "Stream ended before a finish_reason was received"


_UNFINISHED = "the stream ended before the provider finished (no finish reason)"


def _ended_unfinished(chain: list[BaseException]) -> bool:
    return any(_ENDED_UNFINISHED in str(exc) for exc in chain)


def _transport_types() -> tuple[type[BaseException], ...]:
    """Exception types that mean "no (complete) HTTP response": the network failed.

    Looked up among the modules already imported (LiteLLM imported the ones it uses), so
    nothing is imported for this.
    """
    found: list[type[BaseException]] = [OSError]
    for module, name in (
        ("httpx", "TransportError"),
        ("aiohttp", "ClientConnectionError"),
        ("aiohttp", "ClientPayloadError"),
        ("openai", "APIConnectionError"),
    ):
        candidate = getattr(sys.modules.get(module), name, None)
        if isinstance(candidate, type) and issubclass(candidate, BaseException):
            found.append(candidate)
    return tuple(found)


def _is_litellm_wrapper(exc: BaseException) -> bool:
    # LiteLLM's own exception classes wrap anything (its APIConnectionError also wraps
    # plain bugs), so only the errors they wrap tell what happened.
    return type(exc).__module__.startswith("litellm")


def _transport_error(chain: list[BaseException]) -> BaseException | None:
    transport = _transport_types()
    for exc in chain:
        if isinstance(exc, transport) and not _is_litellm_wrapper(exc):
            return exc
    return None


def _root_message(chain: list[BaseException]) -> str:
    """The message of the innermost error that has one: LiteLLM's wrappers prefix theirs
    with class names, the provider's own (``message`` of the SDK's or LiteLLM's provider
    exception) says what happened."""
    for exc in reversed(chain):
        message = getattr(exc, "message", None)
        if isinstance(message, str) and message.strip():
            return message
    return str(chain[-1]) or type(chain[-1]).__name__


def _status_code(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    if isinstance(status, str) and status.isdigit():
        status = int(status)
    return status if isinstance(status, int) and not isinstance(status, bool) and status >= 400 else None


def _error_body(chain: list[BaseException], status: int) -> Any:
    """The body the provider sent with ``status``, as close to its bytes as LiteLLM kept."""
    for exc in chain:
        response = getattr(exc, "response", None)
        if getattr(response, "status_code", None) == status:
            try:
                content = response.content  # type: ignore[union-attr]
            except Exception:  # a streamed response whose body was never read
                content = None
            if isinstance(content, (bytes, bytearray)) and content:
                return bytes(content)
    for exc in chain:
        body = getattr(exc, "body", None)
        if body is not None and not callable(body):
            return body
    return _root_message(chain)


def _error_headers(chain: list[BaseException]) -> Mapping[str, str] | None:
    for exc in chain:
        for name in ("litellm_response_headers", "headers"):
            headers = getattr(exc, name, None)
            if isinstance(headers, Mapping):
                return headers
    return None


def _got_response(chain: list[BaseException], status: int) -> bool:
    """Whether the provider really answered ``status`` (LiteLLM also gives a status code,
    and a made-up response, to errors of its own, raised before anything was sent)."""
    for exc in chain:
        if getattr(exc, "litellm_response_headers", None) is not None:
            return True
        if not _is_litellm_wrapper(exc) and getattr(getattr(exc, "response", None), "status_code", None) == status:
            return True  # httpx's HTTPStatusError, the openai SDK's APIStatusError
    return False


def _open_error(exc: Exception, provider: str, secret: Secret | None) -> StreamwrapError:
    """The typed error for an exception raised by ``acompletion`` (before any chunk)."""
    chain = _chain(exc)
    failed = _transport_error(chain)
    if failed is not None:
        # Checked before the status: LiteLLM reports a refused connection as HTTP 500.
        detail = str(scrub(f"{type(failed).__name__}: {failed}", secret))
        return ProviderConnectionError(f"no response from the provider ({detail})", provider=provider)
    status = _status_code(exc)
    if status is not None and _got_response(chain, status):
        return http_error(
            provider=provider,
            status_code=status,
            body=_error_body(chain, status),
            headers=_error_headers(chain),
            secret=secret,
        )
    # LiteLLM refused the call itself: a model string without a known route, no API key
    # for the provider, a parameter the provider does not take, a missing package.
    message = scrub(_root_message(chain), secret)
    return ConfigError(f"LiteLLM did not send the request: {message}")


def _stream_error(exc: Exception, provider: str, secret: Secret | None) -> StreamError:
    """The typed error for an exception raised while iterating a LiteLLM stream."""
    import json

    chain = _chain(exc)
    bad = next((e for e in chain if isinstance(e, (json.JSONDecodeError, UnicodeDecodeError))), None)
    if bad is not None:
        message = scrub(f"the stream does not parse ({type(bad).__name__}: {bad})", secret)
        return StreamProtocolError(str(message), provider=provider)
    failed = _transport_error(chain)
    if failed is not None:
        message = scrub(f"connection lost mid-stream ({type(failed).__name__}: {failed})", secret)
        return StreamInterruptedError(str(message), provider=provider)
    if _ended_unfinished(chain):
        return StreamInterruptedError(_UNFINISHED, provider=provider)
    # Anything else is an error the provider reported in the stream (an SSE error event,
    # an error object), which LiteLLM re-raises as one of its own.
    code = next((getattr(e, "code", None) for e in reversed(chain) if getattr(e, "code", None)), None)
    return ProviderStreamError(
        str(scrub(_root_message(chain), secret)),
        provider=provider,
        code=None if code is None else str(code),
    )
