"""Real provider traffic (``../shared/recordings``) and the ONE table that says how the
tests read it.

The folder holds ``<provider>/<name>.<sse|ndjson|json|bin>`` bodies, each with a
``<name>.meta.json`` (source, request, status, content type, ``expected`` parse). It grows
with providers streamwrap does not speak yet, so every test module that reads recordings
takes them (and reads their files: :func:`body`, :func:`load_meta`, :func:`named`) from
here rather than globbing the folder itself: a provider folder is either in
:data:`WIRES` (the mapper streamwrap decodes its bodies with) or in :data:`NO_WRAPPER`
(skipped, saying so), and a folder in neither fails
``test_decoder_properties.py::test_every_recording_folder_is_in_the_provider_table`` instead
of breaking collection.

In a clone without the folder (it is never copied into the repository), every
parametrized recording test is one skipped case saying where the folder was looked for;
non-parametrized tests use conftest's ``recordings`` fixture, which skips the same way.
(The table of model types the tests build models from is ``providers.py`` beside this.)
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest

RECORDINGS = Path(
    os.environ.get("STREAMWRAP_RECORDINGS", Path(__file__).resolve().parents[3] / "shared" / "recordings")
)
MISSING = f"recordings folder not found at {RECORDINGS}"

# The wire formats streamwrap decodes, by the name of the provider package of its mapper.
OPENAI = (
    "openai"  # chat.completions SSE: _providers/openai/_wire (openai_chat, zhipuai_chat, litellm's openai/)
)
DASHSCOPE = "dashscope"  # DashScope native text-generation SSE: _providers/dashscope/_wire
GEMINI = "gemini"  # Gemini streamGenerateContent?alt=sse: _providers/gemini/_wire
OLLAMA = "ollama"  # Ollama /api/chat NDJSON: _providers/ollama/_wire
ANTHROPIC = "anthropic"  # Anthropic Messages API SSE: _providers/anthropic/_wire
OPENAI_RESPONSES = "openai_responses"  # OpenAI /v1/responses SSE: _providers/openai/_responses_wire
BEDROCK = "bedrock"  # Bedrock ConverseStream eventstream: _providers/bedrock/_wire
# Bedrock InvokeModelWithResponseStream (Anthropic events in eventstream chunks): _providers/bedrock/_invoke
BEDROCK_INVOKE = "bedrock_invoke"
# Vertex AI's streamGenerateContent?alt=sse: Gemini's wire (_providers/gemini/_wire), read by
# vertex_gemini_chat; a wire of its own here because its `expected` blocks have their own shape.
VERTEX = "vertex"

# provider folder → its wire; a mapping refines it by the recording's name prefix.
WIRES: Mapping[str, str | Mapping[str, str]] = {
    "openai": OPENAI,
    # Azure OpenAI's chat completions (deployment paths with api-version, and /openai/v1/):
    # the OpenAI wire, with a first chunk of `choices: []` + `prompt_filter_results` whose
    # id and model are empty, and `content_filter_results` on choices, which streamwrap
    # ignores. The deployment-style ones also replay through azure_openai_chat at their
    # recorded path (tests/providers/test_azure_openai.py); the /openai/v1/ ones through
    # openai_chat with that base_url (test_recordings.py).
    "azure": OPENAI,
    "deepseek": OPENAI,
    "groq": OPENAI,
    "openrouter": OPENAI,
    "zhipuai": OPENAI,
    "dashscope": {"compat_": OPENAI, "native_": DASHSCOPE},  # compatible mode / native protocol
    "gemini": GEMINI,
    "ollama": OLLAMA,
    "anthropic": ANTHROPIC,
    "openai_responses": OPENAI_RESPONSES,
    # (error_: a JSON error body before the stream, read by bedrock_chat's wrapper.)
    "bedrock": {"converse_": BEDROCK, "invoke_": BEDROCK_INVOKE, "error_": BEDROCK},
    "vertex": VERTEX,
}

# Providers recorded for wrappers that do not exist yet: what they speak.
NO_WRAPPER: Mapping[str, str] = {}


def wire_of(provider: str, name: str) -> str | None:
    """The wire streamwrap reads ``provider/name`` with; ``None`` if the provider has no
    wrapper yet. ``KeyError`` for a provider (or DashScope name) in neither table."""
    if provider in NO_WRAPPER:
        return None
    route = WIRES[provider]
    if isinstance(route, str):
        return route
    for prefix, wire in route.items():
        if name.startswith(prefix):
            return wire
    raise KeyError(f"{provider}/{name}: no name prefix of {sorted(route)} matches")


@dataclass(frozen=True)
class Recording:
    """One recorded response: its meta and where streamwrap's table routes it."""

    meta_path: Path
    meta: dict[str, Any] = field(repr=False)

    @property
    def provider(self) -> str:
        return str(self.meta["provider"])

    @property
    def name(self) -> str:
        return str(self.meta["name"])

    @property
    def id(self) -> str:
        return f"{self.provider}/{self.name}"

    @property
    def body_path(self) -> Path:
        return self.meta_path.parent / self.meta["body_file"]

    @property
    def body(self) -> bytes:
        return read(self.body_path)

    @property
    def status(self) -> int:
        return int(self.meta["response"]["status"])

    @property
    def expected(self) -> dict[str, Any]:
        return dict(self.meta["expected"])

    @property
    def routed(self) -> bool:
        """Whether the table knows this recording (its wire, or that it has no wrapper)."""
        try:
            wire_of(self.provider, self.name)
        except KeyError:
            return False
        return True

    @property
    def wire(self) -> str | None:
        """Its wire, or ``None`` (no wrapper yet, or not in the table)."""
        return wire_of(self.provider, self.name) if self.routed else None

    def content_type(self, default: str = "text/event-stream") -> str:
        return content_type(self.meta, default)


