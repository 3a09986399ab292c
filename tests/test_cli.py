"""The ``streamwrap`` command, run as a real subprocess against the emulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from streamwrap.testing import Emulator, Reply


def run(args: list[str], stdin: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base_env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    return subprocess.run(
        [sys.executable, "-m", "streamwrap", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={**base_env, **(env or {})},
    )


def test_chat_streams_the_reply_and_reports_usage(emu: Emulator) -> None:
    emu.script(Reply(reasoning=["hmm "], text=["Why ", "did ", "the ", "chicken..."], usage=(5, 4)))
    result = run(["chat", "--base-url", emu.openai_base_url, "--model-name", "m", "Tell me a joke"])
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Why did the chicken...\n"
    assert "hmm" in result.stderr  # reasoning goes to stderr, apart from the answer
    assert "usage: 5 in / 4 out (provider)" in result.stderr
    assert "tokens/s" in result.stderr or "first token" in result.stderr
    assert emu.requests[-1].json["messages"] == [{"role": "user", "content": "Tell me a joke"}]


def test_chat_reads_the_prompt_from_stdin_and_a_config_file(emu: Emulator, tmp_path: Path) -> None:
    config = tmp_path / "models.json"
    config.write_text(
        json.dumps([{"config_name": "local", "model_type": "openai_chat", "model_name": "m",
                     "base_url": emu.openai_base_url, "stream": True}])
    )
    emu.script(Reply(text="from config"))
    result = run(["chat", "--config", str(config), "--name", "local", "-q"], stdin="piped prompt\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "from config\n"
    assert result.stderr == ""
    assert emu.requests[-1].json["messages"][0]["content"] == "piped prompt\n"


def test_chat_without_any_provider_says_how_to_configure_one() -> None:
    result = run(["chat", "hello"])
    assert result.returncode == 2
    assert "no model is configured" in result.stderr
    assert "OPENAI_API_KEY" in result.stderr and "--config" in result.stderr
    assert "Traceback" not in result.stderr


def test_chat_reports_http_errors_cleanly(emu: Emulator) -> None:
    emu.script(Reply(status=401))
    result = run(["chat", "--base-url", emu.openai_base_url, "--model-name", "m", "hi"],
                 env={"OPENAI_API_KEY": "sk-cli-secret-000111"})
    assert result.returncode == 1
    assert "HTTP 401" in result.stderr
    assert "Traceback" not in result.stderr and "sk-cli-secret-000111" not in result.stderr


def test_chat_reports_config_errors_with_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "models.json"
    config.write_text(json.dumps([{"config_name": "x", "model_type": "opnai_chat", "model_name": "m"}]))
    result = run(["chat", "--config", str(config), "--name", "x", "hi"])
    assert result.returncode == 2
    assert "Did you mean 'openai_chat'?" in result.stderr


def test_model_types_lists_the_registry() -> None:
    result = run(["model-types"])
    assert result.returncode == 0
    assert "openai_chat" in result.stdout.split()


@pytest.mark.parametrize("flag", ["--no-stream"])
def test_chat_non_streaming(emu: Emulator, flag: str) -> None:
    emu.script(Reply(text="whole"))
    result = run(["chat", flag, "--base-url", emu.openai_base_url, "--model-name", "m", "hi"])
    assert result.returncode == 0, result.stderr
    assert result.stdout == "whole\n"
    assert emu.requests[-1].json["stream"] is False
