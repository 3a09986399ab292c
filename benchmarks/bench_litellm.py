# ruff: noqa: RUF001  (the multiplication sign in printed tables is meant)
"""What streamwrap's ``litellm_chat`` adds to LiteLLM's own per-chunk cost, and LiteLLM's
import time. Needs an environment with LiteLLM (``pip install -e ".[test,litellm]"``,
openai 2.x), e.g.::

    .venv-litellm/bin/python benchmarks/bench_litellm.py --json litellm-result.json

Sections:

1. ``stream``: one stream of ``--chunks`` chunks from the emulator (its own process, the
   same as ``bench_stream.py``), consumed by raw ``litellm.acompletion(stream=True)``
   iteration and by ``litellm_chat`` (``.deltas()``, ``.stream``, ``aread()``); CPU of the
   whole benchmark process per chunk, every thread included. Both sides make the same
   LiteLLM call (``openai/`` route, ``stream_options.include_usage``, no retries).
2. ``import``: ``import litellm`` in fresh interpreters (``-X importtime``), with
   ``LITELLM_LOCAL_MODEL_COST_MAP=True`` as streamwrap sets it.

LiteLLM does work after a stream ends (its logging handlers, on the event loop and on its
own thread pool). Every sample waits until the process is idle again before it reads the
CPU clock, so that work is charged to the contender that caused it, for both sides.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # before anything imports litellm
# The emulator repeats one chunk text, and LiteLLM fails a stream whose model "is repeating
# the same chunk" 100 times (its check still runs per chunk; only its limit is raised).
os.environ.setdefault("REPEATED_STREAMING_CHUNK_LIMIT", str(10**9))

import _harness as harness

MODEL = harness.MODEL
MESSAGES = harness.MESSAGES
# How quiet the process must be, and for how long, before a sample ends (see _quiesce).
IDLE_WINDOW_S = 0.05
IDLE_CPU_S = 0.002
QUIESCE_LIMIT_S = 30.0


async def _quiesce() -> None:
    """Wait until the process uses (almost) no CPU for a window: LiteLLM's post-stream
    handlers and streamwrap's producer closing its response have finished."""
    deadline = time.monotonic() + QUIESCE_LIMIT_S
    while time.monotonic() < deadline:
        cpu0 = time.process_time()
        await asyncio.sleep(IDLE_WINDOW_S)
        if time.process_time() - cpu0 < IDLE_CPU_S:
            return


def raw_contender(base_url: str, expected: str) -> harness.Contender:
    """``litellm.acompletion(stream=True)`` iterated by hand: LiteLLM's own cost."""
    import litellm

    async def consume() -> None:
        parts: list[str] = []
        stream = await litellm.acompletion(
            model=f"openai/{MODEL}",
            messages=MESSAGES,
            stream=True,
            api_base=base_url,
            api_key="bench",
            stream_options={"include_usage": True},
            num_retries=0,
            max_retries=0,
        )
        async for chunk in stream:
            if chunk.choices:
                content = chunk.choices[0].delta.content
                if content:
                    parts.append(content)
        harness.check("".join(parts), expected, "litellm")

    async def aclose() -> None:
        return None

    return harness.Contender("litellm", "litellm.acompletion, iterated", consume, aclose, _quiesce)


def streamwrap_contenders(base_url: str, expected: str) -> list[harness.Contender]:
    """``litellm_chat`` consumed three ways, each with its own wrapper."""
    config = {
        "model_type": "litellm_chat",
        "model_name": f"openai/{MODEL}",
        "stream": True,
        "base_url": base_url,
        "api_key": "bench",
        "max_retries": 0,
    }

    async def settle() -> None:
        await harness.streamwrap_settle()
        await _quiesce()

    return harness.consuming_contenders(lambda: dict(config), expected, "litellm_chat", settle)


async def bench_stream_section(
    chunks: int, rounds: int, chunk_text: str, only: set[str] | None
) -> dict[str, Any]:
    expected = chunk_text * chunks
    with harness.EmulatorProcess(chunks, chunk_text) as emulator:
        contenders = [
            raw_contender(emulator.base_url, expected),
            *streamwrap_contenders(emulator.base_url, expected),
        ]
        if only:
            contenders = [c for c in contenders if c.key in only]
        try:
            results = await harness.run_rounds(contenders, 1, rounds, emulator, "stream")
        finally:
            for c in contenders:
                await c.aclose()
    rows = []
    for res in results:
        cpu = [s.cpu_s / chunks * 1e6 for s in res.samples]
        rows.append(
            {
                "key": res.key,
                "label": res.label,
                "cpu_us_per_chunk": statistics.median(cpu),
                "cpu_us_per_chunk_min": min(cpu),
                "cpu_us_per_chunk_max": max(cpu),
                "chunks_per_s": chunks / res.median("wall_s"),
                "wall_s": res.median("wall_s"),
                "samples": [vars(s) for s in res.samples],
            }
        )
    return {"chunks": chunks, "rounds": rounds, "chunk_text": chunk_text, "rows": rows}


