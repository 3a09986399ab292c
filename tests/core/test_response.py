"""The response contract of DESIGN.md §1, through the real openai SDK and the emulator."""

from __future__ import annotations

import inspect
import threading
import time
import warnings
from typing import Any

import anyio
import pytest

import streamwrap
from streamwrap.testing import Emulator, Fault, Reply, ToolCallSpec

pytestmark = pytest.mark.anyio

TEXT = ["The ", "quick ", "brown ", "fox."]


def prefixes(parts: list[str]) -> list[str]:
    return ["".join(parts[: i + 1]) for i in range(len(parts))]


async def collect(response: streamwrap.ModelResponse) -> list[tuple[bool, str]]:
    return [(is_last, text) async for is_last, text in response.stream]


async def test_stream_is_an_async_generator_of_cumulative_prefixes(emu: Emulator, model: Any) -> None:
    emu.script(Reply(text=TEXT))
    response = await model("hi")
    stream = response.stream
    assert inspect.isasyncgen(stream)
    items = [(is_last, text) async for is_last, text in stream]
    assert items == [(False, p) for p in prefixes(TEXT)] + [(True, "".join(TEXT))]
    assert sum(1 for is_last, _ in items if is_last) == 1
    assert isinstance(items[0], tuple)
    assert response.text == "The quick brown fox."


async def test_every_access_replays_from_the_start(emu: Emulator, model: Any) -> None:
    emu.script(Reply(text=TEXT))
    response = await model("hi")
    first = await collect(response)
    second = await collect(response)
    assert first == second
    assert response.text == "".join(TEXT)
    assert await collect(response) == first  # after .text too


async def test_two_concurrent_consumers_see_the_same_sequence(emu: Emulator, model: Any) -> None:
    emu.script(Reply(text=TEXT * 5, delay=0.01))
    response = await model("hi")
    results: list[list[tuple[bool, str]]] = []

    async def consume() -> None:
        results.append(await collect(response))

    async with anyio.create_task_group() as tg:
        tg.start_soon(consume)
        tg.start_soon(consume)
    assert results[0] == results[1]
    assert results[0][-1] == (True, "".join(TEXT * 5))


async def test_consumer_after_text_sees_the_whole_response(emu: Emulator, model: Any) -> None:
    emu.script(Reply(text=TEXT))
    response = await model("hi")
    text = await response.aread()
    assert await collect(response) == [(False, p) for p in prefixes(TEXT)] + [(True, text)]


async def test_text_drains_on_the_event_loop_thread_and_warns_once(emu: Emulator, model: Any) -> None:
    import streamwrap._response as r

    r._warned_blocking = False
    emu.script(Reply(text=TEXT, delay=0.02), Reply(text=TEXT, delay=0.02))
    response = await model("hi")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert response.text == "".join(TEXT)  # a property, read without await, mid-stream
        second = await model("again")
        assert second.text == "".join(TEXT)
    blocking = [w for w in caught if issubclass(w.category, streamwrap.BlockingReadWarning)]
    assert len(blocking) == 1
    assert "aread" in str(blocking[0].message)


async def test_text_drains_from_a_worker_thread(emu: Emulator, model: Any) -> None:
    emu.script(Reply(text=TEXT, delay=0.01))
    response = await model("hi")
    text = await anyio.to_thread.run_sync(lambda: response.text)
    assert text == "".join(TEXT)


def test_sync_api_over_the_same_objects(emu: Emulator, model: Any) -> None:
    emu.script(Reply(text=TEXT), Reply(text=TEXT))
    response = model.call_sync("hi")
    assert [tuple(c) for c in response.stream_sync()] == [(False, p) for p in prefixes(TEXT)] + [
        (True, "".join(TEXT))
    ]
    assert response.text == "".join(TEXT)
    # .text with nobody iterating, from plain sync code
    assert model.call_sync("hi").text == "".join(TEXT)


async def test_aread_does_not_block_the_callers_loop(emu: Emulator, model: Any) -> None:
    emu.script(Reply(text=TEXT * 3, delay=0.02))
    response = await model("hi")
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await anyio.sleep(0.005)
            ticks += 1

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        assert await response.aread() == "".join(TEXT * 3)
        tg.cancel_scope.cancel()
    # ~12 chunks x 20 ms: a loop that kept running ticked many times.
    assert ticks >= 10


