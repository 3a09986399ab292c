"""The checks that keep a model server on this machine from being driven by other web pages:
the security of :func:`~streamwrap.web.chat_app` (``streamwrap serve``).

A model server on localhost is an attractive target: any page the user visits can send
requests to ``127.0.0.1`` (a "simple" ``text/plain`` POST needs no CORS preflight), and a
DNS-rebinding page can even read the answers. So every request passes :class:`Guard`
before routing: the Host header (without a token), the token (when set), and the Origin
(or, when a browser sends none, ``Sec-Fetch-Site``). :func:`guard_middleware` checks the
app's security options (refusing an allow-any origin without a token) and builds the
middleware: CORS for the allowed origins, then the guard. (The app requires its chat POSTs
to be JSON, the CSRF defence, and sets the page's Content-Security-Policy.)
"""

from __future__ import annotations

import base64
import hmac
import ipaddress
import re
from collections.abc import Sequence
from urllib.parse import urlsplit

import orjson

# Only the public API: web is a client of streamwrap like any application.
from streamwrap import InputError, MissingDependencyError

try:
    from starlette.datastructures import Headers, QueryParams
    from starlette.middleware import Middleware
    from starlette.middleware.cors import CORSMiddleware
    from starlette.responses import Response
    from starlette.types import ASGIApp, Message, Receive, Scope, Send
except ImportError as exc:  # pragma: no cover - exercised by the CLI test with starlette hidden
    raise MissingDependencyError("starlette", "web") from exc

__all__ = ["EVENTS_PROTOCOL", "LOCKED", "Guard", "error_response", "guard_middleware", "open_origins"]

# The websocket's subprotocols. Browsers cannot set headers on a websocket, and a token in
# the URL would be logged, so the page offers "streamwrap" plus the token as a second
# name, base64url-encoded (any token then makes a valid name); the server picks
# "streamwrap", so the token is never echoed.
EVENTS_PROTOCOL = "streamwrap"
_TOKEN_PROTOCOL = "streamwrap.bearer."
# Set by the guard on a browser's page load without a valid token.
LOCKED = "streamwrap_locked"


def guard_middleware(
    *, token: str | None, allowed_origins: Sequence[str], allowed_hosts: Sequence[str]
) -> list[Middleware]:
    """The middleware that guards the app (see :func:`~streamwrap.web.chat_app` for the
    options), after checking the options: :class:`~streamwrap.InputError` for a bad one,
    and for an origin that lets any page in (``"*"``, ``"null"``) without a ``token``."""
    if token is not None and (not isinstance(token, str) or not token.strip()):
        raise InputError("token must be a non-empty string, or None for no token")
    for name, values in (("allowed_origins", allowed_origins), ("allowed_hosts", allowed_hosts)):
        # (a lone string would be taken as a sequence of one-letter origins)
        if isinstance(values, str) or not all(isinstance(v, str) for v in values):
            raise InputError(f"{name} must be a sequence of strings, got {values!r}")
    if token is None:
        anyone = open_origins(allowed_origins)
        if anyone:
            raise InputError(
                f"allowed_origins={anyone!r} without a token would let every web page the user visits "
                "drive the model: pass token=..., or name the origins that may call the API"
            )
    origins = tuple(_normalize_origin(o) for o in allowed_origins)
    middleware = []
    if origins:
        # Outermost: a CORS preflight carries no token, and must be answered before the guard.
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(origins),
                allow_methods=["GET", "POST"],
                allow_headers=["authorization", "content-type"],
                expose_headers=[
                    "x-vercel-ai-ui-message-stream",
                    "x-streamwrap-upstream-status",
                    "x-streamwrap-chat-id",
                    "x-streamwrap-response-id",
                ],
            )
        )
    middleware.append(Middleware(Guard, token=token, allowed_origins=origins, allowed_hosts=allowed_hosts))
    return middleware


def open_origins(origins: Sequence[str]) -> list[str]:
    """The entries of ``origins`` that let any web page call the API: ``*``, and ``null``
    (the origin of sandboxed frames and ``file:`` pages, which any page can create)."""
    return [o for o in origins if o.strip().lower() in ("*", "null")]


