"""``anthropic_chat``: Anthropic's Messages API, natively, over real HTTP to the emulator.

Real Anthropic recordings (../shared/recordings/anthropic, routed by
tests/support/recordings.py) are replayed byte for byte and must parse to their
``expected`` block, however the body is cut; the request streamwrap sends is checked
against the Messages API's shape; mid-stream ``error`` events, 529s and cut streams raise
typed errors that keep the partial text; thinking blocks travel back with the tool calls.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

import streamwrap
from streamwrap import ReasoningDelta, TextDelta, ToolCallDelta
from streamwrap._providers.anthropic._request import DEFAULT_MAX_TOKENS, build_request_body
from streamwrap._providers.anthropic._wire import AnthropicStreamMapper
from streamwrap._wrapper import ChatRequest
from streamwrap.testing import Emulator, Reply
from tests.support import recordings as _recordings

pytestmark = pytest.mark.anyio

API_KEY = "sk-ant-test-secret-key-0123456789"
MODEL = "claude-sonnet-4-5"

STREAMING = _recordings.params(
    "meta_path, meta",
    _recordings.select(wire=_recordings.ANTHROPIC),
    lambda r: (r.meta_path, r.meta),
    what="Anthropic",
)


def make_model(emu: Emulator, **overrides: Any) -> Any:
    return streamwrap.load_model(
        {
            "model_type": "anthropic_chat",
            "model_name": MODEL,
            "api_key": API_KEY,
            "base_url": emu.url,
            "max_retries": 0,
            "stream": True,
            **overrides,
        }
    )


@pytest.fixture
def model(emu: Emulator) -> Any:
    return make_model(emu)


def _events(body: bytes) -> list[dict[str, Any]]:
    """The recorded events, decoded independently of streamwrap."""
    return [json.loads(line[6:]) for line in body.split(b"\n") if line.startswith(b"data: ")]


def _sse(*objs: dict[str, Any]) -> bytes:
    return b"".join(b"event: " + o["type"].encode() + b"\ndata: " + orjson.dumps(o) + b"\n\n" for o in objs)


async def _items(response: streamwrap.ModelResponse) -> list[tuple[bool, str]]:
    return [(item.is_last, item.text_so_far) async for item in response.stream]


async def _deltas(response: streamwrap.ModelResponse) -> list[Any]:
    return [d async for d in response.deltas()]


def _thinking_blocks(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The thinking blocks of a recorded stream, assembled by hand."""
    blocks: dict[int, dict[str, Any]] = {}
    for e in events:
        if e["type"] == "content_block_start" and e["content_block"]["type"] in (
            "thinking",
            "redacted_thinking",
        ):
            blocks[e["index"]] = dict(e["content_block"])
        elif e["type"] == "content_block_delta" and e["index"] in blocks:
            d = e["delta"]
            if d["type"] == "thinking_delta":
                blocks[e["index"]]["thinking"] += d["thinking"]
            elif d["type"] == "signature_delta":
                blocks[e["index"]]["signature"] += d["signature"]
    return [blocks[i] for i in sorted(blocks)]


# -- the recordings ---------------------------------------------------------------------


def test_discovery_finds_the_anthropic_recordings(recordings: Path) -> None:
    names = {p.values[1]["name"] for p in STREAMING}
    assert {
        "haiku-4.5_text",
        "sonnet-4_thinking_text",
        "sonnet-4.5_redacted_thinking",
        "sonnet-4_text_ping",
        "sonnet-4_text_parallel_tool_use_ping",
    } <= names


@pytest.mark.parametrize("split", ["event", 7, 1])
@pytest.mark.parametrize(("meta_path", "meta"), STREAMING)
async def test_recording_replays_to_expected(
    emu: Emulator, model: Any, recordings: Path, meta_path: Path, meta: dict[str, Any], split: str | int
) -> None:
    expected = meta["expected"]
    body = _recordings.body(meta_path, meta)
    events = _events(body)
    emu.replay(body, status=200, content_type=_recordings.content_type(meta), split=split)
    response = await model("What is 1 + 1?")

    items = await _items(response)
    assert [i for i, (is_last, _) in enumerate(items) if is_last] == [len(items) - 1]
    assert items[-1] == (True, expected["text"])
    deltas = await _deltas(response)
    assert "".join(d for d in deltas if type(d) is TextDelta) == expected["text"]
    assert response.text == expected["text"]
    assert response.reasoning == expected.get("thinking")
    assert "".join(d for d in deltas if type(d) is ReasoningDelta) == (expected.get("thinking") or "")
    assert response.error is None

    calls = response.tool_calls
    assert [(c.id, c.name, c.arguments) for c in calls] == [
        (c["id"], c["name"], c["arguments"]) for c in expected.get("tool_calls", [])
    ]
    assert [c.index for c in calls] == list(range(len(calls)))
    assert {d.index for d in deltas if type(d) is ToolCallDelta} == set(range(len(calls)))

    assert response.finish_reason_raw == expected["stop_reason"]
    assert response.finish_reason == {"end_turn": "stop", "tool_use": "tool_calls"}[expected["stop_reason"]]

    usage = response.usage
    raw = expected["usage"]
    assert usage.source == "provider"
    assert usage.input_tokens == (
        raw["input_tokens"] + raw["cache_read_input_tokens"] + raw["cache_creation_input_tokens"]
    )
    assert usage.output_tokens == raw["output_tokens"]
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert usage.cached_tokens == raw["cache_read_input_tokens"]
    assert usage.cache_write_tokens == raw["cache_creation_input_tokens"]

    start = events[0]["message"]
    assert response.provider_id == start["id"]
    assert response.model == expected["model"] == start["model"]
    assert response.provider == "anthropic"

    (request,) = emu.requests
    assert request.method == "POST"
    assert request.path == "/v1/messages"
    assert request.headers["x-api-key"] == API_KEY
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.json == {
        "model": MODEL,
        "max_tokens": DEFAULT_MAX_TOKENS,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "What is 1 + 1?"}]}],
        "stream": True,
    }


