"""The base of every provider wrapper: the call shape, and the producer that runs a request
on the runtime thread and pumps its deltas into the response.

A provider subclass implements one thing, :meth:`ModelWrapper._open`: send the request,
check the status, and return an :class:`Upstream` that yields batches of normalised deltas.
Everything else (retries, timeouts, cancellation, accumulation, replay) lives here and in
the response, once for all providers.
"""

from __future__ import annotations

import contextvars
import os
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ._channel import Channel
from ._config_keys import DEFAULTS, check_options
from ._cost import PriceRef, Pricing, warm_up, warmed
from ._delivery import ResponseCallback, as_sink, observe
from ._errors import (
    ConfigError,
    InputError,
    ProviderConnectionError,
    ProviderHTTPError,
    StreamInterruptedError,
    StreamTimeoutError,
    StreamwrapError,
)
from ._response import ModelResponse, _wait_state_async
from ._runtime import runtime
from ._secret import Secret
from ._sinks import Sink
from ._telemetry import start_call
from ._tools import normalize_tools
from ._transport._upstream import Upstream
from ._url_redaction import mask_http_logs, redact_urls
from ._usage_summary import track
from ._waiters import thread_waiter

# Upstream is defined with the transport that implements it, and named here too: it is what
# a subclass's `_open` returns.
__all__ = ["ChatRequest", "ModelWrapper", "Upstream"]

_ROLES = frozenset(("system", "developer", "user", "assistant", "tool", "function"))
# Call parameters that the wrapper owns; passing them in generate_args is a mistake.
_RESERVED_ARGS = frozenset(("model", "messages", "stream"))
# Statuses worth retrying before the first content: the request may succeed next time.
# 529 is "overloaded" (Anthropic's API; some CDNs too): a 503 by another number.
_RETRY_STATUSES = frozenset((408, 409, 429, 500, 502, 503, 504, 529))
_BACKOFF_BASE = 0.5
_BACKOFF_MAX = 8.0
_RETRY_AFTER_MAX = 60.0


@dataclass
class ChatRequest:
    """One call, validated: what a provider adapter turns into its wire request."""

    model_name: str
    messages: list[dict[str, Any]]
    stream: bool
    tools: list[dict[str, Any]] | None = None
    params: dict[str, Any] = field(default_factory=dict)


