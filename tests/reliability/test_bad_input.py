"""Bad input of every kind, for every ``model_type``: a clear typed error, never a bare
``KeyError``/``AttributeError``/``TypeError`` from deep inside, never a hang.

- config dicts: wrong types for each uniform key, unknown keys (with the closest accepted
  spelling), call parameters put at the top level, unknown or non-string ``model_type``,
  empty or non-string ``model_name`` (test_config.py has the openai_chat cases this
  generalises, the registry and files);
- call input: empty prompts, messages of the wrong shape, invalid tool schemas, call
  arguments of the wrong type; each raises before anything is sent (the model points at
  a port where nothing listens: reaching the network would be a ProviderConnectionError);
- bytes from a server that are not the protocol (invalid UTF-8, not JSON, cut JSON, JSON
  of the wrong shape), replayed by the emulator after some text through each wrapper: a
  :class:`StreamError` that keeps the text that came before.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Callable
from typing import Any

import anyio
import orjson
import pytest

import streamwrap
from streamwrap.testing import Emulator, Reply
from tests.support import providers

pytestmark = pytest.mark.anyio


# The smallest valid config of each built-in model_type (a row of the provider table).
BASE: dict[str, dict[str, Any]] = {
    t: {"model_name": p.model_name, **({"api_key": "sk-test"} if p.needs_key else {})}
    for t, p in providers.PROVIDERS.items()
}
MODEL_TYPES = [t for t in streamwrap.model_types() if t in BASE]


def config(model_type: str, **overrides: Any) -> dict[str, Any]:
    return {"model_type": model_type, **BASE[model_type], **overrides}


def config_error(cfg: Any) -> streamwrap.ConfigError:
    with pytest.raises(streamwrap.StreamwrapError) as info:
        streamwrap.load_model(cfg)
    assert type(info.value) is streamwrap.ConfigError, repr(info.value)
    return info.value


def test_every_built_in_model_type_is_in_the_table() -> None:
    assert set(BASE) <= set(streamwrap.model_types())


# -- config dicts ---------------------------------------------------------------------------

# (key, a wrong value) for every key every wrapper accepts.
WRONG_VALUES: list[tuple[str, Any]] = [
    ("config_name", 5),
    ("config_name", ""),
    ("stream", "yes"),
    ("stream", 1),
    ("api_key", 12345678),
    ("api_key", ["sk-test"]),
    ("base_url", 5),
    ("base_url", [""]),
    ("client_args", []),
    ("client_args", "proxy=x"),
    ("client_args", {1: "a"}),
    ("generate_args", []),
    ("generate_args", "temperature=0"),
    ("generate_args", {1: "a"}),
    ("generate_args", {"stream": True}),
    ("generate_args", {"model": "other"}),
    ("generate_args", {"messages": []}),
    ("max_retries", -1),
    ("max_retries", 1.5),
    ("max_retries", True),
    ("max_retries", "2"),
    ("timeout", 0),
    ("timeout", -1.0),
    ("timeout", "30"),
    ("timeout", True),
    ("timeout", math.inf),
    ("first_token_timeout", math.nan),
    ("first_token_timeout", "5"),
    ("idle_timeout", 0.0),
    ("idle_timeout", [1]),
    ("model_name", ""),
    ("model_name", "   "),
    ("model_name", 5),
    ("model_name", None),
    ("model_name", ["m"]),
]


@pytest.mark.parametrize("model_type", MODEL_TYPES)
@pytest.mark.parametrize(("key", "value"), WRONG_VALUES, ids=[f"{k}={v!r}" for k, v in WRONG_VALUES])
def test_a_wrong_value_names_its_key(model_type: str, key: str, value: Any) -> None:
    err = config_error(config(model_type, **{key: value}))
    assert err.key == key
    assert key in str(err)
    if key == "api_key":
        assert str(value) not in str(err)  # a key of the wrong type is still not shown


@pytest.mark.parametrize("model_type", MODEL_TYPES)
@pytest.mark.parametrize(
    ("typo", "meant"),
    [
        ("strem", "stream"),
        ("Stream", "stream"),
        ("api-key", "api_key"),
        ("baseurl", "base_url"),
        ("max_retry", "max_retries"),
        ("genrate_args", "generate_args"),
        ("timout", "timeout"),
        ("idle-timeout", "idle_timeout"),
        ("clientargs", "client_args"),
    ],
)
def test_an_unknown_key_suggests_the_accepted_one(model_type: str, typo: str, meant: str) -> None:
    err = config_error(config(model_type, **{typo: 1}))
    assert (err.key, err.suggestion) == (typo, meant)
    assert meant in err.accepted and "model_name" in err.accepted
    assert f"unknown key {typo!r}" in str(err) and f"Did you mean {meant!r}?" in str(err)


@pytest.mark.parametrize(
    ("model_type", "typo", "meant"),
    [
        ("gemini_chat", "api_verison", "api_version"),
        ("vertex_gemini_chat", "projcet", "project"),
        ("vertex_gemini_chat", "locaton", "location"),
        ("anthropic_chat", "anthropic_verison", "anthropic_version"),
        ("local_chat", "nctx", "n_ctx"),
        ("local_chat", "chat-format", "chat_format"),
    ],
)
def test_a_wrapper_s_own_keys_are_suggested_too(model_type: str, typo: str, meant: str) -> None:
    err = config_error(config(model_type, **{typo: 1}))
    assert err.suggestion == meant


@pytest.mark.parametrize("model_type", MODEL_TYPES)
@pytest.mark.parametrize("key", ["temperature", "max_tokens", "top_p", "stop", "tools"])
def test_a_call_parameter_at_the_top_level_points_to_generate_args(model_type: str, key: str) -> None:
    err = config_error(config(model_type, **{key: 1}))
    assert err.key == key and err.suggestion is None
    assert "go in 'generate_args'" in str(err)


@pytest.mark.parametrize(
    ("model_type", "meant"),
    [
        ("openai_chta", "openai_chat"),
        ("OpenAI_Chat", "openai_chat"),
        ("openai-chat", "openai_chat"),
        ("openai", "openai_chat"),
        ("gemini", "gemini_chat"),
        ("anthropic", "anthropic_chat"),
        ("zhipu", "zhipuai_chat"),
        ("dashscope", "dashscope_chat"),
        ("ollama_cht", "ollama_chat"),
        ("local", "local_chat"),
        ("no-such-provider", None),
    ],
)
def test_an_unknown_model_type_lists_the_accepted_ones(model_type: str, meant: str | None) -> None:
    err = config_error({"model_type": model_type, "model_name": "m", "api_key": "k"})
    assert err.key == "model_type" and err.suggestion == meant
    assert set(BASE) <= set(err.accepted)


@pytest.mark.parametrize("model_type", [None, 5, ["openai_chat"], {"openai_chat": 1}, ""])
def test_a_missing_or_non_string_model_type(model_type: Any) -> None:
    cfg = {"model_name": "m", "api_key": "k"}
    if model_type is not None:
        cfg["model_type"] = model_type
    err = config_error(cfg)
    assert err.key == "model_type" and "openai_chat" in err.accepted


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_a_missing_model_name(model_type: str) -> None:
    cfg = config(model_type)
    del cfg["model_name"]
    assert config_error(cfg).key == "model_name"


@pytest.mark.parametrize("cfg", [None, "openai_chat", ["openai_chat"], 5, b"{}"], ids=repr)
def test_a_config_that_is_not_a_dict(cfg: Any) -> None:
    assert "must be a dict" in str(config_error(cfg))


# -- call input ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nowhere() -> str:
    """The root URL of a server that is gone: nothing listens on its port."""
    with Emulator() as gone:
        return gone.url


def make_model(model_type: str, root: str, **overrides: Any) -> Any:
    try:
        return providers.make_model(root, model_type, **(BASE[model_type] | overrides))
    except streamwrap.MissingDependencyError as exc:
        pytest.skip(str(exc))


async def call_error(model: Any, prompt: Any, /, **kwargs: Any) -> streamwrap.StreamwrapError:
    """The error ``await model(...)`` raises, within a few seconds (never a hang)."""
    with anyio.fail_after(20), pytest.raises(Exception) as info:
        await model(prompt, **kwargs)
    err = info.value
    assert isinstance(err, streamwrap.StreamwrapError), f"not a typed error: {err!r}"
    return err


EMPTY_PROMPTS = ["", "   ", "\n\t", []]
WRONG_PROMPTS: list[Any] = [
    42,
    None,
    b"hello",
    3.5,
    {"content": "no role"},
    [{"role": "wizard", "content": "x"}],
    [{"role": "user"}],
    [{"role": "user", "content": 3}],
    [{"role": "user", "content": {"text": "x"}}],
    ["hello"],
    [None],
    [[{"role": "user", "content": "x"}]],
    [{"role": None, "content": "x"}],
]


@pytest.mark.parametrize("model_type", MODEL_TYPES)
@pytest.mark.parametrize("prompt", EMPTY_PROMPTS + WRONG_PROMPTS, ids=repr)
async def test_empty_or_malformed_prompts_fail_before_any_request(
    model_type: str, nowhere: str, prompt: Any
) -> None:
    err = await call_error(make_model(model_type, nowhere), prompt)
    assert type(err) is streamwrap.InputError
    assert isinstance(err, ValueError)


@pytest.mark.parametrize("text", [5, None, ["x"]], ids=repr)
async def test_a_content_part_whose_text_is_not_a_string(nowhere: str, text: Any) -> None:
    err = await call_error(
        make_model("openai_chat", nowhere), [{"role": "user", "content": [{"type": "text", "text": text}]}]
    )
    assert type(err) is streamwrap.InputError


# Messages that pass the common checks but that a native wrapper must convert: its own
# InputError, never an AttributeError inside the conversion.
NATIVE_MESSAGES: list[tuple[str, list[dict[str, Any]]]] = [
    ("gemini_chat", [{"role": "assistant", "content": None, "tool_calls": [{"function": "f"}]}]),
    (
        "gemini_chat",
        [{"role": "assistant", "content": None, "tool_calls": [{"function": {"arguments": "{}"}}]}],
    ),
    (
        "gemini_chat",
        [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"function": {"name": "f", "arguments": "not json"}}],
            }
        ],
    ),
    ("gemini_chat", [{"role": "user", "content": "q"}, {"role": "tool", "content": "r"}]),
    ("gemini_chat", [{"role": "user", "content": [5]}]),
    ("gemini_chat", [{"role": "user", "content": [{"type": "image_url", "image_url": 5}]}]),
    ("gemini_chat", [{"role": "user", "content": [{"type": "audio"}]}]),
    ("vertex_gemini_chat", [{"role": "user", "content": "q"}, {"role": "tool", "content": "r"}]),
    ("anthropic_chat", [{"role": "assistant", "content": None, "tool_calls": [{"function": "f"}]}]),
    ("anthropic_chat", [{"role": "assistant", "content": None, "tool_calls": "abc"}]),
    (
        "anthropic_chat",
        [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "t1", "function": {"arguments": "{}"}}],
            }
        ],
    ),
    (
        "anthropic_chat",
        [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}],
            }
        ],
    ),
    (
        "anthropic_chat",
        [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "t1", "function": {"name": "f", "arguments": "not json"}}],
            }
        ],
    ),
    (
        "anthropic_chat",
        [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "t1", "function": {"name": "f"}, "extra": {"thinking_blocks": "x"}}],
            }
        ],
    ),
    ("anthropic_chat", [{"role": "assistant", "content": "a", "thinking_blocks": [5]}]),
    ("anthropic_chat", [{"role": "user", "content": "q"}, {"role": "tool", "content": "r"}]),
    ("anthropic_chat", [{"role": "user", "content": [5]}]),
    ("anthropic_chat", [{"role": "user", "content": [{"type": "image_url", "image_url": 5}]}]),
    ("anthropic_chat", [{"role": "user", "content": [{"type": "audio"}]}]),
    ("ollama_chat", [{"role": "assistant", "content": None, "tool_calls": "abc"}]),
    ("ollama_chat", [{"role": "assistant", "content": None, "tool_calls": [{"function": "f"}]}]),
    (
        "ollama_chat",
        [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"function": {"name": None, "arguments": "{}"}}],
            }
        ],
    ),
    (
        "ollama_chat",
        [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"function": {"name": "f", "arguments": "not json"}}],
            }
        ],
    ),
    (
        "ollama_chat",
        [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"function": {"name": "f", "arguments": [1]}}],
            }
        ],
    ),
    ("ollama_chat", [{"role": "user", "content": [5]}]),
    ("ollama_chat", [{"role": "user", "content": [{"type": "image_url", "image_url": 5}]}]),
    ("local_chat", [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]),
    ("local_chat", [{"role": "assistant", "content": None, "tool_calls": [{"function": {"name": "f"}}]}]),
]


@pytest.mark.parametrize(
    ("model_type", "messages"),
    [pytest.param(t, m, id=f"{t}-{n}") for n, (t, m) in enumerate(NATIVE_MESSAGES)],
)
async def test_messages_a_native_wrapper_cannot_convert(model_type: str, messages: Any, nowhere: str) -> None:
    err = await call_error(make_model(model_type, nowhere), messages)
    assert type(err) is streamwrap.InputError
    assert "messages[" in str(err)


BAD_TOOLS: list[tuple[Any, str]] = [
    ({"name": "f"}, "must be a list"),
    ("f", "must be a list"),
    (5, "must be a list"),
    (["f"], r"tools\[0\] must be a dict"),
    ([None], r"tools\[0\] must be a dict"),
    ([{}], "'name' must be"),
    ([{"description": "no name"}], "'name' must be"),
    ([{"type": "function"}], "'name' must be"),
    ([{"type": "function", "function": None}], r"\['function'\] must be a dict"),
    ([{"type": "function", "function": "f"}], r"\['function'\] must be a dict"),
    ([{"name": ""}], "'name' must be"),
    ([{"name": "bad name!"}], "'name' must be"),
    ([{"name": "f\n"}], "'name' must be"),
    ([{"name": 5}], "'name' must be"),
    ([{"type": "retrieval"}], "only type 'function'"),
    ([{"name": "f", "parameters": {"type": "array"}}], "must describe an object"),
    ([{"name": "f", "parameters": "object"}], "must be a JSON schema dict"),
    ([{"name": "f", "parameters": None}], "must be a JSON schema dict"),
    ([{"name": "f", "parameters": []}], "must be a JSON schema dict"),
    (
        [{"name": "f", "parameters": {"type": "object", "properties": [1]}}],
        "'parameters.properties' must be a dict",
    ),
    (
        [{"name": "f", "parameters": {"type": "object", "required": "x"}}],
        "'parameters.required' must be a list",
    ),
    (
        [{"name": "f", "parameters": {"type": "object", "required": [1]}}],
        "'parameters.required' must be a list",
    ),
    ([{"name": "f", "description": 5}], "'description' must be a string"),
    ([{"name": "f"}, {"type": "function", "function": {"name": "f"}}], r"'f' is already used by tools\[0\]"),
]


@pytest.mark.parametrize("model_type", MODEL_TYPES)
@pytest.mark.parametrize(("tools", "fragment"), BAD_TOOLS, ids=[repr(t) for t, _ in BAD_TOOLS])
async def test_invalid_tool_schemas(model_type: str, nowhere: str, tools: Any, fragment: str) -> None:
    err = await call_error(make_model(model_type, nowhere), "hi", tools=tools)
    assert type(err) is streamwrap.InputError
    assert re.search(fragment, str(err)), str(err)


def test_normalize_tools_accepts_both_forms_and_keeps_them_apart() -> None:
    from streamwrap._tools import normalize_tools

    tools = normalize_tools(
        [
            {
                "name": "a",
                "description": "x",
                "parameters": {"type": "object", "properties": {}, "required": []},
            },
            {"type": "function", "function": {"name": "b"}},
        ]
    )
    assert tools == [
        {
            "type": "function",
            "function": {
                "name": "a",
                "description": "x",
                "parameters": {"type": "object", "properties": {}, "required": []},
            },
        },
        {"type": "function", "function": {"name": "b", "parameters": {"type": "object", "properties": {}}}},
    ]


@pytest.mark.parametrize("model_type", MODEL_TYPES)
@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"stream": "yes"}, streamwrap.InputError),
        ({"model": "other"}, streamwrap.ConfigError),
        ({"messages": []}, streamwrap.ConfigError),
        ({"extra_body": 5}, streamwrap.InputError),
        ({"extra_body": ["top_k", 5]}, streamwrap.InputError),
    ],
    ids=["stream", "model", "messages", "extra_body-int", "extra_body-list"],
)
async def test_call_arguments_of_the_wrong_type(
    model_type: str, nowhere: str, kwargs: dict[str, Any], error: type[Exception]
) -> None:
    if model_type == "litellm_chat" and "extra_body" in kwargs:
        pytest.skip("LiteLLM's own keyword argument: LiteLLM checks it")
    err = await call_error(make_model(model_type, nowhere), "hi", **kwargs)
    assert type(err) is error


@pytest.mark.parametrize(
    ("model_type", "kwargs"),
    [
        ("gemini_chat", {"stop": 5}),
        ("gemini_chat", {"stop": [1, 2]}),
        ("gemini_chat", {"tool_choice": "bogus"}),
        ("gemini_chat", {"response_format": "json"}),
        ("gemini_chat", {"generationConfig": 5}),
        ("vertex_gemini_chat", {"stop": 5}),
        ("anthropic_chat", {"stop": 5}),
        ("anthropic_chat", {"stop": [1, 2]}),
        ("anthropic_chat", {"tool_choice": "bogus"}),
        ("anthropic_chat", {"thinking": "yes"}),
        ("ollama_chat", {"options": 5}),
        ("ollama_chat", {"response_format": "json"}),
        ("local_chat", {"temperature": "hot"}),
        ("local_chat", {"max_tokens": -1}),
        ("local_chat", {"stop": 5}),
        ("local_chat", {"no_such_argument": 1}),
    ],
    ids=repr,
)
async def test_provider_arguments_of_the_wrong_type(
    model_type: str, kwargs: dict[str, Any], nowhere: str
) -> None:
    err = await call_error(make_model(model_type, nowhere), "hi", **kwargs)
    assert type(err) is streamwrap.InputError


async def test_extra_body_survives_the_retry_without_stream_options(emu: Emulator) -> None:
    # A server that refuses stream_options is asked again without it: the request must
    # otherwise be the same (extra_body was lost on that second request).
    emu.script(*[Reply(text="ok", reject_stream_options=True)] * 2)  # (each request takes one)
    # (A path of its own: the wrapper remembers, per endpoint, that the option was refused.)
    model = make_model("openai_chat", emu.url, base_url=f"{emu.url}/{uuid.uuid4().hex}/v1")
    response = await model("hi", extra_body={"top_k": 5}, min_p=0.1)
    assert await response.aread() == "ok"
    first, second = (r.json for r in emu.requests)
    assert "stream_options" in first and "stream_options" not in second
    assert first["top_k"] == second["top_k"] == 5
    assert first["min_p"] == second["min_p"] == 0.1


@pytest.mark.parametrize("model_type", [t for t in MODEL_TYPES if t != "local_chat"])
async def test_client_args_a_client_does_not_take_are_a_config_error(model_type: str, nowhere: str) -> None:
    if model_type == "litellm_chat":
        pytest.skip("LiteLLM's client_args are call arguments, checked by LiteLLM per call")
    err = await call_error(make_model(model_type, nowhere, client_args={"no_such_option": 1}), "hi")
    assert type(err) is streamwrap.ConfigError and err.key == "client_args"
    assert "no_such_option" in str(err)


# -- bytes from a server that are not the protocol ------------------------------------------


def _openai(text: Any) -> bytes:
    return (
        b"data: "
        + orjson.dumps({"id": "c1", "model": "m", "choices": [{"index": 0, "delta": {"content": text}}]})
        + b"\n\n"
    )


def _dashscope(text: Any) -> bytes:
    obj = {
        "output": {"choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": "null"}]},
        "usage": {"input_tokens": 3, "output_tokens": 1, "total_tokens": 4},
        "request_id": "r1",
    }
    return b"id:1\nevent:result\n:HTTP_STATUS/200\ndata:" + orjson.dumps(obj) + b"\n\n"


def _gemini(text: Any) -> bytes:
    obj = {
        "candidates": [{"content": {"role": "model", "parts": [{"text": text}]}}],
        "modelVersion": "m",
        "responseId": "r1",
    }
    return b"data: " + orjson.dumps(obj) + b"\r\n\r\n"


def _ollama(text: Any) -> bytes:
    return (
        orjson.dumps({"model": "m", "message": {"role": "assistant", "content": text}, "done": False}) + b"\n"
    )


def _anthropic(text: Any) -> bytes:
    obj = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}
    return b"event: content_block_delta\ndata: " + orjson.dumps(obj) + b"\n\n"


# model_type -> (one content event of its wire format, its content type)
WIRE: dict[str, tuple[Callable[[Any], bytes], str]] = {
    "openai_chat": (_openai, "text/event-stream"),
    "zhipuai_chat": (_openai, "text/event-stream"),
    "litellm_chat": (_openai, "text/event-stream"),
    "dashscope_chat": (_dashscope, "text/event-stream"),
    "gemini_chat": (_gemini, "text/event-stream"),
    "vertex_gemini_chat": (_gemini, "text/event-stream"),
    "ollama_chat": (_ollama, "application/x-ndjson"),
    "anthropic_chat": (_anthropic, "text/event-stream"),
}
HTTP_TYPES = [
    pytest.param(
        t, marks=pytest.mark.skipif(not providers.PROVIDERS[t].installed, reason="litellm not installed")
    )
    for t in WIRE
]


def _sse_or_line(model_type: str, payload: bytes) -> bytes:
    return payload + b"\n" if model_type == "ollama_chat" else b"data: " + payload + b"\n\n"


def _with_invalid_utf8(event: Callable[[Any], bytes]) -> bytes:
    return event("@@").replace(b"@@", b"\xff\xfe\xc3")


# Name -> (the broken tail after "Hello", ", "; the errors it may raise). A tail cut
# mid-JSON at the end of the body is a protocol error for SSE (the last event is complete
# once the body ends) and an interruption for NDJSON (a line cut by a dropped connection).
BROKEN: dict[str, tuple[Callable[[str], bytes], tuple[type[Exception], ...]]] = {
    "invalid-utf8-in-json": (lambda t: _with_invalid_utf8(WIRE[t][0]), (streamwrap.StreamProtocolError,)),
    "invalid-utf8-line": (lambda t: _sse_or_line(t, b"\xff\xfe\xfd\x80"), (streamwrap.StreamProtocolError,)),
    "html-not-json": (
        lambda t: _sse_or_line(t, b"<html><body>502 Bad Gateway</body></html>"),
        (streamwrap.StreamProtocolError,),
    ),
    "truncated-json": (
        lambda t: WIRE[t][0](" world")[: len(WIRE[t][0](" world")) // 2],
        (streamwrap.StreamProtocolError, streamwrap.StreamInterruptedError),
    ),
    "wrong-shape": (lambda t: WIRE[t][0](5), (streamwrap.StreamProtocolError,)),
    "nul-bytes": (lambda t: _sse_or_line(t, b"\x00\x00{\x00}"), (streamwrap.StreamProtocolError,)),
}


@pytest.mark.parametrize("split", [None, "event", 1], ids=["one-read", "per-event", "per-byte"])
@pytest.mark.parametrize("broken", list(BROKEN))
@pytest.mark.parametrize("model_type", HTTP_TYPES)
async def test_malformed_bytes_mid_stream_keep_the_partial_text(
    emu: Emulator, model_type: str, broken: str, split: Any
) -> None:
    event, content_type = WIRE[model_type]
    tail, errors = BROKEN[broken]
    emu.replay(event("Hello") + event(", ") + tail(model_type), content_type=content_type, split=split)
    model = make_model(model_type, emu.url)
    with anyio.fail_after(20):
        response = await model("hi")  # the status was 200: the call succeeds
        items: list[str] = []
        with pytest.raises(Exception) as info:
            async for item in response.stream:
                items.append(item.text_so_far)
    err = info.value
    if model_type == "litellm_chat" and broken == "wrong-shape":
        # LiteLLM's own chunk parser drops content that is not text; the body then ends
        # without a finish.
        errors = (*errors, streamwrap.StreamInterruptedError)
    assert isinstance(err, errors), repr(err)
    assert err.partial_text == "Hello, "
    assert items[-1:] == ["Hello, "]
    assert response.finish_reason == "error"
    with pytest.raises(type(err)):
        _ = response.text


@pytest.mark.parametrize("model_type", HTTP_TYPES)
@pytest.mark.parametrize(
    "body",
    [b"\xff\xfe\x00garbage\x80\n\n", b"\x00" * 64, b"\xef\xbb\xbf\xef\xbb\xbf\r\r\n"],
    ids=["binary", "nul", "bom"],
)
async def test_a_body_that_is_no_protocol_at_all(emu: Emulator, model_type: str, body: bytes) -> None:
    emu.replay(body, content_type=WIRE[model_type][1], split=None)
    model = make_model(model_type, emu.url)
    with anyio.fail_after(20):
        response = await model("hi")
        with pytest.raises(Exception) as info:
            await response.aread()
    assert isinstance(info.value, streamwrap.StreamError), repr(info.value)
    assert info.value.partial_text == ""


@pytest.mark.parametrize("model_type", HTTP_TYPES)
@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
async def test_a_non_utf8_error_body(emu: Emulator, model_type: str, stream: bool) -> None:
    emu.replay(b"\xff\xfe<html>upstream \xc3 failed</html>", status=502, content_type="text/html", split=None)
    model = make_model(model_type, emu.url)
    with anyio.fail_after(20), pytest.raises(Exception) as info:
        await model("hi", stream=stream)
    err = info.value
    assert isinstance(err, streamwrap.ServerError), repr(err)
    assert err.status_code == 502
    assert isinstance(err.body, str) and "upstream" in err.body  # decoded, bad bytes replaced


@pytest.mark.parametrize("model_type", [t for t in HTTP_TYPES if t.values[0] != "litellm_chat"])
async def test_a_non_json_whole_body(emu: Emulator, model_type: str) -> None:
    emu.replay(b"\xff<html>not json</html>", content_type="application/json", split=None)
    model = make_model(model_type, emu.url)
    with anyio.fail_after(20), pytest.raises(Exception) as info:
        await model("hi", stream=False)
    assert isinstance(info.value, streamwrap.StreamProtocolError), repr(info.value)
