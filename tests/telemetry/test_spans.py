"""One GenAI span per call, over the whole stream, whichever way the stream ends.

Against the emulator, with the SDK's in-memory exporters (conftest). Each test reads the
spans as soon as the response says it has ended: the span ends before that is visible.
"""

from __future__ import annotations

import contextlib
import gc
import json
from functools import partial
from typing import Any

import anyio
import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

import streamwrap
from streamwrap.testing import Emulator, Fault, Reply, ToolCallSpec
from tests.support import providers

from .conftest import Telemetry

pytestmark = pytest.mark.anyio

SECRET = "sk-test-secret-key-0123456789"
TEXT = [f"w{i} " for i in range(8)]

make_model = partial(providers.make_model, model_name="m", api_key=SECRET)


def attributes(span: Any) -> dict[str, Any]:
    return dict(span.attributes or {})


def events(span: Any, name: str) -> list[Any]:
    return [e for e in span.events if e.name == name]


async def test_a_streamed_call_is_one_span_from_the_call_to_the_end(emu: Emulator, otel: Telemetry) -> None:
    model = make_model(emu, generate_args={"temperature": 0.25, "max_tokens": 64, "top_p": 0.9, "seed": 7})
    emu.script(Reply(text=TEXT, usage=(11, 8), model="emulator-7", id="chatcmpl-abc", delay=0.01))
    app = trace.get_tracer("app")
    with app.start_as_current_span("handle request") as parent:
        response = await model("hi", stop=["\n\n"])
        assert await response.aread() == "".join(TEXT)
    span = otel.one_chat_span()
    assert span.name == "chat m"
    assert span.kind is SpanKind.CLIENT
    # The application's span at call time is the parent.
    assert span.parent is not None and span.parent.span_id == parent.get_span_context().span_id
    assert span.context.trace_id == parent.get_span_context().trace_id
    attrs = attributes(span)
    port = int(emu.url.rsplit(":", 1)[1])
    assert attrs == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "m",
        "gen_ai.request.stream": True,
        "gen_ai.request.temperature": 0.25,
        "gen_ai.request.max_tokens": 64,
        "gen_ai.request.top_p": 0.9,
        "gen_ai.request.seed": 7,
        "gen_ai.request.stop_sequences": ("\n\n",),
        "gen_ai.response.model": "emulator-7",
        "gen_ai.response.id": "chatcmpl-abc",
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": 11,
        "gen_ai.usage.output_tokens": 8,
        "gen_ai.response.time_to_first_chunk": response.time_to_first_token,
        "server.address": "127.0.0.1",
        "server.port": port,
        "streamwrap.response.id": response.id,
        "streamwrap.usage.source": "provider",
    }
    assert span.status.status_code is StatusCode.UNSET
    # The first token is an event at its own time, inside the span, before its end.
    (first,) = events(span, "streamwrap.first_token")
    assert span.start_time is not None and span.end_time is not None
    assert span.start_time < first.timestamp < span.end_time
    (attempt,) = events(span, "streamwrap.http.attempt")
    assert dict(attempt.attributes or {})["http.response.status_code"] == 200
    assert attempt.timestamp < first.timestamp


async def test_the_span_does_not_end_at_the_first_chunk_and_ends_on_break(
    emu: Emulator, model: Any, otel: Telemetry
) -> None:
    # The stream stalls after two chunks: the span must still be open then. Leaving the
    # loop cancels the response, and that ends the span.
    emu.script(Reply(text=TEXT, fault=Fault.stall_after(2, 30.0)))
    response = await model("hi")
    async for _is_last, text in response.stream:
        if text == "".join(TEXT[:2]):
            assert otel.chat_spans() == []
            break
    with anyio.fail_after(10):
        await response.await_done()
    assert response.finish_reason == "cancelled"
    span = otel.one_chat_span()
    attrs = attributes(span)
    assert attrs["gen_ai.response.finish_reasons"] == ("cancelled",)
    assert "error.type" not in attrs  # the consumer's choice, not a failure
    assert span.status.status_code is StatusCode.UNSET
    assert len(events(span, "streamwrap.first_token")) == 1


async def test_an_abandoned_response_ends_its_span_when_collected(
    emu: Emulator, model: Any, otel: Telemetry
) -> None:
    emu.script(Reply(text=TEXT, fault=Fault.stall_after(2, 30.0)))
    response = await model("hi")
    async for _ in response.stream:
        break  # (the generator is closed at once: nothing else holds the response)
    del response
    gc.collect()
    with anyio.fail_after(10):
        while not otel.chat_spans():
            await anyio.sleep(0.01)
    assert attributes(otel.one_chat_span())["gen_ai.response.finish_reasons"] == ("cancelled",)


