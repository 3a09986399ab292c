# ruff: noqa: RUF001  (the multiplication sign in the printed table is meant)
"""Per-message CPU of the AWS event stream decoder: streamwrap's own
(``streamwrap/_transport/_eventstream.py``) against botocore's ``EventStreamBuffer``.

Why the decoder is streamwrap's own is this measurement (see the module's docstring).
Both read the same bytes: a real ConverseStream body from ``../shared/recordings/bedrock``
when it is there, else 25 ConverseStream-shaped messages framed by the emulator. Each is
fed in one read, then in 7-byte and 1-byte reads (as a slow network delivers it); the
table gives the median over rounds of µs per message (process CPU).

    python benchmarks/bench_eventstream.py [--rounds 9]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import orjson
from botocore.eventstream import EventStreamBuffer

from streamwrap._transport._eventstream import EventStreamDecoder
from streamwrap.testing._eventstream import eventstream_message

RECORDING = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "recordings"
    / "bedrock"
    / "converse_claude-sonnet-4_reasoning_text.bin"
)


def body() -> tuple[str, bytes]:
    if RECORDING.is_file():
        return RECORDING.name, RECORDING.read_bytes()
    headers = {
        ":event-type": "contentBlockDelta",
        ":content-type": "application/json",
        ":message-type": "event",
    }
    payload = orjson.dumps({"contentBlockIndex": 0, "delta": {"text": "word " * 8}, "p": "abcdefgh" * 4})
    return "25 synthetic messages", b"".join(eventstream_message(headers, payload) for _ in range(25))


def streamwrap_decoder(chunks: Sequence[bytes]) -> int:
    decoder = EventStreamDecoder("bedrock")
    n = 0
    for chunk in chunks:
        n += len(decoder.feed(chunk))
    decoder.close()
    return n


def botocore_buffer(chunks: Sequence[bytes]) -> int:
    buffer = EventStreamBuffer()
    n = 0
    for chunk in chunks:
        buffer.add_data(chunk)
        for _ in buffer:
            n += 1
    return n


def per_message(run: Callable[[Sequence[bytes]], int], chunks: Sequence[bytes], rounds: int) -> float:
    messages = run(chunks)
    repeat = max(1, 20_000 // max(1, len(chunks)))
    samples = []
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(repeat):
            run(chunks)
        samples.append((time.process_time() - start) / repeat / messages * 1e6)
    return statistics.median(samples)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args(argv)
    name, data = body()
    print(f"{name}, {len(data)} bytes\n")
    print("| reads of | streamwrap µs/message | botocore µs/message | ratio |")
    print("|---|---|---|---|")
    for size in (None, 7, 1):
        chunks = [data] if size is None else [data[i : i + size] for i in range(0, len(data), size)]
        ours = per_message(streamwrap_decoder, chunks, args.rounds)
        theirs = per_message(botocore_buffer, chunks, args.rounds)
        label = "whole body" if size is None else f"{size} bytes"
        print(f"| {label} | {ours:.2f} | {theirs:.2f} | {ours / theirs:.2f}× |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
