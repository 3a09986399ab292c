"""The provider contract, run on the out-of-tree example provider (tests/providers/example_provider).

Not collected by the suite itself (the name does not start with ``test_``):
``test_provider_api.py`` installs the example package into a directory of its own and runs
this module with pytest in a subprocess whose path holds that directory. Nothing here
imports the package: ``load_model`` finds ``example_chat`` through the package's
``streamwrap.model_types`` entry point, as it would for a user.

The example speaks the OpenAI chat-completions dialect of the emulator, so it passes every
row of the fault matrix (``test_fault_matrix.py``), with the same checks as the built-in
providers, plus the streaming, non-streaming and cancellation checks below.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

import streamwrap
from streamwrap.testing import Emulator, Fault, Reply, ToolCallSpec
from tests.reliability.test_fault_matrix import FAULTS, Case, Dialect, _at_the_end_only
from tests.reliability.test_fault_matrix import test_fault_matrix as fault_matrix_row
from tests.support.providers import Provider

pytestmark = pytest.mark.anyio

# Where test_provider_api.py installed the package.
SITE = Path(os.environ["EXAMPLE_PROVIDER_SITE"])

EXAMPLE = Dialect(
    # Speaks the emulator's OpenAI dialect, at the same path as openai_chat.
    provider=Provider("example_chat", "emulator-1", "/v1", "openai"),
    api_key="sk-example-test-secret-0123456789",
    usage_after_failure=_at_the_end_only,  # usage comes in a last chunk, after the finish
    stream_error_code=lambda code: code,
    body_message=lambda body: str(body["error"]["message"]),
    inband_error=True,
    reported_as="example",
)


def load(emu: Emulator, models: list[Any] | None = None, **config: Any) -> streamwrap.ModelWrapper:
    """An ``example_chat`` model on ``emu``, closed by the ``models`` fixture if given."""
    model = streamwrap.load_model(
        {
            "model_type": "example_chat",
            "model_name": "emulator-1",
            "base_url": emu.openai_base_url,
            "stream": True,
            "max_retries": 0,
            **config,
        }
    )
    if models is not None:
        models.append(model)
    return model


async def idle(emu: Emulator, timeout: float = 3.0) -> bool:
    """Wait, without blocking the event loop, until the emulator has no open connection."""
    with anyio.move_on_after(timeout):
        while emu.open_connections:
            await anyio.sleep(0.01)
    return emu.open_connections == 0


@pytest.fixture
def models(own_emu: Emulator) -> Iterator[list[Any]]:
    """Models a test makes, closed afterwards, from this synchronous teardown (see the
    fault matrix's fixture of the same name): then the emulator has no connection left."""
    made: list[Any] = []
    yield made
    for model in made:
        model.close()
    assert own_emu.wait_idle(3.0)


@pytest.fixture(scope="module", autouse=True)
def _warm() -> None:
    """Import httpx and start the runtime once, before the timed rows run."""
    with Emulator() as emu:
        model = load(emu)
        emu.script(Reply(text="warm"))
        assert model.call_sync("hi").text == "warm"
        model.close()


def test_found_through_its_entry_point() -> None:
    assert "example_chat" in streamwrap.model_types()
    model = streamwrap.load_model({"model_type": "example_chat", "model_name": "m"})
    cls = type(model)
    assert isinstance(model, streamwrap.ModelWrapper)
    assert (cls.__name__, cls.model_type, cls.provider) == ("ExampleChatWrapper", "example_chat", "example")
    # The installed copy, not the source tree's.
    module = __import__(cls.__module__, fromlist=["_"])
    assert Path(module.__file__).is_relative_to(SITE), module.__file__
    # Its own config key is checked as the built-in ones are.
    with pytest.raises(streamwrap.ConfigError, match="'chat_path' must be the path"):
        streamwrap.load_model({"model_type": "example_chat", "model_name": "m", "chat_path": 1})


def test_registered_at_run_time_too() -> None:
    from streamwrap_example_provider import ExampleChatWrapper

    streamwrap.register_model_type("my_chat", ExampleChatWrapper)
    streamwrap.register_model_type("my_lazy_chat", "streamwrap_example_provider:ExampleChatWrapper")
    for model_type in ("my_chat", "my_lazy_chat"):
        model = streamwrap.load_model({"model_type": model_type, "model_name": "m"})
        assert type(model) is ExampleChatWrapper


async def test_streams_text_reasoning_tool_calls_and_usage(own_emu: Emulator, models: list[Any]) -> None:
    own_emu.script(
        Reply(
            reasoning=["Let me ", "think."],
            text=["Hel", "lo"],
            tool_calls=[ToolCallSpec("get_weather", ['{"city":', ' "Paris"}'])],
            usage=(12, 34),
            model="emulator-9",
        )
    )
    model = load(own_emu, models, generate_args={"temperature": 0.5})
    tools = [{"name": "get_weather", "parameters": {"type": "object"}}]
    response = await model("Say hello", tools=tools)
    seen = [(is_last, text) async for is_last, text in response.stream]
    assert seen == [(False, "Hel"), (False, "Hello"), (True, "Hello")]
    assert response.text == "Hello"
    assert response.reasoning == "Let me think."
    assert [(call.name, call.parsed_arguments()) for call in response.tool_calls] == [
        ("get_weather", {"city": "Paris"})
    ]
    assert response.finish_reason == "tool_calls"
    usage = response.usage
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens, usage.source) == (
        12,
        34,
        46,
        "provider",
    )
    assert response.model == "emulator-9"
    assert response.provider_id and response.provider_id.startswith("chatcmpl-")
    sent = own_emu.requests[-1].json
    assert sent["messages"] == [{"role": "user", "content": "Say hello"}]
    assert sent["temperature"] == 0.5
    assert sent["stream_options"] == {"include_usage": True}
    assert sent["tools"][0]["function"]["name"] == "get_weather"


