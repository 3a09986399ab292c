"""``zhipuai_chat`` (GLM's OpenAI-compatible API) over real HTTP to the emulator: the
recorded GLM streams (../shared/recordings/zhipuai) through the zhipuai_chat type, the
request it sends (no ``stream_options``; GLM parameters in the body), and its key and
endpoint environment variables. ``tests/providers/test_recordings.py`` replays the same bodies
through ``openai_chat``."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import orjson
import pytest

import streamwrap
from streamwrap import ReasoningDelta, TextDelta, ToolCallDelta
from streamwrap._providers.openai._zhipuai import ZhipuAIChatWrapper
from streamwrap.testing import Emulator, Reply, ToolCallSpec
from tests.support import providers
from tests.support import recordings as _recordings

pytestmark = pytest.mark.anyio

API_KEY = "zhipu-test-secret.0123456789abcdef"
KEY_VARS = ("ZHIPUAI_API_KEY", "ZAI_API_KEY")
URL_VARS = ("ZHIPUAI_BASE_URL", "ZAI_BASE_URL")


# Zhipu's recordings, as the provider table (tests/support/recordings.py) routes them.
RECORDED = _recordings.params(
    "meta_path, meta", _recordings.select(provider="zhipuai"), lambda r: (r.meta_path, r.meta), what="Zhipu"
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in KEY_VARS + URL_VARS:
        monkeypatch.delenv(name, raising=False)


def _glm_base(emu: Emulator) -> str:
    return emu.url + "/api/paas/v4"  # GLM's own path layout


make_model = partial(providers.make_model, model_type="zhipuai_chat", api_key=API_KEY)


# -- the recordings ----------------------------------------------------------------------


def test_recordings_are_found(recordings: Path) -> None:
    assert len(RECORDED) == 2
    for param in RECORDED:
        _, meta = param.values
        assert meta["expected"]["usage_carried_by"] == ["with-choices+finish_reason"]


@pytest.mark.parametrize("split", ["event", 7])
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
    response = await model("hi", tools=meta["request"]["body"].get("tools"))

    items = [(item.is_last, item.text_so_far) async for item in response.stream]
    assert [i for i, (is_last, _) in enumerate(items) if is_last] == [len(items) - 1]
    assert items[-1] == (True, expected["text"])
    deltas = [d async for d in response.deltas()]
    assert "".join(d for d in deltas if type(d) is TextDelta) == expected["text"]
    assert "".join(d for d in deltas if type(d) is ReasoningDelta) == expected["reasoning"]
    # Reasoning comes first, then the answer: GLM's order, kept.
    kinds = [type(d) for d in deltas if type(d) is not ToolCallDelta]
    assert kinds == sorted(kinds, key=lambda k: k is TextDelta)

    assert response.text == expected["text"]
    assert response.reasoning == expected["reasoning"]
    assert [(c.id, c.name, c.arguments) for c in response.tool_calls] == [
        (c["id"], c["name"], c["arguments"]) for c in expected["tool_calls"]
    ]
    assert response.finish_reason_raw == expected["finish_reason"]
    assert response.finish_reason == expected["finish_reason"]
    assert response.model == expected["model"]
    assert response.provider_id == expected["id"]
    assert response.provider == "zhipuai"

    # Usage rides on the chunk with the finish reason (no separate choices: [] chunk).
    usage, raw = response.usage, expected["usage"]
    assert usage.source == "provider"
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (
        raw["prompt_tokens"],
        raw["completion_tokens"],
        raw["total_tokens"],
    )
    assert usage.reasoning_tokens == raw["completion_tokens_details"]["reasoning_tokens"]
    assert usage.cached_tokens == raw["prompt_tokens_details"]["cached_tokens"]
    assert dict(usage.raw or {}) == raw

    (request,) = emu.requests
    assert request.path == "/api/paas/v4/chat/completions"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.json["stream"] is True
    assert request.json["model"] == expected["model"]
    # GLM reports usage unasked, so the OpenAI extension is not sent.
    assert "stream_options" not in request.json


# -- the request -------------------------------------------------------------------------


async def test_glm_parameters_go_in_the_body(emu: Emulator) -> None:
    emu.script(Reply(text="4", reasoning="2 + 2", stream_usage=True, usage=(13, 3)))
    model = make_model(emu, generate_args={"thinking": {"type": "enabled"}, "temperature": 0.6})
    response = await model("What is 2 + 2?", do_sample=True, tool_stream=False, max_tokens=100)
    assert await response.aread() == "4"
    assert response.reasoning == "2 + 2"
    assert (response.usage.input_tokens, response.usage.output_tokens, response.usage.source) == (
        13,
        3,
        "provider",
    )
    sent = emu.requests[0].json
    assert sent["thinking"] == {"type": "enabled"}  # top level, via extra_body
    assert sent["do_sample"] is True
    assert sent["tool_stream"] is False
    assert sent["temperature"] == 0.6
    assert sent["max_tokens"] == 100
    assert "stream_options" not in sent
    assert "extra_body" not in sent


async def test_a_server_that_rejects_stream_options_is_asked_once(emu: Emulator) -> None:
    emu.script(Reply(text="ok", reject_stream_options=True))
    response = await make_model(emu)("hi")
    assert await response.aread() == "ok"
    assert len(emu.requests) == 1


async def test_scripted_tool_call_and_reasoning(emu: Emulator) -> None:
    emu.script(
        Reply(
            reasoning=["Need ", "weather."],
            tool_calls=[ToolCallSpec("weather", ['{"location":', '"Florence"}'], id="call_glm_1")],
            stream_usage=True,
            usage=(173, 93),
        )
    )
    response = await make_model(emu)("Weather in Florence?")
    await response.aread()
    assert response.reasoning == "Need weather."
    (call,) = response.tool_calls
    assert (call.id, call.name, call.parsed_arguments()) == (
        "call_glm_1",
        "weather",
        {"location": "Florence"},
    )
    assert response.finish_reason == "tool_calls"
    assert response.usage.total_tokens == 266


async def test_non_streaming_with_reasoning_content(emu: Emulator) -> None:
    body = {
        "id": "2026070107394255",
        "created": 1782000000,
        "model": "glm-4.7",
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": "4", "reasoning_content": "2 + 2 = 4"},
            }
        ],
        "usage": {"prompt_tokens": 13, "completion_tokens": 9, "total_tokens": 22},
    }
    emu.replay(orjson.dumps(body), content_type="application/json; charset=UTF-8", split=None)
    response = await make_model(emu)("What is 2 + 2?", stream=False)
    assert response.text == "4"
    assert response.reasoning == "2 + 2 = 4"
    assert response.provider_id == "2026070107394255"
    assert (response.usage.input_tokens, response.usage.output_tokens) == (13, 9)
    assert emu.requests[0].json["stream"] is False


@pytest.mark.parametrize(
    ("status", "error", "error_class"),
    [
        (401, {"code": "1000", "message": "身份验证失败。"}, streamwrap.AuthenticationError),
        # (GLM's messages are Chinese, with a full-width comma.)
        (400, {"code": "1211", "message": "模型不存在\uff0c请检查模型代码。"}, streamwrap.ProviderHTTPError),
        (429, {"code": "1302", "message": "您当前使用该API的并发数过高"}, streamwrap.RateLimitError),
    ],
)
async def test_http_errors_are_typed(
    emu: Emulator, status: int, error: dict[str, str], error_class: type
) -> None:
    emu.replay(orjson.dumps({"error": error}), status=status, content_type="application/json")
    with pytest.raises(error_class) as info:
        await make_model(emu)("hi")
    err = info.value
    assert type(err) is error_class
    assert (err.status_code, err.provider, err.message) == (status, "zhipuai", error["message"])
    assert API_KEY not in str(err) + repr(err)


# -- configuration -----------------------------------------------------------------------


def test_class_attributes() -> None:
    cls = ZhipuAIChatWrapper
    assert (cls.model_type, cls.provider, cls.extra) == ("zhipuai_chat", "zhipuai", "zhipuai")
    assert cls.api_key_env == KEY_VARS
    assert cls.base_url_env == URL_VARS
    assert cls.default_base_url == "https://open.bigmodel.cn/api/paas/v4"
    assert not cls.api_key_optional


def test_no_key_names_both_variables() -> None:
    with pytest.raises(streamwrap.ConfigError) as info:
        streamwrap.load_model({"model_type": "zhipuai_chat", "model_name": "glm-4.7"})
    assert "ZHIPUAI_API_KEY" in str(info.value) and "ZAI_API_KEY" in str(info.value)


def test_default_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZHIPUAI_API_KEY", API_KEY)
    model = streamwrap.load_model({"model_type": "zhipuai_chat", "model_name": "glm-4.7"})
    assert model.base_url is None
    assert model._endpoint() == "https://open.bigmodel.cn/api/paas/v4"
    assert API_KEY not in repr(model)


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"ZHIPUAI_API_KEY": "zhipu-key"}, "zhipu-key"),
        ({"ZAI_API_KEY": "zai-key"}, "zai-key"),
        ({"ZHIPUAI_API_KEY": "zhipu-key", "ZAI_API_KEY": "zai-key"}, "zhipu-key"),
    ],
)
async def test_key_from_the_environment(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], key: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    model = streamwrap.load_model(
        {"model_type": "zhipuai_chat", "model_name": "glm-4.7", "base_url": _glm_base(emu), "max_retries": 0}
    )
    emu.script(Reply(text="ok"))
    assert await (await model("hi")).aread() == "ok"
    assert emu.requests[0].headers["authorization"] == f"Bearer {key}"


@pytest.mark.parametrize("var", URL_VARS)
async def test_base_url_from_the_environment(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch, var: str
) -> None:
    monkeypatch.setenv(var, _glm_base(emu))
    monkeypatch.setenv("ZAI_API_KEY", API_KEY)
    model = streamwrap.load_model({"model_type": "zhipuai_chat", "model_name": "glm-4.7", "max_retries": 0})
    assert model.base_url == _glm_base(emu)
    emu.script(Reply(text="ok"))
    assert await (await model("hi")).aread() == "ok"
    assert emu.requests[0].path == "/api/paas/v4/chat/completions"
