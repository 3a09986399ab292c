"""The request of ``openai_responses``: the chat wrappers' OpenAI-style messages and tools
in the Responses API's shapes.

Messages become ``input`` items: ``system``/``developer``/``user``/``assistant`` text stays
a message of that role (content parts as ``input_text``/``input_image``; an assistant's as
``output_text``), an assistant's ``tool_calls`` become ``function_call`` items (their id is
the ``call_id``), and ``role: tool`` results become ``function_call_output`` items (a call
whose ``extra`` carries reasoning items, encrypted, sends them first). Tools become
the flat ``{"type": "function", "name", "description", "parameters"}`` shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from ..._errors import InputError
from ._responses_wire import REASONING_ITEMS

__all__ = ["HOSTED_TOOL_TYPES", "function_tools", "input_items", "responses_params"]

# The chat APIs' names for what the Responses API calls otherwise, when given alone.
_RENAMED = {"max_tokens": "max_output_tokens", "max_completion_tokens": "max_output_tokens"}

_ROLES = ("system", "developer", "user", "assistant")


def input_items(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``input`` items of OpenAI-style chat messages."""
    items: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        role = message.get("role")
        if role in ("tool", "function"):
            items.append(_result_item(message, i))
        elif role in _ROLES:
            content = message.get("content")
            if content or role != "assistant":
                items.append({"role": role, "content": _content(content, role, i)})
            if role == "assistant":
                for call in message.get("tool_calls") or ():
                    items.extend(_call_items(call, i))
        else:
            raise InputError(f"messages[{i}]: role {role!r} is not supported by openai_responses")
    return items


HOSTED_TOOL_TYPES = frozenset(
    (
        "web_search",
        "web_search_preview",
        "file_search",
        "code_interpreter",
        "image_generation",
        "computer_use_preview",
        "mcp",
        "local_shell",
    )
)
"""The Responses API's built-in tools: OpenAI runs them, and they pass through as given."""


def function_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tools in the chat shape (``{"type": "function", "function": {...}}``, as
    ``normalize_tools`` gives them) in the Responses API's flat shape; built-in tools
    (``{"type": "web_search"}``, ...) as they are."""
    return [
        {"type": "function", **tool["function"]} if tool["type"] == "function" else tool for tool in tools
    ]


def responses_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The call's parameters with the chat APIs' names and shapes in the Responses API's:
    ``max_tokens``/``max_completion_tokens`` → ``max_output_tokens``, ``reasoning_effort`` →
    ``reasoning.effort``, ``response_format`` → ``text.format``, a ``tool_choice`` naming a
    function → the flat ``{"type": "function", "name"}``. Given in the Responses shape, a
    parameter wins over its chat counterpart; everything else is kept as it is."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        renamed = _RENAMED.get(key)
        if renamed is None:
            out[key] = value
        elif renamed not in params:
            out[renamed] = value
    effort = out.pop("reasoning_effort", None)
    if effort is not None:
        reasoning = out.get("reasoning")
        out["reasoning"] = {"effort": effort, **(reasoning if isinstance(reasoning, Mapping) else {})}
    response_format = out.pop("response_format", None)
    if response_format is not None:
        text = out.get("text")
        out["text"] = {"format": _text_format(response_format), **(text if isinstance(text, Mapping) else {})}
    choice = out.get("tool_choice")
    if isinstance(choice, Mapping) and isinstance(choice.get("function"), Mapping):
        out["tool_choice"] = {"type": "function", "name": choice["function"].get("name")}
    return out


def _text_format(response_format: Any) -> Any:
    """Chat's ``response_format`` as the Responses API's ``text.format``: a ``json_schema``
    one has its ``json_schema`` members (name, schema, strict) at the top level."""
    if isinstance(response_format, Mapping) and isinstance(response_format.get("json_schema"), Mapping):
        return {"type": "json_schema", **response_format["json_schema"]}
    return response_format


def _content(content: Any, role: str, i: int) -> str | list[dict[str, Any]]:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    text_type = "output_text" if role == "assistant" else "input_text"
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        if isinstance(part, str):
            parts.append({"type": text_type, "text": part})
            continue
        if not isinstance(part, Mapping):
            raise InputError(
                f"messages[{i}].content[{j}] must be a dict or a string, got {type(part).__name__}"
            )
        kind = part.get("type")
        if kind == "text":
            parts.append({"type": text_type, "text": str(part.get("text", ""))})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, Mapping) else image
            if not isinstance(url, str):
                raise InputError(f"messages[{i}].content[{j}]: 'image_url' needs a URL")
            image_part: dict[str, Any] = {"type": "input_image", "image_url": url}
            detail = image.get("detail") if isinstance(image, Mapping) else None
            if detail:
                image_part["detail"] = detail
            parts.append(image_part)
        elif isinstance(kind, str):
            parts.append(dict(part))  # a Responses content part (input_file, input_text ...)
        else:
            raise InputError(f"messages[{i}].content[{j}]: a content part needs a 'type'")
    return parts


def _call_items(call: Any, i: int) -> list[dict[str, Any]]:
    """A ``function_call`` item from an OpenAI-style tool call dict or a ``ToolCall``,
    after the reasoning items its ``extra`` carries (see ``_responses_wire``)."""
    extra = call.get("extra") if isinstance(call, Mapping) else getattr(call, "extra", None)
    carried = extra.get(REASONING_ITEMS) if isinstance(extra, Mapping) else None
    items: list[dict[str, Any]] = []
    if isinstance(carried, str):
        try:
            reasoning = orjson.loads(carried)
        except orjson.JSONDecodeError:
            reasoning = None
        if not isinstance(reasoning, list) or not all(isinstance(item, dict) for item in reasoning):
            raise InputError(f"messages[{i}]: a tool call's {REASONING_ITEMS!r} must be a JSON list of items")
        items.extend(reasoning)
    items.append(_call_item(call, i))
    return items


def _call_item(call: Any, i: int) -> dict[str, Any]:
    if isinstance(call, Mapping):
        fn = call.get("function") or {}
        if not isinstance(fn, Mapping):
            raise InputError(
                f"messages[{i}]: a tool call's 'function' must be a dict, got {type(fn).__name__}"
            )
        call_id, name, arguments = call.get("id"), fn.get("name"), fn.get("arguments")
    else:
        call_id, name, arguments = (
            getattr(call, "id", None),
            getattr(call, "name", None),
            getattr(call, "arguments", None),
        )
    if not isinstance(name, str) or not name:
        raise InputError(f"messages[{i}]: a tool call has no function name")
    if not isinstance(call_id, str) or not call_id:
        raise InputError(f"messages[{i}]: tool call {name!r} has no id (the Responses API needs its call_id)")
    if arguments is None:
        arguments = "{}"
    elif not isinstance(arguments, str):
        arguments = orjson.dumps(arguments).decode()
    return {"type": "function_call", "call_id": call_id, "name": name, "arguments": arguments}


def _result_item(message: Mapping[str, Any], i: int) -> dict[str, Any]:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise InputError(
            f"messages[{i}] ({message.get('role')}): a tool result needs the 'tool_call_id' of the call it answers"
        )
    content = message.get("content")
    if isinstance(content, list):
        content = "".join(
            p if isinstance(p, str) else str(p.get("text", ""))
            for p in content
            if isinstance(p, (str, Mapping))
        )
    if content is None:
        content = ""
    elif not isinstance(content, str):
        content = orjson.dumps(content, default=str).decode()
    return {"type": "function_call_output", "call_id": call_id, "output": content}
