"""``streamwrap serve`` and :func:`streamwrap.web.chat_app` on a real uvicorn server, backed
by an ``openai_chat`` model pointed at the emulator: the routes, their errors, the token,
the origin and host checks, and the command itself as a subprocess."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytest.importorskip("starlette")
uvicorn = pytest.importorskip("uvicorn")
pytest.importorskip("websockets")
import httpx  # noqa: E402
from websockets.exceptions import InvalidStatus  # noqa: E402
from websockets.sync.client import connect  # noqa: E402
from websockets.typing import Subprotocol  # noqa: E402

import streamwrap  # noqa: E402
from streamwrap._providers._default_model import ENV_PROVIDERS as _ENV_PROVIDERS  # noqa: E402
from streamwrap.testing import Emulator, Reply  # noqa: E402
from streamwrap.web import chat_app  # noqa: E402
from tests.support.processes import sigint_as_in_a_terminal  # noqa: E402
from tests.support.server import Server  # noqa: E402

TOKEN = "t0ken-for-tests"
# Everything that makes the CLI pick a provider from the environment (as in test_cli.py).
PROVIDER_ENV = (
    *(variable for variable, _ in _ENV_PROVIDERS),
    "OPENAI_BASE_URL",
    "DASHSCOPE_HTTP_BASE_URL",
    "GOOGLE_GEMINI_BASE_URL",
    "ANTHROPIC_BASE_URL",
    "ZHIPUAI_BASE_URL",
    "ZAI_BASE_URL",
    "AZURE_OPENAI_ENDPOINT",
    "OPENAI_API_VERSION",
    "OLLAMA_HOST",
    "OLLAMA_MODEL",
    "OLLAMA_API_KEY",
    "STREAMWRAP_MODEL",
    "STREAMWRAP_TOKEN",
)


@pytest.fixture
def serve(model: streamwrap.ModelWrapper) -> Iterator[Callable[..., Server]]:
    """Start ``chat_app(model, **options)``; stopped after the test."""
    servers: list[Server] = []

    def start(**options: Any) -> Server:
        server = Server(chat_app(model, **options))
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def sse_events(body: str) -> list[dict[str, str]]:
    """The events of an SSE body, as {field: value}, comments dropped."""
    events = []
    for block in body.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            fields[name] = value[1:] if value.startswith(" ") else value
        if fields:
            events.append(fields)
    return events


def ui_chunks(body: str) -> list[Any]:
    """The UI message stream's chunks (``[DONE]`` as the string)."""
    return [
        e["data"] if e["data"] == "[DONE]" else json.loads(e["data"]) for e in sse_events(body) if "data" in e
    ]


def text_of(chunks: list[Any]) -> str:
    return "".join(c["delta"] for c in chunks if isinstance(c, dict) and c["type"] == "text-delta")


def use_chat_body(*turns: tuple[str, str]) -> dict[str, Any]:
    """A body as the AI SDK's useChat DefaultChatTransport sends it."""
    messages = []
    for i, (role, text) in enumerate(turns):
        parts: list[dict[str, Any]] = [{"type": "text", "text": text, "state": "done"}]
        if role == "assistant":
            parts = [
                {"type": "step-start"},
                {"type": "reasoning", "text": "thinking...", "state": "done"},
                *parts,
            ]
        messages.append({"id": f"m{i}", "role": role, "parts": parts})
    return {"id": "chat-1", "messages": messages, "trigger": "submit-message", "messageId": None}


# -- the page ---------------------------------------------------------------------------------


