"""What resumable replies cost: ``chat_app`` with a ``RedisStreamStore`` against the same
app without a store, under the same load, on loopback only.

``--replies`` concurrent chat requests (default 1,000) spread round-robin over
``--workers`` worker processes (default 4; each ``chat_app`` under uvicorn on a port of
its own) that call the emulator (its own process, ``--chunks`` chunks ``--delay`` seconds
apart); one reader per reply, a minimal HTTP/1.1 client on asyncio (httpx would cost the
shared 2 cores more than the servers do). Every reply's text and seq numbers are checked.
Per mode:

- server CPU per delivered text chunk: user + system time of the worker processes over the
  run, divided by the text chunks the clients received (Redis's own CPU apart);
- the lag of each text chunk: ``arrival - index * delay`` (the emulator's pace) minus the
  smallest such value of its reply (its most punctual chunk), p50 and p99 over every chunk:
  what delivery adds per chunk, apart from the time to the first chunk (reported too,
  p50); the store's added lag is the difference from the run without a store;
- Redis memory (``used_memory``): before, at the peak of the run (sampled every 0.1 s), and
  after the replies' TTL (``--ttl``) ran out, with the number of keys left.

The load is bounded (one request per reply, a timeout per reply) and stops by itself.

    python benchmarks/bench_resume.py                 # 1,000 replies, 4 workers: ~1 minute
    python benchmarks/bench_resume.py --replies 200 --modes none,memory,redis
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from _harness import log, markdown_table, run_meta

ROOT = Path(__file__).resolve().parents[1]


# -- the worker (this script, run as ``--worker MODE EMULATOR REDIS TTL``) ----------------------


def worker(mode: str, emulator_url: str, redis_url: str, ttl: float) -> None:
    import uvicorn

    import streamwrap
    from streamwrap.web import MemoryStreamStore, RedisStreamStore, chat_app

    model = streamwrap.load_model(
        {
            "model_type": "openai_chat",
            "model_name": "emulator-1",
            "base_url": emulator_url + "/v1",
            "api_key": "sk-bench",
            "max_retries": 0,
            "stream": True,
            "timeout": 120,
        }
    )
    store: Any = None
    if mode == "redis":
        store = RedisStreamStore(redis_url, prefix="bench", ttl=ttl)
    elif mode == "memory":
        store = MemoryStreamStore(ttl=ttl)
    app = chat_app(model, store=store, heartbeat=None)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    print(f"port {sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False, backlog=2048)
    uvicorn.Server(config).run(sockets=[sock])


# -- processes --------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read()
    fields = stat[stat.rfind(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Processes:
    def __init__(self) -> None:
        self.all: list[subprocess.Popen[str]] = []

    def start(self, args: list[str], first_line: str) -> tuple[subprocess.Popen[str], str]:
        process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        self.all.append(process)
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith(first_line):
            raise RuntimeError(f"{args[:4]} did not start: {line!r}")
        return process, line[len(first_line) :].strip()

    def stop(self, process: subprocess.Popen[str]) -> None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        self.all.remove(process)

    def close(self) -> None:
        for process in list(self.all):
            self.stop(process)


# -- the client -------------------------------------------------------------------------------


class Result:
    def __init__(self) -> None:
        self.text = ""
        self.seqs: list[int] = []
        self.latencies: list[float] = []
        self.first: float | None = None
        self.error: str | None = None


async def one_reply(port: int, delay: float, chat: str, result: Result) -> None:
    """POST /api/chat and read the UI message stream to its end (HTTP/1.1, chunked)."""
    body = orjson.dumps({"id": chat, "prompt": "Stream me a long answer."})
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.perf_counter()
    writer.write(
        b"POST /api/chat HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body
    )
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            result.error = head.split(b"\r\n", 1)[0].decode()
            return
        pending = b""
        index = 0
        while True:
            size = int((await reader.readuntil(b"\r\n"))[:-2], 16)
            if size == 0:
                break
            pending += (await reader.readexactly(size + 2))[:-2]
            now = time.perf_counter()
            *events, pending = pending.split(b"\n\n")
            for event in events:
                seq = None
                for line in event.split(b"\n"):
                    if line.startswith(b"id: "):
                        seq = int(line.rsplit(b":", 1)[1])
                    elif line.startswith(b"data: {"):
                        chunk = orjson.loads(line[6:])
                        if chunk["type"] == "text-delta":
                            result.text += chunk["delta"]
                            if result.first is None:
                                result.first = now - started
                            result.latencies.append(now - started - index * delay)
                            index += 1
                if seq is not None:
                    result.seqs.append(seq)
    finally:
        writer.close()
    if result.latencies:
        # Each chunk's delay after the reply's most punctual one (the emulator's own pace).
        punctual = min(result.latencies)
        result.latencies = [x - punctual for x in result.latencies]


async def load(ports: list[int], replies: int, delay: float, timeout: float) -> list[Result]:
    results = [Result() for _ in range(replies)]

    async def run(n: int) -> None:
        chat = f"bench-{n:06d}-" + os.urandom(12).hex()
        try:
            await asyncio.wait_for(one_reply(ports[n % len(ports)], delay, chat, results[n]), timeout)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
            results[n].error = f"{type(exc).__name__}: {exc}"

    await asyncio.gather(*(run(n) for n in range(replies)))
    return results


# -- one mode ---------------------------------------------------------------------------------


def redis_info(url: str) -> tuple[int, int]:
    """(used_memory, keys of the bench's prefix)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        used = int(client.info("memory")["used_memory"])
        return used, sum(1 for _ in client.scan_iter(match="bench:*", count=1000))
    finally:
        client.close()


def leases(url: str) -> int:
    import redis

    client = redis.Redis.from_url(url)
    try:
        return sum(1 for _ in client.scan_iter(match="bench:lease:*", count=1000))
    finally:
        client.close()


def run_mode(
    mode: str, args: argparse.Namespace, procs: Processes, emulator_url: str, redis_url: str
) -> dict[str, Any]:
    workers = [
        procs.start(
            [sys.executable, __file__, "--worker", mode, emulator_url, redis_url, str(args.ttl)], "port "
        )
        for _ in range(args.workers)
    ]
    ports = [int(port) for _, port in workers]
    pids = [p.pid for p, _ in workers]
    try:
        memory_before = redis_info(redis_url)[0] if mode == "redis" else None
        peak = [memory_before or 0]
        done = False

        async def sample_memory() -> None:
            while not done:
                peak[0] = max(peak[0], await asyncio.to_thread(lambda: redis_info(redis_url)[0]))
                await asyncio.sleep(0.1)

        async def measured() -> list[Result]:
            nonlocal done
            sampler = asyncio.create_task(sample_memory()) if mode == "redis" else None
            try:
                return await load(ports, args.replies, args.delay, args.timeout)
            finally:
                done = True
                if sampler is not None:
                    await sampler

        # Warm-up, not measured: each worker imports the SDK and opens its connections.
        warm = asyncio.run(load(ports, 4 * len(ports), args.delay, args.timeout))
        if any(r.error for r in warm):
            raise SystemExit(f"{mode}: the warm-up failed: {[r.error for r in warm if r.error][:3]}")
        cpu0 = sum(cpu_seconds(pid) for pid in pids)
        wall0 = time.perf_counter()
        results = asyncio.run(measured())
        wall = time.perf_counter() - wall0
        if mode == "redis":
            # The clients read from their worker's memory: the writes to Redis may still be
            # going on. Their CPU counts too: wait until every reply has ended in Redis.
            deadline = time.monotonic() + 60
            while leases(redis_url) and time.monotonic() < deadline:
                time.sleep(0.05)
        cpu = sum(cpu_seconds(pid) for pid in pids) - cpu0
    finally:
        for process, _ in workers:
            procs.stop(process)
    expected = args.chunk_text * args.chunks
    bad = [r for r in results if r.error or r.text != expected or r.seqs != list(range(len(r.seqs)))]
    if bad:
        sample = bad[0]
        raise SystemExit(
            f"{mode}: {len(bad)} of {len(results)} replies wrong (first: error={sample.error!r}, "
            f"text {len(sample.text)} chars, seqs {sample.seqs[:5]}...)"
        )
    chunks = sum(len(r.latencies) for r in results)
    latencies = sorted(x for r in results for x in r.latencies)
    row: dict[str, Any] = {
        "mode": mode,
        "replies": len(results),
        "text_chunks": chunks,
        "wall_s": wall,
        "server_cpu_s": cpu,
        "cpu_us_per_chunk": cpu / chunks * 1e6,
        "latency_p50_ms": statistics.median(latencies) * 1e3,
        "first_chunk_p50_ms": statistics.median(r.first for r in results if r.first is not None) * 1e3,
        "latency_p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1e3,
    }
    if mode == "redis":
        row["redis_memory_before"] = memory_before
        row["redis_memory_peak"] = peak[0]
        log(f"waiting {args.ttl + 1:g} s for the replies' TTL")
        time.sleep(args.ttl + 1)
        row["redis_memory_after_ttl"], row["redis_keys_after_ttl"] = redis_info(redis_url)
    return row


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replies", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--chunks", type=int, default=40)
    parser.add_argument("--chunk-text", default="tok ")
    parser.add_argument("--delay", type=float, default=0.05, help="seconds between the emulator's chunks")
    parser.add_argument("--ttl", type=float, default=5.0, help="the Redis store's TTL, seconds")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per reply, at most")
    parser.add_argument("--modes", default="none,redis", help="none, memory, redis (comma-separated)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server is not installed: apt-get install -y redis-server")
    procs = Processes()
    folder = tempfile.mkdtemp(prefix="bench-resume-")
    port = free_port()
    redis_process = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            folder,
            "--save",
            "",
            "--appendonly",
            "no",
            "--maxclients",
            "20000",
        ],
        stdout=subprocess.DEVNULL,
    )
    redis_url = f"redis://127.0.0.1:{port}/0"
    try:
        time.sleep(0.3)
        _, emulator_line = procs.start(
            [
                sys.executable,
                "-m",
                "streamwrap.testing",
                "--port",
                "0",
                "--chunks",
                str(args.chunks),
                "--chunk-text",
                args.chunk_text,
                "--delay",
                str(args.delay),
                "--usage",
            ],
            "streamwrap-emulator listening on ",
        )
        rows = []
        for mode in args.modes.split(","):
            log(f"{mode}: {args.replies} replies over {args.workers} workers")
            rows.append(run_mode(mode, args, procs, emulator_line, redis_url))
    finally:
        procs.close()
        redis_process.terminate()
        redis_process.wait()
        shutil.rmtree(folder, ignore_errors=True)
    base = next((r for r in rows if r["mode"] == "none"), None)
    table = []
    for r in rows:
        added = (
            f"+{r['latency_p50_ms'] - base['latency_p50_ms']:.1f} / +{r['latency_p99_ms'] - base['latency_p99_ms']:.1f}"
            if base is not None and r is not base
            else "-"
        )
        table.append(
            [
                r["mode"],
                f"{r['replies']:,}",
                f"{r['text_chunks']:,}",
                f"{r['cpu_us_per_chunk']:.0f}",
                f"{r['first_chunk_p50_ms']:.0f}",
                f"{r['latency_p50_ms']:.1f} / {r['latency_p99_ms']:.1f}",
                added,
                f"{r['wall_s']:.1f}",
            ]
        )
    print(
        f"\n### Resumable replies: {args.replies} concurrent replies, {args.workers} workers, "
        f"{args.chunks} chunks {args.delay * 1000:g} ms apart\n"
    )
    print(
        markdown_table(
            [
                "store",
                "replies (all exact)",
                "text chunks",
                "server CPU µs/chunk",
                "first chunk p50 ms",
                "chunk lag p50 / p99 ms",
                "added lag p50 / p99 ms",
                "wall s",
            ],
            table,
        )
    )
    for r in rows:
        if r["mode"] == "redis":
            mib = 1024 * 1024
            print(
                f"\nRedis used_memory: {r['redis_memory_before'] / mib:.1f} MiB before, "
                f"{r['redis_memory_peak'] / mib:.1f} MiB at the peak, {r['redis_memory_after_ttl'] / mib:.1f} MiB "
                f"after the TTL ({args.ttl:g} s), {r['redis_keys_after_ttl']} keys left"
            )
    if args.json:
        Path(args.json).write_bytes(
            orjson.dumps({"meta": run_meta("redis"), "rows": rows}, option=orjson.OPT_INDENT_2)
        )


if __name__ == "__main__":
    main()
