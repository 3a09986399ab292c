"""``dashscope_chat``: DashScope's native text-generation protocol, over real HTTP to the
emulator on 127.0.0.1.

The real recordings (``../shared/recordings/dashscope/native_*.sse``) are replayed byte for
byte through the wrapper. Bodies the recordings do not cover (cumulative frames, error
frames, reasoning, HTTP error bodies, non-streaming JSON) are hand-written after DashScope's
documented shapes and marked ``HAND-WRITTEN``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import streamwrap
from streamwrap import ReasoningDelta, TextDelta, ToolCallDelta
from streamwrap._delta import Finish, Metadata, UsageReport
from streamwrap._providers.dashscope._wire import DashScopeStreamMapper, generation_deltas
from streamwrap._providers.dashscope._wrapper import DEFAULT_BASE_URL, DashScopeChatWrapper
from streamwrap.testing import Emulator, Fault, Reply, ToolCallSpec
from tests.support import providers
from tests.support import recordings as _recordings

pytestmark = pytest.mark.anyio

SECRET = "sk-dashscope-test-secret-0123456789"
GENERATION_PATH = "/api/v1/services/aigc/text-generation/generation"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_current_weather",
        "description": "获取现在的天气",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string", "description": "要获取天气的省市名称"}},
            "required": ["location"],
        },
    },
}


# DashScope's native-protocol recordings, as the provider table (tests/support/recordings.py)
# routes them (its compat_* ones are the OpenAI wire: test_recordings.py).
NATIVE = _recordings.params(
    "meta_path, meta",
    _recordings.select(wire=_recordings.DASHSCOPE),
    lambda r: (r.meta_path, r.meta),
    what="DashScope native",
)


def base_url(emu: Emulator) -> str:
    # The emulator's own DashScope address once it has one; the replay serves any path.
    return str(getattr(emu, "dashscope_base_url", emu.url + "/api/v1"))


make_model = partial(providers.make_model, model_type="dashscope_chat", api_key=SECRET)


def frames(*objs: Any, event: str = "result", status: int = 200) -> bytes:
    """DashScope's SSE framing around JSON frames, as the recordings show it."""
    out = []
    for n, obj in enumerate(objs, 1):
        data = obj if isinstance(obj, bytes) else orjson.dumps(obj)
        out.append(b"id:%d\nevent:%s\n:HTTP_STATUS/%d\ndata:%s\n\n" % (n, event.encode(), status, data))
    return b"".join(out)


