"""``websocket_chat``, ``stream_to_websocket`` and ``WebSocketSink`` with real clients: a
``websockets`` client against a Starlette app on uvicorn (asyncio), Starlette's TestClient
running the app on trio, and a ``websockets`` library server."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import anyio
import pytest

pytest.importorskip("starlette")
uvicorn = pytest.importorskip("uvicorn")
websockets = pytest.importorskip("websockets")
from starlette.applications import Starlette  # noqa: E402
from starlette.routing import WebSocketRoute  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402
from starlette.websockets import WebSocket  # noqa: E402
from websockets.asyncio.client import connect as async_connect  # noqa: E402
from websockets.asyncio.server import ServerConnection, serve  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

import streamwrap  # noqa: E402
from streamwrap.testing import Emulator, Fault, Reply  # noqa: E402
from streamwrap.web import WebSocketSink, stream_to_websocket, websocket_chat  # noqa: E402
from tests.support import providers  # noqa: E402
from tests.support.server import Server  # noqa: E402

WORDS = [f"w{i} " for i in range(8)]
SLOW = Reply(text=WORDS * 100, delay=0.01)


make_model = partial(providers.make_model, api_key="sk-test")


class Recorder:
    """A model that remembers the responses it returned (``websocket_chat`` takes any
    async callable)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.responses: list[streamwrap.ModelResponse] = []

    async def __call__(self, *args: Any, **kwargs: Any) -> streamwrap.ModelResponse:
        response: streamwrap.ModelResponse = await self.model(*args, **kwargs)
        self.responses.append(response)
        return response

    def last(self, timeout: float = 10.0) -> streamwrap.ModelResponse:
        deadline = time.monotonic() + timeout
        while not self.responses:
            assert time.monotonic() < deadline, "no response was made"
            time.sleep(0.01)
        response = self.responses[-1]
        assert response.wait(timeout), "the response did not end"
        return response


def check_response_frames(frames: list[dict[str, Any]]) -> str:
    """One response's frames: start first, seq 0, 1, 2, ... , exactly one final end frame,
    last, without text. Returns the text the deltas add up to."""
    frames = [f for f in frames if f["type"] != "heartbeat"]
    assert frames[0]["type"] == "start"
    assert [f["seq"] for f in frames] == list(range(len(frames)))
    assert len({f["id"] for f in frames}) == 1
    assert [f["final"] for f in frames] == [False] * (len(frames) - 1) + [True]
    end = frames[-1]
    assert end["type"] == "end" and "text" not in end and "reasoning" not in end
    return "".join(f["delta"] for f in frames if f["type"] == "text")


# -- the Starlette app, on uvicorn and on trio ------------------------------------------------


@dataclass
class Scenario:
    model: Any = None
    options: dict[str, Any] = field(default_factory=dict)


SCENARIO = Scenario()


