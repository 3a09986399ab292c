"""LiteLLM itself: imported on first use, and kept to the one request streamwrap sends.

Nothing here reaches the network: LiteLLM is imported with
``LITELLM_LOCAL_MODEL_COST_MAP=True`` (it otherwise downloads its price list at import);
its HuggingFace tokenizer download (for counting tokens of streams that report no usage)
is switched off unless the application set it; and an Ollama model missing from LiteLLM's
cost map is added to it (see :func:`pin_server_model_info`), since LiteLLM would
otherwise ask an Ollama server for the model's details, up to four times a call, and not
the one at ``api_base``. Calls with tools get the keyword that bypasses LiteLLM's MCP
gateway check (see :func:`skip_mcp_kwargs`).
"""

from __future__ import annotations

import os
from typing import Any

from ..._errors import MissingDependencyError

__all__ = ["import_litellm", "pin_server_model_info", "server_model_info_route", "skip_mcp_kwargs"]

_litellm: Any = None
# Whether calls with tools must bypass LiteLLM's MCP-gateway check (see skip_mcp_kwargs).
_skip_mcp: bool | None = None
# LiteLLM routes for which LiteLLM asks a server for a model's details (Ollama's
# `POST /api/show`) when the model is not in its cost map.
_SERVER_MODEL_INFO_ROUTES = frozenset(("ollama", "ollama_chat"))
_pinned_models: set[str] = set()


def import_litellm() -> Any:
    """Import LiteLLM on first use (it takes seconds), never touching the network."""
    global _litellm
    if _litellm is None:
        # Must precede the import: otherwise `import litellm` fetches its model cost map
        # from GitHub (and, offline, retries for seconds before using its bundled copy).
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        import importlib

        try:
            litellm: Any = importlib.import_module("litellm")
        except ImportError:
            raise MissingDependencyError("litellm", "litellm") from None
        # A stream without usage makes LiteLLM count tokens itself, which for some model
        # names (llama-3, command-r, ...) downloads a tokenizer from HuggingFace. None is
        # LiteLLM's "not set"; an application's own choice is kept.
        if getattr(litellm, "disable_hf_tokenizer_download", False) is None:
            litellm.disable_hf_tokenizer_download = True
        # LiteLLM prints "Give Feedback / Get Help" banners to stdout on every exception,
        # which would mix into a streamed reply (`streamwrap chat` writes the reply there);
        # its errors reach the caller as streamwrap's typed errors anyway.
        litellm.suppress_debug_info = True
        _litellm = litellm
    return _litellm


def skip_mcp_kwargs() -> dict[str, Any]:
    """Keyword arguments that calls with ``tools`` need.

    LiteLLM versions with its MCP gateway (late 2025 on) import the gateway's module for
    every call that has tools, to look for MCP tools; that module needs the optional
    ``mcp`` package, so without it every call with tools fails ("No module named 'mcp'")
    though function tools never use the gateway. LiteLLM's own internal calls bypass the
    check with ``_skip_mcp_handler=True``. It is passed only where the gateway module
    exists and cannot be imported: versions without the gateway do not know the keyword
    and would forward it to the provider.
    """
    global _skip_mcp
    if _skip_mcp is None:
        import importlib

        try:
            importlib.import_module("litellm.responses.mcp.chat_completions_handler")
        except ImportError as exc:
            missing = getattr(exc, "name", None) or ""
            # A missing litellm module: a version without the gateway, nothing to skip.
            _skip_mcp = not missing.startswith("litellm")
        else:
            _skip_mcp = False
    return {"_skip_mcp_handler": True} if _skip_mcp else {}


def server_model_info_route(model: str) -> str | None:
    """The route (``ollama``, ``ollama_chat``) if LiteLLM looks ``model`` up on a server."""
    route = model.partition("/")[0]
    return route if route in _SERVER_MODEL_INFO_ROUTES else None


def pin_server_model_info(route: str, name: str) -> None:
    """Give an Ollama model an entry in LiteLLM's cost map, unless it has one.

    For an Ollama model LiteLLM does not know, LiteLLM looks the model up on an Ollama
    server (``POST /api/show``) to decide whether to bridge to its Responses API, to price
    the call and to log it: up to four synchronous requests per call, some on the event
    loop, sent to ``$OLLAMA_API_BASE`` or ``http://localhost:11434`` whatever ``api_base``
    says. The entry added is what LiteLLM itself uses when that lookup fails (a chat model
    at no cost), so only the requests change. ``litellm.register_model`` is not used:
    it performs the same lookup. Called with the model asked for, and again with the name
    the server answered with (LiteLLM prices the call under that one).
    """
    model = f"{route}/{name}"
    if model in _pinned_models:
        return
    _pinned_models.add(model)
    cost = getattr(_litellm, "model_cost", None)
    if not isinstance(cost, dict):
        return
    known = {key.lower() for key in cost if isinstance(key, str)}
    if any(n.lower() in known for n in (model, name, f"ollama/{name}", f"ollama_chat/{name}")):
        return
    cost[model] = {
        "litellm_provider": route,
        "mode": "chat",
        "input_cost_per_token": 0.0,
        "output_cost_per_token": 0.0,
    }
