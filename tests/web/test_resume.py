"""Replies that outlive their connection (chat_app with a stream store): resume after
``Last-Event-ID`` on the same or another worker, fan-out, stop from any worker, the id and
guard rules, and what a reader sees when the store loses the reply. In-process uvicorn
servers that share a real redis-server (tests/support/redis_server.py), or one memory store."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
import httpx

import streamwrap
from streamwrap.testing import Emulator, Reply
from streamwrap.web import MemoryStreamStore, StreamStore, chat_app
from tests.support.providers import make_model
from tests.support.redis_server import RedisServer
from tests.support.server import Server
from tests.support.slow_link import SlowLink

CHAT = "Zq3xV9mK2pL8rT5wY1nB7c"  # 22 characters, 128+ bits as a random one would have
OTHER_CHAT = "aB3dE5fG7hJ9kL1mN3pQ5r"
WORDS = [f"w{i} " for i in range(40)]
TEXT = "".join(WORDS)
JSON = {"content-type": "application/json"}


@pytest.fixture
def serve(model: streamwrap.ModelWrapper) -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def start(
        store: StreamStore, *, with_model: streamwrap.ModelWrapper | None = None, **options: Any
    ) -> Server:
        server = Server(chat_app(with_model or model, store=store, heartbeat=0.5, **options))
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def redis_store(redis_server: RedisServer, **options: Any) -> StreamStore:
    from streamwrap.web import RedisStreamStore

    options.setdefault("lease", 1.0)
    return RedisStreamStore(redis_server.url, **options)


class Reader:
    """One client's SSE connection: its events as (id, data) pairs, read in a thread."""

    def __init__(
        self,
        url: str,
        headers: dict[str, str] | None = None,
        *,
        body: Any = None,
        stop_after: int | None = None,
    ) -> None:
        self.events: list[tuple[str | None, str]] = []
        self.status: int | None = None
        self.headers: httpx.Headers | None = None
        self.broken: Exception | None = None
        self.enough = threading.Event()
        self.done = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(url, headers or {}, body, stop_after), daemon=True
        )
        self._thread.start()

    def _run(self, url: str, headers: dict[str, str], body: Any, stop_after: int | None) -> None:
        try:
            method = "GET" if body is None else "POST"
            with httpx.stream(
                method, url, headers={**headers, **(JSON if body is not None else {})}, json=body, timeout=30
            ) as response:
                self.status = response.status_code
                self.headers = response.headers
                event_id: str | None = None
                data: list[str] = []
                for line in response.iter_lines():
                    if line.startswith("id: "):
                        event_id = line[4:]
                    elif line.startswith("data: "):
                        data.append(line[6:])
                    elif line == "" and data:
                        self.events.append((event_id, "\n".join(data)))
                        event_id, data = None, []
                        if stop_after is not None and len(self.events) >= stop_after:
                            self.enough.set()
                            return  # the client leaves mid-reply
        except httpx.TransportError as exc:
            self.broken = exc  # the server went away mid-stream (a killed worker)
        finally:
            self.enough.set()
            self.done.set()

    def wait_for(self, count: int) -> None:
        """Until the client has ``count`` events."""
        while len(self.events) < count and not self.done.wait(0.01):
            pass
        assert len(self.events) >= count, (self.status, self.events)

    def wait(self) -> Reader:
        assert self.done.wait(30), "the stream did not end"
        return self

    @property
    def chunks(self) -> list[Any]:
        return [json.loads(d) for _, d in self.events if d != "[DONE]"]

    @property
    def seqs(self) -> list[int]:
        return [int(i.rsplit(":", 1)[1]) for i, _ in self.events if i is not None]

    @property
    def last_event_id(self) -> str:
        return [i for i, _ in self.events if i is not None][-1]

    @property
    def text(self) -> str:
        return "".join(c["delta"] for c in self.chunks if c["type"] == "text-delta")


def slow_reply(delay: float = 0.03) -> Reply:
    return Reply(text=WORDS, delay=delay)


def post_chat(server: Server, chat: str = CHAT, stop_after: int | None = None, **kwargs: Any) -> Reader:
    body = {"id": chat, "messages": [{"role": "user", "parts": [{"type": "text", "text": "hi"}]}]}
    return Reader(server.url + "/api/chat", body=body, stop_after=stop_after, **kwargs)


