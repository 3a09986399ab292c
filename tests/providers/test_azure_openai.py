"""``azure_openai_chat`` (Azure OpenAI's deployment endpoints) over real HTTP to the
emulator: the recorded Azure streams of the deployment style
(``/openai/deployments/{deployment}/chat/completions?api-version=...``) through the
azure_openai_chat type at the recorded path, cut per event, in 7-byte and in 1-byte pieces;
the request it sends (the ``api-key`` header, ``api-version``, a Microsoft Entra ID token);
Azure's environment variables; and its content filters (the 400 that blocks a prompt, the
``content_filter`` finish of a reply). The ``/openai/v1/`` recordings are replayed through
``openai_chat`` in ``tests/providers/test_recordings.py``."""

from __future__ import annotations

import io
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest

import streamwrap
from streamwrap import ReasoningDelta, TextDelta, ToolCallDelta
from streamwrap._providers._default_model import ENV_PROVIDERS, model_from_environment
from streamwrap._providers.openai._azure import DEFAULT_API_VERSION, AzureOpenAIChatWrapper
from streamwrap.testing import Emulator, Reply
from tests.support import providers
from tests.support import recordings as _recordings

pytestmark = pytest.mark.anyio

API_KEY = "azure-test-secret-0123456789abcdef"
ENV_VARS = ("AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_API_KEY", "OPENAI_API_VERSION", "AZURE_OPENAI_AD_TOKEN")

# Azure's recordings of the deployment style (the /openai/v1/ ones take openai_chat).
DEPLOYMENT_STYLE = [
    r
    for r in _recordings.select(provider="azure")
    if r.meta["request"]["path"].startswith("/openai/deployments/")
]
RECORDED = _recordings.params(
    "meta_path, meta", DEPLOYMENT_STYLE, lambda r: (r.meta_path, r.meta), what="Azure deployment-style"
)

# Azure's answer to a prompt its input filter blocks (the shape of the service's 400).
CONTENT_FILTER_ERROR: dict[str, Any] = {
    "message": (
        "The response was filtered due to the prompt triggering Azure OpenAI's content management"
        " policy. Please modify your prompt and retry."
    ),
    "type": None,
    "param": "prompt",
    "code": "content_filter",
    "status": 400,
    "innererror": {
        "code": "ResponsibleAIPolicyViolation",
        "content_filter_result": {
            "hate": {"filtered": False, "severity": "safe"},
            "jailbreak": {"filtered": False, "detected": False},
            "self_harm": {"filtered": False, "severity": "safe"},
            "sexual": {"filtered": True, "severity": "medium"},
            "violence": {"filtered": False, "severity": "safe"},
        },
    },
}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


make_model = partial(providers.make_model, model_type="azure_openai_chat", api_key=API_KEY)


# -- the recordings ----------------------------------------------------------------------


def test_deployment_style_recordings_are_found(recordings: Path) -> None:
    assert len(DEPLOYMENT_STYLE) == 2
    for recording in DEPLOYMENT_STYLE:
        assert recording.wire == _recordings.OPENAI  # the shared OpenAI mapper decodes them
        assert recording.expected["chunks_with_empty_choices"] >= 1


@pytest.mark.parametrize("split", ["event", 7, 1])
@pytest.mark.parametrize(("meta_path", "meta"), RECORDED)
async def test_recording_replays_to_expected(
    emu: Emulator, recordings: Path, meta_path: Path, meta: dict[str, Any], split: str | int
) -> None:
    expected, recorded = meta["expected"], meta["request"]
    recorded_path = urlsplit(recorded["path"])
    deployment = recorded_path.path.split("/")[3]
    api_version = parse_qs(recorded_path.query)["api-version"][0]
    emu.replay(
        _recordings.body(meta_path, meta),
        status=meta["response"]["status"],
        content_type=_recordings.content_type(meta),
        split=split,
    )
    model = make_model(emu, model_name=deployment, api_version=api_version)
    response = await model("hi", tools=recorded["body"].get("tools"))

    items = [(item.is_last, item.text_so_far) async for item in response.stream]
    assert [i for i, (is_last, _) in enumerate(items) if is_last] == [len(items) - 1]
    assert items[-1] == (True, expected["text"])
    deltas = [d async for d in response.deltas()]
    assert "".join(d for d in deltas if type(d) is TextDelta) == expected["text"]
    assert not [d for d in deltas if type(d) is ReasoningDelta]
    for call in expected["tool_calls"]:
        pieces = [d.arguments for d in deltas if type(d) is ToolCallDelta and d.index == call["index"]]
        assert "".join(pieces) == call["arguments"]

    assert response.error is None
    assert response.text == expected["text"]
    assert [(c.id, c.name, c.arguments) for c in response.tool_calls] == [
        (c["id"], c["name"], c["arguments"]) for c in expected["tool_calls"]
    ]
    assert response.finish_reason_raw == expected["finish_reason"]
    assert response.finish_reason == expected["finish_reason"]
    # The first chunk's empty id and model are not taken: the first chunk naming them is.
    assert (response.provider_id, response.model) == (expected["id"], expected["model"])
    assert response.provider == "azure_openai"
    usage, raw = response.usage, expected["usage"]
    if raw is None:
        assert usage.source == "estimated"
    else:
        assert usage.source == "provider"
        assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (
            raw["prompt_tokens"],
            raw["completion_tokens"],
            raw["total_tokens"],
        )
        assert dict(usage.raw or {}) == raw

    (request,) = emu.requests
    assert request.path == recorded["path"]
    assert request.headers["api-key"] == API_KEY
    assert "authorization" not in request.headers
    assert request.json["stream"] is True