async def test_an_unread_response_dropped_at_once_ends_its_span(
    emu: Emulator, model: Any, otel: Telemetry
) -> None:
    emu.script(Reply(text=TEXT, fault=Fault.stall_after(2, 30.0)))
    await model("hi")  # never read, never kept
    gc.collect()
    with anyio.fail_after(10):
        while not otel.chat_spans():
            await anyio.sleep(0.01)
    assert attributes(otel.one_chat_span())["gen_ai.response.finish_reasons"] == ("cancelled",)


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (401, "streamwrap.AuthenticationError"),
        (429, "streamwrap.RateLimitError"),
        (500, "streamwrap.ServerError"),
    ],
)
async def test_an_http_error_fails_the_span(
    emu: Emulator, model: Any, otel: Telemetry, status: int, error_type: str
) -> None:
    emu.script(Reply(status=status))
    with pytest.raises(streamwrap.ProviderHTTPError):
        await model("hi")
    span = otel.one_chat_span()
    attrs = attributes(span)
    assert attrs["error.type"] == error_type
    assert attrs["http.response.status_code"] == status
    assert attrs["gen_ai.response.finish_reasons"] == ("error",)
    assert span.status.status_code is StatusCode.ERROR
    assert events(span, "streamwrap.first_token") == []


@pytest.mark.parametrize(
    ("fault", "error_type"),
    [
        (Fault.drop_after(3), "streamwrap.StreamInterruptedError"),
        (Fault.error_event_after(3, message="overloaded"), "streamwrap.ProviderStreamError"),
        (Fault.malformed_line_after(3), "streamwrap.StreamProtocolError"),
    ],
    ids=["drop", "error-event", "malformed"],
)
async def test_a_mid_stream_error_fails_the_span_after_the_first_token(
    emu: Emulator, model: Any, otel: Telemetry, fault: Fault, error_type: str
) -> None:
    emu.script(Reply(text=TEXT, fault=fault))
    response = await model("hi")
    with pytest.raises(streamwrap.StreamError):
        await response.aread()
    span = otel.one_chat_span()
    attrs = attributes(span)
    assert attrs["error.type"] == error_type
    assert span.status.status_code is StatusCode.ERROR
    assert len(events(span, "streamwrap.first_token")) == 1
    # Usage the provider never reported is only estimated: not the conventions' usage.
    assert attrs["streamwrap.usage.source"] == "estimated"
    assert "gen_ai.usage.output_tokens" not in attrs


async def test_a_timeout_fails_the_span(own_emu: Emulator, otel: Telemetry) -> None:
    model = make_model(own_emu, first_token_timeout=0.3)
    await model.aprepare()  # (the budget is the provider's: no cold start in it)
    own_emu.script(Reply(text=TEXT, first_delay=5.0))
    with pytest.raises(streamwrap.StreamTimeoutError):
        # (Raised by the iteration, or by the call itself on a machine so busy that the
        # budget ran out before the response's headers were read.)
        await (await model("hi")).aread()
    span = otel.one_chat_span()
    assert attributes(span)["error.type"] == "streamwrap.StreamTimeoutError"
    assert span.status.status_code is StatusCode.ERROR


async def test_each_attempt_is_an_event(emu: Emulator, otel: Telemetry) -> None:
    model = make_model(emu, max_retries=2)
    emu.script(Reply(status=429, headers={"Retry-After": "0"}), Reply(status=503), Reply(text="ok"))
    response = await model("hi")
    assert await response.aread() == "ok"
    span = otel.one_chat_span()
    attempts = [dict(e.attributes or {}) for e in events(span, "streamwrap.http.attempt")]
    assert [a["http.response.status_code"] for a in attempts] == [429, 503, 200]
    assert [a["http.request.resend_count"] for a in attempts] == [0, 1, 2]
    assert [a.get("error.type") for a in attempts] == [
        "streamwrap.RateLimitError",
        "streamwrap.ServerError",
        None,
    ]
    assert "error.type" not in attributes(span)  # the call succeeded in the end


