"""``sse_response`` and ``text_response`` on real servers: the Vercel AI SDK's UI message
stream (v1) checked chunk by chunk against the client's strict schemas and ordering rules,
streamwrap's own events, plain text, heartbeats, and what happens when the client leaves.

Served by uvicorn on a real socket (asyncio) and by Starlette's TestClient on trio; a
model pointed at the provider emulator answers."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from typing import Any

import anyio
import pytest

pytest.importorskip("starlette")
uvicorn = pytest.importorskip("uvicorn")
import httpx  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.background import BackgroundTask  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse, Response  # noqa: E402
from starlette.routing import Route  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

import streamwrap  # noqa: E402
from streamwrap.testing import Emulator, Fault, Reply, ToolCallSpec  # noqa: E402
from streamwrap.web import sse_response, text_response  # noqa: E402
from tests.support import providers  # noqa: E402
from tests.support.server import Server  # noqa: E402

WORDS = [f"w{i} " for i in range(8)]

# -- the UI message stream grammar ------------------------------------------------------------


def _str(v: Any) -> bool:
    return isinstance(v, str)


def _any(v: Any) -> bool:
    return True


def _bool(v: Any) -> bool:
    return isinstance(v, bool)


def _one_of(*values: str) -> Callable[[Any], bool]:
    return lambda v: v in values


Schema = dict[str, dict[str, tuple[bool, Callable[[Any], bool]]]]

# type -> {field: (required, check)}: the chunk schemas of the AI SDK client, transcribed from
# uiMessageChunkSchema in the `ai` package's dist/index.js (its source is vercel/ai
# packages/ai/src/ui-message-stream/ui-message-chunks.ts), for the chunk types a UI message
# stream made of text, reasoning and tool calls may hold. ("providerMetadata" and friends
# are checked as present-or-absent only: streamwrap never sends them.)
#
# The oldest v5, `npm pack ai@5.0.0`: every object is z.strictObject (a field it does not
# list fails the whole chunk, and useChat shows an error). It has no "finishReason" on
# "finish" (5.0.92 added it) and no "tool-input-error" (5.0.7 added it).
SCHEMA_AI_5_0_0: Schema = {
    "start": {"messageId": (False, _str), "messageMetadata": (False, _any)},
    "start-step": {},
    "finish-step": {},
    "text-start": {"id": (True, _str), "providerMetadata": (False, _any)},
    "text-delta": {"id": (True, _str), "delta": (True, _str), "providerMetadata": (False, _any)},
    "text-end": {"id": (True, _str), "providerMetadata": (False, _any)},
    "reasoning-start": {"id": (True, _str), "providerMetadata": (False, _any)},
    "reasoning-delta": {"id": (True, _str), "delta": (True, _str), "providerMetadata": (False, _any)},
    "reasoning-end": {"id": (True, _str), "providerMetadata": (False, _any)},
    "tool-input-start": {
        "toolCallId": (True, _str),
        "toolName": (True, _str),
        "providerExecuted": (False, _bool),
        "dynamic": (False, _bool),
    },
    "tool-input-delta": {"toolCallId": (True, _str), "inputTextDelta": (True, _str)},
    "tool-input-available": {
        "toolCallId": (True, _str),
        "toolName": (True, _str),
        "input": (True, _any),
        "providerExecuted": (False, _bool),
        "providerMetadata": (False, _any),
        "dynamic": (False, _bool),
    },
    "tool-output-error": {
        "toolCallId": (True, _str),
        "errorText": (True, _str),
        "providerExecuted": (False, _bool),
        "dynamic": (False, _bool),
    },
    "finish": {"messageMetadata": (False, _any)},
    "error": {"errorText": (True, _str)},
    "abort": {},
}
# The current release, `npm pack ai@latest` (7.0.173). Its objects are z.looseObject (6.0.0
# was still strict), but the required fields and the values checked here still apply.
SCHEMA_AI_CURRENT: Schema = {
    "start": {"messageId": (False, _str), "messageMetadata": (False, _any)},
    "start-step": {},
    "finish-step": {},
    "text-start": {"id": (True, _str), "providerMetadata": (False, _any)},
    "text-delta": {"id": (True, _str), "delta": (True, _str), "providerMetadata": (False, _any)},
    "text-end": {"id": (True, _str), "citations": (False, _any), "providerMetadata": (False, _any)},
    "reasoning-start": {"id": (True, _str), "providerMetadata": (False, _any)},
    "reasoning-delta": {"id": (True, _str), "delta": (True, _str), "providerMetadata": (False, _any)},
    "reasoning-end": {"id": (True, _str), "providerMetadata": (False, _any)},
    "tool-input-start": {
        "toolCallId": (True, _str),
        "toolName": (True, _str),
        "inputEncoding": (False, _one_of("json", "text")),
        "providerExecuted": (False, _bool),
        "providerMetadata": (False, _any),
        "toolMetadata": (False, _any),
        "dynamic": (False, _bool),
        "title": (False, _str),
    },
    "tool-input-delta": {"toolCallId": (True, _str), "inputTextDelta": (True, _str)},
    "tool-input-available": {
        "toolCallId": (True, _str),
        "toolName": (True, _str),
        "input": (True, _any),
        "providerExecuted": (False, _bool),
        "providerMetadata": (False, _any),
        "toolMetadata": (False, _any),
        "dynamic": (False, _bool),
        "title": (False, _str),
    },
    "tool-input-error": {
        "toolCallId": (True, _str),
        "toolName": (True, _str),
        "input": (True, _any),
        "providerExecuted": (False, _bool),
        "providerMetadata": (False, _any),
        "toolMetadata": (False, _any),
        "dynamic": (False, _bool),
        "errorText": (True, _str),
        "title": (False, _str),
    },
    "tool-output-error": {
        "toolCallId": (True, _str),
        "errorText": (True, _str),
        "providerExecuted": (False, _bool),
        "providerMetadata": (False, _any),
        "toolMetadata": (False, _any),
        "dynamic": (False, _bool),
    },
    "finish": {
        "finishReason": (
            False,
            _one_of("stop", "length", "content-filter", "tool-calls", "error", "interrupted", "other"),
        ),
        "messageMetadata": (False, _any),
    },
    "error": {"errorText": (True, _str)},
    "abort": {"reason": (False, _str)},
}
# Every chunk must pass both: what 5.0.0 accepts and what the current release does.
SCHEMAS = {"ai 5.0.0": SCHEMA_AI_5_0_0, "ai current": SCHEMA_AI_CURRENT}


def check_chunk(chunk: dict[str, Any]) -> None:
    """Assert that every transcribed client schema accepts ``chunk``."""
    kind = chunk.get("type")
    for version, schemas in SCHEMAS.items():
        assert kind in schemas, f"{version} has no chunk type {kind!r}"
        schema = schemas[kind]
        extra = set(chunk) - {"type"} - set(schema)
        assert not extra, f"{version}: {kind} has fields its strict schema rejects: {extra}"
        for name, (required, check) in schema.items():
            if name in chunk:
                assert check(chunk[name]), f"{version}: {kind}.{name} = {chunk[name]!r}"
            else:
                assert not required, f"{version}: {kind} lacks {name}"


TERMINAL = {"finish", "error", "abort"}


@dataclass
class SSEEvent:
    id: str | None = None
    event: str | None = None
    data: list[str] = field(default_factory=list)


def parse_sse(body: str) -> tuple[list[SSEEvent], list[str]]:
    """The events and the comments of an SSE body (fields as the SSE spec reads them)."""
    assert body.endswith("\n\n"), f"the body does not end with a complete event: {body[-80:]!r}"
    events, comments = [], []
    for block in body[:-2].split("\n\n"):
        event = SSEEvent()
        for line in block.split("\n"):
            assert line, f"stray blank line in {block!r}"
            if line.startswith(":"):
                comments.append(line)
                continue
            name, colon, value = line.partition(":")
            assert colon, f"a field line without a colon: {line!r}"
            value = value[1:] if value.startswith(" ") else value
            assert name in ("id", "event", "data"), f"unknown field {name!r}"
            if name == "data":
                event.data.append(value)
            else:
                assert getattr(event, name) is None, f"repeated {name!r} in {block!r}"
                setattr(event, name, value)
        if event.data or event.id or event.event:
            events.append(event)
    return events, comments


@dataclass
class UIStream:
    chunks: list[dict[str, Any]]
    text: str
    reasoning: str
    tools: dict[str, dict[str, Any]]
    comments: list[str]

    @property
    def terminal(self) -> dict[str, Any]:
        return self.chunks[-1]

    def types(self) -> list[str]:
        return [c["type"] for c in self.chunks]


def check_ui_stream(body: str, response_id: str | None = None) -> UIStream:
    """Validate a UI message stream against the AI SDK's grammar; return what it says."""
    events, comments = parse_sse(body)
    assert all(c == ": keep-alive" for c in comments), comments
    assert events, "no events"
    assert events[-1].data == ["[DONE]"] and events[-1].id is None and events[-1].event is None, (
        "no final [DONE]"
    )
    chunks: list[dict[str, Any]] = []
    rid = None
    for n, event in enumerate(events[:-1]):
        assert len(event.data) == 1, "one data line per event"
        chunk = json.loads(event.data[0])
        # The id line: <response id>:<n>, n counting 0, 1, 2, ...
        assert event.id is not None
        event_rid, _, index = event.id.rpartition(":")
        rid = rid or event_rid
        assert event_rid == rid and index == str(n), (event.id, n)
        check_chunk(chunk)
        kind = chunk["type"]
        # Only the terminal chunk is marked final, and it is the last before [DONE].
        is_last = n == len(events) - 2
        assert (event.event == "final") == is_last, (event.event, n)
        assert (kind in TERMINAL) == is_last, f"{kind} at {n} of {len(events) - 1}"
        chunks.append(chunk)
    if response_id is not None:
        assert rid == response_id
    assert chunks[0] == {"type": "start", "messageId": rid}

    # Ordering: deltas inside their part, parts closed before the end, tools started first.
    open_text: set[str] = set()
    open_reasoning: set[str] = set()
    seen_parts: set[str] = set()
    tools: dict[str, dict[str, Any]] = {}
    text: list[str] = []
    reasoning: list[str] = []
    step_open = False
    for chunk in chunks[1:]:
        kind = chunk["type"]
        if kind == "start-step":
            assert not step_open
            step_open = True
            continue
        if kind in ("finish-step",) or kind in TERMINAL:
            assert not open_text and not open_reasoning, f"{kind} with parts still open"
            assert all(t["closed"] for t in tools.values()) or kind != "finish", (
                "finish with a tool call open"
            )
            if kind == "finish-step":
                assert step_open
                step_open = False
            elif kind == "finish":
                assert not step_open, "finish without finish-step"
            continue
        assert step_open, f"{kind} outside a step"
        for prefix, active, sink in (("text", open_text, text), ("reasoning", open_reasoning, reasoning)):
            if kind == f"{prefix}-start":
                assert chunk["id"] not in seen_parts, "a part id reused"
                seen_parts.add(chunk["id"])
                active.add(chunk["id"])
            elif kind == f"{prefix}-delta":
                assert chunk["id"] in active, f"{kind} outside its part"
                sink.append(chunk["delta"])
            elif kind == f"{prefix}-end":
                assert chunk["id"] in active, f"{kind} for a part that is not open"
                active.remove(chunk["id"])
        if kind == "tool-input-start":
            assert chunk["toolCallId"] not in tools
            tools[chunk["toolCallId"]] = {"name": chunk["toolName"], "args": "", "closed": False}
        elif kind.startswith("tool-"):
            tool = tools[chunk["toolCallId"]]  # (KeyError: a tool chunk before its start)
            assert not tool["closed"]
            if kind == "tool-input-delta":
                tool["args"] += chunk["inputTextDelta"]
            else:  # tool-input-available, or tool-output-error for a call that failed
                assert chunk.get("toolName", tool["name"]) == tool["name"]
                tool["closed"] = True
                tool[kind] = chunk
    return UIStream(chunks, "".join(text), "".join(reasoning), tools, comments)


