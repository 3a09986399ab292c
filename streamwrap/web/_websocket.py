"""Responses over websockets, as streamwrap's JSON events: Starlette's (and FastAPI's)
``WebSocket`` and connections of the ``websockets`` library alike.

Every frame is a JSON text frame. Server to client:

* the response's events, ``event.to_dict()``: ``start``, then ``text`` / ``reasoning`` /
  ``tool_call`` chunks, then exactly one ``end`` (``"final": true``; ``status`` finished,
  failed or cancelled; usage, finish reason, tool calls, error). Each carries the response
  ``id`` and ``seq`` (0, 1, 2, ... with no gaps). The end frame carries no text: text the
  client never got as deltas (a non-streaming response's whole answer) is sent as one more
  ``text`` (and ``reasoning``) frame just before it, so appending every ``delta`` gives
  the answer, exactly once (see :mod:`._frames`).
* ``{"type": "heartbeat", "id": <response id>}`` while a response is in flight and nothing
  was sent for ``heartbeat`` seconds (the client can tell "slow" from "dead").
* ``{"type": "error", "id": null, "final": <bool>, "code", "message", "error_type",
  "status_code", "retry_after"}`` from :func:`~streamwrap.web.websocket_chat`: see there
  (:mod:`._chat_session`, which serves a chat over the :class:`Socket` of this module).
"""

from __future__ import annotations

from contextlib import aclosing
from typing import Any

import anyio
import orjson

# Only the public API: web is a client of streamwrap like any application.
from streamwrap import InputError, ModelResponse, ResponseEvent

from ._frames import EventEncoder
from ._options import CLOSE_GRACE_SECONDS, OnDisconnect, check_heartbeat, check_on_disconnect

__all__ = ["PeerGone", "Socket", "WebSocketSink", "close_response", "send_response", "stream_to_websocket"]


def _check_response(response: object) -> ModelResponse:
    if not isinstance(response, ModelResponse):
        raise InputError(f"expected the ModelResponse of `await model(...)`, got {type(response).__name__}")
    return response


def _dumps(frame: dict[str, Any]) -> str:
    return orjson.dumps(frame).decode()


# -- the adapter --------------------------------------------------------------------------------


class PeerGone(Exception):
    """The other end of the websocket has gone: nothing can be sent any more."""


class Socket:
    """Starlette's ``WebSocket`` (``send_text``/``receive``) or a ``websockets`` connection
    (``send``/``recv``), told apart by their methods; the one place that knows which
    exceptions mean "the peer has gone" for each."""

    def __init__(self, websocket: Any) -> None:
        self.websocket = websocket
        self.closed = False
        self._lock = anyio.Lock()  # one frame at a time: heartbeats race the events
        gone: tuple[type[BaseException], ...] = (OSError,)
        if callable(getattr(websocket, "send_text", None)) and callable(getattr(websocket, "receive", None)):
            self._asgi = True
            try:
                from starlette import websockets as starlette_ws
            except ImportError:  # a look-alike without Starlette: only the server's OSError
                pass
            else:
                gone += (starlette_ws.WebSocketDisconnect,)
                # Starlette >= 0.47 says so when the socket was closed on our side already.
                disconnected = getattr(starlette_ws, "WebSocketDisconnected", None)
                if isinstance(disconnected, type) and issubclass(disconnected, BaseException):
                    gone += (disconnected,)
        elif callable(getattr(websocket, "recv", None)) and callable(getattr(websocket, "send", None)):
            self._asgi = False
            from websockets.exceptions import ConnectionClosed

            gone += (ConnectionClosed,)
        else:
            raise InputError(
                "expected an accepted Starlette/FastAPI WebSocket (send_text/receive) or a "
                f"`websockets` connection (send/recv); got {type(websocket).__name__}"
            )
        self._gone = gone

    async def send(self, frame: dict[str, Any]) -> None:
        """Send one JSON frame; raise :class:`PeerGone` if the peer has left."""
        if self.closed:
            raise PeerGone
        data = _dumps(frame)
        async with self._lock:
            try:
                if self._asgi:
                    await self.websocket.send_text(data)
                else:
                    await self.websocket.send(data)
            except self._gone:
                self.closed = True
                raise PeerGone from None

    async def receive(self) -> str | bytes | None:
        """The next message (text or bytes), or None once the peer has left."""
        if self.closed:
            return None
        try:
            if not self._asgi:
                data: str | bytes = await self.websocket.recv()
                return data
            message = await self.websocket.receive()
        except self._gone:
            self.closed = True
            return None
        if message["type"] == "websocket.disconnect":
            self.closed = True
            return None
        if message["type"] != "websocket.receive":
            raise InputError(f"accept the websocket before serving it (got {message['type']!r})")
        text = message.get("text")
        if text is not None:
            return str(text)
        return bytes(message.get("bytes") or b"")


