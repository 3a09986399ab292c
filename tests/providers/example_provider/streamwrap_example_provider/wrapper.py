"""The wrapper: one validated request in, an open stream of deltas out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from streamwrap.providers import ChatRequest, ModelWrapper, Upstream, make_httpx_client, post_json

from .wire import ExampleStreamMapper, completion_deltas


class ExampleChatWrapper(ModelWrapper):
    """Chat completions (``POST {base_url}/chat/completions``) from an OpenAI-compatible
    server. ``base_url`` defaults to ``$EXAMPLE_BASE_URL``, then a local server; the API
    key, if any, to ``$EXAMPLE_API_KEY``."""

    model_type: ClassVar[str] = "example_chat"
    #: the name errors and responses report
    provider: ClassVar[str] = "example"
    #: the streamwrap extra that installs httpx, named if it is missing (this package
    #: depends on httpx itself, so only a broken install gets there)
    extra: ClassVar[str] = "http"
    api_key_env: ClassVar[tuple[str, ...]] = ("EXAMPLE_API_KEY",)
    base_url_env: ClassVar[tuple[str, ...]] = ("EXAMPLE_BASE_URL",)
    #: a local server needs no key
    api_key_optional: ClassVar[bool] = True
    #: config keys of this provider's own, besides the common ones: key -> (types, description)
    config_keys: ClassVar[Mapping[str, tuple[tuple[type, ...], str]]] = {
        "chat_path": ((str,), "the path of the chat endpoint under base_url, such as '/chat/completions'"),
    }

    default_base_url: ClassVar[str] = "http://127.0.0.1:8000/v1"

    def _make_client(self) -> Any:
        # Called once per wrapper, on streamwrap's event loop; self._client() returns it.
        return make_httpx_client(
            extra=self.extra,
            timeout=self.timeout,
            client_args=self.client_args,  # the user's httpx options win
            headers={"accept": "text/event-stream"},
            secret=self._api_key,  # sent as "authorization: Bearer <key>"
        )

    def _url(self) -> str:
        base = (self.base_url or self.default_base_url).rstrip("/")
        path: str = self.extra_options.get("chat_path", "/chat/completions")  # checked: a str
        return base + path

    async def _open(self, request: ChatRequest) -> Upstream:
        body: dict[str, Any] = {
            "model": request.model_name,
            "messages": request.messages,  # already normalised to OpenAI's form
            "stream": request.stream,
            **request.params,  # generate_args and call arguments: temperature, max_tokens, ...
        }
        if request.tools:
            body["tools"] = request.tools  # already in OpenAI's {"type": "function", ...} form
        if request.stream:
            body["stream_options"] = {"include_usage": True}  # usage in a last chunk
        provider = self.provider
        return await post_json(
            self._client(),
            self._url(),
            body,
            provider=provider,
            secret=self._api_key,
            stream=request.stream,
            mapper=lambda: ExampleStreamMapper(provider),  # a fresh one per response
            complete=lambda obj: completion_deltas(obj, provider),  # stream=False
        )
