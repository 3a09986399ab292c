"""The API key never shows: not in errors, reprs, logs, nor in the locals of streamwrap's
frames in an error's traceback (what Sentry-style reporters and
``traceback.TracebackException(capture_locals=True)`` print).

Every wrapper fails at each point a call can fail, against the emulator on 127.0.0.1:
connection refused, an HTTP 401 whose body echoes the key (JSON and plain text), an error
event mid-stream whose message echoes the key (and the same as an in-band error object),
a non-streaming 200 body that is an error echoing the key, and an idle timeout. The key is
then looked for in everything the error and the objects around it expose.

Frames of third-party code (httpx, the openai SDK, LiteLLM) are not ours: they are only
checked for being absent from what streamwrap renders (their exceptions are never the
cause or context of ours), not for what they hold.
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson
import pytest

import streamwrap
from streamwrap.testing import Emulator, Fault, Reply
from tests.support import providers
from tests.support.providers import Provider

pytestmark = pytest.mark.anyio

# Long and distinctive, so that finding it is never a coincidence.
SECRET = "sk-redact-me-5f0c9a1e7b3d42c8"
PACKAGE = Path(streamwrap.__file__).resolve().parent
TEXT = ["Hello", ", ", "world", ". ", "More ", "text."]


# Ollama's key comes from its environment variable here, every other one from the config:
# both ways a key reaches a wrapper are covered.
KEY_FROM_ENV = {"ollama_chat": "OLLAMA_API_KEY"}

# Every wrapper that reaches a server (local_chat runs in-process, with no key).
PROVIDERS = [p.param() for p in providers.PROVIDERS.values() if p.path is not None]


@pytest.fixture(params=PROVIDERS)
def provider(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Provider:
    p: Provider = request.param
    if p.model_type in KEY_FROM_ENV:
        monkeypatch.setenv(KEY_FROM_ENV[p.model_type], SECRET)
    return p


def provider_config(provider: Provider, root: str, **overrides: Any) -> dict[str, Any]:
    key = None if provider.model_type in KEY_FROM_ENV else SECRET
    return providers.config(root, provider.model_type, api_key=key, **overrides)


def make_model(provider: Provider, root: str, **overrides: Any) -> Any:
    # (Built here, not in the test: the config dict holding the key is not a local of the
    # test's frame, which is the top frame of every traceback checked below.)
    return streamwrap.load_model(provider_config(provider, root, **overrides))


# -- where the key could show -------------------------------------------------------------


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, its causes and its contexts, suppressed ones included."""
    seen: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop()
        if any(current is s for s in seen):
            continue
        seen.append(current)
        yield current
        todo += [e for e in (current.__cause__, current.__context__) if e is not None]


def _frames(tb: TracebackType | None) -> Iterator[Any]:
    while tb is not None:
        yield tb.tb_frame
        tb = tb.tb_next


def leaks_in_our_frames(exc: BaseException) -> list[str]:
    """``file:function: local`` for every local of a streamwrap frame, anywhere in the
    exception chain, whose repr contains the key."""
    found = []
    for error in _chain(exc):
        for frame in _frames(error.__traceback__):
            filename = Path(frame.f_code.co_filename).resolve()
            if not filename.is_relative_to(PACKAGE):
                continue
            for name, value in frame.f_locals.items():
                try:
                    shown = repr(value)
                except Exception:  # a repr that fails shows nothing
                    continue
                if SECRET in shown:
                    found.append(f"{filename.name}:{frame.f_code.co_name}: {name}")
    return found


def assert_no_key_in_error(exc: BaseException) -> None:
    assert isinstance(exc, streamwrap.StreamwrapError), f"not a typed error: {exc!r}"
    assert SECRET not in str(exc)
    assert SECRET not in repr(exc)
    assert SECRET not in repr(exc.args)
    for name in ("message", "body", "code", "partial_text", "partial_reasoning"):
        assert SECRET not in repr(getattr(exc, name, None)), name
    for error in _chain(exc):
        # Our errors never carry a third-party exception whose text holds the key.
        assert SECRET not in str(error), type(error)
    assert leaks_in_our_frames(exc) == []
    # What a reporter prints: the whole rendered chain, with every frame's locals (the
    # test's own frame included, which holds nothing secret).
    rendered = "".join(traceback.TracebackException.from_exception(exc, capture_locals=True).format())
    assert SECRET not in rendered
    assert SECRET not in "".join(traceback.format_exception(exc))


