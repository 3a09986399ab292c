# ruff: noqa: RUF001  (the multiplication sign in printed tables is meant)
"""What cost accounting costs: ``response.cost`` and ``usage_summary()``.

Nothing of it runs per chunk, so this measures per call and per process:

* the work every call now does whether or not anybody wants a cost (a ``Pricing`` object,
  one context-variable read), timed on its own;
* the end hook of a call inside a ``usage_summary()`` block (counting; the price waits for
  the summary's reading), timed on its own;
* one ``price()`` with the table loaded (what ``response.cost`` does, once per response);
* loading genai-prices' table, in a fresh interpreter (what the first cost of a process
  pays, or ``model.prepare()`` ahead of it);
* whole calls against the emulator (in this process, 20-chunk streams), with and without a
  ``usage_summary()`` block and reading ``response.cost``, in interleaved rounds: the
  medians and their ratio.

    python benchmarks/bench_cost.py [--rounds 7] [--calls 200]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import streamwrap
from streamwrap._channel import Channel
from streamwrap._cost import PriceRef, Pricing, price, warm_up
from streamwrap._usage import Usage
from streamwrap._usage_summary import track, usage_summary
from streamwrap.testing import Emulator, Reply


def per_op(fn: Callable[[], Any], n: int, rounds: int) -> float:
    """Median seconds per call of ``fn`` over ``rounds`` rounds of ``n``."""
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        samples.append((time.perf_counter() - start) / n)
    return statistics.median(samples)


def micro(rounds: int) -> list[tuple[str, float]]:
    ref = PriceRef(provider_id="openai")
    usage = Usage.reported(1200, 300, cached_tokens=1024)

    def every_call() -> None:
        ch = Channel(provider="openai", streaming=True, input_chars=10)
        track(ch, "gpt-4o-mini", Pricing(ref, "gpt-4o-mini"))

    def bare_channel() -> None:
        Channel(provider="openai", streaming=True, input_chars=10)

    def in_a_block() -> None:
        ch = Channel(provider="openai", streaming=True, input_chars=10)
        ch.usage = usage
        track(ch, "gpt-4o-mini", Pricing(ref, "gpt-4o-mini"))
        ch.finish()  # runs the end hook: counting

    now = datetime.now(UTC)
    warm_up()
    rows = [
        ("a Channel (for scale: every call makes one)", per_op(bare_channel, 20_000, rounds)),
        ("a Channel + Pricing + track(), no summary", per_op(every_call, 20_000, rounds)),
    ]
    with usage_summary():
        rows.append(("a Channel + track() + its end hook, in a block", per_op(in_a_block, 2_000, rounds)))
    rows.append(
        (
            "price(): one cost, table loaded",
            per_op(lambda: price(usage, ["gpt-4o-mini"], ref, now), 2_000, rounds),
        )
    )
    return rows


def table_load(rounds: int) -> float:
    code = "import time; t = time.perf_counter(); from streamwrap._cost import warm_up; warm_up(); print(time.perf_counter() - t)"
    samples = [
        float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
        for _ in range(rounds)
    ]
    return statistics.median(samples)


async def calls(rounds: int, n: int) -> dict[str, float]:
    with Emulator() as emu:
        emu.default = Reply(text=[f"w{i} " for i in range(20)], usage=(100, 20), model="gpt-4o-mini")
        model = streamwrap.load_model(
            {
                "model_type": "openai_chat",
                "model_name": "gpt-4o-mini",
                "stream": True,
                "base_url": emu.openai_base_url,
                "api_key": "sk-bench",
                "price_provider": "openai",
            }
        )
        await model.aprepare()

        async def plain() -> None:
            for _ in range(n):
                response = await model("hi")
                await response.aread()

        reads: list[float] = []

        async def summed() -> None:
            with usage_summary() as summary:
                for _ in range(n):
                    response = await model("hi")
                    await response.aread()
                    start = time.perf_counter()
                    assert response.cost is not None
                    reads.append(time.perf_counter() - start)
            assert summary.total.calls == n

        samples: dict[str, list[float]] = {"plain": [], "summed": []}
        await plain()  # (warm-up)
        for _ in range(rounds):
            for name, body in (("plain", plain), ("summed", summed)):
                start = time.perf_counter()
                await body()
                samples[name].append((time.perf_counter() - start) / n)
        await model.aclose()
    return {**{name: statistics.median(s) for name, s in samples.items()}, "read": statistics.median(reads)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args(argv)
    print(
        f"`python benchmarks/bench_cost.py --rounds {args.rounds} --calls {args.calls}`, Python {sys.version.split()[0]}\n"
    )
    print("| what | per call |\n|---|---|")
    for name, seconds in micro(args.rounds):
        print(f"| {name} | {seconds * 1e6:.2f} µs |")
    print(
        f"| loading genai-prices' table (fresh process, median of {args.rounds}) | {table_load(args.rounds) * 1e3:.0f} ms |"
    )
    figures = asyncio.run(calls(args.rounds, args.calls))
    print("\n| whole call, 20-chunk stream, emulator in-process | per call |\n|---|---|")
    print(f"| plain | {figures['plain'] * 1e3:.3f} ms |")
    print(f"| in a usage_summary() block, reading response.cost | {figures['summed'] * 1e3:.3f} ms |")
    print(f"| ratio | {figures['summed'] / figures['plain']:.3f}× |")
    print(f"| of which reading response.cost (its own median) | {figures['read'] * 1e3:.3f} ms |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
