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
from streamwrap import InputError, MissingDependencyError, ModelResponse, ModelWrapper, StreamwrapError

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
from ._resumable import Replies, check_chat_id, new_chat_id, parse_last_event_id
from ._store import StoreUnavailable, StreamStore

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
    store: StreamStore | None = None,
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
    * ``GET /api/chat/{id}/stream``: without a ``store``, 204 No Content, "nothing to
      resume" (what ``useChat({resume: true})`` asks when a page loads; a reply is not kept
      after its request ends, so there is never a stream to resume). With one, see below.
    * ``POST /api/chat/{id}/stop``: without a ``store``, 204 (a reply stops when its
      client closes the connection). With one, see below.
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
    hostile page's own hostname resolves to this server. The resume and stop routes pass
    the same checks as the chat route.

    ``store``: a :class:`~streamwrap.web.StreamStore` (:class:`~streamwrap.web.MemoryStreamStore`
    for one process, :class:`~streamwrap.web.RedisStreamStore` for several) makes replies
    outlive their connection (under asyncio):

    * ``POST /api/chat`` generates the reply in a task of its own and streams it from the
      store: a client that leaves does not stop it. The body's ``id`` names the chat (as
      ``useChat`` sends it); it must be an id nobody could guess, 22 to 128 characters of
      ``A-Z a-z 0-9 _ -`` (a UUID, or 128 random bits in base64url), else 400
      ``guessable_id``. Without one, the server makes one (128 random bits). Either way the
      ``x-streamwrap-chat-id`` header names it.
    * ``GET /api/chat/{chat_id}/stream`` (``useChat({resume: true})``): the chat's reply in
      progress, from its start, or from just after the ``Last-Event-ID`` header's
      ``<response id>:<n>`` (the reply may have ended since, within the store's ``ttl``),
      then live, as the same UI message stream; 204 when there is nothing to resume. Any
      number of readers may follow one reply. No chunk is sent twice or skipped: should
      the store have lost part of the reply (a Redis restart), or its generator have died
      (no lease renewed for ``lease`` seconds), the stream ends with an ``error`` chunk
      that says so. 503 ``store_unavailable`` when the store cannot be reached.
    * ``POST /api/chat/{chat_id}/stop`` (a JSON body, ``{}``): stops the chat's reply in
      progress, in whichever process generates it: the upstream request is cancelled, the
      text so far is kept, and every reader gets the ``abort`` chunk. 202 ``{"stopped":
      <response id>}``, or 204 when nothing is in progress.

    The app does not close ``store``.
    """
    middleware = guard_middleware(token=token, allowed_origins=allowed_origins, allowed_hosts=allowed_hosts)
    if store is not None and not isinstance(store, StreamStore):
        raise InputError(f"store must be a StreamStore, or None; got {type(store).__name__}")
    endpoints = _Endpoints(model, heartbeat=check_heartbeat(heartbeat), title=title, store=store)
    routes = [
        Route("/", endpoints.page, methods=["GET", "HEAD"]),
        Route("/api/chat", endpoints.chat, methods=["POST"]),
        Route("/api/chat/text", endpoints.chat_text, methods=["GET", "POST"]),
        Route("/api/chat/{chat_id}/stream", endpoints.resume, methods=["GET"]),
        Route("/api/chat/{chat_id}/stop", endpoints.stop, methods=["POST"]),
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


def _chat_id(value: object) -> str:
    chat_id = check_chat_id(value)
    if chat_id is None:
        raise _Problem(
            400,
            "guessable_id",
            "the chat id could be guessed: use 22 to 128 characters of A-Z a-z 0-9 _ - "
            "(128 random bits in base64url, or a UUID), or send none and use the x-streamwrap-chat-id "
            "the server answers with",
        )
    return chat_id


async def _raise(error: StreamwrapError) -> ModelResponse:
    raise error


# -- routes -----------------------------------------------------------------------------------


class _Endpoints:
    def __init__(
        self, model: ModelWrapper, *, heartbeat: float | None, title: str, store: StreamStore | None
    ) -> None:
        self.model = model
        self.heartbeat = heartbeat
        self.replies = None if store is None else Replies(store, heartbeat=heartbeat)
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
        try:
            yield
        finally:
            if self.replies is not None:
                await self.replies.aclose()

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
        body = await _read_json(request)
        messages = _chat_messages(body)
        if self.replies is not None:
            return await self._resumable_chat(body, messages)
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

    async def _resumable_chat(self, body: dict[str, Any], messages: list[dict[str, str]]) -> Response:
        assert self.replies is not None
        given = body.get("id")
        chat_id = new_chat_id() if given is None else _chat_id(given)
        try:
            response = await self.model(messages, stream=True)
        except StreamwrapError as exc:
            # Refused before any reply began: reported in the stream as without a store.
            return sse_response(
                _raise(exc), heartbeat=self.heartbeat, headers={"x-streamwrap-chat-id": chat_id}
            )
        await self.replies.begin(chat_id, response)
        return self.replies.response(chat_id, response.id, -1, self.replies.local)

    async def resume(self, request: Request) -> Response:
        # The AI SDK's transport reads 204 as "no active stream" (any other non-2xx status
        # is an error that useChat shows). Without a store, replies end with their request.
        if self.replies is None:
            return Response(status_code=204)
        chat_id = _chat_id(request.path_params["chat_id"])
        last_event_id = request.headers.get("last-event-id")
        try:
            if last_event_id:
                position = parse_last_event_id(last_event_id)
                if position is None:
                    raise _Problem(
                        400,
                        "bad_request",
                        "Last-Event-ID must be '<response id>:<n>', as the stream's id lines",
                    )
                response_id, after = position
                if await self.replies.store.chat_of(response_id) != chat_id:
                    return Response(status_code=204)  # expired, lost, or another chat's
            else:
                active = await self.replies.store.active(chat_id)
                if active is None:
                    return Response(status_code=204)
                response_id, after = active, -1
            source = await self.replies.source(response_id)
        except StoreUnavailable as exc:
            raise _Problem(503, "store_unavailable", f"{exc}: replies cannot be resumed now") from None
        return self.replies.response(chat_id, response_id, after, source)

    async def stop(self, request: Request) -> Response:
        if self.replies is None:
            return Response(status_code=204)
        chat_id = _chat_id(request.path_params["chat_id"])
        await _read_json(request)  # (JSON only: the CSRF defence of every POST here)
        try:
            response_id = await self.replies.store.active(chat_id)
            if response_id is None:
                return Response(status_code=204)
            await self.replies.stop(response_id)
        except StoreUnavailable as exc:
            raise _Problem(
                503, "store_unavailable", f"{exc}: the reply cannot be stopped from here"
            ) from None
        return JSONResponse({"stopped": response_id}, status_code=202)

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
