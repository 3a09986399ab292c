# ruff: noqa: RUF001  (the multiplication sign and en dash in printed tables are meant)
"""The harness the streaming benchmarks share: the emulator in its own process, the
contenders (the floor, the openai SDK, streamwrap consumed three ways), interleaved rounds
of samples, the Markdown tables and the run's metadata.

``bench_stream.py``, ``bench_delivery.py``, ``bench_providers.py``, ``bench_litellm.py``
and ``profile_stream.py`` import it (they run as scripts, with this folder first on
``sys.path``); README.md beside this file explains the method.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.metadata
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

MODEL = "emulator-1"
MESSAGES = [{"role": "user", "content": "Stream me a long answer."}]
# Targets the project set for streamwrap's per-chunk CPU (see README.md).
TARGET_VS_OPENAI = 0.5
TARGET_VS_FLOOR = 3.0


# --------------------------------------------------------------------------------------
# The emulator, in its own process
# --------------------------------------------------------------------------------------


def stop_process(proc: subprocess.Popen[Any]) -> None:
    """Ask a child process to end (SIGTERM); kill it if it has not within 10 s."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


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
        stop_process(proc)

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


def check(got: str, expected: str, who: str) -> None:
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
        check("".join(parts), expected, "floor")

    return Contender("floor", "floor: httpx + minimal SSE + orjson", consume, client.aclose)


def openai_contender(base_url: str, expected: str, pool: int) -> Contender:
    """The openai SDK's own ``AsyncStream`` of pydantic ``ChatCompletionChunk`` objects."""
    import openai

    client = openai.AsyncOpenAI(
        api_key="bench",
        base_url=base_url,
        max_retries=0,
        http_client=sdk_http_client(pool),
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
        check("".join(parts), expected, "openai")

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
        lambda: {**config, "client_args": {"http_client": sdk_http_client(pool)}}, expected, "streamwrap"
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

    settle = settle or streamwrap_settle
    m_stream, m_deltas, m_aread = (streamwrap.load_model(config()) for _ in range(3))

    async def consume_stream() -> None:
        response = await m_stream(MESSAGES)
        text = None
        async for is_last, text_so_far in response.stream:
            if is_last:
                text = text_so_far
        check(text or "", expected, f"{label} .stream")

    async def consume_deltas() -> None:
        response = await m_deltas(MESSAGES)
        parts: list[str] = []
        async for delta in response.deltas():
            if delta.__class__ is streamwrap.TextDelta:
                parts.append(delta)
        check("".join(parts), expected, f"{label} .deltas()")

    async def consume_aread() -> None:
        response = await m_aread(MESSAGES)
        check(await response.aread(), expected, f"{label} aread()")

    return [
        Contender("sw_stream", f"{label} .stream", consume_stream, m_stream.aclose, settle),
        Contender("sw_deltas", f"{label} .deltas()", consume_deltas, m_deltas.aclose, settle),
        Contender("sw_aread", f"{label} aread()", consume_aread, m_aread.aclose, settle),
    ]


def sdk_http_client(pool: int) -> Any:
    """The openai SDK's default async HTTP client (httpx2), with a pool of ``pool``."""
    import httpx2
    import openai

    return openai.DefaultAsyncHttpxClient(
        limits=httpx2.Limits(max_connections=pool, max_keepalive_connections=pool)
    )


async def streamwrap_settle() -> None:
    # A response is complete for its consumer as soon as the last delta is in; the producer
    # task then still closes the HTTP response on the runtime thread. Wait for it (private
    # attribute: the set of live producer tasks) so its CPU lands in this contender's sample.
    from streamwrap._runtime import runtime

    deadline = time.monotonic() + 10.0
    while runtime._tasks and time.monotonic() < deadline:
        await asyncio.sleep(0.0005)


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
        log(f"{progress}: round {r}/{rounds}{' (warm-up)' if r == 0 else ''} done")
    return results


def server_busy(samples: list[Sample]) -> float | None:
    return median_or_none(
        [s.server_cpu_s / s.wall_s for s in samples if s.server_cpu_s is not None and s.wall_s > 0]
    )


def per_1k(samples: list[Sample], attr: str, total: int) -> float | None:
    values = [getattr(s, attr) for s in samples]
    return None if None in values else statistics.median(values) * 1000 / total


def median_or_none(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


# --------------------------------------------------------------------------------------
# Markdown output
# --------------------------------------------------------------------------------------


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def ratio(value: float, ref: float | None) -> str:
    return f"{value / ref:.2f}×" if ref else "n/a"


def opt(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else fmt.format(value)


def verdict(ok: bool) -> str:
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
                ratio(r["cpu_us_per_chunk"], ref_openai),
                ratio(r["cpu_us_per_chunk"], ref_floor),
                f"{r['chunks_per_s']:,.0f}",
                f"{r['wall_s']:.3f}",
                "n/a" if busy is None else f"{busy:.0%}",
                opt(r["sys_share"], "{:.0%}"),
                opt(r["switches_per_1k"], "{:.0f}"),
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
    out = [f"## {title}", "", markdown_table(header, table), ""]
    for key in ("sw_stream", "sw_deltas", "sw_aread"):
        r = by_key.get(key)
        if r is None or not ref_openai or not ref_floor:
            continue
        vs_o, vs_f = r["cpu_us_per_chunk"] / ref_openai, r["cpu_us_per_chunk"] / ref_floor
        out.append(
            f"- {r['label']}: {vs_o:.2f}× openai SDK (target ≤ {TARGET_VS_OPENAI}×: {verdict(vs_o <= TARGET_VS_OPENAI)}), "
            f"{vs_f:.2f}× floor (target ≤ {TARGET_VS_FLOOR:g}×: {verdict(vs_f <= TARGET_VS_FLOOR)})"
        )
    out += [f"- note: {n}" for n in data["notes"]]
    return "\n".join(out)


# --------------------------------------------------------------------------------------
# Logging, run metadata, flags
# --------------------------------------------------------------------------------------


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def run_meta(*extra_dists: str) -> dict[str, Any]:
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


def csv_ints(value: str) -> list[int]:
    return [int(v) for v in value.split(",") if v]


def csv_names(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]
