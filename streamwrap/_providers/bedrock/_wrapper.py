"""``bedrock_chat``: Amazon Bedrock's Converse streaming API, natively.

The request, as Bedrock documents it::

    POST https://bedrock-runtime.{region}.amazonaws.com/model/{modelId}/converse-stream
    content-type: application/json
    authorization: AWS4-HMAC-SHA256 ... (SigV4)   |   Bearer <Bedrock API key>
    {"messages", "system"?, "inferenceConfig"?, "toolConfig"?, "additionalModelRequestFields"?}

and the answer an AWS event stream (``_transport._eventstream``, mapped by ``_wire``).
``modelId`` is a model id (``amazon.nova-micro-v1:0``), an inference profile id
(``us.anthropic.claude-sonnet-4-20250514-v1:0``) or an ARN, URL-encoded into the path as
boto3 encodes it. Non-streaming calls use ``/converse``, with the same body.

Config keys (beside the common ones):

- ``region``: the AWS region; else ``$AWS_REGION``, ``$AWS_DEFAULT_REGION``, the profile's
  ``region`` in ``~/.aws/config``. It names the endpoint and is part of the signature.
- ``profile``: the AWS profile whose credentials botocore's chain loads (else
  ``$AWS_PROFILE``, else the default chain).
- ``bedrock_api``: ``"converse"`` (the default) or ``"invoke"``: Anthropic's Messages
  format through InvokeModelWithResponseStream (``/model/{modelId}/invoke-with-response-
  stream``, what Anthropic's own Bedrock client uses), for Claude models only: the body
  is ``anthropic_chat``'s, with ``anthropic_version: bedrock-2023-05-31`` and no
  ``model``; the stream is Anthropic's events in eventstream ``chunk`` frames (see
  ``_invoke``).
- ``api_key``: a Bedrock API key (else ``$AWS_BEARER_TOKEN_BEDROCK``), sent as a bearer
  token instead of signing with AWS credentials (see ``_auth``).
- ``base_url``: the endpoint (else ``$AWS_ENDPOINT_URL_BEDROCK_RUNTIME``, botocore's
  variable for it): a VPC endpoint, a proxy, the emulator.

Why httpx sends the bytes, not botocore (or boto3): botocore's HTTP stack is synchronous
(urllib3), so a stream read through it would hold a thread per stream (aiobotocore is
another dependency, pinned to exact botocore versions); its event-stream reader parses
every event into dicts through its own parser, the per-chunk cost streamwrap exists to
avoid (``benchmarks/bench_eventstream.py``); and httpx is already the transport of every
native wrapper, with its pool, timeouts, error types and the secrets' handling. botocore
does what it is the library for: the credential chain and the SigV4 signature, on the
exact bytes httpx then sends.

Messages are OpenAI-style and converted: ``system``/``developer`` → ``system`` text blocks;
``user`` → a user turn (text, ``image_url`` data URLs as ``image`` blocks, Converse's own
blocks passed through); ``assistant`` → reasoning, text and ``toolUse`` blocks; ``tool``
→ ``toolResult`` blocks in a user turn; consecutive turns of one role are merged. Tools
become ``toolConfig.tools[].toolSpec``; ``tool_choice`` is translated (``"none"`` sends
none: Converse has no such choice). Call arguments: ``max_tokens``
(``max_completion_tokens``), ``temperature``, ``top_p``, ``stop`` → ``inferenceConfig``;
``thinking`` (Claude's, an object or a token budget as in ``anthropic_chat``) and ``top_k``
→ ``additionalModelRequestFields`` (which may also be passed whole); other keys are sent
as Converse's own (``guardrailConfig``, ``requestMetadata``, ...); ``extra_body`` last.

A tool loop with thinking must send the reasoning back with its signature: put
``response.tool_calls`` themselves in the assistant message (their
``extra["thinking_blocks"]``), as with ``anthropic_chat``.

Errors before the stream are Bedrock's JSON bodies with the error's type in the
``x-amzn-ErrorType`` header (``_errors``): ``ValidationException`` is a 400 that names the
message, ``ThrottlingException`` a :class:`RateLimitError` (retried before the first
token, as a 429), ``AccessDeniedException``, ``UnrecognizedClientException`` and
``ExpiredTokenException`` :class:`AuthenticationError`. An exception the service sends
inside the stream raises :class:`ProviderStreamError` with the partial text; a
throttling, service-unavailable or internal-server exception that comes before any
content is answered as the same error before the stream (so retried like a 429 or 5xx).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Mapping
from typing import Any, ClassVar, TypeVar
from urllib.parse import quote

import orjson

from ..._delta import Delta
from ..._errors import (
    ConfigError,
    ProviderConnectionError,
    ProviderHTTPError,
    ProviderStreamError,
    StreamwrapError,
)
from ..._secret import Secret, redact_error
from ..._transport._httpx_client import body_chunks, make_httpx_client, status_error, whole_body
from ..._transport._upstream import BodyMapper, BodyUpstream, RedactingUpstream, StaticUpstream, Upstream
from ..._wrapper import ChatRequest, ModelWrapper
from ._auth import SigV4Signer, default_region
from ._errors import HTTP_ERRORS, RETRIED_IN_STREAM, error_type, http_error_for
from ._invoke import InvokeStreamMapper, build_invoke_body, invoke_message_deltas
from ._request import build_converse_body
from ._wire import ConverseStreamMapper, converse_deltas

__all__ = ["BedrockChatWrapper"]

_APIS = ("converse", "invoke")
# (streaming path, whole path) of each API.
_PATHS = {
    "converse": ("converse-stream", "converse"),
    "invoke": ("invoke-with-response-stream", "invoke"),
}
_REGION_ENV = ("AWS_REGION", "AWS_DEFAULT_REGION")
_E = TypeVar("_E", bound=StreamwrapError)


class BedrockChatWrapper(ModelWrapper):
    """Amazon Bedrock's ConverseStream API (or InvokeModelWithResponseStream for Claude)."""

    model_type: ClassVar[str] = "bedrock_chat"
    provider: ClassVar[str] = "bedrock"
    extra: ClassVar[str] = "bedrock"
    price_provider_id: ClassVar[str | None] = "aws"
    gen_ai_provider_name: ClassVar[str] = "aws.bedrock"
    api_key_env: ClassVar[tuple[str, ...]] = ("AWS_BEARER_TOKEN_BEDROCK",)
    base_url_env: ClassVar[tuple[str, ...]] = ("AWS_ENDPOINT_URL_BEDROCK_RUNTIME",)
    # Without a key, requests are signed with AWS credentials.
    api_key_optional: ClassVar[bool] = True
    config_keys: ClassVar[Mapping[str, tuple[tuple[type, ...], str]]] = {
        "region": ((str,), "an AWS region such as 'us-east-1'"),
        "profile": ((str,), "the name of an AWS profile (~/.aws/config)"),
        "bedrock_api": ((str,), "'converse' (the default) or 'invoke' (Anthropic's format, Claude only)"),
    }

    def __init__(self, model_name: str, **options: Any) -> None:
        super().__init__(model_name, **options)
        api = self.extra_options.get("bedrock_api", "converse")
        if api not in _APIS:
            raise ConfigError(
                f"'bedrock_api' must be 'converse' or 'invoke', got {api!r}.",
                key="bedrock_api",
                config_name=self.config_name,
            )
        self.bedrock_api: str = api
        self.profile: str | None = self.extra_options.get("profile") or os.environ.get("AWS_PROFILE") or None
        self.region: str | None = self.extra_options.get("region") or next(
            (os.environ[name] for name in _REGION_ENV if os.environ.get(name)), None
        )
        self._signer: SigV4Signer | None = None

    def _make_client(self) -> Any:
        return make_httpx_client(
            extra=self.extra,
            timeout=self.timeout,
            client_args=self.client_args,
            secret=self._api_key,  # a Bedrock API key, as a bearer token; none with SigV4
        )

    async def _resolved_region(self) -> str:
        if self.region is None:
            import anyio.to_thread

            self.region = await anyio.to_thread.run_sync(default_region, self.profile)
        if self.region is None:
            raise ConfigError(
                "no AWS region for bedrock_chat: set 'region' in the config or the AWS_REGION "
                "environment variable.",
                key="region",
                config_name=self.config_name,
            )
        return self.region

    def _server_url(self) -> str | None:
        # (For telemetry's server.address, at the call: a region still to be read from the
        # profile is not looked up here, on the caller's thread; the span then has none.)
        if self.base_url:
            return self.base_url
        return f"https://bedrock-runtime.{self.region}.amazonaws.com" if self.region else None

    async def _url(self, stream: bool) -> str:
        # A model id may hold ':' and an ARN '/': one path segment, encoded as boto3 does.
        path = f"/model/{quote(self.model_name, safe='')}/{_PATHS[self.bedrock_api][0 if stream else 1]}"
        if self.base_url:
            return self.base_url.rstrip("/") + path
        return f"https://bedrock-runtime.{await self._resolved_region()}.amazonaws.com{path}"

    async def _sign(self, request: Any, body: bytes) -> None:
        if self._api_key:
            return  # the client sends the key
        if self._signer is None:
            self._signer = SigV4Signer(self.provider, await self._resolved_region(), self.profile)
        await self._signer.sign(request, body)

    def _body(self, request: ChatRequest) -> dict[str, Any]:
        if self.bedrock_api == "invoke":
            return build_invoke_body(request)
        return build_converse_body(request)

    def _mapper(self, response_id: str | None) -> Callable[[], BodyMapper]:
        if self.bedrock_api == "invoke":
            return lambda: InvokeStreamMapper(self.provider)
        return lambda: ConverseStreamMapper(self.provider, response_id, self.model_name)

    def _complete(self, response_id: str | None) -> Callable[[Any], list[Delta]]:
        if self.bedrock_api == "invoke":
            return lambda obj: invoke_message_deltas(obj, self.provider)
        return lambda obj: converse_deltas(obj, self.provider, response_id, self.model_name)

    async def _open(self, request: ChatRequest) -> Upstream:
        import httpx

        client = self._client()
        body = orjson.dumps(self._body(request))
        url = await self._url(request.stream)
        accept = "application/vnd.amazon.eventstream" if request.stream else "application/json"
        http_request = client.build_request(
            "POST", url, content=body, headers={"content-type": "application/json", "accept": accept}
        )
        await self._sign(http_request, body)
        try:
            response = await client.send(http_request, stream=True)
        except httpx.TransportError as exc:
            raise ProviderConnectionError(
                f"cannot reach {url}: {type(exc).__name__}: {exc}", provider=self.provider
            ) from None
        secrets = self._secrets()
        if response.status_code >= 400:
            raise _redacted(await _status_error(response, self.provider), secrets)
        response_id = response.headers.get("x-amzn-requestid")
        if request.stream:
            upstream: Upstream = BodyUpstream(
                body_chunks(response), self._mapper(response_id)(), response.aclose, self.provider
            )
            # One layer per secret (usually one: the API key, or the secret access key).
            for secret in secrets or (None,):
                upstream = RedactingUpstream(upstream, secret)
            return await _FirstBatch.read(upstream, self.provider)
        error: StreamwrapError
        try:
            return StaticUpstream(await whole_body(response, url, self.provider, self._complete(response_id)))
        except StreamwrapError as exc:
            error = exc
        raise _redacted(error, secrets)

    def _secrets(self) -> tuple[Secret, ...]:
        """What must never show: the API key, or the signature's secret key and token."""
        if self._api_key:
            return (self._api_key,)
        return self._signer.secrets if self._signer is not None else ()


