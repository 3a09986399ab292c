"""The app behind ``streamwrap serve``: a chat page, and its SSE and websocket endpoints.

Every request passes the guard of :mod:`._guard` before routing (Host, token, Origin: a
model server on this machine must not be driven by other web pages); the chat POSTs must
be JSON.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import html
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from importlib import resources
from typing import Any

import orjson

# Only the public API: web is a client of streamwrap like any application.
from streamwrap import MissingDependencyError, ModelWrapper

try:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route, WebSocketRoute
    from starlette.websockets import WebSocket
except ImportError as exc:  # pragma: no cover - exercised by the CLI test with starlette hidden
    raise MissingDependencyError("starlette", "web") from exc

from ._chat_session import CHAT_ROLES, websocket_chat
from ._guard import EVENTS_PROTOCOL, LOCKED, error_response, guard_middleware
from ._options import check_heartbeat
from ._responses import sse_response, text_response

__all__ = ["chat_app"]

#: The largest request body accepted: a long conversation is far smaller.
MAX_BODY_BYTES = 1024 * 1024

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
    middleware = guard_middleware(token=token, allowed_origins=allowed_origins, allowed_hosts=allowed_hosts)
    endpoints = _Endpoints(model, heartbeat=check_heartbeat(heartbeat), title=title)
    routes = [
        Route("/", endpoints.page, methods=["GET", "HEAD"]),
        Route("/api/chat", endpoints.chat, methods=["POST"]),
        Route("/api/chat/text", endpoints.chat_text, methods=["GET", "POST"]),
        Route("/api/chat/{chat_id}/stream", endpoints.resume, methods=["GET"]),
        Route("/healthz", endpoints.healthz, methods=["GET"]),
        WebSocketRoute("/ws", endpoints.websocket),
    ]
    handlers: dict[Any, Callable[[Request, Exception], Response | Awaitable[Response]]] = {
        _Problem: _problem_response
    }
    return Starlette(
        routes=routes, middleware=middleware, exception_handlers=handlers, lifespan=endpoints.lifespan
    )


# -- errors ---------------------------------------------------------------------------------


class _Problem(Exception):
    """A request the app refuses; becomes a JSON error response."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _problem_response(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, _Problem)
    return error_response(exc.status, exc.code, exc.message)


# -- request bodies ---------------------------------------------------------------------------


async def _read_json(request: Request) -> dict[str, Any]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        # Also the CSRF defence: a cross-site page can only POST text/plain, form or
        # multipart bodies without a CORS preflight, which this server never grants.
        raise _Problem(
            415, "unsupported_media_type", "send the body as JSON, with Content-Type: application/json"
        )
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
            raise _Problem(
                400, "bad_request", "the body needs 'messages' (a list of messages) or 'prompt' (a string)"
            )
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
        if role not in CHAT_ROLES:
            raise _Problem(
                400, "bad_request", f"messages[{i}].role must be one of {', '.join(CHAT_ROLES)}; got {role!r}"
            )
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
        model_line = (
            f"{getattr(model, 'model_type', '') or type(model).__name__} · {getattr(model, 'model_name', '')}"
        )
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
        if getattr(request.state, LOCKED, False):
            headers["www-authenticate"] = "Bearer"
            return Response(
                self.locked_html, status_code=401, headers=headers, media_type="text/html; charset=utf-8"
            )
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
            {
                "ok": True,
                "model": getattr(self.model, "model_name", None),
                "model_type": getattr(self.model, "model_type", None),
            }
        )

    async def websocket(self, websocket: WebSocket) -> None:
        # (Selecting a subprotocol that was not offered would fail the handshake.)
        offered = websocket.scope.get("subprotocols") or ()
        await websocket.accept(subprotocol=EVENTS_PROTOCOL if EVENTS_PROTOCOL in offered else None)
        # A model's configured mode may be non-streaming; a chat page always wants a stream.
        await websocket_chat(websocket, functools.partial(self.model, stream=True), heartbeat=self.heartbeat)
