"""A FastAPI chat endpoint for the Vercel AI SDK's ``useChat``: ``POST /api/chat`` answers
with the UI message stream protocol (server-sent events) that ``useChat`` reads as is.

The script serves the app with uvicorn on a free port, posts a ``useChat``-shaped body with
httpx, and prints the answer as it reassembles it from the stream. If the client goes
away mid-answer, the model's request is cancelled.

Runs offline: the provider emulator from ``streamwrap.testing`` plays an OpenAI-compatible
server on 127.0.0.1. Needs ``pip install "streamwrap[web]" fastapi``.

    python examples/fastapi_sse.py
"""

import asyncio
import json
import socket
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI, Request
from starlette.responses import Response

import streamwrap
from streamwrap.testing import Emulator, Reply
from streamwrap.web import sse_response


def create_app(model: streamwrap.ModelWrapper) -> FastAPI:
    app = FastAPI()

    @app.post("/api/chat")
    async def chat(request: Request) -> Response:
        body = await request.json()
        # useChat sends UI messages: {"id", "role", "parts": [{"type": "text", "text"}, ...]}.
        messages = [
            {"role": m["role"], "content": "".join(p["text"] for p in m["parts"] if p["type"] == "text")}
            for m in body["messages"]
        ]
        # The call, un-awaited: if the provider refuses it (401, 429, ...), the error comes
        # inside the stream, where useChat shows it. (Await it yourself to keep the response.)
        return sse_response(model(messages))

    return app


async def main() -> None:
    with Emulator() as emu:
        emu.script(
            Reply(
                text=["Server-sent ", "events ", "stream ", "one ", "delta ", "at ", "a ", "time."],
                usage=(9, 8),
                delay=0.05,
            )
        )
        model = streamwrap.load_model(
            {
                "model_type": "openai_chat",
                "model_name": "gpt-4o-mini",
                "stream": True,
                "base_url": emu.openai_base_url,
            }
        )
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))  # a free port
        server = uvicorn.Server(uvicorn.Config(create_app(model), log_level="warning", lifespan="off"))
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            await asyncio.sleep(0.01)

        url = f"http://127.0.0.1:{sock.getsockname()[1]}/api/chat"
        body = {
            "id": "chat-1",
            "messages": [
                {"id": "m1", "role": "user", "parts": [{"type": "text", "text": "How does this work?"}]}
            ],
            "trigger": "submit-message",
        }
        text = ""
        async with httpx.AsyncClient() as client, client.stream("POST", url, json=body) as reply:
            print("protocol:", reply.headers["x-vercel-ai-ui-message-stream"])
            async for line in reply.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue  # id:, event: and ": keep-alive" lines are for others
                chunk: dict[str, Any] = json.loads(line.removeprefix("data: "))
                if chunk["type"] == "text-delta":
                    text += chunk["delta"]
                    print(chunk["delta"], end="", flush=True)
                elif chunk["type"] == "finish":
                    metadata = chunk["messageMetadata"]
                    usage = metadata["usage"]
                    print(
                        f"\n[{metadata['finishReason']}; {usage['input_tokens']} in, {usage['output_tokens']} out]"
                    )
                elif chunk["type"] == "error":
                    print("\nerror:", chunk["errorText"])
        assert text == "Server-sent events stream one delta at a time."

        server.should_exit = True
        await serving
        sock.close()
        await model.aclose()


if __name__ == "__main__":
    asyncio.run(main())