async def test_non_streaming_call(own_emu: Emulator, models: list[Any]) -> None:
    own_emu.script(Reply(text=["Hel", "lo"], usage=(3, 2)))
    model = load(own_emu, models)
    response = await model("hi", stream=False)
    assert [item async for item in response.stream] == [(True, "Hello")]
    assert (response.text, response.finish_reason, response.usage.total_tokens) == ("Hello", "stop", 5)
    assert own_emu.requests[-1].json["stream"] is False


async def test_a_cut_stream_raises_with_the_text_so_far(own_emu: Emulator, models: list[Any]) -> None:
    own_emu.script(Reply(text=["Hel", "lo ", "wor", "ld"], fault=Fault.drop_after(2)))
    model = load(own_emu, models)
    response = await model("hi")
    with pytest.raises(streamwrap.StreamInterruptedError) as info:
        async for _ in response.stream:
            pass
    assert info.value.partial_text == "Hello "
    assert info.value.provider == "example"
    assert response.finish_reason == "error"


async def test_break_cancels_the_response_and_closes_the_connection(
    own_emu: Emulator, models: list[Any]
) -> None:
    own_emu.script(Reply(text=[f"w{i} " for i in range(200)], delay=0.01))
    model = load(own_emu, models)
    response = await model("hi")
    async for _, text in response.stream:
        if len(text) > 10:
            break
    assert await idle(own_emu), "the upstream connection was not closed after break"
    await response.await_done()
    assert response.finish_reason == "cancelled"
    assert response.text.startswith("w0 w1")


@pytest.mark.parametrize(
    "anyio_backend", ["asyncio"]
)  # the rows themselves run on both backends for the built-ins
@pytest.mark.parametrize("case", [pytest.param(case, id=case.name) for case in FAULTS])
async def test_fault_matrix(own_emu: Emulator, models: list[Any], case: Case) -> None:
    await fault_matrix_row(own_emu, models, EXAMPLE, case)