async def test_a_non_streaming_call(emu: Emulator, otel: Telemetry) -> None:
    model = make_model(emu, stream=False)
    emu.script(Reply(text=TEXT, usage=(3, 8)))
    response = await model("hi")
    assert response.text == "".join(TEXT)
    span = otel.one_chat_span()
    attrs = attributes(span)
    assert attrs["gen_ai.request.stream"] is False
    assert attrs["gen_ai.usage.output_tokens"] == 8
    assert "gen_ai.response.time_to_first_chunk" not in attrs
    assert events(span, "streamwrap.first_token") == []


def test_call_sync_has_the_callers_span_as_parent(emu: Emulator, otel: Telemetry) -> None:
    model = make_model(emu)
    emu.script(Reply(text=TEXT))
    with trace.get_tracer("app").start_as_current_span("sync work") as parent:
        response = model.call_sync("hi")
        assert response.text == "".join(TEXT)
    span = otel.one_chat_span()
    assert span.parent is not None and span.parent.span_id == parent.get_span_context().span_id


async def test_calls_in_concurrent_tasks_each_have_their_own_parent(emu: Emulator, otel: Telemetry) -> None:
    model = make_model(emu)
    emu.script(*(Reply(text=TEXT, delay=0.005) for _ in range(4)))
    tracer = trace.get_tracer("app")
    parents: dict[int, int] = {}

    async def one(i: int) -> None:
        with tracer.start_as_current_span(f"task {i}") as parent:
            response = await model(f"question {i}")
            await response.aread()
            parents[parent.get_span_context().span_id] = i

    async with anyio.create_task_group() as tg:
        for i in range(4):
            tg.start_soon(one, i)
    spans = otel.chat_spans()
    assert len(spans) == 4
    assert sorted(parents[s.parent.span_id] for s in spans if s.parent is not None) == [0, 1, 2, 3]


async def test_message_content_is_not_recorded_by_default(emu: Emulator, model: Any, otel: Telemetry) -> None:
    emu.script(Reply(text="the answer"))
    await (await model("the question")).aread()
    attrs = attributes(otel.one_chat_span())
    assert not any("messages" in key for key in attrs)
    assert not any("the question" in str(v) or "the answer" in str(v) for v in attrs.values())


async def test_message_content_is_recorded_when_the_application_opts_in(
    emu: Emulator, model: Any, otel: Telemetry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    emu.script(Reply(text="the answer", reasoning="hmm"))
    prompt = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "the question"}]
    await (await model(prompt)).aread()
    attrs = attributes(otel.one_chat_span())
    assert json.loads(attrs["gen_ai.input.messages"]) == [
        {"role": "system", "parts": [{"type": "text", "content": "be brief"}]},
        {"role": "user", "parts": [{"type": "text", "content": "the question"}]},
    ]
    assert json.loads(attrs["gen_ai.output.messages"]) == [
        {
            "role": "assistant",
            "parts": [{"type": "reasoning", "content": "hmm"}, {"type": "text", "content": "the answer"}],
            "finish_reason": "stop",
        }
    ]


async def test_no_key_in_any_attribute_or_event(
    emu: Emulator, otel: Telemetry, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Content capture on, a failing attempt, an error echoing the key: still nowhere.
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    model = make_model(emu, max_retries=1)
    emu.script(
        Reply(status=500, headers={"Retry-After": "0"}, error={"message": f"bad {SECRET}", "type": "x"}),
        Reply(status=401, error={"message": f"key {SECRET} refused", "type": "x"}),
    )
    with pytest.raises(streamwrap.AuthenticationError):
        await model("hi")
    span = otel.one_chat_span()
    seen = [span.name, str(span.status.description), *map(str, attributes(span).values())]
    for event in span.events:
        seen += [event.name, *map(str, dict(event.attributes or {}).values())]
    assert seen and not any(SECRET in text for text in seen)


EXPECTED_PROVIDER_NAMES = {
    # The conventions' well-known values, where there is one.
    "openai_chat": "openai",
    "openai_responses": "openai",
    "azure_openai_chat": "azure.ai.openai",
    "gemini_chat": "gcp.gemini",
    "anthropic_chat": "anthropic",
    "dashscope_chat": "dashscope",
    "ollama_chat": "ollama",
    "bedrock_chat": "aws.bedrock",
    "vertex_gemini_chat": "gcp.vertex_ai",
}


@pytest.mark.parametrize("provider", [p.param() for p in providers.ONE_PER_DIALECT])
async def test_each_provider_names_itself(
    emu: Emulator, otel: Telemetry, provider: providers.Provider
) -> None:
    model = providers.make_model(emu, provider)
    emu.script(Reply(text=TEXT))
    await (await model("hi")).aread()
    attrs = attributes(otel.one_chat_span())
    assert attrs["gen_ai.provider.name"] == EXPECTED_PROVIDER_NAMES[provider.model_type]
    assert attrs["gen_ai.provider.name"] == (type(model).gen_ai_provider_name or model.provider)
    assert attrs["server.address"] == "127.0.0.1"
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)