@pytest.mark.parametrize(("meta_path", "meta"), STREAMING)
def test_mapper_result_does_not_depend_on_how_the_body_is_cut(
    recordings: Path, meta_path: Path, meta: dict[str, Any]
) -> None:
    body = _recordings.body(meta_path, meta)
    results = []
    for size in (len(body), 1, 7, 64):
        mapper = AnthropicStreamMapper("anthropic")
        out: list[Any] = []
        for i in range(0, len(body), size):
            out += mapper.feed(body[i : i + size])
        out += mapper.end()
        results.append(out)
    assert all(r == results[0] for r in results[1:])


@pytest.mark.parametrize(("meta_path", "meta"), STREAMING)
async def test_recorded_thinking_blocks_go_back_with_the_next_tool_call(
    recordings: Path, meta_path: Path, meta: dict[str, Any]
) -> None:
    """Thinking (and redacted thinking) blocks are kept exactly, for the call after them:
    the recordings have none with a call, so one is appended to each after its last block."""
    body = _recordings.body(meta_path, meta)
    events = _events(body)
    blocks = _thinking_blocks(events)
    if not blocks:
        pytest.skip("no thinking in this recording")
    last = max(e.get("index", -1) for e in events)
    cut = body.index(b"event: message_delta")
    call = _sse(
        {
            "type": "content_block_start",
            "index": last + 1,
            "content_block": {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}},
        },
        {
            "type": "content_block_delta",
            "index": last + 1,
            "delta": {"type": "input_json_delta", "partial_json": '{"a": 1}'},
        },
        {"type": "content_block_stop", "index": last + 1},
    )
    mapper = AnthropicStreamMapper("anthropic")
    out = mapper.feed(body[:cut] + call + body[cut:]) + mapper.end()
    (first,) = [d for d in out if type(d) is ToolCallDelta and d.id]
    assert first.extra == {"thinking_blocks": blocks}
    for block in blocks:  # (exactly as sent: signatures and data untouched)
        assert block.get("signature") or block.get("data")


# -- streams built here -----------------------------------------------------------------

_START = {
    "type": "message_start",
    "message": {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": [],
        "stop_reason": None,
        "usage": {
            "input_tokens": 10,
            "cache_read_input_tokens": 100,
            "cache_creation_input_tokens": 5,
            "output_tokens": 1,
        },
    },
}


def _text_block(index: int, *pieces: str) -> list[dict[str, Any]]:
    return [
        {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}},
        *(
            {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": p}}
            for p in pieces
        ),
        {"type": "content_block_stop", "index": index},
    ]


def _end(reason: str = "end_turn", output: int = 7) -> list[dict[str, Any]]:
    return [
        {
            "type": "message_delta",
            "delta": {"stop_reason": reason, "stop_sequence": None},
            "usage": {"output_tokens": output},
        },
        {"type": "message_stop"},
    ]


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
    ],
)
async def test_stop_reasons_map_to_the_shared_finish_reasons(
    emu: Emulator, model: Any, raw: str, normalised: str
) -> None:
    emu.replay(_sse(_START, *_text_block(0, "Hi"), *_end(raw)))
    response = await model("hi")
    assert await response.aread() == "Hi"
    assert (response.finish_reason, response.finish_reason_raw) == (normalised, raw)


