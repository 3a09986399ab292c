"""``gemini_chat``: the Gemini API's native protocol, over real HTTP to the emulator.

Real Gemini recordings (../shared/recordings/gemini, routed by tests/support/recordings.py) are replayed byte for byte and must
parse to their ``expected`` block; the request streamwrap sends is checked against what
google-genai (the reference SDK) sends for the same call; failures (HTTP errors, error
events, cut streams, blocked prompts) raise typed errors that keep the partial text.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
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

API_KEY = "AIza-test-secret-key-0123456789"
MODEL = "gemini-2.5-flash"
STREAM_PATH = f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse"
SPLITS = ["event", 7]


# The Gemini-wire recordings, as the provider table (tests/support/recordings.py) routes them.
_ALL = [(r.meta_path, r.meta) for r in _recordings.select(wire=_recordings.GEMINI, status=None)]
STREAMING = _recordings.params(
    "meta_path, meta",
    _recordings.select(wire=_recordings.GEMINI),
    lambda r: (r.meta_path, r.meta),
    what="Gemini",
)


def _content_type(meta: dict[str, Any]) -> str:
    return _recordings.content_type(meta)


def _events(body: bytes) -> list[dict[str, Any]]:
    """The recorded responses, decoded independently of streamwrap (CRLF framing)."""
    out = []
    for block in body.replace(b"\r\n", b"\n").split(b"\n\n"):
        for line in block.split(b"\n"):
            if line.startswith(b"data: "):
                out.append(json.loads(line[6:]))
    return out


def _base_url(emu: Emulator) -> str:
    # The emulator may grow a Gemini-specific address; the root works for replays.
    return str(getattr(emu, "gemini_base_url", None) or emu.url)


make_model = partial(providers.make_model, model_type="gemini_chat", model_name=MODEL, api_key=API_KEY)


@pytest.fixture
def model(emu: Emulator) -> Any:
    return make_model(emu)


async def _items(response: streamwrap.ModelResponse) -> list[tuple[bool, str]]:
    return [(item.is_last, item.text_so_far) async for item in response.stream]


async def _deltas(response: streamwrap.ModelResponse) -> list[Any]:
    return [d async for d in response.deltas()]


def _sse(*objs: Any) -> bytes:
    return b"".join(b"data: " + orjson.dumps(o) + b"\r\n\r\n" for o in objs)


def _chunk(
    text: str = "", *, thought: bool = False, finish: str | None = None, usage: Any = None
) -> dict[str, Any]:
    part: dict[str, Any] = {"text": text}
    if thought:
        part["thought"] = True
    candidate: dict[str, Any] = {"content": {"parts": [part], "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    obj: dict[str, Any] = {"candidates": [candidate], "modelVersion": MODEL, "responseId": "resp-1"}
    if usage:
        obj["usageMetadata"] = usage
    return obj


# -- the recordings ---------------------------------------------------------------------


def test_discovery_finds_the_gemini_recordings(recordings: Path) -> None:
    names = {meta["name"] for _, meta in _ALL}
    assert {"2.0-flash_text_usage", "2.5-flash_parallel_function_calls", "2.5-flash_thoughts_text"} <= names
    assert "error_400_invalid_api_key" in names
    assert len(STREAMING) >= 3
    for param in STREAMING:
        _, meta = param.values
        assert meta["wire_format"].startswith("Gemini streamGenerateContent")


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize(("meta_path", "meta"), STREAMING)
async def test_recording_replays_to_expected(
    emu: Emulator, model: Any, recordings: Path, meta_path: Path, meta: dict[str, Any], split: str | int
) -> None:
    expected = meta["expected"]
    body = _recordings.body(meta_path, meta)
    events = _events(body)
    assert len(events) == expected["events"]
    emu.replay(body, status=200, content_type=_content_type(meta), split=split)
    response = await model("What is the capital of France?")

    items = await _items(response)
    assert [i for i, (is_last, _) in enumerate(items) if is_last] == [len(items) - 1]
    assert items[-1] == (True, expected["text"])
    deltas = await _deltas(response)
    assert "".join(d for d in deltas if type(d) is TextDelta) == expected["text"]
    assert "".join(d for d in deltas if type(d) is ReasoningDelta) == (expected["thought_text"] or "")
    assert response.text == expected["text"]
    assert response.reasoning == expected["thought_text"]
    assert response.error is None

    # Tool calls: whole arguments, one index per call, the thought signature kept with
    # the call it came with (only the first of parallel calls has one).
    recorded_calls = [
        part
        for event in events
        for part in event["candidates"][0]["content"]["parts"]
        if "functionCall" in part
    ]
    response_id = events[0]["responseId"]
    calls = response.tool_calls
    assert [(c.name, c.parsed_arguments()) for c in calls] == [
        (c["name"], c["args"]) for c in expected["function_calls"]
    ]
    assert [c.index for c in calls] == list(range(len(calls)))
    assert [c.id for c in calls] == [f"call_{response_id}_{n}" for n in range(len(calls))]
    assert len({c.id for c in calls}) == len(calls)
    for call, part in zip(calls, recorded_calls, strict=True):
        assert call.arguments == json.dumps(part["functionCall"]["args"], separators=(",", ":"))
        signature = part.get("thoughtSignature")
        assert (call.extra or {}).get("thought_signature") == signature
    assert sum(1 for c in calls if c.extra) == expected["parts_with_thoughtSignature"]
    assert [d.index for d in deltas if type(d) is ToolCallDelta] == list(range(len(calls)))

    assert response.finish_reason_raw == expected["finish_reason"] == "STOP"
    # A reply that calls tools finished to call them, as OpenAI's finish_reason says.
    assert response.finish_reason == ("tool_calls" if calls else "stop")

    usage = response.usage
    raw = expected["usage"]["raw_last_usageMetadata"]
    assert usage.source == "provider"
    assert usage.input_tokens == expected["usage"]["promptTokenCount"]
    # Thinking tokens are output tokens, as in OpenAI's completion_tokens.
    assert usage.output_tokens == (expected["usage"]["candidatesTokenCount"] or 0) + (
        expected["usage"]["thoughtsTokenCount"] or 0
    )
    assert usage.reasoning_tokens == expected["usage"]["thoughtsTokenCount"]
    assert usage.total_tokens == expected["usage"]["totalTokenCount"]
    assert usage.cached_tokens is None
    assert dict(usage.raw or {}) == raw

    assert response.provider_id == response_id
    assert response.model == expected["model_version"]
    assert response.provider == "gemini"

    (request,) = emu.requests
    assert request.method == "POST"
    assert request.path == STREAM_PATH
    assert request.headers["x-goog-api-key"] == API_KEY
    assert request.headers["content-type"] == "application/json"
    assert request.json == {
        "contents": [{"role": "user", "parts": [{"text": "What is the capital of France?"}]}]
    }


@pytest.mark.parametrize(("meta_path", "meta"), STREAMING)
async def test_recording_result_does_not_depend_on_how_the_body_is_cut(
    emu: Emulator, model: Any, recordings: Path, meta_path: Path, meta: dict[str, Any]
) -> None:
    snapshots = []
    for split in ("event", 7, "line", 1, None):
        emu.replay(_recordings.body(meta_path, meta), content_type=_content_type(meta), split=split)
        response = await model("hi")
        snapshots.append(
            (
                await _items(response),
                [(type(d).__name__, d) for d in await _deltas(response)],
                [(c.id, c.name, c.arguments, c.index, c.extra) for c in response.tool_calls],
                response.usage,
                response.finish_reason_raw,
                response.provider_id,
            )
        )
    assert snapshots[0][0][-1] == (True, meta["expected"]["text"])
    assert all(s == snapshots[0] for s in snapshots[1:])


def _error_recording() -> tuple[Path, dict[str, Any]]:
    for path, meta in _ALL:
        if meta["name"] == "error_400_invalid_api_key":
            return path, meta
    pytest.skip("recording gemini/error_400_invalid_api_key not found")


@pytest.mark.parametrize("split", SPLITS)
async def test_error_400_invalid_key_recording_is_an_authentication_error(
    emu: Emulator, model: Any, recordings: Path, split: str | int
) -> None:
    meta_path, meta = _error_recording()
    body = _recordings.body(meta_path, meta)
    # The recorded content type says SSE; the body is a JSON error object.
    assert _content_type(meta) == "text/event-stream"
    emu.replay(body, status=400, content_type=_content_type(meta), split=split)
    with pytest.raises(streamwrap.AuthenticationError) as info:
        await model("This should fail with AuthenticationError")
    err = info.value
    assert isinstance(err, streamwrap.ProviderHTTPError)
    assert err.status_code == 400
    assert err.provider == "gemini"
    assert err.message == "API key not valid. Please pass a valid API key."
    assert err.body == meta["expected"]["error_body_json"]
    assert "API key not valid" in str(err) and "400" in str(err)
    for shown in (str(err), repr(err), repr(err.body)):
        assert API_KEY not in shown
    assert len(emu.requests) == 1  # a 400 is not retried


async def test_other_400_stays_a_plain_http_error(emu: Emulator, model: Any) -> None:
    body = {
        "error": {"code": 400, "message": f"Invalid JSON payload {API_KEY}", "status": "INVALID_ARGUMENT"}
    }
    emu.replay(orjson.dumps(body), status=400, content_type="application/json")
    with pytest.raises(streamwrap.ProviderHTTPError) as info:
        await model("hi")
    assert type(info.value) is streamwrap.ProviderHTTPError
    assert info.value.message == "Invalid JSON payload **********"
    assert API_KEY not in repr(info.value.body)


async def test_json_error_body_with_status_200_is_a_stream_error(
    emu: Emulator, model: Any, recordings: Path
) -> None:
    # The same error body where a stream was promised (a proxy that says 200): read as JSON.
    meta_path, meta = _error_recording()
    emu.replay(_recordings.body(meta_path, meta), status=200, content_type="text/event-stream", split=7)
    response = await model("hi")
    with pytest.raises(streamwrap.ProviderStreamError) as info:
        await response.aread()
    assert info.value.message == "API key not valid. Please pass a valid API key."
    assert info.value.code == "INVALID_ARGUMENT"
    assert response.finish_reason == "error"


# -- the request --------------------------------------------------------------------------


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}


async def test_request_conversion(emu: Emulator) -> None:
    model = make_model(emu, generate_args={"temperature": 0.2, "max_tokens": 100, "stop": "END"})
    emu.replay(_sse(_chunk("ok", finish="STOP")))
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": [{"type": "text", "text": "Use tools."}]},
        {
            "role": "user",
            "content": [{"type": "text", "text": "Weather in "}, {"type": "text", "text": "Paris?"}],
        },
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    "extra": {"thought_signature": "c2lnMQ=="},
                },
                {"id": "c2", "type": "function", "function": {"name": "get_weather", "arguments": ""}},
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": '{"temp": 21}'},
        {"role": "tool", "tool_call_id": "c2", "content": "sunny"},
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}}],
        },
    ]
    response = await model(
        messages,
        tools=[WEATHER_TOOL],
        top_p=0.9,
        top_k=40,
        seed=7,
        response_mime_type="text/plain",
        thinking_config={"includeThoughts": True, "thinkingBudget": 1024},
        safety_settings=[{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
        presence_penalty=0.5,
        generationConfig={"temperature": 0.3},
        tool_choice="required",
    )
    assert await response.aread() == "ok"
    (request,) = emu.requests
    assert request.path == STREAM_PATH
    assert request.json == {
        "systemInstruction": {"parts": [{"text": "Be brief."}, {"text": "Use tools."}]},
        "contents": [
            {"role": "user", "parts": [{"text": "Weather in "}, {"text": "Paris?"}]},
            {
                "role": "model",
                "parts": [
                    {"text": "Checking."},
                    {
                        "functionCall": {"name": "get_weather", "args": {"city": "Paris"}, "id": "c1"},
                        "thoughtSignature": "c2lnMQ==",
                    },
                    {"functionCall": {"name": "get_weather", "args": {}, "id": "c2"}},
                ],
            },
            {
                # Both results in one turn, the name found from the matching call.
                "role": "user",
                "parts": [
                    {"functionResponse": {"name": "get_weather", "response": {"temp": 21}, "id": "c1"}},
                    {
                        "functionResponse": {
                            "name": "get_weather",
                            "response": {"result": "sunny"},
                            "id": "c2",
                        }
                    },
                    {"inlineData": {"mimeType": "image/png", "data": "iVBO"}},
                ],
            },
        ],
        "tools": [
            {
                "functionDeclarations": [
                    {
                        "name": "get_weather",
                        "description": "Weather in a city",
                        "parametersJsonSchema": WEATHER_TOOL["function"]["parameters"],  # type: ignore[index]
                    }
                ]
            }
        ],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY"}},
        "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
        "generationConfig": {
            "temperature": 0.3,  # the raw generationConfig wins
            "maxOutputTokens": 100,
            "stopSequences": ["END"],
            "topP": 0.9,
            "topK": 40,
            "seed": 7,
            "responseMimeType": "text/plain",
            "thinkingConfig": {"includeThoughts": True, "thinkingBudget": 1024},
            "presencePenalty": 0.5,
        },
    }


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ({"tool_choice": "none"}, {"toolConfig": {"functionCallingConfig": {"mode": "NONE"}}}),
        (
            {"tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
            {
                "toolConfig": {
                    "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}
                }
            },
        ),
        (
            {"response_format": {"type": "json_object"}},
            {"generationConfig": {"responseMimeType": "application/json"}},
        ),
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "x", "schema": {"type": "object"}},
                }
            },
            {
                "generationConfig": {
                    "responseMimeType": "application/json",
                    "responseJsonSchema": {"type": "object"},
                }
            },
        ),
        (
            {"max_output_tokens": 5, "stop": ["a", "b"]},
            {"generationConfig": {"maxOutputTokens": 5, "stopSequences": ["a", "b"]}},
        ),
        ({"temperature": None, "cached_content": "cachedContents/1"}, {"cachedContent": "cachedContents/1"}),
        ({"extra_body": {"labels": {"team": "a"}}}, {"labels": {"team": "a"}}),
    ],
)
async def test_call_arguments_mapping(
    emu: Emulator, model: Any, args: dict[str, Any], expected: dict[str, Any]
) -> None:
    emu.replay(_sse(_chunk("ok", finish="STOP")))
    await (await model("hi", **args)).aread()
    body = emu.requests[0].json
    assert {k: v for k, v in body.items() if k != "contents"} == expected


@pytest.mark.parametrize(
    ("prompt", "args", "needle"),
    [
        ("hi", {"tool_choice": "sometimes"}, "tool_choice"),
        ("hi", {"response_format": {"type": "xml"}}, "response_format"),
        ([{"role": "tool", "tool_call_id": "nope", "content": "x"}], {}, "cannot tell which function"),
        ([{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}], {}, "input_audio"),
        (
            [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}],
            {},
            "data:",
        ),
        (
            [
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"id": "a", "function": {"name": "f", "arguments": "[1]"}}],
                }
            ],
            {},
            "JSON object",
        ),
    ],
)
async def test_bad_input_is_an_input_error(
    emu: Emulator, model: Any, prompt: Any, args: dict[str, Any], needle: str
) -> None:
    with pytest.raises(streamwrap.InputError, match=needle):
        await model(prompt, **args)
    assert emu.requests == []


async def test_tool_call_round_trip_keeps_the_thought_signature(
    emu: Emulator, model: Any, recordings: Path
) -> None:
    meta_path = recordings / "gemini" / "2.5-flash_parallel_function_calls.meta.json"
    meta = _recordings.load_meta(meta_path)
    body = _recordings.body(meta_path, meta)
    recorded = [p for p in _events(body)[0]["candidates"][0]["content"]["parts"]]
    emu.replay(body)
    first = await model("Add and multiply the number 2 and 3", tools=[WEATHER_TOOL])
    await first.aread()
    calls = first.tool_calls
    assert len(calls) == 2

    # Send the calls back: as the ToolCall objects themselves, and as dicts with "extra".
    as_dicts = [{**c.to_openai(), "extra": dict(c.extra) if c.extra else None} for c in calls]
    for history_calls in (calls, as_dicts):
        emu.reset()
        emu.replay(_sse(_chunk("2+3=5, 2*3=6", finish="STOP")))
        history = [
            {"role": "user", "content": "Add and multiply the number 2 and 3"},
            {"role": "assistant", "content": None, "tool_calls": history_calls},
            {"role": "tool", "tool_call_id": calls[0].id, "content": "5"},
            {"role": "tool", "tool_call_id": calls[1].id, "content": "6"},
        ]
        second = await model(history)
        assert await second.aread() == "2+3=5, 2*3=6"
        assert second.finish_reason == "stop"
        sent = emu.requests[0].json["contents"]
        assert [c["role"] for c in sent] == ["user", "model", "user"]
        model_parts = sent[1]["parts"]
        for part, original, call in zip(model_parts, recorded, calls, strict=True):
            assert part["functionCall"] == {**original["functionCall"], "id": call.id}
            # The signature goes back byte for byte on the part it came with, and only there.
            assert part.get("thoughtSignature") == original.get("thoughtSignature")
        assert model_parts[0]["thoughtSignature"].startswith("CloBvj72")
        assert sent[2]["parts"] == [
            {"functionResponse": {"name": "add", "response": {"result": 5}, "id": calls[0].id}},
            {"functionResponse": {"name": "multiply", "response": {"result": 6}, "id": calls[1].id}},
        ]


async def test_gemini_openai_compat_signature_field_is_accepted(emu: Emulator, model: Any) -> None:
    emu.replay(_sse(_chunk("ok", finish="STOP")))
    call = {
        "id": "x",
        "type": "function",
        "function": {"name": "f", "arguments": "{}"},
        "extra_content": {"google": {"thought_signature": "c2ln"}},
    }
    await (
        await model(
            [{"role": "user", "content": "hi"}, {"role": "assistant", "content": None, "tool_calls": [call]}]
        )
    ).aread()
    part = emu.requests[0].json["contents"][1]["parts"][0]
    assert part == {"functionCall": {"name": "f", "args": {}, "id": "x"}, "thoughtSignature": "c2ln"}


# -- config -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "path"),
    [
        ({}, STREAM_PATH),
        ({"api_version": "v1"}, f"/v1/models/{MODEL}:streamGenerateContent?alt=sse"),
        ({"api_version": "", "base_url_suffix": "/v1beta/"}, STREAM_PATH),
        (
            {"model_name": "models/gemini-2.0-flash"},
            "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse",
        ),
        ({"model_name": "tunedModels/mine"}, "/v1beta/tunedModels/mine:streamGenerateContent?alt=sse"),
        ({"stream": False}, f"/v1beta/models/{MODEL}:generateContent"),
        ({"base_url_suffix": "/proxy/"}, f"/proxy/v1beta/models/{MODEL}:streamGenerateContent?alt=sse"),
    ],
)
async def test_url(emu: Emulator, overrides: dict[str, Any], path: str) -> None:
    overrides = dict(overrides)  # (the parameter is shared by both backends' runs)
    suffix = overrides.pop("base_url_suffix", "")
    model = make_model(emu, base_url=_base_url(emu) + suffix, **overrides)
    body = _chunk("ok", finish="STOP")
    if model.stream:
        emu.replay(_sse(body))
    else:
        emu.replay(orjson.dumps(body), content_type="application/json")
    assert await (await model("hi")).aread() == "ok"
    assert emu.requests[0].path == path


async def test_environment_variables(emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", _base_url(emu))
    monkeypatch.setenv("GEMINI_API_KEY", "gemini-key-1234")
    monkeypatch.setenv("GOOGLE_API_KEY", "google-key-1234\n")
    model = streamwrap.load_model({"model_type": "gemini_chat", "model_name": MODEL, "stream": True})
    emu.replay(_sse(_chunk("ok", finish="STOP")))
    await (await model("hi")).aread()
    # google-genai's order: GOOGLE_API_KEY wins; stripped as google-genai does.
    assert emu.requests[0].headers["x-goog-api-key"] == "google-key-1234"
    assert "google-key" not in repr(model)
    monkeypatch.delenv("GOOGLE_API_KEY")
    emu.reset()
    model = streamwrap.load_model({"model_type": "gemini_chat", "model_name": MODEL, "stream": True})
    emu.replay(_sse(_chunk("ok", finish="STOP")))
    await (await model("hi")).aread()
    assert emu.requests[0].headers["x-goog-api-key"] == "gemini-key-1234"


async def test_no_key_with_base_url_sends_no_key_header(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("GOOGLE_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    model = make_model(emu, api_key=None)
    emu.replay(_sse(_chunk("ok", finish="STOP")))
    await (await model("hi")).aread()
    assert "x-goog-api-key" not in emu.requests[0].headers


def test_config_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GOOGLE_API_KEY", "GEMINI_API_KEY", "GOOGLE_GEMINI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    base = {"model_type": "gemini_chat", "model_name": MODEL, "api_key": "k"}
    with pytest.raises(streamwrap.ConfigError, match="GOOGLE_API_KEY / GEMINI_API_KEY"):
        streamwrap.load_model({"model_type": "gemini_chat", "model_name": MODEL})
    with pytest.raises(streamwrap.ConfigError) as info:
        streamwrap.load_model({**base, "api_verison": "v1"})
    assert info.value.suggestion == "api_version"
    with pytest.raises(streamwrap.ConfigError, match="api_version"):
        streamwrap.load_model({**base, "api_version": "v1/../x"})
    with pytest.raises(streamwrap.ConfigError, match="api_version"):
        streamwrap.load_model({**base, "api_version": 1})
    with pytest.raises(streamwrap.ConfigError, match="model_name"):
        streamwrap.load_model({**base, "model_name": "gemini?alt=json"})
    model = streamwrap.load_model(base)
    assert type(model).__name__ == "GeminiChatWrapper"
    assert (model.model_type, model.provider, model.extra) == ("gemini_chat", "gemini", "gemini")
    assert model.api_version == "v1beta"


# -- non-streaming ------------------------------------------------------------------------


NON_STREAMING_BODY = {
    "candidates": [
        {
            "content": {
                "role": "model",
                "parts": [
                    {"text": "The user wants weather.", "thought": True},
                    {"text": "Let me check."},
                    {
                        "functionCall": {"id": "fc-1", "name": "get_weather", "args": {"city": "Paris"}},
                        "thoughtSignature": "c2ln",
                    },
                ],
            },
            "finishReason": "STOP",
            "index": 0,
        }
    ],
    "usageMetadata": {
        "promptTokenCount": 10,
        "candidatesTokenCount": 5,
        "thoughtsTokenCount": 7,
        "cachedContentTokenCount": 4,
        "totalTokenCount": 22,
    },
    "modelVersion": "gemini-2.5-flash-001",
    "responseId": "r-xyz",
}


async def test_non_streaming_body(emu: Emulator) -> None:
    model = make_model(emu, stream=False)
    emu.replay(orjson.dumps(NON_STREAMING_BODY), content_type="application/json", split=None)
    response = await model("weather?", tools=[WEATHER_TOOL])
    assert emu.requests[0].path == f"/v1beta/models/{MODEL}:generateContent"
    assert response.text == "Let me check."
    assert response.reasoning == "The user wants weather."
    assert await _items(response) == [(True, "Let me check.")]
    (call,) = response.tool_calls
    assert (call.id, call.name, call.arguments, call.extra) == (
        "fc-1",
        "get_weather",
        '{"city":"Paris"}',
        {"thought_signature": "c2ln"},
    )
    assert response.finish_reason == "tool_calls"
    assert response.finish_reason_raw == "STOP"
    usage = response.usage
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (10, 12, 22)
    assert (usage.reasoning_tokens, usage.cached_tokens, usage.source) == (7, 4, "provider")
    assert (response.provider_id, response.model) == ("r-xyz", "gemini-2.5-flash-001")


async def test_non_streaming_error_object_raises_at_the_call(emu: Emulator) -> None:
    model = make_model(emu, stream=False)
    body = {"error": {"code": 500, "message": "Internal error", "status": "INTERNAL"}}
    emu.replay(orjson.dumps(body), content_type="application/json")
    with pytest.raises(streamwrap.ProviderStreamError) as info:
        await model("hi")
    assert (info.value.message, info.value.code) == ("Internal error", "INTERNAL")


# -- failures mid-stream --------------------------------------------------------------------


FIRST = _chunk("The capital", usage={"promptTokenCount": 5, "totalTokenCount": 5})
SECOND = _chunk(" of France", usage={"promptTokenCount": 5, "candidatesTokenCount": 3, "totalTokenCount": 8})
OVERLOADED = {
    "error": {
        "code": 503,
        "message": "The model is overloaded. Please try again later.",
        "status": "UNAVAILABLE",
    }
}


@pytest.mark.parametrize("split", ["event", 7, None])
async def test_error_event_mid_stream_keeps_partial_text(
    emu: Emulator, model: Any, split: str | int | None
) -> None:
    # With split=None the error arrives in the same read as the text before it.
    emu.replay(_sse(FIRST, SECOND, OVERLOADED, _chunk(" is Paris.", finish="STOP")), split=split)
    response = await model("hi")
    seen: list[str] = []
    with pytest.raises(streamwrap.ProviderStreamError) as info:
        async for _, text_so_far in response.stream:
            seen.append(text_so_far)
    err = info.value
    assert err.message == "The model is overloaded. Please try again later."
    assert err.code == "UNAVAILABLE"
    assert err.provider == "gemini"
    assert err.partial_text == "The capital of France"
    assert seen[-1] == "The capital of France"
    assert response.finish_reason == "error"
    assert response.usage.output_tokens == 3  # what had been reported stays
    with pytest.raises(streamwrap.ProviderStreamError):
        _ = response.text


@pytest.mark.parametrize("split", ["event", None])
async def test_stream_without_finish_reason_is_interrupted(
    emu: Emulator, model: Any, split: str | None
) -> None:
    emu.replay(_sse(FIRST, SECOND), split=split)
    response = await model("hi")
    with pytest.raises(streamwrap.StreamInterruptedError) as info:
        await response.aread()
    assert info.value.partial_text == "The capital of France"
    assert "finishReason" in info.value.message


async def test_malformed_event_is_a_protocol_error(emu: Emulator, model: Any) -> None:
    emu.replay(_sse(FIRST) + b'data: {"candidates": [\r\n\r\n')
    response = await model("hi")
    with pytest.raises(streamwrap.StreamProtocolError) as info:
        await response.aread()
    assert info.value.partial_text == "The capital"


async def test_wrong_shape_is_a_protocol_error_not_a_bare_exception(emu: Emulator, model: Any) -> None:
    emu.replay(_sse({"candidates": [{"content": {"parts": "oops"}}]}))
    response = await model("hi")
    with pytest.raises(streamwrap.StreamProtocolError, match="GenerateContentResponse"):
        await response.aread()


async def test_blocked_prompt_raises_with_the_block_reason(emu: Emulator, model: Any) -> None:
    blocked = {
        "promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
        "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9},
        "modelVersion": MODEL,
        "responseId": "r-blocked",
    }
    emu.replay(_sse(blocked))
    response = await model("something bad")
    with pytest.raises(streamwrap.ProviderStreamError) as info:
        await response.aread()
    assert info.value.code == "PROHIBITED_CONTENT"
    assert "blocked" in info.value.message
    assert response.finish_reason == "error"
    # Non-streaming: the call itself raises.
    emu.replay(orjson.dumps(blocked), content_type="application/json")
    with pytest.raises(streamwrap.ProviderStreamError, match="PROHIBITED_CONTENT"):
        await make_model(emu, stream=False)("something bad")


@pytest.mark.parametrize(
    ("reason", "normalised"),
    [
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("MAX_TOKENS", "length"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("MALFORMED_FUNCTION_CALL", "error"),
        ("UNEXPECTED_TOOL_CALL", "error"),
        ("FINISH_REASON_UNSPECIFIED", "stop"),
    ],
)
async def test_finish_reasons(emu: Emulator, model: Any, reason: str, normalised: str) -> None:
    emu.replay(_sse(FIRST, _chunk("", finish=reason)))
    response = await model("hi")
    assert await response.aread() == "The capital"
    assert response.finish_reason_raw == reason
    assert response.finish_reason == normalised


async def test_thought_parts_are_reasoning(emu: Emulator, model: Any) -> None:
    emu.replay(_sse(_chunk("hmm", thought=True), _chunk("", thought=True), _chunk("Paris", finish="STOP")))
    response = await model("hi")
    assert [(type(d).__name__, d) for d in await _deltas(response)] == [
        ("ReasoningDelta", "hmm"),
        ("TextDelta", "Paris"),
    ]
    assert (response.text, response.reasoning) == ("Paris", "hmm")


async def test_only_candidate_0_is_followed(emu: Emulator, model: Any) -> None:
    other = _chunk("other answer")
    other["candidates"][0]["index"] = 1
    both = _chunk(" done", finish="STOP")
    both["candidates"].insert(
        0, {"content": {"parts": [{"text": "nope"}]}, "index": 1, "finishReason": "STOP"}
    )
    emu.replay(_sse(_chunk("mine"), other, both))
    response = await model("hi", n=2)
    assert await response.aread() == "mine done"
    assert emu.requests[0].json["generationConfig"] == {"candidateCount": 2}


# -- scripted replies (the emulator's Gemini dialect) ---------------------------------------


async def test_scripted_text_reasoning_and_usage(emu: Emulator, model: Any) -> None:
    emu.script(Reply(text=["Hel", "lo", "!"], reasoning=["Let me ", "think."], usage=(12, 6), model=MODEL))
    response = await model("hi")
    items = await _items(response)
    assert items == [(False, "Hel"), (False, "Hello"), (False, "Hello!"), (True, "Hello!")]
    assert response.reasoning == "Let me think."
    assert response.finish_reason == "stop"
    assert response.finish_reason_raw == "STOP"
    usage = response.usage
    # The dialect splits completion tokens into candidates and thoughts; we add them back.
    assert (usage.input_tokens, usage.output_tokens, usage.reasoning_tokens, usage.total_tokens) == (
        12,
        6,
        2,
        18,
    )
    assert response.model == MODEL
    assert response.provider_id
    assert emu.requests[0].path == STREAM_PATH


async def test_scripted_parallel_tool_calls(emu: Emulator, model: Any) -> None:
    emu.script(
        Reply(
            text="Checking both.",
            tool_calls=[
                ToolCallSpec("get_weather", '{"city": "Paris"}'),
                ToolCallSpec("add", '{"a": 1, "b": 2}'),
            ],
        )
    )
    response = await model("hi", tools=[WEATHER_TOOL])
    await response.aread()
    calls = response.tool_calls
    assert [(c.name, c.parsed_arguments(), c.index) for c in calls] == [
        ("get_weather", {"city": "Paris"}, 0),
        ("add", {"a": 1, "b": 2}, 1),
    ]
    assert calls[0].extra and calls[0].extra["thought_signature"]
    assert calls[1].extra is None
    assert len({c.id for c in calls}) == 2
    assert response.text == "Checking both."
    assert response.finish_reason == "tool_calls"


async def test_scripted_non_streaming(emu: Emulator) -> None:
    model = make_model(emu, stream=False)
    emu.script(Reply(text="Hello there", reasoning="hmm", tool_calls=[ToolCallSpec("f", "{}")], usage=(3, 4)))
    response = await model("hi")
    assert emu.requests[0].path == f"/v1beta/models/{MODEL}:generateContent"
    assert (response.text, response.reasoning) == ("Hello there", "hmm")
    assert [(c.name, c.arguments) for c in response.tool_calls] == [("f", "{}")]
    assert (response.usage.input_tokens, response.usage.output_tokens) == (3, 4)


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (401, streamwrap.AuthenticationError),
        (403, streamwrap.AuthenticationError),
        (404, streamwrap.NotFoundError),
        (429, streamwrap.RateLimitError),
        (500, streamwrap.ServerError),
        (503, streamwrap.ServerError),
    ],
)
async def test_scripted_http_errors(emu: Emulator, model: Any, status: int, error_class: type) -> None:
    emu.script(Reply(status=status))
    with pytest.raises(error_class) as info:
        await model("hi")
    assert info.value.status_code == status
    assert info.value.body["error"]["code"] == status
    assert info.value.message == info.value.body["error"]["message"]


async def test_scripted_429_is_retried(emu: Emulator) -> None:
    model = make_model(emu, max_retries=1)
    emu.script(Reply(status=429, headers={"Retry-After": "0"}), Reply(text="ok"))
    response = await model("hi")
    assert await response.aread() == "ok"
    assert [a["status"] for a in response.attempts] == [429, 200]


@pytest.mark.parametrize(
    ("fault", "error_class"),
    [
        (Fault.drop_after(2), streamwrap.StreamInterruptedError),
        (
            Fault.inband_error_after(2, "The model is overloaded.", "UNAVAILABLE"),
            streamwrap.ProviderStreamError,
        ),
        (Fault.error_event_after(2, "boom"), streamwrap.ProviderStreamError),
        (Fault.malformed_line_after(2), streamwrap.StreamProtocolError),
        (Fault.truncated_json_after(2), streamwrap.StreamProtocolError),
        (Fault.end_without_finish_after(2), streamwrap.StreamInterruptedError),
    ],
)
async def test_scripted_faults_keep_partial_text(
    emu: Emulator, model: Any, fault: Fault, error_class: type
) -> None:
    emu.script(Reply(text=["one ", "two ", "three ", "four"], fault=fault))
    response = await model("hi")
    with pytest.raises(error_class) as info:
        async for _ in response.stream:
            pass
    assert info.value.partial_text == "one two "
    assert info.value.provider == "gemini"
    if fault.kind == "inband_error":
        assert (info.value.message, info.value.code) == ("The model is overloaded.", "UNAVAILABLE")
    if fault.kind == "error_event":
        assert (info.value.message, info.value.code) == ("boom", "INTERNAL")


async def test_scripted_idle_timeout_ignores_keepalives(own_emu: Emulator) -> None:
    model = make_model(own_emu, idle_timeout=0.3)
    own_emu.script(Reply(text=["a ", "b ", "c"], fault=Fault.stall_with_keepalive_after(1, 2.0, every=0.05)))
    response = await model("hi")
    with pytest.raises(streamwrap.StreamTimeoutError) as info:
        await response.aread()
    assert info.value.partial_text == "a "


async def test_break_closes_the_upstream(own_emu: Emulator) -> None:
    import anyio

    model = make_model(own_emu)
    own_emu.script(Reply(text=[f"w{i} " for i in range(50)], delay=0.02))
    response = await model("hi")
    async for _, text_so_far in response.stream:
        if text_so_far:
            break
    with anyio.move_on_after(2.0):
        while own_emu.open_connections:
            await anyio.sleep(0.01)
    assert own_emu.open_connections == 0
    assert response.finish_reason == "cancelled"


# -- the reference SDK ----------------------------------------------------------------------


@pytest.fixture
def genai_client(emu: Emulator) -> Iterator[Any]:
    genai = pytest.importorskip("google.genai")
    client = genai.Client(
        api_key=API_KEY,
        http_options={"base_url": _base_url(emu), "api_version": "v1beta"},
    )
    yield client
    client.close()


@pytest.mark.parametrize(("meta_path", "meta"), STREAMING)
def test_google_genai_sends_the_same_request_and_reads_the_same_stream(
    emu: Emulator, genai_client: Any, recordings: Path, meta_path: Path, meta: dict[str, Any]
) -> None:
    from google.genai import types

    body = _recordings.body(meta_path, meta)
    tool = WEATHER_TOOL["function"]
    emu.replay(body)
    chunks = list(
        genai_client.models.generate_content_stream(
            model=MODEL,
            contents="What is the capital of France?",
            config=types.GenerateContentConfig(
                system_instruction="Be brief.",
                temperature=0.0,
                max_output_tokens=64,
                tools=[
                    types.Tool(
                        function_declarations=[
                            types.FunctionDeclaration(
                                name=tool["name"],  # type: ignore[index]
                                description=tool["description"],  # type: ignore[index]
                                parameters_json_schema=tool["parameters"],  # type: ignore[index]
                            )
                        ]
                    )
                ],
            ),
        )
    )
    sdk_text = "".join(
        p.text for c in chunks for p in (c.candidates[0].content.parts or []) if p.text and not p.thought
    )
    sdk_calls = [
        (p.function_call.name, p.function_call.args, p.thought_signature)
        for c in chunks
        for p in (c.candidates[0].content.parts or [])
        if p.function_call
    ]

    model = streamwrap.load_model(
        {
            "model_type": "gemini_chat",
            "model_name": MODEL,
            "base_url": _base_url(emu),
            "api_key": API_KEY,
            "stream": True,
            "generate_args": {"temperature": 0.0, "max_tokens": 64},
        }
    )
    emu.replay(body)
    import anyio

    async def ours() -> Any:
        response = await model(
            [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "What is the capital of France?"},
            ],
            tools=[WEATHER_TOOL],
        )
        await response.aread()
        return response

    response = anyio.run(ours)
    assert response.text == sdk_text == meta["expected"]["text"]
    # google-genai holds the signature as bytes (base64-decoded); ours is the wire string.
    import base64

    assert [
        (c.name, c.parsed_arguments(), base64.b64decode(c.extra["thought_signature"]) if c.extra else None)
        for c in response.tool_calls
    ] == sdk_calls

    sdk_request, our_request = emu.requests
    assert our_request.path == sdk_request.path == STREAM_PATH
    assert our_request.headers["x-goog-api-key"] == sdk_request.headers["x-goog-api-key"] == API_KEY
    sdk_json, our_json = sdk_request.json, our_request.json
    assert our_json["contents"] == sdk_json["contents"]
    assert our_json["systemInstruction"]["parts"] == sdk_json["systemInstruction"]["parts"]
    assert our_json["generationConfig"] == sdk_json["generationConfig"]
    # google-genai spells the schema key the proto way (snake case), we as the REST reference
    # does; the API accepts both.
    sdk_declarations = sdk_json["tools"][0]["functionDeclarations"]
    for declaration in sdk_declarations:
        declaration["parametersJsonSchema"] = declaration.pop("parameters_json_schema")
    assert our_json["tools"] == [{"functionDeclarations": sdk_declarations}]


def test_google_genai_and_streamwrap_read_a_scripted_stream_alike(emu: Emulator, genai_client: Any) -> None:
    import anyio

    reply = Reply(
        text=["The answer ", "is ", "42."],
        reasoning=["Thinking ", "hard."],
        tool_calls=[ToolCallSpec("lookup", '{"q": "life"}'), ToolCallSpec("add", '{"a": 40, "b": 2}')],
        usage=(7, 9),
        model=MODEL,
        id="resp-same",  # the same signature both times
    )
    emu.script(reply)
    sdk_parts = [
        p
        for c in genai_client.models.generate_content_stream(model=MODEL, contents="hi")
        for p in (c.candidates[0].content.parts or [])
    ]

    async def ours() -> Any:
        response = await make_model(emu)("hi")
        await response.aread()
        return response

    emu.script(reply)
    response = anyio.run(ours)
    assert (
        response.text == "".join(p.text for p in sdk_parts if p.text and not p.thought) == "The answer is 42."
    )
    assert (
        response.reasoning == "".join(p.text for p in sdk_parts if p.text and p.thought) == "Thinking hard."
    )
    import base64

    assert [
        (c.name, c.parsed_arguments(), base64.b64decode(c.extra["thought_signature"]) if c.extra else None)
        for c in response.tool_calls
    ] == [
        (p.function_call.name, p.function_call.args, p.thought_signature)
        for p in sdk_parts
        if p.function_call
    ]
    assert emu.requests[0].path == emu.requests[1].path == STREAM_PATH
