"""Ctrl-C: a real SIGINT sent to real processes (``streamwrap chat``, ``streamwrap serve``, a
program using ``call_sync``) at several points of a reply, for each kind of model source:
the emulator speaking the OpenAI dialect on 127.0.0.1, and the embedded local model run
in-process by llama.cpp (skipped where it is not installed).

Each point is reached by watching the child from outside, as a user would: its output, the
emulator's record of requests, and ``/proc/<pid>/maps`` (the GGUF file is mapped once
llama.cpp has loaded the model). ``STREAMWRAP_SIGINT_RUNS`` sets how many times each case
runs (default 2, to keep CI quick; ``-s`` prints the exit latencies measured).
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from streamwrap._providers._default_model import ENV_PROVIDERS as _ENV_PROVIDERS
from streamwrap._providers.llamacpp._wrapper import embedded_model_path, local_runtime_installed
from streamwrap.testing import Emulator, Reply
from tests.support.processes import sigint_as_in_a_terminal

RUNS = int(os.environ.get("STREAMWRAP_SIGINT_RUNS", "2"))
# From the signal to the process's end. A person at a terminal notices half a second.
EXIT_SECONDS = 0.5
# xllamacpp builds its llama.cpp server (the model's load, 0.35-0.5 s for SmolLM2 on a quiet
# machine) without releasing the GIL: a Ctrl-C landing then is handled only when the load
# returns, so a signal that may land during the load gets the load's time on top of
# EXIT_SECONDS. That is "loading-late", and also the "before-first-token" points: their mark
# (the GGUF file mapped) comes at the start of the load. The load slows down with the
# machine's load (1.8 s end to end seen on a busy 2-core machine): 2 s is allowed. A Ctrl-C
# that waited for the reply instead would take the long prompt and 400 tokens, far longer.
LOAD_HOLDS_GIL_SECONDS = 2.0
LOCAL_POINTS_IN_THE_LOAD = ("loading-late", "before-first-token", "before-first-token-late")
PROGRAM_EXIT_SECONDS = 1.5  # the old code took 2.3 s (and crashed) with a local model
LOCAL_INSTALLED = local_runtime_installed() and embedded_model_path() is not None
NEEDS_LOCAL = pytest.mark.skipif(
    not LOCAL_INSTALLED, reason="needs pip install 'streamwrap[local]' (xllamacpp) and streamwrap pull"
)
# Long enough that llama.cpp evaluates it for a good while before the first token.
LONG_PROMPT = "Summarise this text in one word. " + " ".join(
    f"Paragraph {i}: the quick brown fox jumps over the lazy dog near the river bank." for i in range(40)
)
STORY_PROMPT = "Write a long story about a dragon who learns to bake bread."
EMULATOR_TEXT = [f"word{i} " for i in range(200)]
PROVIDER_ENV = (
    *(variable for variable, _ in _ENV_PROVIDERS),
    "OPENAI_BASE_URL",
    "OLLAMA_HOST",
    "STREAMWRAP_MODEL",
)


def child_env() -> dict[str, str]:
    """No API key and no Ollama: the model is the one the command line names."""
    return {k: v for k, v in os.environ.items() if k not in PROVIDER_ENV} | {"OLLAMA_HOST": "127.0.0.1:9"}


def _start_child() -> None:
    # A crash still shows in the return code (-11, -6); it just leaves no file behind.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    sigint_as_in_a_terminal()


class Child:
    """A process whose output is collected as it comes, and whose end is timed."""

    def __init__(self, args: list[str]) -> None:
        self.process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=child_env(),
            preexec_fn=_start_child,
        )
        self._out = bytearray()
        self._err = bytearray()
        self._news = threading.Condition()
        self.ended_at: float | None = None
        assert self.process.stdout is not None and self.process.stderr is not None
        self._readers = [
            threading.Thread(target=self._read, args=(self.process.stdout.fileno(), self._out), daemon=True),
            threading.Thread(target=self._read, args=(self.process.stderr.fileno(), self._err), daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        # A blocking wait in a thread of its own times the end exactly (Popen.wait(timeout)
        # polls, up to 50 ms apart).
        self._waiter = threading.Thread(target=self._wait, daemon=True)
        self._waiter.start()

    def _read(self, fd: int, into: bytearray) -> None:
        while chunk := os.read(fd, 65536):
            with self._news:
                into.extend(chunk)
                self._news.notify_all()

    def _wait(self) -> None:
        self.process.wait()
        self.ended_at = time.monotonic()
        with self._news:
            self._news.notify_all()

    @property
    def stdout(self) -> str:
        return self._out.decode(errors="replace")

    @property
    def stderr(self) -> str:
        return self._err.decode(errors="replace")

    def wait_until(self, what: str, predicate: Callable[[], bool], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        with self._news:
            while not predicate():
                if self.ended_at is not None:
                    raise AssertionError(f"exited {self.process.returncode} before {what}:\n{self.stderr}")
                if time.monotonic() > deadline:
                    raise AssertionError(f"no {what} within {timeout} s:\n{self.stderr}")
                self._news.wait(0.01)

    def has_stdout(self) -> bool:
        return bool(self._out)

    def wait_for_stderr(self, text: str, what: str) -> None:
        self.wait_until(what, lambda: text in self.stderr)

    def model_mapped(self) -> bool:
        """Whether llama.cpp has mapped the GGUF file: the model is loaded or loading."""
        try:
            with open(f"/proc/{self.process.pid}/maps") as maps:
                return ".gguf" in maps.read()
        except OSError:
            return False

    def interrupt(self, times: int = 1) -> tuple[int, float]:
        """Send SIGINT (``times`` times, 20 ms apart, as an impatient person would); return the
        exit status and the seconds from the first signal to the end."""
        sent = time.monotonic()
        for n in range(times):
            if n:
                time.sleep(0.02)
            if self.ended_at is None:
                self.process.send_signal(signal.SIGINT)
        self._waiter.join(20)
        if self.ended_at is None:
            self.process.kill()
            self._waiter.join(5)
            raise AssertionError(f"still running 20 s after SIGINT:\n{self.stderr}")
        for reader in self._readers:
            reader.join(5)
        return self.process.returncode, self.ended_at - sent

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self._waiter.join(5)


@pytest.fixture
def children() -> Iterator[Callable[[list[str]], Child]]:
    started: list[Child] = []

    def start(args: list[str]) -> Child:
        child = Child(args)
        started.append(child)
        return child

    yield start
    for child in started:
        child.close()


def assert_clean(
    child: Child, code: int, seconds: float, expected_code: int, within: float = EXIT_SECONDS
) -> None:
    crashed = code < 0 and f"killed by signal {-code} ({signal.Signals(-code).name})"
    assert code == expected_code, f"exit {crashed or code}, not {expected_code}:\n{child.stderr}"
    for mark in ("Traceback", "Fatal Python error", "Exception ignored", "Segmentation fault"):
        assert mark not in child.stderr, child.stderr
    assert seconds < within, f"{seconds:.3f} s from SIGINT to exit:\n{child.stderr}"


def exit_within(kind: str, point: str) -> float:
    """How soon a Ctrl-C must end the call at ``point``: at once, unless the model's load may
    hold the GIL there."""
    in_the_load = kind == "local" and point in LOCAL_POINTS_IN_THE_LOAD
    return EXIT_SECONDS + (LOAD_HOLDS_GIL_SECONDS if in_the_load else 0.0)


def report(case: str, seconds: list[float], what: str = "exit") -> None:
    print(
        f"\n{case}: {len(seconds)} runs, {what} after SIGINT: worst {max(seconds):.3f} s, "
        f"best {min(seconds):.3f} s"
    )


# -- the sources: how each command line names its model, and how a point is reached ------------


@dataclass
class Source:
    name: str
    args: list[str]  # the model options of `streamwrap chat` / `serve`
    config: dict[str, Any]  # the same model as a load_model() config
    before_first_token: Callable[[Child], bool]  # the request is out, no token has come back


def emulator_source(emu: Emulator, *, first_delay: float = 0.0) -> Source:
    emu.reset()
    for _ in range(10):
        emu.script(Reply(text=EMULATOR_TEXT, delay=0.05, first_delay=first_delay))
    return Source(
        "emulator",
        ["--model-type", "openai_chat", "--model-name", "m", "--base-url", emu.openai_base_url],
        {
            "model_type": "openai_chat",
            "model_name": "m",
            "base_url": emu.openai_base_url,
            "api_key": "sk-test",
            "max_retries": 0,
        },
        lambda child: bool(emu.requests),
    )


def local_source() -> Source:
    return Source(
        "local",
        ["--model-type", "local_chat", "--model-name", "smollm2"],
        {"model_type": "local_chat", "model_name": "smollm2"},
        Child.model_mapped,
    )


# Where SIGINT lands: as the call starts, and a moment later (the first `import openai`
# takes most of a second, `import xllamacpp` and loading the model a few tenths); once the
# request is out (the emulator has it, or llama.cpp is loading the model), and a moment later
# (the emulator still holds the reply back; llama.cpp evaluates the prompt, for seconds);
# once some text has come out.
POINTS = ("loading", "loading-late", "before-first-token", "before-first-token-late", "mid-stream")
LATE_SECONDS = 0.3


def source_for(kind: str, point: str, emulator: Emulator) -> Source:
    if kind == "local":
        if not LOCAL_INSTALLED:
            pytest.skip("needs pip install 'streamwrap[local]' (xllamacpp) and streamwrap pull")
        return local_source()
    # Before the first token, the emulator holds the reply back; otherwise it starts at once.
    # Until mid-stream, the emulator holds the reply back, and the local model has a long
    # prompt to evaluate: no text can come out before the signal.
    return emulator_source(emulator, first_delay=0.0 if point == "mid-stream" else 30.0)


def prompt_for(kind: str, point: str) -> str:
    return STORY_PROMPT if kind == "emulator" or point == "mid-stream" else LONG_PROMPT


def reach(
    point: str,
    child: Child,
    source: Source,
    has_text: Callable[[], bool],
    request_out: Callable[[], bool] | None = None,
) -> None:
    """Wait until the call has reached ``point`` (the call itself has started)."""
    if point.startswith("before-first-token"):
        child.wait_until("the request", request_out or partial(source.before_first_token, child))
    elif point == "mid-stream":
        child.wait_until("the first text", has_text)
    if point.endswith("-late"):
        time.sleep(LATE_SECONDS)


# -- streamwrap chat ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["emulator", "local"])
@pytest.mark.parametrize("point", POINTS)
def test_ctrl_c_stops_chat_with_130_at_once(
    emulator: Emulator, children: Callable[[list[str]], Child], kind: str, point: str
) -> None:
    seconds = []
    for run in range(RUNS):
        source = source_for(kind, point, emulator)
        child = children(
            [
                sys.executable,
                "-m",
                "streamwrap",
                "chat",
                *source.args,
                "--max-tokens",
                "400",
                prompt_for(kind, point),
            ]
        )
        # The status line comes just before the call: SIGINT then lands while the SDK is
        # imported (import openai takes seconds on a cold machine) or the model loads.
        child.wait_for_stderr("streamwrap: ", "the status line")
        reach(point, child, source, child.has_stdout)
        shown = child.stdout
        code, took = child.interrupt(times=1 + run % 2)  # a second Ctrl-C changes nothing
        within = exit_within(kind, point)
        assert_clean(child, code, took, 130, within=within)
        assert child.stderr.rstrip("\n").endswith("streamwrap: interrupted"), child.stderr
        assert child.stdout.startswith(shown)  # what was printed stays printed
        if point == "mid-stream":
            assert shown.strip() and len(child.stdout) < 2000, child.stdout
        else:
            assert child.stdout.strip() == "", child.stdout  # the point was indeed before the first token
        seconds.append(took)
    report(f"chat {kind} {point}", seconds)


# -- streamwrap serve ---------------------------------------------------------------------------


class Reader:
    """A client reading a reply in a thread: plain text (``/api/chat/text``) or the UI
    message stream (``/api/chat``, SSE); ``has_text`` once some of the answer has come."""

    def __init__(self, url: str, route: str, prompt: str) -> None:
        self.body = ""
        self.route = route
        # The server has answered with a status: the model took the request (the local
        # model sends its first chunk, the assistant's role, as it takes the prompt).
        self.answered = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(url + route, prompt), daemon=True)
        self.thread.start()

    def has_text(self) -> bool:
        return "text-delta" in self.body if self.route == "api/chat" else self.body != ""

    def _run(self, url: str, prompt: str) -> None:
        try:
            with httpx.stream("POST", url, json={"prompt": prompt}, timeout=60) as reply:
                self.answered.set()
                for piece in reply.iter_text():
                    self.body += piece
        except httpx.HTTPError:
            pass  # the server stopped: a text reply is cut off, as it should be


@pytest.mark.parametrize("kind", ["emulator", "local"])
@pytest.mark.parametrize("point", ("idle", *POINTS[2:]))
def test_ctrl_c_stops_serve_cleanly_with_0(
    emulator: Emulator, children: Callable[[list[str]], Child], kind: str, point: str
) -> None:
    seconds = []
    for run in range(RUNS):
        source = source_for(kind, point, emulator)
        child = children([sys.executable, "-m", "streamwrap", "serve", *source.args, "--port", "0", "-q"])
        child.wait_for_stderr("serving at http", "serving")
        url = child.stderr.split("serving at ", 1)[1].split()[0]
        if point != "idle":
            reader = Reader(url, ("api/chat/text", "api/chat")[run % 2], prompt_for(kind, point))
            # serve loads the local model before it listens: that the model is mapped says
            # nothing about the request. The emulator holds back its answer, headers too.
            reach(point, child, source, reader.has_text, reader.answered.is_set if kind == "local" else None)
        code, took = child.interrupt()
        assert_clean(child, code, took, 0)
        assert "streamwrap: stopped" in child.stderr
        seconds.append(took)
    report(f"serve {kind} {point}", seconds)


# -- a program using call_sync ------------------------------------------------------------------

PROGRAM = textwrap.dedent(
    """
    import json, sys, time
    import streamwrap

    model = streamwrap.load_model(json.loads(sys.argv[1]))
    try:
        print("calling", file=sys.stderr, flush=True)
        response = model.call_sync(sys.argv[2], stream=True, max_tokens=400)
        seen = ""
        for _, text in response.stream_sync():
            print(text[len(seen):], end="", flush=True)
            seen = text
    except KeyboardInterrupt:
        # To a file of its own: the moment it was caught, apart from the program's output.
        with open(sys.argv[3], "w") as caught:
            caught.write(str(time.monotonic()))
        sys.exit(3)
    """
)


@pytest.mark.parametrize("kind", ["emulator", "local"])
@pytest.mark.parametrize("point", POINTS)
def test_ctrl_c_reaches_a_call_sync_program_at_once(
    emulator: Emulator, children: Callable[[list[str]], Child], kind: str, point: str, tmp_path: Path
) -> None:
    seconds: list[float] = []
    exits: list[float] = []
    for run in range(RUNS):
        source = source_for(kind, point, emulator)
        marker = tmp_path / f"caught-{run}"
        child = children(
            [sys.executable, "-c", PROGRAM, json.dumps(source.config), prompt_for(kind, point), str(marker)]
        )
        child.wait_for_stderr("calling", "the call")
        reach(point, child, source, child.has_stdout)
        sent = time.monotonic()
        code, took = child.interrupt()
        # The exit itself includes the interpreter's teardown of the program's modules
        # (0.3-0.4 s with openai loaded): the program's business, only bounded here.
        assert_clean(child, code, took, 3, within=PROGRAM_EXIT_SECONDS)
        caught = float(marker.read_text()) - sent
        within = exit_within(kind, point)
        assert caught < within, f"KeyboardInterrupt {caught:.3f} s after SIGINT"
        seconds.append(caught)
        exits.append(took)
    report(f"call_sync {kind} {point}: KeyboardInterrupt", seconds, "caught")
    report(f"call_sync {kind} {point}", exits)


# -- the waits themselves -----------------------------------------------------------------------

WAITER_PROGRAM = textwrap.dedent(
    """
    import signal, sys, threading, time
    from streamwrap import _waiters

    # Raise only inside the wait: this tests the wait, not the loop around it.
    armed = False
    def interrupt(signum, frame):
        if armed:
            raise KeyboardInterrupt
    signal.signal(signal.SIGINT, interrupt)

    current = [None]
    def waker():  # wakes whichever wait is current, every 0.2 ms
        while True:
            time.sleep(0.0002)
            if current[0] is not None:
                current[0]()
    threading.Thread(target=waker, daemon=True).start()

    counts = {"woken": 0, "interrupted": 0, "broken": 0}
    end = time.monotonic() + float(sys.argv[2])
    print("ready", flush=True)
    while time.monotonic() < end:
        if sys.argv[1] == "thread_waiter":
            wake, wait = _waiters.thread_waiter()
        else:
            latch = _waiters.Latch()
            wake, wait = latch.set, lambda: latch.wait(0.5)
        current[0] = wake
        try:
            armed = True
            wait()
            counts["woken"] += 1
        except KeyboardInterrupt:
            counts["interrupted"] += 1
        except RuntimeError:  # "release unlocked lock", and the like
            counts["broken"] += 1
        finally:
            armed = False
    print(counts, flush=True)
    """
)


@pytest.mark.parametrize("waiter", ["thread_waiter", "latch"])
def test_ctrl_c_inside_a_wait_leaves_the_wait_intact(
    children: Callable[[list[str]], Child], waiter: str
) -> None:
    """KeyboardInterrupt raised inside a blocking wait, thousands of times: never a
    RuntimeError, never a wait or a waker stuck on a lock left taken."""
    child = children([sys.executable, "-c", WAITER_PROGRAM, waiter, "4"])
    child.wait_until("the program", child.has_stdout)
    sent = 0
    deadline = time.monotonic() + 20
    while "woken" not in child.stdout and child.ended_at is None and time.monotonic() < deadline:
        # Bursts: a signal that arrives while the wait recovers from the previous one hits
        # it where threading.Event's wait breaks (5 runs in 6 before the fix); the pauses
        # let waits complete too.
        burst = time.monotonic() + 0.002
        while time.monotonic() < burst:
            # Not os.kill: the program may end, and be reaped, within a burst (send_signal
            # then does nothing).
            child.process.send_signal(signal.SIGINT)
            sent += 1
        time.sleep(0.001)
    assert "woken" in child.stdout, f"stuck after {sent} signals:\n{child.stdout}{child.stderr}"
    counts = json.loads(child.stdout.splitlines()[-1].replace("'", '"'))
    print(f"\n{waiter}: {sent} signals, {counts}")
    assert counts["broken"] == 0 and counts["interrupted"] > 100 and counts["woken"] > 100, counts