# -- one response -------------------------------------------------------------------------------


async def stream_to_websocket(
    websocket: Any,
    response: ModelResponse,
    *,
    on_disconnect: OnDisconnect = "cancel",
    heartbeat: float | None = 15.0,
) -> None:
    """Send ``response`` over ``websocket`` as JSON event frames (see the module docs), with
    ``{"type": "heartbeat", "id": ...}`` frames after ``heartbeat`` idle seconds (None:
    none). Returns when the end frame is sent, or when the peer has gone.

    ``websocket``: an accepted Starlette/FastAPI ``WebSocket`` or a ``websockets``
    connection. This function only sends, so it notices a peer that left when a send fails:
    at the next chunk or heartbeat. ``on_disconnect="cancel"`` (default) then cancels the
    response (its upstream request is closed); ``"continue"`` leaves it running for whoever
    else reads it (``await response.aread()`` to save it). Returns quietly either way.
    """
    sock = Socket(websocket)
    await send_response(
        sock,
        _check_response(response),
        on_disconnect=check_on_disconnect(on_disconnect),
        heartbeat=check_heartbeat(heartbeat),
    )


async def send_response(
    sock: Socket, response: ModelResponse, *, on_disconnect: OnDisconnect, heartbeat: float | None
) -> bool:
    """Send every event of ``response``; False if the peer left first (the response is
    then cancelled, or left running, per ``on_disconnect``)."""
    cancel = on_disconnect == "cancel"
    events = response.events(cancel_on_exit=cancel)
    encoder = EventEncoder()
    gone = False
    last_sent = anyio.current_time()

    async def beat(scope: anyio.CancelScope, interval: float) -> None:
        nonlocal gone, last_sent
        while True:
            await anyio.sleep(max(0.0, last_sent + interval - anyio.current_time()))
            if anyio.current_time() - last_sent >= interval:
                try:
                    await sock.send({"type": "heartbeat", "id": response.id})
                except PeerGone:
                    gone = True
                    scope.cancel()
                    return
                last_sent = anyio.current_time()

    async with anyio.create_task_group() as tg:
        if heartbeat is not None:
            tg.start_soon(beat, tg.cancel_scope, heartbeat)
        try:
            async with aclosing(events):  # (closing it cancels the response, if cancel_on_exit)
                async for event in events:
                    for frame in encoder.encode(event):
                        await sock.send(frame)
                        last_sent = anyio.current_time()
        except PeerGone:
            gone = True
        tg.cancel_scope.cancel()
    if gone and cancel:
        await close_response(response)
    return not gone


async def close_response(response: ModelResponse) -> None:
    """Cancel ``response`` and wait (briefly, shielded) until its connection is closed."""
    with anyio.CancelScope(shield=True), anyio.move_on_after(CLOSE_GRACE_SECONDS):
        await response.aclose()


# -- a sink -------------------------------------------------------------------------------------


class WebSocketSink:
    """A sink (``await sink.send(event)``) that sends events as the same JSON frames as
    :func:`stream_to_websocket`: use it with ``streamwrap.deliver(response, sink)`` or
    ``streamwrap.default_output(sink)`` to mirror responses to a websocket.

    Several responses may share one sink; their frames are told apart by ``id``. The sink
    watches, it does not own: once the peer has gone (``sink.closed``) later events are
    dropped quietly, and the responses go on. (No heartbeats: a sink only speaks when an
    event arrives.)
    """

    def __init__(self, websocket: Any) -> None:
        self._sock = Socket(websocket)
        self._encoders: dict[str, EventEncoder] = {}

    @property
    def closed(self) -> bool:
        """True once a send found the peer gone."""
        return self._sock.closed

    async def send(self, event: ResponseEvent) -> None:
        encoder = self._encoders.get(event.response_id)
        if encoder is None:
            encoder = self._encoders[event.response_id] = EventEncoder()
        if event.final:
            del self._encoders[event.response_id]
        for frame in encoder.encode(event):
            try:
                await self._sock.send(frame)
            except PeerGone:
                return