class _FirstBatch:
    """An open stream whose first batch was read before ``_open`` returned, so that an
    exception the service sends before any content and that a retry may cure (throttling,
    service unavailable, internal error) is raised as the error a refused request gets,
    and retried as one. Any other first outcome is replayed to the reader unchanged."""

    __slots__ = ("_error", "_first", "_iterator", "_upstream")

    def __init__(
        self,
        upstream: Upstream,
        iterator: AsyncIterator[list[Delta]],
        first: list[Delta] | None,
        error: StreamwrapError | None,
    ) -> None:
        self._upstream = upstream
        self._iterator = iterator
        self._first = first
        self._error = error

    @classmethod
    async def read(cls, upstream: Upstream, provider: str) -> Upstream:
        iterator = upstream.__aiter__()
        try:
            first: list[Delta] | None = await iterator.__anext__()
        except StopAsyncIteration:
            return cls(upstream, iterator, None, None)
        except StreamwrapError as exc:
            if isinstance(exc, ProviderStreamError) and (exc.code or "").lower() in RETRIED_IN_STREAM:
                await upstream.aclose()
                raise http_error_for(
                    exc.code, provider=provider, status_code=200, message=exc.message, body=None
                ) from None
            return cls(upstream, iterator, None, exc)
        except BaseException:
            # Cancelled (a first-token timeout, the caller) while waiting: nothing above
            # holds this response yet, so it is closed here, or its connection would leak.
            await cls(upstream, iterator, None, None).aclose()
            raise
        return cls(upstream, iterator, first, None)

    def __aiter__(self) -> _FirstBatch:
        return self

    def __anext__(self) -> Awaitable[list[Delta]]:
        # The first batch (or the first error), then the stream's own iterator answers
        # directly: no coroutine of this class's per batch on the hot path. (After an
        # error or the end, that iterator is exhausted: it raises StopAsyncIteration.)
        first, error = self._first, self._error
        if first is not None or error is not None:
            self._first = self._error = None
            return _Ready(first, error)
        return self._iterator.__anext__()

    async def aclose(self) -> None:
        close = getattr(self._iterator, "aclose", None)
        if close is not None:
            await close()
        await self._upstream.aclose()