def assert_no_key_in_logs(caplog: pytest.LogCaptureFixture, exc: BaseException) -> None:
    # An application logging the error with its traceback, at DEBUG.
    logging.getLogger("streamwrap").debug("the call failed", exc_info=exc)
    logging.getLogger("app").error("the call failed: %s", exc, exc_info=exc)
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    ours = [r for r in caplog.records if r.name.split(".")[0] in ("streamwrap", "app")]
    assert len(ours) >= 2
    for record in ours:
        assert SECRET not in formatter.format(record)


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    # Importing LiteLLM sets the httpx logger to WARNING: put it back, or a test run after
    # the LiteLLM tests would see no request line at all and check nothing.
    for name in ("httpx", "httpx2", "openai"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


# -- the failures ---------------------------------------------------------------------------


async def test_connection_refused(provider: Provider, debug_logs: pytest.LogCaptureFixture) -> None:
    with Emulator() as gone:
        root = gone.url  # nothing listens there any more
    model = make_model(provider, root, timeout=10)
    with pytest.raises(streamwrap.StreamwrapError) as info:
        await model("hi")
    assert isinstance(info.value, streamwrap.ProviderConnectionError)
    assert_no_key_in_error(info.value)
    assert_no_key_in_logs(debug_logs, info.value)
    assert SECRET not in repr(model) and SECRET not in repr(vars(model))


ECHO_JSON = orjson.dumps(
    {
        "error": {
            "message": f"Incorrect API key provided: {SECRET}.",
            "type": "invalid_request_error",
            "code": "invalid_api_key",
            "param": SECRET,
            "details": [{"reason": "API_KEY_INVALID", "metadata": {"key": SECRET}}],
        },
        "code": "InvalidApiKey",
        "message": f"Invalid API-key provided: {SECRET}",
    }
)
ECHO_TEXT = f"401 Unauthorized: bad key {SECRET}\n".encode()
# (Test parameters name the bodies rather than hold them: parameters are locals of the
# test's frame, which the rendered traceback shows.)
ECHO_BODIES = {"json": (ECHO_JSON, "application/json"), "text": (ECHO_TEXT, "text/plain")}


@pytest.mark.parametrize("body", list(ECHO_BODIES))
@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
async def test_http_401_whose_body_echoes_the_key(
    emu: Emulator, provider: Provider, debug_logs: pytest.LogCaptureFixture, body: str, stream: bool
) -> None:
    emu.replay(ECHO_BODIES[body][0], status=401, content_type=ECHO_BODIES[body][1], split=None)
    model = make_model(provider, emu.url)
    with pytest.raises(streamwrap.StreamwrapError) as info:
        await model("hi", stream=stream)
    err = info.value
    assert isinstance(err, streamwrap.AuthenticationError)
    assert err.status_code == 401
    assert "**********" in repr(err.body)  # scrubbed, not dropped
    assert_no_key_in_error(err)
    assert_no_key_in_logs(debug_logs, err)
    # The key did travel, to the server only.
    (request,) = emu.requests
    assert SECRET in "".join(request.headers.values()) or provider.model_type == "litellm_chat"


ECHO_FAULTS = {
    "error-event": Fault.error_event_after(
        2, message=f"the key {SECRET} was revoked", code="invalid_api_key"
    ),
    "inband-error": Fault.inband_error_after(
        2, message=f"the key {SECRET} was revoked", code="invalid_api_key"
    ),
}


@pytest.mark.parametrize("fault", list(ECHO_FAULTS))
async def test_mid_stream_error_whose_message_echoes_the_key(
    emu: Emulator, provider: Provider, debug_logs: pytest.LogCaptureFixture, fault: str
) -> None:
    emu.script(Reply(text=TEXT, fault=ECHO_FAULTS[fault]))
    model = make_model(provider, emu.url)
    response = await model("hi")
    received = []
    with pytest.raises(streamwrap.StreamwrapError) as info:
        async for item in response.stream:
            received.append(item.text_so_far)
    err = info.value
    assert isinstance(err, streamwrap.ProviderStreamError)
    assert err.partial_text == "Hello, "
    assert "was revoked" in str(err) and "**********" in str(err)
    assert_no_key_in_error(err)
    assert_no_key_in_logs(debug_logs, err)
    assert SECRET not in repr(response) and SECRET not in repr(model)
    assert response.error is err and response.finish_reason == "error"


# A 200 body that is an error object, in each provider's shape at once (OpenAI and Gemini
# read "error", DashScope "code"/"message", Ollama "error").
ERROR_200 = orjson.dumps(
    {
        "error": {"message": f"key {SECRET} is not allowed here", "code": "x"},
        "code": "x",
        "message": f"key {SECRET} is not allowed here",
    }
)


async def test_non_streaming_error_body_that_echoes_the_key(
    emu: Emulator, provider: Provider, debug_logs: pytest.LogCaptureFixture
) -> None:
    emu.replay(ERROR_200, status=200, content_type="application/json", split=None)
    model = make_model(provider, emu.url)
    with pytest.raises(streamwrap.StreamwrapError) as info:
        await model("hi", stream=False)
    assert_no_key_in_error(info.value)
    assert_no_key_in_logs(debug_logs, info.value)


async def test_idle_timeout(emu: Emulator, provider: Provider, debug_logs: pytest.LogCaptureFixture) -> None:
    emu.script(Reply(text=TEXT, fault=Fault.stall_after(2, seconds=3)))
    model = make_model(provider, emu.url, idle_timeout=0.3)
    response = await model("hi")
    with pytest.raises(streamwrap.StreamwrapError) as info:
        async for _ in response.stream:
            pass
    assert isinstance(info.value, streamwrap.StreamTimeoutError)
    assert info.value.partial_text == "Hello, "
    assert_no_key_in_error(info.value)
    assert_no_key_in_logs(debug_logs, info.value)
    assert SECRET not in repr(response)


async def test_bad_client_args_fail_without_the_key(provider: Provider) -> None:
    # The SDK client is built with the key on first use: a client_args mistake raises
    # from inside that construction, through frames that hand the key over.
    if provider.model_type == "litellm_chat":
        pytest.skip("LiteLLM's client_args are call arguments, checked by LiteLLM per call")
    with Emulator() as emu:
        model = make_model(provider, emu.url, client_args={"no_such_option": 1})
        with pytest.raises(streamwrap.StreamwrapError) as info:
            await model("hi")
    assert "no_such_option" in str(info.value)
    assert_no_key_in_error(info.value)


# -- the redaction itself ---------------------------------------------------------------------


def _decoder_error(raw: bytes) -> streamwrap.StreamProtocolError:
    try:
        try:
            raw.decode("ascii")
        except UnicodeDecodeError:
            raise streamwrap.StreamProtocolError(
                f"cannot decode {raw!r}", provider="p", code=raw.decode("latin-1")
            ) from None
    except streamwrap.StreamProtocolError as exc:
        return exc
    raise AssertionError("no error")


def test_redact_error_scrubs_fields_and_drops_the_frames_that_hold_the_bytes() -> None:
    from streamwrap._secret import Secret, redact_error

    err = _decoder_error(f"\xff {SECRET}".encode())
    # Before: the frame that decoded the bytes holds them (and so the key) in a local.
    assert any(SECRET in repr(frame.f_locals) for frame in _frames(err.__traceback__))
    assert err.__context__ is not None
    cause = OSError("connection reset")
    err.__cause__ = cause
    assert redact_error(err, Secret(SECRET)) is err
    assert SECRET not in str(err) and SECRET not in repr(err.args) and SECRET not in str(err.code)
    assert "**********" in err.message
    assert err.__traceback__ is None
    assert err.__context__ is None  # the suppressed UnicodeDecodeError (it holds the bytes)
    assert err.__cause__ is cause  # an explicit cause is the caller's to keep


def test_redact_error_without_a_key_only_drops_the_frames() -> None:
    from streamwrap._secret import redact_error

    err = _decoder_error(b"\xff plain")
    message = err.message
    assert redact_error(err, None) is err
    assert err.message == message and err.__traceback__ is None


# -- credentials inside the base_url ------------------------------------------------------------
#
# A base_url may carry a password (userinfo) and keys in its query string. streamwrap names the
# URL it could not reach, and a web app forwards that text to the browser: the URL's
# credentials are masked wherever it shows (error fields, str, repr, args, logs, reprs).

URL_USER = "urluser-0d9e"
URL_PASSWORD = "urlpass-7c41b2"
URL_KEY = "urlkey-e5a9f3"
URL_TOKEN = "urltok-1b6c80"
URL_SECRETS = (URL_USER, URL_PASSWORD, URL_KEY, URL_TOKEN)


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on: connecting is refused at once."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def credentialed_root(port: int) -> str:
    return f"http://{URL_USER}:{URL_PASSWORD}@127.0.0.1:{port}"


def credentialed_base_url(provider: Provider, port: int) -> str:
    """The provider's base_url on a closed port, with userinfo and secret query parameters
    (and a harmless one, which stays)."""
    return provider.base_url(credentialed_root(port)) + f"?api-key={URL_KEY}&Access_Token={URL_TOKEN}&v=2"


def assert_no_url_secret(text: str) -> None:
    for secret in URL_SECRETS:
        assert secret not in text, (secret, text)


async def test_credentials_in_the_base_url_are_masked_in_errors_reprs_and_logs(
    provider: Provider, debug_logs: pytest.LogCaptureFixture
) -> None:
    port = closed_port()
    model = streamwrap.load_model(
        provider_config(provider, "", timeout=10) | {"base_url": credentialed_base_url(provider, port)}
    )
    assert_no_url_secret(repr(model))
    if provider.model_type != "ollama_chat":  # (the Ollama wrapper keeps only host and port)
        assert f"127.0.0.1:{port}" in repr(model) and "**********" in repr(model)
    with pytest.raises(streamwrap.StreamwrapError) as info:
        await model("hi")
    err = info.value
    assert isinstance(err, streamwrap.ProviderConnectionError)
    # Still says where the request went.
    assert f"127.0.0.1:{port}" in str(err) or provider.model_type == "litellm_chat"
    for shown in (str(err), repr(err), repr(err.args), err.message, "".join(traceback.format_exception(err))):
        assert_no_url_secret(shown)
    for error in _chain(err):
        assert_no_url_secret(str(error))
    logging.getLogger("streamwrap").warning("the call failed: %s", err, exc_info=err)
    logging.getLogger("app").error("the call failed: %r", err, exc_info=err)
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    ours = [r for r in debug_logs.records if r.name.split(".")[0] in ("streamwrap", "app")]
    assert len(ours) >= 2
    for record in ours:
        assert_no_url_secret(formatter.format(record))


async def test_credentials_in_the_base_url_stay_out_of_the_http_librarys_request_log(
    emu: Emulator, provider: Provider, debug_logs: pytest.LogCaptureFixture
) -> None:
    # httpx logs every request's URL at INFO ("HTTP Request: POST http://user:pass@..."),
    # for any application that turns INFO logging on.
    emu.script(Reply(text=TEXT))
    root = emu.url
    if provider.model_type != "litellm_chat":
        # LiteLLM sends with aiohttp, which refuses userinfo beside an Authorization header
        # before anything is sent ("Cannot combine AUTHORIZATION header with ... credentials
        # encoded in URL"): only the query parameter is tried there.
        root = root.replace("http://", f"http://{URL_USER}:{URL_PASSWORD}@")
    model = streamwrap.load_model(
        provider_config(provider, "") | {"base_url": provider.base_url(root) + f"?api-key={URL_KEY}"}
    )
    try:
        response = await model("hi")
        await response.aread()
    except streamwrap.StreamwrapError as exc:  # (the query string may spoil the path: a 404)
        assert_no_url_secret(str(exc))
    assert emu.requests, "no request reached the server"
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    lines = [formatter.format(record) for record in debug_logs.records]
    if provider.model_type != "litellm_chat":
        # (Ollama's wrapper drops the userinfo itself.)
        masked = "http://127.0.0.1" if provider.model_type == "ollama_chat" else "http://**********@127.0.0.1"
        assert any(f"HTTP Request: POST {masked}" in line for line in lines), lines
    for line in lines:
        assert_no_url_secret(line)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("http://u:p@host/v1", "http://**********@host/v1"),
        ("https://key-only@host:8443/v1", "https://**********@host:8443/v1"),
        ("http://u:p@ss@host/", "http://**********@host/"),  # an unencoded "@" in the password
        ("http://host/v1?api-key=K&v=1", "http://host/v1?api-key=**********&v=1"),
        ("http://host/v1?v=1&API_KEY=K", "http://host/v1?v=1&API_KEY=**********"),
        ("http://host/v1?apiKey=K", "http://host/v1?apiKey=**********"),
        ("http://host/v1?key=K", "http://host/v1?key=**********"),
        ("http://host/v1?x-goog-api-key=K", "http://host/v1?x-goog-api-key=**********"),
        ("http://host/v1?token=K&access_token=K", "http://host/v1?token=**********&access_token=**********"),
        ("https://s.blob/x?sv=2024&sig=K&se=1", "https://s.blob/x?sv=2024&sig=**********&se=1"),
        (
            "https://s3/x?X-Amz-Signature=K&X-Amz-Credential=K",
            "https://s3/x?X-Amz-Signature=**********&X-Amz-Credential=**********",
        ),
        (
            "http://h/?password=K&client_secret=K&pwd=K",
            "http://h/?password=**********&client_secret=**********&pwd=**********",
        ),
        ("http://h/cb#access_token=K&state=s", "http://h/cb#access_token=**********&state=s"),
        ("http://h/?api%2Dkey=K", "http://h/?api%2Dkey=**********"),
        # In a message: the URL quoted, a relative URL, several URLs.
        (
            "cannot reach 'http://u:p@h/v1?key=K': refused",
            "cannot reach 'http://**********@h/v1?key=**********': refused",
        ),
        ("404: no route /v1?api-key=K/chat/completions", "404: no route /v1?api-key=**********"),
        ("a http://u:p@a/ b http://u:p@b/", "a http://**********@a/ b http://**********@b/"),
        # What stays.
        ("http://host:8000/v1?model=m&stream=true", "http://host:8000/v1?model=m&stream=true"),
        ("write to me@example.com", "write to me@example.com"),
        ("http://host/v1?key=", "http://host/v1?key="),
        ("no url here", "no url here"),
    ],
)
def test_url_redaction(text: str, expected: str) -> None:
    from streamwrap._url_redaction import redact_urls

    assert redact_urls(text) == expected
    assert redact_urls(expected) == expected  # (masking twice changes nothing)


