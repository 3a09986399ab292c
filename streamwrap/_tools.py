"""Tool calls: the complete call a response reports, its assembly from streamed fragments,
and validation of the tool schemas a caller passes in."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from ._delta import ToolCallDelta
from ._errors import InputError, StreamwrapError

__all__ = [
    "SentCall",
    "ToolArgumentsError",
    "ToolCall",
    "ToolCallAssembler",
    "normalize_tools",
    "sent_call",
    "sent_call_arguments",
]


class ToolArgumentsError(StreamwrapError, ValueError):
    """A tool call's arguments are not a JSON object."""

    def __init__(self, name: str, arguments: str) -> None:
        self.name = name
        self.arguments = arguments
        super().__init__(f"arguments of tool call {name!r} are not a JSON object: {arguments[:200]!r}")


@dataclass(frozen=True)
class ToolCall:
    """A complete tool call: ``arguments`` is the JSON string as the model wrote it,
    :meth:`parsed_arguments` its parsed form. ``extra`` keeps provider data that must be
    sent back with the call (for example Gemini's thought signature)."""

    id: str
    name: str
    arguments: str
    index: int = 0
    type: str = "function"
    extra: Mapping[str, Any] | None = field(default=None, compare=False)

    def parsed_arguments(self) -> dict[str, Any]:
        """The arguments as a dict; ``{}`` for empty arguments.

        Raises :class:`ToolArgumentsError` when they are not a JSON object.
        """
        if not self.arguments.strip():
            return {}
        try:
            value = orjson.loads(self.arguments)
        except orjson.JSONDecodeError:
            raise ToolArgumentsError(self.name, self.arguments) from None
        if not isinstance(value, dict):
            raise ToolArgumentsError(self.name, self.arguments)
        return value

    def to_openai(self) -> dict[str, Any]:
        """The call in OpenAI's message format, to send back in the next request."""
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


class _Slot:
    __slots__ = ("extra", "id", "index", "name", "parts")

    def __init__(self, index: int) -> None:
        self.index = index
        self.id: str | None = None
        self.name: str | None = None
        self.parts: list[str] = []
        self.extra: dict[str, object] | None = None


class ToolCallAssembler:
    """Joins fragments into calls by ``index``.

    Parallel calls stay apart; ``id``/``name`` are taken from the first fragment that has
    them (later empty ids, as DashScope sends, are ignored). A fragment that brings a new
    non-empty id for an index whose call already has a different id starts a new call:
    some servers number every parallel call 0.
    """

    __slots__ = ("_calls", "_current")

    def __init__(self) -> None:
        self._calls: list[_Slot] = []
        self._current: dict[int, _Slot] = {}

    def add(self, delta: ToolCallDelta) -> None:
        slot = self._current.get(delta.index)
        if slot is None or (delta.id and slot.id and delta.id != slot.id):
            slot = _Slot(delta.index)
            self._calls.append(slot)
            self._current[delta.index] = slot
        if delta.id and not slot.id:
            slot.id = delta.id
        if delta.name and not slot.name:
            slot.name = delta.name
        if delta.arguments:
            slot.parts.append(delta.arguments)
        if delta.extra:
            slot.extra = {**(slot.extra or {}), **delta.extra}

    def __bool__(self) -> bool:
        return bool(self._calls)

    def calls(self) -> list[ToolCall]:
        return [
            ToolCall(
                id=slot.id or f"call_{n}",
                name=slot.name or "",
                arguments="".join(slot.parts),
                index=slot.index,
                extra=slot.extra,
            )
            for n, slot in enumerate(self._calls)
        ]


_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


