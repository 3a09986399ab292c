"""Chunks of llama.cpp's in-process server (xllamacpp) → normalised deltas.

The server hands each ``chat.completion.chunk`` over as the JSON of an OpenAI SSE event
(without the ``data:`` framing), so the shared OpenAI mapping reads them: text,
``reasoning_content``, tool-call fragments, finish reason, usage. On top of it, two
llama.cpp specifics:

- ``timings`` (requested with ``timings_per_token``) ride on every chunk with the exact
  token counts so far: the usage reading is current after every token, so a cancelled
  reply still reports what it generated. The final ``usage`` object wins when it comes.
- An error comes as a chunk ``{"error": {...}}`` instead of an HTTP status: a prompt that
  does not fit the context, or a request llama.cpp refuses, is the caller's
  :class:`InputError`; anything else a :class:`ProviderStreamError`.
"""

from __future__ import annotations

from typing import Any

import orjson

from ..._delta import Delta, Metadata, UsageReport
from ..._errors import InputError, ProviderStreamError, StreamProtocolError, StreamwrapError
from ..._transport._sse import ServerSentEvent
from ..._transport._wire_shape import SHAPE_ERRORS, shape_error
from ..._usage import Usage
from ..openai._wire import OpenAIStreamMapper

__all__ = ["LlamaChunkMapper"]


class LlamaChunkMapper:
    """Feeds one chunk's JSON bytes; returns its deltas and the newest usage reading."""

    __slots__ = ("_mapper", "_model", "_provider", "started")

    def __init__(self, provider: str, model: str) -> None:
        self._mapper = OpenAIStreamMapper(provider)
        self._provider = provider
        # llama.cpp names the model by its file path: the response names it as configured.
        self._model = model
        self.started = False

    @property
    def finished(self) -> bool:
        """Whether a finish reason arrived (a reply that ends without one was cut)."""
        return self._mapper.finished

    def feed(self, chunk: bytes) -> tuple[list[Delta], Usage | None]:
        try:
            obj = orjson.loads(chunk)
        except orjson.JSONDecodeError as exc:
            raise StreamProtocolError(
                f"llama.cpp sent a chunk that is not JSON: {exc}", provider=self._provider
            ) from None
        if type(obj) is dict and "error" in obj:
            raise self._error(obj["error"])
        self.started = True
        usage: Usage | None = None
        deltas: list[Delta] = []
        mapped: list[Delta] = []
        # One chunk is one event: mapped directly (no SSE framing per token), and an error
        # raised at once, never held back behind the chunk's deltas as a body read's is.
        try:
            self._mapper.map_event(ServerSentEvent(chunk), mapped)
        except SHAPE_ERRORS as exc:
            raise shape_error(exc, self._provider, self._mapper.expected_shape) from None
        for delta in mapped:
            if type(delta) is UsageReport:
                usage = delta.usage
            elif type(delta) is Metadata:
                deltas.append(Metadata(delta.provider_id, self._model))
            else:
                deltas.append(delta)
        if usage is None and type(obj) is dict:
            usage = _usage_from_timings(obj.get("timings"))
        return deltas, usage

    def _error(self, err: Any) -> StreamwrapError:
        if not isinstance(err, dict):
            return ProviderStreamError(str(err), provider=self._provider)
        kind = err.get("type")
        message = str(err.get("message") or kind or err)
        if kind == "exceed_context_size_error" and not self.started:
            return InputError(
                f"the prompt is {err.get('n_prompt_tokens')} tokens; the context ('n_ctx') holds {err.get('n_ctx')}"
            )
        if err.get("code") == 400 and not self.started:
            return InputError(f"llama.cpp refused the request: {message}")
        return ProviderStreamError(message, provider=self._provider, code=None if kind is None else str(kind))


def _usage_from_timings(timings: Any) -> Usage | None:
    if type(timings) is not dict:
        return None
    predicted, prompt, cached = timings.get("predicted_n"), timings.get("prompt_n"), timings.get("cache_n")
    if type(predicted) is not int or type(prompt) is not int:
        return None
    # prompt_n counts only the prompt tokens evaluated now; cache_n those reused from an
    # earlier request on the same slot. The prompt is both.
    cached = cached if type(cached) is int else 0
    return Usage.reported(prompt + cached, predicted, cached_tokens=cached)
