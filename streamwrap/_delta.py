"""Normalised deltas: what a provider adapter yields, whatever its wire format.

A provider module's only job is to turn its wire events into these; the response owns
accumulation, replay, usage, timing and close. Text and reasoning deltas are ``str``
subclasses so that accumulating them is plain string concatenation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from ._usage import Usage

__all__ = [
    "Delta",
    "Finish",
    "Metadata",
    "ReasoningDelta",
    "TextDelta",
    "ToolCallDelta",
    "UsageReport",
]


class TextDelta(str):
    """A piece of the answer's text."""

    __slots__ = ()


class ReasoningDelta(str):
    """A piece of the model's reasoning ("thinking") text."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A fragment of a tool call. Fragments with the same ``index`` belong to one call;
    ``id`` and ``name`` usually come only with the first fragment. ``extra`` carries
    provider data to keep with the call (e.g. Gemini's thought signature)."""

    index: int
    id: str | None
    name: str | None
    arguments: str
    extra: dict[str, object] | None = None


class UsageReport(NamedTuple):
    """A usage reading. Providers that restate usage on every chunk send cumulative
    readings: the last one wins, readings are never summed."""

    usage: Usage


class Finish(NamedTuple):
    """The provider's own finish reason, before normalisation."""

    raw: str


class Metadata(NamedTuple):
    """Identity the provider gives the response (its id and the model that answered)."""

    provider_id: str | None
    model: str | None


Delta = TextDelta | ReasoningDelta | ToolCallDelta | UsageReport | Finish | Metadata