def normalize_tools(
    tools: Sequence[Mapping[str, Any]] | None, hosted: frozenset[str] = frozenset()
) -> list[dict[str, Any]] | None:
    """Validate tool schemas and return them in OpenAI's ``{"type": "function", ...}`` form.

    Accepts that form, or the bare function schema ``{"name", "description", "parameters"}``.
    A tool whose ``type`` is in ``hosted`` (one the provider runs itself) is kept as given.
    """
    if tools is None:
        return None
    if isinstance(tools, (str, bytes, Mapping)) or not isinstance(tools, Sequence):
        raise InputError(f"tools must be a list of tool schemas, got {type(tools).__name__}")
    out: list[dict[str, Any]] = []
    names: dict[str, int] = {}
    for i, tool in enumerate(tools):
        if not isinstance(tool, Mapping):
            raise InputError(f"tools[{i}] must be a dict, got {type(tool).__name__}")
        kind = tool.get("type", "function")
        if kind in hosted:
            out.append(dict(tool))
            continue
        if kind != "function":
            hosted_ones = f" or a built-in tool ({', '.join(sorted(hosted))})" if hosted else ""
            raise InputError(f"tools[{i}]: only type 'function'{hosted_ones} is supported, got {kind!r}")
        fn = tool.get("function", tool)
        if not isinstance(fn, Mapping):
            raise InputError(f"tools[{i}]['function'] must be a dict, got {type(fn).__name__}")
        name = fn.get("name")
        if not isinstance(name, str) or not _NAME.fullmatch(name):  # (`$` alone lets a final newline in)
            raise InputError(
                f"tools[{i}]: 'name' must be 1-128 letters, digits, '_', '.', ':' or '-', got {name!r}"
            )
        if name in names:
            # The model answers with a name only: two tools of one name cannot be told apart.
            raise InputError(f"tools[{i}]: the name {name!r} is already used by tools[{names[name]}]")
        names[name] = i
        params = fn.get("parameters", {"type": "object", "properties": {}})
        if not isinstance(params, Mapping):
            raise InputError(f"tools[{i}] ({name}): 'parameters' must be a JSON schema dict")
        if params.get("type", "object") != "object":
            raise InputError(
                f"tools[{i}] ({name}): 'parameters' must describe an object, got type {params.get('type')!r}"
            )
        properties = params.get("properties", {})
        if not isinstance(properties, Mapping):
            raise InputError(
                f"tools[{i}] ({name}): 'parameters.properties' must be a dict of property schemas, "
                f"got {type(properties).__name__}"
            )
        required = params.get("required", [])
        if (
            isinstance(required, (str, bytes))
            or not isinstance(required, Sequence)
            or not all(isinstance(r, str) for r in required)
        ):
            raise InputError(f"tools[{i}] ({name}): 'parameters.required' must be a list of property names")
        desc = fn.get("description")
        if desc is not None and not isinstance(desc, str):
            raise InputError(f"tools[{i}] ({name}): 'description' must be a string")
        function: dict[str, Any] = {k: v for k, v in fn.items() if k != "type"}
        function["parameters"] = dict(params)
        out.append({"type": "function", "function": function})
    return out


def sent_call_arguments(arguments: Any, name: str, i: int) -> Any:
    """The arguments of a tool call in ``messages[i]`` (an assistant turn sent back) as a
    JSON object, for the APIs that take them as one rather than as JSON text (Gemini,
    Anthropic): a mapping, JSON text of an object, or nothing (``{}``)."""
    if isinstance(arguments, Mapping):
        return dict(arguments)
    if arguments is None or (isinstance(arguments, str) and not arguments.strip()):
        return {}
    if isinstance(arguments, str):
        try:
            value = orjson.loads(arguments)
        except orjson.JSONDecodeError:
            value = None
        if isinstance(value, dict):
            return value
    raise InputError(
        f"messages[{i}]: arguments of tool call {name!r} must be a JSON object, got {arguments!r}"
    )


class SentCall(NamedTuple):
    """A tool call of an assistant turn sent back, read from either form it may take."""

    id: str | None
    name: str
    arguments: Any  #: the JSON object (see sent_call_arguments)
    extra: Mapping[str, Any] | None


def sent_call(call: Any, i: int) -> SentCall:
    """A tool call in ``messages[i]``: an OpenAI-style dict (``{"id", "function": {"name",
    "arguments"}, "extra"}``) or a :class:`ToolCall` (``response.tool_calls``)."""
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
    return SentCall(
        call_id if isinstance(call_id, str) and call_id else None,
        name,
        sent_call_arguments(arguments, name, i),
        extra if isinstance(extra, Mapping) else None,
    )
