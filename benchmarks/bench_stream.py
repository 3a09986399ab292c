# ruff: noqa: RUF001  (the multiplication sign and en dash in printed tables are meant)
"""Streaming benchmarks for streamwrap against the openai SDK and a hand-written floor.

LiteLLM (which needs openai 2.x) is measured by ``bench_litellm.py``; the native-protocol
wrappers against their own SDKs by ``bench_providers.py``.

Run ``python benchmarks/bench_stream.py --help`` for the flags; README.md beside this file
explains every number and the methodology. Sections:

1. ``single``: one stream of ``--chunks`` chunks; in-process CPU per chunk and chunks/s.
2. ``concurrent``: ``--streams`` concurrent streams of ``--stream-chunks`` chunks each.
3. ``import``: ``import streamwrap`` time, and that it imports no provider SDK.
4. ``accumulate``: the cost of ``text_so_far`` (``response.stream``) against
   ``response.deltas()`` over an already finished in-memory response.

The server is streamwrap's provider emulator (``python -m streamwrap.testing``) in a
separate process, so its CPU time is not counted; the same emulator process serves every
contender of a section the same bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

SECTIONS = ("single", "concurrent", "import", "accumulate")
PROVIDER_SDKS = ("openai", "httpx", "httpx2", "litellm", "google", "dashscope")
MODEL = "emulator-1"
MESSAGES = [{"role": "user", "content": "Stream me a long answer."}]
# Targets the project set for streamwrap's per-chunk CPU (see README.md).
TARGET_VS_OPENAI = 0.5
TARGET_VS_FLOOR = 3.0
TARGET_IMPORT_MS = 100.0


# --------------------------------------------------------------------------------------
# The emulator, in its own process
# --------------------------------------------------------------------------------------


class EmulatorProcess:
    """``python -m streamwrap.testing`` in a child process, serving one fixed reply.

    ``--usage`` makes every stream end with a usage chunk whether or not the request asked
    for one (streamwrap asks, the openai SDK and the floor do not), so that every contender
    receives byte-for-byte the same kind of stream.
    """

    def __init__(self, chunks: int, chunk_text: str) -> None:
        self.chunks = chunks
        self.chunk_text = chunk_text
        self._proc: subprocess.Popen[str] | None = None
        self.url = ""

    def __enter__(self) -> EmulatorProcess:
        cmd = [
            sys.executable,
            "-m",
            "streamwrap.testing",
            "--port",
            "0",
            "--chunks",
            str(self.chunks),
            "--chunk-text",
            self.chunk_text,
            "--usage",
        ]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        prefix = "streamwrap-emulator listening on "
        if not line.startswith(prefix):
            self.__exit__(None, None, None)
            raise RuntimeError(f"the emulator did not start (it printed {line!r})")
        self.url = line[len(prefix) :].strip()
        return self

    def __exit__(self, *exc: object) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def cpu_seconds(self) -> float | None:
        """CPU time used so far by the emulator process (Linux only, 10 ms resolution).

        Used to tell whether a run was limited by the server: emulator CPU close to the
        wall time means the emulator, not the client, set the pace.
        """
        if self._proc is None:
            return None
        try:
            with open(f"/proc/{self._proc.pid}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            return None
        fields = stat[stat.rfind(b")") + 2 :].split()
        utime, stime = int(fields[11]), int(fields[12])
        return (utime + stime) / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------------------
# Contenders: each consumes one whole stream and checks it got the full text
# --------------------------------------------------------------------------------------


@dataclass
class Contender:
    """One way of consuming the emulator's stream.

    ``consume()`` reads one complete response and raises if its text is not the expected
    text, so no contender can win by skipping work. ``settle()`` waits until work the
    contender started in the background (streamwrap's producer closing its connection on
    the runtime thread) is over, so that it is charged to this contender and not to the
    next one. ``aclose()`` releases the client.
    """

    key: str
    label: str
    consume: Callable[[], Awaitable[None]]
    aclose: Callable[[], Awaitable[None]]
    settle: Callable[[], Awaitable[None]] | None = None


def _check(got: str, expected: str, who: str) -> None:
    """Raise unless ``got`` is exactly the text the emulator sent (not an ``assert``, so
    that ``python -O`` cannot switch the check off)."""
    if got != expected:
        differ = next((i for i, (a, b) in enumerate(zip(got, expected, strict=False)) if a != b), None)
        where = min(len(got), len(expected)) if differ is None else differ
        raise AssertionError(
            f"{who}: received {len(got)} characters, expected {len(expected)}; they differ from index {where}"
        )


def floor_contender(base_url: str, expected: str, pool: int) -> Contender:
    """The floor: raw ``httpx.AsyncClient`` streaming POST, minimal SSE splitting, orjson.

    Deliberately not a complete SSE decoder (LF line endings and ``data: `` lines only, no
    comments, no multi-line data, no error events): it is the least work that extracts the
    text from this emulator's stream, i.e. a lower bound for any real client.
    """
    import httpx

    client = httpx.AsyncClient(
        timeout=60.0, limits=httpx.Limits(max_connections=pool, max_keepalive_connections=pool)
    )
    url = base_url + "/chat/completions"
    body = {"model": MODEL, "messages": MESSAGES, "stream": True}
    loads = orjson.loads

    async def consume() -> None:
        parts: list[str] = []
        tail = b""
        async with client.stream("POST", url, json=body) as response:
            response.raise_for_status()
            async for chunk in response.aiter_bytes():
                lines = (tail + chunk).split(b"\n") if tail else chunk.split(b"\n")
                tail = lines.pop()
                for line in lines:
                    if line[:6] == b"data: " and line != b"data: [DONE]":
                        choices = loads(line[6:])["choices"]
                        if choices:
                            content = choices[0]["delta"].get("content")
                            if content:
                                parts.append(content)
        _check("".join(parts), expected, "floor")

    return Contender("floor", "floor: httpx + minimal SSE + orjson", consume, client.aclose)


def openai_contender(base_url: str, expected: str, pool: int) -> Contender:
    """The openai SDK's own ``AsyncStream`` of pydantic ``ChatCompletionChunk`` objects."""
    import openai

    client = openai.AsyncOpenAI(
        api_key="bench",
        base_url=base_url,
        max_retries=0,
        http_client=_sdk_http_client(pool),
    )

    async def consume() -> None:
        parts: list[str] = []
        messages: Any = MESSAGES  # the SDK wants its TypedDicts; the plain dicts are the same on the wire
        stream = await client.chat.completions.create(model=MODEL, messages=messages, stream=True)
        async for chunk in stream:
            if chunk.choices:
                content = chunk.choices[0].delta.content
                if content:
                    parts.append(content)
        _check("".join(parts), expected, "openai")

    return Contender("openai", "openai SDK AsyncStream", consume, client.close)


