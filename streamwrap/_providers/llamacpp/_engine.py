"""Loaded local models: llama.cpp's own C++ server engine, in-process (``xllamacpp``).

One :class:`Engine` per (model file, settings) per process, shared by every call and every
wrapper with those settings: loading takes a while and the weights are large. The engine
is llama.cpp's server (``xllamacpp.Server``): ``n_parallel`` slots with continuous batching,
thread-safe, each slot with a context of its own (``n_ctx`` tokens per stream, so that a
stream that was admitted never runs out of room because of the others).

Each generation runs on a worker thread of its own (``handle_chat_completions`` blocks
until the reply ends, calling back with every chunk, on that thread). A call first takes a
slot here, so that a queued call waits in Python, where cancelling it is immediate (inside
llama.cpp a queued request cannot be withdrawn until it produces its first token).

Stopping. A callback that returns ``True`` ends the request: llama.cpp cancels the task
and frees its slot within a token. Nothing else can interrupt a request, so requests ask
for progress chunks while the prompt is evaluated, in batches of 32 tokens: a long prompt
is cancelled after its current batch, not after all of it. The ``Server`` must never be destroyed while
a thread is inside it: llama.cpp aborts the process when a waiting request sees its server
stop, and a Python callback on a thread that meets interpreter shutdown unwinds through
C++ ``noexcept`` frames (an abort too). So :func:`shutdown` (at interpreter exit, and
``unload_models(cancel=True)``) cancels every generation, waits for the workers to leave
llama.cpp, and only then frees the servers; a server whose worker does not come back in
time is kept alive, never freed under it.

The server also listens on a loopback HTTP port (xllamacpp always starts it). It gets a
random API key and no web UI, so that other local processes and web pages cannot use it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..._errors import ConfigError, InputError, MissingDependencyError
from ..._runtime import runtime
from ._model_source import resolve_model
from ._thread_feed import ThreadFeed

__all__ = ["Engine", "EngineSettings", "engine", "shutdown", "unload_models"]

# How often a call queued for a slot looks at its cancel flag.
_QUEUE_POLL_SECONDS = 0.05
# Tokens of a prompt evaluated at once (see Engine._load). A cancel waits for the current
# batch twice: the worker leaves at the progress chunk that follows it, and freeing the model
# waits for llama.cpp's loop to finish the batch it is in. SmolLM2-135M on 2 shared cores
# evaluates ~300 prompt tokens/s: 128 tokens made Ctrl-C take 0.5-1 s (more on a busy
# machine), 32 takes ~0.1 s, for ~20% more time on a long prompt (786 tokens: 3.1 s against
# 2.5 s). client_args can set n_batch / n_ubatch.
_PROMPT_BATCH = 32
# At exit: how long to wait for generations to reach their next token and stop. Only a
# long prompt still being processed takes more than a few milliseconds.
_EXIT_WAIT_SECONDS = 10.0
# CommonParams attributes that the wrapper's own config keys set: not client_args.
_OWNED_PARAMS = frozenset(
    (
        "model",
        "n_ctx",
        "n_parallel",
        "cpuparams",
        "cpuparams_batch",
        "chat_template",
        "api_keys",
        "verbosity",
        "kv_unified",
    )
)


@dataclass(frozen=True)
class EngineSettings:
    """What identifies a loaded model: calls with equal settings share one engine."""

    # The model as resolve_model() takes it: "smollm2", a file's absolute path, an hf: name.
    # Resolved (and fetched if needed) when the engine loads.
    model: str
    n_ctx: int  # per stream (slot)
    n_parallel: int
    n_threads: int | None
    chat_template: str | None  # a Jinja template, or "chatml"; None: the GGUF's own
    # Further xllamacpp.CommonParams attributes. Their values may be unhashable (lists):
    # the key compares their repr instead.
    client_args: tuple[tuple[str, Any], ...] = field(compare=False)
    client_args_key: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "client_args_key", repr(self.client_args))


class Engine:
    """One loaded model: its ``xllamacpp.Server``, slots, and the threads generating on it."""

    def __init__(self, settings: EngineSettings, config_name: str | None) -> None:
        self.settings = settings
        self.config_name = config_name
        self.supports_tools = False
        self._server: Any = None
        self._load_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(settings.n_parallel)
        self._lock = threading.Lock()
        self._workers: dict[threading.Thread, ThreadFeed] = {}
        self._retired = False

    @property
    def loaded(self) -> bool:
        return self._server is not None

    # -- generating ------------------------------------------------------------------------

    def start(self, feed: ThreadFeed, body: bytes, on_chunk: Callable[[bytes], bool], *, tools: bool) -> None:
        """Generate on a worker thread: take a slot, load the model if needed, run the
        request; every chunk goes to ``on_chunk`` (which returns ``True`` to stop)."""
        thread = threading.Thread(
            target=self._run, args=(feed, body, on_chunk, tools), name="streamwrap-local", daemon=True
        )
        with self._lock:
            self._workers[thread] = feed
        thread.start()

    def load_in_background(self, feed: ThreadFeed) -> None:
        """Load the model (fetching its file if needed) on a worker thread, then end ``feed``
        (with the error, if any). The thread is tracked as a generation's is: the exit waits
        for it to leave llama.cpp."""
        thread = threading.Thread(
            target=self._run_load, args=(feed,), name="streamwrap-local-load", daemon=True
        )
        with self._lock:
            self._workers[thread] = feed
        thread.start()

    def _run_load(self, feed: ThreadFeed) -> None:
        error: BaseException | None = None
        try:
            self.load()
        except Exception as exc:
            error = exc
        finally:
            feed.end(error)
            self._leave()

    def _run(self, feed: ThreadFeed, body: bytes, on_chunk: Callable[[bytes], bool], tools: bool) -> None:
        error: BaseException | None = None
        try:
            if not self._take_slot(feed):
                return
            try:
                server = self.load()
                if tools and not self.supports_tools:
                    raise InputError(
                        "this model's chat template does not render tools, so the model would never see "
                        "them: set 'chat_format' to a Jinja chat template that does (for example the "
                        "model family's tool-calling template), or call without tools."
                    )
                if not feed.cancelled.is_set():
                    try:
                        server.handle_chat_completions(body, on_chunk)
                    except ValueError as exc:
                        # llama.cpp's template engine rejects some conversations (roles out of
                        # order, two trailing assistant messages) by raising.
                        raise InputError(f"the model's chat template rejected the messages: {exc}") from None
            finally:
                self._slots.release()
        except Exception as exc:
            # Raised in the producer task: the base class turns anything that is not a
            # StreamwrapError into one (with the original as its cause).
            error = exc
        finally:
            feed.end(error)
            self._leave()

    def _take_slot(self, feed: ThreadFeed) -> bool:
        """Wait for a free slot; give up when the call is cancelled meanwhile."""
        while not self._slots.acquire(timeout=_QUEUE_POLL_SECONDS):
            if feed.cancelled.is_set():
                return False
        if feed.cancelled.is_set():
            self._slots.release()
            return False
        return True

    def _leave(self) -> None:
        with self._lock:
            self._workers.pop(threading.current_thread(), None)
            free = self._retired and not self._workers
        if free:
            self._free()

    # -- loading ---------------------------------------------------------------------------

    def load(self) -> Any:
        """The loaded server, loading it first if needed (blocking: a worker thread's call)."""
        with self._load_lock:
            if self._server is None:
                self._server = self._load()
            return self._server

    def _load(self) -> Any:
        try:
            import xllamacpp
        except ImportError:
            raise MissingDependencyError("xllamacpp", "local") from None
        s = self.settings
        model_path = str(resolve_model(s.model))
        params = xllamacpp.CommonParams()
        params.model.path = model_path
        # Each slot gets n_ctx tokens of its own (kv_unified off): the KV cache is sized
        # n_ctx * n_parallel, and one stream never runs out of room because of the others.
        params.n_parallel = s.n_parallel
        params.n_ctx = s.n_ctx * s.n_parallel
        params.kv_unified = False
        # A prompt is evaluated _PROMPT_BATCH tokens at a time, with a progress chunk after
        # each batch (the request asks for them): a cancelled request leaves llama.cpp at the
        # next batch instead of after the whole prompt (seconds for a long one), and the other
        # streams get a token in between. Bigger batches evaluate a long prompt a little
        # faster; client_args can set n_batch / n_ubatch.
        params.n_batch = params.n_ubatch = _PROMPT_BATCH
        if s.n_threads is not None:
            params.cpuparams.n_threads = s.n_threads
            params.cpuparams_batch.n_threads = s.n_threads
        if s.chat_template is not None:
            params.chat_template = s.chat_template
        # Jinja templates: tool calls and reasoning are parsed by llama.cpp for templates
        # that have them.
        params.use_jinja = True
        # llama.cpp logs every load and request to stderr; 0 keeps it quiet (a CLI's stderr
        # is for the user), errors reach us as exceptions and error chunks.
        params.verbosity = 0
        # The loopback HTTP listener xllamacpp always starts: nobody but us may use it.
        params.api_keys = [secrets.token_urlsafe(32)]
        params.ui = False
        params.endpoint_slots = False
        params.endpoint_metrics = True  # per-process counters, read in-process (tests, benchmarks)
        for name, value in s.client_args:
            if name.startswith("_") or name in _OWNED_PARAMS or not hasattr(params, name):
                raise ConfigError(
                    f"'client_args' key {name!r} is not an xllamacpp.CommonParams setting that local_chat "
                    "leaves to you (n_ctx, n_parallel, n_threads and chat_format are config keys).",
                    key="client_args",
                    config_name=self.config_name,
                )
            try:
                setattr(params, name, value)
            except (TypeError, ValueError, OverflowError) as exc:
                raise ConfigError(
                    f"'client_args' {name}={value!r}: {exc}", key="client_args", config_name=self.config_name
                ) from None
        with _signal_handlers_kept():
            try:
                server = xllamacpp.Server(params)
            except RuntimeError as exc:
                raise ConfigError(
                    f"llama.cpp cannot load {model_path!r}: {exc}",
                    key="model_name",
                    config_name=self.config_name,
                ) from None
        self.supports_tools = _template_supports_tools(server, params.api_keys[0])
        return server

    def metrics(self) -> dict[str, float]:
        """llama.cpp's counters (tokens predicted, requests processing, ...), by name."""
        server = self._server
        if server is None:
            return {}
        text = server.handle_metrics()
        if isinstance(text, bytes):
            text = text.decode()
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.partition(" ")
                out[name.removeprefix("llamacpp:")] = float(value)
        return out

    # -- stopping --------------------------------------------------------------------------

    def cancel_all(self) -> list[threading.Thread]:
        with self._lock:
            workers = list(self._workers.items())
        for _, feed in workers:
            feed.cancelled.set()
        return [thread for thread, _ in workers]

    def retire(self) -> None:
        """Free the model once no generation uses it (at once when none does)."""
        with self._lock:
            self._retired = True
            free = not self._workers
        if free:
            self._free()

    def _free(self) -> None:
        with self._load_lock:
            server, self._server = self._server, None
        with _engines_lock:
            _live.discard(self)
        # The last reference: ~Server stops llama.cpp's loop thread and frees the model.
        del server


_engines: dict[EngineSettings, Engine] = {}
# Every engine not yet freed, including those unload_models() forgot while they generate.
_live: set[Engine] = set()
_engines_lock = threading.Lock()
_engines_pid = os.getpid()
# Servers that a worker did not leave in time at exit: never freed (see the module's doc).
_kept_alive: list[Any] = []


def engine(settings: EngineSettings, config_name: str | None) -> Engine:
    """The engine for ``settings``, created (not yet loaded) on first use."""
    global _engines_pid
    with _engines_lock:
        if _engines_pid != os.getpid():
            # A forked child must not touch its parent's llama.cpp threads and contexts.
            _engines.clear()
            _live.clear()
            _engines_pid = os.getpid()
        found = _engines.get(settings)
        if found is None:
            _register_exit_once()
            found = _engines[settings] = Engine(settings, config_name)
            _live.add(found)
        return found


_exit_registered = False


def _register_exit_once() -> None:
    global _exit_registered
    if not _exit_registered:
        import atexit

        atexit.register(shutdown)
        # The CLI after Ctrl-C: the generations stop before it says so (see _interrupt).
        runtime.add_stop_hook(_stop_for_exit)
        _exit_registered = True


def _stop_for_exit() -> None:
    # Not freed: the process is about to end without the interpreter's teardown (see shutdown).
    shutdown(free=False)


def unload_models(*, cancel: bool = False) -> None:
    """Forget every loaded model: each is freed once no generation uses it. With
    ``cancel=True``, stop every generation first (each ends as ``cancelled`` within a
    token) and wait for them, so the models are freed before this returns."""
    if cancel:
        shutdown()
        return
    with _engines_lock:
        engines = list(_engines.values())
        _engines.clear()
    for one in engines:
        one.retire()


def shutdown(timeout: float = _EXIT_WAIT_SECONDS, *, free: bool = True) -> None:
    """Stop every generation, wait for the workers to leave llama.cpp, free every model.

    Registered with ``atexit``: a model freed by garbage collection during interpreter
    shutdown, under a running generation, would abort the process. ``free=False`` is for a
    process about to end without that teardown (``os._exit``, the CLI after Ctrl-C): freeing
    stops llama.cpp's threads one by one, time the person waiting for the prompt would see,
    so the models are kept (and never freed) instead."""
    with _engines_lock:
        if _engines_pid != os.getpid():
            return
        engines = list(_live)
        _engines.clear()
    threads = [thread for one in engines for thread in one.cancel_all()]
    deadline = time.monotonic() + timeout
    for thread in threads:
        if thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))
    for one in engines:
        with one._lock:
            busy = bool(one._workers)
        if busy or not free:
            # A worker is still inside llama.cpp (a long prompt): freeing the server under
            # it would abort the process. (Or the process is about to end: see free.) Keep
            # it, and keep it from ever being freed. Nor
            # waited for again: shutdown() runs twice after Ctrl-C (the CLI, then atexit).
            with _engines_lock:
                _live.discard(one)
            server = one._server
            if server is not None:
                import ctypes

                _kept_alive.append(server)
                ctypes.pythonapi.Py_IncRef(ctypes.py_object(server))
        else:
            one._free()


