"""Resumable replies across worker processes that share one real Redis: clients that leave
at random points and come back to a random worker, and the failures: a generating worker
killed, a reading worker killed, Redis unreachable mid-reply. Each worker is a process of
its own (tests/support/resume_worker.py) with a short lease."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from streamwrap.testing import Emulator, Reply
from tests.support.redis_server import RedisServer
from tests.web.test_resume import Reader, post_chat, resume

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

ROOT = Path(__file__).resolve().parents[2]
LEASE = 1.0


class Worker:
    """One worker process; ``url`` once it listens; its stderr kept."""

    def __init__(self, emulator: Emulator, redis: RedisServer) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.resume_worker", emulator.url, redis.url, str(LEASE)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])},
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line.startswith("port "), line + (self.process.stderr.read() if self.process.stderr else "")
        self.url = f"http://127.0.0.1:{int(line.split()[1])}"
        self.stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr.append(line)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


class At:
    """A worker as the helpers of test_resume take a server (``.url``)."""

    def __init__(self, url: str) -> None:
        self.url = url


@pytest.fixture
def workers(emu: Emulator, redis_server: RedisServer) -> Iterator[list[Worker]]:
    started = [Worker(emu, redis_server) for _ in range(4)]
    yield started
    for worker in started:
        worker.stop()


def chat_id(n: int) -> str:
    return f"client{n:03d}-" + "".join(
        random.choices("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz", k=20)
    )


def test_clients_that_leave_at_random_points_and_come_back_to_random_workers_get_exactly_the_text(
    emu: Emulator, workers: list[Worker]
) -> None:
    rng = random.Random(1414)
    clients = 12
    texts = [[f"c{n}-w{i} " for i in range(30 + n)] for n in range(clients)]
    connections: list[list[Reader]] = []
    for n in range(clients):
        # One at a time until each reply has begun: reply n is the n-th in the script.
        emu.script(Reply(text=texts[n], delay=0.02))
        first = post_chat(At(rng.choice(workers).url), chat=chat_id(n), stop_after=rng.randint(1, 12))
        first.wait_for(1)
        connections.append([first])
    for n, chain in enumerate(connections):
        chat = chain[0].headers["x-streamwrap-chat-id"] if chain[0].headers else ""
        while True:
            last = chain[-1].wait()
            if last.events and last.events[-1][1] == "[DONE]":
                break
            position = [r.last_event_id for r in chain if any(i for i, _ in r.events)][-1]
            stop_after = rng.choice([None, rng.randint(1, 10)])
            chain.append(
                resume(At(rng.choice(workers).url), chat=chat, last_event_id=position, stop_after=stop_after)
            )
        text = "".join(r.text for r in chain)
        seqs = [s for r in chain for s in r.seqs]
        assert text == "".join(texts[n]), n
        assert seqs == list(range(len(seqs))), n
        assert len(chain) >= 2


def test_a_killed_generator_ends_its_readers_with_an_error_that_says_so(
    emu: Emulator, workers: list[Worker]
) -> None:
    words = [f"w{i} " for i in range(400)]
    emu.script(Reply(text=words, delay=0.02))
    generator, other = workers[0], workers[1]
    own = post_chat(At(generator.url))
    own.wait_for(4)
    chat = own.headers["x-streamwrap-chat-id"] if own.headers else ""
    watcher = resume(At(other.url), chat=chat)
    watcher.wait_for(6)
    generator.kill()
    watcher.wait()
    final = watcher.chunks[-1]
    assert final["type"] == "error" and "was lost: the process generating it stopped" in final["errorText"]
    assert watcher.events[-1][1] == "[DONE]"
    assert 0 < len(watcher.text) < len("".join(words)) and "".join(words).startswith(watcher.text)
    assert watcher.seqs == list(range(len(watcher.seqs)))
    # A later resume on any worker: the same partial text and the same end, never more.
    again = resume(At(workers[2].url), chat=chat).wait()
    if again.status == 200:
        assert again.text == watcher.text and again.chunks[-1]["type"] == "error"


def test_a_killed_reading_worker_is_resumed_elsewhere_exactly(emu: Emulator, workers: list[Worker]) -> None:
    words = [f"w{i} " for i in range(60)]
    emu.script(Reply(text=words, delay=0.02))
    own = post_chat(At(workers[0].url), stop_after=2).wait()
    chat = own.headers["x-streamwrap-chat-id"] if own.headers else ""
    reader = resume(At(workers[1].url), chat=chat, last_event_id=own.last_event_id)
    reader.wait_for(5)
    workers[1].kill()
    reader.wait()
    rest = resume(At(workers[2].url), chat=chat, last_event_id=reader.last_event_id).wait()
    text = own.text + reader.text + rest.text
    seqs = own.seqs + reader.seqs + rest.seqs
    assert text == "".join(words)
    assert seqs == list(range(len(seqs)))


def test_redis_unreachable_mid_reply(emu: Emulator, workers: list[Worker], redis_server: RedisServer) -> None:
    words = [f"w{i} " for i in range(80)]
    emu.script(Reply(text=words, delay=0.02), Reply(text=["back"], delay=0.02))
    own = post_chat(At(workers[0].url))
    own.wait_for(4)
    chat = own.headers["x-streamwrap-chat-id"] if own.headers else ""
    redis_server.stop()
    # The generator serves its own client to the end.
    own.wait()
    assert own.text == "".join(words) and own.chunks[-1]["type"] == "finish"
    assert own.seqs == list(range(len(own.seqs)))
    # Resumption is reported unavailable, clearly.
    got = httpx.get(f"{workers[1].url}/api/chat/{chat}/stream")
    assert got.status_code == 503 and got.json()["error"]["code"] == "store_unavailable"
    # Logged once, not per chunk; nothing crashed.
    logged = [line for line in workers[0].stderr if "unreachable" in line]
    assert len(logged) == 1, workers[0].stderr
    assert all(w.process.poll() is None for w in workers)
    # Redis returns: new replies use it again.
    redis_server.start()
    second = post_chat(At(workers[0].url), chat=chat_id(99), stop_after=1).wait()
    rest = resume(
        At(workers[2].url),
        chat=second.headers["x-streamwrap-chat-id"] if second.headers else "",
        last_event_id=second.last_event_id,
    ).wait()
    assert second.text + rest.text == "back"
    assert rest.chunks[-1]["type"] == "finish"


def test_serve_with_workers_shares_replies_through_redis(emu: Emulator, redis_server: RedisServer) -> None:
    from tests.web.test_serve import Serving

    words = [f"w{i} " for i in range(40)]
    emu.script(Reply(text=words, delay=0.02))
    serving = Serving(
        [
            "--base-url",
            emu.openai_base_url,
            "--model-name",
            "m",
            "--port",
            "0",
            "--redis",
            redis_server.url,
            "--workers",
            "3",
            "--quiet",
        ],
        env={"OPENAI_API_KEY": "x"},
    )
    try:
        url = serving.wait_for(r"serving at (http://\S+)/")[1]
        children = Path(f"/proc/{serving.process.pid}/task/{serving.process.pid}/children")
        pids = children.read_text().split()
        assert len(pids) == 3, pids
        # Each connection goes to whichever worker accepts it: a reply read in pieces
        # over several connections is still exact.
        chain = [post_chat(At(url), stop_after=3).wait()]
        chat = chain[0].headers["x-streamwrap-chat-id"] if chain[0].headers else ""
        while chain[-1].events[-1][1] != "[DONE]":
            chain.append(
                resume(At(url), chat=chat, last_event_id=chain[-1].last_event_id, stop_after=5).wait()
            )
        assert "".join(r.text for r in chain) == "".join(words)
        seqs = [s for r in chain for s in r.seqs]
        assert seqs == list(range(len(seqs)))
    finally:
        code = serving.interrupt()
    assert code == 0, serving.stderr
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