def streamwrap_contenders(base_url: str, expected: str, pool: int) -> list[Contender]:
    """``openai_chat`` consumed streamwrap's three ways, each with its own wrapper and client."""
    config = {
        "model_type": "openai_chat",
        "model_name": MODEL,
        "stream": True,
        "base_url": base_url,
        "api_key": "bench",
        "max_retries": 0,
    }
    # The same pool as the openai SDK contender gets (the SDK's own default keeps only 100
    # idle connections, which would reconnect half of 200).
    return consuming_contenders(
        lambda: {**config, "client_args": {"http_client": _sdk_http_client(pool)}}, expected, "streamwrap"
    )


def consuming_contenders(
    config: Callable[[], dict[str, Any]],
    expected: str,
    label: str,
    settle: Callable[[], Awaitable[None]] | None = None,
) -> list[Contender]:
    """A streamwrap model (``config()``, one wrapper each) consumed three ways: ``.stream``,
    ``.deltas()`` and ``aread()``. ``settle`` defaults to waiting for the runtime's tasks."""
    import streamwrap

    settle = settle or _streamwrap_settle
    m_stream, m_deltas, m_aread = (streamwrap.load_model(config()) for _ in range(3))

    async def consume_stream() -> None:
        response = await m_stream(MESSAGES)
        text = None
        async for is_last, text_so_far in response.stream:
            if is_last:
                text = text_so_far
        _check(text or "", expected, f"{label} .stream")

    async def consume_deltas() -> None:
        response = await m_deltas(MESSAGES)
        parts: list[str] = []
        async for delta in response.deltas():
            if delta.__class__ is streamwrap.TextDelta:
                parts.append(delta)
        _check("".join(parts), expected, f"{label} .deltas()")

    async def consume_aread() -> None:
        response = await m_aread(MESSAGES)
        _check(await response.aread(), expected, f"{label} aread()")

    return [
        Contender("sw_stream", f"{label} .stream", consume_stream, m_stream.aclose, settle),
        Contender("sw_deltas", f"{label} .deltas()", consume_deltas, m_deltas.aclose, settle),
        Contender("sw_aread", f"{label} aread()", consume_aread, m_aread.aclose, settle),
    ]


