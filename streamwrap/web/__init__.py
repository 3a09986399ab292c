"""Delivery to browsers and websocket clients, for Starlette and FastAPI.

* :func:`sse_response` streams a response as server-sent events: the Vercel AI SDK's UI
  message stream protocol v1 (``useChat`` front ends work unchanged) or streamwrap's own
  JSON events; :func:`text_response` streams plain text.
* :func:`stream_to_websocket` sends a response over a websocket (Starlette's or the
  ``websockets`` library's); :func:`websocket_chat` serves a whole chat connection;
  :class:`WebSocketSink` is a sink for ``streamwrap.default_output``.
* :func:`chat_app` is the app behind ``streamwrap serve``: a chat page and both endpoints.
* :class:`StreamStore` keeps the app's replies so that they can be resumed, followed by
  several readers and stopped from anywhere: :class:`MemoryStreamStore` (one process) or
  :class:`RedisStreamStore` (several; ``pip install "streamwrap[redis]"``).

Needs ``pip install "streamwrap[web]"``.
"""

from typing import TYPE_CHECKING, Any

from ._app import chat_app
from ._chat_session import websocket_chat
from ._responses import sse_response, text_response
from ._store import MemoryStreamStore, StreamStore
from ._websocket import WebSocketSink, stream_to_websocket

if TYPE_CHECKING:
    from ._redis_store import RedisStreamStore

__all__ = [
    "MemoryStreamStore",
    "RedisStreamStore",
    "StreamStore",
    "WebSocketSink",
    "chat_app",
    "sse_response",
    "stream_to_websocket",
    "text_response",
    "websocket_chat",
]


def __getattr__(name: str) -> Any:
    # redis-py is an extra of its own: imported when the Redis store is asked for.
    if name == "RedisStreamStore":
        from ._redis_store import RedisStreamStore

        return RedisStreamStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
