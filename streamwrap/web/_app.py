"""The app behind ``streamwrap serve``: a chat page, its SSE and websocket endpoints, and
the checks that keep a model server on this machine from being driven by other web pages.

A model server on localhost is an attractive target: any page the user visits can send
requests to ``127.0.0.1`` (a "simple" ``text/plain`` POST needs no CORS preflight), and a
DNS-rebinding page can even read the answers. So every request passes :class:`_Guard`
before routing: the Host header (without a token), the token (when set), and the Origin
(or, when a browser sends none, ``Sec-Fetch-Site``); the chat POSTs must be JSON.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import hmac
import html
import ipaddress
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

import orjson

# Only the public API: web is a client of streamwrap like any application.
from streamwrap import InputError, MissingDependencyError, ModelWrapper

try:
    from starlette.applications import Starlette
    from starlette.datastructures import Headers, QueryParams
    from starlette.middleware import Middleware
    from starlette.middleware.cors import CORSMiddleware
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route, WebSocketRoute
    from starlette.types import ASGIApp, Message, Receive, Scope, Send
    from starlette.websockets import WebSocket
except ImportError as exc:  # pragma: no cover - exercised by the CLI test with starlette hidden
    raise MissingDependencyError("starlette", "web") from exc

from ._sse import sse_response, text_response
from ._websocket import check_heartbeat, websocket_chat

__all__ = ["chat_app", "open_origins"]

#: The largest request body accepted: a long conversation is far smaller.
MAX_BODY_BYTES = 1024 * 1024

_ROLES = ("system", "user", "assistant")
_PAGE = resources.files(__package__).joinpath("_page.html").read_text("utf-8")


def _csp_hashes(tag: str) -> str:
    """CSP source expressions for the page's own inline ``<tag>`` blocks: hashes, so that
    nothing else inline (an injected script) can run, and no per-request nonce is needed."""
    blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", _PAGE, flags=re.DOTALL)
    return " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(block.encode()).digest()).decode() + "'"
        for block in blocks
    )


_SCRIPT_SRC = _csp_hashes("script")
_STYLE_SRC = _csp_hashes("style")
# A Host header that is safe to repeat inside a header value (no ';', spaces or quotes).
_SANE_HOST = re.compile(r"^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$")
# The websocket's subprotocols. Browsers cannot set headers on a websocket, and a token in
# the URL would be logged, so the page offers "streamwrap" plus the token as a second
# name, base64url-encoded (any token then makes a valid name); the server picks
# "streamwrap", so the token is never echoed.
_EVENTS_PROTOCOL = "streamwrap"
_TOKEN_PROTOCOL = "streamwrap.bearer."
# Set by the guard on a browser's page load without a valid token.
_LOCKED = "streamwrap_locked"


def chat_app(
    model: ModelWrapper,
    *,
    token: str | None = None,
    allowed_origins: Sequence[str] = (),
    allowed_hosts: Sequence[str] = (),
    heartbeat: float | None = 15.0,
    title: str = "streamwrap",
) -> Starlette:
    """A Starlette app that chats with ``model`` in the browser and over HTTP.

    Routes:

    * ``GET /``: the chat page (self-contained; strict Content-Security-Policy).
    * ``POST /api/chat``: a JSON body as the Vercel AI SDK's ``useChat`` sends it
      (``{"messages": [{"role", "parts": [{"type": "text", "text"}]}], ...}``), or
      ``{"messages": [{"role", "content"}]}``, or ``{"prompt": "..."}``; answers with the
      UI message stream (SSE). When the provider refuses the request (HTTP 401, 429, 500,
      unreachable), the answer is still a 200 stream, ``start``, ``error`` (``errorText``)
      and ``[DONE]``, as the AI SDK's own servers send it: ``useChat`` then shows the
      message as its ``error`` (a non-2xx body would show as raw JSON). The provider's
      status is in the ``X-Streamwrap-Upstream-Status`` header.
    * ``GET /api/chat/text?prompt=...`` and ``POST /api/chat/text`` (same bodies): the reply
      as plain text, for curl. Here a refused request is an HTTP error, ``error: ...`` as
      the body: 429 (with ``Retry-After``) for a provider's rate limit, else 502. A reply
      that fails or is cancelled midway is cut off (no clean end), never passed off as whole.
    * ``GET /api/chat/{id}/stream``: 204 No Content, "nothing to resume" (what
      ``useChat({resume: true})`` asks when a page loads; a reply is not kept after its
      request ends, so there is never a stream to resume).
    * ``WS /ws``: :func:`websocket_chat`.
    * ``GET /healthz``: ``{"ok": true, "model": ..., "model_type": ...}``.

    At startup (under a server that runs the ASGI lifespan, as uvicorn does by default)
    the app prepares the model (:meth:`ModelWrapper.aprepare`), so that the first request
    does not wait for the provider SDK's import.

    Bad bodies are 400, bodies over 1 MiB 413, POSTs that are not
    ``Content-Type: application/json`` 415, all as ``{"error": {"code", "message"}}``.

    ``token``: every route requires ``Authorization: Bearer <token>`` or ``?token=<token>``
    (the websocket also takes it as a subprotocol, see below); else 401 (a websocket
    handshake is refused with 401). A browser that opens the page without a valid token
    (a reload after the page took ``?token=`` out of the address bar, a new tab) gets the
    page in its locked state, still with status 401: it holds no secret (not even the
    model's name) and asks for the token, which it keeps in the tab's ``sessionStorage``
    and sends in headers only. The URL ``streamwrap serve`` prints may also carry the token
    as ``#token=``, which never reaches the server. A browser websocket offers the
    subprotocols ``streamwrap`` and ``streamwrap.bearer.<the token in base64url>``; the
    server then selects ``streamwrap``.

    Browsers: a request with an ``Origin`` (or, without one, ``Sec-Fetch-Site``) from
    another site is refused with 403 unless the origin is in ``allowed_origins``, which
    are also answered with CORS headers (``"*"`` allows any origin). Loading the page is
    exempt: a navigation from anywhere is harmless, and the page cannot be framed.

    ``"*"`` (and ``"null"``, the origin of sandboxed frames and local files, which any
    page can take on) are refused without a ``token``: they would let every web page the
    user visits use the model.

    The Host header must be ``host[:port]`` (RFC 3986; an IPv6 literal in brackets), else
    400. Without a token, the host must be an IP address, ``localhost``, a host of
    ``allowed_origins`` or one of ``allowed_hosts``: this defeats DNS rebinding, where a
    hostile page's own hostname resolves to this server.
    """
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
    endpoints = _Endpoints(model, heartbeat=check_heartbeat(heartbeat), title=title)
    routes = [
        Route("/", endpoints.page, methods=["GET", "HEAD"]),
        Route("/api/chat", endpoints.chat, methods=["POST"]),
        Route("/api/chat/text", endpoints.chat_text, methods=["GET", "POST"]),
        Route("/api/chat/{chat_id}/stream", endpoints.resume, methods=["GET"]),
        Route("/healthz", endpoints.healthz, methods=["GET"]),
        WebSocketRoute("/ws", endpoints.websocket),
    ]
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
                expose_headers=["x-vercel-ai-ui-message-stream", "x-streamwrap-upstream-status"],
            )
        )
    middleware.append(Middleware(_Guard, token=token, allowed_origins=origins, allowed_hosts=allowed_hosts))
    handlers: dict[Any, Callable[[Request, Exception], Response | Awaitable[Response]]] = {_Problem: _problem_response}
    return Starlette(
        routes=routes, middleware=middleware, exception_handlers=handlers, lifespan=endpoints.lifespan
    )


def open_origins(origins: Sequence[str]) -> list[str]:
    """The entries of ``origins`` that let any web page call the API: ``*``, and ``null``
    (the origin of sandboxed frames and ``file:`` pages, which any page can create)."""
    return [o for o in origins if o.strip().lower() in ("*", "null")]


# -- errors ---------------------------------------------------------------------------------


class _Problem(Exception):
    """A request the app refuses; becomes a JSON error response."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _error_body(code: str, message: str) -> bytes:
    return orjson.dumps({"error": {"code": code, "message": message}})


def _error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(_error_body(code, message), status_code=status, headers=headers, media_type="application/json")


def _problem_response(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, _Problem)
    return _error_response(exc.status, exc.code, exc.message)


# -- request bodies ---------------------------------------------------------------------------


async def _read_json(request: Request) -> dict[str, Any]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        # Also the CSRF defence: a cross-site page can only POST text/plain, form or
        # multipart bodies without a CORS preflight, which this server never grants.
        raise _Problem(415, "unsupported_media_type", "send the body as JSON, with Content-Type: application/json")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise _Problem(413, "body_too_large", f"the body is larger than {MAX_BODY_BYTES} bytes")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _Problem(413, "body_too_large", f"the body is larger than {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    try:
        body = orjson.loads(b"".join(chunks))
    except orjson.JSONDecodeError as exc:
        raise _Problem(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise _Problem(400, "bad_request", f"the body must be a JSON object, got {type(body).__name__}")
    return body


def _chat_messages(body: dict[str, Any]) -> list[dict[str, str]]:
    """Chat messages from a useChat body (UI messages with parts), plain chat messages, or
    a prompt. Only text travels: reasoning, tool and file parts are not sent back."""
    raw = body.get("messages")
    if raw is None:
        prompt = body.get("prompt")
        if prompt is None:
            raise _Problem(400, "bad_request", "the body needs 'messages' (a list of messages) or 'prompt' (a string)")
        if not isinstance(prompt, str) or not prompt.strip():
            raise _Problem(400, "bad_request", "'prompt' must be a non-empty string")
        return [{"role": "user", "content": prompt}]
    if not isinstance(raw, list) or not raw:
        raise _Problem(400, "bad_request", "'messages' must be a non-empty list")
    messages = []
    for i, message in enumerate(raw):
        if not isinstance(message, dict):
            raise _Problem(400, "bad_request", f"messages[{i}] must be an object")
        role = message.get("role")
        if role not in _ROLES:
            raise _Problem(400, "bad_request", f"messages[{i}].role must be one of {', '.join(_ROLES)}; got {role!r}")
        text = _message_text(message, f"messages[{i}]")
        if text:
            messages.append({"role": role, "content": text})
        elif role != "assistant":
            raise _Problem(400, "bad_request", f"messages[{i}] has no text (only text parts are supported)")
        # An assistant message without text (stopped at once, failed, tool calls only) has
        # nothing to say to the model.
    if not messages:
        raise _Problem(400, "bad_request", "no message has any text")
    return messages


def _message_text(message: dict[str, Any], where: str) -> str:
    parts = message.get("parts")
    if parts is None:
        content = message.get("content")
        if isinstance(content, str):
            return content
        if content is None:
            raise _Problem(400, "bad_request", f"{where} needs 'parts' or 'content'")
        if not isinstance(content, list):
            raise _Problem(400, "bad_request", f"{where}.content must be a string or a list of parts")
        parts, where = content, f"{where}.content"
    elif not isinstance(parts, list):
        raise _Problem(400, "bad_request", f"{where}.parts must be a list")
    else:
        where = f"{where}.parts"
    texts = []
    for j, part in enumerate(parts):
        if not isinstance(part, dict):
            raise _Problem(400, "bad_request", f"{where}[{j}] must be an object")
        if part.get("type") == "text":
            text = part.get("text")
            if not isinstance(text, str):
                raise _Problem(400, "bad_request", f"{where}[{j}].text must be a string")
            texts.append(text)
    return "".join(texts)


# -- routes -----------------------------------------------------------------------------------


class _Endpoints:
    def __init__(self, model: ModelWrapper, *, heartbeat: float | None, title: str) -> None:
        self.model = model
        self.heartbeat = heartbeat
        model_line = f"{getattr(model, 'model_type', '') or type(model).__name__} · {getattr(model, 'model_name', '')}"
        page = _PAGE.replace("{{title}}", html.escape(title))
        self.html = page.replace("{{model}}", html.escape(model_line)).replace("{{body_class}}", "")
        # Without the token, not even which model this is: the page gets it from healthz.
        self.locked_html = page.replace("{{model}}", "").replace("{{body_class}}", "locked")

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        # The SDK's import and its client at startup, not in the first request, which would
        # wait for them (a second or more), and hold up every other reply meanwhile.
        await self.model.aprepare()
        yield

    async def page(self, request: Request) -> Response:
        host = request.headers.get("host", "")
        connect = "'self'"
        if _SANE_HOST.match(host):
            # CSP3 lets 'self' cover ws: and wss:, but older browsers need them named.
            connect += f" ws://{host} wss://{host}"
        csp = (
            f"default-src 'none'; script-src {_SCRIPT_SRC}; style-src {_STYLE_SRC}; "
            f"connect-src {connect}; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
            "frame-ancestors 'none'"
        )
        headers = {
            "content-security-policy": csp,
            # The page's URL may hold the token: never send it anywhere, never cache it.
            "referrer-policy": "no-referrer",
            "cache-control": "no-store",
            "x-frame-options": "DENY",
        }
        if getattr(request.state, _LOCKED, False):
            headers["www-authenticate"] = "Bearer"
            return Response(self.locked_html, status_code=401, headers=headers, media_type="text/html; charset=utf-8")
        return Response(self.html, headers=headers, media_type="text/html; charset=utf-8")

    async def chat(self, request: Request) -> Response:
        messages = _chat_messages(await _read_json(request))
        # The call goes in un-awaited: the response then also notices a client that leaves
        # while the provider is slow to answer, and reports a refusal (401, 429, ...) inside
        # the stream, where useChat shows it.
        return sse_response(self.model(messages, stream=True), heartbeat=self.heartbeat)

    async def chat_text(self, request: Request) -> Response:
        if request.method == "GET":
            prompt = request.query_params.get("prompt", "")
            if not prompt.strip():
                raise _Problem(400, "bad_request", "pass the prompt as ?prompt=...")
            messages = [{"role": "user", "content": prompt}]
        else:
            messages = _chat_messages(await _read_json(request))
        # A refusal is an HTTP status here (text has no way to say it): 429 stays 429, else 502.
        return text_response(self.model(messages, stream=True))

    async def resume(self, request: Request) -> Response:
        # The AI SDK's transport reads 204 as "no active stream" (any other non-2xx status
        # is an error that useChat shows). Replies end with their request: nothing to resume.
        return Response(status_code=204)

    async def healthz(self, request: Request) -> Response:
        return JSONResponse(
            {"ok": True, "model": getattr(self.model, "model_name", None), "model_type": getattr(self.model, "model_type", None)}
        )

    async def websocket(self, websocket: WebSocket) -> None:
        # (Selecting a subprotocol that was not offered would fail the handshake.)
        offered = websocket.scope.get("subprotocols") or ()
        await websocket.accept(subprotocol=_EVENTS_PROTOCOL if _EVENTS_PROTOCOL in offered else None)
        # A model's configured mode may be non-streaming; a chat page always wants a stream.
        await websocket_chat(websocket, functools.partial(self.model, stream=True), heartbeat=self.heartbeat)


# -- the guard --------------------------------------------------------------------------------


class _Guard:
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
            scope = {**scope, "state": {**scope.get("state", {}), _LOCKED: True}}
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
            await _error_response(status, code, message, headers)(scope, receive, send)

    def _check(self, scope: Scope) -> tuple[int, str, str] | None:
        headers = Headers(scope=scope)
        given_hosts = headers.getlist("host")
        host = given_hosts[0] if len(given_hosts) == 1 else ""
        name = _parse_host(host)
        if name is None:
            # RFC 9112 3.2: a missing, repeated or malformed Host is a 400, token or not.
            got = f"got {host!r}" if len(given_hosts) == 1 else f"got {len(given_hosts)} of them"
            return 400, "bad_host", (
                "send one Host header, host[:port]: a name, an IPv4 address or a bracketed IPv6 "
                f"address, and a port 0-65535 (no user, path or spaces); {got}"
            )
        if self.token is None and not self._host_ok(name):
            return 403, "host_not_allowed", (
                f"Host {host!r} is not allowed: open the server by IP address or localhost, "
                "or start it with a token (--token) or --allow-host"
            )
        if self.token is not None:
            given = (
                _bearer(headers.get("authorization"))
                or QueryParams(scope.get("query_string", b"")).get("token")
                or (_protocol_token(headers.get("sec-websocket-protocol")) if scope["type"] == "websocket" else None)
            )
            if not given:
                return 401, "unauthorized", (
                    "this server needs a token: open the URL `streamwrap serve` printed, or send "
                    "'Authorization: Bearer <token>'"
                )
            if not hmac.compare_digest(given.encode(), self.token):
                return 401, "unauthorized", "wrong token"
        origin = headers.get("origin")
        if scope["type"] == "http" and scope["path"] == "/" and scope["method"] in ("GET", "HEAD"):
            return None  # the page: navigations come from anywhere, and cannot read it
        if origin is not None:
            if not self._origin_ok(origin, host):
                return 403, "origin_not_allowed", f"requests from {origin!r} are not allowed (see --allow-origin)"
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
        return bool(host) and normalized in (_normalize_origin(f"http://{host}"), _normalize_origin(f"https://{host}"))


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
            encoded = name[len(_TOKEN_PROTOCOL):]
            try:
                return base64.b64decode(encoded + "=" * (-len(encoded) % 4), altchars=b"-_", validate=True).decode()
            except ValueError:  # (binascii.Error and UnicodeDecodeError are ValueErrors)
                return None
    return None


def _opens_the_page(scope: Scope) -> bool:
    """A browser loading the page (navigations accept HTML; API clients and fetches do not
    ask for it)."""
    return (
        scope["type"] == "http" and scope["path"] == "/" and scope["method"] in ("GET", "HEAD")
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
            message = {**message, "headers": [*message.get("headers", []), (b"x-content-type-options", b"nosniff")]}
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