async def test_non_streaming_response_offers_one_final_item(emu: Emulator, model: Any) -> None:
    emu.script(Reply(text=TEXT))
    response = await model("hi", stream=False)
    assert emu.requests[-1].json["stream"] is False
    assert response.done
    assert await collect(response) == [(True, "".join(TEXT))]
    assert response.usage.source == "provider"
    assert response.finish_reason == "stop"


async def test_call_stream_argument_overrides_the_config(emu: Emulator) -> None:
    config = {"model_type": "openai_chat", "model_name": "m", "base_url": emu.openai_base_url, "api_key": "k"}
    non_streaming = streamwrap.load_model({**config, "stream": False})
    streaming = streamwrap.load_model({**config, "stream": True})
    await non_streaming("a")
    await non_streaming("b", stream=True)
    await streaming("c")
    await streaming("d", stream=False)
    assert [r.json["stream"] for r in emu.requests] == [False, True, True, False]


async def test_reasoning_tool_calls_usage_finish_and_identity(emu: Emulator, model: Any) -> None:
    emu.script(
        Reply(
            reasoning=["Let me ", "think."],
            text=["Calling ", "tools."],
            tool_calls=[
                ToolCallSpec("get_weather", ['{"city":', ' "Paris"}']),
                ToolCallSpec("get_time", ['{"tz": ', '"CET"}']),
            ],
            usage=(12, 34),
            model="emulator-9",
        )
    )
    response = await model("hi", tools=[{"name": "get_weather", "parameters": {"type": "object"}}])
    assert response.reasoning == "Let me think."
    assert response.text == "Calling tools."
    calls = response.tool_calls
    assert [(c.name, c.arguments) for c in calls] == [
        ("get_weather", '{"city": "Paris"}'),
        ("get_time", '{"tz": "CET"}'),
    ]
    assert calls[0].parsed_arguments() == {"city": "Paris"}
    assert calls[0].id != calls[1].id and all(c.id for c in calls)
    assert response.finish_reason == "tool_calls" and response.finish_reason_raw == "tool_calls"
    usage = response.usage
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens, usage.source) == (
        12,
        34,
        46,
        "provider",
    )
    assert response.model == "emulator-9"
    assert response.provider_id and response.provider_id.startswith("chatcmpl-")
    assert response.id.startswith("swr-")
    assert response.time_to_first_token is not None and response.time_to_first_token >= 0
    assert response.duration is not None and response.duration >= response.time_to_first_token
    assert response.chunk_count >= 2 + 2 + 4
    sent = emu.requests[-1].json
    assert sent["stream_options"] == {"include_usage": True}
    assert sent["tools"][0]["function"]["name"] == "get_weather"


async def test_reasoning_field_named_reasoning(emu: Emulator, model: Any) -> None:
    emu.script(Reply(reasoning=["a", "b"], reasoning_field="reasoning", text="ok"))
    response = await model("hi")
    assert response.reasoning == "ab"
    assert response.reasoning is not None and response.text == "ok"


async def test_response_id_is_stable_and_distinct(emu: Emulator, model: Any) -> None:
    a = await model("one")
    b = await model("two")
    assert a.id == a.id and a.id != b.id
    await a.aread()
    await b.aread()


async def test_deltas_iterator(emu: Emulator, model: Any) -> None:
    emu.script(Reply(reasoning=["r1"], text=["t1", "t2"], tool_calls=[ToolCallSpec("f", "{}")]))
    response = await model("hi")
    deltas = [d async for d in response.deltas()]
    kinds = [type(d).__name__ for d in deltas]
    assert kinds[0] == "ReasoningDelta" and kinds.count("TextDelta") == 2 and "ToolCallDelta" in kinds
    assert "".join(d for d in deltas if isinstance(d, streamwrap.TextDelta)) == "t1t2"


async def test_usage_is_estimated_and_marked_when_the_server_reports_none(emu: Emulator, model: Any) -> None:
    emu.script(Reply(text="four words right here", usage=None), Reply(text="x"))
    # Passing stream_options ourselves (without include_usage) means the emulator sends no usage.
    response = await model("hello world", stream_options={"include_usage": False})
    usage = response.usage
    assert usage.source == "estimated"
    assert usage.output_tokens is not None and usage.output_tokens > 0
    assert usage.input_tokens is not None and usage.input_tokens > 0


