"""``local_chat``: a GGUF model run in-process by llama.cpp (``llama-cpp-python``).

This is the embedded default: ``model_name="smollm2"`` runs SmolLM2-135M-Instruct, whose GGUF
file is fetched once into the user's cache (see ``_model_source``), with no account. Any other
GGUF file works too: give its path (or ``hf:<owner>/<repo>/<file>``) as ``model_name``.

How it fits the runtime. llama.cpp is blocking C code, so generation never runs on the
runtime's event loop: each call gets a worker thread that formats the prompt with the
model's chat template, samples token after token, and hands the text to the producer task
through a small thread-safe feed. The producer is woken at most once per batch (whatever
arrived since its last wake-up), and only when it is waiting, so a fast model costs one
cross-thread call per batch, not per token. Cancelling the response (``break``,
``aclose()``, garbage collection, a timeout) sets a flag that the worker checks between
tokens: generation stops after the current token and the model is free for the next call.
The prompt's evaluation, which comes before the first token and can take seconds, is one
long call into llama.cpp: there the flag is read by llama.cpp's abort callback instead.

Worker threads are tracked. At interpreter exit (Ctrl-C included) every one is stopped and
joined before llama.cpp is freed: a worker still computing while the interpreter tears the
library down crashes the process (a segfault in ``libggml-cpu``).

A loaded model is cached per process, per (file, ``n_ctx``, ``n_threads``, ``client_args``):
loading takes a while and the weights are large. A ``llama_cpp.Llama`` is not thread-safe,
so each holds a lock: one generation at a time per model, and the other calls queue (still
cancellable while they wait).

Usage is exact, counted with the model's own tokenizer: ``input_tokens`` are the tokens of
the chat-formatted prompt, ``output_tokens`` the tokens generated (the end-of-turn token
excluded, as llama.cpp's own usage does). ``source`` is ``"provider"``: the model itself
reports them, they are not estimates.
"""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from ._delta import Delta, Finish, Metadata, TextDelta, UsageReport
from ._errors import ConfigError, InputError, MissingDependencyError
from ._usage import Usage
from ._wrapper import ChatRequest, ModelWrapper, Upstream

if TYPE_CHECKING:
    import asyncio

__all__ = [
    "EMBEDDED_MODEL",
    "LocalChatWrapper",
    "embedded_model_path",
    "local_runtime_installed",
    "stop_workers",
    "unload_models",
]

#: The embedded default model, and the names ``model_name`` accepts for it.
EMBEDDED_MODEL = "SmolLM2-135M-Instruct"
_EMBEDDED_ALIASES = frozenset(("smollm2", "smollm2-135m-instruct"))

_DEFAULT_N_CTX = 2048
# llama-cpp-python's own defaults for chat completions, so that results match its
# create_chat_completion() for the same settings.
_SAMPLING_DEFAULTS: dict[str, Any] = {
    "temperature": 0.2,
    "top_p": 0.95,
    "top_k": 40,
    "min_p": 0.05,
    "typical_p": 1.0,
    "repeat_penalty": 1.0,
    "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
}
# generate_args name -> the keyword of Llama.generate() it sets
_SAMPLING_KEYWORDS = {
    "temperature": "temp",
    "top_p": "top_p",
    "top_k": "top_k",
    "min_p": "min_p",
    "typical_p": "typical_p",
    "repeat_penalty": "repeat_penalty",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
}
_ACCEPTED_ARGS = (*_SAMPLING_KEYWORDS, "max_tokens", "stop", "seed")
# How often a call queued behind another generation looks at its cancel flag.
_QUEUE_POLL_SECONDS = 0.05
# How long the exit waits for stopped workers. Stopping takes one token, or one node of the
# prompt's graph; only loading a model cannot be cut short. Leaving earlier would risk the crash
# that joining them prevents.
_EXIT_JOIN_SECONDS = 10.0


def local_runtime_installed() -> bool:
    """Whether ``llama-cpp-python`` is installed (checked without importing it)."""
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None


def embedded_model_path() -> str | None:
    """The path of the embedded SmolLM2 GGUF file in the model cache, or ``None`` while it
    is not fetched yet (``streamwrap pull`` fetches it; so does the first use of
    ``model_name="smollm2"``). Never downloads anything."""
    from ._errors import ModelFetchError
    from ._model_source import DEFAULT_MODEL, resolve_model

    try:
        return str(resolve_model(DEFAULT_MODEL, fetch=False))
    except ModelFetchError:
        return None


