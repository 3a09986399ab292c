"""Token usage with its provenance: reported by the provider, estimated locally, or unknown."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Usage", "UsageSource", "estimate_tokens"]

UsageSource = Literal["provider", "estimated", "unknown"]

# A rough, documented heuristic (about four characters of English per token); only used
# when the provider reports nothing, and always marked ``source="estimated"``.
_CHARS_PER_TOKEN = 4


def estimate_tokens(chars: int) -> int:
    return -(-chars // _CHARS_PER_TOKEN)


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one response.

    Counts are ``None`` when nobody knows them, never a silent 0. ``source`` says where
    the numbers come from: ``"provider"`` (reported), ``"estimated"`` (computed locally
    because the provider reported nothing) or ``"unknown"``. ``raw`` keeps the provider's
    own usage object. ``cached_tokens`` are input tokens read from the provider's prompt
    cache (part of ``input_tokens``); ``cache_write_tokens`` those written to it (also part
    of ``input_tokens``), for providers that report them (Anthropic).
    """

    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    reasoning_tokens: int | None = None
    cached_tokens: int | None = None
    source: UsageSource = "unknown"
    raw: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)
    # (Last, after raw: positional construction stays as it was.)
    cache_write_tokens: int | None = None

    @property
    def prompt_tokens(self) -> int | None:
        """OpenAI's name for :attr:`input_tokens`."""
        return self.input_tokens

    @property
    def completion_tokens(self) -> int | None:
        """OpenAI's name for :attr:`output_tokens`."""
        return self.output_tokens

    @classmethod
    def reported(
        cls,
        input_tokens: int | None,
        output_tokens: int | None,
        total_tokens: int | None = None,
        *,
        reasoning_tokens: int | None = None,
        cached_tokens: int | None = None,
        cache_write_tokens: int | None = None,
        raw: Mapping[str, Any] | None = None,
    ) -> Usage:
        """A provider's reading (``source="provider"``); the total is the sum when the
        provider gave both parts but no total."""
        if total_tokens is None and input_tokens is not None and output_tokens is not None:
            total_tokens = input_tokens + output_tokens
        return cls(
            input_tokens,
            output_tokens,
            total_tokens,
            reasoning_tokens,
            cached_tokens,
            "provider",
            raw,
            cache_write_tokens,
        )

    @classmethod
    def estimate(cls, input_chars: int, output_chars: int) -> Usage:
        inp = estimate_tokens(input_chars)
        out = estimate_tokens(output_chars)
        return cls(input_tokens=inp, output_tokens=out, total_tokens=inp + out, source="estimated")

    def as_dict(self) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.total_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "cached_tokens": self.cached_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "source": self.source,
        }
