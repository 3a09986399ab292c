"""``openai_chat``: OpenAI, and every OpenAI-compatible server through ``base_url``.

The official ``openai`` client builds, authenticates and sends the request (so its auth,
headers, proxies and ``client_args`` all apply); the response body is decoded by
streamwrap's own SSE decoder and wire mapper, not by the SDK's per-chunk objects.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import orjson

from ..._delta import Delta
from ..._errors import (
    ConfigError,
    InputError,
    MissingDependencyError,
    ProviderConnectionError,
    ProviderHTTPError,
    StreamProtocolError,
    StreamwrapError,
)
from ..._secret import redact_error
from ..._transport._http_error import http_error
from ..._transport._httpx_client import body_chunks
from ..._transport._pool import close_idle_in_background
from ..._transport._upstream import BodyUpstream, RedactingUpstream, StaticUpstream
from ..._transport._wire_mapper import WireMapper
from ..._url_redaction import add_http_logger
from ..._wrapper import ChatRequest, ModelWrapper, Upstream
from ._content_filter import with_content_filter
from ._stream_options import StreamUsageOption
from ._wire import OpenAIStreamMapper, completion_deltas

__all__ = ["OpenAIChatWrapper"]

# The SDK's client logs "Sending HTTP Request: <method> <url>" at DEBUG, and an HTTP error
# with its traceback, whose last line quotes the URL: masked with httpx's request lines.
add_http_logger("openai._base_client")

_STREAM_USAGE = StreamUsageOption()
_create_params: frozenset[str] | None = None


def _known_create_params(create: Any) -> frozenset[str]:
    """Parameters the installed SDK's ``create()`` accepts; others go in ``extra_body``."""
    global _create_params
    if _create_params is None:
        import inspect

        _create_params = frozenset(inspect.signature(create).parameters)
    return _create_params


