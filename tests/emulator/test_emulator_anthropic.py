"""The emulator's Anthropic dialect (``POST /v1/messages``).

Three kinds of proof. The official ``anthropic`` SDK talks HTTP to the emulator and must
see exactly the scripted content, and ``anthropic_chat`` reads the same emulated stream to
the same result. Raw-byte tests pin down the framing and how every fault looks on the
wire. And the rendering is compared with real recorded traffic (../shared/recordings,
skipped if absent).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

import streamwrap
from streamwrap.testing import Emulator, Fault, Reply, ToolCallSpec
from tests.support import recordings as _recordings

pytestmark = pytest.mark.timeout(30)

API_KEY = "sk-ant-test-secret-key-0123456789"
MODEL = "claude-sonnet-4-5"
MESSAGES = [{"role": "user", "content": "say hello there"}]


@pytest.fixture
def sdk() -> Any:
    return pytest.importorskip("anthropic")


def client(emu: Emulator, sdk: Any) -> Any:
    return sdk.AsyncAnthropic(api_key=API_KEY, base_url=emu.anthropic_base_url, max_retries=0)


def post(emu: Emulator, **extra: Any) -> httpx.Response:
    body = {"model": MODEL, "max_tokens": 100, "messages": MESSAGES, "stream": True, **extra}
    return httpx.post(emu.anthropic_base_url + "/v1/messages", json=body)


def sse_events(body: bytes) -> list[tuple[str, Any]]:
    """``(event name, data)`` of every event; data ``None`` where it is not JSON."""
    out = []
    for block in body.split(b"\n\n")[:-1]:
        name, _, data = block.partition(b"\ndata: ")
        try:
            payload = json.loads(data)
        except json.JSONDecodeError:
            payload = None
        out.append((name.removeprefix(b"event: ").decode(), payload))
    return out


def texts(events: list[tuple[str, Any]]) -> str:
    return "".join(
        d["delta"].get("text", "") for n, d in events if n == "content_block_delta" and d is not None
    )


REPLY = Reply(
    reasoning=["Thinking ", "hard."],
    text=["Two ", "calls."],
    tool_calls=[
        ToolCallSpec("add", ['{"a": 2,', ' "b": 3}'], id="toolu_01"),
        ToolCallSpec("multiply", '{"a": 2, "b": 3}', id="toolu_02"),
    ],
    model=MODEL,
    usage=(20, 8),
    id="msg_01emu",  # (the same reply twice: the same ids and signature)
)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.anyio
async def test_sdk_and_anthropic_chat_read_the_same_stream_alike(emu: Emulator, sdk: Any) -> None:
    emu.script(REPLY, REPLY)
    c = client(emu, sdk)
    try:
        async with c.messages.stream(model=MODEL, max_tokens=100, messages=MESSAGES) as stream:
            kinds = [event.type async for event in stream]
            message = await stream.get_final_message()
    finally:
        await c.close()
    assert kinds.count("text") == 2 and kinds.count("thinking") == 2
    thinking, text, *calls = message.content
    assert (thinking.type, thinking.thinking) == ("thinking", "Thinking hard.")
    assert thinking.signature
    assert (text.type, text.text) == ("text", "Two calls.")
    assert [(c.type, c.name, c.input) for c in calls] == [
        ("tool_use", "add", {"a": 2, "b": 3}),
        ("tool_use", "multiply", {"a": 2, "b": 3}),
    ]
    assert message.stop_reason == "tool_use"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (20, 8)
    assert message.model == MODEL
    request = emu.requests[0]
    assert request.path == "/v1/messages"
    # (The SDK 2.x sends the key as a bearer token; streamwrap as the documented x-api-key.)
    assert request.headers.get("x-api-key", request.headers.get("authorization")) in (
        API_KEY,
        f"Bearer {API_KEY}",
    )
    assert request.headers["anthropic-version"]

    model = streamwrap.load_model(
        {
            "model_type": "anthropic_chat",
            "model_name": MODEL,
            "api_key": API_KEY,
            "base_url": emu.anthropic_base_url,
            "stream": True,
        }
    )
    response = await model(MESSAGES)
    assert await response.aread() == text.text
    assert response.reasoning == thinking.thinking
    assert [(c.id, c.name, c.parsed_arguments()) for c in response.tool_calls] == [
        (c.id, c.name, c.input) for c in calls
    ]
    assert response.tool_calls[0].extra == {
        "thinking_blocks": [
            {"type": "thinking", "thinking": thinking.thinking, "signature": thinking.signature}
        ]
    }
    assert response.finish_reason_raw == message.stop_reason
    assert (response.usage.input_tokens, response.usage.output_tokens) == (20, 8)
    assert (response.model, response.provider_id) == (message.model, message.id)
    # The two requests agree on the wire's essentials.
    ours, theirs = emu.requests[1], emu.requests[0]
    assert ours.headers["content-type"] == theirs.headers["content-type"]
    assert (ours.headers["x-api-key"], ours.headers["anthropic-version"]) == (API_KEY, "2023-06-01")
    assert ours.path == theirs.path
    assert ours.json["messages"][0]["role"] == "user" and ours.json["stream"] is True


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.anyio
async def test_sdk_non_streaming_errors_and_mid_stream_error(emu: Emulator, sdk: Any) -> None:
    emu.script(
        Reply(text=["Hel", "lo"], reasoning="hm", tool_calls=[ToolCallSpec("f", '{"x": [1]}')]),
        Reply(status=429, headers={"retry-after": "7"}),
        Reply(status=529),
        Reply(text=["a", "b"], fault=Fault.error_event_after(1, "Overloaded", "overloaded_error")),
    )
    c = client(emu, sdk)
    try:
        message = await c.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)
        assert [b.type for b in message.content] == ["thinking", "text", "tool_use"]
        assert message.content[1].text == "Hello"
        assert message.content[2].input == {"x": [1]}
        with pytest.raises(sdk.RateLimitError) as limited:
            await c.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)
        assert limited.value.status_code == 429
        assert limited.value.body["error"]["type"] == "rate_limit_error"
        assert limited.value.response.headers["retry-after"] == "7"
        with pytest.raises(sdk.APIStatusError) as overloaded:
            await c.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)
        assert overloaded.value.status_code == 529
        assert overloaded.value.body["error"]["type"] == "overloaded_error"
        seen: list[str] = []
        with pytest.raises(sdk.APIStatusError) as mid_stream:
            async with c.messages.stream(model=MODEL, max_tokens=100, messages=MESSAGES) as stream:
                async for event in stream:
                    if event.type == "text":
                        seen.append(event.text)
        assert seen == ["a"]
        assert "Overloaded" in str(mid_stream.value)
    finally:
        await c.close()
    assert "stream" not in emu.requests[0].json


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.anyio
async def test_a_wrong_or_missing_key_is_the_apis_401(sdk: Any) -> None:
    with Emulator(api_key=API_KEY) as emu:
        c = sdk.AsyncAnthropic(api_key="sk-ant-wrong", base_url=emu.anthropic_base_url, max_retries=0)
        try:
            with pytest.raises(sdk.AuthenticationError) as info:
                await c.messages.create(model=MODEL, max_tokens=10, messages=MESSAGES)
        finally:
            await c.close()
        assert info.value.body["error"] == {"type": "authentication_error", "message": "invalid x-api-key"}
        missing = post(emu)
        assert missing.status_code == 401
        assert missing.json()["error"]["message"] == "x-api-key header is required"
        model = streamwrap.load_model(
            {
                "model_type": "anthropic_chat",
                "model_name": MODEL,
                "api_key": API_KEY,
                "base_url": emu.anthropic_base_url,
            }
        )
        emu.script(Reply(text="ok"))
        assert await (await model("hi")).aread() == "ok"


# -- the framing, and the faults on this wire -----------------------------------------------


def test_plain_stream_framing(emu: Emulator) -> None:
    emu.script(Reply(text=["a", "b"], usage=(3, 2)))
    response = post(emu)
    assert response.headers["content-type"].startswith("text/event-stream")
    got = sse_events(response.content)
    assert [n for n, _ in got] == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert all(d["type"] == n for n, d in got)  # the event name is the data's type
    assert texts(got) == "ab"
    assert got[0][1]["message"]["usage"]["input_tokens"] == 3
    assert got[-2][1] == {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"output_tokens": 2},
    }


@pytest.mark.parametrize(
    ("scripted", "sent"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("content_filter", "refusal"),
        ("pause_turn", "pause_turn"),
    ],
)
def test_finish_reasons_in_anthropics_words(emu: Emulator, scripted: str, sent: str) -> None:
    emu.script(Reply(text="x", finish_reason=scripted))
    assert sse_events(post(emu).content)[-2][1]["delta"]["stop_reason"] == sent


def test_error_fault_is_an_error_event(emu: Emulator) -> None:
    emu.script(Reply(text=["a", "b"], fault=Fault.error_event_after(1, "Overloaded", "overloaded_error")))
    got = sse_events(post(emu).content)
    assert texts(got) == "a"
    assert got[-1] == (
        "error",
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
    )
    emu.script(Reply(text=["a", "b"], fault=Fault.inband_error_after(1, "boom")))
    assert sse_events(post(emu).content)[-1][1]["error"] == {"type": "api_error", "message": "boom"}


def test_malformed_truncated_and_unfinished_streams(emu: Emulator) -> None:
    emu.script(Reply(text=["a", "b"], fault=Fault.malformed_line_after(1)))
    got = sse_events(post(emu).content)
    assert ("content_block_delta", None) in got and texts(got) == "ab" and got[-1][0] == "message_stop"
    emu.script(Reply(text=["a", "b"], fault=Fault.truncated_json_after(1)))
    got = sse_events(post(emu).content)
    assert got[-1] == ("content_block_delta", None) and texts(got) == "a"
    emu.script(Reply(text=["a", "b"], fault=Fault.end_without_finish_after(10)))
    got = sse_events(post(emu).content)
    assert texts(got) == "ab" and "message_delta" not in [n for n, _ in got]


def test_stall_with_keepalive_sends_pings(emu: Emulator) -> None:
    emu.script(Reply(text=["a", "b"], fault=Fault.stall_with_keepalive_after(1, 0.25, every=0.1)))
    started = time.monotonic()
    got = sse_events(post(emu).content)
    assert time.monotonic() - started >= 0.25
    first_a = next(i for i, (n, d) in enumerate(got) if n == "content_block_delta")
    assert [n for n, _ in got[first_a + 1 : first_a + 3]] == ["ping", "ping"]
    assert texts(got) == "ab"


def test_error_statuses_have_the_apis_body(emu: Emulator) -> None:
    emu.script(
        Reply(status=529),
        Reply(status=400, error={"type": "invalid_request_error", "message": "max_tokens: required"}),
    )
    overloaded = post(emu)
    assert overloaded.status_code == 529
    assert overloaded.json()["type"] == "error"
    assert overloaded.json()["error"] == {"type": "overloaded_error", "message": "Overloaded"}
    invalid = post(emu)
    assert invalid.json()["error"] == {"type": "invalid_request_error", "message": "max_tokens: required"}


# -- against the recordings -------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "anthropic/sonnet-4_text_ping",
        "anthropic/sonnet-4_text_parallel_tool_use_ping",
        "anthropic/sonnet-4_thinking_text",
    ],
)
def test_rendering_matches_recorded_traffic(emu: Emulator, recordings: Path, name: str) -> None:
    """The same event and block kinds, in the same order, as the API sent (pings aside,
    which the API sends where it likes), and the same keys in every event."""
    recording = _recordings.named(name)
    recorded = sse_events(recording.body)
    e = recording.expected
    emu.script(
        Reply(
            reasoning=[e["thinking"]] if e.get("thinking") else (),
            text=[e["text"]],
            tool_calls=[ToolCallSpec(c["name"], c["arguments"], id=c["id"]) for c in e.get("tool_calls", [])],
            finish_reason={"end_turn": "stop", "tool_use": "tool_calls"}[e["stop_reason"]],
            model=e["model"],
        )
    )
    ours = sse_events(post(emu).content)

    def shape(events: list[tuple[str, Any]]) -> list[tuple[str, ...]]:
        out = []
        for n, d in events:
            if n == "ping" or (n == "content_block_delta" and out and out[-1][:2] == (n, d["delta"]["type"])):
                continue  # (runs of deltas of one kind count once)
            kind = (d.get("content_block") or d.get("delta") or {}).get("type", "")
            out.append((n, kind, *sorted(d)))
        return out

    assert shape(ours) == shape(recorded)