def resume(server: Server, chat: str = CHAT, last_event_id: str | None = None, **kwargs: Any) -> Reader:
    headers = {} if last_event_id is None else {"last-event-id": last_event_id}
    return Reader(f"{server.url}/api/chat/{chat}/stream", headers, **kwargs)


def whole(readers: list[Reader]) -> tuple[str, list[int]]:
    """The text and seqs a client got across its connections."""
    return "".join(r.text for r in readers), [s for r in readers for s in r.seqs]


# -- one process, memory store ---------------------------------------------------------------


def test_a_client_that_reconnects_with_last_event_id_gets_the_rest_exactly_once(
    emu: Emulator, serve: Callable[..., Server]
) -> None:
    emu.script(slow_reply())
    server = serve(MemoryStreamStore())
    first = post_chat(server, stop_after=8).wait()
    assert first.status == 200 and first.headers is not None
    assert first.headers["x-streamwrap-chat-id"] == CHAT
    second = resume(server, last_event_id=first.last_event_id).wait()
    assert second.status == 200
    text, seqs = whole([first, second])
    assert text == TEXT
    assert seqs == list(range(len(seqs)))
    assert second.chunks[-1]["type"] == "finish" and second.events[-1][1] == "[DONE]"


def test_the_reply_goes_on_when_its_client_leaves_and_a_resume_replays_it_from_the_start(
    emu: Emulator, serve: Callable[..., Server]
) -> None:
    emu.script(slow_reply())
    server = serve(MemoryStreamStore())
    post_chat(server, stop_after=3).wait()
    again = resume(server).wait()  # a reload: no Last-Event-ID
    assert again.text == TEXT
    assert again.seqs == list(range(len(again.seqs)))
    assert again.chunks[0]["type"] == "start"
    # Ended: nothing active any more.
    assert httpx.get(f"{server.url}/api/chat/{CHAT}/stream").status_code == 204


def test_nothing_to_resume_is_204(serve: Callable[..., Server]) -> None:
    server = serve(MemoryStreamStore())
    assert httpx.get(f"{server.url}/api/chat/{CHAT}/stream").status_code == 204
    assert httpx.post(f"{server.url}/api/chat/{CHAT}/stop", json={}).status_code == 204
    # A Last-Event-ID of no reply in the store: nothing to resume either.
    reply = httpx.get(
        f"{server.url}/api/chat/{CHAT}/stream", headers={"last-event-id": "swr-" + "0" * 32 + ":3"}
    )
    assert reply.status_code == 204


# -- several workers, one Redis ---------------------------------------------------------------


def test_a_reply_resumes_on_another_worker_and_fans_out(
    emu: Emulator, serve: Callable[..., Server], redis_server: RedisServer
) -> None:
    emu.script(slow_reply())
    a, b = serve(redis_store(redis_server)), serve(redis_store(redis_server))
    first = post_chat(a, stop_after=6).wait()
    rest = resume(b, last_event_id=first.last_event_id)
    watchers = [resume(b), resume(a), resume(b)]  # a second tab, a shared screen, ...
    text, seqs = whole([first, rest.wait()])
    assert text == TEXT and seqs == list(range(len(seqs)))
    for watcher in watchers:
        watcher.wait()
        assert watcher.text == TEXT
        assert watcher.seqs == list(range(len(watcher.seqs)))
        assert watcher.chunks[-1]["type"] == "finish"
    # After the end, within the TTL: the tail after any position, on any worker.
    middle = first.seqs[3]
    late = resume(a, last_event_id=f"{first.last_event_id.rsplit(':', 1)[0]}:{middle}").wait()
    assert late.seqs == list(range(middle + 1, seqs[-1] + 1))


