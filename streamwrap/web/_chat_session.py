"""A chat over a websocket: :func:`~streamwrap.web.websocket_chat` reads the client's
``chat`` and ``cancel`` messages, checks them, calls the model and streams each response
back as :mod:`._websocket` sends one, one response at a time.

A browser is not trusted: a chat message may carry only chat messages (roles ``system``,
``user``, ``assistant``; string content) and the generation parameters of
:data:`CLIENT_GENERATE_ARGS`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio
import orjson
from anyio.abc import TaskGroup

# Only the public API: web is a client of streamwrap like any application.
from streamwrap import ModelResponse, StreamwrapError

from ._frames import error_code, error_frame
from ._options import OnDisconnect, check_heartbeat, check_on_disconnect
from ._websocket import PeerGone, Socket, close_response, send_response

__all__ = ["CHAT_ROLES", "CLIENT_GENERATE_ARGS", "websocket_chat"]

logger = logging.getLogger("streamwrap.web")

#: The generation parameters a websocket client may set, and the values allowed. A browser
#: is not trusted with the rest: the model, tools, ``n`` (a cost multiplier), provider
#: extras or base URLs are the server's to choose.
CLIENT_GENERATE_ARGS: Mapping[str, str] = {
    "max_tokens": "an integer >= 1",
    "temperature": "a number from 0 to 2",
    "top_p": "a number above 0, up to 1",
}
#: The roles of the chat messages a client may send (here, and in the app's HTTP bodies).
CHAT_ROLES = ("system", "user", "assistant")
_CLIENT_TYPES = ("chat", "cancel")


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
        Socket(websocket),
        model,
        on_disconnect=check_on_disconnect(on_disconnect),
        heartbeat=check_heartbeat(heartbeat),
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
        sock: Socket,
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
                raise _BadMessage(
                    "busy", 'a response is in flight: wait for its end frame, or send {"type": "cancel"}'
                )
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
                except StreamwrapError as exc:  # (messages of streamwrap's errors are safe to show)
                    await self._send_quietly(error_frame(error_code(exc), str(exc), final=True, error=exc))
                    return
                except Exception as exc:
                    logger.exception("websocket_chat: the model call failed")
                    await self._send_quietly(
                        error_frame(
                            "internal_error",
                            f"the server failed to call the model ({type(exc).__name__})",
                            final=True,
                        )
                    )
                    return
                if turn.peer_gone:
                    return  # ("continue": the response runs on without us)
                if turn.cancelled_by_client:  # (a cancel that came just as the call returned)
                    await turn.response.aclose()
                await send_response(
                    self.sock, turn.response, on_disconnect=self.on_disconnect, heartbeat=self.heartbeat
                )
            if turn.response is None and turn.cancelled_by_client and not turn.peer_gone:
                await self._send_quietly(
                    error_frame("cancelled", "cancelled before the provider answered", final=True)
                )
        finally:
            if turn.peer_gone and self.on_disconnect == "cancel" and turn.response is not None:
                await close_response(turn.response)
            self.turn = None

    async def _send_quietly(self, frame: dict[str, Any]) -> None:
        try:
            await self.sock.send(frame)
        except PeerGone:
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
        raise _BadMessage("invalid_json", f'a frame must be a JSON object with a "type" ({accepted})')
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
        raise _bad('a chat message needs either "messages" (a list) or "prompt" (a string)')
    if prompt is not None:
        if not isinstance(prompt, str) or not prompt.strip():
            raise _bad('"prompt" must be a non-empty string')
        return [{"role": "user", "content": prompt}]
    if not isinstance(raw, list) or not raw:
        raise _bad('"messages" must be a non-empty list')
    messages = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise _bad(f'messages[{i}] must be an object with "role" and "content"')
        role, content = item.get("role"), item.get("content")
        if role not in CHAT_ROLES:
            raise _bad(f"messages[{i}].role must be one of {', '.join(CHAT_ROLES)}; got {role!r}")
        if not isinstance(content, str):
            raise _bad(f"messages[{i}].content must be a string")
        # Only role and content travel on: other keys (tool calls, names) are the server's.
        messages.append({"role": role, "content": content})
    return messages


def _generate_args(raw: object) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise _bad('"generate_args" must be an object')
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