def msg_frame(
    content: str = "",
    *,
    reasoning: str | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
    finish: str = "null",
    usage: tuple[int, int] = (10, 1),
    request_id: str = "req-1",
) -> dict[str, Any]:
    """A ``result_format="message"`` frame (HAND-WRITTEN shape, as in the recordings)."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if reasoning is not None:
        message["reasoning_content"] = reasoning
    if tool_calls is not None:
        message["tool_calls"] = tool_calls
    inp, out = usage
    return {
        "output": {"choices": [{"message": message, "index": 0, "finish_reason": finish}]},
        "usage": {"input_tokens": inp, "output_tokens": out, "total_tokens": inp + out},
        "request_id": request_id,
    }


def _joined(deltas: Sequence[Any], kind: type) -> str:
    return "".join(str(d) for d in deltas if type(d) is kind)


def _meta_content_type(meta: dict[str, Any]) -> str:
    return meta["response"].get("content_type") or "text/event-stream"


# -- the real recordings ----------------------------------------------------------------


@pytest.mark.parametrize("split", ["event", 7, 1])
@pytest.mark.parametrize(("meta_path", "meta"), NATIVE)
async def test_recording_replays_to_expected(
    emu: Emulator, recordings: Path, meta_path: Path, meta: dict[str, Any], split: Any
) -> None:
    expected = meta["expected"]
    recorded_params = meta["request"]["body"]["parameters"]
    emu.replay(
        _recordings.body(meta_path, meta),
        status=meta["response"]["status"],
        content_type=_meta_content_type(meta),
        split=split,
    )
    model = make_model(emu)
    tools = [WEATHER_TOOL] if "tools" in recorded_params else None
    response = await model("hi", tools=tools, result_format=recorded_params["result_format"])

    items = [(i.is_last, i.text_so_far) async for i in response.stream]
    assert [n for n, (is_last, _) in enumerate(items) if is_last] == [len(items) - 1]
    assert items[-1] == (True, expected["text"])
    deltas = [d async for d in response.deltas()]
    assert _joined(deltas, TextDelta) == expected["text"]
    assert _joined(deltas, ReasoningDelta) == (expected["reasoning"] or "")
    # Continuations (id "") join the call with the same index; no extra call appears.
    for call in expected["tool_calls"]:
        pieces = [d.arguments for d in deltas if type(d) is ToolCallDelta and d.index == call["index"]]
        assert "".join(pieces) == call["arguments"]

    assert response.text == expected["text"]
    assert response.reasoning == expected["reasoning"]
    assert [(c.id, c.name, c.arguments, c.index) for c in response.tool_calls] == [
        (c["id"], c["name"], c["arguments"], c["index"]) for c in expected["tool_calls"]
    ]
    assert response.finish_reason_raw == expected["finish_reason"]
    assert response.finish_reason == expected["finish_reason"]  # stop / tool_calls
    assert response.provider_id == expected["request_id"]
    assert response.provider == "dashscope"
    assert response.model == "qwen-max"
    usage = response.usage
    exp = expected["usage"]
    assert usage.source == "provider"
    # Usage is repeated cumulatively on every frame: the last reading, never a sum.
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (
        exp["input_tokens"],
        exp["output_tokens"],
        exp["total_tokens"],
    )
    assert usage.cached_tokens == (exp.get("prompt_tokens_details") or {}).get("cached_tokens")
    assert usage.reasoning_tokens is None
    assert dict(usage.raw or {}) == exp

    (request,) = emu.requests
    assert request.method == "POST"
    assert request.path == GENERATION_PATH
    assert request.headers["x-dashscope-sse"] == "enable"
    assert request.headers["accept"] == "text/event-stream"
    assert request.headers["authorization"] == f"Bearer {SECRET}"
    assert request.headers["content-type"] == "application/json"
    body = request.json
    assert body["model"] == "qwen-max"
    assert body["input"] == {"messages": [{"role": "user", "content": "hi"}]}
    assert body["parameters"]["incremental_output"] is True
    assert body["parameters"]["result_format"] == recorded_params["result_format"]
    assert body["parameters"].get("tools") == tools
    assert "stream" not in body and "stream" not in body["parameters"]


def _map_in_pieces(body: bytes, cuts: Sequence[int], *, incremental: bool = True) -> list[Any]:
    mapper = DashScopeStreamMapper("dashscope", incremental=incremental)
    out: list[Any] = []
    start = 0
    for cut in [*sorted({c % (len(body) + 1) for c in cuts}), len(body)]:
        out += mapper.feed(body[start:cut])
        start = cut
    out += mapper.end()
    return out


@pytest.mark.parametrize(("meta_path", "meta"), NATIVE)
def test_mapper_result_does_not_depend_on_byte_splits(
    recordings: Path, meta_path: Path, meta: dict[str, Any]
) -> None:
    body = _recordings.body(meta_path, meta)
    whole = _map_in_pieces(body, [])
    expected = meta["expected"]
    assert _joined(whole, TextDelta) == expected["text"]
    assert [d for d in whole if type(d) is Finish] == [Finish(expected["finish_reason"])]
    assert whole[0] == Metadata(expected["request_id"], None)
    # One UsageReport per frame whose usage changed (the last two text frames repeat it).
    # A continuation ("id": "", no name) is a fragment of the call with its index.
    calls = [d for d in whole if type(d) is ToolCallDelta]
    firsts = {c["index"]: c for c in expected["tool_calls"]}
    for index in firsts:
        fragments = [d for d in calls if d.index == index]
        assert (fragments[0].id, fragments[0].name) == (firsts[index]["id"], firsts[index]["name"])
        assert all(d.id is None and d.name is None for d in fragments[1:])
    # Usage restated on every frame is reported once per read, and only when it changed.
    (report,) = [d.usage for d in whole if type(d) is UsageReport]
    assert report.total_tokens == expected["usage"]["total_tokens"]
    per_event = _map_in_pieces(body, [m.end() for m in re.finditer(rb"\n\n", body)])
    restated = [orjson.loads(line[5:])["usage"] for line in body.splitlines() if line.startswith(b"data:")]
    changed = [u for n, u in enumerate(restated) if n == 0 or u != restated[n - 1]]
    assert len(restated) == expected["data_events"]
    assert [dict(d.usage.raw or {}) for d in per_event if type(d) is UsageReport] == changed

    def content(deltas: list[Any]) -> list[Any]:
        return [d for d in deltas if type(d) is not UsageReport]

    def last_usage(deltas: list[Any]) -> Any:
        return [d for d in deltas if type(d) is UsageReport][-1]

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(cuts=st.lists(st.integers(min_value=0, max_value=len(body)), max_size=40))
    def check(cuts: list[int]) -> None:
        pieces = _map_in_pieces(body, cuts)
        assert content(pieces) == content(whole)
        assert last_usage(pieces) == last_usage(whole)

    check()
    # Every single cut point, one at a time (multi-byte UTF-8 characters split included).
    for cut in range(len(body) + 1):
        pieces = _map_in_pieces(body, [cut])
        assert content(pieces) == content(whole)
        assert last_usage(pieces) == last_usage(whole)


# -- incremental_output=false: cumulative frames (HAND-WRITTEN) ---------------------------

CUMULATIVE = frames(
    msg_frame(reasoning="Let me", usage=(10, 1)),
    msg_frame(reasoning="Let me think.", usage=(10, 3)),
    msg_frame("Hel", reasoning="Let me think.", usage=(10, 4)),
    msg_frame("Hello", reasoning="Let me think.", usage=(10, 5)),
    msg_frame("Hello, world", reasoning="Let me think.", usage=(10, 7)),
    msg_frame("Hello, world", reasoning="Let me think.", finish="stop", usage=(10, 7)),
)


async def test_cumulative_frames_are_not_doubled(emu: Emulator) -> None:
    emu.replay(CUMULATIVE, split="event")
    model = make_model(emu, generate_args={"incremental_output": False})
    response = await model("hi")
    items = [text async for _, text in response.stream]
    assert items == ["Hel", "Hello", "Hello, world", "Hello, world"]
    assert response.text == "Hello, world"
    assert response.reasoning == "Let me think."
    assert [d async for d in response.deltas() if type(d) is TextDelta] == ["Hel", "lo", ", world"]
    assert response.usage.output_tokens == 7
    assert response.finish_reason == "stop"
    # The caller's choice was sent as given.
    assert emu.requests[0].json["parameters"]["incremental_output"] is False


async def test_cumulative_text_format_is_not_doubled(emu: Emulator) -> None:
    # HAND-WRITTEN: result_format="text" without incremental_output.
    def text_frame(text: str, finish: str = "null") -> dict[str, Any]:
        return {
            "output": {"text": text, "finish_reason": finish},
            "usage": {"input_tokens": 3},
            "request_id": "r",
        }

    emu.replay(
        frames(
            text_frame("1+"), text_frame("1+1"), text_frame("1+1等于2。"), text_frame("1+1等于2。", "stop")
        )
    )
    model = make_model(emu, generate_args={"incremental_output": False, "result_format": "text"})
    response = await model("hi")
    assert await response.aread() == "1+1等于2。"
    assert emu.requests[0].json["parameters"]["result_format"] == "text"


def test_cumulative_tool_call_arguments_are_not_doubled() -> None:
    # HAND-WRITTEN: with incremental_output=false the calls are restated with all their
    # arguments so far, id and name included.
    def call(index: int, call_id: str, args: str) -> dict[str, Any]:
        return {
            "index": index,
            "id": call_id,
            "type": "function",
            "function": {"name": "f", "arguments": args},
        }

    body = frames(
        msg_frame(tool_calls=[call(0, "a", '{"x":')]),
        msg_frame(tool_calls=[call(0, "a", '{"x": 1}')]),
        msg_frame(tool_calls=[call(0, "a", '{"x": 1}'), call(1, "b", '{"y"')]),
        msg_frame(tool_calls=[call(0, "a", '{"x": 1}'), call(1, "b", '{"y": 2}')], finish="tool_calls"),
    )
    deltas = _map_in_pieces(body, [5, 90, 300], incremental=False)
    calls = [d for d in deltas if type(d) is ToolCallDelta]
    assert [(d.index, d.arguments) for d in calls] == [(0, '{"x":'), (0, " 1}"), (1, '{"y"'), (1, ": 2}")]


async def test_a_cumulative_frame_that_rewrites_the_text_is_a_protocol_error(emu: Emulator) -> None:
    # HAND-WRITTEN: appending the rewritten text would double what the caller already has.
    emu.replay(frames(msg_frame("Hello"), msg_frame("Goodbye"), msg_frame("Goodbye", finish="stop")))
    model = make_model(emu, generate_args={"incremental_output": False})
    response = await model("hi")
    with pytest.raises(streamwrap.StreamProtocolError) as info:
        await response.aread()
    assert info.value.partial_text == "Hello"


def test_only_the_first_choice_is_followed() -> None:
    # HAND-WRITTEN: with n=2 the frames carry the choices by index, in any order.
    def choice(index: int, text: str, finish: str = "null") -> dict[str, Any]:
        return {"message": {"role": "assistant", "content": text}, "index": index, "finish_reason": finish}

    body = frames(
        {"output": {"choices": [choice(1, "B1 ")]}, "request_id": "r"},
        {"output": {"choices": [choice(0, "A1 "), choice(1, "B2 ")]}, "request_id": "r"},
        {"output": {"choices": [choice(1, "B3", "stop"), choice(0, "A2", "stop")]}, "request_id": "r"},
    )
    deltas = _map_in_pieces(body, [])
    assert _joined(deltas, TextDelta) == "A1 A2"
    assert [d for d in deltas if type(d) is Finish] == [Finish("stop")]


# -- reasoning_content (HAND-WRITTEN) -----------------------------------------------------


async def test_reasoning_content_streams_apart_from_text(emu: Emulator) -> None:
    last = msg_frame(finish="stop", usage=(12, 30))
    last["usage"]["output_tokens_details"] = {"reasoning_tokens": 25}
    last["usage"]["prompt_tokens_details"] = {"cached_tokens": 8}
    emu.replay(
        frames(
            msg_frame(reasoning="The user", usage=(12, 2)),
            msg_frame(reasoning=" greets me.", usage=(12, 25)),
            msg_frame("Hi", reasoning="", usage=(12, 26)),
            msg_frame(" there!", usage=(12, 30)),
            last,
        ),
        split=3,
    )
    model = make_model(emu, generate_args={"enable_thinking": True, "thinking_budget": 64})
    response = await model("hello")
    deltas = [d async for d in response.deltas()]
    assert [type(d) for d in deltas] == [ReasoningDelta, ReasoningDelta, TextDelta, TextDelta]
    assert response.reasoning == "The user greets me."
    assert response.text == "Hi there!"
    usage = response.usage
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (12, 30, 42)
    assert (usage.reasoning_tokens, usage.cached_tokens) == (25, 8)
    params = emu.requests[0].json["parameters"]
    assert (params["enable_thinking"], params["thinking_budget"]) == (True, 64)


# -- failures ---------------------------------------------------------------------------


@pytest.mark.parametrize("split", ["event", None, 5])
async def test_error_frame_mid_stream_keeps_the_partial_text(emu: Emulator, split: Any) -> None:
    # HAND-WRITTEN: the shape of DashScope's `event:error` frame.
    error = {
        "code": "DataInspectionFailed",
        "message": "Output data may contain inappropriate content.",
        "request_id": "req-1",
    }
    body = frames(msg_frame("Once upon"), msg_frame(" a time")) + (
        b"id:3\nevent:error\n:HTTP_STATUS/400\ndata:" + orjson.dumps(error) + b"\n\n"
    )
    # split=None: the error arrives in the same read as the text before it.
    emu.replay(body, split=split)
    response = await make_model(emu)("story")
    with pytest.raises(streamwrap.ProviderStreamError) as info:
        async for _ in response.stream:
            pass
    err = info.value
    assert err.code == "DataInspectionFailed"
    assert err.message == "Output data may contain inappropriate content."
    assert err.partial_text == "Once upon a time"
    assert response.partial_text == "Once upon a time"
    assert response.finish_reason == "error"
    with pytest.raises(streamwrap.ProviderStreamError):
        _ = response.text  # never a silent prefix


@pytest.mark.parametrize("code", ["InvalidParameter", None])
async def test_error_frame_before_any_content_is_a_typed_error(emu: Emulator, code: str | None) -> None:
    # HAND-WRITTEN; without a "code" only the `event:error` line says it is an error.
    error: dict[str, Any] = {"message": "Range of input length should be [1, 30720]", "request_id": "req-2"}
    if code:
        error["code"] = code
    emu.replay(b"id:1\nevent:error\n:HTTP_STATUS/400\ndata:" + orjson.dumps(error) + b"\n\n")
    response = await make_model(emu)("hi")
    with pytest.raises(streamwrap.ProviderStreamError) as info:
        await response.aread()
    assert info.value.code == code
    assert info.value.message == error["message"]
    assert info.value.partial_text == ""


async def test_a_stream_that_ends_without_a_finish_is_interrupted(emu: Emulator) -> None:
    emu.replay(frames(msg_frame("Hel"), msg_frame("lo")))  # no finish_reason other than "null"
    response = await make_model(emu)("hi")
    with pytest.raises(streamwrap.StreamInterruptedError) as info:
        await response.aread()
    assert info.value.partial_text == "Hello"
    assert response.usage.output_tokens == 1  # what had been reported stays


async def test_malformed_frame_is_a_protocol_error(emu: Emulator) -> None:
    emu.replay(frames(msg_frame("ok"), b'{"output": {"choices": [{"message": '))
    response = await make_model(emu)("hi")
    with pytest.raises(streamwrap.StreamProtocolError) as info:
        await response.aread()
    assert info.value.partial_text == "ok"


async def test_wrong_shape_frame_is_a_protocol_error_not_an_attribute_error(emu: Emulator) -> None:
    emu.replay(frames({"output": {"choices": "nope"}, "request_id": "r"}))
    response = await make_model(emu)("hi")
    with pytest.raises(streamwrap.StreamProtocolError):
        await response.aread()


@pytest.mark.parametrize(
    ("status", "code", "error_class"),
    [
        (401, "InvalidApiKey", streamwrap.AuthenticationError),
        (429, "Throttling.RateQuota", streamwrap.RateLimitError),
        (404, "ModelNotFound", streamwrap.NotFoundError),
        (500, "InternalError", streamwrap.ServerError),
        (400, "InvalidParameter", streamwrap.ProviderHTTPError),
    ],
)
async def test_http_error_json_bodies_are_typed_and_scrubbed(
    emu: Emulator, status: int, code: str, error_class: type[streamwrap.ProviderHTTPError]
) -> None:
    # HAND-WRITTEN after DashScope's error body {"code", "message", "request_id"} (the
    # message echoes the key here to check that it is scrubbed).
    body = {"code": code, "message": f"Invalid API-key provided: {SECRET}", "request_id": "req-9"}
    emu.replay(orjson.dumps(body), status=status, content_type="application/json")
    with pytest.raises(error_class) as info:
        await make_model(emu)("hi")
    err = info.value
    assert err.status_code == status
    assert err.provider == "dashscope"
    assert err.message.startswith("Invalid API-key provided")
    assert err.body["code"] == code
    assert err.body["request_id"] == "req-9"
    for text in (str(err), repr(err), err.message, json.dumps(err.body)):
        assert SECRET not in text


async def test_http_error_with_an_sse_error_body_is_typed(emu: Emulator) -> None:
    # HAND-WRITTEN: a failed *streaming* request answers with its error as an SSE frame.
    body = {"code": "InvalidApiKey", "message": "Invalid API-key provided.", "request_id": "req-3"}
    emu.replay(b"id:1\nevent:error\n:HTTP_STATUS/401\ndata:" + orjson.dumps(body) + b"\n\n", status=401)
    with pytest.raises(streamwrap.AuthenticationError) as info:
        await make_model(emu)("hi")
    assert info.value.message == "Invalid API-key provided."
    assert info.value.body == body


# -- non-streaming ----------------------------------------------------------------------


async def test_non_streaming_message_body(emu: Emulator) -> None:
    # HAND-WRITTEN: DashScope's non-streaming result_format="message" body.
    body = {
        "output": {
            "choices": [
                {
                    "finish_reason": "tool_calls",
                    "message": {
                        "role": "assistant",
                        "content": "Checking.",
                        "reasoning_content": "Need the weather.",
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "call_1",
                                "type": "function",
                                "function": {
                                    "name": "get_current_weather",
                                    "arguments": '{"location": "杭州"}',
                                },
                            }
                        ],
                    },
                }
            ]
        },
        "usage": {"input_tokens": 20, "output_tokens": 9, "total_tokens": 29},
        "request_id": "req-ns",
    }
    emu.replay(orjson.dumps(body), content_type="application/json", split=None)
    model = make_model(emu, stream=False)
    response = await model("weather?", tools=[WEATHER_TOOL])
    assert response.text == "Checking."
    assert response.reasoning == "Need the weather."
    assert [(c.id, c.name, c.parsed_arguments()) for c in response.tool_calls] == [
        ("call_1", "get_current_weather", {"location": "杭州"})
    ]
    assert response.finish_reason == "tool_calls"
    assert response.provider_id == "req-ns"
    assert (response.usage.input_tokens, response.usage.output_tokens, response.usage.source) == (
        20,
        9,
        "provider",
    )
    assert [item async for item in response.stream] == [(True, "Checking.")]
    (request,) = emu.requests
    assert "x-dashscope-sse" not in request.headers
    assert request.headers["accept"] == "application/json"
    assert "incremental_output" not in request.json["parameters"]
    assert request.json["parameters"]["tools"] == [WEATHER_TOOL]


async def test_non_streaming_text_body(emu: Emulator) -> None:
    # HAND-WRITTEN: result_format="text".
    body = {
        "output": {"text": "2", "finish_reason": "length"},
        "usage": {"input_tokens": 5, "output_tokens": 1, "total_tokens": 6},
        "request_id": "r",
    }
    emu.replay(orjson.dumps(body), content_type="application/json", split=None)
    response = await make_model(emu, stream=False)("1+1?", result_format="text")
    assert response.text == "2"
    assert response.finish_reason == "length"
    assert response.finish_reason_raw == "length"


def test_non_streaming_error_object_is_a_provider_error() -> None:
    with pytest.raises(streamwrap.ProviderStreamError) as info:
        generation_deltas(
            {
                "code": "Arrearage",
                "message": "Access denied, please make sure your account is in good standing.",
                "request_id": "r",
            },
            "dashscope",
        )
    assert info.value.code == "Arrearage"
    with pytest.raises(streamwrap.StreamProtocolError):
        generation_deltas([1, 2], "dashscope")


# -- request building and configuration -------------------------------------------------


async def test_generate_args_map_to_dashscope_parameters(emu: Emulator) -> None:
    emu.replay(frames(msg_frame("ok", finish="stop")))
    model = make_model(
        emu,
        generate_args={"temperature": 0.3, "top_p": 0.8, "top_k": 50, "seed": 7, "stop": ["\n\n"]},
    )
    response = await model(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
        max_completion_tokens=99,
        stream_options={"include_usage": True},
        extra_body={"enable_search": True},
    )
    assert await response.aread() == "ok"
    body = emu.requests[0].json
    assert body["input"]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
    ]
    assert body["parameters"] == {
        "result_format": "message",
        "incremental_output": True,
        "temperature": 0.3,
        "top_p": 0.8,
        "top_k": 50,
        "seed": 7,
        "stop": ["\n\n"],
        "max_tokens": 99,
        "enable_search": True,
    }


async def test_api_key_and_base_url_from_the_sdk_environment_variables(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DASHSCOPE_API_KEY", SECRET)
    monkeypatch.setenv("DASHSCOPE_HTTP_BASE_URL", base_url(emu) + "/")
    model = streamwrap.load_model(
        {"model_type": "dashscope_chat", "model_name": "qwen-plus", "stream": True, "max_retries": 0}
    )
    assert isinstance(model, DashScopeChatWrapper)
    assert SECRET not in repr(model)
    emu.replay(frames(msg_frame("ok", finish="stop")))
    assert await (await model("hi")).aread() == "ok"
    (request,) = emu.requests
    assert request.path == GENERATION_PATH
    assert request.headers["authorization"] == f"Bearer {SECRET}"


def test_missing_api_key_names_the_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DASHSCOPE_API_KEY", raising=False)
    monkeypatch.delenv("DASHSCOPE_HTTP_BASE_URL", raising=False)
    with pytest.raises(streamwrap.ConfigError) as info:
        streamwrap.load_model({"model_type": "dashscope_chat", "model_name": "qwen-plus"})
    assert "DASHSCOPE_API_KEY" in str(info.value)


def test_default_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DASHSCOPE_HTTP_BASE_URL", raising=False)
    model = DashScopeChatWrapper("qwen-plus", api_key=SECRET)
    assert DEFAULT_BASE_URL == "https://dashscope.aliyuncs.com/api/v1"
    assert model._url() == DEFAULT_BASE_URL + "/services/aigc/text-generation/generation"


# -- the official SDK reads the same bytes the same way ----------------------------------


@pytest.mark.parametrize(("meta_path", "meta"), NATIVE)
def test_the_dashscope_sdk_agrees_with_the_wrapper(
    emulator: Emulator, recordings: Path, meta_path: Path, meta: dict[str, Any]
) -> None:
    """The same recorded stream through ``dashscope.Generation.call`` and through our
    wrapper: the same text and tool calls; and both sent the same kind of request."""
    dashscope = pytest.importorskip("dashscope")
    emulator.reset()
    body = _recordings.body(meta_path, meta)
    params = meta["request"]["body"]["parameters"]

    emulator.replay(body, content_type="text/event-stream")
    sdk_text = ""
    sdk_calls: dict[int, list[str]] = {}
    for chunk in dashscope.Generation.call(
        model="qwen-max",
        messages=[{"role": "user", "content": "hi"}],
        api_key=SECRET,
        stream=True,
        incremental_output=True,
        result_format=params["result_format"],
        base_address=base_url(emulator),
    ):
        assert chunk.status_code == 200
        if chunk.output.choices:
            message = chunk.output.choices[0].message
            sdk_text += message.content or ""
            for call in message.get("tool_calls") or []:
                sdk_calls.setdefault(call["index"], []).append(call["function"].get("arguments", ""))
        else:
            sdk_text += chunk.output.text or ""

    emulator.replay(body, content_type="text/event-stream")
    response = make_model(emulator).call_sync("hi", result_format=params["result_format"])
    assert response.text == sdk_text == meta["expected"]["text"]
    assert {c.index: c.arguments for c in response.tool_calls} == {
        i: "".join(p) for i, p in sdk_calls.items()
    }

    sdk_request, our_request = emulator.requests
    assert sdk_request.path == our_request.path == GENERATION_PATH
    for header in ("accept", "x-dashscope-sse", "authorization"):
        assert sdk_request.headers[header] == our_request.headers[header]
    assert sdk_request.json["input"] == our_request.json["input"]
    sdk_params, our_params = sdk_request.json["parameters"], our_request.json["parameters"]
    assert sdk_params["incremental_output"] is our_params["incremental_output"] is True
    assert sdk_params["result_format"] == our_params["result_format"]
    emulator.reset()


# -- scripted replies in the emulator's DashScope dialect --------------------------------

SCRIPTED_CALLS = [
    ToolCallSpec("get_current_weather", ['{"location": ', '"杭州"}'], id="call_a"),
    ToolCallSpec("get_current_weather", '{"location": "上海"}', id="call_b"),
]


@pytest.mark.parametrize("incremental", [True, False])
async def test_scripted_text_reasoning_tool_calls_and_usage(emu: Emulator, incremental: bool) -> None:
    emu.script(
        Reply(
            text=["Let me ", "check ", "both."],
            reasoning=["Two ", "cities."],
            tool_calls=SCRIPTED_CALLS,
            usage=(40, 17),
            id="req-scripted",
        )
    )
    model = make_model(emu, generate_args={"incremental_output": incremental})
    response = await model("weather in 杭州 and 上海?", tools=[WEATHER_TOOL])
    items = [text async for _, text in response.stream]
    assert items == ["Let me ", "Let me check ", "Let me check both.", "Let me check both."]
    assert response.text == "Let me check both."
    assert response.reasoning == "Two cities."
    assert [(c.id, c.name, c.arguments, c.index) for c in response.tool_calls] == [
        ("call_a", "get_current_weather", '{"location": "杭州"}', 0),
        ("call_b", "get_current_weather", '{"location": "上海"}', 1),
    ]
    assert response.finish_reason == "tool_calls"
    assert response.provider_id == "req-scripted"
    usage = response.usage
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens, usage.source) == (
        40,
        17,
        57,
        "provider",
    )
    assert usage.reasoning_tokens == 2
    (request,) = emu.requests
    assert request.json["parameters"]["incremental_output"] is incremental


async def test_scripted_text_format(emu: Emulator) -> None:
    emu.script(Reply(text="one two three", usage=(3, 3)))
    response = await make_model(emu)("count", result_format="text")
    assert [text async for _, text in response.stream][-1] == "one two three"
    assert response.finish_reason == "stop"
    assert response.usage.output_tokens == 3


async def test_scripted_non_streaming(emu: Emulator) -> None:
    emu.script(Reply(text=["Hello", " there"], reasoning="hm", tool_calls=SCRIPTED_CALLS[:1], usage=(4, 6)))
    response = await make_model(emu, stream=False)("hi", tools=[WEATHER_TOOL])
    assert response.text == "Hello there"
    assert response.reasoning == "hm"
    assert [c.parsed_arguments() for c in response.tool_calls] == [{"location": "杭州"}]
    assert (response.usage.input_tokens, response.usage.output_tokens) == (4, 6)
    assert response.finish_reason == "tool_calls"


@pytest.mark.parametrize(
    ("fault", "error_class"),
    [
        (Fault.drop_after(2), streamwrap.StreamInterruptedError),
        (Fault.end_without_finish_after(2), streamwrap.StreamInterruptedError),
        (
            Fault.error_event_after(
                2, "Output data may contain inappropriate content.", code="DataInspectionFailed"
            ),
            streamwrap.ProviderStreamError,
        ),
        (
            Fault.inband_error_after(2, "An internal error has occured.", code="InternalError"),
            streamwrap.ProviderStreamError,
        ),
        (Fault.malformed_line_after(2), streamwrap.StreamProtocolError),
        (Fault.truncated_json_after(2), streamwrap.StreamProtocolError),
    ],
    ids=["drop", "end_without_finish", "error_event", "inband_error", "malformed_line", "truncated_json"],
)
async def test_scripted_faults_are_typed_and_keep_the_partial_text(
    emu: Emulator, fault: Fault, error_class: type[streamwrap.StreamError]
) -> None:
    emu.script(Reply(text=["a ", "b ", "c ", "d "], usage=(5, 4), fault=fault))
    response = await make_model(emu)("hi")
    with pytest.raises(error_class) as info:
        async for _ in response.stream:
            pass
    err = info.value
    assert err.partial_text == "a b "
    assert err.provider == "dashscope"
    if fault.kind == "error_event":
        assert (err.code, err.message) == (
            "DataInspectionFailed",
            "Output data may contain inappropriate content.",
        )
    if fault.kind == "inband_error":
        assert err.code == "InternalError"
    assert response.usage.source == "provider"  # what was reported before the failure stays
    assert response.usage.output_tokens == 2


@pytest.mark.parametrize("keepalive", [False, True])
async def test_scripted_stall_hits_the_idle_timeout(emu: Emulator, keepalive: bool) -> None:
    fault = Fault.stall_with_keepalive_after(1, 5, every=0.05) if keepalive else Fault.stall_after(1, 5)
    emu.script(Reply(text=["a ", "b "], fault=fault))
    response = await make_model(emu, idle_timeout=0.3)("hi")
    with pytest.raises(streamwrap.StreamTimeoutError) as info:
        await response.aread()
    assert info.value.code == "idle_timeout"
    assert info.value.partial_text == "a "


@pytest.mark.parametrize(
    ("status", "error_class", "code"),
    [
        (401, streamwrap.AuthenticationError, "InvalidApiKey"),
        (404, streamwrap.NotFoundError, "ModelNotFound"),
        (429, streamwrap.RateLimitError, "Throttling.RateQuota"),
        (500, streamwrap.ServerError, "InternalError"),
    ],
)
async def test_scripted_http_errors(
    emu: Emulator, status: int, error_class: type[streamwrap.ProviderHTTPError], code: str
) -> None:
    emu.script(Reply(status=status))
    with pytest.raises(error_class) as info:
        await make_model(emu)("hi")
    assert info.value.status_code == status
    assert info.value.body["code"] == code
    assert info.value.message == info.value.body["message"]
    assert SECRET not in str(info.value)


async def test_rate_limit_is_retried_with_retry_after(emu: Emulator) -> None:
    emu.script(Reply(status=429, headers={"Retry-After": "0"}), Reply(text="ok"))
    response = await make_model(emu, max_retries=1)("hi")
    assert await response.aread() == "ok"
    assert [a["status"] for a in response.attempts] == [429, 200]


async def test_leaving_the_stream_early_closes_the_connection(own_emu: Emulator) -> None:
    own_emu.script(Reply(text=[f"w{i} " for i in range(50)], delay=0.01))
    response = await make_model(own_emu)("hi")
    async for _, text in response.stream:
        if text.count("w") >= 2:
            break
    await response.aclose()
    assert own_emu.wait_idle(2.0)
    assert response.finish_reason == "cancelled"


def test_the_dashscope_sdk_agrees_on_a_scripted_stream(emulator: Emulator) -> None:
    """One scripted reply, read by ``dashscope.Generation.call`` and by the wrapper."""
    dashscope = pytest.importorskip("dashscope")
    emulator.reset()
    reply = Reply(text=["Qwen ", "says ", "hello, ", "世界。"], reasoning=["Greeting."], usage=(7, 5))
    emulator.script(reply, reply)
    sdk_text = sdk_reasoning = ""
    for chunk in dashscope.Generation.call(
        model="qwen-plus",
        messages=[{"role": "user", "content": "hi"}],
        api_key=SECRET,
        stream=True,
        incremental_output=True,
        result_format="message",
        base_address=base_url(emulator),
    ):
        assert chunk.status_code == 200
        message = chunk.output.choices[0].message
        sdk_text += message.content or ""
        sdk_reasoning += message.get("reasoning_content") or ""
        sdk_usage = chunk.usage
    response = make_model(emulator, model_name="qwen-plus").call_sync("hi")
    assert response.text == sdk_text == "Qwen says hello, 世界。"
    assert response.reasoning == sdk_reasoning == "Greeting."
    assert (response.usage.input_tokens, response.usage.output_tokens) == (
        sdk_usage.input_tokens,
        sdk_usage.output_tokens,
    )
    emulator.reset()
