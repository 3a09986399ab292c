"""Tokens per second of the embedded model in-process: streamwrap's ``local_chat`` on
llama.cpp's server engine (xllamacpp), beside llama-cpp-python where it is installed.

    python benchmarks/bench_local.py [--max-tokens 256] [--runs 3] [--threads N] [--gguf PATH]

For 1, 2 and 4 concurrent streams: the median over ``--runs`` rounds of the aggregate
generation speed (all output tokens / wall time from the first request to the last token),
and for one stream its own speed ((output tokens - 1) / (time from first token to end))
and time to first token. Each engine runs in a worker process of its own, with the model
loaded once; the rounds alternate between the engines (and their order), so that both see
the same noise on a shared machine. llama-cpp-python is not thread-safe: its concurrent
streams queue on the one model, as they did in local_chat before xllamacpp.

Both generate with the same sampling (temperature 0.8, top_p 0.95, top_k 40, min_p 0.05,
no repetition penalty) and the same messages, seeded per round.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

PROMPT = "Write a long story about a dragon."
SYSTEM = "You are a helpful assistant."
SAMPLING: dict[str, Any] = {
    "temperature": 0.8,
    "top_p": 0.95,
    "top_k": 40,
    "min_p": 0.05,
    "repeat_penalty": 1.0,
}
STREAMS = (1, 2, 4)
ENGINES = ("xllamacpp", "llama-cpp-python")


# -- workers: one process per engine, a command per line on stdin -------------------------


def _xllamacpp_worker(gguf: str, threads: int | None) -> Any:
    import asyncio

    import streamwrap

    config: dict[str, Any] = {
        "model_type": "local_chat",
        "model_name": gguf,
        "stream": True,
        "n_parallel": max(STREAMS),
        "n_ctx": 1024,
    }
    if threads:
        config["n_threads"] = threads
    model = streamwrap.load_model(config)
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPT}]
    _ = model.call_sync("hi", max_tokens=2).text  # load the model outside the measurement

    async def one(seed: int, max_tokens: int, start: float) -> dict[str, float]:
        response = await model(messages, max_tokens=max_tokens, seed=seed, **SAMPLING)
        first = None
        async for _ in response.stream:
            if first is None:
                first = time.perf_counter()
        end = time.perf_counter()
        tokens = response.usage.output_tokens or 0
        assert first is not None and tokens > 1
        return {"tokens": tokens, "first": first - start, "end": end - start}

    async def run(streams: int, seed: int, max_tokens: int) -> list[dict[str, float]]:
        start = time.perf_counter()
        return list(await asyncio.gather(*(one(seed + i, max_tokens, start) for i in range(streams))))

    return lambda streams, seed, max_tokens: asyncio.run(run(streams, seed, max_tokens))


def _llama_cpp_python_worker(gguf: str, threads: int | None) -> Any:
    import llama_cpp

    args: dict[str, Any] = {"n_ctx": 1024, "verbose": False}
    if threads:
        args["n_threads"] = threads
    llm = llama_cpp.Llama(model_path=gguf, **args)
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPT}]
    llm.create_chat_completion(messages=[{"role": "user", "content": "hi"}], max_tokens=2)  # type: ignore[arg-type]

    def run(streams: int, seed: int, max_tokens: int) -> list[dict[str, float]]:
        # Not thread-safe: concurrent calls take turns on the model, one after the other.
        start = time.perf_counter()
        out = []
        for i in range(streams):
            first = None
            tokens = 0
            for chunk in llm.create_chat_completion(
                messages=messages,
                max_tokens=max_tokens,
                seed=seed + i,
                stream=True,
                **SAMPLING,  # type: ignore[arg-type]
            ):
                if chunk["choices"][0]["delta"].get("content"):  # type: ignore[index]
                    tokens += 1  # one content chunk per token
                    if first is None:
                        first = time.perf_counter()
            assert first is not None and tokens > 1
            out.append({"tokens": tokens, "first": first - start, "end": time.perf_counter() - start})
        return out

    return run


def worker(engine: str, gguf: str, threads: int | None) -> int:
    run = (_xllamacpp_worker if engine == "xllamacpp" else _llama_cpp_python_worker)(gguf, threads)
    print("ready", flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        print(json.dumps(run(command["streams"], command["seed"], command["max_tokens"])), flush=True)
    return 0


# -- the driver ---------------------------------------------------------------------------


class Worker:
    def __init__(self, engine: str, gguf: str, threads: int | None) -> None:
        command = [sys.executable, __file__, "--worker", engine, "--gguf", gguf]
        if threads:
            command += ["--threads", str(threads)]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        ready = self.process.stdout.readline().strip()
        if ready != "ready":
            raise RuntimeError(f"the {engine} worker did not start")

    def run(self, streams: int, seed: int, max_tokens: int) -> list[dict[str, float]]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(
            json.dumps({"streams": streams, "seed": seed, "max_tokens": max_tokens}) + "\n"
        )
        self.process.stdin.flush()
        result: list[dict[str, float]] = json.loads(self.process.stdout.readline())
        return result

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=60)


def installed(engine: str) -> bool:
    import importlib.util

    return importlib.util.find_spec("xllamacpp" if engine == "xllamacpp" else "llama_cpp") is not None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="default: each engine's own")
    parser.add_argument("--gguf", default=None, help="default: the embedded SmolLM2-135M-Instruct Q4_1")
    parser.add_argument("--worker", choices=ENGINES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    gguf = args.gguf
    if gguf is None:
        from streamwrap._providers.llamacpp._model_source import resolve_model

        # Fetched into the cache first if needed (by the driver: the workers find it there).
        gguf = str(resolve_model("smollm2", progress=sys.stderr))
    if args.worker:
        return worker(args.worker, gguf, args.threads)
    engines = [engine for engine in ENGINES if installed(engine)]
    workers = {engine: Worker(engine, gguf, args.threads) for engine in engines}
    # results[engine][streams] = one list of per-stream readings per round
    results: dict[str, dict[int, list[list[dict[str, float]]]]] = {
        e: {k: [] for k in STREAMS} for e in engines
    }
    try:
        for round_ in range(args.runs):
            for streams in STREAMS:
                order = engines if round_ % 2 == 0 else engines[::-1]
                for engine in order:
                    results[engine][streams].append(
                        workers[engine].run(streams, 1 + 10 * round_, args.max_tokens)
                    )
    finally:
        for one in workers.values():
            one.close()
    threads = args.threads or "engine default"
    print(
        f"{os.path.basename(gguf)}, {args.max_tokens} tokens, median of {args.runs} alternating rounds, "
        f"threads: {threads}, {os.cpu_count()} CPUs\n"
    )
    print("| engine | streams | aggregate tokens/s | one stream's tokens/s | first token |")
    print("|---|---|---|---|---|")
    for streams in STREAMS:
        for engine in engines:
            rounds = results[engine][streams]
            aggregate = statistics.median(
                sum(r["tokens"] for r in rnd) / max(r["end"] for r in rnd) for rnd in rounds
            )
            if streams == 1:
                own = statistics.median(
                    (r["tokens"] - 1) / (r["end"] - r["first"]) for rnd in rounds for r in rnd
                )
                first = statistics.median(r["first"] for rnd in rounds for r in rnd)
                print(f"| {engine} | 1 | {aggregate:.0f} | {own:.0f} | {first:.3f} s |")
            else:
                print(f"| {engine} | {streams} | {aggregate:.0f} | | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