class ModelWrapper:
    """Base class of the wrappers. Construct one directly or through ``load_model(config)``.

    ``await model(prompt)`` sends the request and checks its HTTP status before returning
    a :class:`ModelResponse`; ``stream=`` overrides the configured mode for one call.
    """

    model_type: ClassVar[str] = ""
    provider: ClassVar[str] = ""
    #: pip extra that installs the provider SDK
    extra: ClassVar[str] = ""
    #: environment variables consulted, in order, when no api_key is configured
    api_key_env: ClassVar[tuple[str, ...]] = ()
    #: environment variables consulted when no base_url is configured
    base_url_env: ClassVar[tuple[str, ...]] = ()
    #: whether the provider can work without any API key (e.g. a local server)
    api_key_optional: ClassVar[bool] = False
    #: extra config keys a wrapper accepts: key -> (types, description)
    config_keys: ClassVar[Mapping[str, tuple[tuple[type, ...], str]]] = {}
    #: tool types the provider runs itself (e.g. a web search), passed through as given;
    #: every other tool must be a function
    hosted_tool_types: ClassVar[frozenset[str]] = frozenset()
    #: the provider id in ``genai-prices`` of this provider's own API (``response.cost``);
    #: None where it sells nothing there (a local server). A configured ``base_url`` is
    #: matched against the table's API URLs instead, and the ``price_provider`` config key
    #: overrides both.
    price_provider_id: ClassVar[str | None] = None
    #: the ``gen_ai.provider.name`` of its OpenTelemetry spans and metrics: the GenAI
    #: semantic conventions' well-known value where there is one (``openai``,
    #: ``anthropic``, ``gcp.gemini``, ``azure.ai.openai``, ...); empty: :attr:`provider`
    gen_ai_provider_name: ClassVar[str] = ""

    def __init__(
        self,
        model_name: str,
        *,
        stream: bool | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        client_args: Mapping[str, Any] | None = None,
        generate_args: Mapping[str, Any] | None = None,
        config_name: str | None = None,
        max_retries: int | None = None,
        timeout: float | None = None,
        first_token_timeout: float | None = None,
        idle_timeout: float | None = None,
        response_callback: ResponseCallback | None = None,
        price_provider: str | None = None,
        **extra: Any,
    ) -> None:
        options = {
            "model_name": model_name,
            "stream": stream,
            "api_key": api_key,
            "base_url": base_url,
            "client_args": client_args,
            "generate_args": generate_args,
            "config_name": config_name,
            "max_retries": max_retries,
            "timeout": timeout,
            "first_token_timeout": first_token_timeout,
            "idle_timeout": idle_timeout,
            "response_callback": response_callback,
            "price_provider": price_provider,
            **extra,
        }
        check_options(self.model_type, self.config_keys, options, config_name=config_name)
        self.model_name = model_name
        self.config_name = config_name
        self.stream: bool = DEFAULTS["stream"] if stream is None else stream
        self.base_url = base_url or _first_env(self.base_url_env)
        if self.base_url and redact_urls(self.base_url) != self.base_url:
            mask_http_logs()  # the HTTP library logs each request's URL, credentials and all
        key = api_key or _first_env(self.api_key_env)
        if not key and not self.api_key_optional and not self.base_url:
            raise ConfigError(
                f"no API key for {self.provider}: set 'api_key' in the config"
                + (f" or the {' / '.join(self.api_key_env)} environment variable" if self.api_key_env else "")
                + ".",
                key="api_key",
                config_name=config_name,
            )
        self._api_key: Secret | None = Secret(key) if key else None
        self.client_args: dict[str, Any] = dict(client_args or {})
        generate = dict(generate_args or {})
        _check_generate_args(generate, "generate_args")
        self.generate_args = generate
        self.max_retries: int = DEFAULTS["max_retries"] if max_retries is None else max_retries
        self.timeout: float = DEFAULTS["timeout"] if timeout is None else float(timeout)
        self.first_token_timeout: float = (
            DEFAULTS["first_token_timeout"] if first_token_timeout is None else float(first_token_timeout)
        )
        self.idle_timeout: float = DEFAULTS["idle_timeout"] if idle_timeout is None else float(idle_timeout)
        self.response_callback: Sink | None = (
            None if response_callback is None else as_sink(response_callback, what="'response_callback'")
        )
        self.extra_options = {k: v for k, v in extra.items() if v is not None}
        #: the ``genai-prices`` provider whose prices apply to this model's calls (config)
        self.price_provider: str | None = price_provider
        self._price_ref: PriceRef | None = None
        self._clients: dict[str, Any] = {}
        self._client_generation = -1

    def __repr__(self) -> str:
        name = f" config_name={self.config_name!r}" if self.config_name else ""
        base = f" base_url={redact_urls(self.base_url)!r}" if self.base_url else ""
        return f"<{type(self).__name__}{name} model_name={self.model_name!r}{base} stream={self.stream}>"

    # -- calling ------------------------------------------------------------------------

    async def __call__(
        self,
        prompt: Any,
        stream: bool | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        *,
        response_callback: ResponseCallback | None = None,
        **generate_args: Any,
    ) -> ModelResponse:
        """Send the request; return once its HTTP status is known (streaming) or the whole
        response has arrived (non-streaming). HTTP errors raise here.

        ``response_callback`` (a function or a sink; default: the model's configured one)
        receives the response's events on this event loop, whether or not anybody reads
        the response: each chunk, then the end event (a non-streaming call: the end event
        only), also when the call fails. So do the sinks of :func:`default_output`.
        """
        response = self._start(prompt, stream, tools, generate_args, response_callback, on_loop=True)
        ch = response._ch
        try:
            while ch.state == "pending":
                await _wait_state_async(ch, "pending")
        except BaseException:
            ch.request_cancel()
            raise
        _raise_if_failed_before_open(ch)
        return response

    def call_sync(
        self,
        prompt: Any,
        stream: bool | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        *,
        response_callback: ResponseCallback | None = None,
        **generate_args: Any,
    ) -> ModelResponse:
        """The same call from synchronous code: returns the same :class:`ModelResponse`
        (iterate it with ``response.stream_sync()``, or read ``response.text``). Callbacks
        and default-output sinks run on a thread of their own."""
        response = self._start(prompt, stream, tools, generate_args, response_callback, on_loop=False)
        ch = response._ch
        try:
            while ch.state == "pending":
                wake, wait = thread_waiter()
                if ch.add_state_waiter(wake, "pending"):
                    wait()
        except BaseException:
            ch.request_cancel()
            raise
        _raise_if_failed_before_open(ch)
        return response

    def _start(
        self,
        prompt: Any,
        stream: bool | None,
        tools: Sequence[Mapping[str, Any]] | None,
        generate_args: dict[str, Any],
        response_callback: ResponseCallback | None,
        *,
        on_loop: bool,
    ) -> ModelResponse:
        if stream is not None and not isinstance(stream, bool):
            raise InputError(f"stream must be True, False or None, got {type(stream).__name__}")
        _check_generate_args(generate_args, "call arguments")
        messages, input_chars = normalize_messages(prompt)
        request = ChatRequest(
            model_name=self.model_name,
            messages=messages,
            stream=self.stream if stream is None else stream,
            tools=normalize_tools(tools, self.hosted_tool_types),
            params={**self.generate_args, **generate_args},
        )
        callback = self.response_callback
        if response_callback is not None:
            callback = as_sink(response_callback, what="response_callback")
        ch = Channel(provider=self.provider, streaming=request.stream, input_chars=input_chars)
        # Cost: priced when asked (response.cost), or counted by usage_summary() as it ends.
        pricing = Pricing(self._prices(), self.model_name)
        response = ModelResponse(ch, model_name=self.model_name, pricing=pricing)
        track(ch, self.model_name, pricing)
        # The caller's context goes with the producer (tracing, the default output sink).
        context = contextvars.copy_context()
        # telemetry: the call's span starts now, as a child of the caller's current span,
        # and is the current span of the producer's context (None: no OpenTelemetry SDK).
        ch.telemetry = start_call(
            provider_name=self.gen_ai_provider_name or self.provider,
            server_url=self._server_url(),
            model=request.model_name,
            params=request.params,
            streaming=request.stream,
            messages=request.messages,
            response_id=response.id,
            context=context,
        )

        def on_task(cancel: Any) -> None:
            ch.cancel_upstream = cancel
            if ch.cancel_requested:
                # Cancelled before the producer's first step: its body never runs, so it
                # is ended here (else the response, and its span, would stay pending).
                ch.cancelled()
                cancel()

        runtime.spawn(lambda: self._pump(request, ch), context, on_task)
        observe(response, callback, on_loop=on_loop)
        return response

    def _prices(self) -> PriceRef:
        """Where this model's calls find their prices (see :attr:`price_provider_id`)."""
        ref = self._price_ref
        if ref is None:
            if self.price_provider:
                ref = PriceRef(provider_id=self.price_provider)
            elif self.base_url:
                ref = PriceRef(api_url=self.base_url)
            elif self.price_provider_id:
                ref = PriceRef(provider_id=self.price_provider_id)
            else:
                ref = PriceRef(
                    unpriced=f"genai-prices has no prices for {self.provider}; if another provider's "
                    "prices apply, name it with the config key 'price_provider'"
                )
            self._price_ref = ref
        return ref

    # -- the producer (runs on the runtime loop) ----------------------------------------

    async def _pump(self, request: ChatRequest, ch: Channel) -> None:
        import asyncio  # (already loaded: this runs on the runtime's asyncio loop)

        loop = asyncio.get_running_loop()
        ch.loop = loop
        task = asyncio.current_task()
        assert task is not None
        timed_out: list[str] = []

        def watchdog() -> None:
            # One timer per stream, re-armed from timestamps rather than per chunk: the
            # hot path only records when content last arrived.
            now = time.monotonic()
            if ch.first_token_at is None:
                limit, kind = ch.clock_start() + self.first_token_timeout, "first_token_timeout"
            else:
                limit, kind = ch.last_content_at + self.idle_timeout, "idle_timeout"
            if now >= limit:
                timed_out.append(kind)
                task.cancel()
            else:
                handle[0] = loop.call_later(limit - now, watchdog)

        handle: list[asyncio.TimerHandle | None] = [None]
        upstream: Upstream | None = None
        try:
            # The cold start (the SDK's import, its client's construction) comes before the
            # request is sent, and is not the provider's latency: first_token_timeout and
            # time_to_first_token count from the request going out. Nothing to do here if
            # the model was prepared. (Awaited: a local model loads off the loop.)
            if not self._prepared():
                await self._prepare_async()
            ch.mark_sent()
            # Firing early is harmless (it re-arms); firing late would miss an idle stall.
            handle[0] = loop.call_later(min(self.first_token_timeout, self.idle_timeout), watchdog)
            upstream = await self._open_with_retries(request, ch)
            if request.stream:
                ch.open()
            async for batch in upstream:
                ch.push(batch)
            ch.finish()
        except asyncio.CancelledError:
            if timed_out:
                limit = (
                    self.first_token_timeout if timed_out[0] == "first_token_timeout" else self.idle_timeout
                )
                ch.fail(
                    StreamTimeoutError(
                        f"no {'first token' if timed_out[0] == 'first_token_timeout' else 'new token'} "
                        f"within {limit:g} s ({timed_out[0]})",
                        provider=self.provider,
                        code=timed_out[0],
                    )
                )
            else:
                ch.cancelled()
            # Our own cancellation ends this task; nothing above us awaits it.
        except StreamwrapError as exc:
            ch.fail(exc)
        except Exception as exc:
            ch.fail(self._unexpected_error(exc, opened=ch.state == "open"))
        finally:
            if handle[0] is not None:
                handle[0].cancel()
            if upstream is not None:
                try:
                    await upstream.aclose()
                except BaseException:
                    pass

    async def _open_with_retries(self, request: ChatRequest, ch: Channel) -> Upstream:
        import asyncio

        attempt = 0
        while True:
            attempt += 1
            started = time.monotonic()
            try:
                upstream = await self._open(request)
            except (ProviderConnectionError, ProviderHTTPError) as exc:
                status = getattr(exc, "status_code", None)
                ch.add_attempt(
                    {
                        "attempt": attempt,
                        "status": status,
                        "error": type(exc).__name__,
                        "seconds": round(time.monotonic() - started, 4),
                    }
                )
                retryable = status is None or status in _RETRY_STATUSES
                if not retryable or attempt > self.max_retries:
                    raise
                await asyncio.sleep(_backoff(attempt, getattr(exc, "retry_after", None)))
                continue
            ch.add_attempt(
                {
                    "attempt": attempt,
                    "status": 200,
                    "error": None,
                    "seconds": round(time.monotonic() - started, 4),
                }
            )
            return upstream

    def _server_url(self) -> str | None:
        """The URL the requests go to, for telemetry's ``server.address``: ``base_url`` by
        default; a wrapper with a default endpoint of its own returns that."""
        return self.base_url

    def _unexpected_error(self, exc: Exception, *, opened: bool) -> StreamwrapError:
        """Wrap an error the adapter did not translate, so callers only see our types."""
        message = f"{type(exc).__name__}: {exc}"
        if opened:
            err: StreamwrapError = StreamInterruptedError(message, provider=self.provider)
        else:
            err = ProviderConnectionError(message, provider=self.provider)
        err.__cause__ = exc
        return err

    async def _open(self, request: ChatRequest) -> Upstream:
        """Send ``request``; raise :class:`ProviderHTTPError`/:class:`ProviderConnectionError`
        on failure; return the open stream. Implemented by each provider."""
        raise NotImplementedError

    # -- preparing: the cold start, ahead of the first call ------------------------------

    def prepare(self) -> None:
        """Import the provider SDK and build its client now, not in the first call.

        The first call of a fresh process otherwise does both before its request goes out
        (a second or more for some SDKs on a busy machine), and holds up every other stream
        of the library meanwhile. Call this at startup (``streamwrap serve`` does); it
        raises what the first call would (a missing SDK, ``client_args`` the client does not
        take). Idempotent, and cheap once done; in ``async`` code use :meth:`aprepare`.

        With the ``cost`` extra installed it also loads the price table (about half a
        second, once per process), which the first ``response.cost`` would otherwise load.
        """
        if self._prices().unpriced is None and not warmed() and not runtime.in_runtime_thread():
            warm_up()  # (never on the I/O thread: it would stall every stream for as long)
        if self._prepared():
            return
        if runtime.in_runtime_thread():
            self._prepare_here()
            return
        preparing = self._prepare_async()
        try:
            runtime.run_sync(preparing)
        except BaseException:
            import inspect

            # Ctrl-C before the coroutine reached the loop (as run_sync is entered, say):
            # closed, it is not reported as "never awaited" on the way out.
            if inspect.getcoroutinestate(preparing) == inspect.CORO_CREATED:
                preparing.close()
            raise

    async def aprepare(self) -> None:
        """:meth:`prepare` from asyncio or trio code, without blocking the caller's loop."""
        if self._prices().unpriced is None and not warmed():
            import anyio

            await anyio.to_thread.run_sync(warm_up)
        if not self._prepared():
            await runtime.run(self._prepare_async())

    def _prepared(self) -> bool:
        return not self._uses_client() or (
            self._client_generation == runtime.generation and "default" in self._clients
        )

    def _uses_client(self) -> bool:
        return type(self)._make_client is not ModelWrapper._make_client

    async def _prepare_async(self) -> None:
        self._prepare_here()

    def _prepare_here(self) -> None:
        """The cold start of a call, run on the runtime loop (clients are bound to it) until
        :meth:`_prepared`. A wrapper with more to warm up than its client extends this."""
        if self._uses_client():
            self._client()
            # The HTTP libraries run on anyio, whose asyncio backend is imported on its first
            # use in the process (~20 ms, in the first request's connection pool): now.
            import anyio

            anyio.Event()

    # -- SDK clients (created on the runtime loop, one per wrapper) ----------------------

    def _client(self, key: str = "default") -> Any:
        if self._client_generation != runtime.generation:
            # A client is bound to the loop it was first used on: after a fork, start over.
            self._clients = {}
            self._client_generation = runtime.generation
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = self._make_client()
            runtime.register_closer(self)
        return client

    def _make_client(self) -> Any:
        raise NotImplementedError

    async def _aclose_clients(self) -> None:
        import asyncio

        clients, self._clients = self._clients, {}
        for client in clients.values():
            close = getattr(client, "close", None) or getattr(client, "aclose", None)
            if close is not None:
                result = close()
                if asyncio.iscoroutine(result):
                    await result

    async def aclose(self) -> None:
        """Close the wrapper's SDK clients (their connection pools)."""
        if self._clients:
            await runtime.run(self._aclose_clients())

    def close(self) -> None:
        """Synchronous :meth:`aclose`."""
        if self._clients:
            runtime.run_sync(self._aclose_clients())