def _sdk_http_client(pool: int) -> Any:
    """The openai SDK's default async HTTP client (httpx2), with a pool of ``pool``."""
    import httpx2
    import openai

    return openai.DefaultAsyncHttpxClient(
        limits=httpx2.Limits(max_connections=pool, max_keepalive_connections=pool)
    )


async def _streamwrap_settle() -> None:
    # A response is complete for its consumer as soon as the last delta is in; the producer
    # task then still closes the HTTP response on the runtime thread. Wait for it (private
    # attribute: the set of live producer tasks) so its CPU lands in this contender's sample.
    from streamwrap._runtime import runtime

    deadline = time.monotonic() + 10.0
    while runtime._tasks and time.monotonic() < deadline:
        await asyncio.sleep(0.0005)


def make_contenders(
    base_url: str, expected: str, pool: int, only: set[str] | None
) -> tuple[list[Contender], list[str]]:
    """All contenders available here (filtered by ``only``), and notes on those skipped."""
    notes: list[str] = []
    contenders = [floor_contender(base_url, expected, pool), openai_contender(base_url, expected, pool)]
    contenders += streamwrap_contenders(base_url, expected, pool)
    if only:
        contenders = [c for c in contenders if c.key in only]
    return contenders, notes


# --------------------------------------------------------------------------------------
# Sections 1 and 2: interleaved rounds
# --------------------------------------------------------------------------------------


@dataclass
class Sample:
    cpu_s: float  # process CPU time (all threads of this process), including settle()
    wall_s: float  # until the consumer(s) had the full text; excludes settle()
    server_cpu_s: float | None  # the emulator process's CPU time over the same span
    # Diagnostics from getrusage (whole process, same span as cpu_s; None off POSIX):
    sys_s: float | None = None  # kernel part of cpu_s: syscalls, page faults
    voluntary_switches: int | None = None  # a thread blocked: cross-thread hand-offs show here
    minor_faults: int | None = None  # fresh memory touched


@dataclass
class ContenderResult:
    key: str
    label: str
    samples: list[Sample] = field(default_factory=list)

    def median(self, attr: str) -> float:
        return float(statistics.median(getattr(s, attr) for s in self.samples))


async def _one_sample(contender: Contender, streams: int, emulator: EmulatorProcess) -> Sample:
    # Collect garbage left by the previous contender now, so that it is not charged to this
    # one; collection of this contender's own garbage during the run is charged, as it
    # would be in an application.
    gc.collect()
    server0 = emulator.cpu_seconds()
    usage0 = _rusage()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    if streams == 1:
        await contender.consume()
    else:
        await asyncio.gather(*(contender.consume() for _ in range(streams)))
    wall = time.perf_counter() - wall0
    if contender.settle is not None:
        await contender.settle()
    cpu = time.process_time() - cpu0
    usage1 = _rusage()
    server1 = emulator.cpu_seconds()
    server = None if server0 is None or server1 is None else server1 - server0
    sample = Sample(cpu, wall, server)
    if usage0 is not None and usage1 is not None:
        sample.sys_s = usage1.ru_stime - usage0.ru_stime
        sample.voluntary_switches = usage1.ru_nvcsw - usage0.ru_nvcsw
        sample.minor_faults = usage1.ru_minflt - usage0.ru_minflt
    return sample


def _rusage() -> Any:
    try:
        import resource
    except ImportError:
        return None
    return resource.getrusage(resource.RUSAGE_SELF)


async def run_rounds(
    contenders: list[Contender], streams: int, rounds: int, emulator: EmulatorProcess, progress: str
) -> list[ContenderResult]:
    """One warm-up round (discarded), then ``rounds`` rounds, each running every contender
    once; the order rotates every round so no contender always runs first or last."""
    results = [ContenderResult(c.key, c.label) for c in contenders]
    for r in range(rounds + 1):
        shift = r % len(contenders)
        order = list(range(len(contenders)))[shift:] + list(range(len(contenders)))[:shift]
        for i in order:
            sample = await _one_sample(contenders[i], streams, emulator)
            if r > 0:
                results[i].samples.append(sample)
        _log(f"{progress}: round {r}/{rounds}{' (warm-up)' if r == 0 else ''} done")
    return results


