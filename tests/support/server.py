"""A real uvicorn server for the web tests: 127.0.0.1, a port of its own, a background thread."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn


class Server:
    """``app`` served by uvicorn in a background thread (no signal handlers there); the
    socket is bound first, so the port is known and free."""

    def __init__(self, app: Any, *, log_level: str = "warning") -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        self.sock = sock
        self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/ws"
        config = uvicorn.Config(app, log_level=log_level, lifespan="off", timeout_graceful_shutdown=1)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            assert self.thread.is_alive(), "uvicorn failed to start"
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()
