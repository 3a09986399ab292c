"""OpenTelemetry spans and metrics of model calls, after the GenAI semantic conventions.

One span per call, ``chat {model}`` of kind CLIENT, from the call to the end of the
response, whichever way it ends: finished, failed, cancelled (a ``break`` out of the
consumer's loop, ``aclose()``) or abandoned (the response collected). It is ended by the
channel's move to its terminal state (:meth:`CallTelemetry.end`), the one place every
ending passes through, and before any consumer can see that state. The span is the current
span of the producer's context, so that the HTTP client's own instrumentation nests under
it; its parent is whatever was current where the call was made (the caller's context
travels to the library's I/O thread with the producer).

Each HTTP attempt (retries included) is an event on the span, and so is the first token,
each at its own time. The metrics are the conventions' client metrics (duration, token
usage, time to first chunk, time per output chunk), with their bucket advice.

It costs nothing without OpenTelemetry: :func:`start_call` looks for an
``opentelemetry.trace`` module already imported (an application cannot have configured an
SDK without importing it, so this never imports OpenTelemetry itself) and for tracer and
meter providers that are not the API's no-op or proxy ones. When it finds neither, the
call has no telemetry object, and the hot path's only cost is one ``is None`` test per
network read. Message content is recorded only when
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` is true; API keys never (no
attribute is read from the request's headers, and ``server.address`` is the URL's host
name, without any credentials it may hold).
"""

from __future__ import annotations

import contextvars
import functools
import itertools
import os
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit

import orjson

from ._finish import final_finish_reason
from ._tools import ToolCall
from ._usage import Usage
from ._version import __version__

__all__ = ["CONTENT_ENV", "CallTelemetry", "EndedCall", "start_call"]

_SCOPE = "streamwrap"
_OPERATION = "chat"
#: The conventions' opt-in for recording message content.
CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
# Values that turn capture on: "true", and the later conventions' modes that include spans.
_CONTENT_ON = frozenset(("true", "1", "span_only", "span_and_event"))

# Request parameters → their attributes. The parameters are the call's ``generate_args``,
# whose names are the providers' own: the common spellings of each are listed.
_REQUEST_PARAMS: dict[str, str] = {
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
    "top_k": "gen_ai.request.top_k",
    "max_tokens": "gen_ai.request.max_tokens",
    "max_completion_tokens": "gen_ai.request.max_tokens",
    "max_output_tokens": "gen_ai.request.max_tokens",
    "frequency_penalty": "gen_ai.request.frequency_penalty",
    "presence_penalty": "gen_ai.request.presence_penalty",
    "seed": "gen_ai.request.seed",
    "stop": "gen_ai.request.stop_sequences",
    "stop_sequences": "gen_ai.request.stop_sequences",
    "n": "gen_ai.request.choice.count",
}

# The conventions' advice for the histograms' buckets (gen-ai-metrics.md).
_SECONDS_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
_TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)


class EndedCall(Protocol):
    """What :meth:`CallTelemetry.end` reads of a response that has ended (its channel)."""

    error: BaseException | None
    usage: Usage | None
    finish_raw: str | None
    provider_id: str | None
    model: str | None
    text_parts: list[str]
    reasoning_parts: list[str]
    sent_at: float | None
    first_token_at: float | None
    ended_at: float | None

    @property
    def tools(self) -> Any: ...


class _Instruments:
    """The four histograms, made once per meter provider."""

    __slots__ = ("duration", "time_per_chunk", "time_to_first_chunk", "token_usage")

    def __init__(self, meter: Any) -> None:
        def histogram(name: str, unit: str, description: str, buckets: Sequence[float]) -> Any:
            return meter.create_histogram(
                name, unit=unit, description=description, explicit_bucket_boundaries_advisory=buckets
            )

        self.duration = histogram(
            "gen_ai.client.operation.duration", "s", "GenAI operation duration.", _SECONDS_BUCKETS
        )
        self.token_usage = histogram(
            "gen_ai.client.token.usage", "{token}", "Number of input and output tokens used.", _TOKEN_BUCKETS
        )
        self.time_to_first_chunk = histogram(
            "gen_ai.client.operation.time_to_first_chunk",
            "s",
            "Time to receive the first chunk, measured from when the client issues the generation "
            "request to when the first chunk is received in the response stream.",
            _SECONDS_BUCKETS,
        )
        self.time_per_chunk = histogram(
            "gen_ai.client.operation.time_per_output_chunk",
            "s",
            "Time per output chunk, recorded for each chunk received after the first one, measured "
            "as the time elapsed from the end of the previous chunk to the end of the current chunk.",
            _SECONDS_BUCKETS,
        )