# -- servers ----------------------------------------------------------------------------------


@dataclass
class Scenario:
    """What the test app does with the next request."""

    model: Any = None
    kind: str = "sse"  # sse | text | sse-call | text-call | checked
    call: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    save: bool = False
    responses: list[streamwrap.ModelResponse] = field(default_factory=list)
    saved: list[str] = field(default_factory=list)


SCENARIO = Scenario()


async def chat(request: Request) -> Response:
    s = SCENARIO
    prompt = (await request.json())["prompt"]
    if s.kind == "sse-call":
        return sse_response(s.model(prompt, **s.call), **s.options)
    if s.kind == "text-call":
        return text_response(s.model(prompt, **s.call), **s.options)
    if s.kind == "checked":
        # The other pattern: await the call yourself and answer a refusal with an HTTP error.
        try:
            response = await s.model(prompt, **s.call)
        except streamwrap.ProviderHTTPError as exc:
            return JSONResponse({"error": str(exc)}, status_code=429 if exc.status_code == 429 else 502)
    else:
        response = await s.model(prompt, **s.call)
    s.responses.append(response)
    if s.kind == "text":
        return text_response(response, **s.options)
    sse = sse_response(response, **s.options)
    if s.save:

        async def save() -> None:
            s.saved.append(await response.aread())

        sse.background = BackgroundTask(save)
    return sse


