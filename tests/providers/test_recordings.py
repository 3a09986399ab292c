"""Real provider traffic (../shared/recordings) replayed through the real ``openai_chat``
wrapper: the openai SDK sends the request over HTTP to the emulator, which serves the
recorded body byte for byte; the parsed response must equal the recording's ``expected``.

Only OpenAI-wire-format recordings are replayed here, as the provider table in
``tests/support/recordings.py`` routes them: OpenAI, Azure OpenAI, DeepSeek, Groq, OpenRouter, Zhipu and
DashScope's ``compat_*`` (compatible-mode) bodies. DashScope native, Gemini and Ollama have
their own test modules; the providers with no wrapper yet are skipped in
``test_decoder_properties.py``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

import streamwrap
from streamwrap import ReasoningDelta, TextDelta, ToolCallDelta
from streamwrap.testing import Emulator
from tests.support import recordings as _recordings

pytestmark = pytest.mark.anyio

API_KEY = "sk-test-secret-key-0123456789"  # the `model` fixture's key
NORMALISED = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "content_filter": "content_filter",
}
SPLITS = ["event", 7]

# Every OpenAI-wire recording, as the provider table (tests/support/recordings.py) routes them.
_ALL = _recordings.select(wire=_recordings.OPENAI, status=None)
_STREAMED = [r for r in _ALL if r.status == 200]
STREAMING = _recordings.params(
    "meta_path, meta", _STREAMED, lambda r: (r.meta_path, r.meta), what="OpenAI-wire"
)
ERROR_RECORDING = ("openai", "error_401_invalid_api_key")


def _content_type(meta: dict[str, Any]) -> str:
    return _recordings.content_type(meta)


async def _replay(
    emu: Emulator, model: Any, meta_path: Path, meta: dict[str, Any], split: str | int | None
) -> streamwrap.ModelResponse:
    emu.replay(
        _recordings.body(meta_path, meta),
        status=meta["response"]["status"],
        content_type=_content_type(meta),
        split=split,
    )
    response = await model("hi")
    assert isinstance(response, streamwrap.ModelResponse)
    return response


async def _stream_items(response: streamwrap.ModelResponse) -> list[tuple[bool, str]]:
    items = []
    async for item in response.stream:
        assert isinstance(item, streamwrap.StreamChunk)
        items.append((item.is_last, item.text_so_far))
    return items


async def _deltas(response: streamwrap.ModelResponse) -> list[Any]:
    return [d async for d in response.deltas()]


def _joined(deltas: Sequence[Any], kind: type) -> str:
    return "".join(d for d in deltas if type(d) is kind)


# -- discovery --------------------------------------------------------------------------


def test_discovery_selects_the_openai_wire_recordings(recordings: Path) -> None:
    assert recordings == _recordings.RECORDINGS
    providers = {r.provider for r in _ALL}
    assert providers == {"openai", "azure", "deepseek", "groq", "openrouter", "zhipuai", "dashscope"}
    names = {(r.provider, r.name) for r in _ALL}
    assert not any(name.startswith("native_") for _, name in names)
    assert ERROR_RECORDING in names
    assert len(_STREAMED) >= 13
    for recording in _STREAMED:
        assert recording.meta["body_file"].endswith(".sse")
        assert "chat.completions SSE" in recording.meta["wire_format"]
        assert set(recording.expected) >= {
            "text",
            "reasoning",
            "tool_calls",
            "finish_reason",
            "usage",
            "model",
            "id",
        }


# -- streaming recordings ---------------------------------------------------------------


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize(("meta_path", "meta"), STREAMING)
async def test_recording_replays_to_expected(
    emu: Emulator, model: Any, recordings: Path, meta_path: Path, meta: dict[str, Any], split: str | int
) -> None:
    expected = meta["expected"]
    response = await _replay(emu, model, meta_path, meta, split)

    # The stream contract, consumed live: cumulative prefixes, exactly one is_last item,
    # the last, carrying the full text.
    items = await _stream_items(response)
    assert items, "response.stream yielded nothing"
    assert [i for i, (is_last, _) in enumerate(items) if is_last] == [len(items) - 1]
    assert items[-1] == (True, expected["text"])
    previous = ""
    for _, text_so_far in items:
        assert text_so_far.startswith(previous)
        previous = text_so_far
    # A second iteration replays the identical sequence.
    assert await _stream_items(response) == items

    # The raw deltas: the same response, piece by piece.
    deltas = await _deltas(response)
    assert all(type(d) in (TextDelta, ReasoningDelta, ToolCallDelta) for d in deltas)
    assert _joined(deltas, TextDelta) == expected["text"]
    assert _joined(deltas, ReasoningDelta) == (expected["reasoning"] or "")
    # Every non-last stream item is the running concatenation of the text deltas.
    running, prefixes = "", []
    for d in deltas:
        if type(d) is TextDelta:
            running += d
            prefixes.append(running)
    assert [text for _, text in items[:-1]] == prefixes
    tool_deltas = [d for d in deltas if type(d) is ToolCallDelta]
    for call in expected["tool_calls"]:
        pieces = [d.arguments for d in tool_deltas if d.index == call["index"]]
        assert "".join(pieces) == call["arguments"]
    assert response.chunk_count == len(deltas)
    assert await _deltas(response) == deltas

    # The final fields.
    assert response.done
    assert response.error is None
    assert response.text == expected["text"]
    assert response.reasoning == expected["reasoning"]
    calls = response.tool_calls
    assert [(c.id, c.name, c.arguments) for c in calls] == [
        (c["id"], c["name"], c["arguments"]) for c in expected["tool_calls"]
    ]
    for call in calls:
        assert isinstance(call.parsed_arguments(), dict)
    assert response.finish_reason_raw == expected["finish_reason"]
    assert response.finish_reason == NORMALISED[expected["finish_reason"]]
    assert response.model == expected["model"]
    assert response.provider_id == expected["id"]
    assert response.provider == "openai"
    _check_usage(response.usage, expected["usage"])

    requests = emu.requests
    assert len(requests) == 1
    assert requests[0].json["stream"] is True


def _check_usage(usage: streamwrap.Usage, expected: dict[str, Any] | None) -> None:
    if expected is None:
        # Nothing reported: a local estimate, marked as such, never a silent 0 or None.
        assert usage.source == "estimated"
        for count in (usage.input_tokens, usage.output_tokens, usage.total_tokens):
            assert type(count) is int
            assert count > 0
        assert usage.total_tokens == usage.input_tokens + usage.output_tokens
        return
    assert usage.source == "provider"
    assert usage.input_tokens == expected["prompt_tokens"]
    assert usage.output_tokens == expected["completion_tokens"]
    assert usage.total_tokens == expected["total_tokens"]
    assert (usage.prompt_tokens, usage.completion_tokens) == (usage.input_tokens, usage.output_tokens)
    completion_details = expected.get("completion_tokens_details") or {}
    if "reasoning_tokens" in completion_details:
        assert usage.reasoning_tokens == completion_details["reasoning_tokens"]
    else:
        assert usage.reasoning_tokens is None  # unknown stays None, never 0
    prompt_details = expected.get("prompt_tokens_details") or {}
    if "cached_tokens" in prompt_details:
        assert usage.cached_tokens == prompt_details["cached_tokens"]
    elif "prompt_cache_hit_tokens" in expected:  # DeepSeek's own name
        assert usage.cached_tokens == expected["prompt_cache_hit_tokens"]
    else:
        assert usage.cached_tokens is None
    # The provider's own usage object is kept as sent.
    assert usage.raw is not None
    assert dict(usage.raw) == expected


@pytest.mark.parametrize(("meta_path", "meta"), STREAMING)
async def test_recording_result_does_not_depend_on_how_the_body_is_cut(
    emu: Emulator, model: Any, recordings: Path, meta_path: Path, meta: dict[str, Any]
) -> None:
    snapshots = []
    for split in ("event", 7, "line", 64, None):
        response = await _replay(emu, model, meta_path, meta, split)
        items = await _stream_items(response)
        deltas = await _deltas(response)
        snapshots.append(
            {
                "items": items,
                "deltas": [(type(d).__name__, d) for d in deltas],
                "text": response.text,
                "reasoning": response.reasoning,
                "tool_calls": [(c.id, c.name, c.arguments, c.index) for c in response.tool_calls],
                "finish_reason_raw": response.finish_reason_raw,
                "finish_reason": response.finish_reason,
                "usage": response.usage,
                "model": response.model,
                "provider_id": response.provider_id,
            }
        )
    first = snapshots[0]
    assert first["text"] == meta["expected"]["text"]
    for other in snapshots[1:]:
        assert other == first


# Azure OpenAI's newer endpoint takes a plain OpenAI client: base_url <resource>/openai/v1.
AZURE_V1 = _recordings.params(
    "meta_path, meta",
    [r for r in _STREAMED if r.provider == "azure" and r.meta["request"]["path"].startswith("/openai/v1/")],
    lambda r: (r.meta_path, r.meta),
    what="Azure /openai/v1/",
)


@pytest.mark.parametrize(("meta_path", "meta"), AZURE_V1)
async def test_azure_v1_recording_through_openai_chat_at_the_recorded_path(
    emu: Emulator, meta_path: Path, meta: dict[str, Any]
) -> None:
    recorded_request = meta["request"]
    model = streamwrap.load_model(
        {
            "model_type": "openai_chat",
            "model_name": recorded_request["body"]["model"],
            "stream": True,
            "base_url": emu.url + "/openai/v1",
            "api_key": API_KEY,
            "max_retries": 0,
        }
    )
    emu.replay(_recordings.body(meta_path, meta), content_type=_content_type(meta))
    response = await model("Say hi in Portuguese")
    expected = meta["expected"]
    assert await response.aread() == expected["text"]
    assert (response.provider_id, response.model) == (expected["id"], expected["model"])
    assert response.finish_reason_raw == expected["finish_reason"]
    _check_usage(response.usage, expected["usage"])
    (request,) = emu.requests
    assert request.path == recorded_request["path"]
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.json["model"] == recorded_request["body"]["model"]


# -- the HTTP error recording -----------------------------------------------------------


def _error_recording() -> tuple[Path, dict[str, Any]]:
    recording = _recordings.named("/".join(ERROR_RECORDING))
    return recording.meta_path, recording.meta


@pytest.mark.parametrize("split", SPLITS)
async def test_error_401_recording_raises_authentication_error(
    emu: Emulator, model: Any, recordings: Path, split: str | int
) -> None:
    meta_path, meta = _error_recording()
    assert meta["response"]["status"] == 401
    recorded = json.loads(_recordings.body(meta_path, meta))
    assert recorded == meta["expected"]["error_body_json"]
    with pytest.raises(streamwrap.AuthenticationError) as info:
        await _replay(emu, model, meta_path, meta, split)
    err = info.value
    assert isinstance(err, streamwrap.ProviderHTTPError)
    assert isinstance(err, streamwrap.ProviderError)
    assert err.status_code == 401
    assert err.provider == "openai"
    assert err.retry_after is None
    # The whole parsed body as the server sent it (not only its inner "error" member).
    assert err.body == recorded
    assert "Incorrect API key" in err.message
    assert "Incorrect API key" in str(err)
    assert "401" in str(err)
    for shown in (str(err), repr(err), repr(err.body)):
        assert API_KEY not in shown
    # 401 is not worth retrying: one request, and the model fixture has max_retries=0 anyway.
    assert len(emu.requests) == 1


async def test_error_401_recording_that_echoes_the_key_is_scrubbed(
    emu: Emulator, model: Any, recordings: Path
) -> None:
    # Some compatible servers echo the key they were sent in full; OpenAI masks it itself
    # ("invalid-*****2345"). Put the fixture's key where the masked one was.
    meta_path, meta = _error_recording()
    body = _recordings.body(meta_path, meta)
    assert b"invalid-*****2345" in body
    emu.replay(
        body.replace(b"invalid-*****2345", API_KEY.encode()),
        status=401,
        content_type=_content_type(meta),
    )
    with pytest.raises(streamwrap.AuthenticationError) as info:
        await model("hi")
    err = info.value
    assert "Incorrect API key provided: " in err.message
    for shown in (str(err), repr(err), err.message, repr(err.body)):
        assert API_KEY not in shown
