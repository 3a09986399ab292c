"""Tests of the provider emulator (streamwrap.testing), driven with plain httpx and sockets."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import orjson
import pytest

import streamwrap.testing
from streamwrap.testing import Emulator, Fault, RecordedRequest, Reply, ToolCallSpec

pytestmark = pytest.mark.timeout(30)

CHAT = "/v1/chat/completions"
MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "say hello there"}]
PROMPT_WORDS = 5


@pytest.fixture
def emu() -> Iterator[Emulator]:
    """A fresh emulator per test, so connection counters start at zero."""
    with Emulator() as emulator:
        yield emulator


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def chat_body(*, stream: bool = True, **extra: Any) -> dict[str, Any]:
    return {"model": "emulator-1", "messages": MESSAGES, "stream": stream, **extra}


def sse_events(text: str) -> list[dict[str, str]]:
    """Parse an SSE body into events: field name -> value (``data`` lines joined by newlines)."""
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            if not line:
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            fields[name] = f"{fields[name]}\n{value}" if name in fields else value
        if fields:
            events.append(fields)
    return events


def chunks(text: str) -> list[dict[str, Any]]:
    """The JSON chunks of an SSE body (``[DONE]`` and comments left out)."""
    return [orjson.loads(e["data"]) for e in sse_events(text) if "data" in e and e["data"] != "[DONE]"]


def deltas(text: str) -> list[dict[str, Any]]:
    return [c["choices"][0]["delta"] for c in chunks(text) if c["choices"]]


def stream_text(emu: Emulator, **extra: Any) -> str:
    response = httpx.post(emu.url + CHAT, json=chat_body(**extra))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    return response.text


def raw_exchange(emu: Emulator, body: bytes = b'{"stream": true}') -> tuple[bytes, list[bytes]]:
    """POST over a bare socket; return the response head and the HTTP chunks of the body.

    Each chunk of a chunked response is one write by the server, which is what
    the split and trickle options promise.
    """
    port = int(emu.url.rsplit(":", 1)[1])
    request = (
        f"POST {CHAT} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        received = bytearray()
        while data := sock.recv(65536):
            received += data
    head, _, body = bytes(received).partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower()
    pieces: list[bytes] = []
    position = 0
    while True:
        line_end = body.index(b"\r\n", position)
        size = int(body[position:line_end], 16)
        if size == 0:
            return head, pieces
        start = line_end + 2
        pieces.append(body[start : start + size])
        assert body[start + size : start + size + 2] == b"\r\n"
        position = start + size + 2


# -- streaming content ---------------------------------------------------------------


def test_text_sequence_gives_one_openai_chunk_per_item(emu: Emulator) -> None:
    emu.script(Reply(text=["Hel", "lo", " world"], model="m-1", id="chatcmpl-x", created=123))
    text = stream_text(emu)
    events = sse_events(text)
    assert events[-1] == {"data": "[DONE]"}
    parsed = chunks(text)
    assert [c["choices"][0]["delta"] for c in parsed] == [
        {"role": "assistant", "content": "Hel"},
        {"content": "lo"},
        {"content": " world"},
        {},
    ]
    assert parsed[0] == {
        "id": "chatcmpl-x",
        "object": "chat.completion.chunk",
        "created": 123,
        "model": "m-1",
        "choices": [
            {
                "index": 0,
                "delta": {"role": "assistant", "content": "Hel"},
                "logprobs": None,
                "finish_reason": None,
            }
        ],
    }
    assert [c["choices"][0]["finish_reason"] for c in parsed] == [None, None, None, "stop"]
    assert all("usage" not in c for c in parsed)


def test_text_string_is_split_into_word_chunks(emu: Emulator) -> None:
    emu.script(Reply(text="Hello there,  big world"))
    assert [d.get("content") for d in deltas(stream_text(emu))] == [
        "Hello ",
        "there,  ",
        "big ",
        "world",
        None,
    ]


def test_default_reply_and_auto_ids(emu: Emulator) -> None:
    first, second = chunks(stream_text(emu)), chunks(stream_text(emu))
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in first) == "Hello from the emulator."
    assert first[0]["id"].startswith("chatcmpl-emu-")
    assert first[0]["id"] != second[0]["id"]
    emu.default = Reply(text=["other"])
    assert deltas(stream_text(emu))[0]["content"] == "other"


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_reasoning_streams_before_text(emu: Emulator, field: str) -> None:
    emu.script(Reply(reasoning=["think", "ing"], text=["answer"], reasoning_field=field))
    assert deltas(stream_text(emu)) == [
        {"role": "assistant", field: "think"},
        {field: "ing"},
        {"content": "answer"},
        {},
    ]


def test_tool_calls_stream_as_openai_fragments(emu: Emulator) -> None:
    emu.script(
        Reply(
            text=["ok"],
            tool_calls=[
                ToolCallSpec("get_weather", ['{"city": ', '"Paris"}'], id="call_1"),
                ToolCallSpec("get_time", '{"tz": "Europe/Paris"}'),
            ],
        )
    )
    text = stream_text(emu)
    got = deltas(text)
    assert got[0] == {"role": "assistant", "content": "ok"}
    assert got[1] == {
        "tool_calls": [
            {
                "index": 0,
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": ""},
            }
        ]
    }
    assert got[2:4] == [
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]},
    ]
    second = [d["tool_calls"][0] for d in got[4:-1]]
    assert second[0]["id"].startswith("call_emu_")
    assert second[0]["function"] == {"name": "get_time", "arguments": ""}
    assert len(second) > 2  # a string is cut into several fragments
    assert all(set(f) == {"index", "function"} and f["index"] == 1 for f in second[1:])
    assert "".join(f["function"]["arguments"] for f in second[1:]) == '{"tz": "Europe/Paris"}'
    assert chunks(text)[-1]["choices"][0]["finish_reason"] == "tool_calls"


# -- usage -----------------------------------------------------------------------------


def test_usage_chunk_only_when_requested(emu: Emulator) -> None:
    emu.script(Reply(text=["a", "b"], reasoning=["r"]), Reply(text=["a", "b"], reasoning=["r"]))
    assert all("usage" not in c for c in chunks(stream_text(emu)))

    parsed = chunks(stream_text(emu, stream_options={"include_usage": True}))
    assert parsed[-1]["choices"] == []
    assert parsed[-1]["usage"] == {"prompt_tokens": PROMPT_WORDS, "completion_tokens": 3, "total_tokens": 8}
    assert all(c["usage"] is None for c in parsed[:-1])  # as OpenAI marks the other chunks


def test_explicit_usage_and_stream_usage_override(emu: Emulator) -> None:
    raw = {
        "prompt_tokens": 1,
        "completion_tokens": 2,
        "total_tokens": 3,
        "prompt_tokens_details": {"cached_tokens": 1},
    }
    emu.script(
        Reply(text=["a"], usage=(10, 4), stream_usage=True),
        Reply(text=["a"], usage=raw, stream_usage=True),
        Reply(text=["a"], stream_usage=False),
    )
    assert chunks(stream_text(emu))[-1]["usage"] == {
        "prompt_tokens": 10,
        "completion_tokens": 4,
        "total_tokens": 14,
    }
    assert chunks(stream_text(emu))[-1]["usage"] == raw
    assert all("usage" not in c for c in chunks(stream_text(emu, stream_options={"include_usage": True})))


# -- non-streaming and errors ------------------------------------------------------------


def test_non_streaming_reply_is_a_chat_completion(emu: Emulator) -> None:
    emu.script(
        Reply(text=["Hel", "lo"], reasoning="hmm", tool_calls=[ToolCallSpec("f", '{"x": 1}', id="c1")])
    )
    response = httpx.post(emu.url + CHAT, json=chat_body(stream=False))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    completion = response.json()
    assert completion["object"] == "chat.completion"
    assert completion["choices"] == [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Hello",
                "reasoning_content": "hmm",
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}
                ],
            },
            "logprobs": None,
            "finish_reason": "tool_calls",
        }
    ]
    assert completion["usage"] == {"prompt_tokens": PROMPT_WORDS, "completion_tokens": 3, "total_tokens": 8}


def test_error_status_is_openai_shaped_with_extra_headers(emu: Emulator) -> None:
    emu.script(Reply(status=429, headers={"Retry-After": "1"}), Reply(status=503))
    response = httpx.post(emu.url + CHAT, json=chat_body())
    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == "rate_limit_exceeded"
    assert httpx.post(emu.url + CHAT, json=chat_body()).json()["error"]["type"] == "server_error"


def test_custom_error_body(emu: Emulator) -> None:
    emu.script(
        Reply(status=400, error={"message": "bad model", "type": "invalid_request_error", "code": "x"})
    )
    response = httpx.post(emu.url + CHAT, json=chat_body())
    assert response.status_code == 400
    assert response.json() == {
        "error": {"message": "bad model", "type": "invalid_request_error", "code": "x"}
    }


def test_reject_stream_options(emu: Emulator) -> None:
    emu.script(Reply(text=["a"], reject_stream_options=True), Reply(text=["a"], reject_stream_options=True))
    rejected = httpx.post(emu.url + CHAT, json=chat_body(stream_options={"include_usage": True}))
    assert rejected.status_code == 400
    assert "stream_options" in rejected.json()["error"]["message"]
    assert deltas(stream_text(emu))[0]["content"] == "a"  # the same reply is fine without the option


def test_unknown_path_and_method_do_not_consume_the_script(emu: Emulator) -> None:
    emu.script(Reply(text=["kept"]))
    assert httpx.post(emu.url + "/v1/embeddings", json={}).status_code == 404
    assert httpx.get(emu.url + CHAT).status_code == 405
    assert httpx.post(emu.url + CHAT, content=b"not json").status_code == 400
    assert deltas(stream_text(emu))[0]["content"] == "kept"


def test_malformed_http_gets_400_and_the_server_carries_on(emu: Emulator) -> None:
    port = int(emu.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert httpx.head(emu.url + CHAT).status_code == 405
    assert stream_text(emu)
    assert emu.wait_idle()


def test_invalid_replies_are_rejected_eagerly() -> None:
    with pytest.raises(ValueError, match="delay"):
        Reply(delay=-1)
    with pytest.raises(ValueError, match="status"):
        Reply(status=204)
    with pytest.raises(ValueError, match="headers"):
        Reply(headers={"bad header": "x"})
    with pytest.raises(ValueError, match="usage"):
        Reply(usage={"prompt_tokens": object()})
    with pytest.raises(ValueError, match="split"):
        Emulator().replay(b"x", split=0)


# -- faults --------------------------------------------------------------------------------


def test_drop_fault_aborts_mid_stream(emu: Emulator, caplog: pytest.LogCaptureFixture) -> None:
    emu.script(Reply(text=["a", "b", "c"], fault=Fault.drop_after(2)))
    lines: list[str] = []
    with httpx.Client() as client, client.stream("POST", emu.url + CHAT, json=chat_body()) as response:
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            lines.extend(response.iter_lines())
    assert [d["content"] for d in deltas("\n".join(lines))] == ["a", "b"]
    assert emu.wait_idle()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_drop_fault_on_non_streaming_request(emu: Emulator) -> None:
    emu.script(Reply(text=["a"], fault=Fault.drop_after(0)))
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        httpx.post(emu.url + CHAT, json=chat_body(stream=False))


@pytest.mark.parametrize(
    ("fault", "event"),
    [
        (Fault.error_event_after(1, "overloaded", "overloaded_error"), "error"),
        (Fault.inband_error_after(1, "overloaded", "overloaded_error"), None),
    ],
)
def test_error_faults_end_the_body_cleanly(emu: Emulator, fault: Fault, event: str | None) -> None:
    emu.script(Reply(text=["a", "b"], fault=fault))
    events = sse_events(stream_text(emu))
    assert len(events) == 2
    assert events[1].get("event") == event
    assert orjson.loads(events[1]["data"]) == {
        "error": {"message": "overloaded", "type": "server_error", "code": "overloaded_error"}
    }


def test_stall_fault_pauses_then_continues(emu: Emulator) -> None:
    emu.script(Reply(text=["a", "b"], fault=Fault.stall_after(1, 0.4)))
    arrivals: list[tuple[float, str]] = []
    with httpx.Client() as client, client.stream("POST", emu.url + CHAT, json=chat_body()) as response:
        for line in response.iter_lines():
            if line:
                arrivals.append((time.monotonic(), line))
    assert [line for _, line in arrivals][-1] == "data: [DONE]"
    gap = arrivals[1][0] - arrivals[0][0]
    assert 0.35 <= gap < 2.0
    assert not any(line.startswith(":") for _, line in arrivals)


def test_stall_with_keepalive_sends_only_comments(emu: Emulator) -> None:
    emu.script(Reply(text=["a", "b"], fault=Fault.stall_with_keepalive_after(1, 0.45, every=0.1)))
    events = sse_events(stream_text(emu))
    assert "data" in events[0]
    comments = [e for e in events if set(e) == {""}]
    assert len(comments) == 4  # at 0.1, 0.2, 0.3 and 0.4 s
    assert all(e[""] == "keep-alive" for e in comments)
    assert events[len(comments) + 1]["data"] != "[DONE]"  # the content resumes after the comments


def test_keepalive_comments_during_delays(emu: Emulator) -> None:
    emu.script(Reply(text=["a"], first_delay=0.35, keepalive=0.1))
    text = stream_text(emu)
    assert text.startswith(": keep-alive\n\n" * 3 + "data: ")  # at 0.1, 0.2 and 0.3 s
    assert deltas(text)[0]["content"] == "a"


def test_first_delay_sends_headers_at_once(emu: Emulator) -> None:
    emu.script(Reply(text=["a"], first_delay=0.5))
    with httpx.Client() as client:
        started = time.monotonic()
        with client.stream("POST", emu.url + CHAT, json=chat_body()) as response:
            headers_after = time.monotonic() - started
            body = response.read()
        body_after = time.monotonic() - started
    assert headers_after < 0.4 <= body_after
    assert deltas(body.decode())[0]["content"] == "a"


def test_malformed_line_fault_then_continues(emu: Emulator) -> None:
    emu.script(Reply(text=["a", "b"], fault=Fault.malformed_line_after(1)))
    events = sse_events(stream_text(emu))
    assert events[1] == {"data": "{not json"}
    assert orjson.loads(events[2]["data"])["choices"][0]["delta"] == {"content": "b"}
    assert events[-1] == {"data": "[DONE]"}


def test_truncated_json_fault_ends_the_body(emu: Emulator) -> None:
    emu.script(Reply(text=["a", "b"], fault=Fault.truncated_json_after(1)))
    events = sse_events(stream_text(emu))
    assert len(events) == 2
    assert events[1]["data"] == '{"id": "chatcmpl-emu", "choi'


def test_end_without_finish_fault(emu: Emulator) -> None:
    emu.script(Reply(text=["a", "b", "c"], fault=Fault.end_without_finish_after(2)))
    text = stream_text(emu, stream_options={"include_usage": True})
    assert [d["content"] for d in deltas(text)] == ["a", "b"]
    assert "[DONE]" not in text
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks(text))


def test_fault_after_more_chunks_than_content_precedes_the_finish(emu: Emulator) -> None:
    emu.script(Reply(text=["a"], fault=Fault.end_without_finish_after(10)))
    assert deltas(stream_text(emu)) == [{"role": "assistant", "content": "a"}]


def test_slow_trickle_writes_one_byte_at_a_time(emu: Emulator) -> None:
    emu.script(Reply(text=["a"], done=False, fault=Fault.slow_trickle(0.0005)))
    _, pieces = raw_exchange(emu)
    assert len(pieces) > 50
    assert all(len(piece) == 1 for piece in pieces)
    assert deltas(b"".join(pieces).decode())[0]["content"] == "a"


# -- replay --------------------------------------------------------------------------------

LF_BODY = b'data: {"a": 1}\n\n: comment\ndata: {"b":\ndata: 2}\n\nevent: x\ndata: [DONE]\n\n'
CRLF_BODY = LF_BODY.replace(b"\n", b"\r\n")


@pytest.mark.parametrize("body", [LF_BODY, CRLF_BODY], ids=["lf", "crlf"])
@pytest.mark.parametrize("split", ["event", "line", 7, None])
def test_replay_is_byte_exact_and_split_into_writes(emu: Emulator, body: bytes, split: Any) -> None:
    emu.replay(body, status=200, content_type="text/event-stream", split=split)
    head, pieces = raw_exchange(emu)
    assert head.startswith(b"HTTP/1.1 200")
    assert b"content-type: text/event-stream" in head.lower()
    assert b"".join(pieces) == body
    newline = b"\r\n" if body is CRLF_BODY else b"\n"
    if split == "event":
        assert len(pieces) == 3
        assert all(piece.endswith(newline * 2) for piece in pieces)
    elif split == "line":
        assert pieces == body.splitlines(keepends=True)
    elif split == 7:
        assert all(len(piece) == 7 for piece in pieces[:-1])
    else:
        assert pieces == [body]


def test_replay_with_other_status_and_type(emu: Emulator) -> None:
    ndjson = b'{"x": 1}\n{"x": 2}\n'
    emu.replay(ndjson, status=500, content_type="application/x-ndjson", split="line")
    response = httpx.post(emu.url + CHAT, json=chat_body())
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/x-ndjson"
    assert response.content == ndjson


# -- connections ----------------------------------------------------------------------------


def test_keep_alive_reuses_one_connection(emu: Emulator) -> None:
    with httpx.Client() as client:
        for _ in range(3):
            assert client.post(emu.url + CHAT, json=chat_body()).status_code == 200
            assert client.post(emu.url + CHAT, json=chat_body(stream=False)).status_code == 200
        assert emu.total_connections == 1
        assert emu.open_connections == 1
    assert emu.wait_idle()
    assert emu.open_connections == 0


@pytest.mark.anyio
async def test_async_clients_on_both_backends() -> None:
    async with Emulator() as emu, httpx.AsyncClient() as client:
        emu.script(Reply(text=["x", "y"], delay=0.01), Reply(text=["z"]))
        async with client.stream("POST", emu.url + CHAT, json=chat_body()) as response:
            text = "".join([line + "\n" async for line in response.aiter_lines()])
        assert [d.get("content") for d in deltas(text)] == ["x", "y", None]
        second = await client.post(emu.url + CHAT, json=chat_body(stream=False))
        assert second.json()["choices"][0]["message"]["content"] == "z"
        assert emu.total_connections == 1


@pytest.mark.parametrize("fault", [None, Fault.stall_after(1, 30.0)], ids=["streaming", "stalled"])
def test_client_hanging_up_mid_stream_frees_the_connection(
    emu: Emulator, fault: Fault | None, caplog: pytest.LogCaptureFixture
) -> None:
    emu.script(Reply(text=["tok "] * 1000, delay=0.01, fault=fault))
    with httpx.Client() as client, client.stream("POST", emu.url + CHAT, json=chat_body()) as response:
        lines = response.iter_lines()  # kept alive: dropping it early closes the connection
        assert next(lines).startswith("data: ")
        assert emu.open_connections == 1
    started = time.monotonic()
    assert emu.wait_idle(timeout=3.0)
    assert time.monotonic() - started < 1.0  # noticed at once, not after the stall or stream
    assert emu.open_connections == 0
    # The emulator still serves new clients, and nothing was logged.
    assert deltas(stream_text(emu))[0]["role"] == "assistant"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.anyio
async def test_many_concurrent_streams(emu: Emulator) -> None:
    emu.default = Reply(text=["tok "] * 20, delay=0.005)
    counts: list[int] = []

    async def one(client: httpx.AsyncClient) -> None:
        async with client.stream("POST", emu.url + CHAT, json=chat_body()) as response:
            counts.append(len(deltas((await response.aread()).decode())))

    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    async with httpx.AsyncClient(limits=limits, timeout=20) as client, anyio.create_task_group() as tg:
        for _ in range(200):
            tg.start_soon(one, client)
    assert counts == [21] * 200
    assert emu.total_connections >= 200
    assert emu.wait_idle()


def test_long_stream_is_served_fast(emu: Emulator) -> None:
    emu.script(Reply(text=["tok "] * 20_000))
    started = time.monotonic()
    _, pieces = raw_exchange(emu)
    elapsed = time.monotonic() - started
    assert len(pieces) == 20_002  # one write per chunk, plus the finish chunk and [DONE]
    assert elapsed < 3.0


def test_recorded_requests(emu: Emulator) -> None:
    httpx.post(emu.url + CHAT + "?api-version=1", json=chat_body(), headers={"X-Trace": "abc"})
    httpx.get(emu.url + "/v1/models")
    first, second = emu.requests
    assert isinstance(first, RecordedRequest)
    assert (first.method, first.path) == ("POST", CHAT + "?api-version=1")
    assert first.headers["x-trace"] == "abc"
    assert first.headers["content-type"] == "application/json"
    assert first.json == chat_body()
    assert orjson.loads(first.body) == chat_body()
    assert (second.method, second.path, second.body, second.json) == ("GET", "/v1/models", b"", None)
    emu.script(Reply(text=["queued"]))
    emu.reset()
    assert emu.requests == []
    assert deltas(stream_text(emu))[0]["content"] == "Hello "  # the queued reply is gone


def test_lifecycle() -> None:
    emulator = Emulator()
    with pytest.raises(RuntimeError):
        _ = emulator.url
    with emulator:
        port = int(emulator.url.rsplit(":", 1)[1])
        assert emulator.openai_base_url == emulator.url + "/v1"
        with pytest.raises(OSError), Emulator(port=port):
            pass
    emulator.stop()  # idempotent
    with pytest.raises(httpx.ConnectError):
        httpx.post(f"http://127.0.0.1:{port}{CHAT}", json=chat_body())
    with emulator:  # restartable
        assert stream_text(emulator)


def test_stop_aborts_open_streams_promptly(caplog: pytest.LogCaptureFixture) -> None:
    emulator = Emulator().start()
    emulator.script(Reply(text=["a", "b"], fault=Fault.stall_after(1, 30.0)))
    with httpx.Client() as client, client.stream("POST", emulator.url + CHAT, json=chat_body()) as response:
        lines = response.iter_lines()
        assert next(lines).startswith("data: ")
        started = time.monotonic()
        emulator.stop()
        assert time.monotonic() - started < 1.0
        assert emulator.open_connections == 0
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            list(lines)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


# -- command line ----------------------------------------------------------------------------


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_command_line_server(stop_signal: signal.Signals) -> None:
    root = Path(streamwrap.testing.__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "streamwrap.testing", "--port", "0"]
    command += ["--chunks", "3", "--chunk-text", "x ", "--usage"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode()
        prefix = "streamwrap-emulator listening on "
        assert line.startswith(prefix + "http://127.0.0.1:")
        url = line.removeprefix(prefix).strip()
        # Then the base_url of each dialect and the key rule (tests/emulator/test_emulator_auth.py).
        banner = [process.stdout.readline().decode() for _ in range(5)]
        assert banner[0].startswith(f"  base_url for openai:    {url}/v1 ")
        text = httpx.post(url + CHAT, json=chat_body()).text
        assert [d.get("content") for d in deltas(text)] == ["x ", "x ", "x ", None]
        assert chunks(text)[-1]["usage"]["completion_tokens"] == 3  # --usage: sent unasked
    finally:
        process.send_signal(stop_signal)
        out, err = process.communicate(timeout=10)
    assert process.returncode == 0, err.decode()
    assert out == b""  # nothing beyond the banner