APP = Starlette(routes=[Route("/chat", chat, methods=["POST"])])


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    s = Server(APP, log_level="critical")
    yield s
    s.stop()


make_model = partial(providers.make_model, api_key="sk-test")


@pytest.fixture
def scenario(emu: Emulator) -> Iterator[Scenario]:
    global SCENARIO
    SCENARIO = Scenario(model=make_model(emu))
    yield SCENARIO
    SCENARIO = Scenario()


@pytest.fixture(params=["uvicorn", "trio"])
def client(request: pytest.FixtureRequest, server: Server, scenario: Scenario) -> Iterator[Any]:
    """An HTTP client of the app: over a socket to uvicorn (asyncio), or Starlette's
    TestClient running the app on trio."""
    if request.param == "uvicorn":
        with httpx.Client(base_url=server.url, timeout=20) as c:
            yield c
    else:
        with TestClient(APP, backend="trio") as c:
            yield c


def post(client: httpx.Client, prompt: str = "hi") -> httpx.Response:
    return client.post("/chat", json={"prompt": prompt})


def finished(response: streamwrap.ModelResponse, timeout: float = 10.0) -> streamwrap.ModelResponse:
    assert response.wait(timeout), "the response did not end"
    return response


# -- the UI message stream --------------------------------------------------------------------