async def chat_endpoint(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket_chat(websocket, SCENARIO.model, **SCENARIO.options)


APP = Starlette(routes=[WebSocketRoute("/ws", chat_endpoint)])


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    s = Server(APP, log_level="critical")
    yield s
    s.stop()


@pytest.fixture
def recorder(emu: Emulator) -> Iterator[Recorder]:
    global SCENARIO
    recorder = Recorder(make_model(emu))
    SCENARIO = Scenario(model=recorder)
    yield recorder
    SCENARIO = Scenario()


class Peer:
    """The client end, whichever stack: send messages, receive JSON frames, hang up. It
    connects on first use, so that a test can set ``SCENARIO.options`` first."""

    def __init__(self, open_connection: Callable[[], Any], testclient: bool) -> None:
        self.open_connection = open_connection
        self.testclient = testclient
        self._conn: Any = None

    @property
    def conn(self) -> Any:
        if self._conn is None:
            self._conn = self.open_connection()
        return self._conn

    def send(self, message: Any) -> None:
        if not isinstance(message, str | bytes):
            message = json.dumps(message)
        if not self.testclient:
            self.conn.send(message)
        elif isinstance(message, bytes):
            self.conn.send_bytes(message)
        else:
            self.conn.send_text(message)

    def recv(self) -> dict[str, Any]:
        data = self.conn.receive_text() if self.testclient else self.conn.recv(timeout=10)
        frame: dict[str, Any] = json.loads(data)
        return frame

    def until_final(self) -> list[dict[str, Any]]:
        frames = []
        while True:
            frames.append(self.recv())
            if frames[-1].get("final"):
                return frames

    def close(self) -> None:
        self.conn.close()


@pytest.fixture(params=["uvicorn", "trio"])
def peer(request: pytest.FixtureRequest, server: Server, recorder: Recorder) -> Iterator[Peer]:
    with ExitStack() as stack:
        if request.param == "uvicorn":
            yield Peer(lambda: stack.enter_context(connect(server.ws_url, open_timeout=5)), testclient=False)
        else:
            client = stack.enter_context(TestClient(APP, backend="trio"))
            yield Peer(lambda: stack.enter_context(client.websocket_connect("/ws")), testclient=True)


def test_a_chat_streams_a_response(peer: Peer, emu: Emulator, recorder: Recorder) -> None:
    emu.script(Reply(text=WORDS, usage=(3, 8)), Reply(text="again"))
    peer.send(
        {
            "type": "chat",
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
        }
    )
    frames = peer.until_final()
    response = recorder.last()
    assert check_response_frames(frames) == response.text == "".join(WORDS)
    assert [f["type"] for f in frames].count("text") == len(WORDS)
    end = frames[-1]
    assert end["status"] == "finished" and end["finish_reason"] == "stop" and end["id"] == response.id
    assert end["usage"]["total_tokens"] == 11
    assert emu.requests[0].json["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
    ]
    # One connection, many chats.
    peer.send({"type": "chat", "prompt": "more", "generate_args": {"max_tokens": 5, "temperature": 0.5}})
    assert check_response_frames(peer.until_final()) == "again"
    assert emu.requests[1].json["max_tokens"] == 5 and emu.requests[1].json["temperature"] == 0.5


def test_a_non_streaming_answer_comes_as_one_text_frame(
    peer: Peer, emu: Emulator, recorder: Recorder
) -> None:
    recorder.model = make_model(emu, stream=False)
    emu.script(Reply(text=WORDS, reasoning="hm"))
    peer.send({"type": "chat", "prompt": "hi"})
    frames = peer.until_final()
    assert [f["type"] for f in frames] == ["start", "reasoning", "text", "end"]
    assert check_response_frames(frames) == "".join(WORDS)


def test_cancel_ends_the_response_as_cancelled(peer: Peer, own_emu: Emulator, recorder: Recorder) -> None:
    recorder.model = make_model(own_emu)
    own_emu.script(SLOW)
    peer.send({"type": "chat", "prompt": "hi"})
    frames = [peer.recv() for _ in range(4)]
    assert [f["type"] for f in frames] == ["start", "text", "text", "text"]
    peer.send({"type": "cancel"})
    frames += peer.until_final()
    text = check_response_frames(frames)
    assert frames[-1]["status"] == "cancelled" and frames[-1]["finish_reason"] == "cancelled"
    response = recorder.last()
    assert response.finish_reason == "cancelled" and text == response.text
    assert own_emu.wait_idle(5), "the upstream connection was not closed"
    peer.send({"type": "cancel"})  # nothing in flight: ignored
    own_emu.script(Reply(text="ok"))
    peer.send({"type": "chat", "prompt": "hi"})
    assert check_response_frames(peer.until_final()) == "ok"


def test_cancel_before_the_provider_answers(peer: Peer, own_emu: Emulator, recorder: Recorder) -> None:
    recorder.model = make_model(own_emu, stream=False)  # the call waits for the whole answer
    own_emu.script(Reply(text=WORDS, first_delay=10))
    peer.send({"type": "chat", "prompt": "hi"})
    deadline = time.monotonic() + 5
    while not own_emu.requests:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    peer.send({"type": "cancel"})
    frame = peer.recv()
    assert frame["type"] == "error" and frame["code"] == "cancelled" and frame["final"] is True
    assert own_emu.wait_idle(5), "the request was not closed"
    assert recorder.responses == []


def test_an_http_error_before_the_stream_is_an_error_frame(
    peer: Peer, emu: Emulator, recorder: Recorder
) -> None:
    emu.script(Reply(status=429, headers={"Retry-After": "2"}), Reply(text="fine"))
    peer.send({"type": "chat", "prompt": "hi"})
    frame = peer.recv()
    assert frame["type"] == "error" and frame["final"] is True and frame["code"] == "provider_error"
    assert (
        frame["error_type"] == "RateLimitError" and frame["status_code"] == 429 and frame["retry_after"] == 2
    )
    assert "429" in frame["message"]
    peer.send({"type": "chat", "prompt": "hi"})
    assert check_response_frames(peer.until_final()) == "fine"


@pytest.mark.parametrize(
    ("message", "code", "says"),
    [
        ("{not json", "invalid_json", "not valid JSON"),
        ("[1, 2]", "invalid_json", "JSON object"),
        (b"\x00\x01", "invalid_json", "text frames"),
        ({"type": "hello"}, "unknown_type", "chat, cancel"),
        ({"prompt": "no type"}, "unknown_type", "chat, cancel"),
        ({"type": "chat"}, "bad_request", '"messages"'),
        ({"type": "chat", "prompt": "  "}, "bad_request", "non-empty"),
        (
            {"type": "chat", "messages": [{"role": "tool", "content": "x"}]},
            "bad_request",
            "system, user, assistant",
        ),
        ({"type": "chat", "messages": [{"role": "user", "content": ["x"]}]}, "bad_request", "string"),
        (
            {"type": "chat", "prompt": "hi", "generate_args": {"model": "gpt-5"}},
            "bad_request",
            "max_tokens, temperature, top_p",
        ),
        ({"type": "chat", "prompt": "hi", "generate_args": {"temperature": 9}}, "bad_request", "from 0 to 2"),
        ({"type": "chat", "prompt": "hi", "generate_args": {"max_tokens": True}}, "bad_request", "integer"),
    ],
)
def test_bad_messages_get_an_error_frame_and_the_connection_goes_on(
    peer: Peer, emu: Emulator, recorder: Recorder, message: Any, code: str, says: str
) -> None:
    peer.send(message)
    frame = peer.recv()
    assert frame["type"] == "error" and frame["code"] == code and says in frame["message"]
    assert frame["final"] is (code == "bad_request")  # a rejected chat is over; a notice is not
    emu.script(Reply(text="still here"))
    peer.send({"type": "chat", "prompt": "hi"})
    assert check_response_frames(peer.until_final()) == "still here"
    assert len(emu.requests) == 1


def test_a_second_chat_while_one_is_in_flight_is_refused(
    peer: Peer, emu: Emulator, recorder: Recorder
) -> None:
    emu.script(Reply(text=WORDS * 5, delay=0.01))
    peer.send({"type": "chat", "prompt": "one"})
    assert peer.recv()["type"] == "start"
    peer.send({"type": "chat", "prompt": "two"})
    frames = peer.until_final()
    busy = [f for f in frames if f["type"] == "error"]
    assert len(busy) == 1 and busy[0]["code"] == "busy" and busy[0]["final"] is False
    assert frames[-1]["type"] == "end" and frames[-1]["status"] == "finished"
    assert "".join(f["delta"] for f in frames if f["type"] == "text") == recorder.last().text
    assert len(emu.requests) == 1


def test_heartbeats_while_the_model_is_silent(peer: Peer, emu: Emulator, recorder: Recorder) -> None:
    SCENARIO.options = {"heartbeat": 0.05}
    emu.script(Reply(text=WORDS[:2], first_delay=0.4))
    peer.send({"type": "chat", "prompt": "hi"})
    frames = peer.until_final()
    beats = [f for f in frames if f["type"] == "heartbeat"]
    assert beats and all(f == {"type": "heartbeat", "id": frames[0]["id"]} for f in beats)
    assert check_response_frames(frames) == "".join(WORDS[:2])


def test_a_peer_that_leaves_cancels_the_response(peer: Peer, own_emu: Emulator, recorder: Recorder) -> None:
    # The model stalls and there are no heartbeats: nothing is sent after the peer leaves,
    # so only the receiving side can notice it.
    recorder.model = make_model(own_emu)
    SCENARIO.options = {"heartbeat": None}
    own_emu.script(Reply(text=WORDS, fault=Fault.stall_after(2, seconds=3)))
    peer.send({"type": "chat", "prompt": "hi"})
    assert [peer.recv()["type"] for _ in range(3)] == ["start", "text", "text"]
    peer.close()
    response = recorder.last(timeout=2.5)
    assert response.finish_reason == "cancelled" and response.text == "".join(WORDS[:2])
    assert own_emu.wait_idle(5), "the upstream connection was not closed"


def test_on_disconnect_continue_keeps_the_response(peer: Peer, emu: Emulator, recorder: Recorder) -> None:
    SCENARIO.options = {"on_disconnect": "continue"}
    emu.script(Reply(text=WORDS * 6, delay=0.01))
    peer.send({"type": "chat", "prompt": "hi"})
    for _ in range(3):
        peer.recv()
    peer.close()
    response = recorder.last()
    assert response.finish_reason == "stop" and response.text == "".join(WORDS * 6)


# -- the websockets library as the server -----------------------------------------------------

pytest_asyncio_only = pytest.mark.parametrize("anyio_backend", ["asyncio"])  # (websockets is asyncio-only)


@pytest.mark.anyio
@pytest_asyncio_only
@pytest.mark.parametrize("stream", [True, False], ids=["streaming", "non-streaming"])
async def test_stream_to_websocket_over_the_websockets_library(emu: Emulator, stream: bool) -> None:
    model = make_model(emu, stream=stream)
    emu.script(Reply(text=WORDS, reasoning="hm", usage=(1, 2)))
    made: list[streamwrap.ModelResponse] = []

    async def handler(conn: ServerConnection) -> None:
        made.append(await model(await conn.recv()))
        await stream_to_websocket(conn, made[0])

    async with serve(handler, "127.0.0.1", 0) as srv:
        port = srv.sockets[0].getsockname()[1]
        async with async_connect(f"ws://127.0.0.1:{port}") as client:
            await client.send("hi")
            frames = [json.loads(data) async for data in client]  # until the handler returns
    assert check_response_frames(frames) == made[0].text == "".join(WORDS)
    assert "".join(f["delta"] for f in frames if f["type"] == "reasoning") == "hm"
    assert [f["type"] for f in frames].count("text") == (len(WORDS) if stream else 1)
    assert frames[-1]["usage"]["total_tokens"] == 3


@pytest.mark.anyio
@pytest_asyncio_only
@pytest.mark.parametrize("on_disconnect", ["cancel", "continue"])
async def test_stream_to_websocket_notices_a_peer_that_left(own_emu: Emulator, on_disconnect: str) -> None:
    # Only sends: the peer's leaving is noticed when a send fails, here a heartbeat's
    # while the model stalls.
    model = make_model(own_emu)
    own_emu.script(Reply(text=WORDS, fault=Fault.stall_after(2, seconds=1.5)))
    made: list[streamwrap.ModelResponse] = []
    returned = anyio.Event()

    async def handler(conn: ServerConnection) -> None:
        made.append(await model("hi"))
        await stream_to_websocket(conn, made[0], on_disconnect=on_disconnect, heartbeat=0.05)  # type: ignore[arg-type]
        returned.set()

    async with serve(handler, "127.0.0.1", 0) as srv:
        port = srv.sockets[0].getsockname()[1]
        async with async_connect(f"ws://127.0.0.1:{port}") as client:
            assert [json.loads(await client.recv())["type"] for _ in range(3)] == ["start", "text", "text"]
        await returned.wait()
        response = made[0]
        await response.await_done()
        if on_disconnect == "cancel":
            assert response.finish_reason == "cancelled" and response.text == "".join(WORDS[:2])
        else:
            assert response.finish_reason == "stop" and response.text == "".join(WORDS)


@pytest.mark.anyio
@pytest_asyncio_only
async def test_websocket_chat_over_the_websockets_library(own_emu: Emulator) -> None:
    recorder = Recorder(make_model(own_emu))
    own_emu.script(Reply(text="one two"), SLOW)

    async def handler(conn: ServerConnection) -> None:
        await websocket_chat(conn, recorder, heartbeat=None)

    async with serve(handler, "127.0.0.1", 0) as srv:
        port = srv.sockets[0].getsockname()[1]
        async with async_connect(f"ws://127.0.0.1:{port}") as client:

            async def until_final() -> list[dict[str, Any]]:
                frames: list[dict[str, Any]] = []
                while not (frames and frames[-1]["final"]):
                    frames.append(json.loads(await client.recv()))
                return frames

            await client.send(json.dumps({"type": "chat", "prompt": "hi"}))
            assert check_response_frames(await until_final()) == "one two"
            await client.send(json.dumps({"type": "chat", "prompt": "hi"}))
            frames = [json.loads(await client.recv()) for _ in range(3)]
            await client.send(json.dumps({"type": "cancel"}))
            frames += await until_final()
            assert check_response_frames(frames) and frames[-1]["status"] == "cancelled"
    await recorder.responses[-1].await_done()
    assert recorder.responses[-1].finish_reason == "cancelled"


@pytest.mark.anyio
@pytest_asyncio_only
async def test_websocket_sink_sends_the_same_frames(emu: Emulator) -> None:
    model = make_model(emu, stream=False)
    emu.script(Reply(text=WORDS), Reply(text=WORDS))

    async def handler(conn: ServerConnection) -> None:
        sink = WebSocketSink(conn)
        assert isinstance(sink, streamwrap.Sink)
        await streamwrap.deliver(await model("hi"), sink)
        await stream_to_websocket(conn, await model("hi"), heartbeat=None)

    async with serve(handler, "127.0.0.1", 0) as srv:
        port = srv.sockets[0].getsockname()[1]
        async with async_connect(f"ws://127.0.0.1:{port}") as client:
            frames = [json.loads(data) async for data in client]
    by_sink, direct = frames[:3], frames[3:]
    assert [f["type"] for f in by_sink] == [f["type"] for f in direct] == ["start", "text", "end"]
    assert check_response_frames(by_sink) == check_response_frames(direct) == "".join(WORDS)
    ignore = ("id", "duration", "time_to_first_token")
    assert [{k: v for k, v in f.items() if k not in ignore} for f in by_sink] == [
        {k: v for k, v in f.items() if k not in ignore} for f in direct
    ]


@pytest.mark.anyio
@pytest_asyncio_only
async def test_a_websocket_sink_whose_peer_left_stays_quiet(emu: Emulator) -> None:
    model = make_model(emu)
    emu.script(Reply(text=WORDS))
    done = anyio.Event()
    sinks: list[WebSocketSink] = []

    async def handler(conn: ServerConnection) -> None:
        await conn.wait_closed()
        sinks.append(WebSocketSink(conn))
        await streamwrap.deliver(await model("hi"), sinks[0])  # raises nothing
        done.set()

    async with serve(handler, "127.0.0.1", 0) as srv:
        port = srv.sockets[0].getsockname()[1]
        async with async_connect(f"ws://127.0.0.1:{port}"):
            pass
        await done.wait()
    assert sinks[0].closed


def test_a_websocket_must_be_one() -> None:
    with pytest.raises(streamwrap.InputError, match="send_text"):
        WebSocketSink(object())