def test_a_client_that_leaves_at_its_first_chunk_finds_the_reply_on_another_worker(
    emu: Emulator, serve: Callable[..., Server], redis_server: RedisServer
) -> None:
    # The shared store learns of a reply before its first chunk goes out: a reconnect to
    # another worker right after it does not find "nothing active" (204), even when the
    # generating worker's link to Redis is slow (100 ms each way here).
    from streamwrap.web import RedisStreamStore

    link = SlowLink("127.0.0.1", redis_server.port, 0.1)
    try:
        a = serve(RedisStreamStore(f"redis://127.0.0.1:{link.port}/0", lease=1.0))
        b = serve(redis_store(redis_server))
        emu.script(slow_reply())
        first = post_chat(a, stop_after=1).wait()
        rest = resume(b, last_event_id=first.last_event_id).wait()
        assert rest.status == 200, rest.status
        text, seqs = whole([first, rest])
        assert text == TEXT and seqs == list(range(len(seqs)))
    finally:
        link.close()


def test_many_readers_of_a_worker_share_its_few_redis_connections(
    emu: Emulator, serve: Callable[..., Server], redis_server: RedisServer
) -> None:
    # Readers waiting for the next chunks share one XREAD BLOCK per process: 40 of them
    # follow a reply of another worker through a store of 4 connections (one blocked XREAD
    # per reader would hold all 4, and the others would wait past the pool's timeout).
    emu.script(slow_reply(0.1))  # 4 s: every reader asks while the reply goes on
    generator = serve(redis_store(redis_server))
    followers = serve(redis_store(redis_server, max_connections=4))
    first = post_chat(generator, stop_after=2).wait()
    readers = [resume(followers) for _ in range(40)]
    for reader in readers:
        reader.wait()
        assert reader.status == 200 and reader.broken is None
        assert reader.text == TEXT
        assert reader.seqs == list(range(len(reader.seqs)))
    assert first.status == 200 and len(emu.requests) == 1


def test_stop_from_another_worker_cancels_the_reply_and_every_reader_gets_the_abort(
    own_emu: Emulator, serve: Callable[..., Server], redis_server: RedisServer
) -> None:
    own_emu.script(Reply(text=WORDS * 20, delay=0.03))
    model = make_model(own_emu)
    a, b = (
        serve(redis_store(redis_server), with_model=model),
        serve(redis_store(redis_server), with_model=model),
    )
    own = post_chat(a)
    own.wait_for(3)
    watcher = resume(b)
    watcher.wait_for(5)
    stopped = httpx.post(f"{b.url}/api/chat/{CHAT}/stop", json={})
    assert stopped.status_code == 202
    for reader in (own.wait(), watcher.wait()):
        assert reader.chunks[-1] == {"type": "abort"}
        assert 0 < len(reader.text) < len(TEXT * 20)
        assert (TEXT * 20).startswith(reader.text)  # the partial text, kept
    assert own.text == watcher.text
    assert own_emu.wait_idle(5), "the upstream request was not closed"


def test_the_routes_refuse_guessable_ids_and_apply_the_token_and_origin_rules(
    emu: Emulator, serve: Callable[..., Server], redis_server: RedisServer
) -> None:
    server = serve(redis_store(redis_server), token="t0ken")
    auth = {"authorization": "Bearer t0ken"}
    for chat in ("chat-1", "1", "a" * 30, "x" * 200):
        got = httpx.get(f"{server.url}/api/chat/{chat}/stream", headers=auth)
        assert got.status_code in (400, 404), chat
        if got.status_code == 400:
            assert got.json()["error"]["code"] == "guessable_id"
    body = {"id": "chat-1", "messages": [{"role": "user", "content": "hi"}]}
    assert (
        httpx.post(server.url + "/api/chat", json=body, headers=auth).json()["error"]["code"]
        == "guessable_id"
    )
    assert emu.requests == []
    for method, path in (("GET", "stream"), ("POST", "stop")):
        url = f"{server.url}/api/chat/{CHAT}/{path}"
        assert httpx.request(method, url, json={}).status_code == 401
        evil = {**auth, "origin": "https://evil.example"}
        assert httpx.request(method, url, json={}, headers=evil).status_code == 403
        assert httpx.request(method, url, json={}, headers=auth).status_code == 204


def test_a_server_makes_a_chat_id_when_the_client_sends_none(
    emu: Emulator, serve: Callable[..., Server]
) -> None:
    emu.script(Reply(text=["a", "b"]))
    server = serve(MemoryStreamStore())
    reader = Reader(server.url + "/api/chat", body={"prompt": "hi"}).wait()
    assert reader.headers is not None
    chat = reader.headers["x-streamwrap-chat-id"]
    assert len(chat) == 22 and reader.text == "ab"


