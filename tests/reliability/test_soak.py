"""Soak: 2,000 streams, 100 at a time, across the four wire formats, 10% of them faulty.

Every stream has its own seeded script (text, sometimes reasoning and tool calls, usage,
pacing) and, one time in ten, a fault drawn from every :class:`~streamwrap.testing.Fault`
kind and the HTTP statuses 429, 500 and 503. Each outcome is checked exactly: a success
streams exactly the scripted prefixes and ends with the scripted text, reasoning, tool
calls, usage and finish reason; a failure raises its typed error carrying exactly the text
sent before the fault. The figures (wall time, streams/s, outcomes, peak open connections,
peak RSS growth) are printed to the terminal, and recorded as junit properties.

Choices, and why:

* Retries are on (``max_retries=1``), and only HTTP statuses can use them: half of the
  status faults fail once and then succeed (the response's ``attempts`` show both), the
  other half fail twice and raise the typed HTTP error at the call. The servers send
  ``Retry-After: 0`` so that no backoff sleeps. A mid-stream fault must never be retried
  (it would duplicate output): the emulator must receive exactly the scripted requests.
* The emulator answers requests from one FIFO queue, whatever the dialect, so a stream
  scripts its replies and sends its request under a lock, held until the HTTP status is
  in; the bodies then stream concurrently, up to 100 at once. That is what makes every
  stream's expected outcome exact, whatever order the scheduler picks.
* Stalls are either short (the stream carries on and succeeds) or longer than the models'
  ``first_token_timeout``/``idle_timeout`` of 10 s (a ``StreamTimeoutError``). The margins
  are wide (0.3 s against 10 s, 10 s against 30 s) so that a slow machine changes the
  wall time, never an outcome. Nothing asserts on speed.
* asyncio only: the soak loads the library's own runtime thread and the emulator, which are
  the same whatever the caller's library; the caller's side (asyncio and trio) is covered
  by the rest of the suite, including the thousand-stream leak test, on both backends.
"""

from __future__ import annotations

import dataclasses
import gc
import itertools
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import anyio
import orjson
import pytest

import streamwrap
from streamwrap._channel import Channel
from streamwrap.testing import Emulator, Fault, Reply, ToolCallSpec
from tests.support import faults, providers

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

SEED = 424242
STREAMS = 2000
CONCURRENCY = 100
FAULT_RATE = 0.10
TIMEOUT = 10.0  # first_token_timeout and idle_timeout of the soak's models
SHORT_STALL = 0.3
LONG_STALL = 30.0
KEY = "sk-soak-test-secret-0123456789"

# One wrapper per wire format the emulator speaks.
MODELS = [p.model_type for p in providers.ONE_PER_DIALECT]
# Every mid-stream fault, then the HTTP statuses.
FAULT_KINDS = (*faults.FAULT_KINDS, "http_429", "http_500", "http_503")
TOOLS = {
    "get_weather": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    "add": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}},
}
TOOL_SCHEMAS = [{"type": "function", "function": {"name": n, "parameters": p}} for n, p in TOOLS.items()]


@dataclass(frozen=True)
class Case:
    """One stream: what to script, and exactly what must come out."""

    index: int
    model_type: str
    replies: tuple[Reply, ...]
    text: tuple[str, ...]
    reasoning: tuple[str, ...]
    calls: tuple[tuple[str, dict[str, Any]], ...]
    usage: tuple[int, int]
    label: str  # "ok", or the fault (with its variant)
    error: type[streamwrap.StreamwrapError] | None = None  # None: must succeed
    sent: int = 0  # text chunks sent before a mid-stream fault
    statuses: tuple[int, ...] = (200,)  # the attempts of a success
    code: str | None = None  # of a timeout
    message: str | None = None  # of a provider's error event
    status: int | None = None  # of an HTTP error

    @property
    def partial(self) -> str:
        """The text a mid-stream failure must carry."""
        return "".join(self.text[: self.sent])


