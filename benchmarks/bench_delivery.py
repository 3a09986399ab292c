"""What delivery costs per chunk: response events, sinks, and the SSE body a browser gets,
against the openai SDK with the same SSE written by hand, and the raw-HTTP floor.

One stream of ``--chunks`` chunks from the emulator in its own process (as in
``bench_stream.py``, whose harness, ``_harness.py``, this reuses); CPU of the whole benchmark process per
chunk, streamwrap's runtime thread included. Contenders:

- the floor and the openai SDK ``AsyncStream`` (references, from ``_harness.py``);
- streamwrap ``.stream`` (reference) and ``.events()``;
- ``deliver()`` to a ``CallbackSink``, to a ``ConsoleSink`` writing to ``/dev/null``, and to
  three ``CallbackSink``s at once (each reads its own replay);
- the body of ``streamwrap.web.sse_response`` (Vercel UI message stream v1), read as a web
  server would read it, against the openai SDK with the same SSE events written by hand
  (``json.dumps`` per chunk, as FastAPI examples do) — what a user would otherwise write.

    python benchmarks/bench_delivery.py --chunks 20000 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _harness as harness

MODEL = harness.MODEL
MESSAGES = harness.MESSAGES


def streamwrap_delivery_contenders(base_url: str, expected: str) -> list[harness.Contender]:
    import streamwrap

    config = {
        "model_type": "openai_chat",
        "model_name": MODEL,
        "stream": True,
        "base_url": base_url,
        "api_key": "bench",
        "max_retries": 0,
    }
    m_stream, m_events, m_callback, m_console, m_three, m_sse = (
        streamwrap.load_model(config) for _ in range(6)
    )
    settle = harness.streamwrap_settle

    async def consume_stream() -> None:
        response = await m_stream(MESSAGES)
        last = ""
        async for _, text_so_far in response.stream:
            last = text_so_far
        harness.check(last, expected, ".stream")

    async def consume_events() -> None:
        response = await m_events(MESSAGES)
        parts = [e.delta async for e in response.events() if e.type == "text"]
        harness.check("".join(parts), expected, ".events()")

    def collector() -> tuple[list[str], streamwrap.CallbackSink]:
        parts: list[str] = []

        def on_chunk(event: Any) -> None:
            if event.type == "text":
                parts.append(event.delta)

        return parts, streamwrap.CallbackSink(on_chunk=on_chunk)

    async def consume_callback() -> None:
        parts, sink = collector()
        await streamwrap.deliver(await m_callback(MESSAGES), sink)
        harness.check("".join(parts), expected, "deliver(CallbackSink)")

    devnull = open(os.devnull, "w")  # noqa: SIM115 (closed with the contender)

    async def consume_console() -> None:
        response = await m_console(MESSAGES)
        await streamwrap.deliver(response, streamwrap.ConsoleSink(devnull, stats=False))
        harness.check(response.text, expected, "deliver(ConsoleSink)")

    async def consume_three() -> None:
        sinks = [collector() for _ in range(3)]
        await streamwrap.deliver(await m_three(MESSAGES), *(s for _, s in sinks))
        for parts, _ in sinks:
            harness.check("".join(parts), expected, "deliver(3 sinks)")

    async def close_console() -> None:
        devnull.close()
        await m_console.aclose()

    contenders = [
        harness.Contender("sw_stream", "streamwrap .stream", consume_stream, m_stream.aclose, settle),
        harness.Contender("sw_events", "streamwrap .events()", consume_events, m_events.aclose, settle),
        harness.Contender(
            "sw_callback", "deliver(CallbackSink)", consume_callback, m_callback.aclose, settle
        ),
        harness.Contender(
            "sw_console", "deliver(ConsoleSink → /dev/null)", consume_console, close_console, settle
        ),
        harness.Contender("sw_three", "deliver(3 CallbackSinks)", consume_three, m_three.aclose, settle),
    ]
    try:
        from streamwrap.web import sse_response
    except ImportError:  # the web extra is not installed
        sse_response = None
    if sse_response is not None:

        async def consume_sse() -> None:
            response = await m_sse(MESSAGES)
            body = sse_response(response, heartbeat=None)
            size = 0
            async for piece in body.body_iterator:
                size += len(piece)
            harness.check(response.text, expected, "sse_response")
            if size <= len(expected):
                raise AssertionError("sse_response: body shorter than the text")

        contenders.append(
            harness.Contender(
                "sw_sse", "streamwrap sse_response body (UI message v1)", consume_sse, m_sse.aclose, settle
            )
        )
    return contenders


def openai_sse_contender(base_url: str, expected: str) -> harness.Contender:
    """The openai SDK, with the same UI message stream SSE written by hand."""
    import openai

    client = openai.AsyncOpenAI(
        api_key="bench", base_url=base_url, max_retries=0, http_client=harness.sdk_http_client(10)
    )

    async def body() -> Any:
        messages: Any = MESSAGES
        stream = await client.chat.completions.create(model=MODEL, messages=messages, stream=True)
        yield f"data: {json.dumps({'type': 'start', 'messageId': 'm'})}\n\n"
        yield f"data: {json.dumps({'type': 'text-start', 'id': 't'})}\n\n"
        async for chunk in stream:
            if chunk.choices:
                content = chunk.choices[0].delta.content
                if content:
                    yield f"data: {json.dumps({'type': 'text-delta', 'id': 't', 'delta': content})}\n\n"
        yield f"data: {json.dumps({'type': 'text-end', 'id': 't'})}\n\n"
        yield f"data: {json.dumps({'type': 'finish'})}\n\n"
        yield "data: [DONE]\n\n"

    async def consume() -> None:
        parts: list[str] = []
        async for event in body():
            if event.startswith('data: {"type": "text-delta"'):
                parts.append(json.loads(event[6:])["delta"])
        harness.check("".join(parts), expected, "openai + hand SSE")

    return harness.Contender("openai_sse", "openai SDK + hand-written UI message SSE", consume, client.close)


async def run(chunks: int, rounds: int, chunk_text: str) -> dict[str, Any]:
    expected = chunk_text * chunks
    with harness.EmulatorProcess(chunks, chunk_text) as emulator:
        url = emulator.base_url
        contenders = [
            harness.floor_contender(url, expected, 10),
            harness.openai_contender(url, expected, 10),
            openai_sse_contender(url, expected),
            *streamwrap_delivery_contenders(url, expected),
        ]
        try:
            results = await harness.run_rounds(contenders, 1, rounds, emulator, "delivery")
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
                "server_busy": harness.server_busy(res.samples),
                "switches_per_1k": harness.per_1k(res.samples, "voluntary_switches", chunks),
                "sys_share": None,
            }
        )
    return {"chunks": chunks, "rounds": rounds, "rows": rows, "notes": []}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--chunk-text", default="tok ")
    parser.add_argument("--json", help="also write the raw numbers here")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    data = asyncio.run(run(args.chunks, args.rounds, args.chunk_text))
    meta = harness.run_meta("starlette")
    print("# streamwrap delivery benchmark\n")
    print(f"Python {meta['python']}, {meta['cpus']} CPUs; run time {time.perf_counter() - started:.0f} s.\n")
    print(
        harness.render_streams(
            f"One stream of {args.chunks:,} chunks ({args.rounds} rounds)", data, concurrent=False
        )
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "delivery": data}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
