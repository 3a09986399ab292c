"""A chat over one websocket: ``websocket_chat`` serves the connection, a ``websockets``
client chats, watches the text grow, then stops a long answer with ``{"type": "cancel"}``.

Frames are streamwrap's JSON events: ``start``, ``text`` deltas, then one ``end`` with the
status, usage and finish reason (and no text: the deltas carried it).

Runs offline: the provider emulator from ``streamwrap.testing`` plays an OpenAI-compatible
server on 127.0.0.1, and the app is served by uvicorn on a free port. Needs
``pip install "streamwrap[web]" fastapi``.

    python examples/websocket_chat.py
"""

import asyncio
import json
import socket
from typing import Any

import uvicorn
from fastapi import FastAPI, WebSocket
from websockets.asyncio.client import ClientConnection, connect

import streamwrap
from streamwrap.testing import Emulator, Reply
from streamwrap.web import websocket_chat


def create_app(model: streamwrap.ModelWrapper) -> FastAPI:
    app = FastAPI()

    @app.websocket("/ws")
    async def chat(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket_chat(websocket, model)  # until the client hangs up

    return app


async def one_turn(ws: ClientConnection, prompt: str, *, stop_after: int | None = None) -> dict[str, Any]:
    """Send a chat message, print the answer as it grows, return the end frame."""
    await ws.send(json.dumps({"type": "chat", "messages": [{"role": "user", "content": prompt}]}))
    deltas = 0
    while True:
        frame: dict[str, Any] = json.loads(await ws.recv())
        if frame["type"] == "text":
            print(frame["delta"], end="", flush=True)
            deltas += 1
            if deltas == stop_after:
                await ws.send(json.dumps({"type": "cancel"}))  # the Stop button
        elif frame["type"] == "error":  # the request was refused (e.g. HTTP 429)
            print("error:", frame["message"])
            return frame
        elif frame["final"]:
            print(
                f"\n[{frame['status']}, finish_reason={frame['finish_reason']}, "
                f"{frame['usage']['output_tokens']} tokens out]"
            )
            return frame


async def main() -> None:
    with Emulator() as emu:
        emu.script(
            Reply(text=["Websockets ", "carry ", "the ", "same ", "events."], delay=0.05),
            Reply(text=[f"word{i} " for i in range(500)], delay=0.02),
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

        async with connect(f"ws://127.0.0.1:{sock.getsockname()[1]}/ws") as ws:
            end = await one_turn(ws, "Hello?")
            assert end["status"] == "finished"
            end = await one_turn(ws, "Count to 500", stop_after=5)
            assert end["status"] == "cancelled"  # and the model's request was closed

        server.should_exit = True
        await serving
        sock.close()
        await model.aclose()


if __name__ == "__main__":
    asyncio.run(main())