async def test_usage_merges_message_start_and_the_last_message_delta(emu: Emulator, model: Any) -> None:
    emu.replay(_sse(_START, *_text_block(0, "a", "b"), *_end(output=42)))
    response = await model("hi")
    await response.aread()
    usage = response.usage
    assert (usage.input_tokens, usage.output_tokens, usage.cached_tokens, usage.cache_write_tokens) == (
        115,
        42,
        100,
        5,
    )
    assert usage.total_tokens == 157
    assert usage.raw is not None and usage.raw["output_tokens"] == 42 and usage.raw["input_tokens"] == 10
    assert usage.as_dict()["cache_write_tokens"] == 5


async def test_error_event_mid_stream_raises_with_the_partial_text(emu: Emulator, model: Any) -> None:
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    emu.replay(_sse(_START, *_text_block(0, "Hello", " wor")[:-1], error))
    response = await model("hi")
    with pytest.raises(streamwrap.ProviderStreamError) as info:
        await response.aread()
    assert info.value.code == "overloaded_error"
    assert info.value.message == "Overloaded"
    assert info.value.partial_text == "Hello wor"
    assert response.usage.input_tokens == 115  # usage received so far stays


async def test_a_stream_cut_before_message_stop_is_interrupted(emu: Emulator, model: Any) -> None:
    emu.replay(_sse(_START, *_text_block(0, "Hello")))
    response = await model("hi")
    with pytest.raises(streamwrap.StreamInterruptedError) as info:
        await response.aread()
    assert info.value.partial_text == "Hello"


def test_ping_yields_nothing_so_it_does_not_reset_the_idle_timeout() -> None:
    """Only deltas with content count as progress for the idle timeout (``_channel``): a
    ping, like an SSE comment, must yield none."""
    ping = b'event: ping\ndata: {"type": "ping"}\n\n'
    mapper = AnthropicStreamMapper("anthropic")
    mapper.feed(_sse(_START, *_text_block(0, "Hello")[:2]))
    assert mapper.feed(ping * 3) == []
    assert mapper.feed(_sse(*_end())) != []


async def test_http_529_is_retried_like_503(emu: Emulator) -> None:
    overloaded = orjson.dumps(
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    )
    emu.replay(overloaded, status=529, content_type="application/json")
    emu.replay(_sse(_START, *_text_block(0, "ok"), *_end()))
    model = make_model(emu, max_retries=2)
    response = await model("hi")
    assert await response.aread() == "ok"
    assert [a["status"] for a in response.attempts] == [529, 200]


async def test_http_529_retry_honours_retry_after(emu: Emulator) -> None:
    emu.script(Reply(status=529, headers={"retry-after": "0.3"}), Reply(text="ok"))
    model = make_model(emu, max_retries=1)
    started = time.monotonic()
    response = await model("hi")
    assert await response.aread() == "ok"
    assert time.monotonic() - started >= 0.3
    assert [(a["status"], a["error"]) for a in response.attempts] == [(529, "ServerError"), (200, None)]


async def test_http_529_without_retries_is_a_server_error(emu: Emulator, model: Any) -> None:
    overloaded = orjson.dumps(
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    )
    emu.replay(overloaded, status=529, content_type="application/json")
    with pytest.raises(streamwrap.ServerError) as info:
        await model("hi")
    assert (info.value.status_code, info.value.message) == (529, "Overloaded")


async def test_401_is_an_authentication_error_without_the_key(emu: Emulator, model: Any) -> None:
    body = {
        "type": "error",
        "error": {"type": "authentication_error", "message": f"invalid x-api-key {API_KEY}"},
    }
    emu.replay(orjson.dumps(body), status=401, content_type="application/json")
    with pytest.raises(streamwrap.AuthenticationError) as info:
        await model("hi")
    assert API_KEY not in str(info.value) and API_KEY not in repr(info.value.body)


async def test_non_streaming_call_reads_the_whole_message(emu: Emulator, model: Any) -> None:
    message = {
        "id": "msg_2",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": [
            {"type": "thinking", "thinking": "Let me see.", "signature": "sig=="},
            {"type": "text", "text": "Calling."},
            {"type": "tool_use", "id": "toolu_9", "name": "get_weather", "input": {"city": "Paris"}},
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 3, "output_tokens": 4},
    }
    emu.replay(orjson.dumps(message), content_type="application/json")
    response = await model("hi", stream=False)
    assert response.text == "Calling."
    assert response.reasoning == "Let me see."
    (call,) = response.tool_calls
    assert (call.id, call.name, call.parsed_arguments()) == ("toolu_9", "get_weather", {"city": "Paris"})
    assert call.extra == {
        "thinking_blocks": [{"type": "thinking", "thinking": "Let me see.", "signature": "sig=="}]
    }
    assert response.finish_reason == "tool_calls"
    assert "stream" not in emu.requests[0].json


# -- the request ------------------------------------------------------------------------


def _body(messages: list[dict[str, Any]], tools: Any = None, **params: Any) -> dict[str, Any]:
    return build_request_body(ChatRequest(MODEL, messages, True, tools, params))


