"""``ollama_chat`` over real HTTP to the emulator: the recorded Ollama bodies
(../shared/recordings/ollama) replayed byte for byte, hand-written NDJSON bodies for the
features the recordings lack (thinking, tool calls, errors), scripted replies in the
emulator's Ollama dialect (faults, timeouts, retries, cancellation), the request it sends,
the ``OLLAMA_HOST`` parsing, and cross-checks against the real ``ollama`` SDK."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

import streamwrap
from streamwrap import ReasoningDelta, TextDelta, ToolCallDelta
from streamwrap._providers.ollama._wrapper import (
    OllamaChatWrapper,
    ollama_messages,
    ollama_options,
    parse_ollama_host,
)
from streamwrap.testing import Emulator, Fault, Reply, ToolCallSpec
from tests.support import providers
from tests.support import recordings as _recordings

pytestmark = pytest.mark.anyio

SPLITS = ["line", 7]
API_KEY = "ollama-test-secret-key-0123456789"


# Ollama's recordings, as the provider table (tests/support/recordings.py) routes them.
RECORDED = _recordings.params(
    "meta_path, meta",
    _recordings.select(wire=_recordings.OLLAMA),
    lambda r: (r.meta_path, r.meta),
    what="Ollama",
)


def _base_url(emu: Emulator) -> str:
    return emu.ollama_base_url  # replayed bodies are served on any path; scripted ones on /api/chat


make_model = partial(providers.make_model, model_type="ollama_chat")


def _line(**fields: Any) -> bytes:
    return orjson.dumps(fields) + b"\n"


def _chunk(content: str = "", **message: Any) -> bytes:
    return _line(
        model="qwen3",
        created_at="2025-06-01T12:00:00Z",
        message={"role": "assistant", "content": content, **message},
        done=False,
    )


def _done(reason: str = "stop", prompt: int = 12, output: int = 7) -> bytes:
    return _line(
        model="qwen3",
        created_at="2025-06-01T12:00:01Z",
        message={"role": "assistant", "content": ""},
        done=True,
        done_reason=reason,
        total_duration=1_000_000,
        prompt_eval_count=prompt,
        eval_count=output,
    )


NDJSON = "application/x-ndjson"


# -- the recordings ----------------------------------------------------------------------


def test_recordings_are_found(recordings: Path) -> None:
    assert len(RECORDED) == 3
    for param in RECORDED:
        _, meta = param.values
        assert meta["wire_format"] == "Ollama /api/chat NDJSON"


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize(("meta_path", "meta"), RECORDED)
async def test_recording_replays_to_expected(
    emu: Emulator, recordings: Path, meta_path: Path, meta: dict[str, Any], split: str | int
) -> None:
    expected = meta["expected"]
    emu.replay(
        _recordings.body(meta_path, meta),
        status=meta["response"]["status"],
        content_type=meta["response"]["content_type"][0],
        split=split,
    )
    model = make_model(emu, model_name=expected["model"])
    response = await model("hi")

    items = [(item.is_last, item.text_so_far) async for item in response.stream]
    assert [i for i, (is_last, _) in enumerate(items) if is_last] == [len(items) - 1]
    assert items[-1] == (True, expected["text"])
    deltas = [d async for d in response.deltas()]
    assert "".join(d for d in deltas if type(d) is TextDelta) == expected["text"]
    # One text delta per content line (the recordings have no empty content lines but
    # the done line's).
    assert len(deltas) == expected["ndjson_lines"] - 1

    assert response.text == expected["text"]
    assert response.reasoning == expected["thinking"]
    assert response.tool_calls == []
    assert response.finish_reason_raw == expected["done_reason"]
    assert response.finish_reason == "stop"
    assert response.model == expected["model"]
    assert response.provider == "ollama"
    usage = response.usage
    assert usage.source == "provider"
    assert (usage.input_tokens, usage.output_tokens) == (
        expected["prompt_eval_count"],
        expected["eval_count"],
    )
    assert usage.total_tokens == expected["prompt_eval_count"] + expected["eval_count"]
    assert usage.raw is not None and usage.raw["eval_count"] == expected["eval_count"]

    (request,) = emu.requests
    assert request.method == "POST"
    assert request.path == "/api/chat"
    assert request.json == {
        "model": expected["model"],
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
    }
    assert "authorization" not in request.headers


@pytest.mark.parametrize(("meta_path", "meta"), RECORDED)
async def test_recording_through_the_ollama_sdk_gives_the_same_result(
    emu: Emulator, recordings: Path, meta_path: Path, meta: dict[str, Any], anyio_backend: str
) -> None:
    ollama = pytest.importorskip("ollama")
    body = _recordings.body(meta_path, meta)
    content_type = meta["response"]["content_type"][0]

    emu.replay(body, content_type=content_type, split=7)
    client = ollama.AsyncClient(host=_base_url(emu))
    parts, last = [], None
    async for part in await client.chat(model="m", messages=[{"role": "user", "content": "hi"}], stream=True):
        parts.append(part.message.content or "")
        last = part
    await client._client.aclose()
    assert last is not None

    emu.replay(body, content_type=content_type, split=7)
    response = await make_model(emu)("hi")
    assert await response.aread() == "".join(parts)
    assert response.finish_reason_raw == last.done_reason
    assert (response.usage.input_tokens, response.usage.output_tokens) == (
        last.prompt_eval_count,
        last.eval_count,
    )
    assert response.model == last.model
    # Both sent the same request, stream flag included.
    sdk_request, our_request = emu.requests
    assert sdk_request.path == our_request.path == "/api/chat"
    assert sdk_request.json["stream"] is our_request.json["stream"] is True


# -- hand-written bodies: what the recordings lack ------------------------------------------


async def test_thinking_streams_as_reasoning(emu: Emulator) -> None:
    emu.replay(
        _chunk(thinking="The user ") + _chunk(thinking="greets.") + _chunk("Hel") + _chunk("lo!") + _done(),
        content_type=NDJSON,
        split="line",
    )
    response = await make_model(emu)("hi", think=True)
    deltas = [d async for d in response.deltas()]
    assert deltas == [
        ReasoningDelta("The user "),
        ReasoningDelta("greets."),
        TextDelta("Hel"),
        TextDelta("lo!"),
    ]
    assert response.reasoning == "The user greets."
    assert response.text == "Hello!"
    assert (response.usage.input_tokens, response.usage.output_tokens, response.usage.total_tokens) == (
        12,
        7,
        19,
    )
    assert emu.requests[0].json["think"] is True


async def test_tool_calls(emu: Emulator) -> None:
    calls = [
        {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
        {"function": {"name": "get_time", "arguments": {"tz": "Europe/Paris", "format": ["h", "m"]}}},
    ]
    emu.replay(_chunk("", tool_calls=calls) + _done("stop"), content_type=NDJSON, split=7)
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    response = await make_model(emu)("weather and time in Paris?", tools=tools)
    assert await response.aread() == ""
    got = response.tool_calls
    assert [(c.id, c.name, c.index) for c in got] == [("call_0", "get_weather", 0), ("call_1", "get_time", 1)]
    assert got[0].parsed_arguments() == {"city": "Paris"}
    assert got[1].parsed_arguments() == {"tz": "Europe/Paris", "format": ["h", "m"]}
    # Ollama says "stop"; a response that called tools finishes as "tool_calls", as
    # through Ollama's own OpenAI-compatible endpoint and openai_chat.
    assert response.finish_reason == "tool_calls"
    assert response.finish_reason_raw == "stop"  # as Ollama sent it
    assert emu.requests[0].json["tools"] == tools


async def test_tool_calls_with_index_and_id_from_newer_ollama(emu: Emulator) -> None:
    calls = [{"id": "call_abc", "function": {"index": 0, "name": "f", "arguments": {}}}]
    more = [{"id": "call_def", "function": {"index": 1, "name": "g", "arguments": {"x": 1}}}]
    emu.replay(_chunk("", tool_calls=calls) + _chunk("", tool_calls=more) + _done(), content_type=NDJSON)
    response = await make_model(emu)("hi")
    await response.aread()
    assert [(c.id, c.name, c.arguments) for c in response.tool_calls] == [
        ("call_abc", "f", "{}"),
        ("call_def", "g", '{"x":1}'),
    ]


async def test_error_line_mid_stream_keeps_the_partial_text(emu: Emulator) -> None:
    emu.replay(
        _chunk("Once ")
        + _chunk("upon")
        + _line(error="an error was encountered while running the model: CUDA error"),
        content_type=NDJSON,
        split="line",
    )
    response = await make_model(emu)("hi")  # the status was 200
    seen = []
    with pytest.raises(streamwrap.ProviderStreamError) as info:
        async for _, text in response.stream:
            seen.append(text)
    err = info.value
    assert err.provider == "ollama"
    assert err.message == "an error was encountered while running the model: CUDA error"
    assert err.partial_text == "Once upon" == seen[-1]
    with pytest.raises(streamwrap.ProviderStreamError):
        _ = response.text
    assert response.finish_reason == "error"


async def test_body_ending_without_done_is_interrupted(emu: Emulator) -> None:
    emu.replay(_chunk("Once ") + _chunk("upon"), content_type=NDJSON, split="line")
    response = await make_model(emu)("hi")
    with pytest.raises(streamwrap.StreamInterruptedError) as info:
        await response.aread()
    assert info.value.partial_text == "Once upon"
    assert response.finish_reason == "error"


async def test_body_cut_inside_a_line_is_interrupted(emu: Emulator) -> None:
    emu.replay(_chunk("Once ") + _chunk("upon")[:20], content_type=NDJSON, split="line")
    response = await make_model(emu)("hi")
    with pytest.raises(streamwrap.StreamInterruptedError) as info:
        await response.aread()
    assert info.value.partial_text == "Once "


async def test_malformed_line_is_a_protocol_error(emu: Emulator) -> None:
    emu.replay(_chunk("Once ") + b'{"model": "qwen3", "message": {oops}\n' + _done(), content_type=NDJSON)
    response = await make_model(emu)("hi")
    with pytest.raises(streamwrap.StreamProtocolError) as info:
        await response.aread()
    assert info.value.partial_text == "Once "


async def test_a_last_line_without_newline_is_accepted(emu: Emulator) -> None:
    emu.replay(_chunk("ok") + _done().rstrip(b"\n"), content_type=NDJSON, split=3)
    response = await make_model(emu)("hi")
    assert await response.aread() == "ok"
    assert response.finish_reason == "stop"


async def test_multibyte_text_split_everywhere(emu: Emulator) -> None:
    text = ["héllo ", "世界 ", "🎉"]
    emu.replay(b"".join(_chunk(t) for t in text) + _done(), content_type=NDJSON, split=1)
    response = await make_model(emu)("hi")
    assert await response.aread() == "".join(text)


# -- non-streaming -------------------------------------------------------------------------


async def test_non_streaming(emu: Emulator) -> None:
    body = {
        "model": "qwen3",
        "created_at": "2025-06-01T12:00:00Z",
        "message": {
            "role": "assistant",
            "content": "Paris.",
            "thinking": "Capital of France.",
            "tool_calls": [{"function": {"name": "lookup", "arguments": {"q": "France"}}}],
        },
        "done": True,
        "done_reason": "stop",
        "prompt_eval_count": 20,
        "eval_count": 4,
    }
    emu.replay(orjson.dumps(body), content_type="application/json", split=None)
    model = make_model(emu)
    response = await model("Capital of France?", stream=False)
    assert response.done
    assert response.text == "Paris."
    assert response.reasoning == "Capital of France."
    assert [(c.id, c.name, c.arguments) for c in response.tool_calls] == [
        ("call_0", "lookup", '{"q":"France"}')
    ]
    assert response.finish_reason == "tool_calls"
    assert (response.usage.input_tokens, response.usage.output_tokens) == (20, 4)
    assert [item async for item in response.stream] == [(True, "Paris.")]
    # `stream: false` is sent explicitly: Ollama streams when the field is absent.
    assert emu.requests[0].json["stream"] is False


async def test_non_streaming_error_body_is_a_stream_error(emu: Emulator) -> None:
    emu.replay(b'{"error": "unexpected server status"}', content_type="application/json", split=None)
    with pytest.raises(streamwrap.ProviderStreamError):
        await make_model(emu)("hi", stream=False)


async def test_non_streaming_non_json_body(emu: Emulator) -> None:
    emu.replay(b"<html>proxy error</html>", content_type="text/html", split=None)
    with pytest.raises(streamwrap.StreamProtocolError):
        await make_model(emu)("hi", stream=False)


# -- HTTP errors and connection ----------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "error_class"),
    [
        (404, b'{"error":"model \\"nope\\" not found, try pulling it first"}', streamwrap.NotFoundError),
        (400, b'{"error":"invalid options: num_ctx"}', streamwrap.ProviderHTTPError),
        (401, b'{"error":"unauthorized"}', streamwrap.AuthenticationError),
        (500, b'{"error":"llama runner process has terminated"}', streamwrap.ServerError),
    ],
)
async def test_http_errors_are_typed(emu: Emulator, status: int, body: bytes, error_class: type) -> None:
    emu.replay(body, status=status, content_type="application/json; charset=utf-8")
    with pytest.raises(error_class) as info:
        await make_model(emu)("hi")
    err = info.value
    assert type(err) is error_class
    assert err.status_code == status
    assert err.provider == "ollama"
    assert err.message == orjson.loads(body)["error"]
    assert err.body == orjson.loads(body)


async def test_connection_refused() -> None:
    with Emulator() as emu:
        url = emu.url
    model = streamwrap.load_model(
        {"model_type": "ollama_chat", "model_name": "m", "base_url": url, "max_retries": 0}
    )
    with pytest.raises(streamwrap.ProviderConnectionError):
        await model("hi")


# -- configuration: host, key ------------------------------------------------------------

# The ollama SDK's own table (the doctests of ollama._client._parse_host).
HOSTS = [
    (None, "http://127.0.0.1:11434"),
    ("", "http://127.0.0.1:11434"),
    ("1.2.3.4", "http://1.2.3.4:11434"),
    (":56789", "http://127.0.0.1:56789"),
    ("1.2.3.4:56789", "http://1.2.3.4:56789"),
    ("http://1.2.3.4", "http://1.2.3.4:80"),
    ("https://1.2.3.4", "https://1.2.3.4:443"),
    ("https://1.2.3.4:56789", "https://1.2.3.4:56789"),
    ("example.com", "http://example.com:11434"),
    ("example.com:56789", "http://example.com:56789"),
    ("http://example.com", "http://example.com:80"),
    ("https://example.com", "https://example.com:443"),
    ("https://example.com:56789", "https://example.com:56789"),
    ("example.com/", "http://example.com:11434"),
    ("example.com:56789/", "http://example.com:56789"),
    ("example.com/path", "http://example.com:11434/path"),
    ("example.com:56789/path", "http://example.com:56789/path"),
    ("https://example.com:56789/path", "https://example.com:56789/path"),
    ("example.com:56789/path/", "http://example.com:56789/path"),
    ("[0001:002:003:0004::1]", "http://[0001:002:003:0004::1]:11434"),
    ("[0001:002:003:0004::1]:56789", "http://[0001:002:003:0004::1]:56789"),
    ("http://[0001:002:003:0004::1]", "http://[0001:002:003:0004::1]:80"),
    ("https://[0001:002:003:0004::1]", "https://[0001:002:003:0004::1]:443"),
    ("https://[0001:002:003:0004::1]:56789", "https://[0001:002:003:0004::1]:56789"),
    ("[0001:002:003:0004::1]/", "http://[0001:002:003:0004::1]:11434"),
    ("[0001:002:003:0004::1]:56789/", "http://[0001:002:003:0004::1]:56789"),
    ("[0001:002:003:0004::1]/path", "http://[0001:002:003:0004::1]:11434/path"),
    ("[0001:002:003:0004::1]:56789/path", "http://[0001:002:003:0004::1]:56789/path"),
    ("https://[0001:002:003:0004::1]:56789/path", "https://[0001:002:003:0004::1]:56789/path"),
    ("[0001:002:003:0004::1]:56789/path/", "http://[0001:002:003:0004::1]:56789/path"),
    ("0.0.0.0", "http://0.0.0.0:11434"),
    ("localhost:11434", "http://localhost:11434"),
]


@pytest.mark.parametrize(("host", "url"), HOSTS)
def test_ollama_host_parsing(host: str | None, url: str) -> None:
    assert parse_ollama_host(host) == url


@pytest.mark.parametrize(("host", "url"), HOSTS)
def test_ollama_host_parsing_matches_the_sdk(host: str | None, url: str) -> None:
    client = pytest.importorskip("ollama._client")
    assert parse_ollama_host(host) == client._parse_host(host)


def test_bad_port_is_an_input_error() -> None:
    with pytest.raises(streamwrap.InputError):
        parse_ollama_host("example.com:99999999")


async def test_ollama_host_env_without_scheme(emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    hostport = emu.url.removeprefix("http://")
    monkeypatch.setenv("OLLAMA_HOST", hostport)  # e.g. "127.0.0.1:40123", as users set it
    monkeypatch.delenv("OLLAMA_API_KEY", raising=False)
    model = streamwrap.load_model({"model_type": "ollama_chat", "model_name": "m", "stream": True})
    assert model.base_url == hostport
    emu.replay(_chunk("via env") + _done(), content_type=NDJSON)
    response = await model("hi")
    assert await response.aread() == "via env"
    assert emu.requests[0].path == "/api/chat"


def test_no_key_and_no_host_is_fine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    monkeypatch.delenv("OLLAMA_API_KEY", raising=False)
    model = streamwrap.load_model({"model_type": "ollama_chat", "model_name": "m"})
    assert isinstance(model, OllamaChatWrapper)
    assert model._endpoint() == "http://127.0.0.1:11434/api/chat"


async def test_api_key_is_sent_as_bearer_and_never_shown(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OLLAMA_API_KEY", API_KEY)
    model = make_model(emu)
    assert API_KEY not in repr(model)
    emu.replay(_chunk("ok") + _done(), content_type=NDJSON)
    assert await (await model("hi")).aread() == "ok"
    assert emu.requests[0].headers["authorization"] == f"Bearer {API_KEY}"
    # A proxy that echoes the key in its error body: scrubbed.
    emu.replay(orjson.dumps({"error": f"bad key {API_KEY}"}), status=401, content_type="application/json")
    with pytest.raises(streamwrap.AuthenticationError) as info:
        await model("hi")
    for shown in (str(info.value), repr(info.value), repr(info.value.body)):
        assert API_KEY not in shown


# -- the request -------------------------------------------------------------------------


async def test_generate_args_map_to_options_and_top_level_fields(emu: Emulator) -> None:
    model = make_model(emu, generate_args={"temperature": 0.2, "max_tokens": 50, "num_ctx": 8192})
    emu.replay(_chunk("ok") + _done(), content_type=NDJSON)
    await (
        await model(
            "hi",
            top_p=0.9,
            top_k=40,
            seed=7,
            stop="\n\n",
            think="high",
            format={"type": "object", "properties": {"a": {"type": "string"}}},
            keep_alive="5m",
            options={"repeat_penalty": 1.1, "temperature": 0.0},
        )
    ).aread()
    sent = emu.requests[0].json
    assert sent == {
        "model": "llama3",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "options": {
            # The explicit `options` dict (Ollama's own spelling) wins over a translated name.
            "temperature": 0.0,
            "num_predict": 50,
            "num_ctx": 8192,
            "top_p": 0.9,
            "top_k": 40,
            "seed": 7,
            "stop": ["\n\n"],
            "repeat_penalty": 1.1,
        },
        "think": "high",
        "format": {"type": "object", "properties": {"a": {"type": "string"}}},
        "keep_alive": "5m",
    }


def test_option_translation_table() -> None:
    assert ollama_options({}) == {}
    assert ollama_options({"max_completion_tokens": 9}) == {"options": {"num_predict": 9}}
    assert ollama_options({"stop": ["a", "b"]}) == {"options": {"stop": ["a", "b"]}}
    assert ollama_options({"response_format": {"type": "json_object"}}) == {"format": "json"}
    schema = {"type": "object"}
    assert ollama_options(
        {"response_format": {"type": "json_schema", "json_schema": {"schema": schema}}}
    ) == {"format": schema}
    assert ollama_options({"response_format": {"type": "text"}}) == {}
    # Ollama's own `format` wins over OpenAI's response_format.
    assert ollama_options({"format": "json", "response_format": {"type": "json_object"}}) == {
        "format": "json"
    }
    assert ollama_options({"reasoning_effort": "low"}) == {"think": "low"}
    assert ollama_options({"reasoning_effort": "none"}) == {"think": False}
    assert ollama_options({"reasoning_effort": "low", "think": True}) == {"think": True}
    assert ollama_options({"logprobs": True, "top_logprobs": 3}) == {"logprobs": True, "top_logprobs": 3}
    assert ollama_options({"extra_body": {"truncate": False}, "min_p": 0.05}) == {
        "options": {"min_p": 0.05},
        "truncate": False,
    }
    for bad in ({"options": [1]}, {"extra_body": "x"}, {"response_format": {"type": "grammar"}}):
        with pytest.raises(streamwrap.InputError):
            ollama_options(bad)


async def test_a_bad_call_argument_raises_at_the_call(emu: Emulator) -> None:
    with pytest.raises(streamwrap.InputError):
        await make_model(emu)("hi", options="fast")
    assert emu.requests == []


async def test_tool_conversation_messages_are_converted(emu: Emulator) -> None:
    messages = [
        {"role": "developer", "content": "Be brief."},
        {
            "role": "user",
            "content": [{"type": "text", "text": "Weather "}, {"type": "text", "text": "in Paris?"}],
        },
        {
            "role": "assistant",
            "content": None,
            "reasoning_content": "Need the tool.",
            "tool_calls": [
                {
                    "id": "call_0",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_0", "content": '{"temp": 21}'},
    ]
    emu.replay(_chunk("21 °C.") + _done(), content_type=NDJSON)
    assert await (await make_model(emu)(messages)).aread() == "21 °C."
    assert emu.requests[0].json["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": "",
            "thinking": "Need the tool.",
            "tool_calls": [
                {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}, "id": "call_0"}
            ],
        },
        {"role": "tool", "content": '{"temp": 21}', "tool_name": "get_weather", "tool_call_id": "call_0"},
    ]


def test_message_conversion_of_images_and_bad_input() -> None:
    converted = ollama_messages(
        [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                ],
            }
        ]
    )
    assert converted == [{"role": "user", "content": "What is this?", "images": ["iVBORw0KGgo="]}]
    bad_messages: list[list[dict[str, Any]]] = [
        [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}],
        [{"role": "user", "content": [{"type": "input_audio"}]}],
        [
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"function": {"name": "f", "arguments": "{oops"}}],
            }
        ],
        [
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"function": {"name": "f", "arguments": "[1]"}}],
            }
        ],
        [{"role": "assistant", "content": "", "tool_calls": ["f"]}],
    ]
    for messages in bad_messages:
        with pytest.raises(streamwrap.InputError):
            ollama_messages(messages)


# -- scripted replies: the emulator's Ollama dialect ---------------------------------------

TEXT = ["Once ", "upon ", "a ", "time."]


async def idle(emu: Emulator, timeout: float = 2.0) -> bool:
    """Wait, without blocking this event loop, until the emulator has no open connection."""
    with anyio.move_on_after(timeout):
        while emu.open_connections:
            await anyio.sleep(0.01)
    return emu.open_connections == 0


async def test_scripted_text_reasoning_tools_and_usage(emu: Emulator) -> None:
    emu.script(
        Reply(
            model="qwen3:0.6b",
            reasoning=["Weather ", "needed."],
            text=["Checking ", "<now> & then."],  # the dialect escapes <, >, & as Go does
            tool_calls=[ToolCallSpec("get_weather", '{"city": "Paris", "unit": "C"}')],
            usage=(31, 9),
        )
    )
    response = await make_model(emu)("Weather in Paris?")
    deltas = [d async for d in response.deltas()]
    assert [type(d) for d in deltas] == [ReasoningDelta, ReasoningDelta, TextDelta, TextDelta, ToolCallDelta]
    assert response.reasoning == "Weather needed."
    assert response.text == "Checking <now> & then."
    (call,) = response.tool_calls
    assert (call.id, call.name, call.parsed_arguments()) == (
        "call_0",
        "get_weather",
        {"city": "Paris", "unit": "C"},
    )
    assert response.finish_reason == "tool_calls"
    assert response.model == "qwen3:0.6b"
    usage = response.usage
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens, usage.source) == (
        31,
        9,
        40,
        "provider",
    )
    assert usage.raw is not None and usage.raw["eval_duration"] > 0
    assert emu.requests[0].path == "/api/chat"


async def test_scripted_non_streaming(emu: Emulator) -> None:
    emu.script(Reply(text=TEXT, reasoning="hmm", usage=(5, 4)))
    response = await make_model(emu, stream=False)("hi")
    assert response.done
    assert response.text == "".join(TEXT)
    assert response.reasoning == "hmm"
    assert (response.usage.input_tokens, response.usage.output_tokens) == (5, 4)
    assert response.finish_reason == "stop"
    assert emu.requests[0].json["stream"] is False


@pytest.mark.parametrize(
    ("fault", "error_class"),
    [
        (Fault.error_event_after(2, message="CUDA error: out of memory"), streamwrap.ProviderStreamError),
        (Fault.inband_error_after(2, message="CUDA error: out of memory"), streamwrap.ProviderStreamError),
        (Fault.drop_after(2), streamwrap.StreamInterruptedError),
        (Fault.end_without_finish_after(2), streamwrap.StreamInterruptedError),
        (Fault.truncated_json_after(2), streamwrap.StreamProtocolError),
        (Fault.malformed_line_after(2), streamwrap.StreamProtocolError),
    ],
    ids=["error-event", "inband-error", "drop", "no-done", "truncated-json", "malformed-line"],
)
async def test_scripted_mid_stream_failures(emu: Emulator, fault: Fault, error_class: type) -> None:
    emu.script(Reply(text=TEXT, fault=fault))
    response = await make_model(emu)("hi")
    with pytest.raises(error_class) as info:
        await response.aread()
    err = info.value
    assert type(err) is error_class
    assert err.partial_text == "".join(TEXT[:2])
    assert err.provider == "ollama"
    assert response.finish_reason == "error"
    if error_class is streamwrap.ProviderStreamError:
        assert err.message == "CUDA error: out of memory"


async def test_scripted_http_errors_and_retry(emu: Emulator) -> None:
    emu.script(Reply(status=404))
    with pytest.raises(streamwrap.NotFoundError) as info:
        await make_model(emu, model_name="nope")("hi")
    assert info.value.message == 'model "nope" not found, try pulling it first'

    emu.script(Reply(status=503), Reply(text="after retry"))
    model = make_model(emu, max_retries=1)
    response = await model("hi")
    assert await response.aread() == "after retry"
    assert [a["status"] for a in response.attempts] == [503, 200]


async def test_blank_line_keepalives_do_not_reset_the_idle_timeout(own_emu: Emulator) -> None:
    own_emu.script(Reply(text=TEXT, fault=Fault.stall_with_keepalive_after(2, seconds=5.0, every=0.05)))
    model = make_model(own_emu, idle_timeout=0.4)
    response = await model("hi")
    with pytest.raises(streamwrap.StreamTimeoutError) as info:
        await response.aread()
    assert info.value.code == "idle_timeout"
    assert info.value.partial_text == "".join(TEXT[:2])
    assert await idle(own_emu)


async def test_break_closes_the_upstream(own_emu: Emulator) -> None:
    own_emu.script(Reply(text=TEXT * 50, delay=0.02))
    response = await make_model(own_emu)("hi")
    async for _, text in response.stream:
        if len(text) > 10:
            break
    assert await idle(own_emu), "the upstream connection was not closed after break"
    assert response.finish_reason == "cancelled"


# -- the real ollama SDK on the same scripted stream ----------------------------------------


async def test_scripted_stream_through_the_ollama_sdk_gives_the_same_result(emu: Emulator) -> None:
    ollama = pytest.importorskip("ollama")
    reply = Reply(
        model="qwen3:0.6b",
        reasoning=["Two ", "tools."],
        text=["Let me ", "check 世界 🎉."],
        tool_calls=[
            ToolCallSpec("get_weather", '{"city": "Paris"}'),
            ToolCallSpec("get_time", '{"tz": "Europe/Paris", "fmt": ["h", "m"]}'),
        ],
        usage=(42, 17),
    )
    tools = [
        {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}},
        {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}},
    ]
    messages = [{"role": "user", "content": "weather and time?"}]

    emu.script(reply)
    client = ollama.AsyncClient(host=emu.ollama_base_url)
    content, thinking, calls, last = "", "", [], None
    try:
        stream = await client.chat(
            model="qwen3:0.6b", messages=messages, tools=tools, stream=True, think=True
        )
        async for part in stream:
            content += part.message.content or ""
            thinking += part.message.thinking or ""
            calls.extend(part.message.tool_calls or [])
            last = part
    finally:
        await client._client.aclose()
    assert last is not None and last.done

    emu.script(reply)
    response = await make_model(emu, model_name="qwen3:0.6b")(messages, tools=tools, think=True)
    assert await response.aread() == content
    assert response.reasoning == thinking
    assert [(c.name, c.parsed_arguments()) for c in response.tool_calls] == [
        (c.function.name, dict(c.function.arguments)) for c in calls
    ]
    assert response.finish_reason == "tool_calls"
    assert response.finish_reason_raw == last.done_reason == "stop"  # kept as Ollama sent it
    assert (response.usage.input_tokens, response.usage.output_tokens) == (
        last.prompt_eval_count,
        last.eval_count,
    )
    assert response.model == last.model

    sdk_request, our_request = emu.requests
    assert sdk_request.path == our_request.path == "/api/chat"
    # The same request body, apart from what the SDK sends empty and we leave out.
    for key in ("model", "messages", "stream", "think", "tools"):
        assert our_request.json[key] == sdk_request.json[key], key