def _resolve_model_file(model_name: str, config_name: str | None) -> str:
    from ._model_source import resolve_model

    try:
        return str(resolve_model(model_name))
    except ConfigError as exc:
        exc.config_name = config_name
        raise


class LocalChatWrapper(ModelWrapper):
    """A GGUF chat model run in-process by llama.cpp.

    ``model_name`` is ``"smollm2"`` (or ``"SmolLM2-135M-Instruct"``: the embedded default,
    fetched once into the model cache) or the path of any GGUF file. Extra config keys:
    ``n_ctx`` (context length, default 2048), ``n_threads`` (default: llama-cpp-python's,
    half the cores), ``chat_format`` (default: the chat template stored in the GGUF file; or
    a llama-cpp-python format name such as ``"chatml"``, or a Jinja template), ``seed``
    (default seed of every call). ``client_args`` go to ``llama_cpp.Llama(...)``.
    ``generate_args``: ``max_tokens``, ``temperature``, ``top_p``, ``top_k``, ``min_p``,
    ``typical_p``, ``repeat_penalty``, ``presence_penalty``, ``frequency_penalty``,
    ``stop``, ``seed``. Tools are not supported (an :class:`InputError` says so).
    """

    model_type: ClassVar[str] = "local_chat"
    provider: ClassVar[str] = "local"
    extra: ClassVar[str] = "local"
    api_key_optional: ClassVar[bool] = True
    config_keys: ClassVar[Mapping[str, tuple[tuple[type, ...], str]]] = {
        "n_ctx": ((int,), "an integer number of tokens > 0"),
        "n_threads": ((int,), "an integer > 0"),
        "chat_format": ((str,), "a llama-cpp-python chat format name or a Jinja chat template"),
        "seed": ((int,), "an integer"),
    }

    def __init__(self, model_name: str, **options: Any) -> None:
        super().__init__(model_name, **options)
        if self.base_url:
            raise ConfigError(
                "local_chat runs the model in-process and has no 'base_url'; to use a llama.cpp "
                "server, use model_type 'openai_chat' with its base_url.",
                key="base_url",
                config_name=self.config_name,
            )
        for key in ("n_ctx", "n_threads"):
            value = self.extra_options.get(key)
            if value is not None and value <= 0:
                raise ConfigError(f"{key!r} must be > 0, got {value}.", key=key, config_name=self.config_name)
        if not local_runtime_installed():
            raise MissingDependencyError("llama-cpp-python", self.extra)
        self.model_path = _resolve_model_file(model_name, self.config_name)
        self.n_ctx: int = self.extra_options.get("n_ctx", _DEFAULT_N_CTX)
        self.n_threads: int | None = self.extra_options.get("n_threads")
        self.chat_format: str | None = self.extra_options.get("chat_format")
        self.seed: int | None = self.extra_options.get("seed")
        stem = os.path.basename(self.model_path).removesuffix(".gguf")
        self._label = EMBEDDED_MODEL if model_name.strip().lower() in _EMBEDDED_ALIASES else stem

    def _engine_key(self) -> tuple[Any, ...]:
        # client_args may hold unhashable values; their repr identifies them well enough.
        return (self.model_path, self.n_ctx, self.n_threads, repr(sorted(self.client_args.items())))

    async def _open(self, request: ChatRequest) -> Upstream:
        import asyncio

        if request.tools:
            raise InputError(
                "local_chat does not support tools yet (small local models rarely call them "
                "reliably); for tool calls, serve the GGUF with llama.cpp's llama-server --jinja "
                "and use model_type 'openai_chat' with its base_url."
            )
        job = _Job(
            messages=_plain_messages(request.messages),
            sampling=_sampling(request.params, self.seed),
            chat_format=self.chat_format,
            label=self._label,
            config_name=self.config_name,
            loop=asyncio.get_running_loop(),
        )
        engine = _engine(self._engine_key(), self._load)
        _start_worker(engine, job)
        upstream = _LocalUpstream(job)
        try:
            # Like an HTTP call that returns once the status is known: return once the model
            # is loaded and has accepted the prompt, so that those errors raise from the call.
            await upstream.wait_started()
        except BaseException:
            job.cancelled.set()
            raise
        return upstream

    def _load(self) -> Any:
        """Load the model: a ``llama_cpp.Llama`` (in a worker thread, with the engine's lock held)."""
        try:
            import llama_cpp
        except ImportError:
            raise MissingDependencyError("llama-cpp-python", self.extra) from None
        args: dict[str, Any] = {"n_ctx": self.n_ctx, "verbose": False}
        if self.n_threads is not None:
            args["n_threads"] = self.n_threads
        args.update(self.client_args)
        try:
            llm = llama_cpp.Llama(model_path=self.model_path, **args)
        except (ValueError, RuntimeError, OSError) as exc:
            raise ConfigError(
                f"llama.cpp cannot load {self.model_path!r}: {exc}", key="model_name", config_name=self.config_name
            ) from None
        return llm


