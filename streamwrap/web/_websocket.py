"""Responses over websockets, as streamwrap's JSON events: Starlette's (and FastAPI's)
``WebSocket`` and connections of the ``websockets`` library alike.

Every frame is a JSON text frame. Server to client:

* the response's events, ``event.to_dict()``: ``start``, then ``text`` / ``reasoning`` /
  ``tool_call`` chunks, then exactly one ``end`` (``"final": true``; ``status`` finished,
  failed or cancelled; usage, finish reason, tool calls, error). Each carries the response
  ``id`` and ``seq`` (0, 1, 2, ... with no gaps). The end frame carries no text: text the
  client never got as deltas (a non-streaming response's whole answer) is sent as one more
  ``text`` (and ``reasoning``) frame just before it, so appending every ``delta`` gives
  the answer, exactly once.
* ``{"type": "heartbeat", "id": <response id>}`` while a response is in flight and nothing
  was sent for ``heartbeat`` seconds (the client can tell "slow" from "dead").
* ``{"type": "error", "id": null, "final": <bool>, "code", "message", "error_type",
  "status_code", "retry_after"}`` from :func:`websocket_chat`: see there.

This module also holds what the ``events`` protocol of :func:`~streamwrap.web.sse_response`
shares with it: :class:`EventEncoder` and :func:`error_frame`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from contextlib import aclosing
from dataclasses import replace
from typing import Any, Literal

import anyio
import orjson
from anyio.abc import TaskGroup

# Only the public API: web is a client of streamwrap like any application.
from streamwrap import (
    ConfigError,
    EndEvent,
    InputError,
    ModelResponse,
    ProviderError,
    ReasoningEvent,
    ResponseEvent,
    StreamwrapError,
    TextEvent,
)

__all__ = [
    "CLIENT_GENERATE_ARGS",
    "EventEncoder",
    "OnDisconnect",
    "WebSocketSink",
    "check_heartbeat",
    "check_on_disconnect",
    "error_frame",
    "stream_to_websocket",
    "websocket_chat",
]

logger = logging.getLogger("streamwrap.web")

OnDisconnect = Literal["cancel", "continue"]
_ON_DISCONNECT = ("cancel", "continue")

# How long a response that is being cancelled may take to close its connection before we
# stop waiting for it (closing takes milliseconds; this only bounds a stuck one).
_CLOSE_GRACE_SECONDS = 5.0

#: The generation parameters a websocket client may set, and the values allowed. A browser
#: is not trusted with the rest: the model, tools, ``n`` (a cost multiplier), provider
#: extras or base URLs are the server's to choose.
CLIENT_GENERATE_ARGS: Mapping[str, str] = {
    "max_tokens": "an integer >= 1",
    "temperature": "a number from 0 to 2",
    "top_p": "a number above 0, up to 1",
}
_CHAT_ROLES = ("system", "user", "assistant")
_CLIENT_TYPES = ("chat", "cancel")


# -- argument checks (shared with _sse) ---------------------------------------------------------


def check_on_disconnect(on_disconnect: object) -> OnDisconnect:
    if on_disconnect == "cancel" or on_disconnect == "continue":
        return on_disconnect
    raise InputError(f"on_disconnect must be one of {', '.join(map(repr, _ON_DISCONNECT))}; got {on_disconnect!r}")


def check_heartbeat(heartbeat: object) -> float | None:
    if heartbeat is None:
        return None
    if (
        isinstance(heartbeat, bool)
        or not isinstance(heartbeat, int | float)
        or not math.isfinite(heartbeat)
        or heartbeat <= 0
    ):
        raise InputError(f"heartbeat must be a number of seconds > 0, or None to send none; got {heartbeat!r}")
    return float(heartbeat)


def _check_response(response: object) -> ModelResponse:
    if not isinstance(response, ModelResponse):
        raise InputError(
            f"expected the ModelResponse of `await model(...)`, got {type(response).__name__}"
        )
    return response


# -- the events' wire form ----------------------------------------------------------------------


class EventEncoder:
    """One response's events as JSON frames (``event.to_dict()``), with the text rule: text
    (and reasoning) the end event holds but no delta carried is sent as one more ``text``
    (``reasoning``) event before the end, whose ``seq`` moves up accordingly."""

    def __init__(self) -> None:
        self._text = ""
        self._reasoning: list[str] = []

    def encode(self, event: ResponseEvent) -> list[dict[str, Any]]:
        if isinstance(event, TextEvent):
            self._text = event.text_so_far
        elif isinstance(event, ReasoningEvent):
            self._reasoning.append(event.delta)
        elif isinstance(event, EndEvent):
            return self._end(event)
        return [event.to_dict()]

    def _end(self, end: EndEvent) -> list[dict[str, Any]]:
        frames: list[dict[str, Any]] = []
        seq = end.seq
        sent_reasoning = "".join(self._reasoning)
        if end.reasoning and len(end.reasoning) > len(sent_reasoning) and end.reasoning.startswith(sent_reasoning):
            frames.append(ReasoningEvent(end.response_id, seq, end.reasoning[len(sent_reasoning):]).to_dict())
            seq += 1
        if len(end.text) > len(self._text) and end.text.startswith(self._text):
            frames.append(TextEvent(end.response_id, seq, end.text[len(self._text):], end.text).to_dict())
            seq += 1
        frames.append((replace(end, seq=seq) if seq != end.seq else end).to_dict())
        return frames


def error_frame(
    code: str,
    message: str,
    *,
    final: bool,
    error: BaseException | None = None,
    response_id: str | None = None,
) -> dict[str, Any]:
    """An ``error`` frame. ``final`` tells the client whether the request it answers is over
    (no response will follow); ``error_type``, ``status_code`` and ``retry_after`` come from
    the exception, when there is one (``retry_after``: the provider's, for a rate limit)."""
    return {
        "type": "error",
        "id": response_id,
        "final": final,
        "code": code,
        "message": message,
        "error_type": None if error is None else type(error).__name__,
        "status_code": getattr(error, "status_code", None),
        "retry_after": getattr(error, "retry_after", None),
    }


def _dumps(frame: dict[str, Any]) -> str:
    return orjson.dumps(frame).decode()


# -- the adapter --------------------------------------------------------------------------------


class _PeerGone(Exception):
    """The other end of the websocket has gone: nothing can be sent any more."""


class _Socket:
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
        """Send one JSON frame; raise :class:`_PeerGone` if the peer has left."""
        if self.closed:
            raise _PeerGone
        data = _dumps(frame)
        async with self._lock:
            try:
                if self._asgi:
                    await self.websocket.send_text(data)
                else:
                    await self.websocket.send(data)
            except self._gone:
                self.closed = True
                raise _PeerGone from None

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
    sock = _Socket(websocket)
    await _send_response(
        sock, _check_response(response), on_disconnect=check_on_disconnect(on_disconnect),
        heartbeat=check_heartbeat(heartbeat),
    )


async def _send_response(
    sock: _Socket, response: ModelResponse, *, on_disconnect: OnDisconnect, heartbeat: float | None
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
                except _PeerGone:
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
        except _PeerGone:
            gone = True
        tg.cancel_scope.cancel()
    if gone and cancel:
        await _close(response)
    return not gone


async def _close(response: ModelResponse) -> None:
    """Cancel ``response`` and wait (briefly, shielded) until its connection is closed."""
    with anyio.CancelScope(shield=True), anyio.move_on_after(_CLOSE_GRACE_SECONDS):
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
        self._sock = _Socket(websocket)
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
            except _PeerGone:
                return


# -- a chat connection --------------------------------------------------------------------------


class _BadMessage(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


async def websocket_chat(
    websocket: Any,
    model: Callable[..., Awaitable[ModelResponse]],
    *,
    on_disconnect: OnDisconnect = "cancel",
    heartbeat: float | None = 15.0,
) -> None:
    """Serve a chat over an accepted websocket until the peer closes it.

    ``model`` is a :class:`~streamwrap.ModelWrapper`, or any ``async`` callable taking
    ``(messages, **generate_args)`` and returning a response (e.g. one that adds your
    system prompt). Works under asyncio and trio (as far as the server does). Calls follow
    the model's configured ``stream`` mode (a non-streaming model answers in one ``text``
    frame); ``functools.partial(model, stream=True)`` streams whatever the config says.

    Client to server, JSON text frames:

    * ``{"type": "chat", "messages": [{"role": "user", "content": "..."}, ...]}`` (roles
      ``system``, ``user``, ``assistant``; string content) or ``{"type": "chat", "prompt":
      "..."}``; optionally ``"generate_args": {...}`` limited to
      :data:`CLIENT_GENERATE_ARGS` (``max_tokens``, ``temperature``, ``top_p``). Other keys
      are ignored.
    * ``{"type": "cancel"}``: cancels the response in flight, which then ends with its
      ``end`` frame, ``"status": "cancelled"`` (a cancel with nothing in flight is ignored:
      it raced the end).

    Server to client: each response as :func:`stream_to_websocket` sends it (``start`` ...
    ``end``, heartbeats), one response at a time, and ``error`` frames::

        {"type": "error", "id": null, "final": true|false, "code": "...", "message": "...",
         "error_type": "RateLimitError"|null, "status_code": 429|null, "retry_after": 2.0|null}

    ``final: true``: the chat request it answers is over and no response follows:
    ``bad_request`` (invalid chat message, or the model refused the input), ``provider_error``
    (``await model(...)`` raised: HTTP 401/429/5xx, unreachable; ``error_type`` and
    ``status_code`` say which, so a UI can offer a retry after ``retry_after``),
    ``cancelled`` (cancelled before the provider answered) or ``internal_error`` (the call
    failed otherwise: streamwrap's own errors are described, any other exception is only
    named, and logged to ``streamwrap.web``). ``final: false`` is a notice; the connection and any
    response in flight go on: ``invalid_json`` (not a JSON object, or a binary frame),
    ``unknown_type`` (names the accepted types), ``busy`` (a chat while a response is in
    flight).

    When the peer leaves, a response in flight is cancelled (``on_disconnect="cancel"``) or
    left to finish for its other readers, such as the model's ``response_callback``
    (``"continue"``).
    """
    session = _ChatSession(
        _Socket(websocket), model,
        on_disconnect=check_on_disconnect(on_disconnect), heartbeat=check_heartbeat(heartbeat),
    )
    await session.run()


class _Turn:
    """One chat request: the call, then the response's frames."""

    def __init__(self, prompt: list[dict[str, str]], generate_args: dict[str, Any]) -> None:
        self.prompt = prompt
        self.generate_args = generate_args
        self.scope = anyio.CancelScope()
        self.response: ModelResponse | None = None
        self.cancelled_by_client = False
        self.peer_gone = False


class _ChatSession:
    def __init__(
        self,
        sock: _Socket,
        model: Callable[..., Awaitable[ModelResponse]],
        *,
        on_disconnect: OnDisconnect,
        heartbeat: float | None,
    ) -> None:
        self.sock = sock
        self.model = model
        self.on_disconnect = on_disconnect
        self.heartbeat = heartbeat
        self.turn: _Turn | None = None

    async def run(self) -> None:
        # Receiving goes on while a response streams: a cancel or the peer leaving must be
        # seen at once, not after the response.
        async with anyio.create_task_group() as tg:
            while True:
                data = await self.sock.receive()
                if data is None:
                    break
                await self._on_message(data, tg)
            if self.turn is not None:
                self._peer_gone(self.turn)

    async def _on_message(self, data: str | bytes, tg: TaskGroup) -> None:
        try:
            message = _parse(data)
            if message["type"] == "cancel":
                self._cancel(tg)
                return
            if self.turn is not None:
                raise _BadMessage("busy", "a response is in flight: wait for its end frame, or send {\"type\": \"cancel\"}")
            turn = _Turn(*_chat_request(message))
        except _BadMessage as exc:
            final = exc.code == "bad_request"
            await self._send_quietly(error_frame(exc.code, exc.message, final=final))
            return
        self.turn = turn
        tg.start_soon(self._run_turn, turn)

    def _cancel(self, tg: TaskGroup) -> None:
        turn = self.turn
        if turn is None or turn.cancelled_by_client:
            return
        turn.cancelled_by_client = True
        if turn.response is None:
            turn.scope.cancel()  # still waiting for the provider: abort the request itself
        else:
            # Cancel the response, not the turn's task: its events then end with the
            # cancelled end frame, which the client is waiting for.
            tg.start_soon(turn.response.aclose)

    def _peer_gone(self, turn: _Turn) -> None:
        turn.peer_gone = True
        if self.on_disconnect == "cancel" or turn.response is not None:
            # "continue" lets a pending call complete (its response then runs on for the
            # model's other readers); a streaming one just stops sending.
            turn.scope.cancel()

    async def _run_turn(self, turn: _Turn) -> None:
        try:
            with turn.scope:
                try:
                    turn.response = await self.model(turn.prompt, **turn.generate_args)
                except (InputError, ConfigError) as exc:
                    await self._send_quietly(error_frame("bad_request", str(exc), final=True, error=exc))
                    return
                except ProviderError as exc:
                    await self._send_quietly(error_frame("provider_error", str(exc), final=True, error=exc))
                    return
                except StreamwrapError as exc:  # (messages of streamwrap's errors are safe to show)
                    await self._send_quietly(error_frame("internal_error", str(exc), final=True, error=exc))
                    return
                except Exception as exc:
                    logger.exception("websocket_chat: the model call failed")
                    await self._send_quietly(
                        error_frame("internal_error", f"the server failed to call the model ({type(exc).__name__})",
                                    final=True)
                    )
                    return
                if turn.peer_gone:
                    return  # ("continue": the response runs on without us)
                if turn.cancelled_by_client:  # (a cancel that came just as the call returned)
                    await turn.response.aclose()
                await _send_response(self.sock, turn.response, on_disconnect=self.on_disconnect,
                                     heartbeat=self.heartbeat)
            if turn.response is None and turn.cancelled_by_client and not turn.peer_gone:
                await self._send_quietly(
                    error_frame("cancelled", "cancelled before the provider answered", final=True)
                )
        finally:
            if turn.peer_gone and self.on_disconnect == "cancel" and turn.response is not None:
                await _close(turn.response)
            self.turn = None

    async def _send_quietly(self, frame: dict[str, Any]) -> None:
        try:
            await self.sock.send(frame)
        except _PeerGone:
            pass  # the receive loop sees the peer leave


def _parse(data: str | bytes) -> dict[str, Any]:
    if isinstance(data, bytes):
        raise _BadMessage("invalid_json", "send JSON objects as text frames, not binary frames")
    try:
        message = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise _BadMessage("invalid_json", f"the frame is not valid JSON: {exc}") from None
    accepted = ", ".join(_CLIENT_TYPES)
    if not isinstance(message, dict):
        raise _BadMessage("invalid_json", f"a frame must be a JSON object with a \"type\" ({accepted})")
    kind = message.get("type")
    if kind not in _CLIENT_TYPES:
        raise _BadMessage("unknown_type", f"unknown message type {kind!r}; the accepted types are {accepted}")
    return message


def _chat_request(message: dict[str, Any]) -> tuple[list[dict[str, str]], dict[str, Any]]:
    return _chat_messages(message), _generate_args(message.get("generate_args"))


def _bad(text: str) -> _BadMessage:
    return _BadMessage("bad_request", text)


def _chat_messages(message: dict[str, Any]) -> list[dict[str, str]]:
    prompt, raw = message.get("prompt"), message.get("messages")
    if (prompt is None) == (raw is None):
        raise _bad("a chat message needs either \"messages\" (a list) or \"prompt\" (a string)")
    if prompt is not None:
        if not isinstance(prompt, str) or not prompt.strip():
            raise _bad("\"prompt\" must be a non-empty string")
        return [{"role": "user", "content": prompt}]
    if not isinstance(raw, list) or not raw:
        raise _bad("\"messages\" must be a non-empty list")
    messages = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise _bad(f"messages[{i}] must be an object with \"role\" and \"content\"")
        role, content = item.get("role"), item.get("content")
        if role not in _CHAT_ROLES:
            raise _bad(f"messages[{i}].role must be one of {', '.join(_CHAT_ROLES)}; got {role!r}")
        if not isinstance(content, str):
            raise _bad(f"messages[{i}].content must be a string")
        # Only role and content travel on: other keys (tool calls, names) are the server's.
        messages.append({"role": role, "content": content})
    return messages


def _generate_args(raw: object) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise _bad("\"generate_args\" must be an object")
    allowed = ", ".join(CLIENT_GENERATE_ARGS)
    args: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in CLIENT_GENERATE_ARGS:
            raise _bad(f"generate_args: {key!r} cannot be set by the client; allowed: {allowed}")
        number = not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)
        if key == "max_tokens":
            ok = number and isinstance(value, int) and value >= 1
        elif key == "temperature":
            ok = number and 0 <= value <= 2
        else:
            ok = number and 0 < value <= 1
        if not ok:
            raise _bad(f"generate_args.{key} must be {CLIENT_GENERATE_ARGS[key]}; got {value!r}")
        args[key] = value
    return args
