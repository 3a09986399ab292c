"""``litellm_chat``: the real LiteLLM, over real HTTP, against the emulator on 127.0.0.1.

LiteLLM pins ``openai<3``, so it is not installed in the default environment (openai 3):
there this whole module is skipped. In an environment with ``streamwrap[litellm]`` it runs
fully. Every test also checks that nothing but the emulator was contacted (an audit hook
sees every ``connect``/``getaddrinfo`` of the process), since LiteLLM has code paths that
reach for the network on their own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.support import providers
from tests.support import recordings as _recordings

# Set before LiteLLM is imported (importorskip imports it), as streamwrap does.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
pytest.importorskip(
    "litellm",
    reason="litellm is not installed here (it pins openai<3); "
    'install "streamwrap[litellm]" in an openai 2.x environment to run these tests',
)

import streamwrap
from streamwrap.testing import Emulator, Fault, Reply, ToolCallSpec

pytestmark = pytest.mark.anyio

SECRET = "sk-test-secret-key-0123456789"
TEXT = [f"w{i} " for i in range(8)]
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}},
    {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}},
]


# -- what the process contacts ------------------------------------------------------------

_contacted: list[tuple[str, int]] = []
_auditing = [False]


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if not _auditing[0]:
        return
    if event == "socket.connect":
        address = args[1]
        if isinstance(address, tuple) and len(address) >= 2:
            _contacted.append((str(address[0]), int(address[1])))
    elif event == "socket.getaddrinfo":
        _contacted.append((str(args[0]), int(args[1] or 0)))


sys.addaudithook(_audit)  # (hooks cannot be removed; this one is idle outside these tests)


@pytest.fixture(autouse=True)
def contacted() -> Iterator[list[tuple[str, int]]]:
    """Every (host, port) the process connected to or resolved during the test."""
    _contacted.clear()
    _auditing[0] = True
    try:
        yield _contacted
    finally:
        _auditing[0] = False
    stray = [(h, p) for h, p in _contacted if h not in ("127.0.0.1", "localhost", "::1") or p == 11434]
    assert not stray, f"LiteLLM reached beyond the test server: {stray}"


def only_the_emulator(contacted: list[tuple[str, int]], emu: Emulator) -> None:
    # (Possibly nothing at all: LiteLLM keeps connections alive across tests.)
    port = int(emu.url.rsplit(":", 1)[1])
    assert {p for _, p in contacted} <= {port}, contacted


# -- helpers ------------------------------------------------------------------------------


make_model = partial(providers.make_model, model_type="litellm_chat", api_key=SECRET)


async def idle(emu: Emulator, timeout: float = 3.0) -> bool:
    """Wait without blocking this loop until the emulator has no open connection."""
    with anyio.move_on_after(timeout):
        while emu.open_connections:
            await anyio.sleep(0.01)
    return emu.open_connections == 0


async def stream_items(response: streamwrap.ModelResponse) -> list[tuple[bool, str]]:
    return [(item.is_last, item.text_so_far) async for item in response.stream]


# -- the openai/ route, scripted ----------------------------------------------------------


async def test_stream_text_reasoning_tool_calls_and_usage(emu: Emulator, contacted: Any) -> None:
    model = make_model(emu)
    emu.script(
        Reply(
            text=["Hel", "lo", "!"],
            reasoning=["think ", "hard"],
            tool_calls=[
                ToolCallSpec("get_weather", ['{"city"', ': "Paris"}'], id="call_a"),
                ToolCallSpec("get_time", "{}", id="call_b"),
            ],
            usage=(11, 7),
            id="chatcmpl-lite-1",
        )
    )
    response = await model("hi", tools=TOOLS)
    items = await stream_items(response)
    assert items == [(False, "Hel"), (False, "Hello"), (False, "Hello!"), (True, "Hello!")]
    assert response.text == "Hello!"
    assert response.reasoning == "think hard"
    calls = response.tool_calls
    assert [(c.id, c.name, c.arguments, c.index) for c in calls] == [
        ("call_a", "get_weather", '{"city": "Paris"}', 0),
        ("call_b", "get_time", "{}", 1),
    ]
    assert calls[0].parsed_arguments() == {"city": "Paris"}
    assert response.finish_reason == "tool_calls"
    assert response.provider_id == "chatcmpl-lite-1"
    assert response.model == "emulator-1"
    assert response.provider == "litellm"
    usage = response.usage
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (11, 7, 18)
    assert usage.source == "provider"
    # Unknown stays unknown: the emulator reports no reasoning_tokens (LiteLLM's own final
    # usage would say 1, its tiktoken count of the reasoning text).
    assert usage.reasoning_tokens is None
    # What went over the wire: the model string without its route, usage asked for, the
    # tools, the key as a bearer token, nothing of LiteLLM's own.
    [request] = emu.requests
    body = request.json
    assert body["model"] == "emulator-1"
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["tools"] == TOOLS
    assert not [k for k in body if k.startswith("_")]
    assert dict(request.headers)["authorization"] == f"Bearer {SECRET}"
    only_the_emulator(contacted, emu)


async def test_generate_args_and_client_args_reach_the_request(emu: Emulator) -> None:
    model = make_model(
        emu,
        generate_args={"temperature": 0.25, "max_tokens": 9},
        client_args={"extra_headers": {"X-Trace": "t-1"}},
    )
    response = await model("hi", seed=3)
    await response.aread()
    [request] = emu.requests
    assert (request.json["temperature"], request.json["max_tokens"], request.json["seed"]) == (0.25, 9, 3)
    assert dict(request.headers)["x-trace"] == "t-1"


async def test_a_stream_without_usage_gets_litellms_count_marked_estimated(emu: Emulator) -> None:
    model = make_model(emu)
    emu.script(Reply(text=TEXT, stream_usage=False))
    response = await model("hello there")
    assert await response.aread() == "".join(TEXT)
    usage = response.usage
    assert usage.source == "estimated"
    for count in (usage.input_tokens, usage.output_tokens, usage.total_tokens):
        assert type(count) is int and count > 0
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens


async def test_non_streaming_call(emu: Emulator, contacted: Any) -> None:
    model = make_model(emu, stream=False)
    emu.script(
        Reply(
            text="Bonjour",
            reasoning="r",
            tool_calls=[ToolCallSpec("get_time", "{}", id="call_n")],
            usage=(3, 2),
            id="chatcmpl-whole",
        )
    )
    response = await model("hi", tools=TOOLS)
    assert await stream_items(response) == [(True, "Bonjour")]
    assert response.reasoning == "r"
    assert [(c.id, c.name, c.arguments) for c in response.tool_calls] == [("call_n", "get_time", "{}")]
    assert response.finish_reason == "tool_calls"
    assert response.provider_id == "chatcmpl-whole"
    assert (response.usage.input_tokens, response.usage.output_tokens) == (3, 2)
    assert not emu.requests[0].json.get("stream")  # (LiteLLM leaves out stream=false)
    only_the_emulator(contacted, emu)


async def test_non_streaming_response_without_usage_is_estimated_not_zero(emu: Emulator) -> None:
    # LiteLLM turns a missing usage object into all zeros; that must not pass for a count.
    body = {
        "id": "chatcmpl-nousage",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-x-2024",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "hello there"}, "finish_reason": "stop"}
        ],
    }
    emu.replay(json.dumps(body).encode(), content_type="application/json", split=None)
    response = await make_model(emu, stream=False)("hi")
    assert response.text == "hello there"
    assert response.model == "gpt-x-2024"
    usage = response.usage
    assert usage.source == "estimated"
    assert usage.input_tokens and usage.output_tokens


async def test_server_that_rejects_stream_options_is_asked_again_without(own_emu: Emulator) -> None:
    model = make_model(own_emu)
    own_emu.script(Reply(text=TEXT, reject_stream_options=True), Reply(text=TEXT))
    response = await model("hi")
    assert await response.aread() == "".join(TEXT)
    assert response.usage.source == "estimated"
    first, second = own_emu.requests
    assert "stream_options" in first.json and "stream_options" not in second.json
    # Remembered for this endpoint: the next call does not ask.
    response = await model("hi")
    await response.aread()
    assert "stream_options" not in own_emu.requests[2].json


# -- HTTP errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (401, streamwrap.AuthenticationError),
        (403, streamwrap.AuthenticationError),
        (404, streamwrap.NotFoundError),
        (429, streamwrap.RateLimitError),
        (500, streamwrap.ServerError),
        (503, streamwrap.ServerError),
        (400, streamwrap.ProviderHTTPError),
    ],
)
async def test_http_errors_raise_typed_errors_at_the_call(
    emu: Emulator, status: int, error_class: type, contacted: Any
) -> None:
    model = make_model(emu)
    emu.script(
        Reply(
            status=status,
            error={"message": f"nope {SECRET}", "type": "x", "code": "c"},
            headers={"Retry-After": "7"},
        )
    )
    with pytest.raises(error_class) as info:
        await model("hi")
    err = info.value
    assert type(err) is error_class
    assert err.status_code == status
    assert err.provider == "litellm"
    # The body as the server sent it, key scrubbed everywhere.
    assert err.body == {"error": {"message": "nope **********", "type": "x", "code": "c"}}
    assert err.message == "nope **********"
    assert err.retry_after == 7.0
    for shown in (str(err), repr(err), repr(err.body), repr(err.__cause__), repr(err.__context__)):
        assert SECRET not in shown
    # max_retries=0, and neither LiteLLM nor the SDK under it retried on its own.
    assert len(emu.requests) == 1
    only_the_emulator(contacted, emu)


async def test_retries_are_streamwraps_alone(emu: Emulator) -> None:
    model = make_model(emu, max_retries=2)
    emu.script(
        Reply(status=429, headers={"Retry-After": "0"}), Reply(status=503, headers={"Retry-After": "0"})
    )
    emu.script(Reply(text="ok"))
    response = await model("hi")
    assert await response.aread() == "ok"
    assert [a["status"] for a in response.attempts] == [429, 503, 200]
    assert len(emu.requests) == 3


async def test_connection_refused_is_a_connection_error_not_http_500() -> None:
    with Emulator() as gone:
        url = gone.url
    model = make_model(url)
    with pytest.raises(streamwrap.ProviderConnectionError) as info:
        await model("hi")
    assert not isinstance(info.value, streamwrap.ProviderHTTPError)
    assert SECRET not in str(info.value)


async def test_unknown_route_is_a_config_error_and_nothing_is_sent(emu: Emulator) -> None:
    # LiteLLM raises these as "HTTP 400" though nothing was sent: not an HTTP error here.
    model = make_model(emu, model_name="no-such-route-model-xyz")
    with pytest.raises(streamwrap.ConfigError) as info:
        await model("hi")
    assert "no-such-route-model-xyz" in str(info.value)
    assert emu.requests == []


async def test_missing_provider_key_is_a_config_error_not_a_retried_500(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    model = make_model(emu, api_key=None, max_retries=3)
    with pytest.raises(streamwrap.ConfigError) as info:
        await model("hi")
    assert "api_key" in str(info.value)
    assert emu.requests == []


# -- mid-stream failures ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "error_class"),
    [
        (Fault.error_event_after(3, message="overloaded", code="overloaded"), streamwrap.ProviderStreamError),
        (
            Fault.inband_error_after(3, message="overloaded", code="overloaded"),
            streamwrap.ProviderStreamError,
        ),
        (Fault.drop_after(3), streamwrap.StreamInterruptedError),
        (Fault.end_without_finish_after(3), streamwrap.StreamInterruptedError),
        (Fault.truncated_json_after(3), streamwrap.StreamProtocolError),
        (Fault.malformed_line_after(3), streamwrap.StreamProtocolError),
    ],
    ids=["error-event", "inband-error", "drop", "no-finish", "truncated-json", "malformed-line"],
)
async def test_mid_stream_failures_raise_typed_errors_with_partial_text(
    emu: Emulator, fault: Fault, error_class: type
) -> None:
    model = make_model(emu)
    emu.script(Reply(text=TEXT, fault=fault))
    response = await model("hi")
    seen: list[str] = []
    with pytest.raises(error_class) as info:
        async for is_last, text in response.stream:
            assert not is_last
            seen.append(text)
    err = info.value
    assert type(err) is error_class
    assert err.partial_text == "".join(TEXT[:3])
    assert seen[-1] == err.partial_text
    with pytest.raises(error_class):
        _ = response.text
    assert response.finish_reason == "error"
    if error_class is streamwrap.ProviderStreamError:
        assert err.code == "overloaded" and "overloaded" in err.message


async def test_litellms_repeated_chunk_guard_is_a_provider_stream_error(emu: Emulator) -> None:
    # LiteLLM fails a stream whose model "is repeating the same chunk" 100 times
    # (REPEATED_STREAMING_CHUNK_LIMIT); through litellm_chat that is a typed mid-stream
    # error that keeps what arrived.
    model = make_model(emu)
    emu.script(Reply(text=["again "] * 150))
    response = await model("hi")
    with pytest.raises(streamwrap.ProviderStreamError) as info:
        await response.aread()
    assert "repeating the same chunk" in info.value.message
    assert info.value.partial_text.startswith("again again ")


# -- cancellation -------------------------------------------------------------------------


async def test_break_closes_the_upstream_connection(own_emu: Emulator) -> None:
    model = make_model(own_emu)
    own_emu.script(Reply(text=TEXT * 50, delay=0.02))
    response = await model("hi")
    async for _, text in response.stream:
        if len(text) > 10:
            break
    assert await idle(own_emu), "LiteLLM's stream kept the connection open after break"
    await response.await_done()
    assert response.finish_reason == "cancelled"
    assert len(response.text) < len("".join(TEXT * 50))


async def test_aclose_closes_the_upstream_connection(own_emu: Emulator) -> None:
    model = make_model(own_emu)
    own_emu.script(Reply(text=TEXT * 50, delay=0.02))
    response = await model("hi")
    await response.aclose()
    assert response.finish_reason == "cancelled"
    assert await idle(own_emu)


# -- real recordings through LiteLLM's openai/ route -------------------------------------


# The recordings, as the provider table (tests/support/recordings.py) routes them.
OPENAI_RECORDINGS = _recordings.params(
    "meta_path, meta",
    _recordings.select(wire=_recordings.OPENAI),
    lambda r: (r.meta_path, r.meta),
    what="OpenAI-wire",
)
OLLAMA_RECORDINGS = _recordings.params(
    "meta_path", _recordings.select(wire=_recordings.OLLAMA), lambda r: r.meta_path, what="Ollama"
)


def _content_type(meta: dict[str, Any], default: str) -> str:
    return _recordings.content_type(meta, default)


def _subset(expected: Any, got: Any) -> bool:
    """Every non-null value of ``expected`` is in ``got`` (LiteLLM adds null fields)."""
    if isinstance(expected, dict):
        return isinstance(got, dict) and all(
            v is None or (k in got and _subset(v, got[k])) for k, v in expected.items()
        )
    return bool(expected == got)


@pytest.mark.parametrize(("meta_path", "meta"), OPENAI_RECORDINGS)
async def test_recording_through_litellm_matches_expected(
    emu: Emulator, recordings: Path, meta_path: Path, meta: dict[str, Any], contacted: Any
) -> None:
    expected = meta["expected"]
    emu.replay(
        _recordings.body(meta_path, meta),
        content_type=_content_type(meta, "text/event-stream"),
    )
    model = make_model(emu)
    response = await model("hi")
    items = await stream_items(response)
    assert items[-1] == (True, expected["text"])
    assert response.text == expected["text"]
    assert response.reasoning == expected["reasoning"]
    assert [(c.id, c.name, c.arguments) for c in response.tool_calls] == [
        (c["id"], c["name"], c["arguments"]) for c in expected["tool_calls"]
    ]
    assert response.finish_reason_raw == expected["finish_reason"]
    assert response.provider_id == expected["id"]
    assert response.model == expected["model"]  # the model that answered, not "emulator-1"
    usage, reported = response.usage, expected["usage"]
    if reported is None:
        assert usage.source == "estimated"
        assert usage.input_tokens and usage.output_tokens
    else:
        assert usage.source == "provider"
        assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (
            reported["prompt_tokens"],
            reported["completion_tokens"],
            reported["total_tokens"],
        )
        details = reported.get("completion_tokens_details") or {}
        assert usage.reasoning_tokens == details.get("reasoning_tokens")
        cached = (reported.get("prompt_tokens_details") or {}).get("cached_tokens")
        assert usage.cached_tokens == (
            cached if cached is not None else reported.get("prompt_cache_hit_tokens")
        )
        # The provider's own fields survive LiteLLM's parse (Groq's timings, DeepSeek's
        # cache counts, OpenRouter's cost), which its rebuilt final usage drops.
        assert usage.raw is not None and _subset(reported, dict(usage.raw))
    only_the_emulator(contacted, emu)


async def test_error_401_recording(emu: Emulator, recordings: Path) -> None:
    recording = _recordings.named("openai/error_401_invalid_api_key")
    meta, body = recording.meta, recording.body
    emu.replay(body, status=401, content_type=_content_type(meta, "application/json"))
    with pytest.raises(streamwrap.AuthenticationError) as info:
        await make_model(emu)("hi")
    assert info.value.body == json.loads(body)
    assert "Incorrect API key" in info.value.message


# -- the ollama_chat/ route ----------------------------------------------------------------


async def test_ollama_chat_route_against_the_ollama_dialect(emu: Emulator, contacted: Any) -> None:
    model = make_model(emu, base_url=emu.url, model_name="ollama_chat/llama3.2")
    emu.script(Reply(text=["Hel", "lo"], reasoning="hmm", usage=(12, 5), model="llama3.2"))
    response = await model("hi")
    assert await stream_items(response) == [(False, "Hel"), (False, "Hello"), (True, "Hello")]
    assert response.reasoning == "hmm"
    assert response.finish_reason == "stop"
    assert response.model == "llama3.2"
    usage = response.usage
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens, usage.source) == (
        12,
        5,
        17,
        "provider",
    )
    await anyio.sleep(0.2)  # LiteLLM logs (and would look the model up) after the stream
    # Only the chat request: no `POST /api/show` model lookups, here or on localhost:11434.
    assert [r.path for r in emu.requests] == ["/api/chat"]
    assert emu.requests[0].json["model"] == "llama3.2"
    only_the_emulator(contacted, emu)


@pytest.mark.parametrize(
    ("status", "error_class"),
    [(404, streamwrap.NotFoundError), (429, streamwrap.RateLimitError), (500, streamwrap.ServerError)],
)
async def test_ollama_chat_route_http_errors(emu: Emulator, status: int, error_class: type) -> None:
    model = make_model(emu, base_url=emu.url, model_name="ollama_chat/llama3.2")
    emu.script(Reply(status=status, headers={"Retry-After": "2"}))
    with pytest.raises(error_class) as info:
        await model("hi")
    assert info.value.status_code == status
    assert isinstance(info.value.body, dict) and "error" in info.value.body
    assert info.value.retry_after == 2.0


@pytest.mark.parametrize(
    ("fault", "error_class"),
    [
        (Fault.inband_error_after(3, message="model crashed"), streamwrap.ProviderStreamError),
        (Fault.drop_after(3), streamwrap.StreamInterruptedError),
        (Fault.end_without_finish_after(3), streamwrap.StreamInterruptedError),
        # LiteLLM skips a line it cannot parse at the end of the body: the stream then
        # lacks its `done` line, which is what is reported.
        (Fault.truncated_json_after(3), streamwrap.StreamInterruptedError),
    ],
    ids=["inband-error", "drop", "no-done", "truncated-json"],
)
async def test_ollama_chat_route_mid_stream_failures(emu: Emulator, fault: Fault, error_class: type) -> None:
    model = make_model(emu, base_url=emu.url, model_name="ollama_chat/llama3.2")
    emu.script(Reply(text=TEXT, fault=fault, model="llama3.2"))
    response = await model("hi")
    with pytest.raises(error_class) as info:
        await response.aread()
    assert type(info.value) is error_class
    assert info.value.partial_text == "".join(TEXT[:3])
    if error_class is streamwrap.ProviderStreamError:
        assert "model crashed" in info.value.message


@pytest.mark.parametrize("meta_path", OLLAMA_RECORDINGS)
async def test_ollama_recording_through_litellm(
    emu: Emulator, recordings: Path, meta_path: Path, contacted: Any
) -> None:
    meta = _recordings.load_meta(meta_path)
    expected = meta["expected"]
    emu.replay(
        _recordings.body(meta_path, meta),
        content_type=_content_type(meta, "application/x-ndjson"),
        split="line",
    )
    model = make_model(emu, base_url=emu.url, model_name=f"ollama_chat/{expected['model']}")
    response = await model("hi")
    assert await response.aread() == expected["text"]
    assert response.finish_reason_raw == expected["done_reason"]
    usage = response.usage
    assert (usage.input_tokens, usage.output_tokens, usage.source) == (
        expected["prompt_eval_count"],
        expected["eval_count"],
        "provider",
    )
    assert response.model == expected["model"]
    await anyio.sleep(0.2)
    assert [r.path for r in emu.requests] == ["/api/chat"]
    only_the_emulator(contacted, emu)


# -- configuration and import ------------------------------------------------------------


def test_no_key_needed_and_none_shown() -> None:
    model = streamwrap.load_model({"model_type": "litellm_chat", "model_name": "openai/gpt-4o-mini"})
    assert model.provider == "litellm"
    keyed = streamwrap.load_model(
        {"model_type": "litellm_chat", "model_name": "openai/gpt-4o-mini", "api_key": SECRET}
    )
    assert SECRET not in repr(keyed)


def test_importing_litellm_through_streamwrap_reaches_no_network() -> None:
    # A fresh interpreter without LITELLM_LOCAL_MODEL_COST_MAP: streamwrap must set it
    # before LiteLLM's import, which otherwise fetches its cost map from GitHub.
    code = textwrap.dedent(
        """
        import sys
        seen = []
        sys.addaudithook(lambda e, a: seen.append((e, repr(a)[:120]))
                         if e in ("socket.connect", "socket.getaddrinfo") else None)
        import streamwrap
        streamwrap.load_model({"model_type": "litellm_chat", "model_name": "openai/m"})
        assert "litellm" not in sys.modules, "load_model imported litellm"
        from streamwrap._providers.litellm._library import import_litellm
        import_litellm()
        assert "litellm" in sys.modules
        import os
        print(os.environ.get("LITELLM_LOCAL_MODEL_COST_MAP"), seen)
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "LITELLM_LOCAL_MODEL_COST_MAP"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=90)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "True []"