# -- the per-call request, as the worker thread sees it --------------------------------------


@dataclass
class _Sampling:
    keywords: dict[str, Any]
    max_tokens: int | None
    stop: list[str]
    seed: int | None


def _sampling(params: Mapping[str, Any], default_seed: int | None) -> _Sampling:
    unknown = sorted(set(params) - set(_ACCEPTED_ARGS))
    if unknown:
        raise InputError(
            f"local_chat does not accept the argument {unknown[0]!r}; accepted: {', '.join(_ACCEPTED_ARGS)}"
        )
    keywords: dict[str, Any] = {}
    for name, keyword in _SAMPLING_KEYWORDS.items():
        value = params.get(name)
        if value is None:
            value = _SAMPLING_DEFAULTS[name]
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(f"{name!r} must be a number, got {type(value).__name__}")
        keywords[keyword] = int(value) if name == "top_k" else float(value)
    if keywords["temp"] < 0:
        raise InputError(f"'temperature' must be >= 0, got {keywords['temp']}")
    max_tokens = params.get("max_tokens")
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens <= 0):
        raise InputError(f"'max_tokens' must be an integer > 0, got {max_tokens!r}")
    stop = params.get("stop")
    if stop is None:
        stops: list[str] = []
    elif isinstance(stop, str):
        stops = [stop]
    elif isinstance(stop, (list, tuple)) and all(isinstance(s, str) for s in stop):
        stops = list(stop)
    else:
        raise InputError("'stop' must be a string or a list of strings")
    seed = params.get("seed", default_seed)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise InputError(f"'seed' must be an integer, got {type(seed).__name__}")
    return _Sampling(keywords, max_tokens, [s for s in stops if s], seed)


