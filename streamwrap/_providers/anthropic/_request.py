"""The Messages API request body of a call: OpenAI-style messages and tools in, Anthropic's
shape out (see the wrapper's docstring for the mapping)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..._block_request import ToolLoopTurns, stop_sequences
from ..._errors import InputError
from ..._wrapper import ChatRequest
from ._wire import THINKING_BLOCKS

__all__ = ["DEFAULT_MAX_TOKENS", "build_request_body", "thinking_option"]

#: ``max_tokens`` when the call gives none: the API requires it. 4096 is what Anthropic's
#: own examples and most peers (LiteLLM, chatlas, pydantic-ai) send.
DEFAULT_MAX_TOKENS = 4096

# OpenAI-style names of call arguments whose Anthropic name differs.
_NAMES: dict[str, str] = {
    "max_completion_tokens": "max_tokens",
    "stop": "stop_sequences",
}
_TOOL_CHOICES: dict[str, dict[str, Any]] = {
    "auto": {"type": "auto"},
    "none": {"type": "none"},
    "required": {"type": "any"},
    "any": {"type": "any"},
}
# Content block types of the API's own, passed through untouched (already Anthropic's form).
_NATIVE_BLOCKS = frozenset(
    (
        "image",
        "document",
        "search_result",
        "tool_use",
        "tool_result",
        "thinking",
        "redacted_thinking",
        "server_tool_use",
        "web_search_tool_result",
        "container_upload",
    )
)


def build_request_body(request: ChatRequest) -> dict[str, Any]:
    """The ``POST /v1/messages`` JSON body of a call."""
    system, messages = _BLOCKS.turns(request.messages)
    body: dict[str, Any] = {"model": request.model_name, "messages": messages}
    if system:
        body["system"] = system
    if request.tools:
        body["tools"] = [_tool(t["function"]) for t in request.tools]
    extra_body: dict[str, Any] = {}
    for key, value in request.params.items():
        if value is None:
            continue  # "use the provider's default"
        if key == "extra_body":
            if not isinstance(value, Mapping):
                raise InputError(f"'extra_body' must be a dict, got {type(value).__name__}")
            extra_body.update(value)
        elif key == "tool_choice":
            body["tool_choice"] = _tool_choice(value)
        elif key == "stop":
            body["stop_sequences"] = stop_sequences(value)
        elif key == "thinking":
            body["thinking"] = thinking_option(value)
        else:
            body[_NAMES.get(key, key)] = value
    if "max_tokens" not in body:
        # The thinking budget is part of max_tokens, which must exceed it.
        budget = (body.get("thinking") or {}).get("budget_tokens")
        body["max_tokens"] = DEFAULT_MAX_TOKENS + (budget if isinstance(budget, int) else 0)
    if request.stream:
        body["stream"] = True
    body.update(extra_body)
    return body


def thinking_option(value: Any) -> Any:
    """``thinking``: the API's own object, or a token budget (an int) as a shorthand for
    ``{"type": "enabled", "budget_tokens": N}``; ``False`` turns it off."""
    if value is False:
        return {"type": "disabled"}
    if isinstance(value, int) and not isinstance(value, bool):
        return {"type": "enabled", "budget_tokens": value}
    if isinstance(value, Mapping):
        return dict(value)
    raise InputError(
        "'thinking' must be a token budget (an int), False, or the API's object such as "
        f"{{'type': 'enabled', 'budget_tokens': 2048}}, got {value!r}"
    )


def _tool(fn: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"name": fn["name"]}
    if fn.get("description"):
        out["description"] = fn["description"]
    out["input_schema"] = fn["parameters"]
    if "cache_control" in fn:
        out["cache_control"] = fn["cache_control"]
    return out


def _tool_choice(choice: Any) -> dict[str, Any]:
    if isinstance(choice, str) and choice in _TOOL_CHOICES:
        return dict(_TOOL_CHOICES[choice])
    if isinstance(choice, Mapping):
        if choice.get("type") in ("auto", "any", "none", "tool"):
            return dict(choice)  # already Anthropic's form
        fn = choice.get("function")
        name = fn.get("name") if isinstance(fn, Mapping) else None
        if isinstance(name, str) and name:
            return {"type": "tool", "name": name}
    raise InputError(
        f"tool_choice must be 'auto', 'none', 'required' or {{'type': 'function', 'function': "
        f"{{'name': ...}}}}, got {choice!r}"
    )


# -- messages ---------------------------------------------------------------------------


class _Blocks(ToolLoopTurns):
    """The Messages API's blocks (the walk is shared: see ``streamwrap._block_request``)."""

    model_type = "anthropic_chat"
    hint = "(use 'text', 'image_url', or an Anthropic block such as {'type': 'image', ...})"
    thinking_key = THINKING_BLOCKS

    def text(self, text: str, part: Mapping[str, Any] | None) -> dict[str, Any]:
        block = {"type": "text", "text": text}
        if part is not None and "cache_control" in part:
            block["cache_control"] = part["cache_control"]
        return block

    def image(self, image: Any, i: int, j: int) -> dict[str, Any]:
        url = image.get("url") if isinstance(image, Mapping) else image
        if isinstance(url, str) and url.startswith("data:") and ";base64," in url:
            mime, _, data = url[5:].partition(";base64,")
            return {"type": "image", "source": {"type": "base64", "media_type": mime, "data": data}}
        if isinstance(url, str) and url.startswith(("https://", "http://")):
            return {"type": "image", "source": {"type": "url", "url": url}}
        raise InputError(
            f"messages[{i}].content[{j}]: an image must be a 'data:<mime>;base64,...' or an http(s) URL"
        )

    def is_native(self, part: Mapping[str, Any]) -> bool:
        return part.get("type") in _NATIVE_BLOCKS

    def tool_result(self, call_id: str, content: Any, is_error: bool, i: int, role: str) -> dict[str, Any]:
        result: dict[str, Any] = {"type": "tool_result", "tool_use_id": call_id}
        if content is not None and content != "":
            result["content"] = content if isinstance(content, str) else self.blocks(content, i, role)
        if is_error:
            result["is_error"] = True
        return result

    def tool_use(self, call_id: str, name: str, arguments: Any) -> dict[str, Any]:
        return {"type": "tool_use", "id": call_id, "name": name, "input": arguments}

    def thinking(self, block: Mapping[str, Any], i: int) -> dict[str, Any]:
        return dict(block)  # the API's own thinking blocks, signature and all


_BLOCKS = _Blocks()
