"""``openai_responses``: OpenAI's Responses API (``POST /v1/responses``).

OpenAI's recommended API for its reasoning models: reasoning summaries, and reasoning
carried between turns (``previous_response_id``, or ``include=["reasoning.encrypted_content"]``
with ``store=False``), exist only there. As for ``openai_chat``, the official ``openai``
client builds, authenticates and sends the request (same key, endpoint, ``client_args`` and
client-building code: this wrapper is ``openai_chat`` with another resource), and
streamwrap decodes the response body itself (``_responses_wire``).

The chat messages and tools are sent as ``input`` items and function tools
(``_responses_input``). ``instructions``, ``reasoning`` (``{"effort", "summary"}``),
``store``, ``previous_response_id``, ``include``, ``max_output_tokens`` and the API's other
parameters pass through from ``generate_args`` or the call; the chat names
(``max_tokens``, ``reasoning_effort``, ``response_format``, a function ``tool_choice``) are
sent in the Responses API's shape. Parameters the installed SDK does not know go in the
request body. The response's ``provider_id`` is the id ``previous_response_id`` takes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from ..._errors import InputError
from ..._wrapper import ChatRequest, Upstream
from ._responses_input import HOSTED_TOOL_TYPES, function_tools, input_items, responses_params
from ._responses_wire import ResponsesStreamMapper, response_deltas
from ._wrapper import OpenAIChatWrapper

__all__ = ["OpenAIResponsesWrapper"]

_create_params: frozenset[str] | None = None


def _known_create_params(create: Any) -> frozenset[str]:
    """Parameters the installed SDK's ``responses.create()`` accepts; others go in ``extra_body``."""
    global _create_params
    if _create_params is None:
        import inspect

        _create_params = frozenset(inspect.signature(create).parameters)
    return _create_params


class OpenAIResponsesWrapper(OpenAIChatWrapper):
    """Streaming replies over OpenAI's Responses API.

    Without ``api_key`` it reads ``OPENAI_API_KEY``; ``base_url`` (or ``OPENAI_BASE_URL``)
    points it at another server that speaks the Responses API.
    """

    model_type: ClassVar[str] = "openai_responses"
    hosted_tool_types: ClassVar[frozenset[str]] = HOSTED_TOOL_TYPES

    def _prepare_here(self) -> None:
        # (Not the chat resources of openai_chat: the responses resource and its types.)
        super(OpenAIChatWrapper, self)._prepare_here()
        responses = self._client().responses
        _known_create_params(responses.create)
        responses.with_streaming_response  # noqa: B018 (built on first access)

    async def _open(self, request: ChatRequest) -> Upstream:
        client = self._client()
        known = _known_create_params(client.responses.create)
        extra = request.params.get("extra_body") or {}
        if not isinstance(extra, Mapping):
            raise InputError(f"'extra_body' must be a dict, got {type(extra).__name__}")
        extra_body: dict[str, Any] = dict(extra)
        kwargs: dict[str, Any] = {}
        for key, value in responses_params(request.params).items():
            if key == "extra_body":
                continue
            if key in known:
                kwargs[key] = value
            else:
                extra_body[key] = value
        if request.tools:
            kwargs["tools"] = function_tools(request.tools)
        if extra_body:
            kwargs["extra_body"] = extra_body
        context = client.responses.with_streaming_response.create(
            model=request.model_name, input=input_items(request.messages), stream=request.stream, **kwargs
        )
        return await self._upstream(context, request.stream, ResponsesStreamMapper, response_deltas)