def _plain_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages as chat templates expect them: ``content`` a string."""
    out = []
    for i, message in enumerate(messages):
        content = message.get("content")
        if isinstance(content, list):
            parts = []
            for part in content:
                if not isinstance(part, Mapping) or part.get("type", "text") != "text":
                    raise InputError(f"messages[{i}]: local_chat accepts text content parts only")
                parts.append(str(part.get("text", "")))
            content = "".join(parts)
        if message.get("tool_calls"):
            raise InputError(f"messages[{i}]: local_chat does not support tools yet (the message has tool_calls)")
        out.append({"role": message["role"], "content": content or ""})
    return out


# -- the feed: worker thread -> producer task -------------------------------------------------


class _Job:
    """One generation: its inputs, and the feed that carries its output to the event loop.

    The worker thread appends deltas under a lock; it calls into the loop only when the
    consumer is waiting, so a burst of tokens costs one wake-up.
    """

    def __init__(
        self,
        *,
        messages: list[dict[str, Any]],
        sampling: _Sampling,
        chat_format: str | None,
        label: str,
        config_name: str | None,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.messages = messages
        self.sampling = sampling
        self.chat_format = chat_format
        self.label = label
        self.config_name = config_name
        self.loop = loop
        # Read by the worker between tokens; set from the loop thread on close.
        self.cancelled = threading.Event()
        self.finished = threading.Event()
        self.prompt_tokens: int | None = None
        self.output_tokens = 0
        self._lock = threading.Lock()
        self._items: list[Delta] = []
        self._done = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None

    # worker side

    def put(self, delta: Delta) -> None:
        with self._lock:
            self._items.append(delta)
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            self._wake(waiter)

    def end(self, error: BaseException | None = None) -> None:
        with self._lock:
            self._done = True
            self._error = error
            waiter, self._waiter = self._waiter, None
        self.finished.set()
        if waiter is not None:
            self._wake(waiter)

    def _wake(self, waiter: asyncio.Future[None]) -> None:
        def resolve() -> None:
            if not waiter.done():
                waiter.set_result(None)

        try:
            self.loop.call_soon_threadsafe(resolve)
        except RuntimeError:
            # The runtime's loop is gone (interpreter exit): nobody is listening any more.
            self.cancelled.set()

    # loop side

    def take(self) -> tuple[list[Delta], bool, BaseException | None, asyncio.Future[None] | None]:
        """Everything that arrived, whether the job ended, and a future to await when
        there was nothing."""
        with self._lock:
            items, self._items = self._items, []
            waiter = None
            if not items and not self._done:
                waiter = self._waiter = self.loop.create_future()
            return items, self._done, self._error, waiter

    def usage(self) -> Usage:
        return Usage.reported(self.prompt_tokens, self.output_tokens)


class _LocalUpstream:
    """The producer's view of a job: batches of deltas, each followed by the usage so far
    (so that a cancelled response still reports what was generated)."""

    def __init__(self, job: _Job) -> None:
        self._job = job
        self._first: list[Delta] = []

    async def wait_started(self) -> None:
        """Wait for the first deltas (the worker sends its metadata once the prompt is
        accepted), or raise the error that ended the job before that."""
        job = self._job
        while True:
            items, done, error, waiter = job.take()
            if items:
                self._first = items
                return
            if done:
                if error is not None:
                    raise error
                return
            assert waiter is not None
            await waiter

    async def __aiter__(self) -> AsyncIterator[list[Delta]]:
        job = self._job
        first, self._first = self._first, []
        if first:
            first.append(UsageReport(job.usage()))
            yield first
        while True:
            items, done, error, waiter = job.take()
            if items:
                if job.prompt_tokens is not None:
                    items.append(UsageReport(job.usage()))
                yield items
                continue
            if done:
                if error is not None:
                    raise error
                return
            assert waiter is not None
            await waiter

    async def aclose(self) -> None:
        # The worker stops after its current token and releases the model; waiting for
        # that here would block the runtime's loop on C code.
        self._job.cancelled.set()


# -- loaded models, cached per process --------------------------------------------------------


class _Engine:
    """One cached model: loaded on first use, used by one generation at a time. Its chat
    formatters (one per ``chat_format``) are cached with it."""

    def __init__(self, load: Callable[[], Any]) -> None:
        self.load = load
        self.lock = threading.Lock()
        self.llm: Any = None
        self.formatters: dict[str | None, Any] = {}
        self.job: _Job | None = None  # the generation running now
        self._abort_callback: Any = None  # kept alive while llama.cpp holds it
        self._log_quieted = False

    def abort_on_cancel(self, enabled: bool) -> None:
        """Let llama.cpp stop the current job's computation midway once it is cancelled.

        llama.cpp calls this after each node of the graph, with the GIL taken: cheap next to
        a prompt's evaluation, but a real cost (and a wait on busy Python threads) per
        generated token, when the flag is read between tokens anyway. So it is enabled
        for the prompt only.
        """
        import llama_cpp

        if enabled and self._abort_callback is None:

            def should_abort(_data: Any) -> bool:
                job = self.job
                if job is None or not job.cancelled.is_set():
                    return False
                if not self.llm.verbose and not self._log_quieted:
                    self._log_quieted = True
                    _quiet_llama_log(True)
                return True

            self._abort_callback = llama_cpp.ggml_abort_callback(should_abort)
        callback = self._abort_callback if enabled else llama_cpp.ggml_abort_callback()  # (NULL)
        llama_cpp.llama_set_abort_callback(self.llm._ctx.ctx, callback, None)
        if not enabled and self._log_quieted:
            self._log_quieted = False
            _quiet_llama_log(False)

    def formatter(self, chat_format: str | None, config_name: str | None) -> Any:
        formatter = self.formatters.get(chat_format)
        if formatter is None:
            formatter = self.formatters[chat_format] = _chat_formatter(self.llm, chat_format, config_name)
        return formatter


_engines: dict[tuple[Any, ...], _Engine] = {}
_engines_lock = threading.Lock()
_engines_pid = os.getpid()


def _engine(key: tuple[Any, ...], load: Callable[[], Any]) -> _Engine:
    global _engines_pid
    with _engines_lock:
        if _engines_pid != os.getpid():
            # A forked child must not touch its parent's llama.cpp contexts.
            _engines.clear()
            _engines_pid = os.getpid()
        engine = _engines.get(key)
        if engine is None:
            if not _engines:
                import atexit

                atexit.register(_close_at_exit)
            engine = _engines[key] = _Engine(load)
        return engine


def _close_at_exit() -> None:
    # Stop and join the workers, then free the models while llama_cpp is still intact:
    # left to garbage collection at interpreter shutdown, Llama.__del__ fails noisily on
    # half-torn-down modules.
    stop_workers(_EXIT_JOIN_SECONDS)
    with _engines_lock:
        engines = list(_engines.values())
        _engines.clear()
    for engine in engines:
        if engine.llm is not None and engine.lock.acquire(blocking=False):
            try:
                engine.llm.close()
            finally:
                engine.lock.release()


def unload_models() -> None:
    """Forget every cached model (they are freed once no generation uses them)."""
    with _engines_lock:
        _engines.clear()


# -- worker threads -----------------------------------------------------------------------------

_workers: dict[threading.Thread, _Job] = {}
_workers_lock = threading.Lock()


def _start_worker(engine: _Engine, job: _Job) -> None:
    thread = threading.Thread(target=_run_worker, args=(engine, job), name="streamwrap-local", daemon=True)
    with _workers_lock:
        _workers[thread] = job
    thread.start()


def _run_worker(engine: _Engine, job: _Job) -> None:
    try:
        _run_job(engine, job)
    finally:
        with _workers_lock:
            _workers.pop(threading.current_thread(), None)


def stop_workers(timeout: float = _EXIT_JOIN_SECONDS) -> None:
    """Cancel every generation and wait for its worker to end, ``timeout`` seconds at most.

    Runs at exit, where a second Ctrl-C must not cut the wait short: the worker would
    then still be inside llama.cpp while the interpreter frees it. Also run by the CLI
    on Ctrl-C before it reports: while llama-cpp-python loads a model it points the
    process's stdout and stderr at /dev/null, and what is printed meanwhile is lost.
    """
    import time

    with _workers_lock:
        workers = dict(_workers)
    for job in workers.values():
        job.cancelled.set()
    deadline = time.monotonic() + timeout
    for thread in workers:
        while thread.is_alive() and time.monotonic() < deadline:
            try:
                thread.join(max(deadline - time.monotonic(), 0.0))
            except KeyboardInterrupt:
                continue


def _acquire(engine: _Engine, job: _Job) -> bool:
    """Wait for the model's turn; give up when the job is cancelled meanwhile."""
    while not engine.lock.acquire(timeout=_QUEUE_POLL_SECONDS):
        if job.cancelled.is_set():
            return False
    return True