def _error_body(code: str, message: str) -> bytes:
    return orjson.dumps({"error": {"code": code, "message": message}})


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    """A refusal, ``{"error": {"code", "message"}}``: the guard's, and the app's own."""
    return Response(
        _error_body(code, message), status_code=status, headers=headers, media_type="application/json"
    )


class Guard:
    """Pure ASGI middleware (it must see websocket handshakes too): Host, token, Origin."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: str | None,
        allowed_origins: Sequence[str],
        allowed_hosts: Sequence[str],
    ) -> None:
        self.app = app
        self.token = token.encode() if token else None
        self.any_origin = "*" in allowed_origins
        self.allowed_origins = frozenset(allowed_origins)
        hosts = {h.strip().lower().strip("[]") for h in allowed_hosts}
        hosts.update(urlsplit(o).hostname or "" for o in allowed_origins)
        hosts.discard("")
        self.allowed_hosts = frozenset(hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        refusal = self._check(scope)
        if refusal is not None and refusal[0] == 401 and _opens_the_page(scope):
            # The page asks for the token itself (see chat_app); the API still needs it.
            scope = {**scope, "state": {**scope.get("state", {}), LOCKED: True}}
            refusal = None
        if refusal is None:
            if scope["type"] == "http":
                send = _with_nosniff(send)
            await self.app(scope, receive, send)
            return
        status, code, message = refusal
        headers = {"www-authenticate": "Bearer"} if status == 401 else None
        if scope["type"] == "websocket":
            await _refuse_websocket(scope, receive, send, status, _error_body(code, message))
        else:
            await error_response(status, code, message, headers)(scope, receive, send)

    def _check(self, scope: Scope) -> tuple[int, str, str] | None:
        headers = Headers(scope=scope)
        given_hosts = headers.getlist("host")
        host = given_hosts[0] if len(given_hosts) == 1 else ""
        name = _parse_host(host)
        if name is None:
            # RFC 9112 3.2: a missing, repeated or malformed Host is a 400, token or not.
            got = f"got {host!r}" if len(given_hosts) == 1 else f"got {len(given_hosts)} of them"
            return (
                400,
                "bad_host",
                (
                    "send one Host header, host[:port]: a name, an IPv4 address or a bracketed IPv6 "
                    f"address, and a port 0-65535 (no user, path or spaces); {got}"
                ),
            )
        if self.token is None and not self._host_ok(name):
            return (
                403,
                "host_not_allowed",
                (
                    f"Host {host!r} is not allowed: open the server by IP address or localhost, "
                    "or start it with a token (--token) or --allow-host"
                ),
            )
        if self.token is not None:
            given = (
                _bearer(headers.get("authorization"))
                or QueryParams(scope.get("query_string", b"")).get("token")
                or (
                    _protocol_token(headers.get("sec-websocket-protocol"))
                    if scope["type"] == "websocket"
                    else None
                )
            )
            if not given:
                return (
                    401,
                    "unauthorized",
                    (
                        "this server needs a token: open the URL `streamwrap serve` printed, or send "
                        "'Authorization: Bearer <token>'"
                    ),
                )
            if not hmac.compare_digest(given.encode(), self.token):
                return 401, "unauthorized", "wrong token"
        origin = headers.get("origin")
        if scope["type"] == "http" and scope["path"] == "/" and scope["method"] in ("GET", "HEAD"):
            return None  # the page: navigations come from anywhere, and cannot read it
        if origin is not None:
            if not self._origin_ok(origin, host):
                return (
                    403,
                    "origin_not_allowed",
                    f"requests from {origin!r} are not allowed (see --allow-origin)",
                )
        elif headers.get("sec-fetch-site") in ("cross-site", "same-site"):
            # A browser sends no Origin on a plain cross-site GET (an <img>, a link), but
            # says where it came from here. ("same-site" includes other ports of this host.)
            return 403, "origin_not_allowed", "cross-site requests are not allowed (see --allow-origin)"
        return None

    def _host_ok(self, name: str) -> bool:
        """Whether a host name (as :func:`_parse_host` returns it) may be served without a token."""
        if name == "localhost" or name.endswith(".localhost") or name in self.allowed_hosts:
            return True
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return False
        return True  # an IP address cannot be rebound to another server

    def _origin_ok(self, origin: str, host: str) -> bool:
        if self.any_origin:
            return True
        normalized = _normalize_origin(origin)
        if normalized in self.allowed_origins:
            return True
        # Our own origin. The scheme is not compared: behind a TLS proxy the page is
        # https while this server sees http, and one host:port serves one scheme.
        return bool(host) and normalized in (
            _normalize_origin(f"http://{host}"),
            _normalize_origin(f"https://{host}"),
        )


# One DNS label (RFC 1123; "_" too, which container and LAN names use).
_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
_PORT = re.compile(r"[0-9]{1,5}")


def _parse_host(value: str) -> str | None:
    """The host name of a ``Host`` header, in lower case (an IPv6 address without its
    brackets), or ``None`` when ``value`` is not ``host[:port]``.

    Strict on purpose: the header decides whether a request is served without a token,
    and a lenient parser reads ``evil.example@127.0.0.1`` as the host ``127.0.0.1`` while
    the browser that sent it is on ``evil.example``. So: a host is a DNS name (dot-separated
    labels) or an IPv4 address, or an IPv6 address in brackets (no zone id); then nothing,
    or ``:`` and a port 0-65535. No user, path, query, spaces or percent-encoding.
    """
    if value.startswith("["):
        name, bracket, port = value[1:].partition("]")
        if not bracket or "%" in name:
            return None
        try:
            ipaddress.IPv6Address(name)
        except ValueError:
            return None
    else:
        name, colon, port = value.partition(":")
        port = colon + port
        if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in name.split(".")):
            return None
    if port and not (port.startswith(":") and _PORT.fullmatch(port[1:]) and int(port[1:]) <= 65535):
        return None
    return name.lower()


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def _protocol_token(offered: str | None) -> str | None:
    """The token in a ``streamwrap.bearer.<base64url>`` subprotocol, if one is offered
    (a malformed one counts as none)."""
    for name in (offered or "").split(","):
        name = name.strip()
        if name.startswith(_TOKEN_PROTOCOL):
            encoded = name[len(_TOKEN_PROTOCOL) :]
            try:
                return base64.b64decode(
                    encoded + "=" * (-len(encoded) % 4), altchars=b"-_", validate=True
                ).decode()
            except ValueError:  # (binascii.Error and UnicodeDecodeError are ValueErrors)
                return None
    return None


def _opens_the_page(scope: Scope) -> bool:
    """A browser loading the page (navigations accept HTML; API clients and fetches do not
    ask for it)."""
    return (
        scope["type"] == "http"
        and scope["path"] == "/"
        and scope["method"] in ("GET", "HEAD")
        and "text/html" in Headers(scope=scope).get("accept", "").lower()
    )


def _normalize_origin(origin: str) -> str:
    """``scheme://host[:port]`` in lower case, without the scheme's default port."""
    origin = origin.strip().lower().rstrip("/")
    if origin in ("*", "null"):
        return origin
    try:
        parts = urlsplit(origin)
        port = parts.port
    except ValueError:
        return origin
    if not parts.scheme or not parts.hostname:
        return origin
    name = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return f"{parts.scheme}://{name}" + ("" if port is None or port == default else f":{port}")


def _with_nosniff(send: Send) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {
                **message,
                "headers": [*message.get("headers", []), (b"x-content-type-options", b"nosniff")],
            }
        await send(message)

    return sending


async def _refuse_websocket(scope: Scope, receive: Receive, send: Send, status: int, body: bytes) -> None:
    """Refuse a handshake with an HTTP status and a JSON body where the server can send
    one (the ASGI denial-response extension), else by closing with 1008 (policy violation),
    which servers turn into a 403."""
    await receive()  # websocket.connect
    if "websocket.http.response" in scope.get("extensions", {}):
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008})
