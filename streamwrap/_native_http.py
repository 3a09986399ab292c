"""The HTTP transport of the native-protocol wrappers (DashScope, Gemini, Ollama).

Their official SDKs parse every chunk into objects before the caller sees it and offer no
public way to read the raw body, so these wrappers send the request themselves with httpx,
to the SDK's endpoint with its headers, and decode the bytes with streamwrap's own decoders
(the same split as ``openai_chat``, where the SDK sends and streamwrap decodes). One
:class:`httpx.AsyncClient` per wrapper keeps connections pooled.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson

from ._delta import Delta
from ._errors import MissingDependencyError, ProviderConnectionError, StreamProtocolError
from ._http import http_error
from ._secret import Secret
from ._upstream import BodyUpstream, StaticUpstream, WireMapper
from ._wrapper import Upstream

__all__ = ["make_httpx_client", "post_json"]


def make_httpx_client(
    *, extra: str, timeout: float, headers: Mapping[str, str], client_args: Mapping[str, Any]
) -> Any:
    """An ``httpx.AsyncClient`` for one wrapper; ``client_args`` are passed through
    (``proxy``, ``verify``, ``headers``, ...) and win over the defaults."""
    try:
        import httpx
    except ImportError:
        raise MissingDependencyError("httpx", extra) from None
    args: dict[str, Any] = {"timeout": httpx.Timeout(timeout)}
    args.update(client_args)
    merged = dict(headers)
    merged.update(args.pop("headers", None) or {})
    return httpx.AsyncClient(headers=merged, **args)


async def post_json(
    client: Any,
    url: str,
    body: Mapping[str, Any],
    *,
    provider: str,
    secret: Secret | None,
    stream: bool,
    mapper: Callable[[], WireMapper],
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
        try:
            content = await response.aread()
        except httpx.TransportError:
            content = b""
        finally:
            await response.aclose()
        raise http_error(
            provider=provider,
            status_code=response.status_code,
            body=content,
            headers=response.headers,
            secret=secret,
        )
    if stream:
        return BodyUpstream(response.aiter_bytes(), mapper(), response.aclose, provider)
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
        raise StreamProtocolError(f"the response body is not JSON: {content[:120]!r}", provider=provider) from None
    return StaticUpstream(complete(obj))