def build(index: int, rng: random.Random) -> Case:
    """Draw one stream's script and its expected outcome."""
    model_type = rng.choice(sorted(MODELS))
    text = tuple(f"s{index}w{j} " for j in range(rng.randint(2, 12)))
    reasoning = tuple(f"r{index}.{j} " for j in range(rng.randint(1, 3))) if rng.random() < 0.3 else ()
    calls: tuple[tuple[str, dict[str, Any]], ...] = ()
    if rng.random() < 0.2:
        calls = (("get_weather", {"city": f"c{index}"}),)
        if rng.random() < 0.5:
            calls += (("add", {"a": index, "b": rng.randint(0, 99)}),)
    usage = (rng.randint(1, 500), rng.randint(len(reasoning) + 1, 900))
    reply = Reply(
        text=list(text),
        reasoning=list(reasoning),
        tool_calls=[ToolCallSpec(name, orjson.dumps(args).decode()) for name, args in calls],
        usage=usage,
        # Streams last about a second on average: long enough that 100 are in flight at
        # once although requests are sent one at a time (see the module's docstring).
        delay=rng.choice((0.05, 0.1, 0.2, 0.3)),
    )
    case = Case(index, model_type, (reply,), text, reasoning, calls, usage, "ok")
    if rng.random() >= FAULT_RATE:
        return case
    kind = rng.choice(FAULT_KINDS)
    # After how many content chunks (reasoning, then text, then tool calls) the fault comes;
    # one past the text places it among the tool calls or before the finish.
    after = rng.randint(0, len(reasoning) + len(text) + 1)
    sent = min(len(text), max(0, after - len(reasoning)))
    replace = dataclasses.replace
    if kind.startswith("http_"):
        status = int(kind[5:])
        failing = Reply(status=status, headers={"Retry-After": "0"})
        if rng.random() < 0.5:  # fails once, then the retry succeeds
            return replace(case, replies=(failing, reply), label=f"{kind} retried", statuses=(status, 200))
        return replace(
            case,
            replies=(failing, failing),
            label=f"{kind} twice",
            error=faults.HTTP_ERRORS[status],
            status=status,
        )
    if kind == "slow_trickle":
        return replace(case, replies=(replace(reply, fault=Fault.slow_trickle(0.0002)),), label=kind)
    if kind in ("stall", "stall_with_keepalive"):
        long = rng.random() < 0.5
        seconds = LONG_STALL if long else SHORT_STALL
        fault = (
            Fault.stall_after(after, seconds)
            if kind == "stall"
            else Fault.stall_with_keepalive_after(after, seconds, every=0.05 if not long else 0.5)
        )
        if not long:
            return replace(case, replies=(replace(reply, fault=fault),), label=f"{kind} short")
        return replace(
            case,
            replies=(replace(reply, fault=fault),),
            label=f"{kind} long",
            error=faults.STREAM_ERRORS[kind],
            sent=sent,
            # A content chunk (reasoning counts) before the stall means the first token came.
            code="idle_timeout" if after > 0 else "first_token_timeout",
        )
    message = f"soak fault {index}"
    details = {"message": message} if kind in ("error_event", "inband_error") else {}
    fault = faults.after(kind, after, **details)
    return replace(
        case,
        replies=(replace(reply, fault=fault),),
        label=kind,
        error=faults.STREAM_ERRORS[kind],
        sent=sent,
        message=message if kind in ("error_event", "inband_error") else None,
    )


def prefixes(chunks: tuple[str, ...]) -> list[str]:
    return list(itertools.accumulate(chunks))


@dataclass
class Figures:
    """What the soak measures as it runs."""

    outcomes: Counter[str] = field(default_factory=Counter)
    max_open: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    rss_peak_kb: int = 0


def live_responses() -> set[int]:
    """The ids of every response and channel object in the process."""
    return {id(o) for o in gc.get_objects() if isinstance(o, (streamwrap.ModelResponse, Channel))}


def rss_kb() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def check(
    case: Case, emu: Emulator, model: streamwrap.ModelWrapper, lock: anyio.Lock, figures: Figures
) -> None:
    """Run one stream and compare everything it produced with what ``case`` expects."""
    where = f"stream {case.index} ({case.model_type}, {case.label})"
    tools = TOOL_SCHEMAS if case.calls else None
    async with lock:
        emu.script(*case.replies)
        try:
            response = await model(f"soak {case.index}", tools=tools)
        except streamwrap.ProviderHTTPError as exc:
            assert type(exc) is case.error, f"{where}: {exc!r}"
            assert exc.status_code == case.status, where
            figures.outcomes[type(exc).__name__] += 1
            return
    assert case.error is None or issubclass(case.error, streamwrap.StreamError), (
        f"{where}: the call succeeded"
    )
    items: list[tuple[bool, str]] = []
    figures.in_flight += 1
    figures.max_in_flight = max(figures.max_in_flight, figures.in_flight)
    try:
        async for is_last, text in response.stream:
            items.append((is_last, text))
    except streamwrap.StreamError as exc:
        assert case.error is not None, f"{where}: {exc!r}"
        assert type(exc) is case.error, f"{where}: {exc!r}"
        assert exc.partial_text == case.partial, f"{where}: {exc!r}"
        assert response.partial_text == case.partial, where
        assert items == [(False, p) for p in prefixes(case.text[: case.sent])], where
        assert response.finish_reason == "error", where
        if case.code is not None:
            assert exc.code == case.code, f"{where}: {exc!r}"
        if case.message is not None:
            assert exc.message == case.message, f"{where}: {exc!r}"
        figures.outcomes[type(exc).__name__] += 1
        return
    finally:
        figures.in_flight -= 1
    assert case.error is None, f"{where}: expected {case.error.__name__}, got {items[-1:]}"
    full = "".join(case.text)
    assert items == [(False, p) for p in prefixes(case.text)] + [(True, full)], where
    assert response.text == full, where
    assert response.reasoning == ("".join(case.reasoning) or None), where
    assert [(c.name, c.parsed_arguments()) for c in response.tool_calls] == list(case.calls), where
    usage = response.usage
    assert (usage.input_tokens, usage.output_tokens, usage.source) == (*case.usage, "provider"), (
        f"{where}: {usage}"
    )
    assert response.finish_reason == ("tool_calls" if case.calls else "stop"), where
    assert [a["status"] for a in response.attempts] == list(case.statuses), where
    figures.outcomes["success"] += 1