class _Ready:
    """An awaitable that is already done: a value, or an error to raise."""

    __slots__ = ("_error", "_value")

    def __init__(self, value: list[Delta] | None, error: BaseException | None) -> None:
        self._value = value
        self._error = error

    def __await__(self) -> Generator[Any, None, list[Delta]]:
        if self._error is not None:
            raise self._error
        assert self._value is not None
        return self._value
        yield  # (a generator function, whose await finishes at once)


def _redacted(error: _E, secrets: tuple[Secret, ...]) -> _E:
    for secret in secrets or (None,):
        error = redact_error(error, secret)
    return error


async def _status_error(response: Any, provider: str) -> ProviderHTTPError:
    """The typed error of a non-2xx response: its type from ``x-amzn-ErrorType`` (or the
    body's ``__type``), its message from the body (scrubbed of the key)."""
    # (The secrets are scrubbed by the caller: there may be two.)
    error = await status_error(response, provider, None)
    kind = error_type(response.headers.get("x-amzn-errortype"))
    if kind is None and isinstance(error.body, Mapping) and isinstance(error.body.get("__type"), str):
        kind = error.body["__type"].rpartition("#")[2] or None  # (the JSON protocol's form)
    if kind is None or kind.lower() not in HTTP_ERRORS:
        return error
    message = error.message
    if isinstance(error.body, Mapping) and isinstance(error.body.get("Message"), str):
        message = error.body["Message"]  # (some services capitalise it)
    return http_error_for(
        kind,
        provider=provider,
        status_code=response.status_code,
        message=message,
        body=error.body,
        retry_after=error.retry_after,
    )
