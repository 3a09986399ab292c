"""A front for two workers, as a load balancer is: each HTTP request goes to one of two
servers by its path, on the front's own origin (so a browser page served through it keeps
its origin, token and cookies while its requests land on different workers).

Deliberately small: requests are read whole, responses are passed through as they come
(streams included), websockets are not routed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import httpx

__all__ = ["path_router"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

# Set per connection by the server the front talks to, or by the front's own server.
_HOP_BY_HOP = {b"connection", b"keep-alive", b"transfer-encoding", b"upgrade"}


def path_router(
    first: str, second: str, to_second: Callable[[str], bool]
) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """An ASGI app sending the requests whose path ``to_second`` accepts to the server at
    ``second``, every other one to ``first`` (both base URLs, no trailing slash)."""
    made: list[httpx.AsyncClient] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        # Made on the first request: a client belongs to the event loop of the front's server.
        if not made:
            made.append(httpx.AsyncClient(timeout=None))
        client = made[0]
        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path = scope["raw_path"].decode()
        url = (second if to_second(scope["path"]) else first) + path
        if scope["query_string"]:
            url += "?" + scope["query_string"].decode()
        request = client.build_request(
            scope["method"],
            url,
            headers=[(k, v) for k, v in scope["headers"] if k.lower() not in _HOP_BY_HOP],
            content=bytes(body),
        )
        response = await client.send(request, stream=True)
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": [(k, v) for k, v in response.headers.raw if k.lower() not in _HOP_BY_HOP],
                }
            )
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await response.aclose()

    return app