def test_the_page_is_served_with_a_strict_content_security_policy(serve: Callable[..., Server]) -> None:
    server = serve(title="My <chat>")
    reply = httpx.get(server.url + "/")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/html")
    assert reply.headers["x-content-type-options"] == "nosniff"
    assert reply.headers["referrer-policy"] == "no-referrer"
    csp = dict(d.strip().split(" ", 1) for d in reply.headers["content-security-policy"].split(";"))
    assert csp["default-src"] == "'none'"
    assert csp["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in reply.headers["content-security-policy"]
    assert csp["connect-src"] == f"'self' ws://127.0.0.1:{server.port} wss://127.0.0.1:{server.port}"
    # The hashes are those of the inline blocks as served: the title went in escaped, and
    # nothing the substitution did reached a script or style.
    for tag in ("script", "style"):
        (block,) = re.findall(rf"<{tag}>(.*?)</{tag}>", reply.text, flags=re.DOTALL)
        digest = base64.b64encode(hashlib.sha256(block.encode()).digest()).decode()
        assert csp[f"{tag}-src"] == f"'sha256-{digest}'"
    assert "<title>My &lt;chat&gt;</title>" in reply.text
    assert "openai_chat · emulator-1" in reply.text
    assert 'data-testid="prompt"' in reply.text
    assert "http://" not in reply.text.replace("http://www.w3.org", "")  # nothing external


def test_chat_app_checks_its_arguments(model: streamwrap.ModelWrapper) -> None:
    with pytest.raises(streamwrap.InputError, match="token"):
        chat_app(model, token=" ")
    with pytest.raises(streamwrap.InputError, match="allowed_origins"):
        chat_app(model, allowed_origins="http://localhost:5173")  # type: ignore[arg-type]
    with pytest.raises(streamwrap.InputError, match="heartbeat"):
        chat_app(model, heartbeat=0)


def test_healthz(serve: Callable[..., Server]) -> None:
    reply = httpx.get(serve().url + "/healthz")
    assert reply.status_code == 200
    assert reply.json() == {"ok": True, "model": "emulator-1", "model_type": "openai_chat"}


# -- POST /api/chat -----------------------------------------------------------------------------


def test_chat_answers_a_use_chat_body_with_the_ui_message_stream(
    emu: Emulator, serve: Callable[..., Server]
) -> None:
    emu.script(Reply(reasoning=["hm"], text=["Hel", "lo ", "world", "!"], usage=(7, 5)))
    server = serve()
    body = use_chat_body(("system", "Be brief."), ("user", "hi"), ("assistant", "Hello."), ("user", "again"))
    reply = httpx.post(server.url + "/api/chat", json=body)
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/event-stream")
    assert reply.headers["x-vercel-ai-ui-message-stream"] == "v1"
    chunks = ui_chunks(reply.text)
    assert chunks[0]["type"] == "start"
    assert chunks[-1] == "[DONE]"
    assert [c["type"] for c in chunks[:-1]].count("finish") == 1
    assert text_of(chunks) == "Hello world!"
    assert "".join(c["delta"] for c in chunks[:-1] if c["type"] == "reasoning-delta") == "hm"
    # Every event names the response and its position; the last one is marked final.
    events = [e for e in sse_events(reply.text) if e.get("data") != "[DONE]"]
    ids = [e["id"].rsplit(":", 1) for e in events]
    assert len({rid for rid, _ in ids}) == 1
    assert [int(n) for _, n in ids] == sorted(int(n) for _, n in ids)
    assert events[-1].get("event") == "final"
    # Only the text went upstream: not the reasoning part, not the step marker.
    assert emu.requests[-1].json["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "again"},
    ]
    assert emu.requests[-1].json["stream"] is True


@pytest.mark.parametrize(
    ("body", "upstream"),
    [
        ({"messages": [{"role": "user", "content": "plain"}]}, [{"role": "user", "content": "plain"}]),
        ({"prompt": "just a prompt"}, [{"role": "user", "content": "just a prompt"}]),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                    }
                ]
            },
            [{"role": "user", "content": "ab"}],
        ),
        (
            # An assistant reply stopped before any text is left out.
            {
                "messages": [
                    {"role": "user", "parts": [{"type": "text", "text": "one"}]},
                    {"role": "assistant", "parts": [{"type": "step-start"}]},
                    {"role": "user", "parts": [{"type": "text", "text": "two"}]},
                ]
            },
            [{"role": "user", "content": "one"}, {"role": "user", "content": "two"}],
        ),
    ],
    ids=["chat-messages", "prompt", "content-parts", "empty-assistant"],
)
def test_chat_accepts_plain_bodies(
    emu: Emulator, serve: Callable[..., Server], body: dict[str, Any], upstream: list[dict[str, str]]
) -> None:
    emu.script(Reply(text=["O", "K"]))
    reply = httpx.post(serve().url + "/api/chat", json=body)
    assert reply.status_code == 200
    assert text_of(ui_chunks(reply.text)) == "OK"
    assert emu.requests[-1].json["messages"] == upstream


@pytest.mark.parametrize(
    ("content", "status", "code", "words"),
    [
        (b"{not json", 400, "invalid_json", "not valid JSON"),
        (b"[1, 2]", 400, "bad_request", "JSON object"),
        (b"{}", 400, "bad_request", "'messages'"),
        (b'{"messages": []}', 400, "bad_request", "non-empty list"),
        (b'{"messages": "hi"}', 400, "bad_request", "non-empty list"),
        (b'{"prompt": "  "}', 400, "bad_request", "'prompt'"),
        (b'{"messages": [{"role": "wizard", "content": "hi"}]}', 400, "bad_request", "messages[0].role"),
        (b'{"messages": [{"role": "user"}]}', 400, "bad_request", "messages[0] needs 'parts' or 'content'"),
        (
            b'{"messages": [{"role": "user", "parts": {"type": "text"}}]}',
            400,
            "bad_request",
            "messages[0].parts must be a list",
        ),
        (
            b'{"messages": [{"role": "user", "parts": [{"type": "text", "text": 5}]}]}',
            400,
            "bad_request",
            "messages[0].parts[0].text",
        ),
        (
            b'{"messages": [{"role": "user", "parts": [{"type": "file", "url": "x"}]}]}',
            400,
            "bad_request",
            "no text",
        ),
        (b'{"messages": [1]}', 400, "bad_request", "messages[0] must be an object"),
    ],
)
def test_bad_bodies_are_400_naming_the_problem(
    emu: Emulator, serve: Callable[..., Server], content: bytes, status: int, code: str, words: str
) -> None:
    server = serve()
    for path in ("/api/chat", "/api/chat/text"):
        reply = httpx.post(server.url + path, content=content, headers={"content-type": "application/json"})
        assert reply.status_code == status, reply.text
        assert reply.headers["content-type"] == "application/json"
        error = reply.json()["error"]
        assert error["code"] == code
        assert words in error["message"]
    assert emu.requests == []  # nothing went upstream


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None],
)
def test_chat_posts_must_be_json(
    emu: Emulator, serve: Callable[..., Server], content_type: str | None
) -> None:
    # text/plain, forms and multipart are what a cross-site page can POST without a CORS preflight.
    server = serve()
    headers = {"content-type": content_type} if content_type else {}
    for path in ("/api/chat", "/api/chat/text"):
        reply = httpx.post(server.url + path, content=b'{"prompt": "hi"}', headers=headers)
        assert reply.status_code == 415
        assert reply.json()["error"]["code"] == "unsupported_media_type"
    assert emu.requests == []