# (provider, tracer) and (provider, instruments) of the providers last seen: an application
# sets its providers once, and tests may set others.
_tracer: tuple[Any, Any] = (None, None)
_instruments: tuple[Any, _Instruments | None] = (None, None)


def _configured_tracer(trace: Any) -> Any:
    global _tracer
    provider = trace.get_tracer_provider()
    if provider is _tracer[0]:
        return _tracer[1]
    tracer = None
    if not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        tracer = provider.get_tracer(_SCOPE, __version__)
    _tracer = (provider, tracer)
    return tracer


def _configured_instruments() -> _Instruments | None:
    global _instruments
    metrics: Any = sys.modules.get("opentelemetry.metrics")
    if metrics is None:
        return None
    provider = metrics.get_meter_provider()
    if provider is _instruments[0]:
        return _instruments[1]
    instruments = None
    internal: Any = sys.modules.get("opentelemetry.metrics._internal")
    proxy = getattr(internal, "_ProxyMeterProvider", metrics.NoOpMeterProvider)
    if not isinstance(provider, proxy | metrics.NoOpMeterProvider):
        instruments = _Instruments(provider.get_meter(_SCOPE, __version__))
    _instruments = (provider, instruments)
    return instruments


def start_call(
    *,
    provider_name: str,
    server_url: str | None,
    model: str,
    params: Mapping[str, Any],
    streaming: bool,
    messages: Sequence[Mapping[str, Any]],
    response_id: str,
    context: contextvars.Context,
) -> CallTelemetry | None:
    """The telemetry of a call being made now, or ``None`` when OpenTelemetry is not
    configured. Starts its span as a child of the current span and makes it the current
    span of ``context`` (the producer's)."""
    trace: Any = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return None
    tracer = _configured_tracer(trace)
    instruments = _configured_instruments()
    if tracer is None and instruments is None:
        return None
    common: dict[str, Any] = {
        "gen_ai.operation.name": _OPERATION,
        "gen_ai.provider.name": provider_name,
        "gen_ai.request.model": model,
    }
    if server_url:
        address = _server_address(server_url)
        if address is not None:
            common["server.address"], common["server.port"] = address
    return CallTelemetry(
        trace, tracer, instruments, common, params, streaming, messages, response_id, context
    )


