"""The :class:`Emulator`: a multi-dialect LLM provider HTTP server on a background thread."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections import deque
from types import TracebackType
from typing import NamedTuple, Self

from ._connection import HTTPConnection
from ._dialects import dialect_for
from ._openai_dialect import OPENAI
from ._plan import Plan
from ._recorded import RecordedRequest
from ._render import IdSequence, render_raw
from ._script import RawReply, Reply, Split

# Tests open hundreds of connections at once; the usual backlog of 100 would
# make some of them wait for SYN retransmits.
_BACKLOG = 1024


class _Listening(NamedTuple):
    """What the server thread hands back once its socket is bound."""

    loop: asyncio.AbstractEventLoop
    stop: asyncio.Event  # set (from the loop thread) to shut the server down
    port: int


class Emulator:
    """An LLM provider server on ``host:port`` for tests and benchmarks.

    The server runs its own asyncio event loop in a daemon thread, so it works
    the same from synchronous, asyncio and trio code.  Each model request takes
    the next scripted reply from a FIFO queue, or :attr:`default` when the
    queue is empty, and renders it in the wire format its path asks for:

    =========================================================  ==============================
    path (``POST``)                                            dialect
    =========================================================  ==============================
    ``/openai/deployments/{deployment}/chat/completions``      Azure OpenAI (:attr:`azure_endpoint`)
    (``?api-version=...``)
    ``.../chat/completions`` (any other)                       OpenAI (:attr:`openai_base_url`)
    ``.../responses``                                          OpenAI Responses (the same base URL)
    ``/api/v1/services/aigc/text-generation/generation``       DashScope native
    (or ``multimodal-generation``)                             (:attr:`dashscope_base_url`)
    ``/{v1beta|v1}/models/{model}:streamGenerateContent``      Gemini (:attr:`gemini_base_url`)
    (``?alt=sse``) or ``:generateContent``
    ``/api/chat``                                              Ollama (:attr:`ollama_base_url`)
    ``/v1/messages``                                           Anthropic (:attr:`anthropic_base_url`)
    ``/model/{modelId}/converse-stream`` (or ``converse``,     Amazon Bedrock
    ``invoke-with-response-stream``, ``invoke``)               (:attr:`bedrock_endpoint_url`)
    ``/{v1|v1beta1}/projects/{p}/locations/{l}/publishers/``   Gemini on Vertex AI (:attr:`vertex_base_url`)
    ``google/models/{model}:streamGenerateContent`` (or the
    express-mode ``/v1/publishers/google/models/...``)
    =========================================================  ==============================

    Every request is recorded in :attr:`requests`.

    Any API key is accepted unless ``api_key`` is given: then a request that lacks it is
    answered as the provider of its dialect answers a missing or wrong key (OpenAI, its
    Responses API, and DashScope: HTTP 401 with their error bodies, the key read from
    ``Authorization: Bearer``; Azure OpenAI: its gateway's 401, the key read from
    ``api-key``; Gemini: 400 ``API_KEY_INVALID`` for a wrong ``x-goog-api-key`` or ``?key=``,
    403 ``PERMISSION_DENIED`` for none; Vertex AI: the key as a bearer token or
    ``x-goog-api-key``, else 401 ``UNAUTHENTICATED`` (or 400 ``API_KEY_INVALID`` for a
    wrong key); Anthropic: 401 ``authentication_error`` for a
    missing or wrong ``x-api-key``; Ollama has no keys and is never checked), before
    anything else, and without taking a scripted reply from the queue.

    Use it as a context manager (sync or async) or call :meth:`start` and
    :meth:`stop`.  ``port=0`` picks a free port; read it back from :attr:`url`.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, api_key: str | None = None) -> None:
        if api_key is not None and (not isinstance(api_key, str) or not api_key):
            raise ValueError(
                f"api_key must be a non-empty string, or None to accept any key; got {api_key!r}"
            )
        self._host = host
        self._requested_port = port
        self._api_key = api_key
        self._running: tuple[threading.Thread, _Listening] | None = None
        self._ids = IdSequence()
        # Guards everything shared with the caller's threads below.
        self._state = threading.Condition()
        self._queue: deque[Reply | RawReply] = deque()
        self._default = Reply(text="Hello from the emulator.")
        self._requests: list[RecordedRequest] = []
        self._open_connections = 0
        self._total_connections = 0
        # Touched only on the event loop thread.
        self._live: set[HTTPConnection] = set()
        self._shutting_down = False

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> Self:
        """Start serving; returns once the socket is listening.  Raises ``OSError`` if binding fails."""
        if self._running is not None:
            raise RuntimeError("Emulator is already running")
        with self._state:
            self._total_connections = 0
        started: concurrent.futures.Future[_Listening] = concurrent.futures.Future()
        thread = threading.Thread(target=self._run, args=(started,), name="streamwrap-emulator", daemon=True)
        thread.start()
        # Re-raises a bind error; the thread has ended by then.
        self._running = thread, started.result()
        return self

    def stop(self) -> None:
        """Stop serving: close the listener and abort open connections.  Idempotent."""
        running, self._running = self._running, None
        if running is None:
            return
        thread, listening = running
        listening.loop.call_soon_threadsafe(listening.stop.set)
        thread.join()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        # Starting and stopping take milliseconds, so blocking briefly is fine
        # and keeps this usable from any async framework.
        return self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- addresses ------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` of the running server."""
        if self._running is None:
            raise RuntimeError("Emulator is not running; call start() or use it as a context manager")
        _, listening = self._running
        host = f"[{self._host}]" if ":" in self._host else self._host  # IPv6 literals need brackets
        return f"http://{host}:{listening.port}"

    @property
    def openai_base_url(self) -> str:
        """The base URL to hand an OpenAI-style client: :attr:`url` + ``/v1``."""
        return self.url + "/v1"

    @property
    def azure_endpoint(self) -> str:
        """The endpoint to hand an Azure OpenAI client: :attr:`url` (the client adds
        ``/openai/deployments/{deployment}/chat/completions?api-version=...``).

        E.g. ``openai.AsyncAzureOpenAI(azure_endpoint=..., api_version=..., api_key=...)``.
        """
        return self.url

    @property
    def dashscope_base_url(self) -> str:
        """The base URL to hand a DashScope native client: :attr:`url` + ``/api/v1``.

        E.g. ``dashscope.base_http_api_url``, or ``base_address=`` of ``Generation.call``.
        """
        return self.url + "/api/v1"

    @property
    def gemini_base_url(self) -> str:
        """The base URL to hand a Gemini client: :attr:`url` (the client adds ``/v1beta``).

        E.g. ``genai.Client(http_options=types.HttpOptions(base_url=...))``.
        """
        return self.url

    @property
    def ollama_base_url(self) -> str:
        """The base URL to hand an Ollama client: :attr:`url` (the client adds ``/api/chat``).

        E.g. ``ollama.AsyncClient(host=...)``.
        """
        return self.url

    @property
    def anthropic_base_url(self) -> str:
        """The base URL to hand an Anthropic client: :attr:`url` (the client adds ``/v1/messages``).

        E.g. ``anthropic.AsyncAnthropic(base_url=...)``.
        """
        return self.url

    @property
    def bedrock_endpoint_url(self) -> str:
        """The endpoint to hand a Bedrock runtime client: :attr:`url` (the client adds
        ``/model/{modelId}/converse-stream``).

        E.g. ``boto3.client("bedrock-runtime", endpoint_url=...)``, or ``bedrock_chat``'s
        ``base_url``.
        """
        return self.url

    @property
    def vertex_base_url(self) -> str:
        """The base URL to hand a Vertex AI client: :attr:`url` (the client adds
        ``/v1beta1/projects/{project}/locations/{location}/publishers/google/models/...``).

        E.g. ``genai.Client(vertexai=True, project=..., location=..., http_options={"base_url": ...})``.
        """
        return self.url

    @property
    def api_key(self) -> str | None:
        """The API key requests must carry, or ``None`` if any key (or none) is accepted."""
        return self._api_key

    # -- scripting ------------------------------------------------------------------

    def script(self, *replies: Reply) -> None:
        """Queue replies; each model request, whatever its dialect, takes the next one, in order."""
        with self._state:
            self._queue.extend(replies)

    def replay(
        self,
        body: bytes,
        *,
        status: int = 200,
        content_type: str = "text/event-stream",
        split: Split = "event",
    ) -> None:
        """Queue a reply that sends ``body`` verbatim, whatever the request asked.

        ``split`` decides the writes, so a client really receives it piece by
        piece: ``"event"`` one SSE event (up to and including its blank line,
        LF or CRLF) per write (one message of an AWS event stream, for the
        ``application/vnd.amazon.eventstream`` content type), ``"line"`` one line per write, an ``int`` pieces
        of that many bytes, ``None`` everything at once.
        """
        raw = RawReply(body=body, status=status, content_type=content_type, split=split)
        with self._state:
            self._queue.append(raw)

    @property
    def default(self) -> Reply:
        """The reply used when the queue is empty (initially a short greeting)."""
        with self._state:
            return self._default

    @default.setter
    def default(self, reply: Reply) -> None:
        with self._state:
            self._default = reply

    def reset(self) -> None:
        """Forget queued replies and recorded requests (the default reply stays)."""
        with self._state:
            self._queue.clear()
            self._requests.clear()

    # -- observation ----------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far, in arrival order."""
        with self._state:
            return list(self._requests)

    @property
    def open_connections(self) -> int:
        """TCP connections open right now."""
        with self._state:
            return self._open_connections

    @property
    def total_connections(self) -> int:
        """TCP connections accepted since the last :meth:`start`."""
        with self._state:
            return self._total_connections

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Block until no connection is open; return ``False`` if ``timeout`` ran out first."""
        with self._state:
            return self._state.wait_for(lambda: self._open_connections == 0, timeout)

    # -- event loop thread ----------------------------------------------------------

    def _run(self, started: concurrent.futures.Future[_Listening]) -> None:
        asyncio.run(self._serve(started))

    async def _serve(self, started: concurrent.futures.Future[_Listening]) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        self._shutting_down = False
        try:
            server = await loop.create_server(
                self._new_connection, self._host, self._requested_port, backlog=_BACKLOG
            )
        except OSError as exc:
            started.set_exception(exc)
            return
        started.set_result(_Listening(loop, stop, server.sockets[0].getsockname()[1]))
        await stop.wait()
        self._shutting_down = True
        server.close()
        for connection in list(self._live):
            connection.abort()
        # abort() reports connection_lost on the next loop iteration; let it, so
        # no transport outlives the loop.
        while self._live:
            await asyncio.sleep(0)
        await server.wait_closed()

    def _new_connection(self) -> HTTPConnection:
        return HTTPConnection(self._respond, self._connection_opened, self._connection_closed)

    def _connection_opened(self, connection: HTTPConnection) -> None:
        self._live.add(connection)
        with self._state:
            self._open_connections += 1
            self._total_connections += 1
        if self._shutting_down:  # accepted just before the listener closed
            connection.abort()

    def _connection_closed(self, connection: HTTPConnection) -> None:
        self._live.discard(connection)
        with self._state:
            self._open_connections -= 1
            self._state.notify_all()

    def _respond(self, request: RecordedRequest) -> Plan:
        with self._state:
            self._requests.append(request)
        path = request.path.split("?", 1)[0]
        dialect = dialect_for(path)
        if self._api_key is not None and dialect is not None:
            # As a real provider does: the key is checked before anything else is looked at.
            refusal = dialect.refuse_key(request, self._api_key, self._ids)
            if refusal is not None:
                return refusal
        with self._state:
            # A replayed body answers whatever was asked, on any path: recordings of every
            # provider's native protocol replay through the same queue.
            head = self._queue[0] if self._queue else None
            if isinstance(head, RawReply):
                self._queue.popleft()
        if isinstance(head, RawReply):
            return render_raw(head)
        if dialect is None:
            return OPENAI.error(404, f"Invalid URL ({request.method} {path})")
        if request.method != "POST":
            return dialect.error(
                405, f"Method {request.method} not allowed; use POST.", headers={"Allow": "POST"}
            )
        if not isinstance(request.json, dict):
            return dialect.error(400, "We could not parse the JSON body of your request.")
        with self._state:
            reply = self._queue.popleft() if self._queue else self._default
        if isinstance(reply, RawReply):
            return render_raw(reply)
        return dialect.render(reply, request, request.json, self._ids)
