"""The cold start (the provider SDK's import, its client's construction) is kept out of the
first call's ``time_to_first_token``, ``prepare()`` moves it ahead of the first call, and
``streamwrap serve`` does it before it listens.

The first call of a fresh process is what is measured, so each measurement runs in a
subprocess of its own, against the emulator of this one. The assertions compare durations
measured together on the same machine (the cold start against what is left of it), never
against a fixed number of seconds.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

import streamwrap
from streamwrap.testing import Emulator, Reply

pytestmark = pytest.mark.anyio

TEXT = ["a ", "b ", "c "]

# A fresh process: the model's first call (optionally prepared first), then two more.
FIRST_CALLS = textwrap.dedent(
    """
    import json, sys, time
    import streamwrap

    model = streamwrap.load_model({"model_type": "openai_chat", "model_name": "m", "stream": True,
                                   "base_url": sys.argv[1], "api_key": "sk-test", "max_retries": 0})
    out = {}
    if sys.argv[2] == "prepare":
        started = time.monotonic()
        model.prepare()
        out["prepare"] = time.monotonic() - started
        started = time.monotonic()
        model.prepare()
        out["prepare_again"] = time.monotonic() - started
    calls = []
    for _ in range(3):
        started = time.monotonic()
        response = model.call_sync("hi")
        first = None
        for _, text in response.stream_sync():  # (to the end: leaving early cancels it)
            if text and first is None:
                first = time.monotonic() - started
        calls.append({"wall": first, "ttft": response.time_to_first_token})
    out["calls"] = calls
    print(json.dumps(out))
    """
)


def first_calls(emu: Emulator, mode: str) -> dict[str, Any]:
    emu.script(*[Reply(text=TEXT)] * 3)
    result = subprocess.run(
        [sys.executable, "-c", FIRST_CALLS, emu.openai_base_url, mode],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
    )
    assert result.returncode == 0, result.stderr
    out: dict[str, Any] = json.loads(result.stdout)
    return out


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "STREAMWRAP_"))}


def test_time_to_first_token_of_a_first_call_leaves_out_the_sdk_import(emu: Emulator) -> None:
    first, second, _ = first_calls(emu, "lazy")["calls"]
    # The first call waited for the import and the client (wall), which the clock left out:
    # what it counted beyond a warm call's is less than what it left out.
    cold_start = first["wall"] - first["ttft"]
    assert first["ttft"] - second["ttft"] < cold_start, (first, second)
    assert first["ttft"] <= first["wall"] and second["ttft"] <= second["wall"]


def test_prepare_does_the_cold_start_ahead_of_the_first_call(emu: Emulator) -> None:
    out = first_calls(emu, "prepare")
    first, second, third = out["calls"]
    # The first call is then about as quick as the next ones: far below what prepare() took.
    assert first["wall"] < out["prepare"] / 2, out
    assert first["wall"] - min(second["wall"], third["wall"]) < out["prepare"] / 4, out
    # ... and preparing again is nothing.
    assert out["prepare_again"] < out["prepare"] / 10, out


async def test_aprepare_then_calls_as_usual(emu: Emulator) -> None:
    model = streamwrap.load_model(
        {
            "model_type": "openai_chat",
            "model_name": "m",
            "stream": True,
            "base_url": emu.openai_base_url,
            "api_key": "sk-test",
            "max_retries": 0,
        }
    )
    await model.aprepare()
    await model.aprepare()
    emu.script(Reply(text=TEXT))
    response = await model("hi")
    assert await response.aread() == "".join(TEXT)
    assert response.time_to_first_token is not None and response.duration is not None
    assert 0 < response.time_to_first_token <= response.duration
    await model.aclose()


async def test_prepare_raises_what_the_first_call_would(emu: Emulator) -> None:
    model = streamwrap.load_model(
        {
            "model_type": "openai_chat",
            "model_name": "m",
            "base_url": emu.openai_base_url,
            "client_args": {"no_such_option": 1},
        }
    )
    with pytest.raises(streamwrap.ConfigError, match="client_args"):
        await model.aprepare()
    with pytest.raises(streamwrap.ConfigError, match="client_args"):
        model.prepare()


# -- streamwrap serve ---------------------------------------------------------------------------


def _sdk_import_seconds() -> float:
    """How long ``import openai`` takes in a fresh process on this machine, now."""
    code = "import time; t = time.monotonic(); import openai; print(time.monotonic() - t)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=_env()
    )
    assert result.returncode == 0, result.stderr
    return float(result.stdout)


def _time_to_first_byte(client: Any, url: str) -> float:
    started = time.monotonic()
    with client.stream("GET", url + "api/chat/text", params={"prompt": "hi"}) as response:
        first: float | None = None
        for _ in response.iter_raw():
            if first is None:
                first = time.monotonic() - started
        assert response.status_code == 200
    assert first is not None
    return first


def test_serve_answers_its_first_request_without_waiting_for_the_sdk(emu: Emulator) -> None:
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("uvicorn")
    emu.script(*[Reply(text=TEXT)] * 4)
    env = {**_env(), "OLLAMA_HOST": "127.0.0.1:9"}  # (not probed: the model is given)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamwrap",
            "serve",
            "--base-url",
            emu.openai_base_url,
            "--model-name",
            "m",
            "--port",
            "0",
            "-q",
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stderr is not None
        for line in process.stderr:
            match = re.search(r"serving at (http://\S+/)", line)
            if match:
                break
        else:
            pytest.fail(f"streamwrap serve exited {process.wait()} without serving")
        with httpx.Client(timeout=30) as client:
            times = [_time_to_first_byte(client, match.group(1)) for _ in range(4)]
    finally:
        process.terminate()
        process.wait(10)
    warm = statistics.median(times[1:])
    # Before the fix, the first request paid for the SDK's import (and more) on top of
    # what the others take; now at most a fraction of it.
    assert times[0] - warm < _sdk_import_seconds() / 2, times


def test_serve_reports_a_model_it_cannot_build_before_listening(emu: Emulator, tmp_path: Path) -> None:
    config = tmp_path / "models.json"
    config.write_text(
        json.dumps(
            [
                {
                    "model_type": "openai_chat",
                    "model_name": "m",
                    "base_url": emu.openai_base_url,
                    "client_args": {"no_such_option": 1},
                }
            ]
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", "streamwrap", "serve", "--config", str(config), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
    )
    assert result.returncode == 2, result.stderr
    assert "configuration error" in result.stderr and "client_args" in result.stderr
    assert "serving at" not in result.stderr and "Traceback" not in result.stderr


def test_chat_app_prepares_the_model_at_startup(emu: Emulator) -> None:
    testclient = pytest.importorskip("starlette.testclient")
    from streamwrap.web import chat_app

    model = streamwrap.load_model(
        {
            "model_type": "openai_chat",
            "model_name": "m",
            "base_url": emu.openai_base_url,
            "client_args": {"no_such_option": 1},
        }
    )
    # The lifespan prepares the model: a client it cannot build fails the startup, not
    # the first request.
    with pytest.raises(streamwrap.ConfigError, match="client_args"):
        with testclient.TestClient(chat_app(model)):
            pass
