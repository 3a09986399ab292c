"""The HTTP transport of the native-protocol wrappers (DashScope, Gemini, Ollama).

Their official SDKs parse every chunk into objects before the caller sees it and offer no
public way to read the raw body, so these wrappers send the request themselves with httpx,
to the SDK's endpoint with its headers, and decode the bytes with streamwrap's own decoders
(the same split as ``openai_chat``, where the SDK sends and streamwrap decodes). One
:class:`httpx.AsyncClient` per wrapper keeps connections pooled.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any

import orjson

from .._delta import Delta
from .._errors import (
    ConfigError,
    MissingDependencyError,
    ProviderConnectionError,
    ProviderHTTPError,
    StreamProtocolError,
    StreamwrapError,
)
from .._secret import Secret, redact_error
from .._version import __version__
from ._http_error import http_error
from ._pool import close_idle_in_background, pool_limits
from ._upstream import BodyMapper, BodyUpstream, RedactingUpstream, StaticUpstream, Upstream

if TYPE_CHECKING:
    import httpx

__all__ = ["body_chunks", "make_httpx_client", "post_json", "status_error", "whole_body"]


def make_httpx_client(
    *,
    extra: str,
    timeout: float,
    client_args: Mapping[str, Any],
    headers: Mapping[str, str] | None = None,
    secret: Secret | None = None,
    key_header: str = "authorization",
    key_prefix: str = "Bearer ",
) -> Any:
    """An ``httpx.AsyncClient`` for one wrapper; ``client_args`` are passed through
    (``proxy``, ``verify``, ``headers``, ...) and win over the defaults.

    Every request says ``user-agent: streamwrap/<version>``, plus ``headers``. The API key
    (``secret``) is sent in ``key_header`` as ``key_prefix + key``. It is
    revealed only in the call that builds the client, so no local variable of ours holds
    it if that raises (see ``_secret``).
    """
    try:
        import httpx
    except ImportError:
        raise MissingDependencyError("httpx", extra) from None
    # 1000 connections: httpx's default of 100 would make a 101st concurrent stream wait.
    args: dict[str, Any] = {"timeout": httpx.Timeout(timeout), "limits": pool_limits(httpx)}
    args.update(client_args)
    user_headers = args.pop("headers", None) or {}
    try:
        client = httpx.AsyncClient(
            headers=_with_key(
                {"user-agent": f"streamwrap/{__version__}", **(headers or {})},
                user_headers,
                secret,
                key_header,
                key_prefix,
            ),
            **args,
        )
    except TypeError as exc:  # an option httpx does not have
        error = ConfigError(f"'client_args' are not options of httpx.AsyncClient: {exc}", key="client_args")
    else:
        # Idle connections are closed off the request path (see _transport._pool).
        return close_idle_in_background(client)
    raise error


def _with_key(
    defaults: Mapping[str, str],
    overrides: Mapping[str, str],
    secret: Secret | None,
    name: str,
    prefix: str,
) -> dict[str, str]:
    # The key enters a dict only here, which goes straight to httpx (whose Headers object
    # masks "authorization" in its repr).
    merged = dict(defaults)
    if secret is not None:
        merged[name] = prefix + secret.reveal()
    merged.update(overrides)
    return merged


async def post_json(
    client: Any,
    url: str,
    body: Mapping[str, Any],
    *,
    provider: str,
    secret: Secret | None,
    stream: bool,
    mapper: Callable[[], BodyMapper],
    complete: Callable[[Any], list[Delta]],
    headers: Mapping[str, str] | None = None,
) -> Upstream:
    """POST ``body``; raise the typed HTTP or connection error; return the open stream
    (decoded by ``mapper()``) or, for a non-streaming call, the parsed whole response
    (mapped by ``complete``)."""
    import httpx

    request = client.build_request("POST", url, content=orjson.dumps(body), headers=headers)
    request.headers["content-type"] = "application/json"
    try:
        response = await client.send(request, stream=True)
    except httpx.TransportError as exc:
        raise ProviderConnectionError(
            f"cannot reach {url}: {type(exc).__name__}: {exc}", provider=provider
        ) from None
    if response.status_code >= 400:
        # (Read and parsed in a helper: the raw body may echo the key, and no frame the
        # error passes through may hold it in a local.)
        raise await status_error(response, provider, secret)
    if stream:
        return RedactingUpstream(
            BodyUpstream(body_chunks(response), mapper(), response.aclose, provider), secret
        )
    error: StreamwrapError
    try:
        return StaticUpstream(await whole_body(response, url, provider, complete))
    except StreamwrapError as exc:
        error = exc
    raise redact_error(error, secret)


async def status_error(response: Any, provider: str, secret: Secret | None) -> ProviderHTTPError:
    """The typed error of a non-2xx streamed response (its body read, the response closed,
    the body scrubbed of ``secret``)."""
    import httpx

    try:
        content = await response.aread()
    except httpx.TransportError:
        content = b""
    finally:
        await response.aclose()
    return http_error(
        provider=provider,
        status_code=response.status_code,
        body=content,
        headers=response.headers,
        secret=secret,
    )


async def whole_body(
    response: Any, url: str, provider: str, complete: Callable[[Any], list[Delta]]
) -> list[Delta]:
    """The deltas of a whole (non-streaming) JSON body."""
    import httpx

    try:
        content = await response.aread()
    except httpx.TransportError as exc:
        raise ProviderConnectionError(
            f"connection lost reading {url}: {type(exc).__name__}: {exc}", provider=provider
        ) from None
    finally:
        await response.aclose()
    try:
        obj = orjson.loads(content)
    except orjson.JSONDecodeError:
        raise StreamProtocolError(
            f"the response body is not JSON: {content[:120]!r}", provider=provider
        ) from None
    return complete(obj)


def body_chunks(response: httpx.Response) -> AsyncIterator[bytes]:
    """The network reads of a streamed response's body, decompressed if it is encoded.

    ``aiter_raw()`` when the body has no content encoding: ``aiter_bytes()`` puts a
    generator, an identity decoder and a re-chunker around each read, which measured as
    ~5% of a whole stream's per-chunk CPU (bench_providers.py, Anthropic).
    """
    encoding = response.headers.get("content-encoding")
    if encoding is None or encoding.strip().lower() == "identity":
        return response.aiter_raw()
    return response.aiter_bytes()