@pytest.mark.parametrize("how", ["break", "aclose"])
async def test_usage_after_a_cancel_is_an_estimate_of_what_arrived(
    emu: Emulator, model: Any, how: str
) -> None:
    # The provider reports usage only at the end (include_usage), which a cancel never
    # reaches: what arrived is counted locally, about four characters a token, rounded up
    # (streamwrap._usage), reasoning included, and marked so.
    prompt = "Tell me a story about a cat"  # 27 characters: 7 tokens
    reasoning, text = ["hmm, "], ["Once ", "upon ", "a time"]  # 5 + 16 characters: 6 tokens
    # The stall keeps the rest (and the usage chunk) from arriving: what was received when
    # the consumer stops is exactly these chunks.
    emu.script(
        Reply(reasoning=reasoning, text=[*text, " there", " was"], fault=Fault.stall_after(4, seconds=5.0))
    )
    response = await model(prompt)
    if how == "break":
        async for _, so_far in response.stream:
            if so_far == "".join(text):
                break
    else:
        with anyio.fail_after(5):
            while response.partial_text != "".join(text):
                await anyio.sleep(0.01)
        await response.aclose()
    await response.await_done()
    assert response.finish_reason == "cancelled"
    assert response.text == "".join(text)
    usage = response.usage
    assert usage.source == "estimated"
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (7, 6, 13)
    assert (usage.reasoning_tokens, usage.cached_tokens) == (None, None)  # not estimated: unknown


async def test_stream_options_rejected_retries_once_and_remembers() -> None:
    # A fresh emulator: the "rejects stream_options" memory is per endpoint.
    with Emulator() as emu:
        model = streamwrap.load_model(
            {
                "model_type": "openai_chat",
                "model_name": "m",
                "stream": True,
                "base_url": emu.openai_base_url,
                "api_key": "k",
                "max_retries": 0,
            }
        )
        # The rejected request consumes a reply of its own.
        emu.script(
            Reply(text="unused", reject_stream_options=True),
            Reply(text="ok"),
            Reply(text="again", reject_stream_options=True),
        )
        first = await model("hi")
        assert first.text == "ok"
        assert first.usage.source == "estimated"
        second = await model("hi")
        assert second.text == "again"
        sent = [r.json for r in emu.requests]
        assert ["stream_options" in body for body in sent] == [True, False, False]


async def test_generate_args_are_sent_and_unknown_ones_go_in_the_body(emu: Emulator) -> None:
    model = streamwrap.load_model(
        {
            "model_type": "openai_chat",
            "model_name": "m",
            "base_url": emu.openai_base_url,
            "api_key": "k",
            "generate_args": {"temperature": 0.2, "top_k": 5},
        }
    )
    await model("hi", max_tokens=7, temperature=0.9)
    body = emu.requests[-1].json
    assert (body["temperature"], body["top_k"], body["max_tokens"]) == (0.9, 5, 7)


async def test_messages_and_agentscope_style_objects(emu: Emulator, model: Any) -> None:
    class Msg:
        def __init__(self, name: str, role: str, content: str) -> None:
            self.name, self.role, self.content = name, role, content

    await model([{"role": "system", "content": "be brief"}, Msg("alice", "user", "hi")])
    sent = emu.requests[-1].json["messages"]
    assert sent == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi", "name": "alice"},
    ]


def test_text_from_many_threads_at_once(emu: Emulator, model: Any) -> None:
    emu.script(Reply(text=TEXT * 10, delay=0.002))
    response = model.call_sync("hi")
    seen: list[str] = []
    threads = [threading.Thread(target=lambda: seen.append(response.text)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen == ["".join(TEXT * 10)] * 8


def test_time_to_first_token_measures_the_wait(emu: Emulator, model: Any) -> None:
    emu.script(Reply(text=["a", "b"], first_delay=0.2))
    started = time.monotonic()
    response = model.call_sync("hi")
    assert response.text == "ab"
    assert response.time_to_first_token is not None
    assert 0.15 <= response.time_to_first_token <= time.monotonic() - started


async def test_late_consumer_of_a_stream_ending_in_non_text_items(emu: Emulator, model: Any) -> None:
    # The last batch holds only reasoning and tool-call items: a consumer arriving after
    # the end must still finish (it once waited forever on the terminal channel).
    emu.script(Reply(text="a", reasoning=["r1", "r2"], tool_calls=[ToolCallSpec("f", "{}")]))
    response = await model("hi")
    await response.aread()
    with anyio.fail_after(5):
        assert await collect(response) == [(False, "a"), (True, "a")]
        assert [type(d).__name__ async for d in response.deltas()][-1] == "ToolCallDelta"
    assert [tuple(c) for c in response.stream_sync()] == [(False, "a"), (True, "a")]