async def bench_streams(
    *, chunks: int, streams: int, rounds: int, chunk_text: str, only: set[str] | None, progress: str
) -> dict[str, Any]:
    expected = chunk_text * chunks
    with EmulatorProcess(chunks, chunk_text) as emulator:
        contenders, notes = make_contenders(emulator.base_url, expected, max(streams, 10), only)
        try:
            results = await run_rounds(contenders, streams, rounds, emulator, progress)
        finally:
            for c in contenders:
                await c.aclose()
    total = chunks * streams
    rows = []
    for res in results:
        cpu = [s.cpu_s / total * 1e6 for s in res.samples]
        rows.append(
            {
                "key": res.key,
                "label": res.label,
                "cpu_us_per_chunk": statistics.median(cpu),
                "cpu_us_per_chunk_min": min(cpu),
                "cpu_us_per_chunk_max": max(cpu),
                "chunks_per_s": total / res.median("wall_s"),
                "wall_s": res.median("wall_s"),
                "server_busy": _server_busy(res.samples),
                "switches_per_1k": _per_1k(res.samples, "voluntary_switches", total),
                "sys_share": _median_or_none(
                    [s.sys_s / s.cpu_s for s in res.samples if s.sys_s is not None and s.cpu_s > 0]
                ),
                "samples": [asdict(s) for s in res.samples],
            }
        )
    return {
        "chunks": chunks,
        "streams": streams,
        "rounds": rounds,
        "chunk_text": chunk_text,
        "rows": rows,
        "notes": notes,
    }


def _server_busy(samples: list[Sample]) -> float | None:
    return _median_or_none(
        [s.server_cpu_s / s.wall_s for s in samples if s.server_cpu_s is not None and s.wall_s > 0]
    )


def _per_1k(samples: list[Sample], attr: str, total: int) -> float | None:
    values = [getattr(s, attr) for s in samples]
    return None if None in values else statistics.median(values) * 1000 / total


def _median_or_none(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


# --------------------------------------------------------------------------------------
# Section 3: import time
# --------------------------------------------------------------------------------------


def _import_times(runs: int, env: dict[str, str]) -> list[int]:
    """Cumulative microseconds of the top-level ``streamwrap`` line of ``-X importtime``,
    one fresh interpreter per run, after one discarded run."""
    cmd = [sys.executable, "-X", "importtime", "-c", "import streamwrap"]
    subprocess.run(cmd, capture_output=True, check=True, env=env)  # warm-up (fills the OS file cache)
    samples: list[int] = []
    for _ in range(runs):
        err = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stderr
        # Lines read "import time: self [us] | cumulative | imported package".
        found = [
            int(p[1])
            for p in (line.split("|") for line in err.splitlines())
            if len(p) == 3 and p[2].strip() == "streamwrap"
        ]
        if not found:
            raise RuntimeError(f"no `streamwrap` line in -X importtime output:\n{err}")
        samples.append(found[0])
    return samples


def bench_import(runs: int) -> dict[str, Any]:
    """``import streamwrap`` time in fresh interpreters, and what it leaves in sys.modules.

    Measured twice: with a bytecode cache (a private ``PYTHONPYCACHEPREFIX`` that the
    warm-up run fills, so nothing is written into the source tree), which is what an
    installed package sees; and in the inherited environment, where e.g.
    ``PYTHONDONTWRITEBYTECODE=1`` with an editable install recompiles streamwrap's sources
    on every import.
    """
    inherited = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="streamwrap-bench-pycache-") as cache:
        cached_env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        cached_env["PYTHONPYCACHEPREFIX"] = cache
        cached = _import_times(runs, cached_env)
    as_is = _import_times(runs, inherited)
    probe = (
        "import json, sys, streamwrap\n"
        f"names = {PROVIDER_SDKS!r}\n"
        "print(json.dumps({'sdks': sorted(m for m in sys.modules if m.split('.')[0] in names),"
        " 'asyncio': 'asyncio' in sys.modules, 'modules': len(sys.modules)}))"
    )
    loaded = json.loads(
        subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    )
    return {
        "runs": runs,
        "cached": _ms_summary(cached),
        "inherited_env": _ms_summary(as_is),
        "inherited_dont_write_bytecode": bool(os.environ.get("PYTHONDONTWRITEBYTECODE")),
        "provider_sdks_loaded": loaded["sdks"],
        "asyncio_loaded": loaded["asyncio"],
        "modules_loaded": loaded["modules"],
    }


