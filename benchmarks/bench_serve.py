# ruff: noqa: RUF001  (the multiplication sign and en dash in printed tables are meant)
"""Server CPU per delivered chunk of ``streamwrap serve`` under concurrent load, against the
FastAPI + openai SDK proxy most people write, and the same SSE body built in-process.

Every part runs in its own process on 127.0.0.1: the emulator (``python -m
streamwrap.testing``), the servers, and a load client that opens ``--streams`` concurrent
``POST /api/chat`` requests and reads every reply to its end (checking the text). What is
measured is the CPU time of the server process (``/proc/PID/stat``, utime + stime, all its
threads) over one round of replies, divided by the number of text chunks delivered.
Contenders:

- ``serve``: ``python -m streamwrap serve --model-type openai_chat --base-url <emulator>``,
  the Vercel UI message stream v1 (what ``useChat`` reads).
- ``fastapi``: a hand-written FastAPI app under uvicorn, ``StreamingResponse`` over
  ``client.chat.completions.create(stream=True)`` of the openai SDK, yielding the same UI
  message stream events as ``json.dumps`` SSE lines, as FastAPI examples do.
- ``floor``: no HTTP server: a process that builds the body of
  ``streamwrap.web.sse_response`` for ``--streams`` concurrent replies in-process and
  drains it (the upstream requests and the encoding, no ASGI, no socket writes).

Both servers run under the same uvicorn, with what ``pip install "streamwrap[web]"``
installs (uvicorn picks httptools when it is importable, else h11: the table says which).
One warm-up round, then ``--rounds`` rounds, each running every contender once in an order
that rotates; medians. Needs ``fastapi`` (requirements-serve.txt beside this file).

    python benchmarks/bench_serve.py --streams 200 --chunks 100 --rounds 5
"""

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _harness as harness

MODEL = harness.MODEL
MESSAGES = harness.MESSAGES
HERE = os.path.abspath(__file__)
CONTENDERS = ("serve", "fastapi", "floor")
LABELS = {
    "serve": "streamwrap serve (UI message stream v1)",
    "baseline": "streamwrap serve, --baseline sources",
    "fastapi": "FastAPI + openai SDK proxy (hand-written SSE)",
    "floor": "sse_response body built in-process (no HTTP server)",
}


# --------------------------------------------------------------------------------------
# Child roles: the hand-written proxy, the in-process floor, the load client
# --------------------------------------------------------------------------------------


def _listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    return sock