def _run_job(engine: _Engine, job: _Job) -> None:
    """The worker thread: wait for the model, load it if needed, generate."""
    error: BaseException | None = None
    try:
        if not _acquire(engine, job):
            return
        try:
            if job.cancelled.is_set():
                return
            engine.job = job
            if engine.llm is None:
                engine.llm = engine.load()
                if job.cancelled.is_set():
                    return  # cancelled while loading (which cannot be cut short)
            _generate(engine, engine.formatter(job.chat_format, job.config_name), job)
        finally:
            engine.job = None
            engine.lock.release()
    except Exception as exc:
        # Raised in the producer task: the base class turns anything that is not a
        # StreamwrapError into one (with the original as its cause).
        error = exc
    finally:
        job.end(error)


def _generate(engine: _Engine, formatter: Any, job: _Job) -> None:
    import codecs

    import llama_cpp

    llm = engine.llm
    sampling = job.sampling
    try:
        formatted = formatter(messages=job.messages)
    except Exception as exc:
        # Jinja templates reject some conversations (e.g. roles out of order) by raising.
        raise InputError(f"the model's chat template rejected the messages: {exc}") from None
    prompt = llm.tokenize(formatted.prompt.encode("utf-8"), add_bos=not formatted.added_special, special=True)
    n_ctx = llm.n_ctx()
    if len(prompt) >= n_ctx:
        raise InputError(f"the prompt is {len(prompt)} tokens; the context ('n_ctx') holds {n_ctx}")
    job.prompt_tokens = len(prompt)
    job.put(Metadata(provider_id=None, model=job.label))
    budget = n_ctx - len(prompt)
    limit = budget if sampling.max_tokens is None else min(sampling.max_tokens, budget)
    stops = _StopScanner(sampling.stop)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    vocab = llm._model.vocab
    # Reproducible: the same seed and input give the same output. llama.cpp's prefix reuse
    # (re-evaluating the last prompt token on its own) changes greedy picks slightly.
    llm.reset()
    llm.set_seed(llama_cpp.LLAMA_DEFAULT_SEED if sampling.seed is None else sampling.seed)
    finish = "length"
    stopped = False
    tokens = llm.generate(prompt, **sampling.keywords)
    evaluating_prompt = True  # until the first token comes out of generate()
    engine.abort_on_cancel(True)
    try:
        for token in tokens:
            if evaluating_prompt:
                evaluating_prompt = False
                engine.abort_on_cancel(False)
            if job.cancelled.is_set():
                return
            if llama_cpp.llama_vocab_is_eog(vocab, token):
                finish = "stop"
                break
            job.output_tokens += 1
            text, stopped = stops.feed(decoder.decode(llm.detokenize([token])))
            if text:
                job.put(TextDelta(text))
            if stopped:
                finish = "stop"
                break
            if job.output_tokens >= limit:
                break
    except RuntimeError:
        if job.cancelled.is_set():
            return  # llama.cpp aborted the evaluation, as asked ("llama_decode returned 2")
        raise
    finally:
        engine.abort_on_cancel(False)
        tokens.close()
    if not stopped:
        # The end of the text: bytes of an incomplete character (shown as U+FFFD), and a
        # tail held back because it might have begun a stop string.
        rest = stops.flush(decoder.decode(b"", final=True))
        if rest:
            job.put(TextDelta(rest))
    job.put(Finish(finish))