class CallTelemetry:
    """The span and measurements of one call."""

    __slots__ = (
        "_capture",
        "_ended",
        "_instruments",
        "_metric_attributes",
        "_span",
        "_start_mono",
        "_start_ns",
        "_streaming",
        "chunk_times",
    )

    def __init__(
        self,
        trace: Any,
        tracer: Any,
        instruments: _Instruments | None,
        common: dict[str, Any],
        params: Mapping[str, Any],
        streaming: bool,
        messages: Sequence[Mapping[str, Any]],
        response_id: str,
        context: contextvars.Context,
    ) -> None:
        # One clock reading of each kind, so that times taken with time.monotonic() on the
        # I/O thread (the first token, the end) become the span's wall-clock timestamps.
        self._start_ns = time.time_ns()
        self._start_mono = time.monotonic()
        self._instruments = instruments
        self._metric_attributes = common
        self._streaming = streaming
        self._ended = False
        #: when content arrived, one entry per network read (streaming calls, with metrics
        #: on): the gaps are the time per output chunk, recorded at the end
        self.chunk_times: list[float] | None = [] if instruments is not None and streaming else None
        self._span: Any = None
        self._capture = False
        if tracer is None:
            return
        span = tracer.start_span(
            f"{_OPERATION} {common['gen_ai.request.model']}",
            kind=trace.SpanKind.CLIENT,
            start_time=self._start_ns,
        )
        self._span = span
        # The producer's context carries the span: what the HTTP client sends from there
        # (and its instrumentation's spans) is a child of this call.
        context.run(_make_current, trace, span)
        if not span.is_recording():
            return  # (sampled out: its context is still propagated)
        attributes = dict(common)
        attributes["gen_ai.request.stream"] = streaming
        attributes["streamwrap.response.id"] = response_id
        for key, value in params.items():
            name = _REQUEST_PARAMS.get(key)
            if name is not None and (value := _attribute_value(key, value)) is not None:
                attributes[name] = value
        self._capture = os.environ.get(CONTENT_ENV, "").strip().lower() in _CONTENT_ON
        if self._capture:
            attributes["gen_ai.input.messages"] = _json(_input_messages(messages))
        span.set_attributes(attributes)

    def _timestamp(self, monotonic: float) -> int:
        return self._start_ns + int((monotonic - self._start_mono) * 1e9)

    def attempt(self, entry: Mapping[str, Any]) -> None:
        """One HTTP attempt has ended (``response.attempts``' entry): an event."""
        span = self._span
        if span is None or not span.is_recording():
            return
        attributes: dict[str, Any] = {
            "http.request.resend_count": entry["attempt"] - 1,
            "streamwrap.attempt.duration": entry["seconds"],
        }
        if entry["status"] is not None:
            attributes["http.response.status_code"] = entry["status"]
        if entry["error"] is not None:
            attributes["error.type"] = f"{_SCOPE}.{entry['error']}"
        span.add_event("streamwrap.http.attempt", attributes)

    def content(self, now: float) -> None:
        """Content arrived at ``now`` (monotonic): called once per network read that had some."""
        if self.chunk_times is not None:
            self.chunk_times.append(now)

    def end(self, ch: EndedCall, state: str) -> None:
        """The call has ended in ``state``; called once, before anyone can see it ended."""
        if self._ended:
            return
        self._ended = True
        try:
            self._end(ch, state)
        except Exception:
            # Telemetry never breaks a response: OpenTelemetry's own rule for
            # instrumentations (log, do not raise).
            _log().exception("streamwrap: recording the telemetry of a model call failed")
            if self._span is not None:
                self._span.end()

    def _end(self, ch: EndedCall, state: str) -> None:
        now = time.monotonic() if ch.ended_at is None else ch.ended_at
        error = ch.error if state == "failed" else None
        error_type = None if error is None else _error_type(error)
        usage = ch.usage if ch.usage is not None and ch.usage.source == "provider" else None
        metric_attributes = self._metric_attributes
        if ch.model:
            metric_attributes = {**metric_attributes, "gen_ai.response.model": ch.model}
        span = self._span
        if span is not None and span.is_recording():
            self._finish_span(span, ch, state, error, error_type, usage)
        if self._instruments is not None:
            self._record(self._instruments, ch, now, error_type, usage, metric_attributes)
        if span is not None:
            span.end(end_time=self._timestamp(now))

    def _finish_span(
        self,
        span: Any,
        ch: EndedCall,
        state: str,
        error: BaseException | None,
        error_type: str | None,
        usage: Usage | None,
    ) -> None:
        finish_reason = final_finish_reason(state, ch.finish_raw, bool(ch.tools))
        attributes: dict[str, Any] = {"gen_ai.response.finish_reasons": (finish_reason,)}
        if ch.model:
            attributes["gen_ai.response.model"] = ch.model
        if ch.provider_id:
            attributes["gen_ai.response.id"] = ch.provider_id
        if usage is not None:
            for name, value in (
                ("gen_ai.usage.input_tokens", usage.input_tokens),
                ("gen_ai.usage.output_tokens", usage.output_tokens),
                ("gen_ai.usage.reasoning.output_tokens", usage.reasoning_tokens),
                ("gen_ai.usage.cache_read.input_tokens", usage.cached_tokens),
                ("gen_ai.usage.cache_write.input_tokens", usage.cache_write_tokens),
            ):
                if value is not None:
                    attributes[name] = value
        # Estimated counts are not the conventions' usage (which must not be guessed): said
        # here, with the numbers left to response.usage.
        attributes["streamwrap.usage.source"] = ch.usage.source if ch.usage is not None else "unknown"
        if self._streaming and ch.first_token_at is not None and ch.sent_at is not None:
            attributes["gen_ai.response.time_to_first_chunk"] = ch.first_token_at - ch.sent_at
            span.add_event("streamwrap.first_token", timestamp=self._timestamp(ch.first_token_at))
        if self._capture:
            attributes["gen_ai.output.messages"] = _json(
                _output_messages(ch.text_parts, ch.reasoning_parts, ch.tools.calls(), finish_reason)
            )
        if error_type is not None:
            attributes["error.type"] = error_type
            status_code = getattr(error, "status_code", None)
            if isinstance(status_code, int):
                attributes["http.response.status_code"] = status_code
        span.set_attributes(attributes)
        if error is not None:
            from opentelemetry.trace import Status, StatusCode

            span.set_status(Status(StatusCode.ERROR, str(error)))

    def _record(
        self,
        instruments: _Instruments,
        ch: EndedCall,
        now: float,
        error_type: str | None,
        usage: Usage | None,
        attributes: Mapping[str, Any],
    ) -> None:
        duration_attributes = attributes if error_type is None else {**attributes, "error.type": error_type}
        instruments.duration.record(now - self._start_mono, duration_attributes)
        if usage is not None:
            for token_type, count in (("input", usage.input_tokens), ("output", usage.output_tokens)):
                if count is not None:
                    instruments.token_usage.record(count, {**attributes, "gen_ai.token.type": token_type})
        if not self._streaming:
            return  # the chunk metrics are for streaming calls only
        if ch.first_token_at is not None and ch.sent_at is not None:
            instruments.time_to_first_chunk.record(ch.first_token_at - ch.sent_at, attributes)
        times = self.chunk_times
        if times:
            record = instruments.time_per_chunk.record
            for previous, current in itertools.pairwise(times):
                record(current - previous, attributes)


