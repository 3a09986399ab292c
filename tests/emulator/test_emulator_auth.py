"""The emulator's API key option (``Emulator(api_key=...)``, ``python -m streamwrap.testing
--api-key KEY``) and the command's banner.

A required key is checked as each provider checks it, and a missing or wrong one answered
with the provider's own status and body (OpenAI's and Gemini's compared with real recorded
refusals where ../shared/recordings is present). The real SDKs (openai, dashscope,
google-genai) must read those answers as authentication failures, and streamwrap's wrappers
must raise :class:`streamwrap.AuthenticationError`. The command is run as a real
subprocess: every ``base_url`` its banner prints must work with the matching
``model_type``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import streamwrap
import streamwrap.testing
from streamwrap.testing import Emulator, Reply
from tests.support import providers
from tests.support import recordings as _recordings

pytestmark = pytest.mark.timeout(60)

KEY = "sk-emulator-key-0123456789"
# The key of the recorded OpenAI refusal (openai/error_401_invalid_api_key): OpenAI showed
# it as "invalid-*****2345".
RECORDED_WRONG_KEY = "invalid-key-12345"
MESSAGES = [{"role": "user", "content": "hi"}]
OPENAI_PATH = "/chat/completions"
DASHSCOPE_PATH = "/services/aigc/text-generation/generation"
GEMINI_STREAM = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
OPENAI_NO_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer"
    " auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if you're"
    " accessing the API from your browser and are prompted for a username. You can obtain an API key from"
    " https://platform.openai.com/account/api-keys."
)


@pytest.fixture(scope="module")
def keyed() -> Iterator[Emulator]:
    with Emulator(api_key=KEY) as emu:
        yield emu


@pytest.fixture
def kemu(keyed: Emulator) -> Iterator[Emulator]:
    keyed.reset()
    yield keyed
    keyed.reset()


def bearer(key: str | None) -> dict[str, str]:
    return {} if key is None else {"Authorization": f"Bearer {key}"}


def openai_post(emu: Emulator, key: str | None) -> httpx.Response:
    body = {"model": "m", "messages": MESSAGES, "stream": True}
    return httpx.post(emu.openai_base_url + OPENAI_PATH, json=body, headers=bearer(key))


def dashscope_post(emu: Emulator, key: str | None, *, stream: bool = True) -> httpx.Response:
    headers = {**bearer(key), **({"X-DashScope-SSE": "enable"} if stream else {})}
    body = {"model": "qwen-plus", "input": {"messages": MESSAGES}, "parameters": {}}
    return httpx.post(emu.dashscope_base_url + DASHSCOPE_PATH, json=body, headers=headers)


def gemini_post(
    emu: Emulator, key: str | None, *, in_query: bool = False, path: str = GEMINI_STREAM
) -> httpx.Response:
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    if in_query and key is not None:
        return httpx.post(f"{emu.gemini_base_url}{path}&key={key}", json=body)
    return httpx.post(
        emu.gemini_base_url + path, json=body, headers={} if key is None else {"x-goog-api-key": key}
    )


def recorded(recordings: Path, name: str) -> tuple[int, str, Any]:
    """A recorded refusal: status, content type, parsed body."""
    recording = _recordings.named(name)
    meta, body = recording.meta, json.loads(recording.body)
    content_type = meta["response"]["content_type"]
    return (
        meta["response"]["status"],
        content_type[0] if isinstance(content_type, list) else content_type,
        body,
    )


# -- the option ------------------------------------------------------------------------------


def test_any_key_is_accepted_by_default(emu: Emulator) -> None:
    assert emu.api_key is None
    for key in (None, "anything"):
        assert openai_post(emu, key).status_code == 200
        assert dashscope_post(emu, key).status_code == 200
        assert gemini_post(emu, key).status_code == 200


@pytest.mark.parametrize("bad", ["", 5, b"key"])
def test_api_key_must_be_a_non_empty_string(bad: Any) -> None:
    with pytest.raises(ValueError, match="api_key must be a non-empty string"):
        Emulator(api_key=bad)


def test_the_right_key_is_let_through_in_every_dialect(kemu: Emulator) -> None:
    kemu.script(Reply(text="a"), Reply(text="b"), Reply(text="c"), Reply(text="d"), Reply(text="e"))
    assert kemu.api_key == KEY
    assert openai_post(kemu, KEY).status_code == 200
    assert dashscope_post(kemu, KEY).status_code == 200
    assert gemini_post(kemu, KEY).status_code == 200
    assert gemini_post(kemu, KEY, in_query=True).status_code == 200
    assert (
        httpx.post(kemu.ollama_base_url + "/api/chat", json={"model": "m", "messages": MESSAGES}).status_code
        == 200
    )
    assert len(kemu.requests) == 5


def test_openai_missing_and_wrong_key(kemu: Emulator) -> None:
    kemu.script(Reply(text=["kept-for-the-right-key"]))
    missing = openai_post(kemu, None)
    assert missing.status_code == 401
    assert missing.headers["content-type"].startswith("application/json")
    assert missing.json() == {
        "error": {"message": OPENAI_NO_KEY, "type": "invalid_request_error", "param": None, "code": None}
    }
    wrong = openai_post(kemu, "sk-wrong-key-000000000000abcd")
    assert wrong.status_code == 401
    error = wrong.json()["error"]
    assert (error["type"], error["code"], error["param"]) == (
        "invalid_request_error",
        "invalid_api_key",
        None,
    )
    # Masked as OpenAI masks it: the first 8 and the last 4 characters.
    assert error["message"].startswith("Incorrect API key provided: sk-wrong*****************abcd. ")
    assert "sk-wrong-key" not in wrong.text
    short = openai_post(kemu, "short-key")
    assert "Incorrect API key provided: *********. " in short.json()["error"]["message"]
    # A refused request takes no scripted reply: the next, authorised one gets it.
    assert "kept-for-the-right-key" in openai_post(kemu, KEY).text
    assert len(kemu.requests) == 4


def test_openai_wrong_key_is_the_recorded_refusal(kemu: Emulator, recordings: Path) -> None:
    status, _, body = recorded(recordings, "openai/error_401_invalid_api_key")
    wrong = openai_post(kemu, RECORDED_WRONG_KEY)
    assert wrong.status_code == status == 401
    assert wrong.json() == body


@pytest.mark.parametrize("stream", [True, False], ids=["sse", "json"])
def test_dashscope_missing_and_wrong_key(kemu: Emulator, stream: bool) -> None:
    for key, message in ((None, "No API-key provided."), ("sk-wrong", "Invalid API-key provided.")):
        refused = dashscope_post(kemu, key, stream=stream)
        assert refused.status_code == 401
        assert refused.headers["content-type"].startswith("application/json")
        body = refused.json()
        assert (body["code"], body["message"]) == ("InvalidApiKey", message)
        assert body["request_id"] == refused.headers["x-request-id"]


def test_gemini_wrong_key_is_the_recorded_refusal(kemu: Emulator, recordings: Path) -> None:
    status, content_type, body = recorded(recordings, "gemini/error_400_invalid_api_key")
    for in_query in (False, True):
        wrong = gemini_post(kemu, "AIza-wrong", in_query=in_query)
        assert wrong.status_code == status == 400  # Google's answer to a bad key: not a 401
        assert wrong.headers["content-type"] == content_type  # the stream's type, a JSON body
        assert wrong.json() == body


def test_gemini_missing_and_wrong_key(kemu: Emulator) -> None:
    missing = gemini_post(kemu, None)
    assert missing.status_code == 403
    assert missing.json()["error"]["status"] == "PERMISSION_DENIED"
    assert missing.json()["error"]["message"].startswith("Method doesn't allow unregistered callers")
    wrong = gemini_post(kemu, "AIza-wrong", path="/v1beta/models/gemini-2.5-flash:generateContent")
    assert wrong.status_code == 400
    assert wrong.headers["content-type"].startswith("application/json")
    assert wrong.json()["error"]["details"][0]["reason"] == "API_KEY_INVALID"


def test_ollama_is_not_checked(kemu: Emulator) -> None:
    # Ollama has no API keys: a server that required one would not be Ollama.
    for headers in ({}, bearer("wrong")):
        response = httpx.post(
            kemu.ollama_base_url + "/api/chat", json={"model": "m", "messages": MESSAGES}, headers=headers
        )
        assert response.status_code == 200


# -- the real SDKs read the refusals as authentication failures -------------------------------


def test_openai_sdk_raises_its_authentication_error(kemu: Emulator) -> None:
    openai = pytest.importorskip("openai")
    with openai.OpenAI(
        api_key="sk-wrong-key-000000000000abcd", base_url=kemu.openai_base_url, max_retries=0
    ) as client:
        with pytest.raises(openai.AuthenticationError) as info:
            client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    assert info.value.status_code == 401
    assert info.value.code == "invalid_api_key"


def test_dashscope_sdk_reports_invalid_api_key(kemu: Emulator) -> None:
    generation = pytest.importorskip("dashscope.aigc.generation")
    kwargs: dict[str, Any] = {
        "model": "qwen-plus",
        "messages": MESSAGES,
        "base_address": kemu.dashscope_base_url,
    }
    failed = generation.Generation.call(api_key="sk-wrong", **kwargs)
    assert (failed.status_code, failed.code, failed.message) == (
        401,
        "InvalidApiKey",
        "Invalid API-key provided.",
    )
    streamed = list(generation.Generation.call(api_key="sk-wrong", stream=True, **kwargs))
    assert [(r.status_code, r.code) for r in streamed] == [(401, "InvalidApiKey")]
    kemu.script(Reply(text="ok"))
    assert generation.Generation.call(api_key=KEY, **kwargs).status_code == 200


def test_google_genai_raises_its_client_error(kemu: Emulator) -> None:
    genai = pytest.importorskip("google.genai")
    types = pytest.importorskip("google.genai.types")
    errors = pytest.importorskip("google.genai.errors")
    options = types.HttpOptions(base_url=kemu.gemini_base_url, api_version="v1beta")
    client = genai.Client(api_key="AIza-wrong", http_options=options)
    try:
        with pytest.raises(errors.ClientError) as info:
            list(client.models.generate_content_stream(model="gemini-2.5-flash", contents="hi"))
    finally:
        client.close()
    assert (info.value.code, info.value.status) == (400, "INVALID_ARGUMENT")
    assert info.value.details["error"]["details"][0]["reason"] == "API_KEY_INVALID"


# -- streamwrap's wrappers raise AuthenticationError -----------------------------------------


def load(model_type: str, emu: Emulator, key: str) -> Any:
    return providers.make_model(emu, model_type, model_name="m", api_key=key, max_retries=2)


@pytest.mark.anyio
@pytest.mark.parametrize("model_type", ["openai_chat", "dashscope_chat", "gemini_chat"])
async def test_a_wrong_key_is_an_authentication_error(kemu: Emulator, model_type: str) -> None:
    kemu.script(Reply(text="for the right key"))
    with pytest.raises(streamwrap.AuthenticationError) as info:
        await load(model_type, kemu, "wrong-key-000000000000")("hi")
    assert "wrong-key-000000000000" not in str(info.value)
    assert len(kemu.requests) == 1  # an authentication error is not retried
    response = await load(model_type, kemu, KEY)("hi")
    assert await response.aread() == "for the right key"


@pytest.mark.anyio
async def test_ollama_chat_gets_through_with_any_key(kemu: Emulator) -> None:
    kemu.script(Reply(text="no keys here"))
    response = await load("ollama_chat", kemu, "whatever")("hi")
    assert await response.aread() == "no keys here"


# -- python -m streamwrap.testing ------------------------------------------------------------


def _command_env() -> dict[str, str]:
    root = Path(streamwrap.testing.__file__).resolve().parents[2]
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}


def test_default_port_is_not_the_one_of_streamwrap_serve() -> None:
    from streamwrap import _cli
    from streamwrap.testing.__main__ import DEFAULT_PORT, _parse_args

    assert _parse_args([]).port == DEFAULT_PORT == 8090
    assert _cli._parser().parse_args(["serve"]).port != DEFAULT_PORT


def test_empty_api_key_is_refused_by_the_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "streamwrap.testing", "--port", "0", "--api-key", ""],
        capture_output=True,
        text=True,
        env=_command_env(),
        timeout=30,
    )
    assert done.returncode == 2
    assert "--api-key needs a non-empty KEY" in done.stderr


@pytest.fixture
def served() -> Iterator[tuple[str, list[str]]]:
    """The command as a subprocess requiring KEY: (its address, its banner lines)."""
    command = [sys.executable, "-m", "streamwrap.testing", "--port", "0", "--api-key", KEY, "--chunks", "2"]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_command_env()
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline().rstrip("\n") for _ in range(6)]
        yield lines[0].removeprefix("streamwrap-emulator listening on "), lines
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    assert out == ""  # nothing after the banner
    assert KEY not in "\n".join(lines)


@pytest.mark.anyio
async def test_banner_prints_the_base_url_of_every_dialect(served: tuple[str, list[str]]) -> None:
    url, lines = served
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url), lines[0]
    printed = dict(re.findall(r"^  base_url for (\w+): +(\S+)", "\n".join(lines), re.MULTILINE))
    assert printed == {"openai": url + "/v1", "dashscope": url + "/api/v1", "gemini": url, "ollama": url}
    assert lines[5] == "  API key: only the one given with --api-key (Ollama requests are not checked)"
    # Each printed base_url is the one its model_type needs, as printed.
    for dialect in ("openai", "dashscope", "gemini", "ollama"):
        model_type = f"{dialect}_chat"
        response = await load(model_type, printed[dialect], KEY)("hi")
        assert await response.aread() == "tok tok ", model_type
        if dialect != "ollama":
            with pytest.raises(streamwrap.AuthenticationError):
                await load(model_type, printed[dialect], "wrong-key")("hi")


def test_banner_without_a_key() -> None:
    command = [sys.executable, "-m", "streamwrap.testing", "--port", "0"]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_command_env()
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline().rstrip("\n") for _ in range(6)]
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=10)
    assert lines[0].startswith("streamwrap-emulator listening on http://127.0.0.1:")
    assert lines[5] == "  API key: any key is accepted (--api-key KEY requires one)"
    assert process.returncode == 0


def test_a_busy_port_is_a_one_line_error() -> None:
    with Emulator() as busy:
        port = busy.url.rsplit(":", 1)[1]
        done = subprocess.run(
            [sys.executable, "-m", "streamwrap.testing", "--port", port],
            capture_output=True,
            text=True,
            env=_command_env(),
            timeout=30,
        )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith(f"python -m streamwrap.testing: cannot listen on 127.0.0.1:{port}: ")
    assert "--port 0 picks a free port" in done.stderr
    assert "Traceback" not in done.stderr
