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
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import asdict
from typing import Any

import orjson
from _harness import (
    MODEL,
    Contender,
    EmulatorProcess,
    csv_ints,
    csv_names,
    floor_contender,
    log,
    markdown_table,
    median_or_none,
    openai_contender,
    per_1k,
    render_streams,
    run_meta,
    run_rounds,
    server_busy,
    streamwrap_contenders,
    verdict,
)

SECTIONS = ("single", "concurrent", "import", "accumulate")
PROVIDER_SDKS = ("openai", "httpx", "httpx2", "litellm", "google", "dashscope")
TARGET_IMPORT_MS = 100.0


# --------------------------------------------------------------------------------------
# Sections 1 and 2: interleaved rounds (the harness runs them)
# --------------------------------------------------------------------------------------


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
                "server_busy": server_busy(res.samples),
                "switches_per_1k": per_1k(res.samples, "voluntary_switches", total),
                "sys_share": median_or_none(
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
            log(f"accumulate: {n} deltas, {method}: {row.get('seconds', row.get('error'))}")
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
                f"{verdict(d['median_ms'] < TARGET_IMPORT_MS)} (< {TARGET_IMPORT_MS:g} ms)",
            ]
        )
    header = ["interpreter", "median ms", "min–max ms", "runs", "target"]
    sdk_line = ", ".join(sdks) + " (FAIL)" if sdks else "none (PASS)"
    return "\n".join(
        [
            "## 3. `import streamwrap` (cumulative `-X importtime`, fresh interpreter per run)",
            "",
            markdown_table(header, rows),
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
            markdown_table(header, rows),
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


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--sections",
        type=csv_names,
        default=list(SECTIONS),
        help="comma-separated subset of: " + ",".join(SECTIONS),
    )
    p.add_argument(
        "--contenders",
        type=csv_names,
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
        type=csv_ints,
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
    results: dict[str, Any] = {"meta": run_meta()}
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
        log("import time")
        results["import"] = bench_import(args.import_runs)
    if "accumulate" in args.sections:
        results["accumulate"] = bench_accumulate(args.accumulate_sizes, args.accumulate_mem_limit_mb)
    results["meta"]["elapsed_s"] = time.perf_counter() - started

    print(_render(results, args))
    if args.json:
        with open(args.json, "wb") as f:
            f.write(orjson.dumps(results, option=orjson.OPT_INDENT_2))
        log(f"raw numbers written to {args.json}")
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
