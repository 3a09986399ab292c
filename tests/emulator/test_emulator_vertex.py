"""The emulator's Vertex AI dialect (Gemini on Vertex AI's paths).

Three kinds of proof. google-genai's own Vertex AI client (``Client(vertexai=True, ...)``,
with real google-auth credentials refreshed at a local token endpoint) talks HTTP to the
emulator and must see exactly the scripted content, and ``vertex_gemini_chat`` reads the
same emulated stream (and every Vertex recording) to the same result. Raw-byte tests pin
down the paths, the Vertex-only fields and the errors. And the chunks are compared with
real recorded traffic (../shared/recordings/vertex, skipped if absent).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import streamwrap
from streamwrap.testing import Emulator, Reply, ToolCallSpec
from tests.support import google_auth
from tests.support import recordings as _recordings

pytestmark = pytest.mark.timeout(60)

PROJECT = "my-project"
LOCATION = "us-central1"
MODEL = "gemini-2.5-flash"
PATH = f"/v1beta1/projects/{PROJECT}/locations/{LOCATION}/publishers/google/models/{MODEL}"
STREAM = ":streamGenerateContent?alt=sse"
CONTENTS = [{"role": "user", "parts": [{"text": "say hello there"}]}]

REPLY = Reply(
    reasoning=["Thinking ", "hard."],
    text=["Two ", "calls."],
    tool_calls=[ToolCallSpec("add", '{"a": 2, "b": 3}'), ToolCallSpec("multiply", '{"a": 2, "b": 3}')],
    model=MODEL,
    usage=(20, 8),
    id="resp-emu-1",  # (the same reply twice: the same ids and signature)
)


@pytest.fixture
def credentials(tmp_path: Path, key_pair: tuple[str, bytes], token_server: google_auth.TokenServer) -> Any:
    from google.oauth2 import service_account

    path = google_auth.key_file(tmp_path / "key.json", key_pair[0], token_server.url)
    return service_account.Credentials.from_service_account_file(
        str(path), scopes=["https://www.googleapis.com/auth/cloud-platform"]
    )


@pytest.fixture
def genai_client(emu: Emulator, credentials: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    genai = pytest.importorskip("google.genai")
    for name in ("GOOGLE_API_KEY", "GEMINI_API_KEY", "GOOGLE_CLOUD_PROJECT", "GOOGLE_CLOUD_LOCATION"):
        monkeypatch.delenv(name, raising=False)
    client = genai.Client(
        vertexai=True,
        project=PROJECT,
        location=LOCATION,
        credentials=credentials,
        http_options={"base_url": emu.vertex_base_url},
    )
    yield client
    client.close()


def vertex_model(emu: Emulator, credentials: Any, **overrides: Any) -> Any:
    return streamwrap.load_model(
        {
            "model_type": "vertex_gemini_chat",
            "model_name": MODEL,
            "stream": True,
            "max_retries": 0,
            "base_url": emu.vertex_base_url,
            "project": PROJECT,
            "location": LOCATION,
            "credentials": credentials,
            **overrides,
        }
    )


def sdk_read(chunks: list[Any]) -> dict[str, Any]:
    """What google-genai's chunks say: text, thoughts, calls (name, args, signature), usage."""
    parts = [p for c in chunks for p in (c.candidates[0].content.parts or [])]
    last = chunks[-1]
    usage = last.usage_metadata
    return {
        "text": "".join(p.text for p in parts if p.text and not p.thought),
        "reasoning": "".join(p.text for p in parts if p.text and p.thought) or None,
        "calls": [
            (p.function_call.name, p.function_call.args, p.thought_signature)
            for p in parts
            if p.function_call
        ],
        "finish": last.candidates[0].finish_reason.value,
        "usage": (usage.prompt_token_count, usage.candidates_token_count, usage.thoughts_token_count),
        "id": last.response_id,
        "model": last.model_version,
    }