def test_bodies_over_one_mebibyte_are_413(emu: Emulator, serve: Callable[..., Server]) -> None:
    server = serve()
    big = json.dumps({"prompt": "x" * (1024 * 1024)}).encode()
    reply = httpx.post(server.url + "/api/chat", content=big, headers={"content-type": "application/json"})
    assert reply.status_code == 413
    assert reply.json()["error"]["code"] == "body_too_large"

    # Without a Content-Length (chunked), the limit holds while reading.
    def chunks() -> Iterator[bytes]:
        yield b'{"prompt": "'
        for _ in range(20):
            yield b"x" * 65536
        yield b'"}'

    reply = httpx.post(
        server.url + "/api/chat", content=chunks(), headers={"content-type": "application/json"}
    )
    assert reply.status_code == 413
    # Just under the limit is fine.
    reply = httpx.post(server.url + "/api/chat", json={"prompt": "x" * (1024 * 1024 - 100)})
    assert reply.status_code == 200
    assert emu.requests[-1].json["messages"][0]["content"] == "x" * (1024 * 1024 - 100)


@pytest.mark.parametrize("status", [401, 429, 500])
def test_a_provider_refusal_is_an_error_chunk_for_use_chat(
    emu: Emulator, serve: Callable[..., Server], status: int
) -> None:
    emu.script(Reply(status=status, headers={"Retry-After": "3"}))
    reply = httpx.post(serve().url + "/api/chat", json=use_chat_body(("user", "hi")))
    # As the AI SDK's own servers do: a stream, so that useChat shows errorText as its error.
    assert reply.status_code == 200
    assert reply.headers["x-vercel-ai-ui-message-stream"] == "v1"
    assert reply.headers["x-streamwrap-upstream-status"] == str(status)
    chunks = ui_chunks(reply.text)
    assert [c if c == "[DONE]" else c["type"] for c in chunks] == ["start", "error", "[DONE]"]
    assert f"HTTP {status}" in chunks[1]["errorText"]
    assert "sk-test-secret" not in reply.text


@pytest.mark.parametrize(("upstream", "status"), [(429, 429), (401, 502), (500, 502)])
def test_a_provider_refusal_on_the_text_route_is_an_http_error(
    emu: Emulator, serve: Callable[..., Server], upstream: int, status: int
) -> None:
    emu.script(Reply(status=upstream, headers={"Retry-After": "3"}))
    reply = httpx.get(serve().url + "/api/chat/text", params={"prompt": "hi"})
    assert reply.status_code == status
    assert reply.headers["x-streamwrap-upstream-status"] == str(upstream)
    assert reply.text.startswith("error: ") and f"HTTP {upstream}" in reply.text
    if status == 429:
        assert reply.headers["retry-after"] == "3"


def test_the_text_route_streams_plain_text(emu: Emulator, serve: Callable[..., Server]) -> None:
    server = serve()
    emu.script(Reply(text=["plain ", "text"]), Reply(text=["posted"]))
    reply = httpx.get(server.url + "/api/chat/text", params={"prompt": "hi there"})
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")
    assert reply.text.rstrip("\n") == "plain text"
    assert emu.requests[-1].json["messages"] == [{"role": "user", "content": "hi there"}]
    reply = httpx.post(server.url + "/api/chat/text", json=use_chat_body(("user", "post it")))
    assert reply.text.rstrip("\n") == "posted"
    assert httpx.get(server.url + "/api/chat/text").status_code == 400


# -- the websocket ----------------------------------------------------------------------------


def ws_chat(url: str, message: dict[str, Any], **options: Any) -> list[dict[str, Any]]:
    """Send one chat message; the frames up to the end frame."""
    frames = []
    with connect(url, open_timeout=5, **options) as ws:
        ws.send(json.dumps(message))
        while True:
            frame = json.loads(ws.recv(timeout=10))
            if frame["type"] == "heartbeat":
                continue
            frames.append(frame)
            if frame["type"] in ("end", "error"):
                return frames