def _template_supports_tools(server: Any, api_key: str) -> bool:
    """Whether the chat template renders tools (llama.cpp's own reading of it, from the
    server's ``/props``); when that cannot be read, let llama.cpp decide per request."""
    import json
    import urllib.request

    request = urllib.request.Request(
        str(server.listening_address).rstrip("/") + "/props", headers={"Authorization": f"Bearer {api_key}"}
    )
    # No proxy: the address is loopback, and a proxy would see the key.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=5) as reply:
            props = json.loads(reply.read())
        return bool(props["chat_template_caps"]["supports_tools"])
    except (OSError, ValueError, KeyError, TypeError):
        return True


@contextlib.contextmanager
def _signal_handlers_kept() -> Iterator[None]:
    """Keep the process's SIGINT/SIGTERM handlers across loading a model.

    Some xllamacpp releases install llama-server's own handlers when a ``Server`` starts
    (Ctrl+C then stops llama.cpp instead of raising KeyboardInterrupt). The handlers are
    saved and restored with ``sigaction`` itself, as opaque bytes: this works from any
    thread (``signal.signal`` only works on the main one) and keeps their flags."""
    if os.name != "posix":
        yield
        return
    import ctypes
    import signal

    libc = ctypes.CDLL(None, use_errno=True)
    size = 1024  # more than any platform's struct sigaction
    saved: dict[int, Any] = {}
    for signum in (int(signal.SIGINT), int(signal.SIGTERM)):
        buffer = ctypes.create_string_buffer(size)
        if libc.sigaction(signum, None, buffer) == 0:
            saved[signum] = buffer
    try:
        yield
    finally:
        for signum, buffer in saved.items():
            now = ctypes.create_string_buffer(size)
            if libc.sigaction(signum, None, now) == 0 and now.raw != buffer.raw:
                libc.sigaction(signum, buffer, None)
