"""One HTTP/1.1 connection: parse requests with h11, execute response plans.

A bare :class:`asyncio.Protocol` rather than asyncio streams, for two reasons:
the read side keeps running while a response streams, so a client that hangs
up is noticed at once (even during a long stall), and a write costs one
``transport.write`` with no per-chunk coroutine unless the kernel buffer is
full.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Sequence
from http.client import responses
from typing import cast

import h11

from ._plan import Pause, Plan
from ._recorded import RecordedRequest

logger = logging.getLogger("streamwrap.testing")

Responder = Callable[[RecordedRequest], Plan]
"""Decides the response to a request; called on the event loop thread."""


def _response_head(status: int, headers: Sequence[tuple[str, str]]) -> h11.Response:
    # h11 sends an empty reason phrase unless given one; real servers don't.
    return h11.Response(status_code=status, headers=list(headers), reason=responses.get(status, "").encode())


class _Gone(Exception):
    """The connection is finished (client left or deliberately aborted); stop serving it."""


class HTTPConnection(asyncio.Protocol):
    """Serves HTTP/1.1 requests on one TCP connection, one at a time, with keep-alive.

    ``on_open`` and ``on_close`` are called exactly once each, when the
    connection is accepted and when its transport is gone.  EOF from the
    client closes the connection (asyncio's default): HTTP clients do not
    half-close in practice, so EOF means the client has gone, and any response
    in progress stops at its next write.
    """

    def __init__(
        self,
        respond: Responder,
        on_open: Callable[[HTTPConnection], None],
        on_close: Callable[[HTTPConnection], None],
    ) -> None:
        self._respond = respond
        self._on_open = on_open
        self._on_close = on_close
        self._h11 = h11.Connection(h11.SERVER)
        self._transport: asyncio.Transport | None = None
        self._readable = asyncio.Event()
        self._resumed: asyncio.Future[None] | None = None  # set while the transport's buffer is full
        self._task: asyncio.Task[None] | None = None

    # -- asyncio.Protocol callbacks -------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # create_server always hands a protocol a bidirectional stream transport.
        self._transport = cast(asyncio.Transport, transport)
        self._task = asyncio.get_running_loop().create_task(self._serve())
        self._on_open(self)

    def data_received(self, data: bytes) -> None:
        # h11 buffers bytes in any state, so a pipelined request can arrive mid-response.
        self._h11.receive_data(data)
        self._readable.set()

    def pause_writing(self) -> None:
        self._resumed = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._resumed is not None and not self._resumed.done():
            self._resumed.set_result(None)
        self._resumed = None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._task is not None:
            self._task.cancel()
        self._on_close(self)

    # -- control --------------------------------------------------------------------

    def abort(self) -> None:
        """Close the TCP connection immediately, discarding unsent data."""
        if self._transport is not None:
            self._transport.abort()

    # -- serving --------------------------------------------------------------------

    async def _serve(self) -> None:
        try:
            while True:
                request = await self._read_request()
                plan = self._respond(request)
                if request.method == "HEAD":  # same headers as GET, never a body
                    plan = dataclasses.replace(plan, body=())
                await self._execute(plan)
                if self._h11.our_state is h11.DONE and self._h11.their_state is h11.DONE:
                    self._h11.start_next_cycle()
                else:  # either side asked for Connection: close
                    self._close()
                    return
        except _Gone:
            pass
        except h11.RemoteProtocolError as exc:
            self._reject(exc)
        except Exception:
            # Only an emulator bug gets here; say so loudly, but keep serving others.
            logger.exception("streamwrap emulator: connection handler failed")
            self.abort()

    async def _read_request(self) -> RecordedRequest:
        request = await self._next_event()
        if not isinstance(request, h11.Request):
            # h11 starts each cycle with a Request; anything else means the connection is over.
            raise _Gone
        body = bytearray()
        event = await self._next_event()
        while not isinstance(event, h11.EndOfMessage):
            if isinstance(event, h11.Data):
                body += event.data
            event = await self._next_event()
        return RecordedRequest.from_wire(request.method, request.target, request.headers, bytes(body))

    async def _next_event(self) -> h11.Event:
        while True:
            event = self._h11.next_event()
            if isinstance(event, h11.Event):
                return event
            # NEED_DATA (PAUSED cannot happen: we only read between responses).
            if self._h11.they_are_waiting_for_100_continue:
                self._send(h11.InformationalResponse(status_code=100, headers=[]))
            self._readable.clear()
            await self._readable.wait()

    async def _execute(self, plan: Plan) -> None:
        if plan.head_delay > 0:
            await asyncio.sleep(plan.head_delay)
        self._send(_response_head(plan.status, plan.headers))
        for step in plan.body:
            if isinstance(step, bytes):
                if plan.byte_delay > 0:
                    await self._trickle(step, plan.byte_delay)
                else:
                    self._send(h11.Data(data=step))
                    if self._resumed is not None:
                        await self._resumed
            elif isinstance(step, Pause):
                await self._pause(step)
            else:
                self.abort()
                raise _Gone
        self._send(h11.EndOfMessage())

    async def _trickle(self, data: bytes, byte_delay: float) -> None:
        for index in range(len(data)):
            self._send(h11.Data(data=data[index : index + 1]))
            await asyncio.sleep(byte_delay)

    async def _pause(self, pause: Pause) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + pause.seconds
        if pause.keepalive is not None:
            due = loop.time() + pause.keepalive
            while due < deadline:
                await asyncio.sleep(due - loop.time())
                self._send(h11.Data(data=pause.ping))
                due += pause.keepalive
        await asyncio.sleep(deadline - loop.time())

    def _send(self, event: h11.Event) -> None:
        transport = self._transport
        # Writing to a closing transport is silently counted and, after a few
        # attempts, logged by asyncio; stop at the first sign the client left.
        if transport is None or transport.is_closing():
            raise _Gone
        data = self._h11.send(event)
        if data:
            transport.write(data)

    def _close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def _reject(self, exc: h11.RemoteProtocolError) -> None:
        # A malformed request gets a plain 400 if no response has started yet.
        if self._h11.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            body = f"Bad request: {exc}\n".encode()
            headers = [
                ("content-type", "text/plain"),
                ("content-length", str(len(body))),
                ("connection", "close"),
            ]
            try:
                self._send(_response_head(exc.error_status_hint, headers))
                self._send(h11.Data(data=body))
                self._send(h11.EndOfMessage())
            except _Gone:
                return
        self._close()
