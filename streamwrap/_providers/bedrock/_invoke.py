"""Bedrock's InvokeModelWithResponseStream for Anthropic's models
(``POST /model/{modelId}/invoke-with-response-stream``, ``bedrock_api: "invoke"``): the
request body, and the response bytes → deltas, sans I/O.

The body is Anthropic's Messages body as ``anthropic_chat`` builds it, without ``model``
(the path names it) and ``stream`` (the path says it), with ``anthropic_version:
bedrock-2023-05-31`` (the only version Bedrock accepts). A whole reply
(``/model/{modelId}/invoke``) is Anthropic's ``message`` object.

The body is an AWS event stream (as ConverseStream's); each ``chunk`` event's JSON payload
is ``{"bytes": <base64>, "p": <padding>}``, and the bytes are one event of Anthropic's
Messages stream (``message_start``, ``content_block_delta``, ...), the same JSON the
Messages API sends as SSE ``data``. So this mapper decodes the frames, the base64, and
hands each Anthropic event to ``anthropic_chat``'s own mapper, which turns it into deltas:
text, thinking (and the thinking blocks a tool loop sends back), tool calls, usage,
finish reason, identity. Exception messages are read as ConverseStream's are.

Usage: the last Anthropic event, ``message_stop``, also carries Bedrock's
``amazon-bedrock-invocationMetrics`` (``inputTokenCount``, ``outputTokenCount``,
latencies). Where it disagrees with the counts of ``message_start`` and ``message_delta``,
Anthropic's counts win: they are the model's own, split the prompt into its uncached, cache
read and cache write parts (the invocation metrics give one input number, without saying
which parts it counts), and are the ones the same reply reports on Anthropic's API, so a
response's usage does not depend on which of the two routes carried it. The invocation
metrics are used only when the Anthropic events reported no usage at all.
"""

from __future__ import annotations

import binascii
from typing import Any

from ..._delta import Delta, UsageReport
from ..._transport._eventstream import EventStreamDecoder, EventStreamMessage
from ..._transport._sse import ServerSentEvent
from ..._transport._wire_mapper import WireMapper
from ..._transport._wire_shape import count, event_json
from ..._transport._wire_shape import text as _text
from ..._usage import Usage
from ..._wrapper import ChatRequest

# anthropic_chat's request body and mappers: see the ignore_imports lines in pyproject.toml.
from ..anthropic._request import build_request_body
from ..anthropic._wire import AnthropicStreamMapper, message_deltas
from ._wire import stream_exception

__all__ = ["ANTHROPIC_VERSION", "InvokeStreamMapper", "build_invoke_body", "invoke_message_deltas"]

#: The ``anthropic_version`` of the body: Bedrock's one version of the Messages API.
ANTHROPIC_VERSION = "bedrock-2023-05-31"


def build_invoke_body(request: ChatRequest) -> dict[str, Any]:
    """The ``POST /model/{modelId}/invoke-with-response-stream`` JSON body of a call."""
    body = build_request_body(request)
    body.pop("model", None)
    body.pop("stream", None)
    body.setdefault("anthropic_version", ANTHROPIC_VERSION)
    return body


def invoke_message_deltas(obj: Any, provider: str) -> list[Delta]:
    """Deltas of a whole reply (Anthropic's ``message`` object)."""
    return message_deltas(obj, provider)


_METRICS = "amazon-bedrock-invocationMetrics"


class InvokeStreamMapper(WireMapper[EventStreamMessage]):
    """Feeds the bytes of an InvokeModelWithResponseStream body of an Anthropic model."""

    __slots__ = ("_frames", "_messages", "_usage_seen")

    expected_shape = "the Bedrock InvokeModelWithResponseStream chunk shape"
    unfinished_message = "the stream ended before the provider finished (no message_stop)"

    def __init__(self, provider: str) -> None:
        self._frames = EventStreamDecoder(provider)
        super().__init__(provider, self._frames)
        self._messages = AnthropicStreamMapper(provider)
        self._usage_seen = False

    def after_read(self, out: list[Delta]) -> None:
        # A read whose good messages the decoder returned before a broken one: its error
        # is raised right after their deltas (BodyUpstream raises a held mapper error),
        # not at the next read, which may never come.
        if self.error is None and self._frames.error is not None:
            self.error = self._frames.error

    def ended(self) -> bool:
        return self._messages.finished

    def map_event(self, event: EventStreamMessage, out: list[Delta]) -> None:
        error = stream_exception(event, self.provider)
        if error is not None:
            raise error
        if event.headers.get(":event-type") != "chunk":
            return  # (no other event type is documented)
        chunk = event_json(event.payload, self.provider)
        try:
            data = binascii.a2b_base64(_text(chunk["bytes"]), strict_mode=True)
        except binascii.Error as exc:
            raise ValueError(f"a chunk's bytes are not base64 ({exc})") from None
        start = len(out)
        self._messages.map_event(ServerSentEvent(data), out)
        if not self._usage_seen:
            self._usage_seen = any(type(d) is UsageReport for d in out[start:])
            if not self._usage_seen and self._messages.finished:
                self._metrics(data, out)

    def _metrics(self, data: bytes, out: list[Delta]) -> None:
        """The invocation metrics' counts, when Anthropic's events gave none."""
        metrics = event_json(data, self.provider).get(_METRICS)
        if not isinstance(metrics, dict):
            return
        prompt, completion = count(metrics.get("inputTokenCount")), count(metrics.get("outputTokenCount"))
        if prompt is not None or completion is not None:
            self._usage_seen = True
            out.append(UsageReport(Usage.reported(prompt, completion, raw=metrics)))
