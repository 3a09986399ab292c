"""The Gemini API wire format (``generateContent`` / ``streamGenerateContent?alt=sse``):
response bytes → normalised deltas, sans I/O.

Every SSE event, and the whole body of a non-streaming call, is one
``GenerateContentResponse``::

    {"candidates": [{"content": {"role": "model", "parts": [...]}, "finishReason": "STOP"}],
     "usageMetadata": {...}, "modelVersion": "...", "responseId": "..."}

Parts map to deltas: ``{"text"}`` → :class:`TextDelta`; ``{"text", "thought": true}`` →
:class:`ReasoningDelta`; ``{"functionCall": {"name", "args", "id"?}, "thoughtSignature"?}``
→ one whole :class:`ToolCallDelta` per call (Gemini never splits a call across events), its
``arguments`` the JSON of ``args``, the signature kept in ``extra["thought_signature"]`` so
that it can be sent back with the call. The Gemini API gives calls no id, so one is made up
from the response id and the call's position: deterministic, unique within a conversation.

Decisions worth knowing:

- Usage is restated, cumulative, on every event (the last reading wins). ``output_tokens``
  is ``candidatesTokenCount + thoughtsTokenCount`` — thinking tokens are billed as output,
  as OpenAI's ``completion_tokens`` includes ``reasoning_tokens`` — and
  ``reasoning_tokens`` is ``thoughtsTokenCount``; ``input_tokens`` is ``promptTokenCount``
  (tool-use prompt tokens stay in ``usage.raw``).
- A prompt blocked before any answer (``promptFeedback.blockReason``, no candidate) raises
  :class:`ProviderStreamError` with ``code`` = the block reason: there is no answer at all,
  and an empty text with a finish reason would be easy to miss. A candidate stopped by a
  filter mid-answer (``finishReason: SAFETY`` ...) is a normal end with
  ``finish_reason == "content_filter"``, its partial text kept.
- Error bodies are JSON objects ``{"error": {"code", "message", "status"}}``, sent as an SSE
  event mid-stream, or as the whole body even where the content type says
  ``text/event-stream``. Both raise :class:`ProviderStreamError` (the HTTP status path is in
  ``_transport._httpx_client``). A body that does not start with an SSE field is read as plain JSON.
- A stream that ends without a ``finishReason`` was cut: :class:`StreamInterruptedError`.
- An error that arrives in the same network read as content is raised at the next read (or
  the end of the body), so that the content before it reaches the response first.
- Only candidate 0 is followed (``candidateCount`` > 1 streams the others too). Thought
  signatures on text parts, code execution parts and inline data are not mapped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from ..._delta import Delta, Finish, Metadata, ReasoningDelta, TextDelta, ToolCallDelta, UsageReport
from ..._errors import ProviderStreamError, StreamProtocolError
from ..._transport._sse import ServerSentEvent, SSEDecoder
from ..._transport._wire_mapper import WireMapper
from ..._transport._wire_shape import SHAPE_ERRORS as _SHAPE_ERRORS
from ..._transport._wire_shape import count, event_json, label, shape_error
from ..._transport._wire_shape import text as _text
from ..._usage import Usage

__all__ = ["GeminiStreamMapper", "response_deltas", "usage_from_gemini"]

_WHITESPACE = b" \t\r\n"
# The token counts of a usageMetadata object.
_COUNTS = frozenset(
    (
        "promptTokenCount",
        "candidatesTokenCount",
        "thoughtsTokenCount",
        "totalTokenCount",
        "cachedContentTokenCount",
    )
)


def usage_from_gemini(raw: Mapping[str, Any]) -> Usage:
    """A :class:`Usage` from a ``usageMetadata`` object (see the module docstring)."""
    candidates = count(raw.get("candidatesTokenCount"))
    thoughts = count(raw.get("thoughtsTokenCount"))
    # Early events often report only the prompt: output is then unknown (None), not 0.
    output = None if candidates is None and thoughts is None else (candidates or 0) + (thoughts or 0)
    return Usage.reported(
        count(raw.get("promptTokenCount")),
        output,
        count(raw.get("totalTokenCount")),
        reasoning_tokens=thoughts,
        cached_tokens=count(raw.get("cachedContentTokenCount")),
        raw=raw,
    )


class _SSEOrJSON(SSEDecoder):
    """The decoder of a Gemini stream body: SSE, as promised, unless its first non-blank
    byte opens a JSON document (an error object, or a JSON array of responses, where SSE
    was promised); such a document is kept whole, and :meth:`close` returns it as one
    event (with :attr:`json` set).

    The body's start is told apart in ``_start``, which the SSE decoder calls only until
    the start is known: once it is SSE, a read costs what it costs a plain SSE decoder.
    """

    __slots__ = ("_raw",)

    def __init__(self) -> None:
        super().__init__()
        self._raw: list[bytes] | None = None

    @property
    def json(self) -> bool:
        return self._raw is not None

    def _start(self, buf: bytes) -> bytes:
        if self._raw is not None:
            self._raw.append(buf)  # a JSON document: read whole at the end
            return b""
        start = buf.lstrip(_WHITESPACE)
        if not start:
            self._tail = buf  # blank so far: SSE, or a plain JSON body?
            return b""
        if start[0] in b"{[":
            self._raw = [buf]
            self._tail = b""
            return b""
        return super()._start(buf)

    def close(self) -> list[ServerSentEvent]:
        if self._raw is not None:
            return [ServerSentEvent(b"".join(self._raw))]
        if not self._started:
            return []  # a blank body (or none at all)
        return super().close()


class GeminiStreamMapper(WireMapper[ServerSentEvent]):
    """Feeds the bytes of a ``streamGenerateContent?alt=sse`` body; returns deltas.

    Holds what must carry over from one event to the next (the call count, the response
    id, the latest usage). ``finished`` is set once a candidate carried a ``finishReason``;
    without it, the end of the body is a cut stream.
    """

    __slots__ = ("_body", "_calls", "_response_id", "_seen_meta", "_usage", "_usage_sent", "finished")

    expected_shape = "the Gemini GenerateContentResponse shape"
    unfinished_message = "the stream ended before the provider finished (no finishReason)"

    def __init__(self, provider: str) -> None:
        self._body = _SSEOrJSON()
        super().__init__(provider, self._body)
        self._calls = 0
        self._response_id: str | None = None
        self._seen_meta = False
        self._usage: Any = None  # the latest usageMetadata seen
        self._usage_sent: Any = None  # the one last reported
        self.finished = False

    def ended(self) -> bool:
        return self.finished

    def after_read(self, out: list[Delta]) -> None:
        """Report the latest usage reading if it changed. Gemini restates usage on every
        event; readings are cumulative, so one report per network read is enough and
        saves building a Usage per event."""
        usage = self._usage
        if usage is not None and usage != self._usage_sent:
            self._usage_sent = usage
            out.append(UsageReport(usage_from_gemini(usage)))

    def map_event(self, event: ServerSentEvent, out: list[Delta]) -> None:
        data = event.data
        if not data.strip():
            return
        self.response(event_json(data, self.provider), out)

    def map_last_event(self, event: ServerSentEvent, out: list[Delta]) -> None:
        if not self._body.json:
            self.map_event(event, out)
            return
        try:
            obj = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            raise StreamProtocolError(
                f"the body is neither SSE nor JSON: {event.data[:120]!r}", provider=self.provider
            ) from None
        self.document(obj, out)

    def document(self, obj: Any, out: list[Delta]) -> None:
        """Map a whole body: one response, or a JSON array of them."""
        for item in obj if type(obj) is list else (obj,):
            self.response(item, out)

    def response(self, obj: Any, out: list[Delta]) -> None:
        if type(obj) is not dict:
            raise StreamProtocolError(
                f"expected a JSON object, got {type(obj).__name__}", provider=self.provider
            )
        err = obj.get("error")
        if err is not None:
            raise _error(err, self.provider)
        if not self._seen_meta:
            self._seen_meta = True
            self._response_id = label(obj.get("responseId"))
            out.append(Metadata(self._response_id, label(obj.get("modelVersion"))))
        usage = obj.get("usageMetadata")
        if usage:
            if type(usage) is not dict:
                # (Checked here: it is read later, in after_read, outside the shape check.)
                raise TypeError(f"usageMetadata must be an object, got {type(usage).__name__}")
            # Vertex AI's early events say only {"trafficType": ...}: no reading at all, so
            # not one (a failed stream then gets an estimate, not a reading of Nones).
            if not _COUNTS.isdisjoint(usage):
                self._usage = usage
        candidates = obj.get("candidates")
        if candidates:
            candidate = candidates[0]
            if candidate.get("index", 0) != 0:
                # With candidateCount > 1 an event may carry only another candidate.
                candidate = next((c for c in candidates if c.get("index", 0) == 0), None)
                if candidate is None:
                    return
            content = candidate.get("content")
            if content:
                for part in content.get("parts") or ():
                    self._part(part, out)
            reason = candidate.get("finishReason")
            if reason:
                self.finished = True
                out.append(Finish(_text(reason)))
            return
        feedback = obj.get("promptFeedback")
        if feedback and feedback.get("blockReason"):
            reason = _text(feedback["blockReason"])
            detail = feedback.get("blockReasonMessage")
            raise ProviderStreamError(
                f"the prompt was blocked ({reason})" + (f": {detail}" if detail else ""),
                provider=self.provider,
                code=reason,
            )

    def _part(self, part: Any, out: list[Delta]) -> None:
        text = part.get("text")
        if text:
            out.append(ReasoningDelta(_text(text)) if part.get("thought") else TextDelta(_text(text)))
            return
        call = part.get("functionCall")
        if call is not None:
            n = self._calls
            self._calls += 1
            call_id = call.get("id") or (
                f"call_{self._response_id}_{n}" if self._response_id else f"call_{n}"
            )
            signature = part.get("thoughtSignature")
            out.append(
                ToolCallDelta(
                    n,
                    _text(call_id),
                    _text(call.get("name") or ""),
                    orjson.dumps(call.get("args") or {}).decode(),
                    {"thought_signature": _text(signature)} if signature else None,
                )
            )


def _error(err: Any, provider: str) -> ProviderStreamError:
    if isinstance(err, Mapping):
        message = err.get("message") or orjson.dumps(err, default=str).decode()
        code = err.get("status") or err.get("code")
        return ProviderStreamError(str(message), provider=provider, code=None if code is None else str(code))
    return ProviderStreamError(str(err), provider=provider)


def response_deltas(obj: Any, provider: str) -> list[Delta]:
    """Deltas of a non-streaming ``generateContent`` body (already parsed); a JSON array of
    responses (``alt=json`` streaming) is accepted too."""
    mapper = GeminiStreamMapper(provider)
    out: list[Delta] = []
    try:
        mapper.document(obj, out)
    except _SHAPE_ERRORS as exc:
        raise shape_error(exc, provider, GeminiStreamMapper.expected_shape) from None
    mapper.after_read(out)
    return out