def _quiet_llama_log(quiet: bool) -> None:
    """Silence llama.cpp's warnings while a cancelled evaluation is aborted.

    llama.cpp reports an abort as a warning ("decode: removing memory module entries ..."),
    and llama-cpp-python prints its warnings although ``verbose=False`` (its table of log
    levels predates ggml's current numbering). The abort was asked for: nothing to report.
    ``logging.ERROR`` is the level that ``verbose=False`` sets.
    """
    import logging

    logging.getLogger("llama-cpp-python").setLevel(logging.CRITICAL if quiet else logging.ERROR)


class _StopScanner:
    """Finds stop strings in streamed text, holding back a tail that could begin one.

    The reply ends at the first stop string to be completed, character by character, so
    the result does not depend on how the text was split into tokens.
    """

    def __init__(self, stops: list[str]) -> None:
        # Longest first: of two stops completed by the same character, the longer starts earlier.
        self._stops = sorted(stops, key=len, reverse=True)
        self._held = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """Text safe to emit now, and whether a stop string was reached."""
        if not self._stops:
            return text, False
        held = self._held
        for char in text:
            held += char
            for stop in self._stops:
                if held.endswith(stop):
                    self._held = ""
                    return held[: len(held) - len(stop)], True
        keep = max(_overlap(held, s) for s in self._stops)
        self._held = held[len(held) - keep :]
        return held[: len(held) - keep], False

    def flush(self, text: str) -> str:
        """The rest of the text at the end of generation (a held tail was no stop after all)."""
        out, stopped = self.feed(text)
        if not stopped:
            out += self._held
        self._held = ""
        return out


def _overlap(text: str, stop: str) -> int:
    """Length of the longest end of ``text`` that is a proper beginning of ``stop``."""
    for n in range(min(len(text), len(stop) - 1), 0, -1):
        if text.endswith(stop[:n]):
            return n
    return 0


def _chat_formatter(llm: Any, chat_format: str | None, config_name: str | None) -> Any:
    """The formatter that turns messages into the prompt text the model was trained on."""
    from llama_cpp import llama_chat_format

    def token_text(token: int) -> str:
        return str(llm._model.token_get_text(token)) if token != -1 else ""

    def jinja(template: str) -> Any:
        return llama_chat_format.Jinja2ChatFormatter(
            template=template,
            eos_token=token_text(llm.token_eos()),
            bos_token=token_text(llm.token_bos()),
            stop_token_ids=[llm.token_eos()],
        )

    if chat_format is None:
        template = llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise ConfigError(
                "this GGUF file has no chat template: set 'chat_format' (e.g. 'chatml').",
                key="chat_format",
                config_name=config_name,
            )
        return jinja(template)
    if "{%" in chat_format or "{{" in chat_format:
        return jinja(chat_format)
    # llama-cpp-python registers its formatters as module functions named after the format.
    for candidate in (chat_format.replace("-", "_"), chat_format.replace("-", "")):
        formatter = getattr(llama_chat_format, f"format_{candidate}", None)
        if callable(formatter):
            return formatter
    registry: Any = llama_chat_format.LlamaChatCompletionHandlerRegistry  # (untyped)
    names = tuple(
        sorted(
            name
            for name in registry()._chat_handlers
            if callable(getattr(llama_chat_format, "format_" + name.replace("-", "_"), None))
            or callable(getattr(llama_chat_format, "format_" + name.replace("-", ""), None))
        )
    )
    raise ConfigError(f"unknown chat_format {chat_format!r}.", key="chat_format", accepted=names, config_name=config_name)
