"""One worker of a multi-process deployment, for the tests: ``chat_app`` with a
``RedisStreamStore`` (its lease short, so that a killed generator is noticed quickly) under
uvicorn, on a loopback port of its own, in a process the test can kill. Prints
``port <n>`` once it listens.

``python -m tests.support.resume_worker <the emulator's URL> <redis URL> <lease seconds>``
"""

from __future__ import annotations

import logging
import socket
import sys

import uvicorn

from streamwrap.web import RedisStreamStore, chat_app
from tests.support.providers import make_model


def main() -> None:
    emulator_url, redis_url, lease = sys.argv[1], sys.argv[2], float(sys.argv[3])
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(name)s: %(message)s")
    model = make_model(emulator_url)
    app = chat_app(model, store=RedisStreamStore(redis_url, lease=lease), heartbeat=0.5)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    print(f"port {sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=1)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
