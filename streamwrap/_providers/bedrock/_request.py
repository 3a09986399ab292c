"""The ConverseStream (and Converse) request body of a call: OpenAI-style messages and
tools in, Converse's shape out (see the wrapper's docstring for the mapping)."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from ..._block_request import ToolLoopTurns, stop_sequences
from ..._errors import InputError
from ..._wrapper import ChatRequest
from ..anthropic._request import thinking_option
from ._wire import THINKING_BLOCKS

__all__ = ["DEFAULT_THINKING_MAX_TOKENS", "build_converse_body"]

#: ``maxTokens`` sent with a thinking budget when the call gives none: Claude requires
#: ``max_tokens`` above the budget, so 4096 (``anthropic_chat``'s default) plus the budget.
DEFAULT_THINKING_MAX_TOKENS = 4096

# OpenAI-style call arguments that are Converse's inferenceConfig, by their Converse name.
_INFERENCE: dict[str, str] = {
    "max_tokens": "maxTokens",
    "max_completion_tokens": "maxTokens",
    "temperature": "temperature",
    "top_p": "topP",
}
_TOOL_CHOICES: dict[str, dict[str, Any]] = {
    "auto": {"auto": {}},
    "required": {"any": {}},
    "any": {"any": {}},
}
# Converse's own content block kinds (a block is an object with one of these keys),
# passed through untouched.
_NATIVE_BLOCKS = frozenset(
    (
        "text",
        "image",
        "document",
        "video",
        "toolUse",
        "toolResult",
        "reasoningContent",
        "cachePoint",
        "guardContent",
        "citationsContent",
    )
)
_IMAGE_FORMATS = frozenset(("png", "jpeg", "gif", "webp"))


def build_converse_body(request: ChatRequest) -> dict[str, Any]:
    """The ``POST /model/{modelId}/converse-stream`` JSON body of a call."""
    system, messages = _BLOCKS.turns(request.messages)
    body: dict[str, Any] = {"messages": messages}
    if system:
        body["system"] = system
    inference: dict[str, Any] = {}
    fields: dict[str, Any] = {}
    extra_body: dict[str, Any] = {}
    tool_choice: dict[str, Any] | None = None
    for key, value in request.params.items():
        if value is None:
            continue  # "use the provider's default"
        if key in _INFERENCE:
            inference[_INFERENCE[key]] = value
        elif key == "stop":
            inference["stopSequences"] = stop_sequences(value)
        elif key == "tool_choice":
            tool_choice = _tool_choice(value)
        elif key == "thinking":
            fields["thinking"] = thinking_option(value)
        elif key == "top_k":
            fields["top_k"] = value  # (Anthropic's and most models' name, outside Converse's set)
        elif key == "additionalModelRequestFields":
            fields.update(_mapping(value, key))
        elif key == "inferenceConfig":
            inference.update(_mapping(value, key))
        elif key == "extra_body":
            extra_body.update(_mapping(value, key))
        else:
            body[key] = value  # Converse's own names (guardrailConfig, requestMetadata, ...)
    budget = (fields.get("thinking") or {}).get("budget_tokens")
    if isinstance(budget, int) and "maxTokens" not in inference:
        inference["maxTokens"] = DEFAULT_THINKING_MAX_TOKENS + budget
    if inference:
        body["inferenceConfig"] = inference
    if fields:
        body["additionalModelRequestFields"] = fields
    if request.tools:
        config: dict[str, Any] = {"tools": [_tool(t["function"]) for t in request.tools]}
        if tool_choice:
            config["toolChoice"] = tool_choice
        body["toolConfig"] = config
    body.update(extra_body)
    return body


def _mapping(value: Any, key: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InputError(f"{key!r} must be a dict, got {type(value).__name__}")
    return value


def _tool(fn: Mapping[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": fn["name"]}
    if fn.get("description"):
        spec["description"] = fn["description"]
    spec["inputSchema"] = {"json": fn["parameters"]}
    return {"toolSpec": spec}


def _tool_choice(choice: Any) -> dict[str, Any] | None:
    if choice == "none":
        return None  # (Converse has no "none": the model is left to choose)
    if isinstance(choice, str) and choice in _TOOL_CHOICES:
        return dict(_TOOL_CHOICES[choice])
    if isinstance(choice, Mapping):
        if len(choice) == 1 and next(iter(choice)) in ("auto", "any", "tool"):
            return dict(choice)  # already Converse's form
        fn = choice.get("function")
        name = fn.get("name") if isinstance(fn, Mapping) else None
        if isinstance(name, str) and name:
            return {"tool": {"name": name}}
    raise InputError(
        f"tool_choice must be 'auto', 'none', 'required' or {{'type': 'function', 'function': "
        f"{{'name': ...}}}}, got {choice!r}"
    )


# -- messages ---------------------------------------------------------------------------


class _Blocks(ToolLoopTurns):
    """Converse's blocks (the walk is shared: see ``streamwrap._block_request``)."""

    model_type = "bedrock_chat"
    hint = "(use 'text', 'image_url', or a Converse block such as {'image': {...}})"
    thinking_key = THINKING_BLOCKS

    def text(self, text: str, part: Mapping[str, Any] | None) -> dict[str, Any]:
        return {"text": text}

    def image(self, image: Any, i: int, j: int) -> dict[str, Any]:
        url = image.get("url") if isinstance(image, Mapping) else image
        if isinstance(url, str) and url.startswith("data:image/") and ";base64," in url:
            mime, _, data = url[5:].partition(";base64,")
            kind = mime.partition("/")[2].lower().replace("jpg", "jpeg")
            if kind in _IMAGE_FORMATS:
                try:
                    base64.b64decode(data, validate=True)
                except ValueError:
                    pass
                else:
                    # (Converse's JSON carries the image's bytes as base64 text.)
                    return {"image": {"format": kind, "source": {"bytes": data}}}
        raise InputError(
            f"messages[{i}].content[{j}]: an image for bedrock_chat must be a base64 "
            "'data:image/<png|jpeg|gif|webp>;base64,...' URL (Converse takes no http(s) image URLs)"
        )

    def is_native(self, part: Mapping[str, Any]) -> bool:
        # A Converse block is an object with one key, its kind.
        return "type" not in part and len(part) == 1 and next(iter(part)) in _NATIVE_BLOCKS

    def tool_result(self, call_id: str, content: Any, is_error: bool, i: int, role: str) -> dict[str, Any]:
        result: dict[str, Any] = {"toolUseId": call_id, "content": self.blocks(content, i, role)}
        if is_error:
            result["status"] = "error"
        return {"toolResult": result}

    def tool_use(self, call_id: str, name: str, arguments: Any) -> dict[str, Any]:
        return {"toolUse": {"toolUseId": call_id, "name": name, "input": arguments}}

    def thinking(self, block: Mapping[str, Any], i: int) -> dict[str, Any]:
        """Converse's ``reasoningContent`` block of a thinking block a response handed out
        (``anthropic_chat``'s shape: see ``_wire``)."""
        kind = block.get("type")
        if kind == "thinking":
            text: dict[str, Any] = {"text": block.get("thinking") or ""}
            if block.get("signature"):
                text["signature"] = block["signature"]
            return {"reasoningContent": {"reasoningText": text}}
        if kind == "redacted_thinking":
            return {"reasoningContent": {"redactedContent": block.get("data") or ""}}
        if "reasoningContent" in block:
            return dict(block)  # already Converse's form
        raise InputError(f"messages[{i}]: a thinking block of type {kind!r} is not one bedrock_chat sends")


_BLOCKS = _Blocks()