def role_fastapi(upstream: str) -> None:
    """The proxy people write: FastAPI, the openai SDK, json.dumps per event."""
    import uvicorn
    from fastapi import FastAPI, Request
    from fastapi.responses import StreamingResponse
    from openai import AsyncOpenAI

    app = FastAPI()
    client = AsyncOpenAI(api_key="bench", base_url=upstream, max_retries=0)

    @app.post("/api/chat")
    async def chat(request: Request) -> StreamingResponse:
        body = await request.json()
        stream = await client.chat.completions.create(model=MODEL, messages=body["messages"], stream=True)

        async def events() -> Any:
            yield f"data: {json.dumps({'type': 'start', 'messageId': 'msg'})}\n\n"
            yield f"data: {json.dumps({'type': 'text-start', 'id': 'text-0'})}\n\n"
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    delta = chunk.choices[0].delta.content
                    yield f"data: {json.dumps({'type': 'text-delta', 'id': 'text-0', 'delta': delta})}\n\n"
            yield f"data: {json.dumps({'type': 'text-end', 'id': 'text-0'})}\n\n"
            yield f"data: {json.dumps({'type': 'finish'})}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    sock = _listening_socket()
    print(f"listening on http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])


def role_floor(upstream: str) -> None:
    """On each ``run N`` line of stdin: N concurrent replies, each ``sse_response``'s body
    drained in-process; prints the text chunks it carried."""
    import streamwrap
    from streamwrap.web import sse_response

    model = streamwrap.load_model(
        {"model_type": "openai_chat", "model_name": MODEL, "base_url": upstream, "api_key": "bench"}
    )
    model.prepare()

    async def one() -> int:
        body = sse_response(model(MESSAGES, stream=True), heartbeat=None)
        data = [chunk async for chunk in body.body_iterator]
        return sum(bytes(c).count(b'"type":"text-delta"') for c in data)

    async def serve_commands() -> None:
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                return
            n = int(line.split()[1])
            counts = await asyncio.gather(*(one() for _ in range(n)))
            print(json.dumps({"chunks": sum(counts)}), flush=True)

    print("ready", flush=True)
    asyncio.run(serve_commands())


async def _one_reply(host: str, port: int, body: bytes) -> tuple[int, str]:
    """One POST /api/chat over a raw connection (``Connection: close``); returns the number
    of text-delta events and their text. Deliberately minimal: the load client must cost
    little, so that the servers get the cores."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        b"POST /api/chat HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (host.encode(), port, len(body), body)
    )
    raw = await reader.read(-1)
    writer.close()
    head, _, rest = raw.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"the server answered {head[:200]!r}")
    if b"transfer-encoding: chunked" in head.lower():
        parts = []
        while True:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                break
            parts.append(rest[:size])
            rest = rest[size + 2 :]
        payload = b"".join(parts)
    else:
        payload = rest
    count = 0
    text = []
    for event in payload.split(b"\n\n"):
        for line in event.split(b"\n"):
            if line.startswith(b"data: {") and b"text-delta" in line:
                count += 1
                text.append(json.loads(line[6:])["delta"])
    return count, "".join(text)


def role_load() -> None:
    """On each ``run URL N EXPECTED_CHUNKS`` line of stdin: N concurrent replies from URL,
    each checked; prints the delivered chunks and the wall time."""
    body = json.dumps({"messages": MESSAGES}).encode()

    async def run(url: str, n: int, expected_text: str) -> dict[str, Any]:
        host, _, port = url.removeprefix("http://").rstrip("/").partition(":")
        start = time.perf_counter()
        replies = await asyncio.gather(*(_one_reply(host, int(port), body) for _ in range(n)))
        wall = time.perf_counter() - start
        for _count, text in replies:
            harness.check(text, expected_text, url)
        return {"chunks": sum(c for c, _ in replies), "wall_s": wall}

    print("ready", flush=True)
    for line in sys.stdin:
        _, url, n, text = json.loads(line)
        print(json.dumps(asyncio.run(run(url, int(n), text))), flush=True)


# --------------------------------------------------------------------------------------
# The parent: start everything, alternate contenders, measure server CPU
# --------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read()
    fields = stat[stat.rfind(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Child:
    """A child process that says when it is ready (and, for a server, its URL), then
    answers one JSON line on stdout per command line on stdin."""

    def __init__(
        self, cmd: list[str], env: dict[str, str] | None = None, *, ready_on_stderr: str = ""
    ) -> None:
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE if ready_on_stderr else None,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.url = ""
        stream = self.proc.stderr if ready_on_stderr else self.proc.stdout
        assert stream is not None
        for _ in range(50):
            line = stream.readline()
            if not line:
                self.close()
                raise RuntimeError(f"{cmd[:4]} exited before it was ready")
            if ready_on_stderr and ready_on_stderr in line:
                self.url = line.split(ready_on_stderr, 1)[1].split()[0].rstrip("/")
                break
            if "listening on " in line:
                self.url = line.split()[-1]
                break
            if line.strip() == "ready":
                break
        if ready_on_stderr:
            # Keep draining stderr (the request log is off, but warnings may come).
            threading.Thread(target=lambda: [None for _ in stream], daemon=True).start()

    def ask(self, line: str) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        if not answer:
            raise RuntimeError("a child process exited")
        return json.loads(answer)  # type: ignore[no-any-return]

    def close(self) -> None:
        harness.stop_process(self.proc)


def uvicorn_http() -> str:
    try:
        import httptools  # noqa: F401
    except ImportError:
        return "h11"
    return "httptools"


def run(
    streams: int,
    chunks: int,
    rounds: int,
    chunk_text: str,
    delay: float,
    which: list[str],
    baseline: str | None,
) -> dict[str, Any]:
    expected = chunk_text * chunks
    total = streams * chunks
    emulator_cmd = [
        sys.executable, "-m", "streamwrap.testing", "--port", "0", "--chunks", str(chunks),
        "--chunk-text", chunk_text, "--usage", "--delay", str(delay),
    ]  # fmt: skip
    children: dict[str, Child] = {}
    emulator = Child(emulator_cmd)
    try:
        upstream = emulator.url + "/v1"
        if "serve" in which:
            children["serve"] = Child(
                [sys.executable, "-m", "streamwrap", "serve", "--quiet", "--port", "0",
                 "--model-type", "openai_chat", "--model-name", MODEL, "--base-url", upstream],
                {"OPENAI_API_KEY": "bench"},
                ready_on_stderr="serving at ",
            )  # fmt: skip
        if baseline is not None:
            children["baseline"] = Child(
                [sys.executable, "-m", "streamwrap", "serve", "--quiet", "--port", "0",
                 "--model-type", "openai_chat", "--model-name", MODEL, "--base-url", upstream],
                {"OPENAI_API_KEY": "bench", "PYTHONPATH": baseline},
                ready_on_stderr="serving at ",
            )  # fmt: skip
            which = [*which, "baseline"]
        if "fastapi" in which:
            children["fastapi"] = Child([sys.executable, HERE, "--role", "fastapi", "--upstream", upstream])
        if "floor" in which:
            children["floor"] = Child([sys.executable, HERE, "--role", "floor", "--upstream", upstream])
        load = Child([sys.executable, HERE, "--role", "load"])
        children["load"] = load
        samples: dict[str, list[dict[str, float]]] = {k: [] for k in which}
        for r in range(rounds + 1):
            order = which[r % len(which) :] + which[: r % len(which)]
            for key in order:
                child = children[key]
                cpu0 = cpu_seconds(child.proc.pid)
                emu0 = cpu_seconds(emulator.proc.pid)
                t0 = time.perf_counter()
                if key == "floor":
                    got = child.ask(f"run {streams}")
                else:
                    got = load.ask(json.dumps(["run", child.url, streams, expected]))
                wall = time.perf_counter() - t0
                cpu = cpu_seconds(child.proc.pid) - cpu0
                emu = cpu_seconds(emulator.proc.pid) - emu0
                if got["chunks"] != total:
                    raise AssertionError(f"{key}: {got['chunks']} text chunks delivered, expected {total}")
                if r > 0:
                    samples[key].append(
                        {"us_per_chunk": cpu / total * 1e6, "wall_s": wall, "emulator_busy": emu / wall}
                    )
            harness.log(f"serve: round {r}/{rounds}{' (warm-up)' if r == 0 else ''} done")
    finally:
        for child in children.values():
            child.close()
        emulator.close()
    rows = []
    for key in which:
        us = [s["us_per_chunk"] for s in samples[key]]
        rows.append(
            {
                "key": key,
                "label": LABELS[key],
                "us_per_chunk": statistics.median(us),
                "min": min(us),
                "max": max(us),
                "wall_s": statistics.median(s["wall_s"] for s in samples[key]),
                "emulator_busy": statistics.median(s["emulator_busy"] for s in samples[key]),
                "samples": us,
            }
        )
    return {"streams": streams, "chunks": chunks, "delay": delay, "rounds": rounds, "rows": rows}


def render(data: dict[str, Any]) -> str:
    by_key = {r["key"]: r for r in data["rows"]}
    ref_fastapi = by_key.get("fastapi", {}).get("us_per_chunk")
    ref_floor = by_key.get("floor", {}).get("us_per_chunk")
    table = [
        [
            r["label"],
            f"{r['us_per_chunk']:.1f}",
            f"{r['min']:.1f}–{r['max']:.1f}",
            harness.ratio(r["us_per_chunk"], ref_fastapi),
            harness.ratio(r["us_per_chunk"], ref_floor),
            f"{data['streams'] * data['chunks'] / r['wall_s']:,.0f}",
            f"{r['emulator_busy']:.0%}",
        ]
        for r in data["rows"]
    ]
    header = [
        "contender",
        "server CPU µs/chunk (median)",
        "min–max",
        "× FastAPI proxy",
        "× in-process body",
        "delivered chunks/s",
        "emulator busy",
    ]
    return harness.markdown_table(header, table)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--streams", type=int, default=200, help="concurrent replies per round (default: 200)"
    )
    parser.add_argument("--chunks", type=int, default=100, help="text chunks per reply (default: 100)")
    parser.add_argument("--rounds", type=int, default=5, help="measured rounds (default: 5)")
    parser.add_argument("--chunk-text", default="tok ")
    parser.add_argument("--delay", type=float, default=0.0, help="the emulator's seconds between events")
    parser.add_argument("--contenders", default=",".join(CONTENDERS), help="any of: " + ", ".join(CONTENDERS))
    parser.add_argument(
        "--baseline",
        help="also run `streamwrap serve` from these sources (a checkout's root, put first on "
        "PYTHONPATH): before/after in one run",
    )
    parser.add_argument("--json", help="also write the raw numbers here")
    parser.add_argument("--role", choices=("fastapi", "floor", "load"), help=argparse.SUPPRESS)
    parser.add_argument("--upstream", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role == "fastapi":
        role_fastapi(args.upstream)
        return 0
    if args.role == "floor":
        role_floor(args.upstream)
        return 0
    if args.role == "load":
        role_load()
        return 0
    which = harness.csv_names(args.contenders)
    if unknown := set(which) - set(CONTENDERS):
        parser.error(f"unknown contenders: {', '.join(sorted(unknown))}")
    started = time.perf_counter()
    baseline = os.path.abspath(args.baseline) if args.baseline else None
    data = run(args.streams, args.chunks, args.rounds, args.chunk_text, args.delay, which, baseline)
    meta = harness.run_meta("starlette", "uvicorn", "fastapi", "h11", "httptools")
    print("# streamwrap serve under load\n")
    print(
        f"Python {meta['python']}, {meta['cpus']} CPUs, uvicorn with {uvicorn_http()}; streamwrap "
        f"{meta['streamwrap_source']}; run time {time.perf_counter() - started:.0f} s.\n"
    )
    print(
        f"## {args.streams} concurrent replies × {args.chunks} chunks, emulator delay {args.delay} s "
        f"({args.rounds} rounds)\n"
    )
    print(render(data))
    print("\n`" + " ".join(["python", *[os.path.relpath(HERE), *sys.argv[1:]]]) + "`")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "serve": data}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
