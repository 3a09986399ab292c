"""LiteLLM's response objects → streamwrap's deltas: the open stream (its chunk objects),
the whole response of a non-streaming call, and usage with its provenance.

LiteLLM decodes the stream into its own chunk objects; this module only reads a few
attributes of each and turns them into streamwrap's deltas, so it adds little to LiteLLM's
own per-chunk cost. Its chunks, and its usage, have OpenAI's shape.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Mapping
from typing import Any

from ..._delta import Delta, Finish, Metadata, ReasoningDelta, TextDelta, ToolCallDelta, UsageReport
from ..._errors import StreamError, StreamInterruptedError, StreamProtocolError, StreamwrapError
from ..._secret import Secret
from ..._usage import Usage, UsageSource
from ..openai._wire import usage_from_openai
from ._exceptions import UNFINISHED, stream_error
from ._library import pin_server_model_info

__all__ = ["LiteLLMStream", "completion_deltas"]


class LiteLLMStream:
    """An open LiteLLM stream (``CustomStreamWrapper``): its chunk objects → deltas."""

    __slots__ = ("_provider", "_route", "_secret", "_stream")

    def __init__(self, stream: Any, provider: str, secret: Secret | None, route: str | None = None) -> None:
        self._stream = stream
        self._provider = provider
        self._secret = secret
        self._route = route  # see pin_server_model_info

    async def __aiter__(self) -> AsyncIterator[list[Delta]]:
        stream = self._stream
        first = True
        named = False  # whether a chunk has carried the response's id
        error: StreamError | None = None
        try:
            async for chunk in stream:
                batch: list[Delta] = []
                # Azure OpenAI's first chunk (`choices: []`, `prompt_filter_results`) has an
                # empty id and model: the first chunk that has an id names the response.
                if not named and (first or chunk.id):
                    first, named = False, bool(chunk.id)
                    answered = _provider_model(chunk)
                    batch.append(Metadata(chunk.id or None, answered))
                    if self._route is not None and answered:
                        pin_server_model_info(self._route, answered)
                choices = chunk.choices
                if choices:
                    choice = choices[0]
                    delta = choice.delta
                    # LiteLLM deletes the attribute rather than setting None.
                    reasoning = getattr(delta, "reasoning_content", None)
                    if reasoning:
                        batch.append(ReasoningDelta(reasoning))
                    content = delta.content
                    if content:
                        batch.append(TextDelta(content))
                    tool_calls = delta.tool_calls
                    if tool_calls:
                        _tool_deltas(tool_calls, batch)
                    finish = choice.finish_reason
                    if finish:
                        batch.append(Finish(finish))
                # Only the final chunk has `usage` (LiteLLM strips it from the others).
                usage = getattr(chunk, "usage", None)
                if usage is not None:
                    batch.append(UsageReport(_stream_usage(stream, usage)))
                if batch:
                    yield batch
        except StreamwrapError:
            raise
        except Exception as exc:
            error = stream_error(exc, self._provider, self._secret)
        if error is not None:
            raise error  # outside the handler: LiteLLM's exception may quote the key
        _check_finished(stream, self._provider)

    async def aclose(self) -> None:
        # Closes the provider response, so leaving early frees the connection at once.
        close = getattr(self._stream, "aclose", None)
        if close is not None:
            await close()


def _provider_model(chunk: Any) -> str | None:
    # LiteLLM sets `chunk.model` to the model string it was called with; the name the
    # provider answered with (e.g. a dated snapshot) is in its hidden params.
    hidden = getattr(chunk, "_hidden_params", None)
    if isinstance(hidden, Mapping):
        answered = hidden.get("provider_response_model")
        if isinstance(answered, str) and answered:
            return answered
    model = getattr(chunk, "model", None)
    return model if isinstance(model, str) else None


def _tool_deltas(tool_calls: Any, out: list[Delta]) -> None:
    for n, call in enumerate(tool_calls):
        fn = call.function
        index = getattr(call, "index", None)  # absent on the calls of a whole message
        out.append(
            ToolCallDelta(
                index if isinstance(index, int) else n,
                call.id or None,
                (fn.name or None) if fn is not None else None,
                (fn.arguments or "") if fn is not None else "",
            )
        )


def _as_usage(reported: Any, source: UsageSource) -> Usage:
    dump = getattr(reported, "model_dump", None)
    raw = dump(exclude_none=True) if dump is not None else dict(reported)
    usage = usage_from_openai(raw)
    return usage if source == "provider" else dataclasses.replace(usage, source=source)


def _stream_usage(stream: Any, final: Any) -> Usage:
    """The usage of a finished stream, with its provenance.

    LiteLLM's final usage is rebuilt by ``stream_chunk_builder``: it drops fields the
    provider sent (DeepSeek's ``prompt_cache_hit_tokens``, Groq's timings), fills
    ``reasoning_tokens`` with its own tiktoken count where the provider gave none, and is
    a complete local count when the provider reported nothing. The provider's own report
    is kept on the chunk LiteLLM parsed it from (in ``stream.chunks``): use that, and
    mark LiteLLM's count as an estimate when there is none.
    """
    chunks = getattr(stream, "chunks", None)
    if not isinstance(chunks, list):
        return _as_usage(final, "provider")  # a LiteLLM that keeps no chunks: trust it
    for chunk in reversed(chunks):
        reported = getattr(chunk, "usage", None)
        if reported is not None:
            return _as_usage(reported, "provider")
    return _as_usage(final, "estimated")


def _check_finished(stream: Any, provider: str) -> None:
    # LiteLLM ends every stream with a finish chunk of its own ("stop" when the provider
    # sent no finish reason), so a body cut short after a clean chunk boundary would look
    # complete; its record of what the provider really sent tells the two apart.
    received = getattr(stream, "received_finish_reason", "")
    if received is None and getattr(stream, "intermittent_finish_reason", None) is None:
        raise StreamInterruptedError(UNFINISHED, provider=provider)


def completion_deltas(response: Any, provider: str) -> list[Delta]:
    """Deltas of a non-streaming LiteLLM ``ModelResponse``."""
    try:
        out: list[Delta] = [Metadata(response.id, _provider_model(response))]
        choices = response.choices
        if choices:
            choice = choices[0]
            message = choice.message
            reasoning = getattr(message, "reasoning_content", None)
            if reasoning:
                out.append(ReasoningDelta(reasoning))
            if message.content:
                out.append(TextDelta(message.content))
            if message.tool_calls:
                _tool_deltas(message.tool_calls, out)
            if choice.finish_reason:
                out.append(Finish(choice.finish_reason))
        usage = getattr(response, "usage", None)
        # LiteLLM fills in all-zero usage when the provider sent none: no real response
        # has zero prompt tokens, so that is "not reported" (streamwrap then estimates).
        counts = (getattr(usage, "prompt_tokens", None), getattr(usage, "completion_tokens", None))
        if usage is not None and any(counts):
            out.append(UsageReport(_as_usage(usage, "provider")))
    except (AttributeError, TypeError, KeyError, IndexError, ValueError) as exc:
        raise StreamProtocolError(
            f"LiteLLM returned a response of an unexpected shape ({type(exc).__name__}: {exc})",
            provider=provider,
        ) from None
    return out
