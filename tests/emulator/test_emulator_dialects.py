"""The emulator's native dialects: DashScope, Gemini and Ollama.

Three kinds of proof.  The official SDKs (dashscope, google-genai, ollama) talk HTTP to
the emulator and must see exactly the scripted content.  Raw-byte tests pin down each
dialect's framing and how every fault looks on its wire.  And each dialect's rendering of
a reply is compared with real recorded traffic (../shared/recordings, skipped if absent).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import orjson
import pytest

from streamwrap.testing import Emulator, Fault, Reply, ToolCallSpec
from tests.support import recordings as _recordings

pytestmark = pytest.mark.timeout(30)

API_KEY = "sk-test-secret-key-0123456789"
MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "say hello there"}]
PROMPT_WORDS = 5
DASHSCOPE_PATH = "/services/aigc/text-generation/generation"
GEMINI_STREAM = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
GEMINI_CONTENTS = [{"role": "user", "parts": [{"text": "say hello there"}]}]
# dashscope and google-genai stream through aiohttp, which runs on asyncio only.
ASYNCIO_ONLY = pytest.mark.parametrize("anyio_backend", ["asyncio"])


def dashscope_body(**parameters: Any) -> dict[str, Any]:
    return {"model": "qwen-plus", "input": {"messages": MESSAGES}, "parameters": parameters}


def dashscope_post(
    emu: Emulator, *, stream: bool = True, path: str = DASHSCOPE_PATH, **parameters: Any
) -> httpx.Response:
    headers = {"X-DashScope-SSE": "enable"} if stream else {}
    return httpx.post(emu.dashscope_base_url + path, json=dashscope_body(**parameters), headers=headers)


def dashscope_frames(body: bytes) -> list[dict[str, Any]]:
    """The data JSON of every frame of a DashScope SSE body."""
    return [orjson.loads(event.split(b"\ndata:", 1)[1]) for event in body.split(b"\n\n") if event]


def gemini_post(emu: Emulator, path: str = GEMINI_STREAM) -> httpx.Response:
    return httpx.post(emu.gemini_base_url + path, json={"contents": GEMINI_CONTENTS})


def gemini_chunks(body: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(event.removeprefix(b"data: ")) for event in body.split(b"\r\n\r\n") if event]


def ollama_post(emu: Emulator, **extra: Any) -> httpx.Response:
    return httpx.post(
        emu.ollama_base_url + "/api/chat", json={"model": "llama3", "messages": MESSAGES, **extra}
    )


def sse_data_lines(body: bytes) -> list[bytes]:
    return [line.removeprefix(b"data: ") for line in body.split(b"\r\n") if line.startswith(b"data: ")]


# -- the official SDKs see the scripted reply ------------------------------------------------
# They are test dependencies; without one, its tests skip rather than fail to import.


@pytest.fixture
def dashscope_sdk() -> SimpleNamespace:
    generation = pytest.importorskip("dashscope.aigc.generation")
    session = pytest.importorskip("dashscope.api_entities.aio_session")
    return SimpleNamespace(
        Generation=generation.Generation,
        AioGeneration=generation.AioGeneration,
        close_session=session.close_shared_aio_session,
    )


@pytest.fixture
def genai_sdk() -> SimpleNamespace:
    return SimpleNamespace(
        genai=pytest.importorskip("google.genai"),
        types=pytest.importorskip("google.genai.types"),
        errors=pytest.importorskip("google.genai.errors"),
    )


@pytest.fixture
def ollama_sdk() -> Any:
    return pytest.importorskip("ollama")


@ASYNCIO_ONLY
@pytest.mark.anyio
async def test_dashscope_sdk_streams_reasoning_text_and_tool_calls(
    emu: Emulator, dashscope_sdk: SimpleNamespace
) -> None:
    emu.script(
        Reply(
            reasoning=["Let me ", "think."],
            text=["It is ", "sunny."],
            tool_calls=[
                ToolCallSpec("get_weather", ['{"city": ', '"Hangzhou"}'], id="call_1"),
                ToolCallSpec("get_time", '{"tz": "Asia/Shanghai"}', id="call_2"),
            ],
            usage=(12, 9),
        )
    )
    try:
        stream = await dashscope_sdk.AioGeneration.call(
            model="qwen-plus",
            messages=MESSAGES,
            api_key=API_KEY,
            stream=True,
            incremental_output=True,
            result_format="message",
            base_address=emu.dashscope_base_url,
        )
        responses = [response async for response in stream]
    finally:
        await dashscope_sdk.close_session()
    assert {r.status_code for r in responses} == {200}
    messages = [r.output.choices[0].message for r in responses]
    assert "".join(m.get("reasoning_content", "") for m in messages) == "Let me think."
    assert "".join(m["content"] for m in messages) == "It is sunny."
    calls: dict[int, dict[str, str]] = {}
    for message in messages:
        for fragment in message.get("tool_calls", []):
            call = calls.setdefault(fragment["index"], {"id": "", "name": "", "arguments": ""})
            call["id"] += fragment["id"]  # continuation fragments carry id ""
            call["name"] += fragment["function"].get("name", "")
            call["arguments"] += fragment["function"]["arguments"]
    assert calls == {
        0: {"id": "call_1", "name": "get_weather", "arguments": '{"city": "Hangzhou"}'},
        1: {"id": "call_2", "name": "get_time", "arguments": '{"tz": "Asia/Shanghai"}'},
    }
    finish = [r.output.choices[0].finish_reason for r in responses]
    assert finish[-1] == "tool_calls"
    assert set(finish[:-1]) == {"null"}
    assert (responses[-1].usage.input_tokens, responses[-1].usage.output_tokens) == (12, 9)
    assert len({r.request_id for r in responses}) == 1
    request = emu.requests[0]
    assert request.path == "/api/v1/services/aigc/text-generation/generation"
    assert request.headers["x-dashscope-sse"] == "enable"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.json["input"]["messages"] == MESSAGES
    assert request.json["parameters"]["incremental_output"] is True


def test_dashscope_sdk_non_streaming_and_error_status(emu: Emulator, dashscope_sdk: SimpleNamespace) -> None:
    emu.script(Reply(text="Hello there.", reasoning="hm"), Reply(status=401))
    kwargs: dict[str, Any] = {
        "model": "qwen-plus",
        "messages": MESSAGES,
        "api_key": API_KEY,
        "result_format": "message",
        "base_address": emu.dashscope_base_url,
    }
    ok = dashscope_sdk.Generation.call(**kwargs)
    assert ok.status_code == 200
    message = ok.output.choices[0].message
    assert (message["content"], message["reasoning_content"]) == ("Hello there.", "hm")
    assert ok.output.choices[0].finish_reason == "stop"
    assert (ok.usage.input_tokens, ok.usage.output_tokens) == (PROMPT_WORDS, 3)
    failed = dashscope_sdk.Generation.call(**kwargs)
    assert (failed.status_code, failed.code) == (401, "InvalidApiKey")
    assert failed.message and failed.request_id
    assert "x-dashscope-sse" not in emu.requests[0].headers


@ASYNCIO_ONLY
@pytest.mark.anyio
async def test_dashscope_sdk_sees_a_mid_stream_error_event(
    emu: Emulator, dashscope_sdk: SimpleNamespace
) -> None:
    emu.script(Reply(text=["a", "b"], fault=Fault.error_event_after(1, "quota gone", "Throttling.RateQuota")))
    try:
        stream = await dashscope_sdk.AioGeneration.call(
            model="qwen-plus",
            messages=MESSAGES,
            api_key=API_KEY,
            stream=True,
            incremental_output=True,
            result_format="message",
            base_address=emu.dashscope_base_url,
        )
        responses = [response async for response in stream]
    finally:
        await dashscope_sdk.close_session()
    assert responses[0].status_code == 200
    assert responses[0].output.choices[0].message["content"] == "a"
    assert len(responses) == 2
    assert responses[1].status_code != 200
    assert (responses[1].code, responses[1].message) == ("Throttling.RateQuota", "quota gone")


def gemini_client(emu: Emulator, sdk: SimpleNamespace) -> Any:
    options = sdk.types.HttpOptions(base_url=emu.gemini_base_url, api_version="v1beta")
    return sdk.genai.Client(api_key=API_KEY, http_options=options)


@ASYNCIO_ONLY
@pytest.mark.anyio
async def test_gemini_sdk_streams_thoughts_text_and_function_calls(
    emu: Emulator, genai_sdk: SimpleNamespace
) -> None:
    emu.script(
        Reply(
            reasoning=["Thinking ", "hard."],
            text=["Two ", "calls."],
            tool_calls=[
                ToolCallSpec("add", '{"a": 2, "b": 3}'),
                ToolCallSpec("multiply", '{"a": 2, "b": 3}'),
            ],
            model="gemini-2.5-flash",
            usage=(20, 8),
        )
    )
    client = gemini_client(emu, genai_sdk)
    try:
        stream = await client.aio.models.generate_content_stream(
            model="gemini-2.5-flash", contents="say hello there"
        )
        chunks = [chunk async for chunk in stream]
    finally:
        await client.aio.aclose()
    parts = [part for chunk in chunks for part in chunk.candidates[0].content.parts]
    assert "".join(p.text for p in parts if p.thought and p.text) == "Thinking hard."
    assert "".join(p.text for p in parts if not p.thought and p.text) == "Two calls."
    calls = [p for p in parts if p.function_call]
    assert [(p.function_call.name, p.function_call.args) for p in calls] == [
        ("add", {"a": 2, "b": 3}),
        ("multiply", {"a": 2, "b": 3}),
    ]
    assert calls[0].thought_signature
    finish = [chunk.candidates[0].finish_reason for chunk in chunks]
    assert finish == [None] * (len(chunks) - 1) + [genai_sdk.types.FinishReason.STOP]
    usage = chunks[-1].usage_metadata
    assert usage is not None
    assert (usage.prompt_token_count, usage.candidates_token_count, usage.thoughts_token_count) == (20, 6, 2)
    assert usage.total_token_count == 28
    assert {(c.response_id, c.model_version) for c in chunks} == {(chunks[0].response_id, "gemini-2.5-flash")}
    request = emu.requests[0]
    assert request.path == GEMINI_STREAM
    assert request.headers["x-goog-api-key"] == API_KEY
    assert request.json["contents"][0]["parts"][0]["text"] == "say hello there"


@ASYNCIO_ONLY
@pytest.mark.anyio
async def test_gemini_sdk_non_streaming_errors_and_mid_stream_error(
    emu: Emulator, genai_sdk: SimpleNamespace
) -> None:
    emu.script(
        Reply(text=["Hel", "lo"], reasoning="hm", tool_calls=[ToolCallSpec("f", '{"x": [1]}')]),
        Reply(status=429),
        Reply(status=400),
        Reply(text=["a", "b"], fault=Fault.error_event_after(1, "overloaded", "UNAVAILABLE")),
    )
    client = gemini_client(emu, genai_sdk)
    try:
        response = await client.aio.models.generate_content(
            model="gemini-2.5-flash", contents="say hello there"
        )
        assert response.text == "Hello"
        assert response.function_calls is not None
        assert [(c.name, c.args) for c in response.function_calls] == [("f", {"x": [1]})]
        assert response.usage_metadata is not None
        assert response.usage_metadata.thoughts_token_count == 1
        with pytest.raises(genai_sdk.errors.ClientError) as limited:
            await client.aio.models.generate_content(model="gemini-2.5-flash", contents="x")
        assert (limited.value.code, limited.value.status) == (429, "RESOURCE_EXHAUSTED")
        with pytest.raises(genai_sdk.errors.ClientError) as invalid:
            async for _ in await client.aio.models.generate_content_stream(
                model="gemini-2.5-flash", contents="x"
            ):
                pass
        assert invalid.value.code == 400
        assert "INVALID_ARGUMENT" in str(invalid.value)
        seen: list[str | None] = []
        with pytest.raises(genai_sdk.errors.ServerError) as overloaded:
            async for chunk in await client.aio.models.generate_content_stream(
                model="gemini-2.5-flash", contents="x"
            ):
                seen.append(chunk.text)
        assert seen == ["a"]
        assert (overloaded.value.code, overloaded.value.message) == (503, "overloaded")
    finally:
        await client.aio.aclose()
    assert emu.requests[0].path == "/v1beta/models/gemini-2.5-flash:generateContent"


@pytest.mark.anyio
async def test_ollama_sdk_streams_thinking_content_and_tool_calls(emu: Emulator, ollama_sdk: Any) -> None:
    emu.script(
        Reply(
            reasoning=["Let me ", "think."],
            text=["It is ", "sunny <b>&</b>."],
            tool_calls=[ToolCallSpec("get_weather", '{"city": "Paris"}'), ToolCallSpec("get_time", "{}")],
            usage=(11, 7),
            model="qwen3",
        )
    )
    client = ollama_sdk.AsyncClient(host=emu.ollama_base_url)
    parts = [
        part async for part in await client.chat(model="qwen3", messages=MESSAGES, stream=True, think=True)
    ]
    assert "".join(p.message.thinking or "" for p in parts) == "Let me think."
    assert "".join(p.message.content or "" for p in parts) == "It is sunny <b>&</b>."
    calls = [(c.function.name, dict(c.function.arguments)) for p in parts for c in p.message.tool_calls or []]
    assert calls == [("get_weather", {"city": "Paris"}), ("get_time", {})]
    final = parts[-1]
    assert [p.done for p in parts] == [False] * (len(parts) - 1) + [True]
    assert (final.done_reason, final.prompt_eval_count, final.eval_count) == ("stop", 11, 7)
    assert final.eval_duration and final.total_duration and final.model == "qwen3"
    request = emu.requests[0]
    assert (request.path, request.json["model"], request.json["stream"]) == ("/api/chat", "qwen3", True)


@pytest.mark.anyio
async def test_ollama_sdk_non_streaming_and_errors(emu: Emulator, ollama_sdk: Any) -> None:
    emu.script(
        Reply(text=["Hel", "lo"], reasoning="hm", tool_calls=[ToolCallSpec("f", '{"x": 1}')]),
        Reply(status=404),
        Reply(text=["a", "b"], fault=Fault.inband_error_after(1, "llama runner process has terminated")),
    )
    client = ollama_sdk.AsyncClient(host=emu.ollama_base_url)
    response = await client.chat(model="qwen3", messages=MESSAGES, stream=False)
    assert (response.message.content, response.message.thinking) == ("Hello", "hm")
    assert response.message.tool_calls is not None
    assert response.message.tool_calls[0].function.arguments == {"x": 1}
    assert (response.done, response.prompt_eval_count, response.eval_count) == (True, PROMPT_WORDS, 3)
    with pytest.raises(ollama_sdk.ResponseError) as missing:
        async for _ in await client.chat(model="qwen3", messages=MESSAGES, stream=True):
            pass
    assert missing.value.status_code == 404
    assert missing.value.error == 'model "qwen3" not found, try pulling it first'
    seen: list[str | None] = []
    with pytest.raises(ollama_sdk.ResponseError, match="llama runner process has terminated"):
        async for part in await client.chat(model="qwen3", messages=MESSAGES, stream=True):
            seen.append(part.message.content)
    assert seen == ["a"]


# -- faults on every native wire ---------------------------------------------------------------


@dataclass(frozen=True)
class DialectCase:
    """How a test drives one dialect and reads its events back."""

    name: str
    post: Callable[[Emulator], httpx.Response]
    separator: bytes  # what ends an event
    classify: Callable[[bytes], tuple[str, str | None]]  # (ping|content|finish|error|bad, text)


def _dashscope_event(event: bytes) -> tuple[str, str | None]:
    lines = event.split(b"\n")
    if all(line.startswith(b":") for line in lines):
        return "ping", None
    try:
        payload = orjson.loads(event.split(b"\ndata:", 1)[1])
    except orjson.JSONDecodeError:
        return "bad", None
    if "code" in payload:  # only an error carries a code
        return "error", payload["message"]
    choice = payload["output"]["choices"][0]
    return ("content" if choice["finish_reason"] == "null" else "finish"), choice["message"]["content"]


def _gemini_event(event: bytes) -> tuple[str, str | None]:
    if event.startswith(b":"):
        return "ping", None
    try:
        payload = orjson.loads(event.removeprefix(b"data: "))
    except orjson.JSONDecodeError:
        return "bad", None
    if "error" in payload:
        return "error", payload["error"]["message"]
    candidate = payload["candidates"][0]
    return ("finish" if "finishReason" in candidate else "content"), candidate["content"]["parts"][0]["text"]


def _ollama_event(line: bytes) -> tuple[str, str | None]:
    if not line:
        return "ping", None
    try:
        payload = orjson.loads(line)
    except orjson.JSONDecodeError:
        return "bad", None
    if "error" in payload:
        return "error", payload["error"]
    return ("finish" if payload["done"] else "content"), payload["message"]["content"]


WIRES = [
    DialectCase(
        "dashscope",
        lambda emu: dashscope_post(emu, result_format="message", incremental_output=True),
        b"\n\n",
        _dashscope_event,
    ),
    DialectCase("gemini", gemini_post, b"\r\n\r\n", _gemini_event),
    DialectCase("ollama", ollama_post, b"\n", _ollama_event),
]
WIRE_IDS = [wire.name for wire in WIRES]


def events(wire: DialectCase, emu: Emulator) -> list[tuple[str, str | None]]:
    response = wire.post(emu)
    assert response.status_code == 200
    body = response.content
    assert body.endswith(wire.separator)
    return [wire.classify(event) for event in body.split(wire.separator)[:-1]]


def kinds(got: list[tuple[str, str | None]]) -> list[str]:
    return [kind for kind, _ in got]


@pytest.mark.parametrize("wire", WIRES, ids=WIRE_IDS)
def test_plain_stream_ends_with_the_finish(emu: Emulator, wire: DialectCase) -> None:
    emu.script(Reply(text=["a", "b"]))
    got = events(wire, emu)
    assert "".join(text or "" for _, text in got) == "ab"
    assert kinds(got)[-1] == "finish"
    assert set(kinds(got)[:-1]) == {"content"}


@pytest.mark.parametrize("wire", WIRES, ids=WIRE_IDS)
@pytest.mark.parametrize("make", [Fault.error_event_after, Fault.inband_error_after], ids=["event", "inband"])
def test_error_faults_end_the_stream(emu: Emulator, wire: DialectCase, make: Callable[..., Fault]) -> None:
    emu.script(Reply(text=["a", "b"], fault=make(1, "overloaded")))
    assert events(wire, emu) == [("content", "a"), ("error", "overloaded")]


@pytest.mark.parametrize("wire", WIRES, ids=WIRE_IDS)
def test_malformed_line_then_the_stream_carries_on(emu: Emulator, wire: DialectCase) -> None:
    emu.script(Reply(text=["a", "b"], fault=Fault.malformed_line_after(1)))
    got = events(wire, emu)
    assert got[:2] == [("content", "a"), ("bad", None)]
    assert "".join(text or "" for _, text in got) == "ab"
    assert kinds(got)[-1] == "finish"


@pytest.mark.parametrize("wire", WIRES, ids=WIRE_IDS)
def test_truncated_json_ends_the_stream(emu: Emulator, wire: DialectCase) -> None:
    emu.script(Reply(text=["a", "b"], fault=Fault.truncated_json_after(1)))
    assert events(wire, emu) == [("content", "a"), ("bad", None)]


@pytest.mark.parametrize("wire", WIRES, ids=WIRE_IDS)
@pytest.mark.parametrize("after", [1, 10])
def test_end_without_finish(emu: Emulator, wire: DialectCase, after: int) -> None:
    emu.script(Reply(text=["a", "b"], fault=Fault.end_without_finish_after(after)))
    assert events(wire, emu) == [("content", "a"), ("content", "b")][:after]


@pytest.mark.parametrize("wire", WIRES, ids=WIRE_IDS)
def test_stall_with_keepalive_sends_the_dialects_ping(emu: Emulator, wire: DialectCase) -> None:
    emu.script(Reply(text=["a", "b"], fault=Fault.stall_with_keepalive_after(1, 0.25, every=0.1)))
    got = events(wire, emu)
    assert kinds(got)[:4] == ["content", "ping", "ping", kinds(got)[3]]  # at 0.1 and 0.2 s
    assert got[3][1] == "b"


@pytest.mark.parametrize("wire", WIRES, ids=WIRE_IDS)
def test_stall_pauses_then_continues(emu: Emulator, wire: DialectCase) -> None:
    emu.script(Reply(text=["a", "b"], fault=Fault.stall_after(1, 0.15)))
    started = time.monotonic()
    got = events(wire, emu)
    assert time.monotonic() - started >= 0.15
    assert "ping" not in kinds(got)
    assert kinds(got)[-1] == "finish"


@pytest.mark.parametrize("wire", WIRES, ids=WIRE_IDS)
def test_drop_aborts_after_the_content(own_emu: Emulator, wire: DialectCase) -> None:
    own_emu.script(Reply(text=["a", "b"], fault=Fault.drop_after(1)))
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        wire.post(own_emu)
    assert own_emu.wait_idle()


@pytest.mark.parametrize("wire", WIRES, ids=WIRE_IDS)
def test_slow_trickle_writes_one_byte_at_a_time(emu: Emulator, wire: DialectCase) -> None:
    emu.script(Reply(text=["a"]), Reply(text=["a"], fault=Fault.slow_trickle(1e-6)))
    wire.post(emu)  # records the dialect's request, sent again below over a bare socket
    recorded = emu.requests[-1]
    pieces = raw_pieces(emu, recorded.path, recorded.body, recorded.headers)
    assert len(pieces) > 50
    assert all(len(piece) == 1 for piece in pieces)
    assert wire.classify(b"".join(pieces).split(wire.separator)[0])[1] == "a"


def raw_pieces(emu: Emulator, path: str, body: bytes, headers: dict[str, str]) -> list[bytes]:
    """POST over a bare socket; return the HTTP chunks of the body, one per server write."""
    port = int(emu.url.rsplit(":", 1)[1])
    extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items() if name.startswith("x-"))
    head = (
        f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n{extra}"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode() + body)
        received = bytearray()
        while data := sock.recv(65536):
            received += data
    _, _, chunked = bytes(received).partition(b"\r\n\r\n")
    pieces, position = [], 0
    while (size := int(chunked[position : chunked.index(b"\r\n", position)], 16)) != 0:
        start = chunked.index(b"\r\n", position) + 2
        pieces.append(chunked[start : start + size])
        position = start + size + 2
    return pieces


def test_dashscope_error_frames_say_the_status(own_emu: Emulator) -> None:
    own_emu.script(
        Reply(text=["a"], fault=Fault.error_event_after(1, "slow down", "Throttling.RateQuota")),
        Reply(text=["a"], fault=Fault.error_event_after(1)),
        Reply(text=["a"], fault=Fault.inband_error_after(1, "bad")),
    )
    throttled, internal, inband = (dashscope_post(own_emu).content.split(b"\n\n")[1] for _ in range(3))
    assert throttled.startswith(b"id:2\nevent:error\n:HTTP_STATUS/429\ndata:")
    assert orjson.loads(throttled.split(b"data:", 1)[1]) == {
        "code": "Throttling.RateQuota",
        "message": "slow down",
        "request_id": "00000000-0000-4000-8000-000000000001",
    }
    assert internal.startswith(b"id:2\nevent:error\n:HTTP_STATUS/500\ndata:")
    assert orjson.loads(internal.split(b"data:", 1)[1])["code"] == "InternalError"
    assert inband.startswith(b"id:2\nevent:result\n:HTTP_STATUS/200\ndata:")


# -- dialect details -----------------------------------------------------------------------------


def test_dashscope_non_incremental_frames_restate_everything(emu: Emulator) -> None:
    emu.script(
        Reply(
            reasoning=["hm"], text=["Hel", "lo"], tool_calls=[ToolCallSpec("f", ['{"x"', ": 1}"], id="c1")]
        ),
        Reply(text=["Hel", "lo"]),
    )
    frames = dashscope_frames(dashscope_post(emu, result_format="message").content)
    messages = [frame["output"]["choices"][0]["message"] for frame in frames]
    assert [m["content"] for m in messages] == ["", "Hel", "Hello", "Hello", "Hello"]
    assert {m["reasoning_content"] for m in messages} == {"hm"}
    assert [m.get("tool_calls") for m in messages[3:]] == [
        [{"index": 0, "id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"x"'}}],
        [{"index": 0, "id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}],
    ]
    assert frames[-1]["output"]["choices"][0]["finish_reason"] == "tool_calls"
    assert [f["usage"]["output_tokens"] for f in frames] == [1, 2, 3, 3, 3]
    assert frames[-1]["usage"]["output_tokens_details"] == {"reasoning_tokens": 1}

    text_frames = dashscope_frames(dashscope_post(emu).content)  # result_format defaults to text
    assert [f["output"] for f in text_frames] == [
        {"finish_reason": "null", "text": "Hel"},
        {"finish_reason": "null", "text": "Hello"},
        {"finish_reason": "stop", "text": "Hello"},
    ]
    assert {f["request_id"] for f in text_frames} == {text_frames[0]["request_id"]}


def test_dashscope_multimodal_content_is_a_list_of_parts(emu: Emulator) -> None:
    emu.script(Reply(text=["Hel", "lo"]))
    path = "/services/aigc/multimodal-generation/generation"
    frames = dashscope_frames(dashscope_post(emu, path=path, incremental_output=True).content)
    assert [f["output"]["choices"][0]["message"]["content"] for f in frames] == [
        [{"text": "Hel"}],
        [{"text": "lo"}],
        [],
    ]


def test_dashscope_non_streaming_and_error_bodies(emu: Emulator) -> None:
    emu.script(
        Reply(text=["Hel", "lo"], id="req-1", usage=(3, 2)),
        Reply(status=429, headers={"Retry-After": "2"}),
        Reply(status=400, error={"code": "DataInspectionFailed", "message": "bad input"}),
    )
    whole = dashscope_post(emu, stream=False, result_format="message")
    assert whole.headers["content-type"] == "application/json"
    assert whole.json() == {
        "output": {
            "choices": [
                {"message": {"content": "Hello", "role": "assistant"}, "index": 0, "finish_reason": "stop"}
            ]
        },
        "usage": {"total_tokens": 5, "output_tokens": 2, "input_tokens": 3},
        "request_id": "req-1",
    }
    limited = dashscope_post(emu)
    assert (limited.status_code, limited.headers["retry-after"]) == (429, "2")
    assert set(limited.json()) == {"code", "message", "request_id"}
    assert limited.json()["code"] == "Throttling.RateQuota"
    assert dashscope_post(emu).json() == {"code": "DataInspectionFailed", "message": "bad input"}


def test_gemini_without_alt_sse_answers_a_json_array(emu: Emulator) -> None:
    emu.script(Reply(text=["Hel", "lo"]))
    response = gemini_post(emu, GEMINI_STREAM.removesuffix("?alt=sse"))
    assert response.headers["content-type"].startswith("application/json")
    chunks = response.json()
    assert [c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks] == ["Hel", "lo"]
    assert [c["candidates"][0].get("finishReason") for c in chunks] == [None, "STOP"]


@pytest.mark.parametrize(("finish", "native"), [("length", "MAX_TOKENS"), ("content_filter", "SAFETY")])
def test_gemini_finish_reasons_are_translated(emu: Emulator, finish: str, native: str) -> None:
    emu.script(Reply(text=["a"], finish_reason=finish))
    assert gemini_chunks(gemini_post(emu).content)[-1]["candidates"][0]["finishReason"] == native


def test_structured_arguments_must_be_a_json_object(emu: Emulator) -> None:
    emu.script(
        Reply(tool_calls=[ToolCallSpec("f", "not json")]), Reply(tool_calls=[ToolCallSpec("f", "[1]")])
    )
    gemini = gemini_post(emu)
    assert gemini.status_code == 500
    assert "'f'" in gemini.json()["error"]["message"]
    ollama_response = ollama_post(emu)
    assert ollama_response.status_code == 500
    assert "JSON object" in ollama_response.json()["error"]


def test_ollama_json_is_escaped_like_go(emu: Emulator) -> None:
    emu.script(Reply(text=["<b>&</b>"]))
    line = ollama_post(emu).content.split(b"\n")[0]
    assert b'"content":"\\u003cb\\u003e\\u0026\\u003c/b\\u003e"' in line
    assert orjson.loads(line)["message"]["content"] == "<b>&</b>"


@pytest.mark.parametrize(
    ("url", "shape"),
    [
        (lambda emu: emu.dashscope_base_url + DASHSCOPE_PATH, {"code", "message", "request_id"}),
        (lambda emu: emu.gemini_base_url + GEMINI_STREAM, {"error"}),
        (lambda emu: emu.ollama_base_url + "/api/chat", {"error"}),
    ],
    ids=WIRE_IDS,
)
def test_refusals_use_the_dialects_error_shape_and_keep_the_script(
    emu: Emulator, url: Callable[[Emulator], str], shape: set[str]
) -> None:
    emu.script(Reply(text=["kept"]))
    wrong_method = httpx.get(url(emu))
    assert (wrong_method.status_code, wrong_method.headers["allow"]) == (405, "POST")
    assert set(wrong_method.json()) == shape
    not_json = httpx.post(url(emu), content=b"not json")
    assert not_json.status_code == 400
    assert set(not_json.json()) == shape
    assert "kept" in ollama_post(emu).text


def test_base_urls(emu: Emulator) -> None:
    assert emu.dashscope_base_url == emu.url + "/api/v1"
    assert emu.gemini_base_url == emu.url
    assert emu.ollama_base_url == emu.url


# -- the rendering has the shape of real traffic --------------------------------------------------


def recording(recordings: Path, name: str) -> tuple[bytes, dict[str, Any]]:
    body_path = recordings / name
    return _recordings.read(body_path), _recordings.load_meta(body_path)


def test_dashscope_text_stream_matches_recording(emu: Emulator, recordings: Path) -> None:
    body, meta = recording(recordings, "dashscope/native_qwen-max_text_format_incremental.sse")
    recorded = dashscope_frames(body)
    emu.script(Reply(text=[f["output"]["text"] for f in recorded[:-1]]))
    request = meta["request"]
    response = httpx.post(
        emu.dashscope_base_url + DASHSCOPE_PATH, json=request["body"], headers={"Accept": "text/event-stream"}
    )
    mine = dashscope_frames(response.content)
    assert [f["output"] for f in mine] == [f["output"] for f in recorded]
    assert [set(f) for f in mine] == [set(f) for f in recorded]
    assert [set(f["usage"]) for f in mine] == [set(f["usage"]) for f in recorded]
    # Framing, line for line: id:N, event:result, :HTTP_STATUS/200, data:.
    for mine_event, recorded_event in zip(response.content.split(b"\n\n"), body.split(b"\n\n"), strict=True):
        assert mine_event.split(b"\n")[:3] == recorded_event.split(b"\n")[:3]


def test_dashscope_tool_call_stream_matches_recording(emu: Emulator, recordings: Path) -> None:
    body, meta = recording(recordings, "dashscope/native_qwen-max_parallel_tool_calls.sse")
    recorded = dashscope_frames(body)
    specs = [ToolCallSpec(call["name"], [], id=call["id"]) for call in meta["expected"]["tool_calls"]]
    fragments: list[list[str]] = [[] for _ in specs]
    for frame in recorded:
        for delta in frame["output"]["choices"][0]["message"]["tool_calls"]:
            fragments[delta["index"]].append(delta["function"]["arguments"])
    emu.script(
        Reply(tool_calls=[ToolCallSpec(s.name, f, id=s.id) for s, f in zip(specs, fragments, strict=True)])
    )
    response = httpx.post(
        emu.dashscope_base_url + DASHSCOPE_PATH,
        json=meta["request"]["body"],
        headers={"X-DashScope-SSE": "enable"},
    )
    mine = dashscope_frames(response.content)
    assert [f["output"] for f in mine] == [f["output"] for f in recorded]  # finish on the last fragment
    assert [set(f) for f in mine] == [set(f) for f in recorded]


def gemini_style(data: bytes) -> bytes:
    """``data`` re-encoded the way Google spaces its JSON."""
    return json.dumps(json.loads(data), ensure_ascii=False, separators=(",", ": ")).encode()


def test_gemini_thought_stream_matches_recording(emu: Emulator, recordings: Path) -> None:
    body, meta = recording(recordings, "gemini/2.5-flash_thoughts_text.sse")
    recorded = gemini_chunks(body)
    parts = [c["candidates"][0]["content"]["parts"][0] for c in recorded]
    emu.script(
        Reply(
            reasoning=[p["text"] for p in parts if p.get("thought")],
            text=[p["text"] for p in parts if not p.get("thought")],
            model="gemini-2.5-flash",
        )
    )
    response = httpx.post(emu.gemini_base_url + meta["request"]["path"], json=meta["request"]["body"])
    mine = gemini_chunks(response.content)
    assert [c["candidates"] for c in mine] == [c["candidates"] for c in recorded]
    assert [list(c) for c in mine] == [list(c) for c in recorded]
    assert [list(c["usageMetadata"]) for c in mine[:-1]] == [list(c["usageMetadata"]) for c in recorded[:-1]]
    # CRLF framing and Google's JSON spacing, byte for byte.
    assert b"\n" not in response.content.replace(b"\r\n", b"")
    for data in sse_data_lines(response.content) + sse_data_lines(body):
        assert gemini_style(data) == data


def test_gemini_function_call_chunk_matches_recording(emu: Emulator, recordings: Path) -> None:
    body, meta = recording(recordings, "gemini/2.5-flash_parallel_function_calls.sse")
    (recorded,) = gemini_chunks(body)
    calls = [ToolCallSpec(c["name"], json.dumps(c["args"])) for c in meta["expected"]["function_calls"]]
    emu.script(Reply(tool_calls=calls, model="gemini-2.5-flash"))
    (mine,) = gemini_chunks(gemini_post(emu).content)
    mine_candidate, recorded_candidate = mine["candidates"][0], recorded["candidates"][0]
    assert set(mine_candidate) <= set(recorded_candidate)
    assert mine_candidate["finishReason"] == recorded_candidate["finishReason"]
    mine_parts, recorded_parts = mine_candidate["content"]["parts"], recorded_candidate["content"]["parts"]
    assert [list(p) for p in mine_parts] == [list(p) for p in recorded_parts]  # signature on the first only
    assert [p["functionCall"] for p in mine_parts] == [p["functionCall"] for p in recorded_parts]
    assert set(mine["usageMetadata"]) <= set(recorded["usageMetadata"])


def test_gemini_error_matches_recording(emu: Emulator, recordings: Path) -> None:
    body, meta = recording(recordings, "gemini/error_400_invalid_api_key.json")
    recorded = json.loads(body)
    emu.script(Reply(status=400, error=recorded["error"]), Reply(status=400))
    replayed = gemini_post(emu)
    assert replayed.status_code == meta["response"]["status"]
    assert replayed.headers["content-type"] in meta["response"]["content_type"]
    assert replayed.content.strip() == body.strip()  # indented like Google's
    default = gemini_post(emu).json()["error"]
    assert set(default) < set(recorded["error"])
    assert (default["code"], default["status"]) == (recorded["error"]["code"], recorded["error"]["status"])


def test_ollama_stream_matches_recording(emu: Emulator, recordings: Path) -> None:
    body, meta = recording(recordings, "ollama/gemma3-1b_count_stream.ndjson")
    recorded = [orjson.loads(line) for line in body.splitlines()]
    emu.script(Reply(text=[line["message"]["content"] for line in recorded[:-1]], model="gemma3:1b"))
    response = httpx.post(emu.ollama_base_url + "/api/chat", json=meta["request"]["body"])
    assert response.headers["content-type"] == "application/x-ndjson"
    mine = [orjson.loads(line) for line in response.content.splitlines()]
    assert [list(line) for line in mine] == [list(line) for line in recorded]  # same keys, same order
    for key in ("model", "message", "done"):
        assert [line[key] for line in mine] == [line[key] for line in recorded]
    assert mine[-1]["done_reason"] == recorded[-1]["done_reason"]