async def test_calls_cancelled_at_once_end_their_spans(emu: Emulator, model: Any, otel: Telemetry) -> None:
    # Cancelled while the call waits for its status: the producer may not have taken its
    # first step yet (then its body never runs), or be sending the request. Either way the
    # response ends as cancelled, and its span with it.
    calls = 10
    emu.script(*(Reply(text=TEXT, first_delay=0.2) for _ in range(calls)))
    for _ in range(calls):
        with anyio.move_on_after(0):
            await model("hi")
    with anyio.fail_after(10):
        while len(otel.chat_spans()) < calls:
            await anyio.sleep(0.01)
    assert {attributes(s)["gen_ai.response.finish_reasons"] for s in otel.chat_spans()} == {("cancelled",)}


async def test_captured_content_has_tool_calls_and_results_as_parts(
    emu: Emulator, model: Any, otel: Telemetry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    emu.script(Reply(tool_calls=[ToolCallSpec(name="weather", arguments='{"city": "Oslo"}', id="call_2")]))
    prompt = [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "where", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "Oslo"},
    ]
    tools = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]
    response = await model(prompt, tools=tools)
    await response.aread()
    attrs = attributes(otel.one_chat_span())
    assert json.loads(attrs["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "weather?"}]},
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "id": "call_1", "name": "where", "arguments": "{}"}],
        },
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_1", "response": "Oslo"}]},
    ]
    assert json.loads(attrs["gen_ai.output.messages"]) == [
        {
            "role": "assistant",
            "parts": [
                {"type": "tool_call", "id": "call_2", "name": "weather", "arguments": '{"city": "Oslo"}'}
            ],
            "finish_reason": "tool_calls",
        }
    ]
    assert attrs["gen_ai.response.finish_reasons"] == ("tool_calls",)


async def test_many_concurrent_calls_each_end_exactly_one_span(emu: Emulator, otel: Telemetry) -> None:
    # Every way of ending at once, 60 calls in flight: one span each, none left open, and
    # each says how its response ended.
    model = make_model(emu, first_token_timeout=5.0)
    kinds = ["ok", "drop", "error_event", "http_429", "break", "drop_response"] * 10
    replies = {
        "ok": Reply(text=TEXT, delay=0.005),
        "drop": Reply(text=TEXT, fault=Fault.drop_after(3)),
        "error_event": Reply(text=TEXT, fault=Fault.error_event_after(2)),
        "http_429": Reply(status=429),
        "break": Reply(text=TEXT, fault=Fault.stall_after(2, 30.0)),
        "drop_response": Reply(text=TEXT, fault=Fault.stall_after(2, 30.0)),
    }
    outcomes: list[str] = []
    # The emulator answers in request order: the calls are made one after another (each
    # returns once its status is known), then all consumed at once.
    emu.script(*(replies[k] for k in kinds))
    started: list[tuple[str, Any]] = []
    for i, kind in enumerate(kinds):
        try:
            response = await model(f"call {i}")
        except streamwrap.RateLimitError:
            outcomes.append("error")
            continue
        if kind == "drop_response":
            outcomes.append("cancelled")  # unread, dropped when `response` is rebound
        else:
            started.append((kind, response))
    del response

    async def consume(kind: str, response: Any) -> None:
        if kind == "break":
            async for _ in response.stream:
                break
            await response.await_done()
        else:
            with contextlib.suppress(streamwrap.StreamError):
                await response.aread()
        outcomes.append(response.finish_reason)

    async with anyio.create_task_group() as tg:
        for kind, response in started:
            tg.start_soon(consume, kind, response)
    started.clear()
    gc.collect()
    with anyio.fail_after(20):
        while len(otel.chat_spans()) < len(kinds):
            await anyio.sleep(0.01)
    spans = otel.chat_spans()
    assert len(spans) == len(kinds)
    assert len({s.context.span_id for s in spans}) == len(kinds)
    assert sorted(attributes(s)["gen_ai.response.finish_reasons"][0] for s in spans) == sorted(outcomes)
