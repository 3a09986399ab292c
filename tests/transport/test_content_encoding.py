"""A streamed body with a content encoding is decompressed before it is decoded.

Unencoded bodies are read with ``aiter_raw()`` (cheaper); an encoded one must still go
through httpx's decoders. A real uvicorn server sends an Anthropic stream gzip-compressed,
in small pieces, and the wrapper must read exactly its text.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from typing import Any

import pytest

import streamwrap
from tests.support.server import Server

pytestmark = pytest.mark.anyio

PIECES = ["Hello", ", ", "compressed", " world", "!"]


def _events() -> bytes:
    events: list[dict[str, Any]] = [
        {
            "type": "message_start",
            "message": {"id": "msg_1", "model": "claude-x", "usage": {"input_tokens": 3, "output_tokens": 1}},
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        *(
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}}
            for p in PIECES
        ),
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 5}},
        {"type": "message_stop"},
    ]
    return b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)


def _app(encoding: str) -> Any:
    body = gzip.compress(_events()) if encoding == "gzip" else _events()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        while (await receive()).get("more_body"):
            pass
        headers = [(b"content-type", b"text/event-stream")]
        if encoding != "none":
            headers.append((b"content-encoding", encoding.encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for i in range(0, len(body), 7):  # 7-byte writes: cuts inside the compressed data
            await send({"type": "http.response.body", "body": body[i : i + 7], "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    return app


@pytest.fixture(params=["gzip", "identity", "none"])
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    srv = Server(_app(request.param))
    yield srv
    srv.stop()


async def test_an_encoded_stream_is_decompressed_before_decoding(server: Server) -> None:
    model = streamwrap.load_model(
        {"model_type": "anthropic_chat", "model_name": "claude-x", "api_key": "k", "base_url": server.url}
    )
    try:
        response = await model("hi", stream=True)
        snapshots = [text async for _, text in response.stream]
        assert snapshots[-1] == "".join(PIECES)
        assert response.finish_reason == "stop"
        assert response.usage is not None and response.usage.output_tokens == 5
    finally:
        await model.aclose()
