"""The OpenAI chat-completions wire format, shared by every OpenAI-compatible server
(OpenAI, DeepSeek, OpenRouter, Groq, vLLM, llama.cpp, DashScope and Zhipu compatible modes,
LiteLLM's proxy): SSE chunk JSON → normalised deltas, and the non-streaming body too.

Pure functions over bytes and dicts, no SDK: the SDK's pydantic chunk objects are where its
per-chunk time goes, so streamwrap decodes the raw bytes itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..._delta import Delta, Finish, Metadata, ReasoningDelta, TextDelta, ToolCallDelta, UsageReport
from ..._errors import ProviderStreamError, StreamProtocolError
from ..._transport._sse import ServerSentEvent, SSEDecoder
from ..._transport._wire_mapper import WireMapper
from ..._transport._wire_shape import SHAPE_ERRORS as _SHAPE_ERRORS
from ..._transport._wire_shape import count, error_fields, event_json, label, optional_text, shape_error
from ..._transport._wire_shape import text as _text
from ..._usage import Usage

__all__ = ["OpenAIStreamMapper", "completion_deltas", "usage_from_openai"]

# Reasoning text arrives as `reasoning_content` (DeepSeek, Qwen, GLM, vLLM) or `reasoning`
# (OpenRouter, newer vLLM, Ollama's compatible API); a server that sends both sends the same.
_REASONING_FIELDS = ("reasoning_content", "reasoning")


def usage_from_openai(raw: Mapping[str, Any]) -> Usage:
    prompt_details = raw.get("prompt_tokens_details") or {}
    completion_details = raw.get("completion_tokens_details") or {}
    cached = count(prompt_details.get("cached_tokens")) if isinstance(prompt_details, Mapping) else None
    if cached is None:
        cached = count(raw.get("prompt_cache_hit_tokens"))  # DeepSeek's name
    reasoning = (
        count(completion_details.get("reasoning_tokens")) if isinstance(completion_details, Mapping) else None
    )
    return Usage.reported(
        count(raw.get("prompt_tokens")),
        count(raw.get("completion_tokens")),
        count(raw.get("total_tokens")),
        reasoning_tokens=reasoning,
        cached_tokens=cached,
        raw=raw,
    )


# An OpenAI error object names its kind in `code`, or only in `type` (invalid_request_error, ...).
_ERROR_CODE_KEYS = ("code", "type")


class OpenAIStreamMapper(WireMapper[ServerSentEvent]):
    """Feeds SSE bytes of a ``chat.completion.chunk`` stream; returns deltas.

    ``done`` is set by ``data: [DONE]``; ``finished`` when a choice carried a finish
    reason. Either counts as a proper end; neither, at the end of the body, is a cut stream.
    Only the first choice (index 0) is followed.
    """

    __slots__ = ("_seen_meta", "done", "finished")

    expected_shape = "the OpenAI chunk shape"
    unfinished_message = "the stream ended before the provider finished (no finish_reason, no [DONE])"

    def __init__(self, provider: str) -> None:
        super().__init__(provider, SSEDecoder())
        self._seen_meta = False
        self.done = False
        self.finished = False

    def ended(self) -> bool:
        return self.done or self.finished

    def map_event(self, event: ServerSentEvent, out: list[Delta]) -> None:
        if self.done:
            return  # nothing after [DONE] belongs to the response
        data = event.data
        if data == b"[DONE]":
            self.done = True
            return
        if not data.strip():
            return  # an empty data line carries nothing (some proxies send them)
        obj = event_json(data, self.provider)
        if event.event == "error" or (type(obj) is dict and obj.get("error")):
            err = obj.get("error", obj) if type(obj) is dict else obj
            message, code = error_fields(err, _ERROR_CODE_KEYS)
            raise ProviderStreamError(message, provider=self.provider, code=code)
        if type(obj) is not dict:
            raise StreamProtocolError(
                f"expected a JSON object in the stream, got {type(obj).__name__}", provider=self.provider
            )
        if not self._seen_meta:
            # Azure OpenAI's first chunk (`choices: []`, `prompt_filter_results`) has an
            # empty id and model: take them from the first chunk that names them.
            provider_id, model = label(obj.get("id")), label(obj.get("model"))
            if provider_id is not None or model is not None:
                self._seen_meta = True
                out.append(Metadata(provider_id, model))
        choices = obj.get("choices")
        if choices:
            choice = choices[0]
            delta = choice.get("delta")
            if delta:
                content = delta.get("content")
                if content:
                    out.append(TextDelta(_text(content)))
                for name in _REASONING_FIELDS:
                    reasoning = delta.get(name)
                    if reasoning:
                        out.append(ReasoningDelta(_text(reasoning)))
                        break
                tool_calls = delta.get("tool_calls")
                if tool_calls:
                    _tool_deltas(tool_calls, out)
            reason = choice.get("finish_reason")
            if reason:
                self.finished = True
                out.append(Finish(_text(reason)))
        usage = obj.get("usage")
        if usage:
            out.append(UsageReport(usage_from_openai(usage)))


def _tool_deltas(tool_calls: list[Any], out: list[Delta]) -> None:
    for n, call in enumerate(tool_calls):
        fn = call.get("function") or {}
        index = call.get("index")
        out.append(
            ToolCallDelta(
                index if type(index) is int else n,
                optional_text(call.get("id")),
                optional_text(fn.get("name")),
                optional_text(fn.get("arguments")) or "",
            )
        )


def completion_deltas(obj: Any, provider: str) -> list[Delta]:
    """Deltas of a non-streaming ``chat.completion`` body (already parsed)."""
    try:
        return _completion_deltas(obj, provider)
    except _SHAPE_ERRORS as exc:
        raise shape_error(exc, provider, OpenAIStreamMapper.expected_shape) from None


def _completion_deltas(obj: Any, provider: str) -> list[Delta]:
    if type(obj) is not dict:
        raise StreamProtocolError(f"expected a JSON object, got {type(obj).__name__}", provider=provider)
    if obj.get("error"):
        error_message, code = error_fields(obj["error"], _ERROR_CODE_KEYS)
        raise ProviderStreamError(error_message, provider=provider, code=code)
    out: list[Delta] = [Metadata(label(obj.get("id")), label(obj.get("model")))]
    choices = obj.get("choices") or []
    if choices:
        choice = choices[0]
        message = choice.get("message") or {}
        for name in _REASONING_FIELDS:
            if message.get(name):
                out.append(ReasoningDelta(_text(message[name])))
                break
        if message.get("content"):
            out.append(TextDelta(_text(message["content"])))
        if message.get("tool_calls"):
            _tool_deltas(message["tool_calls"], out)
        if choice.get("finish_reason"):
            out.append(Finish(_text(choice["finish_reason"])))
    if obj.get("usage"):
        out.append(UsageReport(usage_from_openai(obj["usage"])))
    return out