def _log() -> Any:
    import logging

    return logging.getLogger("streamwrap.telemetry")


def _make_current(trace: Any, span: Any) -> None:
    from opentelemetry import context

    # Never detached: the context is the producer's own copy, gone with it.
    context.attach(trace.set_span_in_context(span))


@functools.lru_cache(maxsize=64)
def _server_address(url: str) -> tuple[str, int] | None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname:
        return None
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    return parts.hostname, port


def _attribute_value(key: str, value: Any) -> Any:
    """``value`` as an attribute value, or ``None`` if it is not one."""
    if key in ("stop", "stop_sequences"):
        if isinstance(value, str):
            return (value,)
        if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
            return tuple(value)
        return None
    if key == "n" and value == 1:
        return None  # recorded only when it is not 1 (the conventions' rule)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


def _error_type(error: BaseException) -> str:
    cls = type(error)
    module = cls.__module__
    # streamwrap's errors by their public name (streamwrap.RateLimitError), not the
    # private module that defines them.
    if module.split(".")[0] == _SCOPE:
        return f"{_SCOPE}.{cls.__qualname__}"
    return f"{module}.{cls.__qualname__}"


def _json(value: Any) -> str:
    return orjson.dumps(value, default=str).decode()


def _parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    parts: list[dict[str, Any]] = []
    if isinstance(content, Iterable):
        for part in content:
            if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                parts.append({"type": "text", "content": part["text"]})
            elif isinstance(part, Mapping):
                # Images, audio, files: the kind only, not the data.
                parts.append({"type": str(part.get("type", "unknown"))})
    return parts


def _input_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The conventions' ``gen_ai.input.messages``: role and parts of each message."""
    out: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        content = message.get("content")
        if role == "tool":
            parts: list[dict[str, Any]] = [
                {"type": "tool_call_response", "id": message.get("tool_call_id"), "response": content}
            ]
        else:
            parts = _parts(content) if content is not None else []
        for call in message.get("tool_calls") or ():
            if isinstance(call, Mapping):
                function = call.get("function") or {}
                parts.append(
                    {
                        "type": "tool_call",
                        "id": call.get("id"),
                        "name": function.get("name"),
                        "arguments": function.get("arguments"),
                    }
                )
        out.append({"role": role, "parts": parts})
    return out


def _output_messages(
    text: list[str], reasoning: list[str], calls: list[ToolCall], finish_reason: str
) -> list[dict[str, Any]]:
    """The conventions' ``gen_ai.output.messages``: the one assistant message."""
    parts: list[dict[str, Any]] = []
    if reasoning:
        parts.append({"type": "reasoning", "content": "".join(reasoning)})
    if text:
        parts.append({"type": "text", "content": "".join(text)})
    for call in calls:
        parts.append({"type": "tool_call", "id": call.id, "name": call.name, "arguments": call.arguments})
    return [{"role": "assistant", "parts": parts, "finish_reason": finish_reason}]