def _backoff(attempt: int, retry_after: float | None) -> float:
    if retry_after is not None and retry_after >= 0:
        return min(retry_after, _RETRY_AFTER_MAX)
    # Exponential backoff with full jitter: spreads retries of many clients apart.
    return random.uniform(0, min(_BACKOFF_MAX, _BACKOFF_BASE * 2 ** (attempt - 1)))


def _raise_if_failed_before_open(ch: Channel) -> None:
    # Errors before the stream opened (HTTP status, connection, first-token timeout, or any
    # error of a non-streaming call) are raised by the call itself; later ones by iteration.
    if ch.state == "failed" and not ch.opened:
        assert ch.error is not None
        raise ch.error


def _first_env(names: tuple[str, ...]) -> str | None:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


def _check_generate_args(args: Mapping[str, Any], where: str) -> None:
    bad = sorted(_RESERVED_ARGS & set(args))
    if bad:
        raise ConfigError(
            f"{bad[0]!r} cannot be set in {where}: the wrapper sets it "
            "(use 'model_name' in the config, the prompt argument, and stream=).",
            key="generate_args" if where == "generate_args" else bad[0],
        )


def normalize_messages(prompt: Any) -> tuple[list[dict[str, Any]], int]:
    """Turn a prompt (a string, one message, or a list of messages) into chat messages.

    Messages are dicts with ``role`` and ``content``, or objects with those attributes
    (AgentScope's ``Msg``). Returns the messages and their total text length (for usage
    estimates).
    """
    if isinstance(prompt, str):
        if not prompt.strip():
            raise InputError("the prompt is empty")
        return [{"role": "user", "content": prompt}], len(prompt)
    if isinstance(prompt, Mapping) or hasattr(prompt, "role"):
        prompt = [prompt]
    if not isinstance(prompt, Sequence) or isinstance(prompt, (bytes, bytearray)):
        raise InputError(f"prompt must be a string or a list of messages, got {type(prompt).__name__}")
    if not prompt:
        raise InputError("the message list is empty")
    messages: list[dict[str, Any]] = []
    chars = 0
    for i, msg in enumerate(prompt):
        if isinstance(msg, Mapping):
            message = dict(msg)
        elif hasattr(msg, "role") and hasattr(msg, "content"):
            message = {"role": msg.role, "content": msg.content}
            name = getattr(msg, "name", None)
            if isinstance(name, str) and name and msg.role not in ("system",):
                message["name"] = name
        else:
            raise InputError(
                f"messages[{i}] must be a dict with 'role' and 'content', got {type(msg).__name__}"
            )
        role = message.get("role")
        if role not in _ROLES:
            raise InputError(
                f"messages[{i}]: 'role' must be one of {', '.join(sorted(_ROLES))}; got {role!r}"
            )
        content = message.get("content")
        if content is None and not message.get("tool_calls"):
            raise InputError(f"messages[{i}] ({role}) has no 'content'")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            for j, part in enumerate(content):
                if not isinstance(part, Mapping):
                    continue
                text = part.get("text", "")
                if not isinstance(text, str):
                    raise InputError(
                        f"messages[{i}].content[{j}]: 'text' must be a string, got {type(text).__name__}"
                    )
                chars += len(text)
        elif content is not None:
            raise InputError(
                f"messages[{i}]: 'content' must be a string or a list of content parts, got {type(content).__name__}"
            )
        messages.append(message)
    return messages, chars
