"""The emulator's Azure OpenAI dialect, read by the official ``openai.AsyncAzureOpenAI``
client: the deployment path with ``api-version``, the ``api-key`` header, the first chunk
with ``choices: []`` and ``prompt_filter_results``, ``content_filter_results`` on choices,
usage, the content-filter finish, and Azure's errors; and streamwrap's
``azure_openai_chat`` reading the same scripted streams to the same result."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

import streamwrap
from streamwrap.testing import Emulator, Fault, Reply, ToolCallSpec
from tests.support import providers

pytestmark = pytest.mark.anyio

API_KEY = "azure-emulator-secret-0123456789"
API_VERSION = "2024-10-21"
DEPLOYMENT = "gpt-4o-mini"


def sdk_client(emu: Emulator, **args: Any) -> openai.AsyncAzureOpenAI:
    return openai.AsyncAzureOpenAI(
        **{"azure_endpoint": emu.azure_endpoint, "api_version": API_VERSION, "api_key": API_KEY, **args},
        max_retries=0,
    )


async def sdk_stream(client: openai.AsyncAzureOpenAI, **params: Any) -> list[Any]:
    stream = await client.chat.completions.create(
        model=DEPLOYMENT, messages=[{"role": "user", "content": "hi"}], stream=True, **params
    )
    return [chunk async for chunk in stream]


async def test_the_sdk_reads_the_emulated_stream_as_azure_sends_it(emu: Emulator) -> None:
    emu.script(Reply(text=["Hel", "lo"], usage=(7, 2), model="gpt-4o-mini-2024-07-18"))
    client = sdk_client(emu)
    try:
        chunks = await sdk_stream(client, stream_options={"include_usage": True})
    finally:
        await client.close()
    first, *rest = chunks
    # Azure's first chunk: no choices, no id or model, the prompt's filter results.
    assert first.choices == [] and first.id == "" and first.model == ""
    (prompt_filter,) = first.model_extra["prompt_filter_results"]
    assert prompt_filter["content_filter_results"]["hate"] == {"filtered": False, "severity": "safe"}
    content = [c for c in rest if c.choices]
    assert "".join(c.choices[0].delta.content or "" for c in content) == "Hello"
    assert content[-1].choices[0].finish_reason == "stop"
    for chunk in content[:-1]:
        assert chunk.choices[0].model_extra["content_filter_results"]["violence"]["severity"] == "safe"
    assert content[-1].choices[0].model_extra["content_filter_results"] == {}
    assert {c.id for c in rest} == {rest[0].id} and rest[0].id.startswith("chatcmpl-")
    assert rest[-1].usage is not None and (
        rest[-1].usage.prompt_tokens,
        rest[-1].usage.completion_tokens,
    ) == (7, 2)
    (request,) = emu.requests
    assert request.path == f"/openai/deployments/{DEPLOYMENT}/chat/completions?api-version={API_VERSION}"
    assert request.headers["api-key"] == API_KEY


SCRIPTS = [
    pytest.param(Reply(text="The quick brown fox", usage=(4, 4), id="chatcmpl-a"), id="text"),
    pytest.param(
        Reply(
            tool_calls=[ToolCallSpec("weather", ['{"city":', '"Oslo"}'], id="call_1")],
            usage=(9, 5),
            id="chatcmpl-b",
        ),
        id="tool-call",
    ),
    pytest.param(
        Reply(text=["Once ", "upon "], finish_reason="content_filter", id="chatcmpl-c"),
        id="content-filter-finish",
    ),
]


@pytest.mark.parametrize("reply", SCRIPTS)
async def test_the_sdk_and_streamwrap_agree(emu: Emulator, reply: Reply) -> None:
    emu.script(reply, reply)
    client = sdk_client(emu)
    try:
        chunks = await sdk_stream(client, stream_options={"include_usage": True})
    finally:
        await client.close()
    with_choices = [c for c in chunks if c.choices]
    sdk_text = "".join(c.choices[0].delta.content or "" for c in with_choices)
    sdk_finish = with_choices[-1].choices[0].finish_reason
    sdk_arguments = "".join(
        call.function.arguments or ""
        for c in with_choices
        for call in c.choices[0].delta.tool_calls or []
        if call.function is not None
    )
    sdk_usage = chunks[-1].usage

    model = providers.make_model(emu, "azure_openai_chat", model_name=DEPLOYMENT, api_key=API_KEY)
    response = await model("hi")
    assert await response.aread() == sdk_text
    assert response.finish_reason_raw == sdk_finish
    assert "".join(call.arguments for call in response.tool_calls) == sdk_arguments
    assert response.provider_id == with_choices[0].id
    assert sdk_usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (
        sdk_usage.prompt_tokens,
        sdk_usage.completion_tokens,
    )
    assert [r.path for r in emu.requests] == [emu.requests[0].path] * 2


async def test_the_prompt_filter_chunk_comes_before_the_first_delay(emu: Emulator) -> None:
    # Azure sends the prompt's filter results as soon as the prompt passed; the model's
    # first token comes later. A fault after 0 chunks still follows the filter chunk.
    emu.script(Reply(text="late", first_delay=0.2, fault=Fault.drop_after(0)))
    async with httpx.AsyncClient() as http:
        with pytest.raises(httpx.RemoteProtocolError):
            async with http.stream(
                "POST",
                f"{emu.azure_endpoint}/openai/deployments/d/chat/completions?api-version={API_VERSION}",
                json={"model": "d", "messages": [], "stream": True},
            ) as response:
                body = b""
                async for piece in response.aiter_bytes():
                    body += piece
    assert body.startswith(b'data: {"choices":[],"created":0,"id":""')
    assert b"late" not in body


async def test_errors_in_azure_shapes(own_emu: Emulator) -> None:
    emu = Emulator(api_key=API_KEY).start()
    try:
        for client in (sdk_client(emu, api_key="wrong-key-0123456789"),):
            with pytest.raises(openai.AuthenticationError) as auth:
                await sdk_stream(client)
            await client.close()
        assert auth.value.body == {
            "code": "401",
            "message": auth.value.body["message"],
        }
        assert "Access denied" in auth.value.message
        # A key the emulator wants, as the api-key header, passes.
        emu.script(Reply(text="ok"))
        client = sdk_client(emu)
        try:
            chunks = await sdk_stream(client)
        finally:
            await client.close()
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "ok"
    finally:
        emu.stop()

    # No api-version: Azure's 404.
    async with httpx.AsyncClient() as http:
        response = await http.post(
            own_emu.azure_endpoint + "/openai/deployments/d/chat/completions", json={"messages": []}
        )
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "404", "message": "Resource not found"}}

    # The content-filter 400, scripted in Azure's shape, reaches the SDK as it is.
    error = {"message": "filtered", "type": None, "param": "prompt", "code": "content_filter", "status": 400}
    own_emu.script(Reply(status=400, error=error))
    client = sdk_client(own_emu)
    try:
        with pytest.raises(openai.BadRequestError) as bad:
            await sdk_stream(client)
    finally:
        await client.close()
    assert bad.value.code == "content_filter"


async def test_streamwrap_raises_the_typed_errors_from_the_emulated_bodies(emu: Emulator) -> None:
    model = providers.make_model(emu, "azure_openai_chat", api_key=API_KEY)
    emu.script(Reply(status=401))
    with pytest.raises(streamwrap.AuthenticationError) as auth:
        await model("hi")
    assert "Access denied" in auth.value.message
    emu.script(Reply(status=400, error={"message": "filtered", "code": "content_filter", "innererror": {}}))
    with pytest.raises(streamwrap.ContentFilterError):
        await model("hi")
