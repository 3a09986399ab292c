# ruff: noqa: RUF001  (the multiplication sign in printed text is meant)
"""Where streamwrap's per-chunk CPU goes: cProfile on both of its threads, plus counters.

    python benchmarks/profile_stream.py --contender sw_stream --chunks 20000

Streams from the emulator (own process) like section 1 of bench_stream.py, then:

1. an unprofiled pass with counters: CPU µs/chunk, ``Channel.push`` calls (batches handed
   from the runtime thread to consumers), consumer wake-ups (cross-thread
   ``call_soon_threadsafe``), voluntary thread switches and minor page faults;
2. a profiled pass: one ``cProfile.Profile`` per thread (the caller's event-loop thread
   and streamwrap's runtime thread); time a thread spent idle in ``epoll`` is dropped, the
   rest merged, and the functions with the most self time listed with their share.

The profiler slows Python code down per call, and so changes how often the consumer
catches up with the producer; read its shares next to the unprofiled counters of pass 1,
which are the reliable totals. (``time.thread_time`` as the profiler's clock would give
CPU time, but costs a system call per event and distorts far more.)
The counters patch streamwrap internals (``_channel.Channel.push``, ``_channel.fire``);
if those names change, the counters are skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import resource
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _harness as harness


def _install_counters(counts: dict[str, int]) -> Callable[[], None] | None:
    """Count batches pushed and wake-ups fired; returns an undo function (None if the
    internals it patches are not there)."""
    from streamwrap import _channel as channel_module

    _channel: Any = channel_module  # patched below, so typed loosely
    maybe_push, maybe_fire = getattr(_channel.Channel, "push", None), getattr(_channel, "fire", None)
    if maybe_push is None or maybe_fire is None:
        return None
    push: Callable[[Any, list[Any]], None] = maybe_push
    fire: Callable[[list[Any]], None] = maybe_fire

    def counting_push(self: Any, batch: list[Any]) -> None:
        counts["pushes"] += 1
        push(self, batch)

    def counting_fire(waiters: list[Any]) -> None:
        counts["wakeups"] += len(waiters)
        fire(waiters)

    _channel.Channel.push = counting_push
    _channel.fire = counting_fire

    def undo() -> None:
        _channel.Channel.push = push
        _channel.fire = fire

    return undo


def _on_runtime_thread(fn: Callable[[], None]) -> None:
    """Run ``fn`` on streamwrap's runtime thread and wait for it."""
    from streamwrap._runtime import runtime

    done = threading.Event()

    def call() -> None:
        try:
            fn()
        finally:
            done.set()

    runtime.loop().call_soon_threadsafe(call)
    done.wait()


async def profile(contender_key: str, chunks: int, streams: int, top: int) -> str:
    expected = "tok " * chunks
    out: list[str] = []
    with harness.EmulatorProcess(chunks, "tok ") as emulator:
        contenders = {c.key: c for c in harness.streamwrap_contenders(emulator.base_url, expected, 10)}
        contender = contenders[contender_key]
        settle = contender.settle
        assert settle is not None

        async def run() -> None:
            for _ in range(streams):
                await contender.consume()
                await settle()

        await run()  # warm-up: imports, connection, first-call caches

        # Pass 1: counters, no profiler.
        counts = {"pushes": 0, "wakeups": 0}
        undo = _install_counters(counts)
        rt: list[float] = []
        _on_runtime_thread(lambda: rt.append(time.thread_time()))
        r0, cpu0, main0 = resource.getrusage(resource.RUSAGE_SELF), time.process_time(), time.thread_time()
        await run()
        main_cpu = time.thread_time() - main0
        cpu, r1 = time.process_time() - cpu0, resource.getrusage(resource.RUSAGE_SELF)
        _on_runtime_thread(lambda: rt.append(time.thread_time()))
        if undo is not None:
            undo()
        total = chunks * streams
        out.append(f"# {contender.label}: {streams} streams × {chunks:,} chunks\n")
        out.append(
            f"- CPU per chunk (unprofiled, counters on): {cpu / total * 1e6:.2f} µs, of which the caller's "
            f"thread {main_cpu / total * 1e6:.2f} µs and the runtime thread {(rt[1] - rt[0]) / total * 1e6:.2f} µs"
        )
        if undo is not None:
            out.append(
                f"- batches pushed per chunk: {counts['pushes'] / total:.3f}; "
                f"consumer wake-ups per 1k chunks: {counts['wakeups'] / total * 1000:.0f}"
            )
        out.append(
            f"- voluntary thread switches per 1k chunks: {(r1.ru_nvcsw - r0.ru_nvcsw) / total * 1000:.0f}; "
            f"minor page faults per chunk: {(r1.ru_minflt - r0.ru_minflt) / total:.2f}; "
            f"kernel share of CPU: {(r1.ru_stime - r0.ru_stime) / cpu:.0%}"
        )

        # Pass 2: a CPU-time profiler on each thread.
        main_prof, runtime_prof = cProfile.Profile(), cProfile.Profile()
        _on_runtime_thread(runtime_prof.enable)
        main_prof.enable()
        await run()
        main_prof.disable()
        _on_runtime_thread(runtime_prof.disable)

        for c in contenders.values():
            await c.aclose()
    out.append("")
    out.append(_summary(main_prof, runtime_prof, top))
    return "\n".join(out)