def test_errors_mask_urls_in_their_message_whoever_builds_them() -> None:
    url = f"http://{URL_USER}:{URL_PASSWORD}@h/v1?key={URL_KEY}"
    errors: list[streamwrap.StreamwrapError] = [
        streamwrap.ProviderConnectionError(f"cannot reach {url}", provider="p"),
        streamwrap.ServerError(f"bad gateway {url}", provider="p", status_code=502),
        streamwrap.StreamInterruptedError(f"lost {url}", provider="p", partial_text="kept http://a:b@c/"),
        streamwrap.ConfigError(f"bad base_url {url!r}", key="base_url"),
        streamwrap.InputError(f"invalid host {url!r}"),
    ]
    for err in errors:
        for shown in (str(err), repr(err), repr(err.args), getattr(err, "message", "")):
            assert_no_url_secret(shown)
        assert "**********@h/v1?key=**********" in str(err)
    # The model's own words are not touched.
    assert errors[2].partial_text == "kept http://a:b@c/"  # type: ignore[attr-defined]


# -- ... and through the web app ----------------------------------------------------------------


def test_the_web_app_never_sends_base_url_credentials_to_the_browser(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pytest.importorskip("starlette")
    pytest.importorskip("uvicorn")
    pytest.importorskip("websockets")
    import httpx
    from websockets.sync.client import connect

    from streamwrap.web import chat_app
    from tests.support.server import Server

    caplog.set_level(logging.DEBUG)
    port = closed_port()
    model = streamwrap.load_model(
        {
            "model_type": "openai_chat",
            "model_name": "m",
            "max_retries": 0,
            "api_key": SECRET,
            "base_url": f"{credentialed_root(port)}/v1?api-key={URL_KEY}&token={URL_TOKEN}",
        }
    )
    token = "web-token-for-the-test"
    server = Server(chat_app(model, token=token))
    auth = {"authorization": f"Bearer {token}"}
    try:
        sse = httpx.post(server.url + "/api/chat", json={"prompt": "hi"}, headers=auth, timeout=20)
        assert sse.status_code == 200
        chunks = [json.loads(line[6:]) for line in sse.text.splitlines() if line.startswith("data: {")]
        (error,) = [c for c in chunks if c["type"] == "error"]
        assert "cannot reach" in error["errorText"] and f"127.0.0.1:{port}" in error["errorText"]

        text = httpx.get(server.url + "/api/chat/text", params={"prompt": "hi"}, headers=auth, timeout=20)
        assert text.status_code == 502 and text.text.startswith("error: ") and "cannot reach" in text.text

        with connect(server.ws_url, additional_headers=auth, open_timeout=5) as ws:
            ws.send(json.dumps({"type": "chat", "prompt": "hi"}))
            frames = []
            while not frames or frames[-1]["type"] not in ("end", "error"):
                frame = json.loads(ws.recv(timeout=20))
                if frame["type"] != "heartbeat":
                    frames.append(frame)
        assert "cannot reach" in json.dumps(frames)

        page = httpx.get(server.url + "/", headers=auth, timeout=20)
        for shown in (sse.text, text.text, json.dumps(frames), page.text):
            assert_no_url_secret(shown)
            assert SECRET not in shown
    finally:
        server.stop()
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    for record in caplog.records:
        if record.name.split(".")[0] in ("streamwrap", "uvicorn"):
            assert_no_url_secret(formatter.format(record))
