"""``openai_responses``: OpenAI's Responses API, over real HTTP to the emulator.

Real Responses recordings (../shared/recordings/openai_responses, routed by
tests/support/recordings.py) are replayed byte for byte through the wrapper (the openai SDK
sends, streamwrap decodes), cut per event, in 7-byte and in 1-byte pieces, and must parse
to their ``expected`` block; scripted replies check the request the wrapper sends (input
items, function tools, pass-through parameters) and the failures (incomplete, failed and
error events, HTTP errors).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import orjson
import pytest

import streamwrap
from streamwrap import ReasoningDelta, TextDelta, ToolCallDelta
from streamwrap.testing import Emulator, Fault, Reply, ToolCallSpec
from tests.support import providers
from tests.support import recordings as _recordings

pytestmark = pytest.mark.anyio

API_KEY = providers.KEY
SPLITS = ["event", 7, 1]

STREAMING = _recordings.params(
    "meta_path, meta",
    _recordings.select(wire=_recordings.OPENAI_RESPONSES),
    lambda r: (r.meta_path, r.meta),
    what="OpenAI Responses",
)

make_model = partial(providers.make_model, model_type="openai_responses", api_key=API_KEY)


@pytest.fixture
def model(emu: Emulator) -> Any:
    return make_model(emu)


def _sse(*objs: dict[str, Any]) -> bytes:
    return b"".join(b"event: " + o["type"].encode() + b"\ndata: " + orjson.dumps(o) + b"\n\n" for o in objs)


async def _deltas(response: streamwrap.ModelResponse) -> list[Any]:
    return [d async for d in response.deltas()]


# -- recordings ---------------------------------------------------------------------------


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize(("meta_path", "meta"), STREAMING)
async def test_recording_replays_to_expected(
    emu: Emulator, model: Any, recordings: Path, meta_path: Path, meta: dict[str, Any], split: str | int
) -> None:
    expected = meta["expected"]
    emu.replay(_recordings.body(meta_path, meta), content_type=_recordings.content_type(meta), split=split)
    response = await model("hi")
    items = [(item.is_last, item.text_so_far) async for item in response.stream]
    # A refusal is the reply's text, finished as "refusal" (content_filter).
    text = expected["text"] + (expected["refusal"] or "")
    assert items[-1] == (True, text)
    assert [i for i, (is_last, _) in enumerate(items) if is_last] == [len(items) - 1]
    deltas = await _deltas(response)
    assert "".join(d for d in deltas if type(d) is TextDelta) == text
    assert "".join(d for d in deltas if type(d) is ReasoningDelta) == (expected["reasoning"] or "")
    assert all(type(d) in (TextDelta, ReasoningDelta, ToolCallDelta) for d in deltas)

    assert response.done and response.error is None
    assert response.text == text
    assert response.reasoning == expected["reasoning"]
    if expected["reasoning"]:
        # Summary parts have no separator on the wire: a blank line between them.
        assert response.reasoning == "\n\n".join(expected["reasoning_summary_parts"])
    # A call's id is its call_id (what a function_call_output answers), not the fc_ item id.
    assert [(c.id, c.name, c.arguments, c.index) for c in response.tool_calls] == [
        (c["id"], c["name"], c["arguments"], c["output_index"]) for c in expected["tool_calls"]
    ]
    if expected["refusal"]:
        assert (response.finish_reason, response.finish_reason_raw) == ("content_filter", "refusal")
    else:
        assert response.finish_reason_raw == expected["finish_reason"] == "completed"
        assert response.finish_reason == ("tool_calls" if expected["tool_calls"] else "stop")
    assert (response.provider_id, response.model) == (expected["response_id"], expected["model"])
    assert response.provider == "openai"
    usage, raw = response.usage, expected["usage"]
    assert usage.source == "provider"
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (
        raw["input_tokens"],
        raw["output_tokens"],
        raw["total_tokens"],
    )
    assert usage.cached_tokens == raw["input_tokens_details"]["cached_tokens"]
    assert usage.reasoning_tokens == raw["output_tokens_details"]["reasoning_tokens"]
    assert usage.raw is not None and dict(usage.raw) == raw

    (request,) = emu.requests
    assert request.path == "/v1/responses"
    assert request.json["stream"] is True
    assert request.headers["authorization"] == f"Bearer {API_KEY}"


# -- scripted replies: what the wrapper sends and reads --------------------------------------


async def test_streams_reasoning_text_tool_calls_and_usage(emu: Emulator, model: Any) -> None:
    emu.script(
        Reply(
            reasoning="Let me think.",
            text="Calling two tools.",
            tool_calls=[ToolCallSpec("get_weather", '{"city": "Paris"}'), ToolCallSpec("get_time", "{}")],
            usage=(12, 30),
        )
    )
    response = await model("hi")
    assert await response.aread() == "Calling two tools."
    assert response.reasoning == "Let me think."
    calls = response.tool_calls
    assert [(c.name, c.parsed_arguments()) for c in calls] == [
        ("get_weather", {"city": "Paris"}),
        ("get_time", {}),
    ]
    assert all(c.id.startswith("call_emu_") for c in calls)
    assert len({c.index for c in calls}) == 2
    assert (response.finish_reason, response.finish_reason_raw) == ("tool_calls", "completed")
    assert response.provider_id is not None and response.provider_id.startswith("resp_")
    assert (response.usage.input_tokens, response.usage.output_tokens, response.usage.total_tokens) == (
        12,
        30,
        42,
    )
    assert response.usage.reasoning_tokens == 3  # one per reasoning chunk (word) of the emulator


async def test_non_streaming_reads_the_response_object(emu: Emulator, model: Any) -> None:
    emu.script(Reply(reasoning="Hmm.", text="Four.", tool_calls=[ToolCallSpec("add", '{"a": 2}')]))
    response = await model("2+2?", stream=False)
    assert await response.aread() == "Four."
    assert response.reasoning == "Hmm."
    assert [(c.name, c.arguments) for c in response.tool_calls] == [("add", '{"a": 2}')]
    assert response.finish_reason == "tool_calls"
    assert response.usage.source == "provider"
    assert emu.requests[0].json["stream"] is False


async def test_messages_and_tools_become_input_items_and_function_tools(emu: Emulator, model: Any) -> None:
    emu.script(Reply(text="Sunny."))
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    messages = [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Weather?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"sky": "clear"}'},
    ]
    response = await model(messages, tools=tools)
    assert await response.aread() == "Sunny."
    body = emu.requests[0].json
    assert body["input"] == [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": "Weather?"},
                {"type": "input_image", "image_url": "data:image/png;base64,AAAA"},
            ],
        },
        {
            "type": "function_call",
            "call_id": "call_1",
            "name": "get_weather",
            "arguments": '{"city": "Paris"}',
        },
        {"type": "function_call_output", "call_id": "call_1", "output": '{"sky": "clear"}'},
    ]
    assert body["tools"] == [
        {
            "type": "function",
            "name": "get_weather",
            "description": "The weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]
    assert "messages" not in body and "stream_options" not in body


async def test_built_in_tools_pass_through_beside_function_tools(emu: Emulator, model: Any) -> None:
    emu.script(Reply(text="Found it."))
    tools = [
        {"type": "web_search", "search_context_size": "low"},
        {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
        {"type": "file_search", "vector_store_ids": ["vs_1"]},
    ]
    assert await (await model("Search", tools=tools)).aread() == "Found it."
    assert emu.requests[0].json["tools"] == [
        {"type": "web_search", "search_context_size": "low"},
        {"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}},
        {"type": "file_search", "vector_store_ids": ["vs_1"]},
    ]


async def test_an_unknown_tool_type_names_the_accepted_ones(model: Any) -> None:
    with pytest.raises(streamwrap.InputError) as info:
        await model("hi", tools=[{"type": "retrieval"}])
    message = str(info.value)
    assert "tools[0]" in message and "'retrieval'" in message
    assert "'function'" in message and "web_search" in message and "code_interpreter" in message


async def test_a_chat_wrapper_refuses_a_built_in_tool(emu: Emulator) -> None:
    # Built-in tools exist in the Responses API only: openai_chat keeps refusing them.
    chat = providers.make_model(emu, model_type="openai_chat")
    with pytest.raises(streamwrap.InputError, match="only type 'function' is supported, got 'web_search'"):
        await chat("hi", tools=[{"type": "web_search"}])
    assert emu.requests == []


async def test_tool_calls_of_a_response_go_back_as_function_calls(emu: Emulator, model: Any) -> None:
    emu.script(Reply(tool_calls=[ToolCallSpec("get_time", "{}")]), Reply(text="Noon."))
    first = await model("What time is it?")
    await first.aread()
    (call,) = first.tool_calls
    messages = [
        {"role": "user", "content": "What time is it?"},
        {"role": "assistant", "content": first.text or None, "tool_calls": first.tool_calls},
        {"role": "tool", "tool_call_id": call.id, "content": "12:00"},
    ]
    second = await model(messages)
    assert await second.aread() == "Noon."
    items = emu.requests[1].json["input"]
    assert items[1:] == [
        {"type": "function_call", "call_id": call.id, "name": "get_time", "arguments": "{}"},
        {"type": "function_call_output", "call_id": call.id, "output": "12:00"},
    ]


async def test_responses_parameters_pass_through(emu: Emulator, model: Any) -> None:
    emu.script(Reply(text="a"), Reply(text="b"))
    first = await model(
        "hi",
        instructions="Answer in French.",
        reasoning={"effort": "low", "summary": "auto"},
        store=False,
        include=["reasoning.encrypted_content"],
        max_tokens=50,
        top_k=3,
    )
    await first.aread()
    body = emu.requests[0].json
    assert body["instructions"] == "Answer in French."
    assert body["reasoning"] == {"effort": "low", "summary": "auto"}
    assert body["store"] is False
    assert body["include"] == ["reasoning.encrypted_content"]
    assert body["max_output_tokens"] == 50 and "max_tokens" not in body  # the chat name, renamed
    assert body["top_k"] == 3  # unknown to the SDK: sent in the body all the same
    # The chat names and shapes, in the Responses API's.
    emu.script(Reply(text="c"))
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    chat_named = await model(
        "hi",
        reasoning_effort="high",
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "A", "schema": schema, "strict": True},
        },
        tool_choice={"type": "function", "function": {"name": "get_time"}},
        max_completion_tokens=20,
    )
    await chat_named.aread()
    body = emu.requests[-1].json
    assert body["reasoning"] == {"effort": "high"}
    assert body["text"] == {"format": {"type": "json_schema", "name": "A", "schema": schema, "strict": True}}
    assert body["tool_choice"] == {"type": "function", "name": "get_time"}
    assert body["max_output_tokens"] == 20
    assert not {"reasoning_effort", "response_format", "max_completion_tokens"} & set(body)
    # The response id is what previous_response_id takes.
    second = await model("more", previous_response_id=first.provider_id)
    await second.aread()
    assert emu.requests[-1].json["previous_response_id"] == first.provider_id


@pytest.mark.parametrize(
    ("scripted", "reason", "raw"),
    [("length", "length", "max_output_tokens"), ("content_filter", "content_filter", "content_filter")],
)
async def test_incomplete_response_finishes_by_its_reason(
    emu: Emulator, model: Any, scripted: str, reason: str, raw: str
) -> None:
    emu.script(Reply(text="Partial answer", finish_reason=scripted))
    response = await model("hi")
    assert await response.aread() == "Partial answer"
    assert (response.finish_reason, response.finish_reason_raw) == (reason, raw)


@pytest.mark.parametrize(
    "fault",
    [Fault.error_event_after(2, code="server_error"), Fault.inband_error_after(2, code="server_error")],
)
async def test_error_and_failed_events_raise_with_the_partial_text(
    emu: Emulator, model: Any, fault: Fault
) -> None:
    emu.script(Reply(text="one two three four", fault=fault))
    response = await model("hi")
    with pytest.raises(streamwrap.ProviderStreamError) as info:
        await response.aread()
    assert info.value.partial_text == "one two "
    assert info.value.code == "server_error"


async def test_a_stream_without_its_terminal_event_is_interrupted(emu: Emulator, model: Any) -> None:
    emu.script(Reply(text="one two", fault=Fault.end_without_finish_after(1)))
    response = await model("hi")
    with pytest.raises(streamwrap.StreamInterruptedError) as info:
        await response.aread()
    assert info.value.partial_text == "one "


async def test_unknown_event_types_are_skipped(emu: Emulator, model: Any) -> None:
    body = _sse(
        {"type": "response.created", "response": {"id": "resp_1", "model": "gpt-5", "status": "in_progress"}},
        {"type": "response.web_search_call.in_progress", "output_index": 0, "item_id": "ws_1"},
        {"type": "response.output_text.delta", "output_index": 1, "content_index": 0, "delta": "Hi"},
        {"type": "response.something_new", "whatever": [1, 2]},
        {"type": "response.completed", "response": {"id": "resp_1", "status": "completed", "usage": None}},
    )
    emu.replay(body)
    response = await model("hi")
    assert await response.aread() == "Hi"
    assert (response.provider_id, response.model, response.finish_reason) == ("resp_1", "gpt-5", "stop")


async def test_http_errors_are_openai_errors(emu: Emulator, model: Any) -> None:
    emu.script(Reply(status=401))
    with pytest.raises(streamwrap.AuthenticationError) as info:
        await model("hi")
    assert info.value.status_code == 401 and info.value.provider == "openai"


async def test_encrypted_reasoning_travels_back_with_the_tool_call(emu: Emulator, model: Any) -> None:
    # With store=False and include=["reasoning.encrypted_content"], a reasoning model's
    # function call must be sent back after the reasoning item before it, encrypted.
    reasoning_item = {
        "id": "rs_1",
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": "Need the time."}],
        "encrypted_content": "gAAAA-opaque",
    }
    call_item = {
        "id": "fc_1",
        "type": "function_call",
        "status": "completed",
        "call_id": "call_1",
        "name": "get_time",
        "arguments": "{}",
    }
    body = _sse(
        {"type": "response.created", "response": {"id": "resp_1", "model": "gpt-5", "status": "in_progress"}},
        {"type": "response.output_item.added", "output_index": 0, "item": {**reasoning_item, "summary": []}},
        {"type": "response.reasoning_summary_part.added", "output_index": 0, "summary_index": 0},
        {
            "type": "response.reasoning_summary_text.delta",
            "output_index": 0,
            "summary_index": 0,
            "delta": "Need the time.",
        },
        {"type": "response.output_item.done", "output_index": 0, "item": reasoning_item},
        {"type": "response.output_item.added", "output_index": 1, "item": {**call_item, "arguments": ""}},
        {"type": "response.function_call_arguments.delta", "output_index": 1, "delta": "{}"},
        {"type": "response.output_item.done", "output_index": 1, "item": call_item},
        {"type": "response.completed", "response": {"id": "resp_1", "status": "completed", "usage": None}},
    )
    emu.replay(body)
    first = await model("What time is it?", store=False, include=["reasoning.encrypted_content"])
    await first.aread()
    assert first.reasoning == "Need the time."
    (call,) = first.tool_calls
    assert (call.id, call.name, call.index) == ("call_1", "get_time", 1)
    emu.script(Reply(text="Noon."))
    messages = [
        {"role": "user", "content": "What time is it?"},
        {"role": "assistant", "content": None, "tool_calls": first.tool_calls},
        {"role": "tool", "tool_call_id": "call_1", "content": "12:00"},
    ]
    second = await model(messages, store=False)
    assert await second.aread() == "Noon."
    assert emu.requests[1].json["input"][1:] == [
        reasoning_item,
        {"type": "function_call", "call_id": "call_1", "name": "get_time", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "12:00"},
    ]
    # As a plain dict (the OpenAI message format with the call's extra), the same.
    as_dict = {**call.to_openai(), "extra": dict(call.extra or {})}
    emu.script(Reply(text="Noon."))
    third = await model(
        [*messages[:1], {"role": "assistant", "tool_calls": [as_dict]}, messages[2]], store=False
    )
    await third.aread()
    assert emu.requests[2].json["input"] == emu.requests[1].json["input"]