def _summary(main_prof: cProfile.Profile, runtime_prof: cProfile.Profile, top: int) -> str:
    # Self time per function, per thread, on the profiler's default (wall) clock, without
    # the time a thread sat idle in the selector: what is left is time spent running (or
    # waiting for the GIL, which the other thread holds).
    rows: list[tuple[float, float, int, str, str]] = []
    busy = {"caller": 0.0, "runtime": 0.0}
    for thread, prof in (("caller", main_prof), ("runtime", runtime_prof)):
        stats: Any = pstats.Stats(prof, stream=io.StringIO())
        for (file, line, func), (_cc, ncalls, tt, ct, _callers) in stats.stats.items():
            if _IDLE in func:
                continue
            busy[thread] += tt
            rows.append((tt, ct, ncalls, thread, _where(file, line, func)))
    total = sum(busy.values())
    lines = [
        f"Profiled pass, busy time (idle selector waits excluded): {total:.3f} s; caller's thread "
        f"{busy['caller'] / total:.0%}, runtime thread {busy['runtime'] / total:.0%}.",
        "",
        "| self share | self s | cumulative s | calls | thread | function |",
        "|---|---|---|---|---|---|",
    ]
    rows.sort(reverse=True)
    for tt, ct, ncalls, thread, where in rows[:top]:
        lines.append(f"| {tt / total:.1%} | {tt:.3f} | {ct:.3f} | {ncalls:,} | {thread} | `{where}` |")
    # The same self time rolled up: by file for streamwrap, by package for the rest.
    groups: dict[tuple[str, str], float] = {}
    for tt, _ct, _n, thread, where in rows:
        key = (thread, _group(where))
        groups[key] = groups.get(key, 0.0) + tt
    lines += ["", "| self share | thread | where |", "|---|---|---|"]
    for (thread, group), tt in sorted(groups.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"| {tt / total:.1%} | {thread} | {group} |")
    return "\n".join(lines)


def _group(where: str) -> str:
    if not where.endswith(")") or ".py:" not in where:
        return "C builtins (socket, orjson, dict, ...)"
    path = where.split(":", 1)[0]
    if path.startswith("streamwrap/"):
        return f"`{path}`"
    if path.startswith(("benchmarks/", "bench_stream", "_harness")):
        return "the benchmark's consumer loop"
    if path.startswith("python3"):
        return "stdlib (asyncio, contextlib, ...)"
    return f"`{path.split('/')[0]}`"


_IDLE = "of 'select.epoll' objects"


def _where(file: str, line: int, func: str) -> str:
    if file == "~":
        return func  # a builtin, e.g. "<method 'send' of '_socket.socket' objects>"
    parts = file.replace(os.sep, "/").split("/")
    for anchor in ("site-packages", "lib"):
        if anchor in parts:
            parts = parts[len(parts) - parts[::-1].index(anchor) :]
            break
    else:
        parts = parts[-2:]
    return f"{'/'.join(parts)}:{line}({func})"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--contender", choices=("sw_stream", "sw_deltas", "sw_aread"), default="sw_stream")
    p.add_argument("--chunks", type=int, default=20_000)
    p.add_argument("--streams", type=int, default=3, help="streams per pass (default: %(default)s)")
    p.add_argument("--top", type=int, default=20, help="functions listed (default: %(default)s)")
    args = p.parse_args(argv)
    print(asyncio.run(profile(args.contender, args.chunks, args.streams, args.top)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
