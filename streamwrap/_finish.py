"""Normalising the providers' finish reasons to one small vocabulary."""

from __future__ import annotations

from typing import Literal

__all__ = ["FinishReason", "final_finish_reason", "normalize_finish_reason"]

FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "error", "cancelled"]

# One table for every provider (OpenAI and compatibles, Gemini, Ollama, DashScope, Anthropic):
# a new provider adds rows here rather than a branch in its adapter. Keys are lower-cased.
_TABLE: dict[str, FinishReason] = {
    "stop": "stop",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "eos": "stop",
    "eos_token": "stop",
    "finish_reason_unspecified": "stop",
    "length": "length",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "max_output_tokens": "length",  # OpenAI Responses: incomplete_details.reason
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "tool_use": "tool_calls",
    "content_filter": "content_filter",
    "safety": "content_filter",
    "recitation": "content_filter",
    "blocklist": "content_filter",
    "prohibited_content": "content_filter",
    "spii": "content_filter",
    "image_safety": "content_filter",
    "image_prohibited_content": "content_filter",
    "image_recitation": "content_filter",
    "model_armor": "content_filter",
    "refusal": "content_filter",
    "sensitive": "content_filter",
    # Bedrock Converse: a guardrail, or the model's own filter, stopped the reply.
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
    "malformed_function_call": "error",
    # Gemini: the model broke its own tool-calling or response protocol.
    "unexpected_tool_call": "error",
    "too_many_tool_calls": "error",
    "missing_thought_signature": "error",
    "malformed_response": "error",
    "error": "error",
    "other": "stop",
    "cancelled": "cancelled",
}


def normalize_finish_reason(raw: str | None) -> FinishReason | None:
    """Map a provider's finish reason to the normalised vocabulary.

    Unknown non-empty values map to ``"stop"`` (the stream did finish); the raw value is
    kept on the response as ``finish_reason_raw`` so nothing is lost.
    """
    if raw is None:
        return None
    key = raw.lower()
    if key in ("", "null", "none"):
        return None
    return _TABLE.get(key, "stop")


def final_finish_reason(state: str, raw: str | None, has_tool_calls: bool) -> FinishReason:
    """The finish reason of a response that ended in ``state`` (``done``, ``failed`` or
    ``cancelled``), with the provider's ``raw`` one and whether it made tool calls: what
    ``response.finish_reason`` says, and what its telemetry records."""
    if state == "failed":
        return "error"
    if state == "cancelled":
        return "cancelled"
    reason = normalize_finish_reason(raw)
    if has_tool_calls and reason in (None, "stop"):
        # Gemini and Ollama say "stop" when the model stopped to call tools; OpenAI says
        # "tool_calls". One answer whichever provider: finish_reason_raw keeps theirs.
        return "tool_calls"
    return reason or "stop"