def test_plain_text(client: httpx.Client, emu: Emulator, scenario: Scenario) -> None:
    emu.script(Reply(text=WORDS))
    reply = post(client)
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert reply.headers["cache-control"] == "no-cache"
    assert reply.headers["x-accel-buffering"] == "no"
    assert reply.headers["x-vercel-ai-ui-message-stream"] == "v1"
    response = finished(scenario.responses[0])
    assert reply.headers["x-streamwrap-response-id"] == response.id
    stream = check_ui_stream(reply.text, response.id)
    assert stream.text == response.text == "".join(WORDS)
    assert stream.types()[:3] == ["start", "start-step", "text-start"]
    assert stream.types()[-3:] == ["text-end", "finish-step", "finish"]
    assert stream.types().count("text-delta") == len(WORDS)
    metadata = stream.terminal["messageMetadata"]
    # The reason travels in the metadata: ai 5.0.0-5.0.91 reject a finish chunk with one.
    assert "finishReason" not in stream.terminal
    assert metadata["responseId"] == response.id and metadata["model"] == "emulator-1"
    assert metadata["finishReason"] == "stop" and metadata["duration"] > 0
    # The terminal chunk never carries the answer (it would be appended twice).
    assert "".join(WORDS) not in json.dumps(stream.terminal)


def test_reasoning_then_text(client: httpx.Client, emu: Emulator, scenario: Scenario) -> None:
    emu.script(Reply(reasoning=["Let me ", "think."], text=["The ", "answer."]))
    stream = check_ui_stream(post(client).text)
    response = finished(scenario.responses[0])
    assert stream.reasoning == response.reasoning == "Let me think."
    assert stream.text == response.text == "The answer."
    kinds = [t for t in stream.types() if t.endswith(("-start", "-end")) and t != "tool-input-start"]
    assert kinds == ["reasoning-start", "reasoning-end", "text-start", "text-end"]


def test_tool_calls(client: httpx.Client, emu: Emulator, scenario: Scenario) -> None:
    emu.script(
        Reply(
            text="Let me check.",
            tool_calls=[
                ToolCallSpec("get_weather", ['{"ci', 'ty": "Par', 'is"}'], id="call_a"),
                ToolCallSpec("get_time", '{"zone": "CET"}', id="call_b"),
            ],
        )
    )
    stream = check_ui_stream(post(client).text)
    response = finished(scenario.responses[0])
    assert stream.terminal["messageMetadata"]["finishReason"] == "tool_calls"
    assert set(stream.tools) == {"call_a", "call_b"}
    for call in response.tool_calls:
        tool = stream.tools[call.id]
        assert tool["name"] == call.name and tool["args"] == call.arguments
        assert tool["tool-input-available"]["input"] == call.parsed_arguments()
    assert stream.text == "Let me check."


def test_usage_is_in_the_finish_metadata(client: httpx.Client, emu: Emulator, scenario: Scenario) -> None:
    emu.script(Reply(text=WORDS, usage=(12, 34)))
    stream = check_ui_stream(post(client).text)
    usage = stream.terminal["messageMetadata"]["usage"]
    assert usage == finished(scenario.responses[0]).usage.as_dict()
    assert (usage["input_tokens"], usage["output_tokens"], usage["total_tokens"], usage["source"]) == (
        12,
        34,
        46,
        "provider",
    )