def test_another_prefix_cannot_see_the_reply(
    emu: Emulator, serve: Callable[..., Server], redis_server: RedisServer
) -> None:
    emu.script(slow_reply())
    ours = serve(redis_store(redis_server, prefix="ours"))
    theirs = serve(redis_store(redis_server, prefix="theirs"))
    first = post_chat(ours, stop_after=4).wait()
    assert httpx.get(f"{theirs.url}/api/chat/{CHAT}/stream").status_code == 204
    got = httpx.get(f"{theirs.url}/api/chat/{CHAT}/stream", headers={"last-event-id": first.last_event_id})
    assert got.status_code == 204
    assert httpx.post(f"{theirs.url}/api/chat/{CHAT}/stop", json={}).status_code == 204
    assert resume(ours, last_event_id=first.last_event_id).wait().chunks[-1]["type"] == "finish"


def test_a_redis_restart_that_loses_the_reply_is_never_wrong_text(
    emu: Emulator, serve: Callable[..., Server], redis_server: RedisServer
) -> None:
    emu.script(Reply(text=WORDS * 3, delay=0.03))
    a, b = serve(redis_store(redis_server)), serve(redis_store(redis_server))
    first = post_chat(a, stop_after=6).wait()
    redis_server.stop()
    redis_server.start()  # empty
    # Nothing known any more: 204 (or, while the generator still writes, a clear error).
    got = resume(b, last_event_id=first.last_event_id).wait()
    if got.status == 200:
        assert got.chunks[-1]["type"] == "error", got.chunks
        assert (TEXT * 3).startswith(first.text + got.text)
    else:
        assert got.status == 204
    assert httpx.get(f"{b.url}/api/chat/{CHAT}/stream").status_code == 204


def test_a_reply_trimmed_by_maxlen_is_reported_not_passed_off_as_whole(
    emu: Emulator, serve: Callable[..., Server], redis_server: RedisServer
) -> None:
    long = [f"t{i} " for i in range(400)]
    emu.script(Reply(text=long))
    a = serve(redis_store(redis_server, maxlen=100))
    b = serve(redis_store(redis_server, maxlen=100))
    first = post_chat(a, stop_after=2).wait()
    rid = first.last_event_id.rsplit(":", 1)[0]
    import redis

    client = redis.Redis.from_url(redis_server.url)
    deadline = time.monotonic() + 10
    # Until the reply has ended in Redis: its last entry is the final one. (Its lease key
    # may not be there yet when the client leaves: waiting for it to go is not enough.)
    while not (
        (tail := client.xrevrange(f"streamwrap:reply:{rid}", count=1)) and tail[0][1].get(b"f") == b"1"
    ):
        assert time.monotonic() < deadline, "the reply did not end"
        time.sleep(0.01)
    client.close()
    # From the start, on a worker that reads Redis: its beginning was trimmed.
    got = resume(b, last_event_id=f"{rid}:0").wait()
    assert got.status == 200
    assert got.chunks[-1]["type"] == "error"
    assert "chunk 1 is missing" in got.chunks[-1]["errorText"]
    assert got.text == ""


def test_bad_store_options_are_refused(model: streamwrap.ModelWrapper) -> None:
    pytest.importorskip("redis")
    from streamwrap.web import RedisStreamStore

    with pytest.raises(streamwrap.InputError, match="store must be a StreamStore"):
        chat_app(model, store="redis://localhost")  # type: ignore[arg-type]
    with pytest.raises(streamwrap.InputError, match="redis:// or rediss://"):
        RedisStreamStore("http://localhost:6379")
    with pytest.raises(streamwrap.InputError, match="prefix"):
        RedisStreamStore("redis://localhost", prefix="a b")
    with pytest.raises(streamwrap.InputError, match="ttl"):
        MemoryStreamStore(ttl=0)
    with pytest.raises(streamwrap.InputError, match="maxlen"):
        RedisStreamStore("redis://localhost", maxlen=5)
