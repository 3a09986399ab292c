"""``model_type`` → wrapper class.

Built-in wrappers are named by import path and imported on first use, so ``import
streamwrap`` imports no provider module. Third-party wrappers register with
:func:`register_model_type` or through the ``streamwrap.model_types`` entry-point group.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._wrapper import ModelWrapper

__all__ = ["builtin_wrapper", "model_types", "register_model_type", "resolve_model_type"]

_BUILTIN: dict[str, str] = {
    "openai_chat": "streamwrap._providers.openai._wrapper:OpenAIChatWrapper",
    "openai_responses": "streamwrap._providers.openai._responses_wrapper:OpenAIResponsesWrapper",
    "dashscope_chat": "streamwrap._providers.dashscope._wrapper:DashScopeChatWrapper",
    "gemini_chat": "streamwrap._providers.gemini._wrapper:GeminiChatWrapper",
    "vertex_gemini_chat": "streamwrap._providers.vertex._wrapper:VertexGeminiChatWrapper",
    "anthropic_chat": "streamwrap._providers.anthropic._wrapper:AnthropicChatWrapper",
    "zhipuai_chat": "streamwrap._providers.openai._zhipuai:ZhipuAIChatWrapper",
    "azure_openai_chat": "streamwrap._providers.openai._azure:AzureOpenAIChatWrapper",
    "ollama_chat": "streamwrap._providers.ollama._wrapper:OllamaChatWrapper",
    "litellm_chat": "streamwrap._providers.litellm._wrapper:LiteLLMChatWrapper",
    "local_chat": "streamwrap._providers.llamacpp._wrapper:LocalChatWrapper",
    "bedrock_chat": "streamwrap._providers.bedrock._wrapper:BedrockChatWrapper",
}
_ENTRY_POINT_GROUP = "streamwrap.model_types"

_registered: dict[str, type[ModelWrapper] | str] = dict(_BUILTIN)
_entry_points_loaded = False


def register_model_type(model_type: str, wrapper: type[ModelWrapper] | str) -> None:
    """Make ``model_type`` usable in config dicts: a wrapper class, or its
    ``"package.module:ClassName"`` path (imported on first use)."""
    if not isinstance(model_type, str) or not model_type:
        raise ValueError("model_type must be a non-empty string")
    _registered[model_type] = wrapper


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    # Imported here: importlib.metadata costs ~25 ms, and most programs never need it.
    from importlib.metadata import entry_points

    for ep in entry_points(group=_ENTRY_POINT_GROUP):
        _registered.setdefault(ep.name, ep.value)


def model_types() -> tuple[str, ...]:
    """Every known ``model_type``, sorted."""
    _load_entry_points()
    return tuple(sorted(_registered))


def builtin_wrapper(class_name: str) -> type[ModelWrapper] | None:
    """The built-in wrapper class called ``class_name`` (its module imported now), or
    ``None``: how ``streamwrap.OpenAIChatWrapper`` and the others are found on first use.

    By class name from the built-in table, not through the registry: a model type
    registered over a built-in one does not change what ``streamwrap.<ClassName>`` is.
    """
    for target in _BUILTIN.values():
        module_name, _, attr = target.partition(":")
        if attr == class_name:
            cls: type[ModelWrapper] = getattr(importlib.import_module(module_name), attr)
            return cls
    return None


def resolve_model_type(model_type: str) -> type[ModelWrapper]:
    """The wrapper class for ``model_type``; ``KeyError`` if unknown."""
    target = _registered.get(model_type)
    if target is None:
        _load_entry_points()
        target = _registered[model_type]
    if isinstance(target, str):
        module_name, _, attr = target.partition(":")
        cls: type[ModelWrapper] = getattr(importlib.import_module(module_name), attr)
        _registered[model_type] = cls
        return cls
    return target