def test_the_cost_is_in_the_finish_metadata(client: httpx.Client, emu: Emulator, scenario: Scenario) -> None:
    from tests.support.prices import INPUT, OUTPUT, snapshot, usd

    data_snapshot = pytest.importorskip("genai_prices.data_snapshot")
    scenario.model = make_model(emu, price_provider="openai")
    data_snapshot.set_custom_snapshot(snapshot())
    try:
        emu.script(Reply(text=WORDS, usage=(1000, 500)), Reply(text=WORDS, stream_usage=False))
        priced = check_ui_stream(post(client).text).terminal["messageMetadata"]["cost"]
        # Estimated usage is never priced: the metadata says null rather than guess.
        estimated = check_ui_stream(post(client).text).terminal["messageMetadata"]["cost"]
    finally:
        data_snapshot.set_custom_snapshot(None)
    assert priced == finished(scenario.responses[0]).cost.as_dict()  # type: ignore[union-attr]
    assert Decimal(priced["amount"]) == usd((1000, INPUT), (500, OUTPUT)) and priced["currency"] == "USD"
    assert estimated is None and finished(scenario.responses[1]).cost is None


def test_the_events_protocol_end_frame_carries_the_cost(
    client: httpx.Client, emu: Emulator, scenario: Scenario
) -> None:
    from tests.support.prices import INPUT, OUTPUT, snapshot, usd

    data_snapshot = pytest.importorskip("genai_prices.data_snapshot")
    scenario.model = make_model(emu, price_provider="openai")
    scenario.options = {"protocol": "events"}
    data_snapshot.set_custom_snapshot(snapshot())
    try:
        emu.script(Reply(text=WORDS, usage=(1000, 500)))
        body = post(client).text
    finally:
        data_snapshot.set_custom_snapshot(None)
    frames = [json.loads(line[6:]) for line in body.splitlines() if line.startswith("data: ")]
    assert frames[-1]["type"] == "end"
    assert Decimal(frames[-1]["cost"]["amount"]) == usd((1000, INPUT), (500, OUTPUT))


def test_a_non_streaming_response_sends_its_text_once(
    client: httpx.Client, emu: Emulator, scenario: Scenario
) -> None:
    emu.script(Reply(text=WORDS, reasoning="hmm", tool_calls=[ToolCallSpec("f", '{"x": 1}', id="call_f")]))
    scenario.call = {"stream": False}
    stream = check_ui_stream(post(client).text)
    response = finished(scenario.responses[0])
    assert not response.streaming
    assert stream.text == response.text == "".join(WORDS)
    assert stream.types().count("text-delta") == 1
    assert stream.reasoning == "hmm"
    assert stream.tools["call_f"]["tool-input-available"]["input"] == {"x": 1}


def test_a_mid_stream_failure_ends_with_an_error_chunk(
    client: httpx.Client, emu: Emulator, scenario: Scenario
) -> None:
    emu.script(Reply(text=WORDS, fault=Fault.drop_after(3)))
    stream = check_ui_stream(post(client).text)
    response = finished(scenario.responses[0])
    assert response.finish_reason == "error"
    assert stream.terminal["type"] == "error"
    assert "connection lost" in stream.terminal["errorText"]
    assert stream.text == response.partial_text == "".join(WORDS[:3])
    assert "finish" not in stream.types()


def test_a_failed_tool_call_is_closed_with_an_error(
    client: httpx.Client, emu: Emulator, scenario: Scenario
) -> None:
    emu.script(
        Reply(tool_calls=[ToolCallSpec("f", ['{"a"', ": 1", "}"], id="call_f")], fault=Fault.drop_after(2))
    )
    stream = check_ui_stream(post(client).text)
    tool = stream.tools["call_f"]
    # Closed as failed (not as available input), after the arguments that had arrived;
    # with tool-output-error, which every ai 5.x knows (tool-input-error came in 5.0.7).
    assert "tool-input-available" not in tool
    assert "before the tool call was complete" in tool["tool-output-error"]["errorText"]
    assert tool["args"] and '{"a": 1}'.startswith(tool["args"]) and tool["args"] != '{"a": 1}'
    assert stream.terminal["type"] == "error"


def test_an_http_error_before_streaming_is_reported_in_the_stream(
    client: httpx.Client, emu: Emulator, scenario: Scenario
) -> None:
    # The recommended pattern for useChat: pass the call, un-awaited. A refusal then
    # arrives as the stream's error, which useChat shows (a non-2xx body it shows raw).
    emu.script(Reply(status=429, headers={"Retry-After": "3"}))
    scenario.kind = "sse-call"
    reply = post(client)
    assert reply.status_code == 200
    assert reply.headers["x-streamwrap-upstream-status"] == "429"
    stream = check_ui_stream(reply.text, reply.headers["x-streamwrap-response-id"])
    assert stream.types() == ["start", "error"]
    assert "429" in stream.terminal["errorText"]


def test_a_call_passed_unawaited_streams_like_a_response(
    client: httpx.Client, emu: Emulator, scenario: Scenario
) -> None:
    emu.script(Reply(text=WORDS))
    scenario.kind = "sse-call"
    reply = post(client)
    stream = check_ui_stream(reply.text, reply.headers["x-streamwrap-response-id"])
    assert stream.text == "".join(WORDS) and stream.terminal["type"] == "finish"