def test_the_websocket_chats(emu: Emulator, serve: Callable[..., Server]) -> None:
    emu.script(Reply(text=["a", "b", "c"], usage=(1, 3)), Reply(text=["d"]))
    server = serve()
    frames = ws_chat(server.ws_url, {"type": "chat", "messages": [{"role": "user", "content": "hi"}]})
    assert frames[0]["type"] == "start"
    assert "".join(f["delta"] for f in frames if f["type"] == "text") == "abc"
    assert frames[-1]["type"] == "end" and frames[-1]["status"] == "finished"
    assert "text" not in frames[-1]
    frames = ws_chat(server.ws_url, {"type": "chat", "prompt": "again"})
    assert "".join(f["delta"] for f in frames if f["type"] == "text") == "d"


# -- the token --------------------------------------------------------------------------------

ENDPOINTS = [
    ("GET", "/", None),
    ("GET", "/healthz", None),
    ("POST", "/api/chat", {"prompt": "hi"}),
    ("GET", "/api/chat/text?prompt=hi", None),
    ("POST", "/api/chat/text", {"prompt": "hi"}),
]


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS, ids=[f"{m} {p}" for m, p, _ in ENDPOINTS])
def test_a_token_is_required_on_every_route(
    serve: Callable[..., Server], method: str, path: str, body: dict[str, Any] | None
) -> None:
    server = serve(token=TOKEN)
    url = server.url + path
    sep = "&" if "?" in path else "?"
    refused = [
        httpx.request(method, url, json=body),
        httpx.request(method, url, json=body, headers={"authorization": "Bearer wrong"}),
        httpx.request(method, url + f"{sep}token=wrong", json=body),
        httpx.request(method, url, json=body, headers={"authorization": f"Basic {TOKEN}"}),
        httpx.request(method, url + f"{sep}token=", json=body),
    ]
    for reply in refused:
        assert reply.status_code == 401, (reply.request.url, reply.text)
        assert reply.json()["error"]["code"] == "unauthorized"
        assert reply.headers["www-authenticate"] == "Bearer"
    accepted = [
        httpx.request(method, url, json=body, headers={"authorization": f"Bearer {TOKEN}"}),
        httpx.request(method, url + f"{sep}token={TOKEN}", json=body),
    ]
    for reply in accepted:
        assert reply.status_code == 200, (reply.request.url, reply.text)


