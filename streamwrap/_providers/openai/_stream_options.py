"""Asking an OpenAI-compatible endpoint for usage with ``stream_options.include_usage``.

OpenAI's servers send a streamed response's usage only when asked for it. Some compatible
servers reject the option (a 400 or 422 that mentions it): such an endpoint is asked once
more without it, and remembered, so that its later requests go without it from the start
(usage then falls back to a marked estimate). Used by ``openai_chat`` (and ``zhipuai_chat``,
which turns the asking off) and by ``litellm_chat``, whose providers speak OpenAI's format.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson

from ..._errors import ProviderHTTPError

__all__ = ["StreamUsageOption"]

T = TypeVar("T")


def _mentions_stream_options(body: Any) -> bool:
    # Only a rejection that is about stream_options is retried: any other 400 would fail
    # again, and must not make us stop asking this endpoint for usage.
    text = body if isinstance(body, str) else orjson.dumps(body, default=str).decode()
    return "stream_options" in text or "include_usage" in text


class StreamUsageOption:
    """The ``stream_options`` fallback of one wrapper class, with its memory of the
    endpoints that refused the option."""

    __slots__ = ("_refused",)

    def __init__(self) -> None:
        # Endpoints that refused `stream_options` once: asked without it from then on.
        self._refused: set[str] = set()

    async def send(
        self,
        send: Callable[[dict[str, Any]], Awaitable[T]],
        params: dict[str, Any],
        *,
        endpoint: str,
        ask: bool,
    ) -> T:
        """``send(params)``, with ``stream_options: {include_usage: true}`` added when
        ``ask`` (a streaming call that wants usage), unless ``params`` has its own
        ``stream_options`` or ``endpoint`` refused the option before. If the endpoint
        refuses it now, ``send`` is called once more without it (``params`` is then the
        same dict, the option removed)."""
        ask = ask and "stream_options" not in params and endpoint not in self._refused
        if ask:
            params["stream_options"] = {"include_usage": True}
        try:
            return await send(params)
        except ProviderHTTPError as exc:
            if not (ask and exc.status_code in (400, 422) and _mentions_stream_options(exc.body)):
                raise
        # Asked again outside the handler, so that a second failure does not carry the
        # first as its context.
        del params["stream_options"]
        result = await send(params)
        self._refused.add(endpoint)
        return result
