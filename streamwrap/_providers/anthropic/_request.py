"""The Messages API request body of a call: OpenAI-style messages and tools in, Anthropic's
shape out (see the wrapper's docstring for the mapping)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..._errors import InputError
from ..._tools import sent_call_arguments
from ..._wrapper import ChatRequest
from ._wire import THINKING_BLOCKS

__all__ = ["DEFAULT_MAX_TOKENS", "build_request_body"]

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
    system, messages = _messages(request.messages)
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
            body["stop_sequences"] = _stop_sequences(value)
        elif key == "thinking":
            body["thinking"] = _thinking(value)
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


def _stop_sequences(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(s, str) for s in value):
        return list(value)
    raise InputError(f"'stop' must be a string or a list of strings, got {value!r}")


def _thinking(value: Any) -> Any:
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
            result: dict[str, Any] = {"type": "tool_result", "tool_use_id": result_id}
            if content is not None and content != "":
                result["content"] = content if isinstance(content, str) else _blocks(content, i, role)
            if message.get("is_error"):
                result["is_error"] = True
            _append(out, "user", [result])
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
        return [{"type": "text", "text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for j, item in enumerate(content):
        if isinstance(item, str):
            if item:
                blocks.append({"type": "text", "text": item})
            continue
        if not isinstance(item, Mapping):
            raise InputError(
                f"messages[{i}].content[{j}] must be a dict or a string, got {type(item).__name__}"
            )
        kind = item.get("type")
        if kind == "text":
            if item.get("text"):
                block = {"type": "text", "text": str(item["text"])}
                if "cache_control" in item:
                    block["cache_control"] = item["cache_control"]
                blocks.append(block)
        elif kind == "image_url":
            blocks.append(_image(item.get("image_url"), i, j))
        elif kind in _NATIVE_BLOCKS:
            blocks.append(dict(item))
        else:
            raise InputError(
                f"messages[{i}].content[{j}] ({role}): content part type {kind!r} is not supported by "
                "anthropic_chat (use 'text', 'image_url', or an Anthropic block such as {'type': 'image', ...})"
            )
    return blocks


def _image(image: Any, i: int, j: int) -> dict[str, Any]:
    url = image.get("url") if isinstance(image, Mapping) else image
    if isinstance(url, str) and url.startswith("data:") and ";base64," in url:
        mime, _, data = url[5:].partition(";base64,")
        return {"type": "image", "source": {"type": "base64", "media_type": mime, "data": data}}
    if isinstance(url, str) and url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise InputError(
        f"messages[{i}].content[{j}]: an image must be a 'data:<mime>;base64,...' or an http(s) URL"
    )


def _assistant_blocks(message: Mapping[str, Any], i: int) -> list[dict[str, Any]]:
    """An assistant turn: its thinking blocks first (the API requires a tool loop's turn to
    start with them), then its text, then its calls, each after the thinking that came
    with it (interleaved thinking)."""
    lead = _thinking_blocks(message.get(THINKING_BLOCKS), i)
    calls = [_call(call, i) for call in message.get("tool_calls") or ()]
    if not lead and calls:
        lead, calls[0] = calls[0][0], ([], calls[0][1])
    blocks = list(lead)
    content = message.get("content")
    if content:
        blocks.extend(_blocks(content, i, "assistant"))
    for thinking, tool_use in calls:
        blocks.extend(thinking)
        blocks.append(tool_use)
    return blocks


def _thinking_blocks(value: Any, i: int) -> list[dict[str, Any]]:
    if not value:
        return []
    if not isinstance(value, list) or not all(isinstance(b, Mapping) for b in value):
        raise InputError(f"messages[{i}]: 'thinking_blocks' must be a list of the API's thinking blocks")
    return [dict(b) for b in value]


def _call(call: Any, i: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``(its thinking blocks, its tool_use block)`` from an OpenAI-style tool call dict or
    a :class:`ToolCall`."""
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
    thinking = _thinking_blocks(extra.get(THINKING_BLOCKS), i) if isinstance(extra, Mapping) else []
    return thinking, {
        "type": "tool_use",
        "id": call_id,
        "name": name,
        "input": sent_call_arguments(arguments, name, i),
    }