def test_a_token_is_required_on_the_websocket(emu: Emulator, serve: Callable[..., Server]) -> None:
    server = serve(token=TOKEN)
    for url, headers in [
        (server.ws_url, None),
        (server.ws_url + "?token=wrong", None),
        (server.ws_url, {"Authorization": "Bearer wrong"}),
    ]:
        with pytest.raises(InvalidStatus) as refused:
            connect(url, additional_headers=headers, open_timeout=5)
        assert refused.value.response.status_code == 401
        assert json.loads(refused.value.response.body or b"{}")["error"]["code"] == "unauthorized"
    frames = ws_chat(server.ws_url + f"?token={TOKEN}", {"type": "chat", "prompt": "hi"})
    assert frames[-1]["status"] == "finished"
    frames = ws_chat(
        server.ws_url,
        {"type": "chat", "prompt": "hi"},
        additional_headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert frames[-1]["status"] == "finished"


def test_a_browser_without_the_token_gets_the_page_that_asks_for_it(serve: Callable[..., Server]) -> None:
    server = serve(token=TOKEN)
    html = {"accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
    opened = httpx.get(server.url + "/", params={"token": TOKEN}, headers=html)
    assert opened.status_code == 200
    assert 'class=""' in opened.text and "openai_chat · emulator-1" in opened.text
    for reply in (
        httpx.get(server.url + "/", headers=html),  # a reload: the page took ?token= out of the URL
        httpx.get(server.url + "/", params={"token": "wrong"}, headers=html),
        httpx.get(server.url + "/", headers={**html, "authorization": "Bearer wrong"}),
    ):
        assert reply.status_code == 401, reply.request.url
        assert reply.headers["www-authenticate"] == "Bearer"
        assert reply.headers["content-type"].startswith("text/html")
        # The same page (same CSP), locked: no secret in it, not even which model it is.
        assert reply.headers["content-security-policy"] == opened.headers["content-security-policy"]
        assert reply.headers["x-frame-options"] == "DENY"
        assert '<body class="locked">' in reply.text and 'data-testid="token-input"' in reply.text
        assert "emulator" not in reply.text and "openai_chat" not in reply.text
    assert httpx.head(server.url + "/", headers=html).status_code == 401
    # Everything else keeps its JSON 401, HTML-accepting or not.
    for method, path in [("GET", "/healthz"), ("POST", "/api/chat"), ("GET", "/api/chat/text?prompt=hi")]:
        reply = httpx.request(method, server.url + path, headers=html, json={"prompt": "hi"})
        assert reply.status_code == 401
        assert reply.json()["error"]["code"] == "unauthorized"


def token_protocol(token: str) -> Subprotocol:
    """The subprotocol in which the chat page sends the token (base64url, no padding)."""
    return Subprotocol("streamwrap.bearer." + base64.urlsafe_b64encode(token.encode()).decode().rstrip("="))


def test_the_websocket_takes_the_token_as_a_subprotocol(emu: Emulator, serve: Callable[..., Server]) -> None:
    token = "tök/en+?=&"  # not a valid subprotocol name as it is
    server = serve(token=token)
    offered = [Subprotocol("streamwrap"), token_protocol(token)]
    with connect(server.ws_url, subprotocols=offered, open_timeout=5) as ws:
        # The events protocol is chosen: the token is not echoed back.
        assert ws.subprotocol == "streamwrap"
        ws.send(json.dumps({"type": "chat", "prompt": "hi"}))
        while json.loads(ws.recv(timeout=10))["type"] != "end":
            pass
    for protocols in (
        [Subprotocol("streamwrap"), token_protocol("wrong")],
        [Subprotocol("streamwrap"), Subprotocol("streamwrap.bearer.*not*base64*")],
        [Subprotocol("streamwrap")],
    ):
        with pytest.raises(InvalidStatus) as refused:
            connect(server.ws_url, subprotocols=protocols, open_timeout=5)
        assert refused.value.response.status_code == 401, protocols
    # Over HTTP the subprotocol header means nothing.
    header = {"sec-websocket-protocol": f"streamwrap, {token_protocol(token)}"}
    assert httpx.get(server.url + "/healthz", headers=header).status_code == 401


# -- origins and hosts ----------------------------------------------------------------------------


def test_the_websocket_refuses_foreign_origins(emu: Emulator, serve: Callable[..., Server]) -> None:
    server = serve(allowed_origins=["http://localhost:5173"])
    for origin in (
        "http://evil.example",
        "null",
        f"http://127.0.0.1:{server.port + 1}",
        "https://localhost:5173",
    ):
        with pytest.raises(InvalidStatus) as refused:
            connect(server.ws_url, origin=origin, open_timeout=5)  # type: ignore[arg-type]
        assert refused.value.response.status_code == 403, origin
    for origin in (None, f"http://127.0.0.1:{server.port}", "http://localhost:5173"):
        frames = ws_chat(server.ws_url, {"type": "chat", "prompt": "hi"}, origin=origin)
        assert frames[-1]["status"] == "finished", origin


def test_browsers_on_other_sites_cannot_drive_the_api(emu: Emulator, serve: Callable[..., Server]) -> None:
    server = serve(allowed_origins=["http://localhost:5173"])
    url = server.url + "/api/chat"
    body = {"prompt": "hi"}
    foreign = httpx.post(url, json=body, headers={"origin": "http://evil.example"})
    assert foreign.status_code == 403
    assert foreign.json()["error"]["code"] == "origin_not_allowed"
    # A cross-site GET (an <img>, a link) carries no Origin, but Sec-Fetch-Site says so.
    sneaky = httpx.get(server.url + "/api/chat/text?prompt=hi", headers={"sec-fetch-site": "cross-site"})
    assert sneaky.status_code == 403
    assert httpx.get(server.url + "/healthz", headers={"sec-fetch-site": "same-site"}).status_code == 403
    assert emu.requests == []
    # Our own page, a client that is not a browser, and the allowed origin may.
    assert (
        httpx.post(
            url, json=body, headers={"origin": server.url, "sec-fetch-site": "same-origin"}
        ).status_code
        == 200
    )
    assert httpx.post(url, json=body).status_code == 200
    allowed = httpx.post(url, json=body, headers={"origin": "http://localhost:5173"})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "http://localhost:5173"
    # The allowed origin's CORS preflight is answered (before the token check); others' are not.
    preflight = {"access-control-request-method": "POST", "access-control-request-headers": "content-type"}
    ok = httpx.options(url, headers={"origin": "http://localhost:5173", **preflight})
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == "http://localhost:5173"
    bad = httpx.options(url, headers={"origin": "http://evil.example", **preflight})
    assert "access-control-allow-origin" not in bad.headers
    # The page itself may be opened from a link anywhere.
    assert httpx.get(server.url + "/", headers={"sec-fetch-site": "cross-site"}).status_code == 200


def test_without_a_token_only_ip_and_localhost_hosts_are_served(serve: Callable[..., Server]) -> None:
    # DNS rebinding: a hostile page's own hostname, re-pointed at 127.0.0.1, is same-origin
    # to itself. Its requests carry its hostname in Host.
    server = serve(allowed_hosts=["mybox.lan"])
    for host in ("evil.example", f"evil.example:{server.port}", "127.0.0.1.nip.io"):
        reply = httpx.get(server.url + "/", headers={"host": host})
        assert reply.status_code == 403, host
        assert reply.json()["error"]["code"] == "host_not_allowed"
    with pytest.raises(InvalidStatus) as refused:
        sock = socket.create_connection(("127.0.0.1", server.port))
        connect(f"ws://evil.example:{server.port}/ws", sock=sock, open_timeout=5)
    assert refused.value.response.status_code == 403
    for host in (
        f"127.0.0.1:{server.port}",
        f"localhost:{server.port}",
        "[::1]",
        "app.localhost",
        "mybox.lan:80",
    ):
        assert httpx.get(server.url + "/healthz", headers={"host": host}).status_code == 200, host
    # With a token, any Host: the attacker does not have it.
    tokened = serve(token=TOKEN)
    reply = httpx.get(
        tokened.url + "/healthz", headers={"host": "mybox.example", "authorization": f"Bearer {TOKEN}"}
    )
    assert reply.status_code == 200


def raw_request(port: int, hosts: list[str], path: str = "/healthz", headers: str = "") -> tuple[int, bytes]:
    """Send a GET with exactly these Host header lines over a plain socket (HTTP clients
    check or rewrite Host); the status, and the body (read until the server closes, unless
    the request is a websocket handshake)."""
    lines = "".join(f"Host: {host}\r\n" for host in hosts)
    upgrade = "Upgrade:" in headers
    close = "" if upgrade else "Connection: close\r\n"
    request = f"GET {path} HTTP/1.1\r\n{lines}{headers}{close}\r\n".encode("latin-1")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
            if upgrade and b"\r\n\r\n" in data:
                break
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


# Host values that are not RFC 3986 host[:port]. The first ones a lenient parser reads as
# 127.0.0.1 (urlsplit takes the part after "@", and ignores paths and bad ports).
MALFORMED_HOSTS = [
    "evil.example@127.0.0.1",
    "evil.example@127.0.0.1:{port}",
    "evil.example:x@localhost",
    "127.0.0.1/evil.example",
    "127.0.0.1?evil",
    "127.0.0.1#evil",
    "127.0.0.1:",
    "127.0.0.1:99999",
    "127.0.0.1:80x",
    "127.0.0.1:-1",
    "127.0.0.1:+80",
    "127.0.0.1 evil.example",
    "localhost:80:80",
    "[::1",
    "[::1]x",
    "[::1]:",
    "::1",
    "[fe80::1%25eth0]",
    "[v1.x]",
    "[127.0.0.1]",
    "%31%32%37.0.0.1",
    "a..b",
    ".localhost",
    "-x.localhost",
    "x y.localhost",
    "\u00e9.localhost",
    "",
]
WELL_FORMED_HOSTS = [
    "127.0.0.1",
    "127.0.0.1:{port}",
    "LOCALHOST",
    "localhost:{port}",
    "[::1]",
    "[::1]:{port}",
    "[::FFFF:127.0.0.1]:80",
    "app.localhost",
    "my_app.localhost:0",
    "mybox.lan",
    "MyBox.Lan:65535",
    "10.1.2.3",
]


def test_the_host_header_is_parsed_strictly(serve: Callable[..., Server]) -> None:
    server = serve(allowed_hosts=["mybox.lan"])
    tokened = serve(token=TOKEN)
    auth = f"Authorization: Bearer {TOKEN}\r\n"
    for template in MALFORMED_HOSTS:
        host = template.format(port=server.port)
        # Refused as a bad request, with a token too (RFC 9112: 400 for an invalid Host).
        for target, headers in ((server, ""), (tokened, auth)):
            status, body = raw_request(target.port, [host], headers=headers)
            assert status == 400, (host, status, body)
            if body:  # (h11 refuses a few before the app sees them, without our body)
                assert json.loads(body)["error"]["code"] == "bad_host", host
    for template in WELL_FORMED_HOSTS:
        host = template.format(port=server.port)
        status, body = raw_request(server.port, [host])
        assert status == 200, (host, status, body)
    # No Host, or two of them (which one would the check have read?).
    assert raw_request(server.port, [])[0] == 400
    assert raw_request(server.port, ["127.0.0.1", "evil.example"])[0] == 400
    assert raw_request(server.port, ["evil.example", "127.0.0.1"])[0] == 400
    # A well-formed host that is not allowed stays a 403.
    status, body = raw_request(server.port, ["evil.example"])
    assert status == 403 and json.loads(body)["error"]["code"] == "host_not_allowed"
    # The websocket handshake is checked the same way.
    handshake = (
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    )
    assert raw_request(server.port, [f"evil.example@127.0.0.1:{server.port}"], "/ws", handshake)[0] == 400
    status, _ = raw_request(server.port, [f"127.0.0.1:{server.port}"], "/ws", handshake)
    assert status == 101


# -- resuming a stream ------------------------------------------------------------------------------


def test_resuming_a_stream_finds_nothing_to_resume(emu: Emulator, serve: Callable[..., Server]) -> None:
    # useChat({resume: true}) asks this on every page load; 204 is "no active stream",
    # which the AI SDK's transport answers with null (any other status is an error).
    server = serve(allowed_origins=["http://localhost:5173"])
    reply = httpx.get(server.url + "/api/chat/chat-1/stream")
    assert reply.status_code == 204 and reply.content == b""
    allowed = httpx.get(server.url + "/api/chat/chat-1/stream", headers={"origin": "http://localhost:5173"})
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == "http://localhost:5173"
    # The same checks as every route.
    assert (
        httpx.get(server.url + "/api/chat/x/stream", headers={"origin": "http://evil.example"}).status_code
        == 403
    )
    assert (
        httpx.get(server.url + "/api/chat/x/stream", headers={"sec-fetch-site": "cross-site"}).status_code
        == 403
    )
    assert httpx.get(server.url + "/api/chat/x/stream", headers={"host": "evil.example"}).status_code == 403
    assert httpx.post(server.url + "/api/chat/x/stream", json={}).status_code == 405
    tokened = serve(token=TOKEN)
    assert httpx.get(tokened.url + "/api/chat/chat-1/stream").status_code == 401
    reply = httpx.get(tokened.url + "/api/chat/chat-1/stream", headers={"authorization": f"Bearer {TOKEN}"})
    assert reply.status_code == 204
    assert emu.requests == []


# -- any origin -------------------------------------------------------------------------------------


@pytest.mark.parametrize("origin", ["*", "null", " NULL "])
def test_chat_app_refuses_any_origin_without_a_token(model: streamwrap.ModelWrapper, origin: str) -> None:
    with pytest.raises(streamwrap.InputError, match="token") as refused:
        chat_app(model, allowed_origins=["http://localhost:5173", origin])
    assert repr(origin) in str(refused.value)
    chat_app(model, allowed_origins=[origin], token=TOKEN)  # with a token, fine


def test_any_origin_with_a_token_is_served(emu: Emulator, serve: Callable[..., Server]) -> None:
    emu.script(Reply(text=["ok"]))
    server = serve(allowed_origins=["*"], token=TOKEN)
    reply = httpx.post(
        server.url + "/api/chat",
        json={"prompt": "hi"},
        timeout=30,
        headers={"origin": "http://anywhere.example", "authorization": f"Bearer {TOKEN}"},
    )
    assert reply.status_code == 200 and reply.headers["access-control-allow-origin"] == "*"
    assert text_of(ui_chunks(reply.text)) == "ok"
    refused = httpx.post(
        server.url + "/api/chat", json={"prompt": "hi"}, headers={"origin": "http://anywhere.example"}
    )
    assert refused.status_code == 401


# -- the command ------------------------------------------------------------------------------------


def cli_env(env: dict[str, str]) -> dict[str, str]:
    """A clean environment: no API key, no token, no Ollama, plus ``env``."""
    base = {k: v for k, v in os.environ.items() if k not in PROVIDER_ENV}
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        base["OLLAMA_HOST"] = f"127.0.0.1:{sock.getsockname()[1]}"  # nothing listens there
    return {**base, **env}


def run_cli(
    args: list[str], env: dict[str, str], unimportable: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """Run the CLI to its end; ``unimportable`` packages fail to import, as if not installed."""
    command = [
        sys.executable,
        "-c",
        f"import sys; sys.modules.update(dict.fromkeys({list(unimportable)!r})); "
        "from streamwrap._cli import main; sys.exit(main(sys.argv[1:]))",
    ]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=60, env=cli_env(env))


class Serving:
    """``python -m streamwrap serve ...`` as a subprocess; its stderr lines, read as they come."""

    def __init__(self, args: list[str], env: dict[str, str], unimportable: tuple[str, ...] = ()) -> None:
        # `unimportable` packages fail to import, as if not installed.
        program = (
            f"import sys; sys.modules.update(dict.fromkeys({list(unimportable)!r})); "
            "import runpy; runpy.run_module('streamwrap', run_name='__main__')"
        )
        self.process = subprocess.Popen(
            [sys.executable, "-c", program, "serve", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_env(env),
            preexec_fn=sigint_as_in_a_terminal,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        self.ended = False
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {pattern!r} in: {''.join(self.stderr)}") from None
            if line is None:
                self.ended = True
                raise AssertionError(
                    f"exited {self.process.wait()} without {pattern!r}: {''.join(self.stderr)}"
                )
            self.stderr.append(line)
            match = re.search(pattern, line)
            if match:
                return match

    def interrupt(self) -> int:
        self.process.send_signal(signal.SIGINT)
        try:
            code = self.process.wait(timeout=15)
        finally:
            self.process.kill()
        while not self.ended:
            line = self.lines.get(timeout=5)
            if line is None:
                self.ended = True
            else:
                self.stderr.append(line)
        return code


def test_serve_starts_serves_and_stops_on_ctrl_c(emu: Emulator) -> None:
    emu.script(Reply(text=["from ", "the ", "command"]))
    serving = Serving(
        [
            "--model-type",
            "openai_chat",
            "--model-name",
            "m",
            "--base-url",
            emu.openai_base_url,
            "--port",
            "0",
        ],
        {"OPENAI_API_KEY": "x"},
        # What `pip install "streamwrap[web]"` installs: no redis-py (serve keeps its replies in
        # memory; it once failed at start for want of it).
        unimportable=("redis",),
    )
    try:
        url = serving.wait_for(r"serving at (http://127\.0\.0\.1:(\d+)/)\s")
        assert url.group(2) != "0"  # the real port
        health = httpx.get(url.group(1) + "healthz")
        assert health.json() == {"ok": True, "model": "m", "model_type": "openai_chat"}
        chat = httpx.post(url.group(1) + "api/chat", json={"prompt": "hi"})
        assert text_of(ui_chunks(chat.text)) == "from the command"
    finally:
        code = serving.interrupt()
    assert code == 0, "".join(serving.stderr)
    output = "".join(serving.stderr)
    assert "openai_chat m (the command line)" in output
    assert "Traceback" not in output
    assert "WARNING" not in output


def test_serve_takes_the_token_from_the_environment_and_keeps_it_out_of_the_log(emu: Emulator) -> None:
    serving = Serving(
        [
            "--model-type",
            "openai_chat",
            "--model-name",
            "m",
            "--base-url",
            emu.openai_base_url,
            "--port",
            "0",
        ],
        {"OPENAI_API_KEY": "x", "STREAMWRAP_TOKEN": TOKEN},
    )
    try:
        url = serving.wait_for(r"serving at (http://127\.0\.0\.1:\d+/)#token=(\S+)")
        assert url.group(2) == TOKEN
        assert httpx.get(url.group(1) + "healthz").status_code == 401
        assert httpx.get(url.group(1) + f"?token={TOKEN}").status_code == 200
        ws_url = url.group(1).replace("http", "ws") + f"ws?token={TOKEN}"
        with connect(ws_url, open_timeout=5):
            pass
    finally:
        code = serving.interrupt()
    assert code == 0
    log = "".join(serving.stderr)
    # Printed once, in the URL to open; never in a request log line.
    assert log.count(TOKEN) == 1, log


def test_serve_warns_when_reachable_from_other_machines_without_a_token(emu: Emulator) -> None:
    serving = Serving(
        [
            "--model-type",
            "openai_chat",
            "--model-name",
            "m",
            "--base-url",
            emu.openai_base_url,
            "--host",
            "0.0.0.0",
            "--port",
            "0",
            "--quiet",
        ],
        {"OPENAI_API_KEY": "x"},
    )
    try:
        serving.wait_for(r"WARNING: listening on 0\.0\.0\.0")
        serving.wait_for(r"serving at http://127\.0\.0\.1:\d+/")
    finally:
        assert serving.interrupt() == 0


@pytest.mark.parametrize(
    ("args", "unimportable", "words"),
    [
        (["--port", "70000"], (), "--port must be 0-65535"),
        (["--token", " "], (), "--token must not be empty"),
        ([], ("starlette",), 'pip install "streamwrap[web]"'),
        ([], ("uvicorn",), 'pip install "streamwrap[web]"'),
    ],
    ids=["bad-port", "empty-token", "no-starlette", "no-uvicorn"],
)
def test_serve_usage_errors_exit_2(
    emu: Emulator, args: list[str], unimportable: tuple[str, ...], words: str
) -> None:
    result = run_cli(
        ["serve", "--base-url", emu.openai_base_url, "--model-name", "m", *args],
        env={"OPENAI_API_KEY": "x"},
        unimportable=unimportable,
    )
    assert result.returncode == 2, result.stderr
    assert words in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("origin", ["*", "null"])
def test_serve_refuses_any_origin_without_a_token(emu: Emulator, origin: str) -> None:
    result = run_cli(
        [
            "serve",
            "--base-url",
            emu.openai_base_url,
            "--model-name",
            "m",
            "--port",
            "0",
            "--allow-origin",
            "http://localhost:5173",
            "--allow-origin",
            origin,
        ],
        env={"OPENAI_API_KEY": "x"},
    )
    assert result.returncode == 2, result.stderr
    # Why, and the two ways on.
    assert (
        f"--allow-origin {origin!r} without a token would let every web page you visit use this model"
        in result.stderr
    )
    assert "add --token (or set STREAMWRAP_TOKEN)" in result.stderr
    assert "name those pages' origins instead, e.g. --allow-origin http://localhost:5173" in result.stderr
    assert "Traceback" not in result.stderr and "serving at" not in result.stderr


def test_serve_allows_any_origin_with_a_token(emu: Emulator) -> None:
    emu.script(Reply(text=["any ", "origin"]))
    serving = Serving(
        [
            "--model-type",
            "openai_chat",
            "--model-name",
            "m",
            "--base-url",
            emu.openai_base_url,
            "--port",
            "0",
            "--allow-origin",
            "*",
            "--quiet",
        ],
        {"OPENAI_API_KEY": "x", "STREAMWRAP_TOKEN": TOKEN},
    )
    try:
        url = serving.wait_for(r"serving at (http://127\.0\.0\.1:\d+/)")
        chat = httpx.post(
            url.group(1) + "api/chat",
            json={"prompt": "hi"},
            timeout=30,
            headers={"origin": "http://anywhere.example", "authorization": f"Bearer {TOKEN}"},
        )
        assert chat.headers["access-control-allow-origin"] == "*"
        assert text_of(ui_chunks(chat.text)) == "any origin"
    finally:
        assert serving.interrupt() == 0


def test_serve_reports_a_port_in_use(emu: Emulator) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = run_cli(
            ["serve", "--base-url", emu.openai_base_url, "--model-name", "m", "--port", str(port)],
            env={"OPENAI_API_KEY": "x"},
        )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
