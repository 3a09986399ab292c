"""Delivery to browsers and websocket clients, for Starlette and FastAPI.

* :func:`sse_response` streams a response as server-sent events: the Vercel AI SDK's UI
  message stream protocol v1 (``useChat`` front ends work unchanged) or streamwrap's own
  JSON events; :func:`text_response` streams plain text.
* :func:`stream_to_websocket` sends a response over a websocket (Starlette's or the
  ``websockets`` library's); :func:`websocket_chat` serves a whole chat connection;
  :class:`WebSocketSink` is a sink for ``streamwrap.default_output``.
* :func:`chat_app` is the app behind ``streamwrap serve``: a chat page and both endpoints.

Needs ``pip install "streamwrap[web]"``.
"""

from ._app import chat_app
from ._chat_session import websocket_chat
from ._responses import sse_response, text_response
from ._websocket import WebSocketSink, stream_to_websocket

__all__ = [
    "WebSocketSink",
    "chat_app",
    "sse_response",
    "stream_to_websocket",
    "text_response",
    "websocket_chat",
]