async def streamwrap_read(model: Any) -> dict[str, Any]:
    response = await model("say hello there")
    await response.aread()
    raw = response.usage.raw or {}
    return {
        "text": response.text,
        "reasoning": response.reasoning,
        "calls": [
            (c.name, c.parsed_arguments(), _b64((c.extra or {}).get("thought_signature")))
            for c in response.tool_calls
        ],
        "finish": response.finish_reason_raw,
        "usage": (
            raw.get("promptTokenCount"),
            raw.get("candidatesTokenCount"),
            raw.get("thoughtsTokenCount"),
        ),
        "id": response.provider_id,
        "model": response.model,
    }


def _b64(signature: str | None) -> bytes | None:
    import base64

    return None if signature is None else base64.b64decode(signature)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.anyio
async def test_google_genai_and_vertex_gemini_chat_read_the_same_stream_alike(
    emu: Emulator, genai_client: Any, credentials: Any, token_server: google_auth.TokenServer
) -> None:
    emu.script(REPLY, REPLY)
    chunks = list(genai_client.models.generate_content_stream(model=MODEL, contents="say hello there"))
    sdk = sdk_read(chunks)
    assert sdk["text"] == "Two calls."
    assert sdk["reasoning"] == "Thinking hard."
    assert [(n, a) for n, a, _ in sdk["calls"]] == [("add", {"a": 2, "b": 3}), ("multiply", {"a": 2, "b": 3})]
    assert sdk["calls"][0][2] and sdk["calls"][1][2] is None  # the first call's signature only
    assert sdk["finish"] == "STOP"
    # The early chunks carry only trafficType, as Vertex AI's do; the counts come last.
    assert [c.usage_metadata.prompt_token_count for c in chunks[:-1]] == [None] * (len(chunks) - 1)
    assert all(c.create_time is not None for c in chunks)
    assert await streamwrap_read(vertex_model(emu, credentials, api_version="v1beta1")) == sdk
    # Both sent the same request, each with a token google-auth got from the endpoint.
    sdk_request, ours = emu.requests
    assert sdk_request.path == ours.path == PATH + STREAM
    assert sdk_request.json["contents"] == ours.json["contents"] == CONTENTS
    for request in (sdk_request, ours):
        assert request.headers["authorization"].removeprefix("Bearer ") in token_server.tokens


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.anyio
@pytest.mark.parametrize(
    "recording", _recordings.params("recording", _recordings.select(wire=_recordings.VERTEX), what="Vertex")
)
async def test_both_read_each_vertex_recording_alike(
    emu: Emulator, genai_client: Any, credentials: Any, recording: _recordings.Recording
) -> None:
    emu.replay(recording.body, content_type=recording.content_type())
    sdk = sdk_read(list(genai_client.models.generate_content_stream(model=MODEL, contents="say hello there")))
    emu.replay(recording.body, content_type=recording.content_type())
    ours = await streamwrap_read(vertex_model(emu, credentials))
    assert ours == sdk
    assert ours["text"] == recording.expected["text"]


# -- the wire -------------------------------------------------------------------------------


def post(emu: Emulator, path: str = PATH + STREAM, **headers: str) -> httpx.Response:
    return httpx.post(emu.vertex_base_url + path, json={"contents": CONTENTS}, headers=headers)


def events(body: bytes) -> list[dict[str, Any]]:
    assert body.endswith(b"\r\n\r\n")
    return [json.loads(block.removeprefix(b"data: ")) for block in body.split(b"\r\n\r\n")[:-1]]


@pytest.mark.parametrize(
    "path",
    [
        PATH + STREAM,
        PATH.replace("v1beta1", "v1") + STREAM,
        f"/v1/publishers/google/models/{MODEL}" + STREAM,  # express mode
        f"/v1/projects/{PROJECT}/locations/{LOCATION}/models/my-tuned" + STREAM,
        f"/v1/projects/{PROJECT}/locations/{LOCATION}/endpoints/123" + STREAM,
        "/proxy" + PATH + STREAM,
    ],
)
def test_vertex_paths_stream_gemini_chunks_with_vertex_fields(emu: Emulator, path: str) -> None:
    emu.script(Reply(text=["Hel", "lo"], usage=(5, 2), model=MODEL))
    response = post(emu, path)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    chunks = events(response.content)
    assert "".join(p["text"] for c in chunks for p in c["candidates"][0]["content"]["parts"]) == "Hello"
    assert [c["usageMetadata"] for c in chunks[:-1]] == [{"trafficType": "ON_DEMAND"}] * (len(chunks) - 1)
    assert chunks[-1]["usageMetadata"]["promptTokenCount"] == 5
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert all(c["createTime"].endswith("Z") and c["responseId"] == chunks[0]["responseId"] for c in chunks)
    assert emu.requests[0].path == path