def test_request_maps_system_tools_and_tool_results() -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather.",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    body = _body(
        [
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {
                "role": "assistant",
                "content": "Checking.",
                "tool_calls": [
                    {
                        "id": "toolu_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    },
                    {
                        "id": "toolu_2",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"},
            {"role": "tool", "tool_call_id": "toolu_2", "content": "rainy"},
        ],
        tools,
        temperature=0.2,
        stop="END",
        tool_choice="required",
    )
    assert body == {
        "model": MODEL,
        "system": [{"type": "text", "text": "Be terse."}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Weather in Paris and Rome?"}]},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Rome"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
                    {"type": "tool_result", "tool_use_id": "toolu_2", "content": "rainy"},
                ],
            },
        ],
        "tools": [
            {
                "name": "get_weather",
                "description": "Weather.",
                "input_schema": tools[0]["function"]["parameters"],
            }
        ],
        "temperature": 0.2,
        "stop_sequences": ["END"],
        "tool_choice": {"type": "any"},
        "max_tokens": DEFAULT_MAX_TOKENS,
        "stream": True,
    }


def test_thinking_argument_and_the_max_tokens_default() -> None:
    body = _body([{"role": "user", "content": "hi"}], thinking=2048)
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert body["max_tokens"] == DEFAULT_MAX_TOKENS + 2048
    body = _body(
        [{"role": "user", "content": "hi"}],
        thinking={"type": "enabled", "budget_tokens": 1024},
        max_tokens=5000,
    )
    assert (body["thinking"]["budget_tokens"], body["max_tokens"]) == (1024, 5000)
    with pytest.raises(streamwrap.InputError, match="thinking"):
        _body([{"role": "user", "content": "hi"}], thinking="yes")


async def test_tool_calls_passed_back_keep_their_thinking_blocks_exactly(emu: Emulator, model: Any) -> None:
    """The tool loop with thinking: the response's own calls, put back in the assistant
    message, bring their thinking (and redacted thinking) blocks first, untouched."""
    thinking = [
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "thinking", "thinking": "", "signature": ""},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "thinking_delta", "thinking": "Need weather."},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "signature_delta", "signature": "EqQBCgIYAh+/sig=="},
        },
        {"type": "content_block_stop", "index": 0},
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {"type": "redacted_thinking", "data": "EmwKAhgB/opaque=="},
        },
        {"type": "content_block_stop", "index": 1},
        {
            "type": "content_block_start",
            "index": 2,
            "content_block": {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}},
        },
        {
            "type": "content_block_delta",
            "index": 2,
            "delta": {"type": "input_json_delta", "partial_json": ""},
        },
        {
            "type": "content_block_delta",
            "index": 2,
            "delta": {"type": "input_json_delta", "partial_json": '{"city": '},
        },
        {
            "type": "content_block_delta",
            "index": 2,
            "delta": {"type": "input_json_delta", "partial_json": '"Paris"}'},
        },
        {"type": "content_block_stop", "index": 2},
    ]
    emu.replay(_sse(_START, *thinking, *_end("tool_use")), split=7)
    first = await model("Weather in Paris?", thinking=1024)
    await first.aread()
    assert first.reasoning == "Need weather."
    (call,) = first.tool_calls
    assert call.parsed_arguments() == {"city": "Paris"}

    emu.replay(_sse(_START, *_text_block(0, "Sunny."), *_end()))
    second = await model(
        [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": "", "tool_calls": first.tool_calls},
            {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
        ],
        thinking=1024,
    )
    assert await second.aread() == "Sunny."
    sent = emu.requests[-1].json["messages"][1]
    assert sent == {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "Need weather.", "signature": "EqQBCgIYAh+/sig=="},
            {"type": "redacted_thinking", "data": "EmwKAhgB/opaque=="},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
        ],
    }
    # The same through OpenAI-style dicts that keep "extra".
    as_dicts = [{**c.to_openai(), "extra": dict(c.extra or {})} for c in first.tool_calls]
    body = _body([{"role": "assistant", "content": None, "tool_calls": as_dicts}])
    assert body["messages"][0] == sent


def test_config_key_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-env")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9/")
    model = streamwrap.load_model({"model_type": "anthropic_chat", "model_name": MODEL})
    assert model.base_url == "http://127.0.0.1:9/" and model._url() == "http://127.0.0.1:9/v1/messages"
    assert model.anthropic_version == "2023-06-01"
    with pytest.raises(streamwrap.ConfigError, match="anthropic_version"):
        streamwrap.load_model(
            {"model_type": "anthropic_chat", "model_name": MODEL, "anthropic_version": "latest"}
        )
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    monkeypatch.delenv("ANTHROPIC_BASE_URL")
    with pytest.raises(streamwrap.ConfigError, match="ANTHROPIC_API_KEY"):
        streamwrap.load_model({"model_type": "anthropic_chat", "model_name": MODEL})
