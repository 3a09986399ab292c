"""Config dicts: validation messages, the named-model registry, files, secrets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import streamwrap

BASE = {"model_type": "openai_chat", "model_name": "gpt-4o-mini", "api_key": "sk-abcdef-secret-9876"}


def config_error(config: Any) -> streamwrap.ConfigError:
    with pytest.raises(streamwrap.ConfigError) as info:
        streamwrap.load_model(config)
    assert isinstance(info.value, streamwrap.StreamwrapError)
    assert isinstance(info.value, ValueError)
    return info.value


def test_load_model_builds_the_wrapper_class() -> None:
    model = streamwrap.load_model({**BASE, "stream": True, "base_url": "http://127.0.0.1:1/v1"})
    assert isinstance(model, streamwrap.OpenAIChatWrapper)
    assert model.stream is True and model.model_name == "gpt-4o-mini"
    assert model.base_url == "http://127.0.0.1:1/v1"


def test_direct_construction_validates_too() -> None:
    with pytest.raises(streamwrap.ConfigError, match="'stream' must be true or false"):
        streamwrap.OpenAIChatWrapper("gpt-4o-mini", api_key="k", stream="yes")  # type: ignore[arg-type]


def test_unknown_model_type_lists_accepted_and_suggests() -> None:
    err = config_error({**BASE, "model_type": "openai_chta"})
    assert err.key == "model_type"
    assert err.suggestion == "openai_chat"
    assert "openai_chat" in err.accepted
    assert "Did you mean 'openai_chat'?" in str(err)


def test_unknown_key_is_named_with_a_suggestion() -> None:
    err = config_error({**BASE, "genrate_args": {}})
    assert err.key == "genrate_args" and err.suggestion == "generate_args"
    assert "generate_args" in err.accepted and "stream" in err.accepted
    assert "unknown key 'genrate_args'" in str(err)


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("stream", "true", "'stream' must be true or false"),
        ("max_retries", True, "'max_retries' must be an integer"),
        ("max_retries", -1, "'max_retries' must be >= 0"),
        ("idle_timeout", 0, "'idle_timeout' must be > 0"),
        ("first_token_timeout", float("inf"), "must be > 0 and finite"),
        ("client_args", [], "'client_args' must be a dict"),
        ("generate_args", {"stream": True}, "'stream' cannot be set in generate_args"),
        ("model_name", "  ", "'model_name' must be a non-empty string"),
        ("model_name", 3, "'model_name' must be a non-empty string"),
    ],
)
def test_wrong_types_and_values(key: str, value: Any, fragment: str) -> None:
    err = config_error({**BASE, key: value})
    assert fragment in str(err)
    assert err.key == key


def test_missing_fields() -> None:
    assert config_error({"model_name": "x"}).key == "model_type"
    assert config_error({"model_type": "openai_chat", "api_key": "k"}).key == "model_name"
    assert "must be a dict" in str(config_error(["not", "a", "dict"]))


def test_api_key_from_environment_or_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    err = config_error({"model_type": "openai_chat", "model_name": "m"})
    assert err.key == "api_key" and "OPENAI_API_KEY" in str(err)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env-123456")
    model = streamwrap.load_model({"model_type": "openai_chat", "model_name": "m"})
    assert model._api_key is not None and model._api_key.reveal() == "sk-from-env-123456"
    # A local server needs no key at all.
    monkeypatch.delenv("OPENAI_API_KEY")
    streamwrap.load_model(
        {"model_type": "openai_chat", "model_name": "m", "base_url": "http://127.0.0.1:1/v1"}
    )


def test_secrets_never_show() -> None:
    model = streamwrap.load_model(BASE)
    assert "sk-abcdef-secret-9876" not in repr(model)
    assert "sk-abcdef-secret-9876" not in repr(model.__dict__)
    err = config_error({**BASE, "api_key": 12345678})
    assert "12345678" not in str(err)
    secret = streamwrap.Secret("sk-abcdef-secret-9876")
    assert (
        "sk-abcdef" not in repr(secret) and "sk-abcdef" not in str(secret) and "sk-abcdef" not in f"{secret}"
    )


def test_named_models_registry() -> None:
    model = streamwrap.load_model({**BASE, "config_name": "fast-gpt"})
    assert streamwrap.get_model("fast-gpt") is model
    with pytest.raises(streamwrap.ConfigError) as info:
        streamwrap.get_model("fast-gtp")
    assert info.value.suggestion == "fast-gpt"


def test_load_model_configs_from_json_yaml_and_lists(tmp_path: Path) -> None:
    configs = [{**BASE, "config_name": "a"}, {**BASE, "config_name": "b", "stream": True}]
    json_path = tmp_path / "models.json"
    json_path.write_text(json.dumps(configs))
    models = streamwrap.load_model_configs(json_path)
    assert [m.config_name for m in models] == ["a", "b"]
    assert streamwrap.get_model("b").stream is True

    yaml_path = tmp_path / "models.yaml"
    yaml_path.write_text(
        "- config_name: y\n  model_type: openai_chat\n  model_name: m\n  api_key: k\n  stream: true\n"
    )
    (model,) = streamwrap.load_model_configs(str(yaml_path))
    assert model.stream is True and streamwrap.get_model("y") is model

    assert len(streamwrap.load_model_configs([{**BASE, "config_name": "c"}])) == 1


def test_a_bad_config_file_registers_nothing(tmp_path: Path) -> None:
    path = tmp_path / "models.json"
    path.write_text(
        json.dumps([{**BASE, "config_name": "good-1"}, {**BASE, "config_name": "bad-1", "strem": True}])
    )
    with pytest.raises(streamwrap.ConfigError) as info:
        streamwrap.load_model_configs(path)
    assert info.value.config_name == "bad-1" and info.value.suggestion == "stream"
    assert "model config 'bad-1'" in str(info.value)
    with pytest.raises(streamwrap.ConfigError):
        streamwrap.get_model("good-1")


def test_config_file_errors(tmp_path: Path) -> None:
    with pytest.raises(streamwrap.ConfigError, match="cannot read"):
        streamwrap.load_model_configs(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(streamwrap.ConfigError, match="not valid JSON"):
        streamwrap.load_model_configs(bad)
    dupes = tmp_path / "dupes.json"
    dupes.write_text(json.dumps([{**BASE, "config_name": "d"}, {**BASE, "config_name": "d"}]))
    with pytest.raises(streamwrap.ConfigError, match="more than once"):
        streamwrap.load_model_configs(dupes)


@pytest.mark.parametrize(
    ("prompt", "fragment"),
    [
        ("", "prompt is empty"),
        ("   ", "prompt is empty"),
        ([], "message list is empty"),
        ([{"role": "wizard", "content": "x"}], "'role' must be one of"),
        ([{"role": "user"}], "has no 'content'"),
        ([{"role": "user", "content": 3}], "'content' must be a string"),
        (42, "prompt must be a string or a list of messages"),
    ],
)
def test_bad_prompts_raise_input_error_before_any_io(prompt: Any, fragment: str) -> None:
    model = streamwrap.load_model({**BASE, "base_url": "http://127.0.0.1:1/v1"})
    with pytest.raises(streamwrap.InputError, match=fragment):
        model.call_sync(prompt)


@pytest.mark.parametrize(
    ("tools", "fragment"),
    [
        ({"name": "f"}, "must be a list"),
        (["f"], "tools\\[0\\] must be a dict"),
        ([{"name": "bad name!"}], "'name' must be"),
        ([{"name": "f", "parameters": {"type": "array"}}], "must describe an object"),
        ([{"type": "retrieval"}], "only type 'function'"),
    ],
)
def test_bad_tool_schemas(tools: Any, fragment: str) -> None:
    model = streamwrap.load_model({**BASE, "base_url": "http://127.0.0.1:1/v1"})
    with pytest.raises(streamwrap.InputError, match=fragment):
        model.call_sync("hi", tools=tools)


def test_register_a_custom_model_type() -> None:
    class EchoWrapper(streamwrap.OpenAIChatWrapper):
        model_type = "echo_chat"

    streamwrap.register_model_type("echo_chat", EchoWrapper)
    assert "echo_chat" in streamwrap.model_types()
    assert isinstance(streamwrap.load_model({**BASE, "model_type": "echo_chat"}), EchoWrapper)
