"""``anthropic_chat``: Anthropic's Messages API (``api.anthropic.com``), natively.

Why httpx sends the request, not the ``anthropic`` SDK: the SDK builds a pydantic object
per SSE event (and its ``MessageStream`` accumulates a snapshot per event too), which is
where a streaming client's CPU goes, and its raw-response path (``with_raw_response`` /
``with_streaming_response``) would still tie streamwrap to the SDK's private response
types across releases. The request itself is simple: one JSON POST with two headers. So
streamwrap sends it with httpx (``_transport._httpx_client``, as ``gemini_chat`` does) to
the endpoint, with the headers, the SDK uses, and decodes the bytes with its own SSE
decoder (``_wire``). The ``anthropic`` extra installs only httpx; the SDK is what the
tests and benchmarks compare against (it reads the emulator's streams in the test suite).

The request, as Anthropic documents it::

    POST {base_url}/v1/messages
    x-api-key: KEY
    anthropic-version: 2023-06-01
    {"model", "max_tokens", "messages", "system"?, "tools"?, "stream": true?, ...}

(The ``anthropic`` SDK 2.x sends the key as ``Authorization: Bearer KEY`` and a newer
version date; the documented ``x-api-key`` and ``2023-06-01``, which every peer sends and
the API keeps accepting, are the defaults here, and ``anthropic_version`` changes the date.)

The key comes from ``api_key``, else ``$ANTHROPIC_API_KEY``; the base URL from
``base_url``, else ``$ANTHROPIC_BASE_URL``, else ``https://api.anthropic.com`` (as the SDK:
``/v1/messages`` is appended). ``anthropic_version`` (config key) sets the
``anthropic-version`` header; beta features go in ``client_args={"headers":
{"anthropic-beta": ...}}``.

Messages are OpenAI-style and converted: ``system``/``developer`` → the top-level
``system`` (text blocks); ``user`` → a user turn (text, ``image_url`` parts as ``image``
blocks, Anthropic's own blocks passed through); ``assistant`` → text and ``tool_use``
blocks; ``tool`` → ``tool_result`` blocks in a user turn. Consecutive turns of one role
are merged, so the results of parallel calls travel in one user turn. Tools become
``{"name", "description", "input_schema"}``; ``tool_choice`` in OpenAI's form is
translated.

Thinking: pass ``thinking`` (in ``generate_args`` or a call) as the API's object, or as a
token budget (``thinking=2048`` means ``{"type": "enabled", "budget_tokens": 2048}``).
``max_tokens`` is required by the API: without one, streamwrap sends
``DEFAULT_MAX_TOKENS`` (4096), plus the thinking budget when there is one (the budget is
part of ``max_tokens``). A tool loop with thinking must send the thinking blocks back with
their signatures, exactly: put ``response.tool_calls`` themselves (or dicts that keep
their ``"extra": {"thinking_blocks": [...]}``) in the assistant message, and they are put
back in front of the calls; an assistant message may also carry ``thinking_blocks`` itself
(LiteLLM's key).

Call arguments: ``max_tokens`` (``max_completion_tokens``), ``temperature``, ``top_p``,
``top_k``, ``stop`` (→ ``stop_sequences``), ``metadata``, ``tool_choice``, ``thinking``,
and any other key as is (the API rejects unknown names itself); ``extra_body`` is merged
into the body last.

HTTP 529 (overloaded) is retried before the first token like 503, honouring
``retry-after``; an ``error`` event mid-stream raises :class:`ProviderStreamError` with
the partial text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar

from ..._errors import ConfigError
from ..._transport._httpx_client import make_httpx_client, post_json
from ..._wrapper import ChatRequest, ModelWrapper, Upstream
from ._request import build_request_body
from ._wire import AnthropicStreamMapper, message_deltas

__all__ = ["AnthropicChatWrapper"]

DEFAULT_BASE_URL = "https://api.anthropic.com"
#: The ``anthropic-version`` header the SDK sends (the API's only stable version).
DEFAULT_API_VERSION = "2023-06-01"
_API_VERSION = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


class AnthropicChatWrapper(ModelWrapper):
    """Anthropic's Messages API over its native SSE protocol.

    ``base_url`` points it at any server that speaks that protocol (a proxy, an emulator);
    ``/v1/messages`` is appended to it.
    """

    model_type: ClassVar[str] = "anthropic_chat"
    provider: ClassVar[str] = "anthropic"
    price_provider_id: ClassVar[str | None] = "anthropic"
    gen_ai_provider_name: ClassVar[str] = "anthropic"
    extra: ClassVar[str] = "anthropic"
    api_key_env: ClassVar[tuple[str, ...]] = ("ANTHROPIC_API_KEY",)
    base_url_env: ClassVar[tuple[str, ...]] = ("ANTHROPIC_BASE_URL",)
    config_keys: ClassVar[Mapping[str, tuple[tuple[type, ...], str]]] = {
        "anthropic_version": ((str,), "the anthropic-version header, a date such as '2023-06-01'"),
    }

    def __init__(self, model_name: str, **options: Any) -> None:
        super().__init__(model_name, **options)
        version = self.extra_options.get("anthropic_version", DEFAULT_API_VERSION)
        if not _API_VERSION.match(version):
            raise ConfigError(
                f"'anthropic_version' must be a date such as '2023-06-01', got {version!r}.",
                key="anthropic_version",
                config_name=self.config_name,
            )
        self.anthropic_version: str = version

    def _make_client(self) -> Any:
        return make_httpx_client(
            extra=self.extra,
            timeout=self.timeout,
            client_args=self.client_args,
            headers={"anthropic-version": self.anthropic_version},
            secret=self._api_key,
            key_header="x-api-key",
            key_prefix="",
        )

    def _server_url(self) -> str:
        return self.base_url or DEFAULT_BASE_URL

    def _url(self) -> str:
        return f"{(self.base_url or DEFAULT_BASE_URL).rstrip('/')}/v1/messages"

    async def _open(self, request: ChatRequest) -> Upstream:
        return await post_json(
            self._client(),
            self._url(),
            build_request_body(request),
            provider=self.provider,
            secret=self._api_key,
            stream=request.stream,
            mapper=lambda: AnthropicStreamMapper(self.provider),
            complete=lambda obj: message_deltas(obj, self.provider),
        )
