"""``dashscope_chat``: Alibaba Cloud Model Studio (DashScope, Qwen models) over its native protocol.

The ``dashscope`` SDK parses every SSE frame into response objects and exposes no raw body,
so streamwrap sends the same request the SDK's ``Generation.call`` sends (endpoint, headers,
``{"model", "input", "parameters"}`` body) with httpx, and decodes the bytes itself
(:mod:`._wire`). For DashScope's OpenAI-compatible mode
(``.../compatible-mode/v1``) use ``openai_chat`` with that ``base_url`` instead.

Endpoints: ``https://dashscope.aliyuncs.com/api/v1`` (mainland China, the default) and
``https://dashscope-intl.aliyuncs.com/api/v1`` (international, Singapore); like the SDK,
``DASHSCOPE_HTTP_BASE_URL`` overrides the default, and ``base_url`` overrides both.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, ClassVar

from ..._errors import InputError, ProviderHTTPError
from ..._secret import scrub
from ..._transport._httpx_client import make_httpx_client, post_json
from ..._wrapper import ChatRequest, ModelWrapper, Upstream
from ._wire import DashScopeStreamMapper, error_from_sse_body, generation_deltas

__all__ = ["DashScopeChatWrapper"]

DEFAULT_BASE_URL = "https://dashscope.aliyuncs.com/api/v1"
INTL_BASE_URL = "https://dashscope-intl.aliyuncs.com/api/v1"
_GENERATION_PATH = "/services/aigc/text-generation/generation"

# OpenAI-style names that DashScope spells differently. Everything else in generate_args
# (temperature, top_p, top_k, seed, stop, max_tokens, presence_penalty, repetition_penalty,
# enable_thinking, thinking_budget, enable_search, tool_choice, parallel_tool_calls,
# response_format, n, result_format, incremental_output, ...) goes into `parameters` as is.
_RENAMED = {"max_completion_tokens": "max_tokens"}
# OpenAI-only options with no meaning on the native endpoint.
_DROPPED = frozenset(("stream_options",))


class DashScopeChatWrapper(ModelWrapper):
    """Qwen and the other DashScope text-generation models, natively.

    Streams ask for ``incremental_output=true`` (the native protocol otherwise repeats the
    whole text in every frame); a caller who sets ``incremental_output: false`` still gets
    each piece once. Without ``api_key`` it reads ``DASHSCOPE_API_KEY``.
    """

    model_type: ClassVar[str] = "dashscope_chat"
    provider: ClassVar[str] = "dashscope"
    gen_ai_provider_name: ClassVar[str] = "dashscope"
    extra: ClassVar[str] = "dashscope"
    api_key_env: ClassVar[tuple[str, ...]] = ("DASHSCOPE_API_KEY",)
    # The SDK's own variable for the HTTP base URL (dashscope.common.env).
    base_url_env: ClassVar[tuple[str, ...]] = ("DASHSCOPE_HTTP_BASE_URL",)

    def _make_client(self) -> Any:
        headers: dict[str, str] = {}
        # The SDK asks for content inspection only when this variable is "false".
        if os.environ.get("DASHSCOPE_DISABLE_DATA_INSPECTION", "true").lower() == "false":
            headers["X-DashScope-DataInspection"] = "enable"
        return make_httpx_client(
            extra=self.extra,
            timeout=self.timeout,
            headers=headers,
            client_args=self.client_args,
            secret=self._api_key,  # sent as "authorization: Bearer <key>"
        )

    def _server_url(self) -> str:
        return self.base_url or DEFAULT_BASE_URL

    def _url(self) -> str:
        return (self.base_url or DEFAULT_BASE_URL).rstrip("/") + _GENERATION_PATH

    def _body(self, request: ChatRequest) -> dict[str, Any]:
        params: dict[str, Any] = {"result_format": "message"}
        if request.stream:
            params["incremental_output"] = True
        for key, value in request.params.items():
            if key in _DROPPED:
                continue
            if key == "extra_body":
                if not isinstance(value, Mapping):
                    raise InputError(f"'extra_body' must be a dict, got {type(value).__name__}")
                params.update(value)  # an OpenAI-ism: its keys are DashScope parameters here
                continue
            target = _RENAMED.get(key, key)
            if target != key and target in request.params:
                continue  # the DashScope name, given too, wins
            params[target] = value
        if request.tools:
            params["tools"] = request.tools
        return {"model": request.model_name, "input": {"messages": request.messages}, "parameters": params}

    async def _open(self, request: ChatRequest) -> Upstream:
        body = self._body(request)
        incremental = body["parameters"].get("incremental_output") is not False
        if request.stream:
            headers = {"Accept": "text/event-stream", "X-DashScope-SSE": "enable", "X-Accel-Buffering": "no"}
        else:
            headers = {"Accept": "application/json"}
        try:
            return await post_json(
                self._client(),
                self._url(),
                body,
                provider=self.provider,
                secret=self._api_key,
                stream=request.stream,
                mapper=lambda: DashScopeStreamMapper(self.provider, incremental=incremental),
                complete=lambda obj: generation_deltas(obj, self.provider),
                headers=headers,
            )
        except ProviderHTTPError as exc:
            raise self._sse_http_error(exc) from None

    def _sse_http_error(self, exc: ProviderHTTPError) -> ProviderHTTPError:
        """A failed streaming request gets its error as an SSE ``event:error`` frame, not
        JSON: take the ``{"code", "message", "request_id"}`` object out of it."""
        if not isinstance(exc.body, str):
            return exc
        obj = error_from_sse_body(exc.body)
        if obj is None:
            return exc
        obj = scrub(obj, self._api_key)
        message = obj.get("message") or obj.get("code") or exc.message
        return type(exc)(
            str(message),
            provider=exc.provider,
            status_code=exc.status_code,
            body=obj,
            retry_after=exc.retry_after,
        )