def content_type(meta: Mapping[str, Any], default: str = "text/event-stream") -> str:
    """The first recorded content type (recorded as a list, a string, or not at all)."""
    recorded = meta["response"].get("content_type")
    if isinstance(recorded, list):
        recorded = recorded[0] if recorded else None
    return str(recorded or default)


@cache
def read(path: Path) -> bytes:
    """The bytes of a recording's file, read once."""
    return path.read_bytes()


def body(meta_path: Path, meta: Mapping[str, Any]) -> bytes:
    """The body of the recording whose meta is ``meta`` (read from ``meta_path``)."""
    return read(meta_path.parent / meta["body_file"])


def load_meta(path: Path) -> dict[str, Any]:
    """The meta of a recording, from its ``.meta.json`` or from its body file's path."""
    if not path.name.endswith(".meta.json"):
        path = path.with_name(path.name.rsplit(".", 1)[0] + ".meta.json")
    meta: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return meta


def named(name: str) -> Recording:
    """The recording ``provider/name``; the test skips, saying so, without it."""
    meta_path = RECORDINGS / f"{name}.meta.json"
    if not meta_path.is_file():
        pytest.skip(MISSING if not RECORDINGS.is_dir() else f"recording {name} not found")
    return Recording(meta_path, load_meta(meta_path))


@cache
def everything() -> tuple[Recording, ...]:
    """Every recording in the folder (none if it is absent), sorted by provider and name."""
    if not RECORDINGS.is_dir():
        return ()
    return tuple(Recording(path, load_meta(path)) for path in sorted(RECORDINGS.glob("*/*.meta.json")))


def select(
    *,
    wire: str | None = None,
    provider: str | None = None,
    status: int | None = 200,
    body_suffix: str | None = None,
) -> list[Recording]:
    """The recordings of a wire (or a provider), with that status (``None``: any) and body
    file suffix. Providers with no wrapper have no wire: see :func:`without_wrapper`."""
    return [
        r
        for r in everything()
        if r.routed
        and (wire is None or r.wire == wire)
        and (provider is None or r.provider == provider)
        and (status is None or r.status == status)
        and (body_suffix is None or r.meta["body_file"].endswith(body_suffix))
    ]


def without_wrapper(*, status: int | None = 200) -> list[Recording]:
    """The recordings of providers in :data:`NO_WRAPPER`."""
    return [r for r in everything() if r.provider in NO_WRAPPER and (status is None or r.status == status)]


def no_wrapper_reason(recording: Recording) -> str:
    return f"{recording.provider}: streamwrap has no wrapper for {NO_WRAPPER[recording.provider]} yet"


def params(
    argnames: str,
    selected: Iterable[Recording],
    values: Callable[[Recording], Any] = lambda r: r,
    *,
    what: str,
    skipped: Iterable[Recording] = (),
) -> list[Any]:
    """``pytest.param`` s for ``@pytest.mark.parametrize(argnames, ...)``, one per recording,
    ``values(recording)`` giving the argument (a tuple for several ``argnames``).

    Never an empty list (pytest would skip with only "got empty parameter set"): without
    the folder, one case skipped with :data:`MISSING`; with it but nothing selected, one
    saying that no ``what`` recordings are there. ``skipped`` recordings (providers with no
    wrapper) become cases skipped with :func:`no_wrapper_reason`.
    """
    width = len([n for n in argnames.split(",") if n.strip()])
    out = [_param(values(r), width, id=r.id) for r in selected]
    out += [
        pytest.param(*_blank(width), marks=pytest.mark.skip(reason=no_wrapper_reason(r)), id=r.id)
        for r in skipped
    ]
    if out:
        return out
    reason = MISSING if not RECORDINGS.is_dir() else f"no {what} recordings in {RECORDINGS}"
    return [pytest.param(*_blank(width), marks=pytest.mark.skip(reason=reason), id="no-recordings")]


def _param(value: Any, width: int, *, id: str) -> Any:
    return pytest.param(*value, id=id) if width > 1 else pytest.param(value, id=id)


def _blank(width: int) -> Sequence[None]:
    return [None] * width
