"""Tokens per second of the embedded model: ``local_chat`` in-process, and the same GGUF
served by llama.cpp's server (``xllamacpp.Server``, in-process on a loopback port) and
streamed through ``openai_chat``.

    python benchmarks/bench_local.py [--max-tokens 256] [--runs 3]

Generation speed is measured at the client: (output tokens - 1) / (time from the first
token to the end), so model loading and prompt processing are left out; the time to the
first token is printed beside it. The model is fetched into the cache first if needed.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
from collections.abc import Sequence
from typing import Any

import streamwrap
from streamwrap._model_source import resolve_model

PROMPT = "Write a long story about a dragon."


def measure(model: streamwrap.ModelWrapper, max_tokens: int, runs: int, **extra: Any) -> tuple[float, float]:
    """Median tokens/s and median time to first token over ``runs`` seeded replies."""
    rates, firsts = [], []
    for seed in range(1, runs + 1):
        response = model.call_sync(PROMPT, max_tokens=max_tokens, temperature=0.8, seed=seed, **extra)
        for _ in response.stream_sync():
            pass
        first, total = response.time_to_first_token, response.duration
        assert first is not None and total is not None and response.usage.output_tokens
        rates.append((response.usage.output_tokens - 1) / (total - first))
        firsts.append(first)
    return statistics.median(rates), statistics.median(firsts)


def bench_local(threads: int | None, max_tokens: int, runs: int) -> tuple[float, float]:
    config: dict[str, Any] = {"model_type": "local_chat", "model_name": "smollm2", "stream": True}
    if threads:
        config["n_threads"] = threads
    model = streamwrap.load_model(config)
    _ = model.call_sync("hi", max_tokens=2).text  # load the model outside the measurement
    return measure(model, max_tokens, runs)


def bench_server(gguf: str, threads: int, max_tokens: int, runs: int) -> tuple[float, float]:
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = gguf
    params.model_alias = {"smollm2"}
    params.hostnames = ["127.0.0.1"]
    params.port = 0
    params.n_ctx = 2048
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    server = xllamacpp.Server(params)  # returns once the model is loaded and listening
    try:
        model = streamwrap.load_model({"model_type": "openai_chat", "model_name": "smollm2", "stream": True,
                                       "base_url": server.listening_address.rstrip("/") + "/v1"})
        # cache_prompt=False: every run processes its prompt, as local_chat does.
        return measure(model, max_tokens, runs, cache_prompt=False)
    finally:
        del server
        gc.collect()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    gguf = str(resolve_model("smollm2", progress=sys.stderr))
    print(f"SmolLM2-135M-Instruct Q4_1, {args.max_tokens} tokens, median of {args.runs} ({os.cpu_count()} CPUs)\n")
    print("| path | threads | tokens/s | first token |")
    print("|---|---|---|---|")
    for threads in (1, 2):
        rate, first = bench_local(threads, args.max_tokens, args.runs)
        print(f"| local_chat (in-process) | {threads} | {rate:.0f} | {first:.2f} s |", flush=True)
    for threads in (1, 2):
        rate, first = bench_server(gguf, threads, args.max_tokens, args.runs)
        print(f"| llama.cpp server → openai_chat | {threads} | {rate:.0f} | {first:.2f} s |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
