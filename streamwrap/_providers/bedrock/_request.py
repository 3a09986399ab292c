"""The ConverseStream (and Converse) request body of a call: OpenAI-style messages and
tools in, Converse's shape out (see the wrapper's docstring for the mapping)."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from ..._errors import InputError
from ..._tools import sent_call_arguments
from ..._wrapper import ChatRequest
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
    system, messages = _messages(request.messages)
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
            inference["stopSequences"] = _stop_sequences(value)
        elif key == "tool_choice":
            tool_choice = _tool_choice(value)
        elif key == "thinking":
            fields["thinking"] = _thinking(value)
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


def _stop_sequences(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(s, str) for s in value):
        return list(value)
    raise InputError(f"'stop' must be a string or a list of strings, got {value!r}")


def _thinking(value: Any) -> Any:
    """``thinking`` (Claude's, in ``additionalModelRequestFields``): the API's object, or a
    token budget as a shorthand for ``{"type": "enabled", "budget_tokens": N}``."""
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


def _messages(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(system blocks, messages)`` of OpenAI-style messages."""
    system: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        role = message["role"]
        content = message.get("content")
        if role in ("system", "developer"):
            system.extend(_blocks(content, i, role))
        elif role == "user":
            _append(out, "user", _blocks(content, i, role))
        elif role == "assistant":
            _append(out, "assistant", _assistant_blocks(message, i))
        else:  # "tool", or the legacy "function"
            result_id = message.get("tool_call_id")
            if not isinstance(result_id, str) or not result_id:
                raise InputError(
                    f"messages[{i}] ({role}): a tool result needs the 'tool_call_id' of the call it answers"
                )
            result: dict[str, Any] = {"toolUseId": result_id, "content": _blocks(content, i, role)}
            if message.get("is_error"):
                result["status"] = "error"
            _append(out, "user", [{"toolResult": result}])
    return system, out


def _append(out: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    if not blocks:
        return  # the API rejects a turn without content
    if out and out[-1]["role"] == role:
        # One turn per role change: the results of parallel calls share one user turn.
        out[-1]["content"].extend(blocks)
    else:
        out.append({"role": role, "content": blocks})


def _blocks(content: Any, i: int, role: str) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for j, item in enumerate(content):
        if isinstance(item, str):
            if item:
                blocks.append({"text": item})
            continue
        if not isinstance(item, Mapping):
            raise InputError(
                f"messages[{i}].content[{j}] must be a dict or a string, got {type(item).__name__}"
            )
        kind = item.get("type")
        if kind == "text":
            if item.get("text"):
                blocks.append({"text": str(item["text"])})
        elif kind == "image_url":
            blocks.append(_image(item.get("image_url"), i, j))
        elif kind is None and len(item) == 1 and next(iter(item)) in _NATIVE_BLOCKS:
            blocks.append(dict(item))
        else:
            raise InputError(
                f"messages[{i}].content[{j}] ({role}): content part {item!r:.80} is not supported by "
                "bedrock_chat (use 'text', 'image_url', or a Converse block such as {'image': {...}})"
            )
    return blocks


def _image(image: Any, i: int, j: int) -> dict[str, Any]:
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


def _assistant_blocks(message: Mapping[str, Any], i: int) -> list[dict[str, Any]]:
    """An assistant turn: its reasoning blocks first (a tool loop's turn must start with
    them), then its text, then its calls, each after the reasoning that came with it."""
    lead = _reasoning_blocks(message.get(THINKING_BLOCKS), i)
    calls = [_call(call, i) for call in message.get("tool_calls") or ()]
    if not lead and calls:
        lead, calls[0] = calls[0][0], ([], calls[0][1])
    blocks = list(lead)
    content = message.get("content")
    if content:
        blocks.extend(_blocks(content, i, "assistant"))
    for reasoning, tool_use in calls:
        blocks.extend(reasoning)
        blocks.append(tool_use)
    return blocks


def _reasoning_blocks(value: Any, i: int) -> list[dict[str, Any]]:
    """Converse's ``reasoningContent`` blocks of the thinking blocks a response handed out
    (``anthropic_chat``'s shape: see ``_wire``)."""
    if not value:
        return []
    if not isinstance(value, list) or not all(isinstance(b, Mapping) for b in value):
        raise InputError(f"messages[{i}]: 'thinking_blocks' must be a list of thinking blocks")
    out: list[dict[str, Any]] = []
    for block in value:
        kind = block.get("type")
        if kind == "thinking":
            text: dict[str, Any] = {"text": block.get("thinking") or ""}
            if block.get("signature"):
                text["signature"] = block["signature"]
            out.append({"reasoningContent": {"reasoningText": text}})
        elif kind == "redacted_thinking":
            out.append({"reasoningContent": {"redactedContent": block.get("data") or ""}})
        elif "reasoningContent" in block:
            out.append(dict(block))  # already Converse's form
        else:
            raise InputError(
                f"messages[{i}]: a thinking block of type {kind!r} is not one bedrock_chat sends"
            )
    return out


def _call(call: Any, i: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``(its reasoning blocks, its toolUse block)`` from an OpenAI-style tool call dict
    or a :class:`ToolCall`."""
    if isinstance(call, Mapping):
        fn = call.get("function") or {}
        if not isinstance(fn, Mapping):
            raise InputError(
                f"messages[{i}]: a tool call's 'function' must be a dict, got {type(fn).__name__}"
            )
        call_id, name, arguments, extra = (
            call.get("id"),
            fn.get("name"),
            fn.get("arguments"),
            call.get("extra"),
        )
    else:
        call_id = getattr(call, "id", None)
        name = getattr(call, "name", None)
        arguments = getattr(call, "arguments", None)
        extra = getattr(call, "extra", None)
    if not isinstance(name, str) or not name:
        raise InputError(f"messages[{i}]: a tool call has no function name")
    if not isinstance(call_id, str) or not call_id:
        raise InputError(f"messages[{i}]: tool call {name!r} has no 'id' (its result must name it)")
    reasoning = _reasoning_blocks(extra.get(THINKING_BLOCKS), i) if isinstance(extra, Mapping) else []
    return reasoning, {
        "toolUse": {"toolUseId": call_id, "name": name, "input": sent_call_arguments(arguments, name, i)}
    }