def _ms_summary(samples_us: list[int]) -> dict[str, Any]:
    return {
        "median_ms": statistics.median(samples_us) / 1000,
        "min_ms": min(samples_us) / 1000,
        "max_ms": max(samples_us) / 1000,
        "samples_us": samples_us,
    }


# --------------------------------------------------------------------------------------
# Section 4: the cost of text_so_far, without network
# --------------------------------------------------------------------------------------

ACC_TEXT = "tok "  # each delta: 4 characters


def _finished_response(n: int, batch: int = 64) -> Any:
    """A finished streaming ``ModelResponse`` holding ``n`` text deltas, built with
    streamwrap internals (no network, no runtime thread): the producer side of a Channel
    is fed directly, in batches as network reads would deliver them."""
    from streamwrap._channel import Channel
    from streamwrap._delta import TextDelta
    from streamwrap._response import ModelResponse

    ch = Channel(provider="bench", streaming=True, input_chars=0)
    response = ModelResponse(ch, model_name=MODEL)
    ch.open()
    delta = TextDelta(ACC_TEXT)
    for start in range(0, n, batch):
        ch.push([delta] * min(batch, n - start))
    ch.finish()
    return response


async def _reference_stream(items: list[Any]) -> AsyncIterator[Any]:
    """``text_so_far`` the simplest way: one snapshot per delta, built when asked for.

    Not streamwrap: the yardstick for what the ``(is_last, text_so_far)`` contract costs by
    itself (each snapshot is a new string), so that streamwrap's own overhead shows as the
    difference."""
    from streamwrap import StreamChunk

    text = ""
    for d in items:
        text += d
        yield StreamChunk(False, text)
    yield StreamChunk(True, text)


async def _iterate(response: Any, method: str, n: int) -> None:
    # The consumer keeps nothing but the last item, like a UI that redraws the latest text.
    if method == "deltas":
        count = 0
        async for _ in response.deltas():
            count += 1
        if count != n:
            raise AssertionError(f"deltas(): {count} items, expected {n}")
        return
    # The reference reads the same deltas straight from the response's channel (private).
    gen = response.stream if method == "stream" else _reference_stream(response._ch.items)
    last = None
    async for item in gen:
        last = item
    if last is None or not last.is_last or len(last.text_so_far) != n * len(ACC_TEXT):
        raise AssertionError(f"{method}: the last item is not the full text")


def accumulate_worker(n: int, method: str, reps: int) -> dict[str, Any]:
    """Runs in a child process (see :func:`bench_accumulate`); returns what it measured."""
    import tracemalloc

    response = _finished_response(n)
    out: dict[str, Any] = {"deltas": n, "method": method}
    try:
        times: list[float] = []
        for _ in range(reps):
            gc.collect()
            asyncio.run(_timed_iterate(response, method, n, times))
        out["seconds"] = statistics.median(times)
        # Memory in a separate pass: tracemalloc slows every allocation down.
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        asyncio.run(_iterate(response, method, n))
        out["peak_bytes"] = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.stop()
    except MemoryError:
        out["error"] = "MemoryError"
    return out


async def _timed_iterate(response: Any, method: str, n: int, times: list[float]) -> None:
    # Timed inside the loop so that event-loop start-up is not counted.
    t0 = time.perf_counter()
    await _iterate(response, method, n)
    times.append(time.perf_counter() - t0)


ACC_METHODS = ("stream", "deltas", "reference")