class OpenAIChatWrapper(ModelWrapper):
    """Chat completions over the OpenAI wire format.

    ``base_url`` points it at any compatible server (vLLM, llama.cpp, Ollama's ``/v1``,
    DeepSeek, OpenRouter, Groq, ...). Without ``api_key`` it reads ``OPENAI_API_KEY``; with
    a ``base_url`` and no key at all it sends a placeholder, as local servers expect.
    """

    model_type: ClassVar[str] = "openai_chat"
    provider: ClassVar[str] = "openai"
    price_provider_id: ClassVar[str | None] = "openai"
    gen_ai_provider_name: ClassVar[str] = "openai"
    extra: ClassVar[str] = "openai"
    api_key_env: ClassVar[tuple[str, ...]] = ("OPENAI_API_KEY",)
    base_url_env: ClassVar[tuple[str, ...]] = ("OPENAI_BASE_URL",)
    #: the endpoint when neither ``base_url`` nor ``base_url_env`` gives one
    default_base_url: ClassVar[str] = "https://api.openai.com/v1"
    #: whether to ask for usage with ``stream_options.include_usage``; a subclass for a
    #: server that reports usage unasked (and may not know the option) turns it off
    ask_stream_usage: ClassVar[bool] = True

    def _make_client(self) -> Any:
        try:
            import openai
        except ImportError:
            raise MissingDependencyError("openai", self.extra) from None
        args: dict[str, Any] = {
            "base_url": self._endpoint(),
            # streamwrap retries itself (before the first token only), so the SDK must not.
            "max_retries": 0,
            "timeout": self.timeout,
            **self.client_args,
        }
        if "http_client" not in args:
            # The SDK's own client and defaults (1000 connections, its timeouts, proxies from
            # the environment), with a pool that closes idle connections off the request
            # path (see _transport._pool). An `http_client` of the caller's is used as it is.
            args["http_client"] = close_idle_in_background(
                openai.DefaultAsyncHttpxClient(base_url=self._endpoint(), timeout=self.timeout)
            )
        try:
            # The key is revealed inside the call only, never held in a local (see _secret).
            return openai.AsyncOpenAI(
                **{"api_key": self._api_key.reveal() if self._api_key else "not-needed", **args}
            )
        except TypeError as exc:  # an option the SDK does not have
            error = ConfigError(
                f"'client_args' are not options of openai.AsyncOpenAI: {exc}", key="client_args"
            )
        raise error

    def _endpoint(self) -> str:
        return self.base_url or self.default_base_url

    def _server_url(self) -> str:
        return self._endpoint()

    def _prepare_here(self) -> None:
        super()._prepare_here()
        # The SDK imports its chat resources and their types on first use, and the
        # parameters of create() are read once: tens of milliseconds that the first call
        # would otherwise spend after its clock started.
        completions = self._client().chat.completions
        _known_create_params(completions.create)
        completions.with_streaming_response  # noqa: B018 (built on first access)

    async def _open(self, request: ChatRequest) -> Upstream:
        params: dict[str, Any] = dict(request.params)
        if request.tools:
            params["tools"] = request.tools
        # Some compatible servers reject `stream_options`: then asked once more without it,
        # and that is remembered for this endpoint. Usage then falls back to a marked estimate.
        return await _STREAM_USAGE.send(
            lambda params: self._send(request, params),
            params,
            endpoint=self._endpoint(),
            ask=self.ask_stream_usage and request.stream,
        )

    async def _send(self, request: ChatRequest, params: dict[str, Any]) -> Upstream:
        client = self._client()
        create = client.chat.completions.with_streaming_response.create
        known = _known_create_params(client.chat.completions.create)
        kwargs: dict[str, Any] = {}
        # (Read, not popped: `params` is sent again when a server refuses stream_options.)
        extra = params.get("extra_body") or {}
        if not isinstance(extra, Mapping):
            raise InputError(f"'extra_body' must be a dict, got {type(extra).__name__}")
        extra_body: dict[str, Any] = dict(extra)
        for key, value in params.items():
            if key == "extra_body":
                continue
            if key in known:
                kwargs[key] = value
            else:
                extra_body[key] = value  # server-specific parameters (top_k, min_p, ...)
        if extra_body:
            kwargs["extra_body"] = extra_body
        context = create(model=request.model_name, messages=request.messages, stream=request.stream, **kwargs)
        return await self._upstream(context, request.stream, OpenAIStreamMapper, completion_deltas)

    async def _upstream(
        self,
        context: Any,
        stream: bool,
        mapper: Callable[[str], WireMapper[Any]],
        whole_body: Callable[[Any, str], list[Delta]],
    ) -> Upstream:
        """Send the request of the SDK's ``with_streaming_response`` ``context``; the
        body is decoded by ``mapper`` (streamed) or ``whole_body`` (parsed JSON), not by
        the SDK."""
        import openai

        error: StreamwrapError | None = None
        try:
            raw = await context.__aenter__()
        except openai.APIStatusError as exc:
            error = self._status_error(exc)
        except openai.APIConnectionError as exc:
            error = ProviderConnectionError(
                f"cannot reach {self._endpoint()}: {exc.__cause__ or exc}", provider=self.provider
            )
        if error is not None:
            # Raised outside the handlers: the SDK's exception, whose message may quote the
            # key, is neither the cause nor the context of ours.
            raise error
        http = raw.http_response
        if not stream:
            try:
                return StaticUpstream(await self._whole_body(http, whole_body))
            except StreamwrapError as exc:
                error = exc
            raise redact_error(error, self._api_key)
        return RedactingUpstream(
            BodyUpstream(body_chunks(http), mapper(self.provider), http.aclose, self.provider), self._api_key
        )

    def _status_error(self, exc: Any) -> ProviderHTTPError:
        """The typed error of the SDK's ``APIStatusError`` (built here, so that the raw
        body, which may echo the key, is never a local of a frame the error passes)."""
        # The SDK has read the body; its `exc.body` is only the inner "error" object, so
        # keep the whole body as the server sent it.
        try:
            body: Any = exc.response.content
        except Exception:
            body = exc.body
        return with_content_filter(
            http_error(
                provider=self.provider,
                status_code=exc.status_code,
                body=body,
                headers=exc.response.headers,
                secret=self._api_key,
            )
        )

    async def _whole_body(self, http: Any, deltas: Callable[[Any, str], list[Delta]]) -> list[Delta]:
        """The deltas of a non-streaming body (a ``chat.completion``, a ``response``)."""
        try:
            body = await http.aread()
        finally:
            await http.aclose()
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise StreamProtocolError(
                f"the response body is not JSON: {body[:120]!r}", provider=self.provider
            ) from None
        return deltas(obj, self.provider)