def test_the_gemini_api_s_paths_stay_gemini(emu: Emulator) -> None:
    emu.script(Reply(text="hi", usage=(5, 2)))
    response = httpx.post(
        emu.gemini_base_url + f"/v1beta/models/{MODEL}" + STREAM, json={"contents": CONTENTS}
    )
    (chunk,) = events(response.content)
    assert "createTime" not in chunk and chunk["usageMetadata"]["promptTokenCount"] == 5


@pytest.mark.parametrize(
    ("status", "google_status", "needle"),
    [
        (401, "UNAUTHENTICATED", "Expected OAuth 2 access token"),
        (
            403,
            "PERMISSION_DENIED",
            f"'aiplatform.endpoints.predict' denied on resource '//aiplatform.googleapis.com/projects/{PROJECT}",
        ),
        (
            404,
            "NOT_FOUND",
            f"Publisher Model `projects/{PROJECT}/locations/{LOCATION}/publishers/google/models/{MODEL}`",
        ),
        (429, "RESOURCE_EXHAUSTED", "error-code-429"),
        (503, "UNAVAILABLE", "overloaded"),
    ],
)
def test_errors_in_vertex_s_words(emu: Emulator, status: int, google_status: str, needle: str) -> None:
    emu.script(Reply(status=status))
    response = post(emu)
    assert response.status_code == status
    error = response.json()["error"]
    assert (error["code"], error["status"]) == (status, google_status)
    assert needle in error["message"]


@pytest.mark.parametrize(
    ("headers", "status", "reason"),
    [
        ({}, 401, "CREDENTIALS_MISSING"),
        ({"authorization": "Bearer ya29.wrong"}, 401, "ACCESS_TOKEN_TYPE_UNSUPPORTED"),
        ({"x-goog-api-key": "wrong"}, 400, "API_KEY_INVALID"),
    ],
)
def test_a_required_credential(headers: dict[str, str], status: int, reason: str) -> None:
    with Emulator(api_key="the-token") as emu:
        refused = post(emu, **headers)
        assert refused.status_code == status
        assert refused.json()["error"]["details"][0]["reason"] == reason
        emu.script(Reply(text="in"), Reply(text="in"))
        assert post(emu, authorization="Bearer the-token").status_code == 200
        assert post(emu, **{"x-goog-api-key": "the-token"}).status_code == 200


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.anyio
@pytest.mark.parametrize("express", [True, False], ids=["api_key", "token"])
async def test_a_refused_credential_is_an_authentication_error(express: bool, credentials: Any) -> None:
    with Emulator(api_key="the-right-one") as emu:
        if express:
            model = streamwrap.load_model(
                {
                    "model_type": "vertex_gemini_chat",
                    "model_name": MODEL,
                    "api_key": "wrong",
                    "base_url": emu.url,
                }
            )
        else:
            model = vertex_model(emu, credentials)
        with pytest.raises(streamwrap.AuthenticationError) as info:
            await model("hi")
        assert info.value.status_code == (400 if express else 401)
        assert info.value.provider == "vertex"


# -- compared with the recordings ----------------------------------------------------------------


def test_chunks_are_shaped_like_the_recorded_ones(emu: Emulator, recordings: Path) -> None:
    recorded = events(_recordings.named("vertex/2.5-pro_text_multichunk").body)
    emu.script(Reply(text=["Of course!\n\n", "The most", " common"], usage=(9, 3), model="gemini-2.5-pro"))
    ours = events(post(emu).content)
    for mine, theirs in ((ours[0], recorded[0]), (ours[-1], recorded[-1])):
        assert set(mine) == set(theirs) | {"candidates"} == set(theirs)
        assert set(mine["usageMetadata"]) <= set(theirs["usageMetadata"])
    assert ours[0]["usageMetadata"] == recorded[0]["usageMetadata"]