def bench_accumulate(sizes: Sequence[int], mem_limit_mb: int) -> dict[str, Any]:
    """Each (size, method) runs in a fresh child process under an address-space limit, so
    one measurement's heap does not affect the next and an explosive one fails alone."""
    rows = []
    for n in sizes:
        for method in ACC_METHODS:
            reps = max(1, min(5, 100_000 // n))
            code = (
                "import json, sys; sys.path.insert(0, sys.argv[1]); import bench_stream as b; "
                "print(json.dumps(b.accumulate_worker(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]))))"
            )
            argv = [
                sys.executable,
                "-c",
                code,
                os.path.dirname(os.path.abspath(__file__)),
                str(n),
                method,
                str(reps),
            ]
            proc = subprocess.run(
                argv, capture_output=True, text=True, preexec_fn=_limit_memory(mem_limit_mb)
            )
            if proc.returncode != 0:
                row: dict[str, Any] = {
                    "deltas": n,
                    "method": method,
                    "error": f"exit {proc.returncode}: {proc.stderr.strip()[-300:]}",
                }
            else:
                row = json.loads(proc.stdout)
            row["reps"] = reps
            rows.append(row)
            _log(f"accumulate: {n} deltas, {method}: {row.get('seconds', row.get('error'))}")
    return {"delta_chars": len(ACC_TEXT), "mem_limit_mb": mem_limit_mb, "rows": rows}


def _limit_memory(mb: int) -> Callable[[], None] | None:
    try:
        import resource
    except ImportError:  # not on POSIX: no limit
        return None

    def apply() -> None:
        limit = mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return apply


def snapshot_bytes(n: int, chars: int) -> int:
    """Characters held if every ``text_so_far`` snapshot of ``n`` deltas were alive at once."""
    return chars * n * (n + 1) // 2


# --------------------------------------------------------------------------------------
# Markdown output
# --------------------------------------------------------------------------------------


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _ratio(value: float, ref: float | None) -> str:
    return f"{value / ref:.2f}×" if ref else "n/a"


def _opt(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else fmt.format(value)


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def render_streams(title: str, data: dict[str, Any], concurrent: bool) -> str:
    rows = data["rows"]
    by_key = {r["key"]: r for r in rows}
    ref_openai = by_key.get("openai", {}).get("cpu_us_per_chunk")
    ref_floor = by_key.get("floor", {}).get("cpu_us_per_chunk")
    table = []
    for r in rows:
        busy = r["server_busy"]
        table.append(
            [
                r["label"],
                f"{r['cpu_us_per_chunk']:.2f}",
                f"{r['cpu_us_per_chunk_min']:.2f}–{r['cpu_us_per_chunk_max']:.2f}",
                _ratio(r["cpu_us_per_chunk"], ref_openai),
                _ratio(r["cpu_us_per_chunk"], ref_floor),
                f"{r['chunks_per_s']:,.0f}",
                f"{r['wall_s']:.3f}",
                "n/a" if busy is None else f"{busy:.0%}",
                _opt(r["sys_share"], "{:.0%}"),
                _opt(r["switches_per_1k"], "{:.0f}"),
            ]
        )
    header = [
        "contender",
        "CPU µs/chunk (median)",
        "min–max",
        "× openai SDK",
        "× floor",
        "aggregate chunks/s" if concurrent else "chunks/s (wall)",
        "wall s",
        "emulator busy",
        "kernel share of CPU",
        "thread switches / 1k chunks",
    ]
    out = [f"## {title}", "", _table(header, table), ""]
    for key in ("sw_stream", "sw_deltas", "sw_aread"):
        r = by_key.get(key)
        if r is None or not ref_openai or not ref_floor:
            continue
        vs_o, vs_f = r["cpu_us_per_chunk"] / ref_openai, r["cpu_us_per_chunk"] / ref_floor
        out.append(
            f"- {r['label']}: {vs_o:.2f}× openai SDK (target ≤ {TARGET_VS_OPENAI}×: {_verdict(vs_o <= TARGET_VS_OPENAI)}), "
            f"{vs_f:.2f}× floor (target ≤ {TARGET_VS_FLOOR:g}×: {_verdict(vs_f <= TARGET_VS_FLOOR)})"
        )
    out += [f"- note: {n}" for n in data["notes"]]
    return "\n".join(out)


def render_import(data: dict[str, Any]) -> str:
    sdks = data["provider_sdks_loaded"]
    rows = []
    for key, label in (("cached", "bytecode cached"), ("inherited_env", "inherited environment")):
        d = data[key]
        if key == "inherited_env" and data["inherited_dont_write_bytecode"]:
            label += " (PYTHONDONTWRITEBYTECODE=1)"
        rows.append(
            [
                label,
                f"{d['median_ms']:.1f}",
                f"{d['min_ms']:.1f}–{d['max_ms']:.1f}",
                str(data["runs"]),
                f"{_verdict(d['median_ms'] < TARGET_IMPORT_MS)} (< {TARGET_IMPORT_MS:g} ms)",
            ]
        )
    header = ["interpreter", "median ms", "min–max ms", "runs", "target"]
    sdk_line = ", ".join(sdks) + " (FAIL)" if sdks else "none (PASS)"
    return "\n".join(
        [
            "## 3. `import streamwrap` (cumulative `-X importtime`, fresh interpreter per run)",
            "",
            _table(header, rows),
            "",
            f"- provider SDKs ({', '.join(PROVIDER_SDKS)}) in `sys.modules` after `import streamwrap`: {sdk_line}",
            f"- asyncio imported: {'yes' if data['asyncio_loaded'] else 'no'}; modules loaded in total: "
            f"{data['modules_loaded']}",
        ]
    )


def render_accumulate(data: dict[str, Any]) -> str:
    by = {(r["deltas"], r["method"]): r for r in data["rows"]}
    rows = []
    for n in sorted({r["deltas"] for r in data["rows"]}):
        s, d, ref = (by.get((n, m), {}) for m in ACC_METHODS)
        rows.append(
            [
                f"{n:,}",
                _secs(s),
                _secs(d),
                f"{s['seconds'] / d['seconds']:.0f}×"
                if "seconds" in s and "seconds" in d and d["seconds"]
                else "n/a",
                _secs(ref),
                _mem(s, data["mem_limit_mb"]),
                _mem(d, data["mem_limit_mb"]),
                _mem(ref, data["mem_limit_mb"]),
                _fmt_bytes(snapshot_bytes(n, data["delta_chars"])),
            ]
        )
    header = [
        "deltas",
        "`.stream` s",
        "`.deltas()` s",
        "stream / deltas",
        "reference s",
        "`.stream` peak",
        "`.deltas()` peak",
        "reference peak",
        "all snapshots' text",
    ]
    return "\n".join(
        [
            f"## 4. Cost of `text_so_far`: finished in-memory response, {data['delta_chars']}-character deltas",
            "",
            _table(header, rows),
            "",
            "- reference = a plain async generator doing `text += delta; yield (False, text)` over the same "
            "deltas: what the `text_so_far` contract costs by itself.",
            "- all snapshots' text = characters in every `text_so_far` snapshot together, i.e. the peak "
            "if they are all alive at once.",
            f"- each cell runs in a fresh child process limited to {data['mem_limit_mb']:,} MB of address space.",
        ]
    )


def _secs(row: dict[str, Any]) -> str:
    if "seconds" in row:
        return f"{row['seconds']:.4f}"
    return str(row.get("error", "n/a"))


def _mem(row: dict[str, Any], limit_mb: int) -> str:
    if "peak_bytes" in row:
        return _fmt_bytes(row["peak_bytes"])
    if row.get("error") == "MemoryError":
        return f"> {limit_mb:,} MB (MemoryError)"
    return str(row.get("error", "n/a"))


def _fmt_bytes(n: int) -> str:
    if n >= 1 << 30:
        return f"{n / (1 << 30):.1f} GiB"
    if n >= 1 << 20:
        return f"{n / (1 << 20):.1f} MiB"
    return f"{n / 1024:.1f} KiB"


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------


def _log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def _meta(*extra_dists: str) -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for dist in ("streamwrap", "openai", "httpx", "httpx2", "orjson", "pydantic", *extra_dists):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    return {
        "streamwrap_source": _source_state(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "versions": versions,
        "argv": sys.argv,
    }


def _source_state() -> str | None:
    """The commit the measured streamwrap sources are at, and whether they differ from it
    (read-only git commands; None outside a git checkout)."""
    import streamwrap

    root = os.path.dirname(os.path.dirname(os.path.abspath(streamwrap.__file__)))

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", root, *args], capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--", "streamwrap")
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{commit} + uncommitted changes" if dirty else commit


def _csv_ints(value: str) -> list[int]:
    return [int(v) for v in value.split(",") if v]


def _csv_names(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--sections",
        type=_csv_names,
        default=list(SECTIONS),
        help="comma-separated subset of: " + ",".join(SECTIONS),
    )
    p.add_argument(
        "--contenders",
        type=_csv_names,
        default=None,
        help="only these keys: floor,openai,sw_stream,sw_deltas,sw_aread (default: all)",
    )
    p.add_argument("--chunk-text", default="tok ", help="text of every chunk (default: %(default)r)")
    p.add_argument(
        "--chunks", type=int, default=20_000, help="section 1: chunks in the stream (default: %(default)s)"
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="section 1: measured rounds after the warm-up (default: %(default)s)",
    )
    p.add_argument(
        "--streams", type=int, default=200, help="section 2: concurrent streams (default: %(default)s)"
    )
    p.add_argument(
        "--stream-chunks", type=int, default=500, help="section 2: chunks per stream (default: %(default)s)"
    )
    p.add_argument(
        "--concurrent-rounds", type=int, default=3, help="section 2: measured rounds (default: %(default)s)"
    )
    p.add_argument(
        "--import-runs", type=int, default=15, help="section 3: interpreter runs (default: %(default)s)"
    )
    p.add_argument(
        "--accumulate-sizes",
        type=_csv_ints,
        default=[1_000, 10_000, 100_000],
        help="section 4: delta counts (default: 1000,10000,100000)",
    )
    p.add_argument(
        "--accumulate-mem-limit-mb",
        type=int,
        default=4096,
        help="section 4: address-space limit of each child process (default: %(default)s)",
    )
    p.add_argument("--json", metavar="PATH", help="also write the raw numbers (every sample) to PATH")
    args = p.parse_args(argv)
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        p.error(f"unknown sections: {', '.join(sorted(unknown))}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    only = set(args.contenders) if args.contenders else None
    results: dict[str, Any] = {"meta": _meta()}
    started = time.perf_counter()
    if "single" in args.sections:
        results["single"] = asyncio.run(
            bench_streams(
                chunks=args.chunks,
                streams=1,
                rounds=args.rounds,
                chunk_text=args.chunk_text,
                only=only,
                progress="single",
            )
        )
    if "concurrent" in args.sections:
        results["concurrent"] = asyncio.run(
            bench_streams(
                chunks=args.stream_chunks,
                streams=args.streams,
                rounds=args.concurrent_rounds,
                chunk_text=args.chunk_text,
                only=only,
                progress="concurrent",
            )
        )
    if "import" in args.sections:
        _log("import time")
        results["import"] = bench_import(args.import_runs)
    if "accumulate" in args.sections:
        results["accumulate"] = bench_accumulate(args.accumulate_sizes, args.accumulate_mem_limit_mb)
    results["meta"]["elapsed_s"] = time.perf_counter() - started

    print(_render(results, args))
    if args.json:
        with open(args.json, "wb") as f:
            f.write(orjson.dumps(results, option=orjson.OPT_INDENT_2))
        _log(f"raw numbers written to {args.json}")
    return 0


def _render(results: dict[str, Any], args: argparse.Namespace) -> str:
    meta = results["meta"]
    v = meta["versions"]
    parts = [
        "# streamwrap streaming benchmark",
        "",
        f"Python {meta['python']} on {meta['platform']}, {meta['cpus']} CPUs; streamwrap {v['streamwrap']} "
        f"(source: {meta['streamwrap_source'] or 'not a git checkout'}), "
        f"openai {v['openai']}, httpx {v['httpx']}, httpx2 {v['httpx2']}, orjson {v['orjson']}. "
        f"Total run time {meta['elapsed_s']:.0f} s.",
        "",
        "CPU = `time.process_time()` of the benchmark process (every thread, streamwrap's runtime "
        "thread included; the emulator runs in its own process) divided by the chunks received; "
        "medians over the measured rounds, warm-up round discarded.",
    ]
    if "single" in results:
        d = results["single"]
        parts += [
            "",
            render_streams(
                f"1. One stream of {d['chunks']:,} chunks ({d['rounds']} rounds)", d, concurrent=False
            ),
        ]
    if "concurrent" in results:
        d = results["concurrent"]
        title = f"2. {d['streams']} concurrent streams × {d['chunks']:,} chunks ({d['rounds']} rounds)"
        parts += ["", render_streams(title, d, concurrent=True)]
    if "import" in results:
        parts += ["", render_import(results["import"])]
    if "accumulate" in results:
        parts += ["", render_accumulate(results["accumulate"])]
    return "\n".join(parts)


if __name__ == "__main__":
    sys.exit(main())
