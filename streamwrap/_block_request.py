"""OpenAI-style messages as the turns of the APIs that take content blocks (Anthropic's
Messages, Bedrock's Converse, Gemini's contents), written once.

Each such API wants the same walk: system messages apart, one turn per change of role,
content parts (strings, ``text``, ``image_url``, the API's own blocks) as blocks, assistant
tool calls as blocks of the assistant turn, tool results as blocks of a user turn. Only the
shape of each block differs: a provider subclasses :class:`ContentBlocks` (or
:class:`ToolLoopTurns`) and names its shapes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from ._errors import InputError
from ._tools import sent_call

__all__ = ["ContentBlocks", "ToolLoopTurns", "append_turn", "stop_sequences"]

Block = dict[str, Any]


def append_turn(turns: list[Block], role: str, blocks: list[Block], key: str = "content") -> None:
    """Add ``blocks`` as a ``role`` turn, to the last turn if it has that role: one turn per
    role change (the results of parallel calls must share one user turn)."""
    if not blocks:
        return  # these APIs reject a turn without content
    if turns and turns[-1]["role"] == role:
        turns[-1][key].extend(blocks)
    else:
        turns.append({"role": role, key: blocks})


def stop_sequences(value: Any) -> list[str]:
    """The ``stop`` call argument (a string or a list of strings) as a list."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(s, str) for s in value):
        return list(value)
    raise InputError(f"'stop' must be a string or a list of strings, got {value!r}")


class ContentBlocks:
    """How one API writes the parts of a message's content."""

    #: the model type, for errors
    model_type: ClassVar[str]
    #: what to send instead of an unsupported part, for its error: "(use 'text', ...)"
    hint: ClassVar[str]

    def text(self, text: str, part: Mapping[str, Any] | None) -> Block:
        """A text block (``part``: the ``{"type": "text"}`` part it comes from, if any)."""
        raise NotImplementedError

    def image(self, image: Any, i: int, j: int) -> Block:
        """An image block of an ``image_url`` part's value (raise InputError if unusable)."""
        raise NotImplementedError

    def is_native(self, part: Mapping[str, Any]) -> bool:
        """Whether ``part`` is already one of the API's own blocks (sent untouched)."""
        raise NotImplementedError

    def blocks(self, content: Any, i: int, role: str) -> list[Block]:
        """The blocks of ``messages[i]``'s content (empty texts left out)."""
        if content is None:
            return []
        if isinstance(content, str):
            return [self.text(content, None)] if content else []
        blocks: list[Block] = []
        for j, item in enumerate(content):
            if isinstance(item, str):
                if item:
                    blocks.append(self.text(item, None))
                continue
            if not isinstance(item, Mapping):
                raise InputError(
                    f"messages[{i}].content[{j}] must be a dict or a string, got {type(item).__name__}"
                )
            kind = item.get("type")
            if kind == "text":
                if item.get("text"):
                    blocks.append(self.text(str(item["text"]), item))
            elif kind == "image_url":
                blocks.append(self.image(item.get("image_url"), i, j))
            elif self.is_native(item):
                blocks.append(dict(item))
            else:
                what = f"type {kind!r}" if kind is not None else f"{item!r:.80}"
                raise InputError(
                    f"messages[{i}].content[{j}] ({role}): content part {what} is not supported by "
                    f"{self.model_type} {self.hint}"
                )
        return blocks


class ToolLoopTurns(ContentBlocks):
    """An API whose assistant turns carry the model's thinking, text and tool uses as blocks
    and whose tool results are blocks of user turns (Anthropic's Messages, Bedrock's
    Converse). The thinking blocks a response handed out (``thinking_blocks`` of its
    assistant message, or ``extra`` of each tool call) must go back exactly."""

    #: where a response puts its thinking blocks (the assistant message, a call's ``extra``)
    thinking_key: ClassVar[str] = "thinking_blocks"

    def tool_result(self, call_id: str, content: Any, is_error: bool, i: int, role: str) -> Block:
        """The block answering tool call ``call_id``."""
        raise NotImplementedError

    def tool_use(self, call_id: str, name: str, arguments: Any) -> Block:
        """The block of a tool call sent back (``arguments``: the JSON object)."""
        raise NotImplementedError

    def thinking(self, block: Mapping[str, Any], i: int) -> Block:
        """The API's block for one thinking block a response handed out."""
        raise NotImplementedError

    def turns(self, messages: list[dict[str, Any]]) -> tuple[list[Block], list[Block]]:
        """``(system blocks, turns)`` of OpenAI-style messages."""
        system: list[Block] = []
        turns: list[Block] = []
        for i, message in enumerate(messages):
            role = message["role"]
            content = message.get("content")
            if role in ("system", "developer"):
                system.extend(self.blocks(content, i, role))
            elif role == "user":
                append_turn(turns, "user", self.blocks(content, i, role))
            elif role == "assistant":
                append_turn(turns, "assistant", self._assistant_blocks(message, i))
            else:  # "tool", or the legacy "function"
                result_id = message.get("tool_call_id")
                if not isinstance(result_id, str) or not result_id:
                    raise InputError(
                        f"messages[{i}] ({role}): a tool result needs the 'tool_call_id' of the call it answers"
                    )
                result = self.tool_result(result_id, content, bool(message.get("is_error")), i, role)
                append_turn(turns, "user", [result])
        return system, turns

    def _assistant_blocks(self, message: Mapping[str, Any], i: int) -> list[Block]:
        """Its thinking blocks first (the APIs require a tool loop's turn to start with
        them), then its text, then its calls, each after the thinking that came with it
        (interleaved thinking)."""
        lead = self._thinking_blocks(message.get(self.thinking_key), i)
        calls = [self._call(call, i) for call in message.get("tool_calls") or ()]
        if not lead and calls:
            lead, calls[0] = calls[0][0], ([], calls[0][1])
        blocks = list(lead)
        content = message.get("content")
        if content:
            blocks.extend(self.blocks(content, i, "assistant"))
        for thinking, tool_use in calls:
            blocks.extend(thinking)
            blocks.append(tool_use)
        return blocks

    def _thinking_blocks(self, value: Any, i: int) -> list[Block]:
        if not value:
            return []
        if not isinstance(value, list) or not all(isinstance(b, Mapping) for b in value):
            raise InputError(f"messages[{i}]: {self.thinking_key!r} must be a list of thinking blocks")
        return [self.thinking(block, i) for block in value]

    def _call(self, call: Any, i: int) -> tuple[list[Block], Block]:
        """``(its thinking blocks, its tool use block)``."""
        sent = sent_call(call, i)
        if sent.id is None:
            raise InputError(f"messages[{i}]: tool call {sent.name!r} has no 'id' (its result must name it)")
        extra = sent.extra
        thinking = self._thinking_blocks(extra.get(self.thinking_key), i) if extra is not None else []
        return thinking, self.tool_use(sent.id, sent.name, sent.arguments)