def test_or_await_the_call_and_answer_an_http_error(
    client: httpx.Client, emu: Emulator, scenario: Scenario
) -> None:
    emu.script(Reply(status=429), Reply(text=WORDS))
    scenario.kind = "checked"
    reply = post(client)
    assert reply.status_code == 429 and "429" in reply.json()["error"]
    stream = check_ui_stream(post(client).text)
    assert stream.text == "".join(WORDS)


def test_a_response_cancelled_on_the_server_ends_with_abort(
    client: httpx.Client, own_emu: Emulator, scenario: Scenario
) -> None:
    scenario.model = make_model(own_emu)
    own_emu.script(Reply(text=WORDS * 100, delay=0.01))
    lines: list[str] = []
    with client.stream("POST", "/chat", json={"prompt": "hi"}) as reply:
        deltas = 0
        for line in reply.iter_lines():
            lines.append(line)
            if '"text-delta"' in line:
                deltas += 1
                if deltas == 3:
                    scenario.responses[0].close()  # e.g. the app's own timeout or stop button
    body = "\n".join(lines) + "\n"
    stream = check_ui_stream(body)
    assert stream.terminal == {"type": "abort"}
    response = finished(scenario.responses[0])
    assert response.finish_reason == "cancelled"
    assert stream.text == response.text and len(stream.text) < len("".join(WORDS * 100))
    assert own_emu.wait_idle(5), "the upstream connection was not closed"


def test_heartbeats_while_the_model_is_silent(
    client: httpx.Client, emu: Emulator, scenario: Scenario
) -> None:
    emu.script(Reply(text=WORDS[:2], first_delay=0.4), Reply(text=WORDS[:2], first_delay=0.4))
    scenario.options = {"heartbeat": 0.05}
    stream = check_ui_stream(post(client).text)
    assert stream.comments and set(stream.comments) == {": keep-alive"}
    assert stream.text == "".join(WORDS[:2])
    scenario.options = {"heartbeat": None}
    assert check_ui_stream(post(client).text).comments == []


def test_a_long_stream(client: httpx.Client, emu: Emulator, scenario: Scenario) -> None:
    tokens = [f"t{i} " for i in range(2000)]
    emu.script(Reply(text=tokens))
    stream = check_ui_stream(post(client).text)
    assert stream.types().count("text-delta") == 2000
    assert stream.text == "".join(tokens) == finished(scenario.responses[0]).text


# -- streamwrap's events ----------------------------------------------------------------------


def check_events_stream(body: str) -> list[dict[str, Any]]:
    events, comments = parse_sse(body)
    assert all(c == ": keep-alive" for c in comments)
    frames = []
    for n, event in enumerate(events):
        frame = json.loads("\n".join(event.data))
        assert event.event == frame["type"]
        assert event.id == f"{frame['id']}:{n}" and frame["seq"] == n
        assert frame["final"] == (n == len(events) - 1)
        frames.append(frame)
    assert frames[0]["type"] == "start" and frames[-1]["type"] == "end"
    assert len({f["id"] for f in frames}) == 1
    assert "text" not in frames[-1] and "reasoning" not in frames[-1]
    return frames


def text_of(frames: list[dict[str, Any]]) -> str:
    return "".join(f["delta"] for f in frames if f["type"] == "text")


@pytest.mark.parametrize("stream", [True, False], ids=["streaming", "non-streaming"])
def test_the_events_protocol(client: httpx.Client, emu: Emulator, scenario: Scenario, stream: bool) -> None:
    emu.script(Reply(text=WORDS, reasoning="hm", usage=(1, 2)))
    scenario.call = {"stream": stream}
    scenario.options = {"protocol": "events"}
    reply = post(client)
    assert "x-vercel-ai-ui-message-stream" not in reply.headers
    frames = check_events_stream(reply.text)
    response = finished(scenario.responses[0])
    assert text_of(frames) == response.text == "".join(WORDS)
    assert "".join(f["delta"] for f in frames if f["type"] == "reasoning") == "hm"
    end = frames[-1]
    assert end["status"] == "finished" and end["usage"]["total_tokens"] == 3
    assert [f["type"] for f in frames].count("text") == (len(WORDS) if stream else 1)


def test_the_events_protocol_reports_a_refused_call(
    client: httpx.Client, emu: Emulator, scenario: Scenario
) -> None:
    emu.script(Reply(status=401))
    scenario.kind = "sse-call"
    scenario.options = {"protocol": "events"}
    reply = post(client)
    events, _ = parse_sse(reply.text)
    assert len(events) == 1 and events[0].event == "error"
    frame = json.loads(events[0].data[0])
    assert events[0].id == f"{frame['id']}:0" == f"{reply.headers['x-streamwrap-response-id']}:0"
    assert frame["final"] is True and frame["code"] == "provider_error"
    assert frame["error_type"] == "AuthenticationError" and frame["status_code"] == 401


