"""``litellm_chat``: every provider LiteLLM speaks, through ``litellm.acompletion``.

``model_name`` is LiteLLM's model string and passes through unchanged (``openai/gpt-4o``,
``ollama_chat/llama3``, ``dashscope/qwen-max``, ...); ``base_url`` becomes ``api_base``,
``api_key`` becomes ``api_key`` (without one LiteLLM reads the provider's own environment
variable), and ``client_args`` and ``generate_args`` are keyword arguments of
``acompletion`` (``extra_headers``, ``api_version``, ``temperature``, ...).

streamwrap retries (before the first token only), so LiteLLM's retries and those of the
SDKs under it are switched off. LiteLLM's chunk objects become deltas in ``_chunks``, its
exceptions streamwrap's typed errors in ``_exceptions``; ``_library`` imports LiteLLM and
keeps it off the network but for the request itself.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ..._errors import StreamwrapError
from ..._transport._upstream import StaticUpstream
from ..._url_redaction import add_http_logger
from ..._wrapper import ChatRequest, ModelWrapper, Upstream
from ..openai._stream_options import StreamUsageOption
from ._chunks import LiteLLMStream, completion_deltas
from ._exceptions import open_error
from ._library import import_litellm, pin_server_model_info, server_model_info_route, skip_mcp_kwargs

__all__ = ["LiteLLMChatWrapper"]

# LiteLLM sends OpenAI-compatible requests through the openai SDK, whose client logs each
# request's URL (and an HTTP error's traceback quoting it): masked like httpx's lines.
add_http_logger("openai._base_client")

# Endpoints (api_base, or the model string for LiteLLM's default endpoint) that refused
# `stream_options` once are asked without it from then on.
_STREAM_USAGE = StreamUsageOption()


class LiteLLMChatWrapper(ModelWrapper):
    """Chat completions through LiteLLM (``pip install "streamwrap[litellm]"``).

    ``model_name`` is LiteLLM's ``provider/model`` string. Usage is the provider's own
    report when it sent one; LiteLLM is asked for it (``stream_options.include_usage``).
    """

    model_type: ClassVar[str] = "litellm_chat"
    provider: ClassVar[str] = "litellm"
    #: genai-prices reads the provider from a LiteLLM model name ('openai/gpt-4o-mini')
    price_provider_id: ClassVar[str | None] = "litellm"
    gen_ai_provider_name: ClassVar[str] = "litellm"
    extra: ClassVar[str] = "litellm"
    # LiteLLM finds each provider's key in that provider's environment variable itself.
    api_key_optional: ClassVar[bool] = True

    def _make_client(self) -> Any:
        # LiteLLM keeps its own HTTP clients; the "client" is its entry point (which has no
        # close(): the base class must not close LiteLLM's shared clients).
        return import_litellm().acompletion

    def _endpoint(self, request: ChatRequest) -> str:
        return self.base_url or request.model_name

    async def _open(self, request: ChatRequest) -> Upstream:
        kwargs: dict[str, Any] = {**self.client_args, **request.params}
        if request.tools:
            kwargs["tools"] = request.tools
        # A compatible server that rejects `stream_options` is asked once more without it,
        # and the endpoint remembered. Usage then comes from LiteLLM's own count (estimated).
        return await _STREAM_USAGE.send(
            lambda kwargs: self._send(request, kwargs),
            kwargs,
            endpoint=self._endpoint(request),
            ask=request.stream,
        )

    async def _send(self, request: ChatRequest, kwargs: dict[str, Any]) -> Upstream:
        acompletion = self._client()
        route = server_model_info_route(request.model_name)
        if route is not None:
            pin_server_model_info(route, request.model_name.partition("/")[2])
        if request.tools:
            kwargs.update(skip_mcp_kwargs())
        if self.base_url:
            kwargs["api_base"] = self.base_url
        if self._api_key:
            kwargs.pop("api_key", None)  # the configured key wins over one in client_args
        kwargs.setdefault("timeout", self.timeout)
        # streamwrap retries, before the first token only; LiteLLM's retries (num_retries)
        # and the provider SDK's (max_retries) would multiply them.
        kwargs["num_retries"] = 0
        kwargs["max_retries"] = 0
        error: StreamwrapError | None = None
        try:
            # The key is revealed inside the call only, never stored in `kwargs` (a local
            # of this frame and of _open's, see _secret).
            response = await acompletion(
                model=request.model_name,
                messages=request.messages,
                stream=request.stream,
                **kwargs,
                **({"api_key": self._api_key.reveal()} if self._api_key else {}),
            )
        except Exception as exc:
            error = open_error(exc, self.provider, self._api_key)
        if error is not None:
            # Raised outside the handler, so that LiteLLM's exception is neither the cause
            # nor the context of ours: its messages may quote the key, ours are scrubbed.
            raise error
        if not request.stream:
            return StaticUpstream(completion_deltas(response, self.provider))
        return LiteLLMStream(response, self.provider, self._api_key, route)