# -- the request -------------------------------------------------------------------------


async def test_the_request_goes_to_the_deployment_with_api_version_and_api_key(emu: Emulator) -> None:
    emu.script(Reply(text="Hello there", usage=(5, 2)))
    response = await make_model(emu, model_name="my-gpt-4o", generate_args={"temperature": 0.2})("hi")
    assert await response.aread() == "Hello there"
    assert (response.usage.input_tokens, response.usage.output_tokens, response.usage.source) == (
        5,
        2,
        "provider",
    )
    (request,) = emu.requests
    assert request.path == f"/openai/deployments/my-gpt-4o/chat/completions?api-version={DEFAULT_API_VERSION}"
    assert request.headers["api-key"] == API_KEY
    assert "authorization" not in request.headers
    assert request.json["temperature"] == 0.2
    assert request.json["stream_options"] == {"include_usage": True}


async def test_azure_environment_variables(emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", emu.url)
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv("OPENAI_API_VERSION", "2025-04-01-preview")
    emu.script(Reply(text="ok"))
    model = streamwrap.load_model({"model_type": "azure_openai_chat", "model_name": "dep", "stream": True})
    assert isinstance(model, AzureOpenAIChatWrapper)
    assert await (await model("hi")).aread() == "ok"
    (request,) = emu.requests
    assert request.path == "/openai/deployments/dep/chat/completions?api-version=2025-04-01-preview"
    assert request.headers["api-key"] == API_KEY


async def test_api_version_in_the_config_wins_over_the_environment(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_VERSION", "2025-04-01-preview")
    emu.script(Reply(text="ok"))
    await (await make_model(emu, api_version="2024-06-01")("hi")).aread()
    assert emu.requests[0].path.endswith("?api-version=2024-06-01")


async def test_an_entra_id_token_provider_instead_of_a_key(emu: Emulator) -> None:
    calls: list[int] = []

    async def token_provider() -> str:
        calls.append(1)
        return "entra-token-0123456789"

    emu.script(Reply(text="ok"), Reply(text="again"))
    model = make_model(emu, api_key=None, client_args={"azure_ad_token_provider": token_provider})
    assert await (await model("hi")).aread() == "ok"
    assert await (await model("hi")).aread() == "again"
    assert len(calls) == 2  # asked on every request, so that a refreshed token is used
    for request in emu.requests:
        assert request.headers["authorization"] == "Bearer entra-token-0123456789"
        assert "api-key" not in request.headers


async def test_an_entra_id_token_from_the_environment(emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_OPENAI_AD_TOKEN", "entra-env-token-0123456789")
    emu.script(Reply(text="ok"))
    assert await (await make_model(emu, api_key=None)("hi")).aread() == "ok"
    assert emu.requests[0].headers["authorization"] == "Bearer entra-env-token-0123456789"
    assert "api-key" not in emu.requests[0].headers


async def test_non_streaming(emu: Emulator) -> None:
    emu.script(Reply(text="four words of text"))
    response = await make_model(emu)("hi", stream=False)
    assert response.text == "four words of text"
    assert response.finish_reason == "stop"
    assert emu.requests[0].json["stream"] is False


# -- config errors -----------------------------------------------------------------------


def test_no_endpoint_is_a_config_error() -> None:
    with pytest.raises(streamwrap.ConfigError) as info:
        streamwrap.load_model({"model_type": "azure_openai_chat", "model_name": "dep", "api_key": API_KEY})
    assert info.value.key == "base_url"
    assert "AZURE_OPENAI_ENDPOINT" in str(info.value)


def test_no_key_and_no_token_is_a_config_error() -> None:
    config = {
        "model_type": "azure_openai_chat",
        "model_name": "dep",
        "base_url": "https://r.openai.azure.com",
    }
    with pytest.raises(streamwrap.ConfigError) as info:
        streamwrap.load_model(config)
    assert info.value.key == "api_key"
    assert "AZURE_OPENAI_API_KEY" in str(info.value)
    assert "azure_ad_token_provider" in str(info.value)
    assert "AZURE_OPENAI_AD_TOKEN" in str(info.value)


def test_api_version_must_be_a_string() -> None:
    with pytest.raises(streamwrap.ConfigError) as info:
        streamwrap.load_model(
            {
                "model_type": "azure_openai_chat",
                "model_name": "dep",
                "base_url": "https://r.openai.azure.com",
                "api_key": API_KEY,
                "api_version": 2024,
            }
        )
    assert info.value.key == "api_version"


def test_api_version_is_not_a_key_of_other_wrappers() -> None:
    with pytest.raises(streamwrap.ConfigError) as info:
        streamwrap.load_model(
            {"model_type": "openai_chat", "model_name": "m", "api_key": API_KEY, "api_version": "2024-10-21"}
        )
    assert info.value.key == "api_version"


# -- content filters ---------------------------------------------------------------------


async def test_a_prompt_blocked_by_the_content_filter_raises_content_filter_error(emu: Emulator) -> None:
    emu.script(Reply(status=400, error=CONTENT_FILTER_ERROR))
    with pytest.raises(streamwrap.ContentFilterError) as info:
        await make_model(emu, max_retries=2)("something the filter blocks")
    err = info.value
    assert isinstance(err, streamwrap.ProviderHTTPError)
    assert err.status_code == 400
    assert err.provider == "azure_openai"
    assert "content management policy" in err.message
    assert "content filter" in str(err)
    assert err.body == {"error": CONTENT_FILTER_ERROR}
    assert err.body["error"]["innererror"]["content_filter_result"]["sexual"]["filtered"] is True
    assert len(emu.requests) == 1  # a 400 is not retried


async def test_openai_chat_on_the_v1_endpoint_also_raises_content_filter_error(emu: Emulator) -> None:
    # Azure's /openai/v1/ endpoint is reached through openai_chat with a base_url; its
    # filter answers with the same 400, and the same typed error comes out.
    emu.script(Reply(status=400, error=CONTENT_FILTER_ERROR))
    with pytest.raises(streamwrap.ContentFilterError) as info:
        await providers.make_model(emu, model_type="openai_chat", api_key=API_KEY)("blocked")
    assert info.value.provider == "openai"
    assert info.value.body == {"error": CONTENT_FILTER_ERROR}


async def test_another_400_stays_a_plain_provider_http_error(emu: Emulator) -> None:
    emu.script(Reply(status=400))
    with pytest.raises(streamwrap.ProviderHTTPError) as info:
        await make_model(emu)("hi")
    assert type(info.value) is streamwrap.ProviderHTTPError


async def test_a_reply_stopped_by_the_content_filter_keeps_its_partial_text(emu: Emulator) -> None:
    emu.script(Reply(text=["Once ", "upon ", "a "], finish_reason="content_filter"))
    response = await make_model(emu)("tell me a story")
    items = [item.text_so_far async for item in response.stream]
    assert items[-1] == "Once upon a "
    assert response.error is None
    assert response.finish_reason == "content_filter"
    assert response.finish_reason_raw == "content_filter"


async def test_a_first_chunk_without_choices_and_filter_results_on_every_chunk(emu: Emulator) -> None:
    filters = {"hate": {"filtered": False, "severity": "safe"}}
    events = [
        {
            "choices": [],
            "created": 0,
            "id": "",
            "model": "",
            "object": "",
            "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": filters}],
        },
        {
            "id": "chatcmpl-az",
            "model": "gpt-4o-mini",
            "object": "chat.completion.chunk",
            "choices": [
                {
                    "index": 0,
                    "delta": {"role": "assistant", "content": "Hi"},
                    "content_filter_results": filters,
                }
            ],
        },
        {
            "id": "chatcmpl-az",
            "model": "gpt-4o-mini",
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop", "content_filter_results": {}}],
        },
    ]
    body = b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in events) + b"data: [DONE]\n\n"
    emu.replay(body)
    response = await make_model(emu)("hi")
    assert await response.aread() == "Hi"
    assert (response.provider_id, response.model) == ("chatcmpl-az", "gpt-4o-mini")


# -- the command line's automatic choice ---------------------------------------------------


def test_streamwrap_chat_picks_azure_from_its_environment_variables(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable, _ in ENV_PROVIDERS:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.delenv("STREAMWRAP_MODEL", raising=False)
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", emu.url)
    chosen = model_from_environment(io.StringIO(), chat=True)
    assert chosen is not None
    model, source = chosen
    assert isinstance(model, AzureOpenAIChatWrapper)
    assert source == "$AZURE_OPENAI_API_KEY"
    assert (model.model_name, model.base_url) == ("gpt-4o-mini", emu.url)

    monkeypatch.setenv("STREAMWRAP_MODEL", "my-deployment")
    chosen = model_from_environment(io.StringIO(), chat=True)
    assert chosen is not None and chosen[0].model_name == "my-deployment"
