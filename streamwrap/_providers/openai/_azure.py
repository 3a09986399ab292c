"""``azure_openai_chat``: chat completions of an Azure OpenAI deployment.

Azure speaks OpenAI's chat-completions wire format at
``{endpoint}/openai/deployments/{deployment}/chat/completions?api-version=...``, so this is
``openai_chat`` with ``openai.AsyncAzureOpenAI`` sending the request (its endpoint,
deployment path, ``api-version`` query, ``api-key`` header and Microsoft Entra ID tokens all
apply) and streamwrap's shared OpenAI wire mapper decoding the bytes. It lives beside
``openai_chat`` because it is that wrapper with another client: a package of its own
would import this one's private modules across the providers' independence contract.

Azure's quirks, all read by the shared mapper: a first chunk with ``choices: []``, an empty
id and model, and ``prompt_filter_results``; ``content_filter_results`` on choices
(ignored); ``finish_reason: "content_filter"`` when the output filter stops a reply (the
response finishes with ``finish_reason == "content_filter"`` and the text so far). A prompt
the input filter blocks is an HTTP 400 whose error ``code`` is ``content_filter``: raised
as :class:`~streamwrap.ContentFilterError`.

Names, as Azure's own SDK takes them: ``base_url`` is the resource endpoint
(``https://<resource>.openai.azure.com``, else ``$AZURE_OPENAI_ENDPOINT``), ``model_name``
the deployment name, ``api_version`` the API version (else ``$OPENAI_API_VERSION``, else
:data:`DEFAULT_API_VERSION`), ``api_key`` the key (else ``$AZURE_OPENAI_API_KEY``). Instead
of a key, Microsoft Entra ID: ``client_args={"azure_ad_token_provider": callable}`` (or a
fixed ``azure_ad_token``). The newer ``/openai/v1/`` endpoint has no deployment path and no
``api-version``: it takes a plain OpenAI client, ``openai_chat`` with
``base_url="https://<resource>.openai.azure.com/openai/v1/"``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, ClassVar

from ..._errors import ConfigError, MissingDependencyError
from ..._transport._pool import close_idle_in_background
from ._wrapper import OpenAIChatWrapper

__all__ = ["DEFAULT_API_VERSION", "AzureOpenAIChatWrapper"]

#: The ``api-version`` sent when neither ``api_version`` nor ``$OPENAI_API_VERSION`` names
#: one: the latest generally available data-plane version that streams usage
#: (``stream_options``) and tool calls. A deployment's newer features may need a newer one.
DEFAULT_API_VERSION = "2024-10-21"

_API_VERSION_ENV = "OPENAI_API_VERSION"
# Credentials of Microsoft Entra ID that AsyncAzureOpenAI takes instead of a key (the SDK
# refuses a key beside them).
_TOKEN_ARGS = ("azure_ad_token_provider", "azure_ad_token")
# A fixed Entra ID token in the environment: the SDK reads it itself when no key is sent.
_TOKEN_ENV = "AZURE_OPENAI_AD_TOKEN"


class AzureOpenAIChatWrapper(OpenAIChatWrapper):
    """Chat completions of an Azure OpenAI deployment (``model_name`` is the deployment).

    Without ``base_url`` it reads ``$AZURE_OPENAI_ENDPOINT``; without ``api_key``,
    ``$AZURE_OPENAI_API_KEY`` (sent as the ``api-key`` header), unless ``client_args``
    holds an ``azure_ad_token_provider`` (or ``azure_ad_token``); without ``api_version``,
    ``$OPENAI_API_VERSION``, then :data:`DEFAULT_API_VERSION`.
    """

    model_type: ClassVar[str] = "azure_openai_chat"
    provider: ClassVar[str] = "azure_openai"
    #: genai-prices' Azure prices (falling back to OpenAI's for OpenAI's models)
    price_provider_id: ClassVar[str | None] = "azure"
    gen_ai_provider_name: ClassVar[str] = "azure.ai.openai"
    extra: ClassVar[str] = "azure"
    api_key_env: ClassVar[tuple[str, ...]] = ("AZURE_OPENAI_API_KEY",)
    base_url_env: ClassVar[tuple[str, ...]] = ("AZURE_OPENAI_ENDPOINT",)
    default_base_url: ClassVar[str] = ""
    config_keys: ClassVar[Mapping[str, tuple[tuple[type, ...], str]]] = {
        "api_version": ((str,), "an Azure OpenAI API version string such as '2024-10-21'"),
    }

    def __init__(self, model_name: str, *, api_version: str | None = None, **options: Any) -> None:
        super().__init__(model_name, api_version=api_version, **options)
        if not self.base_url:
            raise ConfigError(
                "no endpoint for azure_openai: set 'base_url' in the config (the resource's"
                " https://<resource>.openai.azure.com) or the AZURE_OPENAI_ENDPOINT environment variable.",
                key="base_url",
                config_name=self.config_name,
            )
        self._uses_token = any(self.client_args.get(name) is not None for name in _TOKEN_ARGS) or (
            self._api_key is None and bool(os.environ.get(_TOKEN_ENV))
        )
        if self._api_key is None and not self._uses_token:
            raise ConfigError(
                "no API key for azure_openai: set 'api_key' in the config, the AZURE_OPENAI_API_KEY"
                " environment variable, or a Microsoft Entra ID token provider in"
                " client_args={'azure_ad_token_provider': ...} (or a token in AZURE_OPENAI_AD_TOKEN).",
                key="api_key",
                config_name=self.config_name,
            )
        self.api_version: str = api_version or os.environ.get(_API_VERSION_ENV) or DEFAULT_API_VERSION

    def _make_client(self) -> Any:
        try:
            import openai
        except ImportError:
            raise MissingDependencyError("openai", self.extra) from None
        args: dict[str, Any] = {
            "azure_endpoint": self._endpoint(),
            "api_version": self.api_version,
            # streamwrap retries itself (before the first token only), so the SDK must not.
            "max_retries": 0,
            "timeout": self.timeout,
            **self.client_args,
        }
        if "http_client" not in args:
            # As openai_chat's: the SDK's own client, its idle connections closed off the
            # request path (see _transport._pool).
            args["http_client"] = close_idle_in_background(
                openai.DefaultAsyncHttpxClient(timeout=self.timeout)
            )
        # A token provider and a key are exclusive in the SDK.
        key = None if self._uses_token else self._api_key
        try:
            # The key is revealed inside the call only, never held in a local (see _secret).
            return openai.AsyncAzureOpenAI(**{**({"api_key": key.reveal()} if key else {}), **args})
        except TypeError as exc:  # an option the SDK does not have
            error = ConfigError(
                f"'client_args' are not options of openai.AsyncAzureOpenAI: {exc}", key="client_args"
            )
        except openai.OpenAIError as exc:  # e.g. both a key and a token in client_args
            error = ConfigError(f"openai.AsyncAzureOpenAI refused its options: {exc}", key="client_args")
        raise error
