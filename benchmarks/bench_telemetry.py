# ruff: noqa: RUF001  (the en dash in printed tables is meant)
"""What OpenTelemetry costs a streamwrap call: per call and per chunk, without and with an SDK.

Two modes, measured in interleaved rounds (the order alternates each round) in one process:

- ``no SDK``: the OpenTelemetry API imported, no SDK configured (the API's proxy
  providers): what every call pays for the check. (Without OpenTelemetry imported at all
  the check is one ``sys.modules`` lookup: ``bench_stream.py`` measures that path.)
- ``SDK``: the SDK's ``TracerProvider`` with a ``SimpleSpanProcessor`` into an
  ``InMemorySpanExporter``, and a ``MeterProvider`` with an ``InMemoryMetricReader``: a span,
  its events and the four GenAI client histograms for every call.

Sections: ``per-chunk`` (one stream of ``--chunks`` chunks, CPU per chunk) and
``per-call`` (``--calls`` sequential calls of ``--call-chunks`` chunks each, CPU per call).
CPU is ``time.process_time()`` of this process (every thread, the runtime's included), the
emulator running in its own process, as in ``bench_stream.py``; medians over the measured
rounds, the warm-up round discarded. Switching modes resets the API's globals between
samples (as OpenTelemetry's own test utilities do), outside the measured span.

    python benchmarks/bench_telemetry.py [--chunks 20000] [--calls 300] [--rounds 7]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from _harness import MESSAGES, MODEL, EmulatorProcess, log, markdown_table, run_meta

MODES = ("no SDK", "SDK")


def set_mode(mode: str) -> Callable[[], None]:
    """Configure the OpenTelemetry globals for ``mode``; returns what clears its exporters."""
    from opentelemetry import metrics, trace
    from opentelemetry.metrics import _internal as metrics_internal
    from opentelemetry.util._once import Once

    trace._TRACER_PROVIDER_SET_ONCE = Once()  # type: ignore[attr-defined]
    trace._TRACER_PROVIDER = None  # type: ignore[attr-defined]
    metrics_internal._METER_PROVIDER_SET_ONCE = Once()
    metrics_internal._METER_PROVIDER = None
    metrics_internal._PROXY_METER_PROVIDER = metrics_internal._ProxyMeterProvider()
    if mode == "no SDK":
        return lambda: None
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))

    def clear() -> None:
        exporter.clear()
        reader.get_metrics_data()

    return clear


async def settle() -> None:
    # The producer closes its connection on the runtime thread after the consumer has the
    # text: wait for it, so that its CPU is charged to this sample (as bench_stream.py does).
    from streamwrap._runtime import runtime

    deadline = time.monotonic() + 10.0
    while runtime._tasks and time.monotonic() < deadline:
        await asyncio.sleep(0.0005)


async def consume(model: Any, expected: str) -> None:
    import streamwrap

    response = await model(MESSAGES)
    parts: list[str] = []
    async for delta in response.deltas():
        if delta.__class__ is streamwrap.TextDelta:
            parts.append(delta)
    if "".join(parts) != expected:
        raise AssertionError("wrong text")


async def measure(chunks: int, calls: int, rounds: int, chunk_text: str, what: str) -> dict[str, list[float]]:
    import streamwrap

    expected = chunk_text * chunks
    samples: dict[str, list[float]] = {mode: [] for mode in MODES}
    with EmulatorProcess(chunks, chunk_text) as emulator:
        model = streamwrap.load_model(
            {
                "model_type": "openai_chat",
                "model_name": MODEL,
                "base_url": emulator.base_url,
                "api_key": "bench",
                "max_retries": 0,
                "stream": True,
            }
        )
        await model.aprepare()
        for r in range(rounds + 1):
            order = MODES if r % 2 == 0 else MODES[::-1]
            for mode in order:
                clear = set_mode(mode)
                gc.collect()
                cpu0 = time.process_time()
                for _ in range(calls):
                    await consume(model, expected)
                await settle()
                cpu = time.process_time() - cpu0
                clear()
                if r > 0:
                    samples[mode].append(cpu)
            log(f"{what}: round {r}/{rounds}{' (warm-up)' if r == 0 else ''} done")
        await model.aclose()
        set_mode("no SDK")
    return samples


def render(title: str, unit: str, per: int, samples: dict[str, list[float]]) -> str:
    medians = {mode: statistics.median(s) / per * 1e6 for mode, s in samples.items()}
    rows = [
        [
            mode,
            f"{medians[mode]:.2f}",
            f"{min(samples[mode]) / per * 1e6:.2f}–{max(samples[mode]) / per * 1e6:.2f}",
            "" if mode == MODES[0] else f"+{medians[mode] - medians[MODES[0]]:.2f}",
        ]
        for mode in MODES
    ]
    header = ["mode", f"CPU µs per {unit} (median)", "min–max", "overhead"]
    return f"### {title}\n\n" + markdown_table(header, rows)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--chunks", type=int, default=20_000, help="per-chunk: chunks in the stream")
    p.add_argument("--calls", type=int, default=300, help="per-call: sequential calls per sample")
    p.add_argument("--call-chunks", type=int, default=5, help="per-call: chunks of each call's stream")
    p.add_argument("--rounds", type=int, default=7, help="measured rounds after the warm-up")
    p.add_argument("--chunk-text", default="tok ")
    args = p.parse_args(argv)
    meta = run_meta("opentelemetry-api", "opentelemetry-sdk")
    per_chunk = asyncio.run(measure(args.chunks, 1, args.rounds, args.chunk_text, "per-chunk"))
    per_call = asyncio.run(measure(args.call_chunks, args.calls, args.rounds, args.chunk_text, "per-call"))
    v = meta["versions"]
    print(
        "\n\n".join(
            [
                "# What OpenTelemetry costs a streamwrap call",
                f"Python {meta['python']}, {meta['cpus']} CPUs; streamwrap {v['streamwrap']}, "
                f"opentelemetry-api {v.get('opentelemetry-api')}, opentelemetry-sdk "
                f"{v.get('opentelemetry-sdk')}; {args.rounds} rounds.",
                render(f"One stream of {args.chunks:,} chunks", "chunk", args.chunks, per_chunk),
                render(
                    f"{args.calls} sequential calls of {args.call_chunks} chunks",
                    "call",
                    args.calls,
                    per_call,
                ),
            ]
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