def test_the_events_protocol_after_a_failure(client: httpx.Client, emu: Emulator, scenario: Scenario) -> None:
    emu.script(Reply(text=WORDS, fault=Fault.error_event_after(2, message="overloaded")))
    scenario.options = {"protocol": "events"}
    frames = check_events_stream(post(client).text)
    assert frames[-1]["status"] == "failed" and frames[-1]["error"]["type"] == "ProviderStreamError"
    assert text_of(frames) == "".join(WORDS[:2])


# -- plain text -------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False], ids=["streaming", "non-streaming"])
def test_text_response(client: httpx.Client, emu: Emulator, scenario: Scenario, stream: bool) -> None:
    emu.script(Reply(text=WORDS, reasoning="not shown"))
    scenario.kind = "text"
    scenario.call = {"stream": stream}
    reply = post(client)
    assert reply.headers["content-type"] == "text/plain; charset=utf-8"
    assert reply.text == "".join(WORDS)
    assert reply.headers["x-streamwrap-response-id"] == scenario.responses[0].id


def test_a_failed_text_body_is_cut_off_not_ended(server: Server, emu: Emulator, scenario: Scenario) -> None:
    emu.script(Reply(text=WORDS, fault=Fault.drop_after(3)))
    scenario.kind = "text"
    received = []
    with httpx.Client(base_url=server.url, timeout=20) as http, pytest.raises(httpx.RemoteProtocolError):
        with http.stream("POST", "/chat", json={"prompt": "hi"}) as reply:
            for piece in reply.iter_text():
                received.append(piece)
    assert "".join(received) == "".join(WORDS[:3])


@pytest.mark.parametrize(("status", "expected"), [(429, 429), (500, 502)])
def test_a_refused_text_call_is_an_http_error(
    client: httpx.Client, emu: Emulator, scenario: Scenario, status: int, expected: int
) -> None:
    emu.script(Reply(status=status, headers={"Retry-After": "2"}))
    scenario.kind = "text-call"
    reply = post(client)
    assert reply.status_code == expected
    assert reply.text.startswith("error: ") and str(status) in reply.text
    assert reply.headers["x-streamwrap-upstream-status"] == str(status)
    if status == 429:
        assert reply.headers["retry-after"] == "2"


# -- the client leaving -----------------------------------------------------------------------


def read_deltas(http: httpx.Client, n: int) -> None:
    """POST, read ``n`` text deltas, then hang up (closing the socket mid-body)."""
    with http.stream("POST", "/chat", json={"prompt": "hi"}) as reply:
        seen = 0
        for line in reply.iter_lines():
            if '"text-delta"' in line:
                seen += 1
                if seen == n:
                    return


def test_a_client_that_leaves_cancels_the_response(
    server: Server, own_emu: Emulator, scenario: Scenario
) -> None:
    scenario.model = make_model(own_emu)
    own_emu.script(Reply(text=WORDS * 100, delay=0.01))
    with httpx.Client(base_url=server.url, timeout=20) as http:
        read_deltas(http, 3)
    response = finished(scenario.responses[0])
    assert response.finish_reason == "cancelled"
    assert len(response.text) < len("".join(WORDS * 100))
    assert own_emu.wait_idle(5), "the upstream connection was not closed"


def test_leaving_is_noticed_while_the_model_is_silent(
    server: Server, own_emu: Emulator, scenario: Scenario
) -> None:
    # No heartbeats, and the model stalls: nothing is written after the client leaves,
    # so only listening for http.disconnect can notice it.
    scenario.model = make_model(own_emu)
    scenario.options = {"heartbeat": None}
    own_emu.script(Reply(text=WORDS, fault=Fault.stall_after(3, seconds=3)))
    with httpx.Client(base_url=server.url, timeout=20) as http:
        read_deltas(http, 3)
    response = scenario.responses[0]
    assert response.wait(2.5), "the disconnect was not noticed during the stall"
    assert response.finish_reason == "cancelled"
    assert response.text == "".join(WORDS[:3])


def test_on_disconnect_continue_keeps_the_response(server: Server, emu: Emulator, scenario: Scenario) -> None:
    emu.script(Reply(text=WORDS * 5, delay=0.01))
    scenario.options = {"on_disconnect": "continue"}
    scenario.save = True
    with httpx.Client(base_url=server.url, timeout=20) as http:
        read_deltas(http, 3)
    response = finished(scenario.responses[0])
    assert response.finish_reason == "stop"
    assert response.text == "".join(WORDS * 5)
    deadline = time.monotonic() + 5
    while not scenario.saved and time.monotonic() < deadline:
        time.sleep(0.01)
    assert scenario.saved == ["".join(WORDS * 5)], "the background task did not save the answer"