def make_models(emu: Emulator) -> dict[str, streamwrap.ModelWrapper]:
    return {
        model_type: providers.make_model(
            emu, model_type, api_key=KEY, max_retries=1, first_token_timeout=TIMEOUT, idle_timeout=TIMEOUT
        )
        for model_type in MODELS
    }


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_soak(own_emu: Emulator, capsys: pytest.CaptureFixture[str], record_property: Any) -> None:
    emu = own_emu
    # Anything not scripted (a wrong retry, say) gets a teapot, which no case expects.
    emu.default = Reply(status=418)
    rng = random.Random(SEED)
    cases = [build(i, rng) for i in range(STREAMS)]
    models = make_models(emu)
    # Warm up (SDK imports, clients, the runtime thread), so that the RSS growth measured
    # is the soak's own.
    for model in models.values():
        emu.script(Reply(text="warm"))
        assert await (await model("warm up")).aread() == "warm"
    emu.reset()
    connections_before = emu.total_connections
    figures = Figures()
    lock = anyio.Lock()
    gc.collect()
    alive_before = live_responses()
    rss_before = rss_kb()
    figures.rss_peak_kb = rss_before
    done = anyio.Event()

    async def sample() -> None:
        while not done.is_set():
            figures.max_open = max(figures.max_open, emu.open_connections)
            figures.rss_peak_kb = max(figures.rss_peak_kb, rss_kb())
            await anyio.sleep(0.005)

    queue = iter(cases)

    async def worker() -> None:
        for case in queue:
            await check(case, emu, models[case.model_type], lock, figures)

    started = time.monotonic()
    async with anyio.create_task_group() as tg:
        tg.start_soon(sample)
        async with anyio.create_task_group() as workers:
            for _ in range(CONCURRENCY):
                workers.start_soon(worker)
        done.set()
    wall = time.monotonic() - started

    expected_requests = sum(len(case.replies) for case in cases)
    assert len(emu.requests) == expected_requests, "a request was sent that no case scripted (a retry?)"
    assert sum(figures.outcomes.values()) == STREAMS
    assert figures.outcomes["success"] == sum(1 for case in cases if case.error is None)
    # Nothing outlives its stream, failed ones included: no response, no channel.
    gc.collect()
    alive = live_responses() - alive_before
    assert not alive, f"{len(alive)} responses and channels are still alive"
    for model in models.values():
        await model.aclose()

    labels = Counter(case.label for case in cases)
    lines = [
        f"soak: {STREAMS} streams, {CONCURRENCY} concurrent, seed {SEED}: "
        f"{wall:.1f} s wall, {STREAMS / wall:.0f} streams/s",
        "  outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(figures.outcomes.items())),
        "  scripts: " + ", ".join(f"{k} {v}" for k, v in sorted(labels.items())),
        "  dialects: "
        + ", ".join(f"{k} {v}" for k, v in sorted(Counter(c.model_type for c in cases).items())),
        f"  requests {expected_requests}, connections opened {emu.total_connections - connections_before}, "
        f"max open at once {figures.max_open}, max streams in flight {figures.max_in_flight}, "
        f"peak RSS +{(figures.rss_peak_kb - rss_before) / 1024:.1f} MiB (from {rss_before / 1024:.0f} MiB)",
    ]
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    record_property("soak_wall_seconds", round(wall, 2))
    record_property("soak_streams_per_second", round(STREAMS / wall, 1))
    record_property("soak_outcomes", dict(figures.outcomes))
    record_property("soak_max_open_connections", figures.max_open)
    record_property("soak_max_streams_in_flight", figures.max_in_flight)
    record_property("soak_peak_rss_delta_kib", figures.rss_peak_kb - rss_before)
