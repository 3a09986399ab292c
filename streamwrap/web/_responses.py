"""Responses as HTTP streams for Starlette and FastAPI: server-sent events (the Vercel AI
SDK's UI message stream, or streamwrap's own JSON events) and plain text.

Every response here notices a client that goes away, and then cancels the model's request
(or, with ``on_disconnect="continue"``, leaves it running). Starlette's own
``StreamingResponse`` cannot be relied on for that: it listens for ``http.disconnect`` only
when the server speaks ASGI spec < 2.4; from 2.4 on it relies on ``send`` raising
``OSError``. But uvicorn (0.54, spec "2.3") silently drops writes to a closed connection
rather than raising, and a server raising on ``send`` is only noticed at the next write,
which may be long in coming while a model thinks. So these responses always listen for
``http.disconnect`` while they stream, whatever the spec version, and also treat an
``OSError`` from ``send`` as the client leaving. Heartbeats (SSE comments) keep idle
proxies from closing the stream, and give servers that only notice a dead peer on a
write the writes to notice it on.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from contextlib import aclosing
from typing import Any, Literal, Protocol

import anyio
import orjson

# Only the public API: web is a client of streamwrap like any application.
from streamwrap import (
    ConfigError,
    EndEvent,
    InputError,
    MissingDependencyError,
    ModelResponse,
    ReasoningEvent,
    ResponseEvent,
    StreamwrapError,
    TextEvent,
    ToolCallEvent,
)

from ._frames import EventEncoder, error_code, error_frame
from ._options import CLOSE_GRACE_SECONDS, OnDisconnect, check_heartbeat, check_on_disconnect
from ._ui_message import UIMessageEncoder

try:
    from starlette.responses import StreamingResponse
    from starlette.types import Message, Receive, Scope, Send
except ImportError as exc:  # pragma: no cover - exercised with starlette hidden
    raise MissingDependencyError("starlette", "web") from exc

__all__ = ["sse_response", "text_response"]

SSEProtocol = Literal["ui-message", "events"]
_PROTOCOLS = ("ui-message", "events")
_HEARTBEAT = b": keep-alive\n\n"
_DONE = b"data: [DONE]\n\n"
# The events that stand for one content delta each (``response.chunk_count`` counts them).
_CONTENT_EVENTS = frozenset((TextEvent, ReasoningEvent, ToolCallEvent))
# Ready events are written together up to this many bytes; a longer run is written in
# pieces of about this size, so that the server's flow control still applies.
_MAX_PIECE = 64 * 1024
_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}

ResponseSource = ModelResponse | Awaitable[ModelResponse]
"""A response, or the un-awaited call that makes one (``model(...)``)."""


def sse_response(
    response: ResponseSource,
    *,
    protocol: SSEProtocol = "ui-message",
    on_disconnect: OnDisconnect = "cancel",
    heartbeat: float | None = 15.0,
    headers: Mapping[str, str] | None = None,
) -> StreamingResponse:
    """Stream ``response`` as server-sent events.

    ``protocol="ui-message"`` (default): the Vercel AI SDK's UI message stream protocol v1,
    what ``useChat`` reads (header ``x-vercel-ai-ui-message-stream: v1``)::

        id: swr-1f2e...:0
        data: {"type":"start","messageId":"swr-1f2e..."}

        id: swr-1f2e...:1
        data: {"type":"start-step"}

        id: swr-1f2e...:2
        data: {"type":"text-start","id":"text-0"}

        id: swr-1f2e...:3
        data: {"type":"text-delta","id":"text-0","delta":"Hel"}
        ...
        id: swr-1f2e...:9
        event: final
        data: {"type":"finish","messageMetadata":{"responseId":...,"finishReason":"stop",...}}

        data: [DONE]

    A failed response ends with ``{"type":"error","errorText":...}``, a cancelled one with
    ``{"type":"abort"}``; either is the ``event: final`` one. See
    :mod:`streamwrap.web._ui_message` for the chunks. (The AI SDK reads only ``data``:
    the ``id`` and ``event`` lines are for everybody else.)

    ``protocol="events"``: streamwrap's own events, as the websocket sends them::

        id: swr-1f2e...:0
        event: start
        data: {"type":"start","id":"swr-1f2e...","seq":0,"final":false,"model":...}

        id: swr-1f2e...:1
        event: text
        data: {"type":"text","id":"swr-1f2e...","seq":1,"final":false,"delta":"Hel"}
        ...
        id: swr-1f2e...:7
        event: end
        data: {"type":"end",...,"final":true,"status":"finished","usage":{...},...}

    The client sees each event once, in ``seq`` order (the ``id`` line is
    ``<response id>:<seq>``); the ``end`` event (``"final": true``) is the last and there
    is no ``[DONE]``: the body ends after it. Appending the ``text`` deltas gives the whole
    answer (a non-streaming response sends it as one ``text`` event before the end).

    Either way, every event's ``id`` is ``<response id>:<n>`` with n = 0, 1, 2, ... , and
    ``: keep-alive`` comments are sent when nothing else was for ``heartbeat`` seconds
    (None: never). The ``x-streamwrap-response-id`` header names the response. Events
    that are ready together (one read of the provider's stream often carries several
    chunks) are written as one piece, one ASGI ``send``; a piece goes out as soon as the
    next event would have to be waited for, so none is held back.

    ``response`` is a :class:`~streamwrap.ModelResponse`, or the call itself, un-awaited
    (``sse_response(model(messages))``): the headers then wait for the provider's answer,
    and an error it raises (HTTP 401, 429, 5xx, unreachable, bad input) is reported inside a
    200 stream, which is what ``useChat`` shows as its ``error``: ``start`` then ``error``
    (then ``[DONE]``) for ``ui-message``; one ``event: error`` frame ``{"type": "error",
    "id", "final": true, "code", "message", "error_type", "status_code", "retry_after"}``
    for ``events``. Await the call yourself when you want the response object (to save it)
    or an HTTP error status instead.

    ``on_disconnect``: when the client goes away, ``"cancel"`` (default) cancels the
    response, which closes the model's request; ``"continue"`` leaves it running, so the
    app can still ``await response.aread()`` and save it (a Starlette ``BackgroundTask`` set
    as this response's ``background`` runs after a disconnect too). A call still waiting
    for the provider's status when the client leaves is cancelled in either case.

    ``headers`` are added to (and override) the defaults: ``content-type:
    text/event-stream; charset=utf-8``, ``cache-control: no-cache``, ``x-accel-buffering:
    no`` (nginx must not buffer the stream).
    """
    source = _check_source(response)
    if protocol not in _PROTOCOLS:
        raise InputError(f"protocol must be one of {', '.join(map(repr, _PROTOCOLS))}; got {protocol!r}")
    base = dict(_SSE_HEADERS)
    body: _Body
    if protocol == "ui-message":
        base["x-vercel-ai-ui-message-stream"] = "v1"
        body = _UIMessageBody()
    else:
        body = _EventsBody()
    return _ResponseStream(
        source,
        body,
        on_disconnect=check_on_disconnect(on_disconnect),
        heartbeat=check_heartbeat(heartbeat),
        headers={**base, **_check_headers(headers)},
    )


def text_response(
    response: ResponseSource,
    *,
    on_disconnect: OnDisconnect = "cancel",
    headers: Mapping[str, str] | None = None,
) -> StreamingResponse:
    """Stream only the answer's text, as ``text/plain; charset=utf-8``: the AI SDK's text
    stream protocol (``streamProtocol: "text"``), or ``curl -N``.

    Plain text has no way to say "this failed" once the body has begun, and a body that
    ends cleanly claims to be complete. So the body ends cleanly only when the response
    finished; after a failure or a cancel it is cut off (the connection is closed without
    the chunked terminator: curl reports "transfer closed with outstanding read data", an
    HTTP client raises), and the error is raised to the server, which logs it. Never a
    truncated answer that looks whole. The response id is in the
    ``x-streamwrap-response-id`` header.

    ``response`` may be the un-awaited call (``text_response(model(prompt))``): an error it
    raises is then an HTTP error, as headers are not sent yet: 400 for bad input, 429 with
    ``Retry-After`` for a provider's rate limit, 502 for any other provider error, with
    ``error: <message>`` as the body. ``on_disconnect`` and ``headers`` as for
    :func:`sse_response` (no heartbeats: plain text has nothing to send that is not text).
    """
    source = _check_source(response)
    return _ResponseStream(
        source,
        _TextBody(),
        on_disconnect=check_on_disconnect(on_disconnect),
        heartbeat=None,
        headers={"cache-control": "no-cache", "x-accel-buffering": "no", **_check_headers(headers)},
    )


def _next_is_ready(response: ModelResponse, seen: int) -> bool:
    """Whether ``response.events()`` has its next event at hand, after ``seen`` content
    events: the response has received more content deltas than that (each becomes one
    event), or it has ended (the rest, the end event included, is all there). A
    non-streaming response becomes events only when it ends."""
    return response.done or (response.streaming and seen < response.chunk_count)


def _check_source(response: object) -> ResponseSource:
    if isinstance(response, ModelResponse) or inspect.isawaitable(response):
        return response
    raise InputError(
        "expected the ModelResponse of `await model(...)`, or the call `model(...)` itself; "
        f"got {type(response).__name__}"
    )


def _check_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    if headers is None:
        return {}
    if not isinstance(headers, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise InputError("headers must be a mapping of header names to values, all strings")
    return {k.lower(): v for k, v in headers.items()}


# -- bodies: what each protocol writes ----------------------------------------------------------


class _Body(Protocol):
    media_type: str
    heartbeat: bytes | None

    def encode(self, event: ResponseEvent) -> bytes:
        """The bytes one event becomes (may be empty)."""

    def refused(self, error: StreamwrapError) -> tuple[int, dict[str, str], bytes]:
        """Status, extra headers and the whole body when the call itself raised."""

    def abort_error(self) -> BaseException | None:
        """After the end event: an error to cut the body off with, instead of ending it."""


class TextCutOff(StreamwrapError):
    """A text body cut off because its response was cancelled (by ``aclose()``, or by a
    server that is stopping). Raised to the server, which then closes the connection
    without ending the body: a deliberate end, which ``streamwrap serve`` logs in one line."""


def _sse_event(rid: str, n: int, data: dict[str, Any], event: str | None = None) -> bytes:
    head = f"id: {rid}:{n}\nevent: {event}\n" if event else f"id: {rid}:{n}\n"
    return head.encode() + b"data: " + orjson.dumps(data) + b"\n\n"


def _new_id() -> str:
    # The id a response would have had: the client still gets a message to attach the error to.
    return f"swr-{uuid.uuid4().hex}"


class _UIMessageBody:
    media_type = "text/event-stream"
    heartbeat: bytes | None = _HEARTBEAT

    def __init__(self) -> None:
        self._encoder = UIMessageEncoder()
        self._n = 0

    def encode(self, event: ResponseEvent) -> bytes:
        chunks = self._encoder.encode(event)
        rid = event.response_id
        out = []
        for i, chunk in enumerate(chunks):
            terminal = event.final and i == len(chunks) - 1
            out.append(_sse_event(rid, self._n, chunk, "final" if terminal else None))
            self._n += 1
        if event.final:
            out.append(_DONE)
        return b"".join(out)

    def refused(self, error: StreamwrapError) -> tuple[int, dict[str, str], bytes]:
        rid = _new_id()
        body = (
            _sse_event(rid, 0, {"type": "start", "messageId": rid})
            + _sse_event(rid, 1, {"type": "error", "errorText": str(error)}, "final")
            + _DONE
        )
        return 200, {"x-streamwrap-response-id": rid, **_upstream_status(error)}, body

    def abort_error(self) -> BaseException | None:
        return None


class _EventsBody:
    media_type = "text/event-stream"
    heartbeat: bytes | None = _HEARTBEAT

    def __init__(self) -> None:
        self._encoder = EventEncoder()

    def encode(self, event: ResponseEvent) -> bytes:
        return b"".join(
            _sse_event(frame["id"], frame["seq"], frame, frame["type"])
            for frame in self._encoder.encode(event)
        )

    def refused(self, error: StreamwrapError) -> tuple[int, dict[str, str], bytes]:
        rid = _new_id()
        frame = error_frame(error_code(error), str(error), final=True, error=error, response_id=rid)
        return (
            200,
            {"x-streamwrap-response-id": rid, **_upstream_status(error)},
            _sse_event(rid, 0, frame, "error"),
        )

    def abort_error(self) -> BaseException | None:
        return None


class _TextBody:
    media_type = "text/plain"
    heartbeat: bytes | None = None

    def __init__(self) -> None:
        self._text = ""
        self._abort: BaseException | None = None

    def encode(self, event: ResponseEvent) -> bytes:
        if isinstance(event, TextEvent):
            self._text = event.text_so_far
            return event.delta.encode()
        if not isinstance(event, EndEvent):
            return b""
        if event.status == "failed":
            self._abort = event.error or StreamwrapError(f"response {event.response_id} failed")
        elif event.status == "cancelled":
            self._abort = TextCutOff(
                f"response {event.response_id} was cancelled: the text body is cut off, not ended"
            )
        elif len(event.text) > len(self._text) and event.text.startswith(self._text):
            return event.text[len(self._text) :].encode()  # a non-streaming response's text
        return b""

    def refused(self, error: StreamwrapError) -> tuple[int, dict[str, str], bytes]:
        headers = _upstream_status(error)
        if isinstance(error, InputError | ConfigError):
            status = 400
        elif getattr(error, "status_code", None) == 429:
            status = 429
            retry_after = getattr(error, "retry_after", None)
            if retry_after is not None:
                headers["retry-after"] = str(max(0, round(retry_after)))
        else:
            status = 502
        return status, headers, f"error: {error}\n".encode()

    def abort_error(self) -> BaseException | None:
        return self._abort


def _upstream_status(error: StreamwrapError) -> dict[str, str]:
    status = getattr(error, "status_code", None)
    return {} if status is None else {"x-streamwrap-upstream-status": str(status)}


# -- the ASGI response --------------------------------------------------------------------------


class _ResponseStream(StreamingResponse):
    """A ``StreamingResponse`` that owns its model response: it notices the client leaving
    (see the module docs), applies ``on_disconnect``, and sends heartbeats."""

    def __init__(
        self,
        source: ResponseSource,
        body: _Body,
        *,
        on_disconnect: OnDisconnect,
        heartbeat: float | None,
        headers: dict[str, str],
    ) -> None:
        self._source = source
        self._body = body
        self._on_disconnect = on_disconnect
        self._heartbeat = heartbeat if body.heartbeat is not None else None
        self._refusal: tuple[int, dict[str, str], bytes] | None = None
        self._gone = False
        self._completed = False
        self._last_sent = 0.0
        #: The model response, once known (at once when given one, else after the call).
        self.model_response: ModelResponse | None = source if isinstance(source, ModelResponse) else None
        if self.model_response is not None:
            headers = {"x-streamwrap-response-id": self.model_response.id, **headers}
        self._frames = self._generate()
        super().__init__(self._frames, headers=headers, media_type=body.media_type)

    async def _resolve(self) -> ModelResponse | None:
        """The model response, awaiting the call if given one; None if the call raised."""
        if self.model_response is None and self._refusal is None:
            try:
                self.model_response = await self._source  # type: ignore[misc]
            except StreamwrapError as exc:
                self._refusal = status, headers, _ = self._body.refused(exc)
                self.status_code = status
                for name, value in headers.items():
                    self.headers[name] = value
            else:
                self.headers.setdefault("x-streamwrap-response-id", self.model_response.id)
        return self.model_response

    async def _generate(self) -> AsyncGenerator[bytes, None]:
        """The body, without heartbeats (``body_iterator``)."""
        response = await self._resolve()
        if response is None:
            assert self._refusal is not None
            yield self._refusal[2]
            return
        events = response.events(cancel_on_exit=self._on_disconnect == "cancel")
        encode = self._body.encode
        # The events that are ready together (one read of the upstream often carries
        # several chunks; a reply that is complete before its body starts, all of them)
        # go out as one piece: one ASGI send and one socket write instead of one per
        # event. A piece is handed over as soon as the next event would have to be
        # waited for, so nothing is held back.
        pending: list[bytes] = []
        size = 0
        seen = 0  # content events read: the response has as many once they are all in
        async with aclosing(events):  # (closing it cancels the response, if cancel_on_exit)
            async for event in events:
                if event.__class__ in _CONTENT_EVENTS:
                    seen += 1
                data = encode(event)
                if data:
                    pending.append(data)
                    size += len(data)
                if pending and (size >= _MAX_PIECE or not _next_is_ready(response, seen)):
                    yield pending[0] if len(pending) == 1 else b"".join(pending)
                    pending.clear()
                    size = 0
            if pending:
                yield b"".join(pending)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        failure: Exception | None = None
        try:
            async with anyio.create_task_group() as tg:

                async def watch() -> None:
                    await self.listen_for_disconnect(receive)
                    self._gone = True
                    tg.cancel_scope.cancel()

                tg.start_soon(watch)
                try:
                    await self.stream_response(send)
                except OSError:  # ASGI 2.4: the server says the client has gone
                    self._gone = True
                except Exception as exc:  # raised below, out of the task group (no ExceptionGroup)
                    failure = exc
                tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self._frames.aclose()
                if (
                    inspect.iscoroutine(self._source)
                    and self.model_response is None
                    and self._refusal is None
                ):
                    self._source.close()  # never awaited (the client left first): no warning
                if (
                    not self._completed
                    and self._on_disconnect == "cancel"
                    and self.model_response is not None
                ):
                    with anyio.move_on_after(CLOSE_GRACE_SECONDS):
                        await self.model_response.aclose()
        if failure is not None:
            raise failure
        if not self._completed and not self._gone and (abort := self._body.abort_error()) is not None:
            raise abort  # (the server then closes the connection without ending the body)
        if self.background is not None:
            await self.background()

    async def stream_response(self, send: Send) -> None:
        await self._resolve()  # (before the headers: they name the response, or the error)
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        lock = anyio.Lock()  # a heartbeat must not cut into another write
        self._last_sent = anyio.current_time()

        async def write(data: bytes) -> bool:
            # Taken without a checkpoint when free (the rule; ``async with lock`` would
            # yield to the event loop on every write): only a heartbeat can hold it.
            if lock.locked():
                await lock.acquire()
            else:
                lock.acquire_nowait()
            try:
                await send({"type": "http.response.body", "body": data, "more_body": True})
            except OSError:
                self._gone = True
                return False
            finally:
                lock.release()
            self._last_sent = anyio.current_time()
            return True

        async with anyio.create_task_group() as tg:
            if self._heartbeat is not None:
                tg.start_soon(self._beat, write, tg.cancel_scope, self._heartbeat)
            async for data in self._frames:
                if not await write(data):
                    break
            tg.cancel_scope.cancel()
        if self._gone or self._body.abort_error() is not None:
            return  # (an aborted body must not look complete: no terminating chunk)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        self._completed = True

    async def _beat(
        self, write: Callable[[bytes], Awaitable[bool]], scope: anyio.CancelScope, interval: float
    ) -> None:
        assert self._body.heartbeat is not None
        while True:
            await anyio.sleep(max(0.0, self._last_sent + interval - anyio.current_time()))
            if anyio.current_time() - self._last_sent >= interval and not await write(self._body.heartbeat):
                scope.cancel()
                return

    async def listen_for_disconnect(self, receive: Receive) -> None:
        while True:
            message: Message = await receive()
            if message["type"] == "http.disconnect":
                return