# -- arguments --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"protocol": "vercel"}, "'ui-message', 'events'"),
        ({"on_disconnect": "stop"}, "'cancel', 'continue'"),
        ({"heartbeat": 0}, "heartbeat"),
        ({"heartbeat": -1.0}, "heartbeat"),
        ({"heartbeat": math.nan}, "heartbeat"),
        ({"heartbeat": True}, "heartbeat"),
        ({"heartbeat": "15"}, "heartbeat"),
        ({"headers": {"x-a": 1}}, "headers"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, Any], message: str) -> None:
    async def call() -> streamwrap.ModelResponse:
        raise AssertionError("never awaited")

    coroutine = call()
    try:
        with pytest.raises(streamwrap.InputError, match=message):
            sse_response(coroutine, **kwargs)
    finally:
        coroutine.close()


def test_only_responses_and_calls_are_accepted() -> None:
    with pytest.raises(streamwrap.InputError, match="ModelResponse"):
        sse_response("hello")  # type: ignore[arg-type]
    with pytest.raises(streamwrap.InputError, match="ModelResponse"):
        text_response(None)  # type: ignore[arg-type]


# -- events that are ready together go out together -------------------------------------------


async def run_asgi(app: Any) -> list[dict[str, Any]]:
    """Run an ASGI response to its end with a client that never leaves; the messages sent."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}, "method": "POST"}
    await app(scope, receive, send)
    return sent


def reserialize(events: list[SSEEvent]) -> str:
    """The SSE text of parsed events, written as sse_response writes each one."""
    out = []
    for e in events:
        head = "".join(f"{name}: {value}\n" for name, value in (("id", e.id), ("event", e.event)) if value)
        out.append(head + "".join(f"data: {d}\n" for d in e.data) + "\n")
    return "".join(out)


@pytest.mark.anyio
@pytest.mark.parametrize("protocol", ["ui-message", "events"])
async def test_ready_events_are_written_together_each_once_in_order(
    emu: Emulator, protocol: str, anyio_backend: str
) -> None:
    # The whole reply is in before the body starts, so every event is ready at once: they
    # go out in a few large writes instead of one per event, byte for byte the same SSE.
    tokens = [f"t{i} " for i in range(3000)]
    emu.script(Reply(text=tokens))
    response = await make_model(emu)("hi")
    await response.await_done()
    sent = await run_asgi(sse_response(response, protocol=protocol, heartbeat=None))  # type: ignore[arg-type]
    assert sent[0]["type"] == "http.response.start"
    bodies = [m["body"] for m in sent[1:]]
    assert sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
    body = b"".join(bodies).decode()
    events, comments = parse_sse(body)
    assert comments == []
    assert reserialize(events) == body  # the SSE framing of every event is intact
    # Every event once, in order: the ids count up from 0 without a gap.
    numbered = [e for e in events if e.id is not None]
    assert [e.id for e in numbered] == [f"{response.id}:{n}" for n in range(len(numbered))]
    if protocol == "ui-message":
        stream = check_ui_stream(body, response.id)
        assert stream.types().count("text-delta") == 3000
        assert stream.text == "".join(tokens)
    else:
        frames = check_events_stream(body)
        assert text_of(frames) == "".join(tokens)
    # Written together: a handful of writes of several events each, not one per event.
    assert len(bodies) - 1 < len(events) / 100
    assert all(len(b) < 200 * 1024 for b in bodies)  # and still in bounded pieces


def test_a_lone_event_is_written_at_once(server: Server, own_emu: Emulator, scenario: Scenario) -> None:
    # The model pauses after its third chunk: the third delta must reach the client during
    # the pause, not be held back to go out with whatever comes next.
    scenario.model = make_model(own_emu)
    scenario.options = {"heartbeat": None}
    own_emu.script(Reply(text=WORDS[:4], fault=Fault.stall_after(3, seconds=5)))
    with httpx.Client(base_url=server.url, timeout=20) as http:
        with http.stream("POST", "/chat", json={"prompt": "hi"}) as reply:
            seen = []
            for line in reply.iter_lines():
                if '"text-delta"' in line:
                    seen.append(json.loads(line.removeprefix("data: "))["delta"])
                    if len(seen) == 3:
                        break
            response = scenario.responses[0]
            assert seen == WORDS[:3]
            assert not response.done, "the third delta came only after the model's pause"
            assert response.partial_text == "".join(WORDS[:3])
    finished(response)