def bench_import(runs: int) -> dict[str, Any]:
    """Cumulative µs of the top-level ``litellm`` line of ``-X importtime``, fresh
    interpreters, after one discarded run (which also fills the bytecode cache)."""
    env = dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True")
    cmd = [sys.executable, "-X", "importtime", "-c", "import litellm"]
    subprocess.run(cmd, capture_output=True, check=True, env=env)
    samples: list[int] = []
    for _ in range(runs):
        err = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stderr
        found = [
            int(p[1])
            for p in (line.split("|") for line in err.splitlines())
            if len(p) == 3 and p[2].strip() == "litellm"
        ]
        if not found:
            raise RuntimeError(f"no `litellm` line in -X importtime output:\n{err[-2000:]}")
        samples.append(found[0])
    probe = "import sys, litellm; print(len(sys.modules))"
    modules = int(
        subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True
        ).stdout
    )
    return {
        "runs": runs,
        "median_ms": statistics.median(samples) / 1000,
        "samples_us": samples,
        "modules": modules,
    }


def render(results: dict[str, Any]) -> str:
    meta = results["meta"]
    v = meta["versions"]
    out = [
        "# litellm_chat benchmark",
        "",
        f"Python {meta['python']} on {meta['platform']}, {meta['cpus']} CPUs; streamwrap {v['streamwrap']} "
        f"(source: {meta['streamwrap_source'] or 'not a git checkout'}), litellm {v['litellm']}, "
        f"openai {v['openai']}, httpx {v['httpx']}, pydantic {v['pydantic']}.",
    ]
    if "stream" in results:
        d = results["stream"]
        rows = d["rows"]
        raw = next((r["cpu_us_per_chunk"] for r in rows if r["key"] == "litellm"), None)
        table = [
            [
                r["label"],
                f"{r['cpu_us_per_chunk']:.1f}",
                f"{r['cpu_us_per_chunk_min']:.1f}–{r['cpu_us_per_chunk_max']:.1f}",
                harness.ratio(r["cpu_us_per_chunk"], raw),
                "—" if raw is None or r["key"] == "litellm" else f"{r['cpu_us_per_chunk'] - raw:+.1f}",
                f"{r['chunks_per_s']:,.0f}",
            ]
            for r in rows
        ]
        header = [
            "contender",
            "CPU µs/chunk (median)",
            "min–max",
            "× raw litellm",
            "added µs/chunk",
            "chunks/s (wall)",
        ]
        out += [
            "",
            f"## 1. One stream of {d['chunks']:,} chunks ({d['rounds']} rounds after a warm-up)",
            "",
            "CPU = `time.process_time()` of this process (all threads) until it is idle again "
            "after the stream, divided by the chunks; the emulator runs in its own process.",
            "",
            harness.markdown_table(header, table),
        ]
    if "import" in results:
        d = results["import"]
        out += [
            "",
            "## 2. `import litellm` (LITELLM_LOCAL_MODEL_COST_MAP=True)",
            "",
            f"{d['median_ms']:.0f} ms median of {d['runs']} fresh interpreters "
            f"(min {min(d['samples_us']) / 1000:.0f}, max {max(d['samples_us']) / 1000:.0f}); "
            f"{d['modules']:,} modules in sys.modules afterwards. `import streamwrap` does not import it: "
            "`litellm_chat` imports it on its first call.",
        ]
    return "\n".join(out)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sections", type=harness.csv_names, default=["stream", "import"], help="stream,import")
    p.add_argument(
        "--contenders",
        type=harness.csv_names,
        default=None,
        help="only these: litellm,sw_deltas,sw_stream,sw_aread",
    )
    p.add_argument("--chunks", type=int, default=20_000, help="chunks in the stream (default: %(default)s)")
    p.add_argument(
        "--rounds", type=int, default=3, help="measured rounds after the warm-up (default: %(default)s)"
    )
    p.add_argument("--chunk-text", default="tok ", help="text of every chunk (default: %(default)r)")
    p.add_argument(
        "--import-runs", type=int, default=5, help="interpreters for `import litellm` (default: %(default)s)"
    )
    p.add_argument("--json", metavar="PATH", help="also write the raw numbers (every sample) to PATH")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    results: dict[str, Any] = {"meta": harness.run_meta("litellm")}
    if "stream" in args.sections:
        only = set(args.contenders) if args.contenders else None
        results["stream"] = asyncio.run(bench_stream_section(args.chunks, args.rounds, args.chunk_text, only))
    if "import" in args.sections:
        harness.log("import time")
        results["import"] = bench_import(args.import_runs)
    print(render(results))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)
        harness.log(f"raw numbers written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
