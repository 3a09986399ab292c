"""The ONE table of the built-in model types as the tests point them at the emulator, and
:func:`make_model`, the config every test's model starts from.

A test that runs "for every wrapper" takes its rows from :data:`PROVIDERS` (or
:data:`ONE_PER_DIALECT`, one wrapper per wire format the emulator speaks), so that a new
provider is added here once, not in each test module. What a test changes (its own key,
model name, timeouts, retries) it passes to :func:`make_model` as arguments.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest

import streamwrap
from streamwrap.testing import Emulator

# The key a model gets unless the test passes its own (the conftest ``model`` fixture's).
KEY = "sk-test-secret-key-0123456789"


@dataclass(frozen=True)
class Provider:
    """One built-in ``model_type``, as the tests point it at the emulator."""

    model_type: str
    model_name: str
    #: what the wrapper's ``base_url`` adds to the emulator's root URL (the emulator's
    #: ``<dialect>_base_url``); ``None``: an in-process model, nothing to reach
    path: str | None
    #: the emulator dialect it speaks (``streamwrap.testing``), ``None`` if none
    dialect: str | None
    #: whether its smallest valid config holds an ``api_key`` (Ollama's is optional)
    needs_key: bool = True
    #: the optional dependency (an extra of the package) it needs, if any
    extra: str | None = None

    def base_url(self, root: str) -> str | None:
        """Its ``base_url`` on a server whose root URL is ``root``."""
        return None if self.path is None else root + self.path

    @property
    def installed(self) -> bool:
        """Whether its optional dependency is importable here."""
        return self.extra is None or _importable(self.extra)

    def param(self) -> Any:
        """A ``pytest.param`` of this row, skipped (saying why) where its dependency is missing."""
        marks = () if self.installed else (pytest.mark.skip(reason=f"{self.extra} is not installed here"),)
        return pytest.param(self, id=self.model_type, marks=marks)


PROVIDERS: Mapping[str, Provider] = {
    p.model_type: p
    for p in (
        Provider("openai_chat", "emulator-1", "/v1", "openai"),
        Provider("openai_responses", "gpt-5", "/v1", "openai_responses"),  # OpenAI's key and base URL
        Provider("zhipuai_chat", "glm-4.7", "/api/paas/v4", "openai"),  # GLM's own path layout
        # The resource endpoint: the SDK adds /openai/deployments/<model_name>/chat/completions.
        Provider("azure_openai_chat", "gpt-4o-mini", "", "azure"),
        Provider("dashscope_chat", "qwen-max", "/api/v1", "dashscope"),
        Provider("gemini_chat", "gemini-2.5-flash", "", "gemini"),
        # With only a key in the config: Vertex AI's express mode (its emulator path has no
        # project); Google Cloud credentials are tested in tests/providers/test_vertex.py.
        Provider("vertex_gemini_chat", "gemini-2.5-flash", "", "vertex"),
        Provider("ollama_chat", "llama3", "", "ollama", needs_key=False),
        Provider("anthropic_chat", "claude-sonnet-4-5", "", "anthropic"),
        Provider("litellm_chat", "openai/emulator-1", "/v1", "openai", extra="litellm"),
        Provider("local_chat", "smollm2", None, None, needs_key=False, extra="xllamacpp"),
        # An inference profile id (':' is URL-encoded into the path); the key is a Bedrock
        # API key, sent as a bearer token (tests/providers/test_bedrock.py signs with SigV4).
        Provider("bedrock_chat", "us.anthropic.claude-sonnet-4-20250514-v1:0", "", "bedrock"),
    )
}

# One wrapper per wire format the emulator speaks, the one written for it.
ONE_PER_DIALECT: tuple[Provider, ...] = tuple(
    PROVIDERS[t]
    for t in (
        "openai_chat",
        "azure_openai_chat",
        "openai_responses",
        "dashscope_chat",
        "gemini_chat",
        "vertex_gemini_chat",
        "ollama_chat",
        "anthropic_chat",
        "bedrock_chat",
    )
)

_DEFAULT: Any = object()


def config(
    where: Emulator | str,
    /,
    model_type: str | Provider = "openai_chat",
    *,
    api_key: str | None = _DEFAULT,
    base_url: str | None = _DEFAULT,
    **overrides: Any,
) -> dict[str, Any]:
    """The config of a streaming ``model_type`` without retries pointed at ``where`` (an
    emulator, or the root URL of a server), with the table's model name and :data:`KEY`.

    ``api_key`` and ``base_url`` replace the table's; ``None`` leaves the key out of the
    config. Every other keyword is a config key, added or replaced as given. A
    :class:`Provider` row not in the table (an out-of-tree provider's) works too.
    """
    provider = model_type if isinstance(model_type, Provider) else PROVIDERS[model_type]
    root = where.url if isinstance(where, Emulator) else where
    if api_key is _DEFAULT:
        api_key = KEY if provider.needs_key else None
    if base_url is _DEFAULT:
        base_url = provider.base_url(root)
    return {
        "model_type": provider.model_type,
        "model_name": provider.model_name,
        "stream": True,
        **({"base_url": base_url} if base_url is not None else {}),
        **({"api_key": api_key} if api_key is not None else {}),
        "max_retries": 0,
        **overrides,
    }


def make_model(where: Emulator | str, /, model_type: str | Provider = "openai_chat", **overrides: Any) -> Any:
    """``streamwrap.load_model(config(where, model_type, **overrides))``."""
    return streamwrap.load_model(config(where, model_type, **overrides))


def _importable(module: str) -> bool:
    # Imported, not only looked for: an installed LiteLLM fails to import beside openai 3.
    # (LiteLLM's bundled cost map, not its download from GitHub at import.)
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True
